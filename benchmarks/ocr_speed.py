"""OCR speed: the indexer's way of reading scanned pages against calling Tesseract the usual way.

    python benchmarks/ocr_speed.py [--data ../shared/data] [--pages 12] [--languages jpn+eng]

JSQuAD paragraphs (three a page, every other page in two columns, as benchmarks/documents.py
prints them) are printed by Chromium and scanned to images at 300 dpi. Then, in one run:

- baseline: each page's image given to one `tesseract` process after another, with the
  environment as it is (Tesseract's OpenMP threads on every core), which is what a wrapper
  such as pytesseract does;
- yomitoki: `read_pdf` on the scanned file from an empty OCR cache (a `tesseract` process per
  CPU, one thread each, pages in parallel), then again from the cache it filled.

Both read the same page images (the yomitoki path renders them itself, at the same 300 dpi)
and print pages/s; the load average is printed beside them, since busy cores change
Tesseract's speed more than anything else.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.documents import DATA, load_set, write_scans  # noqa: E402
from indexer.text import ocr  # noqa: E402
from indexer.text.pdf_text import read_pdf  # noqa: E402


def baseline_seconds(scan: Path, languages: str) -> tuple[float, int]:
    """Every page of `scan`, rendered as the indexer renders it, read by one plain tesseract call after another."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(str(scan))
    images = []
    for page in document:
        image = io.BytesIO()
        page.render(scale=ocr.DPI / 72, grayscale=True).to_pil().save(image, "PPM")
        images.append(image.getvalue())
    document.close()
    command = shutil.which("tesseract") or "tesseract"
    started = time.perf_counter()
    for image in images:
        subprocess.run([command, "stdin", "stdout", "-l", languages, "tsv"], input=image, capture_output=True,
                       check=True)
    return time.perf_counter() - started, len(images)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--pages", type=int, default=12, help="scanned pages (three JSQuAD paragraphs each)")
    parser.add_argument("--languages", default=ocr.DEFAULT_LANGUAGES, help="Tesseract's languages")
    args = parser.parse_args(argv)
    os.environ[ocr.OCR_ENV] = args.languages
    paragraphs, _ = load_set("jsquad", args.data, args.pages * 3, 1)
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "files"
        folder.mkdir()
        write_scans(paragraphs, folder, per_page=3, dpi=ocr.DPI)
        scans = sorted(folder.glob("*.pdf"))
        print(f"load average before: {os.getloadavg()}; {ocr.workers()} CPUs; languages {args.languages}")
        base_s = pages = 0
        for scan in scans:
            seconds, count = baseline_seconds(scan, args.languages)
            base_s, pages = base_s + seconds, pages + count
        ocr.default_cache_dir = lambda: Path(work) / "ocr-cache"  # type: ignore[assignment]  # empty at first
        started = time.perf_counter()
        for scan in scans:
            read_pdf(scan)
        ours_s = time.perf_counter() - started
        started = time.perf_counter()
        for scan in scans:
            read_pdf(scan)
        cached_s = time.perf_counter() - started
        print(f"baseline, one tesseract call a page with its own threads: {pages / base_s:.2f} pages/s "
              f"({base_s:.1f} s for {pages} pages)")
        print(f"yomitoki, a single-threaded tesseract per CPU:            {pages / ours_s:.2f} pages/s "
              f"({ours_s:.1f} s), {base_s / ours_s:.1f}x the baseline")
        print(f"yomitoki, again from the OCR cache:                       {pages / cached_s:.1f} pages/s "
              f"({cached_s:.2f} s)")
        print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
