"""Kill the smoke DAG with SIGKILL at several points; resume it the README's way each time.

Usage: python benchmarks/fault_injection.py [--points extraction "lens fitting" ...]
       [--cores all] [--reference DIR] [--keep DIR] [--json OUT]

In a fresh copy of the workflow (Snakefile, config/, workflow/, profiles/, paper/) in a temporary
folder, this starts `snakemake --cores all --configfile config/smoke.yaml` (the README's
command), watches the folder, and kills the whole process group with SIGKILL as soon as a
point is reached: an extraction shard appears, a tuned lens appears while the other lenses of
that model are still being fitted, an evaluation job starts, a figure job starts. Then it
runs the same command again, which is killed at the next point, and so on, and finally lets
it finish. Checked after every run: each file that belonged to a finished job when the
process was killed (present and not marked incomplete by Snakemake) still has the same inode,
size and mtime (no finished job ran twice); at the end, every table (results/tables/**/*.csv)
is byte-identical to an uninterrupted run's (``--reference``, or one run here first).

The point ``disk-full`` runs the command under a file-size limit (``--fsize-limit`` bytes,
SIGXFSZ ignored, so a write past it fails as on a full disk) and expects it to fail with
an error that says so and names the file, leaving no file under that name.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from iterlens import artifacts as A

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ["Snakefile", "config", "workflow", "profiles", "paper", "CITATION.cff"]
CONFIG = "config/smoke.yaml"


@dataclass(frozen=True)
class Point:
    """Where to kill: the first new path matching ``pattern`` (not ``unless``), + ``delay`` s."""

    pattern: str
    delay: float = 0.0
    unless: str | None = None  # skip a match if this sibling path (formatted) exists


POINTS = {
    "extraction": Point(A.STORE_SHARD.format(model="*", split="*", index="*")),
    "lens fitting": Point(A.LENS_DIR.format(model="*", kind="tuned"), unless="{parent}/probe"),
    "evaluation": Point("logs/evaluate/*.log", delay=1.0),
    "figures": Point("logs/figures/*.log", delay=0.5),
}
DISK_FULL = "disk-full"


def command(cores: str) -> list[str]:
    """The README's resume command (``snakemake`` run by this interpreter)."""
    return [sys.executable, "-m", "snakemake", "--cores", cores, "--configfile", CONFIG]


