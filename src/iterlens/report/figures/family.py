"""The figures drawn for every studied model: which, from which table, and drawing them all."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from iterlens import artifacts
from iterlens.models.studied import DOMAINS, LM_DOMAIN
from iterlens.report.figures.registry import draw

# Figures drawn for every model family, and the table each is drawn from.
FAMILY_FIGURES = {
    "lens_curves": "lens_metrics",
    "shared_lens": "lens_metrics",
    "transfer": "transfer",
    "prediction_depth": "prediction_depth",
    "ranks": "lens_metrics",
}


def family_figures(domain: str) -> list[str]:
    """Names of the figures drawn for a model of ``domain`` (``lm``: with ranks)."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; one of {', '.join(DOMAINS)}")
    return [f for f in FAMILY_FIGURES if f != "ranks" or domain == LM_DOMAIN]


def draw_family(
    family: str, models: Sequence[str], domain: str, tables: str | Path, out_dir: str | Path
) -> None:
    """Draw every figure of ``family`` as ``{family}_{figure}.png``.

    ``models`` are drawn on the same axes: the family's model and, where it has one, its
    untrained twin.
    """
    for name in family_figures(domain):
        table = FAMILY_FIGURES[name]
        inputs = [str(Path(tables) / model / f"{table}.csv") for model in models]
        draw(
            name,
            inputs,
            Path(out_dir) / Path(artifacts.FIGURE).name.format(name=f"{family}_{name}"),
        )
