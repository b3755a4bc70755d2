from __future__ import annotations

import pytest
import torch
from conftest import layered_store

from iterlens.cli import main
from iterlens.probing.fitting import fit_kind
from iterlens.probing.lenses import LogitLens, evaluate_lenses
from iterlens.probing.readout import Readout
from iterlens.probing.rotate import (
    layer_rotations,
    rotate_hidden,
    rotate_store,
    rotation_generator,
)
from iterlens.probing.store import ActivationStore


def test_rotations_are_orthogonal_seeded_and_identity_at_the_last_layer():
    qs = layer_rotations(3, 8, seed=5)
    assert len(qs) == 4
    for q in qs:
        assert torch.allclose(q @ q.T, torch.eye(8), atol=1e-5)
    assert torch.equal(qs[-1], torch.eye(8))
    assert not torch.allclose(qs[0], qs[1])  # a different basis at every layer
    assert all(torch.equal(a, b) for a, b in zip(qs, layer_rotations(3, 8, seed=5), strict=True))
    assert not torch.allclose(qs[0], layer_rotations(3, 8, seed=6)[0])
    hidden = torch.randn(5, 4, 8)
    rotated = rotate_hidden(hidden, qs)
    assert torch.equal(rotated[:, 3], hidden[:, 3])
    assert torch.allclose(rotated[:, 1] @ qs[1], hidden[:, 1], atol=1e-5)  # Q^T undoes it


def test_rotated_twin_is_read_by_the_tuned_lens_but_not_the_logit_lens(tmp_path, small_readout):
    original = layered_store(tmp_path / "a", small_readout, n=512)
    rotate_store(original, tmp_path / "b", seed=0, progress=False)
    twin = ActivationStore(tmp_path / "b")
    twin.check_readout(small_readout.fingerprint())
    a, b = original.load_shard(0), twin.load_shard(0)
    assert torch.equal(small_readout(a["hidden"][:, -1]), small_readout(b["hidden"][:, -1]))
    assert torch.equal(a["targets"], b["targets"])
    from iterlens.config import validate

    cfg = validate({"seed": 0, "lens": {"steps": 400, "batch_size": 256, "lr": 0.02}})
    kl = {}
    for name, store in (("original", original), ("rotated", twin)):
        lens, _ = fit_kind("tuned", store, small_readout, cfg, progress=False)
        lenses = {"logit": LogitLens(small_readout), "tuned": lens}
        metrics, _ = evaluate_lenses(lenses, store, small_readout, progress=False)
        kl[name] = metrics.pivot(index="layer", columns="lens", values="kl_bits")
    # The logit lens cannot read a rotated layer; the tuned lens (affine) undoes the rotation.
    assert kl["rotated"].loc[2, "logit"] > 3 * kl["original"].loc[2, "logit"] + 1
    for layer in range(4):
        orig, rot = kl["original"].loc[layer, "tuned"], kl["rotated"].loc[layer, "tuned"]
        assert abs(rot - orig) < 0.05 + 0.05 * orig, (layer, orig, rot)
        assert rot < kl["rotated"].loc[layer, "logit"] / 3
    assert kl["rotated"].loc[4, "logit"] == kl["original"].loc[4, "logit"] == 0


def test_rotate_store_command_writes_a_twin_with_the_same_readout(tmp_path, small_readout):
    probed = tmp_path / "probed" / "m"
    for split in ("lensfit", "eval"):
        layered_store(probed / "acts" / split, small_readout, seed=len(split))
    small_readout.save(probed / "readout.safetensors")
    out = tmp_path / "probed" / "m_rotated"
    stores = [str(probed / "acts" / s) for s in ("lensfit", "eval")]
    argv = ["--quiet", "--readout", str(probed / "readout.safetensors"), "--store", *stores]
    assert main(["rotate-store", *argv, "--out", str(out), "--seed", "3"]) == 0
    readout = Readout.load(out / "readout.safetensors")
    assert readout.fingerprint() == small_readout.fingerprint()
    for split in ("lensfit", "eval"):
        twin = ActivationStore(out / "acts" / split)
        assert twin.manifest["rotated"]["seed"] == 3
        assert twin.n_examples == ActivationStore(probed / "acts" / split).n_examples
    # Both splits share one basis per layer (Q depends on the seed and the layer only).
    src = ActivationStore(probed / "acts" / "eval").load_shard(0)["hidden"]
    got = ActivationStore(out / "acts" / "eval").load_shard(0)["hidden"]
    assert torch.equal(got, rotate_hidden(src, layer_rotations(4, 16, seed=3)))


