from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import layered_store
from safetensors import safe_open

from iterlens.probing.fitting import fit_kind, fit_lens, heldout_size, lstsq_init, prior_init
from iterlens.probing.lenses import FreeProbe, evaluate_lenses, make_lens, make_tuned_lens


def heldout_kl(lens, store, readout) -> float:
    """Mean KL (bits) over layers 0..L-1 on the eval store."""
    metrics, _ = evaluate_lenses({"tuned": lens}, store, readout, progress=False)
    return float(metrics[metrics.layer < store.n_layers]["kl_bits"].mean())


def test_more_distinct_tokens_give_a_lower_heldout_kl(smoke_lm):
    readout, fit_store, eval_store, _ = smoke_lm
    n, layers = fit_store.n_examples, list(range(fit_store.n_layers))
    kl = {}
    for used in (128, n - 512):  # train on the first `used` examples, the same steps
        lens = make_tuned_lens(readout, fit_store.n_layers)
        fit_lens(
            lens, fit_store, readout, layers, "kl", 40, 128, 1e-2, progress=False,
            holdout=n - used, eval_every=40, init="lstsq",
        )  # fmt: skip
        kl[used] = heldout_kl(lens, eval_store, readout)
    assert kl[n - 512] < 0.9 * kl[128], kl


def test_lstsq_start_beats_the_zero_start_and_skips_probes(smoke_lm):
    readout, fit_store, eval_store, _ = smoke_lm
    zero = make_tuned_lens(readout, fit_store.n_layers)
    start = make_tuned_lens(readout, fit_store.n_layers)
    assert lstsq_init(start, fit_store, range(fit_store.n_layers), holdout=512)
    assert heldout_kl(start, eval_store, readout) < 0.5 * heldout_kl(zero, eval_store, readout)
    probe = FreeProbe(readout.d_model, readout.n_classes, fit_store.n_layers)
    assert not lstsq_init(probe, fit_store, [0, 1])
    assert all((p == 0).all() for p in probe.parameters())


def test_prior_start_predicts_the_smoothed_training_marginal(tmp_path, small_readout):
    store = layered_store(tmp_path / "store", small_readout, n=64, n_layers=2)
    holdout = 16
    train = torch.cat([store.load_shard(0)["targets"], store.load_shard(1)["targets"][:-holdout]])
    probe = FreeProbe(16, 12, 2)
    assert prior_init(probe, store, holdout=holdout)
    counts = torch.tensor([1.0 + int((train == c).sum()) for c in range(12)])  # add-one
    expected = torch.log(counts / (len(train) + 12))
    for head in probe.heads.values():
        assert (head.weight == 0).all()
        torch.testing.assert_close(head.bias, expected)
    assert not prior_init(make_tuned_lens(small_readout, 2), store)
    with pytest.raises(ValueError, match="does not apply"):
        fit_lens(make_tuned_lens(small_readout, 2), store, small_readout, [0], "kl", 1, 8, 1e-3,
                 progress=False, init="prior")  # fmt: skip


def test_heldout_slice_is_never_trained_on(smoke_lm):
    _, fit_store, _, _ = smoke_lm
    n = fit_store.n_examples
    seen = sum(len(b.targets) for b in fit_store.iter_batches(1000, [0], holdout=300))
    tail = fit_store.tail(300, [0])
    assert seen == n - 300 and len(tail.targets) == 300
    last = fit_store.load_shard(len(fit_store.manifest["shards"]) - 1)
    torch.testing.assert_close(tail.targets, last["targets"][-300:])
    assert tail.hidden.dtype == torch.float32  # float16 shards are read as float32
    with pytest.raises(ValueError, match="cannot hold out"):
        next(fit_store.iter_batches(10, holdout=n))


