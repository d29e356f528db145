"""Finding and reading corpus files, and the failures a user sees for bad ones."""

from __future__ import annotations

import codecs
import json
import os
import zipfile
from pathlib import Path

import pytest

from indexer.text.loaders import (
    LoadError,
    LoadFailure,
    SourceDocument,
    discover_files,
    load_corpus,
    load_file,
)
from indexer.text.pages import page_bounds, page_starts
from tests.office_files import save_deck, save_workbook

MARKDOWN = """\
---
title: "Tokenizer guide"
tags: [Alpha, beta ]
author: Hanako
---
# Tokenization

Intro line one
wrapped line two.

## Special tokens

- item **one**
* item two
> quoted text
1. numbered

| a | b |
|---|---|
| 1 | 2 |

```python
print("code")
```

### Deep ###
Deep text
"""


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_bytes(content.encode("utf-8"))
    return path


def visible(doc: SourceDocument) -> list[tuple[tuple[str, ...], str]]:
    return [(s.path, doc.text[s.start : s.end]) for s in doc.sections]


def failure_reasons(failures: list[LoadFailure]) -> dict[str, str]:
    return {f.path: f.reason for f in failures}


def test_markdown_sections_slice_the_visible_text(tmp_path: Path) -> None:
    path = write(tmp_path / "guide.md", MARKDOWN)
    [doc] = load_file(path, tmp_path)
    assert doc.text == MARKDOWN
    assert doc.key == doc.source == "guide.md"
    assert doc.title == "Tokenizer guide"
    assert visible(doc) == [
        (("Tokenization",), "Tokenization"),
        (("Tokenization",), "Intro line one\nwrapped line two."),
        (("Tokenization", "Special tokens"), "Special tokens"),
        (("Tokenization", "Special tokens"), "item **one**"),
        (("Tokenization", "Special tokens"), "item two"),
        (("Tokenization", "Special tokens"), "quoted text"),
        (("Tokenization", "Special tokens"), "numbered"),
        (("Tokenization", "Special tokens"), "a | b"),
        (("Tokenization", "Special tokens"), "1 | 2"),
        (("Tokenization", "Special tokens"), 'print("code")'),
        (("Tokenization", "Special tokens", "Deep"), "Deep"),
        (("Tokenization", "Special tokens", "Deep"), "Deep text"),
    ]
    assert doc.metadata["tags"] == ["alpha", "beta"]
    assert doc.metadata["author"] == "Hanako"
    assert doc.metadata["format"] == "markdown"
    assert doc.metadata["language"] == "en"


@pytest.mark.parametrize(
    ("content", "title"),
    [
        ("# 東京ガイド\n\n本文です。\n", "東京ガイド"),
        ("Intro paragraph\n\n# Later heading\n", "Later heading"),
        ("  first line  \nsecond\n", "first line"),
        ("---\ntags: a, b\n---\n\n- list first\n", "list first"),
    ],
)
def test_markdown_title(tmp_path: Path, content: str, title: str) -> None:
    [doc] = load_file(write(tmp_path / "doc.md", content), tmp_path)
    assert doc.title == title


def test_markdown_heading_levels_truncate_the_path(tmp_path: Path) -> None:
    content = "# A\n## B\n### C\ntext c\n## D\ntext d\n# E\ntext e\n"
    [doc] = load_file(write(tmp_path / "doc.md", content), tmp_path)
    paths = {doc.text[s.start : s.end]: s.path for s in doc.sections}
    assert paths["text c"] == ("A", "B", "C")
    assert paths["text d"] == ("A", "D")
    assert paths["text e"] == ("E",)


def test_markdown_setext_headings_and_plain_titles(tmp_path: Path) -> None:
    """Underlined headings (CommonMark's setext) start sections; paths and titles drop inline markup."""
    content = ("Guide to `yomitoki`\n===================\n\nIntro.\n\nThe **k** parameter\n---\nText k.\n\n"
               "---\n\nAfter a break.\n\n## See [the docs](https://example.com/docs)\nText d.\n")
    [doc] = load_file(write(tmp_path / "doc.md", content), tmp_path)
    assert doc.title == "Guide to yomitoki"
    assert visible(doc) == [
        (("Guide to yomitoki",), "Guide to `yomitoki`"),
        (("Guide to yomitoki",), "Intro."),
        (("Guide to yomitoki", "The k parameter"), "The **k** parameter"),
        (("Guide to yomitoki", "The k parameter"), "Text k."),
        (("Guide to yomitoki", "The k parameter"), "After a break."),  # `---` after a blank line: a break
        (("Guide to yomitoki", "See the docs"), "See [the docs](https://example.com/docs)"),
        (("Guide to yomitoki", "See the docs"), "Text d."),
    ]


def test_markdown_front_matter_yaml_list_and_crlf(tmp_path: Path) -> None:
    content = "---\r\ntags:\r\n  - One\r\n  - two\r\n---\r\n# Title\r\n\r\nBody text.\r\n"
    [doc] = load_file(write(tmp_path / "doc.md", content), tmp_path)
    assert doc.metadata["tags"] == ["one", "two"]
    assert visible(doc) == [(("Title",), "Title"), (("Title",), "Body text.")]


