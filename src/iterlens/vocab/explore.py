"""The interactive lens page of one prompt (``iterlens explore``): what it shows, as tables.

For every lens (logit always; tuned and shared where a lens folder gives them), every layer
``0..L`` and every position of the prompt, :func:`explore_prompt` decodes the residual stream
and keeps

- the **cells** table, one row a (lens, layer, position): the top-1 token and its
  probability, the entropy (bits), KL(p_final || p_lens) in bits (p_final: the model's readout
  of the last layer), and the rank and probability of the actual next token;
- the **tokens** table, one row a (lens, layer, position, token): the probability of every
  token of the position's *token set* at every layer under every lens. A position's set is
  the union of the top-k of its cells (every lens, every layer) and its actual next token, so
  a cell's top-k (``topk >= 0``) and the probability at every layer of any token the page
  lists at that position (what a click pins) are both rows of this table. Tokens that never
  make a top-k at a position are not stored: the page cannot show them, and storing the whole
  vocabulary (49,152 or 262,144 words) at every cell would not fit in a page.

:func:`iterlens.vocab.explore_run.run_explore` loads a model and its lenses and writes the
page (:mod:`iterlens.vocab.explore_page`) and these two tables beside it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from iterlens.probing.extract import ResidualRecorder
from iterlens.probing.metrics import FinalDist, entropy_bits, kl_bits, log_probs, rank_of
from iterlens.vocab.nearest import token_string

log = logging.getLogger(__name__)

EXPLORE_LENSES = ("logit", "tuned", "shared")
"""The lenses a page can show, in selector order (a free probe is not a lens of the readout)."""


@dataclass
class Exploration:
    """What the page of one prompt shows.

    Attributes:
        prompt: the prompt's text.
        input_ids: its token ids, ``[T]``.
        words: readable text of every token id either table names.
        lenses: the lenses, in selector order.
        n_layers: L (layers 0..L are shown; L is the last residual stream).
        top_k: tokens listed per cell.
        cells: one row a (lens, layer, position) (see the module docstring).
        tokens: one row a (lens, layer, position, token of the position's set).
    """

    prompt: str
    input_ids: np.ndarray
    words: dict[int, str]
    lenses: list[str]
    n_layers: int
    top_k: int
    cells: pd.DataFrame
    tokens: pd.DataFrame


def prompt_ids(tokenizer, prompt: str, max_positions: int | None = None) -> torch.Tensor:
    """The token ids of ``prompt``, as the model reads it (its tokenizer's special tokens too).

    Raises:
        ValueError: the prompt is empty (or only white space), has no tokens, or is longer
            than the model's context.
    """
    if not prompt or not prompt.strip():
        raise ValueError("the prompt is empty: give the text to read with --prompt")
    ids = torch.tensor(tokenizer(prompt)["input_ids"], dtype=torch.long)
    if len(ids) == 0:
        raise ValueError(f"prompt {prompt!r} has no tokens")
    if max_positions and len(ids) > max_positions:
        raise ValueError(
            f"prompt {prompt[:40]!r}... is {len(ids)} tokens; the model reads at most "
            f"{max_positions}"
        )
    return ids


def max_positions_of(model: nn.Module) -> int | None:
    """The longest input the model's config allows (None where it names no limit)."""
    config = model.config
    for key in ("max_position_embeddings", "n_positions"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def translated(lens: nn.Module, h: torch.Tensor, layer: int) -> torch.Tensor:
    """``h`` as the lens hands it to the readout: translated (tuned, shared) or as it is (logit).

    Every lens of the page is ``readout(translated(h))``: ``tuned_lens.TunedLens`` and
    :class:`~iterlens.probing.lenses.SharedLens` through ``transform_hidden``.
    """
    transform = getattr(lens, "transform_hidden", None)
    return h if transform is None else transform(h, layer)


@torch.no_grad()
def explore_prompt(
    model: nn.Module,
    tokenizer,
    prompt: str,
    lenses: dict[str, nn.Module],
    top_k: int = 10,
) -> Exploration:
    """Decode every layer of ``model`` at every position of ``prompt`` under every lens.

    Two passes over (lens, layer): the first decodes the whole vocabulary once a cell and
    keeps its top-k, statistics, normed readout input and log-normaliser; the second computes
    the logits of each position's token set only (its rows of the unembedding), so neither
    time nor memory pays twice for a large vocabulary.

    Args:
        lenses: name -> lens (``lens(h, layer)`` -> logits); must include ``logit``.
        top_k: tokens listed per cell (at most the vocabulary).

    Raises:
        ValueError: an empty prompt, or ``top_k`` below 1.
        RuntimeError: the readout does not reproduce the model's own logits.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, not {top_k}")
    device = next(model.parameters()).device
    ids = prompt_ids(tokenizer, prompt, max_positions_of(model))
    with ResidualRecorder(model) as rec:
        hidden, logits = rec.run(ids[None].to(device))
    hidden, logits = hidden[0].float(), logits[0].float()  # [T, L+1, d], [T, V]
    n_pos, n_layers = hidden.shape[0], hidden.shape[1] - 1
    lenses["logit"].readout.check_reproduces(hidden[:, n_layers], logits)
    final = FinalDist.of(lenses["logit"](hidden[:, n_layers], n_layers))
    vocab = logits.shape[-1]
    k = min(top_k, vocab)
    names = [name for name in EXPLORE_LENSES if name in lenses]
    next_ids = torch.full((n_pos,), -1, dtype=torch.long)
    next_ids[:-1] = ids[1:]
    has_next = (next_ids >= 0).numpy()
    nxt = next_ids.clamp_min(0).to(device)
    readout = lenses["logit"].readout  # the one readout every lens decodes with
    normed: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}

    # pass 1: the statistics and the top-k of every cell
    stats, topk = [], {}
    for name in names:
        for layer in range(n_layers + 1):
            x = translated(lenses[name], hidden[:, layer], layer)
            z = readout(x).float()  # = lenses[name](h, layer)
            logp = log_probs(z)
            normed[name, layer] = (readout.final_norm(x).float(), z[:, :1] - logp[:, :1])
            topk[name, layer] = logp.topk(k, dim=-1).indices.cpu()  # [T, k]
            rank = rank_of(z, nxt).cpu().numpy()
            stats.append(
                {
                    "entropy_bits": entropy_bits(z).clamp_min(0).cpu().numpy(),
                    "kl_bits": kl_bits(final, z).clamp_min(0).cpu().numpy(),
                    "next_rank": np.where(has_next, rank, -1),
                }
            )
    # each position's token set: every token in one of its top-k lists, and its next token
    sets, next_row, offset = [], [], 0
    for t in range(n_pos):
        chosen = torch.cat([top[t] for top in topk.values()]).unique().tolist()
        if has_next[t] and int(next_ids[t]) not in chosen:
            chosen.append(int(next_ids[t]))
        next_row.append(offset + chosen.index(int(next_ids[t])) if has_next[t] else 0)
        offset += len(chosen)
        sets.append(torch.tensor(chosen, dtype=torch.long))
    flat_pos = torch.cat([torch.full((len(s),), t) for t, s in enumerate(sets)])
    flat_ids = torch.cat(sets)
    rows = readout.unembedding.weight[flat_ids.to(device)].float()  # [n, d]
    bias = readout.unembedding.bias
    bias = bias[flat_ids.to(device)].float() if bias is not None else 0.0
    at = flat_pos.to(device)
    # pass 2: the probability of every token of each position's set, at every cell
    parts, cells, index = [], [], 0
    for name in names:
        for layer in range(n_layers + 1):
            x, lse = normed.pop((name, layer))
            prob = (torch.linalg.vecdot(x[at], rows) + bias - lse[at, 0]).exp().cpu()
            in_top = topk[name, layer][flat_pos] == flat_ids[:, None]  # [n, k]
            slot = torch.where(in_top.any(-1), in_top.float().argmax(-1), -1)
            parts.append(
                pd.DataFrame(
                    {
                        "lens": name,
                        "layer": layer,
                        "position": flat_pos.numpy(),
                        "token_id": flat_ids.numpy(),
                        "prob": prob.numpy().astype(np.float32),
                        "topk": slot.numpy().astype(np.int16),
                    }
                )
            )
            top1 = topk[name, layer][:, 0]
            top1_prob = prob[(slot == 0).nonzero()[:, 0]]  # in position order
            cells.append(
                {
                    "lens": name,
                    "layer": layer,
                    "position": np.arange(n_pos),
                    "top1_id": top1.numpy(),
                    "top1_prob": top1_prob.numpy().astype(np.float32),
                    **stats[index],
                    "next_prob": np.where(has_next, prob[next_row].numpy(), np.nan),
                }
            )
            index += 1
    tokens = pd.concat(parts, ignore_index=True)
    cells = pd.concat([pd.DataFrame(c) for c in cells], ignore_index=True)
    known = len(tokenizer)
    used = set(tokens["token_id"].tolist()) | set(ids.tolist())
    words = {i: token_string(tokenizer, i, known) for i in sorted(used)}
    inputs = ids.numpy()
    at = cells["position"].to_numpy()
    cells.insert(3, "input_id", inputs[at])
    cells.insert(4, "input", [words[i] for i in inputs[at]])
    cells.insert(5, "next_id", next_ids.numpy()[at])
    cells.insert(6, "next", [words.get(i, "") for i in next_ids.numpy()[at]])
    cells.insert(8, "top1", [words[i] for i in cells["top1_id"]])
    tokens.insert(4, "token", [words[i] for i in tokens["token_id"]])
    for column in ("top1_prob", "entropy_bits", "kl_bits", "next_prob"):
        cells[column] = cells[column].astype(np.float32)
    return Exploration(
        prompt=prompt,
        input_ids=inputs,
        words=words,
        lenses=names,
        n_layers=n_layers,
        top_k=k,
        cells=cells,
        tokens=tokens,
    )
