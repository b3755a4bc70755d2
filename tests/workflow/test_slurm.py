"""The workflow through snakemake-executor-plugin-slurm on a one-node SLURM started here.

A short target (corpus, tokenizer) goes through the real executor: sbatch, slurmctld, slurmd
and a job step per rule. The whole smoke DAG the same way is benchmarks/slurm_smoke.sh (its
time is in docs/gpu-and-clusters.md). Skipped, with the reason, where SLURM cannot be started:
its daemons (Debian's slurm-wlm and munge) are absent, or this is not root; CI does not install
them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "slurm_smoke.sh"


def test_smoke_targets_run_through_the_slurm_executor(tmp_path):
    missing = [t for t in ("slurmctld", "slurmd", "sbatch", "munged") if not shutil.which(t)]
    if missing:
        pytest.skip(f"SLURM cannot be started here: {', '.join(missing)} not installed")
    if os.geteuid() != 0:
        pytest.skip("SLURM cannot be started here: its daemons need root")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    run = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path), "results/tokenizers/lm"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    if run.returncode == 77:
        pytest.skip(f"SLURM cannot be started here: {run.stderr.strip().splitlines()[-1]}")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (tmp_path / "results" / "tokenizer").is_dir()
    logs = list((tmp_path / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert {p.parent.name for p in logs} >= {"rule_corpus", "rule_tokenizer"}
