"""Commands of the text data: corpus split, tokenizer, token streams."""

from __future__ import annotations

from iterlens.cli import arg, command, load_cfg, log


@command("check-config", "validate a config file and print it with defaults filled")
def check_config(args):
    import yaml

    print(yaml.safe_dump(load_cfg(args), sort_keys=False))


@command(
    "corpus",
    "load the corpus and split it by document into train/lensfit/eval",
    arg("--out", required=True, help="folder for {train,lensfit,eval}.jsonl"),
)
def corpus(args):
    from iterlens.data.text import load_documents, split_documents, write_splits

    cfg = load_cfg(args)
    c = cfg["corpus"]
    splits = split_documents(
        load_documents(c["source"], c["text_column"]),
        c["lensfit_fraction"],
        c["eval_fraction"],
        cfg["seed"],
        c["max_documents"],
    )
    write_splits(splits, args.out)
    for name, docs in splits.items():
        log.info(
            "%s: %d documents, %d characters", name, len(docs), sum(len(d["text"]) for d in docs)
        )


SOURCE_ARGS = (
    arg("--source", default="reference", choices=["reference", "hub", "folder"]),
    arg("--path", help="the Hub name or local folder of a hub or folder model"),
)


@command(
    "tokenizer",
    "train the BPE tokenizer (reference LM) or save a hub or folder model's own",
    *SOURCE_ARGS,
    arg("--train", help="train split (.jsonl) the BPE is trained on"),
    arg("--out", required=True),
)
def tokenizer(args):
    from iterlens.data.text import read_split, save_tokenizer_of, train_tokenizer

    cfg = load_cfg(args)
    if args.source == "reference":
        train_tokenizer(read_split(args.train), cfg["tokenizer"]["vocab_size"], args.out)
    else:
        save_tokenizer_of(args.path, args.out)


@command(
    "tokenize",
    "tokenize corpus splits into .npy token streams",
    arg("--tokenizer", required=True),
    arg("--split", required=True, nargs="+"),
    arg("--out", required=True, nargs="+"),
)
def tokenize(args):
    from iterlens.data.text import load_tokenizer, read_split, save_tokens, tokenize_texts

    tok = load_tokenizer(args.tokenizer)
    for split, out in zip(args.split, args.out, strict=True):
        ids = tokenize_texts(tok, read_split(split))
        save_tokens(ids, out)
        log.info("%s: %d tokens", split, len(ids))
