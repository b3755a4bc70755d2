"""Stage the release: one complete folder per Hub repo under ``results/release/``.

A model repo per studied model holds the model (``save_pretrained``, safetensors, with a
tokenizer that transformers 4.x and 5.x both load; of a model converted from a GGUF file only
its config and ``gguf_source.json``, see :func:`_copy_model`), its tuned lens in the
``tuned_lens`` layout (``lens/<name>/config.json`` + ``params.pt``, ``unembed_hash`` filled
in), every lens as safetensors with a JSON config, the readout, and a model card. The dataset repo
holds every table as Parquet, the document ids of each split and, optionally, the eval
activations in half precision. Each folder is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import torch

from iterlens import artifacts as A
from iterlens.data.text import portable_tokenizer_config
from iterlens.hub import cards
from iterlens.io import atomic_path, read_json
from iterlens.models.gguf import SOURCE_FILE
from iterlens.models.lm import RESIDUAL_KEY, portable_model_config
from iterlens.models.studied import LM_DOMAIN
from iterlens.probing.readout import Readout

LENS_KINDS = ("tuned", "shared", "probe")


def repo_name(prefix: str, model: str) -> str:
    """Hub repo name of a studied model (``cnn_plain`` -> ``<prefix>-cnn-plain``)."""
    return f"{prefix}-{model.replace('_', '-')}"


def repo_id(namespace: str, name: str) -> str:
    """``namespace/name``, or ``name`` alone when no namespace is configured."""
    return f"{namespace}/{name}" if namespace else name


def _copy_model(model_dir: Path, out: Path) -> tuple[str | None, dict | None]:
    """Copy the model's files; return its base model name (when not ours) and GGUF source.

    A Hub model (``source.json``) is named, not copied. A model converted from a GGUF file
    (``gguf_source.json``) ships its config and source description but not its weights: they
    are the dequantized copy of a public file whose sha256 the card gives, several times its
    size in float32, and under the terms of their own license; the card says how to rebuild
    them. A model trained here ships in full.
    """
    source = model_dir / "source.json"
    if source.exists():
        return read_json(source)["name_or_path"], None
    if not (model_dir / "model.safetensors").exists():
        raise FileNotFoundError(f"no model.safetensors in {model_dir}")
    gguf = model_dir / SOURCE_FILE
    if gguf.exists():
        for name in ("config.json", SOURCE_FILE):
            shutil.copy2(model_dir / name, out / name)
        portable_model_config(out)
        described = read_json(gguf)
        weights = sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))
        return None, {**described, "dequantized_bytes": weights}
    for path in sorted(model_dir.iterdir()):
        if path.is_file() and path.suffix in (".json", ".safetensors", ".txt", ".model"):
            shutil.copy2(path, out / path.name)
    portable_model_config(out)
    portable_tokenizer_config(out)
    return None, None


def _copy_lenses(lens_root: Path, readout: Readout, out: Path, rid: str, lens_name: str) -> None:
    """Every lens as safetensors + JSON; the tuned lens also in the tuned-lens layout."""
    for kind in LENS_KINDS:
        src = lens_root / kind
        for name in (A.LENS_WEIGHTS, A.LENS_META):
            if not (src / name).exists():
                raise FileNotFoundError(f"missing {src / name}")
            (out / A.HUB_LENS_DIR.format(kind=kind)).mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / name, out / A.HUB_LENS_DIR.format(kind=kind) / name)
    tuned = lens_root / "tuned"
    config = json.loads((tuned / A.TUNED_LENS_CONFIG).read_text())
    config["base_model_name_or_path"] = rid
    config["unembed_hash"] = readout.unembedding_hash()
    dest = out / A.HUB_TUNED_LENS_DIR.format(name=lens_name)
    dest.mkdir(parents=True)
    state = torch.load(tuned / A.TUNED_LENS_PARAMS, map_location="cpu", weights_only=True)
    torch.save(state, dest / A.TUNED_LENS_PARAMS)
    (dest / A.TUNED_LENS_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def stage_model_repo(
    model: str,
    model_dir: str | Path,
    lens_root: str | Path,
    readout_path: str | Path,
    metrics_path: str | Path,
    out: str | Path,
    namespace: str,
    prefix: str,
    domain: str,
    license: str | None = None,
) -> Path:
    """Stage the Hub model repo of one studied model into ``out``.

    Args:
        model: the workflow's name for it (``lm``, ``cnn_plain``, ...).
        model_dir: its ``save_pretrained`` folder (or a folder with ``source.json``).
        lens_root: folder holding ``tuned/``, ``shared/`` and ``probe/`` lenses.
        metrics_path: its per-layer ``lens_metrics`` table.
        domain: ``lm`` or ``cnn``.
        license: the Hub license id of the model's weights, which its lenses follow (they are
            fitted to its outputs); None: the package's own.
    """
    name = repo_name(prefix, model)
    rid = repo_id(namespace, name)
    readout = Readout.load(readout_path)
    metrics = pd.read_csv(metrics_path)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        base, gguf = _copy_model(Path(model_dir), tmp)
        _copy_lenses(Path(lens_root), readout, tmp, rid, name)
        shutil.copy2(readout_path, tmp / A.READOUT)
        config = tmp / "config.json"
        model_config = read_json(config) if config.exists() else {}
        skips = model_config.get(RESIDUAL_KEY, True)
        card = cards.model_card(
            rid,
            repo_id(namespace, f"{prefix}-results"),
            name,
            domain,
            metrics,
            base_model=base,
            residual=skips,
            gguf=gguf,
            license=license,
            model_type=model_config.get("model_type") if domain == LM_DOMAIN else None,
        )
        card.save(tmp / "README.md")
        (tmp / A.RELEASE_META).write_text(
            json.dumps(
                {
                    "repo_id": rid,
                    "repo_type": "model",
                    "model": model,
                    "domain": domain,
                    "lens_name": name,
                    "iterlens_version": cards.package_version(),
                },
                indent=2,
                sort_keys=True,
            )
            + "\n"
        )
    return Path(out)


def table_config_name(path: Path, tables_root: Path) -> str:
    """Config name of a table: ``lm/lens_metrics.csv`` -> ``lm_lens_metrics``."""
    return "_".join(path.relative_to(tables_root).with_suffix("").parts)


def _split_ids(corpus: Path) -> dict[str, list[str]]:
    ids = {}
    for path in sorted(corpus.glob("*.jsonl")):
        ids[path.stem] = [json.loads(line)["id"] for line in path.read_text().splitlines() if line]
    if not ids:
        raise FileNotFoundError(f"no corpus splits (*.jsonl) in {corpus}")
    return ids


def _half_activations(store: Path, out: Path, model: str) -> str:
    """Copy an activation store with float tensors in float16; describe it for the card."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    out.mkdir(parents=True)
    total = 0
    for shard in sorted(store.glob("shard-*.safetensors")):
        with safe_open(str(shard), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
        save_file(tensors, str(out / shard.name), metadata={**meta, "dtype": "float16"})
        total += (out / shard.name).stat().st_size
    manifest = read_json(store / A.MANIFEST)
    manifest["dtype"] = "float16"
    for shard in manifest["shards"]:  # checksums of the float16 files, not the originals
        path = out / shard["file"]
        shard["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        shard["size"] = path.stat().st_size
    (out / A.MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return (
        f"`activations/{out.name}/`: every layer's residual stream of `{model}` on the "
        f"eval split, float16 safetensors shards with their `manifest.json` "
        f"({total / 2**20:.1f} MiB)."
    )


def stage_dataset_repo(
    tables: str | Path,
    corpus: str | Path,
    out: str | Path,
    namespace: str,
    prefix: str,
    models: list[str],
    activations: dict[str, str | Path] | None = None,
) -> Path:
    """Stage the dataset repo: every table as Parquet, split document ids, a dataset card.

    Args:
        tables: ``results/tables`` (every ``*.csv`` below it becomes one Parquet config).
        corpus: ``results/corpus`` (its ``{split}.jsonl`` give the document ids).
        models: the workflow names of the released models (linked from the card).
        activations: studied LM -> its eval activation store, each included in float16 as
            ``activations/<model>_eval/`` (none by default).
    """
    tables, rid = Path(tables), repo_id(namespace, f"{prefix}-results")
    csvs = sorted(tables.rglob("*.csv"))
    if not csvs:
        raise FileNotFoundError(f"no tables (*.csv) under {tables}")
    configs = {}
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for path in csvs:
            name = table_config_name(path, tables)
            rel = Path("data") / path.relative_to(tables).with_suffix(".parquet")
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            try:
                df = pd.read_csv(path)
            except pd.errors.EmptyDataError:
                continue  # a header-less empty table carries nothing to release
            df.to_parquet(tmp / rel, index=False)
            configs[name] = rel.as_posix()
        split_ids = _split_ids(Path(corpus))
        (tmp / "splits").mkdir()
        for split, ids in split_ids.items():
            (tmp / "splits" / f"{split}.json").write_text(json.dumps(ids, indent=1) + "\n")
        acts = "\n".join(
            "- " + _half_activations(Path(store), tmp / "activations" / f"{model}_eval", model)
            for model, store in (activations or {}).items()
        )
        card = cards.dataset_card(
            rid,
            configs,
            {k: len(v) for k, v in split_ids.items()},
            [repo_id(namespace, repo_name(prefix, m)) for m in models],
            acts or None,
        )
        card.save(tmp / "README.md")
        (tmp / A.RELEASE_META).write_text(
            json.dumps(
                {
                    "repo_id": rid,
                    "repo_type": "dataset",
                    "tables": sorted(configs),
                    "iterlens_version": cards.package_version(),
                },
                indent=2,
                sort_keys=True,
            )
            + "\n"
        )
    return Path(out)


def folder_size(folder: str | Path) -> tuple[int, int]:
    """``(n_files, bytes)`` of everything under ``folder``."""
    files = [p for p in Path(folder).rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)
