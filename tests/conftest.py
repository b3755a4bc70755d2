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
    """A tiny random causal LM of ``family`` built from a config (no download)."""
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )

    torch.manual_seed(seed)
    common = {"vocab_size": 97, "bos_token_id": 0, "eos_token_id": 0}
    if family == "gpt2":
        model = GPT2LMHeadModel(
            GPT2Config(n_layer=3, n_embd=32, n_head=2, n_positions=64, **common)
        )
    elif family == "gpt_neox":
        model = GPTNeoXForCausalLM(
            GPTNeoXConfig(
                num_hidden_layers=3,
                hidden_size=32,
                num_attention_heads=2,
                intermediate_size=64,
                max_position_embeddings=64,
                **common,
            )
        )
    elif family == "llama":
        model = LlamaForCausalLM(
            LlamaConfig(
                num_hidden_layers=3,
                hidden_size=32,
                num_attention_heads=2,
                num_key_value_heads=1,
                intermediate_size=64,
                max_position_embeddings=64,
                tie_word_embeddings=False,
                **common,
            )
        )
    else:
        raise ValueError(family)
    return model.eval()


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
