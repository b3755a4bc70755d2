"""Causal LMs: the reference GPT-2 the workflow trains, and loading any HF causal LM.

The reference LM comes with or without residual connections (the LM analogue of the plain
CNN). Without them, each block feeds its sublayers' outputs forward and never adds its input
back (:func:`no_skip_forward`); the model's ``config.json`` then says
``"iterlens_residual": false`` (:data:`RESIDUAL_KEY`), and :func:`init_model` and
:func:`load_causal_lm` rebuild that forward from it, so every stage reads the real model.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from iterlens import artifacts
from iterlens.io import atomic_path, read_json, write_json
from iterlens.models.training import loss_and_accuracy, train, warmup_cosine


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

    A model saved without residual connections (:data:`RESIDUAL_KEY` false in its config)
    gets its no-skip blocks back (:func:`apply_residual_setting`).

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
            raise ModelNotFoundError(
                f"model folder '{name}' is not a loadable causal LM: {err}"
            ) from None
        reach = (
            "the Hub is reachable, so the name is probably wrong"
            if hub_reachable()
            else "the Hugging Face Hub is unreachable (offline)"
        )
        raise ModelNotFoundError(
            f"model '{name}' is not a local folder and could not be loaded: {reach}. "
            f"To use a local copy, download it where the Hub is reachable "
            f"(`hf download {name} --local-dir PATH`) and set `lm.model: PATH` in the config."
        ) from None
    return apply_residual_setting(model).eval()


RESIDUAL_KEY = "iterlens_residual"
"""The ``config.json`` field of a model built without residual connections (``false``).

