from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_lm

from iterlens.models.cnn import (
    init_cnn,
)
from iterlens.models.families import adapter_for, supported
from iterlens.probing.extract import (
    CHECK_WINDOWS,
    ResidualRecorder,
    extract_cnn_store,
    extract_lm_shard,
)
from iterlens.probing.lenses import (
    LogitLens,
    evaluate_lenses,
)
from iterlens.probing.readout import readout_from_cnn, readout_from_lm
from iterlens.probing.store import (
    ActivationStore,
    shard_is_complete,
    shard_path,
)


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_extraction_resumes_and_checks_readout(tmp_path):
    from transformers import PreTrainedTokenizerFast

    model = tiny_lm("gpt2")
    readout = readout_from_lm(model)
    tokenizer = _char_tokenizer(PreTrainedTokenizerFast)
    tokens = np.random.default_rng(0).integers(1, 97, 400).astype(np.int32)
    out = tmp_path / "shard-00000.safetensors"
    starts = np.array([0, 16, 32])
    extract_lm_shard(model, readout, tokenizer, tokens, starts, 16, 2, out, progress=False)
    assert shard_is_complete(out)
    stamp = out.stat().st_mtime_ns
    extract_lm_shard(model, readout, tokenizer, tokens, starts, 16, 2, out, progress=False)
    assert out.stat().st_mtime_ns == stamp  # a finished shard is not redone
    wrong = readout_from_lm(tiny_lm("gpt2", seed=3))
    with pytest.raises(RuntimeError, match="readout check failed"):
        extract_lm_shard(
            model,
            wrong,
            tokenizer,
            tokens,
            starts,
            16,
            2,
            tmp_path / "other.safetensors",
            progress=False,
        )
    assert not (tmp_path / "other.safetensors").exists()


@pytest.mark.parametrize("family", supported())
def test_stored_passes_stop_before_the_unembedding(tmp_path, family):
    """The unembedding runs once a shard (the readout check, on CHECK_WINDOWS windows), yet the
    shard holds exactly the residuals of full forward passes over the same batches."""
    from safetensors.torch import load_file
    from transformers import PreTrainedTokenizerFast

    model = tiny_lm(family)
    head = adapter_for(model).unembedding_of(model)
    rows = []
    handle = head.register_forward_hook(lambda m, args, out: rows.append(args[0].shape[0]))
    tokens = np.random.default_rng(2).integers(1, 97, 400).astype(np.int32)
    starts = np.arange(5) * 16
    out = tmp_path / "shard.safetensors"
    tokenizer = _char_tokenizer(PreTrainedTokenizerFast)
    extract_lm_shard(
        model, readout_from_lm(model), tokenizer, tokens, starts, 16, 2, out, progress=False
    )
    handle.remove()
    assert rows == [CHECK_WINDOWS]
    x = torch.from_numpy(np.stack([tokens[s : s + 16] for s in starts]).astype(np.int64))
    with ResidualRecorder(model) as rec:
        full = torch.cat([rec.run(x[b : b + 2])[0] for b in range(0, 5, 2)])
    assert torch.equal(load_file(out)["hidden"], full.reshape(80, *full.shape[2:]))


def test_skipped_positions_are_read_by_the_model_but_not_stored(tmp_path):
    """Position 0 left out: the stored rows are the full run's rows 1..15 of every window, so the
    model still saw position 0 (its later residuals are unchanged) but no lens sees it."""
    from safetensors.torch import load_file
    from transformers import PreTrainedTokenizerFast

    model = tiny_lm("gpt2")
    readout = readout_from_lm(model)
    tokenizer = _char_tokenizer(PreTrainedTokenizerFast)
    tokens = np.random.default_rng(1).integers(1, 97, 400).astype(np.int32)
    starts = np.array([0, 16, 32])
    full, cut = tmp_path / "full.safetensors", tmp_path / "cut.safetensors"
    extract_lm_shard(model, readout, tokenizer, tokens, starts, 16, 2, full, progress=False)
    extract_lm_shard(
        model, readout, tokenizer, tokens, starts, 16, 2, cut, progress=False, skip_positions=1
    )
    a, b = load_file(full), load_file(cut)
    keep = (torch.arange(48) % 16) != 0
    assert b["hidden"].shape[0] == 45
    torch.testing.assert_close(b["hidden"], a["hidden"][keep])
    assert torch.equal(b["targets"], a["targets"][keep])
    assert torch.equal(b["inputs"], a["inputs"][keep])
    with pytest.raises(ValueError, match="skip_positions 16"):
        extract_lm_shard(
            model, readout, tokenizer, tokens, starts, 16, 2, tmp_path / "x", skip_positions=16
        )


