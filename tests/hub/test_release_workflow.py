"""The release staged by the smoke run of the workflow (session fixture `smoke_run`)."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow


def release_dirs(workdir):
    return sorted(p.parent for p in (workdir / "results" / "release").glob("*/release.json"))


def test_smoke_run_stages_every_repo(smoke_run):
    dirs = {p.name: p for p in release_dirs(smoke_run)}
    assert set(dirs) == {
        "iterlens-sotu-lm",
        "iterlens-sotu-cnn-plain",
        "iterlens-sotu-cnn-residual",
        "iterlens-sotu-results",
    }
    for name, folder in dirs.items():
        card = (folder / "README.md").read_text()
        meta = yaml.safe_load(card.split("---\n")[1])
        assert meta["license"] == "mit"
        if name.endswith("results"):
            for config in meta["configs"]:
                assert (folder / config["data_files"][0]["path"]).exists()
            assert {c["config_name"] for c in meta["configs"]} >= {"lm_lens_metrics", "headline"}
        else:
            repo = json.loads((folder / "release.json").read_text())
            assert (folder / "lens" / repo["lens_name"] / "params.pt").exists()
            assert (folder / "model.safetensors").exists()
            assert meta["model-index"][0]["results"][0]["metrics"]


def test_evaluate_reads_the_tuned_lens_layout_and_writes_the_same_tables(smoke_run, tmp_path):
    res = smoke_run / "results"
    lens = res / "release" / "iterlens-sotu-lm" / "lens" / "iterlens-sotu-lm"
    out = {k: tmp_path / f"{k}.csv" for k in ("metrics", "depth", "transfer")}
    cmd = [
        sys.executable,
        "-c",
        "import sys; from iterlens.cli import main; sys.exit(main())",
        "evaluate",
        "--quiet",
        "--store",
        str(res / "probed" / "lm" / "acts" / "eval"),
        "--readout",
        str(res / "probed" / "lm" / "readout.safetensors"),
        "--lens",
        str(lens),
        "--out",
        str(out["metrics"]),
        "--depth-out",
        str(out["depth"]),
        "--transfer-out",
        str(out["transfer"]),
        "--train-tokens",
        str(res / "tokens" / "lm" / "train.npy"),
        "--tokenizer",
        str(res / "tokenizers" / "lm"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    ours = pd.read_csv(out["metrics"])
    dag = pd.read_csv(res / "tables" / "lm" / "lens_metrics.csv")
    assert set(ours["lens"]) == {"logit", "tuned"}
    for kind in ("logit", "tuned"):
        pd.testing.assert_frame_equal(
            ours[ours["lens"] == kind].reset_index(drop=True),
            dag[dag["lens"] == kind].reset_index(drop=True),
        )
    pd.testing.assert_frame_equal(
        pd.read_csv(out["transfer"]), pd.read_csv(res / "tables" / "lm" / "transfer.csv")
    )
