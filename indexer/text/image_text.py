"""The text of an image file (a scanned page saved as PNG, JPEG or TIFF), read by OCR.

Pillow opens the file and gives its frames (a multi-page TIFF from a scanner or a fax has
one a page); each frame goes to Tesseract in grey at its own resolution (made smaller past
`ocr.MAX_PIXELS`), and its words are laid out like a scanned PDF page's (`scan_layout`, `page_layout`).
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

from PIL import Image, ImageSequence, UnidentifiedImageError

from indexer.errors import InputError
from indexer.text.page_layout import lay_out_pages
from indexer.text.pdf_text import MAX_PAGES, PdfText, ScannedPages

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "tiff": "image/tiff"}  # by Pillow's format name


class ImageError(InputError):
    """An image that cannot be read: damaged, too large, or without text OCR can find."""


def _scaled(image: Image.Image, scale: float) -> Image.Image:
    if scale == 1:
        return image
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))


def read_image_file(path: Path, *, max_pages: int = MAX_PAGES) -> tuple[str, PdfText]:
    """The image's format (`png`, `jpeg`, `tiff`) and its pages' text; ImageError when there is none."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            kind = (image.format or "").lower()
            if kind not in MEDIA_TYPES:
                raise ImageError(f"a {image.format or 'different'} image in a {path.suffix} file "
                                 f"(PNG, JPEG and TIFF are read)")
            with image, ScannedPages(path) as scans:
                heights = []
                for number, frame in enumerate(ImageSequence.Iterator(image), 1):
                    if number > max_pages:
                        raise ImageError(f"more than the {max_pages:,}-page limit")
                    grey = frame.convert("L")
                    scans.submit(number, functools.partial(_scaled, grey), width=grey.width, height=grey.height,
                                 scale=1.0)
                    heights.append(grey.height)
                laid_out = [(scans.lines(number) if number in scans.submitted else [], height)
                            for number, height in enumerate(heights, 1)]
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"damaged or not an image ({exc})") from exc
    except OSError as exc:  # Pillow's word for a truncated or undecodable file
        raise ImageError(f"damaged image ({exc})") from exc
    if not any(lines for lines, _ in laid_out):
        raise ImageError(scans.why_no_text("an image, and"))
    return kind, PdfText("", lay_out_pages(laid_out), scans.read_pages)
