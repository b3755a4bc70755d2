from __future__ import annotations

import pandas as pd
import pytest

from iterlens.report.controls import plot_rotated_control, rotated_control_table


def _tables(root, model, logit, tuned, shared, transfer_kl):
    folder = root / model
    folder.mkdir()
    rows = [
        {"lens": lens, "layer": layer, "kl_bits": kl, "ce_bits": 2 * kl, "top1_acc": 0.5}
        for lens, kls in (("logit", logit), ("tuned", tuned), ("shared", shared))
        for layer, kl in enumerate(kls)
    ]
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