def prepare(workdir: Path) -> None:
    """Copy the workflow (not the results) into ``workdir``, as a fresh clone would have it."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, workdir / name, dirs_exist_ok=True)
        else:
            shutil.copy2(src, workdir / name)


def snapshot(workdir: Path) -> dict[str, tuple[int, int, int]]:
    """(inode, mtime_ns, size) of every file under results/, temporaries left out."""
    out = {}
    for path in (workdir / "results").rglob("*"):
        rel = path.relative_to(workdir)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            st = path.stat()
            out[str(rel)] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return out


def incomplete(workdir: Path) -> set[str]:
    """Outputs Snakemake marked incomplete (its records are base64 names, long ones split)."""
    folder = workdir / ".snakemake" / "incomplete"
    marked = set()
    for path in folder.rglob("*") if folder.is_dir() else []:
        if path.is_file() and path.name != "migration_underway":
            parts = path.relative_to(folder).parts
            name = "".join(p.removeprefix("@") for p in parts)
            marked.add(base64.urlsafe_b64decode(name).decode())
    return marked


def finished(files: dict, marked: set[str]) -> dict:
    """The files of ``files`` that belong to finished jobs: not under an incomplete output."""
    return {
        f: s
        for f, s in files.items()
        if not any(f == m or f.startswith(m.rstrip("/") + "/") for m in marked)
    }


def _trigger(workdir: Path, point: Point, since: float) -> Path | None:
    for path in sorted(workdir.glob(point.pattern)):
        try:
            fresh = path.stat().st_mtime >= since
        except FileNotFoundError:
            continue
        if fresh and not (
            point.unless
            and (workdir / point.unless.format(parent=path.parent.relative_to(workdir))).exists()
        ):
            return path
    return None


def _limit_file_size(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def run(
    workdir: Path,
    cores: str,
    point: Point | None = None,
    log: Path | None = None,
    fsize_limit: int | None = None,
) -> dict:
    """Run the command in ``workdir``; SIGKILL its process group when ``point`` is reached."""
    log = log or workdir / "run.log"
    start = time.time()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            command(cores),
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_limit_file_size(fsize_limit) if fsize_limit else None,
        )
        hit = None
        while proc.poll() is None:
            hit = point and _trigger(workdir, point, start)
            if hit:
                time.sleep(point.delay)
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.1)
        proc.wait()
    _wait_group_gone(proc.pid)
    return {
        "killed_at": str(hit.relative_to(workdir)) if hit else None,
        "returncode": proc.returncode,
        "seconds": round(time.time() - start, 1),
        "output": log.read_text(),
    }


def _wait_group_gone(pgid: int, timeout: float = 30.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise RuntimeError(f"process group {pgid} still alive {timeout} s after SIGKILL")


def changed(before: dict, workdir: Path) -> list[str]:
    """Files of ``before`` that are gone or were rewritten since."""
    now = snapshot(workdir)
    return sorted(f for f, s in before.items() if now.get(f) != s)


def tables(workdir: Path) -> dict[str, bytes]:
    """Every table of a run, by path relative to results/tables."""
    base = workdir / "results" / "tables"
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*.csv"))}


def inject(
    workdir: Path, points: list[str], cores: str = "all", fsize_limit: int = 1 << 20
) -> dict:
    """Kill at each of ``points`` in turn, resume, finish; return what happened at each.

    ``workdir`` must hold a copy of the workflow (:func:`prepare`), and may hold results.
    """
    report = {"points": [], "redone": []}
    done: dict = {}
    for i, name in enumerate([*points, None]):
        log = workdir / f"run-{i}.log"
        if name == DISK_FULL:
            result = run(workdir, cores, log=log, fsize_limit=fsize_limit)
        else:
            result = run(workdir, cores, POINTS[name] if name else None, log=log)
        report["redone"] += changed(done, workdir)
        files = snapshot(workdir)
        marked = incomplete(workdir)
        done = finished(files, marked)
        entry = {
            "point": name,
            "killed_at": result["killed_at"],
            "returncode": result["returncode"],
            "seconds": result["seconds"],
            "finished_files": len(done),
            "incomplete": sorted(marked),
            "locks_left": len(list((workdir / ".snakemake" / "locks").glob("*.lock"))),
            "lock_removed": "removed the Snakemake lock" in result["output"],
            "missing_files": [],
        }
        if name == DISK_FULL:
            entry["disk_full_errors"] = _disk_full_errors(workdir)
            entry["missing_files"] = [
                p for p in entry["disk_full_errors"].values() if (workdir / p).exists()
            ]
        report["points"].append(entry)
        if name is not None and name != DISK_FULL and not result["killed_at"]:
            entry["error"] = "the run ended before this point was reached"
        if name is None and result["returncode"] != 0:
            entry["error"] = result["output"][-3000:]
    return report


def _disk_full_errors(workdir: Path) -> dict[str, str]:
    """Job logs that report a full disk -> the path each one names."""
    found = {}
    for log in sorted((workdir / "logs").rglob("*.log")):
        for line in log.read_text().splitlines():
            if "while writing " in line and ("no space left" in line or "file too large" in line):
                found[str(log.relative_to(workdir))] = line.split("while writing ")[1].split(";")[0]
    return found


def verdict(report: dict, reference: dict[str, bytes], workdir: Path) -> dict:
    """Check a report against the reference tables; return the summary (``ok`` and why)."""
    got = tables(workdir)
    differ = sorted(n for n in reference.keys() | got.keys() if reference.get(n) != got.get(n))
    kills = [p for p in report["points"] if p["point"] not in (None, DISK_FULL)]
    problems = [f"{p['point']}: {p['error']}" for p in report["points"] if "error" in p]
    for p in report["points"]:
        if p["point"] == DISK_FULL and (
            not p["disk_full_errors"] or p["missing_files"] or p["returncode"] == 0
        ):
            problems.append(f"disk-full: {p['disk_full_errors']} {p['missing_files']}")
    for before, after in zip(report["points"], report["points"][1:], strict=False):
        if before["locks_left"] and not after["lock_removed"]:
            problems.append(f"the lock left at {before['point']} was not removed on resume")
    if report["redone"]:
        problems.append(f"finished outputs rewritten: {report['redone'][:10]}")
    if differ:
        problems.append(f"tables differ from the uninterrupted run: {differ[:10]}")
    survived = len(kills) if not problems else 0
    return {
        "ok": not problems,
        "problems": problems,
        "tried": len(kills),
        "killed": sum(bool(p["killed_at"]) for p in kills),
        "survived": survived,
        "tables": len(reference),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", nargs="+", default=list(POINTS), choices=[*POINTS, DISK_FULL])
    p.add_argument("--cores", default="all")
    p.add_argument("--reference", type=Path, help="workdir of an uninterrupted smoke run")
    p.add_argument("--keep", type=Path, help="run here instead of a temporary folder")
    p.add_argument("--fsize-limit", type=int, default=1 << 20)
    p.add_argument("--json", type=Path, help="write the full report here")
    args = p.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="iterlens-faults-"))
    if args.reference is None:
        args.reference = base / "reference"
        prepare(args.reference)
        ref = run(args.reference, args.cores, log=base / "reference.log")
        if ref["returncode"] != 0:
            sys.exit(f"uninterrupted run failed:\n{ref['output'][-3000:]}")
        print(f"uninterrupted run: {ref['seconds']} s")
    workdir = base / "killed"
    prepare(workdir)
    start = time.time()
    report = inject(workdir, args.points, args.cores, args.fsize_limit)
    report["summary"] = verdict(report, tables(args.reference), workdir)
    report["seconds"] = round(time.time() - start, 1)
    for entry in report["points"]:
        print(
            f"{entry['point'] or 'final run'}: killed at {entry['killed_at']}, "
            f"{entry['seconds']} s, {entry['finished_files']} finished files, "
            f"{len(entry['incomplete'])} marked incomplete, stale lock removed on resume: "
            f"{entry['lock_removed']}"
        )
    s = report["summary"]
    cmd = " ".join(["snakemake", *command(args.cores)[3:]])
    print(
        f"Fault injection: {s['tried']} kill points tried ({', '.join(args.points)}), "
        f"{s['killed']} killed with SIGKILL mid-run, {s['survived']} survived: each resumed "
        f"with `{cmd}`, no finished job redone, all {s['tables']} tables byte-identical to "
        f"an uninterrupted run ({report['seconds']} s in all)."
        if s["ok"]
        else f"FAILED: {s['problems']}"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    sys.exit(0 if s["ok"] else 1)


if __name__ == "__main__":
    main()
