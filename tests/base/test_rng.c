/* The RNG stream is part of agora's contract: the same --seed must give the
 * same run forever, on every machine. The known answers below were printed
 * by an independent Python implementation (kept here so anyone can re-run
 * it), checked against the published splitmix64 vector (seed 1234567 gives
 * 6457827717110365317, 3203168211198807973) and the reference xoshiro256**
 * outputs from state {1, 2, 3, 4} (11520, 0, 1509978240, ...).
 *
 *   M = (1 << 64) - 1
 *   def splitmix64(x):
 *       x = (x + 0x9E3779B97F4A7C15) & M
 *       z = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M
 *       z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
 *       return x, z ^ (z >> 31)
 *   def rotl(v, k): return ((v << k) | (v >> (64 - k))) & M
 *   def seed(v):
 *       s = []
 *       for _ in range(4):
 *           v, z = splitmix64(v); s.append(z)
 *       return s
 *   def nxt(s):
 *       r = (rotl((s[1] * 5) & M, 7) * 9) & M
 *       t = (s[1] << 17) & M
 *       s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t
 *       s[3] = rotl(s[3], 45)
 *       return r
 *   def seed2(v, stream):
 *       _, z = splitmix64(v)
 *       return seed(z ^ ((stream * 0xD1342543DE82EF95 + 0x2545F4914F6CDD1D) & M))
 *   def below(s, n):
 *       limit = M - M % n
 *       while True:
 *           x = nxt(s)
 *           if x < limit: return x % n
 *   s = seed(42); print(["0x%016x" % nxt(s) for _ in range(5)])
 *   s = seed(0); print(["0x%016x" % nxt(s) for _ in range(3)])
 *   s = seed2(42, 7); print(["0x%016x" % nxt(s) for _ in range(3)])
 *   s = seed(5); print([nxt(s) >> 40 for _ in range(3)])     # uniform * 2^24
 *   s = seed(123); print([below(s, 10) for _ in range(10)])
 *   s = seed(7); v = list(range(10))
 *   for i in range(9, 0, -1):
 *       j = below(s, i + 1); v[i], v[j] = v[j], v[i]
 *   print(v)
 */
#include "agora/base.h"
#include "test.h"

TEST(reference_xoshiro256starstar_outputs_from_a_raw_state) {
  ag_rng r = {{1, 2, 3, 4}};
  const uint64_t expected[] = {
      11520, 0, 1509978240, 1215971899390074240ULL, 1216172134540287360ULL, 607988272756665600ULL};
  for (int i = 0; i < 6; i++) CHECK(ag_rng_u64(&r) == expected[i]);
}

TEST(seeded_streams_are_fixed_forever) {
  ag_rng r;
  ag_rng_seed(&r, 42);
  const uint64_t seed42[] = {0x15780b2e0c2ec716ULL, 0x6104d9866d113a7eULL, 0xae17533239e499a1ULL,
                             0xecb8ad4703b360a1ULL, 0xfde6dc7fe2ec5e64ULL};
  for (int i = 0; i < 5; i++) CHECK_MSG(ag_rng_u64(&r) == seed42[i], "seed 42 output %d", i);

  ag_rng_seed(&r, 0);
  const uint64_t seed0[] = {0x99ec5f36cb75f2b4ULL, 0xbf6e1f784956452aULL, 0x1a5f849d4933e6e0ULL};
  for (int i = 0; i < 3; i++) CHECK_MSG(ag_rng_u64(&r) == seed0[i], "seed 0 output %d", i);

  ag_rng_seed2(&r, 42, 7);
  const uint64_t stream7[] = {0xa71000553f46706cULL, 0x3257b1fb3c1fa87dULL, 0xbb73b38dba9e014aULL};
  for (int i = 0; i < 3; i++) CHECK_MSG(ag_rng_u64(&r) == stream7[i], "seed2 output %d", i);
}

TEST(derived_draws_are_fixed_forever) {
  ag_rng r;
  ag_rng_seed(&r, 5);
  const uint32_t uniform_times_2_24[] = {4838737, 10101265, 10897585};
  for (int i = 0; i < 3; i++)
    CHECK(ag_rng_uniform(&r) == (float)uniform_times_2_24[i] / 16777216.0f);

  ag_rng_seed(&r, 123);
  const uint64_t below10[] = {7, 8, 7, 0, 4, 4, 5, 5, 8, 4};
  for (int i = 0; i < 10; i++) CHECK(ag_rng_below(&r, 10) == below10[i]);

  ag_rng_seed(&r, 7);
  int64_t v[10];
  for (int i = 0; i < 10; i++) v[i] = i;
  ag_rng_shuffle_i64(&r, v, 10);
  const int64_t shuffled[] = {8, 3, 9, 0, 7, 2, 1, 6, 5, 4};
  for (int i = 0; i < 10; i++) CHECK(v[i] == shuffled[i]);
}

