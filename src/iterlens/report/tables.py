"""Summary tables assembled from other tables (numbers quoted by the README and paper)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from iterlens.artifacts import model_of_table, parse_model_name
from iterlens.data.text import load_tokens, unigram_ce_bits
from iterlens.io import read_table
from iterlens.probing.bootstrap import Examples, estimate, estimate_difference
from iterlens.report.uncertainty import (
    SCALES,
    all_sums,
    blocks_gain,
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
    """The table behind the paper's main figures, one long table for all models (and seeds).

    Per model: probe accuracy and the KL of the tuned, logit and shared lenses (bits and
    ``_frac``) by relative depth, and the mean transfer penalty (bits and ``_frac``) and the
    bounded share of the information gain a moved lens keeps (``transfer_kept``) by relative
    layer distance over layers 1..L-1, each with its interval. Tables are named by their folder
    (``results/tables/<model>/``); ``seed`` is the seed replicate named in the model's name (0
    for the base name), ``twin`` the control it is (``model``, ``random``, ``rotated``,
    ``partial``).
    """
    rows = []
    for m_path, e_path in zip(metrics, examples, strict=True):
        name = model_of_table(m_path)
        model, weights, seed = _split_name(name)
        table = read_table(m_path)
        twin = parse_model_name(name).twin
        keys = {"model": model, "weights": weights, "seed": seed, "twin": twin}
        n_layers = int(table["layer"].max())
        for lens, prefix, cols in (
            ("probe", "probe_top1_acc", "top1_acc"),
            ("tuned", "tuned_kl_bits", "kl_bits"),
            ("tuned", "tuned_kl_frac", "kl_frac"),
            ("logit", "logit_kl_bits", "kl_bits"),
            ("logit", "logit_kl_frac", "kl_frac"),
            ("shared", "shared_kl_frac", "kl_frac"),
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
            for name in ("transfer_ce_penalty_bits", "transfer_ce_penalty_frac", "transfer_kept"):
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
    parsed = parse_model_name(name)
    return parsed.base, "untrained" if parsed.twin == "random" else "trained", parsed.replicate


TRANSFER_PARTS = ("adjacent", "adjacent_up", "adjacent_down", "far", "far_up", "far_down")
"""The transfer summaries of the headline, over translator layers 1..L-1 (layer 0 apart)."""


def headline_row(name: str, ex: Examples) -> dict:
    """The headline numbers of one model, each with its 95% interval (``_lo``, ``_hi``).

    Every mean is over the inner layers 1..L-1 and layer 0 (embeddings, stem) is apart:

    - transfer (tuned lens i on layer j, translator layers only; see
      :func:`iterlens.report.uncertainty.transfer_masks`): the CE penalty over adjacent
      (``|i-j| = 1``) and far (``|i-j| >= L/2``) cells, both directions and each apart
      (``_up``: moved deeper), in bits, ``_frac`` (over the information gain) and ``_blocks``
      (over what the blocks add); the KL penalty to the final and the KL from the own lens;
      the bounded ``transfer_kept_*`` and ``transfer_agree_*`` (with ``transfer_agree_own_*``,
      the own lens's agreement on the same cells); lens 0 on layers 1..L-1 and lenses
      1..L-1 on layer 0 (``layer0_lens``, ``layer0_data``);
    - the shared lens's CE penalty against the per-layer tuned lens (mean and max over
      layers 1..L-1, on every scale; layer 0 apart), its KL against the logit lens's (mean,
      and the layers where a paired 95% interval puts one above the other:
      ``logit_beats_shared_layers`` counts where the parameter-free logit lens is closer to
      the final than the shared lens);
    - tuned and logit lens KL (mean over 1..L-1, layer 0 apart) and their paired difference,
      and the mean KL of the logit, tuned and shared lenses over the information gain
      (``*_kl_mean_frac``, the scale on which models are compared);
    - the best probe top-1 accuracy and the probe plateau layer (first within 0.01 of the best).

    KL- and final-derived numbers (everything but ``info``, the probe and the counts of
    layers) are NaN for a not-informative model.
    """
    sums = all_sums(ex)
    info = model_info(ex, sums)
    n_layers = n_layers_in(ex)
    row: dict = {"model": name, "n_layers": n_layers, **info}
    blank = not info["informative"]
    inner = slice(1, n_layers) if n_layers > 1 else slice(0, 1)

    def put(col: str, stat, blank_: bool = blank) -> None:
        put_estimate(row, col, None if blank_ else estimate(stat, sums), blank_)

    put("blocks_gain_bits", blocks_gain)
    if ex.transfer or blank:  # a not-informative model's transfer is NaN, measured or not
        masks = transfer_masks(n_layers)
        for part in (*TRANSFER_PARTS, "layer0_lens", "layer0_data"):
            for scale in SCALES:
                put(f"transfer_ce_penalty_{part}_{scale}", masked_mean("ce", masks[part], scale))
        for part in ("adjacent", "far"):
            put(f"transfer_kl_penalty_{part}_bits", masked_mean("kl", masks[part]))
            put(f"transfer_kl_own_{part}_bits", masked_mean("kl_own", masks[part]))
            for metric in ("kept", "agree", "agree_own"):
                put(f"transfer_{metric}_{part}", masked_mean(metric, masks[part]))

    def shared_penalty(m):
        return m["shared.ce_bits"] - m["tuned.ce_bits"]

    for how, fn in (("mean", np.mean), ("max", np.max)):
        for scale, by in SCALES.items():
            put(
                f"shared_ce_penalty_{how}_{scale}",
                lambda m, f=fn, b=by: f(shared_penalty(m)[:, inner], 1) / (b(m) if b else 1),
            )
    put("shared_ce_penalty_layer0_bits", lambda m: shared_penalty(m)[:, 0])
    for lens in ("logit", "tuned"):
        put(f"{lens}_kl_mean_bits", lambda m, k=f"{lens}.kl_bits": m[k][:, inner].mean(1))
        put(f"{lens}_kl_layer0_bits", lambda m, k=f"{lens}.kl_bits": m[k][:, 0])
    for lens in ("logit", "tuned", "shared"):  # the scale on which models are compared
        put(
            f"{lens}_kl_mean_frac",
            lambda m, k=f"{lens}.kl_bits": m[k][:, inner].mean(1) / info_gain(m),
        )
    put(
        "tuned_minus_logit_kl_mean_bits",
        lambda m: (m["tuned.kl_bits"] - m["logit.kl_bits"])[:, inner].mean(1),
    )
    put(
        "shared_minus_logit_kl_mean_bits",
        lambda m: (m["shared.kl_bits"] - m["logit.kl_bits"])[:, inner].mean(1),
    )
    layers = np.arange(n_layers + 1)[inner]
    _, lo, hi = estimate_difference(
        lambda m: m["shared.kl_bits"], sums, lambda m: m["logit.kl_bits"], sums, paired=True
    )
    worse, better = layers[lo[layers] > 0], layers[hi[layers] < 0]
    row["shared_layers_compared"] = len(layers)
    row["logit_beats_shared_layers"] = np.nan if blank else len(worse)
    row["shared_beats_logit_layers"] = np.nan if blank else len(better)
    row["logit_beats_shared_at"] = "" if blank else " ".join(str(x) for x in worse)
    # a probe on a layer subset is NaN at the other layers: reduced over its own layers
    put("probe_best_top1_acc", lambda m: np.nanmax(m["probe.top1_acc"], 1), False)

    def plateau(m):
        acc = m["probe.top1_acc"]
        return np.argmax(acc >= np.nanmax(acc, 1, keepdims=True) - 0.01, axis=1).astype(float)

    put("probe_plateau_layer", plateau, False)
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


# Contrasts that carry the argument, on the common scales (never in raw bits across domains).
CONTRAST_METRICS = (
    "transfer_ce_penalty_adjacent_frac",
    "transfer_ce_penalty_far_frac",
    "transfer_ce_penalty_adjacent_blocks",
    "transfer_kept_adjacent",
    "shared_ce_penalty_mean_frac",
    "shared_ce_penalty_mean_blocks",
)


def contrast_table(examples: list[str], pairs: Sequence[tuple[str, str, bool]]) -> pd.DataFrame:
    """Differences ``a - b`` between models: paired (the same images) or unpaired.

    The pairs come from the table of studied models
    (:meth:`iterlens.models.studied.Study.contrasts`: each residual minus each plain CNN,
    paired; each LM minus each CNN, unpaired). One row per contrast and metric:
    ``estimate``, ``estimate_lo``, ``estimate_hi``, ``paired``. Only normalised or bounded
    metrics are contrasted, so a 4096-way LM and a 10-way CNN are never compared in bits.
    Models are named by their folders; pairs absent from ``examples`` are skipped.
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
            ok = info_a["informative"] and info_b["informative"]
            est = estimate_difference(stat_a, sums_a, stat_b, sums_b, paired) if ok else None
            row = {"contrast": f"{a} - {b}", "metric": metric, "paired": paired}
            put_estimate(row, "estimate", est, blank=not ok)
            rows.append(row)
    columns = ["contrast", "metric", "paired", "estimate", "estimate_lo", "estimate_hi"]
    return pd.DataFrame(rows, columns=columns)