def test_markdown_front_matter_keeps_yamls_numbers_booleans_dates_and_nesting(tmp_path: Path) -> None:
    from indexer.store.sqlite import Filters
    from indexer.store.where import parse

    content = ("---\nyear: 2021\nscore: 3.5\ndraft: false\ndate: 2024-05-01\nowner:\n  name: alice\n"
               "title: \"Report: 2021\"\nnothing:\n---\n# Heading\n\nBody text.\n")
    [doc] = load_file(write(tmp_path / "doc.md", content), tmp_path)
    meta = doc.metadata
    assert (meta["year"], meta["score"], meta["draft"], meta["date"]) == (2021, 3.5, False, "2024-05-01")
    assert meta["owner"] == {"name": "alice"} and "name" not in meta and "nothing" not in meta
    assert doc.title == "Report: 2021"
    admits = [Filters(expression=parse(where)).admits("id", doc.source, str(meta["language"]), meta)
              for where in ({"field": "metadata.year", "gte": 2020}, {"field": "metadata.draft", "eq": False},
                            {"field": "metadata.owner.name", "eq": "alice"},
                            {"field": "metadata.date", "gte": "2024-01-01"})]
    assert admits == [True, True, True, True]
    lenient = "---\ntitle: Notes: draft\nyear: 2021\n---\nBody.\n"  # not YAML: read line by line, as text
    [doc] = load_file(write(tmp_path / "lenient.md", lenient), tmp_path)
    assert doc.title == "Notes: draft" and doc.metadata["year"] == "2021"


def test_front_matter_dates_and_times_stay_as_written(tmp_path: Path) -> None:
    """`2024-05-01T09:00:00Z` is not rewritten as `+00:00`: a filter with the value as written finds it."""
    from indexer.store.sqlite import Filters
    from indexer.store.where import parse

    content = "---\ndate: 2024-05-01 09:00:00\nupdated: 2024-05-01T09:00:00Z\nday: 2024-05-01\n---\nBody.\n"
    [doc] = load_file(write(tmp_path / "doc.md", content), tmp_path)
    meta = doc.metadata
    assert (meta["date"], meta["updated"], meta["day"]) == ("2024-05-01 09:00:00", "2024-05-01T09:00:00Z", "2024-05-01")
    admits = [Filters(expression=parse(where)).admits("id", doc.source, "en", meta)
              for where in ({"field": "metadata.updated", "gte": "2024-05-01T09:00:00Z"},
                            {"field": "metadata.date", "eq": "2024-05-01 09:00:00"})]
    assert admits == [True, True]


def test_front_matter_with_a_date_that_is_none_keeps_it_as_text_and_the_rest_as_yaml(tmp_path: Path) -> None:
    """A YAML date reader would fail on 2024-13-45: one typo must not stop a whole folder from indexing, nor
    turn the file's other values into text."""
    write(tmp_path / "corpus" / "a.md", "---\ndate: 2024-13-45\ntags:\nyear: 2020\ndraft: false\n---\nBad date.\n")
    write(tmp_path / "corpus" / "b.md", "Good body.\n")
    docs, failures = load_corpus(tmp_path / "corpus")
    assert failures == [] and [d.source for d in docs] == ["a.md", "b.md"]
    metadata = docs[0].metadata
    assert (metadata["date"], metadata["tags"], metadata["year"], metadata["draft"]) == ("2024-13-45", [], 2020, False)


def test_empty_or_null_tags_are_no_tags(tmp_path: Path) -> None:
    write(tmp_path / "corpus" / "a.md", "---\ntags:\nyear: 2024\n---\nBody.\n")  # valid YAML: tags is null
    write(tmp_path / "corpus" / "t.jsonl", '{"id": "n1", "text": "t", "tags": null}\n'
                                            '{"id": "n2", "text": "t", "tags": ["ok", null]}\n')
    docs, _ = load_corpus(tmp_path / "corpus")
    assert [d.metadata["tags"] for d in docs] == [[], [], ["ok"]]


def test_tags_are_kept_in_one_width_and_case(tmp_path: Path) -> None:
    write(tmp_path / "corpus" / "a.md", "---\ntags: [ＦＡＱ, Ｈｒ, 社内]\n---\nBody.\n")
    docs, _ = load_corpus(tmp_path / "corpus")
    assert docs[0].metadata["tags"] == ["faq", "hr", "社内"]


def test_a_file_whose_name_is_not_utf8_is_reported_and_the_rest_indexed(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / os.fsdecode(b"\x93\xfa\x96\x7b.md")).write_text("quokka\n", encoding="utf-8")
    write(tmp_path / "corpus" / "good.md", "fine\n")
    docs, failures = load_corpus(tmp_path / "corpus")
    assert [d.source for d in docs] == ["good.md"]
    assert [(f.path, "not UTF-8" in f.reason) for f in failures] == [("\\x93\\xfa\\x96{.md", True)]


def test_japanese_markdown_offsets_point_into_the_raw_file(tmp_path: Path) -> None:
    content = "\ufeff# ｶﾞｲﾄﾞ\n\n「これはペンです。」と彼は言った。\n"
    [doc] = load_file(write(tmp_path / "ja.md", content), tmp_path)
    assert doc.text == content[1:]  # the BOM is not part of the text
    assert visible(doc) == [
        (("ｶﾞｲﾄﾞ",), "ｶﾞｲﾄﾞ"),
        (("ｶﾞｲﾄﾞ",), "「これはペンです。」と彼は言った。"),
    ]
    assert doc.metadata["language"] == "ja"


def test_plain_text_paragraphs(tmp_path: Path) -> None:
    content = "\n  Title line  \nmore\n\n\n Second para. \n   \nThird\n"
    [doc] = load_file(write(tmp_path / "notes.txt", content), tmp_path)
    assert doc.title == "Title line"
    assert [doc.text[s.start : s.end] for s in doc.sections] == [
        "Title line  \nmore",
        "Second para.",
        "Third",
    ]
    assert all(s.path == () for s in doc.sections)
    assert doc.metadata == {"format": "text", "language": "en"}


