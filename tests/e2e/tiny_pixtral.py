"""Writes a tiny, randomly initialised Pixtral in Mistral's own checkpoint format, for vLLM to load on a CPU.

The same three files as mistralai/Pixtral-12B-2409 (params.json, consolidated.safetensors, tekken.json), with the
same tensor names and config keys, at a size a 2-core machine serves in seconds: vLLM's real loading path
(`--tokenizer-mode mistral --config-format mistral --load-format mistral`) runs on it unchanged. Random weights
give meaningless text; the tests check status codes and token counts, not words.

Run as `python tiny_pixtral.py OUTDIR` with the e2e venv's Python (it needs torch and safetensors).
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

# CPU attention in this vLLM build accepts head_dim 64 (not 16).
TEXT = {"dim": 256, "n_layers": 2, "head_dim": 64, "hidden_dim": 512, "n_heads": 4, "n_kv_heads": 2,
        "rope_theta": 1_000_000.0, "norm_eps": 1e-5}
VISION = {"hidden_size": 128, "num_channels": 3, "image_size": 64, "patch_size": 16, "rope_theta": 10_000.0,
          "intermediate_size": 256, "num_hidden_layers": 1, "num_attention_heads": 2,
          # [IMG], [IMG_BREAK], [IMG_END] in Tekken's legacy special-token table.
          "image_token_id": 10, "image_break_token_id": 12, "image_end_token_id": 13, "adapter_bias": True}
NUM_SPECIAL_TOKENS = 1000
NUM_BYTE_TOKENS = 256
VOCAB_SIZE = NUM_SPECIAL_TOKENS + NUM_BYTE_TOKENS
# Mistral's Tekken pre-tokenizer pattern (tiktoken syntax).
PATTERN = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|"
           r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+"
           r"[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def _params() -> dict:
    return {**TEXT, "vocab_size": VOCAB_SIZE, "vision_encoder": VISION}


def _tekken() -> dict:
    """Tekken v3: the 256 byte tokens only (no merges) and the legacy special tokens padded to 1000."""
    vocab = [{"rank": i, "token_bytes": base64.b64encode(bytes([i])).decode(), "token_str": None}
             for i in range(NUM_BYTE_TOKENS)]
    return {
        "config": {"pattern": PATTERN, "num_vocab_tokens": NUM_BYTE_TOKENS, "default_vocab_size": VOCAB_SIZE,
                   "default_num_special_tokens": NUM_SPECIAL_TOKENS, "version": "v3"},
        "vocab": vocab,
        "multimodal": {"image_patch_size": VISION["patch_size"], "max_image_size": VISION["image_size"]},
    }


def _block(prefix: str, dim: int, hidden: int, q_dim: int, kv_dim: int) -> dict[str, tuple[int, ...]]:
    """One transformer block in Mistral's names (shared by the text decoder and the vision encoder)."""
    return {
        f"{prefix}.attention.wq.weight": (q_dim, dim),
        f"{prefix}.attention.wk.weight": (kv_dim, dim),
        f"{prefix}.attention.wv.weight": (kv_dim, dim),
        f"{prefix}.attention.wo.weight": (dim, q_dim),
        f"{prefix}.attention_norm.weight": (dim,),
        f"{prefix}.ffn_norm.weight": (dim,),
        f"{prefix}.feed_forward.w1.weight": (hidden, dim),
        f"{prefix}.feed_forward.w2.weight": (dim, hidden),
        f"{prefix}.feed_forward.w3.weight": (hidden, dim),
    }


def tensor_shapes() -> dict[str, tuple[int, ...]]:
    dim, heads, kv_heads, head_dim = TEXT["dim"], TEXT["n_heads"], TEXT["n_kv_heads"], TEXT["head_dim"]
    shapes = {"tok_embeddings.weight": (VOCAB_SIZE, dim), "norm.weight": (dim,), "output.weight": (VOCAB_SIZE, dim)}
    for layer in range(TEXT["n_layers"]):
        shapes |= _block(f"layers.{layer}", dim, TEXT["hidden_dim"], heads * head_dim, kv_heads * head_dim)
    width = VISION["hidden_size"]
    patch = VISION["patch_size"]
    shapes |= {"vision_encoder.patch_conv.weight": (width, VISION["num_channels"], patch, patch),
               "vision_encoder.ln_pre.weight": (width,)}
    for layer in range(VISION["num_hidden_layers"]):
        shapes |= _block(f"vision_encoder.transformer.layers.{layer}", width, VISION["intermediate_size"], width,
                         width)
    shapes |= {"vision_language_adapter.w_in.weight": (dim, width), "vision_language_adapter.w_in.bias": (dim,),
               "vision_language_adapter.w_out.weight": (dim, dim), "vision_language_adapter.w_out.bias": (dim,)}
    return shapes


def write_tiny_pixtral(directory: Path, seed: int = 0) -> Path:
    import torch
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, shape in tensor_shapes().items():
        if name.endswith("norm.weight") or name.endswith("ln_pre.weight"):
            tensors[name] = torch.ones(shape, dtype=torch.bfloat16)
        else:
            tensors[name] = (torch.randn(shape, generator=generator) * 0.02).to(torch.bfloat16)
    save_file(tensors, str(directory / "consolidated.safetensors"))
    (directory / "params.json").write_text(json.dumps(_params(), indent=2))
    (directory / "tekken.json").write_text(json.dumps(_tekken()))
    return directory


if __name__ == "__main__":
    print(write_tiny_pixtral(Path(sys.argv[1])))
