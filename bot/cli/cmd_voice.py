"""`voice`: run the voice chain once and write the clip."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from core.boot import settings_from
from core.config import Settings
from core.llm import ChatModel, OpenAIChat
from core.loop import run as run_loop
from persona.library import PersonaLibrary
from voice import VoiceError, build_voice
from voice.audio import format_of


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the voice command."""
    p = sub.add_parser("voice", help="translate and speak one line as a persona; write the clip", parents=[common])
    p.add_argument("--persona", required=True, help="persona id (folder name)")
    p.add_argument("--text", required=True, help="what the character says")
    p.add_argument("--out", required=True, type=Path, help="clip file; the extension picks the format (.ogg .wav .flac .mp3)")
    p.add_argument("--no-translate", action="store_true", help="speak the text as given")
    p.set_defaults(func=voice_cmd)


def voice_cmd(args: argparse.Namespace) -> int:
    """Print the spoken text and the clip's duration; exit 1 when no clip was made."""
    try:
        fmt = format_of(args.out.suffix)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = settings_from(args)
    return run_loop(_speak(settings, args.persona, args.text, args.out, fmt, not args.no_translate))


async def _speak(settings: Settings, pid: str, text: str, out: Path, fmt: str, translate: bool) -> int:
    persona = PersonaLibrary.configured(settings.personas).get(pid)
    model: ChatModel | None = OpenAIChat(settings.llm) if settings.llm.provider == "openai" and translate else None
    service = build_voice(settings, model)
    started = time.perf_counter()
    try:
        clip = await service.render(persona, text, fmt=fmt, translate=translate)
    except VoiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await service.close()
        if model is not None:
            await model.close()
    if clip is None:
        print("error: nothing to say: the text is not in the voice's language and no model can translate it "
              "(configure [llm] or [voice] translator_base_url, or pass Japanese text)", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(clip.data)
    print(f"text: {clip.text}")
    print(f"duration: {clip.duration:.2f} s ({clip.format}, {len(clip.data)} bytes, {time.perf_counter() - started:.1f} s to make)")
    print(f"wrote {out}")
    return 0
