from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from iterlens.data.images import _bundled_mnist, load_image_splits


def test_mnist_splits_disjoint_stratified_complete(splits):
    assert set(splits) == {"train", "lensfit", "eval"}
    sizes = {k: len(v[1]) for k, v in splits.items()}
    assert sizes == {"train": 3000, "lensfit": 1000, "eval": 1000}
    for x, y in splits.values():
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape[1:] == (1, 28, 28)
        assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.5
        # stratified: the bundled digits have 500 per class, so every split is balanced
        counts = torch.bincount(y, minlength=10)
        assert (counts == len(y) // 10).all(), counts
    # disjoint: no image is in two splits (the bundled digits are all distinct)
    keys = [{row.tobytes() for row in x.reshape(len(x), -1).numpy()} for x, _ in splits.values()]
    assert sum(len(k) for k in keys) == len(set().union(*keys)) == 5000
    # shuffled, not class-sorted (so a prefix of a split is a fair sample)
    assert len(torch.unique(splits["train"][1][:100])) == 10


def test_mnist_splits_disjoint_by_identity():
    raw, _ = _bundled_mnist()
    s = load_image_splits("mnist", 0.1, 0.3, seed=1)
    assert [len(s[k][1]) for k in ("train", "lensfit", "eval")] == [3000, 500, 1500]
    lookup = {row.tobytes(): i for i, row in enumerate(raw.reshape(len(raw), -1).numpy())}
    seen = []
    for x, _ in s.values():
        seen += [lookup[row.tobytes()] for row in x.reshape(len(x), -1).numpy()]
    assert sorted(seen) == list(range(5000))  # disjoint and complete
    again = load_image_splits("mnist", 0.1, 0.3, seed=1)
    assert torch.equal(again["eval"][1], s["eval"][1])
    other = load_image_splits("mnist", 0.1, 0.3, seed=2)
    assert not torch.equal(other["eval"][0], s["eval"][0])


def test_bad_fractions_refused():
    with pytest.raises(ValueError, match="fraction"):
        load_image_splits("mnist", 0.6, 0.5, seed=0)


def test_torchvision_missing_names_dataset(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(ValueError, match="FashionMNIST") as err:
        load_image_splits("FashionMNIST", 0.2, 0.2, seed=0)
    assert "torchvision" in str(err.value)


def test_torchvision_download_failure_and_unknown_name(monkeypatch, tmp_path):
    class Unreachable:
        def __init__(self, root, train=True, download=False):
            raise RuntimeError("network unreachable")

    fake = types.ModuleType("torchvision")
    fake_datasets = types.ModuleType("torchvision.datasets")
    fake_datasets.FashionMNIST = Unreachable
    fake.datasets = fake_datasets
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake_datasets)
    with pytest.raises(ValueError, match="FashionMNIST") as err:
        load_image_splits("FashionMNIST", 0.2, 0.2, seed=0, root=tmp_path)
    assert "download" in str(err.value) and "network unreachable" in str(err.value)
    with pytest.raises(ValueError, match="NoSuchSet"):
        load_image_splits("NoSuchSet", 0.2, 0.2, seed=0, root=tmp_path)


def test_torchvision_dataset_is_converted_and_split(monkeypatch, tmp_path):
    class TinyCifar:  # CIFAR-like: uint8 NHWC data, list targets
        def __init__(self, root, train=True, download=False):
            n = 60 if train else 40
            rng = np.random.default_rng(int(train))
            self.data = rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)
            self.targets = [i % 10 for i in range(n)]

    fake = types.ModuleType("torchvision")
    fake_datasets = types.ModuleType("torchvision.datasets")
    fake_datasets.CIFAR10 = TinyCifar
    fake.datasets = fake_datasets
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake_datasets)
    s = load_image_splits("cifar10", 0.2, 0.2, seed=0, root=tmp_path)
    assert sum(len(y) for _, y in s.values()) == 100
    x, y = s["eval"]
    assert x.shape == (20, 3, 8, 8) and x.dtype == torch.float32 and x.max() <= 1.0
    assert (torch.bincount(y, minlength=10) == 2).all()
