"""The final readout R of a probed model: a final norm followed by a linear head.

LMs: final LayerNorm / RMSNorm + unembedding. CNNs: identity + fc head (the
representation is already pooled). A :class:`Readout` quacks like
``tuned_lens.nn.Unembed`` (``final_norm``, ``unembedding``, ``unembedding_hash``),
so ``tuned_lens.TunedLens`` accepts it for both domains.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from iterlens.io import fingerprint, load_safetensors, save_safetensors
from iterlens.models.families import NormSpec, adapter_for


class RMSNorm(nn.Module):
    """RMSNorm computed in float32, scaled by ``offset + weight``.

    ``offset`` is 0 (Llama) or 1 (Gemma, whose stored weight is the gain minus one); it is
    not a tensor, so a readout's fingerprint covers the stored weight only.
    """

    def __init__(self, d: int, eps: float = 1e-6, offset: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d) if offset == 0 else torch.zeros(d))
        self.eps = eps
        self.offset = float(offset)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Normalise ``h`` by its root mean square."""
        dtype = h.dtype
        h = h.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.offset:
            return (self.offset + self.weight) * h.to(dtype)
        return self.weight * h.to(dtype)


READOUT_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
"""Precisions the unembedding product may run in (config ``lens.readout_dtype``)."""


class Readout(nn.Module):
    """R(h) = unembedding(final_norm(h)); frozen.

    The final norm always runs in float32. The unembedding product runs in
    :attr:`compute_dtype` (:meth:`set_compute_dtype`): in bfloat16 the inputs and weights are
    rounded to bfloat16 and the logits come back as float32, which is several times faster on
    a CPU with bfloat16 units and on a GPU (``benchmarks/bf16_readout.py`` measures what it
    does to the metrics). The stored weights, and so the fingerprint, stay float32.
    """

    def __init__(self, final_norm: nn.Module, unembedding: nn.Linear, meta: dict | None = None):
        super().__init__()
        self.final_norm = final_norm
        self.unembedding = unembedding
        self.meta = dict(meta or {})
        self.compute_dtype = torch.float32
        self._cast: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self.requires_grad_(False)

    def set_compute_dtype(self, dtype: str | torch.dtype) -> Readout:
        """Run the unembedding product in ``dtype`` (a :data:`READOUT_DTYPES` name or dtype)."""
        if isinstance(dtype, str):
            if dtype not in READOUT_DTYPES:
                raise ValueError(
                    f"readout dtype must be one of {', '.join(READOUT_DTYPES)}, not {dtype!r}"
                )
            dtype = READOUT_DTYPES[dtype]
        self.compute_dtype = dtype
        self._cast = None
        return self

    def _apply(self, fn, recurse=True):
        self._cast = None  # moved or converted: the cached low-precision copy is stale
        return super()._apply(fn, recurse)

    @property
    def d_model(self) -> int:
        """Width of the representation the readout takes."""
        return self.unembedding.in_features

    @property
    def n_classes(self) -> int:
        """Number of output logits (vocabulary size or classes)."""
        return self.unembedding.out_features

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Map representations ``[..., d]`` to float32 logits ``[..., n_classes]``."""
        x = self.final_norm(h)
        if self.compute_dtype == torch.float32:
            return self.unembedding(x)
        if self._cast is None:
            w, b = self.unembedding.weight, self.unembedding.bias
            self._cast = (w.to(self.compute_dtype), None if b is None else b.to(self.compute_dtype))
        w, b = self._cast
        return nn.functional.linear(x.to(self.compute_dtype), w, b).float()

    def unembedding_hash(self) -> str:
        """Hash used by ``tuned_lens`` to match lenses with models."""
        from tuned_lens.utils import tensor_hash

        return tensor_hash(self.unembedding.weight.detach().cpu().float().numpy())

    def fingerprint(self) -> str:
        """SHA-256 over every readout parameter: a lens trained on another readout is refused."""
        return fingerprint(self.state_dict())

    def norm_kind(self) -> str:
        """Name of the final norm: layernorm, rmsnorm or identity."""
        if isinstance(self.final_norm, nn.LayerNorm):
            return "layernorm"
        if isinstance(self.final_norm, RMSNorm):
            return "rmsnorm"
        if isinstance(self.final_norm, nn.Identity):
            return "identity"
        raise TypeError(f"unsupported final norm {type(self.final_norm).__name__}")

    def save(self, path: str | Path) -> None:
        """Write ``readout.safetensors`` (weights + norm description), atomically.

        A norm weight offset is recorded (``weight_offset``) only where it is not 0, so
        readouts without one are written exactly as before offsets existed.
        """
        eps = getattr(self.final_norm, "eps", 0.0)
        meta = {
            "norm": self.norm_kind(),
            "eps": repr(float(eps)),
            "bias": str(self.unembedding.bias is not None),
            "fingerprint": self.fingerprint(),
            "meta": json.dumps(self.meta, sort_keys=True),
        }
        offset = getattr(self.final_norm, "offset", 0.0)
        if offset:
            meta["weight_offset"] = repr(float(offset))
        save_safetensors(self.state_dict(), path, meta)

    @classmethod
    def load(cls, path: str | Path) -> Readout:
        """Load a readout written by :meth:`save`; verify its fingerprint.

        A readout saved without a ``weight_offset`` has offset 0.
        """
        tensors, meta = load_safetensors(path, "readout")
        weight = tensors["unembedding.weight"]
        n_out, d = weight.shape
        kind, eps = meta.get("norm", "identity"), float(meta.get("eps", "0"))
        norm: nn.Module
        if kind == "layernorm":
            norm = nn.LayerNorm(d, eps=eps, bias="final_norm.bias" in tensors)
        elif kind == "rmsnorm":
            norm = RMSNorm(d, eps=eps, offset=float(meta.get("weight_offset", "0")))
        else:
            norm = nn.Identity()
        head = nn.Linear(d, n_out, bias="unembedding.bias" in tensors)
        readout = cls(norm, head, json.loads(meta.get("meta", "{}")))
        readout.load_state_dict(tensors)
        if meta.get("fingerprint") and readout.fingerprint() != meta["fingerprint"]:
            raise ValueError(f"readout {path} does not match its recorded fingerprint")
        return readout.eval()

    def check_reproduces(
        self, last_hidden: torch.Tensor, logits: torch.Tensor, rtol: float = 1e-3
    ) -> None:
        """Refuse a readout that does not map the last layer to the model's own logits.

        Raises:
            RuntimeError: ``max |R(h_L) - logits|`` exceeds ``rtol`` times the largest logit
                (at least 1).
        """
        err = (self(last_hidden.float()) - logits.float()).abs().max().item()
        scale = logits.abs().max().item()
        if err > rtol * max(1.0, scale):
            raise RuntimeError(
                f"readout check failed: R(h_L) differs from the model's logits "
                f"by {err:.3g} (scale {scale:.3g})"
            )


def _copy_parts(
    norm: nn.Module, head: nn.Linear, spec: NormSpec | None = None
) -> tuple[nn.Module, nn.Linear]:
    """Float32 copies of a final norm and a linear head.

    Args:
        spec: the norm's description (an LM's, from its family adapter); without one the
            norm must be a ``nn.LayerNorm`` or ``nn.Identity`` (the CNNs).
    """
    d = head.in_features
    if spec is not None and spec.kind == "layernorm":
        new_norm: nn.Module = nn.LayerNorm(
            d, eps=spec.eps, bias=getattr(norm, "bias", None) is not None
        )
    elif spec is not None and spec.kind == "rmsnorm":
        new_norm = RMSNorm(d, eps=spec.eps, offset=spec.offset)
    elif spec is not None:
        raise NotImplementedError(f"unsupported final norm kind {spec.kind!r}")
    elif isinstance(norm, nn.Identity):
        new_norm = nn.Identity()
    elif isinstance(norm, nn.LayerNorm):
        new_norm = nn.LayerNorm(d, eps=norm.eps, bias=norm.bias is not None)
    else:
        raise NotImplementedError(f"unsupported final norm {type(norm).__name__}")
    new_norm.load_state_dict(norm.state_dict())
    new_head = nn.Linear(d, head.out_features, bias=head.bias is not None)
    new_head.load_state_dict(head.state_dict())
    return new_norm.float(), new_head.float()


def readout_from_lm(model: nn.Module) -> Readout:
    """Copy the final norm and unembedding of a causal LM into a :class:`Readout`.

    Raises:
        NotImplementedError: the architecture has no adapter, or softcaps its logits (a
            readout of norm + unembedding would not reproduce them).
    """
    adapter = adapter_for(model)
    if adapter.logit_softcap(model) is not None:
        raise NotImplementedError(
            f"{adapter.name} softcaps its final logits; the readout does not model that"
        )
    final = adapter.final_norm_of(model)
    norm, head = _copy_parts(final, adapter.unembedding_of(model), adapter.norm_spec(final))
    meta = {"family": adapter.name, "name_or_path": model.config.name_or_path}
    return Readout(norm, head, meta).eval()


def readout_from_cnn(model: nn.Module) -> Readout:
    """A CNN's final readout: copies of its final norm (LayerNorm or identity) and ``fc`` head."""
    norm, head = _copy_parts(model.norm, model.fc)
    meta = {"family": "inception", "residual": bool(model.residual)}
    return Readout(norm, head, meta).eval()


def readout_from_model(model: nn.Module) -> Readout:
    """The readout of a causal LM or of an Inception CNN."""
    from iterlens.models.cnn import InceptionNet

    return readout_from_cnn(model) if isinstance(model, InceptionNet) else readout_from_lm(model)
