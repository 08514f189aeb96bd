/* safetensors: half-precision conversions, round trips (F32, BF16, metadata,
 * parameter stores), every kind of malformed file the test writes itself, and
 * python3 + numpy as an independent reader and writer. */
#include "agora/safetensors.h"
#include "test.h"

#include <dirent.h>
#include <float.h>
#include <jansson.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------ */

static const char *tmp_file(const char *name) {
  static char path[8][640];
  static int next = 0;
  char *p = path[next++ % 8];
  snprintf(p, sizeof path[0], "%s/%s", test_tmpdir(), name);
  return p;
}

static void write_bytes(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) {
    perror(path);
    exit(2);
  }
  if (n) fwrite(data, 1, n, f);
  fclose(f);
}

static unsigned char *read_bytes(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *data = malloc((size_t)size + 1);
  *n = fread(data, 1, (size_t)size, f);
  fclose(f);
  return data;
}

/* A file with the given header text (length field set to match) and
 * `data_bytes` zero bytes of data. */
static void write_with_header(const char *path, const char *header, size_t data_bytes) {
  size_t n = strlen(header);
  unsigned char *buf = calloc(8 + n + data_bytes, 1);
  for (int k = 0; k < 8; k++) buf[k] = (unsigned char)((uint64_t)n >> (8 * k));
  memcpy(buf + 8, header, n);
  write_bytes(path, buf, 8 + n + data_bytes);
  free(buf);
}

/* Opening must fail, return NULL, and say `needle` and the file's path. */
static void expect_open_error_at(int line, const char *path, ag_status want, const char *needle) {
  ag_safetensors *f = (ag_safetensors *)&f; /* must be reset to NULL */
  ag_error_clear();
  ag_status st = ag_safetensors_open(path, &f);
  const char *msg = ag_error_message();
  if (getenv("AG_TEST_VERBOSE")) fprintf(stderr, "  line %d: %s\n", line, msg);
  if (st == AG_OK || f != NULL || (want != AG_OK && st != want) || !strstr(msg, needle) ||
      !strstr(msg, path)) {
    fprintf(stderr, "line %d: expected error (%s) containing \"%s\", got status %d: %s\n", line,
            ag_status_name(want), needle, (int)st, msg);
    test_failures_++;
  }
  if (st == AG_OK) ag_safetensors_close(f);
}
#define expect_open_error(path, want, needle) expect_open_error_at(__LINE__, path, want, needle)

static ag_tensor *filled_tensor(int ndim, const int64_t *shape, ag_rng *rng) {
  ag_tensor *t = NULL;
  if (ag_tensor_create(ndim, shape, &t) != AG_OK) return NULL;
  for (int64_t i = 0; i < t->numel; i++) t->data[i] = 4.0f * ag_rng_normal(rng);
  return t;
}

static bool no_temp_files_left(void) {
  DIR *d = opendir(test_tmpdir());
  bool clean = true;
  for (struct dirent *e; d && (e = readdir(d));)
    if (strstr(e->d_name, ".tmp.")) clean = false;
  if (d) closedir(d);
  return clean;
}

static void remove_tmpdir(void) {
  DIR *d = opendir(test_tmpdir());
  for (struct dirent *e; d && (e = readdir(d));) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    unlink(tmp_file(e->d_name));
  }
  if (d) closedir(d);
  rmdir(test_tmpdir());
}

static uint16_t bits16(const void *p, int64_t i) {
  const unsigned char *b = p;
  return (uint16_t)(b[2 * i] | b[2 * i + 1] << 8);
}

static float from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* ---- conversions ------------------------------------------------------------ */

TEST(f16_decodes_known_values) {
  CHECK(ag_f16_to_f32(0x3c00) == 1.0f);
  CHECK(ag_f16_to_f32(0xc000) == -2.0f);
  CHECK(ag_f16_to_f32(0x7bff) == 65504.0f);
  CHECK(ag_f16_to_f32(0x0400) == ldexpf(1, -14));    /* smallest normal */
  CHECK(ag_f16_to_f32(0x0001) == ldexpf(1, -24));    /* smallest subnormal */
  CHECK(ag_f16_to_f32(0x03ff) == ldexpf(1023, -24)); /* largest subnormal */
  CHECK(ag_f16_to_f32(0x3555) == 0.333251953125f);   /* 2^-2 * (1 + 0x155 / 1024), ~1/3 */
  CHECK(isinf(ag_f16_to_f32(0x7c00)) && ag_f16_to_f32(0x7c00) > 0);
  CHECK(isinf(ag_f16_to_f32(0xfc00)) && ag_f16_to_f32(0xfc00) < 0);
  CHECK(isnan(ag_f16_to_f32(0x7e00)) && isnan(ag_f16_to_f32(0x7c01)));
  CHECK(ag_f16_to_f32(0x8000) == 0.0f && signbit(ag_f16_to_f32(0x8000)));
}

