"""Extraction throughput vs a bare forward pass, and tuned-lens / transfer timing.

Usage: python benchmarks/extraction.py [--layers 8 --width 128 --seq 256 --batch 16] [--out F]

Builds the reference GPT-2 architecture at random init (timings do not depend on the
weights), then measures on the same batches:
  - bare forward pass (tokens/s), with the residual hooks, and with the hooks stopping at the
    final norm's input (the passes extraction stores: no unembedding),
  - extraction (forward + residual hooks + writing shards to disk, tokens/s), with a float32
    store and with a float16 store,
  - tuned-lens training (s per step, s per 100 steps),
  - the transfer matrix: one pass over the store (the library's) vs L^2 separate passes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from machine import machine, today

from iterlens.models.lm import init_model, reference_config
from iterlens.probing.extract import ResidualRecorder, extract_lm_shard
from iterlens.probing.fitting import fit_lens
from iterlens.probing.lenses import make_tuned_lens
from iterlens.probing.metrics import ce_bits
from iterlens.probing.readout import readout_from_lm
from iterlens.probing.store import ActivationStore, shard_path, write_manifest
from iterlens.probing.transfer import transfer_matrix


class _Tok:
    eos_token_id = 0  # random tokens: documents end wherever id 0 falls

    def decode(self, ids, skip_special_tokens=True):
        return "x" * len(ids)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--lens-steps", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--extraction-only", action="store_true", help="skip the lens and transfer timings"
    )
    p.add_argument("--out", help="also write the report, headed by the date and machine, here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = init_model(reference_config(args.vocab, args.layers, args.width, 4, args.seq, 0), 0)
    readout = readout_from_lm(model)
    tokens = (
        np.random.default_rng(0)
        .integers(0, args.vocab, args.batches * args.batch * args.seq + 1)
        .astype(np.int32)
    )
    n_tok = args.batches * args.batch * args.seq
    x = torch.from_numpy(tokens[:-1].astype(np.int64)).view(-1, args.seq)

    with torch.no_grad():
        model(x[: args.batch])  # warm-up
        t = time.perf_counter()
        for b in range(0, len(x), args.batch):
            model(x[b : b + args.batch])
        bare = time.perf_counter() - t
        with ResidualRecorder(model) as rec:
            t = time.perf_counter()
            for b in range(0, len(x), args.batch):
                rec.run(x[b : b + args.batch])
            hooked = time.perf_counter() - t
            t = time.perf_counter()
            for b in range(0, len(x), args.batch):
                rec.residuals(x[b : b + args.batch])
            stopped = time.perf_counter() - t

    starts = np.arange(len(x)) * args.seq

    def extract_to(folder: str, dtype: torch.dtype) -> float:
        """Seconds to extract the benchmark's windows into one shard of ``dtype`` in ``folder``."""
        t = time.perf_counter()
        extract_lm_shard(model, readout, _Tok(), tokens, starts, args.seq, args.batch,
                         shard_path(folder, 0), progress=False, store_dtype=dtype)  # fmt: skip
        return time.perf_counter() - t

    with tempfile.TemporaryDirectory() as half:
        extract_half = extract_to(half, torch.float16)
    with tempfile.TemporaryDirectory() as tmp:
        extract = extract_to(tmp, torch.float32)
        write_manifest(tmp, 1, {"readout_fingerprint": readout.fingerprint()})
        store = ActivationStore(tmp)
        if args.extraction_only:
            print(f"bare forward {n_tok / bare:.0f} tokens/s, hooks {n_tok / hooked:.0f} tokens/s")
            print(f"extraction to disk {extract / bare:.2f}x the bare forward time")
            print(f"  float16 store    {extract_half / bare:.2f}x the bare forward time")
            return

        lens = make_tuned_lens(readout, args.layers)
        t = time.perf_counter()
        fit_lens(
            lens,
            store,
            readout,
            list(range(args.layers)),
            "kl",
            args.lens_steps,
            512,
            1e-3,
            progress=False,
        )
        fit = time.perf_counter() - t

        t = time.perf_counter()
        transfer_matrix(lens, store, readout, progress=False)
        batched = time.perf_counter() - t
        t = time.perf_counter()
        n = args.layers + 1
        with torch.no_grad():
            for i in range(n):
                for j in range(n):
                    for batch in store.iter_batches(256):
                        final = readout(batch.hidden[:, -1])
                        ce_bits(lens(batch.hidden[:, j], i), batch.targets)
                        torch.log_softmax(final, -1)
        separate = time.perf_counter() - t

    lines = [f"benchmarks/extraction.py, {today()}; machine: {machine()}"]
    say = lines.append
    say(
        f"model: GPT-2 {args.layers}x{args.width}, vocab {args.vocab}, {n_tok} tokens, "
        f"{args.threads} threads"
    )
    say(f"bare forward        {n_tok / bare:10.0f} tokens/s")
    say(f"forward + hooks     {n_tok / hooked:10.0f} tokens/s")
    say(
        f"  to the final norm {n_tok / stopped:10.0f} tokens/s "
        f"({stopped / bare:.2f}x the bare forward time)"
    )
    say(
        f"extraction to disk  {n_tok / extract:10.0f} tokens/s "
        f"({extract / bare:.2f}x the bare forward time)"
    )
    say(
        f"  float16 store     {n_tok / extract_half:10.0f} tokens/s "
        f"({extract_half / bare:.2f}x the bare forward time)"
    )
    say(
        f"tuned lens fit      {fit / args.lens_steps:10.3f} s/step (batch 512, "
        f"{args.layers} layers)"
    )
    say(f"transfer, one pass  {batched:10.2f} s for the {n}x{n} matrix")
    say(f"transfer, separate  {separate:10.2f} s ({separate / batched:.1f}x slower)")
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
