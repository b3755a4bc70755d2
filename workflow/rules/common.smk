# Shared by every stage: the validated config, the model lists, artifact paths, helpers.
# Paths come from iterlens.artifacts, which the library uses too: a file is named once.
import json
import shlex

from iterlens import artifacts as A
from iterlens.config import validate
from iterlens.device import uses_gpu
from iterlens.locks import report_stale_locks
from iterlens.models.studied import DEFAULT_RESIDUAL, Study
from iterlens.probing.extract import n_shards
from iterlens.report.figures import PAPER_FIGURES, family_figures

# Validate the config (unknown keys are named) and fill schema defaults.
config.update(validate(config))

# A hard kill leaves Snakemake's lock behind: remove it when the run that made it is dead
# (only the main process, before it locks; job subprocesses and cluster jobs skip this).
if getattr(workflow, "is_main_process", True):
    report_stale_locks(".snakemake")


# The studied models are data: the config's `models` table (iterlens.models.studied) names
# them, and every list below is derived from it. Replicate 0 of a model trained here keeps the
# entry's name; replicate k >= 1 is {name}_s{k} (seed + k, the same splits); {name}_random is
# the untrained twin, {name}_rotated the rotated twin (controls.smk).
STUDY = Study.of(config)
LM_ENTRIES = STUDY.of_domain("lm")
CNN_ENTRIES = STUDY.of_domain("vision")
LM_MODELS = STUDY.probed("lm")  # every LM with a forward pass: entries, untrained twins, seeds
CNN_MODELS = STUDY.probed("vision")
LM_TRAINED = STUDY.trained("lm")
CNN_TRAINED = STUDY.trained("vision")
REFERENCE_TRAINED = STUDY.replicates("reference")  # trained by train_lm
RECORDED = [m.name for m in LM_ENTRIES if not m.trained_here]  # hub and local-folder LMs
TOKENIZERS = [m.tokenizer for m in LM_ENTRIES]
VISION = bool(CNN_ENTRIES)
# Families: every entry, drawn beside its untrained twin where it has one.
FAMILIES = [m.name for m in STUDY.models]
LM_FAMILIES = [m.name for m in LM_ENTRIES]
CNN_FAMILIES = [m.name for m in CNN_ENTRIES]
# Every probed model, seed replicates included (headline, comparison, seeds).
PROBED = STUDY.probed()
# Positive control: the rotated twins, probed by the same rules. Their lenses are the tuned
# and shared lens only: a free probe is basis-free, so the twin's probes would only repeat
# the model's.
ROTATED = STUDY.rotated
ROTATED_LENS_KINDS = ["tuned", "shared"]
LENS_KINDS = list(A.TRAINED_LENS_KINDS)
# Models whose lenses are fitted here (an entry's released_lenses pulls them instead).
FITTED = [m for m in PROBED if m not in STUDY.released_lenses]
SPLITS = ["train", "lensfit", "eval"]

# Final targets: each stage's .smk appends to this list; `rule all` asks for all of them.
TARGETS = []

# Threads: upper bounds, scaled down to --cores; override with --set-threads RULE=N.
TRAIN_THREADS = 8
# The CNNs are small: one thread each trains them nearly as fast, and leaves the other cores
# to the LM's jobs.
CNN_THREADS = 1
# The LMs' chains (data, training, untrained twin, extraction, then the trained LMs' lens
# fits and evaluation) are the longest of the DAG: their jobs go first, so the other jobs fill
# the cores they leave idle.
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


def _sections(settings, keys):
    """The seed and the ``keys`` sections of ``settings``, as a shell-quoted JSON string."""
    return shlex.quote(json.dumps({k: settings[k] for k in ("seed", *keys)}, sort_keys=True))


def cfg(*keys):
    """Config sections (plus the seed) as a shell-quoted JSON string for `--cfg`."""
    return _sections(config, keys)


def model_cfg(*keys):
    """Like :func:`cfg`, for one model: its entry's ``overrides`` merged into the sections."""
    return lambda wildcards: _sections(STUDY.config_of(wildcards.model, config), keys)


def entry(wildcards):
    """The studied model (config table entry) of ``{model}``, ``{family}`` or ``{tokenizer}``."""
    for field in ("model", "family", "tokenizer"):
        if hasattr(wildcards, field):
            return STUDY.entry_of(getattr(wildcards, field))
    raise ValueError(f"no model wildcard in {dict(wildcards)}")


def tokenizer_dir(wildcards):
    """The tokenizer folder an LM reads (its entry's)."""
    return A.TOKENIZER_DIR.format(tokenizer=entry(wildcards).tokenizer)


