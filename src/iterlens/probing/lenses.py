"""Lenses: maps (layer l, representation h) -> logits, for LMs and CNNs alike.

=================  =================================  ==============================
lens               formula                            trained on
=================  =================================  ==============================
logit              R(h)                               nothing
tuned              R(h + A_l h + b_l), A, b start 0   KL to final logits
shared             R(h + A h + b), one A, b           KL to final, all layers
free probe         W_l h + c_l, from the class prior  cross-entropy to targets
=================  =================================  ==============================

The tuned lens *is* ``tuned_lens.TunedLens`` (so saved LM lenses load in that package);
the readout passed to it is an :class:`iterlens.probing.readout.Readout`. Fitting the trained
lenses is :mod:`iterlens.probing.fitting`, which builds on this module (never the reverse).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm
from tuned_lens import TunedLens
from tuned_lens.nn.lenses import TunedLensConfig

from iterlens import artifacts
from iterlens.artifacts import LENS_KINDS
from iterlens.io import atomic_path, fingerprint, load_safetensors, save_safetensors
from iterlens.probing.metrics import (
    LN2,
    PER_EXAMPLE,
    FinalDist,
    LayerAccumulator,
    batch_rows,
    prediction_depth,
)
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
    """Per-layer linear heads W_l h + c_l trained on the targets.

    Built at zero; fitting starts them at ``W = 0, c = log prior`` (``probe.init: prior``).
    ``layers`` (default every layer 0..L) are the layers with a head; the parameters are named
    ``heads.<layer>.weight`` either way.
    """

    kind = "probe"

    def __init__(
        self, d_model: int, n_classes: int, n_layers: int, layers: Sequence[int] | None = None
    ):
        super().__init__()
        layers = probe_layers(n_layers, layers)
        self.heads = nn.ModuleDict({str(k): nn.Linear(d_model, n_classes) for k in layers})
        for head in self.heads.values():
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    @property
    def layers(self) -> list[int]:
        """The layers with a head, in order."""
        return sorted(int(k) for k in self.heads)

    def forward(self, h: torch.Tensor, idx: int) -> torch.Tensor:
        """Logits of layer ``idx``'s own head."""
        return self.heads[str(idx)](h)


def layer_subset(n_layers: int, layers: Sequence[int] | None, what: str) -> list[int]:
    """``layers`` sorted and checked against ``0..L`` (``None``: every layer ``0..L``).

    Raises:
        ValueError: a layer outside ``0..L``, named as ``what`` layer.
    """
    if layers is None:
        return list(range(n_layers + 1))
    bad = [k for k in layers if not 0 <= k <= n_layers]
    if bad:
        raise ValueError(f"{what} layer {bad[0]} is not a layer of this model (0..{n_layers})")
    return sorted(set(layers))


def probe_layers(n_layers: int, layers: Sequence[int] | None = None) -> list[int]:
    """The layers a free probe has heads at: ``layers``, or every layer ``0..L``."""
    return layer_subset(n_layers, layers, "probe")


def lens_layers(lens: nn.Module, n_layers: int) -> list[int]:
    """The layers ``lens`` reads out at: a probe's own, every other lens's ``0..L``."""
    return lens.layers if isinstance(lens, FreeProbe) else list(range(n_layers + 1))


def make_tuned_lens(readout: Readout, n_layers: int, name_or_path: str = "") -> LayerTunedLens:
    """A zero-initialised tuned lens with translators for layers 0..L-1."""
    config = TunedLensConfig(
        base_model_name_or_path=name_or_path or readout.meta.get("name_or_path", ""),
        d_model=readout.d_model,
        num_hidden_layers=n_layers,
        bias=True,
    )
    return LayerTunedLens(readout, config)


