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


PAPER_FIGURES: list[str] = []  # the paper's main figures, in the order the argument reads them
TEXT_WIDTH_IN = (21.0 - 2 * 2.0) / 2.54  # the paper's text block: A4 less two 2 cm margins
# Font sizes of the main figures, in points at print size: they are drawn at the width of the
# text block and shown at 100%, so no label prints below 7 pt.
PAPER_RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "figure.titlesize": 8,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
}
PAPER_DPI = 200


def figure(name: str, paper: bool = False):
    """Register a figure function; ``paper``: one of the paper's main figures (text width)."""

    def wrap(fn):
        FIGURES[name] = fn
        if paper:
            PAPER_FIGURES.append(name)
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
    paper = name in PAPER_FIGURES
    with plt.rc_context(PAPER_RC if paper else {}):
        fig = FIGURES[name](inputs)
        with atomic_path(out) as tmp:
            fig.savefig(
                tmp,
                dpi=PAPER_DPI if paper else 150,
                bbox_inches="tight",
                pad_inches=0.02 if paper else 0.1,
                format=Path(out).suffix[1:] or "png",
            )
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
    """Heatmaps of the CE and KL transfer penalty, lens layer i (rows) on data layer j.

    A model whose final distribution is not informative (an untrained twin) has no penalties:
    it gets no row of empty panels, and the title names it.
    """
    tables = [(model_of_table(p), read_table(p)) for p in inputs]
    blank = [m for m, t in tables if not _informative_table(t)]
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


def _informative_table(table: pd.DataFrame) -> bool:
    """Whether a per-model table is of a model with an informative final distribution."""
    return "informative" not in table or bool(table["informative"].astype(bool).all())


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


# ---------------------------------------------------------------- the paper's main figures
# Each carries one step of the argument across every studied model at once, drawn at the width
# of the paper's text block (PAPER_RC). Models whose final distribution is not informative
# (untrained nets) have no KL or transfer values: they are left out, never drawn as empty
# panels; the paper names them in its text.
LENS_STYLE = {  # lens -> (colour, line style, label); colour-blind-safe colours
    "logit": ("#555555", "--", "logit lens"),
    "tuned": ("#0072B2", "-", "tuned lens"),
    "shared": ("#D55E00", "-.", "shared lens"),
}
LOG_FLOOR = 1e-4  # values below it are drawn at it on a log axis (bits or fractions)


def _grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    """Rows and columns of a grid of ``n`` panels, at most ``max_cols`` a row."""
    cols = max(1, min(n, max_cols))
    return -(-max(n, 1) // cols), cols


def _model_colours(models: Sequence[str]) -> dict[str, tuple]:
    """One colour per model, in the order given (the study's), the same in every main figure."""
    return dict(zip(models, sns.color_palette("colorblind", max(len(models), 1)), strict=False))


def _seed0(table: pd.DataFrame, weights: str = "trained") -> pd.DataFrame:
    """The comparison table's rows of seed 0 with ``weights``, not a rotated or partial twin."""
    keep = (table["weights"] == weights) & (table["seed"] == 0)
    if "twin" in table:
        keep &= table["twin"].isin(["model", "random"])
    return table[keep]


def _drawn(table: pd.DataFrame, quantities: Sequence[str]) -> list[str]:
    """The models (in table order) with a finite value of one of ``quantities``."""
    part = table[table["quantity"].isin(quantities)].dropna(subset=["value"])
    return [m for m in dict.fromkeys(table["model"]) if m in set(part["model"])]


def _positive(values) -> pd.Series:
    """``values`` for a log axis: below :data:`LOG_FLOOR` drawn at it."""
    return pd.Series(values, dtype=float).clip(lower=LOG_FLOOR)


def _depth_curve(ax, part: pd.DataFrame, colour, ls: str, label: str | None, log: bool) -> None:
    """One quantity on relative depth: layers 1..L-1 joined, with their 95% band.

    Layer 0 is apart (a hollow marker at 0 with its interval, not joined); layer L is left
    out (a lens's KL is 0 there by definition).
    """
    part = part.dropna(subset=["value"]).sort_values("layer")
    fix = _positive if log else (lambda v: pd.Series(v, dtype=float))
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


def _depth_axis(ax) -> None:
    ax.set_xlim(-0.06, 1.0)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1], ["0", "", "0.5", "", "1"])
    ax.set_xlabel("relative depth l/L")


