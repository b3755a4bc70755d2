# Generic over every probed model {pm}: LMs and (later) CNNs share these rules.


rule fit_lens:
    input:
        store="results/probed/{pm}/acts/lensfit/manifest.json",
        readout="results/probed/{pm}/readout.safetensors",
    output:
        lens=directory("results/probed/{pm}/lenses/{kind}"),
        curve="results/tables/{pm}/fit_{kind}.csv",
    params:
        cfg=cfg("lens", "probe"),
    threads: 1
    log:
        "logs/fit/{pm}_{kind}.log",
    message:
        "Fit the {wildcards.kind} lens of {wildcards.pm}"
    shell:
        "iterlens fit-lens --cfg {params.cfg} --threads {threads} --kind {wildcards.kind} "
        "--store results/probed/{wildcards.pm}/acts/lensfit --readout {input.readout} "
        "--out {output.lens} --curve {output.curve} > {log} 2>&1"


rule evaluate:
    input:
        store="results/probed/{pm}/acts/eval/manifest.json",
        readout="results/probed/{pm}/readout.safetensors",
        lenses=lens_dirs,
    output:
        metrics="results/tables/{pm}/lens_metrics.csv",
        depth="results/tables/{pm}/prediction_depth.csv",
    threads: 1
    log:
        "logs/evaluate/{pm}.log",
    message:
        "Evaluate every lens of {wildcards.pm} at every layer on held-out data"
    shell:
        "iterlens evaluate --threads {threads} --store results/probed/{wildcards.pm}/acts/eval "
        "--readout {input.readout} --lens {input.lenses} --out {output.metrics} "
        "--depth-out {output.depth} > {log} 2>&1"


rule transfer:
    input:
        store="results/probed/{pm}/acts/eval/manifest.json",
        readout="results/probed/{pm}/readout.safetensors",
        lens="results/probed/{pm}/lenses/tuned",
    output:
        "results/tables/{pm}/transfer.csv",
    threads: 1
    log:
        "logs/transfer/{pm}.log",
    message:
        "Transfer penalties of {wildcards.pm}: lens of layer i on layer j"
    shell:
        "iterlens transfer --threads {threads} --store results/probed/{wildcards.pm}/acts/eval "
        "--readout {input.readout} --lens {input.lens} --out {output} > {log} 2>&1"


rule lm_summary:
    input:
        train="results/tokens/train.npy",
        store="results/probed/lm/acts/eval/manifest.json",
        readout="results/probed/lm/readout.safetensors",
        metrics=expand("results/tables/{pm}/lens_metrics.csv", pm=LM_MODELS),
    output:
        "results/tables/lm_summary.csv",
    log:
        "logs/lm_summary.log",
    message:
        "Held-out loss of the LMs against the unigram baseline"
    shell:
        "iterlens lm-summary --train-tokens {input.train} --eval-store results/probed/lm/acts/eval "
        "--vocab-of {input.readout} --names {LM_MODELS} --metrics {input.metrics} "
        "--out {output} > {log} 2>&1"
