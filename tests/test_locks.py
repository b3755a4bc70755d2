"""Stale Snakemake locks: removed when their run is dead, kept (with a pointer) otherwise."""

import subprocess
from pathlib import Path

from conftest import ROOT

from iterlens.locks import DOCS_HINT, clear_stale_locks, is_alive, register, this_run


def _locked(state: Path) -> Path:
    (state / "locks").mkdir(parents=True)
    lock = state / "locks" / "0.output.lock"
    lock.write_text("results/tables/headline.csv\n")
    return lock


def test_lock_of_a_killed_run_is_removed(tmp_path):
    lock = _locked(tmp_path)
    victim = subprocess.Popen(["sleep", "60"])
    register(tmp_path, victim.pid)
    assert "may still be going" in clear_stale_locks(tmp_path) and lock.exists()
    victim.kill()
    victim.wait()
    note = clear_stale_locks(tmp_path)
    assert f"pid {victim.pid}" in note and "removed" in note
    assert not lock.exists()
    assert clear_stale_locks(tmp_path) is None  # nothing left to do


def test_lock_without_a_record_stays_and_points_to_the_docs(tmp_path):
    lock = _locked(tmp_path)
    note = clear_stale_locks(tmp_path)
    assert lock.exists() and "unknown origin" in note and "snakemake --unlock" in note
    assert DOCS_HINT in note
    # the note names a page and a section that exist, and the section says what to type
    page, section = DOCS_HINT.split(", section ")
    text = (ROOT / page).read_text()
    heading = f"## {section.strip(chr(39))}"
    assert heading in text.splitlines()
    after = text.split(heading, 1)[1].split("\n## ", 1)[0]
    assert "snakemake --unlock" in after and "snakemake --cores all" in after


def test_reused_pid_other_host_and_reboot():
    me = this_run()
    assert is_alive(me) is True
    assert is_alive({**me, "start": "1"}) is False  # this pid now belongs to another process
    assert is_alive({**me, "host": "elsewhere"}) is None  # never guess for another machine
    if me["boot"]:
        assert is_alive({**me, "boot": "another-boot"}) is False
