"""Streaming shard writer: a shard written batch by batch while the next batch is computed.

The file is an ordinary safetensors shard (see :mod:`iterlens.probing.store`), written under a
temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import queue
import struct
import threading
from pathlib import Path

import torch

from iterlens.io import atomic_path

_ST_DTYPE = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}


def _raw(t: torch.Tensor):
    """The bytes of a CPU tensor, without a copy when it is contiguous."""
    return t.contiguous().reshape(-1).view(torch.uint8).numpy()


class ShardWriter:
    """Stream one shard to disk while the caller computes the next batch.

    The shard is an ordinary safetensors file. Its shapes are known up front, so the header
    is written first and ``hidden`` follows batch by batch from a background thread (file
    writes release the GIL, so they overlap the next forward pass); ``targets`` and
    ``inputs`` come last. The file carries its final name only once complete (atomic rename).

    Use as a context manager; :meth:`add` each batch of ``hidden [b, L + 1, d]`` in order.
    """

    def __init__(
        self,
        path: str | Path,
        n_layers: int,
        d_model: int,
        targets: torch.Tensor,
        inputs: torch.Tensor,
        n_bytes: int = 0,
        dtype: torch.dtype = torch.float32,
        groups: torch.Tensor | None = None,
    ):
        self.path, self.dtype = Path(path), dtype
        self.row_shape = (n_layers + 1, d_model)
        self.n, self.written = len(targets), 0
        self._tail = [_raw(targets.to(torch.int64).cpu()), _raw(inputs.to(torch.int64).cpu())]
        hidden_size = self.n * (n_layers + 1) * d_model * dtype.itemsize
        extra = {}
        if groups is not None:  # each example's bootstrap group, after the inputs
            start = hidden_size + 16 * self.n
            extra["groups"] = {
                "dtype": "I64",
                "shape": [self.n],
                "data_offsets": [start, start + 8 * self.n],
            }
            self._tail.append(_raw(groups.to(torch.int64).cpu()))
        header = {
            "__metadata__": {"n_bytes": str(int(n_bytes))},
            "hidden": {
                "dtype": _ST_DTYPE[dtype],
                "shape": [self.n, *self.row_shape],
                "data_offsets": [0, hidden_size],
            },
            "targets": {
                "dtype": "I64",
                "shape": [self.n],
                "data_offsets": [hidden_size, hidden_size + 8 * self.n],
            },
            "inputs": {
                "dtype": "I64",
                "shape": [self.n],
                "data_offsets": [hidden_size + 8 * self.n, hidden_size + 16 * self.n],
            },
            **extra,
        }
        text = json.dumps(header, separators=(",", ":")).encode()
        padded = -(-len(text) // 8) * 8  # the data starts 8-byte aligned
        self._header = struct.pack("<Q", padded) + text.ljust(padded)
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._error: BaseException | None = None

    def __enter__(self) -> ShardWriter:
        self._atomic = atomic_path(self.path)
        self._file = open(self._atomic.__enter__(), "wb")  # noqa: SIM115 (closed in __exit__)
        self._file.write(self._header)
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()
        return self

    def _drain(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                if self._error is None:
                    self._file.write(item)
            except BaseException as err:  # reported to the caller by add() / __exit__
                self._error = err

    def add(self, hidden: torch.Tensor) -> None:
        """Queue one batch of ``hidden`` (any device and float dtype) for writing."""
        if self._error is not None:
            raise OSError(f"writing shard {self.path} failed: {self._error}") from self._error
        if tuple(hidden.shape[1:]) != self.row_shape or self.written + len(hidden) > self.n:
            raise ValueError(
                f"shard {self.path}: batch of shape {tuple(hidden.shape)} does not fit "
                f"{self.n - self.written} more rows of {self.row_shape}"
            )
        stored = hidden.detach().to("cpu", self.dtype)
        if self.dtype.is_floating_point and not torch.isfinite(stored).all():
            self._refuse_overflow(hidden, stored)
        self._queue.put(_raw(stored))
        self.written += len(hidden)

    def _refuse_overflow(self, hidden: torch.Tensor, stored: torch.Tensor) -> None:
        """Raise: a batch that is not finite in the store's dtype, naming the layers and why."""
        bad = (~torch.isfinite(stored)).flatten(2).any(-1).any(0).nonzero().flatten().tolist()
        peak = hidden.detach().float().abs().amax().item()
        if torch.isfinite(hidden).all():
            raise ValueError(
                f"shard {self.path}: layers {bad} exceed {str(self.dtype).removeprefix('torch.')}"
                f"'s range (largest |h| is {peak:.4g}, the largest {self.dtype} is "
                f"{torch.finfo(self.dtype).max:.4g}); store them as bfloat16 or float32 "
                "(extract.lensfit_dtype, extract.store_dtype)"
            )
        raise ValueError(
            f"shard {self.path}: the model's activations at layers {bad} are not finite"
        )

    def __exit__(self, exc_type, exc, tb) -> None:
        self._queue.put(None)
        self._thread.join()
        if exc_type is None and self._error is None and self.written != self.n:
            exc = ValueError(f"shard {self.path}: {self.written} of {self.n} rows written")
        try:
            if exc is None and self._error is None:
                for part in self._tail:
                    self._file.write(part)
        except OSError as err:
            self._error = err
        finally:
            try:  # closing flushes the buffer: a full disk can show up only here
                self._file.close()
            except OSError as err:
                self._error = self._error or err
        if exc is None and self._error is not None:
            exc = OSError(f"writing shard {self.path} failed: {self._error}")
            exc.__cause__ = self._error  # a full disk is recognised through the cause
        # always end the atomic write: on error it removes the temporary and names a full disk
        self._atomic.__exit__(type(exc) if exc else None, exc, None)
        if exc is not None and exc_type is None:
            raise exc
