"""Time the rotated twin's jobs on a default-sized LM store: rotate, fit lenses, evaluate.

Usage: python benchmarks/rotated_control.py [--kinds tuned shared] [--lensfit 131072]
       [--eval 16384] [--store-root DIR]

Without ``--store-root``, writes stores of the default size (8 layers x 128, 131,072 lensfit
and 16,384 eval tokens, shards of 16,384) filled with random activations, and the readout of
the reference architecture at random init (4096 entries): timings do not depend on the
values. With ``--store-root`` (a probed-model folder such as ``results/probed/lm``), uses its
readout and stores. Each job runs as the workflow runs it (the ``iterlens`` command, one
thread, default lens config); prints wall and CPU seconds per job.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import torch

from iterlens.cli import main as iterlens


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _job(name: str, argv: list[str], rows: list) -> None:
    wall, cpu = time.perf_counter(), _cpu()
    if iterlens([argv[0], "--quiet", "--threads", "1", *argv[1:]]) != 0:
        raise SystemExit(f"{name} failed")
    rows.append((name, time.perf_counter() - wall, _cpu() - cpu))
    print(f"{name:>10}: {rows[-1][1]:7.1f} s wall, {rows[-1][2]:7.1f} s CPU", flush=True)


def _fake_probed(root: Path, lensfit: int, eval_: int) -> None:
    from iterlens.models.lm import init_model, reference_config
    from iterlens.probing.readout import readout_from_lm
    from iterlens.probing.store import finalize_store, shard_path, write_shard

    readout = readout_from_lm(init_model(reference_config(4096, 8, 128, 4, 256, 0), 0))
    readout.save(root / "readout.safetensors")
    gen = torch.Generator().manual_seed(0)
    for split, tokens in (("lensfit", lensfit), ("eval", eval_)):
        folder = root / "acts" / split
        n_shards = -(-tokens // 16_384)
        for i in range(n_shards):
            n = min(16_384, tokens - i * 16_384)
            hidden = torch.randn(n, 9, 128, generator=gen)
            targets = torch.randint(0, 4096, (n,), generator=gen)
            write_shard(shard_path(folder, i), hidden, targets, targets.clone(), n_bytes=4 * n)
        finalize_store(folder, n_shards, readout.fingerprint(), "lm")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--kinds", nargs="+", default=["tuned", "shared"])
    p.add_argument("--lensfit", type=int, default=131_072)
    p.add_argument("--eval", type=int, default=16_384)
    p.add_argument("--store-root")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(args.store_root) if args.store_root else Path(tmp) / "lm"
        if not args.store_root:
            _fake_probed(src, args.lensfit, args.eval)
        twin = Path(tmp) / "lm_rotated"
        stores = [str(src / "acts" / s) for s in ("lensfit", "eval")]
        rows: list = []
        _job("rotate", ["rotate-store", "--readout", str(src / "readout.safetensors"),
                        "--store", *stores, "--out", str(twin)], rows)  # fmt: skip
        readout = str(twin / "readout.safetensors")
        cfg = json.dumps({"seed": 0})  # the default lens and probe sections
        _job("fit", ["fit-lenses", "--cfg", cfg, "--kinds", *args.kinds, "--store",
                     str(twin / "acts" / "lensfit"), "--readout", readout, "--out",
                     str(twin / "lenses"), "--curves", str(twin / "curves")], rows)  # fmt: skip
        _job("evaluate", ["evaluate", "--store", str(twin / "acts" / "eval"), "--readout",
                          readout, "--lens", *[str(twin / "lenses" / k) for k in args.kinds],
                          "--out", str(twin / "m.csv"), "--depth-out", str(twin / "d.csv"),
                          "--transfer-out", str(twin / "t.csv")], rows)  # fmt: skip
        print(f"{'total':>10}: {sum(r[1] for r in rows):7.1f} s wall, "
              f"{sum(r[2] for r in rows):7.1f} s CPU")  # fmt: skip


if __name__ == "__main__":
    main()
