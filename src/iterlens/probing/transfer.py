"""Cross-layer transfer: the lens trained for layer i applied to layer j.

``transfer_ce[i, j] = ce(lens_i on h_j) - ce(lens_j on h_j)`` (bits), and the same with
KL to the final distribution. The whole matrix is computed in one pass over the store:
per batch, every (i, j) block of logits is decoded and reduced to its CE and KL in place.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from iterlens.probing.metrics import LN2, FinalDist
from iterlens.probing.readout import Readout
from iterlens.probing.store import ActivationStore


def _logsumexp_(x: torch.Tensor) -> torch.Tensor:
    """``torch.logsumexp(x, -1)`` computed in ``x``'s own memory (``x`` is overwritten)."""
    top = x.amax(-1, keepdim=True)
    return x.sub_(top).exp_().sum(-1).log_().add_(top[..., 0])


@torch.no_grad()
def transfer_sums(
    lens: nn.Module, hidden: torch.Tensor, readout: Readout, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example CE and KL (bits) for every (lens layer i, data layer j).

    Args:
        lens: a lens with ``transform_hidden(h, i)`` (tuned or shared).
        hidden: ``[b, L+1, d]``.

    Returns:
        ``(ce, kl)``, each ``[b, L+1, L+1]`` indexed ``[example, i, j]``, float64.
    """
    b, n = hidden.shape[:2]
    final = FinalDist.of(readout(hidden[:, -1]))
    ce = torch.zeros(b, n, n, dtype=torch.float64, device=hidden.device)
    kl = torch.zeros(b, n, n, dtype=torch.float64, device=hidden.device)
    for j in range(n):
        h = hidden[:, j]
        for i in range(n):  # one [b, V] block at a time: it stays in cache
            logits = readout(lens.transform_hidden(h, i))
            # CE = lse - logit[target];  KL = sum p log p - sum p logit + lse
            target_logit = logits.gather(-1, targets[:, None])[:, 0]
            p_dot_logit = torch.linalg.vecdot(logits, final.p)
            lse = _logsumexp_(logits)
            ce[:, i, j] = (lse - target_logit).double() / LN2
            kl[:, i, j] = (final.neg_entropy - p_dot_logit + lse).double() / LN2
    return ce, kl


@torch.no_grad()
def transfer_group_sums(
    lens: nn.Module,
    store: ActivationStore,
    readout: Readout,
    groups: np.ndarray | None = None,
    batch_size: int = 256,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Sums of transfer CE and KL per group of examples, all the bootstrap needs.

    Args:
        groups: ``[n]`` group id of every example in store order (documents, images);
            ``None``: one group.

    Returns:
        ``{"ce_bits", "kl_bits"}`` ``[G, L+1, L+1]`` sums and ``"count"`` ``[G]``, groups in
        sorted order of their ids.
    """
    store.check_readout(readout.fingerprint())
    n = store.n_layers + 1
    if groups is None:
        groups = np.zeros(store.n_examples, np.int64)
    if len(groups) != store.n_examples:
        raise ValueError(f"{len(groups)} group ids for {store.n_examples} examples")
    _, index = np.unique(groups, return_inverse=True)
    index = torch.from_numpy(index.astype(np.int64))
    n_groups = int(index.max()) + 1
    ce = torch.zeros(n_groups, n, n, dtype=torch.float64)
    kl = torch.zeros(n_groups, n, n, dtype=torch.float64)
    total = -(-store.n_examples // batch_size)
    start = 0
    for batch in tqdm(
        store.iter_batches(batch_size), total=total, desc="transfer", disable=not progress
    ):
        c, k = transfer_sums(lens, batch.hidden, readout, batch.targets)
        sel = index[start : start + len(c)]
        ce.index_add_(0, sel, c.cpu())
        kl.index_add_(0, sel, k.cpu())
        start += len(c)
    count = torch.bincount(index, minlength=n_groups).double()
    return {"ce_bits": ce.numpy(), "kl_bits": kl.numpy(), "count": count.numpy()}


def transfer_table(sums: dict[str, np.ndarray]) -> pd.DataFrame:
    """Long table with one row per (i, j): CE and KL of lens i on layer j, and penalties."""
    total = sums["count"].sum()
    ce = sums["ce_bits"].sum(0) / total
    kl = sums["kl_bits"].sum(0) / total
    n = len(ce)
    rows = []
    for i in range(n):
        for j in range(n):
            rows.append(
                {
                    "lens_layer": i,
                    "data_layer": j,
                    "distance": j - i,
                    "ce_bits": ce[i, j],
                    "kl_bits": kl[i, j],
                    "ce_penalty_bits": ce[i, j] - ce[j, j],
                    "kl_penalty_bits": kl[i, j] - kl[j, j],
                }
            )
    return pd.DataFrame(rows)


def transfer_matrix(
    lens: nn.Module,
    store: ActivationStore,
    readout: Readout,
    batch_size: int = 256,
    progress: bool = True,
) -> pd.DataFrame:
    """Long table with one row per (i, j): CE and KL of lens i on layer j, and penalties."""
    return transfer_table(transfer_group_sums(lens, store, readout, None, batch_size, progress))


def penalty_by_distance(table: pd.DataFrame) -> pd.DataFrame:
    """Mean CE and KL penalty by |i - j|, off the diagonal; relative distance added."""
    off = table[table["distance"] != 0].assign(abs_distance=lambda t: t["distance"].abs())
    n_layers = int(table["data_layer"].max())
    out = off.groupby("abs_distance", as_index=False)[["ce_penalty_bits", "kl_penalty_bits"]].mean()
    out["rel_distance"] = out["abs_distance"] / n_layers
    return out
