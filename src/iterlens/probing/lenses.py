"""Lenses: maps (layer l, representation h) -> logits, for LMs and CNNs alike.

=================  =================================  ==============================
lens               formula                            trained on
=================  =================================  ==============================
logit              R(h)                               nothing
tuned              R(h + A_l h + b_l), A, b start 0   KL to final logits
shared             R(h + A h + b), one A, b           KL to final, all layers
free probe         W_l h + c_l, from zero             cross-entropy to targets
=================  =================================  ==============================

The tuned lens *is* ``tuned_lens.TunedLens`` (so saved LM lenses load in that package);
the readout passed to it is an :class:`iterlens.probing.readout.Readout`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm
from tuned_lens import TunedLens
from tuned_lens.nn.lenses import TunedLensConfig

from iterlens import artifacts
from iterlens.artifacts import LENS_KINDS
from iterlens.io import atomic_path, load_safetensors, save_safetensors
from iterlens.models.training import train, warmup_sqrt_decay
from iterlens.probing.readout import Readout
from iterlens.probing.store import ActivationStore


class LogitLens(nn.Module):
    """The logit lens: R(h) at every layer."""

    kind = "logit"

    def __init__(self, readout: Readout):
        super().__init__()
        self.readout = readout

    def forward(self, h: torch.Tensor, idx: int) -> torch.Tensor:
        """Decode ``h`` with the model's own readout."""
        return self.readout(h)


class LayerTunedLens(TunedLens):
    """``tuned_lens.TunedLens`` whose last layer (index L) is the identity translator."""

    kind = "tuned"

    def transform_hidden(self, h: torch.Tensor, idx: int) -> torch.Tensor:
        """H + A_idx h + b_idx; the final layer is left as it is."""
        if idx >= len(self.layer_translators):
            return h
        return h + self.layer_translators[idx](h)


class SharedLens(nn.Module):
    """One affine translator for every layer: R(h + A h + b)."""

    kind = "shared"

    def __init__(self, readout: Readout):
        super().__init__()
        self.readout = readout
        d = readout.d_model
        self.translator = nn.Linear(d, d)
        nn.init.zeros_(self.translator.weight)
        nn.init.zeros_(self.translator.bias)

    def transform_hidden(self, h: torch.Tensor, idx: int) -> torch.Tensor:
        """H + A h + b (the same for every layer)."""
        return h + self.translator(h)

    def forward(self, h: torch.Tensor, idx: int) -> torch.Tensor:
        """Translate, then decode with the readout."""
        return self.readout(self.transform_hidden(h, idx))


class FreeProbe(nn.Module):
    """Per-layer linear heads W_l h + c_l trained from zero on the targets."""

    kind = "probe"

    def __init__(self, d_model: int, n_classes: int, n_layers: int):
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(d_model, n_classes) for _ in range(n_layers + 1))
        for head in self.heads:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, h: torch.Tensor, idx: int) -> torch.Tensor:
        """Logits of layer ``idx``'s own head."""
        return self.heads[idx](h)


def make_tuned_lens(readout: Readout, n_layers: int, name_or_path: str = "") -> LayerTunedLens:
    """A zero-initialised tuned lens with translators for layers 0..L-1."""
    config = TunedLensConfig(
        base_model_name_or_path=name_or_path or readout.meta.get("name_or_path", ""),
        d_model=readout.d_model,
        num_hidden_layers=n_layers,
        bias=True,
    )
    return LayerTunedLens(readout, config)


def make_lens(kind: str, readout: Readout, n_layers: int) -> nn.Module:
    """Build a fresh lens of ``kind`` (one of :data:`LENS_KINDS`)."""
    if kind == "logit":
        return LogitLens(readout)
    if kind == "tuned":
        return make_tuned_lens(readout, n_layers)
    if kind == "shared":
        return SharedLens(readout)
    if kind == "probe":
        return FreeProbe(readout.d_model, readout.n_classes, n_layers)
    raise ValueError(f"unknown lens kind '{kind}'; choose from {', '.join(LENS_KINDS)}")


