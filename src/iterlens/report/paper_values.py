"""Named values for the paper and the README, each read from a table a rule wrote.

Every number the manuscript prints is an entry of ``values.json``: its value, the text it is
printed as, the table it comes from and a *spec* saying how it was computed (rows selected,
column, reduction). :func:`evaluate` recomputes a value from its spec, so a test can check
every printed number against its source. Statements of direction ("the residual twin
transfers better") are boolean *claims* computed from named values; the finding sentences
(:mod:`iterlens.report.findings`), picked by the claims, are stored with them, so the README
and the paper print the same ones. The controls' values are in
:mod:`iterlens.report.control_values`. Inputs that a run may lack (the vision control,
intervals, normalised penalties, rotated twins, vocabulary pages, the release) make their
values absent and their ``has`` flag false, never an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from iterlens import artifacts as A
from iterlens.config import validate
from iterlens.io import read_table
from iterlens.models.studied import LM_DOMAIN, REFERENCE_SECTION, ROLES, VISION_DOMAIN, Study
from iterlens.report import control_values
from iterlens.report.control_values import dose_key
from iterlens.report.findings import findings
from iterlens.report.paper_figures import figure_entries, figure_groups
from iterlens.report.values import Values

SCHEMA_VERSION = 2  # 2: the findings, the sentences the README and the paper share
LENSES = ["logit", "tuned", "shared", "probe"]
# Per-layer columns of the paper's layer tables (a row per layer): (label, short label for a
# column header, lens, column, minus-lens or None).
LAYER_ROWS = [
    ("KL logit lens", "KL logit", "logit", "kl_bits", None),
    ("KL tuned lens", "KL tuned", "tuned", "kl_bits", None),
    ("shared-lens CE penalty", "shared pen.", "shared", "ce_bits", "tuned"),
    ("probe top-1 acc", "probe top-1", "probe", "top1_acc", None),
]
# Headline columns printed in the paper's and README's headline tables, in order (means over
# layers 1..L-1; layer 0 apart in headline.csv).
HEADLINE_COLUMNS = [
    "transfer_ce_penalty_adjacent_up_bits",
    "transfer_ce_penalty_adjacent_down_bits",
    "transfer_ce_penalty_far_bits",
    "transfer_kept_adjacent",
    "transfer_agree_adjacent",
    "shared_ce_penalty_mean_bits",
    "shared_ce_penalty_max_bits",
    "logit_beats_shared_layers",
    "logit_kl_mean_bits",
    "tuned_kl_mean_bits",
    "probe_best_top1_acc",
    "probe_plateau_layer",
]
# Normalised headline columns (the scales on which domains may be compared), in order.
SCALED_COLUMNS = [
    "transfer_ce_penalty_adjacent_frac",
    "transfer_ce_penalty_adjacent_blocks",
    "transfer_ce_penalty_far_frac",
    "shared_ce_penalty_mean_frac",
    "shared_ce_penalty_mean_blocks",
]
# The main table of the paper and the README: every studied model on the scales all of them
# share (bounded or normalised means over layers 1..L-1), with intervals.
MAIN_COLUMNS = [
    "logit_kl_mean_frac",
    "tuned_kl_mean_frac",
    "shared_kl_mean_frac",
    "transfer_kept_adjacent",
    "transfer_kept_far",
    "probe_best_top1_acc",
]
# Outputs of later stages the paper reports on when a run has them.
OPTIONAL_DIRS = {"vocab": "results/vocab", "release": "results/release"}


def _headline(vals: Values, models: list[str]) -> None:
    table = A.HEADLINE
    frame = read_table(vals.root / table)
    for model in models:
        for column in frame.columns:
            if column in ("model",) or column.endswith(("_lo", "_hi")):
                continue
            if pd.api.types.is_numeric_dtype(frame[column]):
                vals.add(
                    f"{model}.{column}",
                    {"table": table, "where": {"model": model}, "column": column, "agg": "first"},
                    f"headline row of {model}, column {column}",
                )


def _layers(vals: Values, model: str) -> dict[str, Any]:
    table = A.LENS_METRICS.format(model=model)
    frame = read_table(vals.root / table)
    n_layers = int(frame["layer"].max())
    measured = set(zip(frame["lens"], frame["layer"], strict=True))
    rows = []
    for label, short, lens, column, minus in LAYER_ROWS:
        names = []
        for layer in range(n_layers + 1):
            if (lens, layer) not in measured:  # a probe on a layer subset: printed as absent
                names.append(f"{model}.{lens}.{column}{'_penalty' if minus else ''}.layer{layer}")
                continue
            name = f"{model}.{lens}.{column}{'_penalty' if minus else ''}.layer{layer}"
            spec = {
                "table": table,
                "where": {"lens": lens, "layer": layer},
                "column": column,
                "agg": "first",
            }
            how = f"{lens} lens, layer {layer}, column {column}"
            if minus:
                spec.update(minus={"lens": minus}, pair_on="layer")
                how += f" minus the {minus} lens's"
            vals.add(name, spec, how)
            names.append(name)
        rows.append({"label": label, "short": short, "names": names})
    # Summaries over the inner layers 1..L-1, where the shared lens is fitted (layer 0, the
    # embeddings or stem, is reported apart; at layer L the logit lens is exact).
    inner = list(range(1, n_layers)) or [0]
    shared = {
        "table": table,
        "where": {"lens": "shared", "layer": inner},
        "column": "ce_bits",
        "minus": {"lens": "tuned"},
        "pair_on": "layer",
    }
    for agg in ("min", "max"):
        vals.add(
            f"{model}.shared_penalty_inner_{agg}",
            {**shared, "agg": agg},
            f"{agg} over layers 1..L-1 of shared minus tuned CE",
        )
    below = list(range(n_layers))
    vals.add(
        f"{model}.tuned_minus_logit_kl_max",
        {
            "table": table,
            "where": {"lens": "tuned", "layer": below},
            "column": "kl_bits",
            "minus": {"lens": "logit"},
            "pair_on": "layer",
            "agg": "max",
        },
        "max over layers 0..L-1 of tuned minus logit-lens KL",
    )
    if "kl_minus_logit_bits_hi" in frame.columns:
        vals.add(
            f"{model}.tuned_minus_logit_kl_hi_max",
            {
                "table": table,
                "where": {"lens": "tuned", "layer": below},
                "column": "kl_minus_logit_bits_hi",
                "agg": "max",
            },
            "max over layers 0..L-1 of the upper 95% bound of tuned minus logit-lens KL (paired)",
        )
    for end, layer in (("first", 0), ("last", n_layers)):
        if ("probe", layer) not in measured:  # a probe on a layer subset (probe.layers)
            continue
        vals.add(
            f"{model}.probe_top1_acc_{end}",
            {
                "table": table,
                "where": {"lens": "probe", "layer": layer},
                "column": "top1_acc",
                "agg": "first",
            },
            f"probe top-1 accuracy, layer {layer}",
        )
    return {"model": model, "n_layers": n_layers, "source": table, "rows": rows}


def _simple_table(vals: Values, table: str, key: str) -> list[str]:
    path = vals.root / table
    if not path.exists():
        return []
    frame = read_table(path)
    for _, row in frame.iterrows():
        for column in frame.columns:
            if (
                column != key
                and pd.api.types.is_numeric_dtype(frame[column])
                and not column.endswith(("_lo", "_hi"))
                and pd.notna(row[column])
            ):
                vals.add(
                    f"{table.split('/')[-1][:-4]}.{row[key]}.{column}",
                    {"table": table, "where": {key: row[key]}, "column": column, "agg": "first"},
                    f"row {row[key]}, column {column}",
                )
    return list(frame[key])


def lm_claim(name: str, lm: str, lead: str) -> str:
    """The name of an LM's claim: ``name`` for the lead LM (role ``lm``), else ``<lm>.<name>``."""
    return name if lm == lead else f"{lm}.{name}"