HTML = """<!DOCTYPE html>
<html><head><title>Page &amp; title</title>
<style>p { color: red }</style><script>var secret = "hidden";</script></head>
<body><noscript>enable js</noscript><template><p>template text</p></template>
<!-- a comment -->
<h1>Main</h1><p>Hello
   <b>world</b>.</p>
<ul><li>one</li><li>two</li></ul>
<h2>Sub</h2><p>これは
ペンです。</p>
<table><tr><th>k</th><td>v</td></tr></table>
<p>line<br>break</p>
<script>document.write("no")</script>
</body></html>"""


def test_html_visible_text_without_script_and_style(tmp_path: Path) -> None:
    [doc] = load_file(write(tmp_path / "page.html", HTML), tmp_path)
    assert doc.title == "Page & title"
    assert doc.text == (
        "Main\n\nHello world.\n\none\ntwo\n\nSub\n\nこれはペンです。\n\nk | v\n\nline\nbreak"
    )
    for hidden in ("secret", "color", "enable js", "template text", "comment", "document"):
        assert hidden not in doc.text
    assert visible(doc) == [
        (("Main",), "Main"),
        (("Main",), "Hello world."),
        (("Main",), "one"),
        (("Main",), "two"),
        (("Main", "Sub"), "Sub"),
        (("Main", "Sub"), "これはペンです。"),
        (("Main", "Sub"), "k | v"),
        (("Main", "Sub"), "line"),
        (("Main", "Sub"), "break"),
    ]
    assert doc.metadata["format"] == "html"


@pytest.mark.parametrize(
    ("html", "title"),
    [("<h1>Heading</h1><p>x</p>", "Heading"), ("<p>just text</p>", "stem")],
)
def test_html_title_fallbacks(tmp_path: Path, html: str, title: str) -> None:
    [doc] = load_file(write(tmp_path / "stem.htm", html), tmp_path)
    assert doc.title == title


def test_jsonl_documents_and_line_failures(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "a", "text": "First para.\n\nSecond para.", "lang": "x", "tags": "A, b"}),
        "not json",
        json.dumps({"id": "a", "text": "duplicate"}),
        json.dumps({"id": "c"}),
        "",
        json.dumps({"id": "d", "text": "   "}),
        json.dumps([1, 2]),
        json.dumps({"id": 5, "text": "number id"}),
        json.dumps({"id": "e", "text": "ok", "metadata": "nope"}),
        json.dumps({"id": "f", "text": "東京の本。", "title": "Tokyo", "metadata": {"year": 2024}}),
    ]
    write(tmp_path / "data" / "docs.jsonl", "\n".join(lines) + "\n")
    docs, failures = load_corpus(tmp_path)
    assert [d.key for d in docs] == ["a", "f"]  # a record's key is its own id
    first, last = docs
    assert first.source == "data/docs.jsonl"
    assert first.title == "First para."
    assert first.text == "First para.\n\nSecond para."
    assert [first.text[s.start : s.end] for s in first.sections] == ["First para.", "Second para."]
    assert first.metadata == {"lang": "x", "tags": ["a", "b"], "format": "jsonl", "language": "en"}
    assert last.title == "Tokyo"
    assert last.metadata == {"year": 2024, "format": "jsonl", "language": "ja"}
    assert failure_reasons(failures) == {
        "data/docs.jsonl:line 2": "invalid JSON (Expecting value: column 1)",
        "data/docs.jsonl:line 3": "duplicate id (first used on line 1)",
        "data/docs.jsonl:line 4": "missing 'text'",
        "data/docs.jsonl:line 6": "empty 'text'",
        "data/docs.jsonl:line 7": "expected a JSON object, got list",
        "data/docs.jsonl:line 8": "'id' must be a string, got int",
        "data/docs.jsonl:line 9": "'metadata' must be an object, got str",
    }


def test_json_files_hold_an_array_of_records_or_one(tmp_path: Path) -> None:
    records = [{"id": "a", "text": "Tokyo is large.", "year": 2024}, "not a record", {"id": "b"},
               {"id": "a", "text": "again"}, {"id": "c", "title": "京都", "text": "京都の寺。", "tags": "寺, 古都"}]
    write(tmp_path / "many.json", json.dumps(records, ensure_ascii=False, indent=2))
    write(tmp_path / "one.json", json.dumps({"title": "Note", "text": "A single record.", "owner": "hanako"}))
    docs, failures = load_corpus(tmp_path)
    assert [(d.key, d.title) for d in docs] == [("a", "Tokyo is large."), ("c", "京都"), ("one.json", "Note")]
    assert docs[0].metadata == {"year": 2024, "format": "json", "language": "en"}
    assert docs[1].metadata["tags"] == ["寺", "古都"]
    assert docs[2].metadata == {"owner": "hanako", "format": "json", "language": "en"}
    assert failure_reasons(failures) == {"many.json:item 2": "expected a JSON object, got str",
                                         "many.json:item 3": "missing 'text'",
                                         "many.json:item 4": "duplicate id (first used on item 1)"}


@pytest.mark.parametrize(("content", "reason"), [
    ('[{"id": "a", "text": "x"},\n  {"id": }]', "invalid JSON (Expecting value: line 2, column 10)"),
    ("42", "expected a JSON array of records or one record, got int"),
    ('{"title": "no text"}', "missing 'text'"),
    ("[]", "empty document"),
])
def test_json_files_that_hold_no_record_are_refused(tmp_path: Path, content: str, reason: str) -> None:
    with pytest.raises(LoadError) as info:
        load_file(write(tmp_path / "bad.json", content), tmp_path)
    assert info.value.reason == reason


