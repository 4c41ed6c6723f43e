"""The console's conversation page in a scene: the scene's characters, each view linked, and who spoke marked."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx

from core.conversation import Conversation
from core.messages import Incoming
from memory.turns import SessionKey
from tests.conftest import MakeSettings
from tests.support.openai_server import FakeOpenAI, Script
from tests.web.support import TOKEN, running_page, web_section


def by_persona(body: dict[str, Any]) -> str:
    return "horo" if "约伊兹" in body["messages"][0]["content"] else "yexiu"


async def test_the_conversation_page_shows_the_scene_and_marks_who_spoke(make_settings: MakeSettings, llm: FakeOpenAI) -> None:
    settings = make_settings(llm={"base_url": llm.base_url, "model": "test-model"}, web=web_section(),
                             memory={"summary": False, "facts": False})
    llm.responder = lambda body: Script(text={"horo": "咱要苹果。", "yexiu": "我要泡面。"}[by_persona(body)])
    async with running_page(settings) as page:
        msg = Incoming("discord", "c1", "u1", "阿青", "赫萝，叶修，吃什么？", message_id="m1")
        await page.app.conversations.update(msg.conversation, scene=("horo", "yexiu"))
        await page.app.scenes.handle(msg, ["horo", "yexiu"], {})
        key = SessionKey.of("yexiu", Conversation("discord", "group", "c1"))
        async with httpx.AsyncClient(base_url=page.base, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            shown = (await client.get(f"/conversation?{urlencode({'key': str(key)})}")).text
    horo_view = urlencode({"key": str(SessionKey.of("horo", key.conversation))})
    assert "Scene: " in shown and "叶修 (this view)" in shown and f'href="/conversation?{horo_view}"' in shown
    assert '<div class="line user character"><span class="who">赫萝 (character)</span>' in shown
    assert '<div class="line assistant"><span class="who">叶修</span>' in shown
    assert '<div class="line user"><span class="who">阿青</span>' in shown
    assert "scene:horo" not in shown  # facts are about members, never another character
