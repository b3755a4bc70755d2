from __future__ import annotations

import re
import subprocess
import sys

import pandas as pd
import pytest
from conftest import ROOT, snakemake

SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]


def test_default_config_dry_run(tmp_path):
    result = subprocess.run(
        [*SNAKEMAKE, "--directory", str(tmp_path), "-n", "--cores", "2", "--quiet", "rules"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train_lm" in result.stdout + result.stderr


@pytest.mark.parametrize("rotated", [True, False])
def test_rotated_control_switch(tmp_path, rotated):
    import yaml

    from iterlens.config import validate

    models = validate({})["models"]
    for entry in models:
        entry["controls"]["rotated"] = rotated
    overlay = tmp_path / "controls.yaml"
    overlay.write_text(yaml.safe_dump({"models": models}))
    result = subprocess.run(
        [*SNAKEMAKE, "--directory", str(tmp_path), "-n", "--cores", "2", "--quiet", "rules"]
        + ["--configfile", str(overlay)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    words = set(re.findall(r"[\w-]+", result.stdout + result.stderr))  # paths are one word
    assert {"paper_values", "fit_lenses"} <= words  # the paper stays in the DAG
    for rule in ("rotate_store", "fit_lenses_rotated", "rotated_control"):
        assert (rule in words) == rotated, rule


def test_bad_config_key_stops_the_workflow(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lens:\n  stepz: 3\n")
    result = subprocess.run(
        [*SNAKEMAKE, "--directory", str(tmp_path), "-n", "--cores", "1", "--configfile", str(bad)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "lens.stepz" in result.stdout + result.stderr


def test_smoke_run_writes_tables_and_figures(smoke_run):
    results = smoke_run / "results"
    metrics = pd.read_csv(results / "tables" / "lm" / "lens_metrics.csv")
    assert set(metrics["lens"]) == {"logit", "tuned", "shared", "probe"}
    for column in [
        "kl_bits",
        "ce_bits",
        "bits_per_byte",
        "top1_agree",
        "top1_acc",
        "entropy_bits",
        "rank_input_top1",
        "rank_final_top1_top10",
    ]:
        assert metrics[column].notna().all(), column
    for name in [
        "lm_training",
        "lm_lens_curves",
        "lm_transfer",
        "lm_shared_lens",
        "lm_prediction_depth",
        "lm_ranks",
        "cnn_plain_transfer",
        "cnn_residual_transfer",
        "cnn_plain_lens_curves",
        "paper_lenses",
        "paper_transfer",
        "paper_shared",
        "paper_controls",
        "paper_dose",
    ]:
        png = results / "figures" / f"{name}.png"
        assert png.stat().st_size > 10_000, name
    summary = pd.read_csv(results / "tables" / "lm_summary.csv")
    assert list(summary["model"]) == ["lm_unigram", "lm", "lm_random"]
    headline = pd.read_csv(results / "tables" / "headline.csv")
    assert list(headline["model"]) == [
        "lm",
        "lm_random",
        "cnn_plain",
        "cnn_residual",
        "cnn_plain_random",
        "cnn_residual_random",
        "cnn_plain_s1",  # smoke.yaml: seeds.vision = 2
        "cnn_residual_s1",
    ]
    trained = headline[~headline["model"].str.endswith("_random")]
    assert trained["informative"].all()
    numbers = [
        c for c in headline.columns if c not in ("not_informative_reason", "logit_beats_shared_at")
    ]
    # every number and its interval; transfer needs an adjacent inner pair (L >= 3)
    deep = trained[trained["n_layers"] >= 3]
    assert len(deep) and deep[numbers].notna().all().all()
    shallow = trained[trained["n_layers"] < 3]
    rest = [c for c in numbers if not c.startswith("transfer_")]
    assert shallow[rest].notna().all().all()
    seeds = pd.read_csv(results / "tables" / "seeds.csv").set_index(["model", "metric"])
    assert seeds.loc[("cnn_plain", "probe_best_top1_acc"), "n_seeds"] == 2
    assert seeds.loc[("lm", "probe_best_top1_acc"), "n_seeds"] == 1
    pair = headline.set_index("model").loc[["cnn_plain", "cnn_plain_s1"], "probe_best_top1_acc"]
    assert seeds.loc[("cnn_plain", "probe_best_top1_acc"), "mean"] == pytest.approx(
        pair.mean(), rel=1e-5
    )
    comparison = pd.read_csv(results / "tables" / "comparison.csv")
    assert set(comparison["model"]) == {"lm", "cnn_plain", "cnn_residual"}
    contrasts = pd.read_csv(results / "tables" / "contrasts.csv")
    assert set(contrasts["contrast"]) == {
        "cnn_residual - cnn_plain",
        "lm - cnn_plain",
        "lm - cnn_residual",
    }
    vision = pd.read_csv(results / "tables" / "vision_summary.csv").set_index("model")
    assert vision.loc["cnn_plain", "n_params"] == vision.loc["cnn_residual", "n_params"]
    assert (vision["eval_acc"] > 0.2).all()  # both twins learn something in the smoke run


def test_untrained_control_kl_rows_are_marked_not_informative(smoke_run):
    tables = smoke_run / "results" / "tables"
    random = pd.read_csv(tables / "lm_random" / "lens_metrics.csv")
    assert (random["info_gain_bits"] < 0).all()  # near-uniform output: worse than the unigram
    assert not random["informative"].any()
    assert random["not_informative_reason"].str.contains("info gain").all()
    assert random["kl_bits"].isna().all() and random["top1_agree"].isna().all()
    fitted = random["lens"].isin(["tuned", "shared"])  # fitted to an uninformative final
    assert random.loc[fitted, "ce_bits"].isna().all()
    assert random.loc[~fitted, "ce_bits"].notna().all()  # CE against the targets stays
    assert random[random.lens == "probe"]["top1_acc"].notna().all()
    transfer = pd.read_csv(tables / "lm_random" / "transfer.csv")
    assert transfer["ce_penalty_bits"].isna().all()
    trained = pd.read_csv(tables / "lm" / "lens_metrics.csv")
    assert trained["informative"].all() and trained["info_gain_bits"].gt(0).all()
    for metric in ["kl_bits", "ce_bits", "top1_acc"]:
        inner = trained[(trained.lens != "logit") | (trained.layer < trained.layer.max())]
        assert (inner[f"{metric}_lo"] <= inner[metric] + 1e-9).all(), metric
        assert (inner[metric] <= inner[f"{metric}_hi"] + 1e-9).all(), metric
    assert (trained["n_groups"] >= 2).all()  # documents, the unit the bootstrap resamples


def test_resumed_run_redid_nothing(smoke_run):
    before, *redone = (smoke_run / "resumed.txt").read_text().splitlines()
    assert int(before.split()[0]) > 10  # the first go did real work
    assert redone == []


def test_smoke_rerun_has_nothing_to_do(smoke_run):
    result = subprocess.run(
        [
            *SNAKEMAKE,
            "--directory",
            str(smoke_run),
            "-n",
            "--cores",
            "1",
            "--configfile",
            str(ROOT / "config" / "smoke.yaml"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_pipeline_is_deterministic(smoke_run, tmp_path):
    """Re-running lens fitting and evaluation from the same store gives identical bytes.

    Runs last: it rewrites outputs, so later up-to-date checks would see newer files.
    """
    tables = smoke_run / "results" / "tables" / "cnn_plain"
    names = ["fit_tuned.csv", "fit_probe.csv", "lens_metrics.csv", "transfer.csv"]
    before = {n: (tables / n).read_bytes() for n in names}
    result = snakemake(
        smoke_run,
        "results/tables/cnn_plain/lens_metrics.csv",
        "--forcerun",
        "fit_lenses",
        "--quiet",
        "rules",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for name in names:
        assert (tables / name).read_bytes() == before[name], name


def test_two_lms_in_one_dag(smoke_run, tmp_path):
    """config/smoke-two-lms.yaml: the reference LM and a tiny random Llama from a local folder,
    each with its own tables, figures, paper rows and release folder.

    The DAG runs in a copy of the smoke run, whose reference LM (same corpus, sizes and
    settings) is trained, extracted and fitted already, as a resumed run would find it: what
    the second LM adds, and every job that reads all the models, runs. The smoke run's
    release folders and paper are removed first, so those this DAG writes are its own.
    """
    import json
    import shutil

    from iterlens.cli import main

    run = tmp_path / "run"
    shutil.copytree(smoke_run, run, symlinks=True)
    for stale in ("results/release", "results/paper", ".snakemake/iterlens-runs"):
        shutil.rmtree(run / stale, ignore_errors=True)
    # The folder model reads the corpus with its own tokenizer: here a copy of the smoke
    # run's reference BPE (the same corpus and config, so the same tokenizer).
    tok = smoke_run / "results" / "tokenizers" / "lm"
    shutil.copytree(tok, tmp_path / "tok")
    code = main(
        [
            "tiny-model",
            "--family",
            "llama",
            "--tokenizer",
            str(tmp_path / "tok"),
            "--max-positions",
            "128",
            "--out",
            str(run / "tiny-llama"),
        ]
    )
    assert code in (0, None)
    result = snakemake(run, "--quiet", "rules", config="smoke-two-lms.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    results = run / "results"
    assert (results / "models" / "tiny_llama" / "source.json").exists()  # recorded, not trained
    assert (results / "tokenizers" / "tiny_llama").is_dir()
    for model in ("lm", "lm_random", "tiny_llama", "tiny_llama_random"):
        metrics = pd.read_csv(results / "tables" / model / "lens_metrics.csv")
        assert metrics["layer"].max() == 3, model
    assert not (results / "tables" / "tiny_llama_rotated").exists()  # controls: rotated false
    assert (results / "tables" / "lm_rotated" / "lens_metrics.csv").exists()
    headline = pd.read_csv(results / "tables" / "headline.csv")
    assert list(headline["model"]) == ["lm", "tiny_llama", "lm_random", "tiny_llama_random"]
    summary = pd.read_csv(results / "tables" / "lm_summary.csv")
    assert {"lm_unigram", "tiny_llama_unigram", "tiny_llama"} <= set(summary["model"])
    for figure in ("tiny_llama_lens_curves", "tiny_llama_transfer", "lm_training"):
        assert (results / "figures" / f"{figure}.png").exists(), figure
    assert not (results / "figures" / "tiny_llama_training.png").exists()
    values = json.loads((results / "paper" / "values.json").read_text())
    assert "tiny_llama.final_ce_bits" in values["values"]  # its headline row
    # A random model is not informative: its KL-derived numbers are left out, never printed.
    assert "tiny_llama.transfer_ce_penalty_adjacent_bits" not in values["values"]
    assert {t["model"] for t in values["layer_tables"]} >= {"tiny_llama", "tiny_llama_random"}
    assert not values["has"]["vision"]
    release = sorted(p.name for p in (results / "release").iterdir())
    assert release == ["iterlens-sotu-lm", "iterlens-sotu-results", "iterlens-sotu-tiny-llama"]
    assert (results / "paper" / "paper.pdf").stat().st_size > 0


def test_a_gguf_model_through_the_dag(tmp_path):
    """config/smoke-gguf.yaml: a tiny GGUF file converted once into a model folder (its
    quantization recorded), read with its own tokenizer, with its own settings: position 0 of
    every window left out and fewer eval tokens than the config's."""
    import json

    from gguf_fixtures import write_tiny_gguf

    from iterlens.probing.store import ActivationStore

    pytest.importorskip("gguf")
    write_tiny_gguf(tmp_path / "tiny.gguf")
    result = snakemake(tmp_path, "--quiet", "rules", config="smoke-gguf.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    results = tmp_path / "results"
    source = json.loads((results / "models" / "tiny_gguf" / "gguf_source.json").read_text())
    assert (source["file"], source["quantization"]) == ("tiny.gguf", "ALL_F32")
    assert (results / "models" / "tiny_gguf" / "model.safetensors").exists()
    vocab = json.loads((results / "tokenizers" / "tiny_gguf" / "tokenizer.json").read_text())
    assert "Ġthe" in vocab["model"]["vocab"]  # the file's own tokenizer, not a BPE trained here
    store = ActivationStore(results / "probed" / "tiny_gguf" / "acts" / "eval")
    assert store.n_examples == 2048 // 32 * 31  # the override's 2,048 tokens, 31 of 32 kept
    for model in ("tiny_gguf", "tiny_gguf_random"):
        metrics = pd.read_csv(results / "tables" / model / "lens_metrics.csv")
        assert metrics["layer"].max() == 2, model
        transfer = pd.read_csv(results / "tables" / model / "transfer.csv")
        assert set(transfer["lens_layer"]) == set(transfer["data_layer"]) == {0, 1, 2}
        assert len(transfer) == 9  # the override's layers 0, 1 and the last
    assert (results / "paper" / "paper.pdf").stat().st_size > 0
