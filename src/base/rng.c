/* xoshiro256** (Blackman & Vigna) seeded by splitmix64: integer arithmetic
 * only, so streams are identical on every platform. */
#include "agora/base.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void ag_rng_seed(ag_rng *r, uint64_t seed) {
  uint64_t x = seed;
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

void ag_rng_seed2(ag_rng *r, uint64_t seed, uint64_t stream) {
  uint64_t x = seed;
  uint64_t mixed = splitmix64(&x) ^ (stream * 0xd1342543de82ef95ULL + 0x2545f4914f6cdd1dULL);
  ag_rng_seed(r, mixed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t ag_rng_u64(ag_rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

uint32_t ag_rng_u32(ag_rng *r) { return (uint32_t)(ag_rng_u64(r) >> 32); }

float ag_rng_uniform(ag_rng *r) { return (float)(ag_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

uint64_t ag_rng_below(ag_rng *r, uint64_t n) {
  /* Rejection sampling: draw until below the largest multiple of n. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do {
    x = ag_rng_u64(r);
  } while (x >= limit);
  return x % n;
}

float ag_rng_normal(ag_rng *r) {
  /* Box-Muller with u1 in (0, 1] so log never sees 0. */
  double u1 = ((double)(ag_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
  double u2 = (double)(ag_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void ag_rng_shuffle_i64(ag_rng *r, int64_t *v, int64_t n) {
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)ag_rng_below(r, (uint64_t)i + 1);
    int64_t tmp = v[i];
    v[i] = v[j];
    v[j] = tmp;
  }
}
