"""Summary tables assembled from other tables (numbers quoted by the README and paper)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from iterlens.artifacts import model_of_table
from iterlens.data.text import load_tokens, unigram_ce_bits
from iterlens.io import read_table
from iterlens.probing.bootstrap import Examples, estimate, estimate_difference
from iterlens.report.uncertainty import (
    all_sums,
    by_distance,
    info_gain,
    masked_mean,
    model_info,
    n_layers_in,
    put_estimate,
    transfer_masks,
)


def lm_summary(groups: dict[str, tuple[str, str, str]], metrics: dict[str, str]) -> pd.DataFrame:
    """Held-out loss of each LM (its logit lens at the last layer) vs its unigram baseline.

    Each studied LM reads the corpus with its own tokenizer, so each has its own unigram
    baseline, the row ``<name>_unigram``, before the rows of its models.

    Args:
        groups: studied LM name -> (train tokens the unigram is estimated on, the eval
            store whose targets it is scored on, a readout whose width is the vocabulary).
        metrics: probed LM name -> its ``lens_metrics.csv``; each goes under the group of
            its studied model (:func:`iterlens.artifacts.parse_model_name`).
    """
    from iterlens.artifacts import parse_model_name
    from iterlens.probing.readout import Readout
    from iterlens.probing.store import ActivationStore

    rows = []
    for group, (train_tokens, eval_store, vocab_of) in groups.items():
        vocab = Readout.load(vocab_of).n_classes
        targets = ActivationStore(eval_store).column("targets").numpy()
        unigram = unigram_ce_bits(np.asarray(load_tokens(train_tokens)), targets, vocab)
        rows.append(
            {"model": f"{group}_unigram", "ce_bits": unigram, "ce_nats": unigram * math.log(2)}
        )
        for name, path in metrics.items():
            if parse_model_name(name).base != group:
                continue
            table = read_table(path)
            last = table[(table["lens"] == "logit")].sort_values("layer").iloc[-1]
            rows.append(
                {
                    "model": name,
                    "ce_bits": last["ce_bits"],
                    "ce_nats": last["ce_bits"] * math.log(2),
                    "bits_per_byte": last["bits_per_byte"],
                }
            )
    return pd.DataFrame(rows)


def comparison_table(metrics: list[str], examples: list[str]) -> pd.DataFrame:
    """The table behind the comparison figure, one long table for all models (and seeds).

    Per model: probe accuracy and tuned-lens KL (bits and ``_frac``) by relative depth, and
    the mean transfer penalty by relative layer distance over layers 1..L (bits and ``_frac``),
    each with its interval. Tables are named by their folder (``results/tables/<model>/``);
    the ``seed`` column is the seed replicate named in the model's name (0 for the base name).
    """
    rows = []
    for m_path, e_path in zip(metrics, examples, strict=True):
        model, weights, seed = _split_name(model_of_table(m_path))
        table = read_table(m_path)
        keys = {"model": model, "weights": weights, "seed": seed}
        n_layers = int(table["layer"].max())
        for lens, prefix, cols in (
            ("probe", "probe_top1_acc", "top1_acc"),
            ("tuned", "tuned_kl_bits", "kl_bits"),
            ("tuned", "tuned_kl_frac", "kl_frac"),
            ("logit", "logit_kl_bits", "kl_bits"),
        ):
            part = table[table["lens"] == lens].set_index("layer")
            for layer, r in part.iterrows():
                rows.append(
                    {
                        **keys,
                        "layer": layer,
                        "depth_frac": layer / n_layers,
                        "quantity": prefix,
                        "value": r[cols],
                        "value_lo": r[f"{cols}_lo"],
                        "value_hi": r[f"{cols}_hi"],
                    }
                )
        info = table.iloc[0]
        for _, r in by_distance(Examples.load(e_path)).iterrows():
            for name in ("transfer_ce_penalty_bits", "transfer_ce_penalty_frac"):
                blank = not bool(info["informative"])
                rows.append(
                    {
                        **keys,
                        "abs_distance": int(r["abs_distance"]),
                        "rel_distance": r["rel_distance"],
                        "quantity": name,
                        "value": np.nan if blank else r[name],
                        "value_lo": np.nan if blank else r[f"{name}_lo"],
                        "value_hi": np.nan if blank else r[f"{name}_hi"],
                    }
                )
    return pd.DataFrame(rows)


def _split_name(name: str) -> tuple[str, str, int]:
    """``(architecture, "trained" or "untrained", seed replicate)`` of a model name."""
    from iterlens.artifacts import parse_model_name

    parsed = parse_model_name(name)
    return parsed.base, "untrained" if parsed.twin == "random" else "trained", parsed.replicate


def headline_row(name: str, ex: Examples) -> dict:
    """The headline numbers of one model, each with its 95% interval (``_lo``, ``_hi``).

    Transfer CE penalties: mean over adjacent layers (|i-j| = 1) and over far layers
    (|i-j| >= L/2), both among layers 1..L, and layer 0 apart (``layer0_lens``: lens 0 on
    layers 1..L; ``layer0_data``: lenses 1..L on layer 0); the mean and max shared-lens CE
    penalty against the per-layer tuned lens (layers 0..L-1); tuned and logit lens KL averaged
    over layers 0..L-1 and their paired difference; the best probe top-1 accuracy and the
    probe plateau layer (first layer within 0.01 of the best). Every penalty also as
    ``_frac`` of ``info_gain_bits``; KL-to-final numbers are NaN for a not-informative model.
    """
    sums = all_sums(ex)
    info = model_info(ex, sums)
    n_layers = n_layers_in(ex)
    row = {"model": name, "n_layers": n_layers, **info}
    blank = not info["informative"]
    below = slice(0, n_layers)
    if ex.transfer:
        for part, mask in transfer_masks(n_layers).items():
            for frac in (False, True):
                stat = masked_mean("ce", mask, frac)
                col = f"transfer_ce_penalty_{part}_{'frac' if frac else 'bits'}"
                put_estimate(row, col, estimate(stat, sums), blank)

    def shared_penalty(m):
        return (m["shared.ce_bits"] - m["tuned.ce_bits"])[:, below]

    for how, fn in (("mean", np.mean), ("max", np.max)):
        put_estimate(
            row,
            f"shared_ce_penalty_{how}_bits",
            estimate(lambda m, f=fn: f(shared_penalty(m), 1), sums),
            blank,
        )
        put_estimate(
            row,
            f"shared_ce_penalty_{how}_frac",
            estimate(lambda m, f=fn: f(shared_penalty(m), 1) / info_gain(m), sums),
            blank,
        )
    for lens in ("logit", "tuned"):
        put_estimate(
            row,
            f"{lens}_kl_mean_bits",
            estimate(lambda m, k=f"{lens}.kl_bits": m[k][:, below].mean(1), sums),
            blank,
        )
    put_estimate(
        row,
        "tuned_minus_logit_kl_mean_bits",
        estimate(lambda m: (m["tuned.kl_bits"] - m["logit.kl_bits"])[:, below].mean(1), sums),
        blank,
    )
    put_estimate(row, "probe_best_top1_acc", estimate(lambda m: m["probe.top1_acc"].max(1), sums))

    def plateau(m):
        acc = m["probe.top1_acc"]
        return np.argmax(acc >= acc.max(1, keepdims=True) - 0.01, axis=1).astype(float)

    put_estimate(row, "probe_plateau_layer", estimate(plateau, sums))
    return row


def headline_table(metrics: list[str], examples: list[str]) -> pd.DataFrame:
    """The headline numbers quoted in the README, one row per model (see :func:`headline_row`).

    The point estimates equal those of the per-model tables; intervals come from the
    per-example values beside them.
    """
    rows = []
    for m_path, e_path in zip(metrics, examples, strict=True):
        row = headline_row(model_of_table(m_path), Examples.load(e_path))
        table = read_table(m_path)
        if "seed" in table:
            row["seed"] = table["seed"].iloc[0]
        rows.append(row)
    return pd.DataFrame(rows)


# Contrasts that carry the argument, on the common scale (and in bits where meaningful).
CONTRAST_METRICS = (
    "transfer_ce_penalty_adjacent_frac",
    "transfer_ce_penalty_far_frac",
    "shared_ce_penalty_mean_frac",
)


def contrast_table(examples: list[str], pairs: Sequence[tuple[str, str, bool]]) -> pd.DataFrame:
    """Differences ``a - b`` between models: paired (the same images) or unpaired.

    The pairs come from the table of studied models
    (:meth:`iterlens.models.studied.Study.contrasts`: each residual minus each plain CNN,
    paired; each LM minus each CNN, unpaired). One row per contrast and metric:
    ``estimate``, ``estimate_lo``, ``estimate_hi``, ``paired``. Models are named by their
    folders; pairs absent from ``examples`` are skipped.
    """
    named = {model_of_table(p): p for p in examples}
    loaded = {name: Examples.load(path) for name, path in named.items()}
    rows = []
    for a, b, paired in pairs:
        if a not in loaded or b not in loaded:
            continue
        ex_a, ex_b = loaded[a], loaded[b]
        sums_a, sums_b = all_sums(ex_a), all_sums(ex_b)
        info_a, info_b = model_info(ex_a, sums_a), model_info(ex_b, sums_b)
        for metric in CONTRAST_METRICS:
            stat_a, stat_b = _headline_stat(metric, ex_a), _headline_stat(metric, ex_b)
            est = estimate_difference(stat_a, sums_a, stat_b, sums_b, paired=paired)
            ok = info_a["informative"] and info_b["informative"]
            row = {"contrast": f"{a} - {b}", "metric": metric, "paired": paired}
            put_estimate(row, "estimate", est, blank=not ok)
            rows.append(row)
    columns = ["contrast", "metric", "paired", "estimate", "estimate_lo", "estimate_hi"]
    return pd.DataFrame(rows, columns=columns)


def _headline_stat(metric: str, ex: Examples):
    """The statistic behind one ``_frac`` headline column (for contrasts)."""
    n_layers = n_layers_in(ex)
    if metric.startswith("transfer_ce_penalty_"):
        part = metric.removeprefix("transfer_ce_penalty_").removesuffix("_frac")
        return masked_mean("ce", transfer_masks(n_layers)[part], frac=True)
    if metric == "shared_ce_penalty_mean_frac":
        return lambda m: (
            (m["shared.ce_bits"] - m["tuned.ce_bits"])[:, :n_layers].mean(1) / info_gain(m)
        )
    raise ValueError(f"no statistic for contrast metric '{metric}'")


def seeds_table(tables: list[str]) -> pd.DataFrame:
    """Mean and spread over seed replicates of every number in per-model summary tables.

    Each input table has a ``model`` column (the headline table, the vision summary); rows
    are grouped by model with the seed suffix removed (``cnn_plain``, ``cnn_plain_s1``, ...
    are one group; see :func:`iterlens.artifacts.model_name`). One row per (model, metric):
    ``n_seeds``, ``mean``, ``std`` (sample standard deviation, missing for one seed),
    ``min``, ``max``.
    """
    from iterlens.artifacts import model_name, parse_model_name

    rows = []
    for path in tables:
        table = read_table(path)
        parsed = table["model"].map(parse_model_name)
        table["group"] = [model_name(p.base, 0, p.twin) for p in parsed]
        numeric = [c for c in table.columns if c not in ("model", "group")]
        numeric = [c for c in numeric if pd.api.types.is_numeric_dtype(table[c])]
        for group, part in table.groupby("group", sort=False):
            for metric in numeric:
                values = part[metric].dropna()
                rows.append(
                    {
                        "model": group,
                        "metric": metric,
                        "n_seeds": len(values),
                        "mean": values.mean(),
                        "std": values.std(ddof=1) if len(values) > 1 else float("nan"),
                        "min": values.min(),
                        "max": values.max(),
                    }
                )
    return pd.DataFrame(rows)