TEST(f16_round_trips_every_value) {
  int bad = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    float f = ag_f16_to_f32((uint16_t)h);
    uint16_t back = ag_f32_to_f16(f);
    bool is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
    if (is_nan ? !isnan(ag_f16_to_f32(back)) : back != h) bad++;
  }
  CHECK_MSG(bad == 0, "%d half values do not round-trip", bad);
}

TEST(f32_to_f16_rounds_to_nearest_even) {
  CHECK(ag_f32_to_f16(1.0f + ldexpf(1, -11)) == 0x3c00);                  /* tie -> even (1) */
  CHECK(ag_f32_to_f16(1.0f + 3 * ldexpf(1, -11)) == 0x3c02);              /* tie -> even (up) */
  CHECK(ag_f32_to_f16(1.0f + ldexpf(1, -11) + ldexpf(1, -20)) == 0x3c01); /* above tie */
  CHECK(ag_f32_to_f16(ldexpf(1, -25)) == 0x0000);                         /* subnormal tie -> 0 */
  CHECK(ag_f32_to_f16(3 * ldexpf(1, -25)) == 0x0002); /* subnormal tie -> even */
  CHECK(ag_f32_to_f16(ldexpf(1, -26)) == 0x0000);
  CHECK(ag_f32_to_f16(ldexpf(1023.5f, -24)) == 0x0400); /* rounds up into the normals */
  CHECK(ag_f32_to_f16(65504.0f) == 0x7bff);
  CHECK(ag_f32_to_f16(65519.0f) == 0x7bff);
  CHECK(ag_f32_to_f16(65520.0f) == 0x7c00); /* tie with 2^16 -> Inf */
  CHECK(ag_f32_to_f16(-1e9f) == 0xfc00);
  CHECK(ag_f32_to_f16(INFINITY) == 0x7c00 && ag_f32_to_f16(-INFINITY) == 0xfc00);
  CHECK(isnan(ag_f16_to_f32(ag_f32_to_f16(NAN))));
  CHECK(ag_f32_to_f16(-0.0f) == 0x8000);
  CHECK(ag_f32_to_f16(ldexpf(1, -140)) == 0); /* float subnormal */

  /* Property over many floats: no other half is closer, ties go to even. */
  ag_rng rng;
  ag_rng_seed(&rng, 11);
  int bad = 0;
  for (int i = 0; i < 200000; i++) {
    uint32_t u = ag_rng_u32(&rng);
    /* Concentrate on the half range: exponents 2^-26 .. 2^16. */
    u = (u & 0x807fffffu) | ((uint32_t)(101 + ag_rng_below(&rng, 43)) << 23);
    float x = from_bits(u);
    uint16_t h = ag_f32_to_f16(x);
    double ax = fabs((double)x);
    uint16_t mag = h & 0x7fff;
    if ((h & 0x8000) != (signbit(x) ? 0x8000 : 0)) {
      bad++;
      continue;
    }
    if (ax >= 65520.0) {
      if (mag != 0x7c00) bad++;
      continue;
    }
    double err = fabs(ag_f16_to_f32(mag) - ax);
    double below = mag > 0 ? fabs(ag_f16_to_f32(mag - 1) - ax) : INFINITY;
    double above = mag < 0x7bff ? fabs(ag_f16_to_f32(mag + 1) - ax) : INFINITY;
    if (err > below || err > above) bad++;
    if ((err == below || err == above) && (mag & 1)) bad++;
  }
  CHECK_MSG(bad == 0, "%d floats rounded wrongly to half", bad);
}

TEST(bf16_rounds_to_nearest_even) {
  CHECK(ag_f32_to_bf16(1.0f) == 0x3f80);
  CHECK(ag_bf16_to_f32(0x3f80) == 1.0f);
  CHECK(ag_bf16_to_f32(0xc040) == -3.0f);
  CHECK(ag_f32_to_bf16(1.0f + ldexpf(1, -8)) == 0x3f80);     /* tie -> even */
  CHECK(ag_f32_to_bf16(1.0f + 3 * ldexpf(1, -8)) == 0x3f82); /* tie -> even (up) */
  CHECK(ag_f32_to_bf16(1.0f + ldexpf(1, -8) + ldexpf(1, -20)) == 0x3f81);
  CHECK(ag_f32_to_bf16(INFINITY) == 0x7f80 && ag_f32_to_bf16(-INFINITY) == 0xff80);
  CHECK(ag_f32_to_bf16(FLT_MAX) == 0x7f80); /* rounds past the largest bf16 */
  CHECK(isnan(ag_bf16_to_f32(ag_f32_to_bf16(NAN))));
  /* A NaN whose payload sits only in the dropped bits must stay NaN. */
  CHECK(isnan(ag_bf16_to_f32(ag_f32_to_bf16(from_bits(0x7f800001u)))));
  int bad = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    float f = ag_bf16_to_f32((uint16_t)h);
    if (isnan(f) ? !isnan(ag_bf16_to_f32(ag_f32_to_bf16(f))) : ag_f32_to_bf16(f) != h) bad++;
  }
  CHECK_MSG(bad == 0, "%d bf16 values do not round-trip", bad);
  ag_rng rng;
  ag_rng_seed(&rng, 12);
  bad = 0;
  for (int i = 0; i < 200000; i++) {
    float x = from_bits(ag_rng_u32(&rng) & 0xfeffffffu); /* finite (exponent < 255) */
    uint16_t h = ag_f32_to_bf16(x);
    double err = fabs((double)ag_bf16_to_f32(h) - x);
    double below = fabs((double)ag_bf16_to_f32(h - 1) - x);
    double above = fabs((double)ag_bf16_to_f32(h + 1) - x);
    if (err > below || err > above || ((err == below || err == above) && (h & 1))) bad++;
  }
  CHECK_MSG(bad == 0, "%d floats rounded wrongly to bf16", bad);
}

