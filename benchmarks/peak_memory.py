"""Wall time and peak memory of a whole command, its child processes included.

Runs ``COMMAND`` and samples the resident set size summed over it and every descendant
(a Snakemake run and the jobs it starts) every ``--every`` seconds. Writes the wall time, the
peak summed RSS, when it peaked and which processes held it, headed by the date and the
machine, to ``--out`` (JSON) for the docs to quote; exits with the command's status.

Usage::

    python benchmarks/peak_memory.py --out benchmarks/results/gemma3_run.json -- \
        snakemake --cores all --configfile config/gemma3.yaml
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import psutil
from machine import machine


def tree_rss(root: psutil.Process) -> tuple[int, list[tuple[str, int]]]:
    """Summed RSS of ``root`` and its descendants, in bytes, and the biggest five of them."""
    procs = [root]
    try:
        procs += root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0, []
    sizes = []
    for proc in procs:
        try:
            sizes.append((" ".join(proc.cmdline())[:160], proc.memory_info().rss))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    sizes.sort(key=lambda item: -item[1])
    return sum(rss for _, rss in sizes), sizes[:5]


def main() -> int:
    """Run the command, sample its memory, write the report."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="JSON report")
    p.add_argument("--every", type=float, default=1.0, help="seconds between samples")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    args = p.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("no command given (put it after --)")
    start = time.perf_counter()
    child = subprocess.Popen(command)
    root = psutil.Process(child.pid)
    peak, peak_at, holders = 0, 0.0, []
    while child.poll() is None:
        total, top = tree_rss(root)
        if total > peak:
            peak, peak_at, holders = total, time.perf_counter() - start, top
        time.sleep(args.every)
    wall = time.perf_counter() - start
    report = {
        "date": datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "command": " ".join(command),
        "returncode": child.returncode,
        "wall_s": round(wall, 1),
        "peak_rss_gib": round(peak / 2**30, 2),
        "peak_at_s": round(peak_at, 1),
        "peak_processes": [{"rss_gib": round(rss / 2**30, 2), "cmd": cmd} for cmd, rss in holders],
        "sample_every_s": args.every,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
