"""Intervals, the common scale and honest controls for the per-model tables.

Definitions (docs/methods.md):

- ``h_prior_bits``: cross-entropy on the eval set of the training marginal (the unigram of the
  LM's training tokens; the class prior of the CNN's training split), add-one smoothed.
- ``info_gain_bits = h_prior_bits - final_ce_bits``: what the final model knows beyond the
  marginal.
- ``*_frac``: a penalty (or KL) in bits divided by ``info_gain_bits``; dimensionless, the only
  scale on which an LM (4096-way) and a CNN (10-way) may share an axis. Undefined where
  ``info_gain_bits`` is near zero (untrained nets), and then reported as not informative,
  never as zero.
- ``blocks_gain_bits = CE(tuned lens at layer 0) - final_ce_bits``: what the blocks add to
  what the embeddings (or stem) already carry; ``*_blocks`` divides a penalty by it, so a
  penalty is not made small by information the embeddings carry.
- Bounded transfer measures: ``kept`` (the share of the data layer's own lens's information
  gain over the prior that the moved lens keeps, ``(H_prior - CE_ij) / (H_prior - CE_jj)``
  clipped to [0, 1]) and ``agree`` (top-1 agreement of the moved lens with the final
  prediction, beside ``agree_own``, the data layer's own lens's).
- **Not informative**: ``info_gain_bits < INFO_GAIN_MIN_FRAC * h_prior_bits``. Then every
  number derived from the final distribution is NaN and ``not_informative_reason`` says why:
  KL to final, ``top1_agree``, ranks of the final top-1, ``*_frac``, and every number of a lens
  *fitted* to the final distribution (the tuned and shared lens's CE included: transfer,
  shared-lens penalties). CE against the targets of the logit lens, top-1 accuracy and the
  free probes stay (they do not depend on the final distribution).
- Transfer is measured over the translator layers: summaries (adjacent, far, by distance)
  are over layers 1..L-1; row L of the matrix (the logit lens) and column L (the final layer)
  never enter them, and layer 0 (embeddings, CNN stem) is reported apart (``*_layer0_lens``:
  lens 0 on layers 1..L-1; ``*_layer0_data``: lenses 1..L-1 on layer 0). ``_up`` cells move a
  lens deeper (``j > i``), ``_down`` cells shallower; the plain summary averages both.
- Every number ``x`` gets ``x_lo`` and ``x_hi``, its 95% group-bootstrap interval
  (:mod:`iterlens.probing.bootstrap`); differences are paired where the examples are shared.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from iterlens.probing.bootstrap import Examples, GroupSums, Means, estimate, estimate_difference
from iterlens.probing.metrics import PER_EXAMPLE

# A final distribution that removes less than 2% of the prior's uncertainty carries too little
# information for "distance to the final distribution" to mean anything: the untrained LM's
# info gain is negative (near-uniform output, worse than the unigram) and the untrained CNNs'
# is within noise of zero, while every trained model removes far more (the run's own values
# are in results/tables/headline.csv, column info_gain_bits over h_prior_bits). A relative
# threshold serves a 4096-way and a 10-way model alike.
INFO_GAIN_MIN_FRAC = 0.02
KL_TO_FINAL = ("kl_bits", "top1_agree")  # per-layer metrics that compare with the final
FITTED_TO_FINAL = ("tuned", "shared")  # lenses fitted to the final distribution


def all_sums(ex: Examples) -> GroupSums:
    """Per-group sums of the per-example values and (if any) the transfer sums, one resample.

    Cached on ``ex`` (with its replicates), so the tables of one model share one bootstrap.
    """
    if "all_sums" in ex.cache:
        return ex.cache["all_sums"]
    sums = ex.group_sums()
    for name, value in ex.transfer_sums().sums.items() if ex.transfer else []:
        if len(value) != sums.n_groups:
            raise ValueError("transfer sums and per-example values have different groups")
        sums.sums[f"transfer.{name}"] = value
    ex.cache["all_sums"] = sums
    return sums


def n_layers_in(ex: Examples) -> int:
    """L, from the per-example arrays ``[n, L + 1]``."""
    return next(iter(ex.values.values())).shape[1] - 1


def info_gain(m: Means) -> np.ndarray:
    """``H_prior - CE_final`` per replicate (the logit lens at layer L is the model itself)."""
    return m["prior_ce_bits"] - m["logit.ce_bits"][:, -1]


def blocks_gain(m: Means) -> np.ndarray:
    """``CE(tuned lens at layer 0) - CE_final`` per replicate: what the blocks add."""
    return m["tuned.ce_bits"][:, 0] - m["logit.ce_bits"][:, -1]


SCALES = {"bits": None, "frac": info_gain, "blocks": blocks_gain}
"""How a penalty is reported: in bits, over the information gain, over what the blocks add."""


def informativeness(h_prior: float, gain: float) -> tuple[bool, str]:
    """Whether the final distribution is informative, and if not, why (a readable reason)."""
    if gain < INFO_GAIN_MIN_FRAC * h_prior:
        return False, (
            f"final model's info gain over the prior is {gain:.3g} bits, below "
            f"{INFO_GAIN_MIN_FRAC:g} x H_prior ({h_prior:.3g} bits): its distribution is "
            f"about the prior, so distances to it measure nothing"
        )
    return True, ""


def put_estimate(row: dict, name: str, est, blank: bool = False) -> None:
    """Set ``row[name]`` and its ``_lo``, ``_hi`` from ``(point, lo, hi)``; NaN if blank."""
    point, lo, hi = (np.nan, np.nan, np.nan) if blank else (float(x) for x in est)
    row[name], row[f"{name}_lo"], row[f"{name}_hi"] = point, lo, hi


def model_info(ex: Examples, sums: GroupSums | None = None) -> dict:
    """``h_prior_bits``, ``final_ce_bits``, ``info_gain_bits`` (with intervals), groups, flag."""
    sums = sums or ex.group_sums()
    row: dict = {"n_examples": len(ex.groups), "n_groups": sums.n_groups}
    put_estimate(row, "h_prior_bits", estimate(lambda m: m["prior_ce_bits"], sums))
    put_estimate(row, "final_ce_bits", estimate(lambda m: m["logit.ce_bits"][:, -1], sums))
    put_estimate(row, "info_gain_bits", estimate(info_gain, sums))
    ok, reason = informativeness(row["h_prior_bits"], row["info_gain_bits"])
    row["informative"] = ok
    row["not_informative_reason"] = reason
    return row


def layer_table(metrics: pd.DataFrame, ex: Examples) -> pd.DataFrame:
    """The per-layer metrics table with intervals, the common scale and the control flag.

    Adds, for every lens row: ``<metric>_lo/_hi`` for every per-example metric; ``kl_frac``;
    the paired differences ``kl_minus_logit_bits`` and ``ce_minus_logit_bits`` (tuned minus
    logit, ...) and ``ce_minus_tuned_bits`` / ``kl_minus_tuned_bits`` (the shared lens's
    penalty); and the model-level ``h_prior_bits``, ``info_gain_bits``, ``n_groups``,
    ``informative`` and ``not_informative_reason``. Point estimates are kept as evaluated.
    """
    sums = all_sums(ex)
    info = model_info(ex, sums)
    lenses = [lens for lens in dict.fromkeys(metrics["lens"]) if f"{lens}.kl_bits" in ex.values]
    out = metrics.copy()
    new: dict[str, np.ndarray] = {}

    def column(name: str, lens: str, est, point: bool = True) -> None:
        for suffix, values in zip(("", "_lo", "_hi"), est, strict=True):
            if not (suffix or point):
                continue  # the point estimate is kept as evaluated
            new.setdefault(name + suffix, np.full(len(out), np.nan))
            rows = (out["lens"] == lens).to_numpy()
            new[name + suffix][rows] = values[out.loc[rows, "layer"].to_numpy()]

    for lens in lenses:
        for m in PER_EXAMPLE:
            column(m, lens, estimate(lambda mm, k=f"{lens}.{m}": mm[k], sums), point=False)
        key = f"{lens}.kl_bits"
        column("kl_frac", lens, estimate(lambda mm, k=key: mm[k] / info_gain(mm)[:, None], sums))
        for ref in ("logit", "tuned"):
            if ref == lens or f"{ref}.kl_bits" not in ex.values:
                continue
            for m in ("kl_bits", "ce_bits"):
                a, b = f"{lens}.{m}", f"{ref}.{m}"
                est = estimate_difference(
                    lambda mm, k=a: mm[k], sums, lambda mm, k=b: mm[k], sums, paired=True
                )
                column(f"{m.removesuffix('_bits')}_minus_{ref}_bits", lens, est)
    for name, values in new.items():
        out[name] = values
    for key in ("h_prior_bits", "info_gain_bits", "info_gain_bits_lo", "info_gain_bits_hi"):
        out[key] = info[key]
    out["n_groups"] = info["n_groups"]
    out["informative"] = info["informative"]
    out["not_informative_reason"] = info["not_informative_reason"]
    if not info["informative"]:
        to_final = ("kl_", "top1_agree", "rank_final_top1")
        blank = [c for c in out.columns if c.startswith(to_final) or "_minus_" in c]
        out[blank] = np.nan
        fitted = out["lens"].isin(FITTED_TO_FINAL).to_numpy()
        numbers = [c for c in metrics.columns if c not in ("lens", "layer", "depth_frac")]
        numbers += [c for c in new if c.endswith(("_lo", "_hi"))]
        out.loc[fitted, [c for c in numbers if c in out]] = np.nan
    return out


def transfer_table_intervals(table: pd.DataFrame, ex: Examples) -> pd.DataFrame:
    """The transfer matrix with intervals for every penalty; each also on the other scales.

    Adds ``<m>_penalty_{frac,blocks}`` (see :data:`SCALES`) and ``kept`` (the bounded share of
    the own lens's information gain the moved lens keeps) with intervals. For a model that is
    not informative every value of the matrix is NaN: its lenses were fitted to a final
    distribution that is about the prior.
    """
    sums = all_sums(ex)
    info = model_info(ex, sums)
    out = table.copy()
    i = out["lens_layer"].to_numpy()
    j = out["data_layer"].to_numpy()
    stats = {}
    for m in ("ce", "kl"):
        pen = _penalty(f"transfer.{m}_bits")
        for scale, by in SCALES.items():
            stats[f"{m}_penalty_{scale}"] = pen if by is None else _scaled(pen, by)
    stats["kept"] = _kept
    for name, stat in stats.items():
        if not info["informative"]:  # NaN below; no transfer sums if it was not measured
            out[name], out[f"{name}_lo"], out[f"{name}_hi"] = np.nan, np.nan, np.nan
            continue
        point, lo, hi = estimate(stat, sums)
        if name not in out:
            out[name] = point[i, j]
        out[f"{name}_lo"], out[f"{name}_hi"] = lo[i, j], hi[i, j]
    out["info_gain_bits"] = info["info_gain_bits"]
    out["informative"] = info["informative"]
    out["not_informative_reason"] = info["not_informative_reason"]
    if not info["informative"]:
        keep = {"lens_layer", "data_layer", "lens", "distance", "triangle", "info_gain_bits"}
        numbers = [c for c in out.columns if c not in keep and c not in _FLAGS]
        out[numbers] = np.nan
    return out


_FLAGS = ("informative", "not_informative_reason")


def _scaled(stat, by):
    """``stat(m) / by(m)`` broadcast over the trailing axes of ``stat``."""

    def scaled(m: Means) -> np.ndarray:
        value = stat(m)
        return value / by(m).reshape((-1,) + (1,) * (value.ndim - 1))

    return scaled


def _kept(m: Means) -> np.ndarray:
    """``clip((H_prior - CE_ij) / (H_prior - CE_jj), 0, 1)`` per replicate, ``[B, L+1, L+1]``.

    NaN where the data layer's own lens does not beat the prior (nothing to keep).
    """
    ce = m["transfer.ce_bits"]
    prior = m["prior_ce_bits"][:, None, None]
    own = prior - np.diagonal(ce, axis1=1, axis2=2)[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        kept = np.where(own > 0, (prior - ce) / own, np.nan)
    return np.clip(kept, 0.0, 1.0)


def _penalty(key: str):
    """``penalty[i, j] = mean[i, j] - mean[j, j]`` per replicate, ``[B, L+1, L+1]``."""

    def stat(m: Means) -> np.ndarray:
        mean = m[key]
        return mean - np.diagonal(mean, axis1=1, axis2=2)[:, None, :]

    return stat


def transfer_masks(n_layers: int) -> dict[str, np.ndarray]:
    """Boolean ``[L+1, L+1]`` masks of the transfer summaries over the translator layers.

    Inner cells are lens ``i`` on layer ``j`` with ``1 <= i, j <= L-1``, ``i != j``: neither
    row L (the logit lens) nor column L (the final layer) is in any mask, and layer 0 has its
    own (``layer0_lens``, ``layer0_data``). ``_up`` moves a lens deeper (``j > i``), ``_down``
    shallower; far is ``|i - j| >= L/2``.
    """
    idx = np.arange(n_layers + 1)
    i, j = np.meshgrid(idx, idx, indexing="ij")
    translator = (i < n_layers) & (j < n_layers)
    inner = translator & (i >= 1) & (j >= 1) & (i != j)
    far = max(1, n_layers // 2)
    masks = {}
    for part, cells in (("adjacent", np.abs(i - j) == 1), ("far", np.abs(i - j) >= far)):
        masks[part] = inner & cells
        masks[f"{part}_up"] = inner & cells & (j > i)
        masks[f"{part}_down"] = inner & cells & (j < i)
    masks["layer0_lens"] = translator & (i == 0) & (j >= 1)
    masks["layer0_data"] = translator & (j == 0) & (i >= 1)
    return masks


def masked_mean(metric: str, mask: np.ndarray, scale: str = "bits"):
    """A statistic: the mean transfer penalty over the cells of ``mask``, on ``scale``.

    ``metric`` is ``ce`` or ``kl`` (penalties against the data layer's own lens), or a raw
    transfer value: ``kl_own`` (KL from the own lens), ``agree`` (top-1 agreement with the
    final of the moved lens), ``agree_own`` (of the data layer's own lens, same cells),
    ``kept``. NaN for an empty mask.
    """
    if metric in ("ce", "kl"):
        base = _penalty(f"transfer.{metric}_bits")
    elif metric == "kl_own":
        base = lambda m: m["transfer.kl_own_bits"]  # noqa: E731
    elif metric == "agree":
        base = lambda m: m["transfer.agree_final"]  # noqa: E731
    elif metric == "agree_own":
        base = lambda m: np.broadcast_to(  # noqa: E731
            np.diagonal(m["transfer.agree_final"], axis1=1, axis2=2)[:, None, :],
            m["transfer.agree_final"].shape,
        )
    elif metric == "kept":
        base = _kept
    else:
        raise ValueError(f"unknown transfer metric '{metric}'")
    by = SCALES[scale]

    def stat(m: Means) -> np.ndarray:
        if not mask.any():
            return np.full(len(m["prior_ce_bits"]), np.nan)
        value = np.nanmean(base(m)[:, mask], 1)
        return value if by is None else value / by(m)

    return stat


def by_distance(ex: Examples, sums: GroupSums | None = None) -> pd.DataFrame:
    """Mean transfer penalty by |i - j| over layers 1..L-1, on every scale, with intervals.

    NaN for a model that is not informative (whose transfer sums may not have been measured).
    """
    sums = sums or all_sums(ex)
    blank = not model_info(ex, sums)["informative"]
    n_layers = n_layers_in(ex)
    idx = np.arange(n_layers + 1)
    i, j = np.meshgrid(idx, idx, indexing="ij")
    inner = (i >= 1) & (j >= 1) & (i < n_layers) & (j < n_layers)
    rows = []
    for d in range(1, n_layers - 1):
        mask = inner & (np.abs(i - j) == d)
        row: dict = {"abs_distance": d, "rel_distance": d / n_layers}
        for m in ("ce", "kl"):
            for scale in SCALES:
                name = f"transfer_{m}_penalty_{scale}"
                stat = masked_mean(m, mask, scale)
                put_estimate(row, name, None if blank else estimate(stat, sums), blank)
        stat = masked_mean("kept", mask)
        put_estimate(row, "transfer_kept", None if blank else estimate(stat, sums), blank)
        rows.append(row)
    return pd.DataFrame(rows)
