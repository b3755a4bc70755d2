"""Token evolution: what each layer predicts at each position, under each lens."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from iterlens.probing.metrics import prediction_depth, rank_of


@torch.no_grad()
def token_evolution(
    hidden: torch.Tensor,
    lenses: dict[str, nn.Module],
    input_ids: torch.Tensor,
    final_logits: torch.Tensor,
    k: int,
    words: list[str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Top-k tokens of every (lens, layer, position), and the next token's rank.

    Args:
        hidden: ``[T, L + 1, d]`` residual stream of one prompt (l = L: the last one).
        lenses: name -> lens, called as ``lens(h, layer)`` -> logits.
        input_ids: ``[T]`` the prompt's tokens (the next token of position t is t + 1).
        final_logits: ``[T, V]`` the model's own logits.
        k: tokens kept per (lens, layer, position).
        words: token strings.

    Returns:
        ``(top, steps)``: ``top`` has one row per (lens, layer, position, rank) with the
        token and its probability; ``steps`` one row per (lens, layer, position) with the
        top-1, the model's final top-1, the next token and its rank (-1 at the last
        position, which has none) and ``settled_layer``, the first layer from which the
        lens's top-1 equals the final top-1 at every later layer (L + 1: never).
    """
    n_pos, n_layers = hidden.shape[0], hidden.shape[1] - 1
    k = min(k, final_logits.shape[-1])
    final_top1 = final_logits.argmax(-1)
    next_ids = torch.full((n_pos,), -1, dtype=torch.long)
    next_ids[:-1] = input_ids[1:]
    strings = np.asarray(words, dtype=object)
    tops, steps = [], []
    for name, lens in lenses.items():
        logits = torch.stack(
            [lens(hidden[:, layer].float(), layer) for layer in range(n_layers + 1)]
        )  # [L+1, T, V]
        probs = logits.float().softmax(-1)
        top = probs.topk(k, dim=-1)
        ids = top.indices.reshape(-1).numpy()
        layer_col = np.repeat(np.arange(n_layers + 1), n_pos * k)
        tops.append(
            pd.DataFrame(
                {
                    "lens": name,
                    "layer": layer_col,
                    "position": np.tile(np.repeat(np.arange(n_pos), k), n_layers + 1),
                    "rank": np.tile(np.arange(k), n_pos * (n_layers + 1)),
                    "token_id": ids,
                    "token": strings[ids],
                    "prob": top.values.reshape(-1).numpy().astype(np.float32),
                }
            )
        )
        top1 = logits.argmax(-1)  # [L+1, T]
        settled = prediction_depth(top1.T, final_top1)
        ranks = torch.stack(
            [rank_of(logits[layer], next_ids.clamp_min(0)) for layer in range(n_layers + 1)]
        )
        ranks[:, next_ids < 0] = -1
        layer_col = np.repeat(np.arange(n_layers + 1), n_pos)
        top1_ids = top1.reshape(-1).numpy()
        steps.append(
            pd.DataFrame(
                {
                    "lens": name,
                    "layer": layer_col,
                    "position": np.tile(np.arange(n_pos), n_layers + 1),
                    "input_id": np.tile(input_ids.numpy(), n_layers + 1),
                    "top1_id": top1_ids,
                    "top1": strings[top1_ids],
                    "top1_prob": probs.max(-1).values.reshape(-1).numpy().astype(np.float32),
                    "final_top1_id": np.tile(final_top1.numpy(), n_layers + 1),
                    "next_id": np.tile(next_ids.numpy(), n_layers + 1),
                    "next_rank": ranks.reshape(-1).numpy(),
                    "settled_layer": np.tile(settled.numpy(), n_layers + 1),
                }
            )
        )
    return pd.concat(tops, ignore_index=True), pd.concat(steps, ignore_index=True)
