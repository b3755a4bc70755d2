"""Cost of verifying shards against the manifest's SHA-256 as they are read.

Usage: python benchmarks/store_hashes.py [STORE ...] [--repeat 3]

With store folders (e.g. ``results/probed/lm/acts/lensfit``), reads each one; without, builds
the default-sized stores in a temporary folder (9 layers x 128 floats a token, shards of
16,384 tokens: eval 16,384 tokens, about 75 MB; lensfit 131,072 tokens, about 600 MB).
Per store, the best of ``--repeat`` full passes over its shards:

- ``verified``: a first pass of ``ActivationStore.load_shard`` (hash, then load), as every
  step's first pass reads the store (later passes of the same object skip the hash),
- ``unverified``: the same with ``verify_hashes=False`` (the reader before the check),
- ``hash only``: SHA-256 of the bytes already in memory;

each load is followed by one sum over the activations, so pages mapped lazily are read too.

The extra cost of the check is ``verified - unverified``, paid once per store and process.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import torch

from iterlens.probing.store import ActivationStore, shard_path, write_manifest, write_shard


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(folder: str | Path, repeat: int) -> None:
    """Print the timings of one store."""
    unverified = ActivationStore(folder, verify_hashes=False)
    n_shards = len(unverified.manifest["shards"])
    size = sum(s["size"] for s in unverified.manifest["shards"])
    blobs = [(Path(folder) / s["file"]).read_bytes() for s in unverified.manifest["shards"]]

    def load_all(store_of):
        return lambda: [
            store.load_shard(i)["hidden"].sum() for store in [store_of()] for i in range(n_shards)
        ]

    t_ver = _best(load_all(lambda: ActivationStore(folder)), repeat)  # a fresh object a pass
    t_unv = _best(load_all(lambda: unverified), repeat)

    t_hash = _best(lambda: [hashlib.sha256(b).hexdigest() for b in blobs], repeat)
    mb = size / 1e6
    print(
        f"{folder}: {n_shards} shards, {mb:.0f} MB | verified {t_ver:.3f} s, "
        f"unverified {t_unv:.3f} s, extra {t_ver - t_unv:+.3f} s per store and process "
        f"| hash only {t_hash:.3f} s "
        f"({mb / t_hash:.0f} MB/s)"
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("stores", nargs="*")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.stores:
        for folder in args.stores:
            measure(folder, args.repeat)
        return
    for n_shards in (1, 8):  # eval, lensfit
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(n_shards):
                hidden = torch.randn(16_384, 9, 128)
                write_shard(shard_path(tmp, i), hidden, torch.zeros(16_384, dtype=torch.long))
            write_manifest(tmp, n_shards, {"domain": "lm"})
            measure(tmp, args.repeat)


if __name__ == "__main__":
    main()
