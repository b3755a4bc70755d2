# Text data: the corpus split by document, the BPE tokenizer, the token streams.


rule corpus:
    output:
        splits=expand(A.CORPUS, split=SPLITS),
    params:
        cfg=cfg("corpus"),
        out=folder_of("output", "splits"),
    threads: 1
    priority: LM_PATH
    resources:
        mem_mb=2000,
    log:
        "logs/corpus.log",
    message:
        "Load the corpus and split it by document"
    shell:
        "iterlens corpus --cfg {params.cfg} --out {params.out} > {log} 2>&1"


rule tokenizer:
    input:
        train=A.CORPUS.format(split="train"),
    output:
        directory(A.TOKENIZER_DIR),
    params:
        cfg=cfg("lm", "tokenizer"),
    threads: 1
    priority: LM_PATH
    resources:
        mem_mb=2000,
    log:
        "logs/tokenizer.log",
    message:
        "Train the BPE tokenizer on the train documents"
    shell:
        "iterlens tokenizer --cfg {params.cfg} --train {input.train} --out {output} > {log} 2>&1"


rule tokenize:
    input:
        tokenizer=A.TOKENIZER_DIR,
        splits=expand(A.CORPUS, split=SPLITS),
    output:
        expand(A.TOKENS, split=SPLITS),
    threads: 1
    priority: LM_PATH
    resources:
        mem_mb=2000,
    log:
        "logs/tokenize.log",
    message:
        "Tokenize the train, lensfit and eval documents"
    shell:
        "iterlens tokenize --tokenizer {input.tokenizer} --split {input.splits} "
        "--out {output} > {log} 2>&1"
