from __future__ import annotations

import pandas as pd
import pytest

from iterlens.report.controls import plot_rotated_control, rotated_control_table


def _tables(root, model, logit, tuned, shared, transfer_kl, half_width=None):
    folder = root / model
    folder.mkdir()
    rows = [
        {"lens": lens, "layer": layer, "kl_bits": kl, "ce_bits": 2 * kl, "top1_acc": 0.5}
        for lens, kls in (("logit", logit), ("tuned", tuned), ("shared", shared))
        for layer, kl in enumerate(kls)
    ]
    if half_width is not None:  # intervals and the normalised scale (information gain 2 bits)
        for row in rows:
            row.update(
                kl_bits_lo=row["kl_bits"] - half_width,
                kl_bits_hi=row["kl_bits"] + half_width,
                kl_frac=row["kl_bits"] / 2,
            )
    pd.DataFrame(rows).to_csv(folder / "lens_metrics.csv", index=False)
    n = len(logit)
    rows = [
        {
            "lens_layer": i,
            "data_layer": j,
            "distance": j - i,
            "ce_penalty_bits": 0.0,
            "kl_penalty_bits": 0.0 if i == j else transfer_kl(i, j),
        }  # fmt: skip
        for i in range(n)
        for j in range(n)
    ]
    pd.DataFrame(rows).to_csv(folder / "transfer.csv", index=False)
    return str(folder / "lens_metrics.csv"), str(folder / "transfer.csv")


def test_rotated_control_table_by_hand(tmp_path):
    m1, t1 = _tables(tmp_path, "lm", [4, 1, 0], [1, 0.5, 0], [2, 1, 0], lambda i, j: 1.0)
    # Layer 0's row and column carry 100 bits: they must not reach the distance summary.
    m2, t2 = _tables(
        tmp_path, "lm_rotated", [9, 9, 0], [1, 0.5, 0], [5, 4, 0],
        lambda i, j: 100.0 if 0 in (i, j) else 7.0,
    )  # fmt: skip
    table = rotated_control_table([m1, m2], [t1, t2])
    layers = table.dropna(subset=["layer"]).set_index(["twin", "layer"])
    assert layers.loc[("original", 0), "shared_kl_penalty_bits"] == 1
    assert layers.loc[("rotated", 1), "shared_kl_penalty_bits"] == pytest.approx(3.5)
    assert layers.loc[("rotated", 1), "shared_ce_penalty_bits"] == pytest.approx(7.0)
    assert set(table["model"]) == {"lm"}
    dist = table.dropna(subset=["abs_distance"]).set_index("twin")
    assert dist.loc["rotated", "transfer_kl_penalty_bits"] == 7.0  # only layers 1..L: |i-j| = 1
    assert dist.loc["original", "abs_distance"] == 1
    table.to_csv(tmp_path / "control.csv", index=False)
    fig = plot_rotated_control([str(tmp_path / "control.csv")])
    assert len(fig.axes) == 3


def test_twin_tuned_lens_inside_the_original_interval(tmp_path):
    m1, t1 = _tables(tmp_path, "net", [4, 3, 0], [1, 0.5, 0], [2, 1, 0], lambda i, j: 1.0, 0.1)
    # layer 0 inside [0.9, 1.1]; layer 1 at 0.65 outside [0.4, 0.6]; layer 2 exactly 0
    m2, t2 = _tables(
        tmp_path, "net_rotated", [9, 9, 0], [1.05, 0.65, 0], [5, 4, 0], lambda i, j: 7.0, 0.3
    )
    table = rotated_control_table([m1, m2], [t1, t2])
    layers = table.dropna(subset=["layer"]).set_index(["twin", "layer"])
    inside = layers.loc["rotated", "tuned_kl_in_original_interval"]
    assert inside.tolist() == [1.0, 0.0, 1.0]  # the twin's own, wider interval plays no part
    assert layers.loc["original", "tuned_kl_in_original_interval"].isna().all()
    assert layers.loc[("rotated", 1), "logit_kl_frac"] == 4.5
    assert layers.loc[("original", 1), "tuned_kl_interval_hi"] == pytest.approx(0.6)
    # without intervals in the tables there is nothing to compare with: NaN, not 0
    m3, t3 = _tables(tmp_path, "lm", [4, 1, 0], [1, 0.5, 0], [2, 1, 0], lambda i, j: 1.0)
    m4, t4 = _tables(tmp_path, "lm_rotated", [9, 9, 0], [1, 0.5, 0], [5, 4, 0], lambda i, j: 1.0)
    bare = rotated_control_table([m3, m4], [t3, t4])
    assert bare["tuned_kl_in_original_interval"].isna().all()
    assert bare["logit_kl_frac"].isna().all()
