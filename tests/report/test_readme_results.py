import pytest
from conftest import ROOT, write_fake_results

from iterlens.cli import main
from iterlens.io import write_json
from iterlens.report.findings import findings, with_ci
from iterlens.report.paper_values import collect
from iterlens.report.readme import END, START, results_block, splice


def fake_values(tmp_path, **kwargs):
    root = write_fake_results(tmp_path / "run", **kwargs)
    return collect(root, [], ROOT / "workflow" / "report")


def test_block_is_deterministic_and_made_of_named_values(tmp_path):
    values = fake_values(tmp_path, intervals=True)
    again = collect(tmp_path / "run", [], ROOT / "workflow" / "report")
    block = results_block(values)
    assert block == results_block(again)
    v = values["values"]
    name = "cnn_residual.transfer_ce_penalty_adjacent_bits"
    assert (
        f"its twin with identity skips does better, the intervals apart ({v[name]['text']} "
        f"[{v[name + '_lo']['text']}, {v[name + '_hi']['text']}] bits)"
    ) in block
    assert "| lm | 6.83 | 4.74 | 1.56 |" in block  # the fake lm_summary, rounded
    assert "Eval accuracy of the CNN twins: plain 0.656, residual 0.337 (1762 and 1762" in block


def test_block_follows_the_claims(tmp_path):
    values = fake_values(tmp_path, vision=False)
    values["claims"]["tuned_beats_logit"]["holds"] = False
    values["findings"] = findings(values)
    block = results_block(values)
    assert "The tuned lens does not beat the logit lens" in block
    assert "CNN" not in block


def test_splice_and_command(tmp_path):
    values = fake_values(tmp_path)
    write_json(values, tmp_path / "values.json")
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n\n## Results\n{START}\nold\n{END}\n\n## Next\n")
    argv = ["readme-results", "--values", str(tmp_path / "values.json"), "--readme", str(readme)]
    argv += ["--workdir", str(tmp_path / "run")]
    assert main(argv + ["--check"]) == 1  # out of sync
    assert main(argv) == 0
    text = readme.read_text()
    assert text == f"# t\n\n## Results\n{START}\n{results_block(values)}{END}\n\n## Next\n"
    assert main(argv + ["--check"]) == 0
    with pytest.raises(ValueError, match="exactly one"):
        splice("no markers", "x")


def test_readme_has_the_markers():
    text = (ROOT / "README.md").read_text()
    assert text.count(START) == 1 and text.count(END) == 1
    assert text.index(START) < text.index(END)


def test_the_main_table_sets_every_informative_model_on_one_scale(tmp_path):
    values = fake_values(tmp_path, intervals=True)
    assert values["main_columns"][:3] == [
        "logit_kl_mean_frac",
        "tuned_kl_mean_frac",
        "shared_kl_mean_frac",
    ]
    v = values["values"]
    block = results_block(values)
    rows = {x.split("|")[1].strip(): x for x in block.splitlines() if x.startswith("| `")}
    assert set(rows) == {f"`{m}`" for m in values["main_models"]} and "`lm`" in rows
    cells = [c.strip() for c in rows["`lm`"].strip("|").split("|")]
    assert cells[1] == v["lm.n_layers"]["text"]
    assert cells[2:] == [with_ci(values, f"lm.{c}") for c in values["main_columns"]]
    assert (
        0 < float(cells[3].split()[0]) < float(cells[2].split()[0])
    )  # the fake tuned lens is closer
    values["not_informative"] = ["lm_random"]
    assert "not informative, so not in the table: `lm_random`" in results_block(values)
    values["main_models"] = []
    assert "side by side" not in results_block(values)


def test_the_readme_shows_the_run_s_headline_figure(tmp_path):
    """The block links the run's first main figure; the command copies it beside the README
    and --check fails when the copy differs from the run's."""
    values = fake_values(tmp_path)
    run = tmp_path / "run"
    (run / "results/figures").mkdir(parents=True, exist_ok=True)
    (run / "results/figures/paper_lenses.png").write_bytes(b"png one")
    values["figures"] = [
        {"stem": "paper_lenses", "path": "results/figures/paper_lenses.png", "main": True,
         "caption": "Can it be read? The lenses of every model. Details."},
        {"stem": "other", "path": "results/figures/other.png", "main": False, "caption": "x"},
    ]  # fmt: skip
    write_json(values, tmp_path / "values.json")
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n{START}\n{END}\n")
    argv = ["readme-results", "--values", str(tmp_path / "values.json"), "--readme", str(readme)]
    argv += ["--workdir", str(run)]
    assert main(argv) == 0
    text = readme.read_text()
    figure = "![Can it be read?](docs/figures/paper_lenses.png)"
    assert f"{figure}\n\n*The lenses of every model.*" in text
    assert (tmp_path / "docs/figures/paper_lenses.png").read_bytes() == b"png one"
    assert main(argv + ["--check"]) == 0
    (run / "results/figures/paper_lenses.png").write_bytes(b"png two")
    assert main(argv + ["--check"]) == 1
