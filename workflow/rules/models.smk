# The studied models of the config's table: reference LMs trained here, Hub or local-folder
# LMs recorded, CNNs trained here, and each at its untrained initial weights (the controls).


rule train_lm:
    input:
        tokenizer=tokenizer_dir,
        train=token_file("train"),
        val=token_file("lensfit"),
    output:
        model=directory(A.MODEL_DIR),
        curve=A.TRAINING_CURVE,
    wildcard_constraints:
        model=one_of(REFERENCE_TRAINED),
    params:
        cfg=cfg("lm"),
        residual=residual_flag,
        replicate=replicate_of,
    threads: TRAIN_THREADS
    priority: LM_PATH
    resources:
        mem_mb=4000,
    log:
        "logs/train_{model}.log",
    message:
        "Train the reference LM {wildcards.model}; tail -f {log}"
    shell:
        "iterlens train-lm --cfg {params.cfg} --threads {threads} --tokenizer {input.tokenizer} "
        "--train-tokens {input.train} --val-tokens {input.val} {params.residual} "
        "--replicate {params.replicate} --out {output.model} --curve {output.curve} > {log} 2>&1"


rule record_lm:
    output:
        directory(A.MODEL_DIR),
    wildcard_constraints:
        model=one_of(RECORDED),
    params:
        source=source_flags,
    threads: 1
    priority: LM_PATH
    resources:
        mem_mb=4000,
    log:
        "logs/record_{model}.log",
    message:
        "Check that {wildcards.model} loads and record where it comes from"
    shell:
        "iterlens record-lm {params.source} --out {output} > {log} 2>&1"


rule init_lm:
    input:
        trained=A.MODEL_DIR.format(model="{family}"),
        tokenizer=tokenizer_dir,
    output:
        directory(A.MODEL_DIR.format(model="{family}_random")),
    wildcard_constraints:
        family=one_of(LM_FAMILIES),
    params:
        cfg=cfg(),
    threads: 1
    priority: LM_PATH
    resources:
        mem_mb=2000,
    log:
        "logs/init_{family}.log",
    message:
        "Save {wildcards.family}'s architecture at its untrained initial weights (control)"
    shell:
        "iterlens init-lm --cfg {params.cfg} --trained {input.trained} "
        "--tokenizer {input.tokenizer} --out {output} > {log} 2>&1"


rule train_cnn:
    output:
        model=directory(A.MODEL_DIR),
        curve=A.TRAINING_CURVE,
    wildcard_constraints:
        model=one_of(CNN_TRAINED),
    params:
        cfg=cfg("vision"),
        residual=residual_flag,
        replicate=replicate_of,
    threads: CNN_THREADS
    resources:
        mem_mb=3000,
    log:
        "logs/train_{model}.log",
    message:
        "Train the {wildcards.model} network on the vision train split"
    shell:
        "iterlens train-cnn --cfg {params.cfg} --threads {threads} {params.residual} "
        "--replicate {params.replicate} --out {output.model} --curve {output.curve} "
        "> {log} 2>&1"


rule init_cnn:
    output:
        directory(A.MODEL_DIR.format(model="{family}_random")),
    wildcard_constraints:
        family=one_of(CNN_FAMILIES),
    params:
        cfg=cfg("vision"),
        residual=residual_flag,
    threads: 1
    resources:
        mem_mb=2000,
    log:
        "logs/init_{family}.log",
    message:
        "Save {wildcards.family} at its initial weights (control)"
    shell:
        "iterlens train-cnn --cfg {params.cfg} {params.residual} --untrained "
        "--out {output} > {log} 2>&1"
