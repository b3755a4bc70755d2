"""Extraction of every layer's representation into an activation store, for LMs and CNNs.

LM: ``h_l`` for l < L is the input of block l (l = 0: the embeddings); ``h_L`` is the input
of the final norm, i.e. the last residual stream. (``output_hidden_states`` would instead end
with the *normed* stream, and normalising it again gives a plausible but wrong lens.) One
shard a job, so shards of a big run are separate cluster jobs.

CNN: ``h_l`` is the spatial mean of the stem (l = 0) and of every module's output.

Both check that the readout maps ``h_L`` to the model's own logits. An LM's store needs only
the residuals, so its forward passes stop at the final norm's input: the unembedding, the
largest matrix product of a big-vocabulary model and its largest tensor (``[batch, seq, V]``),
runs only for the check, on ``CHECK_WINDOWS`` windows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from iterlens.artifacts import shard_path
from iterlens.device import readout_rtol
from iterlens.models.families import adapter_for
from iterlens.probing.readout import Readout
from iterlens.probing.shard_writer import ShardWriter
from iterlens.probing.store import finalize_store, shard_is_complete, write_shard

CHECK_WINDOWS = 2
"""Windows whose logits the readout check compares (the only full forward pass of a shard)."""


class _ResidualsDone(Exception):
    """Raised by the last hook to end a forward pass whose logits are not needed."""


class ResidualRecorder:
    """Context manager that records the residual stream at every layer via hooks."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.captured: dict[int, torch.Tensor] = {}
        self.adapter = adapter_for(model)
        self.n_layers = len(self.adapter.blocks_of(model))
        self._handles: list = []
        self._stop = False

    def _hook(self, index: int):
        def hook(module, args, kwargs):
            h = args[0] if args else kwargs["hidden_states"]
            self.captured[index] = h.detach()
            if self._stop and index == self.n_layers:
                raise _ResidualsDone

        return hook

    def __enter__(self) -> ResidualRecorder:
        for i, block in enumerate(self.adapter.blocks_of(self.model)):
            self._handles.append(block.register_forward_pre_hook(self._hook(i), with_kwargs=True))
        self._handles.append(
            self.adapter.final_norm_of(self.model).register_forward_pre_hook(
                self._hook(self.n_layers), with_kwargs=True
            )
        )
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()

    @torch.no_grad()
    def run(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward ``input_ids [b, t]``; return ``(hidden [b, t, L+1, d], logits [b, t, V])``.

        Both are in the model's own dtype, on its device.
        """
        self.captured.clear()
        logits = self.model(input_ids).logits
        return self._stacked(), logits

    @torch.no_grad()
    def residuals(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Forward ``input_ids [b, t]`` up to the final norm; return ``hidden [b, t, L+1, d]``.

        The final norm, the unembedding and anything after them do not run.
        """
        self.captured.clear()
        self._stop = True
        try:
            self.model(input_ids)
        except _ResidualsDone:
            pass
        else:
            raise RuntimeError("the forward pass ended without reaching the final norm")
        finally:
            self._stop = False
        return self._stacked()

    def _stacked(self) -> torch.Tensor:
        hidden = torch.stack([self.captured[i] for i in range(self.n_layers + 1)], 2)
        self.captured.clear()
        return hidden


def n_shards(n_tokens: int, shard_tokens: int, seq_len: int) -> int:
    """Number of shards holding ``n_tokens`` tokens in windows of ``seq_len``."""
    per_shard = max(1, shard_tokens // seq_len)
    return math.ceil(max(1, n_tokens // seq_len) / per_shard)


def shard_windows(
    tokens: np.ndarray, seq_len: int, n_tokens: int, shard_tokens: int, index: int
) -> np.ndarray:
    """Start offsets of the windows of shard ``index``.

    The ``n_tokens // seq_len`` windows of a split are non-overlapping and spread evenly over
    the whole token stream, so a store samples every document of its split (the bootstrap
    resamples documents) rather than the first few.

    Raises:
        ValueError: if the split is too short for the requested token count.
    """
    per_shard = max(1, shard_tokens // seq_len)
    n_windows_total = max(1, n_tokens // seq_len)
    available = (len(tokens) - 1) // seq_len
    if available < n_windows_total:
        raise ValueError(
            f"the split has {len(tokens)} tokens, fewer than the "
            f"{n_windows_total * seq_len} requested; lower extract.*_tokens"
        )
    first = index * per_shard
    last = min(first + per_shard, n_windows_total)
    if first >= last:
        raise ValueError(f"shard {index} is empty: only {n_windows_total} windows requested")
    return np.arange(first, last) * available // n_windows_total * seq_len


def document_of_position(tokens: np.ndarray, eos_id: int | None) -> np.ndarray:
    """Document index of every position of a token stream (an EOS belongs to the one it ends)."""
    if eos_id is None:
        return np.zeros(len(tokens), dtype=np.int64)
    is_eos = np.asarray(tokens) == eos_id
    return (np.cumsum(is_eos) - is_eos).astype(np.int64)


@torch.no_grad()
def extract_lm_shard(
    model: nn.Module,
    readout: Readout,
    tokenizer,
    tokens: np.ndarray,
    starts: np.ndarray,
    seq_len: int,
    batch_size: int,
    out: str | Path,
    progress: bool = True,
    store_dtype: torch.dtype = torch.float32,
    skip_positions: int = 0,
) -> None:
    """Run ``model`` over windows at ``starts`` and write one shard to ``out``.

    The model runs on its own device and dtype; the shard is written by a background
    thread while the next batch is computed, with ``hidden`` in ``store_dtype``. Skips the
    work if ``out`` already holds a complete shard (resuming a run). Checks on the first
    ``CHECK_WINDOWS`` windows that ``R(h_L)`` reproduces the model's logits, to a tolerance set
    by the model's dtype; the stored passes stop before the unembedding. The first
    ``skip_positions`` positions of every window are read by the model but not stored (so no
    lens is fitted or scored on them).
    """
    out = Path(out)
    if shard_is_complete(out):
        return
    if not 0 <= skip_positions < seq_len:
        raise ValueError(f"skip_positions {skip_positions} must lie in [0, seq_len {seq_len})")
    param = next(model.parameters())
    windows = np.stack([tokens[s : s + seq_len + 1] for s in starts]).astype(np.int64)
    x = torch.from_numpy(windows)
    kept = slice(skip_positions, None)
    inputs, targets = x[:, :-1][:, kept].reshape(-1), x[:, 1:][:, kept].reshape(-1)
    doc = document_of_position(tokens, tokenizer.eos_token_id)
    groups = torch.from_numpy(
        np.concatenate([doc[s + skip_positions : s + seq_len] for s in starts])
    )
    text = tokenizer.decode(targets.tolist(), skip_special_tokens=True)
    writer = ShardWriter(
        out,
        len(adapter_for(model).blocks_of(model)),
        readout.d_model,
        targets,
        inputs,
        n_bytes=len(text.encode("utf-8")),
        dtype=store_dtype,
        groups=groups,
    )
    with ResidualRecorder(model) as rec, writer:
        hidden, logits = rec.run(x[:CHECK_WINDOWS, :-1].to(param.device))
        readout.check_reproduces(
            hidden[:, :, -1].float().cpu(), logits.float().cpu(), readout_rtol(param.dtype)
        )
        del hidden, logits
        for b in tqdm(
            range(0, len(x), batch_size), desc=f"extract {out.name}", disable=not progress
        ):
            hidden = rec.residuals(x[b : b + batch_size, :-1].to(param.device))
            writer.add(hidden[:, kept].reshape(-1, *hidden.shape[2:]))


def extract_lm_store(
    model,
    readout,
    tokenizer,
    tokens,
    folder,
    *,
    seq_len: int,
    n_tokens: int,
    shard_tokens: int,
    batch_size: int,
    progress: bool = True,
    store_dtype: torch.dtype = torch.float32,
    skip_positions: int = 0,
) -> int:
    """Extract every shard of a split into ``folder`` (resuming); return the shard count."""
    count = n_shards(n_tokens, shard_tokens, seq_len)
    for i in range(count):
        starts = shard_windows(tokens, seq_len, n_tokens, shard_tokens, i)
        extract_lm_shard(
            model,
            readout,
            tokenizer,
            tokens,
            starts,
            seq_len,
            batch_size,
            shard_path(folder, i),
            progress,
            store_dtype,
            skip_positions,
        )
    return count


@torch.no_grad()
def extract_cnn_store(
    model: nn.Module,
    readout: Readout,
    x: torch.Tensor,
    y: torch.Tensor,
    folder: str | Path,
    *,
    shard_size: int = 2048,
    batch_size: int = 256,
    meta: Mapping[str, object] | None = None,
    progress: bool = True,
    dtype: torch.dtype = torch.float32,
) -> dict:
    """Write every layer's representation of images ``x`` to a store; return its manifest.

    Shards hold ``hidden [n, L + 1, width]`` and the class ``targets`` (``inputs`` are -1).
    Shards already complete in ``folder`` are kept (resuming an interrupted run); the
    manifest is written last.

    Raises:
        RuntimeError: ``readout(h_L)`` does not reproduce ``model(x)`` on the first batch.
    """
    if len(x) != len(y) or len(y) == 0:
        raise ValueError(f"need as many labels as images (and some), got {len(x)}, {len(y)}")
    model.eval()
    readout.eval()
    first = x[:batch_size]
    readout.check_reproduces(model.representations(first)[:, -1], model(first))
    count = -(-len(y) // shard_size)
    for i in tqdm(range(count), desc=f"extract {Path(folder).name}", disable=not progress):
        path = shard_path(folder, i)
        if shard_is_complete(path):
            continue
        xs, ys = x[i * shard_size : (i + 1) * shard_size], y[i * shard_size : (i + 1) * shard_size]
        parts = [
            model.representations(xs[b : b + batch_size]) for b in range(0, len(ys), batch_size)
        ]
        write_shard(path, torch.cat(parts), ys, dtype=dtype)
    return finalize_store(folder, count, readout.fingerprint(), "vision", **(meta or {}))
