from __future__ import annotations

import pytest
import torch
from conftest import tiny_lm

from iterlens.models.surgery import (
    blocks_of,
    final_norm_of,
    input_embedding_of,
    model_family,
    unembedding_of,
)

FAMILIES = ["gpt2", "gpt_neox", "llama"]


@pytest.mark.parametrize("family", FAMILIES)
def test_parts_are_the_modules_the_forward_pass_uses(family):
    model = tiny_lm(family)
    assert model_family(model) == family
    assert len(blocks_of(model)) == model.config.num_hidden_layers
    seen = []
    hooks = [
        m.register_forward_hook(lambda m, a, o, name=name: seen.append(name))
        for name, m in [
            ("embed", input_embedding_of(model)),
            ("norm", final_norm_of(model)),
            ("unembed", unembedding_of(model)),
        ]
    ]
    with torch.no_grad():
        model(torch.tensor([[1, 2, 3]]))
    for h in hooks:
        h.remove()
    assert seen == ["embed", "norm", "unembed"]


def test_unknown_architecture_is_named():
    from transformers import BertConfig, BertForMaskedLM

    model = BertForMaskedLM(
        BertConfig(num_hidden_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=32)
    )
    with pytest.raises(NotImplementedError, match="bert"):
        model_family(model)
