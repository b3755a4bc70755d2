import numpy as np
import pytest
import torch
from conftest import tiny_lm

from iterlens.extract import ResidualRecorder, extract_lm_shard
from iterlens.lenses import IdentityLens, load_lens, make_tuned_lens, save_lens
from iterlens.lm import ModelNotFoundError, load_causal_lm, load_model_dir
from iterlens.readout import Readout, readout_from_lm
from iterlens.store import shard_is_complete

FAMILIES = ["gpt2", "gpt_neox", "llama"]


@pytest.mark.parametrize("family", FAMILIES)
def test_logit_lens_at_last_layer_is_the_model(family):
    model = tiny_lm(family)
    readout = readout_from_lm(model)
    x = torch.randint(0, 97, (2, 12))
    with ResidualRecorder(model) as rec:
        hidden, logits = rec.run(x)
    assert hidden.shape == (2, 12, 4, 32)  # L + 1 = 4 layers
    lens = IdentityLens(readout)
    torch.testing.assert_close(lens(hidden[:, :, -1], 3), logits, atol=1e-5, rtol=1e-5)
    # the trap: output_hidden_states ends with the *normed* stream, not h_L
    last = model(x, output_hidden_states=True).hidden_states[-1]
    assert not torch.allclose(last, hidden[:, :, -1], atol=1e-3)


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


def test_unknown_architecture_is_named():
    from transformers import BloomConfig, BloomForCausalLM

    model = BloomForCausalLM(BloomConfig(n_layer=1, hidden_size=16, n_head=2, vocab_size=50))
    with pytest.raises(NotImplementedError, match="bloom"):
        readout_from_lm(model)


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


def test_unknown_model_offline_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as err:
        load_causal_lm("no-such-org/no-such-model")
    msg = str(err.value)
    assert "no-such-org/no-such-model" in msg and "unreachable" in msg and "lm.model" in msg
    with pytest.raises(ModelNotFoundError, match="no model folder"):
        load_model_dir("/nonexistent/model/folder")


def test_extraction_resumes_and_checks_readout(tmp_path):
    from transformers import PreTrainedTokenizerFast

    model = tiny_lm("gpt2")
    readout = readout_from_lm(model)
    tokenizer = _char_tokenizer(PreTrainedTokenizerFast)
    tokens = np.random.default_rng(0).integers(1, 97, 400).astype(np.int32)
    out = tmp_path / "shard-00000.safetensors"
    starts = np.array([0, 16, 32])
    extract_lm_shard(model, readout, tokenizer, tokens, starts, 16, 2, out, progress=False)
    assert shard_is_complete(out)
    stamp = out.stat().st_mtime_ns
    extract_lm_shard(model, readout, tokenizer, tokens, starts, 16, 2, out, progress=False)
    assert out.stat().st_mtime_ns == stamp  # a finished shard is not redone
    wrong = readout_from_lm(tiny_lm("gpt2", seed=3))
    with pytest.raises(RuntimeError, match="readout check failed"):
        extract_lm_shard(model, wrong, tokenizer, tokens, starts, 16, 2,
                         tmp_path / "other.safetensors", progress=False)
    assert not (tmp_path / "other.safetensors").exists()


def _char_tokenizer(cls):
    from tokenizers import Tokenizer, models

    vocab = {chr(65 + i % 26) + str(i): i for i in range(97)}
    return cls(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="A0")))
