"""Summary tables assembled from other tables (numbers quoted by the README and paper)."""

from __future__ import annotations

import math

import pandas as pd

from iterlens.artifacts import model_of_table
from iterlens.data.text import load_tokens, unigram_ce_bits
from iterlens.io import read_table


def lm_summary(
    train_tokens: str, eval_store: str, vocab_of: str, metrics: dict[str, str]
) -> pd.DataFrame:
    """Held-out loss of each LM (its logit lens at the last layer) vs the unigram baseline.

    Args:
        train_tokens: token stream the unigram is estimated on.
        eval_store: the eval activation store; the unigram is scored on its targets.
        vocab_of: a readout file whose output width is the vocabulary size.
        metrics: model name -> its ``lens_metrics.csv``.
    """
    import numpy as np

    from iterlens.probing.readout import Readout
    from iterlens.probing.store import ActivationStore

    vocab = Readout.load(vocab_of).n_classes
    store = ActivationStore(eval_store)
    targets = np.concatenate(
        [store.load_shard(i)["targets"].numpy() for i in range(len(store.manifest["shards"]))]
    )
    unigram = unigram_ce_bits(np.asarray(load_tokens(train_tokens)), targets, vocab)
    rows = [{"model": "unigram", "ce_bits": unigram, "ce_nats": unigram * math.log(2)}]
    for name, path in metrics.items():
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


def comparison_table(metrics: list[str], transfers: list[str]) -> pd.DataFrame:
    """The table behind the comparison figure, one long table for all models.

    Per model and weights: probe accuracy and tuned-lens KL by relative depth, and the
    mean transfer penalty by relative layer distance.

    Tables are named by their folder (``results/tables/<model>[_random]/``).
    """
    from iterlens.probing.transfer import penalty_by_distance

    rows = []
    for path in metrics:
        name = model_of_table(path)
        model, weights = _split_name(name)
        table = read_table(path)
        wide = table.pivot(index="layer", columns="lens", values=["top1_acc", "kl_bits"])
        n_layers = int(table["layer"].max())
        for layer in wide.index:
            rows.append(
                {
                    "model": model,
                    "weights": weights,
                    "layer": layer,
                    "depth_frac": layer / n_layers,
                    "probe_top1_acc": wide.loc[layer, ("top1_acc", "probe")],
                    "tuned_kl_bits": wide.loc[layer, ("kl_bits", "tuned")],
                    "logit_kl_bits": wide.loc[layer, ("kl_bits", "logit")],
                }
            )
    for path in transfers:
        model, weights = _split_name(model_of_table(path))
        for _, r in penalty_by_distance(read_table(path)).iterrows():
            rows.append(
                {
                    "model": model,
                    "weights": weights,
                    "abs_distance": int(r["abs_distance"]),
                    "rel_distance": r["rel_distance"],
                    "transfer_ce_penalty_bits": r["ce_penalty_bits"],
                    "transfer_kl_penalty_bits": r["kl_penalty_bits"],
                }
            )
    return pd.DataFrame(rows)


def _split_name(name: str) -> tuple[str, str]:
    if name.endswith("_random"):
        return name[: -len("_random")], "untrained"
    return name, "trained"


def headline_table(metrics: list[str], transfers: list[str]) -> pd.DataFrame:
    """The headline numbers quoted in the README, one row per model.

    Columns: mean transfer CE penalty between adjacent layers (|i-j| = 1) and between far
    layers (|i-j| >= L/2); the mean and max shared-lens CE penalty against the per-layer tuned
    lens (layers 0..L-1); tuned and logit lens KL averaged over layers 0..L-1; the probe
    plateau layer (first layer whose probe top-1 accuracy is within 0.01 of its best).
    """
    rows = []
    for m_path, t_path in zip(metrics, transfers, strict=True):
        name = model_of_table(m_path)
        table = read_table(m_path)
        transfer = read_table(t_path)
        n_layers = int(table["layer"].max())
        ce = table.pivot(index="layer", columns="lens", values="ce_bits")
        kl = table.pivot(index="layer", columns="lens", values="kl_bits")
        acc = table.pivot(index="layer", columns="lens", values="top1_acc")["probe"]
        off = transfer[transfer["distance"] != 0]
        far = max(1, n_layers // 2)
        below = ce.index < n_layers
        shared_penalty = (ce["shared"] - ce["tuned"])[below]
        rows.append(
            {
                "model": name,
                "n_layers": n_layers,
                "transfer_ce_penalty_adjacent_bits": off[off["distance"].abs() == 1][
                    "ce_penalty_bits"
                ].mean(),
                "transfer_ce_penalty_far_bits": off[off["distance"].abs() >= far][
                    "ce_penalty_bits"
                ].mean(),
                "shared_ce_penalty_mean_bits": shared_penalty.mean(),
                "shared_ce_penalty_max_bits": shared_penalty.max(),
                "logit_kl_mean_bits": kl["logit"][below].mean(),
                "tuned_kl_mean_bits": kl["tuned"][below].mean(),
                "probe_best_top1_acc": acc.max(),
                "probe_plateau_layer": int((acc >= acc.max() - 0.01).idxmax()),
            }
        )
    return pd.DataFrame(rows)
