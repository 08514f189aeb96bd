/* safetensors files (huggingface/safetensors): an 8-byte little-endian
 * header length, a JSON header {name: {dtype, shape, data_offsets}, optional
 * "__metadata__": {str: str}}, then the raw data. */
#ifndef AGORA_SAFETENSORS_H
#define AGORA_SAFETENSORS_H

#include "agora/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ag_dtype { AG_DTYPE_F32 = 0, AG_DTYPE_F16, AG_DTYPE_BF16 } ag_dtype;

typedef struct ag_st_entry {
  char *name;
  ag_dtype dtype;
  int ndim;
  int64_t shape[AG_MAX_DIMS];
  int64_t numel;
  const void *data; /* inside the mapped file */
  size_t bytes;
} ag_st_entry;

/* An open file, memory-mapped. Every header field is validated on open:
 * dtype, shape vs byte count, offsets inside the file and not overlapping,
 * names valid UTF-8; a bad file is an error naming what is wrong. */
typedef struct ag_safetensors {
  int count;
  ag_st_entry *entries; /* sorted by name */
  char *metadata_json;  /* the "__metadata__" object as JSON text, or NULL */
  void *map;
  size_t map_bytes;
  char *path; /* as given to open, for messages */
} ag_safetensors;

ag_status ag_safetensors_open(const char *path, ag_safetensors **out);
void ag_safetensors_close(ag_safetensors *f);
const ag_st_entry *ag_safetensors_find(const ag_safetensors *f, const char *name);
/* Converts an entry to float32 into dst (entry->numel floats). */
ag_status ag_safetensors_read_f32(const ag_st_entry *e, float *dst);
/* Loads every tensor of `params` by name; shapes must match exactly. With
 * allow_missing, names absent from the file are left as they are. */
ag_status ag_safetensors_load_params(const ag_safetensors *f, ag_params *params,
                                     bool allow_missing);

/* Writing: tensors (contiguous or not) converted to dtype (F32 or BF16),
 * written atomically. metadata: NULL or pairs key,value,key,value,...,NULL. */
typedef struct ag_st_write_item {
  const char *name;
  const ag_tensor *tensor;
} ag_st_write_item;
ag_status ag_safetensors_write(const char *path, const ag_st_write_item *items, int count,
                               ag_dtype dtype, const char *const *metadata);
/* All tensors of a parameter store under their names. */
ag_status ag_safetensors_save_params(const char *path, const ag_params *params, ag_dtype dtype,
                                     const char *const *metadata);

/* Half-precision conversions (round to nearest even). */
float ag_f16_to_f32(uint16_t h);
uint16_t ag_f32_to_f16(float f);
float ag_bf16_to_f32(uint16_t h);
uint16_t ag_f32_to_bf16(float f);

#ifdef __cplusplus
}
#endif
#endif
