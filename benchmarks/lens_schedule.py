"""Benchmark: lens-fit schedules on a finished run's lens-fit store, side by side.

Fits one lens kind of a probed model under several variants of its config section (``lens:``
for tuned and shared lenses, ``probe:`` for probes), one after the other in this process, and
evaluates each on the run's eval store with the DAG's own code. Prints wall time, the steps
run, the best step and the mean eval KL (tuned: layers 0..L-1; shared: 0..L) or CE (probes).

Usage::

    python benchmarks/lens_schedule.py --run . --kind tuned \\
        --variant steps=1000,lr=0.003,holdout_fraction=0.03 \\
        --variant steps=300,lr=0.003 --variant steps=300,lr=0.01

The first variant is the previous default: a cosine planned over 1,000 steps, which early
stopping ends long before the rate has decayed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from iterlens import artifacts
from iterlens.config import load_config
from iterlens.probing.fitting import fit_kind
from iterlens.probing.lenses import evaluate_lenses
from iterlens.probing.readout import Readout
from iterlens.probing.store import ActivationStore


def parse_variant(text: str) -> dict:
    """``"steps=300,lr=0.01"`` -> ``{"steps": 300, "lr": 0.01}``."""
    out = {}
    for item in filter(None, text.split(",")):
        key, value = item.split("=")
        out[key] = float(value) if "." in value or "e" in value else int(value)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default=".", help="folder holding results/ of a finished run")
    p.add_argument("--model", default="lm")
    p.add_argument("--kind", default="tuned", choices=["tuned", "shared", "probe"])
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--variant", action="append", default=[], help="key=value,... overrides")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.run)
    fit_store, eval_store = (
        ActivationStore(root / artifacts.STORE_DIR.format(model=args.model, split=split))
        for split in ("lensfit", "eval")
    )
    readout = Readout.load(root / artifacts.MODEL_READOUT.format(model=args.model))
    section = "probe" if args.kind == "probe" else "lens"
    metric = "ce_bits" if args.kind == "probe" else "kl_bits"
    print(f"| {section} overrides | wall (s) | steps run | best step | mean eval {metric} |")
    print("| --- | --- | --- | --- | --- |")
    for text in args.variant or [""]:
        cfg = load_config(args.config)
        overrides = parse_variant(text)
        cfg[section].update(overrides)
        start = time.perf_counter()
        lens, curve = fit_kind(args.kind, fit_store, readout, cfg, progress=False)
        seconds = time.perf_counter() - start
        metrics, _ = evaluate_lenses({args.kind: lens}, eval_store, readout, progress=False)
        if args.kind == "tuned":
            metrics = metrics[metrics.layer < fit_store.n_layers]
        best = int(curve.loc[curve["best"], "step"].iloc[0])
        print(
            f"| {text or '(config)'} | {seconds:.0f} | {int(curve['step'].max())} | {best} | "
            f"{metrics[metric].mean():.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
