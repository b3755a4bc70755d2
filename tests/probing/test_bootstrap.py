from __future__ import annotations

import numpy as np
import pytest

from iterlens.probing.bootstrap import (
    Examples,
    document_ids,
    estimate,
    estimate_difference,
    group_sums,
    resample_weights,
)


def mean_of(name):
    return lambda m: m[name]


def test_document_ids_follow_eos_separators():
    # stream "a b EOS c EOS d": the EOS closes its document
    assert document_ids(np.array([5, 6, 0, 7, 0, 8]), eos_id=0).tolist() == [0, 0, 0, 1, 1, 2]


def test_group_sums_by_hand():
    sums = group_sums({"x": np.array([1.0, 2.0, 4.0, 8.0])}, np.array([3, 3, 9, 3]))
    assert sums.counts.tolist() == [3, 1]
    assert sums.sums["x"].tolist() == [11.0, 4.0]
    assert sums.means()["x"].tolist() == [15.0 / 4]  # the per-example mean, not of groups


def test_resample_weights_draw_as_many_groups_as_there_are():
    w = resample_weights(7, n_boot=50, seed=3)
    assert w.shape == (50, 7)
    assert (w.sum(1) == 7).all()
    assert (resample_weights(7, 50, 3) == w).all()  # a fixed seed: same draws


def test_interval_of_a_constant_is_that_constant():
    sums = group_sums({"x": np.full(40, 2.5)}, np.arange(40) // 4)
    point, lo, hi = estimate(mean_of("x"), sums)
    assert point == lo == hi == 2.5


def test_interval_shrinks_when_the_sample_doubles():
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    small = group_sums({"x": x}, np.arange(200))
    big = group_sums({"x": np.concatenate([x, rng.normal(size=200)])}, np.arange(400))
    _, lo_s, hi_s = estimate(mean_of("x"), small)
    _, lo_b, hi_b = estimate(mean_of("x"), big)
    assert hi_b - lo_b < 0.8 * (hi_s - lo_s)  # about 1/sqrt(2) of the width
    assert lo_s < x.mean() < hi_s


def test_paired_bootstrap_of_identical_samples_is_exactly_zero():
    rng = np.random.default_rng(1)
    sums = group_sums({"a": rng.normal(size=(60, 3)), "b": np.zeros((60, 3))}, np.arange(60))
    sums.sums["b"] = sums.sums["a"].copy()
    est = estimate_difference(mean_of("a"), sums, mean_of("b"), sums, paired=True)
    for part in est:
        assert (part == 0).all()
    # unpaired resampling of the same data is not zero: the pairing is what removes the noise
    _, lo, hi = estimate_difference(mean_of("a"), sums, mean_of("b"), sums, paired=False)
    assert (hi - lo > 0).all()


def test_one_group_gives_no_interval():
    sums = group_sums({"x": np.arange(5.0)}, np.zeros(5))
    point, lo, hi = estimate(mean_of("x"), sums)
    assert point == 2.0 and np.isnan(lo) and np.isnan(hi)


def test_examples_round_trip(tmp_path):
    ex = Examples(
        np.array([0, 0, 1]),
        {"logit.kl_bits": np.ones((3, 2), np.float32), "prior_ce_bits": np.arange(3.0)},
        {"ce_bits": np.zeros((2, 2, 2)), "kl_bits": np.ones((2, 2, 2)), "count": np.ones(2)},
    )
    ex.save(tmp_path / "e.safetensors")
    back = Examples.load(tmp_path / "e.safetensors")
    assert back.groups.tolist() == [0, 0, 1]
    assert back.values["prior_ce_bits"].tolist() == [0.0, 1.0, 2.0]
    assert back.transfer_sums().n_groups == 2
    with pytest.raises(FileNotFoundError):
        Examples.load(tmp_path / "missing.safetensors")
