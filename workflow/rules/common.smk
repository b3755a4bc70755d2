import json
import shlex

from iterlens.config import validate
from iterlens.extract import n_shards

# Validate the config (unknown keys are named) and fill schema defaults.
config.update(validate(config))

LM_MODELS = ["lm", "lm_random"]
LENS_KINDS = ["tuned", "shared", "probe"]
SPLITS = ["train", "lensfit", "eval"]
MODEL_DIRS = {"lm": "results/models/lm", "lm_random": "results/models/lm_random"}


wildcard_constraints:
    split="train|lensfit|eval",
    store_split="lensfit|eval",
    lm="lm|lm_random",
    kind="tuned|shared|probe",
    index=r"\d+",


def cfg(*keys):
    """Config sections (plus the seed) as a shell-quoted JSON string for `--cfg`."""
    return shlex.quote(json.dumps({k: config[k] for k in ("seed", *keys)}, sort_keys=True))


def lm_dir(wildcards):
    return MODEL_DIRS[wildcards.lm]


def store_shards(wildcards):
    ex = config["extract"]
    count = n_shards(ex[f"{wildcards.store_split}_tokens"], ex["shard_tokens"], ex["seq_len"])
    return [
        f"results/probed/{wildcards.lm}/acts/{wildcards.store_split}/shard-{i:05d}.safetensors"
        for i in range(count)
    ]


def n_store_shards(wildcards):
    return len(store_shards(wildcards))


def lens_dirs(wildcards):
    return [f"results/probed/{wildcards.pm}/lenses/{kind}" for kind in LENS_KINDS]


# Which table each figure is drawn from.
FIGURE_TABLES = {
    "lens_curves": "lens_metrics",
    "shared_lens": "lens_metrics",
    "ranks": "lens_metrics",
    "prediction_depth": "prediction_depth",
    "transfer": "transfer",
}


def lm_figure_tables(wildcards):
    table = FIGURE_TABLES[wildcards.figure]
    return [f"results/tables/{pm}/{table}.csv" for pm in LM_MODELS]


def final_targets():
    targets = [
        "results/tables/lm_summary.csv",
        "results/figures/lm_training.png",
        "results/figures/lm_lens_curves.png",
        "results/figures/lm_shared_lens.png",
        "results/figures/lm_transfer.png",
        "results/figures/lm_prediction_depth.png",
        "results/figures/lm_ranks.png",
    ]
    targets += expand("results/tables/{pm}/transfer.csv", pm=LM_MODELS)
    return targets
