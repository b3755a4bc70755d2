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


def test_a_transfer_layer_subset_measures_those_pairs_exactly(smoke_lm):
    """Measured on layers {0, 2} (and the last, added): those pairs equal the full matrix's, the
    other pairs are NaN in the sums and absent from the table; a layer outside 0..L is refused."""
    from iterlens.probing.transfer import transfer_group_sums, transfer_layers, transfer_table

    readout, _, eval_store, _ = smoke_lm
    n = eval_store.n_layers
    lens = make_tuned_lens(readout, n)
    with torch.no_grad():
        for t in lens.layer_translators:
            t.weight.normal_(std=0.05)
    full = transfer_table(transfer_group_sums(lens, eval_store, readout, progress=False))
    sums = transfer_group_sums(lens, eval_store, readout, progress=False, layers=[2, 0])
    part = transfer_table(sums)
    measured = {0, 2, n}
    assert set(part.lens_layer) == set(part.data_layer) == measured
    assert len(part) == len(measured) ** 2
    same = full.merge(part, on=["lens_layer", "data_layer"], suffixes=("", "_sub"))
    assert len(same) == len(part)
    assert same["ce_bits_sub"].to_numpy() == pytest.approx(same["ce_bits"].to_numpy(), rel=1e-6)
    assert same["kl_penalty_bits_sub"].to_numpy() == pytest.approx(
        same["kl_penalty_bits"].to_numpy(), rel=1e-5, abs=1e-7
    )
    assert torch.isnan(torch.from_numpy(sums["ce_bits"][:, 1, 0])).all()
    assert transfer_layers(n, None) == list(range(n + 1))
    with pytest.raises(ValueError, match=f"transfer layer {n + 1} is not a layer"):
        transfer_layers(n, [n + 1])
