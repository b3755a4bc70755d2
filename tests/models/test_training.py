from __future__ import annotations

import math

import pytest
import torch

from iterlens.models.training import loss_and_accuracy, train, warmup_cosine, warmup_sqrt_decay


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
