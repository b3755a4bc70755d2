"""Cross-layer transfer: the lens trained for layer i applied to layer j.

``transfer_ce[i, j] = ce(lens_i on h_j) - ce(lens_j on h_j)`` (bits), and the same with
KL to the final distribution. The matrix is ``[L+1, L+1]``: rows and columns ``0..L-1`` are
the translator layers; **row L is the logit lens** (a tuned lens's translator at L is the
identity) and **column L is the final layer** (where every lens but the logit lens is moved
onto the model's own output). Summaries over "transfer" use the translator block only
(:func:`iterlens.report.uncertainty.transfer_masks`); the logit-lens row and the final
column are reported as themselves (``lens`` column of :func:`transfer_table`).

Per cell, beside CE and KL to the final distribution:

- ``kl_own_bits``: KL from the layer's own lens, ``KL(lens_j(h_j) || lens_i(h_j))``, as
  tuned-lens's own ``--layer_transfer`` evaluation measures it;
- ``agree_final``: top-1 agreement of the moved lens with the final prediction, a bounded
  measure in [0, 1].

The whole matrix is computed in one pass over the store: per batch, every (i, j) block of
logits is decoded and reduced in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from iterlens.probing.lenses import layer_subset
from iterlens.probing.metrics import LN2, FinalDist, batch_rows
from iterlens.probing.readout import Readout
from iterlens.probing.store import ActivationStore

TRANSFER_SUMS = ("ce_bits", "kl_bits", "kl_own_bits", "agree_final")
"""The per-cell values :func:`transfer_sums` returns (summed per group on disk)."""


def _logsumexp_(x: torch.Tensor) -> torch.Tensor:
    """``torch.logsumexp(x, -1)`` computed in ``x``'s own memory (``x`` is overwritten)."""
    top = x.amax(-1, keepdim=True)
    return x.sub_(top).exp_().sum(-1).log_().add_(top[..., 0])


def transfer_layers(n_layers: int, layers: Sequence[int] | None = None) -> list[int]:
    """The layers a transfer matrix is measured on: ``layers`` and the last, or all ``0..L``.

    Raises:
        ValueError: a layer outside ``0..L``.
    """
    return sorted(set(layer_subset(n_layers, layers, "transfer")) | {n_layers})


