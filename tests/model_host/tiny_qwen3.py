"""A tiny random-weight GGUF of the Qwen3 architecture, written by the tests with the `gguf` package.

What makes it Qwen3 for llama.cpp is what the real Qwen3-0.6B GGUF has (the catalogue's
`qwen3-0.6b`, the Docker image's default model): `general.architecture` "qwen3" with its
hyperparameters under `qwen3.*`, the tensors llama.cpp's qwen3 loader asks for (src/models/qwen3.cpp:
per block q/k/v/output projections, per-head RMS norms on q and k, a SwiGLU feed-forward), a head
size independent of the embedding width (Qwen3-0.6B: 16 heads of 128 over 1,024), a byte-level BPE
tokenizer with the "qwen2" pre-tokenizer, Qwen3's special tokens, and Qwen3's own chat template
(data/Qwen-Qwen3-0.6B.jinja) as `tokenizer.chat_template`. Only the sizes are tiny (a few hundred
KB) and the weights random: what it says is noise, which under a JSON grammar is still JSON.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import gguf
import numpy as np

# Qwen3's chat template, byte for byte as llama.cpp keeps it for its tests
# (models/templates/Qwen-Qwen3-0.6B.jinja, taken from Qwen/Qwen3-0.6B's tokenizer_config.json;
# here from the llama.cpp that llama-cpp-python 0.3.36 vendors, commit 0c1e570).
QWEN3_TEMPLATE_FILE = Path(__file__).parent / "data" / "Qwen-Qwen3-0.6B.jinja"
QWEN3_TEMPLATE_SHA256 = "87a2728cb8dc9fe424d624542f6060ec05a1d285ebbec578bb078900e33396b5"
# What the template writes after the assistant's header when told enable_thinking=false: an empty
# thought, so the model answers at once.
NO_THINK = "<|im_start|>assistant\n<think>\n\n</think>\n\n"

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
THINK, END_THINK = "<think>", "</think>"
# Qwen3's control tokens, and its thinking tags, which are ordinary added tokens (not special).
CONTROL_TOKENS = (ENDOFTEXT, IM_START, IM_END)
ADDED_TOKENS = (THINK, END_THINK)
# A few merges, so the BPE merge path runs too (llama.cpp refuses a BPE vocabulary without the key).
MERGES = (("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("o", "n"))


def qwen3_template() -> str:
    """The real Qwen3 chat template; AssertionError if the file is no longer the pinned one."""
    data = QWEN3_TEMPLATE_FILE.read_bytes()
    assert hashlib.sha256(data).hexdigest() == QWEN3_TEMPLATE_SHA256, f"{QWEN3_TEMPLATE_FILE} was changed"
    return data.decode()


def byte_tokens() -> list[str]:
    """GPT-2's byte-level alphabet: one printable character per byte, in GPT-2's order (ids 0-255)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = {byte: chr(byte) for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in chars:
            chars[byte] = chr(256 + extra)
            extra += 1
    return [chars[byte] for byte in [*printable, *(b for b in range(256) if b not in printable)]]


def vocabulary() -> tuple[list[str], list[int]]:
    """The tokens and their GGUF token types: bytes, merged tokens, then the added tokens."""
    tokens = byte_tokens() + ["".join(pair) for pair in MERGES]
    types = [gguf.TokenType.NORMAL] * len(tokens)
    tokens += [*CONTROL_TOKENS, *ADDED_TOKENS]
    types += [gguf.TokenType.CONTROL] * len(CONTROL_TOKENS)
    types += [gguf.TokenType.USER_DEFINED] * len(ADDED_TOKENS)
    return tokens, [int(kind) for kind in types]


def write_tiny_qwen3(
    path: Path,
    *,
    n_embd: int = 64,
    n_head: int = 4,
    n_head_kv: int = 2,
    head_dim: int = 32,
    n_ff: int = 128,
    n_layer: int = 2,
    n_ctx: int = 4096,
    seed: int = 0,
    chat_template: str | None = None,
) -> Path:
    """Write the model to `path` (float32 weights, random but fixed by `seed`) and return `path`."""
    rng = np.random.default_rng(seed)
    tokens, types = vocabulary()
    arch = gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.QWEN3]
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name("tiny-qwen3-test")
    writer.add_context_length(n_ctx)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([" ".join(pair) for pair in MERGES])
    # As Qwen3's GGUFs: <|im_end|> ends a turn, <|endoftext|> is BOS and padding, no BOS is added.
    writer.add_eos_token_id(tokens.index(IM_END))
    writer.add_bos_token_id(tokens.index(ENDOFTEXT))
    writer.add_pad_token_id(tokens.index(ENDOFTEXT))
    writer.add_add_bos_token(False)
    writer.add_chat_template(chat_template if chat_template is not None else qwen3_template())

    def tensor(name: str, *shape: int, value: float | None = None) -> None:
        # numpy's (rows, cols) is ggml's [cols, rows]: llama.cpp's {n_embd, n_vocab} is (n_vocab, n_embd).
        data = np.full(shape, value) if value is not None else rng.normal(0.0, 0.5, size=shape)
        writer.add_tensor(name, data.astype(np.float32))

    n_vocab = len(tokens)
    tensor("token_embd.weight", n_vocab, n_embd)
    tensor("output_norm.weight", n_embd, value=1.0)
    tensor("output.weight", n_vocab, n_embd)
    for block in range(n_layer):
        prefix = f"blk.{block}"
        tensor(f"{prefix}.attn_norm.weight", n_embd, value=1.0)
        tensor(f"{prefix}.attn_q.weight", n_head * head_dim, n_embd)
        tensor(f"{prefix}.attn_k.weight", n_head_kv * head_dim, n_embd)
        tensor(f"{prefix}.attn_v.weight", n_head_kv * head_dim, n_embd)
        tensor(f"{prefix}.attn_output.weight", n_embd, n_head * head_dim)
        tensor(f"{prefix}.attn_q_norm.weight", head_dim, value=1.0)
        tensor(f"{prefix}.attn_k_norm.weight", head_dim, value=1.0)
        tensor(f"{prefix}.ffn_norm.weight", n_embd, value=1.0)
        tensor(f"{prefix}.ffn_gate.weight", n_ff, n_embd)
        tensor(f"{prefix}.ffn_up.weight", n_ff, n_embd)
        tensor(f"{prefix}.ffn_down.weight", n_embd, n_ff)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
