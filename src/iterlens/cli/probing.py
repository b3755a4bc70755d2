"""Commands that make a probed model and probe it: readout, extraction, lenses, evaluation.

The LM and the CNN share every command after extraction.
"""

from __future__ import annotations

from pathlib import Path

from iterlens import artifacts
from iterlens.cli import arg, command, device_of, load_cfg, log
from iterlens.cli.hub import RELEASED_LENS_ARGS
from iterlens.cli.models import REPLICATE
from iterlens.models.studied import DOMAINS, LM_DOMAIN, VISION_DOMAIN


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
    from iterlens.device import resolve_dtype
    from iterlens.models.lm import load_model_dir
    from iterlens.probing.extract import extract_lm_shard, shard_windows
    from iterlens.probing.readout import Readout
    from iterlens.probing.store import STORE_DTYPES

    ex = load_cfg(args)["extract"]
    device = device_of(args)
    model = load_model_dir(args.model).to(device, resolve_dtype(ex["dtype"], device))
    tokens = load_tokens(args.tokens)
    starts = shard_windows(
        tokens, ex["seq_len"], ex[f"{args.split}_tokens"], ex["shard_tokens"], args.index
    )
    extract_lm_shard(
        model,
        Readout.load(args.readout),
        load_tokenizer(args.tokenizer),
        tokens,
        starts,
        ex["seq_len"],
        ex["batch_size"],
        args.out,
        progress=not args.quiet,
        store_dtype=STORE_DTYPES[ex["lensfit_dtype" if args.split == "lensfit" else "store_dtype"]],
        skip_positions=ex["skip_positions"],
    )


