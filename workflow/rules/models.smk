# The studied models: the reference LM (or a configured HF model), the CNN twins, and each
# at its untrained initial weights (the controls).


rule train_lm:
    input:
        tokenizer=A.TOKENIZER_DIR,
        train=A.TOKENS.format(split="train"),
        val=A.TOKENS.format(split="lensfit"),
    output:
        model=directory(A.MODEL_DIR),
        curve=A.TRAINING_CURVE,
    wildcard_constraints:
        model=one_of(LM_TRAINED),
    params:
        cfg=cfg("lm"),
        replicate=replicate_of,
    threads: TRAIN_THREADS
    priority: LM_PATH
    resources:
        mem_mb=4000,
    log:
        "logs/train_{model}.log",
    message:
        "Train the reference LM {wildcards.model} (or record the configured HF model); tail -f {log}"
    shell:
        "iterlens train-lm --cfg {params.cfg} --threads {threads} --tokenizer {input.tokenizer} "
        "--train-tokens {input.train} --val-tokens {input.val} --replicate {params.replicate} "
        "--out {output.model} --curve {output.curve} > {log} 2>&1"


rule init_lm:
    input:
        trained=A.MODEL_DIR.format(model="lm"),
        tokenizer=A.TOKENIZER_DIR,
    output:
        directory(A.MODEL_DIR.format(model="lm_random")),
    params:
        cfg=cfg(),
    threads: 1
    priority: LM_PATH
    resources:
        mem_mb=2000,
    log:
        "logs/init_lm.log",
    message:
        "Save the same architecture at its untrained initial weights (control)"
    shell:
        "iterlens init-lm --cfg {params.cfg} --trained {input.trained} "
        "--tokenizer {input.tokenizer} --out {output} > {log} 2>&1"


rule train_cnn:
    output:
        model=directory(A.MODEL_DIR),
        curve=A.TRAINING_CURVE,
    wildcard_constraints:
        model=one_of(CNN_TRAINED + CNN_REPLICATES),
    params:
        cfg=cfg("vision"),
        net=arch_of,
        replicate=replicate_of,
    threads: CNN_THREADS
    resources:
        mem_mb=3000,
    log:
        "logs/train_{model}.log",
    message:
        "Train the {wildcards.model} network on the vision train split"
    shell:
        "iterlens train-cnn --cfg {params.cfg} --threads {threads} --net {params.net} "
        "--replicate {params.replicate} --out {output.model} --curve {output.curve} "
        "> {log} 2>&1"


rule init_cnn:
    output:
        directory(A.MODEL_DIR.format(model="{net}_random")),
    wildcard_constraints:
        net=one_of(CNN_TRAINED),
    params:
        cfg=cfg("vision"),
    threads: 1
    resources:
        mem_mb=2000,
    log:
        "logs/init_{net}.log",
    message:
        "Save {wildcards.net} at its initial weights (control)"
    shell:
        "iterlens train-cnn --cfg {params.cfg} --net {wildcards.net} --untrained "
        "--out {output} > {log} 2>&1"
