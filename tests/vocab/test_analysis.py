from __future__ import annotations

import gc
import weakref

import torch
from conftest import tiny_lm

from iterlens.probing.lenses import LogitLens
from iterlens.probing.readout import readout_from_lm
from iterlens.vocab import analysis


class CharTokenizer:
    """A tokenizer over a tiny model's vocabulary: one id per character."""

    def __init__(self, n: int):
        self.n = n

    def __call__(self, text: str) -> dict:
        return {"input_ids": [ord(c) % (self.n - 1) + 1 for c in text]}

    def __len__(self) -> int:
        return self.n

    def decode(self, ids: list[int]) -> str:
        return f"t{ids[0]}"


def test_one_reading_space_at_a_time(monkeypatch):
    """A [V, d] reading space per layer held at once was 12 GB for a 262k-word vocabulary."""
    model = tiny_lm("gemma3_text")
    alive: weakref.WeakSet = weakref.WeakSet()
    most = []
    made = analysis.reading_space

    def counted(*args, **kwargs):
        gc.collect()
        most.append(len(alive) + 1)
        space = made(*args, **kwargs)
        alive.add(space.vectors)
        return space

    monkeypatch.setattr(analysis, "reading_space", counted)
    tok = CharTokenizer(model.get_output_embeddings().out_features)
    lenses = {"logit": LogitLens(readout_from_lm(model))}
    with torch.no_grad():
        tables = analysis.analyse(model, tok, ["ab cd", "efg"], lenses, analysis.VocabSettings())
    n_layers = model.config.num_hidden_layers
    assert len(most) == n_layers and max(most) == 1
    assert set(tables["head_words"]["layer"]) == set(range(n_layers))
    order = tables["head_words"][["prompt", "layer"]].drop_duplicates()
    assert list(order.itertuples(index=False)) == sorted(order.itertuples(index=False))
