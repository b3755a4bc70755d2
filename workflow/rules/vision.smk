# The vision control: an Inception-style CNN, plain and with identity skips, and both at
# their initial weights. After extraction they are probed models like the LM, so the
# generic lens, evaluation and transfer rules in lenses.smk serve them unchanged.


rule train_cnn:
    output:
        model=directory("results/models/{cnn}"),
        curve="results/tables/{cnn}/training.csv",
    wildcard_constraints:
        cnn="cnn_plain|cnn_residual",
    params:
        cfg=cfg("vision"),
    threads: 8
    log:
        "logs/train_{cnn}.log",
    message:
        "Train the {wildcards.cnn} network on the vision train split"
    shell:
        "iterlens train-cnn --cfg {params.cfg} --threads {threads} --net {wildcards.cnn} "
        "--out {output.model} --curve {output.curve} > {log} 2>&1"


rule init_cnn:
    output:
        directory("results/models/{cnn}_random"),
    wildcard_constraints:
        cnn="cnn_plain|cnn_residual",
    params:
        cfg=cfg("vision"),
    log:
        "logs/init_{cnn}.log",
    message:
        "Save {wildcards.cnn} at its initial weights (control)"
    shell:
        "iterlens train-cnn --cfg {params.cfg} --net {wildcards.cnn} --untrained "
        "--out {output} > {log} 2>&1"


rule extract_cnn:
    input:
        "results/models/{pm}",
    output:
        readout="results/probed/{pm}/readout.safetensors",
        lensfit="results/probed/{pm}/acts/lensfit/manifest.json",
        eval="results/probed/{pm}/acts/eval/manifest.json",
    wildcard_constraints:
        pm="cnn_plain|cnn_residual|cnn_plain_random|cnn_residual_random",
    params:
        cfg=cfg("vision"),
    threads: 1
    log:
        "logs/extract/{pm}.log",
    message:
        "Extract the pooled block outputs of {wildcards.pm}"
    shell:
        "iterlens extract-cnn --cfg {params.cfg} --threads {threads} --model {input} "
        "--readout {output.readout} --out results/probed/{wildcards.pm}/acts > {log} 2>&1"


rule vision_summary:
    input:
        expand("results/tables/{pm}/training.csv", pm=CNN_TRAINED),
    output:
        "results/tables/vision_summary.csv",
    params:
        cfg=cfg("vision"),
    log:
        "logs/vision_summary.log",
    message:
        "Test accuracy of the CNN twins"
    shell:
        "iterlens vision-summary --cfg {params.cfg} --models "
        + " ".join(f"results/models/{pm}" for pm in CNN_TRAINED)
        + " --out {output} > {log} 2>&1"


rule comparison:
    input:
        metrics=expand("results/tables/{pm}/lens_metrics.csv", pm=COMPARED),
        transfer=expand("results/tables/{pm}/transfer.csv", pm=COMPARED),
    output:
        "results/tables/comparison.csv",
    log:
        "logs/comparison.log",
    message:
        "Table behind the comparison figure: LM vs plain vs residual CNN"
    shell:
        "iterlens comparison --metrics {input.metrics} --transfer {input.transfer} "
        "--out {output} > {log} 2>&1"


rule figure_comparison:
    input:
        "results/tables/comparison.csv",
    output:
        report("results/figures/comparison.png", caption="../report/comparison.rst",
               category="Comparison"),
    log:
        "logs/figures/comparison.log",
    message:
        "Figure: LM vs plain CNN vs residual CNN on relative depth"
    shell:
        "iterlens plot --figure comparison --inputs {input} --out {output} > {log} 2>&1"
