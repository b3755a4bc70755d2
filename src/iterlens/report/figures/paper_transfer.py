"""The paper's main transfer figure: every model's transfer matrix on one bounded scale."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd

from iterlens.artifacts import model_of_table
from iterlens.io import read_table
from iterlens.report.figures.common import is_informative
from iterlens.report.figures.paper_axes import panel_grid
from iterlens.report.figures.registry import TEXT_WIDTH_IN, figure


@figure("paper_transfer")
def paper_transfer(inputs: Sequence[str]) -> plt.Figure:
    """The transfer matrices of every studied model side by side, on one bounded scale.

    From each model's ``transfer.csv``: the share of the own lens's information gain that
    layer i's tuned lens keeps on layer j (``kept``, in [0, 1]; 1 on the diagonal), one panel
    per model with an informative final distribution and one colour bar. White lines set
    layer 0 (embeddings, stem) apart.
    """
    tables = [(model_of_table(p), read_table(p)) for p in inputs]
    tables = [(m, t) for m, t in tables if is_informative(t) and t["kept"].notna().any()]
    rows, cols = panel_grid(len(tables))
    side = (TEXT_WIDTH_IN - 1.0) / cols
    fig, axes = plt.subplots(
        rows, cols, figsize=(TEXT_WIDTH_IN, rows * (side + 0.55)), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    image = None
    for k, (ax, (model, table)) in enumerate(zip(axes.flat, tables, strict=False)):
        grid = table.pivot(index="lens_layer", columns="data_layer", values="kept")
        image = ax.imshow(grid.to_numpy(float), vmin=0, vmax=1, cmap="viridis", aspect="equal")
        layers = [int(x) for x in grid.columns]
        step = max(1, -(-len(layers) // 8))
        ticks = list(range(0, len(layers), step))
        ax.set_xticks(ticks, [layers[t] for t in ticks])
        ax.set_yticks(ticks, [layers[t] for t in ticks])
        ax.grid(False)
        if side / len(layers) >= 0.3:  # room for a 7 pt number in each cell
            for (i, j), v in pd.DataFrame(grid.to_numpy(float)).stack().items():
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if v > 0.6 else "white")  # fmt: skip
        ax.axhline(0.5, color="white", lw=1.5)
        ax.axvline(0.5, color="white", lw=1.5)
        ax.set_title(f"{model} (L = {max(layers)})")
        ax.set_xlabel("data layer j")
        if k % cols == 0:
            ax.set_ylabel("tuned lens of layer i")
    for ax in axes.flat[len(tables) :]:
        ax.remove()
    if image is not None:
        used = list(axes.flat[: len(tables)])
        fig.colorbar(image, ax=used, shrink=0.9, label="share of own gain kept")
    return fig
