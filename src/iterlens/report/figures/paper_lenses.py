"""The paper's main figures of the lenses: logit and tuned lens by depth, the shared lens."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt

from iterlens.io import read_table
from iterlens.report.figures.paper_axes import (
    LENS_STYLE,
    depth_axis,
    depth_curve,
    drawn_models,
    model_colours,
    panel_grid,
    seed0,
)
from iterlens.report.figures.registry import TEXT_WIDTH_IN, figure


@figure("paper_lenses")
def paper_lenses(inputs: Sequence[str]) -> plt.Figure:
    """The logit and the tuned lens of every studied model on relative depth, one scale.

    From ``comparison.csv``: KL to the final distribution over the model's information gain
    (log scale, 95% bands) of the logit lens (left) and the tuned lens (right) of each trained
    model (seed 0), layers 1..L-1 by l/L and layer 0 apart. Models without an informative
    final distribution are left out.
    """
    table = read_table(inputs[0])
    trained = seed0(table)
    colours = model_colours(list(dict.fromkeys(trained["model"])))
    lenses = ("logit", "tuned")
    models = drawn_models(trained, [f"{lens}_kl_frac" for lens in lenses])
    fig, axes = plt.subplots(1, 2, figsize=(TEXT_WIDTH_IN, 2.6), sharey=True, layout="constrained")
    for ax, lens in zip(axes, lenses, strict=True):
        part = trained[trained["quantity"] == f"{lens}_kl_frac"]
        for model in models:
            depth_curve(ax, part[part["model"] == model], colours[model], LENS_STYLE[lens][1],
                         model, log=True)  # fmt: skip
        ax.set_yscale("log")
        ax.set_title(LENS_STYLE[lens][2])
        depth_axis(ax)
    axes[0].set_ylabel("KL to final / information gain")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5),
                   frameon=False)  # fmt: skip
    return fig


@figure("paper_shared")
def paper_shared(inputs: Sequence[str]) -> plt.Figure:
    """The one shared lens against the per-layer tuned lens and the logit lens, per model.

    From ``comparison.csv``: one panel per trained model (seed 0) with an informative final
    distribution, KL to the final over the information gain (log scale, 95% bands) of the
    three lenses on relative depth (layers 1..L-1 joined, layer 0 apart).
    """
    table = read_table(inputs[0])
    trained = seed0(table)
    quantities = {lens: f"{lens}_kl_frac" for lens in LENS_STYLE}
    models = drawn_models(trained, list(quantities.values()))
    rows, cols = panel_grid(len(models))
    fig, axes = plt.subplots(
        rows, cols, figsize=(TEXT_WIDTH_IN, 0.4 + 2.1 * rows), sharey=True,
        squeeze=False, layout="constrained",
    )  # fmt: skip
    for ax, model in zip(axes.flat, models, strict=False):
        part = trained[trained["model"] == model]
        for lens, quantity in quantities.items():
            colour, ls, label = LENS_STYLE[lens]
            depth_curve(ax, part[part["quantity"] == quantity], colour, ls, label, log=True)
        n_layers = int(part["layer"].max())
        ax.set(yscale="log", title=f"{model} (L = {n_layers})")
        depth_axis(ax)
    for ax in axes.flat[len(models) :]:
        ax.remove()
    for ax in axes[:, 0]:
        ax.set_ylabel("KL to final / information gain")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=3, frameon=False)
    return fig
