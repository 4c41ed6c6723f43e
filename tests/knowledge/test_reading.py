"""Reading sources: encodings, chapters, chunks that never cross chapters, .jsonl and .epub."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from core.text import decode_text as decode
from memory.knowledge.chapters import chinese_number, split_chapters
from memory.knowledge.chunking import chunk_sections, units
from memory.knowledge.reading import SourceError, read_source


@pytest.mark.parametrize(
    ("text", "value"),
    [("一", 1), ("十", 10), ("十三", 13), ("二十", 20), ("九十九", 99), ("一百", 100), ("一百零五", 105),
     ("一百二十", 120), ("二〇五", 205), ("４２", 42), ("17", 17), ("甲", None)],
)
def test_chinese_numbers(text: str, value: int | None) -> None:
    assert chinese_number(text) == value


def test_chapters_are_found_and_numbered() -> None:
    text = "序\n楔子 开端\n很久以前。\n第一回 山\n石头。\n第二回 海\n龙王。\n尾声\n完。"
    sections = split_chapters(text)
    assert [(s.chapter, s.title) for s in sections] == [(0, ""), (0, "楔子 开端"), (1, "第一回 山"), (2, "第二回 海"), (3, "尾声")]
    assert sections[2].text.strip() == "石头。"
    assert text[sections[3].start :].startswith("龙王。")


def test_restarting_volume_numbers_fall_back_to_order() -> None:
    text = "第一章 甲\na\n第二章 乙\nb\n第一章 丙\nc"
    assert [s.chapter for s in split_chapters(text)] == [1, 2, 3]


def test_english_and_custom_patterns() -> None:
    assert [s.chapter for s in split_chapters("Chapter 1\nx\nChapter 2\ny")] == [1, 2]
    custom = split_chapters("== A ==\nx\n== B ==\ny", r"^== \w ==$")
    assert [(s.chapter, s.title) for s in custom] == [(1, "== A =="), (2, "== B ==")]


def test_a_long_line_starting_like_a_heading_is_prose() -> None:
    text = "第一回 山\n" + "第二回" + "说" * 100 + "\n"
    assert len(split_chapters(text)) == 1


def test_units_keep_quotations_whole() -> None:
    text = "行者道：“师父莫怕。俺去看看！”八戒笑了。"
    parts = [text[a:b] for a, b in units(text, 100)]
    assert parts == ["行者道：“师父莫怕。俺去看看！”", "八戒笑了。"]


def test_chunks_stay_inside_chapters_and_keep_metadata(novel: Callable[..., Path]) -> None:
    source = read_source(novel(1, 3))
    assert [s.chapter for s in source.sections] == [1, 2, 3]
    raw = novel(1, 3).read_text(encoding="utf-8")
    chunks = chunk_sections(source.sections, source.key, 300, 40)
    assert len({c.id for c in chunks}) == len(chunks)
    for section in source.sections:
        mine = [c for c in chunks if c.chapter == section.chapter]
        assert mine and all(c.title == section.title for c in mine)
        for c in mine:
            assert len(c.text) <= 300
            assert section.start <= c.start < c.end <= section.start + len(section.text)
            assert raw[c.start : c.end].strip() == c.text  # offsets point into the file's text
            assert "第" + "二回" not in c.text[:4] or section.chapter == 2
    # overlap: a chunk starts before its predecessor ends
    ch1 = [c for c in chunks if c.chapter == 1]
    assert any(b.start < a.end for a, b in itertools.pairwise(ch1))


def test_gb18030_and_utf8_read_the_same(novel: Callable[..., Path]) -> None:
    utf8 = read_source(novel(2, 2, "a.txt"))
    gb = read_source(novel(2, 2, "b.txt", encoding="gb18030"))
    assert [s.text for s in gb.sections] == [s.text for s in utf8.sections]
    assert decode("孙悟空".encode("gbk")) == "孙悟空"
    assert decode("\ufeff孙悟空".encode()) == "孙悟空"
    assert decode("孙悟空".encode("utf-16")) == "孙悟空"


def test_jsonl_records_are_passages(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    rows = [{"id": "p1", "text": "花果山上有一块仙石。", "title": "t"}, {"id": "p2", "text": "水帘洞。", "chapter": 3, "extra": 1}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    source = read_source(path)
    chunks = chunk_sections(source.sections, source.key, 600, 80)
    assert [(c.doc, c.chapter, c.text) for c in chunks] == [("p1", 0, "花果山上有一块仙石。"), ("p2", 3, "水帘洞。")]
    path.write_text('{"id": "x"}\n', encoding="utf-8")
    with pytest.raises(SourceError, match=r"c\.jsonl:1"):
        read_source(path)


def test_epub_chapters(tmp_path: Path) -> None:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("t1")
    book.set_title("测试")
    book.set_language("zh")
    pages = []
    for n, (title, body) in enumerate([("第一回 石猴", "石猴出世。"), ("第二回 拜师", "悟空拜师学艺。")], 1):
        page = epub.EpubHtml(title=title, file_name=f"c{n}.xhtml", lang="zh")
        page.content = f"<html><body><h1>{title}</h1><p>{body}</p><script>x()</script></body></html>"
        book.add_item(page)
        pages.append(page)
    book.toc = pages
    book.spine = pages
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    path = tmp_path / "book.epub"
    epub.write_epub(str(path), book)
    sections = read_source(path).sections
    assert [(s.chapter, s.title, s.text.strip()) for s in sections] == [(1, "第一回 石猴", "石猴出世。"), (2, "第二回 拜师", "悟空拜师学艺。")]


def test_unknown_suffix(tmp_path: Path) -> None:
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    with pytest.raises(SourceError, match="unsupported"):
        read_source(tmp_path / "x.pdf")
