from __future__ import annotations

from pathlib import Path

import pytest

from iterlens import artifacts as A
from iterlens.artifacts import model_name, parse_model_name, replicates
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


# Model names of seed replicates (iterlens.artifacts.model_name).


def test_replicate_zero_keeps_the_bare_name():
    assert model_name("lm") == "lm"
    assert model_name("cnn_plain", 0, twin="random") == "cnn_plain_random"
    assert model_name("cnn_plain", 0, twin="rotated") == "cnn_plain_rotated"
    assert replicates("cnn_plain", 3) == ["cnn_plain", "cnn_plain_s1", "cnn_plain_s2"]
    assert replicates("lm", 1) == ["lm"]


@pytest.mark.parametrize(
    "base,replicate,twin",
    [
        ("lm", 0, "model"),
        ("lm", 0, "random"),
        ("cnn_residual", 2, "model"),
        ("cnn_plain", 11, "random"),
        ("cnn_plain", 0, "rotated"),
        ("smol_lm2", 0, "rotated"),
    ],
)
def test_names_round_trip(base, replicate, twin):
    assert parse_model_name(model_name(base, replicate, twin)) == (base, replicate, twin)


def test_rotated_twin_is_parsed_not_stripped():
    parsed = parse_model_name("cnn_plain_rotated")
    assert parsed.base == "cnn_plain" and parsed.twin == "rotated"


def test_bad_names_refused():
    with pytest.raises(ValueError, match="not a model name"):
        parse_model_name("CNN plain")
    with pytest.raises(ValueError, match="replicate"):
        model_name("lm", -1)
    with pytest.raises(ValueError, match="twin"):
        model_name("lm", 0, twin="shuffled")
