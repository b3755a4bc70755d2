"""Commands of the positive control: the rotated twin of a probed model, and its table."""

from __future__ import annotations

import shutil
from pathlib import Path

from iterlens import artifacts
from iterlens.cli import arg, command, log


@command(
    "rotate-store",
    "build the rotated twin of a probed model from its stored activations (no forward pass)",
    arg("--readout", required=True, help="the model's readout file"),
    arg("--store", nargs="+", required=True, help="the model's store folders (one a split)"),
    arg("--out", required=True, help="the twin's probed-model folder"),
    arg("--seed", type=int, default=0, help="seed of the per-layer rotations"),
)
def rotate_store(args):
    from iterlens.io import atomic_path
    from iterlens.probing.readout import Readout
    from iterlens.probing.rotate import rotate_store as rotate
    from iterlens.probing.store import ActivationStore

    out = Path(args.out)
    readout_ = Readout.load(args.readout)  # verified against its fingerprint
    for folder in args.store:
        store = ActivationStore(folder)
        store.check_readout(readout_.fingerprint())
        split = Path(folder).name
        if split not in artifacts.STORE_SPLITS:
            raise ValueError(f"store folder {folder} is not named after a split")
        twin = out / artifacts.STORE_SUBDIR.format(split=split)
        manifest = rotate(store, twin, args.seed, progress=not args.quiet)
        log.info("rotated %s -> %s: %d examples", folder, twin, manifest["n_examples"])
    with atomic_path(out / artifacts.READOUT) as tmp:  # last: the outputs complete together
        shutil.copyfile(args.readout, tmp)


@command(
    "rotated-control",
    "the table of the rotated-twin control: each model beside its rotated twin",
    arg("--metrics", nargs="+", required=True, help="lens_metrics.csv of models and twins"),
    arg("--transfer", nargs="+", required=True, help="transfer.csv, in the same order"),
    arg("--out", required=True),
)
def rotated_control(args):
    from iterlens.io import write_table
    from iterlens.report.controls import rotated_control_table

    write_table(rotated_control_table(args.metrics, args.transfer), args.out)
