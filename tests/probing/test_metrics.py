from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from iterlens.probing.metrics import (
    FinalDist,
    LayerAccumulator,
    ce_bits,
    entropy_bits,
    kl_bits,
    prediction_depth,
    rank_of,
    rank_summary,
)


def logits_of(*probs):
    return torch.log(torch.tensor(probs, dtype=torch.float64))


def test_kl_hand_computed():
    # KL([.5,.5] || [.25,.75]) = .5*log2(2) + .5*log2(2/3)
    expected = 0.5 * 1 + 0.5 * math.log2(0.5 / 0.75)
    got = kl_bits(logits_of([0.5, 0.5]), logits_of([0.25, 0.75]))
    assert got.item() == pytest.approx(expected, abs=1e-6)
    same = kl_bits(logits_of([0.3, 0.7]), logits_of([0.3, 0.7]))
    assert same.item() == pytest.approx(0, abs=1e-9)


def test_ce_and_entropy_hand_computed():
    uniform4 = torch.zeros(1, 4)
    assert ce_bits(uniform4, torch.tensor([2])).item() == pytest.approx(2.0)
    assert ce_bits(logits_of([0.5, 0.25, 0.25]), torch.tensor([1])).item() == pytest.approx(2.0)
    assert entropy_bits(logits_of([0.5, 0.25, 0.25])).item() == pytest.approx(1.5)


def test_rank_of():
    logits = torch.tensor([[0.1, 0.9, 0.5, 0.7]])
    assert rank_of(logits, torch.tensor([1])).item() == 0
    assert rank_of(logits, torch.tensor([2])).item() == 2
    assert rank_of(logits, torch.tensor([0])).item() == 3


def test_prediction_depth_constructed():
    final = torch.tensor([5, 5, 5, 5, 5])
    top1 = torch.tensor(
        [
            [1, 5, 5, 5],  # settles at layer 1
            [5, 1, 5, 5],  # agrees at 0, breaks at 1: settles at 2
            [5, 5, 5, 5],  # always: 0
            [5, 5, 5, 1],  # last layer disagrees: never (L + 1 = 4)
            [1, 2, 3, 5],  # only the last: 3
        ]
    )
    assert prediction_depth(top1, final).tolist() == [1, 2, 0, 4, 3]


def test_rank_summary_median_and_shares():
    hist = np.array([3, 1, 0, 2, 0, 0, 0, 0, 0, 0, 4])  # 10 examples
    s = rank_summary(hist, "r")
    assert s["r_median"] == 3.0  # sorted: 0 0 0 1 [3] 3 10 10 10 10 (lower median)
    assert s["r_top1"] == pytest.approx(0.3)
    assert s["r_top10"] == pytest.approx(0.6)


def test_accumulator_means_and_bits_per_byte():
    acc = LayerAccumulator(n_classes=4)
    final = torch.zeros(2, 4)
    lens = torch.zeros(2, 4)
    acc.update(lens, final, torch.tensor([0, 1]), torch.tensor([2, 3]))
    out = acc.result(n_bytes=8)
    assert out["ce_bits"] == pytest.approx(2.0)
    assert out["kl_bits"] == pytest.approx(0.0, abs=1e-9)
    assert out["entropy_bits"] == pytest.approx(2.0)
    assert out["bits_per_byte"] == pytest.approx(2 * 2.0 / 8)
    with pytest.raises(ValueError):
        LayerAccumulator(4).result()


def test_accumulator_values_equal_the_metric_functions_with_a_shared_final():
    gen = torch.Generator().manual_seed(0)
    final, lens = torch.randn(5, 7, generator=gen), torch.randn(5, 7, generator=gen)
    targets = torch.tensor([0, 3, 6, 1, 2])
    inputs = torch.full((5,), -1)
    own = LayerAccumulator(7).update(lens, final, targets, inputs)
    shared = LayerAccumulator(7).update(lens, FinalDist.of(final), targets, inputs)
    for values in (own, shared):
        assert torch.equal(values["kl_bits"], kl_bits(final, lens))
        assert torch.equal(values["ce_bits"], ce_bits(lens, targets))
        assert torch.equal(values["top1"], lens.argmax(-1))
    acc = LayerAccumulator(7)
    acc.update(lens, final, targets, inputs)
    assert acc.result()["entropy_bits"] == pytest.approx(float(entropy_bits(lens).mean()))


def test_evaluation_batches_shrink_with_the_vocabulary_and_leave_the_values_alone(
    tmp_path, small_readout
):
    from conftest import layered_store

    from iterlens.probing.lenses import LogitLens, evaluate_lenses
    from iterlens.probing.metrics import CACHE_FLOATS, batch_rows

    assert batch_rows(10, 1024) == 1024 and batch_rows(4096, 1024) == 1024  # kept
    assert batch_rows(4096, 256) == 256
    assert batch_rows(49152, 1024) == 64 and 64 * 49152 <= CACHE_FLOATS < 128 * 49152
    assert batch_rows(262144, 1024) == 16 and batch_rows(2**30, 1024) == 1
    store = layered_store(tmp_path / "store", small_readout, n=100, n_layers=2)
    lens = {"logit": LogitLens(small_readout)}
    big, _ = evaluate_lenses(lens, store, small_readout, batch_size=1024, progress=False)
    small, _ = evaluate_lenses(lens, store, small_readout, batch_size=7, progress=False)
    pd.testing.assert_frame_equal(big, small, check_exact=False, rtol=1e-12)
