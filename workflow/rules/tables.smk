# Summary tables assembled from the per-model tables (the numbers the README quotes).


rule lm_summary:
    input:
        train=[A.TOKENS.format(tokenizer=m.tokenizer, split="train") for m in LM_ENTRIES],
        stores=expand(A.STORE_MANIFEST, model=LM_FAMILIES, split="eval"),
        readouts=expand(A.MODEL_READOUT, model=LM_FAMILIES),
        metrics=expand(A.LENS_METRICS, model=LM_MODELS),
    output:
        A.LM_SUMMARY,
    params:
        groups=LM_FAMILIES,
        names=LM_MODELS,
        stores=store_folders,
    threads: 1
    resources:
        mem_mb=2000,
    log:
        "logs/lm_summary.log",
    message:
        "Held-out loss of the LMs against the unigram baseline"
    shell:
        "iterlens lm-summary --groups {params.groups} --train-tokens {input.train} "
        "--eval-store {params.stores} --vocab-of {input.readouts} --names {params.names} "
        "--metrics {input.metrics} --out {output} > {log} 2>&1"


rule headline:
    input:
        metrics=expand(A.LENS_METRICS, model=PROBED),
        examples=expand(A.EXAMPLES, model=PROBED),
    output:
        headline=A.HEADLINE,
        contrasts=A.CONTRASTS,
    params:
        pairs=[f"{a}:{b}:{'paired' if paired else 'unpaired'}" for a, b, paired in STUDY.contrasts()],
    threads: 1
    resources:
        mem_mb=1000,
    log:
        "logs/headline.log",
    message:
        "Headline numbers with intervals; contrasts between models"
    shell:
        "iterlens headline --metrics {input.metrics} --examples {input.examples} "
        "--out {output.headline} --contrasts-out {output.contrasts} --pairs {params.pairs} "
        "> {log} 2>&1"


rule vision_summary:
    input:
        expand(A.MODEL_DIR, model=CNN_TRAINED),
    output:
        A.VISION_SUMMARY,
    params:
        cfg=cfg("vision"),
    threads: 1
    resources:
        mem_mb=2000,
    log:
        "logs/vision_summary.log",
    message:
        "Test accuracy of the CNN twins"
    shell:
        "iterlens vision-summary --cfg {params.cfg} --models {input} --out {output} > {log} 2>&1"


rule comparison:
    input:
        metrics=expand(A.LENS_METRICS, model=PROBED),
        examples=expand(A.EXAMPLES, model=PROBED),
    output:
        A.COMPARISON,
    threads: 1
    resources:
        mem_mb=1000,
    log:
        "logs/comparison.log",
    message:
        "Table behind the main figures: every model on relative depth and distance"
    shell:
        "iterlens comparison --metrics {input.metrics} --examples {input.examples} "
        "--out {output} > {log} 2>&1"


rule seeds:
    input:
        headline=A.HEADLINE,
        vision=A.VISION_SUMMARY if VISION else [],
    output:
        A.SEEDS,
    threads: 1
    resources:
        mem_mb=1000,
    log:
        "logs/seeds.log",
    message:
        "Mean and spread over seeds of the headline numbers and CNN accuracies"
    shell:
        "iterlens seeds --tables {input} --out {output} > {log} 2>&1"


TARGETS += ([A.LM_SUMMARY] if LM_ENTRIES else []) + [A.HEADLINE, A.CONTRASTS, A.SEEDS]
if VISION:
    TARGETS += [A.VISION_SUMMARY]
