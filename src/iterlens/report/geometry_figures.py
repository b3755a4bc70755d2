"""The geometry figure of one model: how much each block changes h, and CKA between layers.

Drawn from the tables of :mod:`iterlens.probing.geometry` (``updates.csv``, ``cka.csv``),
with the conventions of :mod:`iterlens.report.figures`: seaborn's whitegrid paper theme,
models named by the folder their table lives in, saved atomically at 150 dpi.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from iterlens.artifacts import model_of_table  # noqa: E402
from iterlens.io import atomic_path, read_table  # noqa: E402

UPDATE_LABELS = {
    "rel_update": "mean of ||Δ|| / ||h_l||",
    "rel_update_ratio_of_means": "rms ||Δ|| / rms ||h_l||",
}


def _updates(updates: Sequence[str | Path | pd.DataFrame] | pd.DataFrame) -> pd.DataFrame:
    """One long table of relative updates; a table read from a file is named by its folder."""
    if isinstance(updates, pd.DataFrame):
        updates = [updates]
    parts = []
    for i, item in enumerate(updates):
        if isinstance(item, pd.DataFrame):
            part = item if "model" in item else item.assign(model=f"model {i}")
        else:
            part = read_table(item).assign(model=model_of_table(item))
        parts.append(part)
    table = pd.concat(parts, ignore_index=True)
    return table.melt(
        id_vars=["model", "layer"],
        value_vars=list(UPDATE_LABELS),
        var_name="measure",
        value_name="relative update",
    ).replace({"measure": UPDATE_LABELS})


def geometry_figure(
    updates: Sequence[str | Path | pd.DataFrame] | pd.DataFrame,
    cka: str | Path | pd.DataFrame,
    title: str | None = None,
) -> plt.Figure:
    """Left: the relative update of each block, per model; right: the CKA heatmap of one model.

    ``updates`` are ``updates.csv`` tables (paths or frames: the model and, where it has one,
    its untrained twin on the same axes); ``cka`` is one model's ``cka.csv``.
    """
    long = _updates(updates)
    cka = cka if isinstance(cka, pd.DataFrame) else read_table(cka)
    grid = cka.pivot(index="layer_a", columns="layer_b", values="cka")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), width_ratios=[1, 1.1])
    sns.lineplot(
        long,
        x="layer",
        y="relative update",
        hue="model",
        style="measure",
        markers=True,
        ax=axes[0],
    )
    axes[0].set_xlabel("block l (update from h_l to h_{l+1})")
    axes[0].set_ylim(bottom=0)
    axes[0].set_title("Relative update per block")
    sns.heatmap(
        grid,
        ax=axes[1],
        cmap="viridis",
        vmin=0,
        vmax=1,
        annot=len(grid) <= 13,
        fmt=".2f",
        square=True,
        cbar_kws={"label": "linear CKA"},
    )
    axes[1].set_xlabel("layer")
    axes[1].set_ylabel("layer")
    axes[1].set_title("Linear CKA between layers")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_geometry(
    updates: Sequence[str | Path | pd.DataFrame] | pd.DataFrame,
    cka: str | Path | pd.DataFrame,
    out_png: str | Path,
    title: str | None = None,
) -> None:
    """Draw :func:`geometry_figure` and save it to ``out_png`` atomically."""
    sns.set_theme(style="whitegrid", context="paper")
    fig = geometry_figure(updates, cka, title)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=150, bbox_inches="tight", format=Path(out_png).suffix[1:] or "png")
    plt.close(fig)
