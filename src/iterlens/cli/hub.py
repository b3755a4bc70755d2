"""Commands of the Hugging Face Hub release: stage the repo folders, push them, pull a lens."""

from __future__ import annotations

import json
from pathlib import Path

from iterlens import artifacts
from iterlens.cli import arg, command, load_cfg, log
from iterlens.models.studied import DOMAINS, LM_DOMAIN, VISION_DOMAIN

RELEASED_LENS_ARGS = (
    arg(
        "--lens-name",
        help="model name under lens/ in the tuned-lens layout (default: the model's "
        "name_or_path, then the repo's name)",
    ),
    arg("--repo-type", choices=["model", "space"], help="Hub repo type (default: model)"),
    arg("--allow-mismatch", action="store_true", help="load a lens made for another unembedding"),
)


@command(
    "stage-release",
    "stage one Hub repo folder: a studied model's, or the dataset's",
    arg(
        "--model",
        help="stage the model repo of this studied model (a name from the config's models "
        "table); without it, the dataset repo",
    ),
    arg("--domain", choices=DOMAINS, default=LM_DOMAIN, help="the --model's domain"),
    arg("--license", help="the --model's weights' Hub license id, which its lenses' card takes"),
    arg("--results", default="results", help="the run's results folder"),
    arg("--models", nargs="*", default=[], help="released models (linked from the dataset card)"),
    arg(
        "--activations-of",
        nargs="*",
        default=[],
        help="studied LMs whose eval activations the dataset repo includes "
        "(with release.include_activations)",
    ),
    arg("--out", required=True),
)
def stage_release(args):
    from iterlens.hub.stage import folder_size, stage_dataset_repo, stage_model_repo

    rel = load_cfg(args)["release"]

    def path(pattern: str, **fields) -> Path:  # artifact patterns start with results/
        return Path(args.results) / pattern.format(**fields).removeprefix("results/")

    if args.model:
        m = args.model
        out = stage_model_repo(
            m,
            path(artifacts.MODEL_DIR, model=m),
            path(artifacts.LENS_DIR, model=m, kind="x").parent,
            path(artifacts.MODEL_READOUT, model=m),
            path(artifacts.LENS_METRICS, model=m),
            args.out,
            rel["namespace"],
            rel["prefix"],
            "cnn" if args.domain == VISION_DOMAIN else "lm",
            license=args.license,
        )
    else:
        acts = {m: path(artifacts.STORE_DIR, model=m, split="eval") for m in args.activations_of}
        out = stage_dataset_repo(
            path(artifacts.TABLES_DIR),
            path(artifacts.CORPUS, split="x").parent,
            args.out,
            rel["namespace"],
            rel["prefix"],
            args.models,
            acts if rel["include_activations"] else None,
        )
    n, size = folder_size(out)
    log.info("staged %s: %d files, %.2f MiB", out, n, size / 2**20)


@command(
    "push",
    "upload the staged release to the Hugging Face Hub (run with --dry-run first)",
    arg("--release", default="results/release", help="folder of the staged repo folders"),
    arg("--dry-run", action="store_true", help="list repos, files and sizes; no network"),
    arg("--private", action="store_true", help="create missing repos as private"),
)
def push(args):
    from iterlens.hub.push import push_release

    push_release(args.release, dry_run=args.dry_run, private=args.private)


def load_any_model(name_or_path: str):
    """An iterlens CNN folder, a workflow LM folder, or a HF causal LM by name or path."""
    folder = Path(name_or_path)
    config = folder / artifacts.MODEL_CONFIG
    if config.exists() and "stages" in json.loads(config.read_text()):
        from iterlens.models.cnn import load_cnn

        return load_cnn(folder)
    from iterlens.models.lm import load_causal_lm, load_model_dir

    return load_model_dir(folder) if folder.is_dir() else load_causal_lm(name_or_path)


@command(
    "pull",
    "load a released lens (folder, Hub repo or Space) for a model and save it in --out",
    arg("--source", required=True, help="folder or Hub repo id (spaces/owner/name: a Space)"),
    arg("--model", help="model folder or Hub name the lens is for"),
    arg("--readout", help="or: the model's readout.safetensors"),
    arg("--kind", default="tuned", choices=list(artifacts.TRAINED_LENS_KINDS)),
    *RELEASED_LENS_ARGS,
    arg("--revision", help="Hub revision (branch, tag or commit)"),
    arg("--missing-ok", action="store_true", help="exit 0, writing nothing, if the lens is absent"),
    arg("--out", required=True, help="lens folder to write"),
)
def pull(args):
    from iterlens.hub.pull import load_released_lens, readout_of
    from iterlens.probing.lenses import save_lens
    from iterlens.probing.readout import Readout

    if bool(args.model) == bool(args.readout):
        raise ValueError("give exactly one of --model and --readout")
    model = Readout.load(args.readout) if args.readout else load_any_model(args.model)
    try:
        lens = load_released_lens(
            args.source,
            model,
            args.kind,
            lens_name=args.lens_name,
            repo_type=args.repo_type,
            revision=args.revision,
            allow_mismatch=args.allow_mismatch,
        )
    except FileNotFoundError as err:
        if not args.missing_ok:
            raise
        log.warning("%s; nothing written (--missing-ok)", err)
        return
    save_lens(lens, args.out, readout_of(model), lens.n_layers)
    log.info("saved the %s lens from %s to %s", args.kind, args.source, args.out)
