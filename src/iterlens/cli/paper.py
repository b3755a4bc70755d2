"""Commands that write the paper and the README's results block from the run's tables."""

from __future__ import annotations

from iterlens import artifacts as A
from iterlens.cli import arg, command, load_cfg, log


@command(
    "paper-values",
    "the named values of the paper and README, read from the tables",
    arg("--workdir", default=".", help="the run's directory (holding results/)"),
    arg("--figures", nargs="*", default=[], help="figure files the paper shows"),
    arg("--captions", default="workflow/report", help="folder of <figure>.rst captions"),
    arg("--out", default=A.PAPER_VALUES),
)
def paper_values(args):
    from iterlens.io import write_json
    from iterlens.report.paper_values import collect

    write_json(collect(args.workdir, args.figures, args.captions, load_cfg(args)), args.out)


@command(
    "paper",
    "render the paper to PDF and self-contained HTML (offline, typst)",
    arg("--source", default="paper", help="folder of the manuscript (paper.typ)"),
    arg("--values", default=A.PAPER_VALUES),
    arg("--workdir", default=".", help="the run's directory (figure paths are relative to it)"),
    arg("--citation", default="CITATION.cff"),
    arg("--pdf", default=A.PAPER_PDF),
    arg("--html", default=A.PAPER_HTML),
)
def paper(args):
    from iterlens.report.paper import render

    render(args.source, args.values, args.workdir, args.citation, args.pdf, args.html)


@command(
    "readme-results",
    "rewrite the README's results block from the paper's values",
    arg("--values", default=A.PAPER_VALUES),
    arg("--readme", default="README.md"),
    arg("--workdir", default=".", help="the run's folder (holding results/)"),
    arg("--check", action="store_true", help="only compare; exit 1 if out of sync"),
)
def readme_results(args):
    from iterlens.io import read_json
    from iterlens.report.readme import update_readme

    in_sync = update_readme(args.readme, read_json(args.values), args.workdir, args.check)
    if args.check and not in_sync:
        raise ValueError(
            f"{args.readme}: results block or its figure out of sync with {args.values}; run "
            f"iterlens readme-results --values {args.values}"
        )
    log.info("%s: results block %s", args.readme, "in sync" if in_sync else "rewritten")
