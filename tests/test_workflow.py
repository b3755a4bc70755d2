"""The workflow: dry run of the default config, and the smoke DAG end to end."""

import subprocess
import sys

import pandas as pd
from conftest import ROOT

SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]


def test_default_config_dry_run(tmp_path):
    result = subprocess.run([*SNAKEMAKE, "--directory", str(tmp_path), "-n", "--cores", "2",
                             "--quiet", "rules"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train_lm" in result.stdout + result.stderr


def test_bad_config_key_stops_the_workflow(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lens:\n  stepz: 3\n")
    result = subprocess.run([*SNAKEMAKE, "--directory", str(tmp_path), "-n", "--cores", "1",
                             "--configfile", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "lens.stepz" in result.stdout + result.stderr


def test_smoke_run_writes_tables_and_figures(smoke_run):
    results = smoke_run / "results"
    metrics = pd.read_csv(results / "tables" / "lm" / "lens_metrics.csv")
    assert set(metrics["lens"]) == {"logit", "tuned", "shared", "probe"}
    for column in ["kl_bits", "ce_bits", "bits_per_byte", "top1_agree", "top1_acc",
                   "entropy_bits", "rank_input_top1", "rank_final_top1_top10"]:
        assert metrics[column].notna().all(), column
    for name in ["lm_training", "lm_lens_curves", "lm_transfer", "lm_shared_lens",
                 "lm_prediction_depth", "lm_ranks"]:
        png = results / "figures" / f"{name}.png"
        assert png.stat().st_size > 10_000, name
    summary = pd.read_csv(results / "tables" / "lm_summary.csv")
    assert list(summary["model"]) == ["unigram", "lm", "lm_random"]


def test_smoke_rerun_has_nothing_to_do(smoke_run):
    result = subprocess.run([*SNAKEMAKE, "--directory", str(smoke_run), "-n", "--cores", "1",
                             "--configfile", str(ROOT / "config" / "smoke.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr
