from pathlib import Path

import pytest
import yaml

from iterlens.cli import main
from iterlens.config import ConfigError, load_config, validate

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_filled():
    cfg = validate({})
    assert [m["name"] for m in cfg["models"]] == ["lm", "cnn_plain", "cnn_residual"]
    assert cfg["models"][0]["controls"] == {"random_init": True, "rotated": True, "seeds": 1}
    assert cfg["tokenizer"]["vocab_size"] == 4096
    assert cfg["corpus"]["source"] == "sotu"


@pytest.mark.parametrize(
    "name", ["config.yaml", "smoke.yaml", "gpt2.yaml", "pythia-160m.yaml", "tinyllama.yaml"]
)
def test_shipped_configs_validate(name):
    cfg = load_config(ROOT / "config" / name)
    assert cfg["seed"] == 0


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"unknown config key 'lm\.stpes'"):
        validate({"lm": {"stpes": 3}})
    with pytest.raises(ConfigError, match=r"unknown config key 'lenz'"):
        validate({"lenz": {}})


def test_bad_type_is_named():
    with pytest.raises(ConfigError, match=r"lm\.n_layer"):
        validate({"lm": {"n_layer": "eight"}})
    with pytest.raises(ConfigError, match=r"corpus\.eval_fraction"):
        validate({"corpus": {"eval_fraction": 0.9}})


def test_cli_reports_config_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"extract": {"eval_tokenz": 5}}))
    assert main(["check-config", "--config", str(bad)]) == 1
    assert "extract.eval_tokenz" in capsys.readouterr().err


def test_moved_key_says_where_it_went():
    with pytest.raises(ConfigError, match=r"unknown config key 'seeds' \(moved to each models"):
        validate({"seeds": {"lm": 3}})
    with pytest.raises(ConfigError, match=r"'lm\.model' \(moved to the models table"):
        validate({"lm": {"model": "gpt2"}})


def test_unknown_model_entry_key_is_named():
    with pytest.raises(ConfigError, match=r"unknown config key 'models\.0\.sorce'"):
        validate({"models": [{"name": "lm", "source": "reference", "sorce": "x"}]})
    with pytest.raises(ConfigError, match=r"models\.0\.source"):
        validate({"models": [{"name": "lm", "source": "pretrained"}]})


def test_config_files_merge_in_order_as_snakemake_merges_them(tmp_path):
    base, extra = tmp_path / "base.yaml", tmp_path / "extra.yaml"
    base.write_text("seed: 3\nlens: {steps: 7, lr: 0.5}\n")
    extra.write_text("lens: {steps: 9}\n")
    cfg = load_config([base, extra])
    assert (cfg["seed"], cfg["lens"]["steps"], cfg["lens"]["lr"]) == (3, 9, 0.5)
    assert load_config(base)["lens"]["steps"] == 7
    with pytest.raises(ConfigError, match="not found: .*nowhere.yaml"):
        load_config([base, tmp_path / "nowhere.yaml"])
