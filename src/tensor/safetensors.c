/* safetensors files: memory-mapped reading with a fully validated header,
 * F16/BF16 conversions, and atomic writing in the layout of the reference
 * implementation (huggingface/safetensors): header padded with spaces to a
 * multiple of 8 bytes, tensors in name order, data packed without gaps. */
#include "agora/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The reference implementation refuses headers above 100 MB (MAX_HEADER_SIZE);
 * a larger length field means a file that is not safetensors at all. */
#define HEADER_MAX_BYTES ((uint64_t)100000000)
/* Header bytes are a u64 length then JSON padded to this alignment. */
#define HEADER_ALIGN 8
/* Conversions larger than this run in parallel. */
#define PARALLEL_MIN_ELEMENTS 65536
/* Elements converted per fwrite when writing half precision. */
#define WRITE_CHUNK_ELEMENTS 16384

/* Every dtype the format defines, so that a valid-but-unsupported dtype gets a
 * different message from a misspelled one. */
typedef struct dtype_info {
  const char *name;
  int bytes; /* per element; 0 for sub-byte types */
  int agora; /* ag_dtype, or -1 when agora cannot read it */
} dtype_info;

static const dtype_info DTYPES[] = {
    {"F32", 4, AG_DTYPE_F32},
    {"F16", 2, AG_DTYPE_F16},
    {"BF16", 2, AG_DTYPE_BF16},
    {"F64", 8, -1},
    {"I64", 8, -1},
    {"U64", 8, -1},
    {"I32", 4, -1},
    {"U32", 4, -1},
    {"I16", 2, -1},
    {"U16", 2, -1},
    {"I8", 1, -1},
    {"U8", 1, -1},
    {"BOOL", 1, -1},
    {"F8_E4M3", 1, -1},
    {"F8_E5M2", 1, -1},
    {"F8_E8M0", 1, -1},
    {"F6_E2M3", 0, -1},
    {"F6_E3M2", 0, -1},
    {"F4", 0, -1},
    {"C64", 8, -1},
};

static const dtype_info *dtype_by_name(const char *name) {
  for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++)
    if (strcmp(DTYPES[i].name, name) == 0) return &DTYPES[i];
  return NULL;
}

static const dtype_info *dtype_by_id(ag_dtype dtype) {
  for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++)
    if (DTYPES[i].agora == (int)dtype) return &DTYPES[i];
  return NULL;
}

static bool host_is_little_endian(void) {
  const uint16_t one = 1;
  unsigned char first;
  memcpy(&first, &one, 1);
  return first == 1;
}

/* ---- half-precision conversions ------------------------------------------ */

float ag_f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0) {
    /* Zero or subnormal: mantissa * 2^-24, exact in float. */
    float magnitude = ldexpf((float)mantissa, -24);
    return sign ? -magnitude : magnitude;
  } else if (exponent == 31) {
    bits = sign | 0x7f800000u | (mantissa << 13); /* Inf, or NaN keeping its payload */
  } else {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  }
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

uint16_t ag_f32_to_f16(float f) {
  uint32_t bits;
  memcpy(&bits, &f, sizeof bits);
  const uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude >= 0x7f800000u) {
    if (magnitude == 0x7f800000u) return sign | 0x7c00u;
    /* NaN: quiet, keeping the top payload bits. */
    return (uint16_t)(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
  }
  /* 65520 is halfway between the largest half (65504) and 2^16; ties go to
   * the even neighbour, which is infinity. */
  if (magnitude >= 0x477ff000u) return sign | 0x7c00u;
  const uint32_t exponent = magnitude >> 23;
  if (exponent < 113) {
    /* Below 2^-14: a half subnormal, round(value * 2^24) to nearest even. */
    if (exponent < 102) return sign; /* below 2^-25: rounds to zero */
    const uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exponent; /* 14..24 */
    uint32_t result = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (result & 1u))) result++;
    return (uint16_t)(sign | result);
  }
  uint32_t result = ((exponent - 112) << 10) | ((magnitude >> 13) & 0x3ffu);
  const uint32_t rest = magnitude & 0x1fffu;
  /* A carry out of the mantissa correctly bumps the exponent. */
  if (rest > 0x1000u || (rest == 0x1000u && (result & 1u))) result++;
  return (uint16_t)(sign | result);
}

