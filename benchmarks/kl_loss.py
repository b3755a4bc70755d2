"""Benchmark: the lens fits' KL loss, autograd through log_softmax vs :class:`KLFromLogits`.

One optimiser step's loss and backward for a tuned lens at the default config's shapes
(batch 512, d_model 128, a 4,096-token vocabulary, 8 layers, a LayerNorm readout), the two
formulas in turn (A B A B ...) in one process, one thread. Prints milliseconds per step for
each (median over rounds), their ratio, and how far their losses and gradients differ.

Usage::

    python benchmarks/kl_loss.py --rounds 7 --steps 10
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from iterlens.probing.fitting import KLFromLogits
from iterlens.probing.metrics import FinalDist


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=10, help="steps timed per round and formula")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    d, v = args.d_model, args.vocab
    readout = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, v)).requires_grad_(False)
    translators = nn.ModuleList(nn.Linear(d, d) for _ in range(args.layers))
    hidden = torch.randn(args.batch, args.layers + 1, d)
    with torch.no_grad():
        final = FinalDist.of(readout(hidden[:, -1]))

    def step(fused: bool) -> torch.Tensor:
        loss = torch.zeros(())
        for layer, t in enumerate(translators):
            h = hidden[:, layer]
            logits = readout(h + t(h))
            if fused:
                per = KLFromLogits.apply(logits, final.p, final.neg_entropy)
            else:
                per = (final.p * (final.logp - torch.log_softmax(logits, -1))).sum(-1)
            loss = loss + per.mean()
        translators.zero_grad()
        loss.backward()
        return loss.detach()

    losses, grads = [], []
    for fused in (False, True):
        losses.append(step(fused))
        grads.append(torch.cat([q.grad.flatten() for q in translators.parameters()]))
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for fused in (False, True):
            start = time.perf_counter()
            for _ in range(args.steps):
                step(fused)
            times[fused].append((time.perf_counter() - start) / args.steps * 1000)
    plain, fused = (statistics.median(times[k]) for k in (False, True))
    spread = {k: f"rounds {min(t):.1f}..{max(t):.1f}" for k, t in times.items()}
    grad_diff = (grads[0] - grads[1]).abs().max().item()
    print(f"batch {args.batch}, d {d}, vocab {v}, {args.layers} layers, {args.threads} thread")
    print(f"log_softmax autograd : {plain:7.1f} ms/step  ({spread[False]})")
    print(f"KLFromLogits         : {fused:7.1f} ms/step  ({spread[True]})")
    print(f"ratio fused/plain    : {fused / plain:.2f} (median)")
    print(
        f"loss |diff| {abs(losses[0] - losses[1]).item():.1e}, grad max |diff| {grad_diff:.1e} "
        f"(of max |grad| {grads[0].abs().max().item():.1e})"
    )


if __name__ == "__main__":
    main()
