"""Benchmark: tuned-lens's own trainer against iterlens's ``fit-lenses``, side by side.

Both train a tuned lens for the same model; both lenses are then evaluated by the same
code (:func:`iterlens.probing.lenses.evaluate_lenses`) on the same held-out eval store.
tuned-lens 0.2.0 runs in its own pinned environment (``benchmarks/tuned_lens_env.sh``,
default ``/tmp/tl-env``) through its own CLI, ``python -m tuned_lens train``, with its
defaults (SGD with Nesterov momentum, KL loss, linear decay) but for the token budget
(``--tl-steps`` x ``--tl-tokens-per-step``), the sequence length and the batch size of one
forward pass (gradient accumulation makes it a speed setting only). iterlens runs
``iterlens fit-lenses --kinds tuned`` with the lens section of ``--config`` on the
lens-fit store. The two trainers run alternately (``--repeats`` rounds), so a loaded
machine slows both alike; the wall-time ratio is reported per round.

Stores missing from ``--lensfit-store`` / ``--eval-store`` are extracted first (timed
apart: the extraction of the lens-fit store is the price of iterlens's cache).

Any studied LM of the config can be the model (``--model``): its own tokenizer, sequence length
and settings (the entry's ``overrides``) are used on both sides.

Usage (the reference LM, then SmolLM2, of a finished default run)::

    benchmarks/tuned_lens_env.sh /tmp/tl-env
    python benchmarks/tuned_lens_trainer.py --run . --out /tmp/tl-bench
    python benchmarks/tuned_lens_trainer.py --run . --model smollm2 --tl-steps 10 \
        --tl-tokens-per-step 1024 --tl-batch 4 --out /tmp/tl-bench-smollm2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from iterlens import artifacts
from iterlens.config import load_config
from iterlens.models.studied import Study
from iterlens.probing.lenses import evaluate_lenses, load_lens, make_tuned_lens
from iterlens.probing.readout import Readout
from iterlens.probing.store import ActivationStore


def parse_args() -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="results/..", help="folder holding results/ of a run")
    p.add_argument("--model", default="lm", help="probed model name under results/")
    p.add_argument("--lensfit-store", help="default: the run's lensfit store")
    p.add_argument("--eval-store", help="default: the run's eval store")
    p.add_argument("--eval-tokens", type=int, default=32768, help="if the eval store is built")
    p.add_argument("--config", default="config/config.yaml", help="iterlens config (lens:)")
    p.add_argument("--tl-env", default="/tmp/tl-env")
    p.add_argument("--tl-steps", type=int, default=250)
    p.add_argument("--tl-tokens-per-step", type=int, default=8192)
    p.add_argument("--tl-batch", type=int, default=8, help="sequences per forward pass")
    p.add_argument("--threads", type=int, default=2, help="torch threads of both trainers")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--out", default="/tmp/tl-bench")
    return p.parse_args()


def timed(cmd: list[str], log: Path, env: dict) -> float:
    """Run ``cmd`` (output to ``log``); return its wall time, failing loudly."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({done.returncode}); see {log}:\n{log.read_text()[-3000:]}")
    return wall


def ensure_store(split: str, folder: Path, run: Path, model: str, n_tokens: int) -> float:
    """Extract ``split`` of the run's LM into ``folder`` unless it exists; return seconds."""
    if (folder / artifacts.MANIFEST).exists():
        return 0.0
    from iterlens.data.text import load_tokenizer, load_tokens
    from iterlens.models.lm import load_model_dir
    from iterlens.probing.extract import extract_lm_store
    from iterlens.probing.readout import readout_from_model
    from iterlens.probing.store import finalize_store

    cfg = model_config()["extract"]
    tokenizer = model_tokenizer()
    t0 = time.perf_counter()
    lm = load_model_dir(run / artifacts.MODEL_DIR.format(model=model)).eval()
    readout = readout_from_model(lm)
    count = extract_lm_store(
        lm,
        readout,
        load_tokenizer(run / artifacts.TOKENIZER_DIR.format(tokenizer=tokenizer)),
        load_tokens(run / artifacts.TOKENS.format(tokenizer=tokenizer, split=split)),
        folder,
        seq_len=cfg["seq_len"],
        n_tokens=n_tokens,
        shard_tokens=cfg["shard_tokens"],
        batch_size=cfg["batch_size"],
        skip_positions=cfg["skip_positions"],
        store_dtype=getattr(torch, cfg["lensfit_dtype"]) if split == "lensfit" else torch.float32,
    )
    finalize_store(folder, count, readout.fingerprint(), "lm")
    readout.save(folder / artifacts.READOUT)
    return time.perf_counter() - t0


def model_config() -> dict:
    """The config as ``--model`` runs under it (its entry's overrides merged)."""
    config = load_config(args.config)
    return Study.of(config).config_of(args.model, config)


def model_tokenizer() -> str:
    """The name of the tokenizer ``--model`` reads."""
    return Study.of(load_config(args.config)).tokenizer_of(args.model)


