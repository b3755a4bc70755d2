"""Extraction of every layer's residual stream from a causal LM into an activation store.

``h_l`` for l < L is the input of block l (l = 0: the embeddings); ``h_L`` is the input of
the final norm, i.e. the last residual stream. (``output_hidden_states`` would instead end
with the *normed* stream, and normalising it again gives a plausible but wrong lens.)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from iterlens.readout import Readout, final_norm_of, model_family
from iterlens.store import shard_is_complete, shard_path, write_shard


def blocks_of(model: nn.Module) -> nn.ModuleList:
    """The list of transformer blocks of a supported causal LM."""
    base = model.base_model
    return {"gpt2": lambda: base.h, "gpt_neox": lambda: base.layers,
            "llama": lambda: base.layers}[model_family(model)]()


class ResidualRecorder:
    """Context manager that records the residual stream at every layer via hooks."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.captured: dict[int, torch.Tensor] = {}
        self.n_layers = len(blocks_of(model))
        self._handles: list = []

    def _hook(self, index: int):
        def hook(module, args, kwargs):
            h = args[0] if args else kwargs["hidden_states"]
            self.captured[index] = h.detach()
        return hook

    def __enter__(self) -> ResidualRecorder:
        for i, block in enumerate(blocks_of(self.model)):
            self._handles.append(block.register_forward_pre_hook(self._hook(i), with_kwargs=True))
        self._handles.append(final_norm_of(self.model).register_forward_pre_hook(
            self._hook(self.n_layers), with_kwargs=True))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()

    @torch.no_grad()
    def run(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward ``input_ids [b, t]``; return ``(hidden [b, t, L+1, d], logits [b, t, V])``."""
        self.captured.clear()
        logits = self.model(input_ids).logits
        hidden = torch.stack([self.captured[i] for i in range(self.n_layers + 1)], 2)
        return hidden.float(), logits.float()


def n_shards(n_tokens: int, shard_tokens: int, seq_len: int) -> int:
    """Number of shards holding ``n_tokens`` tokens in windows of ``seq_len``."""
    per_shard = max(1, shard_tokens // seq_len)
    return math.ceil(max(1, n_tokens // seq_len) / per_shard)


def shard_windows(tokens: np.ndarray, seq_len: int, n_tokens: int, shard_tokens: int,
                  index: int) -> np.ndarray:
    """Start offsets of the windows of shard ``index`` (non-overlapping, consecutive).

    Raises:
        ValueError: if the split is too short for the requested token count.
    """
    per_shard = max(1, shard_tokens // seq_len)
    n_windows_total = max(1, n_tokens // seq_len)
    available = (len(tokens) - 1) // seq_len
    if available < n_windows_total:
        raise ValueError(f"the split has {len(tokens)} tokens, fewer than the "
                         f"{n_windows_total * seq_len} requested; lower extract.*_tokens")
    first = index * per_shard
    last = min(first + per_shard, n_windows_total)
    if first >= last:
        raise ValueError(f"shard {index} is empty: only {n_windows_total} windows requested")
    return np.arange(first, last) * seq_len


@torch.no_grad()
def extract_lm_shard(model: nn.Module, readout: Readout, tokenizer, tokens: np.ndarray,
                     starts: np.ndarray, seq_len: int, batch_size: int, out: str | Path,
                     progress: bool = True, atol: float = 1e-3) -> None:
    """Run ``model`` over windows at ``starts`` and write one shard to ``out``.

    Skips the work if ``out`` already holds a complete shard (resuming a run). Checks on
    the first batch that ``R(h_L)`` reproduces the model's logits.
    """
    out = Path(out)
    if shard_is_complete(out):
        return
    hidden_parts, target_parts, input_parts = [], [], []
    with ResidualRecorder(model) as rec:
        for b in tqdm(range(0, len(starts), batch_size), desc=f"extract {out.name}",
                      disable=not progress):
            window = np.stack([tokens[s:s + seq_len + 1] for s in starts[b:b + batch_size]])
            x = torch.from_numpy(window.astype(np.int64))
            hidden, logits = rec.run(x[:, :-1])
            if b == 0:
                err = (readout(hidden[:, :, -1]) - logits).abs().max().item()
                scale = logits.abs().max().item() + 1e-6
                if err > atol * max(1.0, scale):
                    raise RuntimeError(f"readout check failed: R(h_L) differs from the "
                                       f"model's logits by {err:.3g} (scale {scale:.3g})")
            hidden_parts.append(hidden.reshape(-1, *hidden.shape[2:]))
            input_parts.append(x[:, :-1].reshape(-1))
            target_parts.append(x[:, 1:].reshape(-1))
    targets = torch.cat(target_parts)
    text = tokenizer.decode(targets.tolist(), skip_special_tokens=True)
    write_shard(out, torch.cat(hidden_parts), targets, torch.cat(input_parts),
                n_bytes=len(text.encode("utf-8")))


def extract_lm_store(model, readout, tokenizer, tokens, folder, *, seq_len: int,
                     n_tokens: int, shard_tokens: int, batch_size: int,
                     progress: bool = True) -> int:
    """Extract every shard of a split into ``folder`` (resuming); return the shard count."""
    count = n_shards(n_tokens, shard_tokens, seq_len)
    for i in range(count):
        starts = shard_windows(tokens, seq_len, n_tokens, shard_tokens, i)
        extract_lm_shard(model, readout, tokenizer, tokens, starts, seq_len, batch_size,
                         shard_path(folder, i), progress)
    return count