@figure("paper_lenses", paper=True)
def paper_lenses(inputs: Sequence[str]) -> plt.Figure:
    """The logit and the tuned lens of every studied model on relative depth, one scale.

    From ``comparison.csv``: KL to the final distribution over the model's information gain
    (log scale, 95% bands) of the logit lens (left) and the tuned lens (right) of each trained
    model (seed 0), layers 1..L-1 by l/L and layer 0 apart. Models without an informative
    final distribution are left out.
    """
    table = read_table(inputs[0])
    trained = _seed0(table)
    colours = _model_colours(list(dict.fromkeys(trained["model"])))
    lenses = ("logit", "tuned")
    models = _drawn(trained, [f"{lens}_kl_frac" for lens in lenses])
    fig, axes = plt.subplots(1, 2, figsize=(TEXT_WIDTH_IN, 2.6), sharey=True, layout="constrained")
    for ax, lens in zip(axes, lenses, strict=True):
        part = trained[trained["quantity"] == f"{lens}_kl_frac"]
        for model in models:
            _depth_curve(ax, part[part["model"] == model], colours[model], LENS_STYLE[lens][1],
                         model, log=True)  # fmt: skip
        ax.set_yscale("log")
        ax.set_title(LENS_STYLE[lens][2])
        _depth_axis(ax)
    axes[0].set_ylabel("KL to final / information gain")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5),
                   frameon=False)  # fmt: skip
    return fig


@figure("paper_shared", paper=True)
def paper_shared(inputs: Sequence[str]) -> plt.Figure:
    """The one shared lens against the per-layer tuned lens and the logit lens, per model.

    From ``comparison.csv``: one panel per trained model (seed 0) with an informative final
    distribution, KL to the final over the information gain (log scale, 95% bands) of the
    three lenses on relative depth (layers 1..L-1 joined, layer 0 apart).
    """
    table = read_table(inputs[0])
    trained = _seed0(table)
    quantities = {lens: f"{lens}_kl_frac" for lens in LENS_STYLE}
    models = _drawn(trained, list(quantities.values()))
    rows, cols = _grid(len(models))
    fig, axes = plt.subplots(
        rows, cols, figsize=(TEXT_WIDTH_IN, 0.4 + 2.1 * rows), sharey=True,
        squeeze=False, layout="constrained",
    )  # fmt: skip
    for ax, model in zip(axes.flat, models, strict=False):
        part = trained[trained["model"] == model]
        for lens, quantity in quantities.items():
            colour, ls, label = LENS_STYLE[lens]
            _depth_curve(ax, part[part["quantity"] == quantity], colour, ls, label, log=True)
        n_layers = int(part["layer"].max())
        ax.set(yscale="log", title=f"{model} (L = {n_layers})")
        _depth_axis(ax)
    for ax in axes.flat[len(models) :]:
        ax.remove()
    for ax in axes[:, 0]:
        ax.set_ylabel("KL to final / information gain")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=3, frameon=False)
    return fig


@figure("paper_transfer", paper=True)
def paper_transfer(inputs: Sequence[str]) -> plt.Figure:
    """The transfer matrices of every studied model side by side, on one bounded scale.

    From each model's ``transfer.csv``: the share of the own lens's information gain that
    layer i's tuned lens keeps on layer j (``kept``, in [0, 1]; 1 on the diagonal), one panel
    per model with an informative final distribution and one colour bar. White lines set
    layer 0 (embeddings, stem) apart.
    """
    tables = [(model_of_table(p), read_table(p)) for p in inputs]
    tables = [(m, t) for m, t in tables if _informative_table(t) and t["kept"].notna().any()]
    rows, cols = _grid(len(tables))
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


# The dose-response panels: dose_response.csv column -> (title, y label).
DOSE_PANELS = {
    "shared_ce_penalty_mean_bits": ("shared lens (layers 1..L-1)", "CE penalty (bits)"),
    "transfer_ce_penalty_adjacent_bits": (
        "tuned lens, moved one layer",
        "CE penalty (bits)",
    ),
    "transfer_kept_adjacent": ("... share of its gain kept", "share of own gain kept"),
}


