# Generic over every probed model {pm}: the LMs and the CNNs share these rules.


rule fit_lenses:
    input:
        store="results/probed/{pm}/acts/lensfit/manifest.json",
        readout="results/probed/{pm}/readout.safetensors",
    output:
        lenses=directory(expand("results/probed/{{pm}}/lenses/{kind}", kind=LENS_KINDS)),
        curves=expand("results/tables/{{pm}}/fit_{kind}.csv", kind=LENS_KINDS),
    params:
        cfg=cfg("lens", "probe"),
        kinds=LENS_KINDS,
    threads: 1
    log:
        "logs/fit/{pm}.log",
    message:
        "Fit the tuned lens, shared lens and free probes of {wildcards.pm}"
    shell:
        "iterlens fit-lenses --cfg {params.cfg} --threads {threads} --kinds {params.kinds} "
        "--store results/probed/{wildcards.pm}/acts/lensfit --readout {input.readout} "
        "--out results/probed/{wildcards.pm}/lenses --curves results/tables/{wildcards.pm} "
        "> {log} 2>&1"


rule evaluate:
    input:
        store="results/probed/{pm}/acts/eval/manifest.json",
        readout="results/probed/{pm}/readout.safetensors",
        lenses=lens_dirs,
    output:
        metrics="results/tables/{pm}/lens_metrics.csv",
        depth="results/tables/{pm}/prediction_depth.csv",
        transfer="results/tables/{pm}/transfer.csv",
    threads: 1
    log:
        "logs/evaluate/{pm}.log",
    message:
        "Evaluate every lens of {wildcards.pm} on held-out data; transfer penalties"
    shell:
        "iterlens evaluate --threads {threads} --store results/probed/{wildcards.pm}/acts/eval "
        "--readout {input.readout} --lens {input.lenses} --out {output.metrics} "
        "--depth-out {output.depth} --transfer-out {output.transfer} > {log} 2>&1"


rule lm_summary:
    input:
        train="results/tokens/train.npy",
        store="results/probed/lm/acts/eval/manifest.json",
        readout="results/probed/lm/readout.safetensors",
        metrics=expand("results/tables/{pm}/lens_metrics.csv", pm=LM_MODELS),
    output:
        "results/tables/lm_summary.csv",
    params:
        names=LM_MODELS,
    log:
        "logs/lm_summary.log",
    message:
        "Held-out loss of the LMs against the unigram baseline"
    shell:
        "iterlens lm-summary --train-tokens {input.train} --eval-store results/probed/lm/acts/eval "
        "--vocab-of {input.readout} --names {params.names} --metrics {input.metrics} "
        "--out {output} > {log} 2>&1"


rule headline:
    input:
        metrics=expand("results/tables/{pm}/lens_metrics.csv", pm=COMPARED),
        transfer=expand("results/tables/{pm}/transfer.csv", pm=COMPARED),
    output:
        "results/tables/headline.csv",
    log:
        "logs/headline.log",
    message:
        "Headline numbers: transfer penalties, shared-lens penalty, probe plateau"
    shell:
        "iterlens headline --metrics {input.metrics} --transfer {input.transfer} "
        "--out {output} > {log} 2>&1"
