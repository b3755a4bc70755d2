from __future__ import annotations

import numpy as np
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
    # L = 2: the inner translator layers are {1}, so no cell off the diagonal is transfer; the
    # logit-lens row and the final column (layer 2, 7 bits) must not stand in for one
    assert table["abs_distance"].isna().all()
    assert table["transfer_kl_penalty_bits"].isna().all()
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


# The dose-response control (dose_response_table).


def _examples(path, shared_penalty: float, transfer_scale: float, probe: bool = True) -> str:
    """Tiny per-example values of a 3-layer model: 8 examples in 4 groups."""
    from iterlens.probing.bootstrap import Examples
    from iterlens.probing.metrics import PER_EXAMPLE

    rng = np.random.default_rng(int(shared_penalty * 100))
    n, layers = 8, 4
    values = {}
    for lens in ("logit", "tuned", "shared") + (("probe",) if probe else ()):
        for metric in PER_EXAMPLE:
            values[f"{lens}.{metric}"] = rng.uniform(0.4, 0.6, (n, layers)).astype(np.float32)
        values[f"{lens}.ce_bits"][:, -1] = 1.0
    values["tuned.ce_bits"][:, :-1] = 2.0
    values["shared.ce_bits"][:, :-1] = 2.0 + shared_penalty
    values["prior_ce_bits"] = np.full(n, 4.0)
    m = 1.0 + transfer_scale * np.abs(np.subtract.outer(np.arange(layers), np.arange(layers)))
    transfer = {key: np.stack([m * 2] * (n // 2)) for key in ("ce_bits", "kl_bits", "kl_own_bits")}
    transfer["agree_final"] = np.stack([np.full((layers, layers), 1.0)] * (n // 2))
    transfer["count"] = np.full(n // 2, 2.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Examples(np.arange(n) // 2, values, transfer).save(path)
    return str(path)


def test_dose_response_table_rows_and_the_model_at_zero(tmp_path):
    from iterlens.cli import main
    from iterlens.probing.bootstrap import Examples
    from iterlens.report.controls import dose_of, dose_response_table
    from iterlens.report.tables import headline_row

    paths = {
        model: _examples(tmp_path / model / "examples.safetensors", pen, scale, model == "lm")
        for model, pen, scale in (
            ("lm", 0.1, 0.0),
            ("lm_rot050", 0.5, 1.0),
            ("lm_rotated", 2.0, 3.0),
            ("lm_rot025", 0.3, 0.5),
        )
    }
    rows = [(*dose_of(model), model, path) for model, path in paths.items()]
    table = dose_response_table(rows)
    assert table["t"].tolist() == [0.0, 0.25, 0.5, 1.0]
    assert table["model"].tolist() == ["lm", "lm_rot025", "lm_rot050", "lm_rotated"]
    assert set(table["family"]) == {"lm"}
    for column in (
        "shared_ce_penalty_mean_bits",
        "transfer_ce_penalty_adjacent_bits",
        "transfer_ce_penalty_far_bits",
        "logit_kl_mean_bits",
    ):
        for suffix in ("", "_lo", "_hi"):
            assert column + suffix in table
    assert not any(c.startswith(("probe_", "info_", "h_prior")) for c in table)
    # t = 0 is the model's own headline row, column for column
    base = headline_row("lm", Examples.load(paths["lm"]))
    kept = [c for c in table if c not in ("family", "t", "model")]
    assert kept == [
        c for c in base if c.startswith(("transfer_", "shared_", "logit_kl_", "tuned_kl_"))
    ]
    for column in kept:
        assert table.loc[0, column] == pytest.approx(base[column], nan_ok=True), column
    assert table["shared_ce_penalty_mean_bits"].tolist() == pytest.approx([0.1, 0.3, 0.5, 2.0])
    assert table["transfer_ce_penalty_adjacent_bits"].is_monotonic_increasing
    with pytest.raises(ValueError, match="two models at t"):
        dose_response_table([rows[0], rows[0]])
    with pytest.raises(ValueError, match="not on a dose response"):
        dose_of("lm_random")
    # the command reads t and the family from the folder names; the figure draws the table
    out = tmp_path / "dose_response.csv"
    assert main(["dose-response", "--examples", *paths.values(), "--out", str(out)]) == 0
    assert pd.read_csv(out)["t"].tolist() == [0.0, 0.25, 0.5, 1.0]
    png = tmp_path / "paper_dose.png"
    assert main(["plot", "--figure", "paper_dose", "--inputs", str(out), "--out", str(png)]) == 0
    assert png.stat().st_size > 0