/* ---- round trips ---------------------------------------------------------------- */

/* Tensors of several kinds: matrix, vector, scalar, empty, and a transposed
 * (non-contiguous) view. */
typedef struct fixture {
  ag_tensor *t[5];
  ag_tensor view; /* (3, 2) view of t[0]'s (2, 3) data */
  ag_st_write_item items[5];
} fixture;

static void fixture_make(fixture *fx, uint64_t seed) {
  ag_rng rng;
  ag_rng_seed(&rng, seed);
  int64_t s0[] = {2, 3}, s1[] = {5}, s3[] = {0, 3}, s4[] = {2, 2, 2};
  fx->t[0] = filled_tensor(2, s0, &rng);
  fx->t[1] = filled_tensor(1, s1, &rng);
  fx->t[2] = filled_tensor(0, NULL, &rng);
  fx->t[3] = filled_tensor(2, s3, &rng);
  fx->t[4] = filled_tensor(3, s4, &rng);
  fx->view = *fx->t[0];
  fx->view.shape[0] = 3, fx->view.shape[1] = 2;
  fx->view.stride[0] = 1, fx->view.stride[1] = 3;
  fx->view.storage = AG_STORAGE_WRAPPED;
  /* Names out of order, to check the writer sorts them. */
  fx->items[0] = (ag_st_write_item){"zeta.weight", fx->t[0]};
  fx->items[1] = (ag_st_write_item){"alpha.bias", fx->t[1]};
  fx->items[2] = (ag_st_write_item){"scalar", fx->t[2]};
  fx->items[3] = (ag_st_write_item){"empty", fx->t[3]};
  fx->items[4] = (ag_st_write_item){"m.transposed", &fx->view};
}

static void fixture_free(fixture *fx) {
  for (int i = 0; i < 5; i++) ag_tensor_destroy(fx->t[i]);
}

/* Reads back every item and compares with `convert` applied to the source. */
static void check_file_matches(const char *path, const fixture *fx, ag_dtype dtype) {
  ag_safetensors *f = NULL;
  CHECK_OK(ag_safetensors_open(path, &f));
  if (!f) return;
  CHECK(f->count == 5);
  for (int i = 1; i < f->count; i++) CHECK(strcmp(f->entries[i - 1].name, f->entries[i].name) < 0);
  for (int i = 0; i < 5; i++) {
    const ag_tensor *t = fx->items[i].tensor;
    const ag_st_entry *e = ag_safetensors_find(f, fx->items[i].name);
    CHECK_MSG(e != NULL, "%s missing", fx->items[i].name);
    if (!e) continue;
    CHECK(e->dtype == dtype && e->ndim == t->ndim && e->numel == t->numel);
    for (int d = 0; d < t->ndim; d++) CHECK(e->shape[d] == t->shape[d]);
    float *got = malloc((size_t)(e->numel + 1) * sizeof(float));
    CHECK_OK(ag_safetensors_read_f32(e, got));
    for (int64_t k = 0; k < t->numel; k++) {
      float want = ag_tensor_get(t, k);
      if (dtype == AG_DTYPE_BF16) {
        CHECK(fabsf(got[k] - want) <= ldexpf(fabsf(want), -8)); /* within half a bf16 ulp */
        want = ag_bf16_to_f32(ag_f32_to_bf16(want));
      }
      CHECK(got[k] == want);
    }
    free(got);
  }
  CHECK(ag_safetensors_find(f, "absent") == NULL);
  ag_safetensors_close(f);
}

