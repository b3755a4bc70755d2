from __future__ import annotations

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
