"""The rotated-twin control: each probed model beside its rotated twin (table and figure)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from iterlens.artifacts import model_name, model_of_table, parse_model_name  # noqa: E402
from iterlens.io import read_table  # noqa: E402


def _split_name(name: str) -> tuple[str, str]:
    """``(model, "rotated" or "original")``: the model a probed model is the rotated twin of."""
    parsed = parse_model_name(name)
    if parsed.twin == "rotated":
        return model_name(parsed.base, parsed.replicate), "rotated"
    return name, "original"


DISTANCE_COLUMNS = (
    "abs_distance",
    "rel_distance",
    "transfer_kl_penalty_bits",
    "transfer_ce_penalty_bits",
)


def rotated_control_table(metrics: Sequence[str], transfers: Sequence[str]) -> pd.DataFrame:
    """One long table: per model and twin, lens KLs by layer and transfer by distance.

    Layer rows: logit- and tuned-lens KL to the final distribution (the tuned lens's with its
    95% interval, the logit lens's also as a fraction of the information gain, where the
    tables carry them), the shared lens's KL and its penalty against the tuned lens (KL and
    CE, bits), and the free probe's accuracy where one was fitted. A twin's rows also say
    whether its tuned-lens KL lies inside the original's interval at that layer
    (``tuned_kl_in_original_interval``, 1 or 0). Distance rows: the mean transfer penalty of
    the tuned lens by ``|i - j|`` over layers 1..L (layer 0, the input side, is left out as in
    every transfer summary).

    Tables are named by their folder (``results/tables/<model>[_rotated]/``).
    """
    from iterlens.probing.transfer import penalty_by_distance

    rows = []
    for path in metrics:
        model, twin = _split_name(model_of_table(path))
        table = read_table(path)
        wide = {
            column: table.pivot(index="layer", columns="lens", values=column)
            for column in ("kl_bits", "ce_bits", "top1_acc", "kl_bits_lo", "kl_bits_hi", "kl_frac")
            if column in table
        }
        kl, ce = wide["kl_bits"], wide["ce_bits"]
        n_layers = int(table["layer"].max())
        for layer in kl.index:
            rows.append(
                {
                    "model": model,
                    "twin": twin,
                    "layer": int(layer),
                    "depth_frac": layer / n_layers,
                    "logit_kl_bits": kl.loc[layer, "logit"],
                    "logit_kl_frac": _at(wide, "kl_frac", layer, "logit"),
                    "tuned_kl_bits": kl.loc[layer, "tuned"],
                    "tuned_kl_interval_lo": _at(wide, "kl_bits_lo", layer, "tuned"),
                    "tuned_kl_interval_hi": _at(wide, "kl_bits_hi", layer, "tuned"),
                    "shared_kl_bits": kl.loc[layer, "shared"],
                    "shared_kl_penalty_bits": kl.loc[layer, "shared"] - kl.loc[layer, "tuned"],
                    "shared_ce_penalty_bits": ce.loc[layer, "shared"] - ce.loc[layer, "tuned"],
                    "probe_top1_acc": _at(wide, "top1_acc", layer, "probe"),
                }
            )
    for path in transfers:
        model, twin = _split_name(model_of_table(path))
        table = read_table(path)
        inner = table[(table["lens_layer"] >= 1) & (table["data_layer"] >= 1)]
        for _, r in penalty_by_distance(inner).iterrows():
            rows.append(
                {
                    "model": model,
                    "twin": twin,
                    "abs_distance": int(r["abs_distance"]),
                    "rel_distance": r["rel_distance"],
                    "transfer_kl_penalty_bits": r["kl_penalty_bits"],
                    "transfer_ce_penalty_bits": r["ce_penalty_bits"],
                }
            )
    out = pd.DataFrame(rows)
    for column in DISTANCE_COLUMNS:  # tiny models (L < 3) have no inner off-diagonal cell
        if column not in out:
            out[column] = np.nan
    original = out[(out["twin"] == "original") & out["layer"].notna()].set_index(["model", "layer"])
    twins = out.index[(out["twin"] == "rotated") & out["layer"].notna()]
    key = pd.MultiIndex.from_frame(out.loc[twins, ["model", "layer"]])
    lo = original["tuned_kl_interval_lo"].reindex(key).to_numpy()
    hi = original["tuned_kl_interval_hi"].reindex(key).to_numpy()
    value = out.loc[twins, "tuned_kl_bits"].to_numpy()
    inside = ((lo <= value) & (value <= hi)).astype(float)
    inside[np.isnan(lo) | np.isnan(hi)] = np.nan  # no interval (or no original) to compare with
    out["tuned_kl_in_original_interval"] = np.nan
    out.loc[twins, "tuned_kl_in_original_interval"] = inside
    return out


def _at(wide: dict[str, pd.DataFrame], column: str, layer: int, lens: str) -> float:
    """``column`` of ``lens`` at ``layer``, NaN where the table lacks either."""
    frame = wide.get(column)
    return float(frame.loc[layer, lens]) if frame is not None and lens in frame else float("nan")


def plot_rotated_control(inputs: Sequence[str]) -> plt.Figure:
    """One row per model: lens KL by layer, shared-lens penalty by layer, transfer by distance.

    Solid lines: the model; dashed: its rotated twin. KL axes are logarithmic.
    """
    table = read_table(inputs[0])
    models = list(dict.fromkeys(table["model"]))
    fig, axes = plt.subplots(len(models), 3, figsize=(12, 3.2 * len(models)), squeeze=False)
    styles = {"original": "-", "rotated": "--"}
    for row, model in zip(axes, models, strict=True):
        for twin, ls in styles.items():
            t = table[(table["model"] == model) & (table["twin"] == twin)]
            layers = t.dropna(subset=["layer"]).sort_values("layer")
            dist = t.dropna(subset=["abs_distance"]).sort_values("abs_distance")
            below = layers[layers["layer"] < layers["layer"].max()]  # KL is 0 at L by definition
            row[0].plot(below["layer"], below["logit_kl_bits"], ls, color="C0",
                        marker="o", ms=3, label=f"logit lens, {twin}")  # fmt: skip
            row[0].plot(below["layer"], below["tuned_kl_bits"], ls, color="C1",
                        marker="o", ms=3, label=f"tuned lens, {twin}")  # fmt: skip
            row[1].plot(below["layer"], below["shared_kl_penalty_bits"], ls, color="C2",
                        marker="o", ms=3, label=twin)  # fmt: skip
            row[2].plot(dist["abs_distance"], dist["transfer_kl_penalty_bits"], ls, color="C3",
                        marker="o", ms=3, label=twin)  # fmt: skip
        row[0].set(yscale="log", xlabel="layer", ylabel="KL to final (bits)", title=model)
        row[1].set(xlabel="layer", ylabel="shared minus tuned KL (bits)",
                   title=f"{model}: shared-lens penalty")  # fmt: skip
        row[2].set(xlabel="|i - j| (layers 1..L)", ylabel="transfer KL penalty (bits)",
                   title=f"{model}: transfer")  # fmt: skip
        for ax in row:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- the dose response
DOSE_PREFIXES = ("transfer_", "shared_", "logit_kl_", "tuned_kl_")  # headline columns kept


def dose_of(name: str) -> tuple[str, float]:
    """``(family, t)`` of a model of the dose response: 0 the model, 1 its rotated twin.

    Raises:
        ValueError: ``name`` is neither a model, nor its rotated twin or a partial rotation.
    """
    parsed = parse_model_name(name)
    family = model_name(parsed.base, parsed.replicate)
    doses = {"model": 0.0, "rotated": 1.0, "partial": parsed.t}
    if parsed.twin not in doses:
        raise ValueError(f"{name!r} is not on a dose response (a {parsed.twin} twin)")
    return family, doses[parsed.twin]


def dose_response_table(rows: Sequence[tuple[str, float, str, str]]) -> pd.DataFrame:
    """The dose-response control: transfer and shared-lens penalties against rotation size.

    The rotated twin (:mod:`iterlens.probing.rotate`) maps layer ``l < L`` to ``Q_l h_l``;
    its partial rotation at ``t`` maps it to ``expm(t log Q_l) h_l``, so ``t = 0`` is the
    model, ``t = 1`` the twin, and each layer's basis turns away from its neighbours' as ``t``
    grows, while every layer keeps all its information (a tuned lens can undo the rotation at
    any ``t``). A shared lens and a transferred tuned lens read a layer in another layer's
    basis, so their penalties must grow with ``t`` from the model's to the twin's: a probe that
    detects the full rotation but not a partial one has no resolution between the two.

    ``rows``: ``(family, t, model, examples_path)``, the ``examples.safetensors`` of each
    model. One row per ``(family, t)``, sorted, with every column of
    :func:`iterlens.report.tables.headline_row` whose name starts with one of
    :data:`DOSE_PREFIXES` (``shared_ce_penalty_mean_bits``, ``transfer_ce_penalty_adjacent_bits``,
    ``transfer_ce_penalty_far_bits``, ``logit_kl_mean_bits``, ... with their ``_lo``, ``_hi``).
    """
    from iterlens.probing.bootstrap import Examples
    from iterlens.report.tables import headline_row

    out = []
    for family, t, model, path in rows:
        head = headline_row(model, _with_probe_placeholder(Examples.load(path)))
        kept = {k: v for k, v in head.items() if k.startswith(DOSE_PREFIXES)}
        out.append({"family": family, "t": float(t), "model": model, **kept})
    if not out:
        raise ValueError("no model for the dose-response table")
    table = pd.DataFrame(out).sort_values(["family", "t"], kind="stable", ignore_index=True)
    dupes = table.duplicated(["family", "t"])
    if dupes.any():
        first = table[dupes].iloc[0]
        raise ValueError(f"two models at t = {first['t']} of {first['family']}")
    return table


def _with_probe_placeholder(ex):
    """``ex`` with zeros for the free probe's values where it has none.

    The rotated and partial twins fit no free probe (``ROTATED_LENS_KINDS``), but
    :func:`iterlens.report.tables.headline_row` reads the probe's accuracy; the placeholder's
    numbers are never kept (no ``probe_`` column is in the table).
    """
    from iterlens.probing.bootstrap import Examples

    missing = {
        "probe." + key.split(".", 1)[1]: np.zeros_like(value)
        for key, value in ex.values.items()
        if key.startswith("tuned.") and "probe." + key.split(".", 1)[1] not in ex.values
    }
    if not missing:
        return ex
    return Examples(ex.groups, {**ex.values, **missing}, ex.transfer)
