/* GGUF reading: the real llama.cpp files in ../shared/data (checked against
 * known values and against an independent Python parser), small files built
 * here with known metadata and F32/F16/BF16/Q8_0 tensors, and corrupt and
 * truncated variants of both, which must fail with a message, never crash. */
#include "agora/gguf.h"
#include "test.h"

#include <inttypes.h>
#include <limits.h>
#include <sys/stat.h>
#include <zlib.h>

#define MODEL_PATH   "../shared/data/models/llama-2-tiny-random.gguf"
#define VOCAB_GPT2   "../shared/data/tokenizers/ggml-vocab-gpt-2.gguf"
#define VOCAB_FALCON "../shared/data/tokenizers/ggml-vocab-falcon.gguf"
#define VOCAB_LLAMA  "../shared/data/tokenizers/ggml-vocab-llama-spm.gguf"
#define SAMPLE_NAME  "sample.gguf"
/* Header field positions: magic, version, tensor count, metadata count. */
#define AT_VERSION      4
#define AT_TENSOR_COUNT 8
#define AT_KV_COUNT     16
#define AT_FIRST_KV     24

/* ---- a GGUF writer (test-only) ------------------------------------------- */

typedef struct bytes {
  unsigned char *p;
  size_t n, cap;
} bytes;

static void put(bytes *b, const void *src, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2 + 64;
    b->p = realloc(b->p, b->cap);
    if (!b->p) abort();
  }
  if (n) memcpy(b->p + b->n, src, n);
  b->n += n;
}
static void put_le(bytes *b, uint64_t v, int n) {
  unsigned char c[8];
  for (int i = 0; i < n; i++) c[i] = (unsigned char)(v >> (8 * i));
  put(b, c, (size_t)n);
}
static void put_u8(bytes *b, uint8_t v) { put_le(b, v, 1); }
static void put_u16(bytes *b, uint16_t v) { put_le(b, v, 2); }
static void put_u32(bytes *b, uint32_t v) { put_le(b, v, 4); }
static void put_u64(bytes *b, uint64_t v) { put_le(b, v, 8); }
static void put_f32(bytes *b, float v) {
  uint32_t bits;
  memcpy(&bits, &v, 4);
  put_u32(b, bits);
}
static void put_f64(bytes *b, double v) {
  uint64_t bits;
  memcpy(&bits, &v, 8);
  put_u64(b, bits);
}
static void put_strn(bytes *b, const char *s, size_t n) {
  put_u64(b, n);
  put(b, s, n);
}
static void put_str(bytes *b, const char *s) { put_strn(b, s, strlen(s)); }
static void patch_u32(bytes *b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; i++) b->p[at + i] = (unsigned char)(v >> (8 * i));
}
static void patch_u64(bytes *b, size_t at, uint64_t v) {
  for (int i = 0; i < 8; i++) b->p[at + i] = (unsigned char)(v >> (8 * i));
}

/* Metadata, tensor descriptions and data are collected apart and joined by
 * finish(), as the format lays them out. */
typedef struct builder {
  bytes kv, info, data;
  uint64_t kv_count, tensor_count;
  uint32_t version, alignment;
} builder;

static builder builder_new(void) {
  builder g;
  memset(&g, 0, sizeof g);
  g.version = 3;
  g.alignment = AG_GGUF_DEFAULT_ALIGNMENT;
  return g;
}
/* Starts a pair; the caller writes the value into g->kv. */
static bytes *key(builder *g, const char *k, uint32_t type) {
  put_str(&g->kv, k);
  put_u32(&g->kv, type);
  g->kv_count++;
  return &g->kv;
}
static void array_head(bytes *b, uint32_t element_type, uint64_t count) {
  put_u32(b, element_type);
  put_u64(b, count);
}
/* ne in GGUF order: ne[0] varies fastest. */
static void tensor(builder *g, const char *name, uint32_t type, int ndim, const uint64_t *ne,
                   const void *data, size_t n) {
  while (g->data.n % g->alignment) put_u8(&g->data, 0);
  put_str(&g->info, name);
  put_u32(&g->info, (uint32_t)ndim);
  for (int d = 0; d < ndim; d++) put_u64(&g->info, ne[d]);
  put_u32(&g->info, type);
  put_u64(&g->info, g->data.n);
  put(&g->data, data, n);
  g->tensor_count++;
}
static bytes finish(builder *g) {
  bytes out = {0};
  put(&out, "GGUF", 4);
  put_u32(&out, g->version);
  put_u64(&out, g->tensor_count);
  put_u64(&out, g->kv_count);
  put(&out, g->kv.p, g->kv.n);
  put(&out, g->info.p, g->info.n);
  if (g->tensor_count)
    while (out.n % g->alignment) put_u8(&out, 0);
  put(&out, g->data.p, g->data.n);
  free(g->kv.p);
  free(g->info.p);
  free(g->data.p);
  memset(g, 0, sizeof *g);
  return out;
}

/* ---- the sample file: every value type, and tensors of known values ------- */

static const float F32_VALUES[6] = {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f};
/* float16 bit patterns and their exact values. */
static const uint16_t F16_BITS[8] = {0x3C00, 0xC000, 0x3E00, 0x7BFF,
                                     0x0001, 0x8000, 0x3555, 0x2E66};
static const float F16_VALUES[8] = {
    1.0f, -2.0f, 1.5f, 65504.0f, 5.9604644775390625e-08f, -0.0f, 0.333251953125f, 0.0999755859375f};
static const uint16_t BF16_BITS[4] = {0x3F80, 0xC040, 0x4049, 0x0000};
static const float BF16_VALUES[4] = {1.0f, -3.0f, 3.140625f, 0.0f};
/* Q8_0 block scales as float16 bits and values: powers of two, and 0x2E66. */
static const uint16_t Q8_SCALE_BITS[4] = {0x3800, 0xB400, 0x4000, 0x2E66};
static const float Q8_SCALES[4] = {0.5f, -0.25f, 2.0f, 0.0999755859375f};

static int8_t q8_value(int block, int j) { return (int8_t)((block * 37 + j * 11) % 256 - 128); }