def default_layers(kind: str, n_layers: int) -> list[int]:
    """Layers a lens of ``kind`` is trained on: tuned 0..L-1, shared and probe 0..L."""
    return list(range(n_layers)) if kind == "tuned" else list(range(n_layers + 1))


def fit_lens(
    lens: nn.Module,
    store: ActivationStore,
    readout: Readout,
    layers: Sequence[int],
    objective: str,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float = 0.0,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Train ``lens`` on ``layers`` of ``store``; return the per-step loss curve.

    The loss is the *sum* over layers of the per-layer mean loss, so each layer's
    parameters see exactly the gradient they would see if trained alone (a shared lens
    trained on one layer equals that layer's tuned lens).

    Args:
        objective: ``"kl"`` (KL to the final distribution) or ``"ce"`` (to targets).
    """
    if objective not in ("kl", "ce"):
        raise ValueError(f"objective must be 'kl' or 'ce', not {objective!r}")
    store.check_readout(readout.fingerprint())
    torch.manual_seed(seed)
    n_layers = store.n_layers
    load = sorted(set(layers) | {n_layers})
    col = {layer: k for k, layer in enumerate(load)}
    params = [p for p in lens.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)

    def loss_fn(batch):
        with torch.no_grad():
            final_logp = torch.log_softmax(readout(batch.hidden[:, col[n_layers]]), -1)
        loss = torch.zeros(())
        for layer in layers:
            logq = torch.log_softmax(lens(batch.hidden[:, col[layer]], layer), -1)
            if objective == "kl":
                per = (final_logp.exp() * (final_logp - logq)).sum(-1)
            else:
                per = -logq.gather(-1, batch.targets[:, None])[:, 0]
            loss = loss + per.mean()
        return loss, None

    rows: list[dict] = []
    lens.train()
    train(
        params,
        opt,
        warmup_sqrt_decay(steps),
        store.iter_steps(steps, batch_size, load, seed),
        loss_fn,
        steps=steps,
        desc=f"fit {objective}",
        progress=progress,
        on_step=lambda step, loss, _: rows.append({"step": step, "loss_nats": loss / len(layers)}),
    )
    lens.eval()
    return pd.DataFrame(rows)


OBJECTIVES = {"tuned": "kl", "shared": "kl", "probe": "ce"}
"""What each trained lens kind is fitted to: KL to the final distribution, or CE to targets."""


def fit_kind(
    kind: str, store: ActivationStore, readout: Readout, cfg: dict, progress: bool = True
) -> tuple[nn.Module, pd.DataFrame]:
    """Build a lens of ``kind`` and fit it with its config section (``lens`` or ``probe``).

    Returns:
        ``(lens, curve)``: the fitted lens and its per-step loss curve.
    """
    lens = make_lens(kind, readout, store.n_layers)
    section = cfg["probe"] if kind == "probe" else cfg["lens"]
    curve = fit_lens(
        lens,
        store,
        readout,
        default_layers(kind, store.n_layers),
        objective=OBJECTIVES[kind],
        steps=section["steps"],
        batch_size=section["batch_size"],
        lr=section["lr"],
        weight_decay=section["weight_decay"],
        seed=cfg["seed"],
        progress=progress,
    )
    return lens, curve


@torch.no_grad()
def evaluate_lenses(
    lenses: dict[str, nn.Module],
    store: ActivationStore,
    readout: Readout,
    batch_size: int = 1024,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate every lens at every layer in one pass over ``store``.

    Returns:
        ``(metrics, depth)``: per (lens, layer) metrics, and per (lens, depth) the
        count of examples with that prediction depth and their mean final CE in bits.
    """
    from iterlens.probing.metrics import LayerAccumulator, ce_bits, prediction_depth

    store.check_readout(readout.fingerprint())
    n_layers = store.n_layers
    acc = {
        (name, layer): LayerAccumulator(readout.n_classes)
        for name in lenses
        for layer in range(n_layers + 1)
    }
    depth_count = {name: torch.zeros(n_layers + 2, dtype=torch.float64) for name in lenses}
    depth_ce = {name: torch.zeros(n_layers + 2, dtype=torch.float64) for name in lenses}
    for lens in lenses.values():
        lens.eval()
    total = -(-store.n_examples // batch_size)
    for batch in tqdm(
        store.iter_batches(batch_size), total=total, desc="evaluate", disable=not progress
    ):
        final_logits = readout(batch.hidden[:, n_layers])
        final_top1 = final_logits.argmax(-1)
        final_ce = ce_bits(final_logits, batch.targets).double()
        for name, lens in lenses.items():
            top1 = []
            for layer in range(n_layers + 1):
                logits = lens(batch.hidden[:, layer], layer)
                acc[name, layer].update(logits, final_logits, batch.targets, batch.inputs)
                top1.append(logits.argmax(-1))
            depth = prediction_depth(torch.stack(top1, 1), final_top1)
            depth_count[name] += torch.bincount(depth, minlength=n_layers + 2).double()
            depth_ce[name].index_add_(0, depth, final_ce)
    rows = [
        {
            "lens": name,
            "layer": layer,
            "depth_frac": layer / n_layers,
            **acc[name, layer].result(store.n_bytes),
        }
        for name in lenses
        for layer in range(n_layers + 1)
    ]
    depth_rows = [
        {
            "lens": name,
            "depth": d,
            "count": int(depth_count[name][d]),
            "share": float(depth_count[name][d] / store.n_examples),
            "mean_final_ce_bits": float(depth_ce[name][d] / depth_count[name][d])
            if depth_count[name][d] > 0
            else float("nan"),
        }
        for name in lenses
        for d in range(n_layers + 2)
    ]
    return pd.DataFrame(rows), pd.DataFrame(depth_rows)


def save_lens(lens: nn.Module, folder: str | Path, readout: Readout, n_layers: int) -> None:
    """Save a trained lens to ``folder`` atomically.

    Every lens gets ``lens.safetensors`` (its own parameters; metadata records the kind,
    L and the readout fingerprint) and ``lens.json`` (the same metadata). A tuned lens also
    gets ``config.json`` + ``params.pt``, the layout ``tuned_lens.TunedLens`` loads.
    """
    own = {k: v for k, v in lens.state_dict().items() if not k.startswith(("readout.", "unembed."))}
    meta = {
        "kind": lens.kind,
        "n_layers": str(n_layers),
        "d_model": str(readout.d_model),
        "n_classes": str(readout.n_classes),
        "readout_fingerprint": readout.fingerprint(),
    }
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        save_safetensors(own, tmp / artifacts.LENS_WEIGHTS, meta)
        if isinstance(lens, TunedLens):
            lens.save(tmp)
        (tmp / artifacts.LENS_META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def load_lens(folder: str | Path, readout: Readout) -> nn.Module:
    """Load a lens saved by :func:`save_lens`, refusing one made for another readout."""
    state, meta = load_safetensors(Path(folder) / artifacts.LENS_WEIGHTS, "lens")
    if meta.get("readout_fingerprint") != readout.fingerprint():
        raise ValueError(
            f"lens {folder} was trained for readout {meta.get('readout_fingerprint')}, but this "
            f"model's readout is {readout.fingerprint()}: the unembedding does not match"
        )
    if int(meta["d_model"]) != readout.d_model:
        raise ValueError(
            f"lens {folder} expects width {meta['d_model']}, readout has {readout.d_model}"
        )
    lens = make_lens(meta["kind"], readout, int(meta["n_layers"]))
    missing, unexpected = lens.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(("readout.", "unembed."))]
    if missing or unexpected:
        raise ValueError(
            f"lens {folder} does not fit a {meta['kind']} lens: "
            f"missing {missing}, unexpected {unexpected}"
        )
    return lens.eval()
