# The Hugging Face Hub release. Staging (offline) is part of the default run: one folder per
# repo under results/release/. Pushing is an explicit target: `snakemake push_dry_run`,
# then `snakemake push` (needs HF_TOKEN or `hf auth login`).
from iterlens.hub.stage import repo_id, repo_name

RELEASE = config["release"]
RELEASED_MODELS = FAMILIES  # every studied model (replicate 0)
# Model repo folders are <prefix>-<model, dashed>; {repo} is the dashed model name.
REPO_OF = {m.replace("_", "-"): m for m in RELEASED_MODELS}
MODEL_REPO = A.RELEASE_REPO.format(repo=RELEASE["prefix"] + "-{repo}")
DATASET_REPO = A.RELEASE_REPO.format(repo=RELEASE["prefix"] + "-results")
RELEASE_DIRS = [A.RELEASE_REPO.format(repo=repo_name(RELEASE["prefix"], m))
                for m in RELEASED_MODELS] + [DATASET_REPO]


rule stage_model_repo:
    input:
        unpack(released_model_inputs),
    output:
        directory(MODEL_REPO),
    wildcard_constraints:
        repo=one_of(REPO_OF),
    params:
        cfg=cfg("release"),
        model=released_model_name,
        domain=released_model_domain,
        license=released_model_license,
    resources:
        mem_mb=2000,
    log:
        "logs/release/{repo}.log",
    message:
        "Stage the Hub model repo of {params.model}: model, lenses, model card"
    shell:
        "iterlens stage-release --cfg {params.cfg} --model {params.model} "
        "--domain {params.domain} {params.license} --results results --out {output} "
        "> {log} 2>&1"


rule stage_dataset_repo:
    input:
        tables=release_tables,
        corpus=expand(A.CORPUS, split=SPLITS),
    output:
        directory(DATASET_REPO),
    params:
        cfg=cfg("release"),
        models=RELEASED_MODELS,
        activations=LM_FAMILIES,
    resources:
        mem_mb=2000,
    log:
        "logs/release/dataset.log",
    message:
        "Stage the Hub dataset repo: every table as Parquet, split document ids, dataset card"
    shell:
        "iterlens stage-release --cfg {params.cfg} --models {params.models} "
        "--activations-of {params.activations} --results results --out {output} > {log} 2>&1"


rule push_dry_run:
    input:
        repos=RELEASE_DIRS,
    params:
        release=folder_of("input", "repos"),
    log:
        "logs/release/push_dry_run.log",
    message:
        "List the repos, files and sizes the push would upload (no network)"
    shell:
        "iterlens push --release {params.release} --dry-run 2>&1 | tee {log}"


rule push:
    input:
        repos=RELEASE_DIRS,
    params:
        release=folder_of("input", "repos"),
        private="--private" if RELEASE["private"] else "",
    log:
        "logs/release/push.log",
    message:
        "Create the Hub repos where missing and upload each staged folder (needs a token)"
    shell:
        "iterlens push --release {params.release} {params.private} > {log} 2>&1"


# An entry's `released_lenses: {use: true}` pulls its lenses instead of fitting them.
RELEASED_LENSES = STUDY.released_lenses


def released_lens_source(wildcards):
    m = STUDY.entry_of(wildcards.model)
    return m.lenses_from or repo_id(RELEASE["namespace"], repo_name(RELEASE["prefix"], m.name))


def released_lens_name(wildcards):
    m = STUDY.entry_of(wildcards.model)
    return f"--lens-name {shlex.quote(m.lens_name)}" if m.lens_name else ""


def model_tables(wildcards):
    return A.MODEL_TABLES.format(model=wildcards.model)


ruleorder: released_lenses > fit_lenses


rule released_lenses:
    input:
        model=A.MODEL_DIR,
        store=A.STORE_MANIFEST.format(model="{model}", split="lensfit"),
        readout=A.MODEL_READOUT,
    output:
        lenses=directory(expand(A.LENS_DIR, model="{model}", kind=LENS_KINDS)),
    wildcard_constraints:
        model=one_of(RELEASED_LENSES),
    params:
        cfg=cfg("lens", "probe"),
        source=released_lens_source,
        name=released_lens_name,
        store=folder_of("input", "store"),
        out=folder_of("output", "lenses"),
        curves=model_tables,
    resources:
        mem_mb=4000,
    log:
        "logs/fit/{model}_released.log",
    message:
        "Pull the released lenses of {wildcards.model} from {params.source} (fit only kinds it lacks)"
    shell:
        "(iterlens pull --source {params.source} --model {input.model} --kind tuned "
        "{params.name} --out {params.out}/tuned && "
        "for kind in shared probe; do iterlens pull --source {params.source} "
        "--model {input.model} --kind $kind --missing-ok --out {params.out}/$kind "
        "|| exit 1; done && "
        "iterlens fit-lenses --cfg {params.cfg} --skip-existing --store {params.store} "
        "--readout {input.readout} --out {params.out} --curves {params.curves}) > {log} 2>&1"


TARGETS += RELEASE_DIRS
