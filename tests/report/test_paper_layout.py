"""The paper laid out as a paper: a main text of at most eight pages, then an appendix.

On the rendered PDF: no word or ink outside the text block (a table wider than the block
spills into the margin), no two words on top of each other (a column header over its
neighbour, a model name running into the next cell), and no page of the main text with a blank
band over a third of its text block, the last one aside (a figure too tall for what is left of
a page pushes it to the next and leaves a gap). :func:`layout_problems` names every such fault;
the first test holds it to the smoke run's paper, the second shows it finds faults made on
purpose.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

needs_poppler = pytest.mark.skipif(
    shutil.which("pdftotext") is None or shutil.which("pdftoppm") is None,
    reason="pdftotext/pdftoppm (Debian poppler-utils) not installed",
)

MARGIN_PT = 2 / 2.54 * 72  # paper.typ: A4, 2 cm margins
MAX_MAIN_PAGES = 8
APPENDIX = "Appendix"  # the heading the appendix begins with, a line of its own
TOLERANCE_PT = 2.5  # typst hangs end-of-line punctuation up to 1.8 pt into the margin
DPI = 50  # rasterisation for the ink checks
INK = 200  # a grey level below this (of 255) is ink
# The largest blank band of a main-text page, as a share of the block's height. Measured on the
# smoke paper (5 main pages): at most 5.7% on a main page, 8.9-23.7% on the appendix's full
# pages (tables and figures that do not float); a page of text 55% full has a 45% band. 35%
# passes every full page with room and fails a page two thirds full or less.
MAX_BLANK = 0.35

_PAGE = re.compile(r'<page width="([\d.]+)" height="([\d.]+)">')
_WORD = re.compile(
    r'<word xMin="([-\d.]+)" yMin="([-\d.]+)" xMax="([-\d.]+)" yMax="([-\d.]+)">(.*?)</word>'
)


def page_texts(pdf: Path) -> list[str]:
    """The text of every page (``pdftotext -layout``), one string a page."""
    out = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    return out.split("\f")[:-1] if out.endswith("\f") else out.split("\f")


def appendix_page(pdf: Path) -> int | None:
    """The page (1-based) whose text has the line ``Appendix``, the appendix's first; None
    when there is none."""
    for number, text in enumerate(page_texts(pdf), start=1):
        if any(line.strip() == APPENDIX for line in text.splitlines()):
            return number
    return None


def page_words(
    pdf: Path,
) -> list[tuple[float, float, list[tuple[float, float, float, float, str]]]]:
    """Per page: its width, height and words as ``(x0, y0, x1, y1, text)`` in points."""
    xml = subprocess.run(
        ["pdftotext", "-bbox-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    pages = []
    for chunk in xml.split("<page ")[1:]:
        size = _PAGE.match("<page " + chunk)
        words = [
            (float(a), float(b), float(c), float(d), text)
            for a, b, c, d, text in _WORD.findall(chunk)
        ]
        pages.append((float(size[1]), float(size[2]), words))
    return pages


def page_ink(pdf: Path) -> list[np.ndarray]:
    """Every page rasterised at :data:`DPI`, as a boolean array of its inked pixels."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        subprocess.run(
            ["pdftoppm", "-gray", "-r", str(DPI), "-png", str(pdf), str(folder / "page")],
            check=True,
        )
        return [
            np.asarray(Image.open(p).convert("L")) < INK for p in sorted(folder.glob("page-*.png"))
        ]


