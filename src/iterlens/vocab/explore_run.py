"""What ``iterlens explore`` does: find the model and its lenses, explore a prompt, write.

:func:`run_explore` takes a studied model's name (its folder and lenses in a run), a model folder
or a Hub name; lenses as lens folders or a run's folder of lenses. It writes the page
(:mod:`iterlens.vocab.explore_page`) and, beside it, the two tables of
:func:`iterlens.vocab.explore.explore_prompt` as Parquet.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from torch import nn

from iterlens import artifacts
from iterlens.io import read_json, write_parquet
from iterlens.models.families import adapter_for
from iterlens.models.lm import ModelNotFoundError
from iterlens.models.studied import LM_DOMAIN, Study
from iterlens.vocab.explore import EXPLORE_LENSES, Exploration, explore_prompt
from iterlens.vocab.pipeline import lenses_for, load_model_and_tokenizer

log = logging.getLogger(__name__)


def lens_folders(paths: list[str | Path]) -> list[Path]:
    """The lens folders ``paths`` name: each a lens folder, or a run's folder of lenses.

    A folder of lenses (``results/probed/{model}/lenses``) stands for its ``tuned`` and
    ``shared`` subfolders, where present.

    Raises:
        FileNotFoundError: a path that is neither.
        ValueError: a lens the page cannot show (a free probe), or two lenses of one kind.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if (path / artifacts.LENS_WEIGHTS).is_file():
            found.append(path)
            continue
        inner = [path / kind for kind in EXPLORE_LENSES[1:]]
        inner = [p for p in inner if (p / artifacts.LENS_WEIGHTS).is_file()]
        if not inner:
            raise FileNotFoundError(
                f"--lens {path}: not a lens folder (no {artifacts.LENS_WEIGHTS}) nor a folder "
                f"of lenses (tuned/, shared/)"
            )
        found += inner
    kinds: dict[str, Path] = {}
    for folder in found:
        meta_file = folder / artifacts.LENS_META
        kind = read_json(meta_file)["kind"] if meta_file.exists() else folder.name
        if kind not in EXPLORE_LENSES[1:]:
            raise ValueError(
                f"--lens {folder}: a {kind} lens, which the page cannot show; it shows the "
                f"{', '.join(EXPLORE_LENSES[:-1])} and {EXPLORE_LENSES[-1]} lenses"
            )
        if kind in kinds:
            raise ValueError(f"two {kind} lenses: {kinds[kind]} and {folder}")
        kinds[kind] = folder
    return found


def explore_lenses(model: nn.Module, paths: list[str | Path]) -> dict[str, nn.Module]:
    """The logit lens of ``model`` and the lenses in ``paths`` (see :func:`lens_folders`).

    Raises:
        ValueError: a lens made for another model (another unembedding, or another depth).
    """
    folders = lens_folders(paths)
    try:
        lenses = lenses_for(model, folders)
    except ValueError as err:
        raise ValueError(f"a lens for another model: {err}") from None
    n_layers = len(adapter_for(model).blocks_of(model))
    for folder in folders:
        meta = (
            read_json(folder / artifacts.LENS_META)
            if (folder / artifacts.LENS_META).exists()
            else {}
        )
        if meta and int(meta["n_layers"]) != n_layers:
            raise ValueError(
                f"a lens for another model: {folder} has {meta['n_layers']} layers, the model "
                f"{n_layers}"
            )
    return lenses


def studied_model(name: str, config: dict, workdir: str | Path) -> tuple[Path, list[Path]] | None:
    """A studied LM's model folder and lens folders in a run's ``workdir``.

    Returns None where ``name`` is not a probed LM of the config's study.

    Raises:
        FileNotFoundError: the run has not made the model's folder yet.
    """
    if name not in Study.of(config).probed(LM_DOMAIN):
        return None
    root = Path(workdir)
    folder = root / artifacts.MODEL_DIR.format(model=name)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{name} is a studied model, but {folder} does not exist yet: run "
            f"`snakemake {artifacts.MODEL_DIR.format(model=name)}` first (or give a folder)"
        )
    lenses = [
        root / artifacts.LENS_DIR.format(model=name, kind=kind) for kind in EXPLORE_LENSES[1:]
    ]
    return folder, [p for p in lenses if (p / artifacts.LENS_WEIGHTS).is_file()]


def table_paths(page: str | Path) -> tuple[Path, Path]:
    """The cells and tokens tables written beside ``page``.

    ``x.html``: ``x.parquet`` and ``x-tokens.parquet``, as :data:`iterlens.artifacts.EXPLORE_CELLS`
    and ``EXPLORE_TOKENS`` name them beside ``EXPLORE_PAGE``.
    """
    page = Path(page)
    return page.with_suffix(".parquet"), page.with_name(f"{page.stem}-tokens.parquet")


def run_explore(
    model_ref: str | Path,
    prompt: str,
    out: str | Path,
    lens_dirs: list[str | Path] = (),
    label: str | None = None,
    top_k: int = 10,
    device: torch.device | str = "cpu",
    config: dict | None = None,
    workdir: str | Path = ".",
) -> Exploration:
    """Write the page ``out`` of ``prompt`` on a model, and its two tables beside it.

    Args:
        model_ref: a studied model's name (its folder and lenses in ``workdir``'s run), a
            model folder or a Hub name.
        lens_dirs: lens folders or folders of lenses (default for a studied model: its own).
        config: the validated config, whose study names the studied models.
    """
    from iterlens.vocab.explore_page import write_page

    started = time.perf_counter()
    if not prompt or not prompt.strip():  # before a slow load
        raise ValueError("the prompt is empty: give the text to read with --prompt")
    folder = model_ref
    if config is not None and not Path(str(model_ref)).is_dir():  # a folder wins over a name
        studied = studied_model(str(model_ref), config, workdir)
        if studied is not None:
            folder, own = studied
            lens_dirs = list(lens_dirs) or own
    lens_folders(list(lens_dirs))  # a bad --lens fails before the slow load
    log.info("loading %s (large models take a while) ...", model_ref)
    try:
        model, tokenizer = load_model_and_tokenizer(folder)
    except ModelNotFoundError as err:
        names = ", ".join(Study.of(config).probed(LM_DOMAIN)) if config is not None else ""
        raise ModelNotFoundError(
            f"{err} (--model takes a studied model's name{f' ({names})' if names else ''}, "
            f"a model folder or a Hub name)"
        ) from None
    model = model.to(device)
    lenses = {
        name: lens.to(device) for name, lens in explore_lenses(model, list(lens_dirs)).items()
    }
    log.info(
        "loaded %s in %.1f s; decoding %d layers under the %s lenses",
        model_ref,
        time.perf_counter() - started,
        len(adapter_for(model).blocks_of(model)) + 1,
        ", ".join(lenses),
    )
    found = explore_prompt(model, tokenizer, prompt, lenses, top_k)
    label = label or str(model_ref)
    cells_path, tokens_path = table_paths(out)
    meta = {"model": label, "source": str(model_ref), "prompt": prompt}
    for frame, path in ((found.cells, cells_path), (found.tokens, tokens_path)):
        frame.attrs = {"iterlens": json.dumps(meta)}
        write_parquet(frame, path)
    write_page(found, label, out)
    log.info("%s: %d positions, page %s (%.1f s)", label, len(found.input_ids), out,
             time.perf_counter() - started)  # fmt: skip
    return found
