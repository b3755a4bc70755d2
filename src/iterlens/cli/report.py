"""Commands that assemble summary tables and draw figures from tables."""

from __future__ import annotations

from pathlib import Path

from iterlens.cli import arg, command, load_cfg


@command(
    "vision-summary",
    "test (eval split) accuracy and size of the trained CNNs",
    arg("--models", nargs="+", required=True, help="CNN model folders"),
    arg("--out", required=True),
)
def vision_summary(args):
    import pandas as pd

    from iterlens.data.images import image_splits
    from iterlens.io import write_table
    from iterlens.models.cnn import accuracy, load_cnn, n_parameters

    splits = image_splits(load_cfg(args))
    rows = []
    for folder in args.models:
        model = load_cnn(folder)
        rows.append(
            {
                "model": Path(folder).name,
                "n_params": n_parameters(model),
                "eval_acc": accuracy(model, *splits["eval"]),
                "train_acc": accuracy(model, *splits["train"]),
            }
        )
    write_table(pd.DataFrame(rows), args.out)


@command(
    "headline",
    "the headline numbers of every model (quoted in the README)",
    arg("--metrics", nargs="+", required=True),
    arg("--transfer", nargs="+", required=True),
    arg("--out", required=True),
)
def headline(args):
    from iterlens.io import write_table
    from iterlens.report.tables import headline_table

    write_table(headline_table(args.metrics, args.transfer), args.out)


@command(
    "comparison",
    "the table behind the LM vs CNN comparison figure",
    arg("--metrics", nargs="+", required=True),
    arg("--transfer", nargs="+", required=True),
    arg("--out", required=True),
)
def comparison(args):
    from iterlens.io import write_table
    from iterlens.report.tables import comparison_table

    write_table(comparison_table(args.metrics, args.transfer), args.out)


@command(
    "lm-summary",
    "held-out loss of the LMs against the unigram baseline",
    arg("--train-tokens", required=True),
    arg("--eval-store", required=True),
    arg("--vocab-of", required=True, help="a readout whose width is the vocabulary"),
    arg("--names", nargs="+", required=True),
    arg("--metrics", nargs="+", required=True),
    arg("--out", required=True),
)
def lm_summary(args):
    from iterlens.io import write_table
    from iterlens.report.tables import lm_summary as summary

    write_table(
        summary(
            args.train_tokens,
            args.eval_store,
            args.vocab_of,
            dict(zip(args.names, args.metrics, strict=True)),
        ),
        args.out,
    )


@command(
    "plot",
    "draw figures from their tables",
    arg("--figure", help="one figure's name (with --inputs)"),
    arg("--inputs", nargs="+", help="the tables the figure is drawn from"),
    arg(
        "--family",
        help="draw every figure of a model family and its untrained twin "
        "from --tables into the --out folder",
    ),
    arg("--tables", default="results/tables"),
    arg("--out", required=True),
)
def plot(args):
    from iterlens.report import figures

    if args.family:
        figures.draw_family(args.family, args.tables, args.out)
    else:
        figures.draw(args.figure, args.inputs, args.out)
