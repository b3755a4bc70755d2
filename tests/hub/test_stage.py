import hashlib
import json

import pandas as pd
import pytest
import torch
import yaml
from hub_fixtures import (  # noqa: F401 (fixtures)
    NAMESPACE,
    PREFIX,
    hub_cache,
    metrics_table,
    tiny_results,
)

from iterlens.hub.stage import stage_dataset_repo, stage_model_repo

REPO = f"{PREFIX}-lm"


def front_matter(path):
    text = path.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1]), text


def stage_lm(root, out, metrics=None):
    return stage_model_repo(
        "lm",
        root / "models" / "lm",
        root / "probed" / "lm" / "lenses",
        root / "probed" / "lm" / "readout.safetensors",
        metrics or root / "tables" / "lm" / "lens_metrics.csv",
        out,
        NAMESPACE,
        PREFIX,
        "lm",
    )


@pytest.fixture(scope="module")
def staged(tiny_results, tmp_path_factory):
    return stage_lm(tiny_results, tmp_path_factory.mktemp("release") / REPO)


def test_model_repo_holds_every_file(staged):
    files = {p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()}
    expected = {
        "README.md",
        "release.json",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "readout.safetensors",
        f"lens/{REPO}/config.json",
        f"lens/{REPO}/params.pt",
    }
    expected |= {
        f"lenses/{k}/{f}"
        for k in ("tuned", "shared", "probe")
        for f in ("lens.safetensors", "lens.json")
    }
    assert expected <= files
    assert not any(name.endswith((".bin", ".pkl")) for name in files)
    assert not list(staged.parent.glob(".*.tmp"))  # written atomically


def test_tuned_lens_config_names_repo_and_hash(staged, tiny_results):
    from iterlens.probing.readout import Readout

    config = json.loads((staged / "lens" / REPO / "config.json").read_text())
    readout = Readout.load(tiny_results / "probed" / "lm" / "readout.safetensors")
    assert config["unembed_hash"] == readout.unembedding_hash()
    assert config["base_model_name_or_path"] == f"{NAMESPACE}/{REPO}"
    assert config["num_hidden_layers"] == 3 and config["d_model"] == 32


def test_tokenizer_names_a_class_transformers_4_knows(staged):
    from transformers import AutoTokenizer

    config = json.loads((staged / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    tok = AutoTokenizer.from_pretrained(str(staged))
    assert tok("the Union")["input_ids"]


def test_model_card_yaml_and_body(staged):
    meta, text = front_matter(staged / "README.md")
    assert meta["library_name"] == "transformers"
    assert meta["datasets"] == [f"{NAMESPACE}/{PREFIX}-results"]
    assert "tuned-lens" in meta["tags"]
    (result,) = meta["model-index"][0]["results"]
    names = [m["name"] for m in result["metrics"]]
    assert names[0] == "final held-out loss (bits)"
    assert result["metrics"][0]["value"] == pytest.approx(5.0)  # logit lens CE at layer L
    assert "tuned lens KL to final, layer 0 (bits)" in names
    kl0 = next(
        m["value"]
        for m in result["metrics"]
        if m["name"] == "tuned lens KL to final, layer 0 (bits)"
    )
    assert kl0 == pytest.approx(4.0)  # the table's value, not a typed one
    assert f'iterlens.load_released_lens("{NAMESPACE}/{REPO}", model)' in text
    assert (
        f'TunedLens.from_model_and_pretrained(model, "{REPO}", repo_id="{NAMESPACE}/{REPO}"' in text
    )
    assert "@misc{" in text
    assert (
        "| 0 | 4.000 | 4.000 | 4.000 | 9.000 |" in text
    )  # layer 0: logit, tuned, shared KL; probe CE


def test_model_card_shows_intervals_when_the_table_has_them(tiny_results, tmp_path):
    path = tmp_path / "metrics.csv"
    metrics_table(3, intervals=True).to_csv(path, index=False)
    out = stage_lm(tiny_results, tmp_path / REPO, metrics=path)
    _, text = front_matter(out / "README.md")
    assert "| 0 | 4.000 [3.900, 4.100] |" in text


def test_a_model_without_residual_skips_is_loaded_with_iterlens_in_its_card(tiny_results, tmp_path):
    """Plain transformers would add the skips back: the card of a no-skip LM says iterlens."""
    import shutil

    from iterlens.models.lm import RESIDUAL_KEY

    root = tmp_path / "results"
    shutil.copytree(tiny_results, root)
    config = root / "models" / "lm" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), RESIDUAL_KEY: False}))
    _, text = front_matter(stage_lm(root, tmp_path / REPO) / "README.md")
    assert f'model = load_causal_lm("{NAMESPACE}/{REPO}")' in text
    assert "AutoModelForCausalLM" not in text
    _, plain = front_matter(stage_lm(tiny_results, tmp_path / "plain" / REPO) / "README.md")
    assert "AutoModelForCausalLM.from_pretrained" in plain and "load_causal_lm" not in plain


def test_staged_lens_loads_in_tuned_lens_with_the_same_logits(staged, tiny_results, hub_cache):
    from transformers import AutoModelForCausalLM
    from tuned_lens import TunedLens

    import iterlens

    rid = f"{NAMESPACE}/{REPO}"
    hub_cache(rid, "model", staged)
    model = AutoModelForCausalLM.from_pretrained(str(staged)).eval()
    theirs = TunedLens.from_model_and_pretrained(model, REPO, repo_id=rid, repo_type="model")
    ours = iterlens.load_released_lens(rid, model)
    h = torch.randn(5, 32)
    for layer in range(3):
        assert theirs.layer_translators[layer].weight.abs().sum() > 0
        torch.testing.assert_close(theirs(h, layer), ours(h, layer))
    # and the staged lens is the trained one
    from iterlens.probing.lenses import load_lens
    from iterlens.probing.readout import Readout

    readout = Readout.load(tiny_results / "probed" / "lm" / "readout.safetensors")
    trained = load_lens(tiny_results / "probed" / "lm" / "lenses" / "tuned", readout)
    torch.testing.assert_close(trained(h, 1), ours(h, 1))