@figure("paper_dose", paper=True)
def paper_dose(inputs: Sequence[str]) -> plt.Figure:
    """The dose response: penalties against the size t of a rotation of each layer's basis.

    From ``dose_response.csv``: per family, the shared lens's CE penalty, the adjacent
    transfer CE penalty (bits) and the share of its gain an adjacent moved lens keeps, with 95%
    intervals, at t = 0 (the model), the partial rotations and t = 1 (its rotated twin).
    Panels whose column the table lacks, or holds no number of, are left out.
    """
    table = read_table(inputs[0])
    panels = {c: p for c, p in DOSE_PANELS.items() if c in table and table[c].notna().any()}
    families = list(dict.fromkeys(table["family"]))
    colours = _model_colours(families)
    fig, axes = plt.subplots(
        1, max(len(panels), 1), figsize=(TEXT_WIDTH_IN, 2.4), squeeze=False, layout="constrained"
    )
    for ax, (column, (title, ylabel)) in zip(axes[0], panels.items(), strict=False):
        for family in families:
            part = table[table["family"] == family].sort_values("t")
            value = part[column].to_numpy(float)
            lo = part.get(f"{column}_lo", part[column]).to_numpy(float)
            hi = part.get(f"{column}_hi", part[column]).to_numpy(float)
            err = [
                pd.Series(value - lo).fillna(0).clip(lower=0),
                pd.Series(hi - value).fillna(0).clip(lower=0),
            ]
            ax.errorbar(part["t"], value, yerr=err, marker="o", capsize=2, color=colours[family],
                        label=family)  # fmt: skip
        ax.set(title=title, ylabel=ylabel, xlabel="rotation size t", xlim=(-0.05, 1.05))
        if column.startswith("transfer_kept"):
            ax.set_ylim(-0.02, 1.02)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5),
                   frameon=False)  # fmt: skip
    return fig