def test_page_offsets_in_a_record_or_front_matter_are_left_out(tmp_path: Path) -> None:
    """Only a paged file's loader says where its pages start; a value given for it is not kept."""
    record = {"id": "r", "text": "Okapimango.", "page_starts": [0, 4], "metadata": {"page_count": 2, "year": 1}}
    write(tmp_path / "docs.jsonl", json.dumps(record) + "\n")
    write(tmp_path / "note.md", "---\npage_starts: [0, 3]\npage_count: 7\nauthor: Sato\n---\n# Note\n\nText.\n")
    docs, failures = load_corpus(tmp_path)
    assert failures == [] and [sorted(doc.metadata) for doc in docs] == [
        ["format", "language", "year"], ["author", "format", "language"]]


def test_load_file_skips_bad_jsonl_lines_and_fails_when_none_load(tmp_path: Path) -> None:
    good = write(tmp_path / "good.jsonl", '{"id": "1", "text": "ok"}\n{"id": "2"}\n')
    assert [d.key for d in load_file(good, tmp_path)] == ["1"]
    bad = write(tmp_path / "bad.jsonl", '{"id": "2"}\n')
    with pytest.raises(LoadError, match="missing 'text'") as info:
        load_file(bad, tmp_path)
    assert info.value.path == "bad.jsonl"


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        # Cyrillic in Windows-1251 would read as Windows-1252, but as accented letters only: refused, not garbled
        ("russian.md", "Привет, как дела? Это русский текст.".encode("cp1251"),
         "not valid UTF-8 (byte 0xcf at offset 0), Shift_JIS, EUC-JP or Windows-1252"),
        # UTF-8 with one damaged byte: not read as Windows-1252 mojibake (Ã©) nor as Shift_JIS
        ("damaged.txt", "Déjà vu, l’été à Paris, très célèbre.".encode() + b"\xff",
         "not valid UTF-8 (byte 0xff at offset 47), Shift_JIS, EUC-JP or Windows-1252"),
        ("control.txt", "caf\xe9\x01\x02".encode("cp1252"),
         "not valid UTF-8 (byte 0xe9 at offset 3), Shift_JIS, EUC-JP or Windows-1252"),
        ("utf16.txt", codecs.BOM_UTF16_LE + "ok \udc00".encode("utf-16-le", "surrogatepass"),
         "not valid UTF-16 (byte 0x00 at offset 8)"),
        ("utf16-nul.txt", codecs.BOM_UTF16_LE + "a\x00b".encode("utf-16-le"), "binary file"),
        ("bom.txt", b"\xef\xbb\xbfok \xff", "not valid UTF-8 (byte 0xff at offset 6)"),
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
        ("empty.md", "", "empty document"),
        ("blank.txt", " \n\n\t\n", "empty document"),
        ("front-only.md", "---\ntitle: x\n---\n", "empty document"),
        ("script-only.html", "<script>x()</script>", "empty document"),
        ("blank.jsonl", "\n\n", "empty document"),
    ],
)
def test_file_failures(tmp_path: Path, name: str, content: str | bytes, reason: str) -> None:
    path = write(tmp_path / name, content)
    with pytest.raises(LoadError) as info:
        load_file(path, tmp_path)
    assert (info.value.path, info.value.reason) == (name, reason)
    docs, failures = load_corpus(tmp_path)
    assert docs == []
    assert failures == [LoadFailure(name, reason)]


def test_discovery_sorts_skips_hidden_and_unsupported(tmp_path: Path) -> None:
    for name in ["b.md", "a/z.txt", "a/y.HTML", "c.jsonl", "d.markdown", "e.htm"]:
        write(tmp_path / name, "x")
    for name in [".hidden.md", ".git/config.md", "notes.rtf", "image.png", "a/.cache/x.txt"]:
        write(tmp_path / name, "x")
    files, failures = discover_files(tmp_path)
    relative = [p.relative_to(tmp_path).as_posix() for p in files]
    assert relative == ["a/y.HTML", "a/z.txt", "b.md", "c.jsonl", "d.markdown", "e.htm"]
    assert failures == []


def test_single_file_root(tmp_path: Path) -> None:
    path = write(tmp_path / "one.md", "# One\n\ntext\n")
    docs, failures = load_corpus(path)
    assert [(d.key, d.title) for d in docs] == [("one.md", "One")]
    assert failures == []
    files, failures = discover_files(write(tmp_path / "paper.rtf", "x"))
    assert files == []
    assert failures[0].reason.startswith("unsupported file type")


def test_the_same_key_in_two_files_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "a.jsonl", '{"id": "rec-1", "text": "first"}\n')
    write(tmp_path / "b.jsonl", '{"id": "rec-1", "text": "second"}\n{"id": "rec-2", "text": "third"}\n')
    docs, failures = load_corpus(tmp_path)
    assert [(d.key, d.text) for d in docs] == [("rec-1", "first"), ("rec-2", "third")]
    assert [(f.path, f.reason) for f in failures] == [("b.jsonl", "duplicate key 'rec-1' (first in a.jsonl)")]


def test_missing_root_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no such file or folder"):
        discover_files(tmp_path / "missing")


@pytest.mark.parametrize(
    ("max_bytes", "reason"),
    [(10_000_000, None), (100, "larger than 100 bytes limit (200 bytes)")],
)
def test_size_limit(tmp_path: Path, max_bytes: int, reason: str | None) -> None:
    write(tmp_path / "big.txt", "x" * 200)
    docs, failures = load_corpus(tmp_path, max_bytes=max_bytes)
    assert failure_reasons(failures) == ({"big.txt": reason} if reason else {})
    assert len(docs) == (0 if reason else 1)


