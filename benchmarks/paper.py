"""Wall time of the paper's two rules (named values, then PDF + HTML) on a finished run.

Usage: python benchmarks/paper.py [--workdir .] [--repeat 3]

Runs the same commands as the `paper_values` and `paper` rules, as subprocesses (so import
time counts), on the results of a finished run in --workdir (default run or smoke run), and
prints the best and worst of --repeat wall times. Pin it to two cores with `taskset -c 0,1`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=".", help="folder holding results/ of a run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = Path(args.workdir) / "results"
    figures = sorted(str(p) for p in (results / "figures").glob("*.png"))
    config = json.loads((results / "paper" / "values.json").read_text())["config"]
    cfg = json.dumps(
        {
            "seed": config["seed"],
            "lm": config["lm"],
            "extract": config["extract"],
            "tokenizer": {"vocab_size": config["vocab_size"]},
        }
    )
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            start = time.perf_counter()
            cli = ["iterlens"]
            subprocess.run(
                cli
                + [
                    "paper-values",
                    "--cfg",
                    cfg,
                    "--results",
                    str(results),
                    "--captions",
                    str(ROOT / "workflow/report"),
                    "--out",
                    f"{tmp}/values.json",
                    "--figures",
                    *figures,
                ],
                check=True,
            )
            subprocess.run(
                cli
                + [
                    "paper",
                    "--source",
                    str(ROOT / "paper"),
                    "--values",
                    f"{tmp}/values.json",
                    "--results",
                    str(results),
                    "--citation",
                    str(ROOT / "CITATION.cff"),
                    "--pdf",
                    f"{tmp}/paper.pdf",
                    "--html",
                    f"{tmp}/paper.html",
                ],
                check=True,
            )
            times.append(time.perf_counter() - start)
    print(
        f"paper (values + PDF + HTML), {len(figures)} figures: best {min(times):.1f} s, "
        f"worst {max(times):.1f} s over {args.repeat} runs"
    )


if __name__ == "__main__":
    main()
