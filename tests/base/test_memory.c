/* ag_alloc_large / ag_calloc_large: alignment, zeroing, usable size. */
#include "agora/base.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

TEST(small_blocks_are_cache_line_aligned) {
  for (size_t bytes = 1; bytes < 4096; bytes = bytes * 3 + 1) {
    unsigned char *p = ag_alloc_large(bytes);
    CHECK(p != NULL);
    CHECK((uintptr_t)p % 64 == 0);
    memset(p, 0xab, bytes); /* the whole size is writable (ASan checks) */
    free(p);
  }
}

TEST(large_blocks_are_huge_page_aligned_and_calloc_zeroes) {
  size_t bytes = ((size_t)5 << 20) + 12345;
  unsigned char *p = ag_calloc_large(bytes);
  CHECK(p != NULL);
  CHECK((uintptr_t)p % ((size_t)2 << 20) == 0);
  size_t nonzero = 0;
  for (size_t i = 0; i < bytes; i++) nonzero += p[i] != 0;
  CHECK(nonzero == 0);
  p[bytes - 1] = 1;
  free(p);
}

int main(void) {
  RUN(small_blocks_are_cache_line_aligned);
  RUN(large_blocks_are_huge_page_aligned_and_calloc_zeroes);
  TEST_MAIN_END();
}
