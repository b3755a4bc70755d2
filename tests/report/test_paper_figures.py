"""The paper's main figures: every studied model at once, none drawn empty, at text width."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from conftest import ROOT  # noqa: E402

from iterlens.io import write_table  # noqa: E402
from iterlens.report import figures as F  # noqa: E402
from iterlens.report.paper_figures import MAIN_FIGURES  # noqa: E402

# (model, weights, twin, L, informative): two LMs, a CNN, an untrained twin (no KL at all)
MODELS = [("a", "trained", "model", 4, True), ("b", "trained", "model", 6, True),
          ("cnn", "trained", "model", 3, True), ("a", "untrained", "random", 4, False)]  # fmt: skip


def comparison(tmp_path) -> str:
    """A hand-made comparison table: per-layer lens KLs and probe accuracy of :data:`MODELS`."""
    rows = []
    for model, weights, twin, n_layers, informative in MODELS:
        keys = {"model": model, "weights": weights, "seed": 0, "twin": twin}
        for quantity in ("logit_kl_frac", "tuned_kl_frac", "shared_kl_frac", "probe_top1_acc"):
            for layer in range(n_layers + 1):
                v = (n_layers - layer) / n_layers + 0.01
                if not informative and quantity != "probe_top1_acc":
                    v = np.nan
                rows.append({**keys, "layer": layer, "depth_frac": layer / n_layers,
                             "quantity": quantity, "value": v, "value_lo": v - 0.005,
                             "value_hi": v + 0.005})  # fmt: skip
    path = tmp_path / "comparison.csv"
    write_table(pd.DataFrame(rows), path)
    return str(path)


def transfer(tmp_path, model: str, n_layers: int, informative: bool) -> str:
    rows = [
        {"lens_layer": i, "data_layer": j, "kept": 1.0 - abs(i - j) / n_layers if informative
         else np.nan, "informative": informative}
        for i in range(n_layers + 1)
        for j in range(n_layers + 1)
    ]  # fmt: skip
    path = tmp_path / model / "transfer.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_table(pd.DataFrame(rows), path)
    return str(path)


def test_the_main_figures_are_one_list_each_drawn_captioned_and_a_target():
    assert F.PAPER_FIGURES is MAIN_FIGURES  # the registry reads the paper's list, no copy
    assert all(name in F.FIGURES for name in MAIN_FIGURES)
    assert all((ROOT / "workflow" / "report" / f"{name}.rst").exists() for name in MAIN_FIGURES)
    rules = (ROOT / "workflow" / "rules" / "figures.smk").read_text()
    assert all(f"rule figure_{name}:" in rules for name in MAIN_FIGURES)


def test_lenses_draw_every_informative_model_on_relative_depth(tmp_path):
    fig = F.paper_lenses([comparison(tmp_path)])
    logit, tuned = fig.axes
    assert logit.get_yscale() == "log" and logit.get_shared_y_axes().joined(logit, tuned)
    # one joined line a model over layers 1..L-1 (layer 0 a marker apart, layer L left out)
    lines = [line for line in logit.get_lines() if len(line.get_xdata()) > 1]
    assert sorted(len(line.get_xdata()) for line in lines) == [2, 3, 5]
    xs = np.concatenate([line.get_xdata() for line in lines])
    assert xs.min() > 0 and xs.max() < 1
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["a", "b", "cnn"]  # the untrained twin is not drawn


def test_shared_lens_has_one_panel_per_informative_model(tmp_path):
    fig = F.paper_shared([comparison(tmp_path)])
    assert [ax.get_title() for ax in fig.axes] == ["a (L = 4)", "b (L = 6)", "cnn (L = 3)"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "logit lens",
        "tuned lens",
        "shared lens",
    ]


def test_transfer_matrices_share_one_bounded_scale(tmp_path):
    inputs = [transfer(tmp_path, "a", 4, True), transfer(tmp_path, "b", 6, True),
              transfer(tmp_path, "a_random", 4, False)]  # fmt: skip
    fig = F.paper_transfer(inputs)
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in panels] == ["a (L = 4)", "b (L = 6)"]
    assert all(ax.images[0].get_clim() == (0, 1) for ax in panels)
    assert len(fig.axes) == 3  # and one colour bar
    # five panels: a grid of at most four a row
    many = [transfer(tmp_path, f"m{k}", 3, True) for k in range(5)]
    assert len([ax for ax in F.paper_transfer(many).axes if ax.images]) == 5


def test_dose_response_draws_the_penalties_it_has(tmp_path):
    rows = [{"family": "a", "t": t, "shared_ce_penalty_mean_bits": t,
             "transfer_ce_penalty_adjacent_bits": 2 * t, "transfer_kept_adjacent": 1 - t}
            for t in (0.0, 0.5, 1.0)]  # fmt: skip
    write_table(pd.DataFrame(rows), tmp_path / "dose_response.csv")
    fig = F.paper_dose([str(tmp_path / "dose_response.csv")])
    assert len(fig.axes) == 3 and fig.axes[2].get_ylim()[1] <= 1.05
    table = pd.DataFrame(rows).drop(columns="transfer_kept_adjacent")
    write_table(table, tmp_path / "dose_response.csv")
    assert len(F.paper_dose([str(tmp_path / "dose_response.csv")]).axes) == 2


def controls_inputs(tmp_path) -> list[str]:
    """Every table the controls figure reads: comparison, rotated twins, headline, seeds."""
    base = comparison(tmp_path)
    rotated = []
    for twin, scale in (("original", 1.0), ("rotated", 3.0)):
        for layer in range(5):
            rotated.append({"model": "a", "twin": twin, "layer": layer,
                            "logit_kl_bits": scale, "tuned_kl_bits": 0.1,
                            "shared_kl_penalty_bits": 0.01 * scale})  # fmt: skip
        rotated.append({"model": "a", "twin": twin, "abs_distance": 1,
                        "transfer_kl_penalty_bits": 0.2 * scale})  # fmt: skip
    write_table(pd.DataFrame(rotated), tmp_path / "rotated_control.csv")
    metric = "transfer_ce_penalty_adjacent_bits"
    headline = pd.DataFrame(
        {"model": ["cnn", "cnn_s1", "cnn_s2", "a", "a_random"], metric: [1.0, 1.2, 0.9, 0.1, None]}
    ).assign(
        **{f"{metric}_lo": lambda d: d[metric] - 0.1, f"{metric}_hi": lambda d: d[metric] + 0.1}
    )
    write_table(headline, tmp_path / "headline.csv")
    seeds = pd.DataFrame([{"model": "cnn", "metric": metric, "mean": 1.03, "lo": 0.7, "hi": 1.4}])
    write_table(seeds, tmp_path / "seeds.csv")
    return [base] + [
        str(tmp_path / f) for f in ("rotated_control.csv", "headline.csv", "seeds.csv")
    ]


def test_controls_leave_out_the_panels_a_run_has_no_numbers_for(tmp_path):
    assert len(F.paper_controls([comparison(tmp_path)]).axes) == 1  # initial weights only
    inputs = controls_inputs(tmp_path)
    fig = F.paper_controls(inputs)
    untrained, twins, replicates = fig.axes
    assert len([line for line in untrained.get_lines() if line.get_linestyle() == "--"]) == 1
    assert twins.get_yscale() == "log"
    assert [t.get_text() for t in replicates.get_xticklabels()] == ["cnn"]  # a has one seed


def dose(tmp_path) -> str:
    rows = [{"family": "a", "t": t, "shared_ce_penalty_mean_bits": t,
             "transfer_ce_penalty_adjacent_bits": 2 * t, "transfer_ce_penalty_far_bits": 3 * t,
             "transfer_kept_adjacent": 1 - t, "transfer_kept_far": 1 - t}
            for t in (0.0, 0.5, 1.0)]  # fmt: skip
    path = tmp_path / "dose_response.csv"
    write_table(pd.DataFrame(rows), path)
    return str(path)


INPUTS = {  # each main figure's tables, hand-made
    "paper_lenses": lambda tmp: [comparison(tmp)],
    "paper_shared": lambda tmp: [comparison(tmp)],
    "paper_controls": controls_inputs,
    "paper_transfer": lambda tmp: [transfer(tmp, "a", 4, True), transfer(tmp, "b", 6, True)],
    "paper_dose": lambda tmp: [dose(tmp)],
}


def test_dose_response_draws_far_layers_dashed(tmp_path):
    fig = F.paper_dose([dose(tmp_path)])
    moved, kept = fig.axes[1:]
    for ax in (moved, kept):
        styles = [line.get_linestyle() for line in ax.get_lines()]
        assert sorted(s for s in styles if s != "None") == ["-", "--"]  # adjacent, far


@pytest.mark.parametrize("name", MAIN_FIGURES)
def test_main_figures_print_at_the_text_width(tmp_path, name):
    from PIL import Image

    out = tmp_path / f"{name}.png"
    F.draw(name, INPUTS[name](tmp_path), out)
    with Image.open(out) as image:
        width_in = image.size[0] / F.PAPER_DPI
    # shown at 100% of the text block, so its 7 pt labels print at (nearly) 7 pt
    assert 0.95 * F.TEXT_WIDTH_IN <= width_in <= 1.01 * F.TEXT_WIDTH_IN
    # and no word of it is set below 7 pt
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    with plt.rc_context(F.PAPER_RC):
        fig = F.FIGURES[name](INPUTS[name](tmp_path))
    sizes = {t.get_text(): t.get_fontsize() for t in fig.findobj(Text) if t.get_text().strip()}
    assert sizes and min(sizes.values()) >= 7, sorted(sizes.items(), key=lambda kv: kv[1])[:3]


@pytest.mark.parametrize("name", MAIN_FIGURES)
def test_no_two_words_of_a_main_figure_overlap(tmp_path, name):
    """Titles, axis labels, tick labels and legend entries: no two drawn boxes intersect."""
    import matplotlib.pyplot as plt

    with plt.rc_context(F.PAPER_RC):
        fig = F.FIGURES[name](INPUTS[name](tmp_path))
        renderer = fig.canvas.get_renderer()
        fig.draw(renderer)
        texts = [t for legend in fig.legends for t in legend.get_texts()]
        for ax in fig.axes:
            x0, x1 = sorted(ax.get_xlim())
            y0, y1 = sorted(ax.get_ylim())
            texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
            texts += [t for t in ax.get_xticklabels() if x0 <= t.get_position()[0] <= x1]
            texts += [t for t in ax.get_yticklabels() if y0 <= t.get_position()[1] <= y1]
            if ax.get_legend() is not None:
                texts += ax.get_legend().get_texts()
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_visible()]
    boxes = [(text, box) for text, box in boxes if text.strip() and box.width > 0]
    clashes = [
        (a, b)
        for i, (a, box_a) in enumerate(boxes)
        for b, box_b in boxes[i + 1 :]
        if box_a.overlaps(box_b)
        and min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0) > 1
        and min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0) > 1
    ]
    assert not clashes, clashes[:5]
