"""Load released lenses: from a local folder or the Hub, ours or anyone's tuned-lens layout.

Two layouts are read:

* the ``tuned_lens`` layout, ``lens/<model name>/config.json`` + ``params.pt`` (in a model
  repo, a Space such as ``AlignmentResearch/tuned-lens``, or a plain folder holding the two
  files); the config's hash of the unembedding may be spelt ``unembed_hash``, misspelt
  ``unemebd_hash`` (older uploads) or be missing;
* iterlens's own ``lenses/<kind>/lens.safetensors`` + ``lens.json`` (tuned, shared, probe).

Only safetensors are read, or ``params.pt`` with ``torch.load(weights_only=True)``: no
pickle from the network is ever executed. A lens made for another unembedding is refused
with the reason unless ``allow_mismatch`` is set.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch import nn

from iterlens.probing.readout import Readout

log = logging.getLogger(__name__)

HASH_KEYS = ("unembed_hash", "unemebd_hash")  # the second is a misspelling found on the Hub
REPO_TYPES = ("model", "space", "dataset")


class LensMismatchError(ValueError):
    """A lens made for another model (its unembedding hash or its shape differs)."""


def readout_of(model) -> Readout:
    """The :class:`Readout` of a HF causal LM, an iterlens CNN, or a readout itself."""
    if isinstance(model, Readout):
        return model
    if hasattr(model, "get_output_embeddings"):
        from iterlens.probing.readout import readout_from_lm

        return readout_from_lm(model)
    if hasattr(model, "representations"):
        from iterlens.probing.readout import readout_from_cnn

        return readout_from_cnn(model)
    raise TypeError(
        f"cannot find the readout of a {type(model).__name__}; pass a HF causal "
        f"LM, an iterlens CNN or an iterlens Readout"
    )


def n_layers_of_model(model) -> int | None:
    """Number of blocks L of ``model`` (None for a bare readout)."""
    config = getattr(model, "config", None)
    if isinstance(config, dict):  # iterlens CNN
        return int(getattr(model, "n_layers", 0)) or None
    n = getattr(config, "num_hidden_layers", None)
    return int(n) if n is not None else getattr(model, "n_layers", None)


def split_source(source: str, repo_type: str | None = None) -> tuple[str, str]:
    """``(repo_id, repo_type)`` of a Hub source; ``spaces/owner/name`` means a Space."""
    for kind in REPO_TYPES:
        prefix = f"{kind}s/"
        if source.startswith(prefix) and source.count("/") == 2:
            return source[len(prefix) :], kind
    if source.count("/") != 1:
        raise ValueError(
            f"'{source}' is neither an existing folder nor a Hub repo id "
            f"('owner/name' or 'spaces/owner/name')"
        )
    if repo_type is not None and repo_type not in REPO_TYPES:
        raise ValueError(f"repo_type must be one of {', '.join(REPO_TYPES)}, not {repo_type!r}")
    return source, repo_type or "model"


def _download(repo_id: str, repo_type: str, filename: str, revision: str | None) -> Path | None:
    """``hf_hub_download`` one file; None when the repo has no such file."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, filename, repo_type=repo_type, revision=revision))
    except EntryNotFoundError:
        return None
    except LocalEntryNotFoundError as err:
        # Offline and not in the cache, or the file does not exist in the cached snapshot.
        log.debug("%s not found for %s/%s: %s", filename, repo_type, repo_id, err)
        return None


def locate_lens(
    source: str | Path,
    kind: str = "tuned",
    lens_name: str | None = None,
    model_name: str | None = None,
    repo_type: str | None = None,
    revision: str | None = None,
) -> tuple[str, Path, Path]:
    """Find a lens's files locally or in the Hub cache / Hub.

    Args:
        source: a folder, or a Hub repo id (``owner/name``; ``spaces/owner/name``).
        kind: ``tuned``, ``shared`` or ``probe``.
        lens_name: the model name under ``lens/`` (tuned-lens layout); tried first.
        model_name: the model's own ``name_or_path``; tried after ``lens_name``.

    Returns:
        ``(layout, config_path, weights_path)`` with layout ``"tuned_lens"`` or ``"iterlens"``.
    """
    names = [n for n in dict.fromkeys([lens_name, model_name]) if n]
    local = Path(source)
    if local.is_dir():
        candidates: list[tuple[str, Path, Path]] = []
        if kind == "tuned":
            roots = [local] + [local / "lens" / n for n in names]
            subs = sorted(p for p in (local / "lens").glob("*") if p.is_dir())
            roots += subs if len(subs) == 1 else []  # one lens/<name>/: unambiguous
            candidates += [("tuned_lens", r / "config.json", r / "params.pt") for r in roots]
        for root in (local, local / "lenses" / kind):
            candidates.append(("iterlens", root / "lens.json", root / "lens.safetensors"))
        for layout, config, weights in candidates:
            if config.is_file() and weights.is_file():
                if layout == "iterlens" and json.loads(config.read_text()).get("kind") != kind:
                    continue
                return layout, config, weights
        raise FileNotFoundError(
            f"no {kind} lens in folder {local} (looked for "
            f"{', '.join(str(c[2].relative_to(local)) for c in candidates)})"
        )
    repo_id, rtype = split_source(str(source), repo_type)
    tried = []
    if kind == "tuned":
        for name in dict.fromkeys([*names, repo_id.split("/")[-1]]):
            folder = f"lens/{name}"
            tried.append(folder)
            config = _download(repo_id, rtype, f"{folder}/config.json", revision)
            if config is not None:
                weights = _download(repo_id, rtype, f"{folder}/params.pt", revision)
                if weights is None:
                    raise FileNotFoundError(
                        f"{rtype} {repo_id} has {folder}/config.json but no params.pt"
                    )
                return "tuned_lens", config, weights
    folder = f"lenses/{kind}"
    tried.append(folder)
    config = _download(repo_id, rtype, f"{folder}/lens.json", revision)
    weights = _download(repo_id, rtype, f"{folder}/lens.safetensors", revision)
    if config is not None and weights is not None:
        return "iterlens", config, weights
    raise FileNotFoundError(
        f"no {kind} lens in {rtype} repo {repo_id} (tried {', '.join(tried)}); either the "
        f"repo does not hold it, or the Hub is unreachable and it is not in the local cache"
    )