static bytes build_sample(uint32_t alignment) {
  builder g = builder_new();
  g.alignment = alignment;
  if (alignment != AG_GGUF_DEFAULT_ALIGNMENT) put_u32(key(&g, "general.alignment", 4), alignment);
  put_str(key(&g, "general.architecture", AG_GGUF_STRING), "test");
  put_strn(key(&g, "general.name", AG_GGUF_STRING), "a\0b", 3); /* values may hold NUL */
  put_u8(key(&g, "u8", AG_GGUF_UINT8), 200);
  put_u8(key(&g, "i8", AG_GGUF_INT8), (uint8_t)-5);
  put_u16(key(&g, "u16", AG_GGUF_UINT16), 65535);
  put_u16(key(&g, "i16", AG_GGUF_INT16), (uint16_t)-32768);
  put_u32(key(&g, "u32", AG_GGUF_UINT32), 4000000000u);
  put_u32(key(&g, "i32", AG_GGUF_INT32), (uint32_t)INT32_MIN);
  put_u64(key(&g, "u64", AG_GGUF_UINT64), 5000000000u);
  put_u64(key(&g, "u64.max", AG_GGUF_UINT64), UINT64_MAX);
  put_u64(key(&g, "i64.min", AG_GGUF_INT64), (uint64_t)INT64_MIN);
  put_f32(key(&g, "f32", AG_GGUF_FLOAT32), 1.5f);
  put_f64(key(&g, "f64", AG_GGUF_FLOAT64), 0.1);
  put_u8(key(&g, "yes", AG_GGUF_BOOL), 1);
  put_u8(key(&g, "no", AG_GGUF_BOOL), 0);
  put_u8(key(&g, "bool.bad", AG_GGUF_BOOL), 2);
  bytes *b = key(&g, "strings", AG_GGUF_ARRAY);
  array_head(b, AG_GGUF_STRING, 3);
  put_str(b, "alpha");
  put_str(b, "");
  put_str(b, "\xce\xb3"); /* γ */
  b = key(&g, "i32s", AG_GGUF_ARRAY);
  array_head(b, AG_GGUF_INT32, 4);
  put_u32(b, (uint32_t)-1), put_u32(b, 0), put_u32(b, 7), put_u32(b, INT32_MAX);
  b = key(&g, "u8s", AG_GGUF_ARRAY);
  array_head(b, AG_GGUF_UINT8, 3);
  put_u8(b, 1), put_u8(b, 2), put_u8(b, 255);
  b = key(&g, "u64s", AG_GGUF_ARRAY);
  array_head(b, AG_GGUF_UINT64, 2);
  put_u64(b, 1), put_u64(b, (uint64_t)1 << 40);
  b = key(&g, "f32s", AG_GGUF_ARRAY);
  array_head(b, AG_GGUF_FLOAT32, 3);
  put_f32(b, 0.5f), put_f32(b, -1.25f), put_f32(b, 3.0f);
  b = key(&g, "f64s", AG_GGUF_ARRAY);
  array_head(b, AG_GGUF_FLOAT64, 2);
  put_f64(b, 0.1), put_f64(b, 2.5);
  b = key(&g, "nested", AG_GGUF_ARRAY); /* [["x", "y"], ["z"]] */
  array_head(b, AG_GGUF_ARRAY, 2);
  array_head(b, AG_GGUF_STRING, 2);
  put_str(b, "x"), put_str(b, "y");
  array_head(b, AG_GGUF_STRING, 1);
  put_str(b, "z");
  b = key(&g, "empty", AG_GGUF_ARRAY);
  array_head(b, AG_GGUF_INT32, 0);

  bytes d = {0};
  for (int i = 0; i < 6; i++) put_f32(&d, F32_VALUES[i]);
  tensor(&g, "f32", AG_GGML_F32, 2, (uint64_t[]){3, 2}, d.p, d.n);
  d.n = 0;
  for (int i = 0; i < 8; i++) put_u16(&d, F16_BITS[i]);
  tensor(&g, "f16", AG_GGML_F16, 2, (uint64_t[]){4, 2}, d.p, d.n);
  d.n = 0;
  for (int i = 0; i < 4; i++) put_u16(&d, BF16_BITS[i]);
  tensor(&g, "bf16", AG_GGML_BF16, 1, (uint64_t[]){4}, d.p, d.n);
  d.n = 0;
  for (int block = 0; block < 4; block++) {
    put_u16(&d, Q8_SCALE_BITS[block]);
    for (int j = 0; j < 32; j++) put_u8(&d, (uint8_t)q8_value(block, j));
  }
  tensor(&g, "q8", AG_GGML_Q8_0, 2, (uint64_t[]){64, 2}, d.p, d.n); /* 2 rows of 2 blocks */
  d.n = 0;
  for (int i = 0; i < 24; i++) put_f32(&d, (float)i);
  tensor(&g, "cube", AG_GGML_F32, 3, (uint64_t[]){2, 3, 4}, d.p, d.n);
  d.n = 0;
  for (int i = 0; i < 18; i++) put_u8(&d, 0);
  tensor(&g, "q4", AG_GGML_Q4_0, 1, (uint64_t[]){32}, d.p, d.n);
  tensor(&g, "empty", AG_GGML_F32, 2, (uint64_t[]){0, 3}, NULL, 0);
  free(d.p);
  return finish(&g);
}

/* Opens exactly `n` bytes in a fresh allocation of that size, so that the
 * sanitizer catches any read past the end. */
static ag_status open_exact(const void *data, size_t n, ag_gguf **out) {
  void *copy = malloc(n ? n : 1);
  if (n) memcpy(copy, data, n);
  ag_status st = ag_gguf_open_buffer(copy, n, SAMPLE_NAME, out);
  if (st) free(copy); /* on success the caller frees (*out)->bytes after close */
  return st;
}
static void close_exact(ag_gguf *f) {
  if (!f) return;
  void *copy = (void *)f->bytes;
  ag_gguf_close(f);
  free(copy);
}

/* Expects open to fail with `code` and a message naming the file and
 * holding `words`. */
static void check_rejected(const bytes *file, ag_status code, const char *words, int line) {
  ag_gguf *f = NULL;
  ag_status st = open_exact(file->p, file->n, &f);
  if (st != code || !strstr(ag_error_message(), SAMPLE_NAME) ||
      (words && !strstr(ag_error_message(), words))) {
    fprintf(stderr, "test_gguf.c:%d: expected %s with \"%s\", got %s: %s\n", line,
            ag_status_name(code), words ? words : "", ag_status_name(st), ag_error_message());
    test_failures_++;
  }
  close_exact(f);
}
#define CHECK_REJECTED(file, code, words) check_rejected(file, code, words, __LINE__)

static bool string_is(ag_gguf_string s, const char *want) {
  return s.length == strlen(want) && memcmp(s.data, want, s.length) == 0;
}

/* ---- metadata of the sample ------------------------------------------------- */

TEST(scalar_getters_read_each_type) {
  bytes file = build_sample(AG_GGUF_DEFAULT_ALIGNMENT);
  ag_gguf *f = NULL;
  CHECK_OK(open_exact(file.p, file.n, &f));
  if (!f) return;
  CHECK(f->version == 3 && f->alignment == 32 && f->tensor_count == 7);
  ag_gguf_string s;
  CHECK_OK(ag_gguf_get_string(f, "general.architecture", &s));
  CHECK(string_is(s, "test"));
  CHECK_OK(ag_gguf_get_string(f, "general.name", &s));
  CHECK(s.length == 3 && memcmp(s.data, "a\0b", 3) == 0);
  uint32_t u32 = 0;
  int32_t i32 = 0;
  uint64_t u64 = 0;
  int64_t i64 = 0;
  CHECK_OK(ag_gguf_get_u32(f, "u8", &u32));
  CHECK(u32 == 200);
  CHECK_OK(ag_gguf_get_i32(f, "i8", &i32));
  CHECK(i32 == -5);
  CHECK_OK(ag_gguf_get_u32(f, "u16", &u32));
  CHECK(u32 == 65535);
  CHECK_OK(ag_gguf_get_i32(f, "i16", &i32));
  CHECK(i32 == -32768);
  CHECK_OK(ag_gguf_get_u32(f, "u32", &u32));
  CHECK(u32 == 4000000000u);
  CHECK_OK(ag_gguf_get_i32(f, "i32", &i32));
  CHECK(i32 == INT32_MIN);
  CHECK_OK(ag_gguf_get_u64(f, "u64", &u64));
  CHECK(u64 == 5000000000u);
  CHECK_OK(ag_gguf_get_u64(f, "u64.max", &u64));
  CHECK(u64 == UINT64_MAX);
  CHECK_OK(ag_gguf_get_i64(f, "i64.min", &i64));
  CHECK(i64 == INT64_MIN);
  CHECK_OK(ag_gguf_get_i64(f, "u32", &i64)); /* widening across signedness */
  CHECK(i64 == 4000000000);
  float x = 0;
  CHECK_OK(ag_gguf_get_f32(f, "f32", &x));
  CHECK(x == 1.5f);
  CHECK_OK(ag_gguf_get_f32(f, "f64", &x));
  CHECK(x == 0.1f);
  bool yes = false, no = true;
  CHECK_OK(ag_gguf_get_bool(f, "yes", &yes));
  CHECK_OK(ag_gguf_get_bool(f, "no", &no));
  CHECK(yes && !no);
  CHECK(ag_gguf_get_bool(f, "bool.bad", &yes) == AG_ERR_FORMAT);

  const ag_gguf_kv *kv = ag_gguf_find(f, "i16");
  CHECK(kv && kv->type == AG_GGUF_INT16 && kv->count == 1 && kv->value_bytes == 2);
  CHECK(f->kvs[0].key && strcmp(f->kvs[0].key, "general.architecture") == 0); /* file order */
  close_exact(f);
  free(file.p);
}

