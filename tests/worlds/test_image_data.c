/* Image dataset loaders: IDX files (gzip'd and plain) and CIFAR-10 records
 * that the test writes itself, good and malformed, and the by-name loader's
 * messages. */
#include "agora/vision.h"
#include "test.h"

#include <sys/stat.h>
#include <zlib.h>

#define SIDE   4
#define IMAGES 5

/* Writes bytes to path, gzip'd when gz. */
static void write_bytes(const char *path, const unsigned char *data, size_t n, bool gz) {
  if (gz) {
    gzFile f = gzopen(path, "wb");
    gzwrite(f, data, (unsigned)n);
    gzclose(f);
  } else {
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
  }
}

static size_t put_u32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
  return 4;
}

/* An IDX image file of `count` SIDE x SIDE images whose pixel k of image i
 * is (i * 16 + k) % 256, announcing `announced` images; magic as given. */
static void write_idx_images(const char *path, uint32_t magic, int announced, int count, bool gz) {
  unsigned char buf[16 + 64 * SIDE * SIDE];
  size_t n = put_u32(buf, magic);
  n += put_u32(buf + n, (uint32_t)announced);
  n += put_u32(buf + n, SIDE);
  n += put_u32(buf + n, SIDE);
  for (int i = 0; i < count; i++)
    for (int k = 0; k < SIDE * SIDE; k++) buf[n++] = (unsigned char)((i * 16 + k) % 256);
  write_bytes(path, buf, n, gz);
}

static void write_idx_labels(const char *path, int count, int first_label, bool gz) {
  unsigned char buf[8 + 64];
  size_t n = put_u32(buf, 0x00000801);
  n += put_u32(buf + n, (uint32_t)count);
  for (int i = 0; i < count; i++) buf[n++] = (unsigned char)((first_label + i) % 256);
  write_bytes(path, buf, n, gz);
}

static const char *tmp_path(const char *name) {
  static char paths[8][600];
  static int next = 0;
  char *p = paths[next++ % 8];
  snprintf(p, 600, "%s/%s", test_tmpdir(), name);
  return p;
}

TEST(idx_gzip_files_load_as_floats_in_unit_range) {
  const char *img = tmp_path("good-images.gz"), *lab = tmp_path("good-labels.gz");
  write_idx_images(img, 0x00000803, IMAGES, IMAGES, true);
  write_idx_labels(lab, IMAGES, 3, true);
  ag_image_dataset *d = NULL;
  CHECK_OK(ag_idx_load(img, lab, 10, &d));
  CHECK(d && d->count == IMAGES && d->channels == 1 && d->height == SIDE && d->width == SIDE);
  CHECK(d && d->num_classes == 10);
  for (int i = 0; d && i < IMAGES; i++) {
    CHECK(d->labels[i] == (3 + i) % 256);
    for (int k = 0; k < SIDE * SIDE; k++)
      CHECK_NEAR(d->images[i * SIDE * SIDE + k], ((i * 16 + k) % 256) / 255.0, 1e-7);
  }
  ag_image_dataset_destroy(d);
}

TEST(idx_plain_files_load_too) {
  const char *img = tmp_path("plain-images"), *lab = tmp_path("plain-labels");
  write_idx_images(img, 0x00000803, IMAGES, IMAGES, false);
  write_idx_labels(lab, IMAGES, 0, false);
  ag_image_dataset *d = NULL;
  CHECK_OK(ag_idx_load(img, lab, 10, &d));
  CHECK(d && d->count == IMAGES && d->images[SIDE * SIDE + 1] == 17 / 255.0f);
  ag_image_dataset_destroy(d);
}

TEST(idx_bad_magic_is_a_format_error) {
  const char *img = tmp_path("magic-images.gz"), *lab = tmp_path("magic-labels.gz");
  write_idx_images(img, 0x00000801, IMAGES, IMAGES, true); /* a label magic */
  write_idx_labels(lab, IMAGES, 0, true);
  ag_image_dataset *d = (ag_image_dataset *)1;
  CHECK(ag_idx_load(img, lab, 10, &d) == AG_ERR_FORMAT);
  CHECK(d == NULL);
  CHECK_MSG(strstr(ag_error_message(), "magic"), "%s", ag_error_message());
  CHECK_MSG(strstr(ag_error_message(), "magic-images.gz"), "%s", ag_error_message());
}

