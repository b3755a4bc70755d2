"""Nearest vocabulary words to any vector in model space, and the high-bias filter.

A vector is compared with the vocabulary *as seen from where the vector lives*:

- a vector a layer **reads** (a head's pattern vector, an FFN neuron's input weights) lives
  in the space of that layer's normed input, so the vocabulary is the input embeddings
  (scaled as the model scales them, by sqrt(d) in Gemma) passed through that layer's input
  norm (:func:`reading_space`);
- a vector **written** to the residual stream (a head's message, a neuron's output weights,
  the residual stream itself) is read out by the final norm and the unembedding, so the
  vocabulary is the unembedding with the final norm's gain (``offset + w``) folded in,
  centred where the final norm is a LayerNorm (:func:`writing_space`): row ``t`` is the
  direction that most raises token ``t``'s logit. Untied models (Llama) use ``lm_head``
  here, not the embeddings.

Similarity is cosine. A token's *prediction bias* is its logit for the mean residual
stream; tokens whose bias is extreme (z-score over the vocabulary above a threshold) turn
up near many unrelated vectors, and a match list dominated by them is shown as
``(high bias)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from iterlens.models.families import adapter_for

HIGH_BIAS = "(high bias)"


@dataclass
class VocabSpace:
    """The vocabulary as unit vectors ``[V, d]`` in one space of the model.

    Attributes:
        name: ``"reading:<norm>"`` or ``"writing"``, for tables.
        vectors: unit rows, one a token.
        center: subtract each query's mean first (a LayerNorm only sees centred vectors).
    """

    name: str
    vectors: torch.Tensor
    center: bool = False


@torch.no_grad()
def reading_space(model: nn.Module, norm: nn.Module, name: str = "reading") -> VocabSpace:
    """The input embeddings as a layer sees them: ``norm(s * E)``, one row a token.

    ``s`` is the family's embedding scale, so layer 0's norm sees exactly its input.
    """
    dtype = next(norm.parameters(), torch.empty(0)).dtype
    rows = norm(adapter_for(model).embedding_matrix(model).to(dtype)).float()
    return VocabSpace(name, F.normalize(rows, dim=-1), center=False)


@torch.no_grad()
def writing_space(model: nn.Module) -> VocabSpace:
    """The unembedding seen through the final norm: row t is ``P(gamma * U_t)``.

    ``gamma`` is the norm's effective gain (``1 + w`` in Gemma, ``w`` elsewhere); ``P``
    centres (LayerNorm) or is the identity (RMSNorm). ``x . row_t`` is then, up to the
    norm's per-vector scale, the change in token t's logit when ``x`` is added to the
    residual stream.
    """
    adapter = adapter_for(model)
    norm = adapter.final_norm_of(model)
    rows = adapter.unembedding_of(model).weight.detach().float()
    gamma = adapter.norm_gain(norm)
    if gamma is not None:
        rows = rows * gamma
    center = adapter.norm_spec(norm).kind == "layernorm"
    if center:
        rows = rows - rows.mean(-1, keepdim=True)
    return VocabSpace("writing", F.normalize(rows, dim=-1), center=center)


BLOCK_FLOATS = 1 << 26
"""Similarities computed at once by :func:`nearest_words` (256 MB in float32)."""


@torch.no_grad()
def nearest_words(
    vectors: torch.Tensor, space: VocabSpace, k: int, chunk: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` vocabulary entries nearest to each vector by cosine similarity.

    Args:
        vectors: ``[..., d]`` vectors in the space ``space`` describes.
        space: the vocabulary in that space.
        k: matches a vector (at most the vocabulary size).
        chunk: vectors compared at once; default :data:`BLOCK_FLOATS` over the vocabulary
            size (256 vectors for 262k words), so memory does not grow with the count.

    Returns:
        ``(ids, cosines)``, both ``[..., k]``, best first.
    """
    d = space.vectors.shape[1]
    if vectors.shape[-1] != d:
        raise ValueError(f"vectors have width {vectors.shape[-1]}, the vocabulary {d}")
    k = min(k, space.vectors.shape[0])
    flat = vectors.reshape(-1, d).float()
    if space.center:
        flat = flat - flat.mean(-1, keepdim=True)
    flat = F.normalize(flat, dim=-1)
    chunk = chunk or max(1, BLOCK_FLOATS // space.vectors.shape[0])
    ids, cos = [], []
    for start in range(0, flat.shape[0], chunk):
        top = (flat[start : start + chunk] @ space.vectors.T).topk(k, dim=-1)
        ids.append(top.indices)
        cos.append(top.values)
    shape = (*vectors.shape[:-1], k)
    if not ids:
        return torch.zeros(shape, dtype=torch.long), torch.zeros(shape)
    return torch.cat(ids).reshape(shape), torch.cat(cos).reshape(shape)


@torch.no_grad()
def token_bias(model: nn.Module, mean_residual: torch.Tensor) -> torch.Tensor:
    """Each token's logit for the mean residual stream (final norm + unembedding), ``[V]``."""
    adapter = adapter_for(model)
    norm = adapter.final_norm_of(model)
    dtype = next(norm.parameters(), torch.empty(0)).dtype
    return adapter.unembedding_of(model)(norm(mean_residual.to(dtype)[None]))[0].float()


def high_bias_mask(bias: torch.Tensor, threshold: float) -> torch.Tensor:
    """Tokens whose bias z-score (over the vocabulary) exceeds ``threshold``, ``[V]`` bool."""
    z = (bias - bias.mean()) / bias.std().clamp_min(1e-12)
    return z > threshold


def dominated(ids: torch.Tensor, mask: torch.Tensor, share: float) -> torch.Tensor:
    """True for match lists ``ids [..., k]`` whose high-bias share exceeds ``share``."""
    return mask[ids].float().mean(-1) > share


def token_string(tokenizer, token_id: int, n_known: int | None = None) -> str:
    """Readable text of one token id.

    A token that is only part of a UTF-8 character (byte-level BPE) shows as its raw
    vocabulary entry in angle brackets; an id past the tokenizer's own (``n_known``, default
    ``len(tokenizer)``) shows as ``<id>``.
    """
    if token_id >= (len(tokenizer) if n_known is None else n_known):
        return f"<{token_id}>"
    text = tokenizer.decode([token_id])
    if "\ufffd" in text:
        text = f"<{tokenizer.convert_ids_to_tokens(token_id)}>"
    return text


def token_strings(tokenizer, vocab_size: int) -> list[str]:
    """Readable text of every token id (see :func:`token_string`)."""
    n_known = len(tokenizer)
    return [token_string(tokenizer, i, n_known) for i in range(vocab_size)]


def match_table(
    keys: dict[str, np.ndarray],
    ids: torch.Tensor,
    cos: torch.Tensor,
    words: list[str],
    high_bias: torch.Tensor,
    share: float = 0.5,
) -> pd.DataFrame:
    """Long table of match lists: one row per (list, rank).

    Args:
        keys: columns identifying each list, each of length ``n`` (the lists).
        ids: ``[n, k]`` token ids; ``cos``: ``[n, k]`` their cosines.
        words: token strings; ``high_bias``: ``[V]`` mask of high-bias tokens.
        share: a list whose high-bias share exceeds this is flagged ``list_high_bias``
            (shown as ``(high bias)``; its words stay in the table).
    """
    n, k = ids.shape
    flat = ids.reshape(-1).numpy()
    table = {name: np.repeat(np.asarray(col), k) for name, col in keys.items()}
    table.update(
        {
            "rank": np.tile(np.arange(k), n),
            "token_id": flat,
            "token": np.asarray(words, dtype=object)[flat],
            "cosine": cos.reshape(-1).numpy().astype(np.float32),
            "high_bias": high_bias[ids.reshape(-1)].numpy(),
            "list_high_bias": np.repeat(dominated(ids, high_bias, share).numpy(), k),
        }
    )
    return pd.DataFrame(table)
