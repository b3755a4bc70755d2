"""Relative updates and linear CKA, streamed over a store, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iterlens.probing.geometry import CKA_COLUMNS, UPDATE_COLUMNS, linear_cka, relative_updates
from iterlens.probing.store import ActivationStore, shard_path, write_manifest, write_shard


def make_store(folder, hidden: torch.Tensor, n_shards: int = 1) -> ActivationStore:
    """A store of ``hidden [n, L + 1, d]``, split over ``n_shards`` shards."""
    parts = torch.tensor_split(hidden, n_shards)
    for i, part in enumerate(parts):
        write_shard(shard_path(folder, i), part, torch.arange(len(part)))
    write_manifest(folder, n_shards, {"domain": "test", "readout_fingerprint": "abc"})
    return ActivationStore(folder)


def cka_direct(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA in one go, feature-space formula, centred columns."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))


def cka_grid(table, n: int) -> np.ndarray:
    return table.pivot(index="layer_a", columns="layer_b", values="cka").to_numpy().reshape(n, n)


def test_relative_update_by_hand(tmp_path):
    # example 1: h0 = (1, 0), h1 = (1, 1): ||Δ|| / ||h0|| = 1, cos = 1 / sqrt(2)
    # example 2: h0 = (2, 0), h1 = (2, 0): 0, cos = 1
    hidden = torch.tensor([[[1.0, 0.0], [1.0, 1.0]], [[2.0, 0.0], [2.0, 0.0]]])
    table = relative_updates(make_store(tmp_path, hidden), batch_size=1)
    assert list(table.columns) == UPDATE_COLUMNS
    row = table.iloc[0]
    assert len(table) == 1 and row["layer"] == 0 and row["n_examples"] == 2
    assert row["rel_update"] == pytest.approx(0.5)  # (1 + 0) / 2
    assert row["rel_update_ratio_of_means"] == pytest.approx(np.sqrt(1 / 5))  # sqrt(1/2)/sqrt(5/2)
    assert row["cos_prev"] == pytest.approx((1 / np.sqrt(2) + 1) / 2)


def test_identical_layers_do_not_change(tmp_path):
    layer = torch.randn(12, 1, 5, generator=torch.Generator().manual_seed(0))
    store = make_store(tmp_path, layer.repeat(1, 4, 1), n_shards=3)
    updates = relative_updates(store, batch_size=5)
    assert list(updates["layer"]) == [0, 1, 2]
    assert np.allclose(updates["rel_update"], 0) and np.allclose(updates["cos_prev"], 1)
    assert np.allclose(updates["rel_update_ratio_of_means"], 0)
    table = linear_cka(store, batch_size=5)
    assert list(table.columns) == CKA_COLUMNS and len(table) == 16
    assert np.allclose(table["cka"], 1)


def test_cka_invariant_to_rotation_and_scale(tmp_path):
    gen = torch.Generator().manual_seed(1)
    h0 = torch.randn(40, 6, generator=gen, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=torch.float64))
    h2 = torch.randn(40, 6, generator=gen, dtype=torch.float64)  # unrelated
    hidden = torch.stack([h0, 3.0 * h0 @ q.T + 5.0, h2], dim=1).float()
    grid = cka_grid(linear_cka(make_store(tmp_path, hidden, n_shards=2), batch_size=7), 3)
    assert np.allclose(np.diag(grid), 1)
    assert grid[0, 1] == pytest.approx(1, abs=1e-5) and grid[1, 0] == grid[0, 1]
    assert grid[0, 2] < 0.9
    # the rotation changes the update but not the CKA
    assert relative_updates(make_store(tmp_path / "b", hidden))["rel_update"].iloc[0] > 0.5


def test_cka_matches_direct_computation(tmp_path):
    gen = torch.Generator().manual_seed(2)
    base = torch.randn(50, 1, 4, generator=gen)
    hidden = base + 0.7 * torch.randn(50, 4, 4, generator=gen).cumsum(1) + 2.0
    store = make_store(tmp_path, hidden, n_shards=3)
    grid = cka_grid(linear_cka(store, batch_size=8), 4)
    h = hidden.double().numpy()
    direct = np.array([[cka_direct(h[:, a], h[:, b]) for b in range(4)] for a in range(4)])
    assert np.allclose(grid, direct, atol=1e-10)
    # a subset of layers and a cap on the examples read
    part = linear_cka(store, layers=[3, 1], max_examples=21, batch_size=8)
    assert list(zip(part["layer_a"], part["layer_b"], strict=True)) == [
        (3, 3),
        (3, 1),
        (1, 3),
        (1, 1),
    ]
    assert part["cka"].iloc[1] == pytest.approx(cka_direct(h[:21, 3], h[:21, 1]), abs=1e-10)


def test_cka_refuses_unknown_layers(tmp_path):
    store = make_store(tmp_path, torch.randn(4, 3, 2))
    with pytest.raises(ValueError, match="outside"):
        linear_cka(store, layers=[0, 3])


def test_commands_write_the_tables_and_the_figure(tmp_path):
    from iterlens.cli import main
    from iterlens.io import read_table

    hidden = torch.randn(30, 4, 3, generator=torch.Generator().manual_seed(3)).cumsum(1)
    make_store(tmp_path / "store", hidden, n_shards=2)
    updates, cka = tmp_path / "lm" / "updates.csv", tmp_path / "lm" / "cka.csv"
    argv = ["geometry", "--store", str(tmp_path / "store"), "--updates-out", str(updates)]
    assert main([*argv, "--cka-out", str(cka), "--batch-size", "7"]) == 0
    assert len(read_table(updates)) == 3 and len(read_table(cka)) == 16
    out = tmp_path / "lm_geometry.png"
    argv = ["figure-geometry", "--updates", str(updates), "--cka", str(cka), "--out", str(out)]
    assert main([*argv, "--title", "lm"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
