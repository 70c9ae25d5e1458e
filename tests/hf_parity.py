#!/usr/bin/python3
"""Manual parity check of w2s's GPT-2 against an independent PyTorch forward
(not part of make test).

1. Writes a seeded random GPT-2 in Hugging Face layout (config.json,
   model.safetensors in F32, a GPT-2-style vocab.json + merges.txt), with
   struct and numpy only.
2. build/train import -> a.ckpt; build/train --init a.ckpt trains it for a
   few steps on generated text -> b.ckpt; build/train export -> exported/.
3. build/tests/hf_logits b.ckpt: the logits w2s computes for one sequence.
4. Reads exported/model.safetensors with struct + numpy (not the safetensors
   package) and runs a hand-written GPT-2 forward in PyTorch (float64 and
   float32) on the same ids; prints the largest absolute logit difference.

Needs Debian's python3-torch and python3-numpy (apt-get install python3-torch
python3-numpy; this is /usr/bin/python3's torch), `make all
build/tests/hf_logits`, and a build whose GPT-2 tokenizer is real.

usage: tests/hf_parity.py [--build build] [--work DIR] [--steps 30]
"""
import argparse
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

L, H, C, T = 4, 4, 64, 64
MERGES = [("Ġ", "t"), ("h", "e"), ("Ġ", "a"), ("i", "n"), ("Ġt", "he"), ("r", "e"),
          ("o", "n"), ("e", "r"), ("Ġ", "s"), ("a", "n")]


def byte_alphabet():
    """GPT-2's byte-to-unicode table, in vocab.json id order."""
    printable = [b for b in range(256)
                 if ord("!") <= b <= ord("~") or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF]
    order, chars, extra = [], {}, 0
    for b in printable:
        order.append(b)
        chars[b] = chr(b)
    for b in range(256):
        if b not in chars:
            order.append(b)
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in order]


def write_safetensors(path, tensors):
    header, offset, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + begin:8 + n + end], dtype="<f4").reshape(info["shape"])
    return out


def write_gpt2(d, seed):
    rng = np.random.default_rng(seed)
    vocab = byte_alphabet() + [a + b for a, b in MERGES] + ["<|endoftext|>"]
    V = len(vocab)
    w = lambda *s: rng.normal(0, 0.1, s)
    t = {"wte.weight": w(V, C), "wpe.weight": w(T, C),
         "ln_f.weight": 1 + w(C), "ln_f.bias": w(C)}
    for i in range(L):
        p = f"h.{i}."
        t.update({p + "ln_1.weight": 1 + w(C), p + "ln_1.bias": w(C),
                  p + "attn.c_attn.weight": w(C, 3 * C), p + "attn.c_attn.bias": w(3 * C),
                  p + "attn.c_proj.weight": w(C, C), p + "attn.c_proj.bias": w(C),
                  p + "ln_2.weight": 1 + w(C), p + "ln_2.bias": w(C),
                  p + "mlp.c_fc.weight": w(C, 4 * C), p + "mlp.c_fc.bias": w(4 * C),
                  p + "mlp.c_proj.weight": w(4 * C, C), p + "mlp.c_proj.bias": w(C)})
    os.makedirs(d, exist_ok=True)
    write_safetensors(os.path.join(d, "model.safetensors"), t)
    config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": V,
              "n_positions": T, "n_ctx": T, "n_embd": C, "n_layer": L, "n_head": H,
              "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new",
              "bos_token_id": V - 1, "eos_token_id": V - 1}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({tok: i for i, tok in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in MERGES))
    return V


