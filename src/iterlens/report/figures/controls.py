"""The figures of the controls: the paper's dose-response and controls figures.

Also registered here: the rotated-twin figure of :mod:`iterlens.report.controls` (each
model beside its rotated twin, layer by layer: the detail the controls figure averages).

The controls figure sets side by side what the controls say: free probes at initial weights,
each model against its rotated twin, and the spread over seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes

from iterlens import artifacts
from iterlens.io import read_table
from iterlens.report.controls import plot_rotated_control
from iterlens.report.figures.paper_axes import LOG_FLOOR, model_colours, seed0
from iterlens.report.figures.registry import FIGURES, TEXT_WIDTH_IN, figure

FIGURES["rotated_control"] = plot_rotated_control  # drawn from rotated_control.csv

# The dose-response panels: (title, y label, {dose_response.csv column: line style}); solid:
# the adjacent layers (|i - j| = 1), dashed: the far ones (|i - j| >= L/2).
DOSE_PANELS = [
    ("shared lens (layers 1..L-1)", "CE penalty (bits)", {"shared_ce_penalty_mean_bits": "-"}),
    (
        "tuned lens moved: adjacent (—), far (--)",
        "CE penalty (bits)",
        {"transfer_ce_penalty_adjacent_bits": "-", "transfer_ce_penalty_far_bits": "--"},
    ),
    (
        "... share of its gain kept",
        "share of own gain kept",
        {"transfer_kept_adjacent": "-", "transfer_kept_far": "--"},
    ),
]


def _dose_line(
    ax: Axes, part: pd.DataFrame, column: str, ls: str, colour: object, label: str | None
) -> None:
    """One family's ``column`` against t with its 95% interval (``{column}_lo``, ``_hi``)."""
    value = part[column].to_numpy(float)
    lo = part.get(f"{column}_lo", part[column]).to_numpy(float)
    hi = part.get(f"{column}_hi", part[column]).to_numpy(float)
    err = [
        pd.Series(value - lo).fillna(0).clip(lower=0),
        pd.Series(hi - value).fillna(0).clip(lower=0),
    ]
    ax.errorbar(part["t"], value, yerr=err, marker="o", capsize=2, color=colour, ls=ls,
                label=label)  # fmt: skip


@figure("paper_dose")
def paper_dose(inputs: Sequence[str]) -> plt.Figure:
    """The dose response: penalties against the size t of a rotation of each layer's basis.

    From ``dose_response.csv``: per family, the shared lens's CE penalty, the CE penalty of a
    tuned lens moved to an adjacent (solid) or far (dashed) layer (bits) and the share of its
    gain the moved lens keeps, with 95% intervals, at t = 0 (the model), the partial rotations
    and t = 1 (its rotated twin). Columns the table lacks, or holds no number of, are left
    out, and a panel left with none.
    """
    table = read_table(inputs[0])
    panels = [
        (title, ylabel, {c: ls for c, ls in lines.items() if c in table and table[c].notna().any()})
        for title, ylabel, lines in DOSE_PANELS
    ]
    panels = [panel for panel in panels if panel[2]]
    families = list(dict.fromkeys(table["family"]))
    colours = model_colours(families)
    fig, axes = plt.subplots(
        1, max(len(panels), 1), figsize=(TEXT_WIDTH_IN, 2.4), squeeze=False, layout="constrained"
    )
    for ax, (title, ylabel, lines) in zip(axes[0], panels, strict=False):
        for family in families:
            part = table[table["family"] == family].sort_values("t")
            for k, (column, ls) in enumerate(lines.items()):
                _dose_line(ax, part, column, ls, colours[family], family if k == 0 else None)
        ax.set(title=title, ylabel=ylabel, xlabel="rotation size t", xlim=(-0.05, 1.05))
        if any(column.startswith("transfer_kept") for column in lines):
            ax.set_ylim(-0.02, 1.02)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5),
                   frameon=False)  # fmt: skip
    return fig


def _by_stem(inputs: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Tables named by their file's stem (``comparison``, ``rotated_control``, ...)."""
    return {Path(p).stem: read_table(p) for p in inputs}


def _untrained_panel(ax: Axes, comparison: pd.DataFrame, colours: dict) -> None:
    """Free-probe top-1 accuracy on relative depth, trained (solid) vs initial weights (dashed)."""
    for weights, ls in (("trained", "-"), ("untrained", "--")):
        part = seed0(comparison, weights)
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
    ax.set(title="free probes\ntrained (—), initial weights (--)", xlabel="relative depth l/L",
           ylabel="probe top-1 accuracy", xlim=(-0.03, 1.03))  # fmt: skip


# The rotated-twin panel: label -> (rotated_control.csv column, rows it is averaged over).
ROTATED_MEASURES = {
    "logit\nKL": ("logit_kl_bits", "below"),
    "tuned\nKL": ("tuned_kl_bits", "below"),
    "shared\npenalty": ("shared_kl_penalty_bits", "inner"),  # KL over the tuned lens's
    "adjacent\npenalty": ("transfer_kl_penalty_bits", "adjacent"),  # transfer, |i-j| = 1
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


def _rotated_panel(ax: Axes, rotated: pd.DataFrame, colours: dict) -> None:
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
    ax.set(title="rotated twins\nmodel (hollow), twin (filled)", ylabel="KL (bits)")
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


def _seeds_panel(ax: Axes, replicates: pd.DataFrame, seeds: pd.DataFrame | None) -> None:
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
    ax.set(title="seeds\neach (dots), mean (diamond)",
           ylabel="adjacent CE penalty (bits)")  # fmt: skip
    ax.grid(False, axis="x")


@figure("paper_controls")
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
    colours = model_colours(list(dict.fromkeys(seed0(comparison)["model"])))
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
