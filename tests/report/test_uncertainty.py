from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iterlens.probing.bootstrap import Examples
from iterlens.probing.metrics import PER_EXAMPLE
from iterlens.probing.transfer import transfer_table
from iterlens.report.tables import contrast_table, headline_row
from iterlens.report.uncertainty import (
    by_distance,
    layer_table,
    transfer_masks,
    transfer_table_intervals,
)

# lens i on data layer j, the same for every example (bits); penalty[i, j] = M[i, j] - M[j, j].
# L = 3: rows/columns 0..2 are translator layers, row 3 the logit lens, column 3 the final layer.
M = np.array(
    [
        [1.0, 2.0, 3.0, 4.0],
        [3.0, 1.5, 2.5, 2.0],
        [5.0, 2.0, 1.2, 1.5],
        [6.0, 3.0, 2.0, 1.0],
    ]
)
# top-1 agreement with the final of lens i on layer j
AGREE = np.array(
    [
        [0.5, 0.4, 0.3, 0.2],
        [0.3, 0.6, 0.5, 0.6],
        [0.1, 0.2, 0.8, 0.9],
        [0.1, 0.3, 0.5, 1.0],
    ]
)
N_LAYERS = 3


def hand_built(prior_bits: float, final_ce_bits: float, n: int = 8, m=M) -> Examples:
    """Every example alike; the logit lens's CE at the last layer is the model's own."""
    values = {}
    for lens in ("logit", "tuned", "shared", "probe"):
        for metric in PER_EXAMPLE:
            values[f"{lens}.{metric}"] = np.full((n, N_LAYERS + 1), 0.5, np.float32)
        values[f"{lens}.ce_bits"][:, -1] = final_ce_bits
    values["tuned.ce_bits"][:, 0] = 2.0  # the blocks add 2.0 - final_ce_bits
    values["shared.ce_bits"][:, :-1] = 0.75  # shared penalty 0.25 bits at layers 1, 2
    values["prior_ce_bits"] = np.full(n, prior_bits)
    groups = np.arange(n) // 2
    transfer = {  # sums over the 2 examples of each group
        "ce_bits": np.stack([m * 2] * (n // 2)),
        "kl_bits": np.stack([m * 2] * (n // 2)),
        "kl_own_bits": np.stack([m * 2] * (n // 2)),
        "agree_final": np.stack([AGREE * 2] * (n // 2)),
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
        for layer in range(N_LAYERS + 1)
    ]
    return pd.DataFrame(rows)


def test_normalised_penalty_of_a_hand_built_case():
    ex = hand_built(prior_bits=3.0, final_ce_bits=1.0)  # info gain 2 bits; blocks add 1 bit
    table = transfer_table_intervals(transfer_table(ex.transfer), ex)
    cell = table[(table.lens_layer == 0) & (table.data_layer == 1)].iloc[0]
    assert cell.ce_penalty_bits == pytest.approx(0.5)  # 2.0 - 1.5
    assert cell.ce_penalty_frac == pytest.approx(0.25)  # 0.5 / 2
    assert cell.ce_penalty_blocks == pytest.approx(0.5)  # 0.5 / 1
    assert cell.ce_penalty_frac_lo == pytest.approx(0.25)  # every example alike
    assert cell.kept == pytest.approx((3 - 2.0) / (3 - 1.5))
    assert set(table[table.lens_layer == N_LAYERS]["lens"]) == {"logit"}
    assert set(table[table.lens_layer < N_LAYERS]["lens"]) == {"tuned"}
    row = headline_row("hand", ex)
    assert row["info_gain_bits"] == pytest.approx(2.0)
    assert row["blocks_gain_bits"] == pytest.approx(1.0)
    # adjacent among the inner layers 1..2 only: (1,2) 2.5 - 1.2 = 1.3 (moved deeper) and
    # (2,1) 2.0 - 1.5 = 0.5 (moved shallower)
    assert row["transfer_ce_penalty_adjacent_up_bits"] == pytest.approx(1.3)
    assert row["transfer_ce_penalty_adjacent_down_bits"] == pytest.approx(0.5)
    assert row["transfer_ce_penalty_adjacent_bits"] == pytest.approx(0.9)
    assert row["transfer_ce_penalty_adjacent_frac"] == pytest.approx(0.45)
    assert row["transfer_ce_penalty_adjacent_blocks"] == pytest.approx(0.9)
    # bounded: (3 - 2.5) / (3 - 1.2) and (3 - 2.0) / (3 - 1.5), each in [0, 1]
    assert row["transfer_kept_adjacent"] == pytest.approx((0.5 / 1.8 + 1 / 1.5) / 2)
    assert row["transfer_agree_adjacent"] == pytest.approx((0.5 + 0.2) / 2)
    assert row["transfer_agree_own_adjacent"] == pytest.approx((0.8 + 0.6) / 2)
    # layer 0 apart: lens 0 on layers 1, 2: 0.5 and 1.8; lenses 1, 2 on layer 0: 2 and 4
    assert row["transfer_ce_penalty_layer0_lens_bits"] == pytest.approx(1.15)
    assert row["transfer_ce_penalty_layer0_data_bits"] == pytest.approx(3.0)
    # the shared lens over layers 1..L-1; layer 0 apart (0.75 - 2.0)
    assert row["shared_ce_penalty_mean_bits"] == pytest.approx(0.25)
    assert row["shared_ce_penalty_mean_frac"] == pytest.approx(0.125)
    assert row["shared_ce_penalty_layer0_bits"] == pytest.approx(-1.25)
    assert row["shared_layers_compared"] == 2
    assert row["logit_beats_shared_layers"] == 0  # equal KL: no interval above zero
    assert row["informative"]


def test_identity_row_and_final_column_never_enter_a_transfer_summary():
    """Row L is the logit lens and column L the final layer: not tuned-lens transfer."""
    changed = M.copy()
    changed[N_LAYERS, :] += 100.0
    changed[:, N_LAYERS] += 50.0
    a = headline_row("a", hand_built(3.0, 1.0))
    b = headline_row("b", hand_built(3.0, 1.0, m=changed))
    transfer = [k for k in a if k.startswith("transfer_")]
    assert len(transfer) > 40
    for key in transfer:
        assert a[key] == pytest.approx(b[key], nan_ok=True), key
    for mask in transfer_masks(N_LAYERS).values():
        assert not mask[N_LAYERS].any() and not mask[:, N_LAYERS].any()


def test_kept_share_is_bounded():
    wild = M.copy()
    wild[1, 2] = 40.0  # far worse than the prior
    wild[2, 1] = -5.0  # impossibly better than the own lens
    row = headline_row("w", hand_built(3.0, 1.0, m=wild))
    assert row["transfer_ce_penalty_adjacent_up_bits"] == pytest.approx(40 - 1.2)
    assert 0.0 <= row["transfer_kept_adjacent"] <= 1.0
    assert row["transfer_kept_adjacent"] == pytest.approx((0.0 + 1.0) / 2)


def test_not_informative_model_has_no_kl_rows():
    # final CE above the prior: the model knows less than the marginal
    ex = hand_built(prior_bits=3.32, final_ce_bits=3.4)
    table = layer_table(metrics_of(ex), ex)
    assert not table["informative"].any()
    assert table["not_informative_reason"].str.contains("info gain").all()
    for col in ["kl_bits", "kl_bits_lo", "kl_frac", "top1_agree", "ce_minus_tuned_bits"]:
        assert table[col].isna().all(), col
    fitted = table["lens"].isin(["tuned", "shared"])
    assert table.loc[fitted, "ce_bits"].isna().all()  # lenses fitted to the final
    assert table.loc[~fitted, "ce_bits"].notna().all() and table["top1_acc"][~fitted].notna().all()
    transfer = transfer_table_intervals(transfer_table(ex.transfer), ex)
    for col in ("ce_penalty_bits", "kl_bits", "ce_bits", "kept", "agree_final", "kl_own_bits"):
        assert transfer[col].isna().all(), col
    row = headline_row("control", ex)
    derived = ("transfer_", "shared_ce", "shared_minus", "logit_kl", "tuned_kl", "tuned_minus")
    derived_keys = [k for k in row if k.startswith(derived) or k.startswith("blocks_gain")]
    assert len(derived_keys) > 60
    for key in derived_keys:
        assert np.isnan(row[key]), key
    assert np.isnan(row["logit_beats_shared_layers"]) and row["logit_beats_shared_at"] == ""
    assert row["probe_best_top1_acc"] == pytest.approx(0.5)


@pytest.mark.parametrize("layers", [None, [0, 2]])
def test_an_unmeasured_transfer_matrix_reads_as_the_measured_one_of_a_not_informative_model(
    layers, tmp_path
):
    """The evaluation skips an untrained net's transfer readouts; its tables must not change."""
    from dataclasses import replace

    from iterlens.probing.transfer import transfer_layers, unmeasured_transfer_table

    ex = hand_built(prior_bits=3.32, final_ce_bits=3.4)
    measured = transfer_layers(N_LAYERS, layers)
    lost = [k for k in range(N_LAYERS + 1) if k not in measured]
    for key, sums in ex.transfer.items():  # the pairs outside the subset are NaN, as measured
        if key != "count":
            sums[:, lost, :] = sums[:, :, lost] = np.nan
    full = transfer_table_intervals(transfer_table(ex.transfer), ex)
    bare = replace(ex, transfer={})
    skipped = transfer_table_intervals(unmeasured_transfer_table(N_LAYERS, layers), bare)
    assert len(full) == len(measured) ** 2
    pd.testing.assert_frame_equal(skipped, full)
    pd.testing.assert_frame_equal(by_distance(bare), by_distance(ex))
    assert by_distance(bare).drop(columns=["abs_distance", "rel_distance"]).isna().all().all()
    for name, data in (("full", ex), ("bare", bare), ("trained", hand_built(3.0, 1.0))):
        (tmp_path / name).mkdir()
        data.save(tmp_path / name / "examples.safetensors")
    files = [str(tmp_path / name / "examples.safetensors") for name in ("full", "bare", "trained")]
    contrasts = contrast_table(files, [("trained", "full", True), ("trained", "bare", True)])
    assert len(contrasts) and contrasts["estimate"].isna().all()
    with_sums, without = headline_row("c", ex), headline_row("c", bare)
    assert with_sums.keys() == without.keys()
    assert all(np.isnan(without[k]) for k in without if k.startswith("transfer_"))


def test_informative_model_keeps_its_kl_rows():
    ex = hand_built(prior_bits=3.0, final_ce_bits=1.0)
    table = layer_table(metrics_of(ex), ex)
    assert table["informative"].all() and table["kl_bits"].notna().all()
    assert table["kl_frac"].to_numpy() == pytest.approx(0.25)  # 0.5 bits / 2 bits
    shared = table[table.lens == "shared"].set_index("layer")
    assert shared.loc[1, "ce_minus_tuned_bits"] == pytest.approx(0.25)


def test_a_probe_on_a_layer_subset_is_summarised_over_its_own_layers():
    ex = hand_built(prior_bits=3.0, final_ce_bits=1.0)
    acc = ex.values["probe.top1_acc"]
    acc[:] = np.nan  # probed at layers 1 and 2 only
    acc[:, 1], acc[:, 2] = 0.25, 0.75
    row = headline_row("subset", ex)
    assert row["probe_best_top1_acc"] == pytest.approx(0.75)
    assert row["probe_plateau_layer"] == 2
