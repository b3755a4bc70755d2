"""Fitting the trained lenses on a lens-fit store, with early stopping on a held-out slice.

Tuned and shared lenses are fitted to the KL divergence from the final distribution, free
probes to the cross-entropy of the targets, by the one training loop
(:func:`iterlens.models.training.train`) over cached activations: no model forward per
step. The last examples of the store are held out; training stops on a plateau of the
held-out loss and keeps the best parameters. Affine lenses can start at the least-squares
map to the last layer (:func:`lstsq_init`), which converges in a fraction of the steps;
free probes can start at the class prior of the training targets (:func:`prior_init`), so
their first step already beats a uniform guess by the prior's information.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from torch import nn

from iterlens.models.training import EarlyStopping, train, warmup_cosine
from iterlens.probing.lenses import (
    FreeProbe,
    LayerTunedLens,
    SharedLens,
    default_layers,
    lens_layers,
    make_lens,
)
from iterlens.probing.metrics import FinalDist
from iterlens.probing.readout import Readout
from iterlens.probing.store import ActivationStore


class KLFromLogits(torch.autograd.Function):
    """Per-row ``KL(p || softmax(z))`` in nats, with its gradient ``softmax(z) - p`` in one pass.

    ``apply(z, p, neg_entropy)``: ``z`` the lens logits ``[n, V]``, ``p`` the final
    distribution and ``neg_entropy`` its ``sum p log p`` (both constants). The value is
    ``sum p log p - sum p log q``, the same as autograd through ``log_softmax`` and
    ``p * (log p - log q)``, which keeps more ``[n, V]`` temporaries and walks them in more
    passes; the lens fits spend most of their time there (``benchmarks/kl_loss.py``).
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, p: torch.Tensor, neg_entropy: torch.Tensor) -> torch.Tensor:
        """``sum p log p - sum p log q`` per row; keeps ``log q`` for the backward pass."""
        logq = torch.log_softmax(z, -1)
        ctx.save_for_backward(logq, p)
        return neg_entropy - torch.linalg.vecdot(p, logq)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        """``(softmax(z) - p) * grad`` for ``z``; ``p`` and ``neg_entropy`` are constants."""
        logq, p = ctx.saved_tensors
        return logq.exp().sub_(p).mul_(grad[:, None]), None, None


def _translators(lens: nn.Module, layers: Sequence[int]) -> dict[int, nn.Linear] | None:
    """The affine translator each layer goes through (``None``: not an affine-on-h lens)."""
    if isinstance(lens, LayerTunedLens):
        return {layer: lens.layer_translators[layer] for layer in layers}
    if isinstance(lens, SharedLens):
        return dict.fromkeys(layers, lens.translator)
    return None


@torch.no_grad()
def lstsq_init(
    lens: nn.Module,
    store: ActivationStore,
    layers: Sequence[int],
    holdout: int = 0,
    max_examples: int = 65536,
    ridge: float = 1e-3,
) -> bool:
    """Start an affine lens at the least-squares map from ``h_l`` to the last layer ``h_L``.

    ``h + A h + b`` is fitted to ``h_L`` (ridge-regularised normal equations over up to
    ``max_examples`` training examples; a shared lens pools its layers), so the readout
    sees roughly the final residual stream before the first gradient step. The zero
    translator is one candidate of the fit, so the start is never further from ``h_L``.

    Returns:
        False (and leaves the lens alone) for lenses without affine translators (probes).
    """
    translators = _translators(lens, layers)
    if translators is None:
        return False
    n_layers = store.n_layers
    load = sorted(set(layers) | {n_layers})
    col = {layer: k for k, layer in enumerate(load)}
    d = store.d_model
    gram = {id(t): torch.zeros(d + 1, d + 1, dtype=torch.float64) for t in translators.values()}
    cross = {id(t): torch.zeros(d + 1, d, dtype=torch.float64) for t in translators.values()}
    seen = 0
    for batch in store.iter_batches(4096, load, holdout=holdout):
        last = batch.hidden[:, col[n_layers]].double().cpu()
        for layer, t in translators.items():
            h = batch.hidden[:, col[layer]].double().cpu()
            x = torch.cat([h, torch.ones(len(h), 1, dtype=h.dtype)], 1)
            gram[id(t)] += x.T @ x
            cross[id(t)] += x.T @ (last - h)
        seen += len(last)
        if seen >= max_examples:
            break
    for t in dict.fromkeys(translators.values()):
        g = gram[id(t)]
        reg = ridge * torch.diagonal(g)[:d].mean() * torch.eye(d + 1, dtype=g.dtype)
        reg[d, d] = 0
        w = torch.linalg.solve(g + reg, cross[id(t)])
        t.weight.copy_(w[:d].T.to(t.weight.dtype))
        t.bias.copy_(w[d].to(t.bias.dtype))
    return True


