/* GGUF reading: the whole header is parsed and checked on open, with every
 * read bounds-checked against the file size, so a truncated or corrupt file
 * gives an error naming the file and the problem instead of a crash. Values
 * are not copied: kvs and tensors point into the mapped file. */
#include "agora/gguf.h"

#include "agora/safetensors.h" /* ag_f16_to_f32, ag_bf16_to_f32 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The smallest metadata pair: key length (8) + value type (4) + a one-byte
 * value. Used to refuse counts the file could not possibly hold before
 * allocating anything for them. */
#define KV_MIN_BYTES 13
/* The smallest tensor description: name length (8) + n_dims (4) + type (4)
 * + offset (8). */
#define TENSOR_INFO_MIN_BYTES 24
/* A string element is at least its u64 length; a nested array at least its
 * element type (4) and count (8). */
#define STRING_MIN_BYTES 8
#define ARRAY_MIN_BYTES  12
/* Conversions larger than this run in parallel. */
#define PARALLEL_MIN_ELEMENTS 65536
/* Q8_0: a float16 scale then 32 int8 quants (ggml's block_q8_0). */
#define Q8_0_BLOCK_ELEMENTS 32
#define Q8_0_BLOCK_BYTES    34
/* Names and keys are quoted at most this long in messages. */
#define QUOTE_MAX 96

/* ---- type tables ------------------------------------------------------------ */

static const char *const VALUE_TYPE_NAMES[] = {"uint8",  "int8",    "uint16", "int16",  "uint32",
                                               "int32",  "float32", "bool",   "string", "array",
                                               "uint64", "int64",   "float64"};
