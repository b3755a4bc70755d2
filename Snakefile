# iterlens: does a transformer refine one prediction layer by layer?
# Thin by design: all logic lives in the `iterlens` library; rules call its CLI.
from snakemake.utils import min_version

min_version("8.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/lm.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/lenses.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/vision.smk"


rule all:
    input:
        final_targets(),
    default_target: True
