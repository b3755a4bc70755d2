"""GPT-2: LayerNorm, learned positions, ``Conv1D`` weights stored ``[in, out]``, fused q|k|v."""

from __future__ import annotations

import torch
from torch import nn

from iterlens.models.families import register
from iterlens.models.families.base import Adapter, AttentionWeights, FFNWeights, bias_of, per_head


@register
class GPT2(Adapter):
    """GPT-2 (``GPT2LMHeadModel``); the reference LM the workflow trains."""

    name = "gpt2"
    parts = {"blocks": "h", "final_norm": "ln_f", "embed": "wte", "positions": "wpe"}
    block_parts = {
        "attention": "attn",
        "attention_out": "attn.c_proj",
        "attention_norm": "ln_1",
        "mlp": "mlp",
        "ffn_out": "mlp.c_proj",
        "ffn_norm": "ln_2",
        "ffn_act": "mlp.act",
    }

    @torch.no_grad()
    def attention_weights(self, model: nn.Module, layer: int) -> AttentionWeights:
        """Per-head weights, split from the fused ``c_attn`` (no rotary embedding)."""
        attn = self.attention_module(model, layer)
        out = self.attention_output_module(model, layer)
        w = attn.c_attn.weight.detach().float().T  # Conv1D stores [in, out]
        b = bias_of(attn.c_attn, w.shape[0])
        d, heads = w.shape[1], attn.num_heads
        hd = d // heads
        (q, k, v), (bq, bk, bv) = w.split(d), b.split(d)
        o = out.weight.detach().float().T  # [d_out, H*hd]
        shape = (heads, hd)
        q, k, v = (m.reshape(*shape, d) for m in (q, k, v))
        bq, bk, bv = (x.reshape(shape) for x in (bq, bk, bv))
        return per_head(q, k, v, (bq, bk, bv), o, out, float(attn.scaling), rotary=False)

    @torch.no_grad()
    def ffn_weights(self, model: nn.Module, layer: int) -> FFNWeights:
        """``c_fc`` rows are what neurons read, ``c_proj`` rows what they write."""
        mlp = self.mlp_module(model, layer)
        out = self.ffn_output_module(model, layer)
        w_in = mlp.c_fc.weight.detach().float().T  # Conv1D: [d, n] -> [n, d]
        w_out = out.weight.detach().float()  # Conv1D: [n, d] is already one row a neuron
        return FFNWeights(
            w_in=w_in.contiguous(),
            b_in=bias_of(mlp.c_fc, w_in.shape[0]),
            w_out=w_out.contiguous(),
            b_out=bias_of(out, w_out.shape[1]),
        )

    def tiny_config(self):
        """3 layers, width 32, 2 heads, vocabulary 97, tied embeddings."""
        from transformers import GPT2Config

        return GPT2Config(
            n_layer=3,
            n_embd=32,
            n_head=2,
            n_positions=64,
            vocab_size=97,
            bos_token_id=0,
            eos_token_id=0,
        )
