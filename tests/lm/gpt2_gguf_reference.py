#!/usr/bin/python3
"""Reference files for tests/lm/test_gguf_gpt2.c, written independently of agora.

A tiny random GPT-2 (vocabulary: GPT-2's 256 byte symbols, a few merges and
<|endoftext|>) written
  - as llama.cpp's convert_hf_to_gguf.py writes GPT-2 (general.architecture
    "gpt2": token_embd, position_embd, blk.N.attn_norm/attn_qkv/attn_output/
    ffn_norm/ffn_up/ffn_down with biases, output_norm, output = a copy of
    token_embd; Conv1D weights transposed to (out, in); the BPE vocabulary in
    tokenizer.ggml.* with pre "gpt-2"): gpt2-f32.gguf, gpt2-mixed.gguf (F16,
    BF16 and Q8_0 tensors), gpt2-tied.gguf (no output.weight), and broken
    variants;
  - as Hugging Face publishes GPT-2 (config.json, model.safetensors with
    Conv1D (in, out) weights and no "transformer." prefix, tokenizer.json):
    hf/;
and the float64 logits (T, V) of IDS under each of the first two GGUF files,
computed from the files' own bytes: ref-f32.bin, ref-mixed.bin (float32).
Each TEXTS[k] goes to text-K.txt with its ids under a plain GPT-2 BPE in
ids-K.txt.

Usage: gpt2_gguf_reference.py OUTDIR IDS   (IDS: comma-separated token ids)
"""
import json
import os
import re
import struct
import sys

import numpy as np

OUT, IDS = sys.argv[1], [int(x) for x in sys.argv[2].split(",")]
C, H, L, CTX, EPS = 32, 4, 2, 16, 1e-5
FF = 4 * C
TEXTS = ["the cat and then the end", "Then the cat sat in the sun!\n", "it's 42 cats  and\tdogs"]
MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("a", "t"), ("Ġ", "c"), ("Ġc", "at"), ("n", "d"),
          ("Ġ", "a"), ("Ġa", "nd"), ("e", "n"), ("Ġthe", "n"), ("i", "n")]


# ---- vocabulary ---------------------------------------------------------------------------