TEST(getters_refuse_missing_keys_wrong_types_and_values_that_do_not_fit) {
  bytes file = build_sample(AG_GGUF_DEFAULT_ALIGNMENT);
  ag_gguf *f = NULL;
  CHECK_OK(open_exact(file.p, file.n, &f));
  if (!f) return;
  ag_error_clear();
  CHECK(ag_gguf_find(f, "no.such.key") == NULL);
  CHECK(strcmp(ag_error_message(), "no error") == 0); /* find is for optional keys */
  uint32_t u32 = 7;
  CHECK(ag_gguf_get_u32(f, "no.such.key", &u32) == AG_ERR_NOT_FOUND);
  CHECK(strstr(ag_error_message(), SAMPLE_NAME) && strstr(ag_error_message(), "no.such.key"));
  CHECK(ag_gguf_get_u32(f, "general.architecture", &u32) == AG_ERR_FORMAT);
  CHECK(strstr(ag_error_message(), "general.architecture") && strstr(ag_error_message(), "string"));
  CHECK(ag_gguf_get_u32(f, "i8", &u32) == AG_ERR_FORMAT); /* -5 */
  CHECK(strstr(ag_error_message(), "-5"));
  CHECK(ag_gguf_get_u32(f, "u64", &u32) == AG_ERR_FORMAT);
  CHECK(u32 == 7); /* untouched on failure */
  int32_t i32;
  CHECK(ag_gguf_get_i32(f, "u32", &i32) == AG_ERR_FORMAT);
  int64_t i64;
  CHECK(ag_gguf_get_i64(f, "u64.max", &i64) == AG_ERR_FORMAT);
  uint64_t u64;
  CHECK(ag_gguf_get_u64(f, "i64.min", &u64) == AG_ERR_FORMAT);
  CHECK(ag_gguf_get_u64(f, "f32", &u64) == AG_ERR_FORMAT); /* floats are not integers */
  CHECK(ag_gguf_get_u64(f, "yes", &u64) == AG_ERR_FORMAT); /* nor are bools */
  float x;
  CHECK(ag_gguf_get_f32(f, "u8", &x) == AG_ERR_FORMAT);
  CHECK(ag_gguf_get_f32(f, "f32s", &x) == AG_ERR_FORMAT);
  CHECK(strstr(ag_error_message(), "array"));
  bool b;
  CHECK(ag_gguf_get_bool(f, "u8", &b) == AG_ERR_FORMAT);
  ag_gguf_string s;
  CHECK(ag_gguf_get_string(f, "strings", &s) == AG_ERR_FORMAT);
  close_exact(f);
  free(file.p);
}

TEST(arrays_give_length_elements_and_whole_copies) {
  bytes file = build_sample(AG_GGUF_DEFAULT_ALIGNMENT);
  ag_gguf *f = NULL;
  CHECK_OK(open_exact(file.p, file.n, &f));
  if (!f) return;
  uint64_t n = 0;
  CHECK_OK(ag_gguf_get_array_length(f, "strings", &n));
  CHECK(n == 3);
  ag_gguf_string s;
  CHECK_OK(ag_gguf_get_array_string(f, "strings", 0, &s));
  CHECK(string_is(s, "alpha"));
  CHECK_OK(ag_gguf_get_array_string(f, "strings", 1, &s));
  CHECK(s.length == 0);
  CHECK_OK(ag_gguf_get_array_string(f, "strings", 2, &s));
  CHECK(string_is(s, "\xce\xb3"));
  CHECK(ag_gguf_get_array_string(f, "strings", 3, &s) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "out of range"));
  const ag_gguf_string *items = NULL;
  CHECK_OK(ag_gguf_get_string_array(f, "strings", &items, &n));
  CHECK(items && n == 3 && string_is(items[0], "alpha"));

  int64_t v = 0;
  CHECK_OK(ag_gguf_get_array_i64(f, "i32s", 0, &v));
  CHECK(v == -1);
  CHECK_OK(ag_gguf_get_array_i64(f, "u8s", 2, &v));
  CHECK(v == 255);
  CHECK_OK(ag_gguf_get_array_i64(f, "u64s", 1, &v));
  CHECK(v == (int64_t)1 << 40);
  CHECK(ag_gguf_get_array_i64(f, "strings", 0, &v) == AG_ERR_FORMAT);
  CHECK(ag_gguf_get_array_i64(f, "u8", 0, &v) == AG_ERR_FORMAT); /* not an array */
  CHECK(strstr(ag_error_message(), "not an array"));
  float x = 0;
  CHECK_OK(ag_gguf_get_array_f32(f, "f32s", 1, &x));
  CHECK(x == -1.25f);
  CHECK_OK(ag_gguf_get_array_f32(f, "f64s", 0, &x));
  CHECK(x == 0.1f);
  CHECK(ag_gguf_get_array_f32(f, "i32s", 0, &x) == AG_ERR_FORMAT);

  int32_t ints[4] = {0};
  CHECK_OK(ag_gguf_get_i32_array(f, "i32s", ints, 4));
  CHECK(ints[0] == -1 && ints[1] == 0 && ints[2] == 7 && ints[3] == INT32_MAX);
  CHECK_OK(ag_gguf_get_i32_array(f, "u8s", ints, 3));
  CHECK(ints[0] == 1 && ints[1] == 2 && ints[2] == 255);
  CHECK(ag_gguf_get_i32_array(f, "i32s", ints, 3) == AG_ERR_SHAPE); /* wrong length */
  int32_t two[2];
  CHECK(ag_gguf_get_i32_array(f, "u64s", two, 2) == AG_ERR_FORMAT); /* 2^40 does not fit */
  CHECK(strstr(ag_error_message(), "element 1"));
  float floats[3] = {0};
  CHECK_OK(ag_gguf_get_f32_array(f, "f32s", floats, 3));
  CHECK(floats[0] == 0.5f && floats[1] == -1.25f && floats[2] == 3.0f);
  CHECK_OK(ag_gguf_get_f32_array(f, "f64s", floats, 2));
  CHECK(floats[0] == 0.1f && floats[1] == 2.5f);
  CHECK_OK(ag_gguf_get_array_length(f, "empty", &n));
  CHECK(n == 0);
  CHECK_OK(ag_gguf_get_i32_array(f, "empty", ints, 0));

  /* Nested arrays are parsed and counted; the element getters refuse them. */
  CHECK_OK(ag_gguf_get_array_length(f, "nested", &n));
  CHECK(n == 2);
  const ag_gguf_kv *kv = ag_gguf_find(f, "nested");
  CHECK(kv && kv->element_type == AG_GGUF_ARRAY);
  CHECK(ag_gguf_get_array_string(f, "nested", 0, &s) == AG_ERR_FORMAT);
  close_exact(f);
  free(file.p);
}

/* ---- tensors of the sample ---------------------------------------------------- */

