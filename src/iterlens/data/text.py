"""Text corpus, document-level splits, BPE tokenizer and token arrays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from iterlens.io import atomic_path

SPLITS = ("train", "lensfit", "eval")
EOS = "<|endoftext|>"


class CorpusError(ValueError):
    """A corpus source that is missing, empty or unreadable; the message names it."""


def load_documents(source: str, text_column: str = "text") -> list[dict[str, str]]:
    """Return ``[{"id", "text"}]`` from 'sotu', a .txt file/folder, or 'hf:NAME'.

    Raises:
        CorpusError: naming the source if it is missing or holds no text.
    """
    if source == "sotu":
        import sotu

        docs = [{"id": fid, "text": sotu.raw(fid)} for fid in sotu.fileids()]
    elif source.startswith("hf:"):
        docs = _hf_documents(source[3:], text_column)
    else:
        path = Path(source)
        if path.is_file():
            docs = [
                {"id": f"{path.stem}-{i}", "text": t}
                for i, t in enumerate(path.read_text(errors="replace").split("\n\n\n"))
            ]
        elif path.is_dir():
            docs = [
                {"id": p.stem, "text": p.read_text(errors="replace")}
                for p in sorted(path.rglob("*.txt"))
            ]
        else:
            raise CorpusError(
                f"corpus source '{source}' is neither 'sotu', 'hf:NAME', nor an "
                f"existing .txt file or folder"
            )
    docs = [d for d in docs if d["text"].strip()]
    if not docs:
        raise CorpusError(f"corpus source '{source}' holds no text")
    return docs


def _hf_documents(name: str, text_column: str) -> list[dict[str, str]]:
    try:
        import datasets
    except ImportError as err:  # pragma: no cover - datasets comes with tuned-lens
        raise CorpusError("reading 'hf:' corpora needs the 'datasets' package") from err
    try:
        ds = datasets.load_dataset(name, split="train")
    except Exception as err:
        raise CorpusError(
            f"could not load Hugging Face dataset '{name}' (is the Hub reachable?): {err}"
        ) from None
    if text_column not in ds.column_names:
        raise CorpusError(
            f"dataset '{name}' has no column '{text_column}' (columns: {ds.column_names})"
        )
    return [{"id": f"{name}-{i}", "text": t} for i, t in enumerate(ds[text_column])]


def split_documents(
    docs: list[dict[str, str]],
    lensfit_fraction: float,
    eval_fraction: float,
    seed: int,
    max_documents: int | None = None,
) -> dict[str, list[dict]]:
    """Split by document (never within one) into train / lensfit / eval, seeded."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(docs))
    if max_documents is not None:
        order = order[:max_documents]
    n = len(order)
    if n < 3:
        raise CorpusError(f"need at least 3 documents to split, got {n}")
    n_eval = max(1, round(n * eval_fraction))
    n_fit = max(1, round(n * lensfit_fraction))
    if n_eval + n_fit >= n:
        raise CorpusError(f"{n} documents leave none for training")
    parts = {
        "eval": order[:n_eval],
        "lensfit": order[n_eval : n_eval + n_fit],
        "train": order[n_eval + n_fit :],
    }
    return {name: [docs[i] for i in sorted(idx)] for name, idx in parts.items()}


def write_splits(splits: dict[str, list[dict]], folder: str | Path) -> None:
    """Write ``{split}.jsonl`` files atomically."""
    for name, docs in splits.items():
        with atomic_path(Path(folder) / f"{name}.jsonl") as tmp:
            with open(tmp, "w") as f:
                for doc in docs:
                    f.write(json.dumps(doc) + "\n")


def read_split(path: str | Path) -> list[str]:
    """Texts of one split file."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"missing corpus split {path}")
    texts = [json.loads(line)["text"] for line in path.read_text().splitlines() if line]
    if not texts:
        raise CorpusError(f"corpus split {path} is empty")
    return texts


def train_tokenizer(texts: list[str], vocab_size: int, folder: str | Path) -> None:
    """Train a byte-level BPE on ``texts`` and save it as a ``transformers`` tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, bos_token=EOS, unk_token=EOS
    )
    with atomic_path(folder) as tmp:
        fast.save_pretrained(str(tmp))


def load_tokenizer(name_or_path: str | Path):
    """Load a ``transformers`` tokenizer from a folder or the Hub."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(name_or_path))


def save_tokenizer_of(name_or_path: str | Path, folder: str | Path) -> None:
    """Save the tokenizer of a Hub model or local folder into ``folder``, atomically."""
    tok = load_tokenizer(name_or_path)
    with atomic_path(folder) as tmp:
        tok.save_pretrained(str(tmp))


def tokenize_texts(tokenizer, texts: list[str]) -> np.ndarray:
    """Concatenate documents into one int32 token stream, EOS after each document."""
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        if eos is not None:
            ids.append(eos)
    return np.asarray(ids, dtype=np.int32)


def save_tokens(ids: np.ndarray, path: str | Path) -> None:
    """Save a token stream as ``.npy``, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, ids)


def load_tokens(path: str | Path) -> np.ndarray:
    """Memory-map a token stream written by :func:`save_tokens`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"missing token file {path}")
    return np.load(path, mmap_mode="r")


def unigram_ce_bits(train: np.ndarray, held_out: np.ndarray, vocab_size: int) -> float:
    """Cross-entropy (bits/token) of held-out tokens under the add-one unigram of ``train``."""
    counts = np.bincount(train, minlength=vocab_size).astype(np.float64) + 1.0
    logp = np.log2(counts / counts.sum())
    return float(-logp[held_out].mean())
