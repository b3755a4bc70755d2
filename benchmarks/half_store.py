"""What half-precision activation stores do to the metrics, measured on a finished run.

Usage: python benchmarks/half_store.py --run RUN_DIR [--config config/smoke.yaml]
       [--model lm] [--dtype float16] [--work /tmp/half_store] [--lenses-from-run]

Copies the model's lensfit and eval stores from RUN_DIR (read only) into ``--work`` with
``hidden`` rounded to ``--dtype``, fits the lenses on the rounded lensfit store with the run's
own config, evaluates them on the rounded eval store, and prints, per metric, the largest
absolute difference from the run's float32 ``lens_metrics.csv`` (over every lens and layer),
plus the headline numbers of both, side by side.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file

from iterlens import artifacts as A
from iterlens.cli import main as iterlens
from iterlens.config import load_config
from iterlens.io import read_json, read_table
from iterlens.probing.store import STORE_DTYPES, shard_path, write_manifest, write_shard
from iterlens.report.tables import headline_table


def round_store(src: Path, dst: Path, dtype: torch.dtype) -> tuple[int, int]:
    """Copy a store with ``hidden`` rounded to ``dtype``; return (bytes before, after)."""
    manifest = read_json(src / A.MANIFEST)
    for i, shard in enumerate(manifest["shards"]):
        t = load_file(str(src / shard["file"]))
        write_shard(shard_path(dst, i), t["hidden"], t["targets"], t["inputs"],
                    n_bytes=shard["n_bytes"], dtype=dtype, groups=t.get("groups"))  # fmt: skip
    keep = ("format_version", "n_layers", "d_model", "n_examples", "n_bytes", "shards")
    new = write_manifest(dst, len(manifest["shards"]),
                         {k: v for k, v in manifest.items() if k not in keep})  # fmt: skip
    return sum(s["size"] for s in manifest["shards"]), sum(s["size"] for s in new["shards"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run", required=True, type=Path, help="a finished run's folder")
    p.add_argument("--config", default="config/smoke.yaml")
    p.add_argument("--model", default="lm")
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16"])
    p.add_argument("--work", default="/tmp/half_store", type=Path)
    p.add_argument(
        "--lenses-from-run",
        action="store_true",
        help="evaluate the run's own lenses instead of refitting: the same lenses where the "
        "run's lens-fit store already is in --dtype (the default config's float16)",
    )
    args = p.parse_args()
    cfg = load_config(args.config)
    run, work, model = args.run, args.work / args.model, args.model
    readout = run / A.MODEL_READOUT.format(model=model)
    t = time.perf_counter()
    sizes = {
        split: round_store(
            run / A.STORE_DIR.format(model=model, split=split),
            work / "acts" / split,
            STORE_DTYPES[args.dtype],
        )  # fmt: skip
        for split in (["eval"] if args.lenses_from_run else A.STORE_SPLITS)
    }
    lens_dir = work / "lenses"
    if args.lenses_from_run:
        lens_dir = run / A.PROBED_DIR.format(model=model) / "lenses"
    else:
        section = {k: cfg[k] for k in ("seed", "lens", "probe")}
        iterlens(["fit-lenses", "--quiet", "--threads", "2", "--cfg", json.dumps(section),
                  "--store", str(work / "acts" / "lensfit"), "--readout", str(readout),
                  "--out", str(lens_dir), "--curves", str(work / "curves")])  # fmt: skip
    metrics, transfer = work / "lens_metrics.csv", work / "transfer.csv"
    examples = work / "examples.safetensors"
    lenses = [str(lens_dir / k) for k in A.TRAINED_LENS_KINDS]
    iterlens(["evaluate", "--quiet", "--threads", "2", "--store", str(work / "acts" / "eval"),
              "--readout", str(readout), "--lens", *lenses, "--out", str(metrics),
              "--train-tokens", str(run / A.TOKENS.format(tokenizer="lm", split="train")),
              "--tokenizer", str(run / A.TOKENIZER_DIR.format(tokenizer="lm")),
              "--examples-out", str(examples),
              "--depth-out", str(work / "depth.csv"), "--transfer-out", str(transfer)])  # fmt: skip
    seconds = time.perf_counter() - t

    full = read_table(run / A.LENS_METRICS.format(model=model)).set_index(["lens", "layer"])
    half = read_table(metrics).set_index(["lens", "layer"])
    cols = ["kl_bits", "ce_bits", "top1_agree", "top1_acc", "entropy_bits"]
    diff = (half[cols] - full[cols]).abs()
    how = "the run's lenses" if args.lenses_from_run else "lenses refitted"
    print(f"{model}: stores in {args.dtype} vs float32 ({how}), {seconds:.0f} s")
    for split, (before, after) in sizes.items():
        print(f"  {split} store: {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB")
    print("  largest |difference| over every lens and layer:")
    for col in cols:
        lens, layer = diff[col].idxmax()
        print(f"    {col:13s} {diff[col].max():.2e}  (at {lens}, layer {layer})")
    rows = [
        headline_table([str(run / A.LENS_METRICS.format(model=model))],
                       [str(run / A.EXAMPLES.format(model=model))]).assign(store="float32"),
        headline_table([str(metrics)], [str(examples)]).assign(store=args.dtype),
    ]  # fmt: skip
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(pd.concat(rows).drop(columns="model").set_index("store").T.to_string())


if __name__ == "__main__":
    main()
