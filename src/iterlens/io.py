"""Atomic file output: everything is written to a temporary name, then renamed."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import torch

# errno -> what the user is told; anything that means "the disk (or a quota) is full".
_FULL = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large (file-size limit)",
}


class DiskFullError(OSError):
    """Writing an output failed because the disk, a quota or the file-size limit is full."""


def _full_errno(err: BaseException) -> int | None:
    """The errno of ``err`` (or of its causes) if it means the disk is full, else None.

    Some writers (safetensors) raise their own error whose message ends "(os error 28)".
    """
    while err is not None:
        code = getattr(err, "errno", None)
        if code is None:
            found = re.search(r"os error (\d+)", str(err))
            code = int(found.group(1)) if found else None
        if code in _FULL:
            return code
        err = err.__cause__ or err.__context__
    return None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    """Flush ``path`` (a file, or every file and folder under it) to disk."""
    for name in [path, *(sorted(path.rglob("*")) if path.is_dir() else [])]:
        _fsync(name)


def _remove_stale_temporaries(path: Path) -> None:
    """Remove temporaries of ``path`` that a killed writer left (they only hold disk space)."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")
    for old in path.parent.iterdir():
        if pattern.fullmatch(old.name):
            shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    Works for files and directories. The new content is flushed to disk before the rename, so
    even a power cut leaves the old output or the whole new one. On error the temporary is
    removed, so no half-written output ever carries the final name; a full disk is reported
    as :class:`DiskFullError` naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        _fsync_tree(target)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(target, path)
        _fsync(path.parent)  # the rename itself
    except Exception as err:
        code = _full_errno(err)
        if code is None:
            raise
        raise DiskFullError(
            code,
            f"{_FULL[code]} while writing {path}; nothing was kept "
            "under that name. Free some space (or raise the limit) and "
            "run the same command again: it resumes",
        ) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as pretty, key-sorted JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file, naming the file if it is missing or corrupt."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"missing artifact: {path}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"corrupt JSON artifact {path}: {err}") from None


def write_table(df: pd.DataFrame, path: str | Path) -> None:
    """Write a table as CSV with fixed float formatting (deterministic bytes), atomically."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`write_table`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"missing table: {path}")
    return pd.read_csv(path)


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    """Write a table as Parquet (pyarrow, no index), atomically."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, engine="pyarrow")


def read_parquet(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`write_parquet`, naming the file if it is missing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"missing table: {path}")
    return pd.read_parquet(path, engine="pyarrow")


def save_safetensors(
    tensors: Mapping[str, torch.Tensor], path: str | Path, metadata: Mapping[str, str] | None = None
) -> None:
    """Write tensors (made contiguous, detached) and string metadata, atomically."""
    from safetensors.torch import save_file

    clean = {k: v.detach().contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(clean, str(tmp), metadata=dict(metadata) if metadata else None)


def fingerprint(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 (first 16 hex digits) over named tensors, in name order, as float32 bytes.

    Recorded beside saved readouts and lenses, and checked when they are loaded, so a file
    whose numbers changed (a flipped byte) is refused.
    """
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(tensors.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def load_safetensors(path: str | Path, what: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a safetensors file and its metadata; name ``what`` it is when missing or corrupt.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not a readable safetensors file.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"missing {what}: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return load_file(str(path)), meta
    except Exception as err:  # safetensors raises several error types
        raise ValueError(f"corrupt {what} file {path}: {err}") from None
