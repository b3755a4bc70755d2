# Lenses, generic over every probed model: the LM, its control and the CNNs share these rules.


rule fit_lenses:
    input:
        store=A.STORE_MANIFEST.format(model="{model}", split="lensfit"),
        readout=A.MODEL_READOUT,
    output:
        lenses=directory(expand(A.LENS_DIR, model="{model}", kind=LENS_KINDS)),
        curves=expand(A.FIT_CURVE, model="{model}", kind=LENS_KINDS),
    wildcard_constraints:
        model=one_of(FITTED),
    params:
        cfg=model_cfg("lens", "probe"),
        kinds=LENS_KINDS,
        store=folder_of("input", "store"),
        out=folder_of("output", "lenses"),
        curves=folder_of("output", "curves"),
        device=DEVICE,
        replicate=replicate_of,
    threads: 1
    priority: lens_priority
    resources:
        mem_mb=4000,
        gpu=GPUS,
    log:
        "logs/fit/{model}.log",
    message:
        "Fit the tuned lens, shared lens and free probes of {wildcards.model}"
    shell:
        "iterlens fit-lenses --cfg {params.cfg} --threads {threads} --device {params.device} "
        "--kinds {params.kinds} --replicate {params.replicate} "
        "--store {params.store} --readout {input.readout} --out {params.out} "
        "--curves {params.curves} > {log} 2>&1"


rule evaluate:
    input:
        unpack(lm_prior_inputs),
        store=A.STORE_MANIFEST.format(model="{model}", split="eval"),
        readout=A.MODEL_READOUT,
        lenses=lens_dirs,
    output:
        metrics=A.LENS_METRICS,
        depth=A.PREDICTION_DEPTH,
        transfer=A.TRANSFER,
        examples=A.EXAMPLES,
    params:
        cfg=model_cfg("vision", "lens"),
        prior=lm_prior_flags,
        store=folder_of("input", "store"),
        device=DEVICE,
    threads: 1
    priority: lens_priority
    resources:
        mem_mb=4000,
        gpu=GPUS,
    log:
        "logs/evaluate/{model}.log",
    message:
        "Evaluate every lens of {wildcards.model} on held-out data; transfer penalties"
    shell:
        "iterlens evaluate --cfg {params.cfg} --threads {threads} --device {params.device} "
        "--store {params.store} --examples-out {output.examples} {params.prior} "
        "--readout {input.readout} --lens {input.lenses} --out {output.metrics} "
        "--depth-out {output.depth} --transfer-out {output.transfer} > {log} 2>&1"


TARGETS += expand(A.FIT_CURVE, model=FITTED, kind=LENS_KINDS)
