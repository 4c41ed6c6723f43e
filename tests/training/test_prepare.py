"""`prepare dialogues|self-cognition|pretrain` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.openai_server import FakeOpenAI, Script
from tests.training.helpers import prompt_of
from training.cli import main
from training.dialogues import Line, scene_turns
from training.records import load_lines
from training.text import chunks

SCENES = """旁白：夜里起了风。
唐僧：「悟空，前面可有人家？」
孙悟空：「师父莫急，待俺老孙跳上云头看看。」
孙悟空：「东边有炊烟！」
猪八戒：「猴哥，人家里可有斋饭？」
沙僧：「二师兄又饿了。」
孙悟空：「呆子，少不了你的。」
猪八戒：「那就好。」

孙悟空：「开口先说一句，前面没人说话。」
唐僧：「悟空。」
---
唐僧：「这一场悟空不在。」
"""


def test_dialogues_from_scene_text(make_settings, tmp_path: Path) -> None:
    settings = make_settings()
    src = tmp_path / "scenes.txt"
    src.write_text(SCENES, encoding="utf-8")
    out = tmp_path / "dl.jsonl"
    assert main(["--config", str(settings.source), "prepare", "dialogues", "--input", str(src),
                 "--character", "孙悟空", "--persona", "wukong", "--out", str(out)]) == 0
    records = load_lines(out)
    assert len(records) == 1  # the second scene has no answered line, the third no line of his
    turns = records[0]["conversation"]
    assert "孙悟空" in turns[0]["system"] and all("system" not in t for t in turns[1:])
    assert [(t["input"], t["output"]) for t in turns] == [
        ("旁白：夜里起了风。\n唐僧：悟空，前面可有人家？", "师父莫急，待俺老孙跳上云头看看。\n东边有炊烟！"),
        ("猪八戒：猴哥，人家里可有斋饭？\n沙僧：二师兄又饿了。", "呆子，少不了你的。"),
    ]


def test_dialogues_from_jsonl_turns_and_max_turns(make_settings, tmp_path: Path) -> None:
    settings = make_settings()
    src = tmp_path / "turns.jsonl"
    lines = []
    for i in range(5):
        lines.append({"scene": "a", "speaker": "朋友", "text": f"第{i}个问题"})
        lines.append({"scene": "a", "speaker": "赫萝", "text": f"咱的第{i}个回答"})
    lines.append({"turns": [{"speaker": "罗伦斯", "text": "苹果？"}, {"name": "赫萝", "text": "「苹果！」"}]})
    src.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines), encoding="utf-8")
    out = tmp_path / "dl.jsonl"
    assert main(["--config", str(settings.source), "prepare", "dialogues", "--input", str(src),
                 "--character", "赫萝", "--persona", "horo", "--out", str(out), "--max-turns", "2"]) == 0
    records = load_lines(out)
    assert [len(r["conversation"]) for r in records] == [2, 2, 1, 1]
    assert records[-1]["conversation"][0]["output"] == "苹果！"
    assert all("赫萝" in r["conversation"][0]["system"] for r in records)


def test_dialogue_input_errors_name_the_line(make_settings, tmp_path: Path, capsys) -> None:
    settings = make_settings()
    src = tmp_path / "bad.jsonl"
    src.write_text('{"speaker": "a", "text": "x"}\n{"speaker": 3}\n', encoding="utf-8")
    assert main(["--config", str(settings.source), "prepare", "dialogues", "--input", str(src),
                 "--character", "a", "--out", str(tmp_path / "o.jsonl")]) == 2
    assert f"{src}:2:" in capsys.readouterr().err


def test_scene_turns_pairs_runs() -> None:
    lines = [Line("甲", "一"), Line("乙", "二"), Line("甲", "三"), Line("乙", "四"), Line("乙", "五")]
    assert scene_turns(lines, {"乙"}) == [("一", "二"), ("三", "四\n五")]


def test_self_cognition_templated(make_settings, tmp_path: Path) -> None:
    settings = make_settings()
    out = tmp_path / "sc.jsonl"
    assert main(["--config", str(settings.source), "prepare", "self-cognition", "--persona", "wukong",
                 "--out", str(out), "--n", "8"]) == 0
    records = load_lines(out)
    assert len(records) == 8
    questions = {r["conversation"][0]["input"] for r in records}
    assert questions & {"你是谁？", "你是AI吗？", "你叫什么名字？", "你是机器人吗？", "请介绍一下你自己。",
                        "我该怎么称呼你？", "能说说你是谁吗？", "你是做什么的？", "自我介绍一下吧。", "你从哪里来？",
                        "你是ChatGPT吗？", "你是哪个公司开发的模型？", "你是大语言模型吗？", "你是程序吗？", "你是真人吗？"}
    answers = [r["conversation"][0]["output"] for r in records]
    assert all("{{" not in a for a in answers) and any("孙悟空" in a or "俺" in a for a in answers)
    ai_answers = [r["conversation"][0]["output"] for r in records if "AI" in r["conversation"][0]["input"]]
    assert all("桃子" not in a for a in ai_answers)  # identity answers, not small talk


def test_self_cognition_paraphrased(make_settings, llm: FakeOpenAI, tmp_path: Path) -> None:
    settings = make_settings(llm={"base_url": llm.base_url, "model": "test-model"},
                             training={"retry_backoff": 0.0, "concurrency": 3})

    def answer(body):
        asked = prompt_of(body).split("有人问：“", 1)[1].split("”", 1)[0]
        return Script(text=json.dumps({"questions": [f"{asked}（换个说法{i}）" for i in range(2)],
                                       "answers": [f"俺老孙便是齐天大圣{i}" for i in range(2)]}, ensure_ascii=False))

    llm.responder = answer
    out = tmp_path / "sc.jsonl"
    assert main(["--config", str(settings.source), "prepare", "self-cognition", "--persona", "wukong",
                 "--out", str(out), "--n", "3", "--paraphrase", "2"]) == 0
    records = load_lines(out)
    asked = len(llm.requests)
    assert asked == 15 and len(records) == 3 + 2 * asked
    assert any(r["conversation"][0]["input"] == "你是谁？（换个说法1）" for r in records)
    assert llm.max_in_flight <= 3


def test_pretrain_chunks(make_settings, tmp_path: Path) -> None:
    settings = make_settings(training={"pretrain_chars": 100, "pretrain_overlap": 10})
    src = tmp_path / "novel.txt"
    src.write_text("\n".join(f"第{i}段，山中有一座古庙，庙里住着一个老和尚。" for i in range(30)), encoding="gb18030")
    out = tmp_path / "pt.jsonl"
    assert main(["--config", str(settings.source), "prepare", "pretrain", "--input", str(src), "--out", str(out)]) == 0
    records = load_lines(out)
    outputs = [r["conversation"][0]["output"] for r in records]
    assert all(r["conversation"] == [{"input": "", "output": o}] for r, o in zip(records, outputs, strict=True))
    assert all(len(o) == 100 for o in outputs[:-1]) and outputs[1][:10] == outputs[0][-10:]
    assert "第29段" in outputs[-1]


def test_chunks_default_size_and_overlap() -> None:
    text = "".join(chr(0x4E00 + i % 2000) for i in range(3000))
    parts = chunks(text, 1024, 50)
    assert [len(p) for p in parts] == [1024, 1024, 1024, 78]
    assert parts[1][:50] == parts[0][-50:]
    assert "".join([parts[0]] + [p[50:] for p in parts[1:]]) == text
