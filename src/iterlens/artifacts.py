"""Every artifact file name and path pattern, in one place.

The library and the workflow (``workflow/rules/common.smk``) both import this module, so a
file is named once. Patterns use ``{wildcard}`` fields that are Snakemake wildcards in the
workflow and ``str.format`` fields in the library:

- ``{model}``: a probed model: a studied model's name from the config's table, or one of
  its replicates and twins (``lm``, ``lm_random``, ``lm_rotated``, the partial rotation
  ``lm_rot050``, ``cnn_plain_s1``, ...; see :func:`model_name`),
- ``{tokenizer}``: the tokenizer of a studied LM, named for it (its replicates and twins
  share it),
- ``{split}``: a data split (``train``, ``lensfit``, ``eval``),
- ``{kind}``: a trained lens kind (``tuned``, ``shared``, ``probe``),
- ``{index}``: a five-digit shard number,
- ``{table}``, ``{prompt}``: a vocabulary-space table name, a prompt's index.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

# ---------------------------------------------------------------- file names inside folders
MODEL_WEIGHTS = "model.safetensors"  # a CNN's weights (LMs use save_pretrained's own names)
MODEL_CONFIG = "config.json"  # a CNN's constructor arguments
MODEL_SOURCE = "source.json"  # an LM folder that names a Hub model or a local path instead
READOUT = "readout.safetensors"
MANIFEST = "manifest.json"
SHARD = "shard-{index}.safetensors"
LENS_WEIGHTS = "lens.safetensors"
LENS_META = "lens.json"
TUNED_LENS_CONFIG = "config.json"  # the layout tuned_lens.TunedLens.from_pretrained reads
TUNED_LENS_PARAMS = "params.pt"
RELEASE_META = "release.json"  # in each staged Hub repo folder: its repo id and type
HUB_TUNED_LENS_DIR = "lens/{name}"  # inside a Hub repo: the tuned_lens layout
HUB_LENS_DIR = "lenses/{kind}"  # inside a Hub repo: every lens as safetensors + lens.json
VOCAB_TABLE = "{table}.parquet"  # the vocabulary-space tables of a model
VOCAB_PAGE = "prompt-{prompt}.html"
VOCAB_META = "meta.json"
EXPLORE_PAGE = "explore-{prompt}.html"  # the interactive lens page of a prompt (iterlens explore)
EXPLORE_CELLS = "explore-{prompt}.parquet"  # ...its cells: one row a (lens, layer, position)
EXPLORE_TOKENS = "explore-{prompt}-tokens.parquet"  # ...every token probability it stores

# ---------------------------------------------------------------- lens vocabulary
LENS_KINDS = ("logit", "tuned", "shared", "probe")  # every lens, in table order
TRAINED_LENS_KINDS = ("tuned", "shared", "probe")  # the lenses that are fitted
STORE_SPLITS = ("lensfit", "eval")  # the splits with an activation store

# ---------------------------------------------------------------- model names
# A studied model's base name comes from the config's table of studied models
# (iterlens.models.studied); the names below are derived from it.
RANDOM_SUFFIX = "_random"  # the same architecture at its untrained initial weights
ROTATED_SUFFIX = "_rotated"  # the rotated-twin control of a trained model
# The partial rotation expm(t log Q) of the rotated twin (the dose-response control), t in
# (0, 1) in hundredths: lm_rot050 is t = 0.50.
PARTIAL_SUFFIX = "_rot{dose}"
SEED_SUFFIX = "_s{replicate}"  # replicate k >= 1, trained with seed + k; k = 0 has no suffix
TWINS = {"": "model", RANDOM_SUFFIX: "random", ROTATED_SUFFIX: "rotated"}
BASE_NAME = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
MODEL_NAME = re.compile(
    r"^(?P<base>[a-z][a-z0-9_]*?)(?:_s(?P<replicate>[1-9][0-9]*))?"
    r"(?P<twin>_random|_rotated|_rot(?P<dose>0(?!00)[0-9]{2}))?$"
)

# ---------------------------------------------------------------- paths under the run folder
CORPUS = "results/corpus/{split}.jsonl"
TOKENIZER_DIR = "results/tokenizers/{tokenizer}"  # named for the studied model that reads it
TOKENS = "results/tokens/{tokenizer}/{split}.npy"
MODEL_DIR = "results/models/{model}"
TRAINING_CURVE = "results/tables/{model}/training.csv"
PROBED_DIR = "results/probed/{model}"
MODEL_READOUT = PROBED_DIR + "/" + READOUT
STORE_SUBDIR = "acts/{split}"  # a store's folder inside its probed-model folder
STORE_DIR = PROBED_DIR + "/" + STORE_SUBDIR
STORE_SHARD = STORE_DIR + "/" + SHARD
STORE_MANIFEST = STORE_DIR + "/" + MANIFEST
LENS_DIR = PROBED_DIR + "/lenses/{kind}"
TABLES_DIR = "results/tables"
MODEL_TABLES = TABLES_DIR + "/{model}"
FIT_CURVE = MODEL_TABLES + "/fit_{kind}.csv"
LENS_METRICS = MODEL_TABLES + "/lens_metrics.csv"
PREDICTION_DEPTH = MODEL_TABLES + "/prediction_depth.csv"
TRANSFER = MODEL_TABLES + "/transfer.csv"
EXAMPLES = MODEL_TABLES + "/examples.safetensors"  # per-example values: the bootstrap's input
UPDATES = MODEL_TABLES + "/updates.csv"  # relative update of each block (geometry)
CKA = MODEL_TABLES + "/cka.csv"  # linear CKA between every pair of layers (geometry)
CONTRASTS = TABLES_DIR + "/contrasts.csv"
LM_SUMMARY = TABLES_DIR + "/lm_summary.csv"
HEADLINE = TABLES_DIR + "/headline.csv"
VISION_SUMMARY = TABLES_DIR + "/vision_summary.csv"
COMPARISON = TABLES_DIR + "/comparison.csv"
SEEDS = TABLES_DIR + "/seeds.csv"
ROTATED_CONTROL = TABLES_DIR + "/rotated_control.csv"
DOSE_RESPONSE = TABLES_DIR + "/dose_response.csv"  # penalties against the rotation's size t
FIGURES_DIR = "results/figures"
FIGURE = FIGURES_DIR + "/{name}.png"
RELEASE_DIR = "results/release"
RELEASE_REPO = RELEASE_DIR + "/{repo}"  # one staged folder per Hub repo
VOCAB_ROOT = "results/vocab"
VOCAB_DIR = VOCAB_ROOT + "/{model}"
VOCAB_INDEX = VOCAB_ROOT + "/index.html"


def shard_file(index: int) -> str:
    """File name of shard ``index`` (``shard-00003.safetensors``)."""
    return SHARD.format(index=f"{index:05d}")


def shard_path(folder: str | Path, index: int) -> Path:
    """Path of shard ``index`` in a store ``folder``."""
    return Path(folder) / shard_file(index)


def model_of_table(path: str | Path) -> str:
    """The probed model a per-model table belongs to: its folder's name."""
    return Path(path).parent.name


