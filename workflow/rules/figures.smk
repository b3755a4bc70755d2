# Figures are drawn from the tables a rule wrote; one job per model family.
FIGS = ["lens_curves", "shared_lens", "transfer", "prediction_depth"]


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


rule figures_lm:
    input:
        expand("results/tables/{pm}/{table}.csv", pm=LM_MODELS,
               table=["lens_metrics", "prediction_depth", "transfer"]),
    output:
        [report(f"results/figures/lm_{f}.png", caption=f"../report/{f}.rst", category="LM")
         for f in FIGS + ["ranks"]],
    log:
        "logs/figures/lm.log",
    message:
        "Figures of the LM (trained vs initial weights)"
    shell:
        "iterlens plot --family lm --tables results/tables --out results/figures > {log} 2>&1"


rule figures_cnn:
    input:
        expand("results/tables/{{family}}{suffix}/{table}.csv", suffix=["", "_random"],
               table=["lens_metrics", "prediction_depth", "transfer"]),
    output:
        [report(f"results/figures/{{family}}_{f}.png", caption=f"../report/{f}.rst",
                category="CNN") for f in FIGS],
    wildcard_constraints:
        family="cnn_plain|cnn_residual",
    log:
        "logs/figures/{family}.log",
    message:
        "Figures of {wildcards.family} (trained vs initial weights)"
    shell:
        "iterlens plot --family {wildcards.family} --tables results/tables "
        "--out results/figures > {log} 2>&1"
