/* PNG files for Crafter through libpng: the 16x16 textures (RGB or RGBA, read
 * without colour or gamma transforms, as imageio/Pillow return them) and
 * frames (RGB, written atomically). */
#include "worlds/crafter/crafter_internal.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

// Everything the read needs after a longjmp is volatile or on the heap.
ag_status ag_crafter_png_read(const char *path, uint8_t **pixels, int *width, int *height,
                              int *channels) {
  *pixels = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return ag_error_set(AG_ERR_IO, "crafter: cannot open %s", path);
  uint8_t sig[8];
  if (fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8)) {
    fclose(f);
    return ag_error_set(AG_ERR_FORMAT, "crafter: %s is not a PNG file", path);
  }
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  uint8_t *volatile data = NULL;
  png_bytep *volatile rows = NULL;
  if (!png || !info || setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, NULL);
    free(data);
    free(rows);
    fclose(f);
    return ag_error_set(AG_ERR_FORMAT, "crafter: cannot decode %s", path);
  }
  png_init_io(png, f);
  png_set_sig_bytes(png, 8);
  png_read_info(png, info);
  png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
  // Pixel values as stored: palettes and low bit depths expanded, 16 bits
  // cut to 8, grey made RGB; no gamma or ICC handling (Pillow does none).
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (depth == 16) png_set_strip_16(png);
  if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  png_read_update_info(png, info);
  int ch = png_get_channels(png, info);
  if (w == 0 || h == 0 || w > 16384 || h > 16384 || (ch != 3 && ch != 4))
    png_error(png, "unsupported layout");
  data = malloc((size_t)w * h * (size_t)ch);
  rows = malloc(sizeof(png_bytep) * h);
  if (!data || !rows) png_error(png, "out of memory");
  for (png_uint_32 y = 0; y < h; y++) rows[y] = data + (size_t)y * w * (size_t)ch;
  png_read_image(png, rows);
  png_read_end(png, NULL);
  png_destroy_read_struct(&png, &info, NULL);
  free(rows);
  fclose(f);
  *pixels = data;
  *width = (int)w;
  *height = (int)h;
  *channels = ch;
  return AG_OK;
}

// Frames go through the base layer's writer (atomic, libpng).
ag_status ag_crafter_write_png(const char *path, const uint8_t *rgb, int width, int height) {
  return ag_png_write(path, rgb, width, height, 3);
}