# ---------------------------------------------------------------- the paper
PAPER_DIR = "results/paper"
PAPER_VALUES = PAPER_DIR + "/values.json"  # every number the paper and README print, by name
PAPER_PDF = PAPER_DIR + "/paper.pdf"
PAPER_HTML = PAPER_DIR + "/paper.html"


class ModelName(NamedTuple):
    """A probed model's name, parsed: its studied model, seed replicate and twin."""

    base: str  # the studied model's name in the config's table
    replicate: int  # seed replicate k (trained with seed + k); 0 for the base name
    twin: str  # "model", "random" (initial weights), "rotated" (the rotated twin), "partial"
    t: float | None = None  # a partial twin's rotation size t in (0, 1); None for the others


def dose_tag(t: float) -> str:
    """The three digits naming a partial rotation ``t`` (``0.5`` -> ``050``).

    Raises:
        ValueError: ``t`` is not in (0, 1) or not a whole number of hundredths.
    """
    hundredths = round(float(t) * 100)
    if not 0 < hundredths < 100 or abs(float(t) * 100 - hundredths) > 1e-6:
        raise ValueError(f"a partial rotation t is in (0, 1), in hundredths; got {t}")
    return f"{hundredths:03d}"


def model_name(base: str, replicate: int = 0, twin: str = "model", t: float | None = None) -> str:
    """The name of replicate ``replicate`` of ``base``, or of one of its twins.

    Replicate 0 (trained with the config's ``seed``) keeps the bare name (``lm``,
    ``lm_random``, ``cnn_plain_rotated``); replicate k >= 1 (seed + k) is ``cnn_plain_s1``, ...
    The partial rotation at ``t`` (twin ``partial``) is ``lm_rot050`` for ``t = 0.5``.
    """
    if replicate < 0:
        raise ValueError(f"replicate must be >= 0, got {replicate}")
    suffixes = {twin: suffix for suffix, twin in TWINS.items()}
    if twin == "partial":
        if t is None:
            raise ValueError("a partial twin needs its rotation size t")
        suffix = PARTIAL_SUFFIX.format(dose=dose_tag(t))
    elif twin not in suffixes:
        raise ValueError(f"unknown twin {twin!r}; one of {', '.join(suffixes)}, partial")
    elif t is not None:
        raise ValueError(f"t is a partial twin's; the {twin!r} twin has none")
    else:
        suffix = suffixes[twin]
    return base + (SEED_SUFFIX.format(replicate=replicate) if replicate else "") + suffix


def replicates(base: str, n_seeds: int) -> list[str]:
    """The names of the ``n_seeds`` trained replicates of ``base``."""
    return [model_name(base, k) for k in range(n_seeds)]


def parse_model_name(name: str) -> ModelName:
    """The :class:`ModelName` of a name made by :func:`model_name`.

    Raises:
        ValueError: ``name`` is not such a name.
    """
    match = MODEL_NAME.match(name)
    if not match:
        raise ValueError(f"not a model name: {name!r}")
    replicate = int(match["replicate"] or 0)
    if match["dose"]:
        return ModelName(match["base"], replicate, "partial", int(match["dose"]) / 100)
    return ModelName(match["base"], replicate, TWINS[match["twin"] or ""])
