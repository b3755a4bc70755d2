from __future__ import annotations

import subprocess
import sys

import pandas as pd
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
        "comparison",
    ]:
        png = results / "figures" / f"{name}.png"
        assert png.stat().st_size > 10_000, name
    summary = pd.read_csv(results / "tables" / "lm_summary.csv")
    assert list(summary["model"]) == ["unigram", "lm", "lm_random"]
    headline = pd.read_csv(results / "tables" / "headline.csv")
    assert list(headline["model"]) == [
        "lm",
        "lm_random",
        "cnn_plain",
        "cnn_residual",
        "cnn_plain_random",
        "cnn_residual_random",
    ]
    assert headline.notna().all().all()
    comparison = pd.read_csv(results / "tables" / "comparison.csv")
    assert set(comparison["model"]) == {"lm", "cnn_plain", "cnn_residual"}
    vision = pd.read_csv(results / "tables" / "vision_summary.csv").set_index("model")
    assert vision.loc["cnn_plain", "n_params"] == vision.loc["cnn_residual", "n_params"]
    assert (vision["eval_acc"] > 0.2).all()  # both twins learn something in the smoke run


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


def test_hf_model_folder_replaces_the_reference_lm(smoke_run, tmp_path):
    """`lm.model: <folder>` runs the LM branch on that model (a tiny random GPT-NeoX)."""
    import yaml
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from iterlens.data.text import load_tokenizer

    tok = load_tokenizer(smoke_run / "results" / "tokenizer")
    model = GPTNeoXForCausalLM(
        GPTNeoXConfig(
            vocab_size=len(tok),
            num_hidden_layers=2,
            hidden_size=32,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
            eos_token_id=tok.eos_token_id,
            bos_token_id=tok.eos_token_id,
        )
    )
    folder = tmp_path / "tiny-neox"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    cfg["lm"] = {"model": str(folder)}
    cfg["vision"] = {"enabled": False}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    result = snakemake(
        tmp_path / "run",
        "results/tables/lm/lens_metrics.csv",
        "--quiet",
        "rules",
        config=str(tmp_path / "cfg.yaml"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run" / "results"
    assert (run / "models" / "lm" / "source.json").exists()  # recorded, not retrained
    metrics = pd.read_csv(run / "tables" / "lm" / "lens_metrics.csv")
    assert metrics["layer"].max() == 2
    last = metrics[(metrics.lens == "logit") & (metrics.layer == 2)]
    assert last["kl_bits"].item() < 1e-6
