# The Hugging Face Hub release. Staging (offline) is part of the default run: one folder per
# repo under results/release/. Pushing is an explicit target: `snakemake push_dry_run`,
# then `snakemake push` (needs HF_TOKEN or `hf auth login`).
from iterlens.hub.stage import repo_id, repo_name

RELEASE = config["release"]
RELEASED_MODELS = ["lm"] + (CNN_TRAINED if VISION else [])
# Model repo folders are <prefix>-<model, dashed>; {repo} is the dashed model name.
REPO_OF = {m.replace("_", "-"): m for m in RELEASED_MODELS}
DATASET_REPO = f"results/release/{RELEASE['prefix']}-results"
RELEASE_DIRS = [f"results/release/{repo_name(RELEASE['prefix'], m)}" for m in RELEASED_MODELS]
RELEASE_DIRS.append(DATASET_REPO)


def released_model_inputs(wildcards):
    m = REPO_OF[wildcards.repo]
    return {
        "model": f"results/models/{m}",
        "lenses": expand(f"results/probed/{m}/lenses/{{kind}}", kind=LENS_KINDS),
        "readout": f"results/probed/{m}/readout.safetensors",
        "metrics": f"results/tables/{m}/lens_metrics.csv",
    }


def released_model_name(wildcards):
    return REPO_OF[wildcards.repo]


def release_tables(wildcards):
    """Every table the run writes (the dataset repo waits for all of them)."""
    tables = [t for t in final_targets(release=False) if t.endswith(".csv")]
    tables += expand("results/tables/{pm}/{table}.csv", pm=COMPARED,
                     table=["lens_metrics", "prediction_depth", "transfer"])
    if VISION:
        tables.append("results/tables/comparison.csv")
    if RELEASE["include_activations"]:
        tables.append("results/probed/lm/acts/eval/manifest.json")
    return sorted(set(tables))


rule stage_model_repo:
    input:
        unpack(released_model_inputs),
    output:
        directory(f"results/release/{RELEASE['prefix']}-{{repo}}"),
    wildcard_constraints:
        repo="|".join(REPO_OF),
    params:
        cfg=cfg("release"),
        model=released_model_name,
    log:
        f"logs/release/{RELEASE['prefix']}-{{repo}}.log",
    message:
        "Stage the Hub model repo of {params.model}: model, lenses, model card"
    shell:
        "iterlens stage-release --cfg {params.cfg} --model {params.model} --results results "
        "--out {output} > {log} 2>&1"


rule stage_dataset_repo:
    input:
        tables=release_tables,
        corpus=expand("results/corpus/{split}.jsonl", split=SPLITS),
    output:
        directory(DATASET_REPO),
    params:
        cfg=cfg("release"),
        models=RELEASED_MODELS,
    log:
        "logs/release/dataset.log",
    message:
        "Stage the Hub dataset repo: every table as Parquet, split document ids, dataset card"
    shell:
        "iterlens stage-release --cfg {params.cfg} --models {params.models} --results results "
        "--out {output} > {log} 2>&1"


rule push_dry_run:
    input:
        RELEASE_DIRS,
    message:
        "List the repos, files and sizes the push would upload (no network)"
    shell:
        "iterlens push --release results/release --dry-run"


rule push:
    input:
        RELEASE_DIRS,
    params:
        private="--private" if RELEASE["private"] else "",
    log:
        "logs/release/push.log",
    message:
        "Create the Hub repos where missing and upload each staged folder (needs a token)"
    shell:
        "iterlens push --release results/release {params.private} > {log} 2>&1"


if RELEASE["use_released_lenses"]:

    ruleorder: released_lenses > fit_lenses

    rule released_lenses:
        input:
            model="results/models/lm",
            store="results/probed/lm/acts/lensfit/manifest.json",
            readout="results/probed/lm/readout.safetensors",
        output:
            directory(expand("results/probed/lm/lenses/{kind}", kind=LENS_KINDS)),
        params:
            cfg=cfg("lens", "probe"),
            source=RELEASE["lenses_from"] or repo_id(RELEASE["namespace"], repo_name(RELEASE["prefix"], "lm")),
            name=f"--lens-name {RELEASE['lens_name']}" if RELEASE["lens_name"] else "",
        log:
            "logs/fit/lm_released.log",
        message:
            "Pull the released lenses of the LM from {params.source} (fit only kinds it lacks)"
        shell:
            "(iterlens pull --source {params.source} --model {input.model} --kind tuned "
            "{params.name} --out results/probed/lm/lenses/tuned && "
            "for kind in shared probe; do iterlens pull --source {params.source} "
            "--model {input.model} --kind $kind --missing-ok "
            "--out results/probed/lm/lenses/$kind || exit 1; done && "
            "iterlens fit-lenses --cfg {params.cfg} --skip-existing "
            "--store results/probed/lm/acts/lensfit --readout {input.readout} "
            "--out results/probed/lm/lenses --curves results/tables/lm) > {log} 2>&1"