def bytes_to_unicode():
    """GPT-2's printable stand-in for each byte, in GPT-2's vocabulary order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return bs, [chr(c) for c in cs]


BYTE_ORDER, SYMBOLS = bytes_to_unicode()
BYTE_SYMBOL = dict(zip(BYTE_ORDER, SYMBOLS))
TOKENS = SYMBOLS + [a + b for a, b in MERGES] + ["<|endoftext|>"]
V = len(TOKENS)
EOT = V - 1
TOKEN_ID = {t: i for i, t in enumerate(TOKENS)}
RANK = {pair: r for r, pair in enumerate(MERGES)}
# GPT-2's split pattern, with ASCII classes standing for \p{L} and \p{N}
# (every test text is ASCII).
SPLIT = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")


def bpe(word):
    parts = [BYTE_SYMBOL[b] for b in word.encode("utf-8")]
    while len(parts) > 1:
        pairs = [(RANK.get((parts[i], parts[i + 1]), 1 << 30), i) for i in range(len(parts) - 1)]
        rank, i = min(pairs)
        if rank == 1 << 30:
            break
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
    return [TOKEN_ID[p] for p in parts]


def encode(text):
    return [i for word in SPLIT.findall(text) for i in bpe(word)]


# ---- weights (float32, agora's / HF's (out, in) layout for every linear) -----------------

rng = np.random.default_rng(11)


def normal(*shape, std=0.2):
    return (rng.standard_normal(shape) * std).astype(np.float32)


W = {"token_embd.weight": normal(V, C, std=0.5), "position_embd.weight": normal(CTX, C, std=0.3)}
for l in range(L):
    b = "blk.%d." % l
    W[b + "attn_norm.weight"] = 1 + normal(C)
    W[b + "attn_norm.bias"] = normal(C, std=0.1)
    W[b + "attn_qkv.weight"] = normal(3 * C, C, std=0.3)
    W[b + "attn_qkv.bias"] = normal(3 * C, std=0.1)
    W[b + "attn_output.weight"] = normal(C, C)
    W[b + "attn_output.bias"] = normal(C, std=0.1)
    W[b + "ffn_norm.weight"] = 1 + normal(C)
    W[b + "ffn_norm.bias"] = normal(C, std=0.1)
    W[b + "ffn_up.weight"] = normal(FF, C)
    W[b + "ffn_up.bias"] = normal(FF, std=0.1)
    W[b + "ffn_down.weight"] = normal(C, FF)
    W[b + "ffn_down.bias"] = normal(C, std=0.1)
W["output_norm.weight"] = 1 + normal(C)
W["output_norm.bias"] = normal(C, std=0.1)

# ---- GGUF ---------------------------------------------------------------------------------

F32, F16, Q8_0, BF16 = 0, 1, 8, 30


def q8_0(x):
    blocks = x.reshape(-1, 32).astype(np.float64)
    d = np.abs(blocks).max(1) / 127
    q = np.round(blocks / np.where(d == 0, 1, d)[:, None]).clip(-127, 127).astype(np.int8)
    out = bytearray()
    for scale, row in zip(d.astype(np.float16), q):
        out += scale.tobytes() + row.tobytes()
    return bytes(out)


def bf16(x):
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # round to nearest even
    return bits.astype(np.uint16).tobytes()


def encode_tensor(x, t):
    return {F32: lambda: x.astype("<f4").tobytes(), F16: lambda: x.astype("<f2").tobytes(),
            Q8_0: lambda: q8_0(x), BF16: lambda: bf16(x)}[t]()


def gguf_string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def gguf_value(v):
    if isinstance(v, bool):
        return struct.pack("<I?", 7, v)
    if isinstance(v, int):
        return struct.pack("<II", 4, v)
    if isinstance(v, float):
        return struct.pack("<If", 6, v)
    if isinstance(v, str):
        return struct.pack("<I", 8) + gguf_string(v)
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return struct.pack("<IIQ", 9, 8, len(v)) + b"".join(gguf_string(x) for x in v)
    return struct.pack("<IIQ", 9, 5, len(v)) + b"".join(struct.pack("<i", x) for x in v)


def write_gguf(path, meta, tensors):
    """tensors: [(name, float32 array, type)] in file order."""
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta))
    for k, v in meta.items():
        head += gguf_string(k) + gguf_value(v)
    data, offset = b"", 0
    for name, x, t in tensors:
        raw = encode_tensor(x, t)
        head += gguf_string(name) + struct.pack("<I", x.ndim)
        head += b"".join(struct.pack("<Q", n) for n in x.shape[::-1])
        head += struct.pack("<IQ", t, offset)
        raw += b"\0" * (-len(raw) % 32)
        data += raw
        offset += len(raw)
    head += b"\0" * (-len(head) % 32)
    with open(path, "wb") as f:
        f.write(head + data)


def metadata(context=CTX, kv_heads=None):
    m = {"general.architecture": "gpt2", "general.name": "tiny-gpt2", "gpt2.block_count": L,
         "gpt2.context_length": context, "gpt2.embedding_length": C,
         "gpt2.feed_forward_length": FF, "gpt2.attention.head_count": H,
         "gpt2.attention.layer_norm_epsilon": EPS, "general.file_type": 1}
    if kv_heads is not None:
        m["gpt2.attention.head_count_kv"] = kv_heads
    m.update({"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt-2",
              "tokenizer.ggml.tokens": TOKENS,
              "tokenizer.ggml.token_type": [1] * (V - 1) + [3],
              "tokenizer.ggml.merges": ["%s %s" % pair for pair in MERGES],
              "tokenizer.ggml.bos_token_id": EOT, "tokenizer.ggml.eos_token_id": EOT})
    return m


def tensor_list(types=None, output=True, skip=()):
    types = types or {}
    names = ["token_embd.weight", "position_embd.weight"]
    for l in range(L):
        names += ["blk.%d.%s" % (l, n) for n in (
            "attn_norm.weight", "attn_norm.bias", "attn_qkv.weight", "attn_qkv.bias",
            "attn_output.weight", "attn_output.bias", "ffn_norm.weight", "ffn_norm.bias",
            "ffn_up.weight", "ffn_up.bias", "ffn_down.weight", "ffn_down.bias")]
    names += ["output_norm.weight", "output_norm.bias"]
    # as the converter does, only matrices take another type
    def kind(n):
        return n.split(".")[2] if n.startswith("blk.") else n
    out = [(n, W[n], types.get(kind(n), F32) if W[n].ndim == 2 else F32)
           for n in names if n not in skip]
    if output:
        out.append(("output.weight", W["token_embd.weight"], types.get("token_embd.weight", F32)))
    return out


MIXED = {"token_embd.weight": Q8_0, "position_embd.weight": F16, "attn_qkv": F16,
         "attn_output": F16, "ffn_up": BF16, "ffn_down": Q8_0}
write_gguf(os.path.join(OUT, "gpt2-f32.gguf"), metadata(), tensor_list())
write_gguf(os.path.join(OUT, "gpt2-mixed.gguf"), metadata(), tensor_list(MIXED))
write_gguf(os.path.join(OUT, "gpt2-tied.gguf"), metadata(), tensor_list(output=False))
bad = tensor_list()
bad[-1] = ("output.weight", W["token_embd.weight"] + normal(V, C, std=0.5), F32)
write_gguf(os.path.join(OUT, "bad-output.gguf"), metadata(), bad)
write_gguf(os.path.join(OUT, "bad-positions.gguf"), metadata(context=2 * CTX), tensor_list())
write_gguf(os.path.join(OUT, "bad-kv.gguf"), metadata(kv_heads=2), tensor_list())
write_gguf(os.path.join(OUT, "bad-bias.gguf"), metadata(),
           tensor_list(skip=("blk.1.attn_qkv.bias",)))

# ---- the Hugging Face folder ------------------------------------------------------------------

HF = {"wte.weight": W["token_embd.weight"], "wpe.weight": W["position_embd.weight"],
      "ln_f.weight": W["output_norm.weight"], "ln_f.bias": W["output_norm.bias"]}
for l in range(L):
    g, h = "blk.%d." % l, "h.%d." % l
    for ours, theirs, conv in (("attn_norm", "ln_1", False), ("attn_qkv", "attn.c_attn", True),
                               ("attn_output", "attn.c_proj", True), ("ffn_norm", "ln_2", False),
                               ("ffn_up", "mlp.c_fc", True), ("ffn_down", "mlp.c_proj", True)):
        HF[h + theirs + ".weight"] = W[g + ours + ".weight"].T.copy() if conv else \
            W[g + ours + ".weight"]
        HF[h + theirs + ".bias"] = W[g + ours + ".bias"]
folder = os.path.join(OUT, "hf")
os.makedirs(folder, exist_ok=True)
header, blob = {"__metadata__": {"format": "pt"}}, b""
for name, x in HF.items():
    raw = np.ascontiguousarray(x, dtype="<f4").tobytes()
    header[name] = {"dtype": "F32", "shape": list(x.shape),
                    "data_offsets": [len(blob), len(blob) + len(raw)]}
    blob += raw
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
with open(os.path.join(folder, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + blob)
with open(os.path.join(folder, "config.json"), "w") as f:
    json.dump({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": V,
               "n_embd": C, "n_layer": L, "n_head": H, "n_positions": CTX, "n_ctx": CTX,
               "layer_norm_epsilon": EPS, "activation_function": "gelu_new",
               "bos_token_id": EOT, "eos_token_id": EOT}, f)
byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
              "use_regex": True}
with open(os.path.join(folder, "tokenizer.json"), "w") as f:
    json.dump({"version": "1.0", "truncation": None, "padding": None,
               "added_tokens": [{"id": EOT, "content": "<|endoftext|>", "single_word": False,
                                 "lstrip": False, "rstrip": False, "normalized": True,
                                 "special": True}],
               "normalizer": None, "pre_tokenizer": byte_level, "post_processor": byte_level,
               "decoder": byte_level,
               "model": {"type": "BPE", "dropout": None, "unk_token": None,
                         "continuing_subword_prefix": "", "end_of_word_suffix": "",
                         "fuse_unk": False, "vocab": TOKEN_ID,
                         "merges": ["%s %s" % pair for pair in MERGES]}}, f)
with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
    json.dump({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
               "unk_token": "<|endoftext|>", "model_max_length": CTX}, f)

for k, t in enumerate(TEXTS):
    with open(os.path.join(OUT, "text-%d.txt" % k), "wb") as f:
        f.write(t.encode("utf-8"))
    with open(os.path.join(OUT, "ids-%d.txt" % k), "w") as f:
        f.write(" ".join(map(str, encode(t))) + "\n")

# ---- float64 logits from a GGUF file's bytes ---------------------------------------------------


def read_gguf(path):
    raw = open(path, "rb").read()
    pos = 4

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, raw, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        s = raw[pos:pos + n].decode("utf-8")
        pos += n
        return s

    scalar = {4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        return take(scalar[t])

    assert raw[:4] == b"GGUF"
    _, n_tensors, n_kv = take("I"), take("Q"), take("Q")
    meta = {}
    for _ in range(n_kv):
        k = string()
        meta[k] = value(take("I"))
    infos = []
    for _ in range(n_tensors):
        name = string()
        ne = [take("Q") for _ in range(take("I"))]
        infos.append((name, ne, take("I"), take("Q")))
    base = (pos + 31) // 32 * 32
    tensors = {}
    for name, ne, t, off in infos:
        n, at = int(np.prod(ne)), base + off
        if t == F32:
            x = np.frombuffer(raw, "<f4", n, at).astype(np.float64)
        elif t == F16:
            x = np.frombuffer(raw, "<f2", n, at).astype(np.float64)
        elif t == BF16:
            x = (np.frombuffer(raw, "<u2", n, at).astype(np.uint32) << 16).view(np.float32)
            x = x.astype(np.float64)
        elif t == Q8_0:
            blocks = np.frombuffer(raw, np.uint8, n // 32 * 34, at).reshape(-1, 34)
            d = blocks[:, :2].copy().view("<f2").astype(np.float64)
            x = (blocks[:, 2:].copy().view(np.int8).astype(np.float64) * d).reshape(-1)
        else:
            raise ValueError("type %d" % t)
        tensors[name] = x.reshape(ne[::-1])
    return meta, tensors


def forward(path, ids):
    meta, T = read_gguf(path)
    eps = meta["gpt2.attention.layer_norm_epsilon"]
    heads, n = meta["gpt2.attention.head_count"], len(ids)
    D = C // heads

    def norm(x, w, b):
        mu = x.mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * w + b

    def gelu(x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

    x = T["token_embd.weight"][ids] + T["position_embd.weight"][:n]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(meta["gpt2.block_count"]):
        b = "blk.%d." % l
        h = norm(x, T[b + "attn_norm.weight"], T[b + "attn_norm.bias"])
        qkv = h @ T[b + "attn_qkv.weight"].T + T[b + "attn_qkv.bias"]
        q, k, v = (qkv[:, i * C:(i + 1) * C].reshape(n, heads, D).transpose(1, 0, 2)
                   for i in range(3))
        s = q @ k.transpose(0, 2, 1) / np.sqrt(D) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        o = ((s / s.sum(-1, keepdims=True)) @ v).transpose(1, 0, 2).reshape(n, C)
        x = x + o @ T[b + "attn_output.weight"].T + T[b + "attn_output.bias"]
        h = norm(x, T[b + "ffn_norm.weight"], T[b + "ffn_norm.bias"])
        u = gelu(h @ T[b + "ffn_up.weight"].T + T[b + "ffn_up.bias"])
        x = x + u @ T[b + "ffn_down.weight"].T + T[b + "ffn_down.bias"]
    head = T.get("output.weight", T["token_embd.weight"])
    return norm(x, T["output_norm.weight"], T["output_norm.bias"]) @ head.T


for name in ("f32", "mixed"):
    forward(os.path.join(OUT, "gpt2-%s.gguf" % name), IDS).astype("<f4").tofile(
        os.path.join(OUT, "ref-%s.bin" % name))
