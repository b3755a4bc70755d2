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
