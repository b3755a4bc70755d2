"""Named values and claims of the controls: the rotated twins and the dose response.

The rotated-twin control (:func:`rotated`) sets each trained model beside its twin with a
random orthogonal change of basis at every layer; the dose-response control (:func:`dose`)
follows the penalties along partial rotations of size t. Both add their values and claims to
the :class:`~iterlens.report.values.Values` that :func:`iterlens.report.paper_values.collect`
builds, and add nothing where the run has no such control.
"""

from __future__ import annotations

import numpy as np

from iterlens import artifacts as A
from iterlens.io import read_table
from iterlens.report.values import Values


def rotated(vals: Values) -> list[str]:
    """Values and claims of the rotated-twin control, per family: the model beside its twin.

    What the control must show is checked here, not assumed: the twin's tuned-lens KL lies
    inside the model's 95% interval at every layer 0..L-1; its logit lens loses more than the
    whole information gain there; its transfer and shared-lens penalties, as fractions of the
    information gain, exceed the model's.

    Returns:
        The families with a twin (none where the run has no rotated control).
    """
    path = vals.root / A.ROTATED_CONTROL
    if not path.exists():
        return []
    table = read_table(path)
    families = list(dict.fromkeys(table["model"]))
    for fam in families:
        n_layers = int(table.loc[table["model"] == fam, "layer"].max())
        below, inner = list(range(n_layers)), list(range(1, n_layers)) or [0]
        rows = {  # the control table's rows of each twin at layers 0..L-1
            twin: {
                "table": A.ROTATED_CONTROL,
                "where": {"model": fam, "twin": twin, "layer": below},
            }
            for twin in ("original", "rotated")
        }
        for twin in ("original", "rotated"):
            name, model = f"{fam}.{twin}", fam if twin == "original" else f"{fam}_rotated"
            vals.add(
                f"{name}.tuned_kl_mean",
                {**rows[twin], "column": "tuned_kl_bits", "agg": "mean"},
                f"{twin}: mean tuned-lens KL over layers 0..L-1",
            )
            vals.add(
                f"{name}.logit_kl_frac_min",
                {**rows[twin], "column": "logit_kl_frac", "agg": "min"},
                f"{twin}: least logit-lens KL over layers 0..L-1, over the information gain",
            )
            vals.add(
                f"{name}.shared_kl_penalty_frac",
                {
                    "table": A.LENS_METRICS.format(model=model),
                    "where": {"lens": "shared", "layer": inner},
                    "column": "kl_frac",
                    "minus": {"lens": "tuned"},
                    "pair_on": "layer",
                    "agg": "mean",
                },
                f"{twin}: mean over layers 1..L-1 of shared minus tuned KL, over the info gain",
            )
            if len(inner) < 2:  # no adjacent pair among the inner layers (L < 3)
                continue
            vals.add(
                f"{name}.transfer_ce_penalty_adjacent_frac",
                {
                    "table": A.TRANSFER.format(model=model),
                    "where": {"lens_layer": inner, "data_layer": inner, "distance": [-1, 1]},
                    "column": "ce_penalty_frac",
                    "agg": "mean",
                },
                f"{twin}: mean CE transfer penalty between adjacent layers of 1..L-1, "
                "over the information gain",
            )
        vals.add(
            f"{fam}.rotated.tuned_in_interval_layers",
            {**rows["rotated"], "column": "tuned_kl_in_original_interval", "agg": "sum"},
            "layers 0..L-1 where the twin's tuned-lens KL is inside the model's 95% interval",
            digits=0,
        )
        vals.add(
            f"{fam}.rotated.layers_checked",
            {**rows["rotated"], "column": "layer", "agg": "count"},
            "layers 0..L-1",
        )
        c = vals.claim
        c(
            f"{fam}_rotated_tuned_matches",
            f"{fam}.rotated.tuned_in_interval_layers",
            ">=",
            f"{fam}.rotated.layers_checked",
            f"the tuned lens reads the rotated {fam} within the model's interval at every layer",
        )
        c(
            f"{fam}_rotated_logit_fails",
            f"{fam}.rotated.logit_kl_frac_min",
            ">",
            1.0,
            f"the logit lens of the rotated {fam} loses more than the information gain at "
            "every layer 0..L-1",
        )
        for short, what in (
            ("transfer", "transfer_ce_penalty_adjacent_frac"),
            ("shared", "shared_kl_penalty_frac"),
        ):
            c(
                f"{fam}_rotated_{short}_worse",
                f"{fam}.rotated.{what}",
                ">",
                f"{fam}.original.{what}",
                f"the rotated {fam}'s {what} exceeds the model's",
            )
    return families


