"""The vocabulary-space analysis of one model on a list of prompts: every table, in memory.

:func:`analyse` runs each prompt once through the model (residual stream, FFN
activations), then computes the token bias, the neuron word lists (once per model), the
token evolution under every lens, and the heads' pattern and message words, attention
patterns and attention to position 0. :func:`write_tables` saves them as Parquet.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from iterlens import artifacts
from iterlens.io import write_json, write_parquet
from iterlens.models.families import adapter_for
from iterlens.probing.extract import ResidualRecorder
from iterlens.vocab.evolution import token_evolution
from iterlens.vocab.heads import attention_pattern, attention_to_first, head_vectors
from iterlens.vocab.nearest import (
    VocabSpace,
    high_bias_mask,
    match_table,
    nearest_words,
    reading_space,
    token_bias,
    token_strings,
    writing_space,
)
from iterlens.vocab.neurons import (
    NeuronRecorder,
    activation_table,
    neuron_words,
    position0_neurons,
)

TABLES = (
    "prompts",
    "token_bias",
    "neuron_words",
    "evolution_topk",
    "evolution",
    "residual_words",
    "activations",
    "position0_neurons",
    "head_words",
    "attention",
    "attention_first",
)


@dataclass
class VocabSettings:
    """Knobs of the analysis (the config's ``vocab`` section, prompts aside).

    Attributes:
        top_k: words kept per match list and tokens per (lens, layer, position).
        show_k: words shown per cell on the HTML page.
        bias_threshold: z-score of a token's bias above which it is high-bias.
        bias_share: a list with a larger share of high-bias words shows as ``(high bias)``.
        top_neurons: neurons shown per layer on the page (largest activation first).
        position0_ratio: a position-0 neuron's activation there over its largest elsewhere.
        position0_quantile: ...and its activation at least this quantile of its layer's.
    """

    top_k: int = 10
    show_k: int = 3
    bias_threshold: float = 3.0
    bias_share: float = 0.5
    top_neurons: int = 8
    position0_ratio: float = 4.0
    position0_quantile: float = 0.99

    @classmethod
    def from_config(cls, section: dict) -> VocabSettings:
        """Settings from a validated ``vocab`` config section (other keys ignored)."""
        return cls(**{f.name: section[f.name] for f in fields(cls) if f.name in section})


def _with_prompt(frame: pd.DataFrame, index: int) -> pd.DataFrame:
    frame.insert(0, "prompt", index)
    return frame


@torch.no_grad()
def analyse(
    model: nn.Module,
    tokenizer,
    prompts: list[str],
    lenses: dict[str, nn.Module],
    settings: VocabSettings,
    progress: bool = False,
) -> dict[str, pd.DataFrame]:
    """Every table of the analysis of ``model`` on ``prompts`` (see :data:`TABLES`).

    Args:
        lenses: name -> lens (``lens(h, layer)`` -> logits), e.g. ``logit`` and ``tuned``.
    """
    if not prompts:
        raise ValueError("no prompts to analyse")
    adapter = adapter_for(model)  # a clear error for an unsupported architecture
    vocab_size = model.get_output_embeddings().out_features
    words = token_strings(tokenizer, vocab_size)
    runs = []
    for text in prompts:
        ids = torch.tensor(tokenizer(text)["input_ids"], dtype=torch.long)
        if len(ids) == 0:
            raise ValueError(f"prompt {text!r} has no tokens")
        with ResidualRecorder(model) as rec, NeuronRecorder(model) as neurons:
            hidden, logits = rec.run(ids[None])
            acts = neurons.activations()[:, 0]
        runs.append((ids, hidden[0], logits[0], acts))
    # the mean residual stream (last layer, every position but the first, every prompt)
    last = torch.cat([h[1:, -1] if len(h) > 1 else h[:, -1] for _, h, _, _ in runs])
    bias = token_bias(model, last.mean(0))
    high = high_bias_mask(bias, settings.bias_threshold)
    z = (bias - bias.mean()) / bias.std().clamp_min(1e-12)
    share = settings.bias_share
    tables: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES}
    tables["token_bias"].append(
        pd.DataFrame(
            {
                "token_id": np.arange(vocab_size),
                "token": words,
                "bias": bias.numpy(),
                "z": z.numpy(),
                "high_bias": high.numpy(),
            }
        )
    )
    tables["neuron_words"].append(neuron_words(model, settings.top_k, words, high, share, progress))
    writing = writing_space(model)
    n_layers = len(adapter.blocks_of(model))
    for p, (ids, hidden, logits, acts) in enumerate(
        tqdm(runs, desc="prompts", disable=not progress)
    ):
        n_pos = len(ids)
        tables["prompts"].append(
            pd.DataFrame(
                {
                    "prompt": p,
                    "text": prompts[p],
                    "position": np.arange(n_pos),
                    "token_id": ids.numpy(),
                    "token": np.asarray(words, dtype=object)[ids.numpy()],
                }
            )
        )
        top, steps = token_evolution(hidden, lenses, ids, logits, settings.top_k, words)
        tables["evolution_topk"].append(_with_prompt(top, p))
        tables["evolution"].append(_with_prompt(steps, p))
        # nearest words to the residual stream itself (cosine, through the final norm)
        found, cos = nearest_words(hidden.transpose(0, 1), writing, settings.top_k)
        n_rows = found.shape[0] * n_pos
        keys = {
            "prompt": np.full(n_rows, p),
            "layer": np.repeat(np.arange(found.shape[0]), n_pos),
            "position": np.tile(np.arange(n_pos), found.shape[0]),
        }
        tables["residual_words"].append(
            match_table(
                keys, found.reshape(n_rows, -1), cos.reshape(n_rows, -1), words, high, share
            )
        )
        tables["activations"].append(_with_prompt(activation_table(acts), p))
        tables["position0_neurons"].append(
            _with_prompt(
                position0_neurons(acts, settings.position0_ratio, settings.position0_quantile), p
            )
        )
    heads: dict[tuple[int, int], dict[str, pd.DataFrame]] = {}
    for layer in tqdm(range(n_layers), desc="heads", disable=not progress):
        # one layer's reading space at a time: a [V, d] copy of the embeddings (670 MB for a
        # 262k-word vocabulary in float32), never one per layer at once
        norm = adapter.input_norms_of(model, layer)[0]
        spaces = {"pattern": reading_space(model, norm, f"attn_in:{layer}"), "message": writing}
        for p, (_, hidden, _, _) in enumerate(runs):
            heads[p, layer] = _head_tables(model, layer, hidden, spaces, settings, words, high)
        del spaces  # this layer's copy goes before the next is made
    for p, layer in sorted(heads):  # the tables' order: prompt by prompt, layer by layer
        for name, frame in heads[p, layer].items():
            tables[name].append(_with_prompt(frame, p))
    return {name: pd.concat(parts, ignore_index=True) for name, parts in tables.items()}


def _head_tables(
    model: nn.Module,
    layer: int,
    hidden: torch.Tensor,
    spaces: dict[str, VocabSpace],
    settings: VocabSettings,
    words: list[str],
    high: torch.Tensor,
) -> dict[str, pd.DataFrame]:
    """One prompt's head tables at ``layer``: pattern/message words, attention, to position 0.

    ``spaces`` holds the vocabulary the ``pattern`` (this layer's reading space) and the
    ``message`` vectors (the writing space) are compared with.
    """
    x = adapter_for(model).input_norms_of(model, layer)[0](hidden[:, layer])
    vectors = head_vectors(model, layer, x)
    n_heads, n_pos = vectors.pattern.shape[:2]
    keys = {
        "layer": np.full(n_heads * n_pos, layer),
        "head": np.repeat(np.arange(n_heads), n_pos),
        "position": np.tile(np.arange(n_pos), n_heads),
    }
    words_of = []
    for kind, vecs in (("pattern", vectors.pattern), ("message", vectors.written)):
        found, cos = nearest_words(vecs.reshape(-1, vecs.shape[-1]), spaces[kind], settings.top_k)
        kinds = {**keys, "kind": np.full(len(found), kind, dtype=object)}
        words_of.append(match_table(kinds, found, cos, words, high, settings.bias_share))
    pattern = attention_pattern(model, layer, x)
    q, k = torch.tril_indices(n_pos, n_pos)
    attention = pd.DataFrame(
        {
            "layer": layer,
            "head": np.repeat(np.arange(n_heads), len(q)),
            "query": np.tile(q.numpy(), n_heads),
            "key": np.tile(k.numpy(), n_heads),
            "weight": pattern[:, q, k].reshape(-1).numpy().astype(np.float32),
        }
    )
    first = pd.DataFrame(
        {
            "layer": layer,
            "head": np.arange(n_heads),
            "attention": attention_to_first(pattern).numpy().astype(np.float32),
        }
    )
    return {
        "head_words": pd.concat(words_of, ignore_index=True),
        "attention": attention,
        "attention_first": first,
    }


def write_tables(tables: dict[str, pd.DataFrame], folder: str | Path, meta: dict) -> None:
    """Write every table as ``<name>.parquet`` and ``meta.json`` (last) into ``folder``."""
    folder = Path(folder)
    for name, frame in tables.items():
        write_parquet(frame, folder / artifacts.VOCAB_TABLE.format(table=name))
    write_json(meta, folder / artifacts.VOCAB_META)
