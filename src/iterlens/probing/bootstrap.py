"""Group bootstrap: 95% percentile intervals over held-out documents (LM) or images (CNN).

Every quantity the tables report is a function of *means over examples*. The bootstrap
resamples groups (documents, images) with replacement; a replicate's mean is the ratio of the
resampled group sums to the resampled group counts, so only per-group sums are needed. A
statistic is a function ``stat(means) -> array`` of a dict of means that carry a leading
replicate axis; the same function gives the point estimate (one "replicate": the sample) and
the replicates. Differences computed inside one statistic from one set of weights are a
*paired* bootstrap: identical inputs give exactly zero in every replicate.

Per-example values live on disk (:class:`Examples`, ``examples.safetensors``) so the bootstrap
is a cheap post-pass; transfer, whose ``(L+1)^2`` per-example matrix would be big for an LM, is
kept as per-group sums.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from iterlens.io import load_safetensors, save_safetensors

N_BOOT = 1000  # replicates
SEED = 0  # the bootstrap's own fixed seed: same tables -> same intervals
CONFIDENCE = 0.95
MIN_GROUPS = 2  # fewer groups than this: no interval (NaN), never a zero-width one

Means = dict[str, np.ndarray]
Stat = Callable[[Means], np.ndarray]


def document_ids(inputs: np.ndarray, eos_id: int) -> np.ndarray:
    """Document index of every example of an LM store, from the EOS separators.

    The eval stream is documents joined by EOS, and the store's windows tile it from offset 0,
    so the store's ``inputs`` are the stream itself. An example belongs to the document of its
    input token; an EOS closes its document (the next example starts the next one).
    """
    is_eos = np.asarray(inputs) == eos_id
    return (np.cumsum(is_eos) - is_eos).astype(np.int64)


@functools.lru_cache(maxsize=8)
def resample_weights(n_groups: int, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """``[n_boot, n_groups]``: how often each group is drawn in each replicate (read-only)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(n_boot, n_groups))
    offsets = np.arange(n_boot)[:, None] * n_groups
    return (
        np.bincount((draws + offsets).ravel(), minlength=n_boot * n_groups)
        .reshape(n_boot, n_groups)
        .astype(np.float64)
    )


@dataclass
class GroupSums:
    """Per-group sums of per-example values: ``sums[name]`` is ``[G, ...]``, ``counts`` ``[G]``."""

    counts: np.ndarray
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, init=False, repr=False)

    @property
    def n_groups(self) -> int:
        """G, the number of resampled units."""
        return len(self.counts)

    def means(self, weights: np.ndarray | None = None) -> Means:
        """Means with a leading replicate axis: the sample's (``[1, ...]``) or ``weights``'.

        Computed lazily, on first access of each name, so a statistic pays only for what it
        reads.
        """
        if weights is None:
            if "sample" not in self._cache:
                w = np.ones((1, self.n_groups))
                self._cache["sample"] = _LazyMeans(self.sums, w, w @ self.counts)
            return self._cache["sample"]
        return _LazyMeans(self.sums, weights, weights @ self.counts)

    def replicates(self, n_boot: int = N_BOOT, seed: int = SEED) -> Means:
        """The bootstrap replicates' means, ``[n_boot, ...]``, cached per ``(n_boot, seed)``.

        Add no sums after the first call: a cached replicate set would not see them.
        """
        key = (n_boot, seed)
        if key not in self._cache:
            self._cache[key] = self.means(resample_weights(self.n_groups, n_boot, seed))
        return self._cache[key]


class _LazyMeans(dict):
    """``name -> weighted mean``, each computed when first read."""

    def __init__(self, sums: dict[str, np.ndarray], weights: np.ndarray, total: np.ndarray):
        super().__init__()
        self._sums, self._w, self._total = sums, weights, total

    def __missing__(self, name: str) -> np.ndarray:
        s = self._sums[name]
        flat = self._w @ s.reshape(len(s), -1)
        value = (flat / self._total[:, None]).reshape(len(self._w), *s.shape[1:])
        self[name] = value
        return value


