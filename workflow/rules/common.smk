# Shared by every stage: the validated config, the model lists, artifact paths, helpers.
# Paths come from iterlens.artifacts, which the library uses too: a file is named once.
import json
import shlex

from iterlens import artifacts as A
from iterlens.config import validate
from iterlens.probing.extract import n_shards
from iterlens.report.figures import family_figures

# Validate the config (unknown keys are named) and fill schema defaults.
config.update(validate(config))

LM_MODELS = ["lm", "lm_random"]
CNN_TRAINED = ["cnn_plain", "cnn_residual"]
CNN_MODELS = CNN_TRAINED + [f"{net}_random" for net in CNN_TRAINED]
VISION = config["vision"]["enabled"]
# Families drawn with their untrained twin ({family}_random) in every figure.
FAMILIES = ["lm"] + (CNN_TRAINED if VISION else [])
PROBED = LM_MODELS + (CNN_MODELS if VISION else [])
LENS_KINDS = list(A.TRAINED_LENS_KINDS)
SPLITS = ["train", "lensfit", "eval"]

# Final targets: each stage's .smk appends to this list; `rule all` asks for all of them.
TARGETS = []

# Threads: upper bounds, scaled down to --cores; override with --set-threads RULE=N.
TRAIN_THREADS = 8


def one_of(names):
    """A wildcard constraint matching exactly one of ``names``."""
    return "|".join(names)


wildcard_constraints:
    split="train|lensfit|eval",
    kind=one_of(LENS_KINDS),
    index=r"\d{5}",


def cfg(*keys):
    """Config sections (plus the seed) as a shell-quoted JSON string for `--cfg`."""
    return shlex.quote(json.dumps({k: config[k] for k in ("seed", *keys)}, sort_keys=True))


def lm_store_shards(wildcards):
    """The shard files of an LM store (their count follows from the extract config)."""
    ex = config["extract"]
    count = n_shards(ex[f"{wildcards.split}_tokens"], ex["shard_tokens"], ex["seq_len"])
    return [A.STORE_SHARD.format(model=wildcards.model, split=wildcards.split,
                                 index=f"{i:05d}") for i in range(count)]


def n_lm_store_shards(wildcards):
    return len(lm_store_shards(wildcards))


def lens_dirs(wildcards):
    return [A.LENS_DIR.format(model=wildcards.model, kind=kind) for kind in LENS_KINDS]


def folder_of(io, name, up=1):
    """A params function: the folder ``up`` levels above the (first) file ``io.name``.

    Commands that take a folder get it derived from a declared input or output, so no path
    prefix is spelled twice.
    """

    def get(wildcards, input, output):
        files = getattr(input if io == "input" else output, name)
        first = files if isinstance(files, str) else files[0]
        return str(Path(first).parents[up - 1])

    return get
