"""Every artifact file name and path pattern, in one place.

The library and the workflow (``workflow/rules/common.smk``) both import this module, so a
file is named once. Patterns use ``{wildcard}`` fields that are Snakemake wildcards in the
workflow and ``str.format`` fields in the library:

- ``{model}``: a probed model (``lm``, ``lm_random``, ``cnn_plain``, ``cnn_residual_random``, ...),
- ``{split}``: a data split (``train``, ``lensfit``, ``eval``),
- ``{kind}``: a trained lens kind (``tuned``, ``shared``, ``probe``),
- ``{index}``: a five-digit shard number,
- ``{table}``, ``{prompt}``: a vocabulary-space table name, a prompt's index.
"""

from __future__ import annotations

from pathlib import Path

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
VOCAB_TABLE = "{table}.parquet"  # the vocabulary-space tables of a model
VOCAB_PAGE = "prompt-{prompt}.html"
VOCAB_META = "meta.json"

# ---------------------------------------------------------------- lens vocabulary
LENS_KINDS = ("logit", "tuned", "shared", "probe")  # every lens, in table order
TRAINED_LENS_KINDS = ("tuned", "shared", "probe")  # the lenses that are fitted
STORE_SPLITS = ("lensfit", "eval")  # the splits with an activation store

# ---------------------------------------------------------------- paths under the run folder
CORPUS = "results/corpus/{split}.jsonl"
TOKENIZER_DIR = "results/tokenizer"
TOKENS = "results/tokens/{split}.npy"
MODEL_DIR = "results/models/{model}"
TRAINING_CURVE = "results/tables/{model}/training.csv"
PROBED_DIR = "results/probed/{model}"
MODEL_READOUT = PROBED_DIR + "/" + READOUT
STORE_DIR = PROBED_DIR + "/acts/{split}"
STORE_SHARD = STORE_DIR + "/" + SHARD
STORE_MANIFEST = STORE_DIR + "/" + MANIFEST
LENS_DIR = PROBED_DIR + "/lenses/{kind}"
TABLES_DIR = "results/tables"
MODEL_TABLES = TABLES_DIR + "/{model}"
FIT_CURVE = MODEL_TABLES + "/fit_{kind}.csv"
LENS_METRICS = MODEL_TABLES + "/lens_metrics.csv"
PREDICTION_DEPTH = MODEL_TABLES + "/prediction_depth.csv"
TRANSFER = MODEL_TABLES + "/transfer.csv"
LM_SUMMARY = TABLES_DIR + "/lm_summary.csv"
HEADLINE = TABLES_DIR + "/headline.csv"
VISION_SUMMARY = TABLES_DIR + "/vision_summary.csv"
COMPARISON = TABLES_DIR + "/comparison.csv"
FIGURES_DIR = "results/figures"
FIGURE = FIGURES_DIR + "/{name}.png"
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
