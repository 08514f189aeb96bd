/* Arenas: aligned bump allocation, reset that reuses memory instead of
 * growing, allocations larger than a chunk, and failures reported. */
#include "agora/base.h"
#include "test.h"

#include <stdint.h>

TEST(allocations_honour_every_alignment) {
  ag_arena *a = ag_arena_create(4096);
  CHECK(a != NULL);
  const size_t aligns[] = {1, 2, 8, 16, 32, 64, 128, 256, 4096};
  for (int round = 0; round < 3; round++)
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
      /* Odd sizes push the bump pointer off every boundary. */
      unsigned char *p = ag_arena_alloc(a, 3 + 7 * i, aligns[i]);
      CHECK(p != NULL);
      size_t want = aligns[i] < 16 ? 16 : aligns[i];
      CHECK_MSG(((uintptr_t)p & (want - 1)) == 0, "align %zu got %p", aligns[i], (void *)p);
      if (p) memset(p, 0xab, 3 + 7 * i); /* ASan flags writes past the block */
    }
  ag_arena_destroy(a);
}

TEST(allocations_do_not_overlap) {
  ag_arena *a = ag_arena_create(1000);
  enum { N = 200 };
  unsigned char *blocks[N];
  size_t sizes[N];
  for (int i = 0; i < N; i++) {
    sizes[i] = (size_t)(1 + (i * 37) % 300);
    blocks[i] = ag_arena_alloc(a, sizes[i], 16);
    CHECK(blocks[i] != NULL);
    if (blocks[i]) memset(blocks[i], i & 0xff, sizes[i]);
  }
  for (int i = 0; i < N; i++)
    for (size_t j = 0; blocks[i] && j < sizes[i]; j++)
      if (blocks[i][j] != (i & 0xff)) {
        CHECK_MSG(0, "block %d byte %zu overwritten", i, j);
        break;
      }
  CHECK(ag_arena_used(a) >= 200);
  ag_arena_destroy(a);
}

/* One "training step": a mix of small and chunk-sized allocations. */
static void step(ag_arena *a, void **out) {
  for (int i = 0; i < 50; i++) out[i] = ag_arena_alloc(a, (size_t)(100 + i * 13), 64);
  out[50] = ag_arena_alloc(a, 10000, 16); /* larger than a chunk */
  for (int i = 51; i < 60; i++) out[i] = ag_arena_alloc(a, 500, 32);
}

TEST(reset_reuses_memory_without_growing) {
  ag_arena *a = ag_arena_create(4096);
  void *first[60], *again[60];
  step(a, first);
  size_t capacity = ag_arena_capacity(a);
  size_t used = ag_arena_used(a);
  CHECK(capacity >= used && used > 10000);
  for (int s = 0; s < 20; s++) {
    ag_arena_reset(a);
    CHECK(ag_arena_used(a) == 0);
    step(a, again);
    CHECK(ag_arena_capacity(a) == capacity);
    CHECK(ag_arena_used(a) == used);
  }
  /* The same sequence lands on the same addresses: no new memory at all. */
  for (int i = 0; i < 60; i++) CHECK(again[i] == first[i]);
  ag_arena_destroy(a);
}

TEST(calloc_zeroes_reused_memory) {
  ag_arena *a = ag_arena_create(1024);
  unsigned char *p = ag_arena_alloc(a, 512, 16);
  CHECK(p != NULL);
  if (p) memset(p, 0xff, 512);
  ag_arena_reset(a);
  unsigned char *q = ag_arena_calloc(a, 512, 16);
  CHECK(q == p);
  int nonzero = 0;
  for (int i = 0; q && i < 512; i++) nonzero += q[i] != 0;
  CHECK(nonzero == 0);
  ag_arena_destroy(a);
}

TEST(large_allocations_get_their_own_chunk) {
  ag_arena *a = ag_arena_create(1 << 16);
  size_t big = (size_t)test_scaled(64L << 20, 8L << 20); /* 64 MB */
  unsigned char *small = ag_arena_alloc(a, 100, 16);
  unsigned char *p = ag_arena_alloc(a, big, 4096);
  CHECK(small != NULL && p != NULL);
  CHECK(((uintptr_t)p & 4095) == 0);
  CHECK(ag_arena_capacity(a) >= big + 100);
  if (p) {
    memset(p, 1, big); /* every byte is ours */
    CHECK(p[0] == 1 && p[big - 1] == 1);
  }
  /* Small allocations after it still work and do not overlap it. */
  unsigned char *after = ag_arena_alloc(a, 100, 16);
  CHECK(after != NULL && (after + 100 <= p || after >= p + big));
  size_t capacity = ag_arena_capacity(a);
  ag_arena_reset(a);
  CHECK(ag_arena_alloc(a, 100, 16) == small);
  CHECK(ag_arena_alloc(a, big, 4096) == p);
  CHECK(ag_arena_capacity(a) == capacity);
  ag_arena_destroy(a);
}

TEST(impossible_requests_fail_with_a_message) {
  ag_arena *a = ag_arena_create(0); /* 0: the default chunk size */
  CHECK(a != NULL);
  ag_error_clear();
  CHECK(ag_arena_alloc(a, SIZE_MAX, 16) == NULL);
  CHECK(strstr(ag_error_message(), "arena") != NULL);
  ag_error_clear();
  CHECK(ag_arena_alloc(a, SIZE_MAX - 20, 64) == NULL);
  CHECK(ag_arena_alloc(a, 10, 24) == NULL); /* not a power of two */
  CHECK(strstr(ag_error_message(), "power of two") != NULL);
  /* The arena still works afterwards. */
  CHECK(ag_arena_alloc(a, 10, 16) != NULL);
  ag_arena_destroy(a);
  ag_arena_destroy(NULL);
}

int main(void) {
  RUN(allocations_honour_every_alignment);
  RUN(allocations_do_not_overlap);
  RUN(reset_reuses_memory_without_growing);
  RUN(calloc_zeroes_reused_memory);
  RUN(large_allocations_get_their_own_chunk);
  RUN(impossible_requests_fail_with_a_message);
  TEST_MAIN_END();
}
