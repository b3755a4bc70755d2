import math

import pandas as pd
import pytest
from conftest import ROOT, write_fake_results

from iterlens.report.paper_figures import caption_of
from iterlens.report.paper_values import collect
from iterlens.report.values import digits_for, evaluate, fmt

CAPTIONS = ROOT / "workflow" / "report"


def test_fmt_and_digits():
    assert fmt(0.4949, 2) == "0.49"
    assert fmt(-0.001, 2) == "0.00"  # rounds to zero: printed unsigned
    assert fmt(-0.25, 2) == "-0.25"
    assert fmt(3.0, 0) == "3"
    assert digits_for("probe_best_top1_acc") == 3
    assert digits_for("probe_plateau_layer") == 0
    assert digits_for("logit_beats_shared_layers") == 0 and digits_for("n_layers") == 0
    assert digits_for("transfer_ce_penalty_far_bits_lo") == 2
    assert digits_for("top1_acc_hi") == 3


def test_evaluate_by_hand(tmp_path):
    pd.DataFrame(
        {
            "lens": ["a", "a", "a", "b", "b", "b"],
            "layer": [0, 1, 2, 0, 1, 2],
            "x": [1.0, 4.0, 10.0, 0.5, 1.0, 2.0],
        }
    ).to_csv(tmp_path / "t.csv", index=False)
    spec = {"table": "t.csv", "where": {"lens": "a", "layer": 1}, "column": "x", "agg": "first"}
    assert evaluate(spec, tmp_path) == 4.0
    upper = {"table": "t.csv", "where": {"lens": "a", "layer": [1, 2]}, "column": "x"}
    assert evaluate({**upper, "agg": "mean"}, tmp_path) == 7.0
    # a minus b, paired on layer: (4 - 1, 10 - 2) -> max 8, min 3
    paired = {**upper, "minus": {"lens": "b"}, "pair_on": "layer"}
    assert evaluate({**paired, "agg": "max"}, tmp_path) == 8.0
    assert evaluate({**paired, "agg": "min"}, tmp_path) == 3.0
    with pytest.raises(ValueError, match="expected one"):
        evaluate({**upper, "agg": "first"}, tmp_path)
    with pytest.raises(ValueError, match="no column 'nope'"):
        evaluate({**spec, "where": {"nope": 1}}, tmp_path)
    with pytest.raises(FileNotFoundError, match="missing table"):
        evaluate({**spec, "table": "absent.csv"}, tmp_path)


def test_values_match_their_tables_and_claims_follow_them(tmp_path):
    root = write_fake_results(tmp_path)
    out = collect(root, [], CAPTIONS, {"lm": {"n_layer": 4}})
    values = out["values"]
    headline = pd.read_csv(root / "results/tables/headline.csv").set_index("model")
    lm_adj = headline.loc["lm", "transfer_ce_penalty_adjacent_bits"]
    assert values["lm.transfer_ce_penalty_adjacent_bits"]["value"] == pytest.approx(lm_adj)
    assert values["lm.transfer_ce_penalty_adjacent_bits"]["text"] == f"{lm_adj:.2f}"
    metrics = pd.read_csv(root / "results/tables/lm/lens_metrics.csv").set_index(["lens", "layer"])
    shared0 = metrics.loc[("shared", 0), "ce_bits"] - metrics.loc[("tuned", 0), "ce_bits"]
    assert values["lm.shared.ce_bits_penalty.layer0"]["value"] == pytest.approx(shared0)
    for name, entry in values.items():  # every value recomputes from its own spec
        assert fmt(evaluate(entry["spec"], root), entry["digits"]) == entry["text"], name
    # Directions: in the fake tables the plain CNN transfers worst and the tuned lens wins.
    plain = headline.loc["cnn_plain", "transfer_ce_penalty_adjacent_bits"]
    residual = headline.loc["cnn_residual", "transfer_ce_penalty_adjacent_bits"]
    assert out["claims"]["residual_transfers_better"]["holds"] is bool(residual < plain) is True
    assert out["claims"]["tuned_beats_logit"]["holds"] is True
    assert out["claims"]["residual_transfers_better_clear"]["holds"] is None  # no intervals
    assert out["has"] == {
        "vision": True,
        "intervals": False,
        "frac": False,
        "rotated": False,
        "vocab": False,
        "release": False,
    }
    assert [t["model"] for t in out["layer_tables"]] == [
        "lm",
        "lm_random",
        "cnn_plain",
        "cnn_residual",
    ]