def transfer_sums(
    lens: nn.Module,
    hidden: torch.Tensor,
    readout: Readout,
    targets: torch.Tensor,
    layers: Sequence[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example values (bits) for every (lens layer i, data layer j).

    Args:
        lens: a lens with ``transform_hidden(h, i)`` (tuned or shared).
        hidden: ``[b, L+1, d]``.
        layers: measure only the pairs of these layers (see :func:`transfer_layers`); the
            other entries are NaN. The matrix costs ``(L+1)^2`` readouts, so on a CPU a deep
            model with a large vocabulary is measured on a subset.

    Returns:
        ``{"ce_bits", "kl_bits", "kl_own_bits", "agree_final"}``, each ``[b, L+1, L+1]``
        indexed ``[example, i, j]``, float64 (see the module docstring).
    """
    b, n = hidden.shape[:2]
    measured = transfer_layers(n - 1, layers)
    final = FinalDist.of(readout(hidden[:, -1]))
    fill = 0.0 if len(measured) == n else float("nan")
    out = {
        k: torch.full((b, n, n), fill, dtype=torch.float64, device=hidden.device)
        for k in TRANSFER_SUMS
    }
    for j in measured:
        h = hidden[:, j]
        own = FinalDist.of(readout(lens.transform_hidden(h, j)))
        for i in measured:  # one [b, V] block at a time: it stays in cache
            logits = readout(lens.transform_hidden(h, i))
            # CE = lse - logit[target];  KL(p || q) = sum p log p - sum p logit + lse
            target_logit = logits.gather(-1, targets[:, None])[:, 0]
            p_dot_logit = torch.linalg.vecdot(logits, final.p)
            own_dot_logit = torch.linalg.vecdot(logits, own.p)
            out["agree_final"][:, i, j] = (logits.argmax(-1) == final.top1).double()
            lse = _logsumexp_(logits)
            out["ce_bits"][:, i, j] = (lse - target_logit).double() / LN2
            out["kl_bits"][:, i, j] = (final.neg_entropy - p_dot_logit + lse).double() / LN2
            out["kl_own_bits"][:, i, j] = (own.neg_entropy - own_dot_logit + lse).double() / LN2
    return out


@torch.no_grad()
def transfer_group_sums(
    lens: nn.Module,
    store: ActivationStore,
    readout: Readout,
    groups: np.ndarray | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    layers: Sequence[int] | None = None,
) -> dict[str, np.ndarray]:
    """Sums of transfer CE and KL per group of examples, all the bootstrap needs.

    Args:
        groups: ``[n]`` group id of every example in store order (documents, images);
            ``None``: one group.
        layers: the layers measured (see :func:`transfer_sums`); unmeasured pairs are NaN.
        batch_size: default :func:`~iterlens.probing.metrics.batch_rows` (256, fewer for a
            large vocabulary).

    Returns:
        The :data:`TRANSFER_SUMS` as ``[G, L+1, L+1]`` sums and ``"count"`` ``[G]``, groups in
        sorted order of their ids.
    """
    store.check_readout(readout.fingerprint())
    batch_size = batch_size or batch_rows(readout.n_classes, 256)
    n = store.n_layers + 1
    if groups is None:
        groups = np.zeros(store.n_examples, np.int64)
    if len(groups) != store.n_examples:
        raise ValueError(f"{len(groups)} group ids for {store.n_examples} examples")
    _, index = np.unique(groups, return_inverse=True)
    index = torch.from_numpy(index.astype(np.int64))
    n_groups = int(index.max()) + 1
    sums = {k: torch.zeros(n_groups, n, n, dtype=torch.float64) for k in TRANSFER_SUMS}
    total = -(-store.n_examples // batch_size)
    start = 0
    for batch in tqdm(
        store.iter_batches(batch_size), total=total, desc="transfer", disable=not progress
    ):
        values = transfer_sums(lens, batch.hidden, readout, batch.targets, layers)
        sel = index[start : start + len(batch.targets)]
        for k, v in values.items():
            sums[k].index_add_(0, sel, v.cpu())
        start += len(batch.targets)
    count = torch.bincount(index, minlength=n_groups).double()
    return {**{k: v.numpy() for k, v in sums.items()}, "count": count.numpy()}


def transfer_table(sums: dict[str, np.ndarray]) -> pd.DataFrame:
    """Long table with one row per (i, j): lens i on layer j, its values and penalties.

    ``lens`` is ``"tuned"`` for the translator rows ``0..L-1`` and ``"logit"`` for row L
    (the identity); ``triangle`` is ``"upper"`` (a lens moved deeper, ``j > i``), ``"lower"``
    (moved shallower) or ``"diagonal"``. Pairs left unmeasured (NaN, see
    :func:`transfer_sums`) have no row.
    """
    total = sums["count"].sum()
    mean = {k: sums[k].sum(0) / total for k in TRANSFER_SUMS if k in sums}
    n = len(mean["ce_bits"])
    rows = []
    for i in range(n):
        for j in range(n):
            if np.isnan(mean["ce_bits"][i, j]):
                continue
            row = _pair(i, j, n)
            row.update({k: v[i, j] for k, v in mean.items()})
            row["ce_penalty_bits"] = mean["ce_bits"][i, j] - mean["ce_bits"][j, j]
            row["kl_penalty_bits"] = mean["kl_bits"][i, j] - mean["kl_bits"][j, j]
            rows.append(row)
    return pd.DataFrame(rows)


def _pair(i: int, j: int, n: int) -> dict:
    """The key columns of cell (i, j) of an ``n x n`` transfer table."""
    return {
        "lens_layer": i,
        "data_layer": j,
        "lens": "logit" if i == n - 1 else "tuned",
        "distance": j - i,
        "triangle": "upper" if j > i else "lower" if j < i else "diagonal",
    }


def unmeasured_transfer_table(n_layers: int, layers: Sequence[int] | None = None) -> pd.DataFrame:
    """The rows :func:`transfer_table` would have for these layers, every value NaN.

    For a model whose final distribution is not informative (an untrained net), every number
    of its transfer matrix is reported as NaN, so the ``(L+1)^2`` readouts are not spent.
    """
    measured, n = transfer_layers(n_layers, layers), n_layers + 1
    nan = dict.fromkeys((*TRANSFER_SUMS, "ce_penalty_bits", "kl_penalty_bits"), np.nan)
    return pd.DataFrame([{**_pair(i, j, n), **nan} for i in measured for j in measured])


def transfer_matrix(
    lens: nn.Module,
    store: ActivationStore,
    readout: Readout,
    batch_size: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Long table with one row per (i, j): CE and KL of lens i on layer j, and penalties."""
    return transfer_table(transfer_group_sums(lens, store, readout, None, batch_size, progress))


def penalty_by_distance(table: pd.DataFrame) -> pd.DataFrame:
    """Mean CE and KL penalty by |i - j| over the translator layers, off the diagonal.

    The logit-lens row and the final column (index L) are left out; relative distance added.
    """
    n_layers = int(table["data_layer"].max())
    inner = (table["lens_layer"] < n_layers) & (table["data_layer"] < n_layers)
    off = table[inner & (table["distance"] != 0)].assign(abs_distance=lambda t: t["distance"].abs())
    out = off.groupby("abs_distance", as_index=False)[["ce_penalty_bits", "kl_penalty_bits"]].mean()
    out["rel_distance"] = out["abs_distance"] / n_layers
    return out