TEST(idx_truncated_file_is_a_clear_error) {
  const char *img = tmp_path("short-images.gz"), *lab = tmp_path("short-labels.gz");
  write_idx_images(img, 0x00000803, IMAGES, IMAGES - 2, true); /* promises more than it has */
  write_idx_labels(lab, IMAGES, 0, true);
  ag_image_dataset *d = NULL;
  CHECK(ag_idx_load(img, lab, 10, &d) == AG_ERR_FORMAT);
  CHECK_MSG(strstr(ag_error_message(), "truncated"), "%s", ag_error_message());
  CHECK_MSG(strstr(ag_error_message(), "short-images.gz"), "%s", ag_error_message());

  /* A gzip stream cut in the middle (a partial download). */
  const char *cut = tmp_path("cut-images.gz");
  write_idx_images(cut, 0x00000803, IMAGES, IMAGES, true);
  char *data;
  size_t bytes;
  CHECK_OK(ag_read_file(cut, &data, &bytes));
  write_bytes(cut, (unsigned char *)data, bytes / 2, false);
  free(data);
  CHECK(ag_idx_load(cut, lab, 10, &d) == AG_ERR_FORMAT);
  CHECK_MSG(strstr(ag_error_message(), "truncated"), "%s", ag_error_message());

  /* A header cut short. */
  const unsigned char header[6] = {0, 0, 8, 3, 0, 0};
  const char *stub = tmp_path("stub-images");
  write_bytes(stub, header, sizeof header, false);
  CHECK(ag_idx_load(stub, lab, 10, &d) == AG_ERR_FORMAT);
  CHECK_MSG(strstr(ag_error_message(), "truncated"), "%s", ag_error_message());
}

TEST(idx_count_mismatch_and_bad_labels_are_rejected) {
  const char *img = tmp_path("count-images.gz"), *lab = tmp_path("count-labels.gz");
  write_idx_images(img, 0x00000803, IMAGES, IMAGES, true);
  write_idx_labels(lab, IMAGES - 1, 0, true);
  ag_image_dataset *d = NULL;
  CHECK(ag_idx_load(img, lab, 10, &d) == AG_ERR_FORMAT);
  CHECK_MSG(strstr(ag_error_message(), "labels"), "%s", ag_error_message());
  write_idx_labels(lab, IMAGES, 8, true); /* labels 8..12 with 10 classes */
  CHECK(ag_idx_load(img, lab, 10, &d) == AG_ERR_FORMAT);
  CHECK_MSG(strstr(ag_error_message(), "label 10"), "%s", ag_error_message());
  CHECK(ag_idx_load(tmp_path("nonexistent.gz"), lab, 10, &d) == AG_ERR_NOT_FOUND);
}

/* CIFAR-10: record r has label r % 10 and pixel k = (r + k) % 256. */
static void write_cifar(const char *path, int records, size_t cut_bytes, int bad_label_at) {
  size_t record = 3073, n = (size_t)records * record;
  unsigned char *buf = malloc(n);
  for (int r = 0; r < records; r++) {
    buf[r * record] = (unsigned char)(r == bad_label_at ? 10 : r % 10);
    for (size_t k = 0; k < 3072; k++) buf[r * record + 1 + k] = (unsigned char)((r + k) % 256);
  }
  write_bytes(path, buf, n - cut_bytes, false);
  free(buf);
}

TEST(cifar10_records_load_in_channel_planes) {
  const char *a = tmp_path("cifar-a.bin"), *b = tmp_path("cifar-b.bin");
  write_cifar(a, 3, 0, -1);
  write_cifar(b, 2, 0, -1);
  const char *paths[] = {a, b};
  ag_image_dataset *d = NULL;
  CHECK_OK(ag_cifar10_load_files(paths, 2, &d));
  CHECK(d && d->count == 5 && d->channels == 3 && d->height == 32 && d->width == 32);
  if (d) {
    CHECK(d->labels[2] == 2 && d->labels[3] == 0 && d->labels[4] == 1);
    /* record 1 of file a: red plane pixel (0, 0) is byte 0, green (0, 0) byte 1024 */
    CHECK_NEAR(d->images[1 * 3072 + 0], 1 / 255.0, 1e-7);
    CHECK_NEAR(d->images[1 * 3072 + 1024], ((1 + 1024) % 256) / 255.0, 1e-7);
    /* record 0 of file b is example 3 */
    CHECK_NEAR(d->images[3 * 3072 + 5], 5 / 255.0, 1e-7);
  }
  ag_image_dataset_destroy(d);
}

TEST(cifar10_truncated_or_bad_files_are_rejected) {
  const char *p = tmp_path("cifar-cut.bin");
  write_cifar(p, 2, 100, -1);
  const char *paths[] = {p};
  ag_image_dataset *d = NULL;
  CHECK(ag_cifar10_load_files(paths, 1, &d) == AG_ERR_FORMAT);
  CHECK_MSG(strstr(ag_error_message(), "truncated"), "%s", ag_error_message());
  write_cifar(p, 2, 0, 1);
  CHECK(ag_cifar10_load_files(paths, 1, &d) == AG_ERR_FORMAT);
  CHECK_MSG(strstr(ag_error_message(), "label 10"), "%s", ag_error_message());
  CHECK(d == NULL);
}

