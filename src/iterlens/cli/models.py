"""Commands that make the studied models: the reference LM, its untrained twin, the CNNs."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from iterlens.cli import arg, command, load_cfg

log = logging.getLogger(__name__)

REPLICATE = arg(
    "--replicate",
    type=int,
    default=0,
    help="seed replicate k: init and batches use seed + k (the data splits use seed)",
)


def residual_arg(default: bool, without: str) -> tuple[tuple[str, ...], dict]:
    """``--residual`` / ``--no-residual``: identity skips around each block.

    ``default`` is the entry's source's (the workflow passes only the flag that departs from
    it); ``without`` says what the model is without them.
    """
    return arg(
        "--residual",
        action=argparse.BooleanOptionalAction,
        default=default,
        help=f"identity skips around each block (default: {'with' if default else 'without'}; "
        f"without: {without})",
    )


@command(
    "record-lm",
    "check that a Hub or local-folder LM loads and record it as a workflow model folder, or "
    "convert a GGUF file (or the one a package ships) into one",
    arg("--source", required=True, choices=["hub", "folder", "gguf"]),
    arg("--path", required=True, help="the Hub name, local folder, .gguf file or package"),
    arg("--sha256", help="gguf: the file's expected sha256"),
    arg("--size", type=int, help="gguf: the file's expected size in bytes"),
    arg("--out", required=True),
)
def record_lm(args):
    if args.source == "gguf":
        import tempfile

        from iterlens.models.gguf import convert_gguf, locate_gguf

        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        # a package that assembles its file from chunks writes it here; it is gone afterwards
        with tempfile.TemporaryDirectory(prefix=f".{out.name}-gguf-", dir=out.parent) as scratch:
            path = locate_gguf(args.path, assemble_dir=scratch)
            source = convert_gguf(path, out, sha256=args.sha256, size=args.size, origin=args.path)
        log.info("converted %s (%s) into %s", source["file"], source["quantization"], args.out)
        return
    if args.sha256 or args.size:
        raise ValueError("--sha256 and --size check a gguf file (--source gguf)")
    from iterlens.models.lm import record_hf_model

    record_hf_model(args.path, args.out)


@command(
    "tiny-model",
    "save a tiny random causal LM of a registered family with a given tokenizer (for smoke "
    "runs and tests: a 'folder' entry of the models table)",
    arg("--family", required=True, help="a registered model_type (gpt2, gpt_neox, llama, ...)"),
    arg("--tokenizer", required=True, help="tokenizer folder whose vocabulary the model uses"),
    arg("--max-positions", type=int, default=1024, help="longest window the model takes"),
    arg("--seed", type=int, default=0),
    arg("--out", required=True),
)
def tiny_model(args):
    from iterlens.data.text import load_tokenizer
    from iterlens.models.families import adapter_for
    from iterlens.models.lm import init_model, save_model

    tok = load_tokenizer(args.tokenizer)
    config = adapter_for(args.family).tiny_config()
    config.vocab_size = len(tok)
    config.bos_token_id = config.eos_token_id = tok.eos_token_id
    config.max_position_embeddings = args.max_positions
    save_model(init_model(config, args.seed), tok, args.out)


@command(
    "train-lm",
    "train a reference LM (GPT-2, sizes from the lm section) on the train tokens",
    arg("--tokenizer", required=True),
    arg("--train-tokens", required=True),
    arg("--val-tokens", required=True),
    arg("--out", required=True, help="model folder (save_pretrained)"),
    arg("--curve", required=True, help="training curve table (.csv)"),
    residual_arg(True, "h' = attn(ln_1(h)), out = mlp(ln_2(h')) in each block"),
    REPLICATE,
)
def train_lm(args):
    from iterlens.data.text import load_tokenizer, load_tokens
    from iterlens.io import write_json, write_table
    from iterlens.models.lm import init_model, reference_config, save_model
    from iterlens.models.lm import train_lm as train
    from iterlens.models.studied import REFERENCE_SECTION

    cfg = load_cfg(args)
    lm = cfg[REFERENCE_SECTION]
    tok = load_tokenizer(args.tokenizer)
    config = reference_config(
        len(tok),
        lm["n_layer"],
        lm["n_embd"],
        lm["n_head"],
        lm["seq_len"],
        tok.eos_token_id,
        residual=args.residual,
    )
    seed = cfg["seed"] + args.replicate
    model = init_model(config, seed)
    curve = train(
        model,
        load_tokens(args.train_tokens),
        load_tokens(args.val_tokens),
        steps=lm["steps"],
        batch_size=lm["batch_size"],
        seq_len=lm["seq_len"],
        lr=lm["lr"],
        warmup_steps=lm["warmup_steps"],
        eval_every=lm["eval_every"],
        eval_batches=lm["eval_batches"],
        seed=seed,
        progress=not args.quiet,
    )
    write_table(curve, args.curve)
    tokens = int(curve["tokens"].iloc[-1])
    write_json(
        {
            "seconds": round(curve.attrs["seconds"], 1),
            "tokens": tokens,
            "tokens_per_s": round(tokens / curve.attrs["seconds"], 1),
        },
        Path(args.curve).with_suffix(".timing.json"),
    )
    save_model(model, tok, args.out)


@command(
    "init-lm",
    "save the same LM architecture (with or without skips, as its config records) at its "
    "initial (untrained) weights",
    arg("--trained", required=True),
    arg("--tokenizer", required=True),
    arg("--out", required=True),
)
def init_lm(args):
    from iterlens.data.text import load_tokenizer
    from iterlens.models.lm import init_model, load_model_dir, save_model

    cfg = load_cfg(args)
    model = init_model(load_model_dir(args.trained).config, cfg["seed"])
    save_model(model, load_tokenizer(args.tokenizer), args.out)


@command(
    "train-cnn",
    "train the plain or residual Inception-style CNN (or save it untrained)",
    residual_arg(False, "the plain CNN"),
    arg("--untrained", action="store_true", help="save the initial weights (control)"),
    arg("--out", required=True),
    arg("--curve", help="training curve table (.csv)"),
    REPLICATE,
)
def train_cnn(args):
    from iterlens.data.images import image_splits
    from iterlens.io import write_table
    from iterlens.models.cnn import init_cnn, save_cnn
    from iterlens.models.cnn import train_cnn as train

    cfg = load_cfg(args)
    v = cfg["vision"]
    splits = image_splits(cfg)
    x, y = splits["train"]
    seed = cfg["seed"] + args.replicate
    model = init_cnn(
        v["width"],
        v["stages"],
        args.residual,
        seed,
        n_classes=int(y.max()) + 1,
        in_channels=x.shape[1],
    )
    if not args.untrained:
        curve = train(
            model,
            x,
            y,
            epochs=v["epochs"],
            batch_size=v["batch_size"],
            lr=v["lr"],
            seed=seed,
            x_val=splits["lensfit"][0],
            y_val=splits["lensfit"][1],
            progress=not args.quiet,
        )
        write_table(curve, args.curve)
    save_cnn(model, args.out)