/* Bytes of a fixed-size value; 0 for string and array. */
static const size_t VALUE_TYPE_BYTES[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
#define VALUE_TYPE_COUNT (sizeof VALUE_TYPE_BYTES / sizeof VALUE_TYPE_BYTES[0])

/* Block sizes from ggml's block structs (ggml-common.h): elements per block
 * and bytes per block. A zero block_elements marks a number ggml does not
 * define (never used, or removed). */
typedef struct ggml_type_info {
  const char *name;
  uint32_t block_elements;
  uint32_t block_bytes;
} ggml_type_info;

static const ggml_type_info GGML_TYPES[] = {
    [AG_GGML_F32] = {"F32", 1, 4},
    [AG_GGML_F16] = {"F16", 1, 2},
    [AG_GGML_Q4_0] = {"Q4_0", 32, 18},
    [AG_GGML_Q4_1] = {"Q4_1", 32, 20},
    [AG_GGML_Q5_0] = {"Q5_0", 32, 22},
    [AG_GGML_Q5_1] = {"Q5_1", 32, 24},
    [AG_GGML_Q8_0] = {"Q8_0", 32, 34},
    [AG_GGML_Q8_1] = {"Q8_1", 32, 36},
    [AG_GGML_Q2_K] = {"Q2_K", 256, 84},
    [AG_GGML_Q3_K] = {"Q3_K", 256, 110},
    [AG_GGML_Q4_K] = {"Q4_K", 256, 144},
    [AG_GGML_Q5_K] = {"Q5_K", 256, 176},
    [AG_GGML_Q6_K] = {"Q6_K", 256, 210},
    [AG_GGML_Q8_K] = {"Q8_K", 256, 292},
    [AG_GGML_IQ2_XXS] = {"IQ2_XXS", 256, 66},
    [AG_GGML_IQ2_XS] = {"IQ2_XS", 256, 74},
    [AG_GGML_IQ3_XXS] = {"IQ3_XXS", 256, 98},
    [AG_GGML_IQ1_S] = {"IQ1_S", 256, 50},
    [AG_GGML_IQ4_NL] = {"IQ4_NL", 32, 18},
    [AG_GGML_IQ3_S] = {"IQ3_S", 256, 110},
    [AG_GGML_IQ2_S] = {"IQ2_S", 256, 82},
    [AG_GGML_IQ4_XS] = {"IQ4_XS", 256, 136},
    [AG_GGML_I8] = {"I8", 1, 1},
    [AG_GGML_I16] = {"I16", 1, 2},
    [AG_GGML_I32] = {"I32", 1, 4},
    [AG_GGML_I64] = {"I64", 1, 8},
    [AG_GGML_F64] = {"F64", 1, 8},
    [AG_GGML_IQ1_M] = {"IQ1_M", 256, 56},
    [AG_GGML_BF16] = {"BF16", 1, 2},
    [AG_GGML_TQ1_0] = {"TQ1_0", 256, 54},
    [AG_GGML_TQ2_0] = {"TQ2_0", 256, 66},
    [AG_GGML_MXFP4] = {"MXFP4", 32, 17},
};
#define GGML_TYPE_COUNT (sizeof GGML_TYPES / sizeof GGML_TYPES[0])

static const ggml_type_info *ggml_type_lookup(uint32_t type) {
  if (type >= GGML_TYPE_COUNT || GGML_TYPES[type].block_elements == 0) return NULL;
  return &GGML_TYPES[type];
}

const char *ag_gguf_type_name(ag_gguf_type type) {
  return (unsigned)type < VALUE_TYPE_COUNT ? VALUE_TYPE_NAMES[type] : "unknown";
}

const char *ag_ggml_type_name(ag_ggml_type type) {
  const ggml_type_info *info = ggml_type_lookup((uint32_t)type);
  return info ? info->name : "unknown";
}

/* ---- little-endian loads (the map has no alignment guarantees) ------------ */

static uint16_t load_u16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t load_u32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t load_u64(const unsigned char *p) {
  return (uint64_t)load_u32(p) | (uint64_t)load_u32(p + 4) << 32;
}

static bool host_is_little_endian(void) {
  const uint16_t one = 1;
  unsigned char first;
  memcpy(&first, &one, 1);
  return first == 1;
}

/* ---- messages ---------------------------------------------------------------- */

static ag_status file_error(ag_status code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ag_status file_error(ag_status code, const char *path, const char *fmt, ...) {
  char message[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  return ag_error_set(code, "gguf %s: %s", path, message);
}

/* Copies bytes for a message: at most QUOTE_MAX of them, non-printable ones
 * as '?', so corrupt names cannot garble the terminal. */
static void quote(const char *s, size_t n, char out[QUOTE_MAX + 4]) {
  size_t k = 0;
  for (; k < n && k < QUOTE_MAX; k++) out[k] = (s[k] >= 0x20 && s[k] < 0x7f) ? s[k] : '?';
  if (n > QUOTE_MAX) out[k++] = '.', out[k++] = '.', out[k++] = '.';
  out[k] = '\0';
}

/* ---- the bounds-checked reader --------------------------------------------- */

/* A cursor over the file. `where` names what is being parsed ("metadata key
 * 3 'general.name'") so that every error says where the file went wrong. */
typedef struct reader {
  const unsigned char *bytes;
  size_t size, pos;
  const char *path;
  char where[QUOTE_MAX + 64];
} reader;

static size_t remaining(const reader *r) { return r->size - r->pos; }

static ag_status need(reader *r, uint64_t n, const char *what) {
  if (n <= remaining(r)) return AG_OK;
  return file_error(AG_ERR_FORMAT, r->path,
                    "truncated: %s: %s needs %" PRIu64 " bytes at offset %zu but the file ends "
                    "at %zu",
                    r->where, what, n, r->pos, r->size);
}

static ag_status read_u32(reader *r, const char *what, uint32_t *out) {
  ag_status st = need(r, 4, what);
  if (st) return st;
  *out = load_u32(r->bytes + r->pos);
  r->pos += 4;
  return AG_OK;
}

static ag_status read_u64(reader *r, const char *what, uint64_t *out) {
  ag_status st = need(r, 8, what);
  if (st) return st;
  *out = load_u64(r->bytes + r->pos);
  r->pos += 8;
  return AG_OK;
}

/* A GGUF string: u64 length then bytes. The result points into the file. */
static ag_status read_string(reader *r, const char *what, ag_gguf_string *out) {
  uint64_t length;
  ag_status st = read_u64(r, what, &length);
  if (st) return st;
  if (length > remaining(r))
    return file_error(AG_ERR_FORMAT, r->path,
                      "%s: %s has length %" PRIu64 " but only %zu bytes of the file follow "
                      "(truncated or corrupt)",
                      r->where, what, length, remaining(r));
  out->data = (const char *)r->bytes + r->pos;
  out->length = (size_t)length;
  r->pos += (size_t)length;
  return AG_OK;
}

/* Keys and tensor names become C strings, so they may not hold NUL. */
static ag_status copy_name(reader *r, ag_gguf_string s, const char *what, char **out) {
  if (memchr(s.data, 0, s.length))
    return file_error(AG_ERR_FORMAT, r->path, "%s: %s contains a NUL byte", r->where, what);
  char *c = malloc(s.length + 1);
  if (!c) return file_error(AG_ERR_NOMEM, r->path, "out of memory");
  memcpy(c, s.data, s.length);
  c[s.length] = '\0';
  *out = c;
  return AG_OK;
}

/* ---- metadata values ------------------------------------------------------- */

static ag_status check_value_type(reader *r, uint32_t type, const char *what) {
  if (type < VALUE_TYPE_COUNT) return AG_OK;
  return file_error(AG_ERR_FORMAT, r->path, "%s: unknown %s %" PRIu32 " (GGUF defines 0..%zu)",
                    r->where, what, type, VALUE_TYPE_COUNT - 1);
}

/* Skips over one value of `type`, checking it lies inside the file. When
 * `strings` is given and the value is an array of strings, its elements are
 * recorded there (the caller sized it from the array's count). */
static ag_status skip_value(reader *r, uint32_t type, int depth, ag_gguf_string *strings);

static ag_status skip_array(reader *r, int depth, uint32_t *element_type, uint64_t *count,
                            ag_gguf_string **strings_out) {
  if (depth >= AG_GGUF_MAX_NESTING)
    return file_error(AG_ERR_FORMAT, r->path, "%s: arrays nested more than %d deep (corrupt file?)",
                      r->where, AG_GGUF_MAX_NESTING);
  ag_status st = read_u32(r, "array element type", element_type);
  if (st) return st;
  if ((st = check_value_type(r, *element_type, "array element type"))) return st;
  if ((st = read_u64(r, "array length", count))) return st;
  const size_t fixed = VALUE_TYPE_BYTES[*element_type];
  const size_t smallest = fixed                             ? fixed
                          : *element_type == AG_GGUF_STRING ? STRING_MIN_BYTES
                                                            : ARRAY_MIN_BYTES;
  if (*count > remaining(r) / smallest)
    return file_error(AG_ERR_FORMAT, r->path,
                      "%s: array of %" PRIu64 " %s elements cannot fit in the %zu bytes left in "
                      "the file (truncated or corrupt)",
                      r->where, *count, VALUE_TYPE_NAMES[*element_type], remaining(r));
  if (fixed) {
    r->pos += (size_t)*count * fixed; /* fits: checked just above */
    return AG_OK;
  }
  ag_gguf_string *strings = NULL;
  if (strings_out && *element_type == AG_GGUF_STRING) {
    /* count <= file size / 8, so this allocation is bounded by the file. */
    strings = malloc((*count ? (size_t)*count : 1) * sizeof *strings);
    if (!strings) return file_error(AG_ERR_NOMEM, r->path, "out of memory");
  }
  for (uint64_t i = 0; i < *count; i++) {
    st = skip_value(r, *element_type, depth + 1, strings ? &strings[i] : NULL);
    if (st) {
      free(strings);
      return st;
    }
  }
  if (strings_out) *strings_out = strings;
  return AG_OK;
}

static ag_status skip_value(reader *r, uint32_t type, int depth, ag_gguf_string *string) {
  if (type == AG_GGUF_STRING) {
    ag_gguf_string s;
    ag_status st = read_string(r, "string value", &s);
    if (!st && string) *string = s;
    return st;
  }
  if (type == AG_GGUF_ARRAY) {
    uint32_t element_type;
    uint64_t count;
    return skip_array(r, depth, &element_type, &count, NULL);
  }
  ag_status st = need(r, VALUE_TYPE_BYTES[type], VALUE_TYPE_NAMES[type]);
  if (!st) r->pos += VALUE_TYPE_BYTES[type];
  return st;
}

static ag_status parse_kv(reader *r, int64_t index, ag_gguf_kv *kv) {
  snprintf(r->where, sizeof r->where, "metadata key %" PRId64, index);
  ag_gguf_string key;
  ag_status st = read_string(r, "key", &key);
  if (st) return st;
  char quoted[QUOTE_MAX + 4];
  quote(key.data, key.length, quoted);
  snprintf(r->where, sizeof r->where, "metadata key %" PRId64 " '%s'", index, quoted);
  char *key_copy = NULL;
  if ((st = copy_name(r, key, "key", &key_copy))) return st;
  kv->key = key_copy;
  uint32_t type;
  if ((st = read_u32(r, "value type", &type))) return st;
  if ((st = check_value_type(r, type, "value type"))) return st;
  kv->type = kv->element_type = (ag_gguf_type)type;
  kv->count = 1;
  const size_t start = r->pos;
  if (type == AG_GGUF_STRING) {
    ag_gguf_string *one = malloc(sizeof *one);
    if (!one) return file_error(AG_ERR_NOMEM, r->path, "out of memory");
    kv->strings = one;
    if ((st = read_string(r, "string value", one))) return st;
    kv->value = (const unsigned char *)one->data;
    kv->value_bytes = one->length;
    return AG_OK;
  }
  if (type == AG_GGUF_ARRAY) {
    uint32_t element_type;
    ag_gguf_string *strings = NULL;
    if ((st = skip_array(r, 0, &element_type, &kv->count, &strings))) return st;
    kv->element_type = (ag_gguf_type)element_type;
    kv->strings = strings;
    kv->value = r->bytes + start + ARRAY_MIN_BYTES; /* after element type and count */
    kv->value_bytes = r->pos - start - ARRAY_MIN_BYTES;
    return AG_OK;
  }
  if ((st = skip_value(r, type, 0, NULL))) return st;
  kv->value = r->bytes + start;
  kv->value_bytes = r->pos - start;
  return AG_OK;
}

/* ---- tensor descriptions --------------------------------------------------- */

static void shape_text(const ag_gguf_tensor *t, char *buf, size_t size) {
  size_t used = (size_t)snprintf(buf, size, "(");
  for (int d = 0; d < t->ndim && used < size; d++)
    used += (size_t)snprintf(buf + used, size - used, d ? ", %" PRId64 : "%" PRId64, t->shape[d]);
  if (used < size) snprintf(buf + used, size - used, ")");
}

static ag_status parse_tensor_info(reader *r, int64_t index, ag_gguf_tensor *t) {
  snprintf(r->where, sizeof r->where, "tensor %" PRId64, index);
  ag_gguf_string name;
  ag_status st = read_string(r, "name", &name);
  if (st) return st;
  char quoted[QUOTE_MAX + 4];
  quote(name.data, name.length, quoted);
  snprintf(r->where, sizeof r->where, "tensor %" PRId64 " '%s'", index, quoted);
  char *name_copy = NULL;
  if ((st = copy_name(r, name, "name", &name_copy))) return st;
  t->name = name_copy;
  uint32_t ndim;
  if ((st = read_u32(r, "dimension count", &ndim))) return st;
  if (ndim > AG_GGUF_MAX_DIMS)
    return file_error(AG_ERR_FORMAT, r->path, "%s: %" PRIu32 " dimensions (GGUF allows at most %d)",
                      r->where, ndim, AG_GGUF_MAX_DIMS);
  t->ndim = (int)ndim;
  uint64_t ne[AG_GGUF_MAX_DIMS];
  for (uint32_t d = 0; d < ndim; d++) {
    if ((st = read_u64(r, "dimension", &ne[d]))) return st;
    if (ne[d] > (uint64_t)INT64_MAX)
      return file_error(AG_ERR_FORMAT, r->path,
                        "%s: dimension %" PRIu32 " is %" PRIu64 " (corrupt)", r->where, d, ne[d]);
    t->shape[ndim - 1 - d] = (int64_t)ne[d]; /* ne[0] varies fastest: last in row-major */
  }
  /* The product of the nonzero dims must fit, so that no partial product a
   * caller forms from the shape overflows, even for an empty tensor. */
  int64_t product = 1;
  bool empty = false;
  for (uint32_t d = 0; d < ndim; d++) {
    const int64_t n = (int64_t)ne[d];
    if (n == 0) {
      empty = true;
      continue;
    }
    if (product > INT64_MAX / n)
      return file_error(AG_ERR_FORMAT, r->path,
                        "%s: dimensions overflow: their product exceeds 2^63 elements (corrupt)",
                        r->where);
    product *= n;
  }
  const int64_t numel = empty ? 0 : product;
  t->numel = numel;
  uint32_t type;
  if ((st = read_u32(r, "type", &type))) return st;
  const ggml_type_info *info = ggml_type_lookup(type);
  if (!info)
    return file_error(AG_ERR_FORMAT, r->path, "%s: unknown ggml type %" PRIu32, r->where, type);
  t->type = (ag_ggml_type)type;
  if ((st = read_u64(r, "data offset", &t->offset))) return st;
  /* Blocks run along ne[0]: each row must be a whole number of blocks. */
  const uint64_t row = ndim ? ne[0] : 1;
  if (row % info->block_elements != 0)
    return file_error(AG_ERR_FORMAT, r->path,
                      "%s: type %s packs %" PRIu32 " elements per block but the row length %" PRIu64
                      " is not a multiple of it",
                      r->where, info->name, info->block_elements, row);
  const uint64_t blocks = (uint64_t)numel / info->block_elements;
  if (blocks > SIZE_MAX / info->block_bytes)
    return file_error(AG_ERR_FORMAT, r->path, "%s: byte size overflows (corrupt)", r->where);
  t->bytes = (size_t)(blocks * info->block_bytes);
  return AG_OK;
}

/* ---- lookup ------------------------------------------------------------------ */

static int compare_kv_keys(const void *a, const void *b) {
  return strcmp((*(ag_gguf_kv *const *)a)->key, (*(ag_gguf_kv *const *)b)->key);
}
static int compare_tensor_names(const void *a, const void *b) {
  return strcmp((*(ag_gguf_tensor *const *)a)->name, (*(ag_gguf_tensor *const *)b)->name);
}
static int compare_tensor_offsets(const void *a, const void *b) {
  const ag_gguf_tensor *x = *(ag_gguf_tensor *const *)a, *y = *(ag_gguf_tensor *const *)b;
  if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
  return x->bytes < y->bytes ? -1 : x->bytes > y->bytes;
}

const ag_gguf_kv *ag_gguf_find(const ag_gguf *f, const char *key) {
  if (!f || !key || f->kv_count == 0) return NULL;
  ag_gguf_kv probe = {.key = key};
  const ag_gguf_kv *p = &probe;
  ag_gguf_kv *const *hit =
      bsearch(&p, f->kv_sorted, (size_t)f->kv_count, sizeof *f->kv_sorted, compare_kv_keys);
  return hit ? *hit : NULL;
}

const ag_gguf_tensor *ag_gguf_find_tensor(const ag_gguf *f, const char *name) {
  if (!f || !name || f->tensor_count == 0) return NULL;
  ag_gguf_tensor probe = {.name = name};
  const ag_gguf_tensor *p = &probe;
  ag_gguf_tensor *const *hit = bsearch(&p, f->tensor_sorted, (size_t)f->tensor_count,
                                       sizeof *f->tensor_sorted, compare_tensor_names);
  return hit ? *hit : NULL;
}

/* ---- open ------------------------------------------------------------------- */

static ag_status parse_header(ag_gguf *f) {
  reader r = {.bytes = f->bytes, .size = f->size, .pos = 0, .path = f->path};
  snprintf(r.where, sizeof r.where, "header");
  if (f->size < 4)
    return file_error(AG_ERR_FORMAT, f->path,
                      "file is %zu bytes, too short for the GGUF magic (truncated?)", f->size);
  if (memcmp(f->bytes, "GGUF", 4) != 0) {
    char seen[QUOTE_MAX + 4];
    quote((const char *)f->bytes, 4, seen);
    return file_error(AG_ERR_FORMAT, f->path,
                      "not a GGUF file: it starts with '%s' (%02x %02x %02x %02x), not 'GGUF'",
                      seen, f->bytes[0], f->bytes[1], f->bytes[2], f->bytes[3]);
  }
  r.pos = 4;
  uint32_t version;
  uint64_t tensor_count, kv_count;
  ag_status st = read_u32(&r, "version", &version);
  if (!st) st = read_u64(&r, "tensor count", &tensor_count);
  if (!st) st = read_u64(&r, "metadata count", &kv_count);
  if (st) return st;
  if (version != 2 && version != 3) {
    /* A big-endian file stores the version byte-swapped: 0x03000000. */
    const uint32_t swapped = (version >> 24) | ((version >> 8) & 0xff00u) |
                             ((version << 8) & 0xff0000u) | (version << 24);
    if (swapped == 2 || swapped == 3)
      return file_error(AG_ERR_UNSUPPORTED, f->path,
                        "big-endian GGUF (version %" PRIu32 ") is not supported; agora reads "
                        "little-endian files",
                        swapped);
    return file_error(AG_ERR_UNSUPPORTED, f->path,
                      "GGUF version %" PRIu32 " is not supported (agora reads versions 2 and 3)",
                      version);
  }
  f->version = version;
  const size_t left = remaining(&r);
  if (kv_count > left / KV_MIN_BYTES || tensor_count > left / TENSOR_INFO_MIN_BYTES ||
      kv_count * KV_MIN_BYTES + tensor_count * TENSOR_INFO_MIN_BYTES > left)
    return file_error(AG_ERR_FORMAT, f->path,
                      "header claims %" PRIu64 " metadata pairs and %" PRIu64
                      " tensors, more than the %zu bytes after it can hold (truncated or corrupt)",
                      kv_count, tensor_count, left);
  f->kvs = calloc(kv_count ? (size_t)kv_count : 1, sizeof *f->kvs);
  f->tensors = calloc(tensor_count ? (size_t)tensor_count : 1, sizeof *f->tensors);
  f->kv_sorted = malloc((kv_count ? (size_t)kv_count : 1) * sizeof *f->kv_sorted);
  f->tensor_sorted = malloc((tensor_count ? (size_t)tensor_count : 1) * sizeof *f->tensor_sorted);
  if (!f->kvs || !f->tensors || !f->kv_sorted || !f->tensor_sorted)
    return file_error(AG_ERR_NOMEM, f->path, "out of memory");

  for (uint64_t i = 0; i < kv_count; i++) {
    f->kv_count = (int64_t)i + 1; /* so close frees what this pair allocated */
    if ((st = parse_kv(&r, (int64_t)i, &f->kvs[i]))) return st;
    f->kv_sorted[i] = &f->kvs[i];
  }
  qsort(f->kv_sorted, (size_t)f->kv_count, sizeof *f->kv_sorted, compare_kv_keys);
  for (int64_t i = 1; i < f->kv_count; i++)
    if (strcmp(f->kv_sorted[i - 1]->key, f->kv_sorted[i]->key) == 0) {
      char quoted[QUOTE_MAX + 4];
      quote(f->kv_sorted[i]->key, strlen(f->kv_sorted[i]->key), quoted);
      return file_error(AG_ERR_FORMAT, f->path, "metadata key '%s' appears twice", quoted);
    }

  f->alignment = AG_GGUF_DEFAULT_ALIGNMENT;
  const ag_gguf_kv *align = ag_gguf_find(f, "general.alignment");
  if (align) {
    if (align->type != AG_GGUF_UINT32)
      return file_error(AG_ERR_FORMAT, f->path, "general.alignment is %s, not uint32",
                        ag_gguf_type_name(align->type));
    const uint32_t a = load_u32(align->value);
    if (a == 0 || (a & (a - 1)) != 0)
      return file_error(AG_ERR_FORMAT, f->path,
                        "general.alignment is %" PRIu32 ", not a power of two", a);
    f->alignment = a;
  }

  for (uint64_t i = 0; i < tensor_count; i++) {
    f->tensor_count = (int64_t)i + 1;
    if ((st = parse_tensor_info(&r, (int64_t)i, &f->tensors[i]))) return st;
    f->tensor_sorted[i] = &f->tensors[i];
  }
  qsort(f->tensor_sorted, (size_t)f->tensor_count, sizeof *f->tensor_sorted, compare_tensor_names);
  for (int64_t i = 1; i < f->tensor_count; i++)
    if (strcmp(f->tensor_sorted[i - 1]->name, f->tensor_sorted[i]->name) == 0) {
      char quoted[QUOTE_MAX + 4];
      quote(f->tensor_sorted[i]->name, strlen(f->tensor_sorted[i]->name), quoted);
      return file_error(AG_ERR_FORMAT, f->path, "tensor '%s' appears twice", quoted);
    }

  /* The data section starts at the next multiple of the alignment. A file
   * without tensors may end right after the header, without the padding. */
  const size_t header_end = r.pos;
  f->data_offset = header_end + (f->alignment - header_end % f->alignment) % f->alignment;
  const size_t data_bytes = f->data_offset < f->size ? f->size - f->data_offset : 0;
  for (int64_t i = 0; i < f->tensor_count; i++) {
    ag_gguf_tensor *t = &f->tensors[i];
    char quoted[QUOTE_MAX + 4];
    quote(t->name, strlen(t->name), quoted);
    if (t->offset % f->alignment != 0)
      return file_error(AG_ERR_FORMAT, f->path,
                        "tensor '%s': data offset %" PRIu64 " is not a multiple of the alignment "
                        "%zu",
                        quoted, t->offset, f->alignment);
    if (t->offset > data_bytes || t->bytes > data_bytes - t->offset) {
      char shape[128];
      shape_text(t, shape, sizeof shape);
      return file_error(AG_ERR_FORMAT, f->path,
                        "tensor '%s' %s %s: data [%" PRIu64 ", +%zu) runs past the end of the "
                        "file (the data section holds %zu bytes; truncated?)",
                        quoted, ag_ggml_type_name(t->type), shape, t->offset, t->bytes, data_bytes);
    }
    t->data = f->bytes + f->data_offset + t->offset;
  }
  /* Tensors may not share bytes (a corrupt offset usually shows up here). */
  ag_gguf_tensor **by_offset =
      malloc((f->tensor_count ? (size_t)f->tensor_count : 1) * sizeof *by_offset);
  if (!by_offset) return file_error(AG_ERR_NOMEM, f->path, "out of memory");
  for (int64_t i = 0; i < f->tensor_count; i++) by_offset[i] = &f->tensors[i];
  qsort(by_offset, (size_t)f->tensor_count, sizeof *by_offset, compare_tensor_offsets);
  for (int64_t i = 1; i < f->tensor_count; i++) {
    const ag_gguf_tensor *a = by_offset[i - 1], *b = by_offset[i];
    if (a->bytes && b->bytes && a->offset + a->bytes > b->offset) {
      char qa[QUOTE_MAX + 4], qb[QUOTE_MAX + 4];
      quote(a->name, strlen(a->name), qa);
      quote(b->name, strlen(b->name), qb);
      st = file_error(AG_ERR_FORMAT, f->path,
                      "tensors '%s' [%" PRIu64 ", +%zu) and '%s' [%" PRIu64 ", +%zu) overlap", qa,
                      a->offset, a->bytes, qb, b->offset, b->bytes);
      break;
    }
  }
  free(by_offset);
  return st;
}

static char *copy_string(const char *s) {
  size_t n = strlen(s) + 1;
  char *c = malloc(n);
  if (c) memcpy(c, s, n);
  return c;
}

/* Wraps bytes (mapped or the caller's) in a handle and parses them. */
static ag_status open_bytes(const unsigned char *bytes, size_t size, void *map, const char *path,
                            ag_gguf **out) {
  ag_gguf *f = calloc(1, sizeof *f);
  char *path_copy = copy_string(path);
  if (!f || !path_copy) {
    free(f);
    free(path_copy);
    if (map) munmap(map, size);
    return file_error(AG_ERR_NOMEM, path, "out of memory");
  }
  f->bytes = bytes;
  f->size = size;
  f->map = map;
  f->path = path_copy;
  ag_status st = parse_header(f);
  if (st) {
    ag_gguf_close(f);
    return st;
  }
  *out = f;
  return AG_OK;
}

ag_status ag_gguf_open(const char *path, ag_gguf **out) {
  if (!out) return ag_error_set(AG_ERR_INVALID, "gguf: NULL out");
  *out = NULL;
  if (!path) return ag_error_set(AG_ERR_INVALID, "gguf: NULL path");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return file_error(err == ENOENT ? AG_ERR_NOT_FOUND : AG_ERR_IO, path, "cannot open: %s",
                      strerror(err));
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    int err = errno;
    close(fd);
    return file_error(AG_ERR_IO, path, "cannot stat: %s", strerror(err));
  }
  if (!S_ISREG(sb.st_mode)) {
    close(fd);
    return file_error(AG_ERR_IO, path, "not a regular file");
  }
  if (sb.st_size == 0) {
    close(fd); /* mmap refuses empty files; the parser reports them */
    return open_bytes((const unsigned char *)"", 0, NULL, path, out);
  }
  if ((uint64_t)sb.st_size > SIZE_MAX) {
    close(fd);
    return file_error(AG_ERR_UNSUPPORTED, path, "file too large to map");
  }
  const size_t size = (size_t)sb.st_size;
  void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  close(fd); /* the mapping stays valid */
  if (map == MAP_FAILED) return file_error(AG_ERR_IO, path, "cannot mmap: %s", strerror(map_errno));
  return open_bytes(map, size, map, path, out);
}

ag_status ag_gguf_open_buffer(const void *bytes, size_t size, const char *name, ag_gguf **out) {
  if (!out) return ag_error_set(AG_ERR_INVALID, "gguf: NULL out");
  *out = NULL;
  if (!name) name = "(buffer)";
  if (!bytes && size) return ag_error_set(AG_ERR_INVALID, "gguf %s: NULL buffer", name);
  return open_bytes(bytes ? bytes : (const unsigned char *)"", size, NULL, name, out);
}

void ag_gguf_close(ag_gguf *f) {
  if (!f) return;
  for (int64_t i = 0; i < f->kv_count; i++) {
    free((char *)f->kvs[i].key);
    free((ag_gguf_string *)f->kvs[i].strings);
  }
  for (int64_t i = 0; i < f->tensor_count; i++) free((char *)f->tensors[i].name);
  free(f->kvs);
  free(f->tensors);
  free(f->kv_sorted);
  free(f->tensor_sorted);
  if (f->map) munmap(f->map, f->size);
  free(f->path);
  free(f);
}

/* ---- typed getters ---------------------------------------------------------- */

static ag_status lookup(const ag_gguf *f, const char *key, const ag_gguf_kv **out) {
  if (!f || !key) return ag_error_set(AG_ERR_INVALID, "gguf: NULL argument");
  *out = ag_gguf_find(f, key);
  if (!*out) return file_error(AG_ERR_NOT_FOUND, f->path, "metadata key '%s' is missing", key);
  return AG_OK;
}

static bool is_integer(ag_gguf_type t) {
  return t == AG_GGUF_UINT8 || t == AG_GGUF_INT8 || t == AG_GGUF_UINT16 || t == AG_GGUF_INT16 ||
         t == AG_GGUF_UINT32 || t == AG_GGUF_INT32 || t == AG_GGUF_UINT64 || t == AG_GGUF_INT64;
}
static bool is_float(ag_gguf_type t) { return t == AG_GGUF_FLOAT32 || t == AG_GGUF_FLOAT64; }

/* An integer of any width as a sign and magnitude, so every range check is
 * exact: negative tells whether the value is below zero. */
static void load_integer(ag_gguf_type t, const unsigned char *p, bool *negative,
                         uint64_t *magnitude) {
  int64_t s = 0;
  switch (t) {
  case AG_GGUF_UINT8: *negative = false, *magnitude = p[0]; return;
  case AG_GGUF_UINT16: *negative = false, *magnitude = load_u16(p); return;
  case AG_GGUF_UINT32: *negative = false, *magnitude = load_u32(p); return;
  case AG_GGUF_UINT64: *negative = false, *magnitude = load_u64(p); return;
  case AG_GGUF_INT8: s = (int8_t)p[0]; break;
  case AG_GGUF_INT16: s = (int16_t)load_u16(p); break;
  case AG_GGUF_INT32: s = (int32_t)load_u32(p); break;
  default: s = (int64_t)load_u64(p); break;
  }
  *negative = s < 0;
  *magnitude = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
}

static double load_float(ag_gguf_type t, const unsigned char *p) {
  if (t == AG_GGUF_FLOAT32) {
    const uint32_t bits = load_u32(p);
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
  }
  const uint64_t bits = load_u64(p);
  double v;
  memcpy(&v, &bits, sizeof v);
  return v;
}

static ag_status wrong_type(const ag_gguf *f, const ag_gguf_kv *kv, const char *want) {
  if (kv->type == AG_GGUF_ARRAY)
    return file_error(AG_ERR_FORMAT, f->path, "metadata key '%s' is an array of %s, not %s",
                      kv->key, ag_gguf_type_name(kv->element_type), want);
  return file_error(AG_ERR_FORMAT, f->path, "metadata key '%s' is %s, not %s", kv->key,
                    ag_gguf_type_name(kv->type), want);
}

/* Reads an integer of type t at p into [min, max] (min given as a sign and
 * magnitude: min_negative_magnitude is -min, or 0). */
static ag_status integer_in_range(const ag_gguf *f, const char *key, const char *where,
                                  ag_gguf_type t, const unsigned char *p,
                                  uint64_t min_negative_magnitude, uint64_t max, const char *want,
                                  bool *negative, uint64_t *magnitude) {
  load_integer(t, p, negative, magnitude);
  if ((*negative && *magnitude > min_negative_magnitude) || (!*negative && *magnitude > max))
    return file_error(AG_ERR_FORMAT, f->path,
                      "metadata key '%s'%s: value %s%" PRIu64 " (%s) does not fit in %s", key,
                      where, *negative ? "-" : "", *magnitude, ag_gguf_type_name(t), want);
  return AG_OK;
}

/* Fetches key as a scalar integer in range. */
static ag_status get_integer(const ag_gguf *f, const char *key, uint64_t min_negative_magnitude,
                             uint64_t max, const char *want, bool *negative, uint64_t *magnitude) {
  const ag_gguf_kv *kv;
  ag_status st = lookup(f, key, &kv);
  if (st) return st;
  if (!is_integer(kv->type)) return wrong_type(f, kv, want);
  return integer_in_range(f, key, "", kv->type, kv->value, min_negative_magnitude, max, want,
                          negative, magnitude);
}

static int64_t signed_value(bool negative, uint64_t magnitude) {
  /* magnitude <= 2^63 when negative; -(2^63) needs the two-step form. */
  return negative ? -(int64_t)(magnitude - 1) - 1 : (int64_t)magnitude;
}

ag_status ag_gguf_get_u32(const ag_gguf *f, const char *key, uint32_t *out) {
  bool negative;
  uint64_t magnitude;
  ag_status st = get_integer(f, key, 0, UINT32_MAX, "uint32", &negative, &magnitude);
  if (!st) *out = (uint32_t)magnitude;
  return st;
}

ag_status ag_gguf_get_i32(const ag_gguf *f, const char *key, int32_t *out) {
  bool negative;
  uint64_t magnitude;
  ag_status st =
      get_integer(f, key, (uint64_t)INT32_MAX + 1, INT32_MAX, "int32", &negative, &magnitude);
  if (!st) *out = (int32_t)signed_value(negative, magnitude);
  return st;
}

ag_status ag_gguf_get_u64(const ag_gguf *f, const char *key, uint64_t *out) {
  bool negative;
  uint64_t magnitude;
  ag_status st = get_integer(f, key, 0, UINT64_MAX, "uint64", &negative, &magnitude);
  if (!st) *out = magnitude;
  return st;
}

ag_status ag_gguf_get_i64(const ag_gguf *f, const char *key, int64_t *out) {
  bool negative;
  uint64_t magnitude;
  ag_status st =
      get_integer(f, key, (uint64_t)INT64_MAX + 1, INT64_MAX, "int64", &negative, &magnitude);
  if (!st) *out = signed_value(negative, magnitude);
  return st;
}

ag_status ag_gguf_get_f32(const ag_gguf *f, const char *key, float *out) {
  const ag_gguf_kv *kv;
  ag_status st = lookup(f, key, &kv);
  if (st) return st;
  if (!is_float(kv->type)) return wrong_type(f, kv, "float32");
  *out = (float)load_float(kv->type, kv->value);
  return AG_OK;
}

ag_status ag_gguf_get_bool(const ag_gguf *f, const char *key, bool *out) {
  const ag_gguf_kv *kv;
  ag_status st = lookup(f, key, &kv);
  if (st) return st;
  if (kv->type != AG_GGUF_BOOL) return wrong_type(f, kv, "bool");
  if (kv->value[0] > 1)
    return file_error(AG_ERR_FORMAT, f->path, "metadata key '%s': bool byte is %u, not 0 or 1", key,
                      kv->value[0]);
  *out = kv->value[0] == 1;
  return AG_OK;
}

ag_status ag_gguf_get_string(const ag_gguf *f, const char *key, ag_gguf_string *out) {
  const ag_gguf_kv *kv;
  ag_status st = lookup(f, key, &kv);
  if (st) return st;
  if (kv->type != AG_GGUF_STRING) return wrong_type(f, kv, "string");
  *out = kv->strings[0];
  return AG_OK;
}

/* ---- arrays ------------------------------------------------------------------- */

static ag_status lookup_array(const ag_gguf *f, const char *key, const ag_gguf_kv **out) {
  ag_status st = lookup(f, key, out);
  if (st) return st;
  if ((*out)->type != AG_GGUF_ARRAY)
    return file_error(AG_ERR_FORMAT, f->path, "metadata key '%s' is %s, not an array", key,
                      ag_gguf_type_name((*out)->type));
  return AG_OK;
}

static ag_status wrong_element_type(const ag_gguf *f, const ag_gguf_kv *kv, const char *want) {
  return file_error(AG_ERR_FORMAT, f->path, "metadata key '%s' is an array of %s, not of %s",
                    kv->key, ag_gguf_type_name(kv->element_type), want);
}

static ag_status check_index(const ag_gguf *f, const ag_gguf_kv *kv, uint64_t index) {
  if (index < kv->count) return AG_OK;
  return file_error(AG_ERR_INVALID, f->path,
                    "index %" PRIu64 " is out of range for metadata array '%s' of length %" PRIu64,
                    index, kv->key, kv->count);
}

ag_status ag_gguf_get_array_length(const ag_gguf *f, const char *key, uint64_t *length) {
  const ag_gguf_kv *kv;
  ag_status st = lookup_array(f, key, &kv);
  if (!st) *length = kv->count;
  return st;
}

ag_status ag_gguf_get_array_string(const ag_gguf *f, const char *key, uint64_t index,
                                   ag_gguf_string *out) {
  const ag_gguf_kv *kv;
  ag_status st = lookup_array(f, key, &kv);
  if (st) return st;
  if (kv->element_type != AG_GGUF_STRING) return wrong_element_type(f, kv, "string");
  if ((st = check_index(f, kv, index))) return st;
  *out = kv->strings[index];
  return AG_OK;
}

ag_status ag_gguf_get_array_i64(const ag_gguf *f, const char *key, uint64_t index, int64_t *out) {
  const ag_gguf_kv *kv;
  ag_status st = lookup_array(f, key, &kv);
  if (st) return st;
  if (!is_integer(kv->element_type)) return wrong_element_type(f, kv, "integers");
  if ((st = check_index(f, kv, index))) return st;
  char where[48];
  snprintf(where, sizeof where, " element %" PRIu64, index);
  bool negative;
  uint64_t magnitude;
  st = integer_in_range(f, key, where, kv->element_type,
                        kv->value + index * VALUE_TYPE_BYTES[kv->element_type],
                        (uint64_t)INT64_MAX + 1, INT64_MAX, "int64", &negative, &magnitude);
  if (!st) *out = signed_value(negative, magnitude);
  return st;
}

ag_status ag_gguf_get_array_f32(const ag_gguf *f, const char *key, uint64_t index, float *out) {
  const ag_gguf_kv *kv;
  ag_status st = lookup_array(f, key, &kv);
  if (st) return st;
  if (!is_float(kv->element_type)) return wrong_element_type(f, kv, "floats");
  if ((st = check_index(f, kv, index))) return st;
  *out =
      (float)load_float(kv->element_type, kv->value + index * VALUE_TYPE_BYTES[kv->element_type]);
  return AG_OK;
}

ag_status ag_gguf_get_string_array(const ag_gguf *f, const char *key, const ag_gguf_string **items,
                                   uint64_t *length) {
  const ag_gguf_kv *kv;
  ag_status st = lookup_array(f, key, &kv);
  if (st) return st;
  if (kv->element_type != AG_GGUF_STRING) return wrong_element_type(f, kv, "string");
  *items = kv->strings;
  *length = kv->count;
  return AG_OK;
}

static ag_status check_length(const ag_gguf *f, const ag_gguf_kv *kv, uint64_t length) {
  if (length == kv->count) return AG_OK;
  return file_error(AG_ERR_SHAPE, f->path,
                    "metadata array '%s' has %" PRIu64 " elements but %" PRIu64 " were expected",
                    kv->key, kv->count, length);
}

ag_status ag_gguf_get_i32_array(const ag_gguf *f, const char *key, int32_t *dst, uint64_t length) {
  const ag_gguf_kv *kv;
  ag_status st = lookup_array(f, key, &kv);
  if (st) return st;
  if (!is_integer(kv->element_type)) return wrong_element_type(f, kv, "integers");
  if ((st = check_length(f, kv, length))) return st;
  const size_t stride = VALUE_TYPE_BYTES[kv->element_type];
  for (uint64_t i = 0; i < length; i++) {
    bool negative;
    uint64_t magnitude;
    load_integer(kv->element_type, kv->value + i * stride, &negative, &magnitude);
    if ((negative && magnitude > (uint64_t)INT32_MAX + 1) || (!negative && magnitude > INT32_MAX)) {
      char where[48]; /* formatted only on failure: this loop runs per token */
      snprintf(where, sizeof where, " element %" PRIu64, i);
      return integer_in_range(f, key, where, kv->element_type, kv->value + i * stride,
                              (uint64_t)INT32_MAX + 1, INT32_MAX, "int32", &negative, &magnitude);
    }
    dst[i] = (int32_t)signed_value(negative, magnitude);
  }
  return AG_OK;
}

ag_status ag_gguf_get_f32_array(const ag_gguf *f, const char *key, float *dst, uint64_t length) {
  const ag_gguf_kv *kv;
  ag_status st = lookup_array(f, key, &kv);
  if (st) return st;
  if (!is_float(kv->element_type)) return wrong_element_type(f, kv, "floats");
  if ((st = check_length(f, kv, length))) return st;
  const size_t stride = VALUE_TYPE_BYTES[kv->element_type];
  for (uint64_t i = 0; i < length; i++)
    dst[i] = (float)load_float(kv->element_type, kv->value + i * stride);
  return AG_OK;
}

/* ---- tensors ------------------------------------------------------------------ */

ag_status ag_gguf_get_tensor(const ag_gguf *f, const char *name, const ag_gguf_tensor **out) {
  if (!f || !name || !out) return ag_error_set(AG_ERR_INVALID, "gguf: NULL argument");
  *out = ag_gguf_find_tensor(f, name);
  if (!*out) return file_error(AG_ERR_NOT_FOUND, f->path, "tensor '%s' is not in the file", name);
  return AG_OK;
}

ag_status ag_gguf_read_f32(const ag_gguf *f, const ag_gguf_tensor *t, float *dst) {
  if (!f || !t || (!dst && t->numel)) return ag_error_set(AG_ERR_INVALID, "gguf: NULL argument");
  const unsigned char *src = t->data;
  const int64_t n = t->numel;
  switch (t->type) {
  case AG_GGML_F32:
    if (host_is_little_endian()) {
      if (n) memcpy(dst, src, (size_t)n * sizeof(float));
    } else {
      for (int64_t i = 0; i < n; i++) {
        const uint32_t bits = load_u32(src + 4 * i);
        memcpy(&dst[i], &bits, sizeof bits);
      }
    }
    return AG_OK;
  case AG_GGML_F16:
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
    for (int64_t i = 0; i < n; i++) dst[i] = ag_f16_to_f32(load_u16(src + 2 * i));
    return AG_OK;
  case AG_GGML_BF16:
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
    for (int64_t i = 0; i < n; i++) dst[i] = ag_bf16_to_f32(load_u16(src + 2 * i));
    return AG_OK;
  case AG_GGML_Q8_0: {
    /* Each block: x[j] = d * q[j], d a float16, q 32 int8 (ggml block_q8_0). */
    const int64_t blocks = n / Q8_0_BLOCK_ELEMENTS;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
    for (int64_t b = 0; b < blocks; b++) {
      const unsigned char *block = src + b * Q8_0_BLOCK_BYTES;
      const float d = ag_f16_to_f32(load_u16(block));
      const signed char *q = (const signed char *)block + 2;
      float *out = dst + b * Q8_0_BLOCK_ELEMENTS;
      for (int j = 0; j < Q8_0_BLOCK_ELEMENTS; j++) out[j] = d * (float)q[j];
    }
    return AG_OK;
  }
  default: break;
  }
  return file_error(AG_ERR_UNSUPPORTED, f->path,
                    "tensor '%s' has type %s; agora converts only F32, F16, BF16 and Q8_0 "
                    "tensors to float32",
                    t->name, ag_ggml_type_name(t->type));
}
