"""Figures across models on relative depth: the LM against the CNNs, the LMs side by side."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt

from iterlens.io import read_table
from iterlens.report.figures.common import band_lines
from iterlens.report.figures.registry import figure


@figure("comparison")
def comparison(inputs: Sequence[str]) -> plt.Figure:
    """LM vs CNNs over layers 1..L on the common scale, with 95% bands.

    Probe accuracy, and tuned-lens KL and transfer penalty as fractions of the final model's
    information gain. One line per model, weights and (when the table has a ``seed`` column) seed.
    """
    table = read_table(inputs[0])
    if "twin" in table:  # the rotated and partial twins are controls of their own
        table = table[table["twin"].isin(["model", "random"])]
    table = table.assign(label=table["model"] + " (" + table["weights"] + ")")
    by = ["label", "seed"] if "seed" in table else ["label"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, (quantity, x, label) in zip(
        axes,
        [
            ("probe_top1_acc", "depth_frac", "free probe top-1 accuracy"),
            ("tuned_kl_frac", "depth_frac", "tuned lens KL / info gain"),
            ("transfer_ce_penalty_frac", "rel_distance", "transfer CE penalty / info gain"),
        ],
        strict=True,
    ):
        part = table[table["quantity"] == quantity]
        if x == "depth_frac":
            part = part[part["layer"] >= 1]
        part = part.rename(columns={"value_lo": "v_lo", "value_hi": "v_hi"})
        part = part.rename(columns={"value": "v"})
        band_lines(ax, part, x, "v", by)
        ax.set_ylabel(label)
        ax.set_xlabel("relative layer distance |i-j|/L" if x == "rel_distance" else "depth l/L")
    axes[1].set_title("layers 1..L; untrained nets: not informative, not drawn", fontsize=8)
    axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False, fontsize=7)
    fig.tight_layout()
    return fig


@figure("lms")
def lms(inputs: Sequence[str]) -> plt.Figure:
    """Every trained LM of the run side by side on the common scale, with 95% bands.

    The LMs are the models with a logit lens (seed 0, not a twin). Left: KL to the final
    distribution over the information gain of the logit lens (dashed) and the tuned lens
    (solid) by relative depth l/L, layers 1..L-1 (layer 0 apart); middle: the shared lens
    (dashed) against the tuned lens (solid); right: the share of the own lens's information
    gain a tuned lens keeps when moved by |i - j| (bounded in [0, 1]).
    """
    table = read_table(inputs[0])
    lm_rows = table["quantity"] == "logit_kl_frac"
    keep = table["model"].isin(set(table.loc[lm_rows, "model"]))
    keep &= (table["weights"] == "trained") & (table["seed"] == 0)
    if "twin" in table:
        keep &= table["twin"] == "model"
    table = table[keep].rename(columns={"value": "v", "value_lo": "v_lo", "value_hi": "v_hi"})
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    kl = "KL to final / info gain"
    panels = [  # the first quantity of a pair is drawn dashed
        (("logit_kl_frac", "tuned_kl_frac"), kl, "logit lens (--), tuned lens (-)"),
        (("shared_kl_frac", "tuned_kl_frac"), kl, "shared lens (--), tuned lens (-)"),
        (("transfer_kept",), "share of information gain kept", "a tuned lens moved by |i-j|"),
    ]
    for ax, (quantities, ylabel, title) in zip(axes, panels, strict=True):
        part = table[table["quantity"].isin(quantities)]
        x = "rel_distance" if quantities == ("transfer_kept",) else "depth_frac"
        if x == "depth_frac":
            part = part[(part["layer"] >= 1) & (part["depth_frac"] < 1)]
        order = {q: i for i, q in enumerate(reversed(quantities))}
        part = part.assign(lens=part["quantity"].map(order)).sort_values("lens")
        band_lines(ax, part, x, "v", ["model", "quantity"] if len(quantities) > 1 else ["model"])
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("relative layer distance |i-j|/L" if x == "rel_distance" else "depth l/L")
    axes[2].set_ylim(0, 1.02)
    handles, labels = axes[2].get_legend_handles_labels()
    axes[2].legend(handles, labels, loc="lower left", frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
