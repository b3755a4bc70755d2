"""Gemma 3 (text): ``(1 + w)`` RMSNorms, four a block, embeddings scaled by sqrt(d), q/k norms.

A block computes ``h + post_attn(attn(input_norm(h)))``, then
``h + post_ffn(mlp(pre_ffn(h)))``: ``post_attention_layernorm`` normalises the attention
*output*, and the FFN reads ``pre_feedforward_layernorm``. Queries and keys pass through
per-head RMSNorms (``q_norm``, ``k_norm``) before the rotary embedding; scores are scaled
by ``query_pre_attn_scalar ** -0.5``. Layers are ``sliding_attention`` (local: a window of
``sliding_window`` keys, their own rotary base) or ``full_attention`` (global).
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import nn

from iterlens.models.families import register
from iterlens.models.families.base import AttentionWeights, FFNWeights
from iterlens.models.families.llama import Llama


@register
class Gemma3Text(Llama):
    """Gemma 3 text models (``Gemma3ForCausalLM``), e.g. Gemma 3 270M."""

    name = "gemma3_text"
    block_parts = {
        "attention": "self_attn",
        "attention_out": "self_attn.o_proj",
        "attention_norm": "input_layernorm",
        "attention_out_norm": "post_attention_layernorm",
        "mlp": "mlp",
        "ffn_out": "mlp.down_proj",
        "ffn_norm": "pre_feedforward_layernorm",
        "ffn_out_norm": "post_feedforward_layernorm",
        "ffn_act": "mlp.act_fn",
    }
    norm_offset = 1.0
    eps_attr = "eps"

    def embed_scale(self, model: nn.Module) -> float:
        """sqrt(d_model) (rounded to the model's dtype by the model itself)."""
        return math.sqrt(model.config.hidden_size)

    def logit_softcap(self, model: nn.Module) -> float | None:
        """``final_logit_softcapping`` (None in Gemma 3)."""
        return getattr(model.config, "final_logit_softcapping", None)

    def rotary(
        self, model: nn.Module, layer: int, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``cos, sin`` of the rotary embedding of layer ``layer``'s type (local or global)."""
        layer_type = model.config.layer_types[layer]
        cos, sin = model.base_model.rotary_emb(x[None], torch.arange(x.shape[0])[None], layer_type)
        return cos[0].float(), sin[0].float()

    @torch.no_grad()
    def attention_weights(self, model: nn.Module, layer: int) -> AttentionWeights:
        """Llama's per-head weights, plus the q/k norm gains, the window and the output norm.

        Raises:
            NotImplementedError: the config softcaps attention scores or attends both ways
                (neither is Gemma 3 causal LM; the head analysis does not model them).
        """
        config = model.config
        for option in ("attn_logit_softcapping", "use_bidirectional_attention"):
            if getattr(config, option, None):
                raise NotImplementedError(f"gemma3_text with {option}={getattr(config, option)}")
        attn = self.attention_module(model, layer)
        out_norm = self.output_norms_of(model, layer)[0]
        return replace(
            super().attention_weights(model, layer),
            q_norm=self.norm_gain(attn.q_norm),
            k_norm=self.norm_gain(attn.k_norm),
            qk_norm_eps=float(attn.q_norm.eps),
            sliding_window=attn.sliding_window,
            out_gain=self.norm_gain(out_norm),
        )

    @torch.no_grad()
    def ffn_weights(self, model: nn.Module, layer: int) -> FFNWeights:
        """Llama's gated FFN, plus the gain of ``post_feedforward_layernorm``."""
        out_norm = self.output_norms_of(model, layer)[1]
        return replace(super().ffn_weights(model, layer), out_gain=self.norm_gain(out_norm))

    def tiny_config(self):
        """3 layers (local, local, global; window 3), width 32, 4 heads of 16, 2 kv heads."""
        from transformers import Gemma3TextConfig

        return Gemma3TextConfig(
            num_hidden_layers=3,
            hidden_size=32,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            intermediate_size=64,
            max_position_embeddings=64,
            vocab_size=97,
            query_pre_attn_scalar=24,
            sliding_window=3,
            layer_types=["sliding_attention", "sliding_attention", "full_attention"],
            rope_parameters={
                "sliding_attention": {"rope_type": "default", "rope_theta": 10.0},
                "full_attention": {"rope_type": "default", "rope_theta": 10_000.0},
            },
            tie_word_embeddings=True,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=1,
        )
