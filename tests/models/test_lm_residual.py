"""The reference LM without residual connections: its block, its config flag, save and load,
the CLI path the workflow takes (train-lm --no-residual, init-lm) and extraction."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from iterlens.cli import main
from iterlens.data.text import load_tokenizer, save_tokens, tokenize_texts, train_tokenizer
from iterlens.models.lm import (
    RESIDUAL_KEY,
    apply_residual_setting,
    has_residual,
    init_model,
    load_model_dir,
    reference_config,
    save_model,
)
from iterlens.probing.extract import ResidualRecorder, extract_lm_shard
from iterlens.probing.readout import readout_from_lm

TEXTS = [
    "The people of the Union are strong and free.",
    "We must protect the freedom of the people.",
    "The Congress of the United States must act.",
] * 40
TINY = {
    "n_layer": 2,
    "n_embd": 16,
    "n_head": 2,
    "seq_len": 16,
    "steps": 40,
    "batch_size": 8,
    "lr": 0.01,
    "warmup_steps": 4,
    "eval_every": 20,
    "eval_batches": 2,
}


def tiny_plain(residual: bool = False, seed: int = 0, vocab: int = 61):
    """A tiny reference GPT-2 (2 layers, width 16), with or without its skips."""
    return init_model(reference_config(vocab, 2, 16, 2, 16, 0, residual=residual), seed)


def ids(vocab: int = 61, batch: int = 2, length: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randint(1, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def with_skips(model):
    """A model with the same weights whose blocks keep their residual connections."""
    from transformers import GPT2LMHeadModel

    config = model.config.to_dict()
    config.pop(RESIDUAL_KEY)
    twin = GPT2LMHeadModel(type(model.config).from_dict(config)).eval()
    twin.load_state_dict(model.state_dict())
    assert has_residual(twin.config) and type(twin.transformer.h[0]).__name__ == "GPT2Block"
    return twin


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    """``iterlens train-lm --no-residual`` and ``init-lm`` on a tiny corpus, as the rules run."""
    root = tmp_path_factory.mktemp("plain")
    train_tokenizer(TEXTS, 300, root / "tokenizer")
    tokens = tokenize_texts(load_tokenizer(root / "tokenizer"), TEXTS)
    save_tokens(tokens[: len(tokens) * 3 // 4], root / "train.npy")
    save_tokens(tokens[len(tokens) * 3 // 4 :], root / "val.npy")
    common = ["--quiet", "--threads", "1", "--tokenizer", str(root / "tokenizer")]
    assert (
        main(
            [
                "train-lm",
                *common,
                "--cfg",
                json.dumps({"lm": TINY}),
                "--train-tokens",
                str(root / "train.npy"),
                "--val-tokens",
                str(root / "val.npy"),
                "--no-residual",
                "--out",
                str(root / "model"),
                "--curve",
                str(root / "training.csv"),
            ]
        )
        == 0
    )
    init = ["init-lm", *common, "--trained", str(root / "model"), "--out", str(root / "random")]
    assert main(init) == 0
    return root


def test_the_no_skip_block_drops_both_additions_and_nothing_else():
    model = tiny_plain()
    assert not has_residual(model.config)
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str, output: bool):
        def hook(module, args, out):
            seen[name] = (out[0] if isinstance(out, tuple) else out) if output else args[0]

        return hook

    block = model.transformer.h[1]
    assert type(block).__name__ == "NoSkipGPT2Block"
    for name, module, output in [
        ("block_in", block.ln_1, False),
        ("attn_out", block.attn, True),
        ("ln_2_in", block.ln_2, False),
        ("mlp_out", block.mlp, True),
        ("block_out", block, True),
    ]:
        module.register_forward_hook(keep(name, output))
    with ResidualRecorder(model) as rec, torch.no_grad():
        hidden, logits = rec.run(ids())
    # h' = attn(ln_1(h)); out = mlp(ln_2(h')): no input added back at either sublayer
    torch.testing.assert_close(seen["ln_2_in"], seen["attn_out"], rtol=0, atol=0)
    torch.testing.assert_close(seen["block_out"], seen["mlp_out"], rtol=0, atol=0)
    torch.testing.assert_close(hidden[:, :, 1], seen["block_in"], rtol=0, atol=0)
    torch.testing.assert_close(hidden[:, :, 2], seen["mlp_out"], rtol=0, atol=0)
    # the readout (final norm + tied unembedding) of the last layer is the model's logits
    readout = readout_from_lm(model)
    readout.check_reproduces(hidden[:, :, -1], logits, 1e-5)
    # the same weights with skips compute another function
    assert not torch.allclose(with_skips(model)(ids()).logits, logits, atol=1e-3)


def test_saved_and_reloaded_no_residual_model_keeps_its_forward(tmp_path, plain_run):
    model = tiny_plain(vocab=len(load_tokenizer(plain_run / "tokenizer")))
    x = ids(vocab=model.config.vocab_size)
    with torch.no_grad():
        before = model(x).logits
    save_model(model, load_tokenizer(plain_run / "tokenizer"), tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())[RESIDUAL_KEY] is False
    loaded = load_model_dir(tmp_path / "m")
    assert all(type(b).__name__ == "NoSkipGPT2Block" for b in loaded.transformer.h)
    with torch.no_grad():
        after = loaded(x).logits
        skips = with_skips(loaded)(x).logits
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    # were the flag dropped, the weights would run with skips: clearly other logits
    assert (skips - before).abs().max() > 0.1
    # the untrained twin (init-lm: init_model on the trained config) has no skips either
    twin = init_model(loaded.config, seed=1)
    assert not has_residual(twin.config) and type(twin.transformer.h[0]) is type(
        loaded.transformer.h[0]
    )


def test_a_reference_lm_with_skips_is_the_plain_gpt2_as_before():
    config = reference_config(61, 2, 16, 2, 16, 0)
    assert not hasattr(config, RESIDUAL_KEY) and has_residual(config)
    model = init_model(config, 0)
    assert type(model.transformer.h[0]).__name__ == "GPT2Block"
    assert apply_residual_setting(model) is model  # nothing to do


def test_no_residual_lm_trains_and_extracts_through_the_cli(plain_run, tmp_path):
    import pandas as pd
    from safetensors.torch import load_file

    curve = pd.read_csv(plain_run / "training.csv")
    assert list(curve["step"]) == [20, 40]
    assert curve["val_loss_nats"].iloc[-1] < np.log(300) - 1.0  # learned well beyond uniform
    for folder in ("model", "random"):
        saved = json.loads((plain_run / folder / "config.json").read_text())
        assert saved[RESIDUAL_KEY] is False
        model = load_model_dir(plain_run / folder)
        assert model.config.n_layer == TINY["n_layer"]
        assert all(type(b).__name__ == "NoSkipGPT2Block" for b in model.transformer.h)
    model = load_model_dir(plain_run / "model")
    tokens = np.load(plain_run / "val.npy")
    out = tmp_path / "shard-00000.safetensors"
    tok = load_tokenizer(plain_run / "tokenizer")
    starts = np.array([0, 16])
    extract_lm_shard(model, readout_from_lm(model), tok, tokens, starts, 16, 2, out, progress=False)
    hidden = load_file(out)["hidden"].reshape(2, 16, TINY["n_layer"] + 1, TINY["n_embd"])
    x = torch.from_numpy(np.stack([tokens[s : s + 16] for s in starts]).astype(np.int64))
    with torch.no_grad():
        h = model.transformer.wte(x) + model.transformer.wpe(torch.arange(16))
        torch.testing.assert_close(hidden[:, :, 0], h, rtol=1e-5, atol=1e-5)
        for layer, block in enumerate(model.transformer.h):
            # the stored layer l + 1 is block l's no-skip output of the stored layer l
            h = block(hidden[:, :, layer])
            torch.testing.assert_close(hidden[:, :, layer + 1], h, rtol=1e-5, atol=1e-5)


def test_bad_residual_settings_are_refused_clearly():
    from iterlens.models.families import adapter_for

    with pytest.raises(TypeError, match="residual must be True or False"):
        reference_config(61, 2, 16, 2, 16, 0, residual="no")
    config = reference_config(61, 2, 16, 2, 16, 0)
    setattr(config, RESIDUAL_KEY, "false")
    with pytest.raises(ValueError, match=f"'{RESIDUAL_KEY}' must be true or false"):
        init_model(config, 0)
    llama = adapter_for("llama").tiny_model(0)
    setattr(llama.config, RESIDUAL_KEY, False)
    with pytest.raises(ValueError, match="not for model_type 'llama'"):
        apply_residual_setting(llama)