def make_lens(
    kind: str, readout: Readout, n_layers: int, layers: Sequence[int] | None = None
) -> nn.Module:
    """Build a fresh lens of ``kind`` (one of :data:`LENS_KINDS`).

    ``layers``: a free probe's layers (see :func:`probe_layers`); the other kinds ignore it.
    """
    if kind == "logit":
        return LogitLens(readout)
    if kind == "tuned":
        return make_tuned_lens(readout, n_layers)
    if kind == "shared":
        return SharedLens(readout)
    if kind == "probe":
        return FreeProbe(readout.d_model, readout.n_classes, n_layers, layers)
    raise ValueError(f"unknown lens kind '{kind}'; choose from {', '.join(LENS_KINDS)}")


SHARED_LAYERS = ("inner", "all")
"""What the shared lens may be fitted on (config ``lens.shared_layers``)."""


def default_layers(kind: str, n_layers: int, shared_layers: str = "inner") -> list[int]:
    """Layers a lens of ``kind`` is trained on.

    Tuned: 0..L-1 (layer L's translator is the identity). Probe: 0..L. Shared: 1..L-1 by
    default (``"inner"``; layer 0 alone where L = 1): the embeddings' or stem's KL is an
    order of magnitude above every other layer's and would dominate the one map's loss, and at
    layer L the logit lens is exact; ``"all"`` fits it on 0..L.
    """
    if kind == "tuned":
        return list(range(n_layers))
    if kind == "shared":
        if shared_layers not in SHARED_LAYERS:
            raise ValueError(f"shared_layers must be one of {', '.join(SHARED_LAYERS)}")
        if shared_layers == "all":
            return list(range(n_layers + 1))
        return list(range(1, n_layers)) or [0]
    return list(range(n_layers + 1))