TEST(f32_round_trip_is_exact) {
  fixture fx;
  fixture_make(&fx, 1);
  const char *path = tmp_file("round.safetensors");
  CHECK_OK(ag_safetensors_write(path, fx.items, 5, AG_DTYPE_F32, NULL));
  check_file_matches(path, &fx, AG_DTYPE_F32);
  CHECK(no_temp_files_left());

  /* Layout: padded header, offsets packed in name order, as the reference
   * writer does. */
  size_t n = 0;
  unsigned char *raw = read_bytes(path, &n);
  uint64_t header_len = 0;
  for (int k = 7; k >= 0; k--) header_len = header_len << 8 | raw[k];
  CHECK(header_len % 8 == 0 && 8 + header_len <= n);
  CHECK(raw[8] == '{');
  json_t *root = json_loadb((const char *)raw + 8, header_len, 0, NULL);
  CHECK(root != NULL && json_object_get(root, "__metadata__") == NULL);
  const char *sorted[] = {"alpha.bias", "empty", "m.transposed", "scalar", "zeta.weight"};
  json_int_t offset = 0;
  for (int i = 0; root && i < 5; i++) {
    json_t *offs = json_object_get(json_object_get(root, sorted[i]), "data_offsets");
    CHECK(json_integer_value(json_array_get(offs, 0)) == offset);
    offset = json_integer_value(json_array_get(offs, 1));
  }
  CHECK((size_t)(8 + header_len + (uint64_t)offset) == n);
  json_decref(root);
  free(raw);
  fixture_free(&fx);
}

TEST(bf16_round_trip_within_rounding) {
  fixture fx;
  fixture_make(&fx, 2);
  const char *path = tmp_file("round_bf16.safetensors");
  CHECK_OK(ag_safetensors_write(path, fx.items, 5, AG_DTYPE_BF16, NULL));
  check_file_matches(path, &fx, AG_DTYPE_BF16);
  fixture_free(&fx);
}

TEST(metadata_round_trips) {
  fixture fx;
  fixture_make(&fx, 3);
  const char *path = tmp_file("meta.safetensors");
  const char *meta[] = {"format", "pt", "note", "h\xc3\xa9llo \"quoted\"", NULL};
  CHECK_OK(ag_safetensors_write(path, fx.items, 2, AG_DTYPE_F32, meta));
  ag_safetensors *f = NULL;
  CHECK_OK(ag_safetensors_open(path, &f));
  CHECK(f && f->count == 2 && f->metadata_json);
  json_t *m = f && f->metadata_json ? json_loads(f->metadata_json, 0, NULL) : NULL;
  CHECK(json_object_size(m) == 2);
  CHECK(strcmp(json_string_value(json_object_get(m, "format")), "pt") == 0);
  CHECK(strcmp(json_string_value(json_object_get(m, "note")), "h\xc3\xa9llo \"quoted\"") == 0);
  json_decref(m);
  ag_safetensors_close(f);

  /* Overwriting in place (atomic rename over the old file), no metadata. */
  CHECK_OK(ag_safetensors_write(path, fx.items, 5, AG_DTYPE_F32, NULL));
  CHECK_OK(ag_safetensors_open(path, &f));
  CHECK(f && f->count == 5 && f->metadata_json == NULL);
  ag_safetensors_close(f);
  fixture_free(&fx);
}

TEST(writer_rejects_bad_input) {
  fixture fx;
  fixture_make(&fx, 4);
  const char *path = tmp_file("bad_write.safetensors");
  ag_st_write_item dup[2] = {fx.items[0], fx.items[1]};
  dup[1].name = dup[0].name;
  CHECK(ag_safetensors_write(path, dup, 2, AG_DTYPE_F32, NULL) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "twice"));
  dup[1].name = "__metadata__";
  CHECK(ag_safetensors_write(path, dup, 2, AG_DTYPE_F32, NULL) == AG_ERR_INVALID);
  dup[1].name = "bad\xff";
  CHECK(ag_safetensors_write(path, dup, 2, AG_DTYPE_F32, NULL) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "UTF-8"));
  const char *odd_meta[] = {"key", NULL};
  CHECK(ag_safetensors_write(path, fx.items, 1, AG_DTYPE_F32, odd_meta) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "no value"));
  const char *nowhere = tmp_file("no/such/folder/x.safetensors");
  CHECK(ag_safetensors_write(nowhere, fx.items, 1, AG_DTYPE_F32, NULL) != AG_OK);
  CHECK(strstr(ag_error_message(), "safetensors") && strstr(ag_error_message(), nowhere));
  CHECK(access(path, F_OK) != 0); /* nothing was written */
  CHECK(no_temp_files_left());
  fixture_free(&fx);
}

static ag_params *store_with(const char *wname, int64_t rows) {
  ag_params *p = ag_params_create();
  int64_t sw[] = {rows, 3}, sb[] = {3};
  ag_params_add(p, wname, 2, sw);
  ag_params_add(p, "layer.bias", 1, sb);
  ag_params_finalize(p);
  return p;
}

