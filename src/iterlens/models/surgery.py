"""Where each supported causal-LM architecture keeps its parts.

One table per family, so extraction, readouts and the vocabulary analysis share one answer to
"which module is the final norm / the list of blocks / the embedding?". Supported families are
the ``model_type`` values of ``transformers`` configs in :data:`SUPPORTED_FAMILIES`.
"""

from __future__ import annotations

from torch import nn

SUPPORTED_FAMILIES = ("gpt2", "gpt_neox", "llama")

# Attribute of ``model.base_model`` holding each part, per family.
_PARTS: dict[str, dict[str, str]] = {
    "gpt2": {"blocks": "h", "final_norm": "ln_f", "embed": "wte"},
    "gpt_neox": {"blocks": "layers", "final_norm": "final_layer_norm", "embed": "embed_in"},
    "llama": {"blocks": "layers", "final_norm": "norm", "embed": "embed_tokens"},
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