def tokenizer_for_transformers_4(run: Path, out: Path) -> Path:
    """The run's tokenizer, with a config transformers 4.46 can load (``tokenizer.json``)."""
    folder = out / "tokenizer-tf4"
    folder.mkdir(exist_ok=True)
    src = run / artifacts.TOKENIZER_DIR.format(tokenizer=model_tokenizer())
    (folder / "tokenizer.json").write_bytes((src / "tokenizer.json").read_bytes())
    config = json.loads((src / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def tuned_lens_cmd(tl_out: Path, run: Path, tokenizer: Path) -> list[str]:
    """tuned-lens's own training CLI, its defaults but for budget and batch shape."""
    cfg = model_config()
    return [
        f"{args.tl_env}/bin/python",
        "-m",
        "tuned_lens",
        "train",
        "--model.name",
        str(run / artifacts.MODEL_DIR.format(model=args.model)),
        "--tokenizer",
        str(tokenizer),
        "--data.name",
        str(run / artifacts.CORPUS.format(split="train")),
        "--max_length",
        str(cfg["extract"]["seq_len"]),
        "--num_steps",
        str(args.tl_steps),
        "--tokens_per_step",
        str(args.tl_tokens_per_step),
        "--per_gpu_batch_size",
        str(args.tl_batch),
        "--output",
        str(tl_out),
    ]


def load_tuned_lens_output(folder: Path, readout: Readout, n_layers: int):
    """A lens saved by tuned-lens's trainer (``params.pt``), as an iterlens tuned lens."""
    lens = make_tuned_lens(readout, n_layers)
    state = torch.load(folder / artifacts.TUNED_LENS_PARAMS, weights_only=True)
    lens.layer_translators.load_state_dict({k: v.float() for k, v in state.items()})
    return lens.eval()


def main() -> None:
    """Run both trainers alternately, evaluate both lenses, print the table."""
    run, out = Path(args.run), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    probed = run / artifacts.PROBED_DIR.format(model=args.model)
    fit_store = Path(args.lensfit_store or probed / "acts" / "lensfit")
    eval_store = Path(args.eval_store or probed / "acts" / "eval")
    ex = model_config()["extract"]
    t_extract = ensure_store("lensfit", fit_store, run, args.model, ex["lensfit_tokens"])
    ensure_store("eval", eval_store, run, args.model, args.eval_tokens)
    readout_path = (
        probed / artifacts.READOUT
        if (probed / artifacts.READOUT).exists()
        else fit_store / artifacts.READOUT
    )
    readout = Readout.load(readout_path)
    n_threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": n_threads, "MKL_NUM_THREADS": n_threads}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    tokenizer = tokenizer_for_transformers_4(run, out)
    rounds = []
    for r in range(args.repeats):
        tl_out = out / f"tuned_lens_{r}"
        t_tl = timed(tuned_lens_cmd(tl_out, run, tokenizer), out / f"tuned_lens_{r}.log", env)
        il_out = out / f"iterlens_{r}"
        t_il = timed(
            [
                sys.executable,
                "-c",
                "import sys; from iterlens.cli import main; sys.exit(main())",
                "fit-lenses",
                "--config",
                args.config,
                "--cfg",
                json.dumps({k: model_config()[k] for k in ("seed", "lens", "probe")}),
                "--threads",
                n_threads,
                "--kinds",
                "tuned",
                "--store",
                str(fit_store),
                "--readout",
                str(readout_path),
                "--out",
                str(il_out),
                "--curves",
                str(il_out),
            ],
            out / f"iterlens_{r}.log",
            env,
        )
        rounds.append({"round": r, "tuned_lens_s": t_tl, "iterlens_s": t_il})
        print(f"round {r}: tuned-lens {t_tl:.1f} s, iterlens {t_il:.1f} s", flush=True)
    store = ActivationStore(eval_store)
    n_layers = store.n_layers
    lenses = {
        "tuned-lens trainer": load_tuned_lens_output(out / "tuned_lens_0", readout, n_layers),
        "iterlens fit-lenses": load_lens(out / "iterlens_0" / "tuned", readout),
    }
    metrics, _ = evaluate_lenses(lenses, store, readout, progress=False)
    kl = metrics.pivot(index="layer", columns="lens", values="kl_bits")[list(lenses)]
    kl = kl.loc[: n_layers - 1]
    times = pd.DataFrame(rounds)
    curve = pd.read_csv(out / "iterlens_0" / "fit_tuned.csv")
    summary = {
        "model": str(run / artifacts.MODEL_DIR.format(model=args.model)),
        "tuned_lens_tokens": args.tl_steps * args.tl_tokens_per_step,
        "iterlens_store_tokens": ActivationStore(fit_store).n_examples,
        "iterlens_steps": int(curve["step"].max()),
        "eval_tokens": store.n_examples,
        "threads": args.threads,
        "extract_lensfit_s": t_extract,
        "wall_s": times.mean().drop("round").to_dict(),
        "time_ratio_per_round": (times["iterlens_s"] / times["tuned_lens_s"]).tolist(),
        "mean_kl_bits_layers_0_to_L-1": kl.mean().to_dict(),
    }
    kl.to_csv(out / "kl_per_layer.csv")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("\nheld-out KL to the final distribution (bits), per layer:")
    print(kl.round(4).to_markdown())
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    args = parse_args()
    main()
