"""Device and precision: where extraction, lens fitting, evaluation and transfer run.

The config's ``device`` is ``auto`` (CUDA where present, else the CPU), ``cpu``, ``cuda`` or
``cuda:N``. Extraction runs the model in ``extract.dtype`` (``auto``: float32 on the CPU,
bfloat16 on a GPU that supports it, else float16); the readout check's tolerance scales with
that dtype's precision. Stores hold ``extract.store_dtype`` (float32 by default; float16 or
bfloat16 halve disk and I/O). The default run on a CPU is float32 throughout, as before.
"""

from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""The dtype names a config may give."""

# Relative tolerance of the readout check (max |R(h_L) - logits| / largest logit) per dtype:
# float32 as before; half precision carries 8 (bfloat16) or 11 (float16) significant bits, and
# the last residual stream and the logits are each rounded once, so allow a few units of the
# last place of the logit scale.
READOUT_RTOL = {torch.float32: 1e-3, torch.float16: 1e-2, torch.bfloat16: 5e-2}


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device a config's ``device`` names.

    Raises:
        ValueError: CUDA is asked for but absent, or the name is not a device.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"device {name!r} is not a torch device: {err}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {name!r} asked for, but only {torch.cuda.device_count()} GPU(s) exist"
            )
    elif device.type != "cpu":
        raise ValueError(f"device {name!r}: only cpu, cuda and cuda:N are supported")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The compute dtype ``name`` (``auto`` or a key of :data:`DTYPES`) means on ``device``.

    ``auto`` is float32 on the CPU and bfloat16 (or float16 where bfloat16 is unsupported)
    on a GPU.

    Raises:
        ValueError: an unknown name.
    """
    if name == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; choose auto or one of {', '.join(DTYPES)}")
    return DTYPES[name]


def readout_rtol(dtype: torch.dtype) -> float:
    """The readout check's relative tolerance for activations computed in ``dtype``."""
    return READOUT_RTOL[dtype]


def uses_gpu(name: str) -> bool:
    """Whether a config's ``device`` puts the work on a GPU (a rule then asks for ``gpu=1``).

    Decided without touching CUDA for an explicit ``cuda``, so a cluster's login node (no
    GPU) still asks for GPU jobs; ``auto`` asks only where this machine has one.
    """
    if name == "auto":
        return torch.cuda.is_available()
    return name.startswith("cuda")


def release_freed_memory() -> None:
    """Hand the memory of freed tensors back to the operating system, between phases of a job.

    glibc's allocator keeps freed blocks of up to 32 MB (a ``[batch, vocabulary]`` logit
    block is one) in its heap, so without this a job's next phase starts from the last one's
    peak. ``malloc_trim`` returns them; a no-op where the C library has none.
    """
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass
