"""Channel settings are read from the store once in a while, not for every line of a busy channel."""

from __future__ import annotations

from typing import Any

from core.conversation import Conversation
from tests.conftest import MakeSettings

WHERE = Conversation("test", "group", "g1")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_settings_are_kept_briefly_and_a_change_here_is_seen_at_once(
    make_settings: MakeSettings, app_factory: Any
) -> None:
    app = await app_factory(make_settings(llm={"provider": "offline"}))
    conversations = app.conversations
    clock = Clock()
    conversations.clock = clock
    assert (await conversations.settings(WHERE)).chance is None
    await app.store.set_setting(WHERE, "chance", "0.3")  # another process sharing the store
    assert (await conversations.settings(WHERE)).chance is None  # kept: the store is not asked again
    clock.now += conversations.fresh_seconds
    assert (await conversations.settings(WHERE)).chance == 0.3
    await conversations.update(WHERE, chance=0.7, scene=("horo", "yexiu"))
    kept = await conversations.settings(WHERE)
    assert (kept.chance, kept.scene) == (0.7, ("horo", "yexiu"))
