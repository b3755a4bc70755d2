"""Where a finished Snakemake run's time went, from its log: job times, idle cores, a share.

Reads ``.snakemake/log/<newest>.log`` of a run folder (or a log file), pairs every ``Job N``
with its ``Finished jobid: N``, and prints the job-seconds per rule, the cores left idle over
the run, and the share of the run's core-seconds taken by the jobs whose message matches
``--part`` (default: the rotated twins), with that share of the wall time. On a DAG that keeps
every core busy, that share is what those jobs add to the wall time, whatever order they ran in.

``--list`` also prints every matching job (rule, seconds, message); ``--out FILE`` writes
the whole report there too, headed by the date and the machine, for the docs to quote.

Usage::

    python benchmarks/job_times.py . --cores 2
    python benchmarks/job_times.py . --part smollm2 --list --out benchmarks/results/smollm2_jobs.txt

Threads per job are not in the log: ``--threads rule=N`` (repeatable) sets them; the default is
the default run's on 2 cores (``train_lm`` and ``vocab`` 2, every other rule 1).
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from machine import machine

STAMP = re.compile(r"\[(\w{3} \w{3}\s+\d+ [\d:]+ \d{4})\]$")
START = re.compile(r"Job (\d+): (.*)")
END = re.compile(r"Finished jobid: (\d+) \(Rule: (\w+)\)")


def read_jobs(log: Path) -> list[dict]:
    """One dict per finished job: ``rule``, ``message``, ``start`` and ``end`` (datetimes)."""
    starts: dict[str, tuple[datetime, str]] = {}
    jobs = []
    stamp = None
    for line in log.read_text().splitlines():
        if m := STAMP.match(line):
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        elif (m := START.match(line)) and stamp is not None:
            starts[m.group(1)] = (stamp, m.group(2))
        elif (m := END.match(line)) and m.group(1) in starts:
            start, message = starts.pop(m.group(1))
            jobs.append({"rule": m.group(2), "message": message, "start": start, "end": stamp})
    if not jobs:
        raise SystemExit(f"{log}: no finished jobs in this log")
    return jobs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a run folder (its newest Snakemake log) or a log file")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--threads", action="append", default=[], help="rule=N (default: see above)")
    p.add_argument("--part", default="rotated", help="jobs whose message contains this (any case)")
    p.add_argument("--list", action="store_true", help="print every matching job")
    p.add_argument("--out", type=Path, help="also write the report to this file")
    args = p.parse_args()
    lines: list[str] = []
    log = args.run
    if log.is_dir():
        logs = sorted((log / ".snakemake" / "log").glob("*.snakemake.log"))
        if not logs:
            raise SystemExit(f"{log}: no .snakemake/log/*.snakemake.log")
        log = logs[-1]
    threads = {"train_lm": 2, "vocab": 2}
    threads.update({k: int(v) for k, v in (t.split("=") for t in args.threads)})
    jobs = read_jobs(log)
    t0 = min(j["start"] for j in jobs)
    wall = int((max(j["end"] for j in jobs) - t0).total_seconds())
    busy = [0] * wall
    per_rule: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    total = part = 0.0
    matching = []
    for j in jobs:
        seconds = (j["end"] - j["start"]).total_seconds()
        n = threads.get(j["rule"], 1)
        per_rule[j["rule"]][0] += 1
        per_rule[j["rule"]][1] += seconds
        total += seconds * n
        if args.part.lower() in j["message"].lower() or args.part.lower() in j["rule"]:
            part += seconds * n
            matching.append((j["rule"], seconds, j["message"]))
        first, last = ((j[k] - t0).total_seconds() for k in ("start", "end"))
        for t in range(int(first), int(last)):
            busy[t] += n
    idle = sum(max(0, args.cores - b) for b in busy)
    say = lines.append
    say(f"{log.name}: {len(jobs)} jobs, wall {wall} s (first start to last finish)")
    say(f"{'rule':26s} {'jobs':>4s} {'job-s':>7s}")
    for rule, (n, seconds) in sorted(per_rule.items(), key=lambda kv: -kv[1][1]):
        say(f"{rule:26s} {n:4d} {seconds:7.0f}")
    say(f"core-seconds {total:.0f}; idle {idle} of {args.cores * wall} core-seconds of the wall")
    say(
        f"jobs matching {args.part!r}: {part:.0f} core-seconds, {part / total:.1%} of the run, "
        f"{part / total * wall:.0f} s of its wall time"
    )
    if args.list:
        say("")
        say(f"{'rule':26s} {'s':>6s}  message")
        for rule, seconds, message in sorted(matching, key=lambda m: -m[1]):
            say(f"{rule:26s} {seconds:6.0f}  {message}")
    print("\n".join(lines))
    if args.out:
        started = t0.strftime("%Y-%m-%d %H:%M")
        head = f"# run started {started}; {machine()}"
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join([head, *lines]) + "\n")


if __name__ == "__main__":
    main()
