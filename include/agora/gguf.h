/* GGUF files (llama.cpp / ggml), versions 2 and 3: a little-endian header
 * ("GGUF", u32 version, u64 tensor count, u64 metadata count), metadata
 * key/value pairs, tensor descriptions, then the tensor data, aligned to
 * general.alignment (default 32). The file is memory-mapped and validated
 * completely on open; every accessor after that only reads checked memory.
 *
 *   ag_gguf *f;
 *   if (ag_gguf_open("model.gguf", &f)) { puts(ag_error_message()); ... }
 *   uint32_t layers;
 *   ag_gguf_get_u32(f, "llama.block_count", &layers);
 *   const ag_gguf_string *tokens; uint64_t n;
 *   ag_gguf_get_string_array(f, "tokenizer.ggml.tokens", &tokens, &n);
 *   const ag_gguf_tensor *t;
 *   ag_gguf_get_tensor(f, "token_embd.weight", &t);   // t->shape = (vocab, dim)
 *   ag_gguf_read_f32(f, t, buffer_of_t_numel_floats);
 *   ag_gguf_close(f);
 */
#ifndef AGORA_GGUF_H
#define AGORA_GGUF_H

#include "agora/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AG_GGUF_MAX_DIMS          4  /* GGML_MAX_DIMS */
#define AG_GGUF_DEFAULT_ALIGNMENT 32 /* when general.alignment is absent */
#define AG_GGUF_MAX_NESTING       8  /* arrays of arrays deeper than this are refused */

/* Metadata value types, numbered as in the file. */
typedef enum ag_gguf_type {
  AG_GGUF_UINT8 = 0,
  AG_GGUF_INT8 = 1,
  AG_GGUF_UINT16 = 2,
  AG_GGUF_INT16 = 3,
  AG_GGUF_UINT32 = 4,
  AG_GGUF_INT32 = 5,
  AG_GGUF_FLOAT32 = 6,
  AG_GGUF_BOOL = 7,
  AG_GGUF_STRING = 8,
  AG_GGUF_ARRAY = 9,
  AG_GGUF_UINT64 = 10,
  AG_GGUF_INT64 = 11,
  AG_GGUF_FLOAT64 = 12
} ag_gguf_type;

/* Tensor element types, numbered as ggml numbers them (gaps are types ggml
 * removed). Only F32, F16, BF16 and Q8_0 convert to float32 here; the rest
 * are parsed, sized and bounds-checked so a file that holds them opens. */
typedef enum ag_ggml_type {
  AG_GGML_F32 = 0,
  AG_GGML_F16 = 1,
  AG_GGML_Q4_0 = 2,
  AG_GGML_Q4_1 = 3,
  AG_GGML_Q5_0 = 6,
  AG_GGML_Q5_1 = 7,
  AG_GGML_Q8_0 = 8,
  AG_GGML_Q8_1 = 9,
  AG_GGML_Q2_K = 10,
  AG_GGML_Q3_K = 11,
  AG_GGML_Q4_K = 12,
  AG_GGML_Q5_K = 13,
  AG_GGML_Q6_K = 14,
  AG_GGML_Q8_K = 15,
  AG_GGML_IQ2_XXS = 16,
  AG_GGML_IQ2_XS = 17,
  AG_GGML_IQ3_XXS = 18,
  AG_GGML_IQ1_S = 19,
  AG_GGML_IQ4_NL = 20,
  AG_GGML_IQ3_S = 21,
  AG_GGML_IQ2_S = 22,
  AG_GGML_IQ4_XS = 23,
  AG_GGML_I8 = 24,
  AG_GGML_I16 = 25,
  AG_GGML_I32 = 26,
  AG_GGML_I64 = 27,
  AG_GGML_F64 = 28,
  AG_GGML_IQ1_M = 29,
  AG_GGML_BF16 = 30,
  AG_GGML_TQ1_0 = 34,
  AG_GGML_TQ2_0 = 35,
  AG_GGML_MXFP4 = 39
} ag_ggml_type;

/* A string inside the mapped file: `length` bytes, not NUL-terminated (GGUF
 * strings may hold any bytes, NUL included). Valid until ag_gguf_close. */
typedef struct ag_gguf_string {
  const char *data;
  size_t length;
} ag_gguf_string;

/* One metadata pair. Read it with the getters below; the fields are for
 * listing a file's contents. */
typedef struct ag_gguf_kv {
  const char *key;           /* NUL-terminated copy */
  ag_gguf_type type;         /* the value's type */
  ag_gguf_type element_type; /* arrays: the elements' type; otherwise == type */
  uint64_t count;            /* arrays: number of elements; otherwise 1 */
  /* The value's bytes in the mapped file (little-endian, unaligned): a
   * scalar, a string's characters, or an array's first element. */
  const unsigned char *value;
  size_t value_bytes;
  /* Strings and arrays of strings: every element, indexed at open. */
  const ag_gguf_string *strings;
} ag_gguf_kv;

typedef struct ag_gguf_tensor {
  const char *name; /* NUL-terminated copy */
  ag_ggml_type type;
  int ndim; /* 0..AG_GGUF_MAX_DIMS */
  /* Row-major, as agora orders shapes: the reverse of GGUF's ne[] (ne[0],
   * the fastest-varying dimension, is shape[ndim-1]). token_embd.weight with
   * ne = [dim, vocab] has shape (vocab, dim). */
  int64_t shape[AG_GGUF_MAX_DIMS];
  int64_t numel;
  uint64_t offset;  /* from the start of the data section, as stored */
  const void *data; /* in the mapped file */
  size_t bytes;
} ag_gguf_tensor;

