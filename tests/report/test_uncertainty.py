from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iterlens.probing.bootstrap import Examples
from iterlens.probing.metrics import PER_EXAMPLE
from iterlens.probing.transfer import transfer_table
from iterlens.report.tables import headline_row
from iterlens.report.uncertainty import layer_table, transfer_table_intervals

# lens i on data layer j, the same for every example (bits); penalty[i, j] = M[i, j] - M[j, j]
M = np.array([[1.0, 2.0, 4.0], [3.0, 1.5, 2.0], [5.0, 2.0, 1.0]])


def hand_built(prior_bits: float, final_ce_bits: float, n: int = 8) -> Examples:
    """Every example alike; the logit lens's CE at the last layer is the model's own."""
    values = {}
    for lens in ("logit", "tuned", "shared", "probe"):
        for m in PER_EXAMPLE:
            values[f"{lens}.{m}"] = np.full((n, 3), 0.5, np.float32)
        values[f"{lens}.ce_bits"][:, -1] = final_ce_bits
    values["shared.ce_bits"][:, :-1] = 0.75  # shared penalty 0.25 bits at layers 0 and 1
    values["prior_ce_bits"] = np.full(n, prior_bits)
    groups = np.arange(n) // 2
    transfer = {
        "ce_bits": np.stack([M * 2] * (n // 2)),  # sums over the 2 examples of each group
        "kl_bits": np.stack([M * 2] * (n // 2)),
        "count": np.full(n // 2, 2.0),
    }
    return Examples(groups, values, transfer)


def metrics_of(ex: Examples) -> pd.DataFrame:
    rows = [
        {
            "lens": lens,
            "layer": layer,
            **{m: float(ex.values[f"{lens}.{m}"][0, layer]) for m in PER_EXAMPLE},
        }
        for lens in ("logit", "tuned", "shared", "probe")
        for layer in range(3)
    ]
    return pd.DataFrame(rows)


def test_normalised_penalty_of_a_hand_built_case():
    ex = hand_built(prior_bits=3.0, final_ce_bits=1.0)  # info gain: 2 bits
    table = transfer_table_intervals(transfer_table(ex.transfer), ex)
    cell = table[(table.lens_layer == 0) & (table.data_layer == 1)].iloc[0]
    assert cell.ce_penalty_bits == pytest.approx(0.5)  # 2.0 - 1.5
    assert cell.ce_penalty_frac == pytest.approx(0.25)  # 0.5 / 2
    assert cell.ce_penalty_frac_lo == pytest.approx(0.25)  # every example alike
    row = headline_row("hand", ex)
    assert row["info_gain_bits"] == pytest.approx(2.0)
    # adjacent over layers 1..2 only: (1,2) 2 - 1 = 1 and (2,1) 2 - 1.5 = 0.5
    assert row["transfer_ce_penalty_adjacent_bits"] == pytest.approx(0.75)
    assert row["transfer_ce_penalty_adjacent_frac"] == pytest.approx(0.375)
    # layer 0 apart: lens 0 on layers 1, 2: 0.5 and 3.0; lenses 1, 2 on layer 0: 2 and 4
    assert row["transfer_ce_penalty_layer0_lens_bits"] == pytest.approx(1.75)
    assert row["transfer_ce_penalty_layer0_data_bits"] == pytest.approx(3.0)
    assert row["shared_ce_penalty_mean_frac"] == pytest.approx(0.125)
    assert row["informative"]


def test_not_informative_model_has_no_kl_rows():
    # final CE above the prior: the model knows less than the marginal
    ex = hand_built(prior_bits=3.32, final_ce_bits=3.4)
    table = layer_table(metrics_of(ex), ex)
    assert not table["informative"].any()
    assert table["not_informative_reason"].str.contains("info gain").all()
    for col in ["kl_bits", "kl_bits_lo", "kl_frac", "top1_agree", "ce_minus_tuned_bits"]:
        assert table[col].isna().all(), col
    assert table["ce_bits"].notna().all() and table["top1_acc"].notna().all()
    transfer = transfer_table_intervals(transfer_table(ex.transfer), ex)
    assert transfer["ce_penalty_bits"].isna().all() and transfer["kl_bits"].isna().all()
    assert transfer["ce_bits"].notna().all()  # CE against targets stays
    row = headline_row("control", ex)
    assert np.isnan(row["transfer_ce_penalty_far_bits"])
    assert row["probe_best_top1_acc"] == pytest.approx(0.5)


def test_informative_model_keeps_its_kl_rows():
    ex = hand_built(prior_bits=3.0, final_ce_bits=1.0)
    table = layer_table(metrics_of(ex), ex)
    assert table["informative"].all() and table["kl_bits"].notna().all()
    assert table["kl_frac"].to_numpy() == pytest.approx(0.25)  # 0.5 bits / 2 bits
    shared = table[table.lens == "shared"].set_index("layer")
    assert shared.loc[0, "ce_minus_tuned_bits"] == pytest.approx(0.25)