TEST(params_save_and_load_by_name) {
  ag_params *src = store_with("layer.weight", 4);
  for (int64_t i = 0; i < src->total; i++) src->data[i] = 0.25f * (float)i - 1.0f;
  const char *path = tmp_file("params.safetensors");
  const char *meta[] = {"format", "pt", NULL};
  CHECK_OK(ag_safetensors_save_params(path, src, AG_DTYPE_F32, meta));

  ag_safetensors *f = NULL;
  CHECK_OK(ag_safetensors_open(path, &f));
  ag_params *dst = store_with("layer.weight", 4);
  CHECK_OK(ag_safetensors_load_params(f, dst, false));
  CHECK(memcmp(dst->data, src->data, (size_t)src->total * sizeof(float)) == 0);

  /* A shape mismatch names the parameter and both shapes; nothing changes. */
  ag_params *wrong = store_with("layer.weight", 5);
  wrong->data[0] = 42.0f;
  CHECK(ag_safetensors_load_params(f, wrong, false) == AG_ERR_SHAPE);
  CHECK(strstr(ag_error_message(), "layer.weight") && strstr(ag_error_message(), "[5, 3]") &&
        strstr(ag_error_message(), "[4, 3]"));
  CHECK(wrong->data[0] == 42.0f);

  /* A name the file lacks: an error, unless allow_missing. */
  ag_params *other = store_with("other.weight", 4);
  other->data[0] = 7.0f;
  CHECK(ag_safetensors_load_params(f, other, false) == AG_ERR_NOT_FOUND);
  CHECK(strstr(ag_error_message(), "other.weight"));
  CHECK_OK(ag_safetensors_load_params(f, other, true));
  CHECK(other->data[0] == 7.0f);                                 /* missing: untouched */
  CHECK(other->tensors[1]->data[2] == src->tensors[1]->data[2]); /* the bias loaded */
  ag_safetensors_close(f);

  /* BF16 save loads within rounding. */
  CHECK_OK(ag_safetensors_save_params(path, src, AG_DTYPE_BF16, NULL));
  CHECK_OK(ag_safetensors_open(path, &f));
  CHECK_OK(ag_safetensors_load_params(f, dst, false));
  for (int64_t i = 0; i < src->total; i++)
    CHECK(dst->data[i] == ag_bf16_to_f32(ag_f32_to_bf16(src->data[i])));
  ag_safetensors_close(f);
  ag_params_destroy(src);
  ag_params_destroy(dst);
  ag_params_destroy(wrong);
  ag_params_destroy(other);
}

/* ---- malformed files ------------------------------------------------------------ */

TEST(missing_file_is_not_found) {
  expect_open_error(tmp_file("does_not_exist.safetensors"), AG_ERR_NOT_FOUND, "cannot open");
}

TEST(truncated_files_are_errors) {
  fixture fx;
  fixture_make(&fx, 5);
  const char *good = tmp_file("whole.safetensors");
  CHECK_OK(ag_safetensors_write(good, fx.items, 5, AG_DTYPE_F32, NULL));
  size_t n = 0;
  unsigned char *raw = read_bytes(good, &n);
  uint64_t header_len = 0;
  for (int k = 7; k >= 0; k--) header_len = header_len << 8 | raw[k];
  const size_t cuts[] = {0,
                         1,
                         7,
                         8,
                         9,
                         8 + header_len / 2,
                         8 + header_len - 1,
                         8 + header_len,
                         8 + header_len + 1,
                         n - 4,
                         n - 1};
  const char *path = tmp_file("truncated.safetensors");
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    write_bytes(path, raw, cuts[i]);
    const char *needle = cuts[i] < 8                ? "shorter than the 8-byte header"
                         : cuts[i] < 8 + header_len ? "runs past the end of the file"
                                                    : "run past the end of the data";
    expect_open_error(path, AG_ERR_FORMAT, needle);
  }
  free(raw);
  fixture_free(&fx);
}

TEST(absurd_header_lengths_are_errors) {
  const char *path = tmp_file("huge.safetensors");
  unsigned char buf[24] = {0};
  buf[5] = 1; /* 2^40 */
  write_bytes(path, buf, sizeof buf);
  expect_open_error(path, AG_ERR_FORMAT, "absurd");
  memset(buf, 0xff, 8); /* 2^64 - 1 */
  write_bytes(path, buf, sizeof buf);
  expect_open_error(path, AG_ERR_FORMAT, "absurd");
  memset(buf, 0, 8);
  buf[1] = 4; /* 1024, in a 24-byte file */
  write_bytes(path, buf, sizeof buf);
  expect_open_error(path, AG_ERR_FORMAT, "runs past the end of the file");
}

