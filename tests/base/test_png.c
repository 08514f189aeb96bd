/* ag_png_write: grey, RGB and RGBA images read back unchanged through
 * libpng's own decoder, with the colour type the channel count asks for;
 * replacing a file is atomic; bad arguments and paths fail with a message
 * and leave nothing behind. */
#include "agora/base.h"
#include "test.h"

#include <dirent.h>
#include <png.h>
#include <unistd.h>

static char *path_in_tmp(const char *name) {
  static char buf[4][1024];
  static int next = 0;
  char *p = buf[next++ % 4];
  snprintf(p, sizeof buf[0], "%s/%s", test_tmpdir(), name);
  return p;
}

/* Files in the scratch folder whose name contains `part`. */
static int count_entries(const char *part) {
  DIR *d = opendir(test_tmpdir());
  if (!d) return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, part) != NULL;
  closedir(d);
  return n;
}

/* A pattern that differs in every byte position of a small image. */
static uint8_t *pattern(int width, int height, int channels, unsigned salt) {
  size_t n = (size_t)width * (size_t)height * (size_t)channels;
  uint8_t *p = malloc(n);
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)((i * 37u + salt * 101u + (i >> 8)) & 255u);
  return p;
}

/* Decodes path with libpng's simplified API in the file's own format and
 * compares with want; checks the stored layout too. */
static void check_reads_back(const char *path, const uint8_t *want, int width, int height,
                             int channels) {
  png_image image;
  memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  CHECK_MSG(png_image_begin_read_from_file(&image, path), "%s: %s", path, image.message);
  if (PNG_IMAGE_FAILED(image)) return;
  png_uint_32 expected_format = channels == 1   ? PNG_FORMAT_GRAY
                                : channels == 3 ? PNG_FORMAT_RGB
                                                : PNG_FORMAT_RGBA;
  CHECK_MSG(image.format == expected_format, "format %u, expected %u", image.format,
            expected_format);
  CHECK(image.width == (png_uint_32)width && image.height == (png_uint_32)height);
  image.format = expected_format;
  size_t bytes = PNG_IMAGE_SIZE(image);
  CHECK(bytes == (size_t)width * (size_t)height * (size_t)channels);
  uint8_t *got = malloc(bytes);
  CHECK_MSG(png_image_finish_read(&image, NULL, got, 0, NULL), "%s", image.message);
  CHECK(memcmp(got, want, bytes) == 0);
  free(got);
  png_image_free(&image);
}

TEST(grey_rgb_and_rgba_round_trip) {
  const int channels[] = {1, 3, 4};
  for (int c = 0; c < 3; c++) {
    int width = 37, height = 13 + c; // odd sizes: no row padding assumed
    uint8_t *pixels = pattern(width, height, channels[c], (unsigned)c);
    const char *path = path_in_tmp("round-trip.png");
    CHECK_OK(ag_png_write(path, pixels, width, height, channels[c]));
    check_reads_back(path, pixels, width, height, channels[c]);
    remove(path);
    free(pixels);
  }
}

TEST(one_pixel_and_a_wide_row) {
  uint8_t one = 200;
  const char *path = path_in_tmp("one.png");
  CHECK_OK(ag_png_write(path, &one, 1, 1, 1));
  check_reads_back(path, &one, 1, 1, 1);
  int width = (int)test_scaled(3000, 300);
  uint8_t *row = pattern(width, 1, 3, 7);
  CHECK_OK(ag_png_write(path, row, width, 1, 3));
  check_reads_back(path, row, width, 1, 3);
  remove(path);
  free(row);
}

TEST(replacing_a_file_leaves_no_temporary) {
  const char *path = path_in_tmp("replace.png");
  uint8_t *a = pattern(8, 8, 3, 1), *b = pattern(8, 8, 3, 2);
  CHECK_OK(ag_png_write(path, a, 8, 8, 3));
  CHECK_OK(ag_png_write(path, b, 8, 8, 3));
  check_reads_back(path, b, 8, 8, 3);
  CHECK(count_entries(".tmp.") == 0);
  remove(path);
  free(a);
  free(b);
}

TEST(a_missing_folder_is_an_error_naming_the_path) {
  uint8_t pixels[12] = {0};
  ag_error_clear();
  CHECK(ag_png_write("/nonexistent-agora-dir/x.png", pixels, 2, 2, 3) != AG_OK);
  CHECK_MSG(strstr(ag_error_message(), "/nonexistent-agora-dir/x.png") != NULL, "message: %s",
            ag_error_message());
}

TEST(bad_arguments_are_refused_and_write_nothing) {
  uint8_t pixels[16] = {0};
  const char *path = path_in_tmp("bad.png");
  CHECK(ag_png_write(path, pixels, 2, 2, 2) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "2 channels") != NULL);
  CHECK(ag_png_write(path, pixels, 0, 2, 3) == AG_ERR_INVALID);
  CHECK(ag_png_write(path, pixels, 2, -1, 3) == AG_ERR_INVALID);
  CHECK(ag_png_write(path, NULL, 2, 2, 3) == AG_ERR_INVALID);
  CHECK(ag_png_write(NULL, pixels, 2, 2, 3) == AG_ERR_INVALID);
  CHECK(!ag_file_exists(path));
  CHECK(count_entries("bad.png") == 0);
}

int main(void) {
  RUN(grey_rgb_and_rgba_round_trip);
  RUN(one_pixel_and_a_wide_row);
  RUN(replacing_a_file_leaves_no_temporary);
  RUN(a_missing_folder_is_an_error_naming_the_path);
  RUN(bad_arguments_are_refused_and_write_nothing);
  rmdir(test_tmpdir());
  TEST_MAIN_END();
}
