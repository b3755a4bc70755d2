"""The workflow's vocabulary stage, on the session's smoke run."""

import json

import pandas as pd
from conftest import ROOT

from iterlens.cli import main
from iterlens.vocab.analysis import TABLES


def test_smoke_run_writes_vocab_pages(smoke_run):
    vocab = smoke_run / "results" / "vocab"
    assert (vocab / "index.html").exists()
    for model in ("lm", "lm_random"):
        meta = json.loads((vocab / model / "meta.json").read_text())
        assert meta["lenses"] == ["logit", "tuned"]
        assert len(meta["pages"]) == 2  # the smoke config's prompts
        for page in meta["pages"]:
            assert (vocab / model / page).stat().st_size > 10_000
        evolution = pd.read_parquet(vocab / model / "evolution.parquet")
        assert set(evolution["lens"]) == {"logit", "tuned"}
        for i in range(len(meta["pages"])):  # the lens explorer of each prompt, and its tables
            assert (vocab / model / f"explore-{i}.html").stat().st_size > 10_000
            cells = pd.read_parquet(vocab / model / f"explore-{i}.parquet")
            assert list(dict.fromkeys(cells["lens"])) == ["logit", "tuned", "shared"]
            assert (vocab / model / f"explore-{i}-tokens.parquet").exists()
    index = (vocab / "index.html").read_text()
    assert index.count(">lens explorer</a>") == 2 * 2  # two models, two prompts


def test_vocab_tables_are_deterministic(smoke_run, tmp_path):
    """The same model, lens and config give byte-identical tables and pages."""
    results = smoke_run / "results"
    code = main(
        [
            "vocab",
            "--config",
            str(ROOT / "config" / "smoke.yaml"),
            "--threads",
            "2",
            "--quiet",
            "--model",
            str(results / "models" / "lm"),
            "--lens",
            str(results / "probed" / "lm" / "lenses" / "tuned"),
            "--name",
            "lm",
            "--out",
            str(tmp_path / "lm"),
        ]
    )
    assert code == 0
    dag = results / "vocab" / "lm"
    for name in [f"{t}.parquet" for t in TABLES] + ["prompt-0.html", "prompt-1.html"]:
        assert (tmp_path / "lm" / name).read_bytes() == (dag / name).read_bytes(), name