TEST(tensors_have_row_major_shapes_and_convert_to_f32) {
  bytes file = build_sample(AG_GGUF_DEFAULT_ALIGNMENT);
  ag_gguf *f = NULL;
  CHECK_OK(open_exact(file.p, file.n, &f));
  if (!f) return;
  float out[128];
  const ag_gguf_tensor *t = NULL;

  CHECK_OK(ag_gguf_get_tensor(f, "f32", &t));
  CHECK(t && t->type == AG_GGML_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
  CHECK(t && t->numel == 6 && t->bytes == 24);
  CHECK_OK(ag_gguf_read_f32(f, t, out));
  for (int i = 0; i < 6; i++) CHECK(out[i] == F32_VALUES[i]);

  CHECK_OK(ag_gguf_get_tensor(f, "f16", &t));
  CHECK(t && t->shape[0] == 2 && t->shape[1] == 4 && t->bytes == 16);
  CHECK_OK(ag_gguf_read_f32(f, t, out));
  for (int i = 0; i < 8; i++) CHECK_MSG(out[i] == F16_VALUES[i], "f16[%d] = %.9g", i, out[i]);
  CHECK(signbit(out[5])); /* -0 stays negative */

  CHECK_OK(ag_gguf_get_tensor(f, "bf16", &t));
  CHECK(t && t->ndim == 1 && t->shape[0] == 4);
  CHECK_OK(ag_gguf_read_f32(f, t, out));
  for (int i = 0; i < 4; i++) CHECK(out[i] == BF16_VALUES[i]);

  CHECK_OK(ag_gguf_get_tensor(f, "q8", &t));
  CHECK(t && t->type == AG_GGML_Q8_0 && t->shape[0] == 2 && t->shape[1] == 64);
  CHECK(t && t->bytes == 4 * 34);
  CHECK_OK(ag_gguf_read_f32(f, t, out));
  for (int i = 0; i < 128; i++) {
    const float want = Q8_SCALES[i / 32] * (float)q8_value(i / 32, i % 32);
    CHECK_MSG(out[i] == want, "q8[%d] = %.9g, want %.9g", i, out[i], want);
  }

  CHECK_OK(ag_gguf_get_tensor(f, "cube", &t)); /* ne [2, 3, 4] */
  CHECK(t && t->ndim == 3 && t->shape[0] == 4 && t->shape[1] == 3 && t->shape[2] == 2);
  CHECK_OK(ag_gguf_read_f32(f, t, out));
  for (int i = 0; i < 24; i++) CHECK(out[i] == (float)i);

  CHECK_OK(ag_gguf_get_tensor(f, "empty", &t));
  CHECK(t && t->numel == 0 && t->bytes == 0 && t->shape[0] == 3 && t->shape[1] == 0);
  CHECK_OK(ag_gguf_read_f32(f, t, out));

  CHECK_OK(ag_gguf_get_tensor(f, "q4", &t));
  CHECK(t && t->type == AG_GGML_Q4_0 && t->bytes == 18);
  CHECK(ag_gguf_read_f32(f, t, out) == AG_ERR_UNSUPPORTED);
  CHECK(strstr(ag_error_message(), "Q4_0") && strstr(ag_error_message(), "'q4'"));

  ag_error_clear();
  CHECK(ag_gguf_find_tensor(f, "absent") == NULL);
  CHECK(strcmp(ag_error_message(), "no error") == 0);
  CHECK(ag_gguf_get_tensor(f, "absent", &t) == AG_ERR_NOT_FOUND);
  CHECK(strstr(ag_error_message(), "absent") && strstr(ag_error_message(), SAMPLE_NAME));
  CHECK(strcmp(ag_ggml_type_name(AG_GGML_Q4_K), "Q4_K") == 0);
  CHECK(strcmp(ag_ggml_type_name((ag_ggml_type)4), "unknown") == 0); /* removed Q4_2 */
  CHECK(strcmp(ag_gguf_type_name(AG_GGUF_FLOAT64), "float64") == 0);
  close_exact(f);
  free(file.p);
}

TEST(data_follows_general_alignment) {
  bytes file = build_sample(64);
  ag_gguf *f = NULL;
  CHECK_OK(open_exact(file.p, file.n, &f));
  if (f) {
    CHECK(f->alignment == 64 && f->data_offset % 64 == 0);
    const ag_gguf_tensor *t = ag_gguf_find_tensor(f, "q8");
    float out[128];
    CHECK(t && t->offset % 64 == 0);
    CHECK(t && ag_gguf_read_f32(f, t, out) == AG_OK && out[1] == 0.5f * (float)q8_value(0, 1));
  }
  close_exact(f);
  free(file.p);

  builder g = builder_new();
  put_u32(key(&g, "general.alignment", AG_GGUF_UINT32), 48);
  bytes bad = finish(&g);
  CHECK_REJECTED(&bad, AG_ERR_FORMAT, "power of two");
  free(bad.p);
  g = builder_new();
  put_u64(key(&g, "general.alignment", AG_GGUF_UINT64), 32);
  bad = finish(&g);
  CHECK_REJECTED(&bad, AG_ERR_FORMAT, "not uint32");
  free(bad.p);
}

TEST(open_maps_a_file_and_names_missing_ones) {
  bytes file = build_sample(AG_GGUF_DEFAULT_ALIGNMENT);
  char path[600], dir[600];
  snprintf(path, sizeof path, "%s/sample.gguf", test_tmpdir());
  snprintf(dir, sizeof dir, "%s", test_tmpdir());
  CHECK_OK(ag_atomic_write(path, file.p, file.n));
  ag_gguf *f = NULL;
  CHECK_OK(ag_gguf_open(path, &f));
  if (f) {
    CHECK(f->size == file.n && strcmp(f->path, path) == 0);
    const ag_gguf_tensor *t = ag_gguf_find_tensor(f, "q8");
    float out[128];
    CHECK(t && ag_gguf_read_f32(f, t, out) == AG_OK && out[40] == -0.25f * (float)q8_value(1, 8));
  }
  ag_gguf_close(f);
  remove(path);

  f = NULL;
  CHECK(ag_gguf_open(path, &f) == AG_ERR_NOT_FOUND && f == NULL);
  CHECK(strstr(ag_error_message(), path) != NULL);
  CHECK(ag_gguf_open(dir, &f) == AG_ERR_IO);
  CHECK_OK(ag_atomic_write(path, "", 0));
  CHECK(ag_gguf_open(path, &f) == AG_ERR_FORMAT); /* empty */
  CHECK(strstr(ag_error_message(), "too short"));
  CHECK_OK(ag_atomic_write(path, "GGUF\3\0\0\0", 8));
  CHECK(ag_gguf_open(path, &f) == AG_ERR_FORMAT);
  CHECK(strstr(ag_error_message(), "truncated") && strstr(ag_error_message(), "tensor count"));
  remove(path);
  free(file.p);
}

/* ---- corrupt files ---------------------------------------------------------------- */

TEST(every_truncation_of_the_sample_is_an_error) {
  bytes file = build_sample(AG_GGUF_DEFAULT_ALIGNMENT);
  int wrong = 0;
  for (size_t n = 0; n < file.n; n++) {
    ag_gguf *f = NULL;
    ag_status st = open_exact(file.p, n, &f);
    if (st != AG_ERR_FORMAT || !strstr(ag_error_message(), SAMPLE_NAME)) {
      if (wrong++ < 5)
        fprintf(stderr, "length %zu: %s: %s\n", n, ag_status_name(st), ag_error_message());
    }
    close_exact(f);
  }
  CHECK_MSG(wrong == 0, "%d of %zu truncations were not clean errors", wrong, file.n);
  free(file.p);
}

TEST(bad_magic_version_and_byte_order_are_refused) {
  bytes file = build_sample(AG_GGUF_DEFAULT_ALIGNMENT);
  memcpy(file.p, "GGML", 4);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "not a GGUF file");
  memcpy(file.p, "GGUF", 4);
  patch_u32(&file, AT_VERSION, 1);
  CHECK_REJECTED(&file, AG_ERR_UNSUPPORTED, "version 1");
  patch_u32(&file, AT_VERSION, 4);
  CHECK_REJECTED(&file, AG_ERR_UNSUPPORTED, "version 4");
  patch_u32(&file, AT_VERSION, 0x03000000u);
  CHECK_REJECTED(&file, AG_ERR_UNSUPPORTED, "big-endian");
  patch_u32(&file, AT_VERSION, 2); /* v2 has the same layout */
  ag_gguf *f = NULL;
  CHECK_OK(open_exact(file.p, file.n, &f));
  CHECK(f && f->version == 2);
  close_exact(f);
  free(file.p);
}

