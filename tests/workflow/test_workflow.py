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
    overlay = tmp_path / "controls.yaml"
    overlay.write_text(f"controls:\n  rotated: {str(rotated).lower()}\n")
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
        "cnn_plain_s1",  # smoke.yaml: seeds.vision = 2
        "cnn_residual_s1",
    ]
    trained = headline[~headline["model"].str.endswith("_random")]
    assert trained["informative"].all()
    numbers = [c for c in headline.columns if c != "not_informative_reason"]
    assert trained[numbers].notna().all().all()  # every number and its interval
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
    assert random["ce_bits"].notna().all()  # CE against the targets stays informative
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
    last = metrics[metrics.layer == 2].set_index("lens")
    # At the last layer every readout-based lens is the model itself. A random model's final
    # distribution is not informative, so its KL is reported as missing (with the reason), and
    # the identity is checked on the cross-entropy instead.
    assert last.loc["logit", "ce_bits"] == pytest.approx(last.loc["tuned", "ce_bits"], abs=1e-6)
    assert last["kl_bits"].isna().all() or (last["kl_bits"] < 1e-6).all()
