# Vocabulary-space analysis: token evolution, heads and FFN neurons read as words, one HTML
# page a prompt, for every studied LM, its seed replicates and its untrained twin; and the
# interactive lens page of each prompt (iterlens explore) beside it.
from iterlens.vocab.analysis import TABLES as VOCAB_TABLES

VOCAB_TABLE_FILES = [f"{A.VOCAB_DIR}/{A.VOCAB_TABLE.format(table=t)}" for t in VOCAB_TABLES]
VOCAB_PAGES = [f"{A.VOCAB_DIR}/{A.VOCAB_PAGE.format(prompt=i)}"
               for i in range(len(config["vocab"]["prompts"]))]
EXPLORE_PAGES = expand(f"{A.VOCAB_DIR}/{A.EXPLORE_PAGE}", model=LM_MODELS,
                       prompt=range(len(config["vocab"]["prompts"])))


rule vocab:
    input:
        model=A.MODEL_DIR,
        lens=A.LENS_DIR.format(model="{model}", kind="tuned"),
    output:
        tables=VOCAB_TABLE_FILES,
        pages=VOCAB_PAGES,
        meta=f"{A.VOCAB_DIR}/{A.VOCAB_META}",
    wildcard_constraints:
        model=one_of(LM_MODELS),
    params:
        cfg=cfg("vocab"),
        out=folder_of("output", "meta"),
    threads: 2
    resources:
        mem_mb=2000,
    log:
        "logs/vocab/{model}.log",
    message:
        "Vocabulary-space analysis of {wildcards.model} on the configured prompts"
    shell:
        "iterlens vocab --cfg {params.cfg} --threads {threads} --model {input.model} "
        "--lens {input.lens} --name {wildcards.model} --out {params.out} > {log} 2>&1"


rule explore:
    input:
        model=A.MODEL_DIR,
        tuned=A.LENS_DIR.format(model="{model}", kind="tuned"),
        shared=A.LENS_DIR.format(model="{model}", kind="shared"),
    output:
        page=f"{A.VOCAB_DIR}/{A.EXPLORE_PAGE}",
        cells=f"{A.VOCAB_DIR}/{A.EXPLORE_CELLS}",
        tokens=f"{A.VOCAB_DIR}/{A.EXPLORE_TOKENS}",
    wildcard_constraints:
        model=one_of(LM_MODELS),
        prompt=r"\d+",
    params:
        cfg=cfg("vocab"),
        prompt=vocab_prompt,
    threads: 2
    resources:
        mem_mb=7000,  # measured peaks (benchmarks/results/explore*.txt): 2.1 GB, 6.3 GB
    log:
        "logs/vocab/{model}_explore_{prompt}.log",
    message:
        "Interactive lens page of {wildcards.model} on vocabulary prompt {wildcards.prompt}"
    shell:
        "iterlens explore --cfg {params.cfg} --threads {threads} --device cpu "
        "--model {input.model} --lens {input.tuned} --lens {input.shared} "
        "--name {wildcards.model} --prompt {params.prompt} --out {output.page} > {log} 2>&1"


rule vocab_index:
    input:
        meta=expand(f"{A.VOCAB_DIR}/{A.VOCAB_META}", model=LM_MODELS),
        explore=EXPLORE_PAGES,
    output:
        A.VOCAB_INDEX,
    params:
        models=expand(A.VOCAB_DIR, model=LM_MODELS),
    resources:
        mem_mb=500,
    log:
        "logs/vocab/index.log",
    message:
        "Landing page of the vocabulary-space pages"
    shell:
        "iterlens vocab-index --models {params.models} --out {output} > {log} 2>&1"


if config["vocab"]["enabled"]:
    TARGETS += [A.VOCAB_INDEX]
