"""Per-model figures of the lenses by layer: metrics, shared lens, prediction depth, ranks.

KL, CE and top-1 accuracy per lens; the shared lens against the tuned and logit lens; the
share of examples by prediction depth; the ranks of the input and final tokens. A model and
its untrained twin share the axes.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from iterlens.report.figures.common import (
    LENS_ORDER,
    band_lines,
    final_ce,
    not_informative,
    tables_of,
)
from iterlens.report.figures.registry import figure


@figure("lens_curves")
def lens_curves(inputs: Sequence[str]) -> plt.Figure:
    """KL to the final distribution (log scale) and CE per layer, per lens, with 95% bands.

    The CE axis is scaled to layers 1..L; layer 0 (embeddings, stem) is noted when off scale.
    Models whose final distribution is not informative have no KL line (see the title).
    """
    table = tables_of(inputs)
    table = table[table["lens"].isin(LENS_ORDER)]
    models = list(dict.fromkeys(table["model"]))
    by = ["lens", "model"] if len(models) > 1 else ["lens"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, metric, label in zip(
        axes,
        ["kl_bits", "ce_bits", "top1_acc"],
        ["KL(final || lens), bits (log)", "cross-entropy, bits", "top-1 accuracy"],
        strict=True,
    ):
        band_lines(ax, table, "layer", metric, by)
        ax.set_xlabel("layer")
        ax.set_ylabel(label)
    axes[0].set_yscale("log")
    inner = table[table["layer"] >= 1]
    lo, hi = inner["ce_bits"].min(), inner["ce_bits"].max()
    axes[1].set_ylim(lo - 0.1 * (hi - lo + 0.1), hi + 0.1 * (hi - lo + 0.1))
    for model in models:
        axes[1].axhline(final_ce(table[table["model"] == model]), color="grey", ls=":", lw=1)
    off = table[(table["layer"] == 0) & (table["ce_bits"] > axes[1].get_ylim()[1])]
    note = "dotted: final CE"
    if len(off):
        note += f"; layer 0 off scale (up to {off['ce_bits'].max():.1f} bits)"
    axes[1].set_title(note, fontsize=8)
    blank = not_informative(table)
    if blank:
        axes[0].set_title("no KL for " + ", ".join(blank) + " (not informative)", fontsize=8)
    axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False, fontsize=7)
    fig.suptitle("Lenses per layer (bands: 95% bootstrap): " + ", ".join(models))
    fig.tight_layout()
    return fig


@figure("shared_lens")
def shared_lens(inputs: Sequence[str]) -> plt.Figure:
    """The one shared lens against each layer's own tuned lens and the logit lens, 95% bands.

    Over the layers the shared lens is fitted on (1..L-1 by default): its CE and KL penalty
    over the per-layer tuned lens, and the logit lens's KL over the tuned lens, on one axis.
    A triangle marks each layer where the parameter-free logit lens is closer to the final
    distribution than the shared lens (paired 95% interval of shared minus logit KL above
    zero). Layer 0 and L, where the shared lens is not fitted, are given in the title.
    """
    table = tables_of(inputs)
    n_layers = int(table["layer"].max())
    inner = table[(table["layer"] >= 1) & (table["layer"] < n_layers)]
    shared, logit = (inner[inner["lens"] == lens] for lens in ("shared", "logit"))
    parts = [
        frame[["model", "layer"]].assign(
            metric=name,
            bits=frame[f"{m}_minus_tuned_bits"],
            bits_lo=frame[f"{m}_minus_tuned_bits_lo"],
            bits_hi=frame[f"{m}_minus_tuned_bits_hi"],
        )
        for name, frame, m in (
            ("shared: CE penalty", shared, "ce"),
            ("shared: KL penalty", shared, "kl"),
            ("logit lens: KL over tuned", logit, "kl"),
        )
    ]
    long = pd.concat(parts)
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    layers = sorted(inner["layer"].unique())
    colours = dict(zip(dict.fromkeys(long["metric"]), sns.color_palette(), strict=False))
    if len(layers) > 2:
        band_lines(ax, long, "layer", "bits", ["metric", "model"])
    series = list(long.dropna(subset=["bits"]).groupby(["metric", "model"], sort=False))
    for k, ((metric, model), part) in enumerate(series):
        few = len(layers) <= 2  # a line through one or two points says little: bars
        x = part["layer"] + ((k - (len(series) - 1) / 2) * 0.8 / len(series) if few else 0)
        err = [part["bits"] - part["bits_lo"], part["bits_hi"] - part["bits"]]
        if few:
            ax.bar(x, part["bits"], width=0.8 / len(series), yerr=err, capsize=3,
                   color=colours[metric], label=f"{metric} / {model}")  # fmt: skip
        else:  # interval bars over the bands, so each layer's interval reads on its own
            ax.errorbar(x, part["bits"], yerr=err, ls="none", marker="o", ms=5, capsize=3,
                        color=colours[metric], label="_nolegend_")  # fmt: skip
    if layers:
        ax.set_xticks(layers)
        ax.set_xlim(layers[0] - 0.5, layers[-1] + 0.5)
    beaten = shared[shared["kl_minus_logit_bits_lo"] > 0]
    if len(beaten):
        ax.scatter(
            beaten["layer"],
            beaten["kl_minus_tuned_bits"],
            marker="^",
            s=60,
            color="black",
            zorder=5,
            label="logit lens closer than shared",
        )
    ax.axhline(0, color="grey", lw=1)
    ax.set_xlabel("layer (the shared lens's fitted layers)")
    ax.set_ylabel("bits over the per-layer tuned lens")
    ax.legend(frameon=False, fontsize=7)
    edge = table[(table["lens"] == "shared") & table["layer"].isin([0, n_layers])]
    title = "Shared lens vs per-layer tuned lens and logit lens (95% intervals)"
    if edge["ce_minus_tuned_bits"].notna().any():
        title += "\nnot fitted, CE penalty: " + ", ".join(
            f"layer {int(r.layer)} {r.ce_minus_tuned_bits:.2f} bits ({r.model})"
            for r in edge.dropna(subset=["ce_minus_tuned_bits"]).itertuples()
        )
    blank = not_informative(table)
    if blank:
        title += "\nnot informative, not drawn: " + ", ".join(blank)
    ax.set_title(title, fontsize=8)
    return fig


@figure("prediction_depth")
def prediction_depth(inputs: Sequence[str]) -> plt.Figure:
    """Histogram of prediction depth per lens, and the final loss of each depth bin."""
    table = tables_of(inputs)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    sns.barplot(table, x="depth", y="share", hue="lens", ax=axes[0])
    axes[0].set_title("Share of examples by prediction depth")
    sns.lineplot(
        table[table["count"] > 0],
        x="depth",
        y="mean_final_ce_bits",
        hue="lens",
        style="model" if table["model"].nunique() > 1 else None,
        markers=True,
        ax=axes[1],
    )
    axes[1].set_title("Final CE (bits) of the examples at each depth")
    fig.tight_layout()
    return fig


@figure("ranks")
def ranks(inputs: Sequence[str]) -> plt.Figure:
    """Rank of the current input token and of the final top-1 under each lens, per layer."""
    table = tables_of(inputs)
    table = table[table["lens"].isin(["logit", "tuned"])]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, what in zip(axes, ["input", "final_top1"], strict=True):
        long = table.melt(
            id_vars=["model", "lens", "layer"],
            value_vars=[f"rank_{what}_top1", f"rank_{what}_top10"],
            var_name="share",
            value_name="value",
        )
        long["share"] = long["share"].str.replace(f"rank_{what}_", "in ")
        sns.lineplot(long, x="layer", y="value", hue="lens", style="share", markers=True, ax=ax)
        ax.set_ylabel("share of tokens")
        ax.set_title(f"{'current input token' if what == 'input' else 'final top-1 token'}")
    fig.tight_layout()
    return fig