TEST(absurd_counts_and_lengths_are_refused_before_allocating) {
  bytes file = build_sample(AG_GGUF_DEFAULT_ALIGNMENT);
  uint64_t kvs = 0, tensors = 0;
  for (int i = 7; i >= 0; i--) kvs = kvs << 8 | file.p[AT_KV_COUNT + i];
  for (int i = 7; i >= 0; i--) tensors = tensors << 8 | file.p[AT_TENSOR_COUNT + i];
  CHECK(kvs == 24 && tensors == 7);
  patch_u64(&file, AT_KV_COUNT, UINT64_MAX);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "metadata pairs");
  patch_u64(&file, AT_KV_COUNT, (uint64_t)1 << 40);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "more than");
  patch_u64(&file, AT_KV_COUNT, kvs + 1); /* tensor descriptions read as a pair */
  CHECK_REJECTED(&file, AG_ERR_FORMAT, NULL);
  patch_u64(&file, AT_KV_COUNT, kvs);
  patch_u64(&file, AT_TENSOR_COUNT, UINT64_MAX / 2);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "tensors");
  patch_u64(&file, AT_TENSOR_COUNT, tensors + 1); /* the data read as a description */
  CHECK_REJECTED(&file, AG_ERR_FORMAT, NULL);
  patch_u64(&file, AT_TENSOR_COUNT, tensors);
  patch_u64(&file, AT_FIRST_KV, UINT64_MAX); /* the first key's length */
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "has length");
  patch_u64(&file, AT_FIRST_KV, file.n);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "metadata key 0");
  free(file.p);

  /* An array claiming more elements than the file holds. */
  builder g = builder_new();
  array_head(key(&g, "tokens", AG_GGUF_ARRAY), AG_GGUF_STRING, 2);
  put_str(&g.kv, "a"), put_str(&g.kv, "b");
  file = finish(&g);
  const size_t at_count = AT_FIRST_KV + 8 + strlen("tokens") + 4 + 4;
  patch_u64(&file, at_count, (uint64_t)1 << 61);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "cannot fit");
  patch_u64(&file, at_count, 3);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "'tokens'");
  patch_u64(&file, at_count, 2);
  patch_u64(&file, at_count + 8, UINT64_MAX - 3); /* the first string's length */
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "has length");
  free(file.p);
}

TEST(unknown_types_and_deep_nesting_are_refused) {
  builder g = builder_new();
  put_u32(key(&g, "x", 13), 0);
  bytes file = finish(&g);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "unknown value type 13");
  free(file.p);
  g = builder_new();
  array_head(key(&g, "x", AG_GGUF_ARRAY), 0xFFFFFFFFu, 0);
  file = finish(&g);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "array element type");
  free(file.p);
  for (int levels = AG_GGUF_MAX_NESTING; levels <= AG_GGUF_MAX_NESTING + 1; levels++) {
    g = builder_new();
    bytes *b = key(&g, "deep", AG_GGUF_ARRAY);
    for (int level = 0; level < levels; level++)
      array_head(b, level + 1 < levels ? AG_GGUF_ARRAY : AG_GGUF_UINT8, level + 1 < levels ? 1 : 0);
    file = finish(&g);
    if (levels == AG_GGUF_MAX_NESTING) {
      ag_gguf *f = NULL;
      CHECK_OK(open_exact(file.p, file.n, &f));
      close_exact(f);
    } else {
      CHECK_REJECTED(&file, AG_ERR_FORMAT, "nested");
    }
    free(file.p);
  }
  g = builder_new(); /* an array bomb: a million empty arrays need 12 MB, not 20 bytes */
  array_head(key(&g, "bomb", AG_GGUF_ARRAY), AG_GGUF_ARRAY, 1000000);
  array_head(&g.kv, AG_GGUF_UINT8, 0);
  file = finish(&g);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "cannot fit");
  free(file.p);
  g = builder_new(); /* keys are C strings */
  put_strn(&g.kv, "a\0b", 3);
  put_u32(&g.kv, AG_GGUF_UINT8);
  put_u8(&g.kv, 1);
  g.kv_count++;
  file = finish(&g);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "NUL");
  free(file.p);
  g = builder_new();
  put_u8(key(&g, "twice", AG_GGUF_UINT8), 1);
  put_u8(key(&g, "twice", AG_GGUF_UINT8), 2);
  file = finish(&g);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "'twice' appears twice");
  free(file.p);
}

/* One tensor description with whatever fields, and `data_bytes` of data. */
static bytes one_tensor(uint32_t ndim, const uint64_t *ne, uint32_t type, uint64_t offset,
                        size_t data_bytes) {
  builder g = builder_new();
  put_str(&g.info, "w");
  put_u32(&g.info, ndim);
  for (uint32_t d = 0; d < ndim; d++) put_u64(&g.info, ne[d]);
  put_u32(&g.info, type);
  put_u64(&g.info, offset);
  g.tensor_count = 1;
  for (size_t i = 0; i < data_bytes; i++) put_u8(&g.data, (uint8_t)i);
  return finish(&g);
}

TEST(bad_tensor_descriptions_are_refused) {
  bytes file = one_tensor(2, (uint64_t[]){4, 2}, AG_GGML_F32, 0, 32);
  ag_gguf *f = NULL;
  CHECK_OK(open_exact(file.p, file.n, &f)); /* the well-formed baseline */
  close_exact(f);
  free(file.p);
  file = one_tensor(5, (uint64_t[]){1, 1, 1, 1, 1}, AG_GGML_F32, 0, 4);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "5 dimensions");
  free(file.p);
  file = one_tensor(2, (uint64_t[]){(uint64_t)1 << 40, (uint64_t)1 << 40}, AG_GGML_F32, 0, 32);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "overflow");
  free(file.p);
  file = one_tensor(3, (uint64_t[]){0, (uint64_t)1 << 40, (uint64_t)1 << 40}, AG_GGML_F32, 0, 0);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "overflow"); /* even when empty */
  free(file.p);
  file = one_tensor(1, (uint64_t[]){UINT64_MAX}, AG_GGML_F32, 0, 32);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "dimension 0");
  free(file.p);
  file = one_tensor(1, (uint64_t[]){(uint64_t)1 << 60}, AG_GGML_F32, 0, 32);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "runs past the end");
  free(file.p);
  file = one_tensor(2, (uint64_t[]){4, 2}, 4, 0, 32);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "unknown ggml type 4");
  free(file.p);
  file = one_tensor(2, (uint64_t[]){4, 2}, 99, 0, 32);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "unknown ggml type 99");
  free(file.p);
  file = one_tensor(2, (uint64_t[]){4, 2}, AG_GGML_F32, 1, 33);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "not a multiple of the alignment");
  free(file.p);
  file = one_tensor(2, (uint64_t[]){4, 2}, AG_GGML_F32, 32, 32);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "runs past the end");
  free(file.p);
  file = one_tensor(2, (uint64_t[]){4, 2}, AG_GGML_F32, (uint64_t)-32, 32);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "runs past the end");
  free(file.p);
  file = one_tensor(2, (uint64_t[]){48, 1}, AG_GGML_Q8_0, 0, 68);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "not a multiple of it"); /* 48 is 1.5 blocks */
  free(file.p);

  builder g = builder_new();
  float values[8] = {0};
  tensor(&g, "same", AG_GGML_F32, 1, (uint64_t[]){8}, values, sizeof values);
  tensor(&g, "same", AG_GGML_F32, 1, (uint64_t[]){8}, values, sizeof values);
  file = finish(&g);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "'same' appears twice");
  free(file.p);
  g = builder_new();
  tensor(&g, "a", AG_GGML_F32, 1, (uint64_t[]){16}, NULL, 0);
  tensor(&g, "b", AG_GGML_F32, 1, (uint64_t[]){8}, values, sizeof values);
  for (int i = 0; i < 8; i++) put_f32(&g.data, 0.0f);
  file = finish(&g); /* a (64 bytes at 0) and b (32 bytes at 0) share bytes */
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "overlap");
  free(file.p);
}