@torch.no_grad()
def evaluate_lenses(
    lenses: dict[str, nn.Module],
    store: ActivationStore,
    readout: Readout,
    batch_size: int | None = None,
    progress: bool = True,
    examples: dict[str, np.ndarray] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate every lens at every layer in one pass over ``store``.

    Args:
        batch_size: examples per batch; default :func:`~iterlens.probing.metrics.batch_rows`
            (1,024, fewer for a large vocabulary).
        examples: if given, filled with the per-example values ``f"{lens}.{metric}"``
            ``[n, L + 1]`` (float32, store order) of every :data:`~iterlens.probing.metrics.
            PER_EXAMPLE` metric, the input of the bootstrap.

    Returns:
        ``(metrics, depth)``: per (lens, layer) metrics, and per (lens, depth) the
        count of examples with that prediction depth and their mean final CE in bits.
    """
    store.check_readout(readout.fingerprint())
    batch_size = batch_size or batch_rows(readout.n_classes, 1024)
    n_layers = store.n_layers
    layers_of = {name: lens_layers(lens, n_layers) for name, lens in lenses.items()}
    acc = {
        (name, layer): LayerAccumulator(readout.n_classes)
        for name in lenses
        for layer in layers_of[name]
    }
    depth_count = {name: torch.zeros(n_layers + 2, dtype=torch.float64) for name in lenses}
    depth_ce = {name: torch.zeros(n_layers + 2, dtype=torch.float64) for name in lenses}
    for lens in lenses.values():
        lens.eval()
    kept = {  # NaN at the layers a lens does not read out at
        f"{name}.{m}": np.full((store.n_examples, n_layers + 1), np.nan, np.float32)
        for name in lenses
        for m in PER_EXAMPLE
    }
    total = -(-store.n_examples // batch_size)
    start = 0
    for batch in tqdm(
        store.iter_batches(batch_size), total=total, desc="evaluate", disable=not progress
    ):
        sel = slice(start, start + len(batch.targets))
        start += len(batch.targets)
        final = FinalDist.of(readout(batch.hidden[:, n_layers]))
        final_ce = -final.logp.gather(-1, batch.targets.long()[:, None])[:, 0].double() / LN2
        for name, lens in lenses.items():
            top1 = []
            for layer in layers_of[name]:
                logits = lens(batch.hidden[:, layer], layer)
                values = acc[name, layer].update(logits, final, batch.targets, batch.inputs)
                for m in PER_EXAMPLE:
                    kept[f"{name}.{m}"][sel, layer] = values[m].cpu().numpy()
                top1.append(values["top1"])
            if len(top1) < n_layers + 1:  # prediction depth needs every layer
                continue
            depth = prediction_depth(torch.stack(top1, 1), final.top1)
            depth = depth.cpu()
            depth_count[name] += torch.bincount(depth, minlength=n_layers + 2).double()
            depth_ce[name].index_add_(0, depth, final_ce.cpu())
    if examples is not None:
        examples.update(kept)
    rows = [
        {
            "lens": name,
            "layer": layer,
            "depth_frac": layer / n_layers,
            **acc[name, layer].result(store.n_bytes),
        }
        for name in lenses
        for layer in layers_of[name]
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
        if len(layers_of[name]) == n_layers + 1
        for d in range(n_layers + 2)
    ]
    return pd.DataFrame(rows), pd.DataFrame(depth_rows)


def save_lens(
    lens: nn.Module,
    folder: str | Path,
    readout: Readout,
    n_layers: int,
    extra: dict[str, object] | None = None,
) -> None:
    """Save a trained lens to ``folder`` atomically.

    Every lens gets ``lens.safetensors`` (its own parameters; metadata records the kind,
    L, the readout fingerprint, the parameters' own fingerprint and ``extra``, such as the
    fit's seed) and ``lens.json`` (the same metadata). A tuned lens also gets
    ``config.json`` + ``params.pt``, the layout ``tuned_lens.TunedLens`` loads.
    """
    own = {k: v for k, v in lens.state_dict().items() if not k.startswith(("readout.", "unembed."))}
    meta = {
        "kind": lens.kind,
        "n_layers": str(n_layers),
        "d_model": str(readout.d_model),
        "n_classes": str(readout.n_classes),
        "readout_fingerprint": readout.fingerprint(),
        "fingerprint": fingerprint(own),
        **{key: str(value) for key, value in (extra or {}).items()},
    }
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        save_safetensors(own, tmp / artifacts.LENS_WEIGHTS, meta)
        if isinstance(lens, TunedLens):
            lens.save(tmp)
        (tmp / artifacts.LENS_META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def load_lens(folder: str | Path, readout: Readout, allow_mismatch: bool = False) -> nn.Module:
    """Load a lens saved by :func:`save_lens`.

    Refuses a lens made for another readout (``allow_mismatch`` loads it anyway; shapes are
    still checked), and one whose parameters differ from the fingerprint recorded when it
    was saved (a corrupted file).
    """
    path = Path(folder) / artifacts.LENS_WEIGHTS
    state, meta = load_safetensors(path, "lens")
    if meta.get("fingerprint") and fingerprint(state) != meta["fingerprint"]:
        raise ValueError(f"lens {path} is corrupt: its parameters do not match their fingerprint")
    if meta.get("readout_fingerprint") != readout.fingerprint() and not allow_mismatch:
        raise ValueError(
            f"lens {folder} was trained for readout {meta.get('readout_fingerprint')}, but this "
            f"model's readout is {readout.fingerprint()}: the unembedding does not match "
            f"(allow_mismatch / --allow-mismatch loads it anyway)"
        )
    if int(meta["d_model"]) != readout.d_model:
        raise ValueError(
            f"lens {folder} expects width {meta['d_model']}, readout has {readout.d_model}"
        )
    layers = sorted({int(k.split(".")[1]) for k in state}) if meta["kind"] == "probe" else None
    lens = make_lens(meta["kind"], readout, int(meta["n_layers"]), layers)
    missing, unexpected = lens.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(("readout.", "unembed."))]
    if missing or unexpected:
        raise ValueError(
            f"lens {folder} does not fit a {meta['kind']} lens: "
            f"missing {missing}, unexpected {unexpected}"
        )
    return lens.eval()
