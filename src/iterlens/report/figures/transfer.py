"""The per-model transfer figure: CE and KL penalty of layer i's tuned lens on layer j."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import seaborn as sns

from iterlens.artifacts import model_of_table
from iterlens.io import read_table
from iterlens.report.figures.common import is_informative
from iterlens.report.figures.registry import figure


@figure("transfer")
def transfer(inputs: Sequence[str]) -> plt.Figure:
    """Heatmaps of the CE and KL transfer penalty, lens layer i (rows) on data layer j.

    A model whose final distribution is not informative (an untrained twin) has no penalties:
    it gets no row of empty panels, and the title names it.
    """
    tables = [(model_of_table(p), read_table(p)) for p in inputs]
    blank = [m for m, t in tables if not is_informative(t)]
    tables = [(m, t) for m, t in tables if m not in blank] or tables[:1]
    fig, axes = plt.subplots(len(tables), 2, figsize=(10, 4.2 * len(tables)), squeeze=False)
    for row, (model, table) in zip(axes, tables, strict=True):
        for ax, metric in zip(row, ["ce_penalty_bits", "kl_penalty_bits"], strict=True):
            grid = table.pivot(index="lens_layer", columns="data_layer", values=metric)
            sns.heatmap(
                grid,
                ax=ax,
                cmap="magma_r",
                vmin=0,
                annot=len(grid) <= 13,
                fmt=".1f",
                cbar_kws={"label": "bits"},
            )
            ax.set_title(f"{model}: {metric.replace('_', ' ')}")
            ax.set_xlabel("data layer j")
            ax.set_ylabel("lens of layer i")
    if blank:
        fig.suptitle("not informative, no penalties: " + ", ".join(blank), fontsize=8)
    fig.tight_layout()
    return fig
