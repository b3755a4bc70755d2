"""Shared fixtures: tiny random models of each family, and one smoke run of the workflow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def tiny_lm(family: str, seed: int = 0):
    """A tiny random causal LM of ``family``, from its adapter's tiny config (no download)."""
    from iterlens.models.families import adapter_for

    return adapter_for(family).tiny_model(seed)


def snakemake(workdir: Path, *extra: str, config: str = "smoke.yaml"):
    """Run the workflow in ``workdir``; return the completed process."""
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(ROOT / "config" / config),
        "--cores",
        "2",
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """Run the whole smoke DAG in a temporary directory, in two goes; return the directory.

    The first go stops after the LM's extraction (as an interrupted run would); the second
    must finish the rest without redoing it. ``resumed.txt`` records what it redid.
    """
    workdir = tmp_path_factory.mktemp("smoke")
    first = snakemake(workdir, "--until", "store_manifest", "--quiet", "rules")
    assert first.returncode == 0, first.stderr[-3000:]
    done = sorted(p for p in (workdir / "results").rglob("*") if p.is_file())
    stamps = {p: p.stat().st_mtime_ns for p in done}
    result = snakemake(workdir, "--quiet", "rules")
    redone = [str(p) for p, t in stamps.items() if p.stat().st_mtime_ns != t]
    (workdir / "resumed.txt").write_text(f"{len(done)} files before\n" + "\n".join(redone))
    if result.returncode != 0:
        logs = "\n".join(
            f"--- {p}\n{p.read_text()[-2000:]}" for p in sorted((workdir / "logs").rglob("*.log"))
        )
        pytest.fail(
            f"smoke workflow failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}\n"
            f"{logs[-6000:]}"
        )
    return workdir


@pytest.fixture(autouse=True)
def one_thread():
    """Run each test on one torch thread (deterministic, and fair to a shared machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def splits():
    """The bundled MNIST digits split as the vision control splits them."""
    from iterlens.data.images import load_image_splits

    return load_image_splits("mnist", lensfit_fraction=0.2, eval_fraction=0.2, seed=0)


@pytest.fixture(scope="session")
def smoke_lm(smoke_run):
    """The smoke run's trained LM as a probed model: readout, lensfit store, eval store."""
    from iterlens.probing.readout import Readout
    from iterlens.probing.store import ActivationStore

    root = smoke_run / "results" / "probed" / "lm"
    return (
        Readout.load(root / "readout.safetensors"),
        ActivationStore(root / "acts" / "lensfit"),
        ActivationStore(root / "acts" / "eval"),
        smoke_run,
    )