Absent (every model but such a one): the architecture's own blocks, with their skips.
"""


def has_residual(config: object) -> bool:
    """Whether a model config keeps its blocks' identity skips (:data:`RESIDUAL_KEY`).

    Raises:
        ValueError: the field is there but not a boolean.
    """
    value = getattr(config, RESIDUAL_KEY, True)
    if not isinstance(value, bool):
        raise ValueError(
            f"model config field '{RESIDUAL_KEY}' must be true or false, not {value!r}"
        )
    return value


def no_skip_forward(
    self: torch.nn.Module,
    hidden_states: torch.Tensor,
    cache: object | None = None,
    attention_mask: torch.Tensor | None = None,
    encoder_hidden_states: torch.Tensor | None = None,
    encoder_attention_mask: torch.Tensor | None = None,
    use_cache: bool | None = False,
    **kwargs,
) -> torch.Tensor:
    """A pre-norm GPT-2 block without its residual connections.

    With skips the block computes ``h' = h + attn(ln_1(h))``, ``out = h' + mlp(ln_2(h'))``;
    without them ``h' = attn(ln_1(h))``, ``out = mlp(ln_2(h'))``: the same modules, weights,
    norms and call arguments, only the two additions of the block's input dropped. The
    embeddings (positions included) reach the first block only, and the final norm reads the
    last block's MLP output.
    """
    if encoder_hidden_states is not None:
        raise NotImplementedError("a block without residual connections has no cross-attention")
    attn_output, _ = self.attn(
        self.ln_1(hidden_states),
        cache=cache,
        attention_mask=attention_mask,
        use_cache=use_cache,
        **kwargs,
    )
    return self.mlp(self.ln_2(attn_output))


@functools.cache
def _no_skip_blocks() -> dict[str, tuple[type, type]]:
    """``model_type`` -> (its block class, that block without skips); imported lazily."""
    from transformers.models.gpt2.modeling_gpt2 import GPT2Block

    no_skip = type(
        "NoSkipGPT2Block",
        (GPT2Block,),
        {"forward": no_skip_forward, "__doc__": no_skip_forward.__doc__, "__module__": __name__},
    )
    return {"gpt2": (GPT2Block, no_skip)}


def apply_residual_setting(model: torch.nn.Module) -> torch.nn.Module:
    """Give ``model``'s blocks the forward its config asks for; return ``model``.

    A config with :data:`RESIDUAL_KEY` false turns every block into its no-skip subclass
    (same parameters and state dict; :func:`no_skip_forward`); any other model is returned
    as it is. Idempotent.

    Raises:
        ValueError: the config asks for no skips in an architecture that has no no-skip
            block (naming its ``model_type``), or the field is not a boolean.
    """
    if has_residual(model.config):
        return model
    from iterlens.models.families import adapter_for

    kind = model.config.model_type
    if kind not in _no_skip_blocks():
        raise ValueError(
            f"'{RESIDUAL_KEY}: false' (no residual connections) is implemented for "
            f"{sorted(_no_skip_blocks())} blocks, not for model_type '{kind}'"
        )
    base, no_skip = _no_skip_blocks()[kind]
    for block in adapter_for(model).blocks_of(model):
        if type(block) not in (base, no_skip):
            raise ValueError(
                f"a '{kind}' block of class {type(block).__name__}, not {base.__name__}"
            )
        block.__class__ = no_skip
    return model


def reference_config(
    vocab_size: int,
    n_layer: int,
    n_embd: int,
    n_head: int,
    seq_len: int,
    eos_token_id: int,
    residual: bool = True,
):
    """GPT-2 config of the reference LM: tied embeddings, no dropout.

    ``residual=False``: the same GPT-2 without residual connections (:data:`RESIDUAL_KEY`
    false in the config, so saving and loading keep it; :func:`no_skip_forward`).
    """
    from transformers import GPT2Config

    if not isinstance(residual, bool):
        raise TypeError(f"residual must be True or False, not {residual!r}")
    extra = {} if residual else {RESIDUAL_KEY: False}
    return GPT2Config(
        vocab_size=vocab_size,
        n_positions=seq_len,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=True,
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
        **extra,
    )


def init_model(config, seed: int):
    """A causal LM with freshly initialised weights from ``config`` (seeded).

    A config without residual connections (:data:`RESIDUAL_KEY`) gets no-skip blocks.
    """
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return apply_residual_setting(AutoModelForCausalLM.from_config(config)).eval()


#: The 4.x name of the rotary base of sliding-window layers (one per attention type in 5.x).
LEGACY_LOCAL_ROPE_KEY = "rope_local_base_freq"


def portable_model_config(folder: str | Path) -> None:
    """Give ``config.json`` the rotary keys transformers 4.x reads beside 5.x's.

    transformers 5 writes the rotary settings only as ``rope_parameters``, one dict or one per
    attention type (``full_attention``, ``sliding_attention``). 4.x ignores that key and falls
    back to its own defaults without a word (Llama's ``rope_theta`` of 10,000 where SmolLM2
    uses 100,000), so the same folder would run with other position encodings there, and a
    released lens would be evaluated on other hidden states. This writes ``rope_theta``,
    ``rope_scaling`` and the sliding layers' :data:`LEGACY_LOCAL_ROPE_KEY`, which 5.x ignores.
    """
    path = Path(folder) / "config.json"
    config = read_json(path)
    rope = config.get("rope_parameters")
    if not isinstance(rope, dict):
        return
    full = rope.get("full_attention", rope)
    legacy: dict = {"rope_theta": full["rope_theta"]}
    if "sliding_attention" in rope:
        legacy[LEGACY_LOCAL_ROPE_KEY] = rope["sliding_attention"]["rope_theta"]
    scaling = {k: v for k, v in full.items() if k != "rope_theta"}
    default = scaling.get("rope_type", "default") == "default"
    legacy["rope_scaling"] = None if default else scaling
    write_json({**config, **legacy}, path)


def save_model(model, tokenizer, folder: str | Path, extra: dict[str, dict] | None = None) -> None:
    """``save_pretrained`` (safetensors) model and tokenizer into ``folder``, atomically.

    The configs are made loadable by transformers 4.x too (:func:`portable_model_config`,
    :func:`~iterlens.data.text.portable_tokenizer_config`); ``extra`` maps file names to JSON
    written beside them.
    """
    with atomic_path(folder) as tmp:
        from iterlens.data.text import portable_tokenizer_config

        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        portable_model_config(tmp)
        portable_tokenizer_config(tmp)
        for name, content in (extra or {}).items():
            write_json(content, tmp / name)


def _windows(tokens: np.ndarray, seq_len: int, idx: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack([tokens[i : i + seq_len + 1] for i in idx]).astype(np.int64))


@torch.no_grad()
def mean_loss(model, tokens: np.ndarray, seq_len: int, n_batches: int, batch_size: int) -> float:
    """Mean next-token loss (nats) over evenly spaced, fixed windows of ``tokens``."""
    n_win = min(n_batches * batch_size, (len(tokens) - 1) // seq_len)
    if n_win < 1:
        raise ValueError(f"need more than {seq_len} tokens to evaluate, got {len(tokens)}")
    starts = np.linspace(0, len(tokens) - seq_len - 1, n_win).astype(np.int64)
    model.eval()
    windows = (
        _windows(tokens, seq_len, starts[b : b + batch_size]) for b in range(0, n_win, batch_size)
    )
    return loss_and_accuracy(lambda x: model(x).logits, ((w[:, :-1], w[:, 1:]) for w in windows))[0]


def train_lm(
    model,
    train_tokens: np.ndarray,
    val_tokens: np.ndarray,
    *,
    steps: int,
    batch_size: int,
    seq_len: int,
    lr: float,
    warmup_steps: int,
    eval_every: int,
    eval_batches: int,
    seed: int,
    progress: bool = True,
) -> pd.DataFrame:
    """Train ``model`` on random windows of ``train_tokens``; return the loss curve.

    AdamW (betas 0.9, 0.95; weight decay 0.1 on matrices), linear warmup then cosine decay
    to a tenth of ``lr``, gradients clipped to norm 1. The curve has one row per logged
    step: train loss (mean since the last row) and validation loss on fixed windows of
    ``val_tokens`` (never trained on), in nats. The wall time is in ``.attrs["seconds"]``.
    """
    if len(train_tokens) <= seq_len + 1:
        raise ValueError(f"train split has {len(train_tokens)} tokens, fewer than seq_len")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.95),
    )

    def batches():
        while True:
            starts = rng.integers(0, len(train_tokens) - seq_len - 1, size=batch_size)
            yield _windows(train_tokens, seq_len, starts)

    def loss_fn(x: torch.Tensor):
        model.train()
        logits = model(x[:, :-1]).logits
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1)
        ), None

    rows, running = [], []

    def on_step(step: int, loss: float, _):
        running.append(loss)
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            val = mean_loss(model, val_tokens, seq_len, eval_batches, batch_size)
            train_loss = sum(running) / len(running)
            rows.append(
                {
                    "step": step + 1,
                    "tokens": (step + 1) * batch_size * seq_len,
                    "train_loss_nats": train_loss,
                    "val_loss_nats": val,
                }
            )
            running.clear()
            return {"train": f"{train_loss:.3f}", "val": f"{val:.3f}"}
        return None

    seconds = train(
        list(model.parameters()),
        opt,
        warmup_cosine(warmup_steps, steps, 0.1),
        batches(),
        loss_fn,
        steps=steps,
        clip_norm=1.0,
        on_step=on_step,
        desc="train LM",
        progress=progress,
    )
    model.eval()
    curve = pd.DataFrame(rows)
    curve.attrs["seconds"] = seconds
    return curve


def record_hf_model(name_or_path: str, folder: str | Path) -> None:
    """Stand for a Hub model or local path instead of training one.

    Loads it once (failing early, with a clear message, if it cannot be had), then writes a
    model folder holding only ``source.json``.
    """
    load_causal_lm(name_or_path)
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        write_json({"name_or_path": str(name_or_path)}, tmp / artifacts.MODEL_SOURCE)


def load_model_dir(folder: str | Path):
    """Load the model a workflow model folder stands for.

    A folder with ``source.json`` names a Hub model or a local path (``lm.model`` in the
    config); any other folder is a ``save_pretrained`` checkpoint, loaded with the forward
    its config records (no skips where :data:`RESIDUAL_KEY` is false).
    """
    folder = Path(folder)
    source = folder / artifacts.MODEL_SOURCE
    if source.exists():
        return load_causal_lm(read_json(source)["name_or_path"])
    if not folder.is_dir():
        raise ModelNotFoundError(f"no model folder at {folder}")
    return load_causal_lm(folder)
