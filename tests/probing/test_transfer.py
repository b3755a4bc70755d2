from __future__ import annotations

import pandas as pd
import pytest
import torch

from iterlens.probing.lenses import (
    evaluate_lenses,
    make_tuned_lens,
)
from iterlens.probing.metrics import (
    ce_bits,
)
from iterlens.probing.transfer import transfer_matrix


def test_transfer_diagonal_is_each_lens_own_ce(smoke_lm):
    *_, run = smoke_lm
    tables = run / "results" / "tables" / "lm"
    transfer = pd.read_csv(tables / "transfer.csv")
    metrics = pd.read_csv(tables / "lens_metrics.csv")
    diag = transfer[transfer.lens_layer == transfer.data_layer].set_index("data_layer")
    own = metrics[metrics.lens == "tuned"].set_index("layer")
    assert diag["ce_bits"].to_numpy() == pytest.approx(own["ce_bits"].to_numpy(), rel=1e-4)
    assert diag["kl_bits"].to_numpy() == pytest.approx(
        own["kl_bits"].to_numpy(), rel=1e-3, abs=1e-5
    )
    assert (diag["ce_penalty_bits"] == 0).all()
    assert (transfer["distance"] == transfer["data_layer"] - transfer["lens_layer"]).all()


def test_transfer_matrix_batched_equals_direct(smoke_lm):
    readout, _, eval_store, _ = smoke_lm
    lens = make_tuned_lens(readout, eval_store.n_layers)
    with torch.no_grad():
        for t in lens.layer_translators:
            t.weight.normal_(std=0.05)
    table = transfer_matrix(lens, eval_store, readout, progress=False)
    metrics, _ = evaluate_lenses({"tuned": lens}, eval_store, readout, progress=False)
    # lens i on its own layer: the batched matrix must agree with a direct evaluation
    diag = table[table.lens_layer == table.data_layer]["ce_bits"].to_numpy()
    assert diag == pytest.approx(metrics["ce_bits"].to_numpy(), rel=1e-5)
    off = table[(table.lens_layer == 0) & (table.data_layer == 1)]["ce_bits"].item()
    direct = 0.0
    for batch in eval_store.iter_batches(512):
        direct += ce_bits(lens(batch.hidden[:, 1], 0), batch.targets).sum().item()
    assert off == pytest.approx(direct / eval_store.n_examples, rel=1e-5)