TEST(invalid_json_headers_are_errors) {
  const char *path = tmp_file("json.safetensors");
  write_with_header(path, "{\"a\": {\"dtype\": ", 0);
  expect_open_error(path, AG_ERR_FORMAT, "not valid JSON");
  write_with_header(path, "", 0);
  expect_open_error(path, AG_ERR_FORMAT, "not valid JSON");
  write_with_header(path, "[1, 2]", 0);
  expect_open_error(path, AG_ERR_FORMAT, "not a JSON object");
  write_with_header(path, "{} trailing", 0);
  expect_open_error(path, AG_ERR_FORMAT, "not valid JSON");
  write_with_header(path,
                    "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                    8);
  expect_open_error(path, AG_ERR_FORMAT, "duplicate");
  write_with_header(path,
                    "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
  expect_open_error(path, AG_ERR_FORMAT, "not valid JSON");
}

TEST(bad_entries_are_errors) {
  const char *path = tmp_file("entries.safetensors");
  struct {
    const char *header;
    size_t data;
    ag_status status;
    const char *needle;
  } cases[] = {
      {"{\"t\": 3}", 0, AG_ERR_FORMAT, "'t': entry is not a JSON object"},
      {"{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, AG_ERR_FORMAT,
       "missing field \"dtype\""},
      {"{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, AG_ERR_FORMAT,
       "missing field \"shape\""},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, AG_ERR_FORMAT,
       "missing field \"data_offsets\""},
      {"{\"t\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, AG_ERR_FORMAT,
       "unknown dtype \"F33\""},
      {"{\"t\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, AG_ERR_FORMAT,
       "\"dtype\" is not a string"},
      {"{\"t\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, AG_ERR_UNSUPPORTED,
       "dtype I64 is not supported"},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]}}", 4, AG_ERR_FORMAT,
       "shape[1] = -1 is negative"},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, AG_ERR_FORMAT,
       "shape[0] is not an integer"},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4, AG_ERR_FORMAT,
       "\"shape\" is not an array"},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
       AG_ERR_UNSUPPORTED, "7 dims"},
      /* 2^62 elements, directly and as a product */
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}", 4,
       AG_ERR_FORMAT, "too many elements"},
      {"{\"t\":{\"dtype\":\"BF16\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,4]}}", 4,
       AG_ERR_FORMAT, "too many elements"},
      {"{\"t\":{\"dtype\":\"F16\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,4]}}", 4,
       AG_ERR_FORMAT, "too many elements"},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 16, AG_ERR_FORMAT,
       "needs 16 bytes but data_offsets [0, 12] hold 12"},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,400]}}", 16, AG_ERR_FORMAT,
       "run past the end of the data"},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[18446744073709551615,8]}}", 16,
       AG_ERR_FORMAT, "not valid JSON"}, /* beyond a 64-bit signed integer */
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 16, AG_ERR_FORMAT,
       "end before they begin"},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 16, AG_ERR_FORMAT,
       "non-negative"},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 16, AG_ERR_FORMAT,
       "two integers"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
       "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
       24, AG_ERR_FORMAT, "'a' [0, 16] and 'b' [8, 24] overlap"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
       "\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[12,16]}}",
       16, AG_ERR_FORMAT, "overlap"},
      {"{\"__metadata__\":{\"k\":1}}", 0, AG_ERR_FORMAT, "\"__metadata__\" value of 'k'"},
      {"{\"__metadata__\":[]}", 0, AG_ERR_FORMAT, "\"__metadata__\" is not a JSON object"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    write_with_header(path, cases[i].header, cases[i].data);
    expect_open_error(path, cases[i].status, cases[i].needle);
  }

  /* The same entries, valid, open fine: the cases above fail for their flaw. */
  write_with_header(path,
                    "{\"__metadata__\":{\"k\":\"v\"},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                    "\"b\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[16,24]},"
                    "\"e\":{\"dtype\":\"BF16\",\"shape\":[0],\"data_offsets\":[16,16]}}",
                    24);
  ag_safetensors *f = NULL;
  CHECK_OK(ag_safetensors_open(path, &f));
  CHECK(f && f->count == 3);
  ag_safetensors_close(f);
}

TEST(non_utf8_names_are_errors) {
  const char *path = tmp_file("utf8.safetensors");
  const char *headers[] = {
      "{\"bad\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
      "{\"over\xc0\xaflong\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
      "{\"surrogate\xed\xa0\x80\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
      "{\"cut\xe2\x82\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
  };
  for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
    write_with_header(path, headers[i], 4);
    expect_open_error(path, AG_ERR_FORMAT, "not valid UTF-8");
  }
  /* Escaped lone surrogates are rejected by the JSON parser. */
  write_with_header(path, "{\"x\\udc80\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                    4);
  expect_open_error(path, AG_ERR_FORMAT, "not valid JSON");
  /* Valid multi-byte names are fine. */
  write_with_header(path,
                    "{\"caf\xc3\xa9.\xe2\x82\xac\":{\"dtype\":\"F32\",\"shape\":[1],"
                    "\"data_offsets\":[0,4]}}",
                    4);
  ag_safetensors *f = NULL;
  CHECK_OK(ag_safetensors_open(path, &f));
  CHECK(f && ag_safetensors_find(f, "caf\xc3\xa9.\xe2\x82\xac"));
  ag_safetensors_close(f);
}

