"""Llama (SmolLM2, TinyLlama): RMSNorm, rotary embeddings, separate q/k/v, GQA, gated FFN."""

from __future__ import annotations

import torch
from torch import nn

from iterlens.models.families import register
from iterlens.models.families.base import Adapter, AttentionWeights, FFNWeights, bias_of, per_head


@register
class Llama(Adapter):
    """Llama (``LlamaForCausalLM``); key/value heads may be shared by query heads (GQA)."""

    name = "llama"
    parts = {"blocks": "layers", "final_norm": "norm", "embed": "embed_tokens"}
    block_parts = {
        "attention": "self_attn",
        "attention_out": "self_attn.o_proj",
        "attention_norm": "input_layernorm",
        "mlp": "mlp",
        "ffn_out": "mlp.down_proj",
        "ffn_norm": "post_attention_layernorm",
        "ffn_act": "mlp.act_fn",
    }
    norm_kind = "rmsnorm"
    eps_attr = "variance_epsilon"

    @torch.no_grad()
    def attention_weights(self, model: nn.Module, layer: int) -> AttentionWeights:
        """Per-head weights of ``q_proj``, ``k_proj``, ``v_proj`` and ``o_proj``."""
        attn = self.attention_module(model, layer)
        out = self.attention_output_module(model, layer)
        hd = attn.head_dim
        projections = (attn.q_proj, attn.k_proj, attn.v_proj)
        q, k, v = (p.weight.detach().float().reshape(-1, hd, p.in_features) for p in projections)
        bq, bk, bv = (bias_of(p, p.out_features).reshape(-1, hd) for p in projections)
        o = out.weight.detach().float()
        return per_head(q, k, v, (bq, bk, bv), o, out, float(attn.scaling), rotary=True)

    @torch.no_grad()
    def ffn_weights(self, model: nn.Module, layer: int) -> FFNWeights:
        """Neurons read ``gate_proj`` (times ``up_proj``) and write ``down_proj`` columns."""
        mlp = self.mlp_module(model, layer)
        out = self.ffn_output_module(model, layer)
        w_in = mlp.gate_proj.weight.detach().float()
        w_out = out.weight.detach().float().T
        return FFNWeights(
            w_in=w_in.contiguous(),
            b_in=bias_of(mlp.gate_proj, w_in.shape[0]),
            w_out=w_out.contiguous(),
            b_out=bias_of(out, w_out.shape[1]),
            w_up=mlp.up_proj.weight.detach().float().contiguous(),
        )

    def tiny_config(self):
        """3 layers, width 32, 4 query heads sharing 2 key/value heads, biases, untied."""
        from transformers import LlamaConfig

        return LlamaConfig(
            num_hidden_layers=3,
            hidden_size=32,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
            vocab_size=97,
            attention_bias=True,
            tie_word_embeddings=False,
            bos_token_id=0,
            eos_token_id=0,
        )
