/* Image classification datasets: IDX files (MNIST, Fashion-MNIST) and the
 * CIFAR-10 binary format, decoded to float pixels in [0, 1]. */
#include "agora/vision.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_TYPE_UBYTE 0x08
#define IDX_IMAGE_DIMS 3 /* N, H, W */
#define IDX_LABEL_DIMS 1 /* N */
/* Larger dims than this are surely a corrupt header, not a dataset. */
#define IDX_MAX_SIDE          4096
#define FASHION_MNIST_CLASSES 10
#define CIFAR10_CLASSES       10
#define CIFAR10_SIDE          32
#define CIFAR10_CHANNELS      3
#define CIFAR10_RECORD_BYTES  (1 + CIFAR10_CHANNELS * CIFAR10_SIDE * CIFAR10_SIDE)
#define CIFAR10_TRAIN_FILES   5
#define READ_CHUNK_BYTES      ((size_t)1 << 20)

/* ---- gzip'd or plain byte streams ------------------------------------------------ */

/* Reads up to `bytes` into buf, stopping early only at the end of the data.
 * zlib reports a cut gzip stream as Z_BUF_ERROR: that is a short read too. */
static ag_status read_some(gzFile f, const char *path, void *buf, size_t bytes, size_t *got) {
  *got = 0;
  while (*got < bytes) {
    size_t want = bytes - *got;
    if (want > READ_CHUNK_BYTES) want = READ_CHUNK_BYTES;
    int n = gzread(f, (char *)buf + *got, (unsigned)want);
    if (n < 0) {
      int zerr = Z_OK;
      const char *msg = gzerror(f, &zerr);
      if (zerr == Z_BUF_ERROR) return AG_OK;
      return ag_error_set(AG_ERR_IO, "%s: read error: %s", path, msg);
    }
    if (n == 0) return AG_OK;
    *got += (size_t)n;
  }
  return AG_OK;
}

/* Reads exactly `bytes` or fails saying the file is truncated. */
static ag_status read_exact(gzFile f, const char *path, void *buf, size_t bytes, const char *what) {
  size_t got;
  ag_status st = read_some(f, path, buf, bytes, &got);
  if (st) return st;
  if (got < bytes)
    return ag_error_set(AG_ERR_FORMAT, "%s: file is truncated: %s needs %zu bytes, found %zu", path,
                        what, bytes, got);
  return AG_OK;
}

