"""Stale Snakemake locks: remove the one a killed run left behind, and only that one.

Snakemake locks a working directory with files in ``.snakemake/locks`` and removes them when
it exits; a hard kill (SIGKILL, OOM killer, wall-time limit, power cut) leaves them, and the
next run stops with ``LockException`` until someone types ``snakemake --unlock``. The lock
files do not say which process made them, so the workflow keeps its own record: every main
Snakemake process registers itself (host, boot, pid, process start time) in
``.snakemake/iterlens-runs`` while the Snakefile is parsed, which is before it takes the lock.
A later run removes the locks only when every registered run is known to be dead (same host
and boot, and its pid is gone or now belongs to another process; or the machine has rebooted
since). A run on another host, or a lock with no record at all, is left alone: the user then
sees a note pointing to "After a crash" in docs/robustness.md before Snakemake's own
``LockException``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
from pathlib import Path

REGISTRY = "iterlens-runs"
DOCS_HINT = "docs/robustness.md, section 'After a crash'"
"""Where the notes send the user: the page and section that say what to type."""


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (Linux), or None."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name may hold spaces


def this_run(pid: int | None = None) -> dict:
    """The record that identifies process ``pid`` (default: this one) across hosts and boots."""
    pid = os.getpid() if pid is None else pid
    return {
        "host": socket.gethostname(),
        "boot": _read("/proc/sys/kernel/random/boot_id"),
        "pid": pid,
        "start": _start_time(pid),
    }


def is_alive(run: dict) -> bool | None:
    """Whether a registered run is still going: True, False, or None (cannot tell)."""
    here = this_run()
    if run.get("host") != here["host"]:
        return None  # another machine sharing the folder: never guess
    if run.get("boot") and here["boot"] and run["boot"] != here["boot"]:
        return False  # the machine rebooted since: every process of that boot is gone
    try:
        os.kill(int(run["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    start = _start_time(int(run["pid"]))
    return not (run.get("start") and start and start != run["start"])  # pid reused?


def register(state_dir: str | Path = ".snakemake", pid: int | None = None) -> Path:
    """Record this Snakemake process in ``state_dir``; return the record's path."""
    run = this_run(pid)
    folder = Path(state_dir) / REGISTRY
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run['host']}-{run['pid']}.json"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(run, f)
    os.replace(tmp, path)
    return path


def _registered(folder: Path) -> dict[Path, dict]:
    runs = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            runs[path] = json.loads(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)  # written by rename, so never half; drop junk
    return runs


def clear_stale_locks(state_dir: str | Path = ".snakemake") -> str | None:
    """Register this run; remove the directory's Snakemake locks if their owners are all dead.

    Returns a one-line note for the user (what was removed, or why a lock stays), or None
    when there is no lock.
    """
    state_dir = Path(state_dir)
    mine = register(state_dir)
    others = {p: r for p, r in _registered(state_dir / REGISTRY).items() if p != mine}
    status = {p: is_alive(r) for p, r in others.items()}
    for path, alive in status.items():
        if alive is False:
            path.unlink(missing_ok=True)
    locks = sorted((state_dir / "locks").glob("*.lock"))
    if not locks:
        return None
    going = [others[p] for p, alive in status.items() if alive is not False]
    dead = [others[p] for p, alive in status.items() if alive is False]
    if dead and not going:
        for lock in locks:
            lock.unlink(missing_ok=True)
        pids = ", ".join(str(r["pid"]) for r in dead)
        return (
            f"iterlens: removed the Snakemake lock left in {state_dir / 'locks'} by a run "
            f"that was killed (pid {pids}, no longer running); resuming"
        )
    if going:
        who = ", ".join(f"pid {r['pid']} on {r['host']}" for r in going)
        return (
            f"iterlens: {state_dir / 'locks'} is held by a Snakemake run that may still be "
            f"going ({who}). If Snakemake stops with LockException and that run is "
            f"gone, see {DOCS_HINT}: `snakemake --unlock`, then your command again."
        )
    return (
        f"iterlens: {state_dir / 'locks'} holds a lock of unknown origin (no record of the "
        f"run that made it). If Snakemake stops with LockException and no other Snakemake "
        f"runs in this directory, see {DOCS_HINT}: `snakemake --unlock`, then your "
        f"command again."
    )


def report_stale_locks(state_dir: str | Path = ".snakemake") -> None:
    """:func:`clear_stale_locks`, printing its note on stderr (called by the workflow)."""
    note = clear_stale_locks(state_dir)
    if note:
        print(note, file=sys.stderr)
