# iterlens: does a transformer refine one prediction layer by layer?
# Thin by design: all logic lives in the `iterlens` library; rules call its CLI, and every
# file name comes from iterlens.artifacts. One .smk per stage; each appends its final
# targets to TARGETS (defined in common.smk).
from pathlib import Path

from snakemake.utils import min_version

min_version("9.17")  # priorities that depend on wildcards (lenses.smk)


# The default config lives beside this Snakefile, so `--directory` works from anywhere;
# `--configfile config/smoke.yaml` overrides it.
configfile: str(Path(workflow.basedir) / "config" / "config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/lenses.smk"
include: "workflow/rules/controls.smk"
include: "workflow/rules/geometry.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/release.smk"
include: "workflow/rules/vocab.smk"
# Last: its rule takes every other final target as input.
include: "workflow/rules/paper.smk"


rule all:
    input:
        TARGETS,
    default_target: True
