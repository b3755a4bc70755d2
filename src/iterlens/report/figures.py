"""Figures, each drawn from the table(s) a rule wrote; nothing is computed here but means.

``draw(name, inputs, out)`` dispatches to one function per figure. Tables of several
models are told apart by the name of the folder they live in (``results/tables/<model>/``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from iterlens import artifacts  # noqa: E402
from iterlens.artifacts import model_of_table  # noqa: E402
from iterlens.io import atomic_path, read_table  # noqa: E402

FIGURES: dict[str, Callable[[Sequence[str]], plt.Figure]] = {}
LENS_ORDER = list(artifacts.LENS_KINDS)


def figure(name: str):
    """Register a figure function."""

    def wrap(fn):
        FIGURES[name] = fn
        return fn

    return wrap


def _tables(paths: Sequence[str]) -> pd.DataFrame:
    return pd.concat(
        [read_table(p).assign(model=model_of_table(p)) for p in paths], ignore_index=True
    )


def draw(name: str, inputs: Sequence[str], out: str | Path) -> None:
    """Draw figure ``name`` from ``inputs`` and save it to ``out`` atomically."""
    if name not in FIGURES:
        raise ValueError(f"unknown figure '{name}'; known: {', '.join(sorted(FIGURES))}")
    sns.set_theme(style="whitegrid", context="paper")
    fig = FIGURES[name](inputs)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=150, bbox_inches="tight", format=Path(out).suffix[1:] or "png")
    plt.close(fig)


# Figures drawn for every model family, and the table each is drawn from.
FAMILY_FIGURES = {
    "lens_curves": "lens_metrics",
    "shared_lens": "lens_metrics",
    "transfer": "transfer",
    "prediction_depth": "prediction_depth",
    "ranks": "lens_metrics",
}


def family_figures(family: str) -> list[str]:
    """Names of the figures drawn for ``family`` (ranks only for LMs)."""
    return [f for f in FAMILY_FIGURES if f != "ranks" or family.startswith("lm")]


def draw_family(family: str, tables: str | Path, out_dir: str | Path) -> None:
    """Draw every figure of ``family`` vs ``{family}_random`` as ``{family}_{figure}.png``."""
    for name in family_figures(family):
        table = FAMILY_FIGURES[name]
        inputs = [
            str(Path(tables) / model / f"{table}.csv") for model in (family, f"{family}_random")
        ]
        draw(
            name,
            inputs,
            Path(out_dir) / Path(artifacts.FIGURE).name.format(name=f"{family}_{name}"),
        )


def _final_ce(metrics: pd.DataFrame) -> float:
    last = metrics[metrics["lens"] == "logit"].sort_values("layer").iloc[-1]
    return float(last["ce_bits"])


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


@figure("lens_curves")
def lens_curves(inputs: Sequence[str]) -> plt.Figure:
    """KL to the final distribution and CE per layer, one line per lens (and model)."""
    table = _tables(inputs)
    table = table[table["lens"].isin(LENS_ORDER)]
    hue_order = [lens for lens in LENS_ORDER if lens in set(table["lens"])]
    models = list(dict.fromkeys(table["model"]))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, metric, label in zip(
        axes,
        ["kl_bits", "ce_bits", "top1_acc"],
        ["KL(final || lens), bits", "cross-entropy, bits", "top-1 accuracy"],
        strict=True,
    ):
        sns.lineplot(
            table,
            x="layer",
            y=metric,
            hue="lens",
            hue_order=hue_order,
            style="model" if len(models) > 1 else None,
            markers=True,
            ax=ax,
        )
        ax.set_ylabel(label)
        if metric == "ce_bits":
            for model in models:
                ax.axhline(_final_ce(table[table["model"] == model]), color="grey", ls=":", lw=1)
        if ax is not axes[-1]:
            ax.get_legend().remove()
    axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    axes[1].set_title("dotted: the model's own final CE", fontsize=8)
    fig.suptitle("Lenses per layer: " + ", ".join(models))
    fig.tight_layout()
    return fig


@figure("transfer")
def transfer(inputs: Sequence[str]) -> plt.Figure:
    """Heatmaps of the CE and KL transfer penalty, lens layer i (rows) on data layer j."""
    tables = [(model_of_table(p), read_table(p)) for p in inputs]
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
    fig.tight_layout()
    return fig


@figure("shared_lens")
def shared_lens(inputs: Sequence[str]) -> plt.Figure:
    """Penalty of the one shared lens against each layer's own tuned lens."""
    table = _tables(inputs)
    wide = (
        table[table["lens"].isin(["tuned", "shared"])]
        .pivot_table(index=["model", "layer"], columns="lens", values=["ce_bits", "kl_bits"])
        .reset_index()
    )
    penalty = pd.DataFrame(
        {
            "model": wide["model"],
            "layer": wide["layer"],
            "CE penalty": wide[("ce_bits", "shared")] - wide[("ce_bits", "tuned")],
            "KL penalty": wide[("kl_bits", "shared")] - wide[("kl_bits", "tuned")],
        }
    )
    long = penalty.melt(id_vars=["model", "layer"], var_name="metric", value_name="bits")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    sns.lineplot(long, x="layer", y="bits", hue="model", style="metric", markers=True, ax=ax)
    ax.axhline(0, color="grey", lw=1)
    ax.set_title("Shared lens minus per-layer tuned lens")
    return fig


@figure("prediction_depth")
def prediction_depth(inputs: Sequence[str]) -> plt.Figure:
    """Histogram of prediction depth per lens, and the final loss of each depth bin."""
    table = _tables(inputs)
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
    table = _tables(inputs)
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


@figure("comparison")
def comparison(inputs: Sequence[str]) -> plt.Figure:
    """LM vs CNNs on relative depth: probe accuracy, tuned-lens KL, transfer penalty."""
    table = read_table(inputs[0])
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, (metric, label) in zip(
        axes,
        [
            ("probe_top1_acc", "free probe top-1 accuracy"),
            ("tuned_kl_bits", "tuned lens KL to final, bits"),
            ("transfer_ce_penalty_bits", "mean transfer CE penalty, bits"),
        ],
        strict=True,
    ):
        x = "rel_distance" if metric.startswith("transfer") else "depth_frac"
        part = table.dropna(subset=[metric])
        sns.lineplot(part, x=x, y=metric, hue="model", style="weights", markers=True, ax=ax)
        ax.set_ylabel(label)
        ax.set_xlabel(
            "relative layer distance |i-j|/L" if x == "rel_distance" else "relative depth l/L"
        )
        if ax is not axes[-1]:
            ax.get_legend().remove()
    axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.tight_layout()
    return fig
