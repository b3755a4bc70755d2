# Summary tables assembled from the per-model tables (the numbers the README quotes).


rule lm_summary:
    input:
        train=A.TOKENS.format(split="train"),
        store=A.STORE_MANIFEST.format(model="lm", split="eval"),
        readout=A.MODEL_READOUT.format(model="lm"),
        metrics=expand(A.LENS_METRICS, model=LM_MODELS),
    output:
        A.LM_SUMMARY,
    params:
        names=LM_MODELS,
        store=folder_of("input", "store"),
    resources:
        mem_mb=2000,
    log:
        "logs/lm_summary.log",
    message:
        "Held-out loss of the LMs against the unigram baseline"
    shell:
        "iterlens lm-summary --train-tokens {input.train} --eval-store {params.store} "
        "--vocab-of {input.readout} --names {params.names} --metrics {input.metrics} "
        "--out {output} > {log} 2>&1"


rule headline:
    input:
        metrics=expand(A.LENS_METRICS, model=PROBED),
        transfer=expand(A.TRANSFER, model=PROBED),
    output:
        A.HEADLINE,
    resources:
        mem_mb=1000,
    log:
        "logs/headline.log",
    message:
        "Headline numbers: transfer penalties, shared-lens penalty, probe plateau"
    shell:
        "iterlens headline --metrics {input.metrics} --transfer {input.transfer} "
        "--out {output} > {log} 2>&1"


rule vision_summary:
    input:
        expand(A.MODEL_DIR, model=CNN_TRAINED),
    output:
        A.VISION_SUMMARY,
    params:
        cfg=cfg("vision"),
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
        transfer=expand(A.TRANSFER, model=PROBED),
    output:
        A.COMPARISON,
    resources:
        mem_mb=1000,
    log:
        "logs/comparison.log",
    message:
        "Table behind the comparison figure: LM vs plain vs residual CNN"
    shell:
        "iterlens comparison --metrics {input.metrics} --transfer {input.transfer} "
        "--out {output} > {log} 2>&1"


TARGETS += [A.LM_SUMMARY, A.HEADLINE]
if VISION:
    TARGETS += [A.VISION_SUMMARY]
