rule corpus:
    output:
        expand("results/corpus/{split}.jsonl", split=SPLITS),
    params:
        cfg=cfg("corpus"),
    log:
        "logs/corpus.log",
    message:
        "Load the corpus and split it by document"
    shell:
        "iterlens corpus --cfg {params.cfg} --out results/corpus > {log} 2>&1"


rule tokenizer:
    input:
        train="results/corpus/train.jsonl",
    output:
        directory("results/tokenizer"),
    params:
        cfg=cfg("lm", "tokenizer"),
    log:
        "logs/tokenizer.log",
    message:
        "Train the BPE tokenizer on the train documents"
    shell:
        "iterlens tokenizer --cfg {params.cfg} --train {input.train} --out {output} > {log} 2>&1"


rule tokenize:
    input:
        tokenizer="results/tokenizer",
        splits=expand("results/corpus/{split}.jsonl", split=SPLITS),
    output:
        expand("results/tokens/{split}.npy", split=SPLITS),
    log:
        "logs/tokenize.log",
    message:
        "Tokenize the train, lensfit and eval documents"
    shell:
        "iterlens tokenize --tokenizer {input.tokenizer} --split {input.splits} "
        "--out {output} > {log} 2>&1"
