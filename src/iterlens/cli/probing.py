"""Commands that make a probed model and probe it: readout, extraction, lenses, evaluation.

The LM and the CNN share every command after extraction.
"""

from __future__ import annotations

from pathlib import Path

from iterlens import artifacts
from iterlens.cli import arg, command, load_cfg, log


@command(
    "readout",
    "save the final readout (norm + unembedding, or a CNN's head) of a model",
    arg("--model", required=True, help="model folder"),
    arg("--out", required=True),
)
def readout(args):
    from iterlens.models.lm import load_model_dir
    from iterlens.probing.readout import readout_from_model

    readout_from_model(load_model_dir(args.model)).save(args.out)


@command(
    "extract-shard",
    "extract one shard of every layer's residual stream of an LM",
    arg("--model", required=True),
    arg("--readout", required=True),
    arg("--tokenizer", required=True),
    arg("--tokens", required=True),
    arg("--split", required=True, choices=list(artifacts.STORE_SPLITS)),
    arg("--index", required=True, type=int),
    arg("--out", required=True),
)
def extract_shard(args):
    from iterlens.data.text import load_tokenizer, load_tokens
    from iterlens.models.lm import load_model_dir
    from iterlens.probing.extract import extract_lm_shard, shard_windows
    from iterlens.probing.readout import Readout

    ex = load_cfg(args)["extract"]
    tokens = load_tokens(args.tokens)
    starts = shard_windows(
        tokens, ex["seq_len"], ex[f"{args.split}_tokens"], ex["shard_tokens"], args.index
    )
    extract_lm_shard(
        load_model_dir(args.model),
        Readout.load(args.readout),
        load_tokenizer(args.tokenizer),
        tokens,
        starts,
        ex["seq_len"],
        ex["batch_size"],
        args.out,
        progress=not args.quiet,
    )


@command(
    "finalize-store",
    "check the shards of a store and write its manifest",
    arg("--manifest", required=True),
    arg("--readout", required=True),
    arg("--n-shards", required=True, type=int),
    arg("--domain", default="lm"),
)
def finalize_store(args):
    from iterlens.probing.readout import Readout
    from iterlens.probing.store import finalize_store as finalize

    manifest = finalize(
        Path(args.manifest).parent,
        args.n_shards,
        Readout.load(args.readout).fingerprint(),
        args.domain,
    )
    log.info(
        "store %s: %d examples, L=%d, d=%d",
        args.manifest,
        manifest["n_examples"],
        manifest["n_layers"],
        manifest["d_model"],
    )


@command(
    "extract-cnn",
    "save a CNN's readout and its pooled block outputs (lensfit, eval)",
    arg("--model", required=True),
    arg("--readout", required=True),
    arg("--out", required=True, help="folder of the stores (one subfolder a split)"),
)
def extract_cnn(args):
    from iterlens.data.images import image_splits
    from iterlens.models.cnn import load_cnn
    from iterlens.probing.extract import extract_cnn_store
    from iterlens.probing.readout import readout_from_cnn

    model = load_cnn(args.model)
    readout_ = readout_from_cnn(model)
    readout_.save(args.readout)
    splits = image_splits(load_cfg(args))
    for split in artifacts.STORE_SPLITS:
        extract_cnn_store(
            model, readout_, *splits[split], Path(args.out) / split, progress=not args.quiet
        )


@command(
    "fit-lenses",
    "train tuned lens, shared lens and free probes on a lensfit store",
    arg(
        "--kinds",
        nargs="+",
        default=list(artifacts.TRAINED_LENS_KINDS),
        choices=list(artifacts.TRAINED_LENS_KINDS),
    ),
    arg("--store", required=True),
    arg("--readout", required=True),
    arg("--out", required=True, help="folder for one subfolder a lens"),
    arg("--curves", required=True, help="folder for fit_<kind>.csv"),
)
def fit_lenses(args):
    from iterlens.io import write_table
    from iterlens.probing.lenses import fit_kind, save_lens
    from iterlens.probing.readout import Readout
    from iterlens.probing.store import ActivationStore

    cfg = load_cfg(args)
    readout_ = Readout.load(args.readout)
    store = ActivationStore(args.store)
    for kind in args.kinds:
        lens, curve = fit_kind(kind, store, readout_, cfg, progress=not args.quiet)
        write_table(curve, Path(args.curves) / Path(artifacts.FIT_CURVE).name.format(kind=kind))
        save_lens(lens, Path(args.out) / kind, readout_, store.n_layers)


@command(
    "evaluate",
    "per-layer metrics of every lens, prediction depth and transfer penalties",
    arg("--store", required=True),
    arg("--readout", required=True),
    arg("--lens", nargs="*", default=[], help="lens folders (the logit lens is implied)"),
    arg("--out", required=True, help="per-layer metrics table"),
    arg("--depth-out", required=True, help="prediction depth table"),
    arg("--transfer-out", help="transfer matrix table (needs a tuned lens)"),
)
def evaluate(args):
    from iterlens.io import write_table
    from iterlens.probing.lenses import LogitLens, evaluate_lenses, load_lens
    from iterlens.probing.readout import Readout
    from iterlens.probing.store import ActivationStore
    from iterlens.probing.transfer import transfer_matrix

    readout_ = Readout.load(args.readout)
    store = ActivationStore(args.store)
    lenses = {"logit": LogitLens(readout_)}
    for folder in args.lens:
        lens = load_lens(folder, readout_)
        lenses[lens.kind] = lens
    metrics, depth = evaluate_lenses(lenses, store, readout_, progress=not args.quiet)
    write_table(metrics, args.out)
    write_table(depth, args.depth_out)
    if args.transfer_out:
        if "tuned" not in lenses:
            raise ValueError("--transfer-out needs a tuned lens among --lens")
        table = transfer_matrix(lenses["tuned"], store, readout_, progress=not args.quiet)
        write_table(table, args.transfer_out)
