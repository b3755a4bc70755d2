"""The main figures' conventions: lens styles, model colours, grids, curves on depth.

Each main figure carries one step of the argument across every studied model at once, drawn
at the width of the paper's text block (:data:`iterlens.report.figures.registry.PAPER_RC`).
Models whose final distribution is not informative (untrained nets) have no KL or transfer
values: they are left out, never drawn as empty panels; the paper names them in its text.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes

LENS_STYLE = {  # lens -> (colour, line style, label); colour-blind-safe colours
    "logit": ("#555555", "--", "logit lens"),
    "tuned": ("#0072B2", "-", "tuned lens"),
    "shared": ("#D55E00", "-.", "shared lens"),
}
LOG_FLOOR = 1e-4  # values below it are drawn at it on a log axis (bits or fractions)


def panel_grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    """Rows and columns of a grid of ``n`` panels, at most ``max_cols`` a row."""
    cols = max(1, min(n, max_cols))
    return -(-max(n, 1) // cols), cols


def model_colours(models: Sequence[str]) -> dict[str, tuple]:
    """One colour per model, in the order given (the study's), the same in every main figure."""
    return dict(zip(models, sns.color_palette("colorblind", max(len(models), 1)), strict=False))


def seed0(table: pd.DataFrame, weights: str = "trained") -> pd.DataFrame:
    """The comparison table's rows of seed 0 with ``weights``, not a rotated or partial twin."""
    keep = (table["weights"] == weights) & (table["seed"] == 0)
    if "twin" in table:
        keep &= table["twin"].isin(["model", "random"])
    return table[keep]


def drawn_models(table: pd.DataFrame, quantities: Sequence[str]) -> list[str]:
    """The models (in table order) with a finite value of one of ``quantities``."""
    part = table[table["quantity"].isin(quantities)].dropna(subset=["value"])
    return [m for m in dict.fromkeys(table["model"]) if m in set(part["model"])]


def on_log_axis(values: Sequence[float] | pd.Series) -> pd.Series:
    """``values`` for a log axis: below :data:`LOG_FLOOR` drawn at it."""
    return pd.Series(values, dtype=float).clip(lower=LOG_FLOOR)


def depth_curve(
    ax: Axes, part: pd.DataFrame, colour: object, ls: str, label: str | None, log: bool
) -> None:
    """One quantity on relative depth: layers 1..L-1 joined, with their 95% band.

    Layer 0 is apart (a hollow marker at 0 with its interval, not joined); layer L is left
    out (a lens's KL is 0 there by definition).
    """
    part = part.dropna(subset=["value"]).sort_values("layer")
    fix = on_log_axis if log else (lambda v: pd.Series(v, dtype=float))
    inner = part[(part["layer"] >= 1) & (part["depth_frac"] < 1)]
    if len(inner):
        x = inner["depth_frac"].to_numpy(float)
        ax.plot(x, fix(inner["value"]), ls=ls, marker="o", color=colour, label=label)
        if inner["value_lo"].notna().any():
            ax.fill_between(
                x, fix(inner["value_lo"]), fix(inner["value_hi"]), color=colour, alpha=0.18, lw=0
            )
        label = None
    first = part[part["layer"] == 0]
    if len(first):
        v, lo, hi = (float(fix(first[c]).iloc[0]) for c in ("value", "value_lo", "value_hi"))
        err = None if pd.isna(lo) else [[max(v - lo, 0)], [max(hi - v, 0)]]
        ax.errorbar([0.0], [v], yerr=err, fmt="o", mfc="white", mec=colour, ecolor=colour,
                    capsize=2, label=label)  # fmt: skip


def depth_axis(ax: Axes) -> None:
    """Relative depth l/L on the x axis, from layer 0 (a little left of 0) to 1."""
    ax.set_xlim(-0.06, 1.0)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1], ["0", "", "0.5", "", "1"])
    ax.set_xlabel("relative depth l/L")