def read_tuned_lens_config(path: str | Path) -> dict:
    """A tuned-lens ``config.json`` with its hash under ``unembed_hash`` (None if absent)."""
    config = json.loads(Path(path).read_text())
    hashes = [config.pop(k) for k in HASH_KEYS if k in config]
    config["unembed_hash"] = next((h for h in hashes if h), None)
    return config


def load_tuned_lens_files(
    config_path: str | Path,
    params_path: str | Path,
    readout: Readout,
    n_layers: int | None = None,
    allow_mismatch: bool = False,
) -> nn.Module:
    """Build an iterlens tuned lens from tuned-lens ``config.json`` + ``params.pt``.

    Raises:
        LensMismatchError: the lens's unembedding hash, width or depth differs from the
            model's (the hash check is skipped with ``allow_mismatch``; shapes never are).
    """
    from iterlens.probing.lenses import make_tuned_lens

    config = read_tuned_lens_config(config_path)
    d_model, n_lens = int(config["d_model"]), int(config["num_hidden_layers"])
    if d_model != readout.d_model:
        raise LensMismatchError(
            f"lens {config_path} is for width {d_model}, the model has width {readout.d_model}"
        )
    if n_layers is not None and n_lens != n_layers:
        raise LensMismatchError(f"lens {config_path} has {n_lens} layers, the model {n_layers}")
    expected = readout.unembedding_hash()
    if config["unembed_hash"] is None:
        log.warning("lens %s records no unembedding hash; only its shape was checked", config_path)
    elif config["unembed_hash"] != expected:
        reason = (
            f"lens {config_path} was made for another model "
            f"({config.get('base_model_name_or_path') or 'unnamed'}): its unembedding "
            f"hash {config['unembed_hash'][:12]}... differs from this model's "
            f"{expected[:12]}..."
        )
        if not allow_mismatch:
            raise LensMismatchError(
                reason + "; pass allow_mismatch=True (--allow-mismatch) to load it anyway"
            )
        log.warning("%s; loading anyway (allow_mismatch)", reason)
    lens = make_tuned_lens(readout, n_lens, config.get("base_model_name_or_path") or "")
    if not config.get("bias", True):
        raise LensMismatchError(f"lens {config_path} has no bias; iterlens lenses always do")
    state = torch.load(params_path, map_location="cpu", weights_only=True)
    try:
        lens.layer_translators.load_state_dict(state)
    except RuntimeError as err:
        raise LensMismatchError(f"lens {params_path} does not fit its config: {err}") from None
    return lens.eval()


def load_released_lens(
    source: str | Path,
    model,
    kind: str = "tuned",
    *,
    lens_name: str | None = None,
    repo_type: str | None = None,
    revision: str | None = None,
    allow_mismatch: bool = False,
) -> nn.Module:
    """Load a released lens for ``model`` from a folder or the Hub.

    Args:
        source: a local folder or a Hub repo id (``owner/name``, ``spaces/owner/name``).
        model: a HF causal LM, an iterlens CNN, or an iterlens ``Readout``.
        kind: ``tuned`` (also read from the tuned-lens layout), ``shared`` or ``probe``.
        lens_name: the model name under ``lens/`` in the tuned-lens layout; defaults to
            the model's ``name_or_path``, then to the repo's own name.
        allow_mismatch: load a lens made for another unembedding (with a warning).

    Returns:
        The lens, a module with ``forward(h, layer) -> logits`` and a ``kind``.
    """
    readout = readout_of(model)
    model_name = getattr(getattr(model, "config", None), "name_or_path", None)
    if model_name is None:
        model_name = readout.meta.get("name_or_path")
    layout, config, weights = locate_lens(
        source, kind, lens_name, model_name or None, repo_type, revision
    )
    if layout == "tuned_lens":
        lens = load_tuned_lens_files(
            config, weights, readout, n_layers_of_model(model), allow_mismatch
        )
        lens.n_layers = len(lens.layer_translators)
        return lens
    from iterlens.probing.lenses import load_lens

    lens = load_lens(weights.parent, readout, allow_mismatch=allow_mismatch)
    lens.n_layers = int(json.loads(config.read_text())["n_layers"])
    return lens
