"""Commands of the positive controls: rotated twins (whole or partial) and their tables."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from iterlens import artifacts
from iterlens.cli import arg, command, log


def rotation_size(text: str) -> float:
    """``--t``: a float in [0, 1] (0: the model itself, 1: the rotated twin)."""
    try:
        t = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= t <= 1.0:
        raise argparse.ArgumentTypeError(
            f"t must be in [0, 1] (0: the model itself, 1: the rotated twin), got {t}"
        )
    return t


@command(
    "rotate-store",
    "build the rotated twin of a probed model from its stored activations (no forward pass)",
    arg("--readout", required=True, help="the model's readout file"),
    arg("--store", nargs="+", required=True, help="the model's store folders (one a split)"),
    arg("--out", required=True, help="the twin's probed-model folder"),
    arg("--seed", type=int, default=0, help="seed of the per-layer rotations"),
    arg(
        "--t",
        type=rotation_size,
        default=1.0,
        help="size of the rotation, in [0, 1]: layer l is mapped by expm(t log Q_l) "
        "(1: the rotated twin; 0: the model itself)",
    ),
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
        manifest = rotate(store, twin, args.seed, progress=not args.quiet, t=args.t)
        log.info(
            "rotated %s -> %s (t = %g): %d examples", folder, twin, args.t, manifest["n_examples"]
        )
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


@command(
    "dose-response",
    "the dose-response table: transfer and shared-lens penalties against the rotation size t",
    arg(
        "--examples",
        nargs="+",
        required=True,
        help="examples.safetensors of each model, its partial rotations (<name>_rot<ddd>) and "
        "its rotated twin; t (0, ddd/100, 1) and the family are read from the folder names",
    ),
    arg("--out", required=True),
)
def dose_response(args):
    from iterlens.io import write_table
    from iterlens.report.controls import dose_of, dose_response_table

    rows = []
    for path in args.examples:
        model = artifacts.model_of_table(path)
        family, t = dose_of(model)
        rows.append((family, t, model, path))
    write_table(dose_response_table(rows), args.out)
