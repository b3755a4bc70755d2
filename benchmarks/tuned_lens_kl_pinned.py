"""Per-layer KL of a released tuned lens, computed by tuned-lens 0.2.0 in its own environment.

Run by ``benchmarks/tuned_lens_load.py`` with the pinned environment's Python (it imports only
torch, numpy, transformers 4.x and tuned_lens, never iterlens). It loads the model folder with
``AutoModelForCausalLM`` (float32), the staged lens with
``TunedLens.from_model_and_pretrained``, runs the model over the held-out windows it is given
(``output_hidden_states``: entry l < L is the input of block l, as in iterlens's store) and
writes, per layer, the mean KL(final || lens) in bits over the kept positions.

Usage::

    /tmp/tl-env457/bin/python benchmarks/tuned_lens_kl_pinned.py --model MODEL_FOLDER \
        --lens STAGED_REPO/lens/NAME --windows windows.npy --skip 1 --out kl.csv \
        [--final-norm model.norm]
"""

from __future__ import annotations

import argparse
import csv
import math

import numpy as np
import torch
import transformers
import tuned_lens
from transformers import AutoModelForCausalLM
from tuned_lens import TunedLens


def main() -> None:
    """Compute and write the per-layer KL table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="the save_pretrained model folder")
    p.add_argument("--lens", required=True, help="the tuned-lens folder (config.json, params.pt)")
    p.add_argument("--windows", required=True, help=".npy [n, seq_len + 1] token windows")
    p.add_argument("--skip", type=int, default=0, help="leading positions left out")
    p.add_argument("--final-norm", help="submodule path of the final norm, if tuned-lens lacks it")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_grad_enabled(False)
    model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.float32).eval()
    if args.final_norm:  # tuned-lens 0.2.0's get_final_norm knows a fixed list of models
        import tuned_lens.model_surgery as surgery

        surgery.get_final_norm = lambda m: m.get_submodule(args.final_norm)
    lens = TunedLens.from_model_and_pretrained(model, args.lens, map_location="cpu").eval()
    windows = torch.from_numpy(np.load(args.windows)).long()
    n_layers = model.config.num_hidden_layers
    total = torch.zeros(n_layers, dtype=torch.float64)
    count = 0
    for window in windows:
        out = model(window[None, :-1], output_hidden_states=True)
        final = out.logits[0, args.skip :].float().log_softmax(-1)
        p_final = final.exp()
        for layer in range(n_layers):
            h = out.hidden_states[layer][0, args.skip :]
            q = lens(h, layer).float().log_softmax(-1)
            kl = (p_final * (final - q)).sum(-1) / math.log(2)
            total[layer] += kl.double().sum()
        count += final.shape[0]
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["layer", "kl_bits", "n_tokens", "transformers", "tuned_lens"])
        for layer in range(n_layers):
            w.writerow(
                [
                    layer,
                    f"{total[layer].item() / count:.8f}",
                    count,
                    transformers.__version__,
                    getattr(tuned_lens, "__version__", "0.2.0"),
                ]
            )


if __name__ == "__main__":
    main()