def test_claims_flip_with_the_numbers(tmp_path):
    root = write_fake_results(tmp_path)
    headline = pd.read_csv(root / "results/tables/headline.csv")
    swap = headline.set_index("model")["transfer_ce_penalty_adjacent_bits"]
    headline.loc[headline.model == "cnn_residual", "transfer_ce_penalty_adjacent_bits"] = (
        swap["cnn_plain"] + 1
    )
    headline.to_csv(root / "results/tables/headline.csv", index=False)
    out = collect(root, [], CAPTIONS)
    assert out["claims"]["residual_transfers_better"]["holds"] is False


def test_intervals_and_optional_inputs(tmp_path):
    root = write_fake_results(tmp_path, vision=False, intervals=True)
    out = collect(root, [], CAPTIONS)
    values = out["values"]
    assert out["has"]["intervals"] and not out["has"]["vision"]
    mid = values["lm.transfer_ce_penalty_adjacent_bits"]["value"]
    assert values["lm.transfer_ce_penalty_adjacent_bits_lo"]["value"] == pytest.approx(mid - 0.125)
    assert values["lm.transfer_ce_penalty_adjacent_bits_hi"]["spec"]["column"].endswith("_hi")
    # claims about missing models are undecided, not false
    assert out["claims"]["residual_transfers_better"]["holds"] is None
    assert not any(k.startswith("cnn_") for k in values)
    assert "vision_summary.cnn_plain.accuracy" not in values


def test_not_informative_values_are_absent(tmp_path):
    root = write_fake_results(tmp_path, vision=False)
    headline = pd.read_csv(root / "results/tables/headline.csv")
    headline["transfer_ce_penalty_adjacent_frac"] = [
        0.25 if m == "lm" else math.nan for m in headline.model
    ]
    headline.to_csv(root / "results/tables/headline.csv", index=False)
    out = collect(root, [], CAPTIONS)
    assert out["values"]["lm.transfer_ce_penalty_adjacent_frac"]["text"] == "0.25"
    assert "lm_random.transfer_ce_penalty_adjacent_frac" not in out["values"]
    assert out["has"]["frac"] and "transfer_ce_penalty_adjacent_frac" in out["headline_columns"]


def test_figures_take_the_report_captions(tmp_path):
    root = write_fake_results(tmp_path)
    for stem in ("rotated_control", "lm_transfer", "lm_training", "cnn_plain_transfer"):
        (root / "results" / "figures" / f"{stem}.png").write_bytes(b"")
    out = collect(
        root,
        [
            str(root / "results" / "figures" / f"{s}.png")
            for s in ("rotated_control", "lm_transfer", "cnn_plain_transfer", "lm_training")
        ],
        CAPTIONS,
    )
    assert [f["stem"] for f in out["figures"]] == [
        "lm_training",
        "lm_transfer",
        "cnn_plain_transfer",
        "rotated_control",
    ]
    transfer = " ".join((CAPTIONS / "transfer.rst").read_text().replace("``", "").split())
    assert out["figures"][1]["caption"] == f"[lm] {transfer}"
    assert out["figures"][3]["caption"] == " ".join(
        (CAPTIONS / "rotated_control.rst").read_text().replace("``", "").split()
    )
    assert caption_of("cnn_residual_transfer", CAPTIONS) == transfer
    with pytest.raises(FileNotFoundError, match="no caption for figure 'lm_nothing'"):
        caption_of("lm_nothing", CAPTIONS)


