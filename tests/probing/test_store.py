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


def test_shard_writer_streams_the_same_tensors_as_write_shard(tmp_path):
    from safetensors.torch import load_file

    from iterlens.probing.shard_writer import ShardWriter

    hidden, targets = torch.randn(10, 4, 3), torch.arange(10)
    inputs = targets + 100
    write_shard(tmp_path / "a.safetensors", hidden, targets, inputs, n_bytes=7)
    with ShardWriter(tmp_path / "b.safetensors", 3, 3, targets, inputs, n_bytes=7) as writer:
        for part in hidden.split(4):
            writer.add(part)
    a, b = load_file(tmp_path / "a.safetensors"), load_file(tmp_path / "b.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "b.safetensors"), framework="pt") as f:
        assert f.metadata() == {"n_bytes": "7"}


def test_activations_beyond_float16_are_refused_naming_the_layers(tmp_path):
    """Gemma 3's residual stream reaches 9e4: in float16 it would be stored as inf."""
    from iterlens.probing.shard_writer import ShardWriter

    hidden, targets = torch.randn(4, 3, 3), torch.arange(4)
    hidden[1, 2, 0] = 9e4  # layer 2 only
    with pytest.raises(ValueError, match=r"layers \[2\] exceed float16's range.*bfloat16"):
        with ShardWriter(tmp_path / "c.safetensors", 2, 3, targets, targets, n_bytes=4,
                         dtype=torch.float16) as writer:  # fmt: skip
            writer.add(hidden)
    assert not (tmp_path / "c.safetensors").exists()
    with ShardWriter(tmp_path / "d.safetensors", 2, 3, targets, targets, n_bytes=4,
                     dtype=torch.bfloat16) as writer:  # fmt: skip
        writer.add(hidden)  # bfloat16 has float32's range


def test_shard_writer_leaves_nothing_when_short_or_failing(tmp_path):
    from iterlens.probing.shard_writer import ShardWriter

    targets = torch.arange(6)
    path = tmp_path / "s.safetensors"
    with pytest.raises(ValueError, match="3 of 6 rows"):
        with ShardWriter(path, 1, 2, targets, targets) as writer:
            writer.add(torch.zeros(3, 2, 2))
    with pytest.raises(RuntimeError, match="boom"):
        with ShardWriter(path, 1, 2, targets, targets) as writer:
            writer.add(torch.zeros(3, 2, 2))
            raise RuntimeError("boom")
    with pytest.raises(ValueError, match="does not fit"):
        with ShardWriter(path, 1, 2, targets, targets) as writer:
            writer.add(torch.zeros(3, 5, 2))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_store_reads_back_as_float32(tmp_path, dtype):
    hidden = torch.randn(10, 4, 3)
    write_shard(shard_path(tmp_path, 0), hidden, torch.arange(10), dtype=dtype)
    write_manifest(tmp_path, 1, {"readout_fingerprint": "abc"})
    store = ActivationStore(tmp_path, verify_hashes=True)
    (batch,) = store.iter_batches(10)
    assert batch.hidden.dtype is torch.float32
    assert torch.equal(batch.hidden, hidden.to(dtype).float())
    assert shard_path(tmp_path, 0).stat().st_size < 10 * 4 * 3 * 4 + 200


def flip_byte(path, offset=-1):
    """Flip every bit of one byte of ``path`` (same size, different contents)."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_byte_or_swapped_shard_refused_by_name(tmp_path):
    make_store(tmp_path)
    first, second = shard_path(tmp_path, 0), shard_path(tmp_path, 1)
    flip_byte(second)
    store = ActivationStore(tmp_path)  # same size: opening is cheap and passes
    store.load_shard(0)
    with pytest.raises(ValueError, match=f"{second.name} is corrupt or swapped"):
        list(store.iter_batches(4))
    assert ActivationStore(tmp_path, verify_hashes=False).load_shard(1)  # the check is the hash
    flip_byte(second)  # restored
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)
    second.write_bytes(a)
    with pytest.raises(ValueError, match=f"{first.name} is corrupt or swapped"):
        ActivationStore(tmp_path).load_shard(0)


def test_every_step_refuses_a_corrupt_shard(tmp_path, small_readout, capsys):
    from conftest import layered_store

    from iterlens.cli import main
    from iterlens.probing.lenses import make_lens, save_lens
    from iterlens.probing.transfer import transfer_matrix

    store = layered_store(tmp_path / "acts", small_readout, n=64, n_layers=2)
    small_readout.save(tmp_path / "readout.safetensors")
    save_lens(make_lens("tuned", small_readout, 2), tmp_path / "tuned", small_readout, 2)
    flip_byte(shard_path(tmp_path / "acts", 1), offset=-8)
    common = ["--quiet", "--store", str(tmp_path / "acts")]
    common += ["--readout", str(tmp_path / "readout.safetensors")]
    fit = ["fit-lenses", *common, "--kinds", "shared", "--out", str(tmp_path / "lenses")]
    fit += ["--curves", str(tmp_path / "curves")]
    fit += ["--cfg", '{"seed": 0, "lens": {"steps": 8, "batch_size": 32}}']
    evaluate = ["evaluate", *common, "--lens", str(tmp_path / "tuned")]
    evaluate += ["--out", str(tmp_path / "m.csv"), "--depth-out", str(tmp_path / "d.csv")]
    for argv in (fit, evaluate):
        assert main(argv) == 1, argv[0]
        assert "shard-00001.safetensors is corrupt or swapped" in capsys.readouterr().err
        assert not (tmp_path / "m.csv").exists() and not (tmp_path / "lenses").exists()
    lens = make_lens("tuned", small_readout, 2)
    with pytest.raises(ValueError, match="shard-00001.safetensors is corrupt or swapped"):
        transfer_matrix(lens, store, small_readout, progress=False)


@pytest.mark.parametrize(
    "limit, rows, part",
    [(1 << 16, 1000, 100), (1 << 20, 4096, 512)],  # the second fails only when the file closes
)
def test_shard_writer_reports_a_full_disk_and_keeps_nothing(tmp_path, limit, rows, part):
    import subprocess
    import sys

    script = """
import resource, signal, sys, torch
from pathlib import Path
limit, rows, part = map(int, sys.argv[2:])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from iterlens.io import DiskFullError
from iterlens.probing.shard_writer import ShardWriter
out, t = Path(sys.argv[1]) / "shard-00000.safetensors", torch.arange(rows)
try:
    with ShardWriter(out, 3, 32, t, t) as writer:
        for chunk in torch.randn(rows, 4, 32).split(part):
            writer.add(chunk)
except DiskFullError as err:
    print(err)
"""
    args = [str(tmp_path), str(limit), str(rows), str(part)]
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True)
    assert "file too large" in result.stdout and "shard-00000.safetensors" in result.stdout, (
        result.stderr
    )
    assert list(tmp_path.iterdir()) == []  # neither the shard nor a temporary is left
