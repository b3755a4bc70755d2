from __future__ import annotations

from pathlib import Path

from iterlens import artifacts as A
from iterlens.probing.store import write_manifest, write_shard


def test_one_name_for_shards_in_library_and_workflow(tmp_path):
    # The workflow's shard pattern (index as a 5-digit wildcard) and the library's writer agree.
    import torch

    path = A.shard_path(tmp_path / "store", 3)
    assert path.name == "shard-00003.safetensors"
    pattern = A.STORE_SHARD.format(model="lm", split="eval", index="00003")
    assert pattern == "results/probed/lm/acts/eval/shard-00003.safetensors"
    for i in range(4):
        write_shard(A.shard_path(tmp_path / "store", i), torch.zeros(2, 3, 4), torch.arange(2))
    manifest = write_manifest(tmp_path / "store", 4, {"domain": "test"})
    assert [s["file"] for s in manifest["shards"]][-1] == path.name
    assert (tmp_path / "store" / A.MANIFEST).exists()


def test_model_of_table_is_its_folder():
    table = A.LENS_METRICS.format(model="cnn_plain")
    assert A.model_of_table(table) == "cnn_plain"
    assert A.model_of_table(Path("/x") / table) == "cnn_plain"
