"""Model names of seed replicates (iterlens.artifacts.model_name)."""

from __future__ import annotations

import pytest

from iterlens.artifacts import model_name, parse_model_name, replicates


def test_replicate_zero_keeps_the_bare_name():
    assert model_name("lm") == "lm"
    assert model_name("cnn_plain", 0, random=True) == "cnn_plain_random"
    assert replicates("cnn_plain", 3) == ["cnn_plain", "cnn_plain_s1", "cnn_plain_s2"]
    assert replicates("lm", 1) == ["lm"]


@pytest.mark.parametrize(
    "arch,replicate,random",
    [("lm", 0, False), ("lm", 0, True), ("cnn_residual", 2, False), ("cnn_plain", 11, True)],
)
def test_names_round_trip(arch, replicate, random):
    assert parse_model_name(model_name(arch, replicate, random)) == (arch, replicate, random)


def test_bad_names_refused():
    with pytest.raises(ValueError, match="not a model name"):
        parse_model_name("CNN plain")
    with pytest.raises(ValueError, match="replicate"):
        model_name("lm", -1)