@torch.no_grad()
def prior_init(
    lens: nn.Module, store: ActivationStore, layers: Sequence[int] = (), holdout: int = 0
) -> bool:
    """Start every head of a free probe at ``W = 0`` and ``c = log p(class)``.

    ``p`` is the add-one smoothed class frequency of the store's training targets (the
    held-out slice excluded), so the start predicts the training marginal, whose
    cross-entropy is the prior ``H_prior`` of the normalised scale. ``layers`` is unused (every
    head starts alike); it keeps the signature of :func:`lstsq_init`.

    Returns:
        False (and leaves the lens alone) for lenses without per-layer heads.
    """
    if not isinstance(lens, FreeProbe):
        return False
    n_classes = next(iter(lens.heads.values())).out_features
    counts = torch.ones(n_classes, dtype=torch.float64)
    for batch in store.iter_batches(65536, [store.n_layers], holdout=holdout):
        counts += torch.bincount(batch.targets.cpu(), minlength=n_classes)[:n_classes].double()
    log_prior = (counts / counts.sum()).log()
    for head in lens.heads.values():
        head.weight.zero_()
        head.bias.copy_(log_prior.to(head.bias.dtype))
    return True


INITS = {
    "zero": None,
    "lstsq": lstsq_init,
    "prior": prior_init,
}
"""How :func:`fit_lens` may start a lens; ``zero`` keeps the lens as built."""


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
    *,
    holdout: int = 0,
    eval_every: int = 50,
    patience: int = 0,
    min_delta: float = 1e-3,
    init: str = "zero",
) -> pd.DataFrame:
    """Train ``lens`` on ``layers`` of ``store``; return its convergence curve.

    The loss is the *sum* over layers of the per-layer mean loss, so each layer's
    parameters see exactly the gradient they would see if trained alone (a shared lens
    trained on one layer equals that layer's tuned lens). The learning rate warms up
    over the first 5% of ``steps`` and decays to zero along a cosine.

    Args:
        objective: ``"kl"`` (KL to the final distribution) or ``"ce"`` (to targets).
        steps: the most optimiser steps.
        holdout: the last ``holdout`` examples of the store are not trained on; the loss
            on them is measured every ``eval_every`` steps.
        patience: with a held-out slice, stop after this many evaluations without a
            relative improvement of ``min_delta`` and keep the best parameters (0: never).
        init: ``"zero"``, ``"lstsq"`` (see :func:`lstsq_init`; affine lenses only) or
            ``"prior"`` (see :func:`prior_init`; free probes only).

    Returns:
        One row per evaluation: ``step``, ``tokens`` (examples trained on so far),
        ``train_loss_nats`` (mean over the steps since the previous row),
        ``heldout_loss_nats`` (NaN without a held-out slice) and ``best`` (the row whose
        parameters the lens keeps). Losses are per layer (the sum over layers / their
        count), in nats.
    """
    if objective not in ("kl", "ce"):
        raise ValueError(f"objective must be 'kl' or 'ce', not {objective!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, not {init!r}")
    if patience and not holdout:
        raise ValueError("early stopping (patience > 0) needs a held-out slice (holdout > 0)")
    store.check_readout(readout.fingerprint())
    torch.manual_seed(seed)
    n_layers = store.n_layers
    load = sorted(set(layers) | {n_layers})
    col = {layer: k for k, layer in enumerate(load)}
    if init != "zero" and not INITS[init](lens, store, layers, holdout):
        raise ValueError(f"init {init!r} does not apply to a {type(lens).__name__}")
    params = [p for p in lens.parameters() if p.requires_grad]
    # One parameter at a time (foreach=False): the multi-tensor update makes temporaries the
    # size of all parameters at once (5 free-probe heads over 49k words: 0.57 GB each time).
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=False)

    @torch.no_grad()
    def final_of(batch) -> FinalDist | None:
        """The KL target of a batch: its final distribution (``None`` for a CE fit)."""
        return FinalDist.of(readout(batch.hidden[:, col[n_layers]])) if objective == "kl" else None

    def loss_of(batch, final: FinalDist | None = None) -> torch.Tensor:
        final = final_of(batch) if final is None else final
        loss = torch.zeros((), device=batch.hidden.device)
        for layer in layers:
            logits = lens(batch.hidden[:, col[layer]], layer)
            if final is not None:
                per = KLFromLogits.apply(logits, final.p, final.neg_entropy)
            else:
                per = -torch.log_softmax(logits, -1).gather(-1, batch.targets[:, None])[:, 0]
            loss = loss + per.mean()
        return loss

    held = store.tail(holdout, load) if holdout else None
    held_chunks = []  # (chunk, its KL target): the target is computed once, not every evaluation
    for start in range(0, holdout, 512):
        part = slice(start, start + 512)
        chunk = type(held)(held.hidden[part], held.targets[part], held.inputs[part])
        held_chunks.append((chunk, final_of(chunk)))

    @torch.no_grad()
    def heldout_loss() -> float:
        lens.eval()
        total = sum(loss_of(c, final).item() * len(c.targets) for c, final in held_chunks)
        lens.train()
        return total / holdout / len(layers)

    rows: list[dict] = []
    since: list[float] = []

    def evaluate(done: int) -> float:
        loss = heldout_loss() if held is not None else float("nan")
        train_loss = sum(since) / len(since) if since else float("nan")
        rows.append(
            {
                "step": done,
                "tokens": done * batch_size,
                "train_loss_nats": train_loss,
                "heldout_loss_nats": loss,
            }
        )
        since.clear()
        return loss

    stopper = EarlyStopping(patience, min_delta) if patience else None
    lens.train()
    train(
        params,
        opt,
        warmup_cosine(max(1, steps // 20), steps),
        store.iter_steps(steps, batch_size, load, seed, holdout),
        lambda batch: (loss_of(batch), None),
        steps=steps,
        desc=f"fit {objective}",
        progress=progress,
        on_step=lambda step, loss, _: since.append(loss / len(layers)),
        evaluate=evaluate,
        eval_every=eval_every,
        early_stopping=stopper,
    )
    lens.eval()
    opt.zero_grad(set_to_none=True)  # the lens leaves without its gradients and AdamW state
    opt.state.clear()
    curve = pd.DataFrame(rows)
    best = stopper.best_step if stopper is not None else curve["step"].max()
    curve["best"] = curve["step"] == best
    return curve


OBJECTIVES = {"tuned": "kl", "shared": "kl", "probe": "ce"}
"""What each trained lens kind is fitted to: KL to the final distribution, or CE to targets."""


MIN_HELDOUT = 256
"""Fewest held-out examples early stopping looks at (a small store gives a quarter of itself)."""


def heldout_size(fraction: float, n_examples: int) -> int:
    """Examples held out for early stopping: ``fraction`` of the store, 0 for a fraction of 0.

    At least :data:`MIN_HELDOUT` (or a quarter of a smaller store): on a CNN's 1,000 lens-fit
    images, 1.5% is 15 images, too few to tell a better lens from noise.
    """
    if fraction <= 0:
        return 0
    return max(1, round(fraction * n_examples), min(MIN_HELDOUT, n_examples // 4))


def fit_kind(
    kind: str,
    store: ActivationStore,
    readout: Readout,
    cfg: dict,
    progress: bool = True,
    seed: int | None = None,
) -> tuple[nn.Module, pd.DataFrame]:
    """Build a lens of ``kind`` and fit it with its config section (``lens`` or ``probe``).

    The held-out slice is taken from the store's end (see :func:`heldout_size`). ``seed``
    (default: the config's) seeds the lens's batch order and any random start; the workflow
    passes each model's own seed, so seed replicates sample the lens fit's randomness too.

    Returns:
        ``(lens, curve)``: the fitted lens and its convergence curve (see :func:`fit_lens`).
    """
    section = cfg["probe"] if kind == "probe" else cfg["lens"]
    probed = section.get("layers") if kind == "probe" else None
    lens = make_lens(kind, readout, store.n_layers, probed).to(store.device)
    holdout = heldout_size(section["holdout_fraction"], store.n_examples)
    layers = default_layers(kind, store.n_layers, cfg["lens"].get("shared_layers", "inner"))
    curve = fit_lens(
        lens,
        store,
        readout,
        lens_layers(lens, store.n_layers) if kind == "probe" else layers,
        objective=OBJECTIVES[kind],
        steps=section["steps"],
        batch_size=section["batch_size"],
        lr=section["lr"],
        weight_decay=section["weight_decay"],
        seed=cfg["seed"] if seed is None else seed,
        progress=progress,
        holdout=holdout,
        eval_every=section["eval_every"],
        patience=section["patience"] if holdout else 0,
        min_delta=section["min_delta"],
        init=section.get("init", "zero"),
    )
    return lens, curve
