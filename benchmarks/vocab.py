"""Wall time the DAG's vocabulary-space rules add: `iterlens vocab` for lm and lm_random, then
`iterlens vocab-index`, run exactly as workflow/rules/vocab.smk runs them (same commands,
2 threads), on the outputs of a finished default run.

Usage: python benchmarks/vocab.py [--results results] [--config config/config.yaml]
       [--out DIR] [--screenshot docs/vocab_page.png]

Reads `{results}/models/{lm,lm_random}` and `{results}/probed/{lm,lm_random}/lenses/tuned`
(read-only); writes pages and tables to --out (a temporary folder by default). With
--screenshot, also renders the first prompt page of `lm` in headless Chromium into that PNG.
With --random TOKENIZER, the two models are the default reference architecture at random
init (seeds 0 and 1) with zero tuned lenses instead (the cost does not depend on weights).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def run(*cmd: str) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def random_models(config: dict, tokenizer: str, results: Path) -> None:
    """Reference-architecture LMs at random init, with zero-initialised tuned lenses."""
    from iterlens.data.text import load_tokenizer
    from iterlens.models.lm import init_model, reference_config, save_model
    from iterlens.probing.lenses import make_tuned_lens, save_lens
    from iterlens.probing.readout import readout_from_lm

    tok = load_tokenizer(tokenizer)
    lm = config.get("lm", {})
    n_layer = lm.get("n_layer", 8)
    shape = (n_layer, lm.get("n_embd", 128), lm.get("n_head", 4), lm.get("seq_len", 256))
    for seed, model in enumerate(("lm", "lm_random")):
        net = init_model(reference_config(len(tok), *shape, tok.eos_token_id), seed)
        save_model(net, tok, results / "models" / model)
        readout = readout_from_lm(net)
        lens = make_tuned_lens(readout, n_layer)
        save_lens(lens, results / "probed" / model / "lenses" / "tuned", readout, n_layer)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--results", default="results")
    p.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    p.add_argument("--out", default=None)
    p.add_argument("--screenshot", default=None)
    p.add_argument("--random", default=None, metavar="TOKENIZER")
    args = p.parse_args()
    results = Path(args.results)
    out = Path(args.out or tempfile.mkdtemp(prefix="vocab-bench-"))
    config = yaml.safe_load(Path(args.config).read_text())
    if args.random:
        results = out / "results"
        random_models(config, args.random, results)
    cfg = json.dumps({"seed": config.get("seed", 0), "vocab": config.get("vocab", {})})
    exe = ["iterlens"]  # the console script, as the rules call it
    load = os.getloadavg()[0]
    timings = {}
    for model in ("lm", "lm_random"):
        lens = results / "probed" / model / "lenses" / "tuned"
        timings[model] = run(*exe, "vocab", "--cfg", cfg, "--threads", "2", "--quiet",
                             "--model", str(results / "models" / model), "--lens", str(lens),
                             "--name", model, "--out", str(out / model))  # fmt: skip
    models = [str(out / "lm"), str(out / "lm_random")]
    timings["index"] = run(*exe, "vocab-index", "--models", *models, "--out",
                           str(out / "index.html"))  # fmt: skip
    wall, cpu = (sum(t[i] for t in timings.values()) for i in (0, 1))
    n_prompts = len(json.loads((out / "lm" / "meta.json").read_text())["prompts"])
    print(f"load average before: {load:.1f} (2 cores)")
    for name, (w, c) in timings.items():
        print(f"{name:10s} wall {w:6.1f} s   cpu {c:6.1f} s")
    print(f"{'total':10s} wall {wall:6.1f} s   cpu {cpu:6.1f} s  "
          f"({n_prompts} prompts, 2 models; pages in {out})")  # fmt: skip
    if args.screenshot:
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        with tempfile.TemporaryDirectory() as profile:
            page = (out / "lm" / "prompt-0.html").resolve().as_uri()
            shot = f"--screenshot={Path(args.screenshot).resolve()}"
            flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
            size = "--window-size=1000,1250"
            profile_flag = f"--user-data-dir={profile}"
            subprocess.run([chromium, *flags, profile_flag, shot, size, page], check=True)
        print(f"screenshot: {args.screenshot}")


if __name__ == "__main__":
    main()
