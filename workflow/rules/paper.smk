# The paper: named values from the tables, then the manuscript rendered offline (typst).
# Its inputs are every other final target, so it is the run's last step and shows them all.
# Manuscript, captions and CITATION.cff live beside the Snakefile, not in the work directory.
SOURCE = Path(workflow.basedir)
CAPTIONS = SOURCE / "workflow" / "report"


def paper_inputs(wildcards):
    return [t for t in final_targets() if not t.startswith("results/paper/")]


def paper_figures(wildcards):
    return [t for t in paper_inputs(wildcards) if t.endswith(".png")]


rule paper_values:
    input:
        paper_inputs,
        captions=sorted(str(p) for p in CAPTIONS.glob("*.rst")),
    output:
        "results/paper/values.json",
    params:
        cfg=cfg("lm", "extract", "tokenizer"),
        figures=paper_figures,
        captions=str(CAPTIONS),
    log:
        "logs/paper/values.log",
    message:
        "Paper: named values from the tables"
    shell:
        "iterlens paper-values --cfg {params.cfg} --results results --figures {params.figures} "
        "--captions {params.captions} --out {output} > {log} 2>&1"


rule paper:
    input:
        values="results/paper/values.json",
        figures=paper_figures,
        source=[str(SOURCE / "paper" / name) for name in ("paper.typ", "lib.typ", "refs.bib", "paper.css")],
        citation=str(SOURCE / "CITATION.cff"),
    output:
        pdf=report("results/paper/paper.pdf", caption="../report/paper.rst", category="Paper"),
        html="results/paper/paper.html",
    params:
        source=str(SOURCE / "paper"),
    log:
        "logs/paper/render.log",
    message:
        "Paper: render results/paper/paper.pdf and paper.html"
    shell:
        "iterlens paper --source {params.source} --values {input.values} --results results "
        "--citation {input.citation} --pdf {output.pdf} --html {output.html} > {log} 2>&1"
