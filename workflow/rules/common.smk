# Shared by every stage: the validated config, the model lists, artifact paths, helpers.
# Paths come from iterlens.artifacts, which the library uses too: a file is named once.
import json
import shlex

from iterlens import artifacts as A
from iterlens.config import validate
from iterlens.device import uses_gpu
from iterlens.locks import report_stale_locks
from iterlens.probing.extract import n_shards
from iterlens.report.figures import family_figures

# Validate the config (unknown keys are named) and fill schema defaults.
config.update(validate(config))

# A hard kill leaves Snakemake's lock behind: remove it when the run that made it is dead
# (only the main process, before it locks; job subprocesses and cluster jobs skip this).
if getattr(workflow, "is_main_process", True):
    report_stale_locks(".snakemake")


# Model names (iterlens.artifacts.model_name): replicate 0 of each architecture keeps its bare
# name and has an untrained twin ({name}_random); replicate k >= 1 (config seeds) is {name}_s{k},
# trained with seed + k on the same splits, probed like the others, without an untrained twin.
SEEDS = config["seeds"]
LM_TRAINED = A.replicates("lm", SEEDS["lm"])
CNN_TRAINED = ["cnn_plain", "cnn_residual"]
CNN_REPLICATES = [name for net in CNN_TRAINED for name in A.replicates(net, SEEDS["vision"])[1:]]
LM_MODELS = ["lm", "lm_random"] + LM_TRAINED[1:]
CNN_MODELS = CNN_TRAINED + [f"{net}_random" for net in CNN_TRAINED] + CNN_REPLICATES
VISION = config["vision"]["enabled"]
# Families drawn with their untrained twin ({family}_random) in every figure.
FAMILIES = ["lm"] + (CNN_TRAINED if VISION else [])
# Every probed model, seed replicates included (headline, comparison, seeds).
PROBED = LM_MODELS + (CNN_MODELS if VISION else [])
# Positive control: each trained model's rotated twin (controls.smk), probed by the same rules.
# Its lenses are the tuned and shared lens only: a free probe is basis-free, so the twin's
# probes would only repeat the model's.
ROTATED = [f"{family}_rotated" for family in FAMILIES] if config["controls"]["rotated"] else []
ROTATED_LENS_KINDS = ["tuned", "shared"]
LENS_KINDS = list(A.TRAINED_LENS_KINDS)
# Models whose lenses are fitted here (release.use_released_lenses pulls the LM's instead).
FITTED = [m for m in PROBED if not (m == "lm" and config["release"]["use_released_lenses"])]
SPLITS = ["train", "lensfit", "eval"]

# Final targets: each stage's .smk appends to this list; `rule all` asks for all of them.
TARGETS = []

# Threads: upper bounds, scaled down to --cores; override with --set-threads RULE=N.
TRAIN_THREADS = 8
# The CNNs are small: one thread each trains them nearly as fast, and leaves the other cores
# to the LM's jobs.
CNN_THREADS = 1
# The LM's chain (data, training, its untrained twin, extraction, then the trained LM's lens
# fit and evaluation) is the longest of the DAG: its jobs go first, so the other jobs fill the
# cores it leaves idle.
LM_PATH = 50
# Device of extraction, lens fits, evaluation and transfer; those rules then ask for a GPU.
DEVICE = config["device"]
GPUS = 1 if uses_gpu(DEVICE) else 0


def one_of(names):
    """A wildcard constraint matching exactly one of ``names`` (none of them: nothing)."""
    return "|".join(names) if names else "(?!)"


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


def replicate_of(wildcards):
    """The seed replicate k of ``{model}`` (its seed is config seed + k)."""
    return A.parse_model_name(wildcards.model)[1]


def arch_of(wildcards):
    """The architecture of ``{model}`` (lm, cnn_plain, cnn_residual)."""
    return A.parse_model_name(wildcards.model)[0]


def lens_priority(wildcards):
    """The trained LM's lens fit and evaluation, the longest jobs of the DAG's tail, go first."""
    return LM_PATH if wildcards.model in LM_TRAINED else 0


def lens_dirs(wildcards):
    kinds = ROTATED_LENS_KINDS if wildcards.model in ROTATED else LENS_KINDS
    return [A.LENS_DIR.format(model=wildcards.model, kind=kind) for kind in kinds]


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


def is_lm(model):
    """True for a language model's probed model (its rotated twin included)."""
    return model.removesuffix("_rotated") in LM_MODELS


def lm_prior_inputs(wildcards):
    """An LM's evaluation also reads the training tokens (its prior) and the tokenizer (EOS)."""
    if not is_lm(wildcards.model):
        return {}
    return {"train_tokens": A.TOKENS.format(split="train"), "tokenizer": A.TOKENIZER_DIR}


def lm_prior_flags(wildcards, input):
    """The command-line flags naming :func:`lm_prior_inputs` (none for a CNN)."""
    if not is_lm(wildcards.model):
        return ""
    return f"--train-tokens {input.train_tokens} --tokenizer {input.tokenizer}"


# Used by controls.smk and release.smk.
def store_folders(wildcards, input):
    """A params function: the folders of the stores whose manifests are ``input.stores``."""
    return [str(Path(manifest).parent) for manifest in input.stores]


def released_model_inputs(wildcards):
    m = REPO_OF[wildcards.repo]
    return {
        "model": A.MODEL_DIR.format(model=m),
        "lenses": expand(A.LENS_DIR, model=m, kind=LENS_KINDS),
        "readout": A.MODEL_READOUT.format(model=m),
        "metrics": A.LENS_METRICS.format(model=m),
    }


def released_model_name(wildcards):
    return REPO_OF[wildcards.repo]


def release_tables(wildcards):
    """Every table the run writes (the dataset repo waits for all of them)."""
    tables = [t for t in TARGETS if t.endswith(".csv")]
    tables += expand([A.LENS_METRICS, A.PREDICTION_DEPTH, A.TRANSFER], model=PROBED)
    if VISION:
        tables.append(A.COMPARISON)
    if RELEASE["include_activations"]:
        tables.append(A.STORE_MANIFEST.format(model="lm", split="eval"))
    return sorted(set(tables))


# Used by paper.smk.
def paper_inputs(wildcards):
    """Every final target but the paper's own outputs."""
    return [t for t in TARGETS if t not in PAPER]


def paper_figures(wildcards):
    """The figures among the final targets, in target order."""
    return [t for t in paper_inputs(wildcards) if t.endswith(".png")]


def fit_curves(wildcards):
    """The lens-fit curves of a family and its untrained twin (released lenses have none)."""
    models = [m for m in (wildcards.family, f"{wildcards.family}_random") if m in FITTED]
    return expand(A.FIT_CURVE, model=models, kind=LENS_KINDS)