TEST(random_byte_flips_never_crash) {
  bytes file = build_sample(AG_GGUF_DEFAULT_ALIGNMENT);
  ag_rng rng;
  ag_rng_seed(&rng, 8);
  const long rounds = test_scaled(4000, 500);
  long opened = 0, unclear = 0;
  unsigned char *copy = malloc(file.n);
  float *out = malloc(1024 * sizeof *out);
  for (long round = 0; round < rounds; round++) {
    memcpy(copy, file.p, file.n);
    const int flips = 1 + (int)ag_rng_below(&rng, 4);
    for (int k = 0; k < flips; k++) {
      /* Mostly in the header, where the structure is. */
      const size_t at = (size_t)ag_rng_below(&rng, k % 2 || file.n < 600 ? file.n : 600);
      copy[at] ^= (unsigned char)(1u << ag_rng_below(&rng, 8));
    }
    ag_gguf *f = NULL;
    ag_status st = open_exact(copy, file.n, &f);
    if (st != AG_OK) {
      if (!strstr(ag_error_message(), SAMPLE_NAME)) unclear++;
      continue;
    }
    opened++;
    /* Whatever opened must be safe to read through every accessor. */
    for (int64_t i = 0; i < f->kv_count; i++) {
      const char *k = f->kvs[i].key;
      uint64_t n = 0, u;
      int64_t v;
      float x;
      bool b;
      ag_gguf_string s;
      (void)ag_gguf_get_u64(f, k, &u), (void)ag_gguf_get_i64(f, k, &v);
      (void)ag_gguf_get_f32(f, k, &x), (void)ag_gguf_get_bool(f, k, &b);
      (void)ag_gguf_get_string(f, k, &s);
      if (ag_gguf_get_array_length(f, k, &n) == AG_OK)
        for (uint64_t e = 0; e < n && e < 16; e++) {
          (void)ag_gguf_get_array_string(f, k, e, &s);
          (void)ag_gguf_get_array_i64(f, k, e, &v);
          (void)ag_gguf_get_array_f32(f, k, e, &x);
        }
    }
    for (int64_t i = 0; i < f->tensor_count; i++)
      if (f->tensors[i].numel <= 1024) (void)ag_gguf_read_f32(f, &f->tensors[i], out);
    close_exact(f);
  }
  CHECK_MSG(unclear == 0, "%ld errors did not name the file", unclear);
  fprintf(stderr, "  %ld of %ld corrupted samples still opened\n", opened, rounds);
  free(out);
  free(copy);
  free(file.p);
}

/* ---- the real files --------------------------------------------------------------- */

/* Reads a whole shared data file; a missing one fails the test, saying where
 * it looked. */
static bool read_shared(const char *path, char **data, size_t *n) {
  if (!ag_file_exists(path)) {
    fprintf(stderr, "missing test data: looked for %s (relative to the repository root, %s)\n",
            path, getenv("AG_SOURCE_DIR") ? getenv("AG_SOURCE_DIR") : "the current folder");
    test_failures_++;
    return false;
  }
  if (ag_read_file(path, data, n) != AG_OK) {
    fprintf(stderr, "%s\n", ag_error_message());
    test_failures_++;
    return false;
  }
  return true;
}

static ag_gguf *open_shared(const char *path) {
  if (!ag_file_exists(path)) {
    fprintf(stderr, "missing test data: looked for %s (relative to the repository root, %s)\n",
            path, getenv("AG_SOURCE_DIR") ? getenv("AG_SOURCE_DIR") : "the current folder");
    test_failures_++;
    return NULL;
  }
  ag_gguf *f = NULL;
  CHECK_OK(ag_gguf_open(path, &f));
  return f;
}

TEST(tiny_llama_has_its_known_metadata_and_tensors) {
  ag_gguf *f = open_shared(MODEL_PATH);
  if (!f) return;
  CHECK(f->version == 3 && f->kv_count == 18 && f->tensor_count == 12);
  ag_gguf_string s;
  CHECK_OK(ag_gguf_get_string(f, "general.architecture", &s));
  CHECK(string_is(s, "llama"));
  CHECK_OK(ag_gguf_get_string(f, "tokenizer.ggml.model", &s));
  CHECK(string_is(s, "llama"));
  uint32_t v = 0;
  CHECK_OK(ag_gguf_get_u32(f, "llama.embedding_length", &v));
  CHECK(v == 8);
  CHECK_OK(ag_gguf_get_u32(f, "llama.block_count", &v));
  CHECK(v == 1);
  CHECK_OK(ag_gguf_get_u32(f, "llama.attention.head_count", &v));
  CHECK(v == 2);
  CHECK_OK(ag_gguf_get_u32(f, "llama.context_length", &v));
  CHECK(v == 4096);
  CHECK_OK(ag_gguf_get_u32(f, "tokenizer.ggml.eos_token_id", &v));
  CHECK(v == 2);
  float eps = 0;
  CHECK_OK(ag_gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps));
  CHECK_NEAR(eps, 1e-5, 1e-12);
  const ag_gguf_string *tokens = NULL;
  uint64_t n = 0;
  CHECK_OK(ag_gguf_get_string_array(f, "tokenizer.ggml.tokens", &tokens, &n));
  CHECK(n == 32000);
  if (n == 32000) {
    CHECK(string_is(tokens[0], "<unk>") && string_is(tokens[1], "<s>"));
    CHECK(string_is(tokens[2], "</s>") && string_is(tokens[3], "<0x00>"));
  }
  int32_t *types = malloc(32000 * sizeof *types);
  float *scores = malloc(32000 * sizeof *scores);
  CHECK_OK(ag_gguf_get_i32_array(f, "tokenizer.ggml.token_type", types, 32000));
  CHECK_OK(ag_gguf_get_f32_array(f, "tokenizer.ggml.scores", scores, 32000));
  CHECK(types[0] == 2 && types[1] == 3 && types[3] == 6); /* unknown, control, byte */
  free(types);
  free(scores);

  const ag_gguf_tensor *t = NULL;
  CHECK_OK(ag_gguf_get_tensor(f, "token_embd.weight", &t));
  CHECK(t && t->type == AG_GGML_F16 && t->ndim == 2 && t->shape[0] == 32000 && t->shape[1] == 8);
  CHECK_OK(ag_gguf_get_tensor(f, "blk.0.ffn_down.weight", &t)); /* ne [32, 8]: (out, in) */
  CHECK(t && t->shape[0] == 8 && t->shape[1] == 32);
  CHECK_OK(ag_gguf_get_tensor(f, "output_norm.weight", &t));
  CHECK(t && t->type == AG_GGML_F32 && t->ndim == 1 && t->shape[0] == 8);
  CHECK(f->data_offset % 32 == 0);
  const ag_gguf_tensor *last = &f->tensors[f->tensor_count - 1];
  CHECK(f->data_offset + last->offset + last->bytes == f->size); /* data runs to the end */
  float *values = malloc(32000 * 8 * sizeof *values);
  for (int64_t i = 0; i < f->tensor_count; i++) {
    CHECK_OK(ag_gguf_read_f32(f, &f->tensors[i], values));
    for (int64_t k = 0; k < f->tensors[i].numel; k++)
      if (!isfinite(values[k])) {
        CHECK_MSG(false, "%s[%lld] is not finite", f->tensors[i].name, (long long)k);
        break;
      }
  }
  free(values);
  ag_gguf_close(f);
}