def _lens_tables(folder, tuned, logit, shared, adjacent_frac, info_gain=2.0, half_width=0.1):
    """lens_metrics.csv and transfer.csv of a 2-layer model (layers 0..2) from given KLs."""
    folder.mkdir(parents=True)
    rows = [
        {
            "lens": lens,
            "layer": layer,
            "kl_bits": kl,
            "kl_bits_lo": kl - half_width,
            "kl_bits_hi": kl + half_width,
            "kl_frac": kl / info_gain,
            "ce_bits": 5 + kl,
            "top1_acc": 0.5,
        }
        for lens, kls in (("logit", logit), ("tuned", tuned), ("shared", shared))
        for layer, kl in enumerate(kls)
    ]
    pd.DataFrame(rows).to_csv(folder / "lens_metrics.csv", index=False)
    pairs = [
        {
            "lens_layer": i,
            "data_layer": j,
            "distance": j - i,
            "ce_penalty_bits": 0.0 if i == j else 9.0,
            "kl_penalty_bits": 0.0 if i == j else 9.0,
            # adjacent pairs among layers 1..2 carry the given value; layer 0's carry 100
            "ce_penalty_frac": 0.0 if i == j else 100.0 if 0 in (i, j) else adjacent_frac,
        }
        for i in range(3)
        for j in range(3)
    ]
    pd.DataFrame(pairs).to_csv(folder / "transfer.csv", index=False)
    return str(folder / "lens_metrics.csv"), str(folder / "transfer.csv")


def test_rotated_control_values_and_claims_by_hand(tmp_path):
    from iterlens.report.control_values import rotated
    from iterlens.report.controls import rotated_control_table
    from iterlens.report.values import Values

    tables = tmp_path / "results" / "tables"
    original = _lens_tables(tables / "lm", [1.0, 0.5, 0], [6.0, 1.0, 0], [1.5, 0.7, 0.2], 0.25)
    twin = _lens_tables(tables / "lm_rotated", [1.05, 0.45, 0], [3.0, 4.0, 0], [2.0, 1.5, 0.9], 2.5)
    control = rotated_control_table([original[0], twin[0]], [original[1], twin[1]])
    control.to_csv(tables / "rotated_control.csv", index=False)
    vals = Values(tmp_path)
    assert rotated(vals) == ["lm"]
    v = {name: entry["value"] for name, entry in vals.values.items()}
    assert v["lm.rotated.tuned_kl_mean"] == pytest.approx(0.75)  # layers 0..1
    assert v["lm.original.logit_kl_frac_min"] == pytest.approx(0.5)  # 1.0 / 2 at layer 1
    assert v["lm.rotated.logit_kl_frac_min"] == pytest.approx(1.5)  # 3.0 / 2 at layer 0
    # shared minus tuned over the inner layers 1..L-1 (here layer 1), over the info gain
    assert v["lm.original.shared_kl_penalty_frac"] == pytest.approx(0.2 / 2)
    assert v["lm.rotated.shared_kl_penalty_frac"] == pytest.approx(1.05 / 2)
    # L = 2: no adjacent pair among the inner layers, so no transfer value and no claim
    assert "lm.rotated.transfer_ce_penalty_adjacent_frac" not in v
    assert v["lm.rotated.tuned_in_interval_layers"] == 2  # 1.05 in [0.9, 1.1], 0.45 in [0.4, 0.6]
    assert v["lm.rotated.layers_checked"] == 2
    assert "lm.rotated.tuned_kl_mean_lo" not in v  # a mean of per-layer bounds is no interval
    claims = {name: c["holds"] for name, c in vals.claims.items()}
    assert claims == {
        "lm_rotated_tuned_matches": True,
        "lm_rotated_logit_fails": True,
        "lm_rotated_transfer_worse": None,
        "lm_rotated_shared_worse": True,
    }
    for entry in vals.values.values():  # every value recomputes from its own spec
        assert fmt(evaluate(entry["spec"], tmp_path), entry["digits"]) == entry["text"]

    # A twin read worse than the interval at one layer, and read by its logit lens at another.
    frame = control.copy()
    twin_row = (frame.twin == "rotated") & (frame.layer == 1)
    frame.loc[twin_row, "tuned_kl_in_original_interval"] = 0.0
    frame.loc[twin_row, "logit_kl_frac"] = 0.3
    frame.to_csv(tables / "rotated_control.csv", index=False)
    vals = Values(tmp_path)
    rotated(vals)
    assert vals.values["lm.rotated.tuned_in_interval_layers"]["text"] == "1"
    assert vals.claims["lm_rotated_tuned_matches"]["holds"] is False
    assert vals.claims["lm_rotated_logit_fails"]["holds"] is False