def _by_stem(inputs: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Tables named by their file's stem (``comparison``, ``rotated_control``, ...)."""
    return {Path(p).stem: read_table(p) for p in inputs}


def _untrained_panel(ax, comparison: pd.DataFrame, colours: dict) -> None:
    """Free-probe top-1 accuracy on relative depth, trained (solid) vs initial weights (dashed)."""
    for weights, ls in (("trained", "-"), ("untrained", "--")):
        part = _seed0(comparison, weights)
        part = part[part["quantity"] == "probe_top1_acc"].dropna(subset=["value"])
        for model in colours:
            rows = part[part["model"] == model].sort_values("layer")
            if rows.empty:
                continue
            x = rows["depth_frac"].to_numpy(float)
            ax.plot(x, rows["value"], ls=ls, marker="o", ms=3, color=colours[model],
                    label=model if weights == "trained" else None)  # fmt: skip
            ax.fill_between(x, rows["value_lo"], rows["value_hi"], color=colours[model],
                            alpha=0.15, lw=0)  # fmt: skip
    ax.set(title="free probes: trained (—), initial weights (--)", xlabel="relative depth l/L",
           ylabel="probe top-1 accuracy", xlim=(-0.03, 1.03))  # fmt: skip


# The rotated-twin panel: label -> (rotated_control.csv column, rows it is averaged over).
ROTATED_MEASURES = {
    "logit lens\nKL": ("logit_kl_bits", "below"),
    "tuned lens\nKL": ("tuned_kl_bits", "below"),
    "shared lens\nKL penalty": ("shared_kl_penalty_bits", "inner"),
    "adjacent\ntransfer\nKL penalty": ("transfer_kl_penalty_bits", "adjacent"),
}


def _rotated_measures(table: pd.DataFrame, family: str, twin: str) -> list[float]:
    """The means of :data:`ROTATED_MEASURES` of one family's model or rotated twin."""
    rows = table[(table["model"] == family) & (table["twin"] == twin)]
    layers = rows.dropna(subset=["layer"])
    n_layers = int(layers["layer"].max()) if len(layers) else 0
    selections = {
        "below": layers[layers["layer"] < n_layers],
        "inner": layers[(layers["layer"] >= 1) & (layers["layer"] < n_layers)]
        if n_layers > 1
        else layers[layers["layer"] < n_layers],
        "adjacent": rows[rows["abs_distance"] == 1],
    }
    return [float(selections[where][column].mean()) for column, where in ROTATED_MEASURES.values()]


def _rotated_panel(ax, rotated: pd.DataFrame, colours: dict) -> None:
    """Each family's model (hollow) and rotated twin (filled), joined, on four measures."""
    families = [f for f in dict.fromkeys(rotated["model"])]
    width = 0.7 / max(len(families), 1)
    for k, family in enumerate(families):
        colour = colours.get(family, f"C{k}")
        model, twin = (_rotated_measures(rotated, family, t) for t in ("original", "rotated"))
        for i, (a, b) in enumerate(zip(model, twin, strict=True)):
            if pd.isna(a) or pd.isna(b):
                continue
            x = i - 0.35 + width * (k + 0.5)
            a, b = max(a, LOG_FLOOR), max(b, LOG_FLOOR)
            ax.plot([x, x], [a, b], color=colour, lw=1)
            ax.plot([x], [a], "o", mfc="white", mec=colour)
            ax.plot([x], [b], "o", color=colour, label=family if i == 0 else None)
    ax.set_yscale("log")
    ax.set_xticks(range(len(ROTATED_MEASURES)), list(ROTATED_MEASURES))
    ax.set_xlim(-0.5, len(ROTATED_MEASURES) - 0.5)
    ax.set(title="rotated twins: model (hollow), twin (filled)", ylabel="bits")
    ax.grid(False, axis="x")


SEED_METRIC = "transfer_ce_penalty_adjacent_bits"  # the seeds panel's headline column


def _seed_replicates(headline: pd.DataFrame) -> pd.DataFrame:
    """The headline rows of the families with two seeds or more that have :data:`SEED_METRIC`.

    With ``family`` and ``replicate`` columns; empty where there are none.
    """
    if SEED_METRIC not in headline:
        return headline.iloc[:0]
    columns = [c for c in (SEED_METRIC, f"{SEED_METRIC}_lo", f"{SEED_METRIC}_hi") if c in headline]
    parsed = [artifacts.parse_model_name(m) for m in headline["model"]]
    table = headline[["model", *columns]].assign(
        family=[p.base for p in parsed], replicate=[p.replicate for p in parsed],
        twin=[p.twin for p in parsed],
    )  # fmt: skip
    table = table[table["twin"] == "model"].dropna(subset=[SEED_METRIC])
    counts = table.groupby("family")["replicate"].transform("count")
    return table[counts >= 2]


def _seeds_panel(ax, replicates: pd.DataFrame, seeds: pd.DataFrame | None) -> None:
    """The adjacent transfer CE penalty of each seed (dots, with 95% intervals).

    Beside them, the mean over seeds with the interval over seeds (a diamond).
    """
    families = list(dict.fromkeys(replicates["family"]))
    for k, family in enumerate(families):
        part = replicates[replicates["family"] == family].sort_values("replicate")
        x = k - 0.15 + (part["replicate"].to_numpy() - (len(part) - 1) / 2) * 0.12
        v = part[SEED_METRIC].to_numpy(float)
        lo = part.get(f"{SEED_METRIC}_lo", part[SEED_METRIC]).to_numpy(float)
        hi = part.get(f"{SEED_METRIC}_hi", part[SEED_METRIC]).to_numpy(float)
        ax.errorbar(x, v, yerr=[v - lo, hi - v], fmt="o", color="C0", capsize=2, ms=3)
        row = (
            seeds[(seeds["model"] == family) & (seeds["metric"] == SEED_METRIC)]
            if seeds is not None
            else []
        )
        if len(row) and pd.notna(row["lo"].iloc[0]):
            m, lo_s, hi_s = (float(row[c].iloc[0]) for c in ("mean", "lo", "hi"))
            ax.errorbar([k + 0.3], [m], yerr=[[m - lo_s], [hi_s - m]], fmt="D", color="black",
                        capsize=3, ms=4)  # fmt: skip
    ax.set_xticks(range(len(families)), families)
    ax.set_xlim(-0.6, len(families) - 0.4)
    ax.set(title="seeds: each (dots), over seeds (diamond)",
           ylabel="adjacent transfer CE penalty (bits)")  # fmt: skip
    ax.grid(False, axis="x")


@figure("paper_controls", paper=True)
def paper_controls(inputs: Sequence[str]) -> plt.Figure:
    """The controls side by side: initial weights, rotated twins, seed replicates.

    ``inputs``: ``comparison.csv`` and, where the run has them, ``rotated_control.csv``,
    ``headline.csv`` and ``seeds.csv`` (named by their file). Panels: free-probe accuracy of
    each trained model (solid) and of its untrained twin (dashed) on relative depth; each
    model's and its rotated twin's logit- and tuned-lens KL (layers 0..L-1), shared-lens KL
    penalty (layers 1..L-1) and adjacent transfer KL penalty (layers 1..L), on a log scale;
    the adjacent transfer CE penalty of every seed of the models trained from several seeds.
    A panel the run has no numbers for is left out.
    """
    tables = _by_stem(inputs)
    comparison = tables["comparison"]
    colours = _model_colours(list(dict.fromkeys(_seed0(comparison)["model"])))
    panels = [lambda ax: _untrained_panel(ax, comparison, colours)]
    if "rotated_control" in tables:
        panels.append(lambda ax: _rotated_panel(ax, tables["rotated_control"], colours))
    if "headline" in tables and len(replicates := _seed_replicates(tables["headline"])):
        panels.append(lambda ax: _seeds_panel(ax, replicates, tables.get("seeds")))
    widths = [1.2] + [1.0] * (len(panels) - 1)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(TEXT_WIDTH_IN, 2.9), width_ratios=widths, squeeze=False,
        layout="constrained",
    )  # fmt: skip
    for ax, draw_panel in zip(axes[0], panels, strict=True):
        draw_panel(ax)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5),
                   frameon=False)  # fmt: skip
    return fig
