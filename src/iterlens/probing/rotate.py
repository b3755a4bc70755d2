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
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from iterlens.artifacts import MANIFEST, shard_path
from iterlens.probing.store import ActivationStore, write_manifest, write_shard


def layer_rotations(n_layers: int, d: int, seed: int) -> list[torch.Tensor]:
    """``Q_0..Q_L`` (float32, ``[d, d]``): random orthogonal for ``l < L``, identity at L.

    Each ``Q_l`` depends only on ``(seed, l)``, so every split of a model gets the same basis.
    """
    out = []
    for layer in range(n_layers):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + layer)
        q, r = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
        out.append((q * torch.sign(torch.diagonal(r))).float())  # Haar: fix column signs
    out.append(torch.eye(d))
    return out


def rotate_hidden(hidden: torch.Tensor, rotations: list[torch.Tensor]) -> torch.Tensor:
    """``hidden [n, L+1, d]`` with layer ``l`` mapped to ``Q_l h``; the last layer untouched."""
    if hidden.shape[1] != len(rotations):
        raise ValueError(f"{hidden.shape[1]} layers in the activations, {len(rotations)} rotations")
    rotated = hidden.clone()
    for layer, q in enumerate(rotations[:-1]):
        rotated[:, layer] = hidden[:, layer] @ q.T
    return rotated


def rotate_store(store: ActivationStore, out: str | Path, seed: int, progress: bool = True) -> dict:
    """Write the rotated twin of ``store`` to the folder ``out``; return its manifest.

    Shards are read (hash-verified) and written one at a time; the manifest, written last,
    keeps the source's readout fingerprint and records the source and the seed.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # a half-rotated store must not look complete
    rotations = layer_rotations(store.n_layers, store.d_model, seed)
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
    meta["rotated"] = {"source": str(store.folder), "seed": seed}
    return write_manifest(out, len(entries), meta)
