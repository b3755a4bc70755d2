import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_lm

from iterlens.models.families import adapter_for
from iterlens.vocab.nearest import reading_space
from iterlens.vocab.neurons import NeuronRecorder, neuron_words, position0_neurons


def act_fn(model, family):
    return adapter_for(model).ffn_activation(model, 0)


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "llama"])
def test_activations_and_weights_rebuild_the_ffn(family):
    model = tiny_lm(family)
    gen = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    ids = torch.randint(0, 97, (1, 6), generator=gen)
    seen = {}
    adapter = adapter_for(model)
    mlps = [adapter.mlp_module(model, i) for i in range(len(adapter.blocks_of(model)))]
    handles = [
        m.register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(i, (a[0], out)))
        for i, m in enumerate(mlps)
    ]
    with NeuronRecorder(model) as rec, torch.no_grad():
        model(ids)
        acts = rec.activations()[:, 0]
    for h in handles:
        h.remove()
    fn = act_fn(model, family)
    for layer, (x, out) in seen.items():
        w = adapter.ffn_weights(model, layer)
        pre = x[0] @ w.w_in.T + w.b_in
        expected = fn(pre) * (x[0] @ w.w_up.T if w.w_up is not None else 1.0)
        torch.testing.assert_close(acts[layer], expected, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(acts[layer] @ w.w_out + w.b_out, out[0], atol=1e-4, rtol=1e-4)


def test_neuron_words_use_the_ffn_input_norm():
    model = tiny_lm("gpt_neox")
    adapter = adapter_for(model)
    with torch.no_grad():
        adapter.input_norms_of(model, 1)[1].weight.uniform_(0.2, 3.0)
    mask = torch.zeros(97, dtype=torch.bool)
    table = neuron_words(model, 4, [str(i) for i in range(97)], mask)
    assert len(table) == 3 * 64 * 2 * 4
    row = table[(table["layer"] == 1) & (table["neuron"] == 5) & (table["side"] == "in")]
    space = reading_space(model, adapter.input_norms_of(model, 1)[1])
    brute = F.cosine_similarity(adapter.ffn_weights(model, 1).w_in[5][None], space.vectors).topk(4)
    assert row["token_id"].tolist() == brute.indices.tolist()


def test_position0_neurons_by_hand():
    acts = torch.tensor(
        [[[5.0, 5.0, -5.0, 0.1], [0.5, 3.0, 0.0, 0.1], [-1.0, 0.0, 0.0, 0.1]]]
    )  # [L=1, T=3, n=4]
    table = position0_neurons(acts, ratio=4.0, quantile=0.5)
    # neuron 0: 5 >= 4 * 1; neuron 1: 5 < 4 * 3; neuron 2 negative; neuron 3 weak
    assert table[["layer", "neuron"]].values.tolist() == [[0, 0]]
    assert table["ratio"].tolist() == [pytest.approx(5.0)]
    assert position0_neurons(acts[:, :1], 4.0, 0.5).empty
