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
from iterlens.report.controls import plot_dose_response, plot_rotated_control  # noqa: E402

FIGURES: dict[str, Callable[[Sequence[str]], plt.Figure]] = {}
LENS_ORDER = list(artifacts.LENS_KINDS)
FIGURES["rotated_control"] = plot_rotated_control  # drawn from rotated_control.csv
FIGURES["dose_response"] = plot_dose_response  # drawn from dose_response.csv


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


def family_figures(domain: str) -> list[str]:
    """Names of the figures drawn for a model of ``domain`` (``lm``: with ranks)."""
    if domain not in ("lm", "vision"):
        raise ValueError(f"unknown domain {domain!r}; one of lm, vision")
    return [f for f in FAMILY_FIGURES if f != "ranks" or domain == "lm"]


def draw_family(
    family: str, models: Sequence[str], domain: str, tables: str | Path, out_dir: str | Path
) -> None:
    """Draw every figure of ``family`` as ``{family}_{figure}.png``.

    ``models`` are drawn on the same axes: the family's model and, where it has one, its
    untrained twin.
    """
    for name in family_figures(domain):
        table = FAMILY_FIGURES[name]
        inputs = [str(Path(tables) / model / f"{table}.csv") for model in models]
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


def _lines(ax, table: pd.DataFrame, x: str, y: str, by: Sequence[str], styles=None) -> None:
    """One line per ``by`` group with its 95% interval band (``{y}_lo``, ``{y}_hi``)."""
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


def _not_informative(table: pd.DataFrame) -> list[str]:
    if "informative" not in table:
        return []
    flags = table.groupby("model")["informative"].first()
    return [m for m, ok in flags.items() if not ok]


@figure("lens_curves")
def lens_curves(inputs: Sequence[str]) -> plt.Figure:
    """KL to the final distribution (log scale) and CE per layer, per lens, with 95% bands.

    The CE axis is scaled to layers 1..L; layer 0 (embeddings, stem) is noted when off scale.
    Models whose final distribution is not informative have no KL line (see the title).
    """
    table = _tables(inputs)
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
        _lines(ax, table, "layer", metric, by)
        ax.set_xlabel("layer")
        ax.set_ylabel(label)
    axes[0].set_yscale("log")
    inner = table[table["layer"] >= 1]
    lo, hi = inner["ce_bits"].min(), inner["ce_bits"].max()
    axes[1].set_ylim(lo - 0.1 * (hi - lo + 0.1), hi + 0.1 * (hi - lo + 0.1))
    for model in models:
        axes[1].axhline(_final_ce(table[table["model"] == model]), color="grey", ls=":", lw=1)
    off = table[(table["layer"] == 0) & (table["ce_bits"] > axes[1].get_ylim()[1])]
    note = "dotted: final CE"
    if len(off):
        note += f"; layer 0 off scale (up to {off['ce_bits'].max():.1f} bits)"
    axes[1].set_title(note, fontsize=8)
    blank = _not_informative(table)
    if blank:
        axes[0].set_title("no KL for " + ", ".join(blank) + " (not informative)", fontsize=8)
    axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False, fontsize=7)
    fig.suptitle("Lenses per layer (bands: 95% bootstrap): " + ", ".join(models))
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
    """The one shared lens against each layer's own tuned lens and the logit lens, 95% bands.

    Over the layers the shared lens is fitted on (1..L-1 by default): its CE and KL penalty
    over the per-layer tuned lens, and the logit lens's KL over the tuned lens, on one axis.
    A triangle marks each layer where the parameter-free logit lens is closer to the final
    distribution than the shared lens (paired 95% interval of shared minus logit KL above
    zero). Layer 0 and L, where the shared lens is not fitted, are given in the title.
    """
    table = _tables(inputs)
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
        _lines(ax, long, "layer", "bits", ["metric", "model"])
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
    blank = _not_informative(table)
    if blank:
        title += "\nnot informative, not drawn: " + ", ".join(blank)
    ax.set_title(title, fontsize=8)
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
        _lines(ax, part, x, "v", by)
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
        _lines(ax, part, x, "v", ["model", "quantity"] if len(quantities) > 1 else ["model"])
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("relative layer distance |i-j|/L" if x == "rel_distance" else "depth l/L")
    axes[2].set_ylim(0, 1.02)
    handles, labels = axes[2].get_legend_handles_labels()
    axes[2].legend(handles, labels, loc="lower left", frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- the dose-response control
