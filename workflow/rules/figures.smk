# Figures, each drawn from the tables a rule wrote: one job per model family (the trained
# model and its untrained twin on the same axes), plus the training curve and the comparison.
# The list of figures is iterlens.report.figures.FAMILY_FIGURES.


rule figure_lm_training:
    input:
        A.TRAINING_CURVE.format(model="lm"),
    output:
        report(A.FIGURE.format(name="lm_training"), caption="../report/lm_training.rst",
               category="LM"),
    threads: 1
    resources:
        mem_mb=1000,
    log:
        "logs/figures/lm_training.log",
    message:
        "Figure: reference LM loss curves"
    shell:
        "iterlens plot --figure lm_training --inputs {input} --out {output} > {log} 2>&1"


rule figures_family:
    input:
        metrics=expand(A.LENS_METRICS, model=["{family}", "{family}_random"]),
        depth=expand(A.PREDICTION_DEPTH, model=["{family}", "{family}_random"]),
        transfer=expand(A.TRANSFER, model=["{family}", "{family}_random"]),
    output:
        figures=[report(A.FIGURE.format(name=f"{{family}}_{f}"), caption=f"../report/{f}.rst",
                        category="{family}") for f in family_figures("lm")],
    wildcard_constraints:
        family="lm",
    params:
        tables=folder_of("input", "metrics", up=2),
        out=folder_of("output", "figures"),
    threads: 1
    resources:
        mem_mb=1000,
    log:
        "logs/figures/{family}.log",
    message:
        "Figures of {wildcards.family} (trained vs initial weights)"
    shell:
        "iterlens plot --family {wildcards.family} --tables {params.tables} "
        "--out {params.out} > {log} 2>&1"


use rule figures_family as figures_family_cnn with:
    output:
        figures=[report(A.FIGURE.format(name=f"{{family}}_{f}"), caption=f"../report/{f}.rst",
                        category="{family}") for f in family_figures("cnn")],
    wildcard_constraints:
        family=one_of(CNN_TRAINED),


rule figure_fit:
    input:
        fit_curves,
    output:
        report(A.FIGURE.format(name="{family}_fit"), caption="../report/fit.rst",
               category="{family}"),
    wildcard_constraints:
        family=one_of(FAMILIES),
    resources:
        mem_mb=1000,
    log:
        "logs/figures/{family}_fit.log",
    message:
        "Figure: convergence of the lenses of {wildcards.family} (train and held-out loss)"
    shell:
        "iterlens plot --figure fit --inputs {input} --out {output} > {log} 2>&1"


rule figure_comparison:
    input:
        A.COMPARISON,
    output:
        report(A.FIGURE.format(name="comparison"), caption="../report/comparison.rst",
               category="Comparison"),
    threads: 1
    resources:
        mem_mb=1000,
    log:
        "logs/figures/comparison.log",
    message:
        "Figure: LM vs plain CNN vs residual CNN on relative depth"
    shell:
        "iterlens plot --figure comparison --inputs {input} --out {output} > {log} 2>&1"


if config["lm"]["model"] == "reference":
    TARGETS += [A.FIGURE.format(name="lm_training")]
TARGETS += expand(A.FIGURE, name=[f"{family}_{f}" for family in FAMILIES
                                   for f in family_figures(family)])
TARGETS += expand(A.FIGURE, name=[f"{family}_fit" for family in FAMILIES])
if VISION:
    TARGETS += [A.FIGURE.format(name="comparison")]
