"""The language models side by side: trained LMs only, layer 0 and L apart, one line each."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from iterlens.io import write_table  # noqa: E402
from iterlens.report.figures import lms  # noqa: E402


def comparison(tmp_path) -> str:
    """A hand-made comparison table: two LMs of 4 and 6 layers, a twin, a CNN, an untrained LM."""
    rows = []
    models = [("a", "trained", "model", 4), ("b", "trained", "model", 6),
              ("a", "trained", "rotated", 4), ("a", "untrained", "random", 4),
              ("cnn", "trained", "model", 4)]  # fmt: skip
    for model, weights, twin, n_layers in models:
        keys = {"model": model, "weights": weights, "seed": 0, "twin": twin}
        lenses = ("tuned", "shared") if model == "cnn" else ("logit", "tuned", "shared")
        for lens in lenses:
            for layer in range(n_layers + 1):
                v = (n_layers - layer) / n_layers
                rows.append({**keys, "layer": layer, "depth_frac": layer / n_layers,
                             "quantity": f"{lens}_kl_frac", "value": v,
                             "value_lo": v - 0.05, "value_hi": v + 0.05})  # fmt: skip
        for d in range(1, n_layers - 1):
            rows.append({**keys, "abs_distance": d, "rel_distance": d / n_layers,
                         "quantity": "transfer_kept", "value": 1 - d / n_layers,
                         "value_lo": 0.9 - d / n_layers, "value_hi": 1.0})  # fmt: skip
    path = tmp_path / "comparison.csv"
    write_table(pd.DataFrame(rows), path)
    return str(path)


def test_only_the_trained_lms_are_drawn_on_inner_relative_depth(tmp_path):
    fig = lms([comparison(tmp_path)])
    left, middle, right = fig.axes
    for ax, n_lines in ((left, 4), (middle, 4), (right, 2)):  # two LMs, two lenses a panel
        assert len(ax.get_lines()) == n_lines
    xs = {round(float(x), 4) for line in left.get_lines() for x in np.atleast_1d(line.get_xdata())}
    assert xs == {
        0.25,
        0.5,
        0.75,
        round(1 / 6, 4),
        round(2 / 6, 4),
        round(4 / 6, 4),
        round(5 / 6, 4),
    }  # fmt: skip (layers 1..L-1 of both; 0 and L apart)
    assert right.get_ylim()[0] == 0 and right.get_ylim()[1] <= 1.05
    assert {t.get_text() for t in right.get_legend().get_texts()} == {"a", "b"}