def token_file(split=None):
    """An input function: the token stream of ``split`` (default: ``{split}``) in the LM's
    own tokenizer."""

    def get(wildcards):
        return A.TOKENS.format(tokenizer=entry(wildcards).tokenizer,
                               split=split or wildcards.split)

    return get


def source_flags(wildcards):
    """``--source``, ``--path`` (and a gguf file's ``--sha256``, ``--size``) of an LM's entry."""
    m = entry(wildcards)
    flags = f"--source {m.source}" + (f" --path {shlex.quote(m.path)}" if m.path else "")
    flags += f" --sha256 {m.sha256}" if m.sha256 else ""
    return flags + (f" --size {m.size}" if m.size else "")


def tokenizer_flags(wildcards):
    """How the tokenizer rule has an LM's tokenizer: a gguf model's from its converted folder."""
    m = entry(wildcards)
    if m.source == "gguf":
        return "--source folder --path " + shlex.quote(A.MODEL_DIR.format(model=m.name))
    return source_flags(wildcards)


def converted_model(wildcards):
    """A gguf entry's converted model folder (the tokenizer's source); nothing for the others."""
    m = entry(wildcards)
    return [A.MODEL_DIR.format(model=m.name)] if m.source == "gguf" else []


def lm_store_shards(wildcards):
    """The shard files of an LM store (their count follows from the extract config)."""
    ex = STUDY.config_of(wildcards.model, config)["extract"]
    count = n_shards(ex[f"{wildcards.split}_tokens"], ex["shard_tokens"], ex["seq_len"])
    return [A.STORE_SHARD.format(model=wildcards.model, split=wildcards.split,
                                 index=f"{i:05d}") for i in range(count)]


def n_lm_store_shards(wildcards):
    return len(lm_store_shards(wildcards))


def replicate_of(wildcards):
    """The seed replicate k of ``{model}`` (its seed is config seed + k)."""
    return A.parse_model_name(wildcards.model).replicate


def residual_flag(wildcards):
    """``--residual`` or ``--no-residual`` where a trained entry departs from its source's
    default skips (a CNN with identity skips; a reference LM without); else nothing."""
    m = entry(wildcards)
    if m.residual == DEFAULT_RESIDUAL[m.source]:
        return ""
    return "--residual" if m.residual else "--no-residual"


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
    return STUDY.entry_of(model).domain == "lm"


def lm_prior_inputs(wildcards):
    """An LM's evaluation also reads the training tokens (its prior) and the tokenizer (EOS)."""
    if not is_lm(wildcards.model):
        return {}
    return {"train_tokens": token_file("train")(wildcards), "tokenizer": tokenizer_dir(wildcards)}


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


def released_model_domain(wildcards):
    return STUDY.entry_of(REPO_OF[wildcards.repo]).domain


def released_model_license(wildcards):
    """``--license`` of a model whose entry names its weights' license; nothing otherwise."""
    license = STUDY.entry_of(REPO_OF[wildcards.repo]).license
    return f"--license {license}" if license else ""


def release_tables(wildcards):
    """Every table the run writes (the dataset repo waits for all of them)."""
    tables = [t for t in TARGETS if t.endswith(".csv")]
    tables += expand([A.LENS_METRICS, A.PREDICTION_DEPTH, A.TRANSFER], model=PROBED)
    tables.append(A.COMPARISON)
    if RELEASE["include_activations"]:
        tables += expand(A.STORE_MANIFEST, model=LM_FAMILIES, split="eval")
    return sorted(set(tables))


# Used by paper.smk.
def paper_inputs(wildcards):
    """Every final target but the paper's own outputs."""
    return [t for t in TARGETS if t not in PAPER]


def paper_figures(wildcards):
    """The figures among the final targets, in target order."""
    return [t for t in paper_inputs(wildcards) if t.endswith(".png")]


def family_models(wildcards):
    """A family's trained model and, where it has one, its untrained twin."""
    m = entry(wildcards)
    return [m.name] + ([m.random_twin] if m.random_twin else [])


def family_tables(table):
    """An input function: ``table`` of a family's trained model and untrained twin."""

    def get(wildcards):
        return expand(table, model=family_models(wildcards))

    return get


def fit_curves(wildcards):
    """The lens-fit curves of a family and its untrained twin (released lenses have none)."""
    models = [m for m in family_models(wildcards) if m in FITTED]
    return expand(A.FIT_CURVE, model=models, kind=LENS_KINDS)


def vocab_prompt(wildcards):
    """The config's vocabulary prompt number ``{prompt}``, shell-quoted."""
    return shlex.quote(config["vocab"]["prompts"][int(wildcards.prompt)])
