"""On-disk activation store: every layer's representation, streamed in shards.

A store is a folder holding ``shard-NNNNN.safetensors`` files and, written last,
``manifest.json``. Each shard holds

- ``hidden``  ``[n, L + 1, d]`` representation of every layer (l = 0 is the input side),
- ``targets`` ``[n]`` next token (LM) or class (vision),
- ``inputs``  ``[n]`` current input token (LM) or -1 (vision).

The final logits are not stored: they are ``R(hidden[:, L])`` by construction and are
recomputed from the readout, which extraction checks against the model's own logits.
Readers load one shard at a time, so memory does not grow with the token count.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from iterlens.artifacts import MANIFEST, shard_path
from iterlens.io import read_json, save_safetensors, write_json

FORMAT_VERSION = 1


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_shard(
    path: str | Path,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    inputs: torch.Tensor | None = None,
    n_bytes: int = 0,
) -> None:
    """Write one shard atomically. ``n_bytes`` counts UTF-8 bytes of the targets (LM)."""
    if hidden.ndim != 3 or targets.shape != hidden.shape[:1]:
        raise ValueError(
            f"bad shard shapes: hidden {tuple(hidden.shape)}, targets {tuple(targets.shape)}"
        )
    if inputs is None:
        inputs = torch.full_like(targets, -1)
    tensors = {
        "hidden": hidden.to(torch.float32),
        "targets": targets.to(torch.int64),
        "inputs": inputs.to(torch.int64),
    }
    save_safetensors(tensors, path, {"n_bytes": str(int(n_bytes))})


def shard_is_complete(path: str | Path) -> bool:
    """True if ``path`` is a readable shard (used to resume interrupted extraction)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {"hidden", "targets", "inputs"} <= set(f.keys())
    except Exception:
        return False


def write_manifest(folder: str | Path, n_shards: int, meta: dict) -> dict:
    """Check every shard, then write ``manifest.json`` last; return the manifest."""
    folder = Path(folder)
    shards, n_examples, n_bytes, shape = [], 0, 0, None
    for i in range(n_shards):
        path = shard_path(folder, i)
        if not shard_is_complete(path):
            raise FileNotFoundError(f"shard {path} is missing or unreadable")
        with safe_open(str(path), framework="pt") as f:
            n, n_layers, d = f.get_slice("hidden").get_shape()
            nb = int((f.metadata() or {}).get("n_bytes", 0))
        if shape is not None and (n_layers, d) != shape:
            raise ValueError(f"shard {path} has {(n_layers, d)} layers x width, expected {shape}")
        shape = (n_layers, d)
        shards.append(
            {
                "file": path.name,
                "n": n,
                "n_bytes": nb,
                "sha256": _sha256(path),
                "size": path.stat().st_size,
            }
        )
        n_examples += n
        n_bytes += nb
    if shape is None:
        raise ValueError(f"no shards in {folder}")
    manifest = {
        **meta,
        "format_version": FORMAT_VERSION,
        "n_layers": shape[0] - 1,
        "d_model": shape[1],
        "n_examples": n_examples,
        "n_bytes": n_bytes,
        "shards": shards,
    }
    write_json(manifest, folder / MANIFEST)
    return manifest


def finalize_store(
    folder: str | Path, n_shards: int, readout_fingerprint: str, domain: str, **meta
) -> dict:
    """Write the manifest of a store whose ``n_shards`` shards are all written.

    The manifest records the readout the activations were extracted with, so lenses,
    evaluation and transfer refuse any other readout.
    """
    return write_manifest(
        folder, n_shards, {"domain": domain, "readout_fingerprint": readout_fingerprint, **meta}
    )


@dataclass
class Batch:
    """A batch of examples: ``hidden [b, n_sel_layers, d]``, ``targets [b]``, ``inputs [b]``."""

    hidden: torch.Tensor
    targets: torch.Tensor
    inputs: torch.Tensor


class ActivationStore:
    """Read-only view of a store folder; validates the manifest and shard files on open."""

    def __init__(self, folder: str | Path, verify_hashes: bool = False):
        self.folder = Path(folder)
        manifest_path = self.folder / MANIFEST
        if not manifest_path.exists():
            raise FileNotFoundError(
                f"no activation store at {self.folder} ({MANIFEST} missing: extraction "
                f"did not finish)"
            )
        self.manifest = read_json(manifest_path)
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"store {self.folder} has format "
                f"{self.manifest.get('format_version')}, expected {FORMAT_VERSION}"
            )
        for shard in self.manifest["shards"]:
            path = self.folder / shard["file"]
            if not path.exists() or path.stat().st_size != shard["size"]:
                raise ValueError(
                    f"shard {path} is missing or truncated (expected {shard['size']} bytes)"
                )
            if verify_hashes and _sha256(path) != shard["sha256"]:
                raise ValueError(f"shard {path} is corrupt (sha256 mismatch)")

    @property
    def n_layers(self) -> int:
        """L: the number of blocks; representations exist for l = 0..L."""
        return int(self.manifest["n_layers"])

    @property
    def d_model(self) -> int:
        """Width of every representation."""
        return int(self.manifest["d_model"])

    @property
    def n_examples(self) -> int:
        """Number of examples (tokens or images) in the store."""
        return int(self.manifest["n_examples"])

    @property
    def n_bytes(self) -> int:
        """UTF-8 bytes of all target tokens (LM); 0 for vision."""
        return int(self.manifest.get("n_bytes", 0))

    def check_readout(self, fingerprint: str) -> None:
        """Refuse a readout other than the one the activations were extracted with."""
        mine = self.manifest.get("readout_fingerprint")
        if mine and mine != fingerprint:
            raise ValueError(
                f"readout mismatch: store {self.folder} was extracted with readout {mine}, "
                f"got {fingerprint}"
            )

    def load_shard(self, index: int) -> dict[str, torch.Tensor]:
        """Load shard ``index`` fully into memory."""
        path = self.folder / self.manifest["shards"][index]["file"]
        try:
            return load_file(str(path))
        except Exception as err:
            raise ValueError(f"corrupt shard {path}: {err}") from None

    def iter_batches(
        self,
        batch_size: int,
        layers: Sequence[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> Iterator[Batch]:
        """Yield batches over all examples, one shard in memory at a time.

        With ``generator`` the shard order and the examples within each shard are
        shuffled (deterministically); without, the order is the stored order.
        """
        n_shards = len(self.manifest["shards"])
        order = (
            torch.randperm(n_shards, generator=generator).tolist()
            if generator is not None
            else range(n_shards)
        )
        for s in order:
            shard = self.load_shard(s)
            hidden = shard["hidden"] if layers is None else shard["hidden"][:, list(layers)]
            n = hidden.shape[0]
            idx = torch.randperm(n, generator=generator) if generator is not None else None
            for start in range(0, n, batch_size):
                stop = start + batch_size
                sel = slice(start, stop) if idx is None else idx[start:stop]
                yield Batch(hidden[sel], shard["targets"][sel], shard["inputs"][sel])

    def iter_steps(
        self, steps: int, batch_size: int, layers: Sequence[int] | None, seed: int
    ) -> Iterator[Batch]:
        """Yield exactly ``steps`` shuffled training batches, cycling over epochs."""
        gen = torch.Generator().manual_seed(seed)
        done = 0
        while done < steps:
            for batch in self.iter_batches(batch_size, layers, gen):
                if done == steps:
                    return
                yield batch
                done += 1