/* ---- python3 + numpy as an independent reader and writer --------------------------- */

static const char *PY_SCRIPT =
    "import json, struct, sys\n"
    "import numpy as np\n"
    "raw = open(sys.argv[1], 'rb').read()\n"
    "(n,) = struct.unpack('<Q', raw[:8])\n"
    "assert n % 8 == 0, 'header not padded to 8'\n"
    "header = json.loads(raw[8:8 + n].decode('utf-8'))\n"
    "meta = header.pop('__metadata__', {})\n"
    "buf = raw[8 + n:]\n"
    "names = list(header)\n"
    "assert names == sorted(names), 'tensors not in name order'\n"
    "end = 0\n"
    "for name in names:\n"
    "    e = header[name]\n"
    "    b, f = e['data_offsets']\n"
    "    assert b == end, 'gap or overlap before ' + name\n"
    "    end = f\n"
    "    if e['dtype'] == 'F32':\n"
    "        a = np.frombuffer(buf[b:f], dtype='<f4')\n"
    "    else:\n"
    "        assert e['dtype'] == 'BF16'\n"
    "        u = np.frombuffer(buf[b:f], dtype='<u2').astype(np.uint32) << 16\n"
    "        a = u.view(np.float32)\n"
    "    a = a.reshape(e['shape'])\n"
    "    print(name, e['dtype'], len(e['shape']), a.size,\n"
    "          ' '.join(float(x).hex() for x in a.ravel()))\n"
    "assert end == len(buf), 'trailing bytes'\n"
    "print('meta', json.dumps(meta, sort_keys=True))\n"
    "# Then write F16 with numpy's own conversion, for our reader.\n"
    "if len(sys.argv) > 2:\n"
    "    src = np.frombuffer(buf[header['x']['data_offsets'][0]:header['x']['data_offsets'][1]],\n"
    "                        dtype='<f4')\n"
    "    with np.errstate(over='ignore'):  # 65520 and beyond become Inf\n"
    "        h = src.astype('<f2').tobytes()\n"
    "    hdr = json.dumps({'__metadata__': {'by': 'numpy'},\n"
    "                      'h': {'dtype': 'F16', 'shape': [len(src)],\n"
    "                            'data_offsets': [0, len(h)]}}).encode()\n"
    "    hdr += b' ' * (-len(hdr) % 8)\n"
    "    open(sys.argv[2], 'wb').write(struct.pack('<Q', len(hdr)) + hdr + h)\n";

/* A python3 that has numpy: the one on PATH, else the system one. */
static const char *python_with_numpy(void) {
  static const char *candidates[] = {"python3", "/usr/bin/python3"};
  for (int i = 0; i < 2; i++) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "%s -c 'import numpy' >/dev/null 2>&1", candidates[i]);
    if (system(cmd) == 0) return candidates[i];
  }
  return NULL;
}

/* Values that exercise rounding: ties, subnormals, overflow, signs. */
static int interesting_values(float *v, int cap, ag_rng *rng) {
  const float fixed[] = {0.0f,
                         -0.0f,
                         1.0f,
                         -2.5f,
                         1.0f + ldexpf(1, -11),
                         1.0f + 3 * ldexpf(1, -11),
                         1.0f + ldexpf(1, -8),
                         ldexpf(1, -25),
                         3 * ldexpf(1, -25),
                         ldexpf(1023.5f, -24),
                         ldexpf(1, -14),
                         65504.0f,
                         65519.0f,
                         65520.0f,
                         -70000.0f,
                         1e-10f,
                         3.14159265f,
                         INFINITY,
                         -INFINITY};
  int n = 0;
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0] && n < cap; i++) v[n++] = fixed[i];
  while (n < cap) {
    uint32_t u = (ag_rng_u32(rng) & 0x807fffffu) | ((uint32_t)(100 + ag_rng_below(rng, 45)) << 23);
    v[n++] = from_bits(u);
  }
  return n;
}

