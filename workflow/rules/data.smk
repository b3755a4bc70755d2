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
        model=converted_model,
    output:
        directory(A.TOKENIZER_DIR),
    wildcard_constraints:
        tokenizer=one_of(TOKENIZERS),
    params:
        cfg=cfg("tokenizer"),
        source=tokenizer_flags,
    threads: 1
    priority: LM_PATH
    resources:
        mem_mb=2000,
    log:
        "logs/tokenizer_{tokenizer}.log",
    message:
        "Tokenizer of {wildcards.tokenizer}: a BPE trained on the train documents, or its own"
    shell:
        "iterlens tokenizer --cfg {params.cfg} {params.source} --train {input.train} "
        "--out {output} > {log} 2>&1"


rule tokenize:
    input:
        tokenizer=A.TOKENIZER_DIR,
        splits=expand(A.CORPUS, split=SPLITS),
    output:
        expand(A.TOKENS, tokenizer="{tokenizer}", split=SPLITS),
    wildcard_constraints:
        tokenizer=one_of(TOKENIZERS),
    threads: 1
    priority: LM_PATH
    resources:
        mem_mb=2000,
    log:
        "logs/tokenize_{tokenizer}.log",
    message:
        "Tokenize the train, lensfit and eval documents with the tokenizer of {wildcards.tokenizer}"
    shell:
        "iterlens tokenize --tokenizer {input.tokenizer} --split {input.splits} "
        "--out {output} > {log} 2>&1"
