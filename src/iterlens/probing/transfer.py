"""Cross-layer transfer: the lens trained for layer i applied to layer j.

``transfer_ce[i, j] = ce(lens_i on h_j) - ce(lens_j on h_j)`` (bits), and the same with
KL to the final distribution. The whole matrix is computed in one pass over the store:
per batch, all L+1 translations of h_j are stacked and decoded by one readout call.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from iterlens.probing.metrics import LN2
from iterlens.probing.readout import Readout
from iterlens.probing.store import ActivationStore


@torch.no_grad()
def transfer_sums(
    lens: nn.Module, hidden: torch.Tensor, readout: Readout, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums over a batch of CE and KL (bits) for every (lens layer i, data layer j).

    Args:
        lens: a lens with ``transform_hidden(h, i)`` (tuned or shared).
        hidden: ``[b, L+1, d]``.

    Returns:
        ``(ce, kl)``, each ``[L+1, L+1]`` indexed ``[i, j]``.
    """
    n = hidden.shape[1]
    final_logp = torch.log_softmax(readout(hidden[:, -1]), -1)
    final_p = final_logp.exp()
    neg_entropy = (final_p * final_logp).sum(-1)  # [b]
    ce = torch.zeros(n, n, dtype=torch.float64)
    kl = torch.zeros(n, n, dtype=torch.float64)
    for j in range(n):
        h = hidden[:, j]
        translated = torch.stack([lens.transform_hidden(h, i) for i in range(n)])  # [i, b, d]
        logits = readout(translated)  # [i, b, V]
        lse = torch.logsumexp(logits, -1)  # [i, b]
        # CE = lse - logit[target];  KL = sum p log p - sum p logit + lse
        target_logit = logits.gather(-1, targets[None, :, None].expand(n, -1, 1))[..., 0]
        p_dot_logit = torch.einsum("ibv,bv->ib", logits, final_p)
        ce[:, j] = (lse - target_logit).sum(-1).double() / LN2
        kl[:, j] = (neg_entropy[None] - p_dot_logit + lse).sum(-1).double() / LN2
    return ce, kl


@torch.no_grad()
def transfer_matrix(
    lens: nn.Module,
    store: ActivationStore,
    readout: Readout,
    batch_size: int = 256,
    progress: bool = True,
) -> pd.DataFrame:
    """Long table with one row per (i, j): CE and KL of lens i on layer j, and penalties."""
    store.check_readout(readout.fingerprint())
    n = store.n_layers + 1
    ce = torch.zeros(n, n, dtype=torch.float64)
    kl = torch.zeros(n, n, dtype=torch.float64)
    total = -(-store.n_examples // batch_size)
    for batch in tqdm(
        store.iter_batches(batch_size), total=total, desc="transfer", disable=not progress
    ):
        c, k = transfer_sums(lens, batch.hidden, readout, batch.targets)
        ce += c
        kl += k
    ce /= store.n_examples
    kl /= store.n_examples
    rows = []
    for i in range(n):
        for j in range(n):
            rows.append(
                {
                    "lens_layer": i,
                    "data_layer": j,
                    "distance": j - i,
                    "ce_bits": ce[i, j].item(),
                    "kl_bits": kl[i, j].item(),
                    "ce_penalty_bits": (ce[i, j] - ce[j, j]).item(),
                    "kl_penalty_bits": (kl[i, j] - kl[j, j]).item(),
                }
            )
    return pd.DataFrame(rows)


def penalty_by_distance(table: pd.DataFrame) -> pd.DataFrame:
    """Mean CE and KL penalty by |i - j|, off the diagonal; relative distance added."""
    off = table[table["distance"] != 0].assign(abs_distance=lambda t: t["distance"].abs())
    n_layers = int(table["data_layer"].max())
    out = off.groupby("abs_distance", as_index=False)[["ce_penalty_bits", "kl_penalty_bits"]].mean()
    out["rel_distance"] = out["abs_distance"] / n_layers
    return out
