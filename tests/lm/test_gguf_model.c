/* GGUF models: llama.cpp's q/k row permutation and its inverse, the real
 * llama-2-tiny-random.gguf against an independent numpy forward pass (the
 * file parsed with struct, rotary embeddings computed both ways), GGUF files
 * written here from agora models (llama with GQA, tied and untied; qwen2
 * with biases) loading back to the same network, metadata -> config, and
 * the errors a bad file gives. */
#include "agora/generate.h"
#include "agora/gguf_model.h"
#include "test.h"

#define TINY_GGUF     "../shared/data/models/llama-2-tiny-random.gguf"
#define QWEN_TEMPLATE "../shared/data/tokenizers/chat-templates/Qwen-Qwen2.5-7B-Instruct.jinja"

/* ---- a small GGUF writer -------------------------------------------------------------- */

typedef struct bytes {
  unsigned char *data;
  size_t size, capacity;
} bytes;

static void put(bytes *b, const void *p, size_t n) {
  if (b->size + n > b->capacity) {
    b->capacity = (b->size + n) * 2 + 64;
    b->data = realloc(b->data, b->capacity);
  }
  memcpy(b->data + b->size, p, n);
  b->size += n;
}
static void put_u32(bytes *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(bytes *b, uint64_t v) { put(b, &v, 8); }
static void put_str(bytes *b, const char *s) {
  put_u64(b, strlen(s));
  put(b, s, strlen(s));
}

#define MAX_TENSORS 64
typedef struct gguf_writer {
  bytes kv;
  uint64_t kv_count;
  const char *names[MAX_TENSORS];
  int ndim[MAX_TENSORS];
  int64_t shape[MAX_TENSORS][2];
  uint32_t type[MAX_TENSORS];
  bytes data[MAX_TENSORS];
  int tensors;
} gguf_writer;

static void kv_str(gguf_writer *w, const char *key, const char *v) {
  put_str(&w->kv, key);
  put_u32(&w->kv, 8);
  put_str(&w->kv, v);
  w->kv_count++;
}
static void kv_u32(gguf_writer *w, const char *key, uint32_t v) {
  put_str(&w->kv, key);
  put_u32(&w->kv, 4);
  put_u32(&w->kv, v);
  w->kv_count++;
}
static void kv_f32(gguf_writer *w, const char *key, float v) {
  put_str(&w->kv, key);
  put_u32(&w->kv, 6);
  put(&w->kv, &v, 4);
  w->kv_count++;
}
/* Byte-fallback tokens 31..39: the UTF-8 of U+00E9 and U+1F600, a lone
 * lead byte, 'A' and a newline. */
static const unsigned BYTE_TOKENS[9] = {0xC3, 0xA9, 0xF0, 0x9F, 0x98, 0x80, 0xE2, 0x41, 0x0A};

/* ids 0-4 "<unk>" "<s>" "</s>" "<|im_start|>" "<|im_end|>", 5-30 letters
 * (odd ids with a leading U+2581), 31-39 BYTE_TOKENS. */
static void kv_tokens(gguf_writer *w, int n) {
  put_str(&w->kv, "tokenizer.ggml.tokens");
  put_u32(&w->kv, 9);
  put_u32(&w->kv, 8);
  put_u64(&w->kv, (uint64_t)n);
  const char *fixed[] = {"<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"};
  for (int i = 0; i < n; i++) {
    char text[16];
    if (i < 5) {
      snprintf(text, sizeof text, "%s", fixed[i]);
    } else {
      snprintf(text, sizeof text, "%s%c", i % 2 ? "\xe2\x96\x81" : "", 'a' + (i - 5) % 26);
      if (i >= 31) snprintf(text, sizeof text, "<0x%02X>", BYTE_TOKENS[(i - 31) % 9]);
    }
    put_str(&w->kv, text);
  }
  put_str(&w->kv, "tokenizer.ggml.token_type");
  put_u32(&w->kv, 9);
  put_u32(&w->kv, 5);
  put_u64(&w->kv, (uint64_t)n);
  for (int i = 0; i < n; i++) put_u32(&w->kv, i < 5 ? 3 : i >= 31 ? 6 : 1); /* control / byte */
  w->kv_count += 2;
  kv_str(w, "tokenizer.ggml.model", "llama");
  kv_u32(w, "tokenizer.ggml.bos_token_id", 1);
  kv_u32(w, "tokenizer.ggml.eos_token_id", 2);
}

/* A float32 tensor (or raw bytes of another type, shape given). */
static void add_tensor(gguf_writer *w, const char *name, const float *x, int ndim,
                       const int64_t *shape, uint32_t type, size_t raw_bytes) {
  int i = w->tensors++;
  w->names[i] = name;
  w->ndim[i] = ndim;
  w->shape[i][0] = shape[0];
  w->shape[i][1] = ndim > 1 ? shape[1] : 1;
  w->type[i] = type;
  w->data[i] = (bytes){0};
  if (type == 0) {
    put(&w->data[i], x, (size_t)(shape[0] * w->shape[i][1]) * sizeof(float));
  } else {
    unsigned char *zero = calloc(raw_bytes, 1);
    put(&w->data[i], zero, raw_bytes);
    free(zero);
  }
}

static void pad(bytes *b, size_t align) {
  static const unsigned char zeros[32] = {0};
  if (b->size % align) put(b, zeros, align - b->size % align);
}

/* Writes the file and frees the writer's buffers. */
static void gguf_write(gguf_writer *w, const char *path) {
  bytes out = {0};
  put(&out, "GGUF", 4);
  put_u32(&out, 3);
  put_u64(&out, (uint64_t)w->tensors);
  put_u64(&out, w->kv_count);
  put(&out, w->kv.data, w->kv.size);
  uint64_t offset = 0;
  for (int i = 0; i < w->tensors; i++) {
    put_str(&out, w->names[i]);
    put_u32(&out, (uint32_t)w->ndim[i]);
    put_u64(&out, (uint64_t)(w->ndim[i] > 1 ? w->shape[i][1] : w->shape[i][0])); /* ne[0] */
    if (w->ndim[i] > 1) put_u64(&out, (uint64_t)w->shape[i][0]);
    put_u32(&out, w->type[i]);
    put_u64(&out, offset);
    offset += (w->data[i].size + 31) / 32 * 32;
  }
  pad(&out, 32);
  for (int i = 0; i < w->tensors; i++) {
    put(&out, w->data[i].data, w->data[i].size);
    pad(&out, 32);
    free(w->data[i].data);
  }
  CHECK_OK(ag_atomic_write(path, out.data, out.size));
  free(out.data);
  free(w->kv.data);
  memset(w, 0, sizeof *w);
}

/* The llama.cpp names, written independently of src/lm/gguf_model.c. */
static const char *gguf_name(const char *hf, char *buf) {
  if (!strcmp(hf, "model.embed_tokens.weight")) return "token_embd.weight";
  if (!strcmp(hf, "model.norm.weight")) return "output_norm.weight";
  if (!strcmp(hf, "lm_head.weight")) return "output.weight";
  static const char *const map[][2] = {{"input_layernorm.weight", "attn_norm.weight"},
                                       {"self_attn.q_proj.weight", "attn_q.weight"},
                                       {"self_attn.q_proj.bias", "attn_q.bias"},
                                       {"self_attn.k_proj.weight", "attn_k.weight"},
                                       {"self_attn.k_proj.bias", "attn_k.bias"},
                                       {"self_attn.v_proj.weight", "attn_v.weight"},
                                       {"self_attn.v_proj.bias", "attn_v.bias"},
                                       {"self_attn.o_proj.weight", "attn_output.weight"},
                                       {"post_attention_layernorm.weight", "ffn_norm.weight"},
                                       {"mlp.gate_proj.weight", "ffn_gate.weight"},
                                       {"mlp.up_proj.weight", "ffn_up.weight"},
                                       {"mlp.down_proj.weight", "ffn_down.weight"}};
  int layer = -1, used = 0;
  sscanf(hf, "model.layers.%d.%n", &layer, &used);
  for (size_t i = 0; used && i < sizeof map / sizeof map[0]; i++)
    if (!strcmp(hf + used, map[i][0])) {
      snprintf(buf, 64, "blk.%d.%s", layer, map[i][1]);
      return buf;
    }
  return NULL;
}

/* A GGUF file of model m as llama.cpp's converter writes one (q/k permuted
 * for "llama"). vocab: add a tokenizer of that many ids (0: none). */
static void write_model(ag_transformer *m, const char *arch, const char *path, int vocab,
                        const char *chat_template) {
  const ag_transformer_config *c = ag_transformer_config_of(m);
  gguf_writer w = {0};
  char key[96];
  kv_str(&w, "general.architecture", arch);
#define ARCH_KEY(suffix) (snprintf(key, sizeof key, "%s." suffix, arch), key)
  kv_u32(&w, ARCH_KEY("context_length"), (uint32_t)c->max_positions);
  kv_u32(&w, ARCH_KEY("embedding_length"), (uint32_t)c->hidden_size);
  kv_u32(&w, ARCH_KEY("block_count"), (uint32_t)c->num_layers);
  kv_u32(&w, ARCH_KEY("feed_forward_length"), (uint32_t)c->intermediate_size);
  kv_u32(&w, ARCH_KEY("attention.head_count"), (uint32_t)c->num_heads);
  kv_u32(&w, ARCH_KEY("attention.head_count_kv"), (uint32_t)c->num_kv_heads);
  kv_f32(&w, ARCH_KEY("attention.layer_norm_rms_epsilon"), c->norm_eps);
  kv_f32(&w, ARCH_KEY("rope.freq_base"), c->rope.theta);
#undef ARCH_KEY
  if (vocab) kv_tokens(&w, vocab);
  if (chat_template) kv_str(&w, "tokenizer.chat_template", chat_template);
  ag_params *p = ag_transformer_params(m);
  static char names[MAX_TENSORS][64];
  float *scratch[MAX_TENSORS] = {0};
  for (int i = 0; i < p->count; i++) {
    ag_tensor *t = p->tensors[i];
    const char *name = gguf_name(t->name, names[i]);
    CHECK_MSG(name != NULL, "no GGUF name for %s", t->name);
    if (!name) continue;
    const float *x = t->data;
    int64_t heads = strstr(t->name, "q_proj")   ? c->num_heads
                    : strstr(t->name, "k_proj") ? c->num_kv_heads
                                                : 0;
    if (heads && !strcmp(arch, "llama")) {
      scratch[i] = malloc((size_t)t->numel * sizeof(float));
      ag_gguf_permute_rows(t->data, scratch[i], heads, c->head_dim, t->ndim > 1 ? t->shape[1] : 1);
      x = scratch[i];
    }
    add_tensor(&w, name, x, t->ndim, t->shape, 0, 0);
  }
  gguf_write(&w, path);
  for (int i = 0; i < MAX_TENSORS; i++) free(scratch[i]);
}

static ag_transformer *random_model(int64_t vocab, bool tied, bool qkv_bias) {
  ag_transformer_config c = ag_transformer_llama_config(vocab, 16, 2, 4, 2, 64);
  c.intermediate_size = 24;
  c.tie_embeddings = tied;
  c.qkv_bias = qkv_bias;
  c.rope.theta = 5000.0f;
  ag_transformer *m = NULL;
  CHECK_OK(ag_transformer_create(&c, &m));
  if (!m) return NULL;
  ag_transformer_init(m, 3);
  ag_params *p = ag_transformer_params(m);
  ag_rng rng;
  ag_rng_seed(&rng, 4);
  for (int i = 0; i < p->count; i++) /* norms and biases away from 1 and 0 */
    if (p->tensors[i]->ndim == 1)
      for (int64_t j = 0; j < p->tensors[i]->numel; j++)
        p->tensors[i]->data[j] += 0.3f * ag_rng_normal(&rng);
  return m;
}

static const char *tmp_path(const char *name) {
  static char path[4][600];
  static int next = 0;
  char *p = path[next++ % 4];
  snprintf(p, 600, "%s/%s", test_tmpdir(), name);
  return p;
}

/* Logits (T, V) of ids, malloc'd. */
static float *logits_of(ag_transformer *m, const int32_t *ids, int64_t T) {
  ag_tape *t = ag_tape_create();
  ag_tape_set_grad_enabled(t, false);
  ag_tensor *y = ag_transformer_forward(t, m, ids, 1, T);
  float *out = NULL;
  if (y) {
    out = malloc((size_t)y->numel * sizeof(float));
    memcpy(out, y->data, (size_t)y->numel * sizeof(float));
  } else {
    fprintf(stderr, "forward: %s\n", ag_tape_error(t));
  }
  ag_tape_destroy(t);
  return out;
}

static double max_diff(const float *a, const float *b, int64_t n) {
  if (!a || !b) return INFINITY;
  double d = 0;
  for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
  return d;
}

/* ---- the permutation ------------------------------------------------------------------- */

TEST(permutation_moves_rows_as_llama_cpp_converter_does) {
  /* convert_hf_to_gguf.py: w.reshape(heads, 2, D/2, cols).swapaxes(1, 2):
   * for D = 4, HF rows (0 1 | 2 3) of a head become 0 2 1 3. */
  float hf[8] = {0, 1, 2, 3, 4, 5, 6, 7}, gg[8], back[8];
  ag_gguf_permute_rows(hf, gg, 2, 4, 1);
  const float want[8] = {0, 2, 1, 3, 4, 6, 5, 7};
  CHECK(!memcmp(gg, want, sizeof want));
  ag_gguf_unpermute_rows(gg, back, 2, 4, 1);
  CHECK(!memcmp(back, hf, sizeof hf));
  /* D = 6, rows of 3 floats */
  float a[36], b[36], c[36];
  for (int i = 0; i < 36; i++) a[i] = (float)i;
  ag_gguf_permute_rows(a, b, 2, 6, 3);
  CHECK(b[3 * 1] == a[3 * 3] && b[3 * 2] == a[3 * 1] && b[3 * 7] == a[3 * 9] + 0.0f);
  ag_gguf_unpermute_rows(b, c, 2, 6, 3);
  CHECK(!memcmp(a, c, sizeof a));
}

/* ---- the real tiny GGUF against numpy -------------------------------------------------------- */

/* Parses the GGUF with struct, undoes the permutation, runs a float64 Llama
 * forward with Hugging Face's rotate-half rotary embeddings, and checks it
 * against llama.cpp's interleaved rotation of the file's own weights. */
static const char *NUMPY_GGUF_LLAMA =
    "import struct, sys\n"
    "import numpy as np\n"
    "path, out, ids = sys.argv[1], sys.argv[2], [int(x) for x in sys.argv[3].split(',')]\n"
    "raw = open(path, 'rb').read(); pos = 0\n"
    "def take(fmt):\n"
    "    global pos\n"
    "    v = struct.unpack_from('<' + fmt, raw, pos); pos += struct.calcsize('<' + fmt)\n"
    "    return v[0]\n"
    "def text():\n"
    "    global pos\n"
    "    n = take('Q'); s = raw[pos:pos + n].decode('utf-8', 'replace'); pos += n\n"
    "    return s\n"
    "SCALAR = {0: 'B', 1: 'b', 2: 'H', 3: 'h', 4: 'I', 5: 'i', 6: 'f', 7: '?', 10: 'Q', 11: 'q',"
    " 12: 'd'}\n"
    "def value(t):\n"
    "    if t == 8: return text()\n"
    "    if t == 9:\n"
    "        et, n = take('I'), take('Q')\n"
    "        return [value(et) for _ in range(n)]\n"
    "    return take(SCALAR[t])\n"
    "assert raw[:4] == b'GGUF'; pos = 4\n"
    "version, n_tensors, n_kv = take('I'), take('Q'), take('Q')\n"
    "meta = {}\n"
    "for _ in range(n_kv):\n"
    "    k = text(); meta[k] = value(take('I'))\n"
    "infos = []\n"
    "for _ in range(n_tensors):\n"
    "    name = text(); nd = take('I'); ne = [take('Q') for _ in range(nd)]\n"
    "    infos.append((name, ne, take('I'), take('Q')))\n"
    "align = meta.get('general.alignment', 32); base = (pos + align - 1) // align * align\n"
    "W = {}\n"
    "for name, ne, t, off in infos:\n"
    "    n = int(np.prod(ne)); dt = {0: '<f4', 1: '<f2'}[t]\n"
    "    W[name] = np.frombuffer(raw, dt, n, base + off).astype(np.float64).reshape(ne[::-1])\n"
    "a = meta['general.architecture']\n"
    "C, L = meta[a + '.embedding_length'], meta[a + '.block_count']\n"
    "H = meta[a + '.attention.head_count']; KV = meta.get(a + '.attention.head_count_kv', H)\n"
    "D = C // H; eps = meta[a + '.attention.layer_norm_rms_epsilon']\n"
    "inv = 1.0 / meta.get(a + '.rope.freq_base', 10000.0) ** (np.arange(0, D, 2) / D)\n"
    "def unpermute(w, heads):  # llama.cpp row 2i+s of a head -> HF row s*D/2+i\n"
    "    return w.reshape(heads, D // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)\n"
    "def rms(x, w): return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w\n"
    "def rope_half(x, p):\n"
    "    c, s = np.cos(p[:, None] * inv)[:, None], np.sin(p[:, None] * inv)[:, None]\n"
    "    x1, x2 = x[..., :D // 2], x[..., D // 2:]\n"
    "    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], -1)\n"
    "def rope_pairs(x, p):\n"
    "    c, s = np.cos(p[:, None] * inv)[:, None], np.sin(p[:, None] * inv)[:, None]\n"
    "    y = x.copy(); y[..., 0::2] = x[..., 0::2] * c - x[..., 1::2] * s\n"
    "    y[..., 1::2] = x[..., 1::2] * c + x[..., 0::2] * s\n"
    "    return y\n"
    "def forward(ids, hf):\n"
    "    T = len(ids); p = np.arange(T) * 1.0; x = W['token_embd.weight'][ids]\n"
    "    mask = np.triu(np.full((T, T), -np.inf), 1)\n"
    "    for l in range(L):\n"
    "        b = 'blk.%d.' % l; h = rms(x, W[b + 'attn_norm.weight'])\n"
    "        wq, wk, rope = W[b + 'attn_q.weight'], W[b + 'attn_k.weight'], rope_pairs\n"
    "        if hf: wq, wk, rope = unpermute(wq, H), unpermute(wk, KV), rope_half\n"
    "        q = rope((h @ wq.T).reshape(T, H, D), p).transpose(1, 0, 2)\n"
    "        k = np.repeat(rope((h @ wk.T).reshape(T, KV, D), p), H // KV, 1).transpose(1, 2, 0)\n"
    "        v = np.repeat((h @ W[b + 'attn_v.weight'].T).reshape(T, KV, D), H // KV, 1)\n"
    "        s = q @ k / np.sqrt(D) + mask; s = np.exp(s - s.max(-1, keepdims=True))\n"
    "        o = ((s / s.sum(-1, keepdims=True)) @ v.transpose(1, 0, 2)).transpose(1, 0, 2)\n"
    "        x = x + o.reshape(T, H * D) @ W[b + 'attn_output.weight'].T\n"
    "        h = rms(x, W[b + 'ffn_norm.weight'])\n"
    "        g, u = h @ W[b + 'ffn_gate.weight'].T, h @ W[b + 'ffn_up.weight'].T\n"
    "        x = x + (g / (1 + np.exp(-g)) * u) @ W[b + 'ffn_down.weight'].T\n"
    "    head = W.get('output.weight', W['token_embd.weight'])\n"
    "    return rms(x, W['output_norm.weight']) @ head.T\n"
    "y = forward(ids, True)\n"
    "assert np.abs(y - forward(ids, False)).max() <= 1e-9 * np.abs(y).max(), 'rope layouts'\n"
    "y.astype('<f4').tofile(out)\n";

static const int32_t TINY_IDS[] = {1, 15043, 3186, 29892, 920, 526, 366, 29973};
#define TINY_T ((int64_t)(sizeof TINY_IDS / sizeof TINY_IDS[0]))
#define TINY_V 32000

static bool tiny_present(void) {
  if (ag_file_exists(TINY_GGUF)) return true;
  fprintf(stderr, "  note: %s not found; skipped\n", TINY_GGUF);
  return false;
}

/* numpy's logits (T, V) for TINY_IDS, malloc'd; NULL if it could not run. */
static float *numpy_logits(const char *gguf) {
  char script[700], out[700], cmd[3000], ids[256] = "";
  snprintf(script, sizeof script, "%s", tmp_path("numpy_gguf.py"));
  snprintf(out, sizeof out, "%s", tmp_path("numpy_logits.bin"));
  CHECK_OK(ag_atomic_write(script, NUMPY_GGUF_LLAMA, strlen(NUMPY_GGUF_LLAMA)));
  for (int64_t i = 0; i < TINY_T; i++)
    snprintf(ids + strlen(ids), sizeof ids - strlen(ids), i ? ",%d" : "%d", (int)TINY_IDS[i]);
  snprintf(cmd, sizeof cmd,
           "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 '%s' '%s' '%s' %s", script,
           gguf, out, ids);
  if (system(cmd) != 0) {
    fprintf(stderr, "numpy reference failed: %s\n", cmd);
    return NULL;
  }
  float *y = malloc((size_t)(TINY_T * TINY_V) * sizeof(float));
  FILE *f = fopen(out, "rb");
  bool ok = f && fread(y, sizeof(float), (size_t)(TINY_T * TINY_V), f) == (size_t)(TINY_T * TINY_V);
  if (f) fclose(f);
  if (!ok) {
    free(y);
    return NULL;
  }
  return y;
}

TEST(tiny_random_gguf_config_comes_from_its_metadata) {
  if (!tiny_present()) return;
  ag_gguf *f = NULL;
  CHECK_OK(ag_gguf_open(TINY_GGUF, &f));
  if (!f) return;
  ag_transformer_config c;
  CHECK_OK(ag_gguf_model_config(f, &c));
  CHECK(c.arch == AG_ARCH_LLAMA && c.vocab_size == 32000 && c.hidden_size == 8 &&
        c.intermediate_size == 32 && c.num_layers == 1 && c.num_heads == 2 && c.num_kv_heads == 2 &&
        c.head_dim == 4 && c.max_positions == 4096);
  CHECK(c.norm_eps == 1e-5f && c.rope.theta == 10000.0f && c.rope.scaling == AG_ROPE_DEFAULT);
  CHECK(!c.tie_embeddings && !c.qkv_bias && !c.o_bias && !c.mlp_bias);
  ag_gguf_close(f);
}

TEST(tiny_random_gguf_logits_match_numpy_forward_and_kv_cache_decoding) {
  if (!tiny_present()) return;
  float *want = numpy_logits(TINY_GGUF);
  CHECK(want != NULL);
  ag_transformer *m = NULL;
  CHECK_OK(ag_gguf_model_load(TINY_GGUF, false, &m));
  if (!m || !want) {
    ag_transformer_destroy(m);
    free(want);
    return;
  }
  CHECK(!ag_transformer_trainable(m));
  float *got = logits_of(m, TINY_IDS, TINY_T);
  double scale = 0;
  for (int64_t i = 0; i < TINY_T * TINY_V; i++) scale = fmax(scale, fabs(want[i]));
  double d = max_diff(got, want, TINY_T * TINY_V);
  /* float32 against float64: about 2e-7 of the largest logit. The random
   * weights (std 0.02) make attention nearly uniform, so q/k rows in the
   * wrong order move the logits by only ~2e-4 of it: the tolerance must be
   * well below that. */
  CHECK_MSG(d <= 1e-5 * scale, "logits differ from numpy's by %g (largest |logit| %g)", d, scale);
  /* token by token through the KV cache */
  ag_kv_cache *cache = NULL;
  CHECK_OK(ag_kv_cache_create(m, 1, TINY_T, &cache));
  double step_diff = 0;
  for (int64_t i = 0; cache && i < TINY_T; i++) {
    const float *row;
    CHECK_OK(ag_transformer_decode(m, cache, &TINY_IDS[i], 1, NULL, AG_LOGITS_LAST, &row));
    step_diff = fmax(step_diff, max_diff(row, want + i * TINY_V, TINY_V));
  }
  CHECK_MSG(step_diff <= 1e-5 * scale, "decoded logits differ from numpy's by %g", step_diff);
  ag_kv_cache_destroy(cache);
  /* trainable load: the same numbers in a parameter store */
  ag_transformer *t = NULL;
  CHECK_OK(ag_gguf_model_load(TINY_GGUF, true, &t));
  float *again = t ? logits_of(t, TINY_IDS, TINY_T) : NULL;
  CHECK(t && ag_transformer_trainable(t) && max_diff(again, got, TINY_T * TINY_V) == 0);
  free(again);
  ag_transformer_destroy(t);
  free(got);
  free(want);
  ag_transformer_destroy(m);
}

TEST(tiny_random_gguf_opens_as_a_language_model_and_generates) {
  if (!tiny_present()) return;
  ag_lm *lm = NULL;
  CHECK_OK(ag_lm_open(TINY_GGUF, &lm));
  if (!lm) return;
  CHECK(lm->format == AG_LM_GGUF && lm->add_bos && lm->bos_id == 1 && ag_lm_is_eos(lm, 2));
  CHECK(lm->context_length == 4096 && ag_tok_vocab_size(lm->tokenizer) == 32000);
  CHECK(lm->chat_template == NULL);
  ag_generate_options o = ag_generate_defaults();
  o.max_new_tokens = 24;
  o.seed = 3;
  const char *prompt = "Hello world";
  ag_generation a, b;
  CHECK_OK(ag_generate(lm, &prompt, 1, &o, &a));
  CHECK_OK(ag_generate(lm, &prompt, 1, &o, &b));
  CHECK(a.prompt_tokens == 3 && a.tokens.count > 0 && a.tokens.count == b.tokens.count &&
        !memcmp(a.tokens.ids, b.tokens.ids, (size_t)a.tokens.count * sizeof(int32_t)));
  ag_generation_free(&a, 1);
  ag_generation_free(&b, 1);
  ag_lm_close(lm);
}

/* ---- GGUF files written from agora models ---------------------------------------------------- */

static void check_round_trip(bool tied, bool qkv_bias, const char *arch) {
  ag_transformer *m = random_model(37, tied, qkv_bias);
  if (!m) return;
  const char *path = tmp_path("model.gguf");
  write_model(m, arch, path, 0, NULL);
  ag_transformer *back = NULL;
  CHECK_OK(ag_gguf_model_load(path, false, &back));
  if (back) {
    const ag_transformer_config *a = ag_transformer_config_of(m),
                                *b = ag_transformer_config_of(back);
    CHECK(b->num_kv_heads == 2 && b->num_heads == 4 && b->head_dim == 4 && b->vocab_size == 37);
    CHECK(b->tie_embeddings == a->tie_embeddings && b->qkv_bias == a->qkv_bias);
    CHECK(b->rope.theta == 5000.0f && b->max_positions == 64);
    ag_params *p = ag_transformer_params(m), *q = ag_transformer_params(back);
    CHECK(p->count == q->count);
    for (int i = 0; i < p->count && i < q->count; i++)
      CHECK_MSG(!strcmp(p->tensors[i]->name, q->tensors[i]->name) &&
                    !memcmp(p->tensors[i]->data, q->tensors[i]->data,
                            (size_t)p->tensors[i]->numel * sizeof(float)),
                "%s %s: %s differs", arch, tied ? "tied" : "untied", p->tensors[i]->name);
    const int32_t ids[] = {1, 5, 9, 36, 0, 2};
    float *x = logits_of(m, ids, 6), *y = logits_of(back, ids, 6);
    CHECK(max_diff(x, y, 6 * 37) == 0);
    free(x);
    free(y);
  }
  ag_transformer_destroy(back);
  ag_transformer_destroy(m);
}

TEST(llama_files_with_gqa_tied_or_not_load_back_to_the_same_network) {
  check_round_trip(true, false, "llama");
  check_round_trip(false, false, "llama");
}

TEST(qwen2_files_keep_their_row_order_and_biases) {
  check_round_trip(false, true, "qwen2");
  check_round_trip(true, true, "qwen2");
}

TEST(a_gguf_with_vocabulary_and_chat_template_opens_as_an_lm) {
  ag_transformer *m = random_model(40, true, false);
  if (!m) return;
  char *jinja = NULL;
  size_t n = 0;
  if (ag_file_exists(QWEN_TEMPLATE)) CHECK_OK(ag_read_file(QWEN_TEMPLATE, &jinja, &n));
  const char *path = tmp_path("vocab.gguf");
  write_model(m, "llama", path, 40, jinja ? jinja : "{{ unknown }}");
  ag_transformer_destroy(m);
  ag_lm *lm = NULL;
  CHECK_OK(ag_lm_open(path, &lm));
  if (lm) {
    CHECK(lm->add_bos && lm->bos_id == 1 && ag_lm_is_eos(lm, 2));
    if (jinja)
      CHECK(lm->chat_template && !strcmp(ag_chat_template_name(lm->chat_template), "chatml"));
    if (!jinja) CHECK(!lm->chat_template && lm->chat_template_note[0]);
    ag_generate_options o = ag_generate_defaults();
    o.sampling.temperature = 0;
    o.max_new_tokens = 10;
    o.ignore_eos = true;
    const char *prompt = "ab";
    ag_generation g;
    CHECK_OK(ag_generate(lm, &prompt, 1, &o, &g));
    CHECK(g.tokens.count == 10);
    ag_generation_free(&g, 1);
  }
  ag_lm_close(lm);
  free(jinja);
  /* the same vocabulary beside a 37-row embedding is refused */
  m = random_model(37, true, false);
  if (!m) return;
  write_model(m, "llama", path, 40, NULL);
  ag_transformer_destroy(m);
  lm = NULL;
  CHECK(ag_lm_open(path, &lm) == AG_ERR_INVALID && !lm);
  CHECK(strstr(ag_error_message(), "40") && strstr(ag_error_message(), "37"));
}

/* A model that says one thing: every layer zero, so the hidden state is the
 * token's embedding; embedding row of chain[k] = unit vector k, LM-head row
 * of chain[k + 1] = 10 x unit vector k. Greedy decoding then walks chain. */
static const int32_t CHAIN[] = {1, 6, 31, 32, 33, 34, 35, 36, 37, 7, 38, 39, 2};
#define CHAIN_LENGTH ((int)(sizeof CHAIN / sizeof CHAIN[0]))

static void collect_piece(void *user, int64_t index, const char *text, size_t n) {
  ag_tok_text *pieces = user; /* NUL-separated */
  CHECK(index == 0 && n > 0);
  pieces->data = realloc(pieces->data, pieces->size + n + 2);
  memcpy(pieces->data + pieces->size, text, n);
  pieces->size += n;
  pieces->data[pieces->size++] = '\0';
}

/* Byte offsets where a character starts (an invalid byte is one unit). */
static bool starts_character(const unsigned char *s, size_t size, size_t at) {
  size_t i = 0;
  while (i < at) {
    unsigned char c = s[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    bool ok = i + len <= size;
    for (size_t k = 1; ok && k < len; k++) ok = (s[i + k] & 0xC0) == 0x80;
    i += ok ? len : 1;
  }
  return i == at;
}

TEST(streamed_text_is_whole_utf8_characters_across_byte_tokens) {
  ag_transformer *m = random_model(40, false, false);
  if (!m) return;
  ag_params *p = ag_transformer_params(m);
  for (int i = 0; i < p->count; i++)
    memset(p->tensors[i]->data, 0, (size_t)p->tensors[i]->numel * 4);
  ag_tensor *embed = ag_params_find(p, "model.embed_tokens.weight");
  ag_tensor *head = ag_params_find(p, "lm_head.weight");
  ag_tensor *norm = ag_params_find(p, "model.norm.weight");
  for (int64_t j = 0; j < 16; j++) norm->data[j] = 1;
  for (int k = 0; k + 1 < CHAIN_LENGTH; k++) {
    embed->data[CHAIN[k] * 16 + k] = 1;
    head->data[CHAIN[k + 1] * 16 + k] = 10;
  }
  const char *path = tmp_path("script.gguf");
  write_model(m, "llama", path, 40, NULL);
  ag_transformer_destroy(m);
  ag_lm *lm = NULL;
  CHECK_OK(ag_lm_open(path, &lm));
  if (!lm) return;
  ag_generate_options o = ag_generate_defaults();
  o.sampling.temperature = 0;
  o.max_new_tokens = 40;
  ag_tok_text pieces = {0};
  o.on_text = collect_piece;
  o.user = &pieces;
  const char *empty = "";
  ag_generation g;
  CHECK_OK(ag_generate(lm, &empty, 1, &o, &g));
  CHECK(g.finish == AG_FINISH_EOS && g.tokens.count == CHAIN_LENGTH - 1);
  CHECK(g.tokens.count == CHAIN_LENGTH - 1 &&
        !memcmp(g.tokens.ids, CHAIN + 1, (size_t)(CHAIN_LENGTH - 1) * sizeof(int32_t)));
  const char want[] = "b\xc3\xa9\xf0\x9f\x98\x80\xe2 cA\n"; /* ids 6 "b", 7 "▁c" */
  CHECK_MSG(g.text.size == sizeof want - 1 && !memcmp(g.text.data, want, sizeof want - 1),
            "text '%s'", g.text.data ? g.text.data : "");
  /* pieces add up to the text and each starts a character */
  size_t at = 0, count = 0;
  for (size_t i = 0; i < pieces.size; i += strlen(pieces.data + i) + 1, count++) {
    size_t n = strlen(pieces.data + i);
    CHECK_MSG(starts_character((const unsigned char *)g.text.data, g.text.size, at),
              "a piece starts inside a character at byte %zu", at);
    CHECK(at + n <= g.text.size && !memcmp(g.text.data + at, pieces.data + i, n));
    at += n;
  }
  CHECK(at == g.text.size && count >= 4);
  ag_generation_free(&g, 1);
  free(pieces.data);
  ag_lm_close(lm);
}

/* ---- bad files ------------------------------------------------------------------------------- */

TEST(bad_gguf_models_are_clear_errors) {
  const char *path = tmp_path("bad.gguf");
  float w[8 * 4] = {0};
  int64_t shape[2] = {8, 4};
  /* an architecture agora does not run */
  gguf_writer g = {0};
  kv_str(&g, "general.architecture", "mamba");
  add_tensor(&g, "token_embd.weight", w, 2, shape, 0, 0);
  gguf_write(&g, path);
  ag_transformer *m = NULL;
  CHECK(ag_gguf_model_load(path, false, &m) == AG_ERR_UNSUPPORTED && !m);
  CHECK(strstr(ag_error_message(), "mamba") && strstr(ag_error_message(), "llama"));
  /* a missing shape key */
  kv_str(&g, "general.architecture", "llama");
  kv_u32(&g, "llama.embedding_length", 4);
  add_tensor(&g, "token_embd.weight", w, 2, shape, 0, 0);
  gguf_write(&g, path);
  CHECK(ag_gguf_model_load(path, false, &m) == AG_ERR_NOT_FOUND && !m);
  CHECK(strstr(ag_error_message(), "llama.block_count"));
  /* a truncated file, then a quantisation agora cannot convert */
  ag_transformer *src = random_model(37, true, false);
  if (!src) return;
  write_model(src, "llama", path, 0, NULL);
  ag_transformer_destroy(src);
  char *data = NULL;
  size_t n = 0;
  CHECK_OK(ag_read_file(path, &data, &n));
  if (!data) return;
  /* truncated: the reader refuses it, and ag_lm_open says so in one line */
  CHECK_OK(ag_atomic_write(path, data, n / 2));
  ag_lm *lm = NULL;
  CHECK(ag_lm_open(path, &lm) == AG_ERR_FORMAT && !lm && !strchr(ag_error_message(), '\n'));
  CHECK(strstr(ag_error_message(), "bad.gguf"));
  free(data);
  gguf_writer q = {0};
  kv_str(&q, "general.architecture", "llama");
  kv_u32(&q, "llama.context_length", 16);
  kv_u32(&q, "llama.embedding_length", 32);
  kv_u32(&q, "llama.block_count", 1);
  kv_u32(&q, "llama.feed_forward_length", 32);
  kv_u32(&q, "llama.attention.head_count", 4);
  int64_t embed[2] = {8, 32};
  add_tensor(&q, "token_embd.weight", w, 2, embed, 2 /* Q4_0: zero bytes */, 8 * 18);
  gguf_write(&q, path);
  CHECK(ag_gguf_model_load(path, false, &m) != AG_OK && !m);
  CHECK_MSG(strstr(ag_error_message(), "Q4_0") && strstr(ag_error_message(), "token_embd"), "%s",
            ag_error_message());
}

int main(void) {
  RUN(permutation_moves_rows_as_llama_cpp_converter_does);
  RUN(tiny_random_gguf_config_comes_from_its_metadata);
  RUN(tiny_random_gguf_logits_match_numpy_forward_and_kv_cache_decoding);
  RUN(tiny_random_gguf_opens_as_a_language_model_and_generates);
  RUN(llama_files_with_gqa_tied_or_not_load_back_to_the_same_network);
  RUN(qwen2_files_keep_their_row_order_and_biases);
  RUN(a_gguf_with_vocabulary_and_chat_template_opens_as_an_lm);
  RUN(streamed_text_is_whole_utf8_characters_across_byte_tokens);
  RUN(bad_gguf_models_are_clear_errors);
  TEST_MAIN_END();
}
