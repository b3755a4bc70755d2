import json

import pytest
import torch
from hub_fixtures import hub_cache, randomize  # noqa: F401 (fixtures)

from iterlens.hub.pull import LensMismatchError, load_released_lens

SPACE = "AlignmentResearch/tuned-lens"


def tiny_gpt2(seed=0, name="tiny-gpt2"):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    model = GPT2LMHeadModel(
        GPT2Config(vocab_size=97, n_layer=3, n_embd=32, n_head=2, n_positions=64)
    ).eval()
    model.config.name_or_path = name
    return model


def their_lens(model, folder, hash_key="unembed_hash", seed=0):
    """A lens saved by tuned_lens itself, with its config's hash key spelt as given."""
    from tuned_lens import TunedLens

    lens = TunedLens.from_model(model)
    randomize(lens, seed)
    lens.save(folder)
    config = json.loads((folder / "config.json").read_text())
    value = config.pop("unembed_hash")
    if hash_key:
        config[hash_key] = value
    (folder / "config.json").write_text(json.dumps(config))
    return lens


def assert_same_logits(theirs, ours, n_layers=3):
    h = torch.randn(4, 32)
    for layer in range(n_layers):
        torch.testing.assert_close(theirs(h, layer), ours(h, layer))


def test_native_lens_round_trips_from_a_local_folder(tmp_path):
    from iterlens.probing.lenses import make_lens, save_lens
    from iterlens.probing.readout import readout_from_lm

    model = tiny_gpt2()
    readout = readout_from_lm(model)
    for kind in ("tuned", "shared", "probe"):
        lens = make_lens(kind, readout, 3)
        randomize(lens)
        save_lens(lens, tmp_path / "lenses" / kind, readout, 3)
        loaded = load_released_lens(tmp_path, model, kind)
        assert loaded.kind == kind and loaded.n_layers == 3
        assert_same_logits(lens, loaded)


def test_tuned_lens_layout_folder(tmp_path):
    model = tiny_gpt2()
    theirs = their_lens(model, tmp_path / "lens" / "tiny-gpt2")
    assert_same_logits(theirs, load_released_lens(tmp_path, model))  # lens/<model name>/
    assert_same_logits(
        theirs, load_released_lens(tmp_path / "lens" / "tiny-gpt2", model)
    )  # the folder


@pytest.mark.parametrize("hash_key", ["unembed_hash", "unemebd_hash", None])
def test_space_layout_from_a_prefilled_hub_cache(tmp_path, hub_cache, hash_key):
    model = tiny_gpt2()
    folder = tmp_path / "space" / "lens" / "tiny-gpt2"
    theirs = their_lens(model, folder, hash_key)
    hub_cache(SPACE, "space", tmp_path / "space")
    assert_same_logits(theirs, load_released_lens(f"spaces/{SPACE}", model))
    assert_same_logits(
        theirs, load_released_lens(SPACE, model, repo_type="space", lens_name="tiny-gpt2")
    )


@pytest.mark.parametrize("hash_key", ["unembed_hash", "unemebd_hash"])
def test_a_lens_for_another_model_is_refused(tmp_path, hub_cache, hash_key):
    other = tiny_gpt2(seed=1)
    their_lens(other, tmp_path / "space" / "lens" / "tiny-gpt2", hash_key)
    hub_cache(SPACE, "space", tmp_path / "space")
    model = tiny_gpt2(seed=0)
    with pytest.raises(LensMismatchError, match="made for another model.*unembedding hash"):
        load_released_lens(f"spaces/{SPACE}", model)
    lens = load_released_lens(
        f"spaces/{SPACE}", model, allow_mismatch=True
    )  # the explicit override
    assert lens.layer_translators[0].weight.abs().sum() > 0


def test_a_lens_of_another_shape_is_refused_even_with_the_override(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(
        GPT2Config(vocab_size=97, n_layer=2, n_embd=32, n_head=2, n_positions=64)
    ).eval()
    their_lens(tiny_gpt2(), tmp_path, None)
    with pytest.raises(LensMismatchError, match="3 layers, the model 2"):
        load_released_lens(tmp_path, model, allow_mismatch=True)


def test_native_lens_for_another_readout_is_refused(tmp_path):
    from iterlens.probing.lenses import make_lens, save_lens
    from iterlens.probing.readout import readout_from_lm

    other = readout_from_lm(tiny_gpt2(seed=1))
    save_lens(make_lens("shared", other, 3), tmp_path / "lenses" / "shared", other, 3)
    with pytest.raises(ValueError, match="unembedding does not match"):
        load_released_lens(tmp_path, tiny_gpt2(), "shared")
    assert load_released_lens(tmp_path, tiny_gpt2(), "shared", allow_mismatch=True).kind == "shared"


def test_missing_from_cache_names_the_reason(hub_cache):
    with pytest.raises(FileNotFoundError, match="not in the local cache"):
        load_released_lens("nobody/nothing", tiny_gpt2())


def test_params_pt_is_loaded_without_pickle(tmp_path):
    model = tiny_gpt2()
    folder = tmp_path / "lens" / "tiny-gpt2"
    their_lens(model, folder)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"0.weight": Evil()}, folder / "params.pt")
    with pytest.raises(Exception, match="[Ww]eights only|weights_only|Unsupported"):
        load_released_lens(tmp_path, model)


def test_cli_pull_writes_an_evaluable_lens(tmp_path, hub_cache):
    from iterlens.cli import main
    from iterlens.probing.lenses import load_lens
    from iterlens.probing.readout import readout_from_lm

    model = tiny_gpt2()
    model.save_pretrained(tmp_path / "model")
    readout = readout_from_lm(model)
    readout.save(tmp_path / "readout.safetensors")
    theirs = their_lens(model, tmp_path / "space" / "lens" / "tiny-gpt2", "unemebd_hash")
    hub_cache(SPACE, "space", tmp_path / "space")
    assert (
        main(
            [
                "pull",
                "--source",
                f"spaces/{SPACE}",
                "--readout",
                str(tmp_path / "readout.safetensors"),
                "--lens-name",
                "tiny-gpt2",
                "--out",
                str(tmp_path / "pulled"),
            ]
        )
        == 0
    )
    assert_same_logits(theirs, load_lens(tmp_path / "pulled", readout))
    assert (
        main(
            [
                "pull",
                "--source",
                f"spaces/{SPACE}",
                "--readout",
                str(tmp_path / "readout.safetensors"),
                "--kind",
                "shared",
                "--missing-ok",
                "--out",
                str(tmp_path / "none"),
            ]
        )
        == 0
    )
    assert not (tmp_path / "none").exists()
    assert (
        main(
            [
                "pull",
                "--source",
                f"spaces/{SPACE}",
                "--readout",
                str(tmp_path / "readout.safetensors"),
                "--kind",
                "shared",
                "--out",
                str(tmp_path / "none"),
            ]
        )
        == 1
    )
