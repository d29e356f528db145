"""Tesseract's confidence on scanned pages: what tells a vertical page from a horizontal one.

    python benchmarks/ocr_confidence.py [--data ../shared/data] [--paragraphs 36]

OCR reads a page again with Tesseract's vertical Japanese model (jpn_vert) when its mean word
confidence, read the default way (`jpn+eng`), is under `ocr.LOW_CONFIDENCE`. This prints that
confidence for every page of four kinds of scan, printed and scanned as benchmarks/documents.py
does it (`--paragraphs` paragraphs each, three a page): JSQuAD and SQuAD horizontal (every other
page in two columns), JSQuAD vertical (縦書き), and JSQuAD with furigana. Horizontal pages should sit
well above the threshold (a page under it is read twice: time, not text), vertical pages well
below; for those, the confidence of the second reading is printed too.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.documents import DATA, load_set, write_scans  # noqa: E402
from indexer.text import ocr  # noqa: E402

KINDS = {"JSQuAD horizontal": ("jsquad", {}), "SQuAD horizontal": ("squad", {}),
         "JSQuAD vertical": ("jsquad", {"vertical": True}), "JSQuAD with furigana": ("jsquad", {"ruby": True})}


def page_images(folder: Path) -> list[bytes]:
    """Every page of the scanned PDFs in `folder`, rendered as the indexer renders it for OCR."""
    import pypdfium2 as pdfium

    images = []
    for scan in sorted(folder.glob("*.pdf")):
        document = pdfium.PdfDocument(str(scan))
        for page in document:
            image = io.BytesIO()
            page.render(scale=ocr.DPI / 72, grayscale=True).to_pil().save(image, "PPM")
            images.append(image.getvalue())
        document.close()
    return images


def confidences(image: bytes) -> tuple[float, float | None]:
    """The page's confidence read the default way, and with the vertical model when under the threshold."""
    _, first = ocr.read_words(image, ocr.DEFAULT_LANGUAGES)
    vertical = ocr.with_vertical(ocr.DEFAULT_LANGUAGES)
    if first >= ocr.LOW_CONFIDENCE or vertical is None:
        return first, None
    return first, ocr.read_words(image, vertical)[1]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--paragraphs", type=int, default=36, help="paragraphs a kind (three a page)")
    args = parser.parse_args(argv)
    print(f"threshold {ocr.LOW_CONFIDENCE}; vertical model: {ocr.with_vertical(ocr.DEFAULT_LANGUAGES) or 'none'}")
    with tempfile.TemporaryDirectory() as work, ThreadPoolExecutor(ocr.workers()) as pool:
        for kind, (name, flags) in KINDS.items():
            folder = Path(work) / kind.replace(" ", "-") / "files"
            folder.mkdir(parents=True)
            paragraphs, _ = load_set(name, args.data, args.paragraphs, 0)
            write_scans(paragraphs, folder, 3, ocr.DPI, **flags)
            read = list(pool.map(confidences, page_images(folder)))
            first = [c for c, _ in read]
            again = [round(c) for _, c in read if c is not None]
            print(f"{kind}: {len(read)} pages, confidence min {min(first):.0f} median {statistics.median(first):.0f} "
                  f"max {max(first):.0f}; {len(again)} under {ocr.LOW_CONFIDENCE}, read again at {again}")


if __name__ == "__main__":
    main()