def gpt2_logits(sd, cfg, ids, dtype):
    """GPT-2 (Hugging Face layout: Conv1D y = x W + b, W stored (in, out))."""
    p = {k: torch.tensor(v, dtype=dtype) for k, v in sd.items()}
    n, c, nh = len(ids), cfg["n_embd"], cfg["n_head"]
    hs, eps = c // nh, cfg["layer_norm_epsilon"]
    ln = lambda x, pre: torch.nn.functional.layer_norm(x, (c,), p[pre + ".weight"], p[pre + ".bias"], eps)
    conv = lambda x, pre: x @ p[pre + ".weight"] + p[pre + ".bias"]
    gelu = lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    mask = torch.tril(torch.ones(n, n, dtype=torch.bool))
    x = p["wte.weight"][torch.tensor(ids)] + p["wpe.weight"][:n]
    for i in range(cfg["n_layer"]):
        pre = f"h.{i}."
        q, k, v = conv(ln(x, pre + "ln_1"), pre + "attn.c_attn").split(c, dim=-1)
        q, k, v = (z.view(n, nh, hs).transpose(0, 1) for z in (q, k, v))
        att = (q @ k.transpose(1, 2)) / math.sqrt(hs)
        att = torch.softmax(att.masked_fill(~mask, float("-inf")), dim=-1)
        y = (att @ v).transpose(0, 1).reshape(n, c)
        x = x + conv(y, pre + "attn.c_proj")
        x = x + conv(gelu(conv(ln(x, pre + "ln_2"), pre + "mlp.c_fc")), pre + "mlp.c_proj")
    return ln(x, "ln_f") @ p["wte.weight"].T


def run(argv):
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stderr}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--work", help="work directory (default: a temporary one)")
    ap.add_argument("--steps", type=int, default=30)
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="w2s-parity-")
    os.makedirs(work, exist_ok=True)
    train = os.path.join(a.build, "train")
    src, exported = os.path.join(work, "src"), os.path.join(work, "exported")
    ck_a, ck_b = os.path.join(work, "a.ckpt"), os.path.join(work, "b.ckpt")
    V = write_gpt2(src, seed=1)
    rng = np.random.default_rng(2)
    words = ["the", "cat", "sat", "on", "a", "mat", "in", "the", "sun", "and", "there", "were"]
    with open(os.path.join(work, "gt.txt"), "w") as f:
        for _ in range(400):
            f.write(" ".join(rng.choice(words, 12)) + ".\n")
    run([train, "import", "--hf", src, "--out", ck_a, "--quiet"])
    run([train, "--gt", os.path.join(work, "gt.txt"), "--records", "line", "--init", ck_a,
         "--steps", str(a.steps), "--batch", "4", "--lr", "3e-3", "--threads", "2",
         "--checkpoint-every", "0", "--out", ck_b, "--quiet"])
    if os.path.exists(exported):
        sys.exit(f"{exported} exists; give another --work")
    run([train, "export", "--model", ck_b, "--out", exported, "--quiet"])

    ids = [int(i) for i in rng.integers(0, V, T)]
    out = os.path.join(work, "w2s_logits.bin")
    run([os.path.join(a.build, "tests", "hf_logits"), ck_b, out] + [str(i) for i in ids])
    w2s = np.fromfile(out, dtype="<f4").reshape(T, V).astype(np.float64)

    with open(os.path.join(exported, "config.json")) as f:
        cfg = json.load(f)
    sd = read_safetensors(os.path.join(exported, "model.safetensors"))
    moved = np.abs(sd["wte.weight"] - read_safetensors(os.path.join(src, "model.safetensors"))["wte.weight"]).max()
    ref64 = gpt2_logits(sd, cfg, ids, torch.float64).numpy()
    ref32 = gpt2_logits(sd, cfg, ids, torch.float32).numpy().astype(np.float64)
    print(f"model L{cfg['n_layer']} H{cfg['n_head']} C{cfg['n_embd']} T{cfg['n_positions']} V{cfg['vocab_size']}, "
          f"{a.steps} w2s training steps after import (wte moved by up to {moved:.3g}), {T} positions")
    print(f"largest |logit|: {np.abs(ref64).max():.4f}")
    print(f"max |w2s - torch float64|: {np.abs(w2s - ref64).max():.3e}")
    print(f"max |w2s - torch float32|: {np.abs(w2s - ref32).max():.3e}")
    print(f"max |torch float32 - torch float64|: {np.abs(ref32 - ref64).max():.3e}")
    print(f"argmax agreement: {np.mean(w2s.argmax(1) == ref64.argmax(1)):.3f}")
    print(f"work directory: {work}")


if __name__ == "__main__":
    main()
