"""Attention heads in vocabulary space: pattern and message vectors, attention patterns.

For head h of a layer with normed input ``x_j`` at each position j:

- the **pattern vector** of token j, ``p_j = scale * W_q^T k_j``, is what a later query
  must look like to attend to j: the attention score of query i on key j is
  ``p_j . x_i + c_j`` (``c_j = scale * b_q . k_j``). Under rotary embeddings the key is
  first turned into query i's frame, so the pattern depends on the query's position;
  tables use the last position (the one predicting the next token);
- the **message vector** ``m_j = W_o^h v_j`` is what j writes into the residual stream if
  attended: the attention output at i is ``sum_h sum_j a^h_ij m^h_j + b_o``.

Everything is computed from the weights (:mod:`iterlens.models.surgery`); tests check it
against the model's own forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from iterlens.models.surgery import AttentionWeights, attention_weights, rotary_embedding_of


@dataclass
class HeadVectors:
    """One layer's per-head vectors for one prompt.

    Attributes:
        pattern: ``[H, T, d]`` pattern vector of each key token (for ``query_position``).
        pattern_bias: ``[H, T]`` the score part that does not depend on the query.
        message: ``[H, T, d]`` message vector of each token.
        query_position: the query position the patterns are for.
    """

    pattern: torch.Tensor
    pattern_bias: torch.Tensor
    message: torch.Tensor
    query_position: int


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rotate(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, inverse: bool = False
) -> torch.Tensor:
    """Apply (or undo) the rotary embedding on the first ``cos.shape[-1]`` dims of ``x``."""
    rot = cos.shape[-1]
    xr, xp = x[..., :rot], x[..., rot:]
    if inverse:
        out = (xr * cos - _rotate_half(xr) * sin) / (cos * cos + sin * sin)
    else:
        out = xr * cos + _rotate_half(xr) * sin
    return torch.cat([out, xp], dim=-1)


def _rope(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos, sin`` ``[T, rot]`` of the model's rotary embedding at positions 0..T-1."""
    rope = rotary_embedding_of(model)
    if rope is None:
        raise NotImplementedError(
            f"{type(model).__name__} uses rotary embeddings but has no rotary_emb module"
        )
    positions = torch.arange(x.shape[0])[None]
    cos, sin = rope(x[None], positions)
    return cos[0].float(), sin[0].float()


def _keys_values(w: AttentionWeights, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per query head keys and values ``[H, T, hd]`` (unrotated)."""
    k = torch.einsum("ked,td->kte", w.k, x) + w.k_bias[:, None]
    v = torch.einsum("ked,td->kte", w.v, x) + w.v_bias[:, None]
    kv = torch.tensor([w.kv_head(h) for h in range(w.n_heads)])
    return k[kv], v[kv]


@torch.no_grad()
def head_vectors(
    model: nn.Module, layer: int, x: torch.Tensor, query_position: int | None = None
) -> HeadVectors:
    """Pattern and message vectors of every head of ``layer``.

    Args:
        x: ``[T, d]`` the layer's attention input after its input norm.
        query_position: position of the query the patterns are for (default: the last);
            it matters only under rotary embeddings.
    """
    x = x.float()
    n = x.shape[0]
    query_position = n - 1 if query_position is None else query_position
    if not 0 <= query_position < n:
        raise ValueError(f"query position {query_position} outside 0..{n - 1}")
    w = attention_weights(model, layer)
    k, v = _keys_values(w, x)
    if w.rotary:
        cos, sin = _rope(model, x)
        k = _rotate(k, cos, sin)
        k = _rotate(k, cos[query_position], sin[query_position], inverse=True)
    pattern = w.scale * torch.einsum("hed,hte->htd", w.q, k)
    pattern_bias = w.scale * torch.einsum("he,hte->ht", w.q_bias, k)
    message = torch.einsum("hde,hte->htd", w.o, v)
    return HeadVectors(pattern, pattern_bias, message, query_position)


@torch.no_grad()
def attention_pattern(model: nn.Module, layer: int, x: torch.Tensor) -> torch.Tensor:
    """Causal attention probabilities ``[H, T, T]`` (query, key) computed from the weights."""
    x = x.float()
    w = attention_weights(model, layer)
    q = torch.einsum("hed,td->hte", w.q, x) + w.q_bias[:, None]
    k, _ = _keys_values(w, x)
    if w.rotary:
        cos, sin = _rope(model, x)
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
    scores = w.scale * q @ k.transpose(1, 2)
    n = x.shape[0]
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    return scores.masked_fill(~causal, float("-inf")).softmax(-1)


def attention_to_first(pattern: torch.Tensor) -> torch.Tensor:
    """Each head's mean attention to position 0 over queries 1..T-1, ``[H]`` (NaN if T=1)."""
    if pattern.shape[1] < 2:
        return torch.full(pattern.shape[:1], float("nan"))
    return pattern[:, 1:, 0].mean(-1)
