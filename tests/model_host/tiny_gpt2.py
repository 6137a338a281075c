"""A tiny GPT-2 model in the legacy GGML format that ctransformers 0.2.27 loads, written by the tests.

The layout is ggml's examples/gpt-2 (the loader ctransformers vendors in models/llms/gpt2.cc):
magic 'ggml', six int32 hyperparameters, the vocabulary (length-prefixed byte strings), then
each tensor as (n_dims, name length, type, dims..., name, float32 data).

The transformer weights are random, but the final layer norm has zero gain, so every position
ends in the same hidden state and greedy decoding always picks `favourite`: the output of a
greedy generation is predictable ("aaaa..." by default) while every layer is still computed.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

EOS = "<|endoftext|>"
# Printable ASCII and newline, one token each (enough for a ChatML prompt), then the end token.
VOCAB = [chr(code) for code in range(32, 127)] + ["\n", EOS]


def write_tiny_gpt2(
    path: Path,
    *,
    favourite: str = "a",
    n_ctx: int = 128,
    n_embd: int = 16,
    n_head: int = 2,
    n_layer: int = 2,
    seed: int = 0,
) -> Path:
    """Write the model to `path`; greedy decoding then always yields the token `favourite` (or EOS)."""
    rng = np.random.default_rng(seed)
    n_vocab = len(VOCAB)
    chunks: list[bytes] = [struct.pack("<I", 0x67676D6C)]
    chunks.append(struct.pack("<6i", n_vocab, n_ctx, n_embd, n_head, n_layer, 0))  # ftype 0: float32
    chunks.append(struct.pack("<i", n_vocab))
    for token in VOCAB:
        data = token.encode()
        chunks.append(struct.pack("<I", len(data)) + data)

    def tensor(name: str, values: np.ndarray) -> None:
        # ggml lists dimensions fastest-first: a numpy (rows, cols) array is ggml [cols, rows].
        dims = list(reversed(values.shape))
        encoded = name.encode()
        chunks.append(struct.pack("<3i", len(dims), len(encoded), 0) + struct.pack(f"<{len(dims)}i", *dims))
        chunks.append(encoded + values.astype("<f4").tobytes())

    def random(*shape: int) -> np.ndarray:
        return rng.normal(0.0, 0.2, size=shape)

    final_bias = np.ones(n_embd)
    lm_head = np.zeros((n_vocab, n_embd))
    lm_head[VOCAB.index(favourite)] = final_bias
    tensor("model/ln_f/g", np.zeros(n_embd))
    tensor("model/ln_f/b", final_bias)
    tensor("model/wte", random(n_vocab, n_embd))
    tensor("model/wpe", random(n_ctx, n_embd))
    tensor("model/lm_head", lm_head)
    for layer in range(n_layer):
        prefix = f"model/h{layer}"
        tensor(f"{prefix}/ln_1/g", np.ones(n_embd))
        tensor(f"{prefix}/ln_1/b", np.zeros(n_embd))
        tensor(f"{prefix}/ln_2/g", np.ones(n_embd))
        tensor(f"{prefix}/ln_2/b", np.zeros(n_embd))
        tensor(f"{prefix}/attn/c_attn/w", random(3 * n_embd, n_embd))
        tensor(f"{prefix}/attn/c_attn/b", random(3 * n_embd))
        tensor(f"{prefix}/attn/c_proj/w", random(n_embd, n_embd))
        tensor(f"{prefix}/attn/c_proj/b", random(n_embd))
        tensor(f"{prefix}/mlp/c_fc/w", random(4 * n_embd, n_embd))
        tensor(f"{prefix}/mlp/c_fc/b", random(4 * n_embd))
        tensor(f"{prefix}/mlp/c_proj/w", random(n_embd, 4 * n_embd))
        tensor(f"{prefix}/mlp/c_proj/b", random(n_embd))
    path.write_bytes(b"".join(chunks))
    return path