def _lm_claims(vals: Values, lm: str, lead: str) -> None:
    """The claims read about one language model (named by :func:`lm_claim`)."""
    for name, left, op, right, says in (
        ("tuned_beats_logit", f"{lm}.tuned_minus_logit_kl_max", "<", 0.0,
         f"the tuned lens has lower KL than the logit lens at every layer 0..L-1 of {lm}"),
        ("tuned_beats_logit_clear", f"{lm}.tuned_minus_logit_kl_hi_max", "<", 0.0,
         "... and at every one of them the paired 95% interval of the difference is below 0"),
        ("lm_far_worse", f"{lm}.transfer_ce_penalty_far_bits", ">",
         f"{lm}.transfer_ce_penalty_adjacent_bits", f"{lm}'s transfer is worse between far layers"),
        ("logit_beats_shared", f"{lm}.logit_beats_shared_layers", ">", 0,
         f"at some layer of 1..L-1 the parameter-free logit lens is closer to {lm}'s final "
         "distribution than the shared lens (paired 95% interval above zero)"),
    ):  # fmt: skip
        vals.claim(lm_claim(name, lm, lead), left, op, right, says)


def _claims(vals: Values, roles: dict[str, str], lms: Sequence[str] = ()) -> None:
    """The claims the argument reads, over the models of each role and every trained LM.

    Roles are those of :meth:`iterlens.models.studied.Study.roles`; a claim whose role is
    absent holds None. ``lms``: the language models of the table (the lead first).
    """
    c = vals.claim
    lm, plain, residual = (roles.get(r, f"<no {r}>") for r in ROLES)
    for model in lms or [lm]:
        _lm_claims(vals, model, lm)
    c(
        "residual_transfers_better",
        f"{residual}.transfer_ce_penalty_adjacent_bits",
        "<",
        f"{plain}.transfer_ce_penalty_adjacent_bits",
        f"{residual} transfers better between adjacent blocks than {plain}",
    )
    c(
        "residual_transfers_better_clear",
        f"{residual}.transfer_ce_penalty_adjacent_bits_hi",
        "<",
        f"{plain}.transfer_ce_penalty_adjacent_bits_lo",
        "... and the two 95% intervals do not overlap",
    )
    c(
        "residual_transfers_better_over_seeds",
        f"{residual}.seeds.transfer_ce_penalty_adjacent_bits_hi",
        "<",
        f"{plain}.seeds.transfer_ce_penalty_adjacent_bits_lo",
        "... and so does the recipe: the intervals over seeds do not overlap",
    )
    c(
        "lm_transfers_better_than_plain",
        f"{lm}.transfer_ce_penalty_adjacent_frac",
        "<",
        f"{plain}.transfer_ce_penalty_adjacent_frac",
        f"{lm} loses less of its information gain between adjacent layers than {plain} "
        "(a model over a vocabulary and a 10-way one compared only on the normalised scale)",
    )
    for role in ROLES:
        net = roles.get(role, f"<no {role}>")
        c(
            f"{role}_transfer_beyond_gain",
            f"{net}.transfer_ce_penalty_adjacent_frac",
            ">",
            1.0,
            f"a lens moved to an adjacent layer of {net} loses more than the information gain: "
            "it does worse than the prior, so the penalty measures confident error",
        )
        c(
            f"{role}_probe_rises",
            f"{net}.probe_top1_acc_last",
            ">",
            f"{net}.probe_top1_acc_first",
            f"free-probe accuracy of {net} is higher at the last layer than at layer 0",
        )