TEST(vocabulary_files_have_their_known_tokenizers) {
  ag_gguf *f = open_shared(VOCAB_GPT2);
  if (f) {
    ag_gguf_string s;
    uint64_t n = 0;
    uint32_t id = 0;
    CHECK_OK(ag_gguf_get_string(f, "tokenizer.ggml.model", &s));
    CHECK(string_is(s, "gpt2"));
    CHECK_OK(ag_gguf_get_array_length(f, "tokenizer.ggml.tokens", &n));
    CHECK(n == 50257);
    CHECK_OK(ag_gguf_get_array_length(f, "tokenizer.ggml.merges", &n));
    CHECK(n == 50000);
    CHECK_OK(ag_gguf_get_array_string(f, "tokenizer.ggml.tokens", 0, &s));
    CHECK(string_is(s, "!"));
    CHECK_OK(ag_gguf_get_array_string(f, "tokenizer.ggml.merges", 0, &s));
    CHECK(string_is(s, "\xc4\xa0 t")); /* "Ġ t" */
    CHECK_OK(ag_gguf_get_u32(f, "tokenizer.ggml.bos_token_id", &id));
    CHECK(id == 50256);
    CHECK(f->tensor_count == 0);
    ag_gguf_close(f);
  }
  f = open_shared(VOCAB_FALCON);
  if (f) {
    uint64_t n = 0;
    ag_gguf_string s;
    CHECK_OK(ag_gguf_get_array_length(f, "tokenizer.ggml.tokens", &n));
    CHECK(n == 65024);
    CHECK_OK(ag_gguf_get_array_length(f, "tokenizer.ggml.merges", &n));
    CHECK(n == 64784);
    CHECK_OK(ag_gguf_get_string(f, "tokenizer.ggml.pre", &s));
    CHECK(string_is(s, "falcon"));
    CHECK(ag_gguf_find(f, "tokenizer.ggml.scores") == NULL);
    ag_gguf_close(f);
  }
  f = open_shared(VOCAB_LLAMA);
  if (f) {
    bool add_bos = false, add_eos = true;
    CHECK_OK(ag_gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &add_bos));
    CHECK_OK(ag_gguf_get_bool(f, "tokenizer.ggml.add_eos_token", &add_eos));
    CHECK(add_bos && !add_eos);
    uint32_t vocab = 0;
    CHECK_OK(ag_gguf_get_u32(f, "llama.vocab_size", &vocab));
    CHECK(vocab == 32000);
    float score = 1;
    CHECK_OK(ag_gguf_get_array_f32(f, "tokenizer.ggml.scores", 0, &score));
    CHECK(score == 0.0f);
    ag_gguf_close(f);
  }
}

/* An independent reader: Python's struct module, printing one line per fact
 * (tab-separated), which the test compares with what the C reader found.
 * K key type element_type count | S key crc32 (strings: u64 length + bytes,
 * chained) | I/B/F key value | NI/NF key sum (numeric arrays) | T name type
 * ndim ne... offset | D name sum sum_abs (F32/F16 tensors) | E version kvs
 * tensors. */
static const char *PY_READER =
    "import struct, sys, zlib\n"
    "F = {0:'B',1:'b',2:'H',3:'h',4:'I',5:'i',6:'f',7:'B',10:'Q',11:'q',12:'d'}\n"
    "b = open(sys.argv[1], 'rb').read(); o = [4]\n"
    "def rd(f):\n"
    "    v = struct.unpack_from('<' + f, b, o[0]); o[0] += struct.calcsize('<' + f); return v[0]\n"
    "def rs():\n"
    "    n = rd('Q'); s = b[o[0]:o[0] + n]; o[0] += n; return s\n"
    "def crc(s, c): return zlib.crc32(struct.pack('<Q', len(s)) + s, c)\n"
    "ver = rd('I'); nt = rd('Q'); nk = rd('Q'); out = []; align = 32\n"
    "for _ in range(nk):\n"
    "    k = rs().decode(); t = rd('I')\n"
    "    if t == 9:\n"
    "        et = rd('I'); n = rd('Q'); out.append('K\\t%s\\t9\\t%d\\t%d' % (k, et, n))\n"
    "        if et == 8:\n"
    "            c = 0\n"
    "            for _ in range(n): c = crc(rs(), c)\n"
    "            out.append('S\\t%s\\t%d' % (k, c))\n"
    "        else:\n"
    "            v = struct.unpack_from('<%d%s' % (n, F[et]), b, o[0]); o[0] += n * "
    "struct.calcsize(F[et])\n"
    "            out.append(('NF\\t%s\\t%r' if et in (6, 12) else 'NI\\t%s\\t%d') % (k, sum(v)))\n"
    "    elif t == 8:\n"
    "        out.append('K\\t%s\\t8\\t8\\t1' % k); out.append('S\\t%s\\t%d' % (k, crc(rs(), 0)))\n"
    "    else:\n"
    "        v = rd(F[t]); out.append('K\\t%s\\t%d\\t%d\\t1' % (k, t, t))\n"
    "        out.append(('F\\t%s\\t%r' if t in (6, 12) else 'B\\t%s\\t%d' if t == 7 else "
    "'I\\t%s\\t%d') % (k, v))\n"
    "        if k == 'general.alignment': align = v\n"
    "ts = []\n"
    "for _ in range(nt):\n"
    "    name = rs().decode(); nd = rd('I'); ne = [rd('Q') for _ in range(nd)]\n"
    "    ts.append((name, ne, rd('I'), rd('Q')))\n"
    "data = (o[0] + align - 1) // align * align\n"
    "for name, ne, ty, off in ts:\n"
    "    out.append('T\\t%s\\t%d\\t%d\\t%s\\t%d' % (name, ty, len(ne), ' '.join(map(str, ne)), "
    "off))\n"
    "    if ty in (0, 1):\n"
    "        n = 1\n"
    "        for d in ne: n *= d\n"
    "        v = struct.unpack_from('<%d%s' % (n, 'f' if ty == 0 else 'e'), b, data + off)\n"
    "        out.append('D\\t%s\\t%r\\t%r' % (name, sum(v), sum(abs(x) for x in v)))\n"
    "out.append('E\\t%d\\t%d\\t%d' % (ver, nk, nt))\n"
    "print('\\n'.join(out))\n";

static uint32_t strings_crc(const ag_gguf_string *items, uint64_t n) {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (uint64_t i = 0; i < n; i++) {
    unsigned char length[8];
    for (int k = 0; k < 8; k++) length[k] = (unsigned char)((uint64_t)items[i].length >> (8 * k));
    crc = crc32(crc, length, 8);
    crc = crc32(crc, (const Bytef *)items[i].data, (uInt)items[i].length);
  }
  return (uint32_t)crc;
}

/* Splits a line at tabs in place; returns the field count. */
static int split_tabs(char *line, char **fields, int max) {
  int n = 0;
  fields[n++] = line;
  for (char *p = line; *p && n < max; p++)
    if (*p == '\t') *p = '\0', fields[n++] = p + 1;
  return n;
}

