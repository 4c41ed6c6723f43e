"""`prepare dialogues|self-cognition|pretrain` through the real CLI, the sample shapes, the messages format."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.openai_server import FakeOpenAI, Script
from tests.training.helpers import prompt_of
from training.cli import main
from training.dialogues import Line, parse_scenes, scene_turns
from training.novel_scenes import novel_scenes, paragraph_lines
from training.records import load_lines, turns_of
from training.shapes import kinds, short_reply
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
        ("旁白: 夜里起了风。\n唐僧: 悟空，前面可有人家？", "师父莫急，待俺老孙跳上云头看看。\n东边有炊烟！"),
        ("猪八戒: 猴哥，人家里可有斋饭？\n沙僧: 二师兄又饿了。", "呆子，少不了你的。"),
    ]  # several speakers: `Name: text`, the way the bot shows a group conversation to the model


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


SHAPED = """【场景】黄昏，取经路上的一座破庙。
【处境】孙悟空刚打跑了一个妖精，正得意。
唐僧：「悟空，那妖精可走远了？」
孙悟空：「师父放心，被俺老孙一棒打得无影无踪。再来十个也不怕！」
猪八戒：「猴哥又吹牛了。」
沙僧：「二师兄少说两句。」
孙悟空：「呆子，你倒是说说，方才是谁躲在师父身后？」

