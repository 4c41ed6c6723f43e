"""The character card: Character Card V2 fields plus ours (voice, glossary, lorebook, sources)."""

from __future__ import annotations

import itertools
import re
import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.fetch.policy import refusal

CARD_SCHEMA = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class LoreEntry(_Strict):
    """One World Info entry (Character Card V2 `character_book` semantics)."""

    keys: list[str] = Field(default_factory=list)
    secondary_keys: list[str] = Field(default_factory=list)
    content: str = ""
    enabled: bool = True
    insertion_order: int = 100
    case_sensitive: bool = False
    selective: bool = False
    selective_logic: Literal["and_any", "and_all", "not_any", "not_all"] = "and_any"
    constant: bool = False
    position: Literal["before_char", "after_char"] = "after_char"
    priority: int = 10
    comment: str = ""
    chapter: int | None = Field(None, ge=1)  # the source chapter it belongs to: hidden past a spoiler limit


class VoiceSpec(_Strict):
    """How the character sounds: engine, speaker and the language to speak."""

    engine: Literal["kokoro", "vits", "bert-vits2", "gpt-sovits"] = "kokoro"
    speaker: str = "jf_alpha"
    language: str = "ja"
    translate_to: str = "ja"
    params: dict[str, float | int | str] = Field(default_factory=dict)  # VITS: noise, noisew, length, ...


class Lines(_Strict):
    """The character's own short lines for moments the model is not asked; {{user}} is filled in."""

    rate_limited: list[str] = Field(default_factory=list)  # someone writes faster than the limit
    no_pictures: list[str] = Field(default_factory=list)  # someone sends only a picture
    moment: list[str] = Field(default_factory=list)  # a message could not be handled: "give me a moment"
    not_heard: list[str] = Field(default_factory=list)  # a voice message could not be transcribed
    busy: list[str] = Field(default_factory=list)  # a message waits its turn: "one moment" (the answer follows)


class KnowledgeSpec(_Strict):
    """The character's source work, for `ingest`."""

    sources: list[str] = Field(default_factory=list)
    chapter_pattern: str = ""


# characters of one sentence: the same thing said takes about three times the characters in English
CHARS_PER_SENTENCE = {"zh": 20, "en": 60}


class Length(_Strict):
    """A reply length in characters (a Chinese character and a Latin letter count one each)."""

    typical: int = Field(ge=1)
    max: int = Field(ge=1)


class ReplySize(_Strict):
    """How long the character usually speaks, in private chats and in groups."""

    private: Length = Field(default_factory=lambda: Length(typical=80, max=300))
    group: Length = Field(default_factory=lambda: Length(typical=50, max=160))


class Card(_Strict):
    """A persona card as stored in `persona/<id>/card.toml`."""

    schema_version: int = Field(CARD_SCHEMA, alias="schema")
    name: str = Field(min_length=1)
    nickname: list[str] = Field(default_factory=list)
    aliases: list[str] = Field(default_factory=list)
    language: str = "zh"
    user_alias: str = "你"
    tags: list[str] = Field(default_factory=list)
    creator: str = ""
    character_version: str = ""
    creator_notes: str = ""
    description: str = ""
    personality: str = ""
    scenario: str = ""
    system_prompt: str = ""
    post_history_instructions: str = ""
    first_mes: str = ""
    alternate_greetings: list[str] = Field(default_factory=list)
    mes_example: str = ""
    voice: VoiceSpec = Field(default_factory=VoiceSpec)
    glossary: dict[str, str] = Field(default_factory=dict)
    lorebook: list[LoreEntry] = Field(default_factory=list)
    lines: Lines = Field(default_factory=Lines)
    knowledge: KnowledgeSpec = Field(default_factory=KnowledgeSpec)
    reply_size: ReplySize = Field(default_factory=ReplySize)
    talkativeness: float = Field(0.5, ge=0.0, le=1.0)  # in a scene: how readily it speaks up unaddressed
    avatar: str = Field("", max_length=2000, pattern=r"^(https?://\S+)?$")  # a picture's URL: its Discord webhook posts show it

    @field_validator("avatar")
    @classmethod
    def _public_avatar(cls, value: str) -> str:
        """Discord fetches the avatar: a loopback, private or reserved address (or `localhost`) is refused here."""
        host = urlsplit(value).hostname or "" if value else ""
        if host == "localhost" or host.endswith(".localhost"):
            raise ValueError("avatar: a URL on localhost; give a public http(s) address")
        ip = _address(host) if host else None
        why = refusal(ip) if ip else ""
        if why:
            raise ValueError(f"avatar: {why} ({host}); give a public http(s) address")
        return value


