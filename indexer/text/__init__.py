"""Text: from a file to normalized, sentence-split, token-sized chunks and keyword terms.

    loaders        find and read corpus files (Markdown, text, HTML, JSON, CSV, TSV, Excel, PDF, Word,
                   PowerPoint, images of scanned pages) → SourceDocument
    exclusions     the paths a corpus walk leaves out (.yomitokiignore, --exclude; pathspec)
    markdown_text  front matter and text-bearing blocks with heading trails
    aozora         plain text in Aozora Bunko notation (ruby, ［＃…］ annotations, gaiji) as clean text
    html_text      the visible text of an HTML page
    pdf_text       a PDF's text page by page (pypdfium2), its scanned pages by OCR
    glyphs         characters with their boxes, the lines they make, and which of them are furigana
    page_layout    pages of lines as text: columns, vertical pages, paragraphs, running headers dropped
    scan_layout    OCR words as lines, like a text layer's (rows, column gutters, vertical lines)
    ocr            the words of scanned pages, by the tesseract command, in parallel, cached by file content
    image_text     an image file's pages (PNG, JPEG, TIFF frames) by OCR, laid out like a scanned PDF's
    docx_text      a Word file's text (python-docx)
    pptx_text      a PowerPoint file's text slide by slide (python-pptx)
    xlsx_rows      an Excel workbook's rows, sheet by sheet (openpyxl)
    ooxml          the zip-bomb check before any of the three Office formats is opened
    legacy_office  .doc, .xls and .ppt files converted to those formats by LibreOffice, cached by content
    file_cache     those two caches kept under YOMITOKI_CACHE_MB, least recently used entries removed first
    pages          which pages of a paged document a span lies on
    normalize      NFKC with a map back to the original text (normalize, normalize_query)
    language       Japanese or English (detect_language, JAPANESE_LETTERS)
    sentences      sentence spans for both languages (split_sentences)
    chunking       token-sized chunks along sentence boundaries (chunk_document, ChunkSettings)
    keywords       keyword terms for FTS5 and BM25: Sudachi words, English stems, CJK bigrams (KeywordTokenizer)
"""
