from __future__ import annotations

import pytest
import torch

from iterlens.probing.store import (
    ActivationStore,
    shard_path,
    write_manifest,
    write_shard,
)


def make_store(folder, n_shards=2, n=10, layers=3, d=4):
    for i in range(n_shards):
        write_shard(
            shard_path(folder, i), torch.randn(n, layers + 1, d), torch.arange(n), n_bytes=5
        )
    return write_manifest(folder, n_shards, {"domain": "test", "readout_fingerprint": "abc"})


def test_store_roundtrip(tmp_path):
    manifest = make_store(tmp_path)
    store = ActivationStore(tmp_path, verify_hashes=True)
    assert (store.n_layers, store.d_model, store.n_examples, store.n_bytes) == (3, 4, 20, 10)
    assert manifest["n_examples"] == 20
    batches = list(store.iter_batches(7, layers=[0, 3]))
    assert sum(len(b.targets) for b in batches) == 20
    assert batches[0].hidden.shape == (7, 2, 4)
    steps = list(store.iter_steps(5, 8, None, seed=1))
    again = list(store.iter_steps(5, 8, None, seed=1))
    assert len(steps) == 5
    assert all(torch.equal(a.hidden, b.hidden) for a, b in zip(steps, again, strict=True))


def test_truncated_or_missing_shard_refused(tmp_path):
    make_store(tmp_path)
    path = shard_path(tmp_path, 1)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        ActivationStore(tmp_path)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match="did not finish"):
        ActivationStore(tmp_path)
    with pytest.raises(FileNotFoundError, match="missing or unreadable"):
        write_manifest(tmp_path, 3, {})


def test_readout_mismatch_refused(tmp_path):
    make_store(tmp_path)
    with pytest.raises(ValueError, match="readout mismatch"):
        ActivationStore(tmp_path).check_readout("xyz")
