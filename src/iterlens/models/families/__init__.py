"""One adapter per architecture family, keyed by ``config.model_type``.

:func:`adapter_for` returns the :class:`~iterlens.models.families.base.Adapter` of a model
(or config); an unknown architecture is refused by name. Adding a family is one module in
this package, whose adapter class is decorated with :func:`register`, plus its import below.
"""

from __future__ import annotations

from typing import TypeVar

from iterlens.models.families.base import (
    Adapter,
    AttentionWeights,
    FFNWeights,
    NormSpec,
)

__all__ = [
    "FAMILIES",
    "Adapter",
    "AttentionWeights",
    "FFNWeights",
    "NormSpec",
    "UnsupportedArchitectureError",
    "adapter_for",
    "register",
    "supported",
]

FAMILIES: dict[str, Adapter] = {}
"""The registered adapters, by ``model_type``."""

A = TypeVar("A", bound=type[Adapter])


class UnsupportedArchitectureError(NotImplementedError):
    """A model whose architecture family has no adapter."""


def register(cls: A) -> A:
    """Class decorator: register one instance of an adapter under its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no model_type name")
    FAMILIES[cls.name] = cls()
    return cls


def supported() -> tuple[str, ...]:
    """The ``model_type`` of every registered family."""
    return tuple(sorted(FAMILIES))


def adapter_for(model_or_config) -> Adapter:
    """The adapter of a HF causal LM, of its config, or of a ``model_type`` string.

    Raises:
        UnsupportedArchitectureError: (a ``NotImplementedError``) the architecture has no
            adapter; the message names its ``model_type`` and class and lists the supported.
    """
    if isinstance(model_or_config, str):
        model_type, kind = model_or_config, "model_type"
    else:
        config = getattr(model_or_config, "config", model_or_config)
        kind = type(model_or_config).__name__
        model_type = getattr(config, "model_type", None) or kind
    if model_type in FAMILIES:
        return FAMILIES[model_type]
    raise UnsupportedArchitectureError(
        f"iterlens has no adapter for architecture '{model_type}' ({kind}): it does not know "
        f"where its blocks, norms, embeddings, attention and FFN are; supported: "
        f"{', '.join(supported())}. A new family is one module in iterlens/models/families/."
    )


# Registration: each import registers its family's adapter.
from iterlens.models.families import gemma3_text, gpt2, gpt_neox, llama  # noqa: E402, F401
