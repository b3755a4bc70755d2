"""The spread-over-seeds table (iterlens.report.tables.seeds_table)."""

from __future__ import annotations

import math

import pandas as pd

from iterlens.io import write_table
from iterlens.report.tables import seeds_table


def test_seeds_table_groups_replicates_and_computes_spread(tmp_path):
    headline = pd.DataFrame(
        {
            "model": ["lm", "cnn_plain", "cnn_plain_random", "cnn_plain_s1", "cnn_plain_s2"],
            "penalty_bits": [0.5, 1.0, 0.0, 2.0, 4.0],
        }
    )
    write_table(headline, tmp_path / "headline.csv")
    table = seeds_table([str(tmp_path / "headline.csv")]).set_index("model")
    plain = table.loc["cnn_plain"]
    assert plain["n_seeds"] == 3
    assert math.isclose(plain["mean"], 7 / 3)
    # sample std of 1, 2, 4: sqrt(((4/3)^2 + (1/3)^2 + (5/3)^2) / 2) = sqrt(7/3)
    assert math.isclose(plain["std"], math.sqrt(7 / 3))
    assert (plain["min"], plain["max"]) == (1.0, 4.0)
    assert table.loc["lm", "n_seeds"] == 1 and math.isnan(table.loc["lm", "std"])
    assert table.loc["cnn_plain_random", "n_seeds"] == 1  # controls are not pooled with seeds


def test_seed_interval_adds_the_spread_over_seeds_and_the_eval_sampling(tmp_path):
    """Three seeds 1, 2, 4 with bootstrap half-widths 0.2, 0.3, 0.4 (mean 0.3): the half-width
    is sqrt((t_2 * sqrt(7/3) / sqrt(3))^2 + 0.3^2), t_2 = 4.302653 (97.5% Student, 2 df)."""
    headline = pd.DataFrame(
        {
            "model": ["cnn_plain", "cnn_plain_s1", "cnn_plain_s2", "lm"],
            "penalty_bits": [1.0, 2.0, 4.0, 0.5],
            "penalty_bits_lo": [0.8, 1.7, 3.6, 0.4],
            "penalty_bits_hi": [1.2, 2.3, 4.4, 0.7],
        }
    )
    write_table(headline, tmp_path / "headline.csv")
    table = seeds_table([str(tmp_path / "headline.csv")])
    assert set(table["metric"]) == {"penalty_bits"}  # the bounds are not metrics of their own
    plain = table.set_index("model").loc["cnn_plain"]
    half = math.hypot(4.302653 * math.sqrt(7 / 3) / math.sqrt(3), 0.3)
    assert math.isclose(plain["lo"], 7 / 3 - half, rel_tol=1e-6)
    assert math.isclose(plain["hi"], 7 / 3 + half, rel_tol=1e-6)
    assert math.isclose(plain["half"], half, rel_tol=1e-6)
    lm = table.set_index("model").loc["lm"]  # one seed: its own interval
    assert math.isclose(lm["lo"], 0.5 - 0.15) and math.isclose(lm["hi"], 0.5 + 0.15)


def test_seed_rows_print_the_mean_and_half_width_and_the_claim_reads_them(tmp_path):
    """Two CNNs with three seeds each: their headline rows over seeds, and the claim that the
    recipe with skips transfers better, decided on the intervals over seeds."""
    from iterlens import artifacts as A
    from iterlens.report.control_values import seeds
    from iterlens.report.values import Values

    rows = [
        {
            "model": m,
            "metric": "transfer_ce_penalty_adjacent_bits",
            "n_seeds": 3,
            "mean": mean,
            "std": 0.1,
            "min": 0.0,
            "max": 9.0,
            "lo": mean - 0.25,
            "hi": mean + 0.25,
            "half": 0.25,
        }
        for m, mean in (("cnn_plain", 7.0), ("cnn_residual", 4.0))
    ] + [
        {
            "model": "lm",
            "metric": "transfer_ce_penalty_adjacent_bits",
            "n_seeds": 1,
            "mean": 0.2,
            "std": float("nan"),
            "min": 0.2,
            "max": 0.2,
            "lo": 0.1,
            "hi": 0.3,
            "half": 0.1,
        }
    ]
    write_table(pd.DataFrame(rows), tmp_path / A.SEEDS)
    vals = Values(tmp_path)
    out = seeds(vals, ["transfer_ce_penalty_adjacent_bits", "shared_ce_penalty_mean_bits"])
    assert [r["model"] for r in out] == ["cnn_plain", "cnn_residual"]  # one seed: no row
    assert out[0] == {
        "model": "cnn_plain",
        "n": 3,
        "cells": {"transfer_ce_penalty_adjacent_bits": "7.00 ± 0.25"},
    }
    assert vals.values["cnn_residual.seeds.transfer_ce_penalty_adjacent_bits_hi"]["value"] == 4.25
    assert vals.values["cnn_plain.seeds.n"]["text"] == "3"
    vals.claim(
        "apart",
        "cnn_residual.seeds.transfer_ce_penalty_adjacent_bits_hi",
        "<",
        "cnn_plain.seeds.transfer_ce_penalty_adjacent_bits_lo",
        "apart",
    )
    assert vals.claims["apart"]["holds"] is True