def test_fit_kind_early_stopping_curve(smoke_lm):
    readout, fit_store, _, _ = smoke_lm
    cfg = {
        "seed": 0,
        "lens": {
            "steps": 400, "batch_size": 128, "lr": 3e-3, "weight_decay": 0.0,
            "holdout_fraction": 0.05, "eval_every": 10, "patience": 2, "min_delta": 0.05,
            "init": "lstsq",
        },
    }  # fmt: skip
    lens, curve = fit_kind("tuned", fit_store, readout, cfg, progress=False)
    assert curve["step"].max() < 400  # a 5% improvement per 10 steps cannot last
    assert curve["best"].sum() == 1
    best = curve[curve["best"]].iloc[0]
    assert best["heldout_loss_nats"] == curve["heldout_loss_nats"].min()  # the kept step
    assert best["heldout_loss_nats"] < curve["heldout_loss_nats"].iloc[0]
    # the last two evaluations did not improve by the 5% that counts on the one before
    held = curve["heldout_loss_nats"].to_numpy()
    assert (held[-2:] >= 0.95 * held[-3]).all()
    assert curve["tokens"].iloc[-1] == curve["step"].iloc[-1] * 128


def test_smoke_run_fit_tables_figure_and_float16_store(smoke_run):
    tables = smoke_run / "results" / "tables"
    for kind in ("tuned", "shared", "probe"):
        curve = pd.read_csv(tables / "lm" / f"fit_{kind}.csv")
        assert {"step", "tokens", "train_loss_nats", "heldout_loss_nats", "best"} <= set(curve)
        assert curve["heldout_loss_nats"].notna().all() and curve["best"].sum() == 1
    assert (smoke_run / "results" / "figures" / "lm_fit.png").stat().st_size > 10_000
    acts = smoke_run / "results" / "probed" / "lm" / "acts"
    for split, dtype in (("lensfit", torch.float16), ("eval", torch.float32)):
        with safe_open(str(acts / split / "shard-00000.safetensors"), framework="pt") as f:
            assert f.get_tensor("hidden").dtype == dtype


def test_heldout_size_has_a_floor_for_small_stores():
    assert heldout_size(0.015, 262144) == 3932  # the LM's lens-fit store: the fraction
    assert heldout_size(0.015, 1000) == 250  # a CNN's 1,000 images: a quarter, not 15
    assert heldout_size(0.015, 4000) == 256
    assert heldout_size(0.0, 1000) == 0
    assert heldout_size(0.5, 2) == 1


