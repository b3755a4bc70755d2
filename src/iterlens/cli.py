"""The ``iterlens`` command line: one subcommand per workflow stage.

Every stage reads its inputs from explicit paths and writes its outputs atomically, so
the Snakemake rules in ``workflow/rules`` stay one line each. Config sections are
passed as JSON (``--cfg``) and validated against the schema.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger("iterlens")
COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], None], str]] = {}


def command(name: str, help_: str):
    """Register a subcommand."""
    def wrap(fn):
        COMMANDS[name] = (fn, help_)
        return fn
    return wrap


def _cfg(args: argparse.Namespace) -> dict:
    from iterlens.config import load_config, validate

    if getattr(args, "config", None):
        return load_config(args.config, json.loads(args.cfg) if args.cfg else None)
    return validate(json.loads(args.cfg) if args.cfg else {})


def _threads(n: int | None) -> None:
    import torch

    if n:
        torch.set_num_threads(n)


# ---------------------------------------------------------------------------- config
@command("check-config", "validate a config file and print it with defaults filled")
def cmd_check_config(args):
    import yaml

    print(yaml.safe_dump(_cfg(args), sort_keys=False))


# ---------------------------------------------------------------------------- text data
@command("corpus", "load the corpus and split it by document into train/lensfit/eval")
def cmd_corpus(args):
    from iterlens.text_data import load_documents, split_documents, write_splits

    cfg = _cfg(args)
    c = cfg["corpus"]
    splits = split_documents(load_documents(c["source"], c["text_column"]), c["lensfit_fraction"],
                             c["eval_fraction"], cfg["seed"], c["max_documents"])
    write_splits(splits, args.out)
    for name, docs in splits.items():
        log.info("%s: %d documents, %d characters", name, len(docs),
                 sum(len(d["text"]) for d in docs))


@command("tokenizer", "train the BPE tokenizer (reference LM) or save the named model's")
def cmd_tokenizer(args):
    from iterlens.text_data import load_tokenizer, read_split, train_tokenizer

    cfg = _cfg(args)
    if cfg["lm"]["model"] == "reference":
        train_tokenizer(read_split(args.train), cfg["tokenizer"]["vocab_size"], args.out)
    else:
        from iterlens.io import atomic_path

        tok = load_tokenizer(cfg["lm"]["model"])
        with atomic_path(args.out) as tmp:
            tok.save_pretrained(str(tmp))


@command("tokenize", "tokenize corpus splits into .npy token streams")
def cmd_tokenize(args):
    from iterlens.text_data import load_tokenizer, read_split, save_tokens, tokenize_texts

    tokenizer = load_tokenizer(args.tokenizer)
    for split, out in zip(args.split, args.out, strict=True):
        ids = tokenize_texts(tokenizer, read_split(split))
        save_tokens(ids, out)
        log.info("%s: %d tokens", split, len(ids))


# ---------------------------------------------------------------------------- LM
@command("train-lm", "train the reference LM (or record the named HF model)")
def cmd_train_lm(args):
    from iterlens.io import atomic_path, write_json, write_table
    from iterlens.lm import init_model, load_causal_lm, reference_config, save_model, train_lm
    from iterlens.text_data import load_tokenizer, load_tokens

    cfg = _cfg(args)
    _threads(args.threads)
    lm = cfg["lm"]
    if lm["model"] != "reference":
        import pandas as pd

        load_causal_lm(lm["model"])  # fail early, with a clear message, if unavailable
        write_table(pd.DataFrame(columns=["step", "tokens", "train_loss_nats", "val_loss_nats"]),
                    args.curve)  # no training: an empty curve
        with atomic_path(args.out) as tmp:
            tmp.mkdir()
            (tmp / "source.json").write_text(json.dumps({"name_or_path": lm["model"]}) + "\n")
        return
    tok = load_tokenizer(args.tokenizer)
    config = reference_config(len(tok), lm["n_layer"], lm["n_embd"], lm["n_head"],
                              lm["seq_len"], tok.eos_token_id)
    model = init_model(config, cfg["seed"])
    curve = train_lm(model, load_tokens(args.train_tokens), load_tokens(args.val_tokens),
                     steps=lm["steps"], batch_size=lm["batch_size"], seq_len=lm["seq_len"],
                     lr=lm["lr"], warmup_steps=lm["warmup_steps"], eval_every=lm["eval_every"],
                     eval_batches=lm["eval_batches"], seed=cfg["seed"],
                     progress=not args.quiet)
    write_table(curve, args.curve)
    tokens = int(curve["tokens"].iloc[-1])
    write_json({"seconds": round(curve.attrs["seconds"], 1), "tokens": tokens,
                "tokens_per_s": round(tokens / curve.attrs["seconds"], 1)},
               Path(args.curve).with_suffix(".timing.json"))
    save_model(model, tok, args.out)


@command("init-lm", "save the same LM architecture at its initial (untrained) weights")
def cmd_init_lm(args):
    from iterlens.lm import init_model, load_model_dir, save_model
    from iterlens.text_data import load_tokenizer

    cfg = _cfg(args)
    trained = load_model_dir(args.trained)
    model = init_model(trained.config, cfg["seed"])
    save_model(model, load_tokenizer(args.tokenizer), args.out)


@command("readout", "save the final readout (norm + unembedding) of a model")
def cmd_readout(args):
    from iterlens.lm import load_model_dir
    from iterlens.readout import readout_from_lm

    readout_from_lm(load_model_dir(args.model)).save(args.out)


@command("extract-shard", "extract one shard of every layer's residual stream")
def cmd_extract_shard(args):
    from iterlens.extract import extract_lm_shard, shard_windows
    from iterlens.lm import load_model_dir
    from iterlens.readout import Readout
    from iterlens.text_data import load_tokenizer, load_tokens

    cfg = _cfg(args)
    _threads(args.threads)
    ex = cfg["extract"]
    tokens = load_tokens(args.tokens)
    n_tokens = ex[f"{args.split}_tokens"]
    starts = shard_windows(tokens, ex["seq_len"], n_tokens, ex["shard_tokens"], args.index)
    extract_lm_shard(load_model_dir(args.model), Readout.load(args.readout),
                     load_tokenizer(args.tokenizer), tokens, starts, ex["seq_len"],
                     ex["batch_size"], args.out, progress=not args.quiet)


@command("finalize-store", "check the shards of a store and write its manifest")
def cmd_finalize_store(args):
    from iterlens.readout import Readout
    from iterlens.store import write_manifest

    readout = Readout.load(args.readout)
    manifest = write_manifest(Path(args.manifest).parent, args.n_shards,
                              {"domain": args.domain, "readout_fingerprint": readout.fingerprint()})
    log.info("store %s: %d examples, L=%d, d=%d", args.manifest, manifest["n_examples"],
             manifest["n_layers"], manifest["d_model"])


# ---------------------------------------------------------------------------- lenses
@command("fit-lenses", "train tuned lens, shared lens and free probe on a lensfit store")
def cmd_fit_lenses(args):
    from iterlens.io import write_table
    from iterlens.lenses import default_layers, fit_lens, make_lens, save_lens
    from iterlens.readout import Readout
    from iterlens.store import ActivationStore

    cfg = _cfg(args)
    _threads(args.threads)
    readout = Readout.load(args.readout)
    store = ActivationStore(args.store)
    for kind in args.kinds:
        lens = make_lens(kind, readout, store.n_layers)
        section = cfg["probe"] if kind == "probe" else cfg["lens"]
        curve = fit_lens(lens, store, readout, default_layers(kind, store.n_layers),
                         objective="ce" if kind == "probe" else "kl",
                         steps=section["steps"], batch_size=section["batch_size"],
                         lr=section["lr"], weight_decay=section["weight_decay"],
                         seed=cfg["seed"], progress=not args.quiet)
        write_table(curve, Path(args.curves) / f"fit_{kind}.csv")
        save_lens(lens, Path(args.out) / kind, readout, store.n_layers)


@command("evaluate", "per-layer metrics of every lens, prediction depth and transfer penalties")
def cmd_evaluate(args):
    from iterlens.io import write_table
    from iterlens.lenses import IdentityLens, evaluate_lenses, load_lens
    from iterlens.readout import Readout
    from iterlens.store import ActivationStore
    from iterlens.transfer import transfer_matrix

    _threads(args.threads)
    readout = Readout.load(args.readout)
    store = ActivationStore(args.store)
    lenses = {"logit": IdentityLens(readout)}
    for folder in args.lens:
        lens = load_lens(folder, readout)
        lenses[lens.kind] = lens
    metrics, depth = evaluate_lenses(lenses, store, readout, progress=not args.quiet)
    write_table(metrics, args.out)
    write_table(depth, args.depth_out)
    if args.transfer_out:
        if "tuned" not in lenses:
            raise ValueError("--transfer-out needs a tuned lens among --lens")
        table = transfer_matrix(lenses["tuned"], store, readout, progress=not args.quiet)
        write_table(table, args.transfer_out)


# ---------------------------------------------------------------------------- vision
def _image_splits(cfg: dict) -> dict:
    from iterlens.vision import load_image_splits

    v = cfg["vision"]
    return load_image_splits(v["dataset"], v["probefit_fraction"], v["eval_fraction"],
                             cfg["seed"])


@command("train-cnn", "train the plain or residual Inception-style CNN (or save it untrained)")
def cmd_train_cnn(args):
    from iterlens.io import write_table
    from iterlens.vision import init_cnn, save_cnn, train_cnn

    cfg = _cfg(args)
    _threads(args.threads)
    v = cfg["vision"]
    splits = _image_splits(cfg)
    x, _ = splits["train"]
    model = init_cnn(v["width"], v["stages"], args.net == "cnn_residual", cfg["seed"],
                     n_classes=int(splits["train"][1].max()) + 1, in_channels=x.shape[1])
    if not args.untrained:
        curve = train_cnn(model, *splits["train"], epochs=v["epochs"],
                          batch_size=v["batch_size"], lr=v["lr"], seed=cfg["seed"],
                          x_val=splits["lensfit"][0], y_val=splits["lensfit"][1],
                          progress=not args.quiet)
        write_table(curve, args.curve)
    save_cnn(model, args.out)


@command("extract-cnn", "save a CNN's readout and its pooled block outputs (lensfit, eval)")
def cmd_extract_cnn(args):
    from iterlens.vision import extract_cnn_store, load_cnn, readout_from_cnn

    cfg = _cfg(args)
    _threads(args.threads)
    model = load_cnn(args.model)
    readout = readout_from_cnn(model)
    readout.save(args.readout)
    splits = _image_splits(cfg)
    for split in ("lensfit", "eval"):
        extract_cnn_store(model, readout, *splits[split], Path(args.out) / split,
                          progress=not args.quiet)


@command("vision-summary", "test (eval split) accuracy of the trained CNNs")
def cmd_vision_summary(args):
    import pandas as pd

    from iterlens.io import write_table
    from iterlens.vision import accuracy, load_cnn

    cfg = _cfg(args)
    splits = _image_splits(cfg)
    rows = []
    for folder in args.models:
        model = load_cnn(folder)
        rows.append({"model": Path(folder).name,
                     "n_params": sum(p.numel() for p in model.parameters()),
                     "eval_acc": accuracy(model, *splits["eval"]),
                     "train_acc": accuracy(model, *splits["train"])})
    write_table(pd.DataFrame(rows), args.out)


@command("headline", "the headline numbers of every model (quoted in the README)")
def cmd_headline(args):
    from iterlens.io import write_table
    from iterlens.summary import headline_table

    write_table(headline_table(args.metrics, args.transfer), args.out)


@command("comparison", "the table behind the LM vs CNN comparison figure")
def cmd_comparison(args):
    from iterlens.io import write_table
    from iterlens.summary import comparison_table

    write_table(comparison_table(args.metrics, args.transfer), args.out)


@command("lm-summary", "held-out loss of the LMs against the unigram baseline")
def cmd_lm_summary(args):
    from iterlens.io import write_table
    from iterlens.summary import lm_summary

    write_table(lm_summary(args.train_tokens, args.eval_store, args.vocab_of,
                           dict(zip(args.names, args.metrics, strict=True))), args.out)


@command("plot", "draw figures from their tables")
def cmd_plot(args):
    from iterlens import figures

    if args.family:
        figures.draw_family(args.family, args.tables, args.out)
    else:
        figures.draw(args.figure, args.inputs, args.out)


# ---------------------------------------------------------------------------- vocabulary
@command("vocab", "vocabulary-space analysis of a model on prompts: Parquet tables + HTML pages")
def cmd_vocab(args):
    from iterlens.vocab.analysis import VocabSettings
    from iterlens.vocab.pipeline import run_vocab

    cfg = _cfg(args)
    _threads(args.threads)
    section = dict(cfg["vocab"])
    for key in ("top_k", "bias_threshold"):
        if getattr(args, key) is not None:
            section[key] = getattr(args, key)
    prompts = args.prompt or section["prompts"]
    meta = run_vocab(args.model, prompts, args.out, VocabSettings.from_config(section),
                     args.lens, label=args.name, progress=not args.quiet)
    log.info("%s: %d pages in %s", meta["model"], len(meta["pages"]), args.out)


@command("vocab-index", "the landing page linking the vocabulary pages of several models")
def cmd_vocab_index(args):
    from iterlens.vocab.pipeline import write_index

    write_index(args.models, args.out)


def _add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config file (defaults are filled in)")
    p.add_argument("--cfg", help="config as a JSON string (merged over --config)")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    spec: dict[str, list[tuple[str, dict]]] = {
        "corpus": [("--out", {"required": True})],
        "tokenizer": [("--train", {}), ("--out", {"required": True})],
        "tokenize": [("--tokenizer", {"required": True}),
                     ("--split", {"required": True, "nargs": "+"}),
                     ("--out", {"required": True, "nargs": "+"})],
        "train-lm": [("--tokenizer", {}), ("--train-tokens", {}), ("--val-tokens", {}),
                     ("--out", {"required": True}), ("--curve", {"required": True})],
        "init-lm": [("--trained", {"required": True}), ("--tokenizer", {"required": True}),
                    ("--out", {"required": True})],
        "readout": [("--model", {"required": True}), ("--out", {"required": True})],
        "extract-shard": [("--model", {"required": True}), ("--readout", {"required": True}),
                          ("--tokenizer", {"required": True}), ("--tokens", {"required": True}),
                          ("--split", {"required": True, "choices": ["lensfit", "eval"]}),
                          ("--index", {"required": True, "type": int}),
                          ("--out", {"required": True})],
        "finalize-store": [("--manifest", {"required": True}), ("--readout", {"required": True}),
                           ("--n-shards", {"required": True, "type": int}),
                           ("--domain", {"default": "lm"})],
        "fit-lenses": [("--kinds", {"nargs": "+", "default": ["tuned", "shared", "probe"],
                                    "choices": ["tuned", "shared", "probe"]}),
                       ("--store", {"required": True}), ("--readout", {"required": True}),
                       ("--out", {"required": True, "help": "folder for one subfolder a lens"}),
                       ("--curves", {"required": True, "help": "folder for fit_<kind>.csv"})],
        "evaluate": [("--store", {"required": True}), ("--readout", {"required": True}),
                     ("--lens", {"nargs": "*", "default": []}), ("--out", {"required": True}),
                     ("--depth-out", {"required": True}), ("--transfer-out", {})],
        "lm-summary": [("--train-tokens", {"required": True}),
                       ("--eval-store", {"required": True}),
                       ("--vocab-of", {"required": True}),
                       ("--names", {"nargs": "+", "required": True}),
                       ("--metrics", {"nargs": "+", "required": True}),
                       ("--out", {"required": True})],
        "train-cnn": [("--net", {"required": True, "choices": ["cnn_plain", "cnn_residual"]}),
                      ("--untrained", {"action": "store_true"}), ("--out", {"required": True}),
                      ("--curve", {})],
        "extract-cnn": [("--model", {"required": True}), ("--readout", {"required": True}),
                        ("--out", {"required": True})],
        "vision-summary": [("--models", {"nargs": "+", "required": True}),
                           ("--out", {"required": True})],
        "headline": [("--metrics", {"nargs": "+", "required": True}),
                     ("--transfer", {"nargs": "+", "required": True}),
                     ("--out", {"required": True})],
        "comparison": [("--metrics", {"nargs": "+", "required": True}),
                       ("--transfer", {"nargs": "+", "required": True}),
                       ("--out", {"required": True})],
        "vocab": [("--model", {"required": True, "help": "model folder or Hub name"}),
                  ("--prompt", {"action": "append", "help": "a prompt (repeat for more; "
                                "default: the config's vocab.prompts)"}),
                  ("--lens", {"action": "append", "default": [],
                              "help": "a saved lens folder, e.g. a tuned lens (repeatable)"}),
                  ("--name", {"help": "model label on the pages (default: --model)"}),
                  ("--top-k", {"type": int, "help": "words per list (default: config)"}),
                  ("--bias-threshold", {"type": float,
                                        "help": "high-bias z-score (default: config)"}),
                  ("--out", {"required": True, "help": "folder for tables and pages"})],
        "vocab-index": [("--models", {"nargs": "+", "required": True,
                                      "help": "folders written by `iterlens vocab`"}),
                        ("--out", {"required": True, "help": "the index.html to write"})],
        "plot": [("--figure", {}), ("--inputs", {"nargs": "+"}),
                 ("--family", {"help": "draw every figure of a model family and its "
                                       "untrained twin from --tables into the --out folder"}),
                 ("--tables", {"default": "results/tables"}), ("--out", {"required": True})],
    }
    for flag, kwargs in spec.get(name, []):
        p.add_argument(flag, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="iterlens",
        description="Logit lens, tuned lens, transfer penalties and probes for LMs and CNNs: "
                    "one subcommand per workflow stage (see the README).")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        _add_arguments(name, p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``iterlens`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        COMMANDS[args.command][0](args)
    except (ValueError, FileNotFoundError, OSError, NotImplementedError, RuntimeError) as err:
        print(f"iterlens {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