def test_no_rotated_control_no_rotated_values(tmp_path):
    root = write_fake_results(tmp_path)
    out = collect(root, [], CAPTIONS)
    assert out["has"]["rotated"] is False and out["rotated_families"] == []
    assert not any(".rotated." in k for k in out["values"])


def _dose_table(tmp_path, shared, adjacent, half=0.05):
    from iterlens import artifacts as A

    rows = []
    for t, s, a in zip([0.0, 0.25, 0.5, 1.0], shared, adjacent, strict=True):
        rows.append(
            {
                "family": "lm",
                "t": t,
                "model": "lm",
                "shared_ce_penalty_mean_bits": s,
                "shared_ce_penalty_mean_bits_lo": s - half,
                "shared_ce_penalty_mean_bits_hi": s + half,
                "transfer_ce_penalty_adjacent_bits": a,
                "transfer_ce_penalty_adjacent_bits_lo": a - half,
                "transfer_ce_penalty_adjacent_bits_hi": a + half,
            }
        )
    path = tmp_path / A.DOSE_RESPONSE
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)


def test_dose_response_claim_reads_the_intervals(tmp_path):
    from iterlens.report.control_values import dose
    from iterlens.report.values import Values

    _dose_table(tmp_path, [0.1, 0.3, 0.25, 2.0], [0.2, 0.5, 0.9, 3.0])  # a dip inside its interval
    vals = Values(tmp_path)
    assert dose(vals) == {"lm": [0.0, 0.25, 0.5, 1.0]}
    assert vals.values["lm.dose.shared_ce_penalty_mean_bits.t050"]["value"] == pytest.approx(0.25)
    assert vals.claims["lm_dose_monotone"]["holds"] is True
    _dose_table(tmp_path, [0.1, 0.3, 0.1, 2.0], [0.2, 0.5, 0.9, 3.0])  # a fall beyond it
    vals = Values(tmp_path)
    dose(vals)
    assert vals.claims["lm_dose_monotone"]["holds"] is False
    _dose_table(tmp_path, [0.1, 0.1, 0.1, 0.1], [0.2, 0.2, 0.2, 0.2])  # flat: no rise at t = 1
    vals = Values(tmp_path)
    dose(vals)
    assert vals.claims["lm_dose_monotone"]["holds"] is False


def test_a_probe_on_a_layer_subset_has_no_first_and_last_values(tmp_path):
    """A config's probe.layers may leave out layer 0 and L (Gemma 3's one head at layer 9)."""
    root = write_fake_results(tmp_path, vision=False)
    full = collect(root, [], CAPTIONS)["values"]
    assert "lm.probe_top1_acc_first" in full and "lm.probe_top1_acc_last" in full
    path = root / "results/tables/lm/lens_metrics.csv"
    metrics = pd.read_csv(path)
    last = metrics["layer"].max()
    metrics = metrics[(metrics["lens"] != "probe") | metrics["layer"].between(1, last - 1)]
    metrics.to_csv(path, index=False)
    values = collect(root, [], CAPTIONS)["values"]
    assert "lm.probe_top1_acc_first" not in values and "lm.probe_top1_acc_last" not in values
    assert f"lm.probe.top1_acc.layer{last - 1}" in values