def write_fake_results(root: Path, vision: bool = True, intervals: bool = False) -> Path:
    """Tables shaped like a run's (``root/results/tables``), from fixed numbers; return ``root``.

    Per-layer lens metrics and transfer matrices are made up; the headline table is computed
    from them by the package's own ``headline_table``, as the workflow does.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    nets = {"lm": 4, "lm_random": 4}
    if vision:
        nets |= {"cnn_plain": 3, "cnn_plain_random": 3, "cnn_residual": 3, "cnn_residual_random": 3}
    tables = root / "results" / "tables"
    metrics, transfers = [], []
    for net, n_layers in nets.items():
        (tables / net).mkdir(parents=True, exist_ok=True)
        rows = []
        for lens_rank, lens in enumerate(["logit", "tuned", "shared", "probe"]):
            for layer in range(n_layers + 1):
                rows.append(
                    {
                        "lens": lens,
                        "layer": layer,
                        "kl_bits": round(
                            (n_layers - layer) * (2.0 - lens_rank * 0.4) + rng.uniform(0, 0.01), 4
                        ),
                        "ce_bits": round(
                            5.0 + (n_layers - layer) * (1 - 0.2 * lens_rank) + rng.uniform(0, 0.01),
                            4,
                        ),
                        "top1_acc": round(0.1 + 0.05 * layer + rng.uniform(0, 0.01), 4),
                    }
                )
        pd.DataFrame(rows).to_csv(tables / net / "lens_metrics.csv", index=False)
        pairs = [
            {
                "lens_layer": i,
                "data_layer": j,
                "distance": j - i,
                "ce_penalty_bits": 0.0
                if i == j
                else round(
                    abs(j - i) * (3.0 if net == "cnn_plain" else 0.5) + rng.uniform(0, 0.01), 4
                ),
            }
            for i in range(n_layers + 1)
            for j in range(n_layers + 1)
        ]
        pd.DataFrame(pairs).to_csv(tables / net / "transfer.csv", index=False)
        metrics.append(str(tables / net / "lens_metrics.csv"))
        transfers.append(str(tables / net / "transfer.csv"))
    headline = pd.DataFrame(
        [_fake_headline_row(m, t) for m, t in zip(metrics, transfers, strict=True)]
    )
    if intervals:
        for col in ("transfer_ce_penalty_adjacent_bits", "tuned_kl_mean_bits"):
            headline[f"{col}_lo"] = headline[col] - 0.125
            headline[f"{col}_hi"] = headline[col] + 0.125
    headline.to_csv(tables / "headline.csv", index=False)
    pd.DataFrame(
        [
            {"model": "lm_unigram", "ce_bits": 9.3834, "ce_nats": 6.5041},
            {"model": "lm", "ce_bits": 6.8331, "ce_nats": 4.7364, "bits_per_byte": 1.5612},
            {"model": "lm_random", "ce_bits": 12.0291, "ce_nats": 8.3379, "bits_per_byte": 2.7481},
        ]
    ).to_csv(tables / "lm_summary.csv", index=False)
    if vision:
        pd.DataFrame(
            [
                {"model": "cnn_plain", "n_params": 1762, "eval_acc": 0.6562},
                {"model": "cnn_residual", "n_params": 1762, "eval_acc": 0.3371},
            ]
        ).to_csv(tables / "vision_summary.csv", index=False)
    figures = root / "results" / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    return root


FAKE_PRIOR_BITS = 12.0


def _fake_headline_row(metrics: str, transfer: str) -> dict:
    """The headline numbers of made-up tables, computed as their definitions say."""
    import pandas as pd

    table, pairs = pd.read_csv(metrics), pd.read_csv(transfer)
    n_layers = int(table["layer"].max())
    ce = table.pivot(index="layer", columns="lens", values="ce_bits")
    kl = table.pivot(index="layer", columns="lens", values="kl_bits")
    acc = table.pivot(index="layer", columns="lens", values="top1_acc")["probe"]
    off = pairs[(pairs["distance"] != 0) & (pairs["lens_layer"] > 0) & (pairs["data_layer"] > 0)]
    below = ce.index < n_layers
    inner = below & (ce.index >= 1)
    gain = FAKE_PRIOR_BITS - ce["logit"][n_layers] if "logit" in ce else float("nan")
    shared = (ce["shared"] - ce["tuned"])[below]
    return {
        "model": Path(metrics).parent.name,
        "n_layers": n_layers,
        "transfer_ce_penalty_adjacent_bits": off[off["distance"].abs() == 1][
            "ce_penalty_bits"
        ].mean(),
        "transfer_ce_penalty_far_bits": off[off["distance"].abs() >= max(1, n_layers // 2)][
            "ce_penalty_bits"
        ].mean(),
        "shared_ce_penalty_mean_bits": shared.mean(),
        "shared_ce_penalty_max_bits": shared.max(),
        "logit_kl_mean_bits": kl["logit"][below].mean(),
        "tuned_kl_mean_bits": kl["tuned"][below].mean(),
        **{  # over the information gain, with a made-up prior entropy
            f"{lens}_kl_mean_frac": kl[lens][inner].mean() / gain
            for lens in ("logit", "tuned", "shared")
            if lens in kl
        },
        "probe_best_top1_acc": acc.max(),
        "probe_plateau_layer": int((acc >= acc.max() - 0.01).idxmax()),
    }


def layered_store(folder: Path, readout, seed: int = 1, n: int = 1024, n_layers: int = 4):
    """A small store whose layers refine one prediction (noise shrinking with depth).

    Targets are the readout's own top-1 at the last layer; returns the opened store.
    """
    from iterlens.probing.store import ActivationStore, finalize_store, shard_path, write_shard

    gen = torch.Generator().manual_seed(seed)
    d = readout.d_model
    for index in range(2):
        last = 2 * torch.randn(n, d, generator=gen)
        noise = [0.5 * (n_layers - k) * torch.randn(n, d, generator=gen) for k in range(n_layers)]
        hidden = torch.stack([last + e for e in noise] + [last], 1)
        with torch.no_grad():
            targets = readout(last).argmax(-1)
        write_shard(shard_path(folder, index), hidden, targets, n_bytes=n)
    finalize_store(folder, 2, readout.fingerprint(), "test")
    return ActivationStore(folder)


@pytest.fixture
def small_readout():
    """A LayerNorm + linear readout, 16 wide, 12 classes (a sharp final distribution)."""
    from torch import nn

    from iterlens.probing.readout import Readout

    torch.manual_seed(0)
    readout = Readout(nn.LayerNorm(16), nn.Linear(16, 12)).eval()
    with torch.no_grad():
        readout.unembedding.weight.mul_(3)
    return readout
