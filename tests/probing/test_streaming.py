"""The per-example columns of a store are read shard by shard, without the activations."""

from __future__ import annotations

from argparse import Namespace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from iterlens.probing import store as store_module
from iterlens.probing.store import ActivationStore, shard_path, write_manifest, write_shard

N, LAYERS, D = 6, 2, 4


def make_lm_store(folder, groups: bool = True, n_shards: int = 3) -> None:
    """An LM store whose inputs hold an EOS (id 0) every fourth token."""
    for i in range(n_shards):
        inputs = torch.arange(i * N, (i + 1) * N) % 4
        write_shard(
            shard_path(folder, i),
            torch.randn(N, LAYERS + 1, D),
            torch.arange(i * N, (i + 1) * N) % 5,
            inputs,
            n_bytes=N,
            groups=torch.full((N,), 10 + i) if groups else None,
        )
    write_manifest(folder, n_shards, {"domain": "lm", "readout_fingerprint": "abc"})


@pytest.fixture
def no_activations(monkeypatch):
    """Fail on any read of a whole shard or of ``hidden``; record the tensors read."""
    read: list[str] = []
    real_open = store_module.safe_open

    class Recording:
        def __init__(self, path, framework):
            self.file = real_open(path, framework=framework)

        def __enter__(self):
            self.file.__enter__()
            return self

        def __exit__(self, *exc):
            return self.file.__exit__(*exc)

        def __getattr__(self, name):
            return getattr(self.file, name)

        def get_tensor(self, name):
            if name == "hidden":
                raise AssertionError("the activations were read")
            read.append(name)
            return self.file.get_tensor(name)

    def whole(*_args, **_kwargs):
        raise AssertionError("a whole shard was loaded")

    monkeypatch.setattr(store_module, "safe_open", Recording)
    monkeypatch.setattr(store_module, "load_file", whole)
    return read


def test_column_reads_one_tensor_per_shard_in_store_order(tmp_path, no_activations):
    make_lm_store(tmp_path)
    store = ActivationStore(tmp_path)
    targets = store.column("targets")
    assert torch.equal(targets, torch.arange(3 * N) % 5)
    assert torch.equal(store.column("groups"), torch.tensor([10, 11, 12]).repeat_interleave(N))
    assert no_activations == ["targets"] * 3 + ["groups"] * 3
    with pytest.raises(ValueError, match="streamed"):
        store.column("hidden")


def test_column_is_none_without_groups_and_checks_hashes(tmp_path):
    make_lm_store(tmp_path, groups=False)
    assert ActivationStore(tmp_path).column("groups") is None
    path = shard_path(tmp_path, 2)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"{path.name} is corrupt or swapped"):
        ActivationStore(tmp_path).column("targets")


@pytest.mark.parametrize("groups", [True, False])
def test_evaluate_reads_groups_and_prior_without_the_activations(
    tmp_path, monkeypatch, no_activations, groups
):
    from iterlens.cli.probing import _groups_and_prior
    from iterlens.data import text
    from iterlens.data.text import save_tokens
    from iterlens.probing.metrics import prior_ce_bits

    make_lm_store(tmp_path / "acts", groups=groups)
    save_tokens(np.arange(40) % 5, tmp_path / "train.npy")
    monkeypatch.setattr(text, "load_tokenizer", lambda _: SimpleNamespace(eos_token_id=0))
    args = Namespace(train_tokens=str(tmp_path / "train.npy"), tokenizer="tok")
    got, prior = _groups_and_prior(args, ActivationStore(tmp_path / "acts"), 5)
    targets = np.arange(3 * N) % 5
    np.testing.assert_array_equal(prior, prior_ce_bits(np.arange(40) % 5, targets, 5))
    if groups:
        np.testing.assert_array_equal(got, np.repeat([10, 11, 12], N))
    else:  # documents from the EOS (id 0, closing its document) in the inputs 0, 1, 2, 3, 0, ...
        np.testing.assert_array_equal(got, (np.arange(3 * N) + 3) // 4)
    assert "hidden" not in no_activations and no_activations
