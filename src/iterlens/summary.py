"""Summary tables assembled from other tables (numbers quoted by the README and paper)."""

from __future__ import annotations

import math

import pandas as pd

from iterlens.io import read_table
from iterlens.text_data import load_tokens, unigram_ce_bits


def lm_summary(train_tokens: str, eval_store: str, vocab_of: str,
               metrics: dict[str, str]) -> pd.DataFrame:
    """Held-out loss of each LM (its logit lens at the last layer) vs the unigram baseline.

    Args:
        train_tokens: token stream the unigram is estimated on.
        eval_store: the eval activation store; the unigram is scored on its targets.
        vocab_of: a readout file whose output width is the vocabulary size.
        metrics: model name -> its ``lens_metrics.csv``.
    """
    import numpy as np

    from iterlens.readout import Readout
    from iterlens.store import ActivationStore

    vocab = Readout.load(vocab_of).n_classes
    store = ActivationStore(eval_store)
    targets = np.concatenate([store.load_shard(i)["targets"].numpy()
                              for i in range(len(store.manifest["shards"]))])
    unigram = unigram_ce_bits(np.asarray(load_tokens(train_tokens)), targets, vocab)
    rows = [{"model": "unigram", "ce_bits": unigram, "ce_nats": unigram * math.log(2)}]
    for name, path in metrics.items():
        table = read_table(path)
        last = table[(table["lens"] == "logit")].sort_values("layer").iloc[-1]
        rows.append({"model": name, "ce_bits": last["ce_bits"],
                     "ce_nats": last["ce_bits"] * math.log(2),
                     "bits_per_byte": last["bits_per_byte"]})
    return pd.DataFrame(rows)