float ag_bf16_to_f32(uint16_t h) {
  const uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

uint16_t ag_f32_to_bf16(float f) {
  uint32_t bits;
  memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x0040u); /* quiet NaN */
  /* Round to nearest even on the dropped 16 bits; Inf stays Inf and the
   * largest finite values round up to Inf as they should. */
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return (uint16_t)(bits >> 16);
}

/* ---- small helpers ----------------------------------------------------------- */

static ag_status file_error(ag_status code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ag_status file_error(ag_status code, const char *path, const char *fmt, ...) {
  char message[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  return ag_error_set(code, "safetensors %s: %s", path, message);
}

static char *copy_string(const char *s) {
  size_t n = strlen(s) + 1;
  char *c = malloc(n);
  if (c) memcpy(c, s, n);
  return c;
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t n, size_t *bad_at) {
  size_t i = 0;
  while (i < n) {
    const unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    uint32_t cp, min;
    if ((c & 0xe0u) == 0xc0u) {
      len = 2, cp = c & 0x1fu, min = 0x80;
    } else if ((c & 0xf0u) == 0xe0u) {
      len = 3, cp = c & 0x0fu, min = 0x800;
    } else if ((c & 0xf8u) == 0xf0u) {
      len = 4, cp = c & 0x07u, min = 0x10000;
    } else {
      break;
    }
    if (len > n - i) break;
    size_t k = 1;
    for (; k < len && (s[i + k] & 0xc0u) == 0x80u; k++) cp = (cp << 6) | (s[i + k] & 0x3fu);
    if (k < len || cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) break;
    i += len;
  }
  if (bad_at) *bad_at = i;
  return i == n;
}

static void shape_text(const int64_t *shape, int ndim, char *buf, size_t size) {
  size_t used = (size_t)snprintf(buf, size, "[");
  for (int d = 0; d < ndim && used < size; d++)
    used += (size_t)snprintf(buf + used, size - used, d ? ", %lld" : "%lld", (long long)shape[d]);
  if (used < size) snprintf(buf + used, size - used, "]");
}

/* ---- reading ------------------------------------------------------------------ */

static int compare_entry_names(const void *a, const void *b) {
  return strcmp(((const ag_st_entry *)a)->name, ((const ag_st_entry *)b)->name);
}

typedef struct data_range {
  uint64_t begin, end;
  const char *name;
} data_range;

static int compare_ranges(const void *a, const void *b) {
  const data_range *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

/* Reads one non-negative integer field of a JSON array. */
static bool json_nonneg(const json_t *v, int64_t *out) {
  if (!json_is_integer(v) || json_integer_value(v) < 0) return false;
  *out = (int64_t)json_integer_value(v);
  return true;
}

/* Validates one tensor entry of the header and fills e (name not yet set).
 * begin/end are the entry's offsets inside the data buffer. */
static ag_status parse_entry(const char *path, const char *name, json_t *value,
                             uint64_t buffer_bytes, ag_st_entry *e, uint64_t *begin,
                             uint64_t *end) {
  if (!json_is_object(value))
    return file_error(AG_ERR_FORMAT, path, "tensor '%s': entry is not a JSON object", name);
  json_t *dtype = json_object_get(value, "dtype");
  json_t *shape = json_object_get(value, "shape");
  json_t *offsets = json_object_get(value, "data_offsets");
  if (!dtype || !shape || !offsets)
    return file_error(AG_ERR_FORMAT, path, "tensor '%s': missing field \"%s\"", name,
                      !dtype   ? "dtype"
                      : !shape ? "shape"
                               : "data_offsets");
  if (!json_is_string(dtype))
    return file_error(AG_ERR_FORMAT, path, "tensor '%s': \"dtype\" is not a string", name);
  const char *dtype_name = json_string_value(dtype);
  const dtype_info *info = dtype_by_name(dtype_name);
  if (!info)
    return file_error(AG_ERR_FORMAT, path, "tensor '%s': unknown dtype \"%.40s\"", name,
                      dtype_name);
  if (info->agora < 0)
    return file_error(AG_ERR_UNSUPPORTED, path,
                      "tensor '%s': dtype %s is not supported (agora reads F32, F16 and BF16)",
                      name, info->name);

  if (!json_is_array(shape))
    return file_error(AG_ERR_FORMAT, path, "tensor '%s': \"shape\" is not an array", name);
  const size_t ndim = json_array_size(shape);
  if (ndim > AG_MAX_DIMS)
    return file_error(AG_ERR_UNSUPPORTED, path, "tensor '%s': %zu dims (agora supports at most %d)",
                      name, ndim, AG_MAX_DIMS);
  e->ndim = (int)ndim;
  int64_t numel = 1;
  bool overflow = false;
  for (size_t d = 0; d < ndim; d++) {
    json_t *dim = json_array_get(shape, d);
    if (!json_is_integer(dim))
      return file_error(AG_ERR_FORMAT, path, "tensor '%s': shape[%zu] is not an integer", name, d);
    if (!json_nonneg(dim, &e->shape[d]))
      return file_error(AG_ERR_FORMAT, path, "tensor '%s': shape[%zu] = %lld is negative", name, d,
                        (long long)json_integer_value(dim));
    if (e->shape[d] != 0 && numel > INT64_MAX / e->shape[d]) overflow = true;
    if (!overflow) numel *= e->shape[d];
  }
  char shape_buf[160];
  shape_text(e->shape, e->ndim, shape_buf, sizeof shape_buf);
  if (overflow || numel > INT64_MAX / info->bytes)
    return file_error(AG_ERR_FORMAT, path,
                      "tensor '%s': shape %s has too many elements (its byte size overflows "
                      "64 bits)",
                      name, shape_buf);
  e->numel = numel;
  e->dtype = (ag_dtype)info->agora;

  if (!json_is_array(offsets) || json_array_size(offsets) != 2)
    return file_error(AG_ERR_FORMAT, path,
                      "tensor '%s': \"data_offsets\" is not an array of two integers", name);
  int64_t b, en;
  if (!json_nonneg(json_array_get(offsets, 0), &b) || !json_nonneg(json_array_get(offsets, 1), &en))
    return file_error(AG_ERR_FORMAT, path,
                      "tensor '%s': \"data_offsets\" must be two non-negative integers", name);
  if (b > en)
    return file_error(AG_ERR_FORMAT, path,
                      "tensor '%s': data_offsets [%lld, %lld] end before they begin", name,
                      (long long)b, (long long)en);
  if ((uint64_t)en > buffer_bytes)
    return file_error(AG_ERR_FORMAT, path,
                      "tensor '%s': data_offsets [%lld, %lld] run past the end of the data "
                      "(%llu bytes after the header; file truncated?)",
                      name, (long long)b, (long long)en, (unsigned long long)buffer_bytes);
  const int64_t need = numel * info->bytes;
  if (en - b != need)
    return file_error(AG_ERR_FORMAT, path,
                      "tensor '%s': shape %s of %s needs %lld bytes but data_offsets [%lld, %lld] "
                      "hold %lld",
                      name, shape_buf, info->name, (long long)need, (long long)b, (long long)en,
                      (long long)(en - b));
  e->bytes = (size_t)need;
  *begin = (uint64_t)b;
  *end = (uint64_t)en;
  return AG_OK;
}

static ag_status parse_metadata(const char *path, json_t *meta, char **out) {
  if (!json_is_object(meta))
    return file_error(AG_ERR_FORMAT, path, "\"__metadata__\" is not a JSON object");
  const char *key;
  json_t *value;
  json_object_foreach(meta, key, value) {
    if (!json_is_string(value))
      return file_error(AG_ERR_FORMAT, path, "\"__metadata__\" value of '%s' is not a string", key);
  }
  *out = json_dumps(meta, JSON_COMPACT);
  if (!*out) return file_error(AG_ERR_NOMEM, path, "out of memory copying metadata");
  return AG_OK;
}

/* Checks that no two tensors share bytes of the data buffer. */
static ag_status check_overlaps(const char *path, data_range *ranges, int count) {
  qsort(ranges, (size_t)count, sizeof *ranges, compare_ranges);
  for (int i = 1; i < count; i++)
    if (ranges[i].begin < ranges[i - 1].end)
      return file_error(AG_ERR_FORMAT, path,
                        "tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap in the data",
                        ranges[i - 1].name, (unsigned long long)ranges[i - 1].begin,
                        (unsigned long long)ranges[i - 1].end, ranges[i].name,
                        (unsigned long long)ranges[i].begin, (unsigned long long)ranges[i].end);
  return AG_OK;
}

static ag_status parse_header(ag_safetensors *f, const char *path) {
  const unsigned char *bytes = f->map;
  const uint64_t file_bytes = f->map_bytes;
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; i--) header_bytes = (header_bytes << 8) | bytes[i];
  if (header_bytes > HEADER_MAX_BYTES)
    return file_error(AG_ERR_FORMAT, path,
                      "header length %llu bytes is absurd (over the 100 MB limit); not a "
                      "safetensors file?",
                      (unsigned long long)header_bytes);
  if (header_bytes > file_bytes - 8)
    return file_error(AG_ERR_FORMAT, path,
                      "header length %llu bytes runs past the end of the file (%llu bytes); "
                      "file truncated?",
                      (unsigned long long)header_bytes, (unsigned long long)file_bytes);
  const char *header = (const char *)bytes + 8;
  size_t bad_at;
  if (!utf8_valid((const unsigned char *)header, (size_t)header_bytes, &bad_at)) {
    /* Show the printable text just before the bad byte: usually a name. */
    char context[48];
    size_t from = bad_at > 32 ? bad_at - 32 : 0, n = 0;
    for (size_t i = from; i < bad_at; i++)
      context[n++] = header[i] >= 0x20 && header[i] < 0x7f ? header[i] : '?';
    context[n] = '\0';
    return file_error(AG_ERR_FORMAT, path,
                      "header is not valid UTF-8 at byte %zu, after \"%s\" (tensor names and "
                      "metadata must be valid UTF-8)",
                      bad_at, context);
  }
  json_error_t jerr;
  json_t *root = json_loadb(header, (size_t)header_bytes, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    return file_error(AG_ERR_FORMAT, path, "header is not valid JSON: %s (line %d, column %d)",
                      jerr.text, jerr.line, jerr.column);
  ag_status st = AG_OK;
  data_range *ranges = NULL;
  if (!json_is_object(root)) {
    st = file_error(AG_ERR_FORMAT, path, "header is not a JSON object");
    goto done;
  }
  const size_t keys = json_object_size(root);
  if (keys > INT_MAX) {
    st = file_error(AG_ERR_FORMAT, path, "header lists %zu tensors", keys);
    goto done;
  }
  f->entries = calloc(keys ? keys : 1, sizeof *f->entries);
  ranges = calloc(keys ? keys : 1, sizeof *ranges);
  if (!f->entries || !ranges) {
    st = file_error(AG_ERR_NOMEM, path, "out of memory for %zu header entries", keys);
    goto done;
  }
  const uint64_t buffer_bytes = file_bytes - 8 - header_bytes;
  const unsigned char *buffer = bytes + 8 + header_bytes;
  const char *key;
  json_t *value;
  json_object_foreach(root, key, value) {
    if (strcmp(key, "__metadata__") == 0) {
      st = parse_metadata(path, value, &f->metadata_json);
      if (st) goto done;
      continue;
    }
    ag_st_entry *e = &f->entries[f->count];
    uint64_t begin = 0, end = 0;
    st = parse_entry(path, key, value, buffer_bytes, e, &begin, &end);
    if (st) goto done;
    e->name = copy_string(key);
    if (!e->name) {
      st = file_error(AG_ERR_NOMEM, path, "out of memory");
      goto done;
    }
    e->data = buffer + begin;
    ranges[f->count] = (data_range){begin, end, e->name};
    f->count++;
  }
  st = check_overlaps(path, ranges, f->count);
  if (st) goto done;
  /* Name order, like the writer, so that find is a binary search. */
  qsort(f->entries, (size_t)f->count, sizeof *f->entries, compare_entry_names);
done:
  free(ranges);
  json_decref(root);
  return st;
}

ag_status ag_safetensors_open(const char *path, ag_safetensors **out) {
  *out = NULL;
  if (!path) return ag_error_set(AG_ERR_INVALID, "safetensors: NULL path");
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
  const uint64_t size = (uint64_t)sb.st_size;
  if (size < 8) {
    close(fd);
    return file_error(AG_ERR_FORMAT, path,
                      "file is %llu bytes, shorter than the 8-byte header length; truncated?",
                      (unsigned long long)size);
  }
  if (size > SIZE_MAX) {
    close(fd);
    return file_error(AG_ERR_UNSUPPORTED, path, "file too large to map");
  }
  void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  close(fd); /* the mapping stays valid */
  if (map == MAP_FAILED) return file_error(AG_ERR_IO, path, "cannot mmap: %s", strerror(map_errno));
  ag_safetensors *f = calloc(1, sizeof *f);
  if (!f) {
    munmap(map, (size_t)size);
    return file_error(AG_ERR_NOMEM, path, "out of memory");
  }
  f->map = map;
  f->map_bytes = (size_t)size;
  f->path = copy_string(path);
  ag_status st = f->path ? parse_header(f, path) : file_error(AG_ERR_NOMEM, path, "out of memory");
  if (st) {
    ag_safetensors_close(f);
    return st;
  }
  *out = f;
  return AG_OK;
}

void ag_safetensors_close(ag_safetensors *f) {
  if (!f) return;
  for (int i = 0; i < f->count; i++) free(f->entries[i].name);
  free(f->entries);
  free(f->metadata_json);
  free(f->path);
  if (f->map) munmap(f->map, f->map_bytes);
  free(f);
}

const ag_st_entry *ag_safetensors_find(const ag_safetensors *f, const char *name) {
  if (!f || !name || f->count == 0) return NULL;
  ag_st_entry key;
  memset(&key, 0, sizeof key);
  key.name = (char *)name;
  return bsearch(&key, f->entries, (size_t)f->count, sizeof key, compare_entry_names);
}

ag_status ag_safetensors_read_f32(const ag_st_entry *e, float *dst) {
  if (!e || (!dst && e->numel)) return ag_error_set(AG_ERR_INVALID, "safetensors: NULL argument");
  const unsigned char *src = e->data;
  const int64_t n = e->numel;
  switch (e->dtype) {
  case AG_DTYPE_F32:
    if (host_is_little_endian()) {
      if (n) memcpy(dst, src, (size_t)n * sizeof(float)); /* the mapping may be unaligned */
    } else {
      for (int64_t i = 0; i < n; i++) {
        const unsigned char *b = src + 4 * i;
        uint32_t bits =
            (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        memcpy(&dst[i], &bits, sizeof bits);
      }
    }
    return AG_OK;
  case AG_DTYPE_F16:
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
    for (int64_t i = 0; i < n; i++)
      dst[i] = ag_f16_to_f32((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
    return AG_OK;
  case AG_DTYPE_BF16:
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
    for (int64_t i = 0; i < n; i++)
      dst[i] = ag_bf16_to_f32((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
    return AG_OK;
  }
  return ag_error_set(AG_ERR_INVALID, "safetensors: tensor '%s' has unknown dtype %d", e->name,
                      (int)e->dtype);
}

ag_status ag_safetensors_load_params(const ag_safetensors *f, ag_params *params,
                                     bool allow_missing) {
  if (!f || !params) return ag_error_set(AG_ERR_INVALID, "safetensors: NULL argument");
  const char *path = f->path ? f->path : "(file)";
  if (!params->finalized)
    return file_error(AG_ERR_INVALID, path, "the parameter store is not finalized");
  /* Check every name and shape before writing anything, so a failed load
   * leaves the parameters as they were. */
  for (int i = 0; i < params->count; i++) {
    const ag_tensor *t = params->tensors[i];
    const ag_st_entry *e = ag_safetensors_find(f, t->name);
    if (!e) {
      if (allow_missing) continue;
      return file_error(AG_ERR_NOT_FOUND, path, "parameter '%s' is not in the file", t->name);
    }
    bool same = e->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = e->shape[d] == t->shape[d];
    if (!same) {
      char want[160], have[160];
      shape_text(t->shape, t->ndim, want, sizeof want);
      shape_text(e->shape, e->ndim, have, sizeof have);
      return file_error(AG_ERR_SHAPE, path, "parameter '%s' has shape %s but the file has %s",
                        t->name, want, have);
    }
  }
  for (int i = 0; i < params->count; i++) {
    ag_tensor *t = params->tensors[i];
    const ag_st_entry *e = ag_safetensors_find(f, t->name);
    if (!e) continue;
    ag_status st = ag_safetensors_read_f32(e, t->data); /* parameters are contiguous */
    if (st) return st;
  }
  return AG_OK;
}

/* ---- writing ------------------------------------------------------------------ */

static int compare_item_names(const void *a, const void *b) {
  const ag_st_write_item *x = *(const ag_st_write_item *const *)a;
  const ag_st_write_item *y = *(const ag_st_write_item *const *)b;
  return strcmp(x->name, y->name);
}

/* The header JSON (unpadded), tensors in `order`. */
static ag_status build_header(const char *path, const ag_st_write_item *const *order, int count,
                              const dtype_info *info, const char *const *metadata, char **out) {
  *out = NULL;
  json_t *root = json_object();
  if (!root) return file_error(AG_ERR_NOMEM, path, "out of memory");
  ag_status st = AG_OK;
  if (metadata) {
    json_t *meta = json_object();
    if (!meta || json_object_set_new(root, "__metadata__", meta) != 0) {
      st = file_error(AG_ERR_NOMEM, path, "out of memory");
      goto done;
    }
    for (const char *const *kv = metadata; kv[0]; kv += 2) {
      if (!kv[1]) {
        st = file_error(AG_ERR_INVALID, path, "metadata key '%s' has no value", kv[0]);
        goto done;
      }
      json_t *v = json_string(kv[1]);
      if (!v || json_object_set_new(meta, kv[0], v) != 0) {
        st = file_error(AG_ERR_INVALID, path, "metadata '%s' is not valid UTF-8", kv[0]);
        goto done;
      }
    }
  }
  uint64_t offset = 0;
  for (int i = 0; i < count; i++) {
    const ag_tensor *t = order[i]->tensor;
    json_t *shape = json_array();
    for (int d = 0; shape && d < t->ndim; d++)
      json_array_append_new(shape, json_integer((json_int_t)t->shape[d]));
    const uint64_t bytes = (uint64_t)t->numel * (uint64_t)info->bytes;
    json_t *entry = json_pack("{s:s, s:o, s:[I, I]}", "dtype", info->name, "shape", shape,
                              "data_offsets", (json_int_t)offset, (json_int_t)(offset + bytes));
    if (!entry || json_object_set_new(root, order[i]->name, entry) != 0) {
      st = file_error(AG_ERR_NOMEM, path, "cannot add tensor '%s' to the header", order[i]->name);
      goto done;
    }
    offset += bytes;
  }
  *out = json_dumps(root, JSON_COMPACT);
  if (!*out) st = file_error(AG_ERR_NOMEM, path, "out of memory");
done:
  json_decref(root);
  return st;
}

/* Writes numel floats from src converted to the file's dtype. */
static bool write_values(FILE *out, const float *src, int64_t numel, ag_dtype dtype) {
  if (numel == 0) return true;
  if (dtype == AG_DTYPE_F32 && host_is_little_endian())
    return fwrite(src, sizeof(float), (size_t)numel, out) == (size_t)numel;
  unsigned char chunk[WRITE_CHUNK_ELEMENTS * 4];
  for (int64_t start = 0; start < numel; start += WRITE_CHUNK_ELEMENTS) {
    const int64_t n = numel - start < WRITE_CHUNK_ELEMENTS ? numel - start : WRITE_CHUNK_ELEMENTS;
    size_t used = 0;
    for (int64_t i = 0; i < n; i++) {
      const float v = src[start + i];
      if (dtype == AG_DTYPE_F32) {
        uint32_t bits;
        memcpy(&bits, &v, sizeof bits);
        for (int k = 0; k < 4; k++) chunk[used++] = (unsigned char)(bits >> (8 * k));
      } else {
        const uint16_t h = dtype == AG_DTYPE_BF16 ? ag_f32_to_bf16(v) : ag_f32_to_f16(v);
        chunk[used++] = (unsigned char)(h & 0xff);
        chunk[used++] = (unsigned char)(h >> 8);
      }
    }
    if (fwrite(chunk, 1, used, out) != used) return false;
  }
  return true;
}

static ag_status check_items(const char *path, const ag_st_write_item *items, int count) {
  for (int i = 0; i < count; i++) {
    const char *name = items[i].name;
    if (!name) return file_error(AG_ERR_INVALID, path, "tensor %d has no name", i);
    if (!utf8_valid((const unsigned char *)name, strlen(name), NULL))
      return file_error(AG_ERR_INVALID, path, "tensor name '%s' is not valid UTF-8", name);
    if (strcmp(name, "__metadata__") == 0)
      return file_error(AG_ERR_INVALID, path, "\"__metadata__\" is reserved, not a tensor name");
    const ag_tensor *t = items[i].tensor;
    if (!t) return file_error(AG_ERR_INVALID, path, "tensor '%s' is NULL", name);
    if (t->numel > 0 && !t->data)
      return file_error(AG_ERR_INVALID, path, "tensor '%s' has no data", name);
  }
  return AG_OK;
}

ag_status ag_safetensors_write(const char *path, const ag_st_write_item *items, int count,
                               ag_dtype dtype, const char *const *metadata) {
  if (!path) return ag_error_set(AG_ERR_INVALID, "safetensors: NULL path");
  if (count < 0 || (count > 0 && !items))
    return file_error(AG_ERR_INVALID, path, "bad tensor list (count %d)", count);
  const dtype_info *info = dtype_by_id(dtype);
  if (!info) return file_error(AG_ERR_INVALID, path, "cannot write dtype %d", (int)dtype);
  ag_status st = check_items(path, items, count);
  if (st) return st;

  const ag_st_write_item **order = malloc((size_t)(count ? count : 1) * sizeof *order);
  if (!order) return file_error(AG_ERR_NOMEM, path, "out of memory");
  for (int i = 0; i < count; i++) order[i] = &items[i];
  qsort(order, (size_t)count, sizeof *order, compare_item_names);
  for (int i = 1; i < count; i++)
    if (strcmp(order[i]->name, order[i - 1]->name) == 0) {
      st = file_error(AG_ERR_INVALID, path, "tensor name '%s' appears twice", order[i]->name);
      free(order);
      return st;
    }

  char *header = NULL;
  float *scratch = NULL;
  ag_atomic_file *out = NULL; /* a temporary beside path, renamed over it on commit */
  st = build_header(path, order, count, info, metadata, &header);
  if (st) goto done;
  st = ag_atomic_open(path, &out);
  if (st) {
    ag_error_wrap(st, "safetensors");
    goto done;
  }
  FILE *stream = ag_atomic_stream(out);
  const size_t header_len = strlen(header);
  const size_t padded = (header_len + HEADER_ALIGN - 1) / HEADER_ALIGN * HEADER_ALIGN;
  unsigned char length_bytes[8];
  for (int k = 0; k < 8; k++) length_bytes[k] = (unsigned char)((uint64_t)padded >> (8 * k));
  bool ok = fwrite(length_bytes, 1, 8, stream) == 8 &&
            fwrite(header, 1, header_len, stream) == header_len;
  for (size_t i = header_len; ok && i < padded; i++) ok = fputc(' ', stream) != EOF;
  for (int i = 0; ok && i < count; i++) {
    const ag_tensor *t = order[i]->tensor;
    const float *values = t->data;
    if (t->numel > 0 && !ag_tensor_is_contiguous(t)) {
      free(scratch);
      scratch = malloc((size_t)t->numel * sizeof(float));
      if (!scratch) {
        st = file_error(AG_ERR_NOMEM, path, "out of memory copying '%s'", order[i]->name);
        goto done;
      }
      ag_tensor_copy_to(t, scratch);
      values = scratch;
    }
    ok = write_values(stream, values, t->numel, dtype);
  }
  if (!ok) {
    st = file_error(AG_ERR_IO, path, "write failed: %s", strerror(errno));
    goto done;
  }
  st = ag_atomic_commit(out); /* frees out, on failure too */
  out = NULL;
  if (st) ag_error_wrap(st, "safetensors");
done:
  if (out) ag_atomic_abort(out);
  free(scratch);
  free(header);
  free(order);
  return st;
}

ag_status ag_safetensors_save_params(const char *path, const ag_params *params, ag_dtype dtype,
                                     const char *const *metadata) {
  if (!params) return ag_error_set(AG_ERR_INVALID, "safetensors: NULL parameter store");
  if (!params->finalized)
    return file_error(AG_ERR_INVALID, path ? path : "(null)",
                      "the parameter store is not finalized");
  ag_st_write_item *items = malloc((size_t)(params->count ? params->count : 1) * sizeof *items);
  if (!items) return ag_error_set(AG_ERR_NOMEM, "safetensors: out of memory");
  for (int i = 0; i < params->count; i++)
    items[i] = (ag_st_write_item){params->tensors[i]->name, params->tensors[i]};
  ag_status st = ag_safetensors_write(path, items, params->count, dtype, metadata);
  free(items);
  return st;
}
