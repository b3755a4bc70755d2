from __future__ import annotations

import torch
from conftest import layered_store

from iterlens.cli import main
from iterlens.probing.fitting import fit_kind
from iterlens.probing.lenses import LogitLens, evaluate_lenses
from iterlens.probing.readout import Readout
from iterlens.probing.rotate import layer_rotations, rotate_hidden, rotate_store
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
