"""FFN neurons in vocabulary space: what each reads and writes, and when it fires.

A neuron's *input weights* are compared with the vocabulary as its layer's FFN input norm
sees it; its *output weights* (through the gain of the FFN's output norm, in families that
have one) with the vocabulary as the final readout sees it (see
:mod:`iterlens.vocab.nearest`). These lists depend on the weights only, so they are
computed once per model. Activations (the input of the FFN's output projection: after the
nonlinearity, and after the gate in a gated FFN) come from a forward pass on a prompt.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from iterlens.models.families import adapter_for
from iterlens.vocab.nearest import match_table, nearest_words, reading_space, writing_space


@torch.no_grad()
def neuron_words(
    model: nn.Module,
    k: int,
    words: list[str],
    high_bias: torch.Tensor,
    share: float = 0.5,
    progress: bool = False,
) -> pd.DataFrame:
    """Nearest words to every neuron's input (``side="in"``) and output (``"out"``) weights.

    Returns:
        One row per (layer, neuron, side, rank): token, cosine and its high-bias flag.
    """
    adapter = adapter_for(model)
    writing = writing_space(model)
    parts = []
    n_layers = len(adapter.blocks_of(model))
    for layer in tqdm(range(n_layers), desc="neuron words", disable=not progress):
        ffn = adapter.ffn_weights(model, layer)
        reading = reading_space(model, adapter.input_norms_of(model, layer)[1], f"ffn_in:{layer}")
        n = ffn.w_in.shape[0]
        for side, vectors, space in (("in", ffn.w_in, reading), ("out", ffn.written, writing)):
            ids, cos = nearest_words(vectors, space, k)
            keys = {
                "layer": np.full(n, layer),
                "neuron": np.arange(n),
                "side": np.full(n, side, dtype=object),
            }
            parts.append(match_table(keys, ids, cos, words, high_bias, share))
    return pd.concat(parts, ignore_index=True)


class NeuronRecorder:
    """Context manager recording every FFN neuron's activation in each forward pass."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.captured: dict[int, torch.Tensor] = {}
        self._handles: list = []

    def __enter__(self) -> NeuronRecorder:
        adapter = adapter_for(self.model)
        for layer in range(len(adapter.blocks_of(self.model))):
            module = adapter.ffn_output_module(self.model, layer)
            self._handles.append(module.register_forward_pre_hook(self._hook(layer)))
        return self

    def _hook(self, layer: int):
        def hook(module, args):
            self.captured[layer] = args[0].detach().float()

        return hook

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()

    def activations(self) -> torch.Tensor:
        """``[L, b, T, n]`` activations of the last forward pass."""
        return torch.stack([self.captured[i] for i in range(len(self.captured))])


def activation_table(acts: torch.Tensor) -> pd.DataFrame:
    """Long table of one prompt's activations ``[L, T, n]``: (layer, position, neuron)."""
    n_layers, n_pos, n = acts.shape
    return pd.DataFrame(
        {
            "layer": np.repeat(np.arange(n_layers), n_pos * n),
            "position": np.tile(np.repeat(np.arange(n_pos), n), n_layers),
            "neuron": np.tile(np.arange(n), n_layers * n_pos),
            "activation": acts.reshape(-1).numpy().astype(np.float32),
        }
    )


def position0_neurons(acts: torch.Tensor, ratio: float, quantile: float) -> pd.DataFrame:
    """Neurons that fire strongly at position 0 and only there, on one prompt.

    A neuron qualifies if its activation at position 0 is positive, at least the
    ``quantile`` of its layer's absolute activations (all neurons, all positions), and at
    least ``ratio`` times its largest absolute activation at any later position.

    Args:
        acts: ``[L, T, n]`` one prompt's activations.

    Returns:
        One row per qualifying neuron, strongest ratio first; empty if ``T < 2``.
    """
    columns = ["layer", "neuron", "act0", "max_later", "ratio"]
    rows = []
    if acts.shape[1] >= 2:
        for layer, a in enumerate(acts):
            first, later = a[0], a[1:].abs().max(0).values
            strong = first >= torch.quantile(a.abs().reshape(-1), quantile)
            only = first >= ratio * later
            for neuron in torch.nonzero(strong & only & (first > 0)).reshape(-1).tolist():
                rows.append(
                    (
                        layer,
                        neuron,
                        float(first[neuron]),
                        float(later[neuron]),
                        float(first[neuron] / later[neuron].clamp_min(1e-12)),
                    )
                )
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values(
        ["ratio", "layer", "neuron"], ascending=[False, True, True], ignore_index=True
    )