def collect(
    root: str | Path,
    figures: Sequence[str],
    captions: str | Path,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every named value of the paper, from the tables of the run in ``root``.

    Args:
        root: the run's working directory (holding ``results/``); table paths in specs, and
            figure paths, are relative to it.
        figures: figure files (under ``root``) the paper shows, in order.
        captions: folder of ``<figure>.rst`` captions (those of ``snakemake --report``).
        config: the run's validated config (for model sizes); optional.

    Returns:
        The contents of ``values.json``: values, claims, what the run has, the tables and
        figures the paper prints, and ``findings`` (``{"key", "text"}``, in the README's order).
    """
    vals = Values(root)
    study = Study.of(validate({k: v for k, v in (config or {}).items() if k == "models"}))
    roles = study.roles()
    models = list(read_table(vals.root / A.HEADLINE)["model"])
    _headline(vals, models)
    # Per-layer tables: every trained model, and each untrained LM (its control).
    layer_tables = [
        _layers(vals, m)
        for m in models
        if A.parse_model_name(m).twin != "random" or study.entry_of(m).domain == LM_DOMAIN
    ]
    loss_rows = _simple_table(vals, A.LM_SUMMARY, "model")
    _simple_table(vals, A.VISION_SUMMARY, "model")
    frac_columns = [c for c in SCALED_COLUMNS if any(f"{m}.{c}" in vals.values for m in models)]
    seed_rows = control_values.seeds(  # (the plain adjacent penalty: the CNN claim reads it)
        vals,
        list(
            dict.fromkeys(
                HEADLINE_COLUMNS
                + frac_columns
                + MAIN_COLUMNS
                + ["transfer_ce_penalty_adjacent_bits"]
            )
        ),
    )
    informative = _informative(vals.root)
    lms = [m.name for m in study.of_domain(LM_DOMAIN) if m.name in models]
    _claims(vals, roles, lms)
    rotated = control_values.rotated(vals)
    dose = control_values.dose(vals)
    out = {
        "schema": SCHEMA_VERSION,
        "values": vals.values,
        "claims": vals.claims,
        "has": {
            "vision": any(study.entry_of(m).domain == VISION_DOMAIN for m in models),
            "intervals": any(k.endswith("_lo") for k in vals.values),
            "frac": bool(frac_columns),
            "rotated": bool(rotated),
            "vocab": _nonempty(vals.root / OPTIONAL_DIRS["vocab"]),
            "release": _nonempty(vals.root / OPTIONAL_DIRS["release"]),
        },
        "vocab_pages": _vocab_pages(
            vals.root, [m for m in models if study.entry_of(m).domain == LM_DOMAIN]
        ),
        "models": models,
        "roles": roles,
        "lms": lms,
        "studied": study.describe(),
        "headline_columns": list(HEADLINE_COLUMNS) + frac_columns,
        # The main table's rows: every studied model (seed 0) with an informative final
        # distribution, in the study's order; the models without one are named in the text.
        "main_models": [m.name for m in study.models if informative.get(m.name)],
        "main_columns": [c for c in MAIN_COLUMNS if any(f"{m}.{c}" in vals.values for m in models)],
        "not_informative": [m for m in models if m in informative and not informative[m]],
        "seed_rows": seed_rows,
        "loss_models": loss_rows,
        "rotated_families": rotated,
        "dose_families": list(dose),
        "dose_t": {fam: [{"t": t, "key": dose_key(t)} for t in grid] for fam, grid in dose.items()},
        "layer_tables": layer_tables,
        "figures": figure_entries(figures, root, captions, figure_groups(study.describe())),
        "config": _config_values(config or {}),
    }
    out["findings"] = findings(out)
    return out


def _informative(root: Path) -> dict[str, bool]:
    """Whether each model of the headline table has an informative final distribution."""
    frame = read_table(root / A.HEADLINE)
    if "informative" not in frame:
        return dict.fromkeys(frame["model"], True)
    return {m: bool(v) for m, v in zip(frame["model"], frame["informative"], strict=True)}


def _vocab_pages(root: Path, lms: Sequence[str]) -> list[dict]:
    """The vocabulary and lens-explorer pages of the LMs (twins included) that have them."""
    from iterlens.vocab.pipeline import index_entries

    folders = [root / A.VOCAB_DIR.format(model=m) for m in lms]
    folders = [f for f in folders if (f / A.VOCAB_META).is_file()]
    return index_entries(folders, root / A.PAPER_DIR)


def _nonempty(path: Path) -> bool:
    return path.is_dir() and any(p.is_file() for p in path.rglob("*"))


def _config_values(config: dict[str, Any]) -> dict[str, Any]:
    lm = config.get(REFERENCE_SECTION, {})
    keep = ("n_layer", "n_embd", "n_head", "steps", "batch_size", "seq_len")
    fit_keys = ("steps", "batch_size", "lr", "holdout_fraction")
    return {
        "seed": config.get("seed"),
        REFERENCE_SECTION: {k: lm[k] for k in keep if k in lm},
        "vocab_size": config.get("tokenizer", {}).get("vocab_size"),
        "extract": {k: v for k, v in config.get("extract", {}).items() if k.endswith("_tokens")},
        **{
            section: {k: v for k, v in config.get(section, {}).items() if k in fit_keys}
            for section in ("lens", "probe")
        },
    }