def _headline_stat(metric: str, ex: Examples):
    """The statistic behind one headline column (for contrasts)."""
    n_layers = n_layers_in(ex)
    masks = transfer_masks(n_layers)
    scale = metric.rsplit("_", 1)[-1]
    if metric.startswith("transfer_ce_penalty_"):
        part = metric.removeprefix("transfer_ce_penalty_").removesuffix(f"_{scale}")
        return masked_mean("ce", masks[part], scale)
    if metric.startswith("transfer_kept_"):
        return masked_mean("kept", masks[metric.removeprefix("transfer_kept_")])
    if metric.startswith("shared_ce_penalty_mean_"):
        inner = slice(1, n_layers) if n_layers > 1 else slice(0, 1)
        by = SCALES[scale]
        return lambda m: (
            (m["shared.ce_bits"] - m["tuned.ce_bits"])[:, inner].mean(1) / (by(m) if by else 1)
        )
    raise ValueError(f"no statistic for contrast metric '{metric}'")


def seeds_table(tables: list[str]) -> pd.DataFrame:
    """Mean and spread over seed replicates of every number in per-model summary tables.

    Each input table has a ``model`` column (the headline table, the vision summary); rows
    are grouped by model with the seed suffix removed (``cnn_plain``, ``cnn_plain_s1``, ...
    are one group; see :func:`iterlens.artifacts.model_name`). One row per (model, metric):
    ``n_seeds``, ``mean``, ``std`` (sample standard deviation, missing for one seed),
    ``min``, ``max``, and ``lo``/``hi``: the 95% interval of the mean over seeds for a
    claim about the training recipe rather than one checkpoint (see :func:`seed_interval`;
    only where the table has the metric's ``_lo``/``_hi``, which are not rows of their own),
    and ``half``, its half-width.
    """
    from iterlens.artifacts import model_name, parse_model_name

    rows = []
    for path in tables:
        table = read_table(path)
        parsed = table["model"].map(parse_model_name)
        table["group"] = [model_name(p.base, 0, p.twin) for p in parsed]
        numeric = [c for c in table.columns if c not in ("model", "group")]
        numeric = [c for c in numeric if pd.api.types.is_numeric_dtype(table[c])]
        bounds = {f"{c}_{end}" for c in numeric for end in ("lo", "hi")}
        for group, part in table.groupby("group", sort=False):
            for metric in (c for c in numeric if c not in bounds):
                values = part[metric].dropna()
                row = {
                    "model": group,
                    "metric": metric,
                    "n_seeds": len(values),
                    "mean": values.mean(),
                    "std": values.std(ddof=1) if len(values) > 1 else float("nan"),
                    "min": values.min(),
                    "max": values.max(),
                    "lo": float("nan"),
                    "hi": float("nan"),
                    "half": float("nan"),
                }
                if {f"{metric}_lo", f"{metric}_hi"} <= set(part.columns):
                    kept = part.loc[values.index]
                    half = (kept[f"{metric}_hi"] - kept[f"{metric}_lo"]) / 2
                    row["lo"], row["hi"] = seed_interval(values.to_numpy(), half.to_numpy())
                    row["half"] = (row["hi"] - row["lo"]) / 2
                rows.append(row)
    return pd.DataFrame(rows)


def seed_interval(values: np.ndarray, half_widths: np.ndarray) -> tuple[float, float]:
    """A 95% interval for the mean over seeds that keeps the eval set's sampling error.

    Every seed is measured on the same eval set, so the spread over seeds holds the
    training's and lens fit's randomness but not the eval sampling, which averaging seeds
    does not shrink. The half-width adds the two in quadrature:
    ``sqrt((t_{n-1} * std / sqrt(n))^2 + mean(half_widths)^2)``, with ``t_{n-1}`` the
    97.5% Student quantile; one seed gives its value ± its own half-width.
    """
    from scipy.stats import t as student_t

    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    sampling = float(np.nanmean(half_widths)) if np.isfinite(half_widths).any() else np.nan
    seeds = student_t.ppf(0.975, n - 1) * np.std(values, ddof=1) / math.sqrt(n) if n > 1 else 0.0
    half = math.hypot(seeds, sampling)
    mean = float(np.mean(values))
    return mean - half, mean + half
