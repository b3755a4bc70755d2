from __future__ import annotations

import json

import pytest

from iterlens.models.lm import ModelNotFoundError, load_causal_lm, load_model_dir


def test_unknown_model_offline_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as err:
        load_causal_lm("no-such-org/no-such-model")
    msg = str(err.value)
    assert "no-such-org/no-such-model" in msg and "unreachable" in msg and "lm.model" in msg
    with pytest.raises(ModelNotFoundError, match="no model folder"):
        load_model_dir("/nonexistent/model/folder")


@pytest.mark.parametrize(
    ("family", "rope", "legacy"),
    [
        (
            "llama",
            {"rope_type": "default", "rope_theta": 100_000.0},
            {"rope_theta": 100_000.0, "rope_scaling": None},
        ),
        (
            "gemma3_text",
            {
                "sliding_attention": {"rope_type": "default", "rope_theta": 10.0},
                "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
            },
            {
                "rope_theta": 1e6,
                "rope_local_base_freq": 10.0,
                "rope_scaling": {"rope_type": "linear", "factor": 8.0},
            },
        ),
    ],
)
def test_saved_config_carries_the_rotary_keys_transformers_4_reads(tmp_path, family, rope, legacy):
    """transformers 5 writes only rope_parameters; 4.x would fall back to its defaults."""
    from transformers import AutoConfig

    from iterlens.models.families import FAMILIES
    from iterlens.models.lm import portable_model_config

    config = FAMILIES[family].tiny_config()
    config.rope_parameters = rope
    config.save_pretrained(tmp_path)
    assert "rope_theta" not in json.loads((tmp_path / "config.json").read_text())
    portable_model_config(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    assert {k: written[k] for k in legacy} == legacy
    assert AutoConfig.from_pretrained(tmp_path).rope_parameters == rope  # 5.x reads the same