/* Compares one line of the Python reader's output with the C reader. */
static void check_fact(const ag_gguf *f, char *line, int64_t *kvs_seen, int64_t *tensors_seen) {
  char *x[8];
  const int n = split_tabs(line, x, 8);
  const char *tag = x[0];
  if (strcmp(tag, "K") == 0 && n == 5) {
    (*kvs_seen)++;
    const ag_gguf_kv *kv = ag_gguf_find(f, x[1]);
    CHECK_MSG(kv && (int)kv->type == atoi(x[2]) && (int)kv->element_type == atoi(x[3]) &&
                  kv->count == strtoull(x[4], NULL, 10),
              "%s: %s", f->path, x[1]);
  } else if (strcmp(tag, "S") == 0 && n == 3) {
    const ag_gguf_kv *kv = ag_gguf_find(f, x[1]);
    CHECK_MSG(kv && kv->strings && strings_crc(kv->strings, kv->count) == strtoul(x[2], NULL, 10),
              "%s: strings of %s", f->path, x[1]);
  } else if (strcmp(tag, "I") == 0 && n == 3) {
    uint64_t u = 0;
    int64_t v = 0;
    if (x[2][0] == '-')
      CHECK_MSG(ag_gguf_get_i64(f, x[1], &v) == AG_OK && v == strtoll(x[2], NULL, 10), "%s", x[1]);
    else
      CHECK_MSG(ag_gguf_get_u64(f, x[1], &u) == AG_OK && u == strtoull(x[2], NULL, 10), "%s", x[1]);
  } else if (strcmp(tag, "B") == 0 && n == 3) {
    bool b = false;
    CHECK_MSG(ag_gguf_get_bool(f, x[1], &b) == AG_OK && b == (atoi(x[2]) != 0), "%s", x[1]);
  } else if (strcmp(tag, "F") == 0 && n == 3) {
    float v = 0;
    CHECK_MSG(ag_gguf_get_f32(f, x[1], &v) == AG_OK && v == (float)strtod(x[2], NULL), "%s", x[1]);
  } else if ((strcmp(tag, "NI") == 0 || strcmp(tag, "NF") == 0) && n == 3) {
    uint64_t count = 0;
    CHECK_OK(ag_gguf_get_array_length(f, x[1], &count));
    double sum = 0, sum_abs = 0;
    for (uint64_t i = 0; i < count; i++) {
      int64_t v = 0;
      float y = 0;
      if (tag[1] == 'I') {
        if (ag_gguf_get_array_i64(f, x[1], i, &v)) break;
        sum += (double)v;
      } else {
        if (ag_gguf_get_array_f32(f, x[1], i, &y)) break;
        sum += y, sum_abs += fabs(y);
      }
    }
    CHECK_MSG(fabs(sum - strtod(x[2], NULL)) <= 1e-9 * (1 + sum_abs), "%s: sum %.17g vs %s", x[1],
              sum, x[2]);
  } else if (strcmp(tag, "T") == 0 && n == 6) {
    (*tensors_seen)++;
    const ag_gguf_tensor *t = ag_gguf_find_tensor(f, x[1]);
    bool same = t && (int)t->type == atoi(x[2]) && t->ndim == atoi(x[3]) &&
                t->offset == strtoull(x[5], NULL, 10);
    char *p = x[4];
    for (int d = 0; same && d < t->ndim; d++)
      same = t->shape[t->ndim - 1 - d] == strtoll(p, &p, 10);
    CHECK_MSG(same, "%s: tensor %s", f->path, x[1]);
  } else if (strcmp(tag, "D") == 0 && n == 4) {
    const ag_gguf_tensor *t = ag_gguf_find_tensor(f, x[1]);
    float *v = t ? malloc((size_t)t->numel * sizeof *v + 1) : NULL;
    double sum = 0;
    if (v && ag_gguf_read_f32(f, t, v) == AG_OK)
      for (int64_t i = 0; i < t->numel; i++) sum += v[i];
    CHECK_MSG(v && fabs(sum - strtod(x[2], NULL)) <= 1e-9 * (1 + strtod(x[3], NULL)),
              "%s: values of %s sum to %.17g, Python says %s", f->path, x[1], sum, x[2]);
    free(v);
  } else if (strcmp(tag, "E") == 0 && n == 4) {
    CHECK(f->version == (uint32_t)atoi(x[1]));
    CHECK_MSG(*kvs_seen == f->kv_count && f->kv_count == atoll(x[2]), "%s: metadata count",
              f->path);
    CHECK_MSG(*tensors_seen == f->tensor_count && f->tensor_count == atoll(x[3]),
              "%s: tensor count", f->path);
    *kvs_seen = -1; /* marks that the listing was complete */
  } else {
    CHECK_MSG(false, "unexpected line from the Python reader: %s", line);
  }
}

TEST(real_files_agree_with_an_independent_python_reader) {
  if (system("python3 -c 'import struct, zlib' >/dev/null 2>&1") != 0) {
    fprintf(stderr, "  note: python3 not found; the cross-check is skipped (known values above "
                    "still apply)\n");
    return;
  }
  char script[600];
  snprintf(script, sizeof script, "%s/gguf_reader.py", test_tmpdir());
  if (ag_atomic_write(script, PY_READER, strlen(PY_READER)) != AG_OK) {
    CHECK_MSG(false, "%s", ag_error_message());
    return;
  }
  const char *files[] = {MODEL_PATH, VOCAB_GPT2, VOCAB_FALCON, VOCAB_LLAMA};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    ag_gguf *f = open_shared(files[i]);
    if (!f) continue;
    char command[1400];
    snprintf(command, sizeof command, "python3 '%s' '%s'", script, files[i]);
    FILE *p = popen(command, "r");
    if (!p) {
      CHECK_MSG(false, "cannot run %s", command);
      ag_gguf_close(f);
      continue;
    }
    char line[4096];
    int64_t kvs_seen = 0, tensors_seen = 0;
    while (fgets(line, sizeof line, p)) {
      line[strcspn(line, "\n")] = '\0';
      check_fact(f, line, &kvs_seen, &tensors_seen);
    }
    CHECK_MSG(pclose(p) == 0, "%s failed", command);
    CHECK_MSG(kvs_seen == -1, "%s: the Python listing was incomplete", files[i]);
    ag_gguf_close(f);
  }
  remove(script);
}

TEST(truncated_and_recounted_real_files_are_errors) {
  char *data = NULL;
  size_t size = 0;
  if (!read_shared(MODEL_PATH, &data, &size)) return;
  /* Lengths spread over the header, its end, and the data. */
  const int steps = (int)test_scaled(60, 20);
  int wrong = 0;
  for (int k = 0; k <= steps + 3; k++) {
    const size_t n =
        k <= steps ? (size_t)((double)size * k / (steps + 1)) : size - (size_t)(k - steps);
    ag_gguf *f = NULL;
    if (open_exact(data, n, &f) != AG_ERR_FORMAT || !strstr(ag_error_message(), SAMPLE_NAME)) {
      if (wrong++ < 5) fprintf(stderr, "length %zu: %s\n", n, ag_error_message());
    }
    close_exact(f);
  }
  CHECK_MSG(wrong == 0, "%d truncations of %s were not clean errors", wrong, MODEL_PATH);
  bytes file = {(unsigned char *)data, size, size};
  const uint64_t kvs = 18, tensors = 12;
  patch_u64(&file, AT_KV_COUNT, kvs + 1);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, NULL);
  patch_u64(&file, AT_KV_COUNT, (uint64_t)1 << 50);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, "more than");
  patch_u64(&file, AT_KV_COUNT, kvs);
  patch_u64(&file, AT_TENSOR_COUNT, tensors + 1);
  CHECK_REJECTED(&file, AG_ERR_FORMAT, NULL);
  patch_u64(&file, AT_TENSOR_COUNT, tensors);
  ag_gguf *f = NULL;
  CHECK_OK(open_exact(data, size, &f)); /* restored */
  close_exact(f);
  free(data);

  if (!read_shared(VOCAB_GPT2, &data, &size)) return;
  wrong = 0;
  for (int k = 0; k < steps; k++) {
    const size_t n = (size_t)((double)size * k / steps);
    if (open_exact(data, n, &f) != AG_ERR_FORMAT) wrong++;
    close_exact(f);
    f = NULL;
  }
  if (open_exact(data, size - 1, &f) != AG_ERR_FORMAT) wrong++;
  close_exact(f);
  f = NULL;
  CHECK_OK(open_exact(data, size, &f)); /* a vocabulary may end right after its header */
  close_exact(f);
  CHECK_MSG(wrong == 0, "%d truncations of %s were not clean errors", wrong, VOCAB_GPT2);
  free(data);
}

int main(void) {
  RUN(scalar_getters_read_each_type);
  RUN(getters_refuse_missing_keys_wrong_types_and_values_that_do_not_fit);
  RUN(arrays_give_length_elements_and_whole_copies);
  RUN(tensors_have_row_major_shapes_and_convert_to_f32);
  RUN(data_follows_general_alignment);
  RUN(open_maps_a_file_and_names_missing_ones);
  RUN(every_truncation_of_the_sample_is_an_error);
  RUN(bad_magic_version_and_byte_order_are_refused);
  RUN(absurd_counts_and_lengths_are_refused_before_allocating);
  RUN(unknown_types_and_deep_nesting_are_refused);
  RUN(bad_tensor_descriptions_are_refused);
  RUN(random_byte_flips_never_crash);
  RUN(tiny_llama_has_its_known_metadata_and_tensors);
  RUN(vocabulary_files_have_their_known_tokenizers);
  RUN(real_files_agree_with_an_independent_python_reader);
  RUN(truncated_and_recounted_real_files_are_errors);
  remove(test_tmpdir());
  TEST_MAIN_END();
}