def test_default_size_limit_message(tmp_path: Path) -> None:
    with (tmp_path / "huge.txt").open("wb") as handle:
        handle.truncate(10_000_001)
    files, failures = discover_files(tmp_path)
    assert files == []
    assert failures == [LoadFailure("huge.txt", "larger than 10 MB limit (10,000,001 bytes)")]


symlinks = pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")


@symlinks
def test_symlink_outside_root(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside" / "secret.md", "# Secret\n")
    root = tmp_path / "corpus"
    write(root / "inside.md", "# Inside\n")
    (root / "link.md").symlink_to(outside)
    (root / "linkdir").symlink_to(outside.parent, target_is_directory=True)
    docs, failures = load_corpus(root)
    assert [d.key for d in docs] == ["inside.md"]
    assert failure_reasons(failures) == {
        "link.md": "symlink outside the corpus root",
        "linkdir": "symlink outside the corpus root",
    }
    docs, failures = load_corpus(root, follow_symlinks=True)
    assert [d.key for d in docs] == ["inside.md", "link.md", "linkdir/secret.md"]
    assert failures == []


@symlinks
def test_symlink_inside_root_is_followed(tmp_path: Path) -> None:
    write(tmp_path / "real" / "doc.md", "# Doc\n")
    (tmp_path / "alias.md").symlink_to(tmp_path / "real" / "doc.md")
    docs, failures = load_corpus(tmp_path)
    assert [d.key for d in docs] == ["alias.md", "real/doc.md"]
    assert failures == []


@symlinks
@pytest.mark.parametrize("follow_symlinks", [False, True])
def test_symlink_loops_do_not_hang(tmp_path: Path, follow_symlinks: bool) -> None:
    write(tmp_path / "sub" / "doc.md", "# Doc\n")
    (tmp_path / "sub" / "up").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "self").symlink_to(tmp_path / "self")
    (tmp_path / "ping").symlink_to(tmp_path / "pong")
    (tmp_path / "pong").symlink_to(tmp_path / "ping")
    (tmp_path / "broken.md").symlink_to(tmp_path / "nowhere.md")
    docs, failures = load_corpus(tmp_path, follow_symlinks=follow_symlinks)
    assert [d.key for d in docs] == ["sub/doc.md"]
    assert failure_reasons(failures) == {
        "broken.md": "broken symlink",
        "ping": "symlink loop",
        "pong": "symlink loop",
        "self": "symlink loop",
        "sub/up": "symlink loop",
    }


def test_corpus_load_keeps_going_past_failures(tmp_path: Path) -> None:
    write(tmp_path / "a.md", "# A\n\ntext\n")
    write(tmp_path / "b.md", b"\xff\xff")
    write(tmp_path / "c.txt", "C text\n")
    docs, failures = load_corpus(tmp_path)
    assert [d.key for d in docs] == ["a.md", "c.txt"]
    assert failures == [LoadFailure("b.md", "not valid UTF-8 (byte 0xff at offset 0), Shift_JIS, EUC-JP or "
                                            "Windows-1252")]


JAPANESE = "# 検索の仕組み\n\n東京の図書館で、カタカナの書名を検索する。\n\n形態素解析で語に分ける。\n"
WINDOWS = JAPANESE + "ｶﾀｶﾅと㈱、①も読む。\n"  # half-width kana and NEC specials: cp932, not plain Shift_JIS
SHORT = "形態素解析のテスト"  # as EUC-JP, decodes as Shift_JIS too without error


@pytest.mark.parametrize(
    ("name", "content", "text", "encoding"),
    [
        ("shift-jis.txt", JAPANESE.encode("cp932"), JAPANESE, "cp932"),
        ("windows.md", WINDOWS.encode("cp932"), WINDOWS, "cp932"),
        ("euc.md", JAPANESE.encode("euc_jp"), JAPANESE, "euc_jp"),
        ("short-euc.txt", SHORT.encode("euc_jp"), SHORT, "euc_jp"),
        ("jis.txt", JAPANESE.encode("iso2022_jp"), JAPANESE, "iso2022_jp"),
        ("utf16.txt", codecs.BOM_UTF16_LE + JAPANESE.encode("utf-16-le"), JAPANESE, "utf-16-le"),
        ("utf16be.md", codecs.BOM_UTF16_BE + JAPANESE.encode("utf-16-be"), JAPANESE, "utf-16-be"),
        ("utf8.md", codecs.BOM_UTF8 + JAPANESE.encode("utf-8"), JAPANESE, None),
    ],
)
def test_japanese_files_in_legacy_encodings_read_as_their_text(
    tmp_path: Path, name: str, content: bytes, text: str, encoding: str | None
) -> None:
    """Shift_JIS, EUC-JP, ISO-2022-JP and UTF-16 files are read as the text they hold, not refused,
    and say in `metadata.encoding` what they were read as (UTF-8 files, the norm, say nothing)."""
    doc, = load_file(write(tmp_path / name, content), tmp_path)
    assert doc.text == text
    assert doc.metadata["language"] == "ja"
    assert doc.metadata.get("encoding") == encoding


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("cafe.md", "# Café\n\nThe café\u2019s \u201cmenu\u201d lists crème brûlée \u2014 \u20ac5.\n"),
        ("naive.txt", "a na\xefve reader"),  # short, with no curly quotes
        # also valid Shift_JIS, with half-width kana (Ü and ß are kana bytes there): read as German
        ("german.txt", "Übermaß, schön und groß."),
        ("icelandic.txt", "Þú ert að læra íslensku, það er gaman. Ég bý í Reykjavík."),
    ],
)
def test_western_files_in_windows_1252_read_as_their_text(tmp_path: Path, name: str, text: str) -> None:
    """Western European text from before UTF-8 (Windows-1252, or ISO-8859-1 which it extends) is read as
    such, and says so in `metadata.encoding`."""
    doc, = load_file(write(tmp_path / name, text.encode("cp1252")), tmp_path)
    assert doc.text == text
    assert doc.metadata["encoding"] == "cp1252"


