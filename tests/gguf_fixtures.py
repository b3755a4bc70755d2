"""Tiny GGUF files written with the ``gguf`` package's writer: the GGUF path, tested offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def byte_alphabet() -> list[str]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return list(bytes_to_unicode().values())


def write_tiny_gguf(
    path: Path,
    arch: str = "llama",
    n_layer: int = 2,
    d: int = 32,
    n_head: int = 4,
    n_kv: int = 2,
    ff: int = 64,
    seed: int = 0,
) -> Path:
    """A tiny random Llama in f32, with a byte-level BPE tokenizer transformers rebuilds.

    The tokenizer is what transformers' GGUF loader needs for ``tokenizer.ggml.model = gpt2``:
    every token spelled in the byte-level alphabet, token types (3 = control), merges, and
    bos/eos ids. Tensors carry llama.cpp's names.
    """
    rng = np.random.default_rng(seed)
    tokens = ["<unk>", "<s>", "</s>", *byte_alphabet(), "Ġt", "he", "Ġthe"]
    types = [2, 3, 3] + [1] * (len(tokens) - 3)
    vocab, head_dim = len(tokens), d // n_head
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("tiny test model")
    w.add_context_length(64)
    w.add_embedding_length(d)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(["Ġ t", "h e", "Ġt he"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(False)

    def rand(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    w.add_tensor("token_embd.weight", rand(vocab, d))
    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", 1 + rand(d))
        w.add_tensor(f"blk.{i}.attn_q.weight", rand(d, d))
        w.add_tensor(f"blk.{i}.attn_k.weight", rand(n_kv * head_dim, d))
        w.add_tensor(f"blk.{i}.attn_v.weight", rand(n_kv * head_dim, d))
        w.add_tensor(f"blk.{i}.attn_output.weight", rand(d, d))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", 1 + rand(d))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", rand(ff, d))
        w.add_tensor(f"blk.{i}.ffn_up.weight", rand(ff, d))
        w.add_tensor(f"blk.{i}.ffn_down.weight", rand(d, ff))
    w.add_tensor("output_norm.weight", 1 + rand(d))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
