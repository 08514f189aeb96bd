/* numpy's own float64 exp and cos, as numpy 1.24 computes them on a machine
 * with AVX-512 (the machine the golden files were recorded on): they differ
 * from glibc's in the last bits for about a quarter (exp) and over half (cos)
 * of the inputs the original feeds them, so the original's np.exp (world
 * generation) and np.cos (daylight) are reproduced here operation for
 * operation, fused multiply-adds included (fma()).
 *
 * Both are Intel SVML routines that numpy links (__svml_exp8, __svml_cos8,
 * the "la" variants, BSD-3-Clause), their main paths; the algorithm was read
 * from the disassembly and the constants from numpy's _multiarray_umath
 * binary. Both were checked against numpy here (see
 * tests/worlds/test_crafter_worldgen.c). */
#include "worlds/crafter/crafter_internal.h"

#include <math.h>
#include <string.h>

static double from_bits(uint64_t u) {
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

/* ---- exp ------------------------------------------------------------------ */

// 2^(j/16), j = 0..15.
static const uint64_t EXP2_16THS[16] = {
    0x3ff0000000000000, 0x3ff0b5586cf9890f, 0x3ff172b83c7d517b, 0x3ff2387a6e756238,
    0x3ff306fe0a31b715, 0x3ff3dea64c123422, 0x3ff4bfdad5362a27, 0x3ff5ab07dd485429,
    0x3ff6a09e667f3bcd, 0x3ff7a11473eb0187, 0x3ff8ace5422aa0db, 0x3ff9c49182a3f090,
    0x3ffae89f995ad3ad, 0x3ffc199bdd85529c, 0x3ffd5818dcfba487, 0x3ffea4afa2a490da,
};

double ag_crafter_np_exp(double x) {
  // Beyond |x| >= 707.7 (and for non-finite x) SVML takes a slow path that is
  // not reproduced; the original's world generation stays far inside.
  if (!(fabs(x) < 0x1.61da04cbafe44p+9)) return exp(x);
  // k = floor(16 * x * log2(e)) from the exact product (SVML rounds an fma
  // towards zero onto a 1/16 grid); x = (k/16) ln2 + r.
  const double log2e = from_bits(0x3ff71547652b82fe);
  double prod = x * log2e;
  double prod_err = fma(x, log2e, -prod);
  double k = floor(16 * prod);
  if (k == 16 * prod && prod_err < 0) k -= 1;
  double n = k / 16;
  double r = fma(-n, from_bits(0x3fe62e42fefa39ef), x); // ln2, high part
  r = fma(-from_bits(0x3c7abc9e3b39803f), n, r);        // low part
  double r2 = r * r;
  double p15 = fma(from_bits(0x3f572eb5ef0d213d), r, from_bits(0x3f81106603d97c00));
  double p9 = fma(from_bits(0x3fa555564bb4f5f0), r, from_bits(0x3fc5555554b508a2));
  double r3 = r2 * r;
  double p11 = fma(r2, from_bits(0x3fe0000000002622), r);
  p15 = fma(r2, p15, p9);
  p15 = fma(r3, p15, p11);
  int64_t ki = (int64_t)k;
  double t = from_bits(EXP2_16THS[ki & 15]);
  double res = fma(t, p15, t);
  // scalef: times 2^floor(k / 16).
  return ldexp(res, (int)floor(n));
}

/* ---- cos ------------------------------------------------------------------ */

double ag_crafter_np_cos(double x) {
  double ax = fabs(x);
  // Outside the main path (huge or non-finite arguments) SVML takes a slow
  // path that is not reproduced; the original never gets there (|x| < 5).
  if (!(ax < 0x1p+22)) return cos(x);
  if (ax < 0x1p-27) return 1.0;
  // N = floor(|x| / pi) from the exact product (SVML rounds an fma towards
  // zero onto 2^52); the argument is reduced around (N + 1/2) pi.
  const double inv_pi = from_bits(0x3fd45f306dc9c883);
  double prod = ax * inv_pi;
  double prod_err = fma(ax, inv_pi, -prod);
  double n = floor(prod);
  if (n == prod && prod_err < 0) n -= 1;
  int odd = (int)fmod(n, 2.0) != 0;
  double nh = n + 0.5;
  double rr = fma(nh, from_bits(0x400921fb54442d18), -ax); // pi, high part
  rr = fma(from_bits(0x3ca1a62633145c06), nh, rr);         // middle part
  double r2 = rr * rr;
  double r = fma(from_bits(0x395c1cd129024e09), nh, rr); // low part
  double poly = fma(from_bits(0xbd69f0d60811aac8), r2, from_bits(0x3de60e6857a2f220));
  poly = fma(r2, poly, from_bits(0xbe5ae63546002231));
  poly = fma(r2, poly, from_bits(0x3ec71de38030fea0));
  poly = fma(r2, poly, from_bits(0xbf2a01a019a5b87b));
  double rs = odd ? -r : r;
  poly = fma(r2, poly, from_bits(0x3f8111111110a4a8));
  double rs_r2 = rs * r2;
  poly = fma(r2, poly, from_bits(0xbfc55555555554a7));
  return fma(rs_r2, poly, rs);
}