# a spreadsheet as Excel in Japan saves it: Shift_JIS (cp932), CRLF line ends, a cell over two lines
SHOP = ("商品名,価格,産地,品番\r\nりんご,120,青森,007\r\nみかん,80.5,愛媛,\r\n,,,\r\n"
        '"限定\r\nセット",1500,"青森, 愛媛",x1\r\nぶどう,1,2,3,4\r\n')


def test_csv_rows_without_text_and_id_columns_are_records(tmp_path: Path) -> None:
    """Without `text` and `id` columns, each row is a record: its cells as `column: value` lines, titled by
    its first cell, keyed by the file and its spreadsheet row; the other columns are metadata."""
    write(tmp_path / "shop.csv", SHOP.encode("cp932"))
    docs, failures = load_corpus(tmp_path)
    assert [(d.key, d.title) for d in docs] == [("shop.csv:2", "りんご"), ("shop.csv:3", "みかん"),
                                               ("shop.csv:5", "限定")]  # row 4 is blank
    apple, orange, box = docs
    assert apple.text == "商品名: りんご\n価格: 120\n産地: 青森\n品番: 007"
    # numbers written as numbers become numbers (for range filters); "007" keeps its zeros; empty cells are left out
    assert apple.metadata == {"encoding": "cp932", "商品名": "りんご", "価格": 120, "産地": "青森", "品番": "007",
                              "format": "csv", "language": "ja"}
    assert orange.metadata["価格"] == 80.5 and "品番" not in orange.metadata
    assert box.metadata["商品名"] == "限定\r\nセット" and box.metadata["産地"] == "青森, 愛媛"
    assert failures == [LoadFailure("shop.csv:row 6", "5 cells, but the header names 4 columns")]


def test_tsv_with_id_text_title_and_tags_columns_reads_like_json_lines(tmp_path: Path) -> None:
    rows = ["ID\tTitle\tText\tTags\tyear\tnote",
            'a1\tTokyo\t"Tokyo is the capital.\n\nIt is large."\tcity, JA\t2024\t',  # quoted: a cell over lines
            "a1\tagain\tsecond a1\t\t\t",
            " \tno id\ttext\t\t\t",
            "a2\tblank\t   \t\t\t",
            'a3\t\t"Untitled first line.\nmore"\t\t\tfree text']
    write(tmp_path / "docs.tsv", "\n".join(rows) + "\n")
    docs, failures = load_corpus(tmp_path)
    assert [(d.key, d.title) for d in docs] == [("a1", "Tokyo"), ("a3", "Untitled first line.")]
    tokyo, untitled = docs
    assert tokyo.text == "Tokyo is the capital.\n\nIt is large."
    assert [tokyo.text[s.start : s.end] for s in tokyo.sections] == ["Tokyo is the capital.", "It is large."]
    assert tokyo.metadata == {"year": 2024, "tags": ["city", "ja"], "format": "tsv", "language": "en"}
    assert untitled.metadata["note"] == "free text"
    assert failure_reasons(failures) == {"docs.tsv:row 3": "duplicate id (first used on row 2)",
                                         "docs.tsv:row 4": "empty 'id'", "docs.tsv:row 5": "empty 'text'"}


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("header-only.csv", "name,price\n", "empty document"),
    ("blank.tsv", "\n\n", "empty document"),
])
def test_tables_with_no_rows_are_refused(tmp_path: Path, name: str, content: str, reason: str) -> None:
    with pytest.raises(LoadError) as info:
        load_file(write(tmp_path / name, content), tmp_path)
    assert (info.value.path, info.value.reason) == (name, reason)


def test_a_csv_file_with_a_row_it_cannot_parse_keeps_the_rows_before(tmp_path: Path) -> None:
    write(tmp_path / "big.csv", "name,note\nfirst,ok\nsecond," + '"' + "x" * 200_000 + '"\nthird,lost\n')
    docs, failures = load_corpus(tmp_path)
    assert [d.title for d in docs] == ["first"]
    [failure] = failures
    assert failure.path == "big.csv:row 3" and failure.reason.startswith("cannot read the rest of the file (")


def test_excel_rows_are_documents_sheet_by_sheet(tmp_path: Path) -> None:
    """Each worksheet reads like the same sheet saved as CSV: typed cells as Excel shows them, keys
    `file:sheet:row`, the sheet in `metadata.sheet`."""
    save_workbook(tmp_path / "shop.xlsx")
    docs, failures = load_corpus(tmp_path)
    assert [(d.key, d.title) for d in docs] == [
        ("shop.xlsx:価格表:2", "紅玉りんご"), ("shop.xlsx:価格表:3", "温州みかん"), ("refunds", "Refunds")]
    apple, orange, refunds = docs
    assert apple.text == "品名: 紅玉りんご\n価格: 120\n入荷日: 2024-05-01\n在庫: TRUE\n品番: 007"
    assert apple.metadata == {"品名": "紅玉りんご", "価格": 120, "入荷日": "2024-05-01", "在庫": "TRUE", "品番": "007",
                              "format": "xlsx", "sheet": "価格表", "language": "ja"}
    assert orange.metadata["価格"] == 80.5 and orange.metadata["入荷日"] == "2024-06-02T09:30:00"
    assert refunds.text == "Refunds reach the card within five working days."
    assert refunds.metadata == {"format": "xlsx", "sheet": "FAQ", "language": "en"}
    assert failures == [LoadFailure("shop.xlsx:価格表:row 5", "6 cells, but the header names 5 columns")]


