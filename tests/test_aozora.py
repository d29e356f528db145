"""Plain-text files in Aozora Bunko notation, read through the real loader as the text a reader sees."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from indexer.embed.base import Embedder
from indexer.search.searcher import Searcher
from indexer.store.generations import IndexDirectory
from indexer.text.keywords import KeywordTokenizer
from indexer.text.loaders import SourceDocument, load_corpus, load_file
from tests.conftest import CORPUS, build

HEADER = """\
羅生門
芥川龍之介

-------------------------------------------------------
【テキスト中に現れる記号について】

《》：ルビ
（例）下人《げにん》

｜：ルビの付く文字列の始まりを特定する記号
（例）甍《いらか》を支えた｜円柱《まるばしら》

［＃］：入力者注　主に外字の説明や、傍点の位置の指定
　　　（数字は、JIS X 0213の面区点番号、または底本のページと行数）
（例）※［＃「木＋吶のつくり」、第3水準1-85-54］
-------------------------------------------------------

"""

WORK = f"""{HEADER}\
［＃３字下げ］第一章　門の下［＃「第一章　門の下」は大見出し］
　ある日の暮方の事である。一人の下人《げにん》が、羅生門《らしょうもん》の下で雨やみを待っていた。
［＃ここから２字下げ］
　｜東京駅《とうきょうえき》から|山手線《やまのてせん》に乗った。
［＃ここで字下げ終わり］
［＃改ページ］
［＃中見出し］一［＃中見出し終わり］
　下人は［＃「下人は」に傍点］雨の音を聞いていた。
［＃小見出し］雨［＃小見出し終わり］
　雨はやまない。
第二章［＃「第二章」は大見出し］
　夜が来た。

