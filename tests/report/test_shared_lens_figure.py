"""The shared-lens figure: fitted layers only, and the layers where the logit lens wins marked."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from iterlens.io import write_table  # noqa: E402
from iterlens.report.figures import shared_lens  # noqa: E402


def metrics(n_layers: int = 4) -> pd.DataFrame:
    """A hand-made lens_metrics table: the logit lens beats the shared lens at layer 2 only."""
    rows = []
    for layer in range(n_layers + 1):
        for lens in ("logit", "shared"):
            row = {"lens": lens, "layer": layer, "informative": True}
            for m in ("ce", "kl"):
                value = 0.5 if lens == "logit" else 0.1 * layer
                row |= {f"{m}_minus_tuned_bits": value, f"{m}_minus_tuned_bits_lo": value - 0.01,
                        f"{m}_minus_tuned_bits_hi": value + 0.01}  # fmt: skip
            lo = 0.05 if (lens, layer) == ("shared", 2) else -0.05  # shared minus logit KL
            row |= {"kl_minus_logit_bits_lo": lo}
            rows.append(row)
    return pd.DataFrame(rows)


def test_only_the_fitted_layers_are_drawn_and_the_logit_lens_wins_are_marked(tmp_path):
    path = tmp_path / "results" / "tables" / "lm" / "lens_metrics.csv"
    write_table(metrics(), path)
    fig = shared_lens([str(path)])
    (ax,) = fig.axes
    drawn = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert len(drawn) == 3  # shared CE and KL penalty, logit lens over tuned
    xs = {float(x) for line in drawn for x in np.atleast_1d(line.get_xdata())}
    assert xs == {1.0, 2.0, 3.0}  # layers 1..L-1 only
    (marks,) = ax.collections[-1:]
    assert marks.get_offsets().tolist() == [[2.0, 0.2]]  # layer 2, at its KL penalty
    assert "layer 0 0.00 bits" in ax.get_title() and "layer 4 0.40 bits" in ax.get_title()


def test_one_fitted_layer_is_drawn_as_bars_with_their_intervals(tmp_path):
    """L = 2 leaves one fitted layer: three bars (no line through one point) at layer 1."""
    path = tmp_path / "results" / "tables" / "cnn" / "lens_metrics.csv"
    write_table(metrics(n_layers=2), path)
    (ax,) = shared_lens([str(path)]).axes
    bars = ax.patches
    assert len(bars) == 3 and all(0.5 < b.get_x() < 1.5 for b in bars)
    assert sorted(round(b.get_height(), 6) for b in bars) == [0.1, 0.1, 0.5]
    assert not [line for line in ax.get_lines() if not line.get_label().startswith("_")]
