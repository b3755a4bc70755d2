"""Training and fitting curves: the reference LM's loss, and the convergence of each lens."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from iterlens.artifacts import model_of_table
from iterlens.io import read_table
from iterlens.report.figures.registry import figure


@figure("lm_training")
def lm_training(inputs: Sequence[str]) -> plt.Figure:
    """Train and validation loss of the reference LM against tokens seen."""
    curve = read_table(inputs[0]).melt(
        id_vars=["step", "tokens"],
        value_vars=["train_loss_nats", "val_loss_nats"],
        var_name="split",
        value_name="loss (nats)",
    )
    curve["split"] = curve["split"].str.replace("_loss_nats", "")
    fig, ax = plt.subplots(figsize=(5, 3.2))
    sns.lineplot(curve, x="tokens", y="loss (nats)", hue="split", marker="o", ax=ax)
    ax.set_title("Reference LM training")
    return fig


@figure("fit")
def fit(inputs: Sequence[str]) -> plt.Figure:
    """Convergence of each fitted lens: train and held-out loss per evaluation, per model.

    ``inputs`` are ``fit_{kind}.csv`` tables; the kind is read from the file name and the
    model from the folder. The step whose parameters the lens keeps is circled.
    """
    parts = []
    for path in inputs:
        table = read_table(path)
        table["kind"] = Path(path).stem.removeprefix("fit_")
        table["model"] = model_of_table(path)
        parts.append(table)
    curves = pd.concat(parts, ignore_index=True)
    long = curves.melt(
        id_vars=["model", "kind", "step", "best"],
        value_vars=["train_loss_nats", "heldout_loss_nats"],
        var_name="split",
        value_name="loss (nats)",
    ).dropna(subset=["loss (nats)"])
    long["split"] = long["split"].str.replace("_loss_nats", "")
    kinds = list(dict.fromkeys(curves["kind"]))
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.4 * len(kinds), 3.4), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        part = long[long["kind"] == kind]
        sns.lineplot(part, x="step", y="loss (nats)", hue="model", style="split", ax=ax)
        best = part[part["best"] & (part["split"] == "heldout")]
        ax.scatter(best["step"], best["loss (nats)"], s=60, facecolors="none", edgecolors="k")
        ax.set_yscale("log")
        objective = "CE to targets" if kind == "probe" else "KL to final"
        ax.set_title(f"{kind} ({objective}, per layer)")
        if ax is not axes[0][-1]:
            ax.get_legend().remove()
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.suptitle("Lens fitting: train and held-out loss; circled: the kept step")
    fig.tight_layout()
    return fig
