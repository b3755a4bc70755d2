"""Tests of the vision control: data splits, Inception twins, training, extraction, save/load."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from iterlens.lenses import IdentityLens, evaluate_lenses
from iterlens.readout import Readout
from iterlens.store import ActivationStore, shard_path
from iterlens.vision import (
    InceptionModule,
    InceptionNet,
    _bundled_mnist,
    accuracy,
    extract_cnn_store,
    init_cnn,
    load_cnn,
    load_image_splits,
    readout_from_cnn,
    save_cnn,
    train_cnn,
)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def splits():
    return load_image_splits("mnist", lensfit_fraction=0.2, eval_fraction=0.2, seed=0)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------ data


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


# ---------------------------------------------------------------------------------- models


def test_module_keeps_width_and_representation_shape():
    module = InceptionModule(12)
    assert module(torch.randn(2, 12, 7, 7)).shape == (2, 12, 7, 7)
    net = init_cnn(16, (2, 3), residual=False, seed=0)
    assert net.n_layers == 5
    reps = net.representations(images(3))
    assert reps.shape == (3, 6, 16)
    with pytest.raises(ValueError, match="stages"):
        InceptionNet(stages=(2, 0))


def test_twins_share_weights_but_not_outputs():
    plain = init_cnn(16, (1, 2), residual=False, seed=3)
    res = init_cnn(16, (1, 2), residual=True, seed=3)
    assert n_params(plain) == n_params(res)
    sp, sr = plain.state_dict(), res.state_dict()
    assert sp.keys() == sr.keys()
    assert all(torch.equal(sp[k], sr[k]) for k in sp)
    other = init_cnn(16, (1, 2), residual=False, seed=4)
    assert not torch.equal(other.fc.weight, plain.fc.weight)
    x = images(4)
    with torch.no_grad():
        rp, rr = plain.representations(x), res.representations(x)
        assert torch.equal(rp[:, 0], rr[:, 0])  # same stem
        assert not torch.allclose(rp[:, 1:], rr[:, 1:], atol=1e-3)  # skips matter
        assert not torch.allclose(plain(x), res(x), atol=1e-3)


@pytest.mark.parametrize("residual", [False, True])
def test_fc_of_last_representation_is_forward(residual):
    net = init_cnn(12, (1, 1, 1), residual=residual, seed=0)
    x = images(5)
    with torch.no_grad():
        logits = net(x)
        reps = net.representations(x)
        assert torch.allclose(net.fc(reps[:, -1]), logits, atol=1e-5)
        readout = readout_from_cnn(net)
        assert torch.allclose(readout(reps[:, -1]), logits, atol=1e-5)
    assert readout.meta == {"family": "inception", "residual": residual}
    assert isinstance(readout.final_norm, torch.nn.Identity)
    assert readout.unembedding is not net.fc and not readout.training
    net.fc.weight.data.add_(1.0)  # the readout is a copy
    assert not torch.equal(readout.unembedding.weight, net.fc.weight)


# ------------------------------------------------------------------------------- extraction


def test_identity_lens_reproduces_logits_at_last_layer(tmp_path):
    net = init_cnn(8, (1, 1), residual=True, seed=0)
    readout = readout_from_cnn(net)
    x = images(50)
    y = torch.arange(50) % 10
    manifest = extract_cnn_store(net, readout, x, y, tmp_path / "store", shard_size=20,
                                 batch_size=8, meta={"split": "eval"}, progress=False)
    assert manifest["domain"] == "vision" and manifest["split"] == "eval"
    assert manifest["readout_fingerprint"] == readout.fingerprint()
    assert len(manifest["shards"]) == 3 and manifest["n_examples"] == 50
    store = ActivationStore(tmp_path / "store", verify_hashes=True)
    assert (store.n_layers, store.d_model) == (2, 8)
    shard = store.load_shard(0)
    assert torch.equal(shard["targets"], y[:20]) and (shard["inputs"] == -1).all()
    with torch.no_grad():
        assert torch.allclose(shard["hidden"], net.representations(x[:20]), atol=1e-6)
    metrics, _ = evaluate_lenses({"identity": IdentityLens(readout)}, store, readout,
                                 batch_size=16, progress=False)
    last = metrics[metrics.layer == 2].iloc[0]
    assert abs(last.kl_bits) < 1e-5
    assert last.top1_agree == 1.0
    with torch.no_grad():
        acc = (net(x).argmax(-1) == y).float().mean().item()
    assert last.top1_acc == pytest.approx(acc)
    assert metrics[metrics.layer == 0].iloc[0].kl_bits > 1e-3  # the stem is not final


def test_extraction_resumes_and_checks_readout(tmp_path):
    net = init_cnn(8, (1,), residual=False, seed=0)
    readout = readout_from_cnn(net)
    x, y = images(30), torch.arange(30) % 10
    folder = tmp_path / "store"
    extract_cnn_store(net, readout, x, y, folder, shard_size=10, progress=False)
    kept = shard_path(folder, 0).stat().st_mtime_ns
    shard_path(folder, 2).write_bytes(b"truncated")
    manifest = extract_cnn_store(net, readout, x, y, folder, shard_size=10, progress=False)
    assert shard_path(folder, 0).stat().st_mtime_ns == kept  # complete shard kept
    assert manifest["n_examples"] == 30  # broken shard rewritten
    ActivationStore(folder, verify_hashes=True)
    other = readout_from_cnn(init_cnn(8, (1,), residual=False, seed=1))
    with pytest.raises(RuntimeError, match="readout check failed"):
        extract_cnn_store(net, other, x, y, tmp_path / "other", progress=False)
    assert not (tmp_path / "other" / "manifest.json").exists()


# -------------------------------------------------------------------------------- training


def test_small_net_learns_mnist(splits):
    # Without normalisation a GAP net sits near chance for its first ~60-100 steps, so a
    # width-8 net trained for one epoch on 1,000 digits (31 steps) stays at chance; this
    # is the smallest quick setting that reliably learns: ~190 steps, ~5 s on one core.
    x, y = splits["train"]
    xv, yv = splits["eval"]
    x, y, xv, yv = x[:1000], y[:1000], xv[:500], yv[:500]
    net = init_cnn(16, (1, 1), residual=False, seed=0)
    before = accuracy(net, xv, yv)
    curve = train_cnn(net, x, y, epochs=3, batch_size=16, lr=1e-2, seed=0,
                      x_val=xv, y_val=yv, progress=False)
    assert list(curve.columns) == ["epoch", "train_loss_nats", "train_acc", "val_loss_nats",
                                   "val_acc"]
    assert list(curve.epoch) == [1, 2, 3] and curve.attrs["seconds"] > 0
    assert before < 0.2 < 0.3 < curve.val_acc.iloc[-1]
    assert curve.val_acc.iloc[-1] == pytest.approx(accuracy(net, xv, yv))
    assert curve.train_loss_nats.iloc[-1] < curve.train_loss_nats.iloc[0]
    assert not net.training


def test_training_is_deterministic_and_nan_without_validation():
    x, y = images(40), torch.arange(40) % 10

    def run(seed: int):
        net = init_cnn(4, (1,), residual=True, seed=0)
        return net, train_cnn(net, x, y, epochs=2, batch_size=16, lr=1e-3, seed=seed,
                              progress=False)

    net, curve = run(0)
    assert list(curve.epoch) == [1, 2]
    assert curve.val_acc.isna().all() and curve.val_loss_nats.isna().all()
    assert np.isfinite(curve.train_loss_nats).all()
    again, curve_again = run(0)
    assert curve_again.to_csv(index=False) == curve.to_csv(index=False)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                 again.state_dict().values(), strict=True))
    other, _ = run(1)  # another shuffling seed, another model
    assert not torch.equal(other.fc.weight, net.fc.weight)
    with pytest.raises(ValueError, match="x_val"):
        train_cnn(net, x, y, epochs=1, batch_size=16, lr=1e-3, seed=0, x_val=x,
                  progress=False)


# ------------------------------------------------------------------------------- save/load


def test_save_load_round_trip_and_corruption(tmp_path):
    net = init_cnn(8, (1, 2), residual=True, seed=5)
    folder = tmp_path / "cnn"
    save_cnn(net, folder)
    loaded = load_cnn(folder)
    assert isinstance(loaded, InceptionNet) and loaded.residual and loaded.n_layers == 3
    x = images(6)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    assert readout_from_cnn(loaded).fingerprint() == readout_from_cnn(net).fingerprint()
    assert not list(tmp_path.glob(".*tmp"))  # nothing left behind by the atomic write

    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="model.safetensors"):
        load_cnn(folder)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_cnn(folder)

    save_cnn(net, folder)  # overwrite an existing folder atomically
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json"):
        load_cnn(folder)
    (folder / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_cnn(folder)


def test_readout_save_load_keeps_cnn_meta(tmp_path):
    net = init_cnn(8, (1,), residual=False, seed=0)
    readout = readout_from_cnn(net)
    readout.save(tmp_path / "readout.safetensors")
    back = Readout.load(tmp_path / "readout.safetensors")
    assert back.meta == {"family": "inception", "residual": False}
    assert back.fingerprint() == readout.fingerprint()
