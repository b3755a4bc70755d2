"""Lens properties on the trained smoke LM (shared with the workflow test)."""

import pandas as pd
import pytest
import torch

from iterlens.lenses import SharedLens, evaluate_lenses, fit_lens, make_tuned_lens
from iterlens.readout import Readout
from iterlens.store import ActivationStore
from iterlens.transfer import transfer_matrix


@pytest.fixture(scope="module")
def smoke_lm(smoke_run):
    root = smoke_run / "results" / "probed" / "lm"
    readout = Readout.load(root / "readout.safetensors")
    return (readout, ActivationStore(root / "acts" / "lensfit"),
            ActivationStore(root / "acts" / "eval"), smoke_run)


def test_tuned_beats_logit_lens_below_the_last_layer(smoke_lm):
    *_, run = smoke_lm
    m = pd.read_csv(run / "results" / "tables" / "lm" / "lens_metrics.csv")
    logit = m[m.lens == "logit"].set_index("layer")["kl_bits"]
    tuned = m[m.lens == "tuned"].set_index("layer")["kl_bits"]
    last = logit.index.max()
    assert (tuned[:last - 1] < logit[:last - 1]).all(), (tuned, logit)
    assert logit[last] == pytest.approx(0, abs=1e-6) and tuned[last] == pytest.approx(0, abs=1e-6)


def test_shared_lens_on_one_layer_equals_tuned_lens(smoke_lm):
    readout, fit_store, _, _ = smoke_lm
    n = fit_store.n_layers
    kwargs = {"objective": "kl", "steps": 15, "batch_size": 64, "lr": 3e-3, "seed": 7,
              "progress": False}
    tuned = make_tuned_lens(readout, n)
    fit_lens(tuned, fit_store, readout, list(range(n)), **kwargs)
    shared = SharedLens(readout)
    fit_lens(shared, fit_store, readout, [1], **kwargs)
    moved = tuned.layer_translators[1].weight.abs().max().item()
    assert moved > 1e-3  # training did something
    torch.testing.assert_close(shared.translator.weight, tuned.layer_translators[1].weight,
                               atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(shared.translator.bias, tuned.layer_translators[1].bias,
                               atol=1e-5, rtol=1e-4)


def test_lens_training_is_deterministic(smoke_lm):
    readout, fit_store, _, _ = smoke_lm
    states = []
    for _ in range(2):
        lens = make_tuned_lens(readout, fit_store.n_layers)
        curve = fit_lens(lens, fit_store, readout, [0, 1], "kl", 5, 64, 1e-3, seed=3,
                         progress=False)
        states.append((lens.layer_translators.state_dict(), curve))
    for key, value in states[0][0].items():
        assert torch.equal(value, states[1][0][key])
    pd.testing.assert_frame_equal(states[0][1], states[1][1])


def test_transfer_diagonal_is_each_lens_own_ce(smoke_lm):
    *_, run = smoke_lm
    tables = run / "results" / "tables" / "lm"
    transfer = pd.read_csv(tables / "transfer.csv")
    metrics = pd.read_csv(tables / "lens_metrics.csv")
    diag = transfer[transfer.lens_layer == transfer.data_layer].set_index("data_layer")
    own = metrics[metrics.lens == "tuned"].set_index("layer")
    assert diag["ce_bits"].to_numpy() == pytest.approx(own["ce_bits"].to_numpy(), rel=1e-4)
    assert diag["kl_bits"].to_numpy() == pytest.approx(own["kl_bits"].to_numpy(),
                                                       rel=1e-3, abs=1e-5)
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
        from iterlens.metrics import ce_bits
        direct += ce_bits(lens(batch.hidden[:, 1], 0), batch.targets).sum().item()
    assert off == pytest.approx(direct / eval_store.n_examples, rel=1e-5)


def test_probe_beats_unigram(smoke_lm):
    *_, run = smoke_lm
    tables = run / "results" / "tables"
    summary = pd.read_csv(tables / "lm_summary.csv").set_index("model")
    metrics = pd.read_csv(tables / "lm" / "lens_metrics.csv")
    probe = metrics[metrics.lens == "probe"]
    assert probe["ce_bits"].min() < summary.loc["unigram", "ce_bits"]
