"""`doctor`: check every component and say how to fix what fails."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.pipeline.stages.compose import Compose
from core.boot import settings_from
from core.config import Settings
from core.llm import LLMError, OpenAIChat
from core.loop import run as run_loop
from memory.knowledge import knowledge_check
from memory.open import open_store, safe_url
from memory.store import StoreError
from persona.library import PersonaError, PersonaLibrary
from persona.prompt import stable_prompt
from voice import voice_check


@dataclass(frozen=True)
class Check:
    """One line of the doctor's table."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


Probe = Callable[[Settings], Awaitable[Check]]


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `doctor`."""
    sub.add_parser("doctor", help="check config, memory, model, knowledge, voice", parents=[common]).set_defaults(
        func=doctor_cmd
    )


async def check_config(s: Settings) -> Check:
    """The config file."""
    if s.source:
        return Check("config", True, str(s.source))
    return Check("config", True, "no config.toml; using defaults and the environment", required=False)


async def check_personas(s: Settings) -> Check:
    """Persona cards and the default persona."""
    try:
        lib = PersonaLibrary.configured(s.personas)
    except PersonaError as exc:
        return Check("personas", False, str(exc), "fix or remove that card")
    if s.bot.default_persona not in lib:
        return Check("personas", False, f"default_persona '{s.bot.default_persona}' not found",
                     f"set [bot] default_persona to one of: {', '.join(lib.ids())}")
    return Check("personas", True, f"{len(lib.ids())} cards: {', '.join(lib.ids())}")


async def check_memory(s: Settings) -> Check:
    """The conversation store."""
    try:
        store = await open_store(s.memory)
    except StoreError as exc:
        return Check("memory", False, str(exc), "start Redis or set [memory] backend = \"sqlite\"")
    try:
        await store.ping()
        where = safe_url(s.memory.redis_url.get_secret_value()) if store.name == "redis" else str(s.memory.sqlite_path)
        return Check("memory", True, f"{store.name} ({where})")
    except StoreError as exc:
        return Check("memory", False, str(exc), "check [memory] redis_url / sqlite_path")
    finally:
        await store.close()


async def check_model(s: Settings) -> Check:
    """The model server's /v1/models."""
    if s.llm.provider == "offline":
        return Check("model", True, "offline mode (example lines)", required=False)
    model = OpenAIChat(s.llm)
    try:
        names = await model.models()
        profile = await model.probe()
    except LLMError as exc:
        return Check("model", False, exc.args[0], "start lmdeploy serve api_server, or set BOT_LLM__BASE_URL")
    finally:
        await model.close()
    if s.llm.model and s.llm.model not in names:
        return Check("model", False, f"'{s.llm.model}' not served (have: {', '.join(names)})", "fix [llm] model")
    fix = ""
    if profile.context_source == "assumed":
        fix = "set [llm] context_tokens to the server's context (lmdeploy: its --session-len)"
    detail = f"{s.llm.base_url}: {', '.join(names) or 'no models listed'}; {profile.describe()}"
    return Check("model", True, detail, fix)


async def check_prompts(s: Settings) -> Check:
    """Each persona's stable prompt in the server's tokens, against its context."""
    if s.llm.provider == "offline":
        return Check("prompts", True, "offline mode (no prompts)", required=False)
    try:
        lib = PersonaLibrary.configured(s.personas)
    except PersonaError as exc:
        return Check("prompts", False, str(exc), required=False)
    model = OpenAIChat(s.llm)
    try:
        profile = await model.probe()
        if not profile.reachable:
            return Check("prompts", False, "model server not reachable", required=False)
        compose = Compose(s.llm, s.memory, (s.knowledge.passage_tokens, s.knowledge.lore_tokens), profile)
        parts = []
        for pid in lib.ids():
            persona = lib.get(pid)
            full = stable_prompt(persona, s.llm.example_tokens)
            used = compose.stable(persona)
            tokens = await model.count(used) or profile.count(used)
            trimmed = "" if used == full else f", trimmed from {await model.count(full) or profile.count(full)}"
            parts.append(f"{pid} {tokens}{trimmed}")
    finally:
        await model.close()
    counted = "server tokens" if profile.tokenizer else "estimated tokens"
    detail = f"stable prompt in {counted}: {', '.join(parts)} (context {profile.context}, reply cap {compose.reply_cap()})"
    return Check("prompts", True, detail, required=False)


async def check_knowledge(s: Settings) -> Check:
    """The knowledge store."""
    ok, detail, fix = await knowledge_check(s)
    return Check("knowledge", ok, detail, fix, required=False)


async def check_voice(s: Settings) -> Check:
    """The voice engine."""
    ok, detail, fix = await voice_check(s)
    return Check("voice", ok, detail, fix, required=False)


PROBES: list[Probe] = [
    check_config, check_personas, check_memory, check_model, check_prompts, check_knowledge, check_voice,
]


def render(checks: list[Check]) -> str:
    """The table."""
    rows = [("check", "status", "detail", "fix")]
    for c in checks:
        status = "ok" if c.ok else ("FAIL" if c.required else "warn")
        rows.append((c.name, status, c.detail, c.fix))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() for r in rows
    )


def doctor_cmd(args: argparse.Namespace) -> int:
    """Print the table; exit 0 only when every required check passes."""
    settings = settings_from(args)
    checks = run_loop(_run_all(settings))
    print(render(checks))
    return 0 if all(c.ok or not c.required for c in checks) else 1


async def _run_all(settings: Settings) -> list[Check]:
    return [await probe(settings) for probe in PROBES]
