/* numpy's legacy RandomState (numpy 1.24, random/src/mt19937 and
 * distributions.c) over MT19937: the same seeding, block regeneration and
 * draws, so every value the original draws is reproduced bit for bit. */
#include "worlds/crafter/crafter_internal.h"

#include <string.h>

enum { MT_M = 397 };
#define MT_MATRIX_A 0x9908b0dfu
#define MT_UPPER    0x80000000u
#define MT_LOWER    0x7fffffffu

void ag_crafter_rng_seed(ag_crafter_rng *r, uint32_t seed) {
  // init_genrand: what numpy's _legacy_seeding does for a scalar int seed.
  for (int i = 0; i < AG_CRAFTER_MT_N; i++) {
    r->key[i] = seed;
    seed = 1812433253u * (seed ^ (seed >> 30)) + (uint32_t)i + 1u;
  }
  r->pos = AG_CRAFTER_MT_N;
}

// Regenerates all 624 words at once, as numpy's mt19937_gen does.
static void mt_generate(ag_crafter_rng *r) {
  uint32_t *k = r->key;
  int i;
  for (i = 0; i < AG_CRAFTER_MT_N - MT_M; i++) {
    uint32_t y = (k[i] & MT_UPPER) | (k[i + 1] & MT_LOWER);
    k[i] = k[i + MT_M] ^ (y >> 1) ^ ((0u - (y & 1u)) & MT_MATRIX_A);
  }
  for (; i < AG_CRAFTER_MT_N - 1; i++) {
    uint32_t y = (k[i] & MT_UPPER) | (k[i + 1] & MT_LOWER);
    k[i] = k[i + (MT_M - AG_CRAFTER_MT_N)] ^ (y >> 1) ^ ((0u - (y & 1u)) & MT_MATRIX_A);
  }
  uint32_t y = (k[AG_CRAFTER_MT_N - 1] & MT_UPPER) | (k[0] & MT_LOWER);
  k[AG_CRAFTER_MT_N - 1] = k[MT_M - 1] ^ (y >> 1) ^ ((0u - (y & 1u)) & MT_MATRIX_A);
  r->pos = 0;
}

uint32_t ag_crafter_rng_next32(ag_crafter_rng *r) {
  if (r->pos >= AG_CRAFTER_MT_N) mt_generate(r);
  uint32_t y = r->key[r->pos++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

double ag_crafter_rng_random(ag_crafter_rng *r) {
  // Two separate statements: the high part is always drawn first.
  int32_t a = (int32_t)(ag_crafter_rng_next32(r) >> 5);
  int32_t b = (int32_t)(ag_crafter_rng_next32(r) >> 6);
  return (a * 67108864.0 + b) / 9007199254740992.0;
}

double ag_crafter_rng_uniform(ag_crafter_rng *r, double lo, double hi) {
  double range = hi - lo; // numpy computes the range once, before drawing
  return lo + range * ag_crafter_rng_random(r);
}

void ag_crafter_rng_uniform_fill(ag_crafter_rng *r, double lo, double hi, double *out, size_t n) {
  double range = hi - lo;
  for (size_t i = 0; i < n; i++) out[i] = lo + range * ag_crafter_rng_random(r);
}

// The smallest all-ones mask covering v (numpy's gen_mask).
static uint64_t gen_mask(uint64_t v) {
  v |= v >> 1;
  v |= v >> 2;
  v |= v >> 4;
  v |= v >> 8;
  v |= v >> 16;
  v |= v >> 32;
  return v;
}

int64_t ag_crafter_rng_randint(ag_crafter_rng *r, int64_t lo, int64_t hi) {
  if (hi <= lo) return lo;
  uint64_t range = (uint64_t)hi - (uint64_t)lo - 1u; // inclusive span, as numpy's rng
  if (range == 0) return lo;                         // numpy draws nothing then
  uint64_t mask = gen_mask(range), v;
  if (range <= 0xffffffffu) {
    // random_bounded_uint64_fill calls the 32-bit generator in this case.
    do v = ag_crafter_rng_next32(r) & mask;
    while (v > range);
  } else {
    do {
      uint64_t high = ag_crafter_rng_next32(r);
      uint64_t low = ag_crafter_rng_next32(r);
      v = ((high << 32) | low) & mask;
    } while (v > range);
  }
  return (int64_t)((uint64_t)lo + v);
}

int64_t ag_crafter_rng_choice(ag_crafter_rng *r, int64_t n) {
  return ag_crafter_rng_randint(r, 0, n);
}

void ag_crafter_rng_state_bytes(const ag_crafter_rng *r, uint8_t out[AG_CRAFTER_RNG_STATE_BYTES]) {
  for (int i = 0; i < AG_CRAFTER_MT_N; i++) {
    uint32_t k = r->key[i];
    for (int b = 0; b < 4; b++) out[i * 4 + b] = (uint8_t)(k >> (8 * b));
  }
  uint32_t pos = (uint32_t)r->pos;
  for (int b = 0; b < 4; b++) out[AG_CRAFTER_MT_N * 4 + b] = (uint8_t)(pos >> (8 * b));
}