static uint32_t big_endian_u32(const unsigned char *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

/* Opens an IDX file and reads its header: magic 0x0000 08 ndim, then ndim
 * big-endian u32 sizes. */
static ag_status idx_open(const char *path, int ndim, int64_t *dims, gzFile *out) {
  gzFile f = gzopen(path, "rb");
  if (!f)
    return ag_error_set(errno == ENOENT ? AG_ERR_NOT_FOUND : AG_ERR_IO, "cannot open %s: %s", path,
                        strerror(errno ? errno : EIO));
  unsigned char header[4 + 4 * IDX_IMAGE_DIMS];
  ag_status st = read_exact(f, path, header, 4 + 4 * (size_t)ndim, "the IDX header");
  if (st) {
    gzclose(f);
    return st;
  }
  uint32_t magic = big_endian_u32(header);
  uint32_t expected = (uint32_t)IDX_TYPE_UBYTE << 8 | (uint32_t)ndim;
  if (magic != expected) {
    gzclose(f);
    return ag_error_set(AG_ERR_FORMAT,
                        "%s: not an IDX %s file (magic number 0x%08x, expected 0x%08x)", path,
                        ndim == IDX_IMAGE_DIMS ? "image" : "label", magic, expected);
  }
  for (int d = 0; d < ndim; d++) {
    dims[d] = big_endian_u32(header + 4 + 4 * d);
    bool bad = dims[d] == 0 || (d > 0 && dims[d] > IDX_MAX_SIDE);
    if (bad) {
      gzclose(f);
      return ag_error_set(AG_ERR_FORMAT, "%s: implausible IDX dimension %d = %lld", path, d,
                          (long long)dims[d]);
    }
  }
  *out = f;
  return AG_OK;
}

/* Reads `total` pixel bytes and stores them as floats / 255. */
static ag_status read_pixels(gzFile f, const char *path, float *dst, int64_t total) {
  unsigned char *buf = malloc(READ_CHUNK_BYTES);
  if (!buf) return ag_error_set(AG_ERR_NOMEM, "%s: out of memory", path);
  ag_status st = AG_OK;
  int64_t done = 0;
  while (done < total && !st) {
    size_t want =
        (size_t)(total - done) < READ_CHUNK_BYTES ? (size_t)(total - done) : READ_CHUNK_BYTES;
    size_t got;
    st = read_some(f, path, buf, want, &got);
    for (size_t i = 0; !st && i < got; i++)
      dst[done + (int64_t)i] = (float)buf[i] * (1.0f / 255.0f);
    done += (int64_t)got;
    if (!st && got < want)
      st = ag_error_set(AG_ERR_FORMAT,
                        "%s: file is truncated: the header promises %lld pixel bytes, found %lld",
                        path, (long long)total, (long long)done);
  }
  free(buf);
  return st;
}

ag_status ag_idx_load(const char *images_path, const char *labels_path, int num_classes,
                      ag_image_dataset **out) {
  *out = NULL;
  int64_t idims[IDX_IMAGE_DIMS] = {0}, ldims[IDX_LABEL_DIMS] = {0};
  gzFile fi = NULL, fl = NULL;
  ag_image_dataset *d = NULL;
  unsigned char *labels = NULL;
  ag_status st = idx_open(images_path, IDX_IMAGE_DIMS, idims, &fi);
  if (!st) st = idx_open(labels_path, IDX_LABEL_DIMS, ldims, &fl);
  if (!st && idims[0] != ldims[0])
    st = ag_error_set(AG_ERR_FORMAT, "%s holds %lld images but %s holds %lld labels", images_path,
                      (long long)idims[0], labels_path, (long long)ldims[0]);
  if (!st) st = ag_image_dataset_create(idims[0], 1, (int)idims[1], (int)idims[2], num_classes, &d);
  if (!st) st = read_pixels(fi, images_path, d->images, idims[0] * idims[1] * idims[2]);
  if (!st && !(labels = malloc((size_t)ldims[0])))
    st = ag_error_set(AG_ERR_NOMEM, "%s: out of memory", labels_path);
  if (!st) st = read_exact(fl, labels_path, labels, (size_t)ldims[0], "the labels");
  for (int64_t i = 0; !st && i < ldims[0]; i++) {
    if (labels[i] >= num_classes)
      st = ag_error_set(AG_ERR_FORMAT, "%s: label %d of example %lld is not below %d classes",
                        labels_path, labels[i], (long long)i, num_classes);
    else
      d->labels[i] = labels[i];
  }
  free(labels);
  if (fi) gzclose(fi);
  if (fl) gzclose(fl);
  if (st) {
    ag_image_dataset_destroy(d);
    return st;
  }
  *out = d;
  return AG_OK;
}

/* ---- CIFAR-10 ------------------------------------------------------------------------ */

static ag_status cifar_record_count(const char *path, int64_t *records) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return ag_error_set(errno == ENOENT ? AG_ERR_NOT_FOUND : AG_ERR_IO, "cannot open %s: %s", path,
                        strerror(errno));
  long size = -1;
  if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
  fclose(f);
  if (size < 0) return ag_error_set(AG_ERR_IO, "%s: cannot find its size", path);
  if (size == 0) return ag_error_set(AG_ERR_FORMAT, "%s: empty CIFAR-10 file", path);
  if (size % CIFAR10_RECORD_BYTES)
    return ag_error_set(AG_ERR_FORMAT,
                        "%s: file is truncated or not CIFAR-10: %ld bytes is not a whole number "
                        "of %d-byte records",
                        path, size, CIFAR10_RECORD_BYTES);
  *records = size / CIFAR10_RECORD_BYTES;
  return AG_OK;
}