DOSE_METRICS = ("shared_ce_penalty_mean_bits", "transfer_ce_penalty_adjacent_bits")
"""The penalties the dose-response control follows along the rotation's size t."""


def dose(vals: Values) -> dict[str, list[float]]:
    """Values and claims of the dose-response control, per family, along its grid of t.

    ``{fam}_dose_monotone`` holds where each of :data:`DOSE_METRICS` never falls, within its
    95% intervals, from one t to the next (``hi`` at the larger t at least ``lo`` at the
    smaller), and rises overall (from t = 0 to t = 1 above the intervals).

    Returns:
        Each family with a dose-response grid and its values of t (none without the control).
    """
    path = vals.root / A.DOSE_RESPONSE
    if not path.exists():
        return {}
    table = read_table(path)
    families = list(dict.fromkeys(table["family"]))
    for fam in families:
        part = table[table["family"] == fam].sort_values("t")
        ok = True
        for metric in DOSE_METRICS:
            for t in part["t"]:
                vals.add(
                    f"{fam}.dose.{metric}.{dose_key(t)}",
                    {
                        "table": A.DOSE_RESPONSE,
                        "where": {"family": fam, "t": float(t)},
                        "column": metric,
                        "agg": "first",
                    },
                    f"{metric} of {fam} rotated by t = {t:g}",
                )
            lo, hi = part[f"{metric}_lo"].to_numpy(), part[f"{metric}_hi"].to_numpy()
            if len(part) < 2 or not (np.isfinite(lo).all() and np.isfinite(hi).all()):
                ok = None
                break
            ok = ok and bool((hi[1:] >= lo[:-1]).all()) and bool(lo[-1] > hi[0])
        vals.claims[f"{fam}_dose_monotone"] = {
            "holds": ok,
            "left": f"{fam}.dose",
            "op": "non-decreasing in t",
            "right": None,
            "says": f"{fam}'s shared-lens and adjacent transfer penalties do not fall with the "
            "rotation's size t within their 95% intervals, and rise from t = 0 to t = 1",
        }
    return {
        fam: [float(t) for t in sorted(table.loc[table["family"] == fam, "t"])] for fam in families
    }


def dose_key(t: float) -> str:
    """The suffix of a dose-response value's name at ``t`` (``t050`` for t = 0.5)."""
    return f"t{round(100 * t):03d}"


def seeds(vals: Values, columns: list[str]) -> list[dict]:
    """Values of the seed replicates: each headline column's mean over seeds and its interval.

    For every model trained from more than one seed, ``{model}.seeds.{column}`` (with
    ``_lo``/``_hi``: the interval over seeds of :func:`iterlens.report.tables.seed_interval`,
    a statement about the recipe rather than one checkpoint; ``_half``: its half-width) and
    ``{model}.seeds.n``.

    Returns:
        One row per such model: ``model``, ``n`` (seeds) and ``cells`` (column -> the mean
        printed with the interval's half-width, ``"x ± h"``), the headline tables' extra rows.
    """
    from iterlens.report.values import digits_for

    path = vals.root / A.SEEDS
    if not path.exists():
        return []
    table = read_table(path)
    rows = []
    for model, part in table.groupby("model", sort=False):
        n = int(part["n_seeds"].max())
        if n < 2:
            continue
        where = {"table": A.SEEDS, "agg": "first"}
        spec = {**where, "where": {"model": model}, "column": "n_seeds", "agg": "max"}
        vals.add(f"{model}.seeds.n", spec, f"seeds of {model}", digits=0)
        cells = {}
        for column in (c for c in columns if c in set(part["metric"])):
            name, digits = f"{model}.seeds.{column}", digits_for(column)
            for suffix, stat in (("", "mean"), ("_lo", "lo"), ("_hi", "hi"), ("_half", "half")):
                spec = {**where, "where": {"model": model, "metric": column}, "column": stat}
                vals.add(name + suffix, spec, f"{stat} over seeds of {model}, {column}", digits)
            if name in vals.values and f"{name}_half" in vals.values:
                cells[column] = (
                    f"{vals.values[name]['text']} ± {vals.values[name + '_half']['text']}"
                )
        rows.append({"model": model, "n": n, "cells": cells})
    return rows
