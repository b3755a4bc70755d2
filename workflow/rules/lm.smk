rule train_lm:
    input:
        tokenizer="results/tokenizer",
        train="results/tokens/train.npy",
        val="results/tokens/lensfit.npy",
    output:
        model=directory("results/models/lm"),
        curve="results/tables/lm/training.csv",
    params:
        cfg=cfg("lm"),
    threads: 8
    log:
        "logs/train_lm.log",
    message:
        "Train the reference LM (or record the configured HF model); tail -f {log}"
    shell:
        "iterlens train-lm --cfg {params.cfg} --threads {threads} --tokenizer {input.tokenizer} "
        "--train-tokens {input.train} --val-tokens {input.val} --out {output.model} "
        "--curve {output.curve} > {log} 2>&1"


rule init_lm:
    input:
        trained="results/models/lm",
        tokenizer="results/tokenizer",
    output:
        directory("results/models/lm_random"),
    params:
        cfg=cfg(),
    log:
        "logs/init_lm.log",
    message:
        "Save the same architecture at its untrained initial weights (control)"
    shell:
        "iterlens init-lm --cfg {params.cfg} --trained {input.trained} "
        "--tokenizer {input.tokenizer} --out {output} > {log} 2>&1"


rule readout_lm:
    input:
        lm_dir,
    output:
        "results/probed/{lm}/readout.safetensors",
    log:
        "logs/readout_{lm}.log",
    message:
        "Copy the final norm and unembedding of {wildcards.lm}"
    shell:
        "iterlens readout --model {input} --out {output} > {log} 2>&1"
