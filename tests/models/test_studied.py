import pytest

from iterlens.config import ConfigError, validate
from iterlens.models.studied import Study, StudyError


def study(*entries):
    return Study.of(validate({"models": list(entries)}))


def test_default_table_lists_todays_models():
    s = Study.of(validate({}))
    assert s.probed("lm") == ["lm", "lm_random"]
    assert s.probed("vision") == [
        "cnn_plain",
        "cnn_residual",
        "cnn_plain_random",
        "cnn_residual_random",
        "cnn_plain_s1",
        "cnn_plain_s2",
        "cnn_residual_s1",
        "cnn_residual_s2",
    ]
    assert s.trained("vision") == [
        "cnn_plain",
        "cnn_residual",
        "cnn_plain_s1",
        "cnn_plain_s2",
        "cnn_residual_s1",
        "cnn_residual_s2",
    ]
    assert s.families() == ["lm", "cnn_plain", "cnn_residual"]
    assert s.rotated == ["lm_rotated", "cnn_plain_rotated", "cnn_residual_rotated"]
    assert s.roles() == {"lm": "lm", "plain": "cnn_plain", "residual": "cnn_residual"}
    assert s.contrasts() == [
        ("cnn_residual", "cnn_plain", True),
        ("lm", "cnn_plain", False),
        ("lm", "cnn_residual", False),
    ]


def test_two_lms_each_with_their_twins_and_tokenizers():
    s = study(
        {"name": "ref", "source": "reference", "controls": {"seeds": 2}},
        {"name": "llama", "source": "folder", "path": "/x", "controls": {"rotated": False}},
    )
    assert s.probed() == ["ref", "llama", "ref_random", "llama_random", "ref_s1"]
    assert s.rotated == ["ref_rotated"]
    assert s.tokenizer_of("ref_s1") == "ref" and s.tokenizer_of("llama_random") == "llama"
    assert s.entry_of("ref_rotated").source == "reference"
    assert s.roles() == {"lm": "ref"} and s.contrasts() == []


@pytest.mark.parametrize(
    "entries,match",
    [
        ([{"name": "lm_s1", "source": "reference"}], "does not end in"),
        ([{"name": "lm_random", "source": "reference"}], "does not end in"),
        ([{"name": "g", "source": "hub"}], "needs a 'path'"),
        ([{"name": "g", "source": "hub", "path": "gpt2", "controls": {"seeds": 2}}], "one seed"),
        (
            [{"name": "g", "source": "hub", "path": "gpt2", "residual": False}],
            "models entry 'g': 'residual' is a setting of a model trained here",
        ),
        (
            [{"name": "f", "source": "folder", "path": "/x", "residual": True}],
            "models entry 'f': 'residual' .* drop 'residual'",
        ),
        ([{"name": "c", "source": "reference", "residual": "no"}], "residual"),
        ([{"name": "a", "source": "cnn"}, {"name": "a", "source": "cnn"}], "listed twice"),
    ],
)
def test_bad_tables_are_refused_naming_the_entry(entries, match):
    with pytest.raises(ConfigError, match=match):
        validate({"models": entries})


def test_unknown_probed_model_is_named():
    with pytest.raises(StudyError, match="'gpt9' is not a model of this study"):
        Study.of(validate({})).entry_of("gpt9")


def test_dose_response_grid_defaults_to_lms_with_the_rotated_twin():
    s = Study.of(validate({}))
    assert s.partial_twins == ["lm_rot025", "lm_rot050"]
    assert s.dose_families == ["lm"]
    assert s.by_name["lm"].dose_models == [
        (0.0, "lm"),
        (0.25, "lm_rot025"),
        (0.5, "lm_rot050"),
        (1.0, "lm_rotated"),
    ]
    assert s.by_name["cnn_plain"].dose_models == []
    assert s.entry_of("lm_rot050").name == "lm"
    assert "lm_rot050" not in s.probed()  # no forward pass, like the rotated twin


def test_dose_response_grid_from_the_config():
    s = study(
        {"name": "ref", "source": "reference", "controls": {"dose_response": [0.75, 0.1]}},
        {"name": "net", "source": "cnn", "controls": {"dose_response": [0.5]}},
        {"name": "llama", "source": "folder", "path": "/x", "controls": {"rotated": False}},
        {"name": "g", "source": "hub", "path": "gpt2", "controls": {"dose_response": []}},
    )
    assert s.partial_twins == ["ref_rot010", "ref_rot075", "net_rot050"]
    assert s.dose_families == ["ref", "net"]


