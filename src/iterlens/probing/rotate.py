"""The rotated twin of a probed model: a positive control for transfer and the shared lens.

The twin carries the same activations with layer ``l``'s representation replaced by
``Q_l h_l``, each ``Q_l`` a fixed random orthogonal matrix (seeded, drawn from the Haar
measure), and ``Q_L`` the identity. It is the model's own function computed in a different
basis at every layer but the last, so the readout, the final logits and every target are
unchanged (layer L is copied bit for bit), while no single lens should read all layers:

- the logit lens fails at every layer but the last;
- a per-layer affine translator (tuned lens) can undo ``Q_l`` and should match the original;
- transfer penalties and the shared-lens penalty should become large.

The twin is built from stored activations alone (no forward pass) and is then probed by the
same workflow rules as any other model.

Each ``Q_l`` is special orthogonal (a Haar draw from QR with one column's sign flipped where
its determinant is -1; before the dose-response control the twin kept the det -1 draws), so
it has a real logarithm ``S_l = logm(Q_l)``, a skew-symmetric matrix. The *partial* twin at
``t`` in [0, 1] rotates layer ``l`` by ``Q_l(t) = expm(t S_l)``: ``t = 0`` is the model itself,
``t = 1`` the rotated twin, and ``Q_l(t) Q_l(s) = Q_l(t + s)``. Its probes trace a dose
response: how fast the transfer and shared-lens penalties grow with the rotation's size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from iterlens.artifacts import MANIFEST, shard_path
from iterlens.probing.store import ActivationStore, write_manifest, write_shard


def _haar_special_orthogonal(d: int, seed: int, layer: int) -> torch.Tensor:
    """A Haar-random ``[d, d]`` rotation (float64, det +1) of ``(seed, layer)``."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + layer)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))  # Haar on O(d): fix column signs
    if torch.linalg.det(q) < 0:  # no real logarithm: make it special orthogonal
        q[:, 0] = -q[:, 0]
    return q


def rotation_generator(q: torch.Tensor) -> torch.Tensor:
    """The real skew-symmetric ``S`` (float64) with ``expm(S) = q``, for a rotation ``q``.

    ``scipy.linalg.logm`` (the principal logarithm; scipy comes with scikit-learn), made
    exactly skew-symmetric.

    Raises:
        ValueError: ``q`` has no real logarithm near it (not a rotation, or an eigenvalue
            at -1 where the principal logarithm is undefined).
    """
    from scipy.linalg import logm

    q64 = q.double().numpy()
    log = logm(q64)
    if np.iscomplexobj(log):
        if np.abs(log.imag).max() > 1e-8:
            raise ValueError("the rotation has no real principal logarithm")
        log = log.real
    s = torch.from_numpy((log - log.T) / 2)
    if not torch.allclose(torch.linalg.matrix_exp(s), q.double(), atol=1e-8):
        raise ValueError("logm did not invert expm: not a rotation, or ill-conditioned")
    return s


def layer_rotations(n_layers: int, d: int, seed: int, t: float = 1.0) -> list[torch.Tensor]:
    """``Q_0(t)..Q_L(t)`` (float32, ``[d, d]``): random rotations for ``l < L``, identity at L.

    ``Q_l(t) = expm(t S_l)`` with ``S_l`` the generator of the Haar rotation ``Q_l``
    (:func:`rotation_generator`): ``t = 1`` returns ``Q_l`` itself (the rotated twin), ``t = 0``
    the identity exactly. Each ``Q_l`` depends only on ``(seed, l)``, so every split of a
    model, and every ``t``, gets the same basis.

    Raises:
        ValueError: ``t`` is not in [0, 1].
    """
    t = float(t)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must be in [0, 1] (0: the model, 1: the rotated twin), got {t}")
    out = []
    for layer in range(n_layers):
        if t == 0.0:
            out.append(torch.eye(d))
            continue
        q = _haar_special_orthogonal(d, seed, layer)
        if t != 1.0:
            q = torch.linalg.matrix_exp(t * rotation_generator(q))
        out.append(q.float())
    out.append(torch.eye(d))
    return out


def rotate_hidden(hidden: torch.Tensor, rotations: list[torch.Tensor]) -> torch.Tensor:
    """``hidden [n, L+1, d]`` with layer ``l`` mapped to ``Q_l h``; the last layer untouched."""
    if hidden.shape[1] != len(rotations):
        raise ValueError(f"{hidden.shape[1]} layers in the activations, {len(rotations)} rotations")
    rotated = hidden.clone()
    for layer, q in enumerate(rotations[:-1]):
        if torch.equal(q, torch.eye(q.shape[0], dtype=q.dtype)):
            continue  # the identity (t = 0): copied bit for bit, inf and NaN included
        rotated[:, layer] = hidden[:, layer] @ q.T
    return rotated


def rotate_store(
    store: ActivationStore, out: str | Path, seed: int, progress: bool = True, t: float = 1.0
) -> dict:
    """Write the rotated twin of ``store`` (at ``t``: :func:`layer_rotations`) to ``out``.

    Shards are read (hash-verified) and written one at a time; the manifest, written last,
    keeps the source's readout fingerprint and records the source, the seed and ``t`` under
    ``rotated``. Returns the manifest.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # a half-rotated store must not look complete
    rotations = layer_rotations(store.n_layers, store.d_model, seed, t)
    entries = store.manifest["shards"]
    for index, entry in enumerate(tqdm(entries, desc="rotate", disable=not progress)):
        shard = store.load_shard(index)
        write_shard(
            shard_path(out, index),
            rotate_hidden(shard["hidden"].float(), rotations),
            shard["targets"],
            shard["inputs"],
            n_bytes=entry["n_bytes"],
            groups=shard.get("groups"),
            dtype=shard["hidden"].dtype,  # a float16 lens-fit store stays float16
        )
    skip = {"format_version", "n_layers", "d_model", "n_examples", "n_bytes", "shards"}
    meta = {k: v for k, v in store.manifest.items() if k not in skip}
    meta["rotated"] = {"source": str(store.folder), "seed": seed, "t": float(t)}
    return write_manifest(out, len(entries), meta)