def group_sums(values: Mapping[str, np.ndarray], groups: np.ndarray) -> GroupSums:
    """Reduce per-example arrays ``[n, ...]`` to per-group sums, groups numbered in order."""
    _, index = np.unique(groups, return_inverse=True)
    order = np.argsort(index, kind="stable")
    counts = np.bincount(index).astype(np.float64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    sums = {
        name: np.add.reduceat(np.asarray(v, dtype=np.float64)[order], starts, axis=0)
        for name, v in values.items()
    }
    return GroupSums(counts, sums)


def estimate(
    stat: Stat, data: GroupSums, n_boot: int = N_BOOT, seed: int = SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point estimate and 95% percentile interval ``(point, lo, hi)`` of ``stat``.

    With fewer than :data:`MIN_GROUPS` groups the interval is NaN (it cannot be estimated).
    """
    point = np.asarray(stat(data.means()))[0]
    if data.n_groups < MIN_GROUPS:
        nan = np.full_like(point, np.nan, dtype=np.float64)
        return point, nan, nan
    reps = np.asarray(stat(data.replicates(n_boot, seed)))
    return (point, *percentile_interval(reps))


def estimate_difference(
    stat_a: Stat,
    data_a: GroupSums,
    stat_b: Stat,
    data_b: GroupSums,
    paired: bool,
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``stat_a(a) - stat_b(b)`` with an interval.

    ``paired``: ``a`` and ``b`` are the same groups (same images, same documents) and are
    resampled with the same weights; otherwise each is resampled independently.
    """
    point = np.asarray(stat_a(data_a.means()))[0] - np.asarray(stat_b(data_b.means()))[0]
    if min(data_a.n_groups, data_b.n_groups) < MIN_GROUPS:
        nan = np.full_like(point, np.nan, dtype=np.float64)
        return point, nan, nan
    if paired and data_a.n_groups != data_b.n_groups:
        raise ValueError(
            f"a paired bootstrap needs the same groups, got {data_a.n_groups} and {data_b.n_groups}"
        )
    reps_b = data_b.replicates(n_boot, seed if paired else seed + 1)
    reps = np.asarray(stat_a(data_a.replicates(n_boot, seed))) - np.asarray(stat_b(reps_b))
    return (point, *percentile_interval(reps))


def percentile_interval(
    replicates: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over the leading axis; NaN replicates (undefined ratios) ignored."""
    tail = 100 * (1 - confidence) / 2
    reps = np.asarray(replicates, dtype=np.float64)
    lo = np.full(reps.shape[1:], np.nan)
    hi = np.full(reps.shape[1:], np.nan)
    finite = np.isfinite(reps)
    if finite.all():  # the fast path; nanpercentile works column by column
        lo[...], hi[...] = np.percentile(reps, [tail, 100 - tail], axis=0)
        return lo, hi
    ok = finite.any(0)
    if ok.any():
        lo[ok], hi[ok] = np.nanpercentile(reps[:, ok], [tail, 100 - tail], axis=0)
    return lo, hi


# ---------------------------------------------------------------- the per-example file


@dataclass
class Examples:
    """Per-example values of one evaluated model, and per-group transfer sums.

    ``values[f"{lens}.{metric}"]`` is ``[n, L + 1]``; ``prior_ce_bits`` ``[n]`` is each
    target's cross-entropy under the training marginal; ``groups`` ``[n]`` the resampled unit
    (LM: document, CNN: image). ``transfer`` holds the ``[G, L+1, L+1]`` sums of
    :func:`iterlens.probing.transfer.transfer_sums` and ``count`` ``[G]``, over the same (sorted)
    groups.
    """

    groups: np.ndarray
    values: dict[str, np.ndarray]
    transfer: dict[str, np.ndarray] = field(default_factory=dict)
    cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def save(self, path: str | Path) -> None:
        """Write ``examples.safetensors`` atomically."""
        tensors = {"groups": torch.from_numpy(np.asarray(self.groups, np.int64))}
        for name, v in self.values.items():
            tensors[f"values.{name}"] = torch.from_numpy(np.asarray(v, np.float32))
        for name, v in self.transfer.items():
            tensors[f"transfer.{name}"] = torch.from_numpy(np.asarray(v, np.float64))
        save_safetensors(tensors, path, {"format": "iterlens-examples-1"})

    @classmethod
    def load(cls, path: str | Path) -> Examples:
        """Read a file written by :meth:`save`."""
        tensors, _ = load_safetensors(path, "per-example values")
        groups = tensors.pop("groups").numpy()
        values, transfer = {}, {}
        for key, t in tensors.items():
            kind, name = key.split(".", 1)
            (values if kind == "values" else transfer)[name] = t.numpy()
        return cls(groups, values, transfer)

    def group_sums(self) -> GroupSums:
        """Per-group sums of every per-example value."""
        return group_sums(self.values, self.groups)

    def transfer_sums(self) -> GroupSums:
        """The transfer matrix's per-group sums as a :class:`GroupSums`."""
        if not self.transfer:
            raise ValueError("these per-example values hold no transfer sums")
        return GroupSums(
            self.transfer["count"], {k: v for k, v in self.transfer.items() if k != "count"}
        )
