"""Evaluation batch size on a large vocabulary: 1,024 rows against ``batch_rows``, side by side.

Usage: python benchmarks/evaluate_batch.py --run RUN_DIR [--model smollm2] [--readout-dtype
       bfloat16] [--examples 1024] [--json benchmarks/results/evaluate_batch.json]

Evaluates the logit lens at every layer of the first ``--examples`` eval examples of a finished
run's model, once with 1,024-row batches and once with :func:`iterlens.probing.metrics.
batch_rows`, alternately over ``--repeats`` rounds on one torch thread, and checks that the
per-layer metrics are the same.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from machine import machine, today

from iterlens import artifacts as A
from iterlens.probing.lenses import LogitLens, evaluate_lenses
from iterlens.probing.metrics import batch_rows
from iterlens.probing.readout import Readout
from iterlens.probing.store import ActivationStore


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run", required=True, type=Path, help="a finished run's folder")
    p.add_argument("--model", default="smollm2")
    p.add_argument("--readout-dtype", default="bfloat16", choices=["float32", "bfloat16"])
    p.add_argument("--examples", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    torch.set_num_threads(1)
    readout = Readout.load(args.run / A.MODEL_READOUT.format(model=args.model))
    readout.set_compute_dtype(args.readout_dtype)
    store = ActivationStore(args.run / A.STORE_DIR.format(model=args.model, split="eval"))
    batch = next(store.iter_batches(args.examples))
    tensors = {"hidden": batch.hidden, "targets": batch.targets, "inputs": batch.inputs}

    class Slice:  # the first examples of the store, as evaluate_lenses reads a store
        n_layers, n_examples, n_bytes = store.n_layers, len(batch.targets), 0

        @staticmethod
        def check_readout(fingerprint: str) -> None:
            store.check_readout(fingerprint)

        @staticmethod
        def iter_batches(size: int):
            for start in range(0, len(batch.targets), size):
                part = {k: v[start : start + size] for k, v in tensors.items()}
                yield type(batch)(part["hidden"], part["targets"], part["inputs"])

    sizes = {"1024 rows": 1024, "batch_rows": batch_rows(readout.n_classes, 1024)}
    seconds: dict[str, list[float]] = {name: [] for name in sizes}
    tables = {}
    for _ in range(args.repeats):
        for name, size in sizes.items():
            start = time.perf_counter()
            tables[name], _ = evaluate_lenses(
                {"logit": LogitLens(readout)}, Slice, readout, batch_size=size, progress=False
            )
            seconds[name].append(time.perf_counter() - start)
    cols = ["kl_bits", "ce_bits", "entropy_bits", "top1_acc", "rank_final_top1_median"]
    diff = float((tables["1024 rows"][cols] - tables["batch_rows"][cols]).abs().max().max())
    median = {name: statistics.median(t) for name, t in seconds.items()}
    ratio = median["1024 rows"] / median["batch_rows"]
    print(f"{args.model}: {len(batch.targets)} examples x {store.n_layers + 1} layers, vocabulary "
          f"{readout.n_classes}, readout {args.readout_dtype}, 1 thread")  # fmt: skip
    for name, size in sizes.items():
        print(f"  {name:10s} ({size:4d} rows): {median[name]:.1f} s")
    print(f"  ratio {ratio:.2f}; largest |difference| of the metrics {diff:.2e}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "date": today(),
            "machine": machine(),
            "model": args.model, "examples": len(batch.targets), "vocabulary": readout.n_classes,
            "readout_dtype": args.readout_dtype, "rows": sizes, "seconds": median,
            "ratio": ratio, "largest_abs_difference": diff,
        }, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