def test_cnn_extraction_resumes_and_checks_readout(tmp_path):
    net = init_cnn(8, (1,), residual=False, seed=0)
    readout = readout_from_cnn(net)
    x, y = images(30), torch.arange(30) % 10
    folder = tmp_path / "store"
    extract_cnn_store(net, readout, x, y, folder, shard_size=10, progress=False)
    kept = shard_path(folder, 0).stat().st_mtime_ns
    shard_path(folder, 2).write_bytes(b"truncated")
    manifest = extract_cnn_store(net, readout, x, y, folder, shard_size=10, progress=False)
    assert shard_path(folder, 0).stat().st_mtime_ns == kept  # complete shard kept
    assert manifest["n_examples"] == 30  # broken shard rewritten
    ActivationStore(folder, verify_hashes=True)
    other = readout_from_cnn(init_cnn(8, (1,), residual=False, seed=1))
    with pytest.raises(RuntimeError, match="readout check failed"):
        extract_cnn_store(net, other, x, y, tmp_path / "other", progress=False)
    assert not (tmp_path / "other" / "manifest.json").exists()


def test_identity_lens_reproduces_logits_at_last_layer(tmp_path):
    net = init_cnn(8, (1, 1), residual=True, seed=0)
    readout = readout_from_cnn(net)
    x = images(50)
    y = torch.arange(50) % 10
    manifest = extract_cnn_store(
        net,
        readout,
        x,
        y,
        tmp_path / "store",
        shard_size=20,
        batch_size=8,
        meta={"split": "eval"},
        progress=False,
    )
    assert manifest["domain"] == "vision" and manifest["split"] == "eval"
    assert manifest["readout_fingerprint"] == readout.fingerprint()
    assert len(manifest["shards"]) == 3 and manifest["n_examples"] == 50
    store = ActivationStore(tmp_path / "store", verify_hashes=True)
    assert (store.n_layers, store.d_model) == (2, 8)
    shard = store.load_shard(0)
    assert torch.equal(shard["targets"], y[:20]) and (shard["inputs"] == -1).all()
    with torch.no_grad():
        assert torch.allclose(shard["hidden"], net.representations(x[:20]), atol=1e-6)
    metrics, _ = evaluate_lenses(
        {"identity": LogitLens(readout)}, store, readout, batch_size=16, progress=False
    )
    last = metrics[metrics.layer == 2].iloc[0]
    assert abs(last.kl_bits) < 1e-5
    assert last.top1_agree == 1.0
    with torch.no_grad():
        acc = (net(x).argmax(-1) == y).float().mean().item()
    assert last.top1_acc == pytest.approx(acc)
    assert metrics[metrics.layer == 0].iloc[0].kl_bits > 1e-3  # the stem is not final


def _char_tokenizer(cls):
    from tokenizers import Tokenizer, models

    vocab = {chr(65 + i % 26) + str(i): i for i in range(97)}
    return cls(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="A0")))


def test_windows_spread_over_the_split_and_record_documents():
    from iterlens.probing.extract import document_of_position, shard_windows

    tokens = np.zeros(1001, dtype=np.int32)
    # 4 windows of 10 out of 100 available: evenly spread, non-overlapping, 2 a shard
    starts = [shard_windows(tokens, 10, 40, 20, i).tolist() for i in range(2)]
    assert starts == [[0, 250], [500, 750]]
    eos = 9
    stream = np.array([1, 2, eos, 3, eos, 4, 5])
    assert document_of_position(stream, eos).tolist() == [0, 0, 0, 1, 1, 2, 2]
