from __future__ import annotations

import pytest
import torch
from conftest import tiny_lm

from iterlens.models.cnn import (
    init_cnn,
)
from iterlens.probing.extract import ResidualRecorder
from iterlens.probing.lenses import (
    LogitLens,
)
from iterlens.probing.readout import Readout, readout_from_cnn, readout_from_lm

FAMILIES = ["gpt2", "gpt_neox", "llama"]


@pytest.mark.parametrize("family", FAMILIES)
def test_logit_lens_at_last_layer_is_the_model(family):
    model = tiny_lm(family)
    readout = readout_from_lm(model)
    x = torch.randint(0, 97, (2, 12))
    with ResidualRecorder(model) as rec:
        hidden, logits = rec.run(x)
    assert hidden.shape == (2, 12, 4, 32)  # L + 1 = 4 layers
    lens = LogitLens(readout)
    torch.testing.assert_close(lens(hidden[:, :, -1], 3), logits, atol=1e-5, rtol=1e-5)
    # the trap: output_hidden_states ends with the *normed* stream, not h_L
    last = model(x, output_hidden_states=True).hidden_states[-1]
    assert not torch.allclose(last, hidden[:, :, -1], atol=1e-3)


def test_readout_roundtrip_and_fingerprint(tmp_path):
    for family in FAMILIES:
        readout = readout_from_lm(tiny_lm(family))
        path = tmp_path / f"{family}.safetensors"
        readout.save(path)
        loaded = Readout.load(path)
        h = torch.randn(4, 32)
        torch.testing.assert_close(loaded(h), readout(h))
        assert loaded.fingerprint() == readout.fingerprint()
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupt readout"):
        Readout.load(path)


def test_readout_save_load_keeps_cnn_meta(tmp_path):
    net = init_cnn(8, (1,), residual=False, seed=0)
    readout = readout_from_cnn(net)
    readout.save(tmp_path / "readout.safetensors")
    back = Readout.load(tmp_path / "readout.safetensors")
    assert back.meta == {"family": "inception", "residual": False}
    assert back.fingerprint() == readout.fingerprint()


def test_a_bfloat16_readout_rounds_the_product_only(small_readout):
    h = 3 * torch.randn(64, 16)
    exact = small_readout(h)
    small_readout.set_compute_dtype("bfloat16")
    fingerprint = small_readout.fingerprint()
    half = small_readout(h)
    assert half.dtype == torch.float32 and small_readout.unembedding.weight.dtype == torch.float32
    assert not torch.equal(half, exact)  # the product did run in bfloat16
    # inputs, weights and logits each rounded to 8 significant bits: a few parts in 1e3
    scale = small_readout.final_norm(h).abs() @ small_readout.unembedding.weight.abs().T
    assert ((half - exact).abs() <= 2**-6 * (scale + 1)).all()
    # by hand: the rounded product, returned in float32
    x = small_readout.final_norm(h).bfloat16()
    w, b = small_readout.unembedding.weight.bfloat16(), small_readout.unembedding.bias.bfloat16()
    torch.testing.assert_close(half, torch.nn.functional.linear(x, w, b).float(), rtol=0, atol=0)
    assert small_readout.fingerprint() == fingerprint
    small_readout.set_compute_dtype("float32")
    assert torch.equal(small_readout(h), exact)
    with pytest.raises(ValueError, match="readout dtype must be one of float32, bfloat16"):
        small_readout.set_compute_dtype("float8")
