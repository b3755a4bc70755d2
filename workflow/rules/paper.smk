# The paper: named values from the tables, then the manuscript rendered offline (typst).
# Its inputs are every other final target (TARGETS, read when the DAG is built, so stages
# included after this file count too): the paper is the run's last step and shows them all.
# Manuscript, captions and CITATION.cff live beside the Snakefile, not in the work directory.
SOURCE = Path(workflow.basedir)
CAPTIONS = SOURCE / "workflow" / "report"
PAPER = [A.PAPER_VALUES, A.PAPER_PDF, A.PAPER_HTML]


rule paper_values:
    input:
        paper_inputs,
        captions=sorted(str(p) for p in CAPTIONS.glob("*.rst")),
    output:
        A.PAPER_VALUES,
    params:
        cfg=cfg("models", "lm", "extract", "tokenizer", "lens", "probe"),
        figures=paper_figures,
        captions=folder_of("input", "captions"),
    resources:
        mem_mb=1000,
    log:
        "logs/paper/values.log",
    message:
        "Paper: named values from the tables"
    shell:
        "iterlens paper-values --cfg {params.cfg} --figures {params.figures} "
        "--captions {params.captions} --out {output} > {log} 2>&1"


rule paper:
    input:
        values=A.PAPER_VALUES,
        figures=paper_figures,
        source=[str(SOURCE / "paper" / name)
                for name in ("paper.typ", "lib.typ", "refs.bib", "paper.css")],
        citation=str(SOURCE / "CITATION.cff"),
    output:
        pdf=report(A.PAPER_PDF, caption="../report/paper.rst", category="Paper"),
        html=A.PAPER_HTML,
    params:
        source=folder_of("input", "source"),
    resources:
        mem_mb=1000,
    log:
        "logs/paper/render.log",
    message:
        "Paper: render {output.pdf} and {output.html}"
    shell:
        "iterlens paper --source {params.source} --values {input.values} "
        "--citation {input.citation} --pdf {output.pdf} --html {output.html} > {log} 2>&1"


TARGETS += [A.PAPER_PDF, A.PAPER_HTML]