def test_a_half_precision_store_rotates_and_keeps_its_dtype(tmp_path):
    from safetensors.torch import load_file

    from iterlens.probing.rotate import rotate_store
    from iterlens.probing.store import ActivationStore, shard_path, write_manifest, write_shard

    hidden = torch.randn(8, 3, 4)
    write_shard(shard_path(tmp_path / "src", 0), hidden, torch.arange(8), dtype=torch.float16)
    write_manifest(tmp_path / "src", 1, {"readout_fingerprint": "abc"})
    rotate_store(ActivationStore(tmp_path / "src"), tmp_path / "out", seed=0, progress=False)
    src = load_file(shard_path(tmp_path / "src", 0))["hidden"]
    out = load_file(shard_path(tmp_path / "out", 0))["hidden"]
    assert out.dtype is torch.float16
    assert torch.equal(out[:, -1], src[:, -1])  # the last layer is not rotated
    assert not torch.equal(out[:, 0], src[:, 0])


# The dose-response control: partial rotations Q_l(t) = expm(t log Q_l).


def test_partial_rotation_at_zero_is_the_identity_and_at_one_the_twin():
    assert all(torch.equal(q, torch.eye(8)) for q in layer_rotations(3, 8, seed=5, t=0.0))
    twin = layer_rotations(3, 8, seed=5)
    assert all(
        torch.equal(a, b) for a, b in zip(twin, layer_rotations(3, 8, 5, t=1.0), strict=True)
    )
    for q in twin[:-1]:  # special orthogonal, so expm(log Q) is Q again
        assert torch.linalg.det(q.double()) == pytest.approx(1.0, abs=1e-5)
        s = rotation_generator(q)
        assert torch.equal(s, -s.T)  # exactly skew-symmetric
        assert torch.allclose(torch.linalg.matrix_exp(s).float(), q, atol=1e-5)


@pytest.mark.parametrize("d", [1, 2, 7, 16])
def test_partial_rotations_are_rotations_on_a_grid(d):
    for t in (0.0, 0.1, 0.25, 0.5, 0.9, 1.0):
        qs = layer_rotations(4, d, seed=2, t=t)
        assert torch.equal(qs[-1], torch.eye(d))
        for q in qs:
            assert torch.allclose(q @ q.T, torch.eye(d), atol=1e-5)
            assert torch.linalg.det(q.double()) == pytest.approx(1.0, abs=1e-5)


def test_partial_rotations_share_one_generator():
    for t, s in ((0.25, 0.5), (0.5, 0.5), (0.1, 0.3)):
        a, b = layer_rotations(3, 12, 4, t=t), layer_rotations(3, 12, 4, t=s)
        both = layer_rotations(3, 12, 4, t=t + s)
        for qa, qb, qab in zip(a, b, both, strict=True):
            assert torch.allclose(qa @ qb, qab, atol=1e-5)
    # the rotation grows with t: Q(t) moves away from the identity monotonically
    dist = [(layer_rotations(2, 12, 4, t=t)[0] - torch.eye(12)).norm() for t in (0.1, 0.5, 1)]
    assert dist[0] < dist[1] < dist[2]


def test_partial_rotation_outside_the_unit_interval_is_refused():
    for t in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            layer_rotations(2, 4, 0, t=t)


def test_rotate_store_at_zero_reproduces_the_source(tmp_path, small_readout):
    original = layered_store(tmp_path / "a", small_readout, n=64)
    manifest = rotate_store(original, tmp_path / "b", seed=0, progress=False, t=0.0)
    assert manifest["rotated"]["t"] == 0.0
    twin = ActivationStore(tmp_path / "b")
    a, b = original.load_shard(0), twin.load_shard(0)
    assert torch.equal(a["hidden"], b["hidden"]) and torch.equal(a["targets"], b["targets"])
    half = rotate_store(original, tmp_path / "c", seed=0, progress=False, t=0.5)
    assert half["rotated"] == {"source": str(original.folder), "seed": 0, "t": 0.5}
    got = ActivationStore(tmp_path / "c").load_shard(0)["hidden"]
    qs = layer_rotations(original.n_layers, original.d_model, 0, t=0.5)
    assert torch.equal(got, rotate_hidden(a["hidden"].float(), qs).to(got.dtype))


def test_rotate_store_command_takes_t_in_the_unit_interval(tmp_path, small_readout, capsys):
    probed = tmp_path / "probed" / "m"
    for split in ("lensfit", "eval"):
        layered_store(probed / "acts" / split, small_readout, seed=len(split))
    small_readout.save(probed / "readout.safetensors")
    stores = [str(probed / "acts" / s) for s in ("lensfit", "eval")]
    argv = ["rotate-store", "--quiet", "--readout", str(probed / "readout.safetensors")]
    argv += ["--store", *stores, "--out", str(tmp_path / "probed" / "m_rot050")]
    assert main([*argv, "--t", "0.5"]) == 0
    twin = ActivationStore(tmp_path / "probed" / "m_rot050" / "acts" / "eval")
    assert twin.manifest["rotated"]["t"] == 0.5
    for bad in ("1.5", "-0.2", "half"):
        with pytest.raises(SystemExit) as exit_:
            main([*argv, "--t", bad])
        assert exit_.value.code == 2
    assert "t must be in [0, 1]" in capsys.readouterr().err
