# Extraction: every model becomes a probed model, a readout plus an activation store per split.
# LM stores are written one shard a job (separate cluster jobs on a big run), then a manifest;
# the CNN stores are small and written by one job per model.


rule readout_lm:
    input:
        A.MODEL_DIR,
    output:
        A.MODEL_READOUT,
    wildcard_constraints:
        model=one_of(LM_MODELS),
    threads: 1
    priority: LM_PATH
    resources:
        mem_mb=2000,
    log:
        "logs/readout_{model}.log",
    message:
        "Copy the final norm and unembedding of {wildcards.model}"
    shell:
        "iterlens readout --model {input} --out {output} > {log} 2>&1"


rule extract_shard:
    input:
        model=A.MODEL_DIR,
        readout=A.MODEL_READOUT,
        tokenizer=tokenizer_dir,
        tokens=token_file(),
    output:
        A.STORE_SHARD,
    wildcard_constraints:
        model=one_of(LM_MODELS),
    params:
        cfg=model_cfg("extract"),
        device=DEVICE,
    threads: 1
    priority: LM_PATH
    resources:
        mem_mb=3000,
        gpu=GPUS,
    log:
        "logs/extract/{model}_{split}_{index}.log",
    message:
        "Extract residual streams of {wildcards.model}, {wildcards.split} shard {wildcards.index}"
    shell:
        "iterlens extract-shard --cfg {params.cfg} --threads {threads} --device {params.device} "
        "--model {input.model} "
        "--readout {input.readout} --tokenizer {input.tokenizer} --tokens {input.tokens} "
        "--split {wildcards.split} --index {wildcards.index} --out {output} > {log} 2>&1"


rule store_manifest:
    input:
        shards=lm_store_shards,
        readout=A.MODEL_READOUT,
    output:
        A.STORE_MANIFEST,
    wildcard_constraints:
        model=one_of(LM_MODELS),
    params:
        n_shards=n_lm_store_shards,
    threads: 1
    priority: LM_PATH
    resources:
        mem_mb=1000,
    log:
        "logs/extract/{model}_{split}_manifest.log",
    message:
        "Check the shards of {wildcards.model}/{wildcards.split} and write the manifest"
    shell:
        "iterlens finalize-store --manifest {output} --readout {input.readout} "
        "--n-shards {params.n_shards} --domain lm > {log} 2>&1"


rule extract_cnn:
    input:
        A.MODEL_DIR,
    output:
        readout=A.MODEL_READOUT,
        stores=expand(A.STORE_MANIFEST, model="{model}", split=A.STORE_SPLITS),
    wildcard_constraints:
        model=one_of(CNN_MODELS),
    params:
        cfg=cfg("vision", "extract"),
        out=folder_of("output", "stores", up=2),
    threads: 1
    resources:
        mem_mb=3000,
    log:
        "logs/extract/{model}.log",
    message:
        "Extract the pooled block outputs of {wildcards.model}"
    shell:
        "iterlens extract-cnn --cfg {params.cfg} --threads {threads} --model {input} "
        "--readout {output.readout} --out {params.out} > {log} 2>&1"
