"""On-disk activation store: every layer's representation, streamed in shards.

A store is a folder holding ``shard-NNNNN.safetensors`` files and, written last,
``manifest.json``. Each shard holds

- ``hidden``  ``[n, L + 1, d]`` representation of every layer (l = 0 is the input side),
- ``targets`` ``[n]`` next token (LM) or class (vision),
- ``inputs``  ``[n]`` current input token (LM) or -1 (vision).

The final logits are not stored: they are ``R(hidden[:, L])`` by construction and are
recomputed from the readout, which extraction checks against the model's own logits.
Readers load one shard at a time, so memory does not grow with the token count, and check
each shard against the SHA-256 the manifest records the first time they load it (hashed from
a memory map of the file they are about to read), so a corrupted or swapped shard is refused
by name.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from iterlens.artifacts import MANIFEST, shard_path
from iterlens.io import read_json, save_safetensors, write_json

FORMAT_VERSION = 1
STORE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
"""The dtypes a store may hold ``hidden`` in (``extract.store_dtype``); readers get float32."""


def _sha256(path: Path) -> str:
    """SHA-256 of a file, hashed from a memory map (no copy of its bytes)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return hashlib.sha256().hexdigest()
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return hashlib.sha256(mapped).hexdigest()


def write_shard(
    path: str | Path,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    inputs: torch.Tensor | None = None,
    n_bytes: int = 0,
    dtype: torch.dtype = torch.float32,
    groups: torch.Tensor | None = None,
) -> None:
    """Write one shard atomically. ``n_bytes`` counts UTF-8 bytes of the targets (LM).

    ``hidden`` is stored in ``dtype`` (one of :data:`STORE_DTYPES`' values; float16 halves a
    lens-fit store); readers always get float32. ``groups`` (optional) is each example's
    bootstrap group: its document for an LM.
    """
    if hidden.ndim != 3 or targets.shape != hidden.shape[:1]:
        raise ValueError(
            f"bad shard shapes: hidden {tuple(hidden.shape)}, targets {tuple(targets.shape)}"
        )
    if inputs is None:
        inputs = torch.full_like(targets, -1)
    tensors = {
        "hidden": hidden.to(dtype),
        "targets": targets.to(torch.int64),
        "inputs": inputs.to(torch.int64),
    }
    if groups is not None:
        if groups.shape != targets.shape:
            raise ValueError(f"bad shard groups shape {tuple(groups.shape)}")
        tensors["groups"] = groups.to(torch.int64)
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
    """Read-only view of a store folder; validates the manifest and shard files on open.

    Args:
        folder: the store folder.
        verify_hashes: check each shard's SHA-256 against the manifest the first time this
            object loads it (on by default; the cost is one hash of bytes read anyway, once
            per shard and process: see ``benchmarks/store_hashes.py``).
        device: where batches are placed (the data is read on the CPU).
    """

    def __init__(
        self, folder: str | Path, verify_hashes: bool = True, device: str | torch.device = "cpu"
    ):
        self.folder = Path(folder)
        self.device = torch.device(device)
        self.verify_hashes = verify_hashes
        self._verified: set[int] = set()
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

    def _verified_path(self, index: int) -> Path:
        """Path of shard ``index``, its SHA-256 checked against the manifest once per store."""
        entry = self.manifest["shards"][index]
        path = self.folder / entry["file"]
        if self.verify_hashes and index not in self._verified:
            if _sha256(path) != entry["sha256"]:
                raise ValueError(
                    f"shard {path} is corrupt or swapped: its sha256 differs from the one in "
                    f"{self.folder / MANIFEST}"
                )
            self._verified.add(index)
        return path

    def load_shard(self, index: int) -> dict[str, torch.Tensor]:
        """Load shard ``index`` fully into memory, verifying its bytes against the manifest.

        Raises:
            ValueError: the shard's SHA-256 differs from the manifest's (a corrupted or
                swapped file), or it is not a readable safetensors file.
        """
        path = self._verified_path(index)
        try:
            return load_file(str(path))
        except Exception as err:
            raise ValueError(f"corrupt shard {path}: {err}") from None

    def column(self, name: str) -> torch.Tensor | None:
        """One per-example tensor (``targets``, ``inputs``, ``groups``) of the whole store.

        Read shard by shard, that tensor alone (never ``hidden``), each shard verified as by
        :meth:`load_shard`; the result is in store order, on the CPU.

        Returns:
            None if some shard lacks ``name`` (``groups`` is optional).
        """
        if name == "hidden":
            raise ValueError("the activations are streamed (iter_batches), never read whole")
        parts = []
        for index in range(len(self.manifest["shards"])):
            path = self._verified_path(index)
            try:
                with safe_open(str(path), framework="pt") as f:
                    if name not in f.keys():
                        return None
                    parts.append(f.get_tensor(name))
            except Exception as err:
                raise ValueError(f"corrupt shard {path}: {err}") from None
        return torch.cat(parts)

    def _kept(self, holdout: int) -> list[int]:
        """Examples of each shard left once the last ``holdout`` of the store are set aside."""
        if not 0 <= holdout < self.n_examples:
            raise ValueError(
                f"cannot hold out {holdout} of the {self.n_examples} examples of {self.folder}"
            )
        kept, left = [], self.n_examples - holdout
        for shard in self.manifest["shards"]:
            kept.append(min(shard["n"], left))
            left -= kept[-1]
        return kept

    def _hidden(self, shard: dict, layers: Sequence[int] | None) -> torch.Tensor:
        hidden = shard["hidden"] if layers is None else shard["hidden"][:, list(layers)]
        return hidden.float()

    def tail(self, n: int, layers: Sequence[int] | None = None) -> Batch:
        """The last ``n`` examples of the store in one batch (a held-out slice)."""
        kept = self._kept(n)
        parts = []
        for s, shard in enumerate(self.manifest["shards"]):
            if kept[s] < shard["n"]:
                data = self.load_shard(s)
                sel = slice(kept[s], None)
                parts.append(
                    (self._hidden(data, layers)[sel], data["targets"][sel], data["inputs"][sel])
                )
        return Batch(*(torch.cat(column).to(self.device) for column in zip(*parts, strict=True)))

    def iter_batches(
        self,
        batch_size: int,
        layers: Sequence[int] | None = None,
        generator: torch.Generator | None = None,
        holdout: int = 0,
    ) -> Iterator[Batch]:
        """Yield batches over all examples, one shard in memory at a time.

        With ``generator`` the shard order and the examples within each shard are
        shuffled (deterministically); without, the order is the stored order. The last
        ``holdout`` examples of the store (see :meth:`tail`) are left out. Batches are
        float32 on the store's ``device``, whatever dtype the store holds.
        """
        kept = self._kept(holdout)
        n_shards = len(self.manifest["shards"])
        order = (
            torch.randperm(n_shards, generator=generator).tolist()
            if generator is not None
            else range(n_shards)
        )
        for s in order:
            if kept[s] == 0:
                continue
            shard = self.load_shard(s)
            hidden = self._hidden(shard, layers)[: kept[s]].to(self.device)
            targets, inputs = shard["targets"].to(self.device), shard["inputs"].to(self.device)
            n = hidden.shape[0]
            idx = torch.randperm(n, generator=generator) if generator is not None else None
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                sel = slice(start, stop) if idx is None else idx[start:stop]
                yield Batch(hidden[sel], targets[sel], inputs[sel])

    def iter_steps(
        self,
        steps: int,
        batch_size: int,
        layers: Sequence[int] | None,
        seed: int,
        holdout: int = 0,
    ) -> Iterator[Batch]:
        """Yield exactly ``steps`` shuffled training batches, cycling over epochs."""
        gen = torch.Generator().manual_seed(seed)
        done = 0
        while done < steps:
            for batch in self.iter_batches(batch_size, layers, gen, holdout):
                if done == steps:
                    return
                yield batch
                done += 1
