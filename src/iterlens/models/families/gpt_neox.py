"""GPT-NeoX (Pythia): LayerNorm, partial rotary embeddings, q|k|v fused and interleaved per head."""

from __future__ import annotations

import torch
from torch import nn

from iterlens.models.families import register
from iterlens.models.families.base import Adapter, AttentionWeights, FFNWeights, bias_of, per_head


@register
class GPTNeoX(Adapter):
    """GPT-NeoX (``GPTNeoXForCausalLM``); parallel or sequential residual."""

    name = "gpt_neox"
    parts = {"blocks": "layers", "final_norm": "final_layer_norm", "embed": "embed_in"}
    block_parts = {
        "attention": "attention",
        "attention_out": "attention.dense",
        "attention_norm": "input_layernorm",
        "mlp": "mlp",
        "ffn_out": "mlp.dense_4h_to_h",
        "ffn_norm": "post_attention_layernorm",
        "ffn_act": "mlp.act",
    }

    @torch.no_grad()
    def attention_weights(self, model: nn.Module, layer: int) -> AttentionWeights:
        """Per-head weights, split from ``query_key_value`` (per head q|k|v)."""
        attn = self.attention_module(model, layer)
        out = self.attention_output_module(model, layer)
        w = attn.query_key_value.weight.detach().float()  # [H * 3 * hd, d], per head q|k|v
        d = w.shape[1]
        hd = attn.head_size
        heads = d // hd
        w = w.reshape(heads, 3, hd, d)
        b = bias_of(attn.query_key_value, heads * 3 * hd).reshape(heads, 3, hd)
        q, k, v = w.unbind(1)
        o = out.weight.detach().float()
        return per_head(q, k, v, b.unbind(1), o, out, float(attn.scaling), rotary=True)

    @torch.no_grad()
    def ffn_weights(self, model: nn.Module, layer: int) -> FFNWeights:
        """Neurons read ``dense_h_to_4h`` rows and write ``dense_4h_to_h`` columns."""
        mlp = self.mlp_module(model, layer)
        out = self.ffn_output_module(model, layer)
        w_in = mlp.dense_h_to_4h.weight.detach().float()
        w_out = out.weight.detach().float().T
        return FFNWeights(
            w_in=w_in.contiguous(),
            b_in=bias_of(mlp.dense_h_to_4h, w_in.shape[0]),
            w_out=w_out.contiguous(),
            b_out=bias_of(out, w_out.shape[1]),
        )

    def tiny_config(self):
        """3 layers, width 32, 2 heads (a quarter of each head rotary), vocabulary 97."""
        from transformers import GPTNeoXConfig

        return GPTNeoXConfig(
            num_hidden_layers=3,
            hidden_size=32,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
            vocab_size=97,
            bos_token_id=0,
            eos_token_id=0,
        )
