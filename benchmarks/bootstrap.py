"""Cost of the bootstrap post-pass of ``iterlens evaluate`` and of the headline table.

Usage: python benchmarks/bootstrap.py [--examples 16384 --layers 8 --groups 4]

Builds random per-example values of the size ``evaluate`` keeps (4 lenses x 4 metrics x
(L + 1) layers per example, and the (L + 1)^2 transfer sums per group), then times:
  - writing and reading ``examples.safetensors`` (and its size),
  - the per-layer table's intervals (``layer_table``),
  - the transfer matrix's intervals (``transfer_table_intervals``),
  - one headline row (every headline number with its interval).
Defaults match the default run's LM (16,384 eval tokens, 8 blocks, ~4 documents in the
eval store); ``--groups 1000`` matches a CNN (one group per eval image).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from iterlens.probing.bootstrap import N_BOOT, Examples
from iterlens.probing.metrics import PER_EXAMPLE
from iterlens.probing.transfer import transfer_table
from iterlens.report.tables import headline_row
from iterlens.report.uncertainty import layer_table, transfer_table_intervals

LENSES = ("logit", "tuned", "shared", "probe")


def fake_examples(n: int, n_layers: int, n_groups: int, seed: int = 0) -> Examples:
    """Random per-example values of a trained-looking model (informative)."""
    rng = np.random.default_rng(seed)
    values = {}
    for lens in LENSES:
        values[f"{lens}.kl_bits"] = rng.exponential(1.0, (n, n_layers + 1)).astype(np.float32)
        values[f"{lens}.ce_bits"] = rng.exponential(5.0, (n, n_layers + 1)).astype(np.float32)
        for m in ("top1_agree", "top1_acc"):
            values[f"{lens}.{m}"] = (rng.random((n, n_layers + 1)) < 0.4).astype(np.float32)
    values["prior_ce_bits"] = np.full(n, 12.0)
    groups = np.sort(rng.integers(0, n_groups, n))
    g = len(np.unique(groups))
    per = np.bincount(np.unique(groups, return_inverse=True)[1]).astype(np.float64)
    ce = rng.exponential(5.0, (g, n_layers + 1, n_layers + 1)) * per[:, None, None]
    return Examples(groups, values, {"ce_bits": ce, "kl_bits": ce / 2, "count": per})


def metrics_table(ex: Examples, n_layers: int) -> pd.DataFrame:
    """The per-layer means ``evaluate`` would have written."""
    return pd.DataFrame(
        [
            {
                "lens": lens,
                "layer": layer,
                **{m: float(ex.values[f"{lens}.{m}"][:, layer].mean()) for m in PER_EXAMPLE},
            }
            for lens in LENSES
            for layer in range(n_layers + 1)
        ]
    )


CPU = []


def timed(fn):
    """Wall time of ``fn()``; its CPU time is appended to ``CPU`` (robust on a busy machine)."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    CPU.append(time.process_time() - cpu)
    return out, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--examples", type=int, default=16384)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--groups", type=int, default=4)
    args = p.parse_args()
    ex = fake_examples(args.examples, args.layers, args.groups)
    metrics = metrics_table(ex, args.layers)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "examples.safetensors"
        _, t_save = timed(lambda: ex.save(path))
        ex, t_load = timed(lambda: Examples.load(path))
        size = path.stat().st_size
    _, t_layers = timed(lambda: layer_table(metrics, ex))
    _, t_transfer = timed(lambda: transfer_table_intervals(transfer_table(ex.transfer), ex))
    _, t_head = timed(lambda: headline_row("bench", ex))
    print(
        f"{args.examples} examples, L={args.layers}, {len(np.unique(ex.groups))} groups, "
        f"{N_BOOT} replicates"
    )
    print(f"examples.safetensors: {size / 2**20:.1f} MiB, save {t_save:.2f} s, load {t_load:.2f} s")
    print(
        f"per-layer intervals {t_layers:.2f} s, transfer intervals {t_transfer:.2f} s, "
        f"headline row {t_head:.2f} s; total {t_layers + t_transfer + t_head:.2f} s wall, "
        f"{sum(CPU[2:]):.2f} s CPU"
    )


if __name__ == "__main__":
    main()
