"""Extraction tokens/s and lens-fit steps/s of a GPT-2-small-sized model on this device.

Usage: python benchmarks/gpu.py [--device auto] [--layers 12 --width 768 --vocab 50257]
       [--seq 1024 --batch 8 --batches 4 --lens-batch 512 --lens-steps 10]
       [--sustained-tflops 100]

Builds a random GPT-2 (12 x 768, vocab 50257 by default; timings do not depend on the
weights), extracts one shard with the pipeline's own code (model in the config's ``auto``
dtype: float32 on a CPU, bfloat16 on a GPU; float16 store on a GPU), then fits the tuned lens
on it on the same device. Prints measured tokens/s and steps/s, the FLOPs each costs, the
FLOP rate reached, and what the same work takes at ``--sustained-tflops`` (an estimate for a
device that is not here; docs/gpu-and-clusters.md says which numbers are measured and which
estimated).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from iterlens.device import resolve_device, resolve_dtype
from iterlens.models.lm import init_model, reference_config
from iterlens.probing.extract import extract_lm_shard
from iterlens.probing.fitting import fit_lens
from iterlens.probing.lenses import make_tuned_lens
from iterlens.probing.readout import readout_from_lm
from iterlens.probing.store import ActivationStore, shard_path, write_manifest


class _Tok:
    def decode(self, ids, skip_special_tokens=True):
        return "x" * len(ids)


def forward_flops_per_token(layers: int, width: int, vocab: int, seq: int) -> float:
    """Matmul FLOPs of one token's forward pass: blocks (12 d^2 + 2 t d each) + unembedding."""
    return 2 * (layers * (12 * width * width + 2 * seq * width) + width * vocab)


def lens_flops_per_step(layers: int, width: int, vocab: int, batch: int) -> float:
    """Matmul FLOPs of one tuned-lens step: per layer a translator and a readout, fwd + bwd."""
    per_layer = 2 * batch * (width * width + width * vocab)
    final = 2 * batch * width * vocab  # the target distribution, forward only
    return 3 * layers * per_layer + final


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="auto")
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--lens-batch", type=int, default=512)
    p.add_argument("--lens-steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sustained-tflops", type=float, default=100.0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = resolve_dtype("auto", device)
    store_dtype = torch.float32 if device.type == "cpu" else torch.float16
    config = reference_config(args.vocab, args.layers, args.width, args.heads, args.seq, 0)
    model = init_model(config, 0)
    readout = readout_from_lm(model)
    model = model.to(device, dtype)
    n_tok = args.batches * args.batch * args.seq
    tokens = np.random.default_rng(0).integers(0, args.vocab, n_tok + 1).astype(np.int32)
    starts = np.arange(args.batches * args.batch) * args.seq

    with torch.no_grad():  # warm-up (kernels, allocator)
        model(torch.from_numpy(tokens[: args.seq].astype(np.int64))[None].to(device))
    with tempfile.TemporaryDirectory() as tmp:
        sync(device)
        t = time.perf_counter()
        extract_lm_shard(
            model, readout, _Tok(), tokens, starts, args.seq, args.batch,
            shard_path(tmp, 0), progress=False, store_dtype=store_dtype,
        )  # fmt: skip
        sync(device)
        extract = time.perf_counter() - t
        write_manifest(tmp, 1, {"readout_fingerprint": readout.fingerprint()})
        model.cpu()
        del model
        store = ActivationStore(tmp, device=device)
        readout.to(device)
        lens = make_tuned_lens(readout, args.layers).to(device)
        fit_lens(lens, store, readout, list(range(args.layers)), "kl", 1, args.lens_batch, 1e-3,
                 progress=False)  # fmt: skip
        sync(device)
        t = time.perf_counter()
        fit_lens(lens, store, readout, list(range(args.layers)), "kl", args.lens_steps,
                 args.lens_batch, 1e-3, progress=False)  # fmt: skip
        sync(device)
        fit = time.perf_counter() - t

    fwd = forward_flops_per_token(args.layers, args.width, args.vocab, args.seq)
    step = lens_flops_per_step(args.layers, args.width, args.vocab, args.lens_batch)
    rate = args.sustained_tflops * 1e12
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device: {device} ({name}), model dtype {str(dtype)[6:]}, store {str(store_dtype)[6:]}, "
        f"{args.threads} CPU threads"
    )
    print(f"model: GPT-2 {args.layers}x{args.width}, vocab {args.vocab}, seq {args.seq}")
    print(
        f"extraction   {n_tok / extract:10.0f} tokens/s  ({fwd / 1e9:.2f} GFLOP/token, "
        f"{n_tok * fwd / extract / 1e12:.3f} TFLOP/s reached)"
    )
    print(
        f"tuned lens   {args.lens_steps / fit:10.3f} steps/s  (batch {args.lens_batch}, "
        f"{step / 1e12:.2f} TFLOP/step, {args.lens_steps * step / fit / 1e12:.3f} TFLOP/s reached)"
    )
    print(
        f"estimate at {args.sustained_tflops:g} sustained TFLOP/s: extraction "
        f"{rate / fwd:,.0f} tokens/s, tuned lens {rate / step:,.1f} steps/s"
    )


if __name__ == "__main__":
    main()
