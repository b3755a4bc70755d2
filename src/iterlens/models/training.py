"""One training loop for the reference LM, the CNN twins and the lenses, and its schedules.

:func:`train` runs ``steps`` optimiser steps over an iterator of batches: loss, backward,
optional gradient clipping, AdamW step, learning-rate schedule. What differs between models
(the batches, the loss, the optimiser's parameter groups, the schedule, what is logged) is
passed in. :func:`loss_and_accuracy` is the one held-out evaluation loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

Schedule = Callable[[int], float]


def warmup_cosine(warmup: int, total: int, floor: float = 0.0) -> Schedule:
    """Linear warmup over ``warmup`` steps, then cosine decay from 1 to ``floor`` at ``total``."""

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return schedule


def warmup_sqrt_decay(total: int) -> Schedule:
    """Linear warmup over the first tenth of ``total`` steps, then ``sqrt(1 - step/total)``."""
    return lambda s: min(1.0, (s + 1) / max(1, total // 10)) * max(0.0, 1 - s / total) ** 0.5


def train(
    params: Sequence[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    batches: Iterable[Any],
    loss_fn: Callable[[Any], tuple[torch.Tensor, Any]],
    *,
    steps: int,
    clip_norm: float | None = None,
    on_step: Callable[[int, float, Any], dict | None] | None = None,
    desc: str = "train",
    progress: bool = True,
) -> float:
    """Run ``steps`` optimiser steps; return the wall time in seconds.

    Args:
        params: the trained parameters, in the order gradient clipping sums them.
        optimizer: an optimiser over ``params`` (its groups carry lr and weight decay).
        schedule: learning-rate multiplier per step (``LambdaLR``).
        batches: yields at least ``steps`` batches.
        loss_fn: ``batch -> (loss, aux)``; ``aux`` is handed to ``on_step``.
        steps: number of optimiser steps.
        clip_norm: clip the global gradient norm of ``params`` to this value.
        on_step: ``(step, loss, aux) -> postfix or None`` after each step, for logging;
            a returned dict is shown on the progress bar.
        desc: progress bar label.
        progress: show a tqdm bar.
    """
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    t0 = time.perf_counter()
    bar = tqdm(total=steps, desc=desc, disable=not progress)
    batch_iter: Iterator[Any] = iter(batches)
    for step in range(steps):
        loss, aux = loss_fn(next(batch_iter))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, clip_norm)
        optimizer.step()
        sched.step()
        postfix = on_step(step, loss.item(), aux) if on_step is not None else None
        if postfix:
            bar.set_postfix(postfix)
        bar.update(1)
    bar.close()
    return time.perf_counter() - t0


@torch.no_grad()
def loss_and_accuracy(
    forward: Callable[[torch.Tensor], torch.Tensor],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[float, float]:
    """Mean cross-entropy (nats) and top-1 accuracy of ``forward`` over ``(x, y)`` batches.

    ``forward(x)`` returns logits whose leading dimensions match ``y`` (e.g. ``[b, t, V]``
    for next-token targets ``[b, t]``, ``[b, C]`` for classes ``[b]``).
    """
    loss, correct, count = 0.0, 0, 0
    for x, y in batches:
        logits = forward(x)
        logits, y = logits.reshape(-1, logits.shape[-1]), y.reshape(-1)
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(-1) == y).sum().item()
        count += y.numel()
    if count == 0:
        raise ValueError("cannot evaluate on zero examples")
    return loss / count, correct / count