def _overlap(a, b) -> bool:
    """Whether two word boxes cover each other (more than a glyph's rounding)."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return width > 1.0 and height > 0.4 * min(a[3] - a[1], b[3] - b[1])


def _largest_blank_band(rows: np.ndarray) -> int:
    """The longest run of rows without ink."""
    longest = run = 0
    for inked in rows:
        run = 0 if inked else run + 1
        longest = max(longest, run)
    return longest


def _clashes(words) -> list[tuple[str, str]]:
    """Pairs of words whose boxes cover each other."""
    ordered, out = sorted(words), []
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            if b[0] >= a[2]:  # sorted by left edge: no later word reaches back over a
                break
            if _overlap(a, b):
                out.append((a[4], b[4]))
    return out


def layout_problems(pdf: Path) -> list[str]:
    """Every fault of the paper's layout, as sentences; empty when there is none."""
    problems = []
    start = appendix_page(pdf)
    pages = page_words(pdf)
    if start is None:
        problems.append(f"no page has the heading {APPENDIX!r}")
        main = len(pages)
    else:
        main = start - 1
    if main > MAX_MAIN_PAGES:
        problems.append(f"the main text has {main} pages (at most {MAX_MAIN_PAGES})")
    for number, (width, _, words) in enumerate(pages, start=1):
        left, right = MARGIN_PT - TOLERANCE_PT, width - MARGIN_PT + TOLERANCE_PT
        outside = [w[4] for w in words if w[0] < left or w[2] > right]
        if outside:
            problems.append(f"page {number}: words outside the text block: {outside[:5]}")
        clashes = _clashes(words)
        if clashes:
            problems.append(f"page {number}: words on top of each other: {clashes[:5]}")
    for number, ink in enumerate(page_ink(pdf), start=1):
        height_px, width_px = ink.shape
        margin = round(MARGIN_PT / 72 * DPI)
        slack = 2
        columns = ink.any(axis=0)
        if columns[: margin - slack].any() or columns[width_px - margin + slack :].any():
            problems.append(f"page {number}: ink in the left or right margin")
        if number < main:  # the main text's last page may end early
            block = ink[margin : height_px - margin].any(axis=1)
            blank = _largest_blank_band(block) / len(block)
            if blank > MAX_BLANK:
                problems.append(
                    f"page {number}: {blank:.0%} of the text block is one blank band "
                    f"(at most {MAX_BLANK:.0%})"
                )
    return problems


@pytest.mark.slow
@needs_poppler
def test_smoke_paper_is_laid_out_as_a_paper(smoke_run, tmp_path):
    pdf = smoke_run / "results/paper/paper.pdf"
    start = appendix_page(pdf)
    assert start is not None and 1 < start <= MAX_MAIN_PAGES + 1, start
    assert len(page_texts(pdf)) > start  # the appendix holds the per-model tables and figures
    assert layout_problems(pdf) == []


# ------------------------------------------------------------------- the checks can fail
TYPST_PAGE = '#set page(paper: "a4", margin: 2cm, numbering: "1")\n#set text(size: 10pt)\n'


def _compile(tmp_path: Path, body: str) -> Path:
    import typst

    (tmp_path / "doc.typ").write_text(TYPST_PAGE + body)
    pdf = tmp_path / "doc.pdf"
    typst.compile(str(tmp_path / "doc.typ"), output=str(pdf), ignore_system_fonts=True)
    return pdf


LOREM = "#lorem(600)\n"  # more than a page
APPENDIX_HEADING = f"#pagebreak(weak: true)\n= {APPENDIX}\n#lorem(50)\n"


def _problems(tmp_path: Path, name: str, body: str) -> list[str]:
    folder = tmp_path / name
    folder.mkdir()
    return layout_problems(_compile(folder, body))


@needs_poppler
def test_layout_checks_find_what_they_look_for(tmp_path):
    assert _problems(tmp_path, "good", LOREM * 3 + APPENDIX_HEADING) == []
    assert appendix_page(tmp_path / "good" / "doc.pdf") > 2  # after two full pages

    # 18 cm of columns in a 17 cm block, numbers right-aligned: the last column's spill over
    wide = "#table(columns: (4.5cm,) * 4, align: right, ..range(8).map(i => [0.#i]))\n"
    problems = _problems(tmp_path, "wide", wide + APPENDIX_HEADING)
    assert any("words outside the text block" in p for p in problems), problems
    assert any("ink in the left or right margin" in p for p in problems), problems

    clash = "#table(columns: (1.2cm,) * 3, box(width: 3cm)[model_name_too_long], [0.71], [0.35])\n"
    problems = _problems(tmp_path, "clash", clash + APPENDIX_HEADING)
    assert any("on top of each other" in p for p in problems), problems

    gap = "#lorem(60)\n#pagebreak()\n" + LOREM + APPENDIX_HEADING
    problems = _problems(tmp_path, "gap", gap)
    assert any(p.startswith("page 1:") and "blank band" in p for p in problems), problems
    assert not any(p.startswith("page 2:") for p in problems), problems  # the main text's last

    # a page a little over half full (a 45% band): half empty in all but name, found too
    half = "#lorem(500)\n#pagebreak()\n" + LOREM + APPENDIX_HEADING
    problems = _problems(tmp_path, "half", half)
    assert any(p.startswith("page 1:") and "blank band" in p for p in problems), problems

    long = "#lorem(300)\n#pagebreak()\n" * 10 + APPENDIX_HEADING
    problems = _problems(tmp_path, "long", long)
    assert any("the main text has 10 pages" in p for p in problems), problems

    problems = _problems(tmp_path, "none", LOREM)
    assert any("no page has the heading" in p for p in problems), problems
