"""`prepare qa` against a real local OpenAI-compatible server: records, retries, concurrency, resume, shapes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT
from tests.support.openai_server import FakeOpenAI, Script
from tests.training.helpers import prompt_of, qa_responder, write_novel
from training.cli import main
from training.pieces import cut_pieces
from training.records import load_lines, turns_of
from training.shapes import kinds
from training.text import read_text


def _settings(make_settings, llm: FakeOpenAI, **training):
    values = {"piece_chars": 200, "questions_per_piece": 2, "concurrency": 2, "retries": 2, "retry_backoff": 0.0}
    values.update(training)
    return make_settings(llm={"base_url": llm.base_url, "model": "test-model"}, training=values)


def test_qa_writes_grounded_in_character_records(make_settings, llm: FakeOpenAI, tmp_path: Path, capsys) -> None:
    settings = _settings(make_settings, llm)
    novel = write_novel(tmp_path / "novel.txt")
    llm.responder = qa_responder
    out = tmp_path / "qa.jsonl"
    code = main(["--config", str(settings.source), "prepare", "qa", "--novel", str(novel), "--persona", "wukong",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    pieces = cut_pieces(novel.read_text(encoding="utf-8"), 200)
    assert len(pieces) >= 8 and all(len(p.text) <= 200 for p in pieces)
    assert len(llm.requests) == 2 * len(pieces)
    records = load_lines(out)
    assert len(records) == 2 * len(pieces)
    first = records[0]["conversation"][0]
    assert "孙悟空" in first["system"] and "{{char}}" not in first["system"]
    assert first["input"].startswith("问题") and first["output"].startswith("俺老孙")
    # the answer prompt carries the piece and the questions, so answers are grounded in it
    answer_prompts = [prompt_of(b) for b in llm.requests if '{"answers"' in prompt_of(b)]
    assert all("1. 问题" in p and "石猴" in p for p in answer_prompts)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["records"] == len(records) and summary["failed"] == 0
    assert llm.max_in_flight <= 2


def test_pieces_never_cross_chapters(tmp_path: Path) -> None:
    text = write_novel(tmp_path / "n.txt", chapters=3, paragraphs=5).read_text(encoding="utf-8")
    pieces = cut_pieces(text, 200)
    for piece in pieces:
        assert {line.startswith(f"［{piece.chapter}-") for line in piece.text.splitlines()} == {True}
    assert [p.chapter for p in pieces] == sorted(p.chapter for p in pieces)
    assert read_text(text.encode("gb18030")) == text


def test_bad_json_is_retried_then_the_piece_fails(make_settings, llm: FakeOpenAI, tmp_path: Path, capsys) -> None:
    settings = _settings(make_settings, llm, retries=1)
    novel = tmp_path / "n.txt"
    novel.write_text("第一回 开头\n" + "花果山上有一块仙石。" * 5, encoding="utf-8")
    calls = {"n": 0}

    def flaky(body):
        calls["n"] += 1
        if calls["n"] == 1:
            return Script(text="当然！以下是问题：不是JSON")
        if calls["n"] == 2:
            return Script(text=json.dumps({"questions": ["仙石在哪里？"]}, ensure_ascii=False))
        return Script(text=json.dumps({"answers": []}))  # wrong count, every time

    llm.responder = flaky
    out = tmp_path / "qa.jsonl"
    code = main(["--config", str(settings.source), "prepare", "qa", "--novel", str(novel), "--persona", "wukong",
                 "--out", str(out), "--no-progress"])
    assert code == 1
    assert calls["n"] == 4  # question: 1 bad + 1 good; answers: 1 + 1 retry, both rejected
    assert "failed" in capsys.readouterr().err
    assert not out.read_text(encoding="utf-8").strip()
    assert not (tmp_path / "qa.jsonl.state").exists()
    # the rerun asks only for the failed piece, and now succeeds
    llm.responder = qa_responder
    llm.clear()
    assert main(["--config", str(settings.source), "prepare", "qa", "--novel", str(novel), "--persona", "wukong",
                 "--out", str(out), "--no-progress"]) == 0
    assert len(llm.requests) == 2 and len(load_lines(out)) == 2


def test_http_errors_are_retried(make_settings, llm: FakeOpenAI, tmp_path: Path) -> None:
    settings = _settings(make_settings, llm, retries=2)
    novel = tmp_path / "n.txt"
    novel.write_text("第一回 开头\n" + "水帘洞里住着一群猴子。" * 5, encoding="utf-8")
    llm.push(Script(status=503, error="overloaded"))
    llm.responder = lambda body: None if not llm.requests[1:] else qa_responder(body)
    out = tmp_path / "qa.jsonl"
    assert main(["--config", str(settings.source), "prepare", "qa", "--novel", str(novel), "--persona", "wukong",
                 "--out", str(out), "--no-progress"]) == 0
    assert len(llm.requests) == 3 and len(load_lines(out)) == 2


def test_interrupted_run_resumes_without_paying_twice(make_settings, llm: FakeOpenAI, tmp_path: Path) -> None:
    settings = _settings(make_settings, llm, concurrency=1)
    novel = write_novel(tmp_path / "novel.txt")
    pieces = cut_pieces(novel.read_text(encoding="utf-8"), 200)
    out = tmp_path / "qa.jsonl"
    llm.responder = lambda body: Script(text=qa_responder(body).text, delay=0.15)
    argv = ["--config", str(settings.source), "prepare", "qa", "--novel", str(novel), "--persona", "wukong",
            "--out", str(out), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "training", *argv], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        llm.wait_for_requests(7, timeout=60)
    finally:
        proc.send_signal(signal.SIGKILL)  # a crash, not a polite stop
        proc.wait(timeout=10)
    time.sleep(0.2)
    done = [line for line in (tmp_path / "qa.jsonl.state").read_text(encoding="utf-8").splitlines() if line]
    kept = load_lines(out)
    assert 1 <= len(done) < len(pieces)
    assert len(kept) >= 2 * len(done)
    llm.clear()
    llm.responder = qa_responder
    assert main(argv) == 0
    assert len(llm.requests) == 2 * (len(pieces) - len(done))
    records = load_lines(out)
    assert len(records) == 2 * len(pieces)
    assert len({json.dumps(r, sort_keys=True) for r in records}) == len(records)
    # a third run finds everything done and asks nothing
    llm.clear()
    assert main(argv) == 0
    assert llm.requests == []


def test_limit_and_model_from_the_server(make_settings, llm: FakeOpenAI, tmp_path: Path) -> None:
    settings = make_settings(llm={"base_url": "http://127.0.0.1:9/v1"}, training={"piece_chars": 200,
                                                                               "retry_backoff": 0.0})
    novel = write_novel(tmp_path / "novel.txt")
    llm.responder = qa_responder
    llm.api_key = "k-123"
    out = tmp_path / "qa.jsonl"
    assert main(["--config", str(settings.source), "prepare", "qa", "--novel", str(novel), "--out", str(out),
                 "--limit", "2", "--questions", "2", "--base-url", llm.base_url, "--api-key", "k-123",
                 "--no-progress"]) == 0
    assert len(llm.requests) == 4
    assert {b["model"] for b in llm.requests} == {"test-model"}  # the first model GET /v1/models lists


def test_no_server_fails_fast_with_one_line(make_settings, tmp_path: Path, capsys) -> None:
    settings = make_settings(llm={"base_url": "http://127.0.0.1:9/v1", "model": "m"})
    novel = write_novel(tmp_path / "novel.txt")
    started = time.monotonic()
    assert main(["--config", str(settings.source), "prepare", "qa", "--novel", str(novel), "--out",
                 str(tmp_path / "qa.jsonl"), "--no-progress"]) == 2
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: http://127.0.0.1:9/v1: no model server answers (ConnectError)"]


def test_english_card_gets_english_prompts(make_settings, llm: FakeOpenAI, tmp_path: Path) -> None:
    cards = tmp_path / "cards" / "wolf"
    cards.mkdir(parents=True)
    (cards / "card.toml").write_text('name = "Holo"\nlanguage = "en"\npersonality = "Proud and playful."\n',
                                     encoding="utf-8")
    settings = make_settings(llm={"base_url": llm.base_url, "model": "m"}, personas={"dirs": [str(tmp_path / "cards")]},
                             training={"retry_backoff": 0.0})
    novel = tmp_path / "novel.txt"
    novel.write_text("Chapter 1\nThe wolf slept in the wheat.\n\nChapter 2\nThe merchant found her at dawn.\n",
                     encoding="utf-8")
    llm.responder = qa_responder
    out = tmp_path / "qa.jsonl"
    assert main(["--config", str(settings.source), "prepare", "qa", "--novel", str(novel), "--persona", "wolf",
                 "--out", str(out), "--no-progress", "--questions", "2"]) == 0
    prompts = [prompt_of(b) for b in llm.requests]
    assert len(prompts) == 4 and prompts[0].startswith("Below is a passage from the novel \"novel\" (Chapter ")
    assert any(p.startswith("You play Holo. Proud and playful.") for p in prompts)
    assert load_lines(out)[0]["conversation"][0]["system"].startswith("You are Holo.")


def test_qa_shapes_circumstances_group_and_short(make_settings, llm: FakeOpenAI, tmp_path: Path) -> None:
    settings = _settings(make_settings, llm)
    novel = write_novel(tmp_path / "novel.txt", chapters=1, paragraphs=3)

    def answer(body):
        prompt = prompt_of(body)
        if '{"questions"' in prompt:
            assert '"scene": "……", "situation": "……"' in prompt and "此刻的处境和心情" in prompt
            return Script(text=json.dumps({"questions": ["石猴在哪里？", "他遇见了什么？"], "scene": "山中溪边，午后。",
                                           "situation": "石猴走累了，坐下歇脚。"}, ensure_ascii=False))
        return Script(text=json.dumps({"answers": ["俺老孙在山里。一路走来，好不快活！", "一条溪水。"]},
                                      ensure_ascii=False))

    llm.responder = answer
    out = tmp_path / "qa.jsonl"
    assert main(["--config", str(settings.source), "prepare", "qa", "--novel", str(novel), "--persona", "wukong",
                 "--out", str(out), "--no-progress", "--circumstances", "--group", "--short", "8",
                 "--format", "messages"]) == 0
    records = [turns_of(r) for r in load_lines(out)]
    system = records[0][0]["system"]
    assert system.endswith("【当前场景】\n山中溪边，午后。\n\n【孙悟空此刻】\n石猴走累了，坐下歇脚。")
    assert [len(r) for r in records] == [1, 1, 2, 1]
    group = records[2]
    assert [t["input"].split(": ")[1] for t in group] == ["石猴在哪里？", "他遇见了什么？"]
    assert {"multi-turn", "circumstances", "group"} <= kinds(group)
    assert records[3][0]["output"] == "俺老孙在山里。"  # the first answer's leading sentence; the second is short already
