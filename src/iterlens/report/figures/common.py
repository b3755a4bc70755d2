"""What the per-model figures share: tables told apart by folder, lines with 95% bands.

Tables of several models are told apart by the name of the folder they live in
(``results/tables/<model>/``). A model whose final distribution is not informative (an
untrained net) has no KL or transfer values; :func:`not_informative` names such models so a
figure can say so rather than draw an empty line.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes

from iterlens import artifacts
from iterlens.artifacts import model_of_table
from iterlens.io import read_table

LENS_ORDER = list(artifacts.LENS_KINDS)


def tables_of(paths: Sequence[str]) -> pd.DataFrame:
    """The tables at ``paths`` as one, each row with the ``model`` its folder names."""
    return pd.concat(
        [read_table(p).assign(model=model_of_table(p)) for p in paths], ignore_index=True
    )


def final_ce(metrics: pd.DataFrame) -> float:
    """The logit lens's CE at the last layer: the model's own final CE (bits)."""
    last = metrics[metrics["lens"] == "logit"].sort_values("layer").iloc[-1]
    return float(last["ce_bits"])


def band_lines(ax: Axes, table: pd.DataFrame, x: str, y: str, by: Sequence[str]) -> None:
    """One line per ``by`` group with its 95% interval band (``{y}_lo``, ``{y}_hi``).

    The first key of ``by`` picks the colour, the second (if any) the line style.
    """
    palette = dict(zip(dict.fromkeys(table[by[0]]), sns.color_palette(), strict=False))
    dashes = ["-", "--", ":", "-."]
    second = list(dict.fromkeys(table[by[1]])) if len(by) > 1 else [None]
    for key, part in table.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        part = part.dropna(subset=[y]).sort_values(x)
        if part.empty:
            continue
        ls = dashes[second.index(key[1]) % len(dashes)] if len(by) > 1 else "-"
        label = " / ".join(str(k) for k in key)
        ax.plot(part[x], part[y], ls=ls, marker="o", ms=3, color=palette[key[0]], label=label)
        if f"{y}_lo" in part:
            ax.fill_between(
                part[x], part[f"{y}_lo"], part[f"{y}_hi"], color=palette[key[0]], alpha=0.2, lw=0
            )


def not_informative(table: pd.DataFrame) -> list[str]:
    """The models of ``table`` flagged as having no informative final distribution."""
    if "informative" not in table:
        return []
    flags = table.groupby("model")["informative"].first()
    return [m for m, ok in flags.items() if not ok]


def is_informative(table: pd.DataFrame) -> bool:
    """Whether a per-model table is of a model with an informative final distribution."""
    return "informative" not in table or bool(table["informative"].astype(bool).all())
