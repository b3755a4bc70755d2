"""Where each supported causal-LM architecture keeps its parts.

One table per family, so extraction, readouts and the vocabulary analysis share one answer to
"which module is the final norm / the list of blocks / the embedding?". Supported families are
the ``model_type`` values of ``transformers`` configs in :data:`SUPPORTED_FAMILIES`.

Attention and FFN weights are returned in one convention, ``y = W x + b`` with ``W`` shaped
``[out, in]``, whatever the family stores (GPT-2's ``Conv1D`` keeps ``[in, out]`` and fuses
q, k, v; GPT-NeoX fuses them interleaved per head; Llama has separate projections and may
share key/value heads across query heads, GQA).
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter

import torch
from torch import nn

SUPPORTED_FAMILIES = ("gpt2", "gpt_neox", "llama")

# Attribute of ``model.base_model`` holding each part, per family.
_PARTS: dict[str, dict[str, str]] = {
    "gpt2": {"blocks": "h", "final_norm": "ln_f", "embed": "wte"},
    "gpt_neox": {"blocks": "layers", "final_norm": "final_layer_norm", "embed": "embed_in"},
    "llama": {"blocks": "layers", "final_norm": "norm", "embed": "embed_tokens"},
}

# Attribute path inside one block of each part, per family.
_BLOCK_PARTS: dict[str, dict[str, str]] = {
    "gpt2": {
        "attention": "attn",
        "attention_out": "attn.c_proj",
        "attention_norm": "ln_1",
        "mlp": "mlp",
        "ffn_out": "mlp.c_proj",
        "ffn_norm": "ln_2",
    },
    "gpt_neox": {
        "attention": "attention",
        "attention_out": "attention.dense",
        "attention_norm": "input_layernorm",
        "mlp": "mlp",
        "ffn_out": "mlp.dense_4h_to_h",
        "ffn_norm": "post_attention_layernorm",
    },
    "llama": {
        "attention": "self_attn",
        "attention_out": "self_attn.o_proj",
        "attention_norm": "input_layernorm",
        "mlp": "mlp",
        "ffn_out": "mlp.down_proj",
        "ffn_norm": "post_attention_layernorm",
    },
}


def model_family(model: nn.Module) -> str:
    """Return the family name of a HF causal LM, or raise naming the architecture.

    Raises:
        NotImplementedError: the architecture is not one of :data:`SUPPORTED_FAMILIES`.
    """
    model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
    if model_type in SUPPORTED_FAMILIES:
        return model_type
    raise NotImplementedError(
        f"iterlens does not know where the final norm and unembedding of architecture "
        f"'{model_type}' ({type(model).__name__}) are; supported: {', '.join(SUPPORTED_FAMILIES)}"
    )


def _part(model: nn.Module, name: str) -> nn.Module:
    return getattr(model.base_model, _PARTS[model_family(model)][name])


def _block_part(model: nn.Module, layer: int, name: str) -> nn.Module:
    return attrgetter(_BLOCK_PARTS[model_family(model)][name])(blocks_of(model)[layer])


def blocks_of(model: nn.Module) -> nn.ModuleList:
    """The list of transformer blocks (their inputs are the residual streams h_0..h_{L-1})."""
    return _part(model, "blocks")


def final_norm_of(model: nn.Module) -> nn.Module:
    """The final norm (its input is the last residual stream h_L)."""
    return _part(model, "final_norm")


def input_embedding_of(model: nn.Module) -> nn.Embedding:
    """The input token embedding."""
    return _part(model, "embed")


def unembedding_of(model: nn.Module) -> nn.Linear:
    """The unembedding (tied to the input embedding in some models, not in others)."""
    return model.get_output_embeddings()


@dataclass
class AttentionWeights:
    """One layer's attention, per head: ``q = W_q x + b_q`` for the normed input ``x``.

    Shapes: ``q [H, hd, d]``, ``k``/``v`` ``[H_kv, hd, d]``, biases ``[heads, hd]``,
    ``o [H, d, hd]`` (head h's slice of the output projection) and ``o_bias [d]``.
    Scores are ``scale * q . k`` after rotary embeddings when ``rotary`` is true.
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
    stream. Biases are zero where the family has none.
    """

    w_in: torch.Tensor
    b_in: torch.Tensor
    w_out: torch.Tensor
    b_out: torch.Tensor
    w_up: torch.Tensor | None = None


def _bias(module: nn.Module, n: int) -> torch.Tensor:
    bias = getattr(module, "bias", None)
    return torch.zeros(n) if bias is None else bias.detach().float()


def embedding_matrix(model: nn.Module) -> torch.Tensor:
    """Input token embeddings ``[V, d]`` as float (what the first layer reads for each token)."""
    return input_embedding_of(model).weight.detach().float()


def input_norms_of(model: nn.Module, layer: int) -> tuple[nn.Module, nn.Module]:
    """The norms in front of layer ``layer``'s attention and its FFN."""
    return _block_part(model, layer, "attention_norm"), _block_part(model, layer, "ffn_norm")


def attention_output_module(model: nn.Module, layer: int) -> nn.Module:
    """The attention's output projection (its output is the layer's attention output)."""
    return _block_part(model, layer, "attention_out")


def ffn_output_module(model: nn.Module, layer: int) -> nn.Module:
    """The FFN's output projection: its input is every neuron's activation."""
    return _block_part(model, layer, "ffn_out")


def rotary_embedding_of(model: nn.Module) -> nn.Module | None:
    """The rotary embedding module (``cos, sin = rope(x, position_ids)``), or None."""
    return getattr(model.base_model, "rotary_emb", None)


@torch.no_grad()
def attention_weights(model: nn.Module, layer: int) -> AttentionWeights:
    """Per-head query, key, value and output weights of layer ``layer``."""
    family = model_family(model)
    attn = _block_part(model, layer, "attention")
    out = attention_output_module(model, layer)
    if family == "gpt2":
        w = attn.c_attn.weight.detach().float().T  # Conv1D stores [in, out]
        b = _bias(attn.c_attn, w.shape[0])
        d, heads = w.shape[1], attn.num_heads
        hd = d // heads
        (q, k, v), (bq, bk, bv) = w.split(d), b.split(d)
        o = out.weight.detach().float().T  # [d_out, H*hd]
        shape = (heads, hd)
        q, k, v = (m.reshape(*shape, d) for m in (q, k, v))
        bq, bk, bv = (x.reshape(shape) for x in (bq, bk, bv))
        rotary = False
    elif family == "gpt_neox":
        w = attn.query_key_value.weight.detach().float()  # [H * 3 * hd, d], per head q|k|v
        d = w.shape[1]
        hd = attn.head_size
        heads = d // hd
        w = w.reshape(heads, 3, hd, d)
        b = _bias(attn.query_key_value, heads * 3 * hd).reshape(heads, 3, hd)
        q, k, v = w.unbind(1)
        bq, bk, bv = b.unbind(1)
        o = out.weight.detach().float()
        rotary = True
    elif family == "llama":
        hd = attn.head_dim
        projections = (attn.q_proj, attn.k_proj, attn.v_proj)
        q, k, v = (p.weight.detach().float().reshape(-1, hd, p.in_features) for p in projections)
        bq, bk, bv = (_bias(p, p.out_features).reshape(-1, hd) for p in projections)
        o = out.weight.detach().float()
        rotary = True
    else:  # model_family raises first; kept for type checkers
        raise NotImplementedError(family)
    d_out = o.shape[0]
    o = o.reshape(d_out, q.shape[0], hd).permute(1, 0, 2).contiguous()
    return AttentionWeights(
        q=q.contiguous(),
        q_bias=bq.contiguous(),
        k=k.contiguous(),
        k_bias=bk.contiguous(),
        v=v.contiguous(),
        v_bias=bv.contiguous(),
        o=o,
        o_bias=_bias(out, d_out),
        scale=float(attn.scaling),
        rotary=rotary,
    )


@torch.no_grad()
def ffn_weights(model: nn.Module, layer: int) -> FFNWeights:
    """Each neuron's input and output weight vectors in layer ``layer``."""
    family = model_family(model)
    mlp = _block_part(model, layer, "mlp")
    out = ffn_output_module(model, layer)
    w_up = None
    if family == "gpt2":
        w_in = mlp.c_fc.weight.detach().float().T  # Conv1D: [d, n] -> [n, d]
        b_in = _bias(mlp.c_fc, w_in.shape[0])
        w_out = out.weight.detach().float()  # Conv1D: [n, d] is already one row a neuron
    elif family == "gpt_neox":
        w_in = mlp.dense_h_to_4h.weight.detach().float()
        b_in = _bias(mlp.dense_h_to_4h, w_in.shape[0])
        w_out = out.weight.detach().float().T
    else:
        w_in = mlp.gate_proj.weight.detach().float()
        b_in = _bias(mlp.gate_proj, w_in.shape[0])
        w_up = mlp.up_proj.weight.detach().float().contiguous()
        w_out = out.weight.detach().float().T
    return FFNWeights(
        w_in=w_in.contiguous(),
        b_in=b_in,
        w_out=w_out.contiguous(),
        b_out=_bias(out, w_out.shape[1]),
        w_up=w_up,
    )
