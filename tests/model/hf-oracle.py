#!/usr/bin/env python3
"""hf-oracle.py — an independent reference forward pass (numpy, float64) over a
Hugging Face directory (config.json + model.safetensors), for architectures
that have no llama.cpp reference file in ../shared (qwen3).

It implements the HF modelling code's math directly from config.json:
embedding, RMSNorm, q/k/v projections (+bias for qwen2), qwen3's per-head
q/k RMSNorm, rotate-half RoPE, causal GQA attention, SwiGLU MLP, final norm,
lm_head (or tied embeddings). It is checked against llama.cpp's qwen2-tiny
reference by the test before it is trusted for qwen3.

usage:
  hf-oracle.py make  MKMODEL TOKENIZER_DIR OUT_DIR   # generate a qwen3 model (GGUF + HF)
  hf-oracle.py logits HF_DIR OUT_PREFIX TOKEN...      # write OUT_PREFIX.bin (f32 logits)
"""
import json
import os
import struct
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    sys.exit("hf-oracle.py: needs numpy (Debian: python3-numpy; .ci/install-deps installs it)")


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, info in hdr.items():
            if name == "__metadata__":
                continue
            a, b = info["data_offsets"]
            f.seek(base + a)
            raw = f.read(b - a)
            dt = info["dtype"]
            if dt == "F32":
                arr = np.frombuffer(raw, dtype="<f4")
            elif dt == "F16":
                arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
            elif dt == "BF16":
                u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
                arr = u.view(np.float32)
            else:
                sys.exit("hf-oracle.py: unsupported dtype %s for %s" % (dt, name))
            out[name] = arr.reshape(info["shape"]).astype(np.float64)
        return out


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, pos, base):
    # x: [T, heads, hd], rotate-half (HF) form
    hd = x.shape[-1]
    half = hd // 2
    inv = base ** (-np.arange(0, half, dtype=np.float64) * 2.0 / hd)
    ang = pos[:, None] * inv[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def forward(hf_dir, tokens):
    cfg = json.load(open(os.path.join(hf_dir, "config.json")))
    W = load_safetensors(os.path.join(hf_dir, "model.safetensors"))
    arch = cfg["model_type"]
    D, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    H, KV = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    hd = cfg.get("head_dim") or D // H
    eps, base = cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0)
    T = len(tokens)
    pos = np.arange(T, dtype=np.float64)
    x = W["model.embed_tokens.weight"][tokens]
    for l in range(L):
        p = "model.layers.%d." % l
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)

        def proj(name, n_heads):
            y = h @ W[p + "self_attn.%s_proj.weight" % name].T
            if p + "self_attn.%s_proj.bias" % name in W:
                y = y + W[p + "self_attn.%s_proj.bias" % name]
            return y.reshape(T, n_heads, hd)

        q, k, v = proj("q", H), proj("k", KV), proj("v", KV)
        if arch == "qwen3":
            q = rms_norm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, W[p + "self_attn.k_norm.weight"], eps)
        q, k = rope(q, pos, base), rope(k, pos, base)
        out = np.zeros((T, H, hd))
        mask = np.triu(np.full((T, T), -np.inf), 1)
        for hh in range(H):
            kh = hh // (H // KV)
            s = q[:, hh, :] @ k[:, kh, :].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            out[:, hh, :] = s @ v[:, kh, :]
        x = x + out.reshape(T, H * hd) @ W[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        g = h @ W[p + "mlp.gate_proj.weight"].T
        u = h @ W[p + "mlp.up_proj.weight"].T
        x = x + ((g / (1.0 + np.exp(-g))) * u) @ W[p + "mlp.down_proj.weight"].T
    xl = rms_norm(x[-1], W["model.norm.weight"], eps)
    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    return head @ xl


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "make":
        mkmodel, tok_dir, out = sys.argv[2], sys.argv[3], sys.argv[4]
        os.makedirs(out, exist_ok=True)
        # head_dim 32 != dim/heads (16): exercises qwen3's explicit head_dim
        subprocess.run([sys.executable, mkmodel, "--arch", "qwen3", "--tokenizer", tok_dir,
                        "--dim", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2",
                        "--head-dim", "32", "--ffn", "96", "--type", "f32", "--seed", "7",
                        "--out", os.path.join(out, "qwen3-tiny.gguf"),
                        "--hf-dir", os.path.join(out, "qwen3-tiny-hf")], check=True)
        return
    if len(sys.argv) >= 5 and sys.argv[1] == "logits":
        hf_dir, prefix = sys.argv[2], sys.argv[3]
        tokens = [int(t) for t in sys.argv[4:]]
        logits = forward(hf_dir, tokens).astype("<f4")
        with open(prefix + ".bin", "wb") as f:
            f.write(logits.tobytes())
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
