"""`validate`: schema errors name file:line and exit 1; empty/duplicate turns warn; length statistics."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Regex, Tokenizer, models, pre_tokenizers

from training.cli import main
from training.validate import schema_problem

GOOD = {"conversation": [{"system": "你是赫萝。", "input": "你好", "output": "汝好。"}, {"input": "苹果？", "output": "咱要！"}]}


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n",
                    encoding="utf-8")
    return path


def test_clean_file_reports_stats(make_settings, tmp_path: Path, capsys) -> None:
    settings = make_settings()
    f = _write(tmp_path / "a.jsonl", [GOOD, {"conversation": [{"input": "", "output": "一段原文。"}]}])
    assert main(["--config", str(settings.source), "validate", str(f)]) == 0
    out = capsys.readouterr().out
    assert "records 2  turns 3  errors 0  warnings 0" in out
    assert "chars per record: min 5" in out


def test_schema_errors_name_file_and_line(make_settings, tmp_path: Path, capsys) -> None:
    settings = make_settings()
    f = _write(tmp_path / "bad.jsonl", [
        GOOD,
        "{not json",
        {"conversation": []},
        {"conversation": [{"input": "a", "output": "b"}, {"system": "late", "input": "c", "output": "d"}]},
        {"conversation": [{"input": "a"}]},
        {"conversation": [{"input": "a", "output": 3}]},
        {"conversation": [{"input": "a", "output": "b", "extra": 1}]},
        {"messages": []},
        [1, 2],
    ])
    other = _write(tmp_path / "ok.jsonl", [GOOD])
    assert main(["--config", str(settings.source), "validate", str(other), str(f)]) == 1
    out = capsys.readouterr().out
    for line in range(2, 10):
        assert f"error: {f}:{line}: " in out
    assert f"error: {f}:1:" not in out and f"error: {other}" not in out
    assert f"warning: {f}:1: duplicate of {other}:1" in out
    assert "'system' belongs on the first turn only" in out and "missing 'output'" in out
    assert "errors 8" in out


def test_empty_and_duplicate_turns_warn(make_settings, tmp_path: Path, capsys) -> None:
    settings = make_settings()
    f = _write(tmp_path / "w.jsonl", [
        GOOD,
        GOOD,
        {"conversation": [{"input": "你好", "output": " "}]},
        {"conversation": [{"input": "x", "output": "y"}, {"input": "x", "output": "y"}]},
        {"conversation": [{"input": "", "output": "y"}, {"input": "", "output": "z"}]},
    ])
    assert main(["--config", str(settings.source), "validate", str(f)]) == 0
    out = capsys.readouterr().out
    assert f"warning: {f}:2: duplicate of {f}:1" in out
    assert f"warning: {f}:3: turn 0: empty output" in out
    assert f"warning: {f}:4: turn 1: repeats an earlier turn" in out
    assert f"warning: {f}:5: turn 0: empty input" in out


def test_missing_file_and_json_array(make_settings, tmp_path: Path, capsys) -> None:
    settings = make_settings()
    arr = tmp_path / "data.json"
    arr.write_text(json.dumps([GOOD, {"conversation": "no"}], ensure_ascii=False), encoding="utf-8")
    assert main(["--config", str(settings.source), "validate", str(arr), str(tmp_path / "nope.jsonl")]) == 1
    out = capsys.readouterr().out
    assert f"{arr}:#1: 'conversation' must be a non-empty list" in out and "nope.jsonl: file not found" in out


def test_token_counts_with_a_tokenizer(make_settings, tmp_path: Path, capsys) -> None:
    settings = make_settings(training={"max_length": 128})
    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), "isolated")  # one token per character
    folder = tmp_path / "tok"
    folder.mkdir()
    tok.save(str(folder / "tokenizer.json"))
    f = _write(tmp_path / "t.jsonl", [GOOD, {"conversation": [{"input": "长", "output": "很" * 200}]}])
    assert main(["--config", str(settings.source), "validate", str(f), "--tokenizer", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "tokens per record: min 16" in out and "max 201" in out
    assert f"{f}:2: 201 tokens, over max_length 128" in out and "records over max_length: 1" in out
    assert main(["--config", str(settings.source), "validate", str(f), "--tokenizer", str(tmp_path / "x")]) == 2


def test_schema_problem_accepts_the_documented_shape() -> None:
    assert schema_problem(GOOD) is None
    assert schema_problem({"conversation": [{"input": "", "output": "chunk"}]}) is None
    assert schema_problem({"conversation": [{"system": "s", "input": "i", "output": "o"}]}) is None


def test_writer_cuts_a_torn_last_line(tmp_path: Path) -> None:
    from training.records import JsonlWriter, conversation

    out = tmp_path / "qa.jsonl"
    good = json.dumps(conversation("s", [("q1", "a1")]), ensure_ascii=False)
    out.write_text(good + "\n" + good[:20], encoding="utf-8")  # killed mid-write
    with JsonlWriter(out, append=True) as writer:
        writer.write(conversation("s", [("q2", "a2")]))
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and all(json.loads(line)["conversation"] for line in lines)


def test_messages_format_is_checked_too(make_settings, tmp_path: Path, capsys) -> None:
    settings = make_settings()
    ok = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "你好"},
                       {"role": "assistant", "content": "汝好。"}]}
    f = _write(tmp_path / "m.jsonl", [
        ok,
        {"messages": [{"role": "user", "content": "a"}]},
        {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                      {"role": "assistant", "content": "c"}]},
        {"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "late"},
                      {"role": "assistant", "content": "c"}]},
        {"messages": [{"role": "tool", "content": "a"}]},
        {"messages": [{"role": "assistant", "content": 1}]},
        {"messages": [{"role": "assistant", "content": "x"}], "id": 1},
    ])
    assert main(["--config", str(settings.source), "validate", str(f)]) == 1
    errors = [line for line in capsys.readouterr().out.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {f}:2: the last message must be the assistant's",
        f"error: {f}:3: message 1: two 'user' messages in a row",
        f"error: {f}:4: message 1: 'system' belongs first only",
        f"error: {f}:5: message 0: role must be system, user or assistant",
        f"error: {f}:6: message 0: 'content' must be a string",
        f"error: {f}:7: unknown key(s) ['id']",
    ]


def test_the_share_of_each_kind(make_settings, tmp_path: Path, capsys) -> None:
    settings = make_settings()
    group = {"conversation": [{"system": "s\n\n【当前场景】\n破庙。", "input": "唐僧: 悟空？\n八戒: 猴哥！", "output": "在呢。"}]}
    long = {"conversation": [{"input": "讲个故事", "output": "很久很久以前，" * 10}]}
    pretrain = {"conversation": [{"input": "", "output": "原文。"}]}
    f = _write(tmp_path / "k.jsonl", [GOOD, group, long, pretrain])
    assert main(["--config", str(settings.source), "validate", str(f)]) == 0
    kinds = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("kinds:"))
    assert kinds.startswith("kinds: single-turn 2 (50 %)  multi-turn 1 (25 %)  circumstances 1 (25 %)  group 1 (25 %)  "
                            "short 2 (50 %)  pretraining 1 (25 %)")