static ag_status cifar_read(const char *path, ag_image_dataset *d, int64_t first, int64_t records) {
  FILE *f = fopen(path, "rb");
  if (!f) return ag_error_set(AG_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  unsigned char record[CIFAR10_RECORD_BYTES];
  int64_t pixels = CIFAR10_RECORD_BYTES - 1;
  ag_status st = AG_OK;
  for (int64_t r = 0; r < records && !st; r++) {
    if (fread(record, 1, sizeof record, f) != sizeof record)
      st = ag_error_set(AG_ERR_FORMAT, "%s: file is truncated at record %lld", path, (long long)r);
    else if (record[0] >= CIFAR10_CLASSES)
      st = ag_error_set(AG_ERR_FORMAT, "%s: record %lld has label %d (CIFAR-10 has %d classes)",
                        path, (long long)r, record[0], CIFAR10_CLASSES);
    if (st) break;
    d->labels[first + r] = record[0];
    float *dst = d->images + (first + r) * pixels;
    for (int64_t i = 0; i < pixels; i++) dst[i] = (float)record[1 + i] * (1.0f / 255.0f);
  }
  fclose(f);
  return st;
}

ag_status ag_cifar10_load_files(const char *const *paths, int count, ag_image_dataset **out) {
  *out = NULL;
  if (count <= 0) return ag_error_set(AG_ERR_INVALID, "cifar10: no files given");
  int64_t total = 0, records;
  for (int i = 0; i < count; i++) {
    ag_status st = cifar_record_count(paths[i], &records);
    if (st) return st;
    total += records;
  }
  ag_image_dataset *d;
  ag_status st = ag_image_dataset_create(total, CIFAR10_CHANNELS, CIFAR10_SIDE, CIFAR10_SIDE,
                                         CIFAR10_CLASSES, &d);
  if (st) return st;
  int64_t first = 0;
  for (int i = 0; i < count && !st; i++) {
    st = cifar_record_count(paths[i], &records);
    if (!st) st = cifar_read(paths[i], d, first, records);
    first += records;
  }
  if (st) {
    ag_image_dataset_destroy(d);
    return st;
  }
  snprintf(d->name, sizeof d->name, "cifar10");
  *out = d;
  return AG_OK;
}

/* ---- datasets by name ---------------------------------------------------------------- */

const char *ag_image_dataset_names(void) { return "fashion-mnist|cifar10"; }

/* dir/base.gz, else dir/base uncompressed; false when neither exists. */
static bool find_idx_file(const char *dir, const char *base, char *path, size_t size) {
  snprintf(path, size, "%s/%s.gz", dir, base);
  if (ag_file_exists(path)) return true;
  snprintf(path, size, "%s/%s", dir, base);
  if (ag_file_exists(path)) return true;
  snprintf(path, size, "%s/%s.gz", dir, base);
  return false;
}

static ag_status load_fashion_mnist(const char *dir, ag_split split, ag_image_dataset **out) {
  const char *prefix = split == AG_SPLIT_TRAIN ? "train" : "t10k";
  char base[64], images[4096], labels[4096];
  snprintf(base, sizeof base, "%s-images-idx3-ubyte", prefix);
  bool have_images = find_idx_file(dir, base, images, sizeof images);
  snprintf(base, sizeof base, "%s-labels-idx1-ubyte", prefix);
  bool have_labels = find_idx_file(dir, base, labels, sizeof labels);
  if (!have_images || !have_labels)
    return ag_error_set(AG_ERR_NOT_FOUND,
                        "Fashion-MNIST not found: %s does not exist. Install it with "
                        "`apt-get install dataset-fashion-mnist` (files go to %s), or pass a "
                        "folder holding {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz",
                        have_images ? labels : images, AG_FASHION_MNIST_DIR);
  ag_status st = ag_idx_load(images, labels, FASHION_MNIST_CLASSES, out);
  if (st) return st;
  snprintf((*out)->name, sizeof(*out)->name, "fashion-mnist");
  return AG_OK;
}

static ag_status load_cifar10(const char *dir, ag_split split, ag_image_dataset **out) {
  if (!dir)
    return ag_error_set(AG_ERR_NOT_FOUND, "cifar10 has no default folder: pass the folder "
                                          "holding data_batch_1..5.bin and test_batch.bin");
  char paths[CIFAR10_TRAIN_FILES][4096];
  const char *list[CIFAR10_TRAIN_FILES];
  int count = split == AG_SPLIT_TRAIN ? CIFAR10_TRAIN_FILES : 1;
  for (int i = 0; i < count; i++) {
    if (split == AG_SPLIT_TRAIN)
      snprintf(paths[i], sizeof paths[i], "%s/data_batch_%d.bin", dir, i + 1);
    else
      snprintf(paths[i], sizeof paths[i], "%s/test_batch.bin", dir);
    if (!ag_file_exists(paths[i]))
      return ag_error_set(AG_ERR_NOT_FOUND,
                          "CIFAR-10 not found: %s does not exist (the folder must hold the "
                          "binary version: data_batch_1..5.bin and test_batch.bin)",
                          paths[i]);
    list[i] = paths[i];
  }
  return ag_cifar10_load_files(list, count, out);
}

ag_status ag_image_dataset_load(const char *name, const char *data_dir, ag_split split,
                                ag_image_dataset **out) {
  *out = NULL;
  if (!strcmp(name, "fashion-mnist"))
    return load_fashion_mnist(data_dir ? data_dir : AG_FASHION_MNIST_DIR, split, out);
  if (!strcmp(name, "cifar10")) return load_cifar10(data_dir, split, out);
  return ag_error_set(AG_ERR_NOT_FOUND, "unknown dataset '%s' (known: %s)", name,
                      ag_image_dataset_names());
}
