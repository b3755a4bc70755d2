"""The registry of figures: ``@figure`` names a drawing function, :func:`draw` saves it.

A figure function takes the paths of the tables it is drawn from and returns a Matplotlib
figure; nothing is computed in it but means. The paper's main figures
(:data:`PAPER_FIGURES`, the list :mod:`iterlens.report.paper_figures` holds) are drawn at the
width of the paper's text block with the font sizes of :data:`PAPER_RC`, so they print at 100%.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from iterlens.io import atomic_path  # noqa: E402
from iterlens.report.paper_figures import MAIN_FIGURES  # noqa: E402

FigureFunction = Callable[[Sequence[str]], plt.Figure]
FIGURES: dict[str, FigureFunction] = {}
PAPER_FIGURES = MAIN_FIGURES  # one list: the paper's main figures, in the argument's order
TEXT_WIDTH_IN = (21.0 - 2 * 2.0) / 2.54  # the paper's text block: A4 less two 2 cm margins
# Font sizes of the main figures, in points at print size: they are drawn at the width of the
# text block and shown at 100%, so no label prints below 7 pt.
PAPER_RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "figure.titlesize": 8,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
}
PAPER_DPI = 200


def figure(name: str) -> Callable[[FigureFunction], FigureFunction]:
    """Register a figure function under ``name`` (the ``--figure`` of ``iterlens plot``)."""

    def wrap(fn: FigureFunction) -> FigureFunction:
        if name in FIGURES:
            raise ValueError(f"figure '{name}' registered twice")
        FIGURES[name] = fn
        return fn

    return wrap


def draw(name: str, inputs: Sequence[str], out: str | Path) -> None:
    """Draw figure ``name`` from ``inputs`` and save it to ``out`` atomically."""
    if name not in FIGURES:
        raise ValueError(f"unknown figure '{name}'; known: {', '.join(sorted(FIGURES))}")
    sns.set_theme(style="whitegrid", context="paper")
    paper = name in PAPER_FIGURES
    with plt.rc_context(PAPER_RC if paper else {}):
        fig = FIGURES[name](inputs)
        with atomic_path(out) as tmp:
            fig.savefig(
                tmp,
                dpi=PAPER_DPI if paper else 150,
                bbox_inches="tight",
                pad_inches=0.02 if paper else 0.1,
                format=Path(out).suffix[1:] or "png",
            )
    plt.close(fig)
