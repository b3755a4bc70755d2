import json
import shlex

from iterlens.config import validate
from iterlens.extract import n_shards

# Validate the config (unknown keys are named) and fill schema defaults.
config.update(validate(config))

LM_MODELS = ["lm", "lm_random"]
CNN_TRAINED = ["cnn_plain", "cnn_residual"]
CNN_MODELS = CNN_TRAINED + [f"{net}_random" for net in CNN_TRAINED]
VISION = config["vision"]["enabled"]
# Families drawn with their untrained twin ({family}_random) in every figure.
FAMILIES = ["lm"] + (CNN_TRAINED if VISION else [])
COMPARED = ["lm", "lm_random"] + (CNN_MODELS if VISION else [])
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


def final_targets():
    figures = ["lens_curves", "shared_lens", "transfer", "prediction_depth"]
    targets = [
        "results/tables/lm_summary.csv",
        "results/tables/headline.csv",
        "results/figures/lm_ranks.png",
    ]
    if config["lm"]["model"] == "reference":
        targets.append("results/figures/lm_training.png")
    targets += expand("results/figures/{family}_{figure}.png", family=FAMILIES, figure=figures)
    targets += expand("results/tables/{pm}/fit_{kind}.csv", pm=COMPARED, kind=LENS_KINDS)
    if VISION:
        targets += ["results/tables/vision_summary.csv", "results/figures/comparison.png"]
    if config["vocab"]["enabled"]:
        targets.append("results/vocab/index.html")
    return targets
