# One rule per figure kind; each figure is drawn from the tables named as its inputs.


rule figure_lm_training:
    input:
        "results/tables/lm/training.csv",
    output:
        report("results/figures/lm_training.png", caption="../report/lm_training.rst",
               category="LM"),
    log:
        "logs/figures/lm_training.log",
    message:
        "Figure: reference LM loss curves"
    shell:
        "iterlens plot --figure lm_training --inputs {input} --out {output} > {log} 2>&1"


rule figure_lm:
    input:
        lm_figure_tables,
    output:
        report("results/figures/lm_{figure}.png", caption="../report/lm_{figure}.rst",
               category="LM"),
    wildcard_constraints:
        figure="lens_curves|shared_lens|prediction_depth|ranks|transfer",
    log:
        "logs/figures/lm_{figure}.log",
    message:
        "Figure: {wildcards.figure} (trained vs untrained LM)"
    shell:
        "iterlens plot --figure {wildcards.figure} --inputs {input} --out {output} > {log} 2>&1"
