"""Commands of the vocabulary-space analysis: a model's pages, their index, a prompt's lens page."""

from __future__ import annotations

from iterlens.cli import arg, command, device_of, load_cfg, log


@command(
    "vocab",
    "vocabulary-space analysis of a model on prompts: Parquet tables + HTML pages",
    arg("--model", required=True, help="model folder or Hub name"),
    arg("--prompt", action="append", help="a prompt (repeat for more; default: vocab.prompts)"),
    arg("--lens", action="append", default=[], help="a saved lens folder (repeatable)"),
    arg("--name", help="model label on the pages (default: --model)"),
    arg("--top-k", type=int, help="words per list (default: vocab.top_k)"),
    arg("--bias-threshold", type=float, help="high-bias z-score (default: vocab.bias_threshold)"),
    arg("--out", required=True, help="folder for the tables and pages"),
)
def vocab(args):
    from iterlens.vocab.analysis import VocabSettings
    from iterlens.vocab.pipeline import run_vocab

    section = dict(load_cfg(args)["vocab"])
    for key in ("top_k", "bias_threshold"):
        if getattr(args, key) is not None:
            section[key] = getattr(args, key)
    prompts = args.prompt or section["prompts"]
    settings = VocabSettings.from_config(section)
    meta = run_vocab(args.model, prompts, args.out, settings, args.lens, label=args.name,
                     progress=not args.quiet)  # fmt: skip
    log.info("%s: %d pages in %s", meta["model"], len(meta["pages"]), args.out)


@command(
    "vocab-index",
    "the landing page linking the vocabulary pages of several models",
    arg("--models", nargs="+", required=True, help="folders written by `iterlens vocab`"),
    arg("--out", required=True, help="the index.html to write"),
)
def vocab_index(args):
    from iterlens.vocab.pipeline import write_index

    write_index(args.models, args.out)


@command(
    "explore",
    "interactive lens page of one prompt: layers x positions under each lens (HTML + Parquet)",
    arg(
        "--model",
        required=True,
        help="a studied model's name (its folder and lenses in --workdir's run), a model folder "
        "or a Hub name",
    ),
    arg(
        "--lens",
        action="append",
        default=[],
        help="a tuned or shared lens folder, or a run's folder of lenses (repeatable; the logit "
        "lens is implied; default for a studied model: its own)",
    ),
    arg("--prompt", required=True, help="the text to read"),
    arg("--name", help="model label on the page (default: --model)"),
    arg("--top-k", type=int, help="tokens listed per cell (default: vocab.top_k)"),
    arg("--workdir", default=".", help="the run's directory (holding results/)"),
    arg("--out", required=True, help="the page (.html); its two tables are written beside it"),
)
def explore(args):
    from iterlens.vocab.explore_run import run_explore

    config = load_cfg(args)
    top_k = args.top_k if args.top_k is not None else config["vocab"]["top_k"]
    run_explore(args.model, args.prompt, args.out, args.lens, label=args.name, top_k=top_k,
                device=device_of(args), config=config, workdir=args.workdir)  # fmt: skip
