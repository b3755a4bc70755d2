from __future__ import annotations

import pandas as pd
import torch

from iterlens.probing.store import ActivationStore


def test_smoke_run_has_the_rotated_control(smoke_run):
    table = pd.read_csv(smoke_run / "results" / "tables" / "rotated_control.csv")
    assert set(zip(table["model"], table["twin"], strict=True)) == {
        (m, t) for m in ("lm", "cnn_plain", "cnn_residual") for t in ("original", "rotated")
    }
    layers = table.dropna(subset=["layer"])
    for model, rows in layers.groupby("model"):
        wide = rows.pivot(index="layer", columns="twin", values="logit_kl_bits")
        last = wide.index.max()
        assert (wide.loc[last] == 0).all(), model  # Q_L = I: the final logits are unchanged
        if model == "lm":  # where the model's own logit lens works, the twin's fails
            middle = wide.loc[1 : last - 1]
            assert (middle["rotated"] > middle["original"]).all(), model
    assert table.dropna(subset=["abs_distance"])["transfer_kl_penalty_bits"].notna().all()
    assert (smoke_run / "results" / "figures" / "rotated_control.png").stat().st_size > 10_000
    probed = smoke_run / "results" / "probed"
    a = ActivationStore(probed / "lm" / "acts" / "eval").load_shard(0)
    b = ActivationStore(probed / "lm_rotated" / "acts" / "eval").load_shard(0)
    assert torch.equal(a["hidden"][:, -1], b["hidden"][:, -1])
    assert not torch.equal(a["hidden"][:, 1], b["hidden"][:, 1])
    assert (probed / "lm_rotated" / "readout.safetensors").read_bytes() == (
        probed / "lm" / "readout.safetensors"
    ).read_bytes()
