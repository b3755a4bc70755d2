"""The final readout R of a probed model: a final norm followed by a linear head.

LMs: final LayerNorm / RMSNorm + unembedding. CNNs: identity + fc head (the
representation is already pooled). A :class:`Readout` quacks like
``tuned_lens.nn.Unembed`` (``final_norm``, ``unembedding``, ``unembedding_hash``),
so ``tuned_lens.TunedLens`` accepts it for both domains.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from iterlens.io import atomic_path

SUPPORTED_FAMILIES = ("gpt2", "gpt_neox", "llama")


class RMSNorm(nn.Module):
    """Llama-style RMSNorm (computed in float32, scaled by ``weight``)."""

    def __init__(self, d: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Normalise ``h`` by its root mean square."""
        dtype = h.dtype
        h = h.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


class Readout(nn.Module):
    """R(h) = unembedding(final_norm(h)); frozen."""

    def __init__(self, final_norm: nn.Module, unembedding: nn.Linear, meta: dict | None = None):
        super().__init__()
        self.final_norm = final_norm
        self.unembedding = unembedding
        self.meta = dict(meta or {})
        self.requires_grad_(False)

    @property
    def d_model(self) -> int:
        """Width of the representation the readout takes."""
        return self.unembedding.in_features

    @property
    def n_classes(self) -> int:
        """Number of output logits (vocabulary size or classes)."""
        return self.unembedding.out_features

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Map representations ``[..., d]`` to logits ``[..., n_classes]``."""
        return self.unembedding(self.final_norm(h))

    def unembedding_hash(self) -> str:
        """Hash used by ``tuned_lens`` to match lenses with models."""
        from tuned_lens.utils import tensor_hash

        return tensor_hash(self.unembedding.weight.detach().cpu().float().numpy())

    def fingerprint(self) -> str:
        """SHA-256 over every readout parameter: a lens trained on another readout is refused."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

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
        """Write ``readout.safetensors`` (weights + norm description), atomically."""
        tensors = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        eps = getattr(self.final_norm, "eps", 0.0)
        meta = {
            "norm": self.norm_kind(),
            "eps": repr(float(eps)),
            "bias": str(self.unembedding.bias is not None),
            "fingerprint": self.fingerprint(),
            "meta": json.dumps(self.meta, sort_keys=True),
        }
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> Readout:
        """Load a readout written by :meth:`save`; verify its fingerprint."""
        from safetensors import safe_open

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"missing readout: {path}")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            tensors = load_file(str(path))
        except Exception as err:  # safetensors raises several error types
            raise ValueError(f"corrupt readout file {path}: {err}") from None
        weight = tensors["unembedding.weight"]
        n_out, d = weight.shape
        kind, eps = meta.get("norm", "identity"), float(meta.get("eps", "0"))
        norm: nn.Module
        if kind == "layernorm":
            norm = nn.LayerNorm(d, eps=eps, bias="final_norm.bias" in tensors)
        elif kind == "rmsnorm":
            norm = RMSNorm(d, eps=eps)
        else:
            norm = nn.Identity()
        head = nn.Linear(d, n_out, bias="unembedding.bias" in tensors)
        readout = cls(norm, head, json.loads(meta.get("meta", "{}")))
        readout.load_state_dict(tensors)
        if meta.get("fingerprint") and readout.fingerprint() != meta["fingerprint"]:
            raise ValueError(f"readout {path} does not match its recorded fingerprint")
        return readout.eval()


def model_family(model: nn.Module) -> str:
    """Return the family name of a HF causal LM, or raise naming the architecture."""
    model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
    if model_type in SUPPORTED_FAMILIES:
        return model_type
    raise NotImplementedError(
        f"iterlens does not know where the final norm and unembedding of architecture "
        f"'{model_type}' ({type(model).__name__}) are; supported: {', '.join(SUPPORTED_FAMILIES)}"
    )


def final_norm_of(model: nn.Module) -> nn.Module:
    """The final norm module of a supported causal LM (its input is the last residual stream)."""
    family = model_family(model)
    base = model.base_model
    return {"gpt2": lambda: base.ln_f, "gpt_neox": lambda: base.final_layer_norm,
            "llama": lambda: base.norm}[family]()


def readout_from_lm(model: nn.Module) -> Readout:
    """Copy the final norm and unembedding of a causal LM into a :class:`Readout`."""
    norm = final_norm_of(model)
    head = model.get_output_embeddings()
    d, n_out = head.in_features, head.out_features
    if isinstance(norm, nn.LayerNorm):
        new_norm: nn.Module = nn.LayerNorm(d, eps=norm.eps, bias=norm.bias is not None)
    elif type(norm).__name__.endswith("RMSNorm"):
        eps = getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6))
        new_norm = RMSNorm(d, eps=eps)
    else:
        raise NotImplementedError(f"unsupported final norm {type(norm).__name__}")
    new_norm.load_state_dict(norm.state_dict())
    new_head = nn.Linear(d, n_out, bias=head.bias is not None)
    new_head.load_state_dict(head.state_dict())
    meta = {"family": model_family(model), "name_or_path": model.config.name_or_path}
    return Readout(new_norm.float(), new_head.float(), meta).eval()
