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


class EarlyStopping:
    """Stop when a held-out loss has not improved for ``patience`` evaluations in a row.

    An evaluation counts as an improvement if it is lower than the loss of the last
    improvement by more than ``min_delta`` times that loss (a relative threshold, so it
    works on any loss scale). The parameters at the lowest loss seen are kept, to be
    restored when training ends.

    Args:
        patience: evaluations without improvement that end training (a plateau).
        min_delta: relative improvement that counts as one.
    """

    def __init__(self, patience: int, min_delta: float = 1e-3):
        if patience < 1:
            raise ValueError(f"patience must be at least 1, not {patience}")
        self.patience = patience
        self.min_delta = min_delta
        self.best = math.inf
        self.best_step = -1
        self.improved = math.inf
        self.improved_step = -1
        self.bad = 0
        self.best_state: list[torch.Tensor] | None = None

    def update(self, step: int, loss: float, params: Sequence[nn.Parameter] = ()) -> bool:
        """Record the held-out ``loss`` at ``step``; return True if training should stop."""
        if not math.isfinite(loss):
            raise FloatingPointError(f"held-out loss is {loss} at step {step}: training diverged")
        if loss < self.best:
            self.best, self.best_step = loss, step
            if self.best_state is None:
                self.best_state = [p.detach().clone() for p in params]
            else:  # in place: a second copy of every parameter is never alive
                for best, p in zip(self.best_state, params, strict=True):
                    best.copy_(p.detach())
        threshold = self.improved - self.min_delta * abs(self.improved)
        if not math.isfinite(self.improved) or loss < threshold:
            self.improved, self.improved_step, self.bad = loss, step, 0
            return False
        self.bad += 1
        return self.bad >= self.patience

    def restore(self, params: Sequence[nn.Parameter]) -> None:
        """Copy the parameters of the lowest held-out loss back into ``params``; drop the copy."""
        if self.best_state is not None:
            with torch.no_grad():
                for p, best in zip(params, self.best_state, strict=True):
                    p.copy_(best)
            self.best_state = None


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
    evaluate: Callable[[int], float] | None = None,
    eval_every: int = 0,
    early_stopping: EarlyStopping | None = None,
    desc: str = "train",
    progress: bool = True,
) -> float:
    """Run up to ``steps`` optimiser steps; return the wall time in seconds.

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
        evaluate: ``step -> held-out loss``, called before the first step, every
            ``eval_every`` steps and after the last (the step is the number of steps done).
        eval_every: steps between calls of ``evaluate``.
        early_stopping: stop on a plateau of ``evaluate``'s loss and restore the best
            parameters (needs ``evaluate``).
        desc: progress bar label.
        progress: show a tqdm bar.
    """
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    t0 = time.perf_counter()
    bar = tqdm(total=steps, desc=desc, disable=not progress)
    batch_iter: Iterator[Any] = iter(batches)
    if early_stopping is not None and (evaluate is None or eval_every < 1):
        raise ValueError("early stopping needs an evaluate function and eval_every >= 1")

    def check(done: int) -> bool:
        loss = evaluate(done)
        stop = early_stopping is not None and early_stopping.update(done, loss, params)
        bar.set_postfix({"held-out": f"{loss:.4f}"})
        return stop

    stopped = evaluate is not None and check(0)
    for step in range(steps):
        if stopped:
            break
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
        done = step + 1
        if evaluate is not None and (done == steps or (eval_every and done % eval_every == 0)):
            stopped = check(done)
    bar.close()
    if early_stopping is not None:
        early_stopping.restore(params)
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
