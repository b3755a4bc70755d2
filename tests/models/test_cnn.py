from __future__ import annotations

import numpy as np
import pytest
import torch

from iterlens.models.cnn import (
    InceptionModule,
    InceptionNet,
    accuracy,
    init_cnn,
    load_cnn,
    n_parameters,
    save_cnn,
    train_cnn,
)
from iterlens.probing.readout import readout_from_cnn


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


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
    assert n_parameters(plain) == n_parameters(res)
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
def test_norm_and_fc_of_last_representation_is_forward(residual):
    net = init_cnn(12, (1, 1, 1), residual=residual, seed=0)
    with torch.no_grad():  # a trained-like norm: not the identity affine map
        net.norm.weight.uniform_(0.5, 2.0)
        net.norm.bias.uniform_(-1.0, 1.0)
    x = images(5)
    with torch.no_grad():
        logits = net(x)
        reps = net.representations(x)
        assert torch.allclose(net.fc(net.norm(reps[:, -1])), logits, atol=1e-5)
        assert not torch.allclose(net.fc(reps[:, -1]), logits, atol=1e-3)
        readout = readout_from_cnn(net)
        assert torch.allclose(readout(reps[:, -1]), logits, atol=1e-5)
        # the readout is blind to the scale of h, as an LM's final norm is
        assert torch.allclose(readout(7.0 * reps[:, -1]), logits, atol=1e-4)
    assert readout.meta == {"family": "inception", "residual": residual}
    assert readout.norm_kind() == "layernorm"
    assert readout.unembedding is not net.fc and not readout.training
    net.fc.weight.data.add_(1.0)  # the readout is a copy
    net.norm.weight.data.add_(1.0)
    assert not torch.equal(readout.unembedding.weight, net.fc.weight)
    assert not torch.equal(readout.final_norm.weight, net.norm.weight)


def test_net_without_final_norm_reads_out_with_fc_alone(tmp_path):
    # The head of nets saved before the final norm existed (no "final_norm" in config.json).
    net = init_cnn(8, (1, 1), residual=False, seed=0, final_norm=False)
    save_cnn(net, tmp_path / "old")
    config = tmp_path / "old" / "config.json"
    config.write_text(config.read_text().replace('"final_norm": false,', ""))
    loaded = load_cnn(tmp_path / "old")
    assert not loaded.final_norm
    x = images(3)
    with torch.no_grad():
        reps = loaded.representations(x)
        assert torch.equal(loaded.fc(reps[:, -1]), loaded(x))
        assert torch.equal(readout_from_cnn(loaded)(reps[:, -1]), net(x))
    assert readout_from_cnn(loaded).norm_kind() == "identity"
    # a net with a norm refuses weights without one, naming the mismatch
    config.write_text(config.read_text().replace("{", '{"final_norm": true,', 1))
    with pytest.raises(ValueError, match="do not fit"):
        load_cnn(tmp_path / "old")


def test_small_net_learns_mnist(splits):
    # Without batch normalisation a GAP net sits near chance for its first ~60-100 steps, so a
    # width-8 net trained for one epoch on 1,000 digits (31 steps) stays at chance; this
    # is the smallest quick setting that reliably learns: ~190 steps, ~5 s on one core.
    x, y = splits["train"]
    xv, yv = splits["eval"]
    x, y, xv, yv = x[:1000], y[:1000], xv[:500], yv[:500]
    net = init_cnn(16, (1, 1), residual=False, seed=0)
    before = accuracy(net, xv, yv)
    curve = train_cnn(
        net, x, y, epochs=3, batch_size=16, lr=1e-2, seed=0, x_val=xv, y_val=yv, progress=False
    )
    assert list(curve.columns) == [
        "epoch",
        "train_loss_nats",
        "train_acc",
        "val_loss_nats",
        "val_acc",
    ]
    assert list(curve.epoch) == [1, 2, 3] and curve.attrs["seconds"] > 0
    assert before < 0.2 < 0.3 < curve.val_acc.iloc[-1]
    assert curve.val_acc.iloc[-1] == pytest.approx(accuracy(net, xv, yv))
    assert curve.train_loss_nats.iloc[-1] < curve.train_loss_nats.iloc[0]
    assert not net.training


def test_training_is_deterministic_and_nan_without_validation():
    x, y = images(40), torch.arange(40) % 10

    def run(seed: int):
        net = init_cnn(4, (1,), residual=True, seed=0)
        return net, train_cnn(
            net, x, y, epochs=2, batch_size=16, lr=1e-3, seed=seed, progress=False
        )

    net, curve = run(0)
    assert list(curve.epoch) == [1, 2]
    assert curve.val_acc.isna().all() and curve.val_loss_nats.isna().all()
    assert np.isfinite(curve.train_loss_nats).all()
    again, curve_again = run(0)
    assert curve_again.to_csv(index=False) == curve.to_csv(index=False)
    assert all(
        torch.equal(a, b)
        for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True)
    )
    other, _ = run(1)  # another shuffling seed, another model
    assert not torch.equal(other.fc.weight, net.fc.weight)
    with pytest.raises(ValueError, match="x_val"):
        train_cnn(net, x, y, epochs=1, batch_size=16, lr=1e-3, seed=0, x_val=x, progress=False)


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