def test_powerpoint_slides_are_pages_read_in_reading_order(tmp_path: Path) -> None:
    save_deck(tmp_path / "talk.pptx")
    [deck] = load_file(tmp_path / "talk.pptx", tmp_path)
    assert deck.title == "検索の仕組み"
    first, second, third = page_bounds(page_starts(deck.metadata), len(deck.text))
    assert deck.text[first[0]:first[1]].strip() == (
        "検索の仕組み\n\n形態素解析で語に分ける\nBM25 で順位を付ける\n\n発表者メモ: 質疑は五分")
    assert deck.text[second[0]:second[1]].strip() == (
        "Results\n\nHybrid wins.\n\nmode\tnDCG@10\nhybrid\t0.72\n\nGrouped first.\nGrouped second.")
    assert deck.text[third[0]:third[1]].strip() == ""
    assert deck.metadata["page_count"] == 3 and deck.metadata["pages_without_text"] == [3]
    assert {deck.text[s.start : s.end]: s.path for s in deck.sections}["Hybrid wins."] == ("Results",)


@pytest.mark.parametrize(("name", "reason"), [
    ("broken.xlsx", "damaged or not an Excel file (BadZipFile: File is not a zip file)"),
    ("broken.pptx", "damaged or not a PowerPoint file (PackageNotFoundError: "),
])
def test_damaged_office_files_are_refused_by_name(tmp_path: Path, name: str, reason: str) -> None:
    write(tmp_path / name, b"not a zip")
    _, failures = load_corpus(tmp_path)
    assert [f.path for f in failures] == [name] and failures[0].reason.startswith(reason), failures


@pytest.mark.parametrize("name", ["bomb.docx", "bomb.xlsx", "bomb.pptx"])
def test_an_office_file_that_unpacks_to_too_much_is_refused_unread(tmp_path: Path, name: str) -> None:
    """A zip bomb: 210 MB of zeros packed into about 200 KB, refused from the archive's directory before a
    parser would unpack it."""
    with zipfile.ZipFile(tmp_path / name, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w") as part:
            for _ in range(210):
                part.write(bytes(1_000_000))
    assert (tmp_path / name).stat().st_size < 1_000_000
    _, failures = load_corpus(tmp_path)
    assert failures == [LoadFailure(name, "unpacks to 210,000,008 bytes, over the 200,000,000-byte limit")]


def test_html_and_json_lines_in_shift_jis(tmp_path: Path) -> None:
    page = f"<html><head><meta charset=Shift_JIS><title>検索</title></head><body><p>{SHORT}</p></body></html>"
    html, = load_file(write(tmp_path / "page.html", page.encode("cp932")), tmp_path)
    assert SHORT in html.text and html.title == "検索"
    line = json.dumps({"id": "a", "title": "検索", "text": JAPANESE}, ensure_ascii=False)
    record, = load_file(write(tmp_path / "docs.jsonl", line.encode("cp932")), tmp_path)
    assert record.text == JAPANESE
    assert (html.metadata["encoding"], record.metadata["encoding"]) == ("cp932", "cp932")


def test_reading_reports_progress_file_by_file(tmp_path: Path) -> None:
    for name in ("a.md", "b.txt", "c.doc"):  # the .doc fails (not a Word file): it still counts as read
        write(tmp_path / name, "# x\n\ntext\n")
    seen: list[tuple[int, int]] = []
    docs, failures = load_corpus(tmp_path, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)] and len(docs) == 2 and [f.path for f in failures] == ["c.doc"]


def test_word_text_in_controls_revisions_fields_boxes_nested_tables_and_notes_is_read(tmp_path: Path) -> None:
    import docx
    from docx.opc.constants import RELATIONSHIP_TYPE
    from docx.opc.packuri import PackURI
    from docx.opc.part import Part
    from docx.oxml import parse_xml
    from docx.oxml.ns import nsdecls

    w = nsdecls("w")
    document = docx.Document()
    document.add_paragraph("通常の段落はあじさい。")
    blocks = [
        f"<w:sdt {w}><w:sdtPr/><w:sdtContent><w:p><w:r><w:t>コントロール内はつつじ。</w:t></w:r></w:p>"
        "</w:sdtContent></w:sdt>",
        f'<w:p {w}><w:r><w:t>挿入されたのは</w:t></w:r><w:ins w:id="1" w:author="a"><w:r><w:t>さつき。</w:t></w:r>'
        f'</w:ins><w:del w:id="2" w:author="a"><w:r><w:delText>消えたぼたん</w:delText></w:r></w:del></w:p>',
        f'<w:p {w}><w:fldSimple w:instr=" AUTHOR "><w:r><w:t>著者はもくれん</w:t></w:r></w:fldSimple></w:p>',
        f'<w:p {w}><w:customXml w:element="x"><w:r><w:t>カスタムXML内はこぶし。</w:t></w:r></w:customXml></w:p>',
        # a text box as Word writes it: the same box twice, as DrawingML and as a VML fallback
        f'<w:p {w} xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
        'xmlns:v="urn:schemas-microsoft-com:vml"><w:r><mc:AlternateContent><mc:Choice Requires="wps">'
        "<w:txbxContent><w:p><w:r><w:t>箱の中はききょう。</w:t></w:r></w:p></w:txbxContent></mc:Choice>"
        "<mc:Fallback><w:pict><v:textbox><w:txbxContent><w:p><w:r><w:t>箱の中はききょう。</w:t></w:r></w:p>"
        "</w:txbxContent></v:textbox></w:pict></mc:Fallback></mc:AlternateContent></w:r></w:p>",
    ]
    for xml in blocks:
        document.element.body[-1].addprevious(parse_xml(xml))
    merged = document.add_table(rows=2, cols=3)
    merged.cell(0, 0).merge(merged.cell(0, 2)).text = "結合セルはしゃくやく"
    for column, text in enumerate("左中右"):
        merged.cell(1, column).text = text
    outer = document.add_table(rows=1, cols=2)
    outer.cell(0, 0).text = "外側"
    outer.cell(0, 1).add_table(rows=1, cols=1).cell(0, 0).text = "入れ子の表はすいせん"
    notes = (f'<w:footnotes {w}><w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p>'
             '</w:footnote><w:footnote w:id="1"><w:p><w:r><w:t>脚注はみずすまし</w:t></w:r></w:p></w:footnote>'
             "</w:footnotes>")
    part = Part(PackURI("/word/footnotes.xml"),
                "application/vnd.openxmlformats-officedocument.wordprocessingml.footnotes+xml", notes.encode(),
                document.part.package)
    document.part.relate_to(part, RELATIONSHIP_TYPE.FOOTNOTES)
    document.save(tmp_path / "structures.docx")

    [doc] = load_file(tmp_path / "structures.docx", tmp_path)
    for text in ("あじさい", "コントロール内はつつじ", "挿入されたのはさつき", "著者はもくれん",
                 "カスタムXML内はこぶし", "外側\t入れ子の表はすいせん", "脚注はみずすまし",
                 "結合セルはしゃくやく\n左\t中\t右"):
        assert text in doc.text, (text, doc.text)
    assert "ぼたん" not in doc.text  # a tracked deletion is not the document's text
    assert doc.text.count("ききょう") == 1 and doc.text.count("しゃくやく") == 1, doc.text


