"""Attention heads in vocabulary space: pattern and message vectors, attention patterns.

For head h of a layer with normed input ``x_j`` at each position j:

- the **pattern vector** of token j, ``p_j = scale * W_q^T k_j``, is what a later query
  must look like to attend to j: the attention score of query i on key j is
  ``p_j . x_i + c_j`` (``c_j = scale * b_q . k_j``). Under rotary embeddings the key is
  first turned into query i's frame, so the pattern depends on the query's position;
  tables use the last position (the one predicting the next token);
- the **message vector** ``m_j = W_o^h v_j`` is what j writes into the residual stream if
  attended: the attention output at i is ``sum_h sum_j a^h_ij m^h_j + b_o``.

What a family's adapter reports beyond that (:class:`AttentionWeights`) is modelled exactly:

- per-head query/key RMSNorms (Gemma 3): keys are normed before the rotary embedding; the
  query's norm divides every score of query i by one positive number, so the score is
  ``query_scale_i * (p_j . x_i + c_j)``, with ``p_j`` carrying the query norm's gain;
- a sliding window: query i sees keys j with ``i - j < window`` only;
- a norm on the attention output (Gemma 3): the residual stream receives
  ``g * (sum of messages) / rms``, so each message's written direction is ``g * m_j``
  (:attr:`HeadVectors.written`).

Everything is computed from the weights (:mod:`iterlens.models.families`); tests check it
against the model's own forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from iterlens.models.families import AttentionWeights, adapter_for


@dataclass
class HeadVectors:
    """One layer's per-head vectors for one prompt.

    Attributes:
        pattern: ``[H, T, d]`` pattern vector of each key token (for ``query_position``).
        pattern_bias: ``[H, T]`` the score part that does not depend on the query.
        message: ``[H, T, d]`` message vector of each token.
        query_position: the query position the patterns are for.
        query_scale: ``[H]`` the score of key j is ``query_scale * (pattern_j . x + bias_j)``
            (ones unless the family norms its queries).
        out_gain: ``[d]`` gain of the norm on the attention output, or None.
    """

    pattern: torch.Tensor
    pattern_bias: torch.Tensor
    message: torch.Tensor
    query_position: int
    query_scale: torch.Tensor
    out_gain: torch.Tensor | None = None

    @property
    def written(self) -> torch.Tensor:
        """Messages as the residual stream receives them (up to a positive scale per query)."""
        return self.message if self.out_gain is None else self.message * self.out_gain


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


def _head_norm(x: torch.Tensor, gain: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm over each head's last dimension, times ``gain``."""
    return gain * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _keys_values(w: AttentionWeights, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per query head keys and values ``[H, T, hd]`` (unrotated; keys normed if the family does)."""
    k = torch.einsum("ked,td->kte", w.k, x) + w.k_bias[:, None]
    if w.k_norm is not None:
        k = _head_norm(k, w.k_norm, w.qk_norm_eps)
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
            it matters only under rotary embeddings and query norms.
    """
    x = x.float()
    n = x.shape[0]
    query_position = n - 1 if query_position is None else query_position
    if not 0 <= query_position < n:
        raise ValueError(f"query position {query_position} outside 0..{n - 1}")
    adapter = adapter_for(model)
    w = adapter.attention_weights(model, layer)
    k, v = _keys_values(w, x)
    if w.rotary:
        cos, sin = adapter.rotary(model, layer, x)
        k = _rotate(k, cos, sin)
        k = _rotate(k, cos[query_position], sin[query_position], inverse=True)
    query_scale = torch.ones(w.n_heads)
    if w.q_norm is not None:  # q = g * q_raw / rms(q_raw): fold g into the key side
        k = k * w.q_norm
        q_raw = torch.einsum("hed,d->he", w.q, x[query_position]) + w.q_bias
        query_scale = torch.rsqrt(q_raw.pow(2).mean(-1) + w.qk_norm_eps)
    pattern = w.scale * torch.einsum("hed,hte->htd", w.q, k)
    pattern_bias = w.scale * torch.einsum("he,hte->ht", w.q_bias, k)
    message = torch.einsum("hde,hte->htd", w.o, v)
    return HeadVectors(pattern, pattern_bias, message, query_position, query_scale, w.out_gain)


@torch.no_grad()
def attention_pattern(model: nn.Module, layer: int, x: torch.Tensor) -> torch.Tensor:
    """Causal attention probabilities ``[H, T, T]`` (query, key) computed from the weights.

    Args:
        x: ``[T, d]`` the layer's attention input after its input norm.
    """
    x = x.float()
    adapter = adapter_for(model)
    w = adapter.attention_weights(model, layer)
    q = torch.einsum("hed,td->hte", w.q, x) + w.q_bias[:, None]
    if w.q_norm is not None:
        q = _head_norm(q, w.q_norm, w.qk_norm_eps)
    k, _ = _keys_values(w, x)
    if w.rotary:
        cos, sin = adapter.rotary(model, layer, x)
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
    scores = w.scale * q @ k.transpose(1, 2)
    n = x.shape[0]
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    if w.sliding_window is not None:  # key j visible from query i if i - j < window
        causal &= torch.ones(n, n, dtype=torch.bool).triu(1 - w.sliding_window)
    return scores.masked_fill(~causal, float("-inf")).softmax(-1)


def attention_to_first(pattern: torch.Tensor) -> torch.Tensor:
    """Each head's mean attention to position 0 over queries 1..T-1, ``[H]`` (NaN if T=1)."""
    if pattern.shape[1] < 2:
        return torch.full(pattern.shape[:1], float("nan"))
    return pattern[:, 1:, 0].mean(-1)
