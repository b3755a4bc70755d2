# Vocabulary-space analysis: token evolution, heads and FFN neurons read as words, one HTML
# page a prompt, for the reference LM and its untrained twin.
from iterlens.vocab.analysis import TABLES as VOCAB_TABLES

VOCAB_PROMPTS = range(len(config["vocab"]["prompts"]))


rule vocab:
    input:
        model=lm_dir,
        lens="results/probed/{lm}/lenses/tuned",
    output:
        tables=expand("results/vocab/{{lm}}/{table}.parquet", table=VOCAB_TABLES),
        pages=expand("results/vocab/{{lm}}/prompt-{i}.html", i=VOCAB_PROMPTS),
        meta="results/vocab/{lm}/meta.json",
    params:
        cfg=cfg("vocab"),
        out=subpath(output.meta, parent=True),
    threads: 2
    resources:
        mem_mb=2000,
    log:
        "logs/vocab/{lm}.log",
    message:
        "Vocabulary-space analysis of {wildcards.lm} on the configured prompts"
    shell:
        "iterlens vocab --cfg {params.cfg} --threads {threads} --model {input.model} "
        "--lens {input.lens} --name {wildcards.lm} --out {params.out} > {log} 2>&1"


rule vocab_index:
    input:
        expand("results/vocab/{lm}/meta.json", lm=LM_MODELS),
    output:
        "results/vocab/index.html",
    params:
        models=expand("results/vocab/{lm}", lm=LM_MODELS),
    resources:
        mem_mb=500,
    log:
        "logs/vocab/index.log",
    message:
        "Landing page of the vocabulary-space pages"
    shell:
        "iterlens vocab-index --models {params.models} --out {output} > {log} 2>&1"
