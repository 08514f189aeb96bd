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

// Regenerates all 624 words at once, as numpy's mt19937_gen does. Word i
// reads i + 1 (not yet rewritten) and i + 397 (old in the first loop,
// rewritten 227 words earlier in the second), so lanes of a SIMD chunk never
// depend on each other: `omp simd` is exact here.
void ag_crafter_rng_generate(ag_crafter_rng *r) {
  uint32_t *k = r->key;
  enum { N = AG_CRAFTER_MT_N };
#pragma omp simd
  for (int i = 0; i < N - MT_M; i++) {
    uint32_t y = (k[i] & MT_UPPER) | (k[i + 1] & MT_LOWER);
    k[i] = k[i + MT_M] ^ (y >> 1) ^ ((0u - (y & 1u)) & MT_MATRIX_A);
  }
#pragma omp simd safelen(128) // the dependence distance is 227
  for (int i = N - MT_M; i < N - 1; i++) {
    uint32_t y = (k[i] & MT_UPPER) | (k[i + 1] & MT_LOWER);
    k[i] = k[i + (MT_M - N)] ^ (y >> 1) ^ ((0u - (y & 1u)) & MT_MATRIX_A);
  }
  uint32_t y = (k[N - 1] & MT_UPPER) | (k[0] & MT_LOWER);
  k[N - 1] = k[MT_M - 1] ^ (y >> 1) ^ ((0u - (y & 1u)) & MT_MATRIX_A);
  r->pos = 0;
}

void ag_crafter_rng_next32_fill(ag_crafter_rng *r, uint32_t *out, size_t n) {
  while (n > 0) {
    if (r->pos >= AG_CRAFTER_MT_N) ag_crafter_rng_generate(r);
    size_t take = (size_t)(AG_CRAFTER_MT_N - r->pos);
    if (take > n) take = n;
    const uint32_t *k = r->key + r->pos;
#pragma omp simd
    for (size_t i = 0; i < take; i++) out[i] = ag_crafter_rng_temper(k[i]);
    r->pos += (int)take;
    out += take;
    n -= take;
  }
}

void ag_crafter_rng_skip(ag_crafter_rng *r, size_t n) {
  // Tempering only reads the key, so skipping outputs is regenerating blocks.
  while (n > 0) {
    if (r->pos >= AG_CRAFTER_MT_N) ag_crafter_rng_generate(r);
    size_t take = (size_t)(AG_CRAFTER_MT_N - r->pos);
    if (take > n) take = n;
    r->pos += (int)take;
    n -= take;
  }
}

double ag_crafter_rng_uniform(ag_crafter_rng *r, double lo, double hi) {
  double range = hi - lo; // numpy computes the range once, before drawing
  return lo + range * ag_crafter_rng_random(r);
}

void ag_crafter_rng_uniform_fill(ag_crafter_rng *r, double lo, double hi, double *out, size_t n) {
  double range = hi - lo;
  // In blocks: the raw outputs first, then random_sample's arithmetic on
  // pairs, which is exact in any lane order (one multiply, one add each).
  enum { BLOCK = 512 };
  uint32_t raw[2 * BLOCK];
  while (n > 0) {
    size_t m = n < BLOCK ? n : BLOCK;
    ag_crafter_rng_next32_fill(r, raw, 2 * m);
    // a * 2**26 + b is exact in float64 (under 2**53), so it equals the
    // integer (a << 26) | b converted once.
#pragma omp simd
    for (size_t i = 0; i < m; i++) {
      uint64_t a = raw[2 * i] >> 5, b = raw[2 * i + 1] >> 6;
      out[i] = lo + range * ((double)(int64_t)((a << 26) | b) / 9007199254740992.0);
    }
    out += m;
    n -= m;
  }
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
