"""The real CLI (`ingest`, `eval retrieval`) in a subprocess, and the whole path through App."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.app import App
from bot.pipeline.offline import OfflineResponder
from core.messages import Incoming
from memory.knowledge.index import Layout
from memory.knowledge.ingest import Ingestor
from tests.conftest import ROOT, SHARED, MakeSettings
from tests.knowledge.conftest import WUKONG_NAMES
from tests.support.cli import run_bot
from tests.support.openai_server import FakeOpenAI, Script
from tests.support.requests import system_text

CMRC = SHARED / "eval" / "cmrc2018_retrieval"


cli = run_bot


def config(tmp_path: Path, **knowledge: Any) -> Path:
    lines = [f'[bot]\ndata_dir = "{tmp_path / "data"}"', f'[personas]\ndirs = ["{ROOT / "persona"}"]',
             '[memory]\nbackend = "sqlite"', "[knowledge]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in knowledge.items()]
    (tmp_path / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path


def test_ingest_command_incremental_and_prune(tmp_path: Path, novel: Callable[..., Path]) -> None:
    work = config(tmp_path, mode="bm25")
    a, b = novel(1, 2, "a.txt"), novel(3, 3, "b.txt", encoding="gb18030")
    first = cli(["ingest", "--persona", "wukong", str(a), str(b)], work)
    assert first.returncode == 0, first.stderr
    assert "files: 2 (2 changed, 0 pruned)" in first.stdout
    assert "files" in first.stderr  # the progress bar goes to stderr
    again = cli(["ingest", "--persona", "wukong", "--quiet", str(a), str(b)], work)
    assert "files: 2 (0 changed, 0 pruned)" in again.stdout and "0 added, 0 removed" in again.stdout
    pruned = cli(["ingest", "--persona", "wukong", "--prune", "--quiet", str(a)], work)
    assert "files: 1 (0 changed, 1 pruned)" in pruned.stdout
    assert (tmp_path / "data" / "knowledge" / "wukong" / "catalog.sqlite3").exists()
    missing = cli(["ingest", "--persona", "wukong", str(tmp_path / "nope.txt")], work)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_eval_retrieval_json_on_a_slice(tmp_path: Path) -> None:
    docs = CMRC.joinpath("corpus.jsonl").read_text(encoding="utf-8").splitlines()[:40]
    ids = {json.loads(d)["id"] for d in docs}
    queries = [q for q in CMRC.joinpath("queries.jsonl").read_text(encoding="utf-8").splitlines()
               if set(json.loads(q)["gold"]) <= ids][:60]
    (tmp_path / "c.jsonl").write_text("\n".join(docs) + "\n", encoding="utf-8")
    (tmp_path / "q.jsonl").write_text("\n".join(queries) + "\n", encoding="utf-8")
    work = config(tmp_path)
    run = cli(["eval", "retrieval", "--corpus", "c.jsonl", "--queries", "q.jsonl", "--mode", "bm25", "--json"], work)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert {"recall@1", "recall@5", "recall@10", "recall@20", "mrr@10", "n", "p50_ms", "p95_ms", "mode"} <= set(result)
    assert result["n"] == 60 and result["mode"] == "bm25"
    assert result["recall@5"] >= 0.9 and result["recall@1"] <= result["recall@5"] <= result["recall@20"]
    text = cli(["eval", "retrieval", "--corpus", "c.jsonl", "--queries", "q.jsonl", "--mode", "bm25", "--k", "1,3"], work)
    assert "recall@3" in text.stdout and "p95_ms" in text.stdout


async def test_prompt_carries_retrieved_passage_and_lore(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, novel: Callable[..., Path]
) -> None:
    settings = make_settings(
        llm={"base_url": llm.base_url, "model": "m"},
        bot={"default_persona": "wukong"},
        knowledge={"enabled": True},  # default hybrid with no embedder configured: BM25
    )
    layout = Layout(settings.bot.data_dir / "knowledge", "wukong")
    Ingestor(layout, WUKONG_NAMES, 300, 40, progress=False).run([novel(1, 7)])
    app: App = await app_factory(settings)
    llm.push(Script(text="俺老孙在炉里炼了七七四十九日！"))
    reply = await app.chain.handle(Incoming("test", "dm-1", "u1", "小明", "你在八卦炉里待了多久？金箍棒还在吗？", is_direct=True))
    assert reply is not None and reply.mode == "model"
    system = system_text(llm.requests[-1])
    assert "八卦炉" in system and "〔第七回" in system  # the passage from the source work
    assert "一万三千五百斤" in system  # the lorebook entry triggered by 金箍棒
    assert "孙悟空:「" in system  # one of his own lines, for tone
    assert app.knowledge.embedder is None  # type: ignore[attr-defined]


async def test_spoiler_limit_from_config_and_channel(
    make_settings: MakeSettings, app_factory: Any, llm: FakeOpenAI, novel: Callable[..., Path]
) -> None:
    settings = make_settings(
        llm={"base_url": llm.base_url, "model": "m"},
        bot={"default_persona": "wukong"},
        knowledge={"enabled": True, "max_chapter": {"test:g1": 2}},
    )
    Ingestor(Layout(settings.bot.data_dir / "knowledge", "wukong"), WUKONG_NAMES, 300, 40, progress=False).run([novel(1, 7)])
    app: App = await app_factory(settings)
    llm.default = Script(text="嗯")
    ask = "大圣你在八卦炉里待了多久？"
    await app.chain.handle(Incoming("test", "g1", "u1", "小明", ask, mentions_bot=True))
    limited = system_text(llm.requests[-1])
    await app.chain.handle(Incoming("test", "g2", "u1", "小明", ask, mentions_bot=True))
    open_ = system_text(llm.requests[-1])
    assert "〔第七回" in open_ and "〔第七回" not in limited
    assert all(f"〔第{n}回" not in limited for n in "三四五六七")
    # a channel's own setting wins over the config default
    await app.conversations.update(Incoming("test", "g1", "u1", "小明", "").conversation, max_chapter=7)
    await app.chain.handle(Incoming("test", "g1", "u1", "小明", ask, mentions_bot=True))
    assert "〔第七回" in system_text(llm.requests[-1])
    # lifting the limit by command lifts the config default too
    from bot.commands.handlers import Commands

    await app.conversations.update(Incoming("test", "g1", "u1", "小明", "").conversation, max_chapter=None)
    await app.chain.handle(Incoming("test", "g1", "u1", "小明", ask + "？", mentions_bot=True))
    assert "〔第七回" not in system_text(llm.requests[-1])  # back to the config default
    await Commands(app).spoiler(Incoming("test", "g1", "u1", "小明", ""), None)
    await app.chain.handle(Incoming("test", "g1", "u1", "小明", ask + "！", mentions_bot=True))
    assert "〔第七回" in system_text(llm.requests[-1])


async def test_offline_mode_speaks_a_line_from_its_own_scenes(
    make_settings: MakeSettings, app_factory: Any, novel: Callable[..., Path]
) -> None:
    settings = make_settings(llm={"provider": "offline"}, bot={"default_persona": "wukong"}, knowledge={"enabled": True})
    Ingestor(Layout(settings.bot.data_dir / "knowledge", "wukong"), WUKONG_NAMES, 300, 40, progress=False).run([novel(1, 7)])
    app: App = await app_factory(settings)
    question = "混世魔王"  # no example exchange of the card shares a word with it; his scenes do
    assert not OfflineResponder(app.personas.get("wukong")).matches(question)
    reply = await app.chain.handle(Incoming("test", "dm-1", "u1", "小明", question, is_direct=True))
    assert reply is not None and reply.mode == "offline"
    scenes = await app.knowledge.lookup(app.personas.get("wukong"), question, [], None)
    assert scenes.scenes and reply.text in [s.text.split("「", 1)[1].rstrip("」") for s in scenes.scenes]


def test_bad_eval_input_and_a_corrupt_catalog_are_one_line(tmp_path: Path) -> None:
    work = config(tmp_path)
    (tmp_path / "c.jsonl").write_text('{"id": "1", "text": "abc"}\n', encoding="utf-8")
    (tmp_path / "q.jsonl").write_text('{"id": "q"}\n', encoding="utf-8")
    bad = cli(["eval", "retrieval", "--corpus", "c.jsonl", "--queries", "q.jsonl", "--mode", "bm25"], work)
    assert bad.returncode == 2 and "q.jsonl:1: expected" in bad.stderr and "Traceback" not in bad.stderr
    catalog = tmp_path / "data" / "knowledge" / "wukong" / "catalog.sqlite3"
    catalog.parent.mkdir(parents=True)
    catalog.write_text("not a database", encoding="utf-8")
    doctor = cli(["doctor"], work)
    line = next(x for x in doctor.stdout.splitlines() if x.startswith("knowledge"))
    assert "unreadable" in line and "ingest again" in line and "Traceback" not in doctor.stderr