/* An open file. Fields are read-only; kvs and tensors are in file order. */
typedef struct ag_gguf {
  char *path; /* as given to open, for messages */
  uint32_t version;
  size_t alignment;
  int64_t kv_count;
  ag_gguf_kv *kvs;
  int64_t tensor_count;
  ag_gguf_tensor *tensors;
  size_t data_offset; /* where the data section starts in the file */
  const unsigned char *bytes;
  size_t size;
  /* private */
  void *map;                      /* NULL when opened on a caller's buffer */
  ag_gguf_kv **kv_sorted;         /* by key, for binary search */
  ag_gguf_tensor **tensor_sorted; /* by name */
} ag_gguf;

/* Opens and validates a file: magic, version, every length and count against
 * the file size, value types, array nesting, tensor dims, types, alignment and
 * data ranges. A bad file is an error (AG_ERR_FORMAT, or AG_ERR_UNSUPPORTED
 * for a version or byte order agora does not read) naming the file and the
 * problem; a missing file is AG_ERR_NOT_FOUND. */
ag_status ag_gguf_open(const char *path, ag_gguf **out);
/* The same on bytes in memory, which must outlive the handle; `name` stands
 * in for the path in messages. */
ag_status ag_gguf_open_buffer(const void *bytes, size_t size, const char *name, ag_gguf **out);
void ag_gguf_close(ag_gguf *f);

/* ---- metadata ----------------------------------------------------------- */

/* NULL when the key is absent (no error is set): for optional keys. */
const ag_gguf_kv *ag_gguf_find(const ag_gguf *f, const char *key);

/* Typed getters. A missing key is AG_ERR_NOT_FOUND; a value of the wrong
 * type is AG_ERR_FORMAT, naming the key and both types. The integer getters
 * accept any integer type whose value fits exactly (converters differ on
 * u32 vs i32 vs u64); the float getter accepts float32 and float64; bool
 * and string accept only their own type. */
ag_status ag_gguf_get_u32(const ag_gguf *f, const char *key, uint32_t *out);
ag_status ag_gguf_get_i32(const ag_gguf *f, const char *key, int32_t *out);
ag_status ag_gguf_get_u64(const ag_gguf *f, const char *key, uint64_t *out);
ag_status ag_gguf_get_i64(const ag_gguf *f, const char *key, int64_t *out);
ag_status ag_gguf_get_f32(const ag_gguf *f, const char *key, float *out);
ag_status ag_gguf_get_bool(const ag_gguf *f, const char *key, bool *out);
ag_status ag_gguf_get_string(const ag_gguf *f, const char *key, ag_gguf_string *out);

/* Arrays. The length getter takes any array; element access checks the
 * element type as the scalar getters do (integers: any integer type that
 * fits; floats: float32 or float64) and the index (AG_ERR_INVALID). */
ag_status ag_gguf_get_array_length(const ag_gguf *f, const char *key, uint64_t *length);
ag_status ag_gguf_get_array_string(const ag_gguf *f, const char *key, uint64_t index,
                                   ag_gguf_string *out);
ag_status ag_gguf_get_array_i64(const ag_gguf *f, const char *key, uint64_t index, int64_t *out);
ag_status ag_gguf_get_array_f32(const ag_gguf *f, const char *key, uint64_t index, float *out);
/* Whole arrays at once. Strings: a view of the index built at open (no
 * copy; valid until close). Numbers: copied and converted into dst, which
 * holds `length` elements; `length` must equal the array's length. */
ag_status ag_gguf_get_string_array(const ag_gguf *f, const char *key, const ag_gguf_string **items,
                                   uint64_t *length);
ag_status ag_gguf_get_i32_array(const ag_gguf *f, const char *key, int32_t *dst, uint64_t length);
ag_status ag_gguf_get_f32_array(const ag_gguf *f, const char *key, float *dst, uint64_t length);

/* ---- tensors ------------------------------------------------------------ */

/* NULL when absent (no error is set). */
const ag_gguf_tensor *ag_gguf_find_tensor(const ag_gguf *f, const char *name);
/* AG_ERR_NOT_FOUND naming the file and tensor when absent. */
ag_status ag_gguf_get_tensor(const ag_gguf *f, const char *name, const ag_gguf_tensor **out);
/* Converts a tensor to float32 in row-major order: t->numel floats into dst.
 * F32, F16, BF16 and Q8_0 (blocks of 32: f16 scale d, 32 int8 q, x = d*q);
 * any other type is AG_ERR_UNSUPPORTED naming it. */
ag_status ag_gguf_read_f32(const ag_gguf *f, const ag_gguf_tensor *t, float *dst);

/* "uint32", "string", "array", ...; "unknown" for other numbers. */
const char *ag_gguf_type_name(ag_gguf_type type);
/* "F32", "Q4_K", ...; "unknown" for numbers ggml does not define. */
const char *ag_ggml_type_name(ag_ggml_type type);

#ifdef __cplusplus
}
#endif
#endif