@dataclass(frozen=True, slots=True)
class Example:
    """One example exchange: what the user said and how the character answered."""

    user: str
    char: str


_LINE = re.compile(r"^\s*(\{\{user\}\}|\{\{char\}\}|<USER>|<BOT>)\s*[:：]\s*(.*)$", re.I)


def parse_examples(mes_example: str) -> list[Example]:
    """Split `<START>` blocks into (user, char) pairs; multi-line turns are joined."""
    out: list[Example] = []
    for block in re.split(r"<START>", mes_example, flags=re.I):
        turns: list[list[str]] = []
        for line in block.splitlines():
            m = _LINE.match(line)
            if m:
                who = "user" if m.group(1).lower() in ("{{user}}", "<user>") else "char"
                turns.append([who, m.group(2).strip()])
            elif turns and line.strip():
                turns[-1][1] += "\n" + line.strip()
        for prev, cur in itertools.pairwise(turns):
            if prev[0] == "user" and cur[0] == "char" and prev[1] and cur[1]:
                out.append(Example(prev[1], cur[1]))
    return out


@dataclass(frozen=True)
class Persona:
    """A loaded card with its id (the folder name) and derived data."""

    id: str
    card: Card
    folder: Path

    @property
    def name(self) -> str:
        """The character's display name."""
        return self.card.name

    def examples(self) -> list[Example]:
        """The example exchanges from `mes_example`."""
        return parse_examples(self.card.mes_example)

    def greetings(self) -> list[str]:
        """first_mes followed by the alternate greetings."""
        return [g for g in [self.card.first_mes, *self.card.alternate_greetings] if g.strip()]

    def render(self, text: str, user: str | None = None) -> str:
        """Replace {{char}} and {{user}} macros."""
        user = user if user is not None else self.card.user_alias
        return (
            text.replace("{{char}}", self.name)
            .replace("{{user}}", user)
            .replace("<BOT>", self.name)
            .replace("<USER>", user)
        )

    def length(self, group: bool, language: str = "") -> Length:
        """How long a reply may be here: the card's group or private size, in the card's language, or
        in `language` (the conversation's) as long as it takes to say as much there."""
        size = self.card.reply_size.group if group else self.card.reply_size.private
        own = "zh" if self.card.language.startswith("zh") else "en"
        there = own if not language else "zh" if language.startswith("zh") else "en"
        if own == there:
            return size
        ratio = CHARS_PER_SENTENCE[there] / CHARS_PER_SENTENCE[own]
        return Length(typical=max(1, round(size.typical * ratio)), max=max(1, round(size.max * ratio)))

    def triggers(self) -> list[str]:
        """Words that summon the character in a group: name plus nicknames."""
        return [w for w in dict.fromkeys([self.name, *self.card.nickname]) if w.strip()]


def _address(host: str) -> IPv4Address | IPv6Address | None:
    """The address a URL's host spells, in any form a resolver takes ("127.1", "2130706433", "0x7f.0.0.1")."""
    try:
        return ip_address(host)
    except ValueError:
        pass
    try:
        return IPv4Address(socket.inet_aton(host))
    except OSError:
        return None  # a name: Discord resolves it, as it would any avatar URL