TEST(uniform_stays_in_zero_one_with_mean_one_half) {
  ag_rng r;
  ag_rng_seed(&r, 1);
  long n = test_scaled(1000000, 100000);
  int buckets[10] = {0};
  double sum = 0, lo = 1, hi = 0;
  for (long i = 0; i < n; i++) {
    float u = ag_rng_uniform(&r);
    CHECK(u >= 0.0f && u < 1.0f);
    if (u < lo) lo = u;
    if (u > hi) hi = u;
    sum += u;
    buckets[(int)(u * 10)]++;
  }
  CHECK_NEAR(sum / (double)n, 0.5, 5.0 / sqrt(12.0 * (double)n)); /* 5 standard errors */
  CHECK(lo < 1e-4 && hi > 1 - 1e-4);
  double chi2 = 0, expect = (double)n / 10;
  for (int b = 0; b < 10; b++) chi2 += (buckets[b] - expect) * (buckets[b] - expect) / expect;
  CHECK_MSG(chi2 < 33.7, "chi2 %.2f (df 9, p = 1e-4 cut-off 33.7)", chi2);
}

TEST(below_small_n_has_no_bias) {
  ag_rng r;
  ag_rng_seed(&r, 2);
  long n = test_scaled(700000, 70000);
  for (uint64_t k = 1; k <= 7; k++) {
    long counts[7] = {0};
    for (long i = 0; i < n; i++) {
      uint64_t x = ag_rng_below(&r, k);
      CHECK(x < k);
      if (x < k) counts[x]++;
    }
    double chi2 = 0, expect = (double)n / (double)k;
    for (uint64_t b = 0; b < k; b++) chi2 += (counts[b] - expect) * (counts[b] - expect) / expect;
    /* p = 1e-4 cut-offs of chi-square with k - 1 degrees of freedom. */
    const double cutoff[] = {0, 0, 15.1, 18.4, 21.1, 23.5, 25.7, 27.9};
    CHECK_MSG(k == 1 ? counts[0] == n : chi2 < cutoff[k], "n %llu chi2 %.2f", (unsigned long long)k,
              chi2);
  }
}

TEST(below_large_n_has_no_modulo_bias) {
  /* n = 2^65 / 3: a plain u64 % n would land in the lower half of [0, n)
   * two times in three instead of one in two. */
  ag_rng r;
  ag_rng_seed(&r, 3);
  uint64_t n = UINT64_MAX / 3 * 2;
  long draws = test_scaled(200000, 20000), lower = 0;
  for (long i = 0; i < draws; i++) {
    uint64_t x = ag_rng_below(&r, n);
    CHECK(x < n);
    lower += x < n / 2;
  }
  CHECK_NEAR((double)lower / (double)draws, 0.5, 5 * 0.5 / sqrt((double)draws));
}

TEST(shuffle_is_a_permutation_and_moves_elements) {
  ag_rng r;
  ag_rng_seed(&r, 4);
  enum { N = 1000 };
  int64_t v[N];
  for (int i = 0; i < N; i++) v[i] = i;
  ag_rng_shuffle_i64(&r, v, N);
  int seen[N] = {0};
  int fixed = 0;
  for (int i = 0; i < N; i++) {
    CHECK(v[i] >= 0 && v[i] < N);
    if (v[i] >= 0 && v[i] < N) seen[v[i]]++;
    fixed += v[i] == i;
  }
  for (int i = 0; i < N; i++) CHECK(seen[i] == 1);
  CHECK(fixed < 10);            /* a random permutation has about one fixed point */
  ag_rng_shuffle_i64(&r, v, 0); /* empty and single arrays are fine */
  ag_rng_shuffle_i64(&r, v, 1);
}

TEST(seed2_streams_differ_from_each_other_and_from_seed) {
  ag_rng a, b, c, a_again;
  ag_rng_seed2(&a, 9, 0);
  ag_rng_seed2(&b, 9, 1);
  ag_rng_seed(&c, 9);
  ag_rng_seed2(&a_again, 9, 0);
  int same_ab = 0, same_ac = 0;
  for (int i = 0; i < 100; i++) {
    uint64_t x = ag_rng_u64(&a), y = ag_rng_u64(&b), z = ag_rng_u64(&c);
    same_ab += x == y;
    same_ac += x == z;
    CHECK(ag_rng_u64(&a_again) == x);
  }
  CHECK(same_ab == 0 && same_ac == 0);
}

TEST(normal_has_mean_zero_and_unit_variance) {
  ag_rng r;
  ag_rng_seed(&r, 6);
  long n = test_scaled(400000, 40000);
  double sum = 0, sum2 = 0;
  for (long i = 0; i < n; i++) {
    double x = ag_rng_normal(&r);
    CHECK(isfinite(x));
    sum += x;
    sum2 += x * x;
  }
  double mean = sum / (double)n, var = sum2 / (double)n - mean * mean;
  CHECK_NEAR(mean, 0, 5 / sqrt((double)n));
  CHECK_NEAR(var, 1, 5 * sqrt(2.0 / (double)n));
}

int main(void) {
  RUN(reference_xoshiro256starstar_outputs_from_a_raw_state);
  RUN(seeded_streams_are_fixed_forever);
  RUN(derived_draws_are_fixed_forever);
  RUN(uniform_stays_in_zero_one_with_mean_one_half);
  RUN(below_small_n_has_no_bias);
  RUN(below_large_n_has_no_modulo_bias);
  RUN(shuffle_is_a_permutation_and_moves_elements);
  RUN(seed2_streams_differ_from_each_other_and_from_seed);
  RUN(normal_has_mean_zero_and_unit_variance);
  TEST_MAIN_END();
}
