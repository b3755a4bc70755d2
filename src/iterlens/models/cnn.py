"""The vision control's models: Inception-style CNNs, plain and with identity skips.

The probed representation of a CNN at layer ``l`` is the output of module ``l`` averaged over
space (``l = 0`` the stem), so every layer has the same width. The final readout is, as in a
transformer, a final LayerNorm followed by the ``fc`` head: ``fc(norm(h_L)) == model(x)``
exactly. That norm makes every readout of the study blind to the scale of ``h``, which grows
more than tenfold from the stem to the last module: without it, a lens fitted to an early layer
must amplify by that factor, and its transfer penalty on a later layer measures the scale,
not the basis. The plain twin (``output = module(x)``) and the residual twin (``output = x +
0.2 module(x)``, an identity skip) have the same parameters and, for the same seed, the same
initial weights; only the skips differ. There is no batch normalisation, so train and eval
modes compute the same function.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from iterlens import artifacts
from iterlens.io import atomic_path, load_safetensors, read_json, save_safetensors
from iterlens.models.training import loss_and_accuracy, train, warmup_cosine

RESIDUAL_SCALE = 0.2
"""Scale of the module output added to the identity skip (Inception-ResNet uses 0.1-0.3):
without it the unnormalised residual stream grows about 2x per module at initialisation."""


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

    def __init__(self, width: int, residual: bool = False, residual_scale: float = RESIDUAL_SCALE):
        super().__init__()
        if width < 4:
            raise ValueError(f"width must be at least 4 (four branches), got {width}")
        c = width // 4
        self.width = width
        self.residual = residual
        self.residual_scale = residual_scale
        self.branch1 = _conv_relu(width, width - 3 * c, 1)
        self.branch3 = nn.Sequential(_conv_relu(width, c, 1), _conv_relu(c, c, 3))
        self.branch5 = nn.Sequential(
            _conv_relu(width, c, 1), _conv_relu(c, c, 3), _conv_relu(c, c, 3)
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1), _conv_relu(width, c, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[b, width, H, W]`` to ``[b, width, H, W]``."""
        out = torch.cat(
            [self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1
        )
        return x + self.residual_scale * out if self.residual else out


class InceptionNet(nn.Module):
    """Stem, stages of Inception modules with 2x2 max-pools between stages, pool, norm, fc.

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
        final_norm: a LayerNorm between the last pooled representation and ``fc`` (the
            transformer's final norm); ``False`` builds the unnormalised head of older nets.
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 10,
        width: int = 32,
        stages: Sequence[int] = (2, 2, 2),
        residual: bool = False,
        stem_stride: int = 2,
        final_norm: bool = True,
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
            nn.ModuleList(InceptionModule(width, residual) for _ in range(n)) for n in stages
        )
        self.pool = nn.MaxPool2d(2)
        self.final_norm = final_norm
        self.norm = nn.LayerNorm(width) if final_norm else nn.Identity()
        self.fc = nn.Linear(width, n_classes)

    @property
    def n_layers(self) -> int:
        """L: the number of Inception modules; representations exist for l = 0..L."""
        return sum(self.stages_spec)

    @property
    def config(self) -> dict:
        """Constructor arguments (JSON-serialisable)."""
        return {
            "in_channels": self.in_channels,
            "n_classes": self.n_classes,
            "width": self.width,
            "stages": list(self.stages_spec),
            "residual": self.residual,
            "stem_stride": self.stem_stride,
            "final_norm": self.final_norm,
        }

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
        over space; ``fc(norm(representations(x)[:, -1])) == forward(x)``.
        """
        return torch.stack(self._pooled(x), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[b, n_classes]`` of images ``[b, in_channels, H, W]``."""
        return self.fc(self.norm(self._pooled(x)[-1]))


def init_cnn(
    width: int,
    stages: Sequence[int],
    residual: bool,
    seed: int,
    n_classes: int = 10,
    in_channels: int = 1,
    stem_stride: int = 2,
    final_norm: bool = True,
) -> InceptionNet:
    """A freshly initialised :class:`InceptionNet` (eval mode).

    The parameters are created under ``torch.manual_seed(seed)`` in the same order for both
    twins, so the plain and the residual net get identical initial weights for one seed.
    """
    torch.manual_seed(seed)
    model = InceptionNet(
        in_channels=in_channels,
        n_classes=n_classes,
        width=width,
        stages=stages,
        residual=residual,
        stem_stride=stem_stride,
        final_norm=final_norm,
    )
    return model.eval()


def save_cnn(model: InceptionNet, folder: str | Path) -> None:
    """Write ``model.safetensors`` and ``config.json`` (constructor arguments) atomically."""
    config = {"family": "inception", **model.config}
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        save_safetensors(model.state_dict(), tmp / artifacts.MODEL_WEIGHTS, {"family": "inception"})
        (tmp / artifacts.MODEL_CONFIG).write_text(
            json.dumps(config, indent=2, sort_keys=True) + "\n"
        )


def load_cnn(folder: str | Path) -> InceptionNet:
    """Load a model written by :func:`save_cnn` (eval mode).

    Raises:
        FileNotFoundError: ``config.json`` or ``model.safetensors`` is missing (named).
        ValueError: either file is corrupt or does not fit the configuration (named).
    """
    folder = Path(folder)
    config_path = folder / artifacts.MODEL_CONFIG
    config = read_json(config_path)
    state, _ = load_safetensors(folder / artifacts.MODEL_WEIGHTS, "CNN weights")
    try:
        model = InceptionNet(
            in_channels=int(config["in_channels"]),
            n_classes=int(config["n_classes"]),
            width=int(config["width"]),
            stages=config["stages"],
            residual=bool(config["residual"]),
            stem_stride=int(config["stem_stride"]),
            final_norm=bool(config.get("final_norm", False)),  # older nets had none
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"corrupt CNN config {config_path}: {err!r}") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"CNN weights in {folder} do not fit {config_path}: {err}") from None
    return model.eval()


def is_cnn_dir(folder: str | Path) -> bool:
    """True if ``folder`` holds a CNN written by :func:`save_cnn` (not a causal LM)."""
    path = Path(folder) / artifacts.MODEL_CONFIG
    return path.exists() and read_json(path).get("family") == "inception"


def n_parameters(model: nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


def _batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, gen: torch.Generator):
    """Shuffled ``(x, y)`` mini-batches, epoch after epoch; yields ``(x, y, epoch_end)``."""
    n = len(y)
    while True:
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            yield x[idx], y[idx], start + batch_size >= n


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Share of ``x`` whose top-1 class under ``model`` equals ``y``."""
    return _loss_and_accuracy(model, x, y, batch_size)[1]


def _loss_and_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512
) -> tuple[float, float]:
    was_training = model.training
    model.eval()
    out = loss_and_accuracy(
        model,
        ((x[s : s + batch_size], y[s : s + batch_size]) for s in range(0, len(y), batch_size)),
    )
    model.train(was_training)
    return out


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
    total = epochs * -(-n // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)

    def loss_fn(batch):
        xb, yb, epoch_end = batch
        model.train()
        logits = model(xb)
        return F.cross_entropy(logits, yb), (logits.detach(), yb, epoch_end)

    rows: list[dict] = []
    epoch = {"loss_sum": 0.0, "correct": 0}

    def on_step(step: int, loss: float, aux) -> dict | None:
        logits, yb, epoch_end = aux
        epoch["loss_sum"] += loss * len(yb)
        epoch["correct"] += (logits.argmax(-1) == yb).sum().item()
        if not epoch_end:
            return None
        row = {
            "epoch": len(rows) + 1,
            "train_loss_nats": epoch["loss_sum"] / n,
            "train_acc": epoch["correct"] / n,
            "val_loss_nats": float("nan"),
            "val_acc": float("nan"),
        }
        if x_val is not None:
            row["val_loss_nats"], row["val_acc"] = _loss_and_accuracy(model, x_val, y_val)
        rows.append(row)
        epoch.update(loss_sum=0.0, correct=0)
        return {"loss": f"{row['train_loss_nats']:.3f}", "val_acc": f"{row['val_acc']:.3f}"}

    seconds = train(
        list(model.parameters()),
        opt,
        warmup_cosine(max(1, total // 20), total),
        _batches(x, y, batch_size, gen),
        loss_fn,
        steps=total,
        on_step=on_step,
        desc="train CNN",
        progress=progress,
    )
    model.eval()
    curve = pd.DataFrame(rows)
    curve.attrs["seconds"] = seconds
    return curve
