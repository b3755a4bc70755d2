"""Metric definitions (the contracts of docs/methods.md) and streaming accumulators.

All information quantities are in bits. Per-example functions take logits ``[n, V]``;
accumulators keep sums and histograms, so memory does not grow with the example count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

LN2 = math.log(2.0)
PER_EXAMPLE = ("kl_bits", "ce_bits", "top1_agree", "top1_acc")  # kept per example on disk


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    """Log-softmax in float32, ``z - lse(z)``: the one normalisation every metric starts from."""
    z = logits.float()
    return z - _normalise(z)[0][:, None]


def kl_bits(final_logits: torch.Tensor | FinalDist, lens_logits: torch.Tensor) -> torch.Tensor:
    """Per-example KL(p_final || p_lens) in bits.

    ``final_logits`` may be the final distribution's :class:`FinalDist`, computed once for many
    lenses.
    """
    final = final_logits if isinstance(final_logits, FinalDist) else FinalDist.of(final_logits)
    return _kl(final, log_probs(lens_logits))


def ce_bits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy against the target index, in bits."""
    return _ce(log_probs(logits), targets)


def entropy_bits(logits: torch.Tensor) -> torch.Tensor:
    """Per-example entropy of softmax(logits), in bits."""
    return _normalise(logits.float())[1]