def test_ocr_words_beside_japanese_join_as_the_page_shows_them() -> None:
    from indexer.text.glyphs import Line
    from indexer.text.ocr import OcrWord
    from indexer.text.scan_layout import _word_glyphs

    def word(text: str, left: float, right: float) -> OcrWord:
        return OcrWord(text, left, 0, right, 30, line=1)

    # Tesseract's words 第 / 1 / 章 almost touch; BM25 and is stand a space apart, as does です after BM25
    words = [word("第", 0, 30), word("1", 32, 45), word("章", 47, 77), word("BM25", 120, 200), word("is", 215, 240),
             word("です", 300, 360)]
    assert Line(_word_glyphs(words, 1.0, 100.0)).text == "第1章 BM25 is です"


def test_utf8_with_one_damaged_byte_is_refused_not_read_as_half_width_kana(tmp_path: Path) -> None:
    """In Shift_JIS, café's é as UTF-8 (0xC3 0xA9) reads as ﾃｩ: half-width kana alone are no Japanese text."""
    write(tmp_path / "corpus" / "en.txt", b"The caf\xc3 is open. R\xc3\xa9sum\xc3\xa9 attached.\n")
    write(tmp_path / "corpus" / "ja.txt", "古い文書はシフトJISで保存された。\n".encode("cp932"))
    docs, failures = load_corpus(tmp_path / "corpus")
    assert [(d.source, d.metadata["encoding"]) for d in docs] == [("ja.txt", "cp932")]
    assert [(f.path, "byte 0xc3 at offset 7" in f.reason) for f in failures] == [("en.txt", True)]


def test_shift_jis_in_half_width_kana_alone_is_read_when_nothing_else_reads_it(tmp_path: Path) -> None:
    """Old system exports (bank transfers, 全銀 files) hold half-width kana only. (A few stray ones are no
    Japanese: `test_utf8_with_one_damaged_byte_is_refused_not_read_as_half_width_kana`.)"""
    rows = "1,ﾔﾏﾀﾞ ﾀﾛｳ,ﾐｽﾞﾎｷﾞﾝｺｳ,ﾌﾘｺﾐ\r\n2,ｽｽﾞｷ ﾊﾅｺ,ﾕｳﾁｮｷﾞﾝｺｳ,ﾌﾘｺﾐ\r\n"
    write(tmp_path / "corpus" / "transfers.txt", rows.encode("cp932"))
    docs, failures = load_corpus(tmp_path / "corpus")
    assert [(d.source, d.text, d.metadata["encoding"]) for d in docs] == [("transfers.txt", rows, "cp932")]
    assert failures == []


def test_an_xlsx_number_cell_in_exponent_form_is_a_number(tmp_path: Path) -> None:
    """openpyxl and Excel write small numbers as 1e-07: the cell is a number all the same."""
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in (["id", "text", "v"], ["a", "small value", 1e-7], ["b", "plain value", 123.25], ["c", "big", 2.5e3]):
        sheet.append(row)
    workbook.save(tmp_path / "n.xlsx")
    docs = load_file(tmp_path / "n.xlsx", tmp_path)
    assert [d.metadata["v"] for d in docs] == [1e-7, 123.25, 2500]


def test_front_matter_is_read_with_yaml_12s_plain_scalars(tmp_path: Path) -> None:
    """YAML 1.1 read `country: NO` as false and `time: 12:30` as 750 (base 60)."""
    content = ("---\ncountry: NO\nanswer: yes\ntime: 12:30\nmode: 0755\nzip: 0123\nyear: 2021\n"
               "score: -3.5\nsmall: 1e-7\ndraft: false\n---\nBody.\n")
    [doc] = load_file(write(tmp_path / "doc.md", content), tmp_path)
    meta = {k: v for k, v in doc.metadata.items() if k not in ("format", "language")}
    assert meta == {"country": "NO", "answer": "yes", "time": "12:30", "mode": "0755", "zip": "0123", "year": 2021,
                    "score": -3.5, "small": 1e-7, "draft": False}