@pytest.mark.parametrize(
    "controls,match",
    [
        ({"rotated": False, "dose_response": [0.5]}, "needs the rotated twin"),
        ({"dose_response": [0.125]}, "hundredths"),
        ({"dose_response": [1.0]}, "dose_response"),
        ({"dose_response": [0.0]}, "dose_response"),
    ],
)
def test_bad_dose_response_grid_refused(controls, match):
    with pytest.raises((StudyError, ConfigError), match=match):
        study({"name": "ref", "source": "reference", "controls": controls})


def test_a_partial_twin_name_is_no_entry_name():
    with pytest.raises(ConfigError, match="_rot<ddd>"):
        study({"name": "lm_rot050", "source": "reference"})


def test_residual_means_identity_skips_for_both_trained_sources():
    s = study(
        {"name": "ref", "source": "reference"},
        {"name": "ref_plain", "source": "reference", "residual": False},
        {"name": "ref_skips", "source": "reference", "residual": True},
        {"name": "net", "source": "cnn"},
        {"name": "net_res", "source": "cnn", "residual": True},
        {"name": "llama", "source": "folder", "path": "/x"},
    )
    residual = {m.name: m.residual for m in s.models}
    assert residual == {
        "ref": True,
        "ref_plain": False,
        "ref_skips": True,
        "net": False,
        "net_res": True,
        "llama": True,
    }
    # the CNN roles and contrasts read the CNNs only, as before
    assert s.roles() == {"lm": "ref", "plain": "net", "residual": "net_res"}
    assert ("net_res", "net", True) in s.contrasts()
    assert s.probed("lm")[:2] == ["ref", "ref_plain"]
    assert s.by_name["ref_plain"].random_twin == "ref_plain_random"


def test_lm_plain_config_layers_a_no_residual_lm_on_the_default_table():
    from conftest import ROOT

    from iterlens.config import load_config

    s = Study.of(load_config(ROOT / "config" / "lm-plain.yaml"))
    assert [(m.name, m.source, m.residual) for m in s.models] == [
        ("lm", "reference", True),
        ("lm_plain", "reference", False),
        ("cnn_plain", "cnn", False),
        ("cnn_residual", "cnn", True),
    ]
    assert s.roles() == Study.of(validate({})).roles()


def test_a_gguf_entry_and_its_overrides_reach_every_twin():
    config = validate(
        {
            "models": [
                {"name": "lm", "source": "reference"},
                {
                    "name": "real",
                    "source": "gguf",
                    "path": "some_package",
                    "size": 12,
                    "overrides": {"extract": {"eval_tokens": 512}, "lens": {"steps": 7}},
                },
            ]
        }
    )
    study = Study.of(config)
    real = study.by_name["real"]
    assert (real.domain, real.trained_here, real.residual) == ("lm", False, True)
    for probed in ("real", "real_random", "real_rotated", "real_rot050"):
        merged = study.config_of(probed, config)
        assert merged["extract"]["eval_tokens"] == 512
        assert merged["extract"]["seq_len"] == config["extract"]["seq_len"]  # the rest kept
        assert merged["lens"]["steps"] == 7
    assert study.config_of("lm", config)["lens"]["steps"] == config["lens"]["steps"]
    assert config["lens"]["steps"] != 7


@pytest.mark.parametrize(
    "entry, match",
    [
        ({"name": "g", "source": "gguf"}, "needs a 'path'"),
        ({"name": "g", "source": "folder", "path": "x", "size": 3}, "check a 'gguf' file"),
        (
            {"name": "g", "source": "gguf", "path": "x", "overrides": {"lens": {"stepz": 1}}},
            "models.0.overrides.lens.stepz",
        ),
        (
            {"name": "g", "source": "gguf", "path": "x", "overrides": {"lm": {}}},
            "models.0.overrides.lm",
        ),
        ({"name": "g", "source": "gguf", "path": "x", "sha256": "abc"}, "models.0.sha256"),
    ],
)
def test_bad_gguf_entries_are_refused_naming_the_key(entry, match):
    with pytest.raises(ConfigError, match=match):
        validate({"models": [entry]})
