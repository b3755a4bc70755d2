"""The adapter base: where one architecture family keeps its parts, and how it computes.

An :class:`Adapter` answers, for extraction, readouts and the vocabulary analysis alike:
which module is the list of blocks, the final norm, the input embedding; inside a block,
which is the attention-input norm, the FFN-input norm, the attention and its output
projection, the MLP and its output projection. It describes every norm (:class:`NormSpec`:
kind, eps, weight offset) and the embedding scale, and returns attention and FFN weights in
one convention, ``y = W x + b`` with ``W`` shaped ``[out, in]``, whatever the family stores.

A family sets the class tables (:attr:`Adapter.parts`, :attr:`Adapter.block_parts`, the
norm description) and implements :meth:`~Adapter.attention_weights`,
:meth:`~Adapter.ffn_weights` and :meth:`~Adapter.tiny_config`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import ClassVar

import torch
from torch import nn


@dataclass(frozen=True)
class NormSpec:
    """How a norm computes: ``(offset + w) * n(h) (+ b)``.

    Attributes:
        kind: ``"layernorm"`` (``n`` centres, then divides by the std) or ``"rmsnorm"``
            (``n`` divides by the root mean square).
        eps: added to the variance (or mean square) under the square root.
        offset: 0, or 1 where the stored weight is the gain minus one (Gemma).
    """

    kind: str
    eps: float
    offset: float = 0.0


@dataclass
class AttentionWeights:
    """One layer's attention, per head: ``q = W_q x + b_q`` for the normed input ``x``.

    Shapes: ``q [H, hd, d]``, ``k``/``v`` ``[H_kv, hd, d]``, biases ``[heads, hd]``,
    ``o [H, d, hd]`` (head h's slice of the output projection) and ``o_bias [d]``.
    Scores are ``scale * q . k`` after rotary embeddings when ``rotary`` is true.

    Where a family does more, the fields say so (None: nothing more):
    ``q_norm`` / ``k_norm`` ``[hd]`` are the gains of an RMSNorm (eps ``qk_norm_eps``)
    applied to every head's query / key before the rotary embedding, so queries and keys
    are not linear in ``x`` (Gemma 3); ``sliding_window`` lets query i see keys j with
    ``i - j < sliding_window`` only; ``out_gain [d]`` is the gain of an RMSNorm applied to
    the attention output before it joins the residual stream.
    """

    q: torch.Tensor
    q_bias: torch.Tensor
    k: torch.Tensor
    k_bias: torch.Tensor
    v: torch.Tensor
    v_bias: torch.Tensor
    o: torch.Tensor
    o_bias: torch.Tensor
    scale: float
    rotary: bool
    q_norm: torch.Tensor | None = None
    k_norm: torch.Tensor | None = None
    qk_norm_eps: float = 0.0
    sliding_window: int | None = None
    out_gain: torch.Tensor | None = None

    @property
    def n_heads(self) -> int:
        """Number of query heads."""
        return self.q.shape[0]

    @property
    def n_kv_heads(self) -> int:
        """Number of key/value heads (fewer than query heads under GQA)."""
        return self.k.shape[0]

    def kv_head(self, head: int) -> int:
        """The key/value head that query head ``head`` reads."""
        return head // (self.n_heads // self.n_kv_heads)


@dataclass
class FFNWeights:
    """One layer's feed-forward network, per neuron.

    ``w_in [n, d]`` is what each neuron reads (the gate projection of a gated FFN, whose
    second input ``w_up`` is kept apart), ``w_out [n, d]`` what it writes to the residual
    stream. Biases are zero where the family has none. ``out_gain [d]``, where not None,
    is the gain of an RMSNorm between the FFN and the residual stream (Gemma 3).
    """

    w_in: torch.Tensor
    b_in: torch.Tensor
    w_out: torch.Tensor
    b_out: torch.Tensor
    w_up: torch.Tensor | None = None
    out_gain: torch.Tensor | None = None

    @property
    def written(self) -> torch.Tensor:
        """Each neuron's output direction as the residual stream receives it, ``[n, d]``.

        ``w_out``, times ``out_gain`` under an output norm (exact up to the norm's positive
        per-position scale, which every neuron shares).
        """
        return self.w_out if self.out_gain is None else self.w_out * self.out_gain


def bias_of(module: nn.Module, n: int) -> torch.Tensor:
    """A module's bias as float, or zeros ``[n]`` where it has none."""
    bias = getattr(module, "bias", None)
    return torch.zeros(n) if bias is None else bias.detach().float()


def per_head(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    biases: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    o: torch.Tensor,
    out: nn.Module,
    scale: float,
    rotary: bool,
) -> AttentionWeights:
    """:class:`AttentionWeights` from per-head ``q, k, v`` and the output ``o [d, H*hd]``."""
    d_out, hd = o.shape[0], q.shape[1]
    o = o.reshape(d_out, q.shape[0], hd).permute(1, 0, 2).contiguous()
    bq, bk, bv = biases
    return AttentionWeights(
        q=q.contiguous(),
        q_bias=bq.contiguous(),
        k=k.contiguous(),
        k_bias=bk.contiguous(),
        v=v.contiguous(),
        v_bias=bv.contiguous(),
        o=o,
        o_bias=bias_of(out, d_out),
        scale=scale,
        rotary=rotary,
    )


class Adapter:
    """Where one architecture family keeps its parts; one instance a family.

    Attributes:
        name: the ``config.model_type`` the adapter serves.
        parts: attribute of ``model.base_model`` holding ``blocks``, ``final_norm``,
            ``embed``, and ``positions`` where positions are learned embeddings added to h_0.
        block_parts: attribute path inside a block of ``attention``, ``attention_out``,
            ``attention_norm``, ``mlp``, ``ffn_out``, ``ffn_norm``, ``ffn_act``, and
            optionally ``attention_out_norm`` / ``ffn_out_norm`` (norms applied to the
            attention / FFN output before the residual sum).
        norm_kind: ``"layernorm"`` or ``"rmsnorm"``, for every norm of the model.
        norm_offset: 0, or 1 where norms compute ``(1 + w) * n(h)``.
        eps_attr: the norm modules' attribute holding eps.
    """

    name: ClassVar[str] = ""
    parts: ClassVar[dict[str, str]] = {}
    block_parts: ClassVar[dict[str, str]] = {}
    norm_kind: ClassVar[str] = "layernorm"
    norm_offset: ClassVar[float] = 0.0
    eps_attr: ClassVar[str] = "eps"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # -- where the parts live ------------------------------------------------------------

    def _part(self, model: nn.Module, name: str) -> nn.Module:
        return getattr(model.base_model, self.parts[name])

    def _block_part(self, model: nn.Module, layer: int, name: str) -> nn.Module:
        return attrgetter(self.block_parts[name])(self.blocks_of(model)[layer])

    def blocks_of(self, model: nn.Module) -> nn.ModuleList:
        """The list of transformer blocks (their inputs are the residual streams h_0..h_{L-1})."""
        return self._part(model, "blocks")

    def final_norm_of(self, model: nn.Module) -> nn.Module:
        """The final norm (its input is the last residual stream h_L)."""
        return self._part(model, "final_norm")

    def input_embedding_of(self, model: nn.Module) -> nn.Embedding:
        """The input token embedding module."""
        return self._part(model, "embed")

    def position_embedding_of(self, model: nn.Module) -> nn.Embedding | None:
        """The learned position embedding added to h_0 (None: positions are rotary)."""
        return self._part(model, "positions") if "positions" in self.parts else None

    def unembedding_of(self, model: nn.Module) -> nn.Linear:
        """The unembedding (tied to the input embedding in some models, not in others)."""
        return model.get_output_embeddings()

    def input_norms_of(self, model: nn.Module, layer: int) -> tuple[nn.Module, nn.Module]:
        """The norms whose outputs layer ``layer``'s attention and FFN read."""
        return (
            self._block_part(model, layer, "attention_norm"),
            self._block_part(model, layer, "ffn_norm"),
        )

    def output_norms_of(
        self, model: nn.Module, layer: int
    ) -> tuple[nn.Module | None, nn.Module | None]:
        """The norms applied to the attention and FFN outputs before the residual sum."""
        attn, ffn = (
            self._block_part(model, layer, name) if name in self.block_parts else None
            for name in ("attention_out_norm", "ffn_out_norm")
        )
        return attn, ffn

    def attention_module(self, model: nn.Module, layer: int) -> nn.Module:
        """The attention module of layer ``layer``."""
        return self._block_part(model, layer, "attention")

    def attention_output_module(self, model: nn.Module, layer: int) -> nn.Module:
        """The attention's output projection (its output is the heads' summed messages)."""
        return self._block_part(model, layer, "attention_out")

    def mlp_module(self, model: nn.Module, layer: int) -> nn.Module:
        """The FFN module of layer ``layer`` (its input is the FFN-input norm's output)."""
        return self._block_part(model, layer, "mlp")

    def ffn_output_module(self, model: nn.Module, layer: int) -> nn.Module:
        """The FFN's output projection: its input is every neuron's activation."""
        return self._block_part(model, layer, "ffn_out")

    def ffn_activation(self, model: nn.Module, layer: int) -> Callable:
        """The FFN's nonlinearity (applied to ``w_in x + b_in``)."""
        return self._block_part(model, layer, "ffn_act")

    # -- how it computes -----------------------------------------------------------------

    def norm_spec(self, norm: nn.Module) -> NormSpec:
        """The description of one of the family's norm modules."""
        return NormSpec(self.norm_kind, float(getattr(norm, self.eps_attr)), self.norm_offset)

    def norm_gain(self, norm: nn.Module) -> torch.Tensor | None:
        """A norm's effective elementwise gain ``offset + w`` as float (None: no weight)."""
        weight = getattr(norm, "weight", None)
        if weight is None:
            return None
        gain = weight.detach().float()
        return gain + self.norm_offset if self.norm_offset else gain

    def embed_scale(self, model: nn.Module) -> float:
        """Factor the model multiplies its input embeddings by (h_0 = scale * E[token])."""
        return 1.0

    def embedding_matrix(self, model: nn.Module) -> torch.Tensor:
        """Input token embeddings ``[V, d]`` as float, scaled: what the first layer reads."""
        rows = self.input_embedding_of(model).weight.detach().float()
        scale = self.embed_scale(model)
        return rows if scale == 1.0 else rows * scale

    def logit_softcap(self, model: nn.Module) -> float | None:
        """The cap of ``cap * tanh(logits / cap)`` applied to the final logits, or None."""
        return None

    def rotary(
        self, model: nn.Module, layer: int, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``cos, sin`` ``[T, rot]`` of layer ``layer``'s rotary embedding at positions 0..T-1.

        Args:
            x: ``[T, d]`` the layer's input (only its length, dtype and device matter).

        Raises:
            NotImplementedError: the model has no rotary embedding module.
        """
        rope = getattr(model.base_model, "rotary_emb", None)
        if rope is None:
            raise NotImplementedError(f"{type(model).__name__} has no rotary_emb module")
        cos, sin = rope(x[None], torch.arange(x.shape[0])[None])
        return cos[0].float(), sin[0].float()

    def attention_weights(self, model: nn.Module, layer: int) -> AttentionWeights:
        """Per-head query, key, value and output weights of layer ``layer``."""
        raise NotImplementedError(f"{self.name}: attention_weights")

    def ffn_weights(self, model: nn.Module, layer: int) -> FFNWeights:
        """Each neuron's input and output weight vectors in layer ``layer``."""
        raise NotImplementedError(f"{self.name}: ffn_weights")

    # -- tests ---------------------------------------------------------------------------

    def tiny_config(self):
        """A tiny ``transformers`` config of this family (for tests; no download)."""
        raise NotImplementedError(f"{self.name}: tiny_config")

    def tiny_model(self, seed: int = 0) -> nn.Module:
        """A tiny random float32 causal LM built from :meth:`tiny_config`, in eval mode."""
        from transformers import AutoModelForCausalLM

        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(self.tiny_config(), dtype=torch.float32)
        return model.eval()