def test_fused_kl_matches_autograd_through_log_softmax():
    """KLFromLogits: the same per-row KL and the same gradient as the textbook formula."""
    from iterlens.probing.fitting import KLFromLogits
    from iterlens.probing.metrics import LN2, kl_bits

    torch.manual_seed(0)
    final = torch.randn(64, 50, dtype=torch.float64) * 3
    logp = torch.log_softmax(final, -1)
    p = logp.exp()
    z = (torch.randn(64, 50, dtype=torch.float64) * 2).requires_grad_()
    weights = torch.rand(64, dtype=torch.float64)  # a non-uniform upstream gradient

    fused = KLFromLogits.apply(z, p, (p * logp).sum(-1))
    (fused * weights).sum().backward()
    fused_grad = z.grad.clone()
    z.grad = None
    plain = (p * (logp - torch.log_softmax(z, -1))).sum(-1)
    (plain * weights).sum().backward()

    torch.testing.assert_close(fused, plain, rtol=0, atol=1e-12)
    # and the metric's own float32 KL (bits)
    torch.testing.assert_close(
        fused.detach(), kl_bits(final, z.detach()).double() * LN2, rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(fused_grad, z.grad, rtol=0, atol=1e-12)
    # by hand: the gradient of KL(p || softmax(z)) is softmax(z) - p, row by row
    expected = (torch.softmax(z.detach(), -1) - p) * weights[:, None]
    torch.testing.assert_close(fused_grad, expected, rtol=0, atol=1e-12)


def test_shared_lens_is_not_fitted_on_layer_0_or_the_last_by_default(smoke_lm, monkeypatch):
    """The default config fits the one shared lens on layers 1..L-1 only."""
    from iterlens.config import validate
    from iterlens.probing import fitting

    readout, fit_store, _, _ = smoke_lm
    seen = {}

    def spy(lens, store, readout, layers, **kwargs):
        seen[type(lens).__name__] = list(layers)
        return pd.DataFrame({"step": [0], "heldout_loss_nats": [0.0]})

    monkeypatch.setattr(fitting, "fit_lens", spy)
    cfg = validate({})
    assert cfg["lens"]["shared_layers"] == "inner"
    n = fit_store.n_layers
    for kind in ("shared", "tuned", "probe"):
        fit_kind(kind, fit_store, readout, cfg, progress=False)
    assert seen["SharedLens"] == list(range(1, n))
    assert seen["LayerTunedLens"] == list(range(n))
    assert seen["FreeProbe"] == list(range(n + 1))
    fit_kind("shared", fit_store, readout, {**cfg, "lens": {**cfg["lens"], "shared_layers": "all"}})
    assert seen["SharedLens"] == list(range(n + 1))


def test_the_fit_seed_sets_the_lens_and_the_cli_records_the_replicates_seed(smoke_lm, tmp_path):
    """Same seed, same lens; another seed (another batch order), another lens; and
    ``fit-lenses --replicate k`` fits with seed + k and writes that seed into lens.json."""
    import json

    from iterlens.cli import main
    from iterlens.config import validate

    readout, fit_store, _, _ = smoke_lm
    cfg = validate({"seed": 3, "lens": {"steps": 20, "batch_size": 64, "holdout_fraction": 0}})

    def weights(seed):
        lens, _ = fit_kind("tuned", fit_store, readout, cfg, progress=False, seed=seed)
        return torch.cat([p.detach().flatten() for p in lens.parameters() if p.requires_grad])

    assert torch.equal(weights(4), weights(4))
    assert not torch.allclose(weights(4), weights(5))
    readout.save(tmp_path / "readout.safetensors")
    args = ["fit-lenses", "--quiet", "--kinds", "tuned"]
    args += ["--cfg", json.dumps(cfg), "--store", str(fit_store.folder), "--replicate", "2"]
    args += ["--readout", str(tmp_path / "readout.safetensors"), "--out", str(tmp_path / "lenses")]
    assert main([*args, "--curves", str(tmp_path / "curves")]) == 0
    meta = json.loads((tmp_path / "lenses" / "tuned" / "lens.json").read_text())
    assert meta["fit_seed"] == "5"


def test_a_probe_on_a_layer_subset_has_heads_and_rows_there_only(tmp_path, small_readout):
    from iterlens.probing.lenses import load_lens, save_lens

    store = layered_store(tmp_path / "store", small_readout, n=256, n_layers=4)
    cfg = {
        "seed": 0,
        "lens": {"shared_layers": "inner"},
        "probe": {
            "steps": 20, "batch_size": 64, "lr": 1e-2, "weight_decay": 0.0,
            "holdout_fraction": 0.0, "eval_every": 10, "patience": 0, "min_delta": 0.0,
            "init": "prior", "layers": [3, 1],
        },
    }  # fmt: skip
    probe, _ = fit_kind("probe", store, small_readout, cfg, progress=False)
    assert probe.layers == [1, 3] and sorted(probe.state_dict()) == [
        "heads.1.bias", "heads.1.weight", "heads.3.bias", "heads.3.weight"
    ]  # fmt: skip
    assert (probe.heads["1"].weight != 0).any()  # trained, not left at the prior
    save_lens(probe, tmp_path / "probe", small_readout, 4)
    loaded = load_lens(tmp_path / "probe", small_readout)
    assert loaded.layers == [1, 3]
    values: dict = {}
    metrics, depth = evaluate_lenses(
        {"probe": loaded, "logit": make_lens("logit", small_readout, 4)},
        store, small_readout, progress=False, examples=values,
    )  # fmt: skip
    assert metrics[metrics["lens"] == "probe"]["layer"].tolist() == [1, 3]
    assert metrics[metrics["lens"] == "logit"]["layer"].tolist() == [0, 1, 2, 3, 4]
    assert set(depth["lens"]) == {"logit"}  # prediction depth needs every layer
    ce = values["probe.ce_bits"]
    assert np.isnan(ce[:, [0, 2, 4]]).all() and np.isfinite(ce[:, [1, 3]]).all()
    with pytest.raises(ValueError, match="probe layer 5 is not a layer"):
        FreeProbe(16, 12, 4, [5])


def test_a_fitted_lens_leaves_without_gradients(tmp_path, small_readout):
    """fit_lens frees what only training needs: no parameter keeps its .grad."""
    store = layered_store(tmp_path / "store", small_readout, n=64, n_layers=2)
    lens = make_tuned_lens(small_readout, 2)
    fit_lens(lens, store, small_readout, [0, 1], "kl", 3, 8, 1e-3, progress=False,
             holdout=16, eval_every=1, patience=2)  # fmt: skip
    assert all(p.grad is None for p in lens.parameters())
