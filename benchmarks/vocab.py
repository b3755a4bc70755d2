"""Wall time the DAG's vocabulary-space rules add: `iterlens vocab` for lm and lm_random, then
`iterlens vocab-index`, run exactly as workflow/rules/vocab.smk runs them (same commands,
2 threads), on the outputs of a finished default run.

Usage: python benchmarks/vocab.py [--results results] [--config config/config.yaml]
       [--out DIR] [--screenshot docs/vocab_page.png]

Reads `{results}/models/{lm,lm_random}` and `{results}/probed/{lm,lm_random}/lenses/tuned`
(read-only); writes pages and tables to --out (a temporary folder by default). With
--screenshot, also renders the first prompt page of `lm` in headless Chromium into that PNG.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--results", default="results")
    p.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    p.add_argument("--out", default=None)
    p.add_argument("--screenshot", default=None)
    args = p.parse_args()
    results = Path(args.results)
    out = Path(args.out or tempfile.mkdtemp(prefix="vocab-bench-"))
    config = yaml.safe_load(Path(args.config).read_text())
    cfg = json.dumps({"seed": config.get("seed", 0), "vocab": config.get("vocab", {})})
    exe = [sys.executable, "-m", "iterlens.cli"]
    timings = {}
    for model in ("lm", "lm_random"):
        timings[model] = run([
            *exe, "vocab", "--cfg", cfg, "--threads", "2", "--quiet",
            "--model", str(results / "models" / model),
            "--lens", str(results / "probed" / model / "lenses" / "tuned"),
            "--name", model, "--out", str(out / model)])
    timings["index"] = run([*exe, "vocab-index", "--models", str(out / "lm"),
                            str(out / "lm_random"), "--out", str(out / "index.html")])
    total = sum(timings.values())
    n_prompts = len(json.loads((out / "lm" / "meta.json").read_text())["prompts"])
    for name, seconds in timings.items():
        print(f"{name:10s} {seconds:6.1f} s")
    print(f"{'total':10s} {total:6.1f} s  ({n_prompts} prompts, 2 models; pages in {out})")
    if args.screenshot:
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                            f"--user-data-dir={profile}", "--hide-scrollbars",
                            f"--screenshot={Path(args.screenshot).resolve()}",
                            "--window-size=1000,1250",
                            (out / "lm" / "prompt-0.html").resolve().as_uri()],
                           check=True, capture_output=True)
        print(f"screenshot: {args.screenshot}")


if __name__ == "__main__":
    main()
