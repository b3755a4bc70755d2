import pytest
import torch
from conftest import tiny_lm

from iterlens.models.families import adapter_for
from iterlens.probing.extract import ResidualRecorder
from iterlens.vocab.heads import attention_pattern, attention_to_first, head_vectors

# Every registered family; the Llama adapter's tiny config has grouped-query attention (4
# query heads sharing 2 key/value heads) and attention biases.
FAMILIES = ["gpt2", "gpt_neox", "llama"]


def scrambled(family: str):
    """A tiny model whose every weight, bias and norm scale is random (none left at 0 or 1)."""
    model = tiny_lm(family)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    model.set_attn_implementation("eager")
    return model


def forward_with_hooks(model, ids):
    """Residual stream, the model's attention probabilities and each attention output."""
    outputs = {}
    adapter = adapter_for(model)
    handles = [
        adapter.attention_output_module(model, layer).register_forward_hook(
            lambda m, a, out, layer=layer: outputs.__setitem__(layer, out.detach())
        )
        for layer in range(len(adapter.blocks_of(model)))
    ]
    try:
        with ResidualRecorder(model) as rec, torch.no_grad():
            result = model(ids, output_attentions=True)
            hidden = {k: v[0] for k, v in rec.captured.items()}
    finally:
        for handle in handles:
            handle.remove()
    return hidden, [a[0] for a in result.attentions], outputs


@pytest.mark.parametrize("family", FAMILIES)
def test_pattern_and_message_vectors_match_the_forward_pass(family):
    model = scrambled(family)
    ids = torch.randint(0, 97, (1, 9), generator=torch.Generator().manual_seed(2))
    hidden, attentions, outputs = forward_with_hooks(model, ids)
    n = ids.shape[1]
    adapter = adapter_for(model)
    for layer in range(len(adapter.blocks_of(model))):
        x = adapter.input_norms_of(model, layer)[0](hidden[layer])
        # attention probabilities from the weights alone
        probs = attention_pattern(model, layer, x)
        torch.testing.assert_close(probs, attentions[layer], atol=1e-5, rtol=1e-4)
        # scores of query i from the pattern vectors, for every query position
        for i in range(n):
            vectors = head_vectors(model, layer, x, query_position=i)
            scores = vectors.pattern[:, : i + 1] @ x[i] + vectors.pattern_bias[:, : i + 1]
            torch.testing.assert_close(
                scores.softmax(-1), attentions[layer][:, i, : i + 1], atol=1e-5, rtol=1e-4
            )
        # the attention output is the attention-weighted sum of the messages plus the bias
        message = head_vectors(model, layer, x).message
        weights = adapter.attention_output_module(model, layer).bias
        bias = torch.zeros(x.shape[1]) if weights is None else weights.detach()
        rebuilt = torch.einsum("hij,hjd->id", attentions[layer], message) + bias
        torch.testing.assert_close(rebuilt, outputs[layer][0], atol=1e-4, rtol=1e-4)


def test_rotary_patterns_depend_on_the_query_position():
    model = scrambled("llama")
    x = torch.randn(6, 32, generator=torch.Generator().manual_seed(3))
    first = head_vectors(model, 0, x, query_position=2).pattern
    last = head_vectors(model, 0, x, query_position=5).pattern
    assert not torch.allclose(first, last)
    gpt2 = scrambled("gpt2")
    torch.testing.assert_close(
        head_vectors(gpt2, 0, x, 2).pattern, head_vectors(gpt2, 0, x).pattern
    )


def test_attention_to_first_position():
    pattern = torch.tensor([[[1.0, 0, 0], [0.25, 0.75, 0], [0.5, 0.25, 0.25]]])
    assert attention_to_first(pattern).tolist() == [pytest.approx(0.375)]
    with pytest.raises(ValueError, match="query position"):
        head_vectors(tiny_lm("gpt2"), 0, torch.randn(3, 32), query_position=3)