def test_dataset_repo_tables_splits_and_card(tiny_results, tmp_path):
    out = stage_dataset_repo(
        tiny_results / "tables",
        tiny_results / "corpus",
        tmp_path / f"{PREFIX}-results",
        NAMESPACE,
        PREFIX,
        ["lm"],
    )
    meta, text = front_matter(out / "README.md")
    configs = {c["config_name"]: c["data_files"][0]["path"] for c in meta["configs"]}
    assert configs == {
        "headline": "data/headline.parquet",
        "lm_lens_metrics": "data/lm/lens_metrics.parquet",
        "lm_training": "data/lm/training.parquet",
    }
    for name, path in configs.items():
        csv = tiny_results / "tables" / path.removeprefix("data/").replace(".parquet", ".csv")
        pd.testing.assert_frame_equal(
            pd.read_parquet(out / path), pd.read_csv(csv), check_dtype=False, obj=name
        )
    assert json.loads((out / "splits" / "eval.json").read_text()) == ["d"]
    assert json.loads((out / "splits" / "train.json").read_text()) == ["a", "b"]
    assert f"{NAMESPACE}/{PREFIX}-lm" in text
    assert not (out / "activations").exists()  # off by default


def test_dataset_repo_activations_in_half_precision(tiny_results, tmp_path):
    from safetensors.torch import load_file, save_file

    store = tmp_path / "store"
    store.mkdir()
    hidden = torch.randn(4, 4, 32)
    save_file(
        {"hidden": hidden, "targets": torch.arange(4)}, str(store / "shard-00000.safetensors")
    )
    shards = [{"file": "shard-00000.safetensors", "sha256": "of the float32 file"}]
    (store / "manifest.json").write_text(json.dumps({"n_examples": 4, "shards": shards}))
    out = stage_dataset_repo(
        tiny_results / "tables",
        tiny_results / "corpus",
        tmp_path / "ds",
        NAMESPACE,
        PREFIX,
        ["lm"],
        activations={"lm": store},
    )
    shard = load_file(str(out / "activations" / "lm_eval" / "shard-00000.safetensors"))
    assert shard["hidden"].dtype == torch.float16
    assert shard["targets"].dtype == torch.int64
    torch.testing.assert_close(shard["hidden"].float(), hidden, atol=1e-2, rtol=1e-2)
    manifest = json.loads((out / "activations" / "lm_eval" / "manifest.json").read_text())
    assert manifest["dtype"] == "float16"
    half = out / "activations" / "lm_eval" / "shard-00000.safetensors"
    assert manifest["shards"][0]["sha256"] == hashlib.sha256(half.read_bytes()).hexdigest()
    assert "Activations" in (out / "README.md").read_text()


def test_a_gguf_model_repo_names_its_file_and_ships_no_weights(tiny_results, tmp_path):
    """The weights of a GGUF model are rebuilt from the pinned file, not re-published."""
    import shutil

    from iterlens.models.gguf import SOURCE_FILE

    root = tmp_path / "results"
    shutil.copytree(tiny_results, root)
    source = {
        "file": "tiny-q4.gguf",
        "size": 2_500_000,
        "sha256": "ab" * 32,
        "architecture": "gpt2",
        "model_type": "gpt2",
        "name": "tiny",
        "quantization": "MOSTLY_Q4_K_M",
        "n_tensors": 40,
        "dtype": "float32",
        "origin": "tiny_gguf_pkg",
    }
    (root / "models" / "lm" / SOURCE_FILE).write_text(json.dumps(source))
    metrics = tmp_path / "metrics.csv"
    metrics_table(3, intervals=True).to_csv(metrics, index=False)
    out = stage_model_repo(
        "lm",
        root / "models" / "lm",
        root / "probed" / "lm" / "lenses",
        root / "probed" / "lm" / "readout.safetensors",
        metrics,
        tmp_path / REPO,
        NAMESPACE,
        PREFIX,
        "lm",
        license="apache-2.0",
    )
    files = {p.name for p in out.iterdir() if p.is_file()}
    assert {"config.json", SOURCE_FILE} <= files
    assert not files & {"model.safetensors", "tokenizer.json"}
    meta, text = front_matter(out / "README.md")
    assert meta["license"] == "apache-2.0" and "quantized" in meta["tags"]
    assert "tiny-q4.gguf" in text and "ab" * 32 in text and "MOSTLY_Q4_K_M" in text
    weights = (root / "models" / "lm" / "model.safetensors").stat().st_size
    assert f"dequantized copy is {weights / 1e6:.0f} MB" in text
    assert "iterlens record-lm --source gguf --path tiny_gguf_pkg --out model" in text
    assert 'AutoModelForCausalLM.from_pretrained("model")' in text
    # the per-layer KL of model-index carries its interval
    (result,) = meta["model-index"][0]["results"]
    name = "tuned lens KL to final, layer 0 (bits)"
    kl0 = next(m for m in result["metrics"] if m["name"] == name)
    assert kl0["args"] == {"ci95_low": pytest.approx(3.9), "ci95_high": pytest.approx(4.1)}


def test_tuned_lens_users_are_told_the_final_norm_only_where_tuned_lens_lacks_it():
    from iterlens.hub.cards import tuned_lens_final_norm

    assert tuned_lens_final_norm("gpt2") is None and tuned_lens_final_norm("llama") is None
    assert tuned_lens_final_norm("gemma3_text") == "model.norm"