底本：「芥川龍之介全集１」ちくま文庫、筑摩書房
"""


def load_cp932(tmp_path: Path, text: str, name: str = "work.txt") -> SourceDocument:
    path = tmp_path / name
    path.write_bytes(text.encode("cp932"))
    [doc] = load_file(path, tmp_path)
    return doc


def paragraphs(doc: SourceDocument) -> list[str]:
    return [doc.text[section.start : section.end] for section in doc.sections]


def test_ruby_readings_and_bars_are_removed(tmp_path: Path) -> None:
    doc = load_cp932(tmp_path, WORK)
    assert "ある日の暮方の事である。一人の下人が、羅生門の下で雨やみを待っていた。" in paragraphs(doc)
    assert "東京駅から山手線に乗った。" in paragraphs(doc)
    assert not {"《", "》", "｜", "|", "［", "＃"} & set(doc.text), doc.text
    assert doc.metadata["format"] == "text"
    assert doc.metadata["notation"] == "aozora"
    assert doc.metadata["encoding"] == "cp932"


def test_ruby_without_a_header_is_recognized(tmp_path: Path) -> None:
    doc = load_cp932(tmp_path, "江戸《えど》幕府《ばくふ》は｜長く続いた《ながくつづいた》。\n")
    assert doc.text == "江戸幕府は長く続いた。"
    assert doc.metadata["notation"] == "aozora"
    assert "author" not in doc.metadata


def test_header_gives_title_and_author_and_its_symbol_block_is_dropped(tmp_path: Path) -> None:
    doc = load_cp932(tmp_path, WORK)
    assert doc.title == "羅生門"
    assert doc.metadata["author"] == "芥川龍之介"
    assert "テキスト中に現れる記号について" not in doc.text
    assert "ルビ" not in doc.text and "----" not in doc.text
    assert paragraphs(doc)[:3] == ["羅生門", "芥川龍之介", "第一章　門の下"]
    assert doc.text.startswith("羅生門\n芥川龍之介\n\n第一章　門の下\nある日の暮方")  # indentation stripped


def test_headings_become_section_paths(tmp_path: Path) -> None:
    doc = load_cp932(tmp_path, WORK)
    paths = {doc.text[s.start : s.end]: s.path for s in doc.sections}
    assert paths["羅生門"] == ()
    assert paths["第一章　門の下"] == ("第一章　門の下",)
    assert paths["東京駅から山手線に乗った。"] == ("第一章　門の下",)
    assert paths["下人は雨の音を聞いていた。"] == ("第一章　門の下", "一")
    assert paths["雨はやまない。"] == ("第一章　門の下", "一", "雨")
    assert paths["夜が来た。"] == ("第二章",)
    assert paths["底本：「芥川龍之介全集１」ちくま文庫、筑摩書房"] == ()


@pytest.mark.parametrize(
    ("written", "character"),
    [
        ("※［＃「てへん＋劣」、第3水準1-84-77］", "挘"),  # JIS X 0213 plane 1
        ("※［＃「木＋吶のつくり」、第3水準1-85-54］", "枘"),
        ("※［＃「口＋七」、第3水準1-14-1］", "俱"),
        ("※［＃「人がしら」、第4水準2-1-1］", "\U00020089"),  # plane 2, outside the BMP
        ("※［＃「口＋世」、U+546D、185-9］", "呭"),  # a Unicode code point
        ("※［＃「口＋亞」、185-9］", "※"),  # no code: the mark stays, the annotation goes
    ],
    ids=["plane-1", "plane-1-again", "plane-1-row-14", "plane-2", "code-point", "no-code"],
)
def test_gaiji_are_decoded(tmp_path: Path, written: str, character: str) -> None:
    doc = load_cp932(tmp_path, f"［＃２字下げ］外字［＃「外字」は中見出し］\n　前{written}後の文。\n")
    assert paragraphs(doc)[-1] == f"前{character}後の文。"


def test_annotation_quoting_a_gaiji_is_removed_whole(tmp_path: Path) -> None:
    gaiji = "※［＃「てへん＋劣」、第3水準1-84-77］"
    text = f"一人の下人《げにん》が{gaiji}る［＃「{gaiji}る」に傍点］。\n"
    assert load_cp932(tmp_path, text).text == "一人の下人が挘る。"


@pytest.mark.parametrize(
    "text",
    [
        "魯迅の《故郷》を読んだ。\n翌日、《阿Q正伝》も読んだ。\n",  # 《》 as title brackets
        "作品《こころ》の感想を書いた。\n",  # one match that looks like ruby
        "メモ：［＃要確認］の箇所を直す。\n",  # one annotation-like mark
    ],
    ids=["title-brackets", "one-ruby-like-match", "one-annotation"],
)
def test_text_that_only_looks_like_the_notation_stays_verbatim(tmp_path: Path, text: str) -> None:
    doc = load_cp932(tmp_path, text)
    assert doc.text == text
    assert "notation" not in doc.metadata


def test_markdown_with_ruby_stays_markdown(tmp_path: Path) -> None:
    text = "# 歴史\n\n江戸《えど》幕府《ばくふ》の話。\n"
    (tmp_path / "note.md").write_text(text, encoding="utf-8")
    [doc] = load_file(tmp_path / "note.md", tmp_path)
    assert doc.text == text and doc.metadata["format"] == "markdown"


def test_keyword_and_hybrid_search_find_the_word_the_ruby_split(
    tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in sorted(p.name for p in CORPUS.glob("*.md"))[:4]:
        shutil.copy(CORPUS / name, corpus / name)
    work = "日本史\n山田太郎\n\n　江戸《えど》幕府《ばくふ》は二百六十年あまり続いた。\n"
    (corpus / "history.txt").write_bytes(work.encode("cp932"))
    docs, failures = load_corpus(corpus)
    assert failures == [] and "history.txt" in {doc.source for doc in docs}
    build(corpus, tmp_path / "index", embedder, keywords)
    searcher = Searcher(IndexDirectory(tmp_path / "index").current(), embedder)
    try:
        for mode in ("keyword", "hybrid"):
            hit = searcher.search("江戸幕府", mode=mode, k=3)[0]
            assert hit.source == "history.txt", (mode, hit.source)
            assert "江戸幕府は二百六十年" in hit.text and "《" not in hit.text, hit.text
            assert hit.metadata["notation"] == "aozora"
    finally:
        searcher.close()
