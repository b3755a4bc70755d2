"""The release rules in the DAG (dry runs: seconds)."""

import yaml
from conftest import ROOT, snakemake


def dry_run(tmp_path, **released_lenses):
    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    cfg["models"][0]["released_lenses"] = released_lenses
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    result = snakemake(
        tmp_path / "run", "-n", "--quiet", "rules", config=str(tmp_path / "cfg.yaml")
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def jobs(text, rule):
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == rule:
            return int(parts[1])
    return 0


def test_the_dag_stages_the_release_never_pushes_and_can_use_released_lenses(tmp_path):
    out = dry_run(tmp_path, use=True, source="spaces/someone/lenses")
    assert jobs(out, "stage_model_repo") == 3  # lm, cnn_plain, cnn_residual
    assert jobs(out, "stage_dataset_repo") == 1
    assert jobs(out, "push") == 0 and jobs(out, "push_dry_run") == 0
    assert jobs(out, "released_lenses") == 1
    # every probed model but the LM: lm_random, the CNN twins, their untrained twins and
    # (smoke: seeds.vision = 2) one more seed of each twin
    assert jobs(out, "fit_lenses") == 7
