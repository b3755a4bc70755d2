"""What a bfloat16 readout (``lens.readout_dtype: bfloat16``) costs and changes, on a finished run.

Usage: python benchmarks/bf16_readout.py --run RUN_DIR --config CONFIG [--model NAME]
       [--work /tmp/bf16_readout] [--refit] [--json benchmarks/results/bf16_readout.json]

1. **Speed**: the readout of 512 eval vectors of the model's last layer, float32 and bfloat16
   interleaved in one process (so both see the same machine load), median of repeats, and
   their ratio.
2. **Metrics**: the run's lenses evaluated again on the eval store with the readout in the
   other precision (the run's own ``lens.readout_dtype`` is one side); per metric, the largest
   absolute difference over every lens and layer, and the headline numbers side by side.
3. ``--refit``: the lenses are also fitted again with the other precision and evaluated in it,
   so the difference includes what the precision does to the fit.

The JSON written records the date, the machine and every number printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import pandas as pd
import torch
from machine import machine, today

from iterlens import artifacts as A
from iterlens.cli import main as iterlens
from iterlens.config import load_config
from iterlens.io import read_table
from iterlens.models.studied import Study
from iterlens.probing.readout import Readout
from iterlens.probing.store import ActivationStore
from iterlens.report.tables import headline_table

METRICS = ["kl_bits", "ce_bits", "top1_agree", "top1_acc", "entropy_bits"]


def readout_seconds(readout: Readout, h: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median seconds of one readout of ``h`` per precision, the two interleaved."""
    times: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    with torch.no_grad():
        for _ in range(repeats + 1):  # the first round warms both up and is dropped
            for dtype in times:
                readout.set_compute_dtype(dtype)
                start = time.perf_counter()
                readout(h)
                times[dtype].append(time.perf_counter() - start)
    readout.set_compute_dtype("float32")
    return {dtype: statistics.median(t[1:]) for dtype, t in times.items()}


def evaluate(run: Path, model: str, cfg: dict, lenses: Path, out: Path) -> tuple[Path, Path]:
    """``iterlens evaluate`` of ``lenses`` on the run's eval store under ``cfg``."""
    tokenizer = Study.of(cfg).tokenizer_of(model)
    metrics, examples = out / "lens_metrics.csv", out / "examples.safetensors"
    iterlens(["evaluate", "--quiet", "--threads", str(torch.get_num_threads()),
              "--cfg", json.dumps({k: cfg[k] for k in ("seed", "vision", "lens")}),
              "--store", str(run / A.STORE_DIR.format(model=model, split="eval")),
              "--readout", str(run / A.MODEL_READOUT.format(model=model)),
              "--lens", *[str(lenses / k) for k in A.TRAINED_LENS_KINDS],
              "--train-tokens", str(run / A.TOKENS.format(tokenizer=tokenizer, split="train")),
              "--tokenizer", str(run / A.TOKENIZER_DIR.format(tokenizer=tokenizer)),
              "--out", str(metrics), "--examples-out", str(examples),
              "--depth-out", str(out / "depth.csv")])  # fmt: skip
    return metrics, examples


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run", required=True, type=Path, help="a finished run's folder")
    p.add_argument("--config", required=True, help="the run's config")
    p.add_argument("--model", default="smollm2")
    p.add_argument("--work", default="/tmp/bf16_readout", type=Path)
    p.add_argument("--refit", action="store_true", help="also refit the lenses in the other dtype")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", type=Path, help="write the numbers here")
    args = p.parse_args()
    run, model, work = args.run, args.model, args.work / args.model
    work.mkdir(parents=True, exist_ok=True)
    config = load_config(args.config)
    cfg = Study.of(config).config_of(model, config)
    ran = cfg["lens"]["readout_dtype"]
    other = "float32" if ran == "bfloat16" else "bfloat16"

    readout = Readout.load(run / A.MODEL_READOUT.format(model=model))
    store = ActivationStore(run / A.STORE_DIR.format(model=model, split="eval"))
    h = next(store.iter_batches(512, [store.n_layers])).hidden[:, 0]
    seconds = readout_seconds(readout, h, args.repeats)
    print(f"{model}: readout of 512 x {readout.d_model} -> {readout.n_classes}, "
          f"{torch.get_num_threads()} threads: float32 {seconds['float32']:.4f} s, "
          f"bfloat16 {seconds['bfloat16']:.4f} s, "
          f"ratio {seconds['float32'] / seconds['bfloat16']:.2f}")  # fmt: skip

    other_cfg = {**cfg, "lens": {**cfg["lens"], "readout_dtype": other}}
    lenses = run / A.PROBED_DIR.format(model=model) / "lenses"
    start = time.perf_counter()
    if args.refit:
        lenses = work / "lenses"
        iterlens(["fit-lenses", "--quiet", "--threads", str(torch.get_num_threads()),
                  "--cfg", json.dumps({k: other_cfg[k] for k in ("seed", "lens", "probe")}),
                  "--store", str(run / A.STORE_DIR.format(model=model, split="lensfit")),
                  "--readout", str(run / A.MODEL_READOUT.format(model=model)),
                  "--out", str(lenses), "--curves", str(work / "curves")])  # fmt: skip
    metrics, examples = evaluate(run, model, other_cfg, lenses, work)
    other_seconds = time.perf_counter() - start

    base = read_table(run / A.LENS_METRICS.format(model=model)).set_index(["lens", "layer"])
    new = read_table(metrics).set_index(["lens", "layer"])
    diff = (new[METRICS] - base[METRICS]).abs()
    how = "lenses refitted" if args.refit else "the run's lenses"
    print(
        f"  metrics with the readout in {other} vs the run's {ran} ({how}), "
        f"{other_seconds:.0f} s; largest |difference| over every lens and layer:"
    )
    largest = {}
    for col in METRICS:
        lens, layer = diff[col].idxmax()
        largest[col] = {"value": float(diff[col].max()), "lens": lens, "layer": int(layer)}
        print(f"    {col:13s} {diff[col].max():.2e}  (at {lens}, layer {layer})")
    rows = [
        headline_table([str(run / A.LENS_METRICS.format(model=model))],
                       [str(run / A.EXAMPLES.format(model=model))]).assign(readout=ran),
        headline_table([str(metrics)], [str(examples)]).assign(readout=other),
    ]  # fmt: skip
    side = pd.concat(rows).drop(columns="model").set_index("readout").T
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(side.to_string())
    if args.json:
        report = {
            "date": today(),
            "machine": machine(),
            "torch_threads": torch.get_num_threads(),
            "model": model,
            "run_readout_dtype": ran,
            "refit": args.refit,
            "readout_seconds_512": seconds,
            "readout_speedup": seconds["float32"] / seconds["bfloat16"],
            "largest_abs_difference": largest,
            "headline": json.loads(side.to_json()),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
