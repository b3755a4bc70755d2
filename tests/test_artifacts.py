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
    assert parse_model_name(model_name(base, replicate, twin)) == (base, replicate, twin, None)


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


# Partial rotations of the dose-response control (lm_rot050 is t = 0.50).


@pytest.mark.parametrize("t,name", [(0.5, "lm_rot050"), (0.25, "lm_rot025"), (0.07, "lm_rot007")])
def test_partial_twin_names_round_trip(t, name):
    assert model_name("lm", twin="partial", t=t) == name
    assert parse_model_name(name) == ("lm", 0, "partial", t)
    assert parse_model_name(model_name("cnn_plain", 2, "partial", t)).replicate == 2
    assert A.dose_tag(t) == name[-3:]


def test_partial_twin_names_refused_outside_the_open_interval():
    for t in (0.0, 1.0, 1.5, -0.1, 0.125):
        with pytest.raises(ValueError, match="hundredths"):
            A.dose_tag(t)
    with pytest.raises(ValueError, match="needs its rotation size"):
        model_name("lm", twin="partial")
    with pytest.raises(ValueError, match="has none"):
        model_name("lm", twin="rotated", t=0.5)
    # rot000 and rot100 are no partial twin: they read as (odd) base names
    assert parse_model_name("lm_rot000").twin == "model"
    assert parse_model_name("lm_rot100").twin == "model"
    assert parse_model_name("lm_rotated").t is None
    assert A.DOSE_RESPONSE == "results/tables/dose_response.csv"
