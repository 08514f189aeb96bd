/* PNG files through libpng: 8-bit grey, RGB or RGBA images, written
 * atomically (ag_atomic_open: a temporary file renamed into place). */
#include "agora/base.h"

#include <png.h>
#include <setjmp.h>

ag_status ag_png_write(const char *path, const uint8_t *pixels, int width, int height,
                       int channels) {
  if (!path || !pixels || width <= 0 || height <= 0 || width > 1 << 20 || height > 1 << 20)
    return ag_error_set(AG_ERR_INVALID, "png: bad arguments to write %s (%dx%d)",
                        path ? path : "(null)", width, height);
  int color;
  switch (channels) {
  case 1: color = PNG_COLOR_TYPE_GRAY; break;
  case 3: color = PNG_COLOR_TYPE_RGB; break;
  case 4: color = PNG_COLOR_TYPE_RGB_ALPHA; break;
  default:
    return ag_error_set(AG_ERR_INVALID, "png: %s: %d channels (1, 3 or 4 are written)", path,
                        channels);
  }
  ag_atomic_file *file;
  ag_status st = ag_atomic_open(path, &file);
  if (st) return st;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  // libpng reports encoding failures by longjmp; nothing set after setjmp is
  // read in the handler.
  if (!png || !info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    ag_atomic_abort(file);
    return ag_error_set(AG_ERR_IO, "png: cannot encode %s", path);
  }
  png_init_io(png, ag_atomic_stream(file));
  png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, color, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  size_t stride = (size_t)width * (size_t)channels;
  for (int y = 0; y < height; y++) png_write_row(png, pixels + (size_t)y * stride);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  return ag_atomic_commit(file);
}
