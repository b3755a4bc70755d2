"""What ``iterlens vocab`` and ``iterlens vocab-index`` do: load, analyse, write."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from torch import nn

from iterlens import artifacts
from iterlens.io import atomic_path, read_json
from iterlens.vocab.analysis import VocabSettings, analyse, write_tables
from iterlens.vocab.html import index_page, write_pages


def load_model_and_tokenizer(model: str | Path):
    """A causal LM and its tokenizer from a model folder or a Hub name.

    A workflow model folder holding ``source.json`` stands for the model it names.
    """
    from iterlens.data.text import load_tokenizer
    from iterlens.models.lm import load_causal_lm, load_model_dir

    path = Path(model)
    if path.is_dir():
        source = path / artifacts.MODEL_SOURCE
        name = json.loads(source.read_text())["name_or_path"] if source.exists() else path
        return load_model_dir(path), load_tokenizer(name)
    return load_causal_lm(str(model)), load_tokenizer(str(model))


def lenses_for(model: nn.Module, lens_dirs: list[str | Path]) -> dict[str, nn.Module]:
    """The logit lens of ``model`` and every saved lens in ``lens_dirs``, by name."""
    from iterlens.probing.lenses import LogitLens, load_lens
    from iterlens.probing.readout import readout_from_lm

    readout = readout_from_lm(model)
    lenses: dict[str, nn.Module] = {"logit": LogitLens(readout)}
    for folder in lens_dirs:
        lens = load_lens(folder, readout)
        lenses[lens.kind] = lens
    return lenses


def run_vocab(
    model_ref: str | Path,
    prompts: list[str],
    out: str | Path,
    settings: VocabSettings,
    lens_dirs: list[str | Path] = (),
    label: str | None = None,
    progress: bool = False,
) -> dict:
    """Analyse a model on ``prompts``; write its tables, pages and ``meta.json`` to ``out``."""
    model, tokenizer = load_model_and_tokenizer(model_ref)
    lenses = lenses_for(model, list(lens_dirs))
    tables = analyse(model, tokenizer, prompts, lenses, settings, progress)
    label = label or str(model_ref)
    pages = write_pages(tables, out, label, settings)
    meta = {
        "model": label,
        "source": str(model_ref),
        "family": model.config.model_type,
        "lenses": list(lenses),
        "prompts": list(prompts),
        "pages": pages,
        "settings": asdict(settings),
    }
    write_tables(tables, out, meta)
    return meta


def index_entries(model_dirs: list[str | Path], relative_to: str | Path) -> list[dict]:
    """One entry a (model, prompt) of the vocabulary pages in ``model_dirs``.

    Each holds ``model``, ``label`` (its source), ``prompt`` (the text), ``index`` (the
    prompt's number), ``href`` (its vocabulary page) and ``explore`` (its interactive lens
    page, :data:`artifacts.EXPLORE_PAGE`, or None where the folder has none), the links
    relative to the folder ``relative_to``.
    """

    def link(path: Path) -> str:
        return os.path.relpath(path, relative_to).replace(os.sep, "/")

    entries = []
    for folder in map(Path, model_dirs):
        meta = read_json(folder / artifacts.VOCAB_META)
        for i, (prompt, page) in enumerate(zip(meta["prompts"], meta["pages"], strict=True)):
            explore = folder / artifacts.EXPLORE_PAGE.format(prompt=i)
            entries.append(
                {
                    "model": folder.name,
                    "label": meta["source"],
                    "prompt": prompt,
                    "index": i,
                    "href": link(folder / page),
                    "explore": link(explore) if explore.exists() else None,
                }
            )
    return entries


def write_index(model_dirs: list[str | Path], out: str | Path) -> None:
    """The landing page ``out`` linking every page of every model folder in ``model_dirs``.

    A prompt's interactive lens page (``iterlens explore``) is linked too where the folder
    holds one.
    """
    out = Path(out)
    entries = index_entries(model_dirs, out.parent)
    with atomic_path(out) as tmp:
        tmp.write_text(index_page(entries), encoding="utf-8")
