"""Check: a staged release lens loads in tuned-lens's pinned environment and gives our KL.

For each ``--models`` LM of a finished run, the staged model repo (``results/release/``) is
handed to ``benchmarks/tuned_lens_kl_pinned.py`` in tuned-lens 0.2.0's own environment
(``TRANSFORMERS=4.57.1 benchmarks/tuned_lens_env.sh /tmp/tl-env457``; transformers 4.57 is
the first 4.x pin that reads every released architecture). There, transformers 4.x loads the
run's model folder, ``TunedLens.from_model_and_pretrained`` loads the staged lens, and the
model is run over the eval store's own windows (rebuilt from the eval token stream as the
extraction chose them). Here, iterlens evaluates the same staged lens
(:func:`iterlens.load_released_lens`) on the eval store, with a float32 readout. The per-layer
mean KL(final || tuned lens) of the two must agree within ``--tol`` bits (default 1e-3).

Usage (the default run, then the Gemma 3 run)::

    TRANSFORMERS=4.57.1 benchmarks/tuned_lens_env.sh /tmp/tl-env457
    python benchmarks/tuned_lens_load.py --run . --models smollm2
    python benchmarks/tuned_lens_load.py --run /tmp/g3run --models gemma3 \
        --config config/config.yaml config/gemma3.yaml

Writes ``<out>/tuned_lens_load.json`` (one entry per model, merged into the file) and
``<out>/tuned_lens_load_<model>.csv``; exits 1 if a model disagrees.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from machine import machine, today

from iterlens import artifacts as A
from iterlens.config import load_config
from iterlens.data.text import load_tokens
from iterlens.hub.cards import tuned_lens_final_norm
from iterlens.io import read_json
from iterlens.models.studied import Study
from iterlens.probing.extract import n_shards, shard_windows
from iterlens.probing.lenses import evaluate_lenses
from iterlens.probing.readout import Readout
from iterlens.probing.store import ActivationStore


def parse_args() -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default=".", help="folder holding results/ of a finished run")
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument(
        "--config",
        nargs="+",
        default=["config/config.yaml"],
        help="the run's config files, merged in order as snakemake merges them",
    )
    p.add_argument("--tl-env", default="/tmp/tl-env457")
    p.add_argument("--tol", type=float, default=1e-3, help="bits")
    p.add_argument("--out", default="benchmarks/results")
    return p.parse_args()  # fmt: skip


def eval_windows(run: Path, study: Study, config: dict, model: str) -> tuple[np.ndarray, int]:
    """The eval store's windows ``[n, seq_len + 1]`` and skipped leading positions."""
    ex = study.config_of(model, config)["extract"]
    tokens = load_tokens(run / A.TOKENS.format(tokenizer=study.tokenizer_of(model), split="eval"))
    count = n_shards(ex["eval_tokens"], ex["shard_tokens"], ex["seq_len"])
    starts = np.concatenate(
        [
            shard_windows(tokens, ex["seq_len"], ex["eval_tokens"], ex["shard_tokens"], i)
            for i in range(count)
        ]
    )
    windows = np.stack([tokens[s : s + ex["seq_len"] + 1] for s in starts]).astype(np.int64)
    return windows, ex["skip_positions"]


def staged_repo(run: Path, model: str) -> tuple[Path, str]:
    """The staged model repo of ``model`` and its tuned-lens name."""
    for meta in sorted((run / "results" / "release").glob(f"*/{A.RELEASE_META}")):
        info = read_json(meta)
        if info.get("model") == model:
            return meta.parent, info["lens_name"]
    raise SystemExit(f"no staged model repo of '{model}' under {run}/results/release")


def ours(run: Path, repo: Path, model: str) -> pd.Series:
    """iterlens's per-layer KL of the staged tuned lens on the eval store (float32 readout)."""
    import iterlens

    readout = Readout.load(run / A.MODEL_READOUT.format(model=model))
    lens = iterlens.load_released_lens(repo, readout)
    store = ActivationStore(run / A.STORE_DIR.format(model=model, split="eval"))
    metrics, _ = evaluate_lenses({"tuned": lens}, store, readout, progress=False)
    last = store.n_layers
    rows = metrics[(metrics["lens"] == "tuned") & (metrics["layer"] < last)]
    return rows.set_index("layer")["kl_bits"].rename("iterlens_kl_bits")


def theirs(
    run: Path, repo: Path, name: str, model: str, work: Path, args
) -> tuple[pd.DataFrame, str | None, int]:
    """tuned-lens's per-layer KL (pinned environment), its final-norm patch, the windows."""
    study = Study.of(config := load_config(args.config))
    windows, skip = eval_windows(run, study, config, model)
    np.save(work / "windows.npy", windows)
    model_dir = run / A.MODEL_DIR.format(model=model)
    norm = tuned_lens_final_norm(read_json(model_dir / "config.json")["model_type"])
    cmd = [
        f"{args.tl_env}/bin/python",
        str(Path(__file__).with_name("tuned_lens_kl_pinned.py")),
        "--model", str(model_dir),
        "--lens", str(repo / A.HUB_TUNED_LENS_DIR.format(name=name)),
        "--windows", str(work / "windows.npy"),
        "--skip", str(skip),
        "--out", str(work / "theirs.csv"),
    ] + (["--final-norm", norm] if norm else [])  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"tuned-lens side failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return pd.read_csv(work / "theirs.csv").set_index("layer"), norm, len(windows)


def main(args) -> int:
    """Compare both sides for every model; write the results; 1 if any disagrees."""
    run, out = Path(args.run), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    summary_path = out / "tuned_lens_load.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    failed = False
    for model in args.models:
        repo, name = staged_repo(run, model)
        work = out / f".tuned_lens_load_{model}"
        work.mkdir(exist_ok=True)
        t0 = time.perf_counter()
        tl, norm, n_windows = theirs(run, repo, name, model, work, args)
        t_theirs = time.perf_counter() - t0
        mine = ours(run, repo, model)
        table = tl.rename(columns={"kl_bits": "tuned_lens_kl_bits"}).join(mine)
        table["abs_diff_bits"] = (table["tuned_lens_kl_bits"] - table["iterlens_kl_bits"]).abs()
        table.to_csv(out / f"tuned_lens_load_{model}.csv")
        worst = float(table["abs_diff_bits"].max())
        failed |= not worst <= args.tol
        summary[model] = {
            "date": today(),
            "machine": machine(),
            "threads": torch.get_num_threads(),
            "repo": repo.name,
            "lens_name": name,
            "transformers": str(tl["transformers"].iloc[0]),
            "final_norm_patch": norm,
            "n_windows": n_windows,
            "n_tokens": int(tl["n_tokens"].iloc[0]),
            "max_abs_diff_bits": worst,
            "mean_kl_bits_tuned_lens": float(table["tuned_lens_kl_bits"].mean()),
            "mean_kl_bits_iterlens": float(table["iterlens_kl_bits"].mean()),
            "tolerance_bits": args.tol,
            "agrees": worst <= args.tol,
            "tuned_lens_side_s": round(t_theirs, 1),
        }
        print(json.dumps({model: summary[model]}, indent=2))
        for path in work.iterdir():
            path.unlink()
        work.rmdir()
    summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
