"""A hard kill or a full disk, then the README's command again: same tables, nothing redone."""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

spec = importlib.util.spec_from_file_location("faults", ROOT / "benchmarks/fault_injection.py")
faults = sys.modules["faults"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(faults)


def test_every_profile_resumes_incomplete_jobs():
    """profiles/default, and any cluster profile beside it, rerun what a kill left incomplete."""
    profiles = sorted((ROOT / "profiles").glob("*/config*.yaml"))
    assert ROOT / "profiles/default/config.yaml" in profiles
    for path in profiles:
        assert yaml.safe_load(path.read_text()).get("rerun-incomplete") is True, path


SAVE_LENS = """
import resource, signal, sys
from iterlens.probing.lenses import make_tuned_lens, save_lens
from iterlens.probing.readout import Readout
readout = Readout.load(sys.argv[1])
if len(sys.argv) > 3:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), int(sys.argv[3])))
save_lens(make_tuned_lens(readout, 3), sys.argv[2], readout, 3)
"""


def test_full_disk_while_saving_a_lens(smoke_run, tmp_path):
    readout = smoke_run / "results/probed/lm/readout.safetensors"
    folder = tmp_path / "lenses" / "tuned"
    cmd = [sys.executable, "-c", SAVE_LENS, str(readout), str(folder)]
    full = subprocess.run([*cmd, "4096"], capture_output=True, text=True)
    assert full.returncode != 0
    assert f"file too large (file-size limit) while writing {folder}" in full.stderr
    assert list((tmp_path / "lenses").iterdir()) == []  # no partial lens, no temporary
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert (folder / "lens.safetensors").exists()


WRITE_SHARD = """
import sys, torch
from iterlens.probing.store import write_shard
write_shard(sys.argv[1], torch.zeros(64, 4, 1024), torch.arange(64), n_bytes=64)
"""


def _can_mount_tmpfs(where: Path) -> bool:
    probe = f"mount -t tmpfs -o size=64k tmpfs {where} && umount {where}"
    try:
        return subprocess.run(["unshare", "-rm", "sh", "-c", probe]).returncode == 0
    except FileNotFoundError:
        return False


def test_no_space_left_on_a_small_filesystem(tmp_path):
    """A real ENOSPC: a 64 KiB tmpfs in a private mount namespace."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not _can_mount_tmpfs(disk):
        pytest.skip("cannot mount a tmpfs here (no user namespaces); the file-size test covers it")
    shard = disk / "shard-00000.safetensors"
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {disk} && "
        f"{sys.executable} -c '{WRITE_SHARD}' {shard}; echo left: $(ls -A {disk})"
    )
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert f"no space left on device while writing {shard}" in result.stderr, result.stderr
    assert result.stdout.strip() == "left:"  # nothing under the name, no temporary


def test_kill_and_full_disk_resume_with_the_readme_command(smoke_run, tmp_path):
    """A copy of the smoke run loses the random-init LM's store, lenses and tables; the rerun
    first hits a full disk during extraction, then is killed during extraction and during
    lens fitting, each time resumed with the README's command, and must end with every table
    byte-identical to the uninterrupted smoke run, no finished job redone."""
    work = tmp_path / "run"
    shutil.copytree(smoke_run, work, symlinks=True)
    for name in ["probed/lm_random/acts", "probed/lm_random/lenses", "tables/lm_random"]:
        shutil.rmtree(work / "results" / name)
    # and what depends on them (cross-model tables, figures, the untrained LM's vocabulary
    # pages, the dataset repo, the paper): outdated, so not finished
    for stale in [
        "tables/*.csv", "figures/lm_*.png", "figures/paper_*.png",
        "figures/rotated_control.png", "vocab/lm_random",
        "vocab/index.html", "release/*-results", "paper",
    ]:  # fmt: skip
        for path in (work / "results").glob(stale):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.rmtree(work / ".snakemake" / "iterlens-runs", ignore_errors=True)
    faults.prepare(work)
    report = faults.inject(work, [faults.DISK_FULL, "extraction", "lens fitting"], cores="2")
    full, extraction, fitting, final = report["points"]
    assert full["returncode"] != 0 and full["missing_files"] == []
    assert any("lm_random/acts" in path for path in full["disk_full_errors"].values())
    for killed in (extraction, fitting):
        assert killed["killed_at"] and killed["returncode"] == -9 and killed["locks_left"]
    assert fitting["lock_removed"] and final["lock_removed"]  # no `--unlock` typed
    assert any("lenses/tuned" in m for m in fitting["incomplete"])  # the case
    assert final["returncode"] == 0, final.get("error")
    summary = faults.verdict(report, faults.tables(smoke_run), work)
    assert summary["ok"], summary["problems"]
    assert summary["survived"] == 2 and summary["tables"] > 20