TEST(missing_fashion_mnist_names_the_package) {
  const char *empty = tmp_path("empty-dir");
  mkdir(empty, 0755);
  ag_image_dataset *d = NULL;
  CHECK(ag_image_dataset_load("fashion-mnist", empty, AG_SPLIT_TRAIN, &d) == AG_ERR_NOT_FOUND);
  const char *msg = ag_error_message();
  CHECK_MSG(strstr(msg, "apt-get install dataset-fashion-mnist"), "%s", msg);
  CHECK_MSG(strstr(msg, "empty-dir"), "%s", msg);
  CHECK_MSG(!strchr(msg, '\n'), "one line: %s", msg);
  CHECK(ag_image_dataset_load("imagenet", empty, AG_SPLIT_TRAIN, &d) == AG_ERR_NOT_FOUND);
  CHECK(ag_image_dataset_load("cifar10", empty, AG_SPLIT_TEST, &d) == AG_ERR_NOT_FOUND);
  CHECK_MSG(strstr(ag_error_message(), "test_batch.bin"), "%s", ag_error_message());
}

TEST(datasets_load_by_name_from_a_folder) {
  const char *dir = tmp_path("fmnist");
  mkdir(dir, 0755);
  char img[700], lab[700];
  const char *splits[] = {"train", "t10k"};
  for (int s = 0; s < 2; s++) {
    snprintf(img, sizeof img, "%s/%s-images-idx3-ubyte.gz", dir, splits[s]);
    snprintf(lab, sizeof lab, "%s/%s-labels-idx1-ubyte.gz", dir, splits[s]);
    write_idx_images(img, 0x00000803, IMAGES - s, IMAGES - s, true);
    write_idx_labels(lab, IMAGES - s, 0, true);
  }
  ag_image_dataset *train = NULL, *test = NULL;
  CHECK_OK(ag_image_dataset_load("fashion-mnist", dir, AG_SPLIT_TRAIN, &train));
  CHECK_OK(ag_image_dataset_load("fashion-mnist", dir, AG_SPLIT_TEST, &test));
  CHECK(train && train->count == IMAGES && !strcmp(train->name, "fashion-mnist"));
  CHECK(test && test->count == IMAGES - 1);
  ag_image_dataset_destroy(train);
  ag_image_dataset_destroy(test);

  const char *cdir = tmp_path("cifar");
  mkdir(cdir, 0755);
  char path[700];
  snprintf(path, sizeof path, "%s/test_batch.bin", cdir);
  write_cifar(path, 2, 0, -1);
  CHECK_OK(ag_image_dataset_load("cifar10", cdir, AG_SPLIT_TEST, &test));
  CHECK(test && test->count == 2 && !strcmp(test->name, "cifar10"));
  ag_image_dataset_destroy(test);
}

TEST(installed_fashion_mnist_has_the_published_shape) {
  char path[256];
  snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte.gz", AG_FASHION_MNIST_DIR);
  if (!ag_file_exists(path)) {
    fprintf(stderr, "  (dataset-fashion-mnist not installed: skipped)\n");
    return;
  }
  ag_image_dataset *d = NULL;
  CHECK_OK(ag_image_dataset_load("fashion-mnist", NULL, AG_SPLIT_TEST, &d));
  CHECK(d && d->count == 10000 && d->height == 28 && d->width == 28 && d->num_classes == 10);
  int per_class[10] = {0};
  float lo = 1, hi = 0;
  for (int64_t i = 0; d && i < d->count; i++) per_class[d->labels[i]]++;
  for (int64_t i = 0; d && i < d->count * 784; i++) {
    if (d->images[i] < lo) lo = d->images[i];
    if (d->images[i] > hi) hi = d->images[i];
  }
  for (int c = 0; c < 10; c++) CHECK(per_class[c] == 1000); /* the test set is balanced */
  CHECK(lo == 0.0f && hi == 1.0f);
  ag_image_dataset_destroy(d);
}

int main(void) {
  RUN(idx_gzip_files_load_as_floats_in_unit_range);
  RUN(idx_plain_files_load_too);
  RUN(idx_bad_magic_is_a_format_error);
  RUN(idx_truncated_file_is_a_clear_error);
  RUN(idx_count_mismatch_and_bad_labels_are_rejected);
  RUN(cifar10_records_load_in_channel_planes);
  RUN(cifar10_truncated_or_bad_files_are_rejected);
  RUN(missing_fashion_mnist_names_the_package);
  RUN(datasets_load_by_name_from_a_folder);
  RUN(installed_fashion_mnist_has_the_published_shape);
  TEST_MAIN_END();
}