def _normalise(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(lse, entropy_bits, top1)`` of float32 logits ``[n, V]``, in three passes over ``z``.

    With ``e = exp(z - max z)``: ``lse = max z + log sum e`` and ``H = lse - e.z / sum e``;
    ``q = softmax(z)`` itself is never materialised.
    """
    top, top1 = z.max(-1)  # the largest logit and its index (the first of ties) in one pass
    e = (z - top[:, None]).exp_()
    total = e.sum(-1)
    lse = top + total.log()
    return lse, (lse - torch.linalg.vecdot(e, z) / total) / LN2, top1


def _kl(final: FinalDist, logq: torch.Tensor) -> torch.Tensor:
    # sum p log p - sum p log q: exactly 0 where log q is the final log p itself
    return (final.neg_entropy - torch.linalg.vecdot(final.p, logq)) / LN2


def _ce(logq: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -logq.gather(-1, targets.long()[:, None])[:, 0] / LN2


CACHE_FLOATS = 2**22
"""Logits one batch of an evaluation holds (16 MiB of float32): a batch that stays in cache
makes the per-row passes over a large vocabulary faster than 1,024 rows do
(``benchmarks/evaluate_batch.py``; its result in ``benchmarks/results/evaluate_batch.json``)."""


def batch_rows(n_classes: int, most: int) -> int:
    """Rows per evaluation batch: ``most``, or fewer for a large vocabulary.

    Fewer is the largest power of two whose logits fit :data:`CACHE_FLOATS`. The per-row
    values do not depend on it; a small vocabulary keeps ``most``.
    """
    rows = 1 << max(0, (CACHE_FLOATS // max(1, n_classes)).bit_length() - 1)
    return max(1, min(most, rows))


def prior_ce_bits(train_targets: np.ndarray, held_out: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-example cross-entropy (bits) of ``held_out`` under the add-one training marginal.

    The marginal is the unigram of the LM's training tokens or the class prior of the CNN's
    training split; its mean on the eval set is ``H_prior`` in ``info_gain_bits``.
    """
    counts = np.bincount(np.asarray(train_targets), minlength=n_classes).astype(np.float64)
    logp = np.log2((counts + 1.0) / (counts + 1.0).sum())
    return -logp[np.asarray(held_out)]


def rank_of(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Per-example rank of ``ids`` under ``logits`` (0 = top-1): count of larger logits.

    The comparison is written as 0/1 floats and summed (exact below 2^24 classes): on a CPU
    that is faster than summing a boolean tensor.
    """
    chosen = logits.gather(-1, ids.long()[:, None])
    larger = torch.gt(logits, chosen, out=torch.empty_like(logits, dtype=torch.float32))
    return larger.sum(-1).long()


def prediction_depth(top1: torch.Tensor, final_top1: torch.Tensor) -> torch.Tensor:
    """First layer from which the lens top-1 equals the final top-1 at every later layer.

    Args:
        top1: ``[n, L + 1]`` lens top-1 per layer.
        final_top1: ``[n]`` the model's final top-1.

    Returns:
        ``[n]`` depths in ``0..L``, or ``L + 1`` where even the last layer disagrees.
    """
    agree = top1 == final_top1[:, None]
    # suffix-AND over layers: all_later[:, l] = agree[:, l:].all()
    all_later = agree.flip(1).long().cumprod(1).flip(1).bool()
    n_layers = top1.shape[1]
    # depth = number of leading layers at which the suffix is not all-agreeing
    return n_layers - all_later.long().sum(1)


@dataclass(frozen=True)
class FinalDist:
    """The final distribution of one batch, computed once and shared by every lens and layer."""

    logp: torch.Tensor
    p: torch.Tensor
    neg_entropy: torch.Tensor
    top1: torch.Tensor

    @classmethod
    def of(cls, logits: torch.Tensor) -> FinalDist:
        """Log-probabilities, probabilities, ``sum p log p`` and top-1 of the final ``logits``."""
        logp = log_probs(logits)
        p = logp.exp()
        return cls(logp, p, torch.linalg.vecdot(p, logp), logits.argmax(-1))


class LayerAccumulator:
    """Running sums of the per-layer metrics of one lens on one store."""

    def __init__(self, n_classes: int):
        self.n = 0
        self.sums = {
            "kl_bits": 0.0,
            "ce_bits": 0.0,
            "top1_agree": 0.0,
            "top1_acc": 0.0,
            "entropy_bits": 0.0,
        }
        self.rank_hist = {
            "input": np.zeros(n_classes, np.int64),
            "final_top1": np.zeros(n_classes, np.int64),
        }
        self.has_inputs = False

    def update(
        self,
        lens_logits: torch.Tensor,
        final: torch.Tensor | FinalDist,
        targets: torch.Tensor,
        inputs: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Add one batch; return its per-example values (:data:`PER_EXAMPLE`, and ``top1``).

        ``top1`` is the lens's top-1 class. ``final``: the final logits, or their
        :class:`FinalDist`, to share it between the lenses and layers of one batch. The
        lens's log-probabilities are computed once.
        """
        if not isinstance(final, FinalDist):
            final = FinalDist.of(final)
        z = lens_logits.float()
        lse, entropy, top1 = _normalise(z)
        logq = z - lse[:, None]
        values = {
            "kl_bits": _kl(final, logq),
            "ce_bits": _ce(logq, targets),
            "top1_agree": (top1 == final.top1).float(),
            "top1_acc": (top1 == targets).float(),
            "top1": top1,
        }
        self.n += len(targets)
        self.sums["kl_bits"] += values["kl_bits"].double().sum().item()
        self.sums["ce_bits"] += values["ce_bits"].double().sum().item()
        self.sums["top1_agree"] += values["top1_agree"].sum().item()
        self.sums["top1_acc"] += values["top1_acc"].sum().item()
        self.sums["entropy_bits"] += entropy.double().sum().item()
        ranks = rank_of(z, final.top1)
        self.rank_hist["final_top1"] += np.bincount(
            ranks.cpu().numpy(), minlength=len(self.rank_hist["final_top1"])
        )
        if (inputs >= 0).all():
            self.has_inputs = True
            ranks = rank_of(z, inputs)
            self.rank_hist["input"] += np.bincount(
                ranks.cpu().numpy(), minlength=len(self.rank_hist["input"])
            )
        return values

    def result(self, n_bytes: int = 0) -> dict[str, float]:
        """Means over examples; ``bits_per_byte`` if ``n_bytes``; rank summaries."""
        if self.n == 0:
            raise ValueError("no examples were evaluated")
        out = {k: v / self.n for k, v in self.sums.items()}
        out["bits_per_byte"] = self.sums["ce_bits"] / n_bytes if n_bytes else float("nan")
        for name, hist in self.rank_hist.items():
            if name == "input" and not self.has_inputs:
                continue
            out.update(rank_summary(hist, prefix=f"rank_{name}"))
        return out


def rank_summary(hist: np.ndarray, prefix: str) -> dict[str, float]:
    """Median rank and shares in the top 1 / top 10 from a rank histogram."""
    total = hist.sum()
    cdf = np.cumsum(hist)
    return {
        f"{prefix}_median": float(np.searchsorted(cdf, total / 2.0)),
        f"{prefix}_top1": float(hist[:1].sum() / total),
        f"{prefix}_top10": float(hist[:10].sum() / total),
    }
