import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_lm

from iterlens.models.families import adapter_for
from iterlens.vocab.nearest import (
    dominated,
    high_bias_mask,
    match_table,
    nearest_words,
    reading_space,
    token_bias,
    writing_space,
)

FAMILIES = ["gpt2", "gpt_neox", "llama"]


def scrambled(family: str):
    """Random weights everywhere: norm scales and biases are not 1 and 0."""
    model = tiny_lm(family)
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5 + (1.0 if p.ndim == 1 else 0.0))
    return model


@pytest.mark.parametrize("family", FAMILIES)
def test_a_token_is_nearest_to_its_own_normalised_embedding(family):
    model = scrambled(family)
    tokens = torch.arange(0, 97, 7)
    # input side: the embeddings through layer 1's attention input norm
    adapter = adapter_for(model)
    norm = adapter.input_norms_of(model, 1)[0]
    with torch.no_grad():
        own = norm(adapter.embedding_matrix(model)[tokens])
    ids, cos = nearest_words(own, reading_space(model, norm), k=3)
    assert ids[:, 0].tolist() == tokens.tolist()
    torch.testing.assert_close(cos[:, 0], torch.ones(len(tokens)))
    # output side: the unembedding with the final norm's scale folded in (centred for LN)
    head = model.get_output_embeddings().weight.detach()
    final = adapter.final_norm_of(model)
    own = head[tokens] * final.weight.detach()
    if family != "llama":
        own = own - own.mean(-1, keepdim=True)
    ids, _ = nearest_words(own, writing_space(model), k=3)
    assert ids[:, 0].tolist() == tokens.tolist()


def test_untied_models_read_outputs_with_the_unembedding():
    model = scrambled("llama")
    adapter = adapter_for(model)
    assert not torch.equal(model.get_output_embeddings().weight, adapter.embedding_matrix(model))
    head = model.get_output_embeddings().weight.detach() * model.model.norm.weight.detach()
    expected = F.normalize(head, dim=-1)
    torch.testing.assert_close(writing_space(model).vectors, expected)


def test_cosines_are_exact():
    model = scrambled("gpt2")
    space = writing_space(model)
    v = torch.randn(5, 32, generator=torch.Generator().manual_seed(0))
    ids, cos = nearest_words(v, space, k=4, chunk=2)
    centred = v - v.mean(-1, keepdim=True)
    brute = F.cosine_similarity(centred[:, None], space.vectors[None], dim=-1)
    torch.testing.assert_close(cos, brute.topk(4).values)
    assert torch.equal(ids, brute.topk(4).indices)
    with pytest.raises(ValueError, match="width"):
        nearest_words(torch.zeros(2, 7), space, 3)


def test_high_bias_filter_by_hand():
    bias = torch.tensor([0.0, 0.0, 0.0, 0.0, 10.0])
    # mean 2, sample std sqrt(20) = 4.47: z of the last token = 1.79
    assert high_bias_mask(bias, 1.5).tolist() == [False] * 4 + [True]
    assert high_bias_mask(bias, 1.9).tolist() == [False] * 5
    mask = torch.tensor([False, False, False, True, True])
    lists = torch.tensor([[4, 3, 0], [0, 1, 4], [3, 4, 4]])
    assert dominated(lists, mask, 0.5).tolist() == [True, False, True]
    table = match_table({"list": [0, 1, 2]}, lists, torch.ones(3, 3), list("abcde"), mask, 0.5)
    assert table["list_high_bias"].tolist() == [True] * 3 + [False] * 3 + [True] * 3
    assert table["token"].tolist()[:3] == ["e", "d", "a"]


@pytest.mark.parametrize("family", FAMILIES)
def test_token_bias_is_the_logit_of_the_mean_residual(family):
    model = scrambled(family)
    mean = torch.randn(32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = model.lm_head(adapter_for(model).final_norm_of(model)(mean))
    torch.testing.assert_close(token_bias(model, mean), expected)


@pytest.mark.parametrize("family", FAMILIES)
def test_writing_space_rows_give_the_logits(family):
    """logit_t(h) = |P(gamma U_t)| (P h . row_t) / scale(h) + the bias of t: the writing
    space is the readout's own geometry, not a heuristic."""
    model = scrambled(family)
    space = writing_space(model)
    h = torch.randn(4, 32, generator=torch.Generator().manual_seed(7)) * 3
    final = adapter_for(model).final_norm_of(model)
    head = model.get_output_embeddings()
    with torch.no_grad():
        logits = head(final(h))
        scaled = head.weight * final.weight
        beta = getattr(final, "bias", None)
        offset = head(beta if beta is not None else torch.zeros(32))
    if family == "llama":  # RMSNorm: no centring, scale = rms
        ph, scale = h, (h.pow(2).mean(-1, keepdim=True) + final.variance_epsilon).sqrt()
    else:
        ph = h - h.mean(-1, keepdim=True)
        scale = (ph.pow(2).mean(-1, keepdim=True) + final.eps).sqrt()
        scaled = scaled - scaled.mean(-1, keepdim=True)
    rebuilt = (ph @ space.vectors.T) * scaled.norm(dim=-1) / scale + offset
    torch.testing.assert_close(rebuilt, logits, atol=1e-4, rtol=1e-4)
