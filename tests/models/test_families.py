"""Conformance suite: every registered architecture family, on a tiny random model of its own.

Each adapter must describe the model as its forward pass computes it: the readout reproduces
the logits, the extraction hooks see the pre-norm residual stream, attention and FFN
weights rebuild the hooked intermediate values, and norms are read with their weight offset.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from iterlens.models.families import FAMILIES, adapter_for, supported
from iterlens.probing.extract import ResidualRecorder
from iterlens.probing.readout import Readout, RMSNorm, readout_from_lm
from iterlens.vocab.heads import attention_pattern, head_vectors
from iterlens.vocab.nearest import reading_space, writing_space
from iterlens.vocab.neurons import NeuronRecorder

ALL = list(supported())


def scrambled(family: str, seed: int = 0):
    """The family's tiny model with every weight random: no norm gain left at 0 or 1."""
    model = FAMILIES[family].tiny_model(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    model.set_attn_implementation("eager")
    return model


def ids_for(model, n: int = 9, seed: int = 2) -> torch.Tensor:
    vocab = model.config.vocab_size
    return torch.randint(0, vocab, (1, n), generator=torch.Generator().manual_seed(seed))


class Hooks:
    """Forward hooks recording what named modules receive and return."""

    def __init__(self):
        self.inputs: dict = {}
        self.outputs: dict = {}
        self._handles: list = []

    def add(self, key, module) -> None:
        def hook(m, args, kwargs, out):
            self.inputs[key] = args[0] if args else kwargs["hidden_states"]
            self.outputs[key] = out[0] if isinstance(out, tuple) else out

        self._handles.append(module.register_forward_hook(hook, with_kwargs=True))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()


def test_every_family_is_registered_under_its_model_type():
    assert {"gpt2", "gpt_neox", "llama", "gemma3_text"} <= set(ALL)
    for name, adapter in FAMILIES.items():
        config = adapter.tiny_config()
        assert config.model_type == name
        assert adapter_for(config) is adapter


@pytest.mark.parametrize("family", ALL)
def test_readout_reproduces_the_logits_from_the_last_residual(family):
    model = scrambled(family)
    readout = readout_from_lm(model)
    assert readout.meta["family"] == family
    with ResidualRecorder(model) as rec:
        hidden, logits = rec.run(ids_for(model))
    torch.testing.assert_close(readout(hidden[:, :, -1]), logits, atol=1e-4, rtol=1e-4)
    readout.check_reproduces(hidden[:, :, -1], logits)


@pytest.mark.parametrize("family", ALL)
def test_extraction_sees_the_pre_norm_residual_stream(family):
    model = scrambled(family)
    adapter = adapter_for(model)
    ids = ids_for(model)
    blocks = adapter.blocks_of(model)
    assert len(blocks) == model.config.num_hidden_layers
    order = []
    parts = [
        ("embed", adapter.input_embedding_of(model)),
        ("norm", adapter.final_norm_of(model)),
        ("unembed", adapter.unembedding_of(model)),
    ]
    with Hooks() as hooks, ResidualRecorder(model) as rec:
        for i, block in enumerate(blocks):
            hooks.add(i, block)
        handles = [m.register_forward_hook(lambda *a, n=n: order.append(n)) for n, m in parts]
        hidden, logits = rec.run(ids)
        for handle in handles:
            handle.remove()
    assert order == ["embed", "norm", "unembed"]
    n_layers = len(blocks)
    assert hidden.shape[2] == n_layers + 1
    # h_0 is the (scaled) embedding (+ learned positions); h_{l+1} is block l's output
    h0 = adapter.embedding_matrix(model)[ids[0]]
    positions = adapter.position_embedding_of(model)
    if positions is not None:
        h0 = h0 + positions.weight.detach()[: ids.shape[1]]
    torch.testing.assert_close(hidden[0, :, 0], h0)
    for layer in range(n_layers - 1):
        torch.testing.assert_close(hidden[:, :, layer + 1], hooks.outputs[layer])
    with torch.no_grad():
        rebuilt = adapter.unembedding_of(model)(adapter.final_norm_of(model)(hidden[:, :, -1]))
        normed = model(ids, output_hidden_states=True).hidden_states[-1]
    torch.testing.assert_close(rebuilt, logits)
    assert not torch.allclose(normed, hidden[:, :, -1], atol=1e-3)


@pytest.mark.parametrize("family", ALL)
def test_attention_rebuilt_from_the_weights_matches_the_forward_pass(family):
    model = scrambled(family)
    adapter = adapter_for(model)
    ids = ids_for(model)
    n_layers = len(adapter.blocks_of(model))
    with Hooks() as hooks, ResidualRecorder(model) as rec, torch.no_grad():
        for layer in range(n_layers):
            hooks.add(("attn", layer), adapter.attention_module(model, layer))
            hooks.add(("o", layer), adapter.attention_output_module(model, layer))
            out_norm = adapter.output_norms_of(model, layer)[0]
            if out_norm is not None:
                hooks.add(("post", layer), out_norm)
        result = model(ids, output_attentions=True)
        hidden = {k: v[0] for k, v in rec.captured.items()}
    n = ids.shape[1]
    for layer in range(n_layers):
        x = adapter.input_norms_of(model, layer)[0](hidden[layer]).detach()
        torch.testing.assert_close(x, hooks.inputs[("attn", layer)][0])  # the attention input
        attentions = result.attentions[layer][0]
        torch.testing.assert_close(
            attention_pattern(model, layer, x), attentions, atol=1e-5, rtol=1e-4
        )
        weights = adapter.attention_weights(model, layer)
        window = weights.sliding_window or n
        for i in range(n):
            first = max(0, i - window + 1)
            vectors = head_vectors(model, layer, x, query_position=i)
            keys = slice(first, i + 1)
            scores = vectors.pattern[:, keys] @ x[i] + vectors.pattern_bias[:, keys]
            torch.testing.assert_close(
                (scores * vectors.query_scale[:, None]).softmax(-1),
                attentions[:, i, keys],
                atol=1e-5,
                rtol=1e-4,
            )
        vectors = head_vectors(model, layer, x)
        rebuilt = torch.einsum("hij,hjd->id", attentions, vectors.message) + weights.o_bias
        torch.testing.assert_close(rebuilt, hooks.outputs[("o", layer)][0], atol=1e-4, rtol=1e-4)
        if ("post", layer) in hooks.outputs:  # what reaches the residual stream: g * m / rms
            post = hooks.outputs[("post", layer)][0]
            direction = torch.einsum("hij,hjd->id", attentions, vectors.written)
            direction = direction + weights.o_bias * weights.out_gain
            torch.testing.assert_close(
                F.normalize(direction, dim=-1), F.normalize(post, dim=-1), atol=1e-5, rtol=1e-4
            )
        else:
            assert vectors.written is vectors.message


@pytest.mark.parametrize("family", ALL)
def test_neurons_read_the_ffn_input_norm_and_rebuild_the_ffn(family):
    model = scrambled(family)
    adapter = adapter_for(model)
    n_layers = len(adapter.blocks_of(model))
    with Hooks() as hooks, NeuronRecorder(model) as neurons, torch.no_grad():
        for layer in range(n_layers):
            hooks.add(("norm", layer), adapter.input_norms_of(model, layer)[1])
            hooks.add(("mlp", layer), adapter.mlp_module(model, layer))
            out_norm = adapter.output_norms_of(model, layer)[1]
            if out_norm is not None:
                hooks.add(("post", layer), out_norm)
        model(ids_for(model))
        acts = neurons.activations()[:, 0]
    for layer in range(n_layers):
        # the reading norm is the FFN's own: its output is exactly what the MLP receives
        x = hooks.inputs[("mlp", layer)][0]
        assert torch.equal(hooks.outputs[("norm", layer)][0], x)
        w = adapter.ffn_weights(model, layer)
        act = adapter.ffn_activation(model, layer)
        gate = act(x @ w.w_in.T + w.b_in)
        expected = gate * (x @ w.w_up.T) if w.w_up is not None else gate
        torch.testing.assert_close(acts[layer], expected, atol=1e-5, rtol=1e-4)
        out = hooks.outputs[("mlp", layer)][0]
        torch.testing.assert_close(acts[layer] @ w.w_out + w.b_out, out, atol=1e-4, rtol=1e-4)
        if ("post", layer) in hooks.outputs:
            direction = acts[layer] @ w.written + w.b_out * w.out_gain
            torch.testing.assert_close(
                F.normalize(direction, dim=-1),
                F.normalize(hooks.outputs[("post", layer)][0], dim=-1),
                atol=1e-5,
                rtol=1e-4,
            )
        else:
            assert w.written is w.w_out


def test_unknown_architectures_are_refused_by_name():
    from transformers import BertConfig, BertForMaskedLM, PretrainedConfig

    bert = BertForMaskedLM(
        BertConfig(num_hidden_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=32)
    )
    for call in (adapter_for, readout_from_lm, ResidualRecorder):
        with pytest.raises(NotImplementedError, match="'bert' \\(BertForMaskedLM\\)") as err:
            call(bert)
        assert all(name in str(err.value) for name in ALL)

    class MadeUpConfig(PretrainedConfig):
        model_type = "made_up_lm"

    with pytest.raises(NotImplementedError, match="made_up_lm"):
        adapter_for(MadeUpConfig())


# -- Gemma: (1 + w) norms and sqrt(d) embeddings ------------------------------------------


def test_gemma_readout_uses_one_plus_w_and_keeps_it_on_disk(tmp_path):
    model = scrambled("gemma3_text")
    readout = readout_from_lm(model)
    assert readout.final_norm.offset == 1.0
    with ResidualRecorder(model) as rec:
        hidden, logits = rec.run(ids_for(model))
    last = hidden[:, :, -1]
    # the same weights read as w * h would not reproduce the model
    plain = RMSNorm(readout.d_model, eps=readout.final_norm.eps)
    plain.load_state_dict(readout.final_norm.state_dict())
    wrong = Readout(plain, readout.unembedding)
    assert not torch.allclose(wrong(last), logits, atol=1e-2)
    with pytest.raises(RuntimeError, match="readout check failed"):
        wrong.check_reproduces(last, logits)
    # the offset is metadata, not a tensor: it survives a round trip, the fingerprint is the
    # state dict's, and a readout without an offset records none
    readout.save(tmp_path / "gemma.safetensors")
    back = Readout.load(tmp_path / "gemma.safetensors")
    assert back.final_norm.offset == 1.0
    assert back.fingerprint() == readout.fingerprint() == wrong.fingerprint()
    torch.testing.assert_close(back(last), logits, atol=1e-4, rtol=1e-4)
    from safetensors import safe_open

    with safe_open(tmp_path / "gemma.safetensors", "pt") as f:
        assert f.metadata()["weight_offset"] == "1.0"
    readout_from_lm(scrambled("llama")).save(tmp_path / "llama.safetensors")
    with safe_open(tmp_path / "llama.safetensors", "pt") as f:
        assert "weight_offset" not in f.metadata()
    assert Readout.load(tmp_path / "llama.safetensors").final_norm.offset == 0.0


def test_gemma_embeddings_are_scaled_by_sqrt_d():
    model = scrambled("gemma3_text")
    adapter = adapter_for(model)
    d = model.config.hidden_size
    assert adapter.embed_scale(model) == pytest.approx(math.sqrt(d))
    ids = ids_for(model)
    with ResidualRecorder(model) as rec:
        hidden, _ = rec.run(ids)
    raw = adapter.input_embedding_of(model).weight.detach()[ids[0]]
    torch.testing.assert_close(hidden[0, :, 0], raw * math.sqrt(d))
    assert not torch.allclose(hidden[0, :, 0], raw, atol=1e-2)


def test_gemma_writing_space_folds_in_one_plus_w():
    """logit_t(h) = |(1 + w) U_t| (h . row_t) / rms(h): fails if the gain were read as w."""
    model = scrambled("gemma3_text")
    adapter = adapter_for(model)
    final = adapter.final_norm_of(model)
    head = adapter.unembedding_of(model)
    space = writing_space(model)
    h = torch.randn(4, model.config.hidden_size, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        logits = head(final(h))
    scale = (h.pow(2).mean(-1, keepdim=True) + final.eps).sqrt()
    row_norm = (head.weight.detach() * (1 + final.weight.detach())).norm(dim=-1)
    rebuilt = (h @ space.vectors.T) * row_norm / scale
    torch.testing.assert_close(rebuilt, logits, atol=1e-4, rtol=1e-4)
    as_w = F.normalize(head.weight.detach() * final.weight.detach(), dim=-1)
    assert not torch.allclose(space.vectors, as_w, atol=1e-3)


def test_gemma_reading_space_is_layer_zero_input():
    """Row t of layer 0's reading space is exactly the attention input for a lone token t."""
    model = scrambled("gemma3_text")
    adapter = adapter_for(model)
    norm = adapter.input_norms_of(model, 0)[0]
    ids = ids_for(model)
    with Hooks() as hooks, torch.no_grad():
        hooks.add("attn", adapter.attention_module(model, 0))
        model(ids)
    space = reading_space(model, norm)
    seen = F.normalize(hooks.inputs["attn"][0], dim=-1)
    torch.testing.assert_close(space.vectors[ids[0]], seen)
