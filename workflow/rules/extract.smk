rule extract_shard:
    input:
        model=lm_dir,
        readout="results/probed/{lm}/readout.safetensors",
        tokenizer="results/tokenizer",
        tokens="results/tokens/{store_split}.npy",
    output:
        "results/probed/{lm}/acts/{store_split}/shard-{index}.safetensors",
    params:
        cfg=cfg("extract"),
    threads: 1
    log:
        "logs/extract/{lm}_{store_split}_{index}.log",
    message:
        "Extract residual streams of {wildcards.lm}, {wildcards.store_split} shard {wildcards.index}"
    shell:
        "iterlens extract-shard --cfg {params.cfg} --threads {threads} --model {input.model} "
        "--readout {input.readout} --tokenizer {input.tokenizer} --tokens {input.tokens} "
        "--split {wildcards.store_split} --index {wildcards.index} --out {output} > {log} 2>&1"


rule store_manifest:
    input:
        shards=store_shards,
        readout="results/probed/{lm}/readout.safetensors",
    output:
        "results/probed/{lm}/acts/{store_split}/manifest.json",
    params:
        n_shards=n_store_shards,
    log:
        "logs/extract/{lm}_{store_split}_manifest.log",
    message:
        "Check the shards of {wildcards.lm}/{wildcards.store_split} and write the manifest"
    shell:
        "iterlens finalize-store --manifest {output} --readout {input.readout} "
        "--n-shards {params.n_shards} --domain lm > {log} 2>&1"