@command(
    "finalize-store",
    "check the shards of a store and write its manifest",
    arg("--manifest", required=True),
    arg("--readout", required=True),
    arg("--n-shards", required=True, type=int),
    arg("--domain", choices=DOMAINS, default=LM_DOMAIN),
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
    from iterlens.probing.store import STORE_DTYPES

    cfg = load_cfg(args)
    model = load_cnn(args.model)
    readout_ = readout_from_cnn(model)
    readout_.save(args.readout)
    splits = image_splits(cfg)
    for split in artifacts.STORE_SPLITS:
        extract_cnn_store(
            model,
            readout_,
            *splits[split],
            Path(args.out) / split,
            progress=not args.quiet,
            dtype=STORE_DTYPES[cfg["extract"]["store_dtype"]],
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
    arg("--skip-existing", action="store_true", help="keep lenses already in --out"),
    REPLICATE,
)
def fit_lenses(args):
    from iterlens.device import release_freed_memory
    from iterlens.io import write_table
    from iterlens.probing.fitting import fit_kind
    from iterlens.probing.lenses import save_lens
    from iterlens.probing.readout import Readout
    from iterlens.probing.store import ActivationStore

    cfg = load_cfg(args)
    device = device_of(args)
    readout_ = Readout.load(args.readout).to(device)
    readout_.set_compute_dtype(cfg["lens"]["readout_dtype"])
    store = ActivationStore(args.store, device=device)
    for kind in args.kinds:
        if args.skip_existing and (Path(args.out) / kind / artifacts.LENS_WEIGHTS).exists():
            log.info("%s lens exists in %s; not refitted (--skip-existing)", kind, args.out)
            continue
        seed = cfg["seed"] + args.replicate  # the model's own seed; recorded in lens.json
        lens, curve = fit_kind(kind, store, readout_, cfg, progress=not args.quiet, seed=seed)
        write_table(curve, Path(args.curves) / Path(artifacts.FIT_CURVE).name.format(kind=kind))
        save_lens(
            lens.cpu(), Path(args.out) / kind, readout_.cpu(), store.n_layers, {"fit_seed": seed}
        )
        readout_.to(device)
        del lens, curve
        release_freed_memory()  # the next kind's fit starts from what is live


@command(
    "evaluate",
    "per-layer metrics of every lens, prediction depth and transfer penalties, with intervals",
    arg("--store", required=True),
    arg("--readout", required=True),
    arg(
        "--lens",
        nargs="*",
        default=[],
        help="lens folders, tuned-lens layout folders, or Hub repos (owner/name, "
        "spaces/owner/name) with lens/<model>/ (the logit lens is implied)",
    ),
    *RELEASED_LENS_ARGS,
    arg("--out", required=True, help="per-layer metrics table"),
    arg("--depth-out", required=True, help="prediction depth table"),
    arg("--transfer-out", help="transfer matrix table (needs a tuned lens)"),
    arg("--examples-out", help="file for the per-example values (the bootstrap's input)"),
    arg("--train-tokens", help="LM: training tokens, whose unigram is the prior"),
    arg("--tokenizer", help="LM: tokenizer whose EOS separates the eval documents"),
)
def evaluate(args):
    import time

    from iterlens.io import write_table
    from iterlens.probing.bootstrap import Examples
    from iterlens.probing.lenses import LogitLens, evaluate_lenses, load_lens
    from iterlens.probing.readout import Readout
    from iterlens.probing.store import ActivationStore
    from iterlens.probing.transfer import (
        transfer_group_sums,
        transfer_table,
        unmeasured_transfer_table,
    )
    from iterlens.report.uncertainty import layer_table, model_info, transfer_table_intervals

    cfg = load_cfg(args)
    device = device_of(args)
    readout_ = Readout.load(args.readout)
    store = ActivationStore(args.store, device=device)
    lenses = {"logit": LogitLens(readout_)}
    for source in args.lens:
        if (Path(source) / artifacts.LENS_WEIGHTS).exists():
            lens = load_lens(source, readout_, allow_mismatch=args.allow_mismatch)
        else:  # a tuned-lens layout folder, or a Hub repo / Space with lens/<model>/
            from iterlens.hub.pull import load_released_lens

            lens = load_released_lens(
                source,
                readout_,
                lens_name=args.lens_name,
                repo_type=args.repo_type,
                allow_mismatch=args.allow_mismatch,
            )
        lenses[lens.kind] = lens
    if args.transfer_out and "tuned" not in lenses:
        raise ValueError("--transfer-out needs a tuned lens among --lens")
    for lens in lenses.values():
        lens.to(device)
    readout_.set_compute_dtype(cfg["lens"]["readout_dtype"])  # after .to(): no stale copy
    groups, prior_ce = _groups_and_prior(args, store, readout_.n_classes)
    values: dict = {}
    metrics, depth = evaluate_lenses(
        lenses, store, readout_, progress=not args.quiet, examples=values
    )
    examples = Examples(groups, {**values, "prior_ce_bits": prior_ce})
    transfer = None
    info = model_info(examples, examples.group_sums())
    if args.transfer_out and not info["informative"]:
        log.info(
            "transfer matrix not measured, every value NaN: %s", info["not_informative_reason"]
        )
        transfer = unmeasured_transfer_table(store.n_layers, cfg["lens"]["transfer_layers"])
    elif args.transfer_out:
        examples.transfer = transfer_group_sums(
            lenses["tuned"],
            store,
            readout_,
            groups,
            progress=not args.quiet,
            layers=cfg["lens"]["transfer_layers"],
        )
        transfer = transfer_table(examples.transfer)
    if args.examples_out:
        examples.save(args.examples_out)
    start = time.perf_counter()
    metrics = layer_table(metrics, examples)
    if transfer is not None:
        transfer = transfer_table_intervals(transfer, examples)
    log.info(
        "bootstrap of %s: %d examples in %d groups, %.2f s",
        args.out,
        len(groups),
        len(set(groups.tolist())),
        time.perf_counter() - start,
    )
    write_table(metrics, args.out)
    write_table(depth, args.depth_out)
    if transfer is not None:
        write_table(transfer, args.transfer_out)


def _groups_and_prior(args, store, n_classes: int):
    """Bootstrap groups (LM: documents; CNN: images) and each example's prior CE in bits.

    Reads the per-example columns (targets, groups or inputs) shard by shard, never the
    activations, so memory does not grow with the store's activations.
    """
    import numpy as np

    from iterlens.probing.bootstrap import document_ids
    from iterlens.probing.metrics import prior_ce_bits

    targets = store.column("targets").numpy()
    if store.manifest.get("domain", LM_DOMAIN) == VISION_DOMAIN:
        from iterlens.data.images import image_splits

        train = image_splits(load_cfg(args))["train"][1].numpy()
        return np.arange(len(targets)), prior_ce_bits(train, targets, n_classes)
    if not (args.train_tokens and args.tokenizer):
        raise ValueError("an LM store needs --train-tokens (the prior) and --tokenizer (EOS)")
    from iterlens.data.text import load_tokenizer, load_tokens

    train = np.asarray(load_tokens(args.train_tokens))
    prior = prior_ce_bits(train, targets, n_classes)
    groups = store.column("groups")
    if groups is not None:  # documents recorded at extraction
        return groups.numpy(), prior
    eos = load_tokenizer(args.tokenizer).eos_token_id
    if eos is None:
        raise ValueError(f"tokenizer {args.tokenizer} has no EOS: documents cannot be told apart")
    return document_ids(store.column("inputs").numpy(), eos), prior
