"""Causal LMs: the reference GPT-2 the workflow trains, and loading any HF causal LM."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from iterlens.io import atomic_path


class ModelNotFoundError(OSError):
    """A model name that is neither a local folder nor loadable from the Hub."""


def hub_reachable(timeout: float = 3.0) -> bool:
    """True if the Hugging Face Hub answers (False when offline mode is set)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    import urllib.request

    from huggingface_hub import constants

    try:
        urllib.request.urlopen(constants.ENDPOINT, timeout=timeout)  # noqa: S310
        return True
    except Exception:
        return False


def load_causal_lm(name_or_path: str | Path, dtype: torch.dtype = torch.float32):
    """Load a causal LM from a local folder or the Hub, in eval mode.

    Raises:
        ModelNotFoundError: naming the model, saying whether the Hub was reachable and
            how to point the config at a local copy.
    """
    from transformers import AutoModelForCausalLM

    name = str(name_or_path)
    local = Path(name).is_dir()
    try:
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, local_files_only=local)
    except OSError as err:
        if local:
            raise ModelNotFoundError(f"model folder '{name}' is not a loadable causal LM: "
                                     f"{err}") from None
        reach = ("the Hub is reachable, so the name is probably wrong" if hub_reachable()
                 else "the Hugging Face Hub is unreachable (offline)")
        raise ModelNotFoundError(
            f"model '{name}' is not a local folder and could not be loaded: {reach}. "
            f"To use a local copy, download it where the Hub is reachable "
            f"(`hf download {name} --local-dir PATH`) and set `lm.model: PATH` in the config."
        ) from None
    return model.eval()


def reference_config(vocab_size: int, n_layer: int, n_embd: int, n_head: int, seq_len: int,
                     eos_token_id: int):
    """GPT-2 config of the reference LM: tied embeddings, no dropout."""
    from transformers import GPT2Config

    return GPT2Config(vocab_size=vocab_size, n_positions=seq_len, n_embd=n_embd,
                      n_layer=n_layer, n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0,
                      attn_pdrop=0.0, tie_word_embeddings=True, bos_token_id=eos_token_id,
                      eos_token_id=eos_token_id)


def init_model(config, seed: int):
    """A causal LM with freshly initialised weights from ``config`` (seeded)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config).eval()


def save_model(model, tokenizer, folder: str | Path) -> None:
    """``save_pretrained`` (safetensors) model and tokenizer into ``folder``, atomically."""
    with atomic_path(folder) as tmp:
        from iterlens.text_data import portable_tokenizer_config

        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        portable_tokenizer_config(tmp)


def _windows(tokens: np.ndarray, seq_len: int, idx: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack([tokens[i:i + seq_len + 1] for i in idx]).astype(np.int64))


@torch.no_grad()
def mean_loss(model, tokens: np.ndarray, seq_len: int, n_batches: int, batch_size: int) -> float:
    """Mean next-token loss (nats) over evenly spaced, fixed windows of ``tokens``."""
    n_win = min(n_batches * batch_size, (len(tokens) - 1) // seq_len)
    if n_win < 1:
        raise ValueError(f"need more than {seq_len} tokens to evaluate, got {len(tokens)}")
    starts = np.linspace(0, len(tokens) - seq_len - 1, n_win).astype(np.int64)
    total, count = 0.0, 0
    model.eval()
    for b in range(0, n_win, batch_size):
        x = _windows(tokens, seq_len, starts[b:b + batch_size])
        logits = model(x[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum")
        total += loss.item()
        count += x[:, 1:].numel()
    return total / count


def train_lm(model, train_tokens: np.ndarray, val_tokens: np.ndarray, *, steps: int,
             batch_size: int, seq_len: int, lr: float, warmup_steps: int, eval_every: int,
             eval_batches: int, seed: int, progress: bool = True) -> pd.DataFrame:
    """Train ``model`` on random windows of ``train_tokens``; return the loss curve.

    The curve has one row per logged step: train loss (mean since the last row) and
    validation loss on fixed windows of ``val_tokens`` (never trained on), in nats.
    """
    if len(train_tokens) <= seq_len + 1:
        raise ValueError(f"train split has {len(train_tokens)} tokens, fewer than seq_len")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95))

    def schedule(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress_ = (step - warmup_steps) / max(1, steps - warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    rows, running, n_running, t0 = [], 0.0, 0, time.perf_counter()
    bar = tqdm(range(steps), desc="train LM", disable=not progress)
    for step in bar:
        model.train()
        starts = rng.integers(0, len(train_tokens) - seq_len - 1, size=batch_size)
        x = _windows(train_tokens, seq_len, starts)
        logits = model(x[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running += loss.item()
        n_running += 1
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            val = mean_loss(model, val_tokens, seq_len, eval_batches, batch_size)
            rows.append({"step": step + 1, "tokens": (step + 1) * batch_size * seq_len,
                         "train_loss_nats": running / n_running, "val_loss_nats": val})
            bar.set_postfix(train=f"{running / n_running:.3f}", val=f"{val:.3f}")
            running, n_running = 0.0, 0
    model.eval()
    curve = pd.DataFrame(rows)
    curve.attrs["seconds"] = time.perf_counter() - t0
    return curve


def load_model_dir(folder: str | Path):
    """Load the model a workflow model folder stands for.

    A folder with ``source.json`` names a Hub model or a local path (``lm.model`` in the
    config); any other folder is a ``save_pretrained`` checkpoint.
    """
    import json

    folder = Path(folder)
    source = folder / "source.json"
    if source.exists():
        return load_causal_lm(json.loads(source.read_text())["name_or_path"])
    if not folder.is_dir():
        raise ModelNotFoundError(f"no model folder at {folder}")
    return load_causal_lm(folder)