/* Parses the script's lines and compares with the written values. */
static void check_python_output(FILE *p, const float *x, int nx, const float *y, int ny,
                                const char *dtype) {
  char line[1 << 16];
  int seen = 0;
  while (fgets(line, sizeof line, p)) {
    char name[64], dt[16];
    int ndim, size, used = 0;
    if (strncmp(line, "meta ", 5) == 0) {
      CHECK(strstr(line, "\"source\": \"agora\""));
      seen++;
      continue;
    }
    if (sscanf(line, "%63s %15s %d %d%n", name, dt, &ndim, &size, &used) != 4) {
      CHECK_MSG(0, "python printed: %s", line);
      continue;
    }
    CHECK(strcmp(dt, dtype) == 0);
    const float *want = strcmp(name, "x") == 0 ? x : y;
    int count = strcmp(name, "x") == 0 ? nx : ny;
    CHECK(size == count && ndim == (strcmp(name, "x") == 0 ? 1 : 2));
    char *s = line + used;
    for (int i = 0; i < size && i < count; i++) {
      char *end;
      double v = strtod(s, &end);
      CHECK_MSG(end != s, "no value %d for %s", i, name);
      s = end;
      float expect = strcmp(dtype, "BF16") == 0 ? ag_bf16_to_f32(ag_f32_to_bf16(want[i])) : want[i];
      CHECK_MSG((float)v == expect || (isnan(v) && isnan(expect)), "%s[%d]: python %a, agora %a",
                name, i, v, (double)expect);
    }
    seen++;
  }
  CHECK_MSG(seen == 3, "python printed %d of 3 lines", seen);
}

TEST(numpy_reads_what_agora_writes) {
  const char *python = python_with_numpy();
  if (!python) {
    printf("note: python3 with numpy not found; skipping the independent-reader check\n");
    return;
  }
  const char *script = tmp_file("reader.py");
  write_bytes(script, PY_SCRIPT, strlen(PY_SCRIPT));
  ag_rng rng;
  ag_rng_seed(&rng, 21);
  float xv[64], yv[12];
  int nx = interesting_values(xv, 64, &rng);
  for (int i = 0; i < 12; i++) yv[i] = ag_rng_normal(&rng);
  int64_t sx[] = {nx}, sy[] = {3, 4};
  ag_tensor x = {0}, y = {0};
  ag_tensor_set_shape(&x, 1, sx);
  ag_tensor_set_shape(&y, 2, sy);
  x.data = xv, y.data = yv;
  ag_st_write_item items[] = {{"y", &y}, {"x", &x}};
  const char *meta[] = {"source", "agora", NULL};
  const char *dtypes[] = {"F32", "BF16"};
  const ag_dtype ids[] = {AG_DTYPE_F32, AG_DTYPE_BF16};
  for (int k = 0; k < 2; k++) {
    const char *path = tmp_file("for_numpy.safetensors");
    const char *numpy_out = tmp_file("from_numpy.safetensors");
    CHECK_OK(ag_safetensors_write(path, items, 2, ids[k], meta));
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s '%s' '%s' %s", python, script, path, k == 0 ? numpy_out : "");
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    if (!p) continue;
    check_python_output(p, xv, nx, yv, 12, dtypes[k]);
    CHECK_MSG(pclose(p) == 0, "python reader failed on %s", dtypes[k]);
    if (k != 0) continue;

    /* numpy's float16 conversion (round to nearest even) against ours. */
    ag_safetensors *f = NULL;
    CHECK_OK(ag_safetensors_open(numpy_out, &f));
    const ag_st_entry *e = f ? ag_safetensors_find(f, "h") : NULL;
    CHECK(e && e->dtype == AG_DTYPE_F16 && e->numel == nx);
    CHECK(f && f->metadata_json && strstr(f->metadata_json, "numpy"));
    float back[64];
    if (e) CHECK_OK(ag_safetensors_read_f32(e, back));
    for (int i = 0; e && i < nx; i++) {
      CHECK_MSG(bits16(e->data, i) == ag_f32_to_f16(xv[i]), "%a: numpy %04x, agora %04x",
                (double)xv[i], bits16(e->data, i), ag_f32_to_f16(xv[i]));
      CHECK(back[i] == ag_f16_to_f32(bits16(e->data, i)));
    }
    ag_safetensors_close(f);
  }
}

int main(void) {
  RUN(f16_decodes_known_values);
  RUN(f16_round_trips_every_value);
  RUN(f32_to_f16_rounds_to_nearest_even);
  RUN(bf16_rounds_to_nearest_even);
  RUN(f32_round_trip_is_exact);
  RUN(bf16_round_trip_within_rounding);
  RUN(metadata_round_trips);
  RUN(writer_rejects_bad_input);
  RUN(params_save_and_load_by_name);
  RUN(missing_file_is_not_found);
  RUN(truncated_files_are_errors);
  RUN(absurd_header_lengths_are_errors);
  RUN(invalid_json_headers_are_errors);
  RUN(bad_entries_are_errors);
  RUN(non_utf8_names_are_errors);
  RUN(numpy_reads_what_agora_writes);
  remove_tmpdir();
  TEST_MAIN_END();
}
