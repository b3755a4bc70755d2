# Figures, each drawn from the tables a rule wrote: one job per studied model (the trained
# model and, where it has one, its untrained twin on the same axes), plus the training curves
# of the reference LMs and the paper's main figures (every studied model at once).
# The list of figures is iterlens.report.figures.FAMILY_FIGURES.


REFERENCE_FAMILIES = [m.name for m in LM_ENTRIES if m.source == "reference"]


rule figure_lm_training:
    input:
        A.TRAINING_CURVE.format(model="{family}"),
    output:
        report(A.FIGURE.format(name="{family}_training"), caption="../report/training.rst",
               category="{family}"),
    wildcard_constraints:
        family=one_of(REFERENCE_FAMILIES),
    threads: 1
    resources:
        mem_mb=1000,
    log:
        "logs/figures/{family}_training.log",
    message:
        "Figure: loss curves of the reference LM {wildcards.family}"
    shell:
        "iterlens plot --figure lm_training --inputs {input} --out {output} > {log} 2>&1"


rule figures_family:
    input:
        metrics=family_tables(A.LENS_METRICS),
        depth=family_tables(A.PREDICTION_DEPTH),
        transfer=family_tables(A.TRANSFER),
    output:
        figures=[report(A.FIGURE.format(name=f"{{family}}_{f}"), caption=f"../report/{f}.rst",
                        category="{family}") for f in family_figures("lm")],
    wildcard_constraints:
        family=one_of(LM_FAMILIES),
    params:
        models=family_models,
        domain="lm",
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
        "iterlens plot --family {wildcards.family} --models {params.models} "
        "--domain {params.domain} --tables {params.tables} --out {params.out} > {log} 2>&1"


use rule figures_family as figures_family_cnn with:
    output:
        figures=[report(A.FIGURE.format(name=f"{{family}}_{f}"), caption=f"../report/{f}.rst",
                        category="{family}") for f in family_figures("vision")],
    params:
        models=family_models,
        domain="vision",
        tables=folder_of("input", "metrics", up=2),
        out=folder_of("output", "figures"),
    wildcard_constraints:
        family=one_of(CNN_FAMILIES),


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


# The paper's main figures (iterlens.report.figures.PAPER_FIGURES, the one list): each one step
# of the argument across every studied model, drawn at the width of the paper's text block.
rule figure_paper_lenses:
    input:
        A.COMPARISON,
    output:
        report(A.FIGURE.format(name="paper_lenses"), caption="../report/paper_lenses.rst",
               category="Paper"),
    threads: 1
    resources:
        mem_mb=1000,
    log:
        "logs/figures/paper_lenses.log",
    message:
        "Paper figure: the logit and tuned lens of every studied model on relative depth"
    shell:
        "iterlens plot --figure paper_lenses --inputs {input} --out {output} > {log} 2>&1"


rule figure_paper_shared:
    input:
        A.COMPARISON,
    output:
        report(A.FIGURE.format(name="paper_shared"), caption="../report/paper_shared.rst",
               category="Paper"),
    threads: 1
    resources:
        mem_mb=1000,
    log:
        "logs/figures/paper_shared.log",
    message:
        "Paper figure: the shared lens against the logit and tuned lens, per model"
    shell:
        "iterlens plot --figure paper_shared --inputs {input} --out {output} > {log} 2>&1"


rule figure_paper_transfer:
    input:
        expand(A.TRANSFER, model=FAMILIES),
    output:
        report(A.FIGURE.format(name="paper_transfer"), caption="../report/paper_transfer.rst",
               category="Paper"),
    threads: 1
    resources:
        mem_mb=1000,
    log:
        "logs/figures/paper_transfer.log",
    message:
        "Paper figure: the transfer matrices of every studied model on one bounded scale"
    shell:
        "iterlens plot --figure paper_transfer --inputs {input} --out {output} > {log} 2>&1"


rule figure_paper_dose:
    input:
        A.DOSE_RESPONSE,
    output:
        report(A.FIGURE.format(name="paper_dose"), caption="../report/paper_dose.rst",
               category="Paper"),
    threads: 1
    resources:
        mem_mb=1000,
    log:
        "logs/figures/paper_dose.log",
    message:
        "Paper figure: the dose response of the shared lens and transfer"
    shell:
        "iterlens plot --figure paper_dose --inputs {input} --out {output} > {log} 2>&1"


rule figure_paper_controls:
    input:
        A.COMPARISON,
        [A.ROTATED_CONTROL] if STUDY.rotated else [],
        A.HEADLINE,
        A.SEEDS,
    output:
        report(A.FIGURE.format(name="paper_controls"), caption="../report/paper_controls.rst",
               category="Paper"),
    threads: 1
    resources:
        mem_mb=1000,
    log:
        "logs/figures/paper_controls.log",
    message:
        "Paper figure: the controls (initial weights, rotated twins, seeds)"
    shell:
        "iterlens plot --figure paper_controls --inputs {input} --out {output} > {log} 2>&1"


TARGETS += expand(A.FIGURE, name=[f for f in PAPER_FIGURES
                                   if f != "paper_dose" or STUDY.partial_twins])
TARGETS += expand(A.FIGURE, name=[f"{family}_training" for family in REFERENCE_FAMILIES])
TARGETS += expand(A.FIGURE, name=[f"{m.name}_{f}" for m in STUDY.models
                                   for f in family_figures(m.domain)])
TARGETS += expand(A.FIGURE, name=[f"{family}_fit" for family in FAMILIES])
