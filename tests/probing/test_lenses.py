from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import tiny_lm

from iterlens.probing.fitting import fit_lens
from iterlens.probing.lenses import (
    SharedLens,
    load_lens,
    make_lens,
    make_tuned_lens,
    save_lens,
)
from iterlens.probing.readout import readout_from_lm

FAMILIES = ["gpt2", "gpt_neox", "llama"]


def test_tuned_beats_logit_lens_below_the_last_layer(smoke_lm):
    *_, run = smoke_lm
    m = pd.read_csv(run / "results" / "tables" / "lm" / "lens_metrics.csv")
    logit = m[m.lens == "logit"].set_index("layer")["kl_bits"]
    tuned = m[m.lens == "tuned"].set_index("layer")["kl_bits"]
    last = logit.index.max()
    assert (tuned[: last - 1] < logit[: last - 1]).all(), (tuned, logit)
    assert logit[last] == pytest.approx(0, abs=1e-6) and tuned[last] == pytest.approx(0, abs=1e-6)


def test_shared_lens_on_one_layer_equals_tuned_lens(smoke_lm):
    readout, fit_store, _, _ = smoke_lm
    n = fit_store.n_layers
    kwargs = {
        "objective": "kl",
        "steps": 15,
        "batch_size": 64,
        "lr": 3e-3,
        "seed": 7,
        "progress": False,
    }
    tuned = make_tuned_lens(readout, n)
    fit_lens(tuned, fit_store, readout, list(range(n)), **kwargs)
    shared = SharedLens(readout)
    fit_lens(shared, fit_store, readout, [1], **kwargs)
    moved = tuned.layer_translators[1].weight.abs().max().item()
    assert moved > 1e-3  # training did something
    torch.testing.assert_close(
        shared.translator.weight, tuned.layer_translators[1].weight, atol=1e-5, rtol=1e-4
    )
    torch.testing.assert_close(
        shared.translator.bias, tuned.layer_translators[1].bias, atol=1e-5, rtol=1e-4
    )


def test_lens_training_is_deterministic(smoke_lm):
    readout, fit_store, _, _ = smoke_lm
    states = []
    for _ in range(2):
        lens = make_tuned_lens(readout, fit_store.n_layers)
        curve = fit_lens(
            lens, fit_store, readout, [0, 1], "kl", 5, 64, 1e-3, seed=3, progress=False
        )
        states.append((lens.layer_translators.state_dict(), curve))
    for key, value in states[0][0].items():
        assert torch.equal(value, states[1][0][key])
    pd.testing.assert_frame_equal(states[0][1], states[1][1])


def test_probe_beats_unigram(smoke_lm):
    *_, run = smoke_lm
    tables = run / "results" / "tables"
    summary = pd.read_csv(tables / "lm_summary.csv").set_index("model")
    metrics = pd.read_csv(tables / "lm" / "lens_metrics.csv")
    probe = metrics[metrics.lens == "probe"]
    assert probe["ce_bits"].min() < summary.loc["lm_unigram", "ce_bits"]


@pytest.mark.parametrize("family", FAMILIES)
def test_zero_tuned_lens_equals_logit_lens(family):
    readout = readout_from_lm(tiny_lm(family))
    tuned = make_tuned_lens(readout, n_layers=3)
    h = torch.randn(5, 32)
    for layer in range(4):
        torch.testing.assert_close(tuned(h, layer), readout(h))
    with torch.no_grad():  # a nonzero translator must change the output
        tuned.layer_translators[1].bias.fill_(1.0)
    assert not torch.allclose(tuned(h, 1), readout(h))


def test_lens_for_another_unembedding_is_refused(tmp_path):
    readout_a = readout_from_lm(tiny_lm("gpt2", seed=0))
    readout_b = readout_from_lm(tiny_lm("gpt2", seed=1))
    save_lens(make_tuned_lens(readout_a, 3), tmp_path / "lens", readout_a, 3)
    assert (tmp_path / "lens" / "params.pt").exists()  # tuned_lens layout
    assert load_lens(tmp_path / "lens", readout_a).kind == "tuned"
    with pytest.raises(ValueError, match="unembedding does not match"):
        load_lens(tmp_path / "lens", readout_b)


def test_saved_tuned_lens_loads_in_tuned_lens_package(tmp_path):
    from tuned_lens import TunedLens

    model = tiny_lm("gpt2")
    readout = readout_from_lm(model)
    lens = make_tuned_lens(readout, 3)
    with torch.no_grad():
        lens.layer_translators[0].weight.normal_()
    save_lens(lens, tmp_path / "lens", readout, 3)
    theirs = TunedLens.from_model_and_pretrained(model, str(tmp_path / "lens"))
    h = torch.randn(3, 32)
    torch.testing.assert_close(theirs(h, 0), lens(h, 0))


def test_lens_or_readout_with_a_flipped_byte_is_refused(tmp_path, small_readout):
    from iterlens.probing.readout import Readout

    lens = make_lens("shared", small_readout, 3)
    with torch.no_grad():
        lens.translator.bias.fill_(0.5)
    save_lens(lens, tmp_path / "shared", small_readout, 3)
    assert torch.equal(
        load_lens(tmp_path / "shared", small_readout).translator.bias, lens.translator.bias
    )
    weights = tmp_path / "shared" / "lens.safetensors"
    data = bytearray(weights.read_bytes())
    data[-2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="lens.safetensors is corrupt"):
        load_lens(tmp_path / "shared", small_readout)
    small_readout.save(tmp_path / "readout.safetensors")
    data = bytearray((tmp_path / "readout.safetensors").read_bytes())
    data[-2] ^= 0xFF
    (tmp_path / "readout.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="readout.safetensors does not match its recorded"):
        Readout.load(tmp_path / "readout.safetensors")
