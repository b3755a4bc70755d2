"""Shared basis, or layers that barely change? Streamed geometry of a stored residual stream.

Two per-layer views of the representations ``h_0 .. h_L`` of an activation store
(:class:`iterlens.probing.store.ActivationStore`):

- :func:`relative_updates`: how much each block changes the representation,
  ``||h_{l+1} - h_l|| / ||h_l||``, and the cosine between ``h_l`` and ``h_{l+1}``;
- :func:`linear_cka`: linear centred kernel alignment between every pair of layers, which is
  invariant to an orthogonal change of basis and an isotropic scaling of either layer.

A small relative update with a high CKA says the layers barely change; a large update with a
high CKA says they change in magnitude or basis but keep the same linear geometry. Both are
computed in one pass over the store with float64 sums, one batch in memory at a time, so memory
does not grow with the number of examples.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch

from iterlens.probing.store import ActivationStore

UPDATE_COLUMNS = ["layer", "rel_update", "rel_update_ratio_of_means", "cos_prev", "n_examples"]
CKA_COLUMNS = ["layer_a", "layer_b", "cka"]


def relative_updates(store: ActivationStore, batch_size: int = 4096) -> pd.DataFrame:
    """The relative update of every block: one row per ``layer`` l in ``0 .. L - 1``.

    Row l is the update from ``h_l`` to ``h_{l+1}`` (``Δ = h_{l+1} - h_l``):

    - ``rel_update``: the *mean of ratios*, ``mean_n ||Δ_n|| / ||h_{l,n}||``, over the
      examples whose ``h_l`` is not zero;
    - ``rel_update_ratio_of_means``: the *ratio of root-mean-squares*,
      ``sqrt(mean_n ||Δ_n||²) / sqrt(mean_n ||h_{l,n}||²)`` over every example (less
      sensitive to examples with a tiny ``h_l``);
    - ``cos_prev``: the mean cosine between ``h_l`` and ``h_{l+1}``, over the examples where
      neither is zero;
    - ``n_examples``: the examples of the store.

    Memory: per-layer float64 sums only, plus one batch.
    """
    n_layers = store.n_layers
    sums = {
        key: torch.zeros(n_layers, dtype=torch.float64)
        for key in ("ratio", "n_ratio", "delta_sq", "h_sq", "cos", "n_cos")
    }
    n = 0
    for batch in store.iter_batches(batch_size):
        h = batch.hidden.to(torch.float64)  # [b, L + 1, d]
        before, after = h[:, :-1], h[:, 1:]
        norm_before = before.norm(dim=-1)  # [b, L]
        norm_after = after.norm(dim=-1)
        delta = (after - before).norm(dim=-1)
        has_before = norm_before > 0
        has_both = has_before & (norm_after > 0)
        ratio = torch.where(has_before, delta / norm_before.where(has_before, 1.0), 0.0)
        cos = (before * after).sum(-1) / (norm_before * norm_after).where(has_both, 1.0)
        sums["ratio"] += ratio.sum(0).cpu()
        sums["n_ratio"] += has_before.sum(0).cpu()
        sums["delta_sq"] += delta.square().sum(0).cpu()
        sums["h_sq"] += norm_before.square().sum(0).cpu()
        sums["cos"] += torch.where(has_both, cos, 0.0).sum(0).cpu()
        sums["n_cos"] += has_both.sum(0).cpu()
        n += h.shape[0]
    if n == 0:
        raise ValueError(f"store {store.folder} has no examples")
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    return pd.DataFrame(
        {
            "layer": range(n_layers),
            "rel_update": torch.where(
                sums["n_ratio"] > 0, sums["ratio"] / sums["n_ratio"], nan
            ).numpy(),
            "rel_update_ratio_of_means": torch.where(
                sums["h_sq"] > 0, (sums["delta_sq"] / sums["h_sq"]).sqrt(), nan
            ).numpy(),
            "cos_prev": torch.where(sums["n_cos"] > 0, sums["cos"] / sums["n_cos"], nan).numpy(),
            "n_examples": n,
        },
        columns=UPDATE_COLUMNS,
    )


def cka_memory_bytes(n_layers: int, d_model: int) -> int:
    """Bytes of the float64 sums :func:`linear_cka` keeps for ``n_layers`` layers of width d."""
    return n_layers * (n_layers + 1) // 2 * d_model * d_model * 8 + n_layers * d_model * 8


def linear_cka(
    store: ActivationStore,
    layers: Sequence[int] | None = None,
    max_examples: int | None = None,
    batch_size: int = 4096,
) -> pd.DataFrame:
    """Linear CKA between every pair of ``layers`` (default: all of ``0 .. L``), long format.

    ``CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)``, with ``X``, ``Y`` the
    ``[n, d]`` representations of two layers and ``Xc``, ``Yc`` their columns centred: the
    feature-space form, streamed by accumulating, for every pair ``a <= b``, the ``d x d`` sum
    ``S_ab = sum_n h_a h_b^T`` and each layer's sum of ``h``; then
    ``Xc^T Yc = S_ab - n mu_a mu_b^T``. The sums are of ``h`` minus the first batch's mean of
    its layer (a shift that leaves the centred matrices unchanged and keeps the float64
    subtraction well conditioned).

    Returns one row per ordered pair (``layer_a``, ``layer_b``, ``cka``), the diagonal (1)
    included; ``cka`` is NaN where a layer is constant over the examples.

    Memory: ``k (k + 1) / 2`` float64 ``d x d`` matrices for ``k`` layers
    (:func:`cka_memory_bytes`): 5.9 MB for ``d = 128`` and 9 layers, but 3.7 GB for
    ``d = 1000`` and 30 layers. For a large model pass fewer ``layers``; ``max_examples``
    caps the examples read (the first ones, in stored order).
    """
    layers = list(range(store.n_layers + 1)) if layers is None else [int(x) for x in layers]
    bad = [x for x in layers if not 0 <= x <= store.n_layers]
    if bad:
        raise ValueError(f"layers {bad} outside 0..{store.n_layers} of store {store.folder}")
    if max_examples is not None and max_examples < 1:
        raise ValueError(f"max_examples must be positive, got {max_examples}")
    k, d = len(layers), store.d_model
    shift = torch.zeros(k, d, dtype=torch.float64)
    sums = torch.zeros(k, d, dtype=torch.float64)
    # cross[a]: [d, k - a, d], the sums h_a h_b^T for b = a .. k - 1.
    cross = [torch.zeros(d, k - a, d, dtype=torch.float64) for a in range(k)]
    n = 0
    for batch in store.iter_batches(batch_size, layers=layers):
        h = batch.hidden.to(device="cpu", dtype=torch.float64)  # [b, k, d]
        if max_examples is not None:
            h = h[: max_examples - n]
        if n == 0:
            shift = h.mean(0)
        h = h - shift
        b = h.shape[0]
        sums += h.sum(0)
        for a in range(k):
            cross[a] += (h[:, a].T @ h[:, a:].reshape(b, -1)).reshape(d, k - a, d)
        n += b
        if max_examples is not None and n >= max_examples:
            break
    if n == 0:
        raise ValueError(f"store {store.folder} has no examples")
    mean = sums / n

    def centred(a: int, b: int) -> torch.Tensor:
        """``Xc^T Yc`` of layers ``layers[a]``, ``layers[b]`` (a <= b)."""
        return cross[a][:, b - a] - n * torch.outer(mean[a], mean[b])

    self_norm = torch.stack([torch.linalg.matrix_norm(centred(a, a)) for a in range(k)])
    cka = torch.full((k, k), float("nan"), dtype=torch.float64)
    for a in range(k):
        for b in range(a, k):
            denominator = self_norm[a] * self_norm[b]
            if denominator > 0:
                value = torch.linalg.matrix_norm(centred(a, b)).square() / denominator
                cka[a, b] = cka[b, a] = value
    return pd.DataFrame(
        [
            {"layer_a": la, "layer_b": lb, "cka": float(cka[a, b])}
            for a, la in enumerate(layers)
            for b, lb in enumerate(layers)
        ],
        columns=CKA_COLUMNS,
    )