唐僧：「悟空，天黑了。」
孙悟空：「俺老孙去寻些柴火来。」
"""


def test_dialogues_with_circumstances_group_and_short(make_settings, tmp_path: Path) -> None:
    settings = make_settings()
    src = tmp_path / "scenes.txt"
    src.write_text(SHAPED, encoding="utf-8")
    out = tmp_path / "dl.jsonl"
    assert main(["--config", str(settings.source), "prepare", "dialogues", "--input", str(src), "--character", "孙悟空",
                 "--persona", "wukong", "--out", str(out), "--circumstances", "--group", "--short", "20"]) == 0
    records = load_lines(out)
    first = records[0]["conversation"]
    system = first[0]["system"]
    assert system.endswith("【当前场景】\n黄昏，取经路上的一座破庙。\n\n【孙悟空此刻】\n孙悟空刚打跑了一个妖精，正得意。")
    # three others speak in the first scene: a group chat, every line with its speaker's name, on every turn
    assert [t["input"] for t in first] == ["唐僧: 悟空，那妖精可走远了？", "猪八戒: 猴哥又吹牛了。\n沙僧: 二师兄少说两句。"]
    assert {"multi-turn", "circumstances", "group"} <= kinds(first)
    # short replies: the leading whole sentences within 20 characters, as single-turn samples in the same scene
    shorts = [r["conversation"][0] for r in records[1:3]]
    assert [(t["input"], t["output"]) for t in shorts] == [
        ("唐僧: 悟空，那妖精可走远了？", "师父放心，被俺老孙一棒打得无影无踪。"),
        ("猪八戒: 猴哥又吹牛了。\n沙僧: 二师兄少说两句。", "呆子，你倒是说说，方才是谁躲在师父身后？"),
    ]
    assert all(t["system"] == system for t in shorts) and all("short" in kinds([t]) for t in shorts)
    last = records[-1]["conversation"]
    assert last[0]["input"] == "悟空，天黑了。"  # one other speaker: no names, like a direct message
    assert "【当前场景】" not in last[0]["system"]  # that scene states no setting
    assert len(records) == 4  # its short sample equals the record itself: written once


def test_short_reply_keeps_whole_sentences() -> None:
    assert short_reply("师父放心，被俺老孙一棒打得无影无踪。再来十个也不怕！", 20) == "师父放心，被俺老孙一棒打得无影无踪。"
    assert short_reply("短句。", 40) == "短句。"
    assert short_reply("这一句话实在是太长了没有标点根本停不下来", 10) is None
    assert short_reply("Fine. I will go now, and you stay here.", 12) == "Fine."


def test_scene_text_narration_sets_the_scene() -> None:
    scenes = parse_scenes("山路崎岖，一行人走得疲惫。\n唐僧：「悟空。」\n孙悟空：「师父。」\n")
    assert scenes[0].setting == "山路崎岖，一行人走得疲惫。" and len(scenes[0].lines) == 2


def test_dialogues_from_coser_style_jsonl(make_settings, tmp_path: Path) -> None:
    settings = make_settings()
    src = tmp_path / "coser.jsonl"
    scene = {"scenario": "花果山水帘洞前，群猴聚会。", "characters": [{"name": "孙悟空", "motivation": "想去学长生之道。"}],
             "dialogues": [{"character": "通背猿猴", "message": "大王何故忧虑？"},
                           {"character": "孙悟空", "message": "我虽快活，却怕老来不得长生。"}]}
    src.write_text(json.dumps(scene, ensure_ascii=False) + "\n", encoding="utf-8")
    out = tmp_path / "dl.jsonl"
    assert main(["--config", str(settings.source), "prepare", "dialogues", "--input", str(src), "--character", "孙悟空",
                 "--persona", "wukong", "--out", str(out), "--circumstances"]) == 0
    turn = load_lines(out)[0]["conversation"][0]
    assert "【当前场景】\n花果山水帘洞前，群猴聚会。" in turn["system"] and "【孙悟空此刻】\n想去学长生之道。" in turn["system"]
    assert (turn["input"], turn["output"]) == ("大王何故忧虑？", "我虽快活，却怕老来不得长生。")


NOVEL = """第一回 测试之章
山高林密，师徒四人行到一处山坳，天色将晚。
三藏勒马道：“悟空，前面可有人家？”
行者闻言，跳上云头，手搭凉篷观看，道：“师父，东边有炊烟，想是个庄院。”八戒笑道：“好了，有斋饭吃了。”
行者骂道：“呆子，只晓得吃！”
众人说说笑笑，来到庄前。这一段话里没有人说话，只是写景。
那老者出门问道：“长老从何处来？”
三藏道：“贫僧从东土大唐而来。”
"""


def test_novel_scenes_find_speakers_setting_and_situation() -> None:
    scenes = novel_scenes(NOVEL, ["孙悟空", "悟空", "行者"], speaker="孙悟空")
    assert len(scenes) == 1  # the second scene has no line of his
    scene = scenes[0]
    assert [(line.speaker, line.text[:6]) for line in scene.lines] == [
        ("三藏", "悟空，前面可"), ("孙悟空", "师父，东边有"), ("八戒", "好了，有斋饭"), ("孙悟空", "呆子，只晓得"),
    ]
    assert scene.setting == "第一回 测试之章。山高林密，师徒四人行到一处山坳，天色将晚。"
    assert scene.situations == {"孙悟空": "行者闻言，跳上云头，手搭凉篷观看"}
    lines, _ = paragraph_lines("他在纸上写了“如意”两个字。", ["行者"])
    assert lines == []  # a quoted word in narration is not a line of dialogue


def test_dialogues_from_the_novel_itself(make_settings, tmp_path: Path) -> None:
    settings = make_settings()
    novel = tmp_path / "novel.txt"
    novel.write_text(NOVEL, encoding="utf-8")
    out = tmp_path / "dl.jsonl"
    # the card's aliases (悟空, 行者, ...) count as his names in the prose
    assert main(["--config", str(settings.source), "prepare", "dialogues", "--novel", str(novel), "--character", "孙悟空",
                 "--persona", "wukong", "--out", str(out), "--circumstances", "--group"]) == 0
    turns = load_lines(out)[0]["conversation"]
    assert [t["input"] for t in turns] == ["三藏: 悟空，前面可有人家？", "八戒: 好了，有斋饭吃了。"]
    assert "【孙悟空此刻】\n行者闻言，跳上云头，手搭凉篷观看" in turns[0]["system"]


def test_messages_format_for_every_kind(make_settings, tmp_path: Path, capsys) -> None:
    settings = make_settings(training={"pretrain_chars": 100, "pretrain_overlap": 10})
    src = tmp_path / "scenes.txt"
    src.write_text(SCENES, encoding="utf-8")
    novel = tmp_path / "novel.txt"
    novel.write_text("山中有一座古庙。" * 40, encoding="utf-8")
    cfg = ["--config", str(settings.source), "prepare"]
    dl, sc, pt = tmp_path / "dl.jsonl", tmp_path / "sc.jsonl", tmp_path / "pt.jsonl"
    assert main([*cfg, "dialogues", "--input", str(src), "--character", "孙悟空", "--persona", "wukong", "--out",
                 str(dl), "--format", "messages"]) == 0
    assert main([*cfg, "self-cognition", "--persona", "wukong", "--out", str(sc), "--n", "3", "--format", "messages"]) == 0
    assert main([*cfg, "pretrain", "--input", str(novel), "--out", str(pt), "--format", "messages"]) == 0
    messages = load_lines(dl)[0]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    assert messages[2]["content"] == "师父莫急，待俺老孙跳上云头看看。\n东边有炊烟！"
    assert turns_of(load_lines(dl)[0])[1] == {"input": "猪八戒: 猴哥，人家里可有斋饭？\n沙僧: 二师兄又饿了。",
                                              "output": "呆子，少不了你的。"}
    assert [m["role"] for m in load_lines(sc)[0]["messages"]] == ["system", "user", "assistant"]
    assert load_lines(pt)[0] == {"messages": [{"role": "assistant", "content": "山中有一座古庙。" * 12 + "山中有一"}]}
    # validate reads both formats; xtuner's config refuses the messages one
    assert main(["--config", str(settings.source), "validate", str(dl), str(sc), str(pt)]) == 0
    assert "formats: messages 8" in capsys.readouterr().out
    assert main(["--config", str(settings.source), "config", "--out", str(tmp_path / "c.py"), "--data", str(dl)]) == 2
    assert "xtuner reads its conversation format" in capsys.readouterr().err
