"""Commands that assemble summary tables and draw figures from tables."""

from __future__ import annotations

from pathlib import Path

from iterlens.cli import arg, command, load_cfg
from iterlens.models.studied import DOMAINS, LM_DOMAIN


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
    "the headline numbers of every model with intervals, and the contrasts between models",
    arg("--metrics", nargs="+", required=True),
    arg("--examples", nargs="+", required=True, help="each model's per-example values"),
    arg("--out", required=True),
    arg("--contrasts-out", help="the contrasts between models (--pairs)"),
    arg(
        "--pairs",
        nargs="*",
        default=[],
        help="contrasts A:B:paired or A:B:unpaired (A minus B; paired: the same examples)",
    ),
)
def headline(args):
    from iterlens.io import write_table
    from iterlens.report.tables import contrast_table, headline_table

    write_table(headline_table(args.metrics, args.examples), args.out)
    if args.contrasts_out:
        pairs = []
        for pair in args.pairs:
            a, b, how = pair.split(":")
            if how not in ("paired", "unpaired"):
                raise ValueError(f"contrast {pair!r}: say 'paired' or 'unpaired', not {how!r}")
            pairs.append((a, b, how == "paired"))
        write_table(contrast_table(args.examples, pairs), args.contrasts_out)


@command(
    "seeds",
    "mean and spread over seed replicates of per-model summary tables",
    arg("--tables", nargs="+", required=True, help="tables with a model column (headline, ...)"),
    arg("--out", required=True),
)
def seeds(args):
    from iterlens.io import write_table
    from iterlens.report.tables import seeds_table

    write_table(seeds_table(args.tables), args.out)


@command(
    "comparison",
    "the table behind the main figures: every model on relative depth and distance",
    arg("--metrics", nargs="+", required=True),
    arg("--examples", nargs="+", required=True, help="each model's per-example values"),
    arg("--out", required=True),
)
def comparison(args):
    from iterlens.io import write_table
    from iterlens.report.tables import comparison_table

    write_table(comparison_table(args.metrics, args.examples), args.out)


@command(
    "lm-summary",
    "held-out loss of the LMs against each one's unigram baseline",
    arg("--groups", nargs="+", required=True, help="the studied LMs, one per tokenizer"),
    arg("--train-tokens", nargs="+", required=True, help="each group's train tokens"),
    arg("--eval-store", nargs="+", required=True, help="each group's eval store"),
    arg("--vocab-of", nargs="+", required=True, help="each group's readout (its vocabulary)"),
    arg("--names", nargs="+", required=True),
    arg("--metrics", nargs="+", required=True),
    arg("--out", required=True),
)
def lm_summary(args):
    from iterlens.io import write_table
    from iterlens.report.tables import lm_summary as summary

    columns = (args.train_tokens, args.eval_store, args.vocab_of)
    groups = dict(zip(args.groups, zip(*columns, strict=True), strict=True))
    write_table(summary(groups, dict(zip(args.names, args.metrics, strict=True))), args.out)


@command(
    "plot",
    "draw figures from their tables",
    arg("--figure", help="one figure's name (with --inputs)"),
    arg("--inputs", nargs="+", help="the tables the figure is drawn from"),
    arg(
        "--family",
        help="draw every figure of a studied model (with --models: it and its untrained twin) "
        "from --tables into the --out folder",
    ),
    arg("--models", nargs="+", help="the family's models, drawn on the same axes"),
    arg("--domain", choices=DOMAINS, default=LM_DOMAIN, help="the family's domain"),
    arg("--tables", default="results/tables"),
    arg("--out", required=True),
)
def plot(args):
    from iterlens.report import figures

    if args.family:
        figures.draw_family(
            args.family, args.models or [args.family], args.domain, args.tables, args.out
        )
    else:
        figures.draw(args.figure, args.inputs, args.out)
