from __future__ import annotations

import math

import pytest
import torch

from iterlens.models.training import (
    EarlyStopping,
    loss_and_accuracy,
    train,
    warmup_cosine,
    warmup_sqrt_decay,
)


def test_warmup_cosine_hand_computed():
    s = warmup_cosine(warmup=4, total=12, floor=0.1)
    assert [s(i) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert s(4) == pytest.approx(1.0)  # start of the decay
    assert s(8) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))  # = 0.55
    assert s(12) == pytest.approx(0.1)  # decayed to the floor


def test_warmup_sqrt_decay_hand_computed():
    s = warmup_sqrt_decay(total=100)
    assert s(0) == pytest.approx(0.1)  # warmup over the first 10 steps
    assert s(9) == pytest.approx(1.0 * math.sqrt(0.91))
    assert s(75) == pytest.approx(0.5)  # sqrt(1 - 0.75)


def test_loss_and_accuracy_hand_computed():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25]]))
    y = torch.tensor([0, 2])
    loss, acc = loss_and_accuracy(lambda x: x, [(logits[:1], y[:1]), (logits[1:], y[1:])])
    assert loss == pytest.approx((math.log(2) + math.log(4)) / 2)
    assert acc == 0.5
    with pytest.raises(ValueError, match="zero examples"):
        loss_and_accuracy(lambda x: x, [])


def test_train_runs_exactly_the_steps_and_fits_a_line():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.zeros(1))
    x = torch.linspace(-1, 1, 32)
    seen = []

    def batches():
        while True:
            yield x

    def loss_fn(xb):
        return ((w * xb - 3 * xb) ** 2).mean(), len(xb)

    opt = torch.optim.AdamW([w], lr=0.1, weight_decay=0.0)
    train(
        [w],
        opt,
        lambda s: 1.0,
        batches(),
        loss_fn,
        steps=300,
        clip_norm=1.0,
        on_step=lambda step, loss, aux: seen.append(step),
        progress=False,
    )
    assert seen == list(range(300))
    assert w.item() == pytest.approx(3.0, abs=1e-2)


def stop_step(losses, patience=3, min_delta=1e-3):
    """The evaluation index at which EarlyStopping stops on ``losses`` (None: never)."""
    stopper = EarlyStopping(patience, min_delta)
    for i, loss in enumerate(losses):
        if stopper.update(i, loss):
            return i, stopper.improved_step
    return None, stopper.improved_step


def test_early_stopping_stops_on_a_plateau_and_not_before():
    falling = [1.0 / (k + 1) for k in range(10)]  # improves by > 10% at every evaluation
    plateau = [falling[-1] * (1 - 1e-4 * k) for k in range(1, 6)]  # below min_delta
    stop, best = stop_step(falling + plateau, patience=3)
    assert (stop, best) == (12, 9)  # three evaluations into the plateau
    # a slow but steady fall (0.5% per evaluation, above min_delta) never stops
    assert stop_step([0.995**k for k in range(200)], patience=3) == (None, 199)
    # a noisy plateau: one lucky evaluation resets the count
    noisy = [1.0, 0.5, 0.5, 0.5, 0.4, 0.4, 0.4, 0.4]
    assert stop_step(noisy, patience=3) == (7, 4)


def test_early_stopping_refuses_divergence_and_bad_patience():
    with pytest.raises(FloatingPointError, match="diverged"):
        EarlyStopping(2).update(0, float("nan"))
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(0)


def test_train_stops_on_a_held_out_plateau_and_keeps_the_best_parameters():
    torch.manual_seed(0)
    x = torch.randn(256, 2)
    y = x @ torch.tensor([2.0, -1.0]) + 0.5 + 0.1 * torch.randn(256)  # noise floor 0.01
    w = torch.zeros(2, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w, b], lr=0.05)
    seen = []

    def heldout(step):
        with torch.no_grad():
            loss = ((x[192:] @ w + b - y[192:]) ** 2).mean().item()
        seen.append((step, loss, w.detach().clone()))
        return loss

    batches = ((x[i % 192 : i % 192 + 32], y[i % 192 : i % 192 + 32]) for i in range(10**6))
    stopper = EarlyStopping(patience=3, min_delta=1e-2)
    train(
        [w, b],
        opt,
        lambda s: 1.0,
        batches,
        lambda batch: (((batch[0] @ w + b - batch[1]) ** 2).mean(), None),
        steps=5000,
        evaluate=heldout,
        eval_every=10,
        early_stopping=stopper,
        progress=False,
    )
    steps = [s for s, _, _ in seen]
    assert steps[-1] < 5000  # stopped early ...
    assert seen[-4][1] < 0.03  # ... only once the fit had reached the noise floor
    assert steps[-1] == stopper.improved_step + 30  # three evaluations after the last gain
    assert stopper.best == min(loss for _, loss, _ in seen)
    best = next(wt for s, _, wt in seen if s == stopper.best_step)
    torch.testing.assert_close(w.detach(), best)  # the best parameters are restored


def test_early_stopping_keeps_one_copy_of_the_best_parameters_and_drops_it_on_restore():
    w = torch.nn.Parameter(torch.zeros(3))
    stopper = EarlyStopping(patience=2)
    stopper.update(0, 1.0, [w])
    buffer = stopper.best_state[0]
    with torch.no_grad():
        w.add_(1.0)
    stopper.update(1, 0.5, [w])  # a better loss: copied into the same buffer, not a new one
    assert stopper.best_state[0] is buffer and torch.equal(buffer, torch.ones(3))
    with torch.no_grad():
        w.add_(1.0)
    stopper.update(2, 0.9, [w])  # worse: the buffer keeps the best
    stopper.restore([w])
    assert torch.equal(w.detach(), torch.ones(3)) and stopper.best_state is None
