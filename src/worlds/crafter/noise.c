/* OpenSimplex 3-D noise (K. Spencer's algorithm) as the Python package
 * opensimplex 0.4.5 computes it, which is what crafter's world generation
 * calls (noise3). Bit-exactness needs the package's seeding and its order of
 * floating-point operations: every expression below is evaluated left to
 * right as Python does, e.g. `dx0 - 1 - S` is (dx0 - 1) - S, and this file
 * is compiled with -ffp-contract=off so no multiply-add is fused. */
#include "worlds/crafter/crafter_internal.h"

#include <math.h>

#define STRETCH3 (-1.0 / 6) /* (1/sqrt(3+1) - 1)/3 */
#define SQUISH3  (1.0 / 3)  /* (sqrt(3+1) - 1)/3 */
#define NORM3    103.0

// Directions to the vertices of a rhombicuboctahedron, 24 of them (x, y, z).
static const int8_t GRAD3[72] = {
    -11, 4,  4,  -4, 11,  4,  -4, 4,  11,  11, 4,  4,  4, 11,  4,  4, 4,  11,
    -11, -4, 4,  -4, -11, 4,  -4, -4, 11,  11, -4, 4,  4, -11, 4,  4, -4, 11,
    -11, 4,  -4, -4, 11,  -4, -4, 4,  -11, 11, 4,  -4, 4, 11,  -4, 4, 4,  -11,
    -11, -4, -4, -4, -11, -4, -4, -4, -11, 11, -4, -4, 4, -11, -4, 4, -4, -11,
};

void ag_crafter_simplex_seed(ag_crafter_simplex *s, int64_t seed) {
  // The package steps a 64-bit LCG in Python ints truncated to signed int64,
  // i.e. arithmetic mod 2**64.
  const uint64_t mul = 6364136223846793005u, inc = 1442695040888963407u;
  int64_t source[256];
  for (int i = 0; i < 256; i++) source[i] = i;
  uint64_t st = (uint64_t)seed;
  for (int k = 0; k < 3; k++) st = st * mul + inc;
  for (int i = 255; i >= 0; i--) {
    st = st * mul + inc;
    // r = (seed + 31) % (i + 1) with Python's floor modulo on the signed value
    // (seed + 31 is a Python int there: it cannot overflow).
    int64_t sv = (int64_t)st, n = i + 1;
    int64_t m = sv % n;
    if (m < 0) m += n;
    int64_t r = (m + 31) % n;
    int64_t perm = source[r];
    s->perm[i] = (uint8_t)perm;
    // The gradient of perm[i]: GRAD3[int((perm % (72 / 3)) * 3)], as float64
    // (an int8 converts exactly, so products below are the package's).
    int64_t g = (perm % 24) * 3;
    s->gx[i] = GRAD3[g];
    s->gy[i] = GRAD3[g + 1];
    s->gz[i] = GRAD3[g + 2];
    source[r] = source[i];
  }
}

// value += attn^4 * gradient . d when attn = 2 - |d|^2 > 0. Branch-free:
// otherwise it adds +0.0, which leaves any sum but -0.0 unchanged, and the
// sum (starting at +0.0) is never -0.0 (x + -x is +0.0 when rounding to
// nearest).
static inline double contrib(const ag_crafter_simplex *s, int64_t xv, int64_t yv, int64_t zv,
                             double dx, double dy, double dz) {
  double attn = 2 - dx * dx - dy * dy - dz * dz;
  int64_t a = s->perm[xv & 0xFF];
  int64_t b = s->perm[(a + yv) & 0xFF];
  int64_t g = (b + zv) & 0xFF;
  double ext = s->gx[g] * dx + s->gy[g] * dy + s->gz[g] * dz;
  double a2 = attn * attn;
  double c = a2 * a2 * ext;
  return attn > 0 ? c : 0.0;
}

double ag_crafter_simplex_noise3(const ag_crafter_simplex *s, double x, double y, double z) {
  // Place input coordinates on the simplectic honeycomb.
  double stretch_offset = (x + y + z) * STRETCH3;
  double xs = x + stretch_offset, ys = y + stretch_offset, zs = z + stretch_offset;
  // Super-cell origin in honeycomb coordinates (Python ints after floor).
  int64_t xsb = (int64_t)floor(xs), ysb = (int64_t)floor(ys), zsb = (int64_t)floor(zs);
  double squish_offset = (double)(xsb + ysb + zsb) * SQUISH3;
  double xb = (double)xsb + squish_offset;
  double yb = (double)ysb + squish_offset;
  double zb = (double)zsb + squish_offset;
  double xins = xs - (double)xsb, yins = ys - (double)ysb, zins = zs - (double)zsb;
  double in_sum = xins + yins + zins;
  double dx0 = x - xb, dy0 = y - yb, dz0 = z - zb;

  double dx_ext0, dy_ext0, dz_ext0, dx_ext1, dy_ext1, dz_ext1;
  int64_t xsv_ext0, ysv_ext0, zsv_ext0, xsv_ext1, ysv_ext1, zsv_ext1;
  double value = 0.0; // additions below happen in the package's order

  if (in_sum <= 1) {
    // Inside the tetrahedron at (0,0,0): which two of (0,0,1), (0,1,0),
    // (1,0,0) are closest.
    int a_point = 0x01, b_point = 0x02;
    double a_score = xins, b_score = yins;
    if (a_score >= b_score && zins > b_score) {
      b_score = zins;
      b_point = 0x04;
    } else if (a_score < b_score && zins > a_score) {
      a_score = zins;
      a_point = 0x04;
    }
    double wins = 1 - in_sum;
    if (wins > a_score || wins > b_score) {
      // (0,0,0) is one of the closest two vertices.
      int c = b_score > a_score ? b_point : a_point;
      if ((c & 0x01) == 0) {
        xsv_ext0 = xsb - 1;
        xsv_ext1 = xsb;
        dx_ext0 = dx0 + 1;
        dx_ext1 = dx0;
      } else {
        xsv_ext0 = xsv_ext1 = xsb + 1;
        dx_ext0 = dx_ext1 = dx0 - 1;
      }
      if ((c & 0x02) == 0) {
        ysv_ext0 = ysv_ext1 = ysb;
        dy_ext0 = dy_ext1 = dy0;
        if ((c & 0x01) == 0) {
          ysv_ext1 -= 1;
          dy_ext1 += 1;
        } else {
          ysv_ext0 -= 1;
          dy_ext0 += 1;
        }
      } else {
        ysv_ext0 = ysv_ext1 = ysb + 1;
        dy_ext0 = dy_ext1 = dy0 - 1;
      }
      if ((c & 0x04) == 0) {
        zsv_ext0 = zsb;
        zsv_ext1 = zsb - 1;
        dz_ext0 = dz0;
        dz_ext1 = dz0 + 1;
      } else {
        zsv_ext0 = zsv_ext1 = zsb + 1;
        dz_ext0 = dz_ext1 = dz0 - 1;
      }
    } else {
      // (0,0,0) is not: the two extra vertices follow from the closest two.
      int c = a_point | b_point;
      if ((c & 0x01) == 0) {
        xsv_ext0 = xsb;
        xsv_ext1 = xsb - 1;
        dx_ext0 = dx0 - 2 * SQUISH3;
        dx_ext1 = dx0 + 1 - SQUISH3;
      } else {
        xsv_ext0 = xsv_ext1 = xsb + 1;
        dx_ext0 = dx0 - 1 - 2 * SQUISH3;
        dx_ext1 = dx0 - 1 - SQUISH3;
      }
      if ((c & 0x02) == 0) {
        ysv_ext0 = ysb;
        ysv_ext1 = ysb - 1;
        dy_ext0 = dy0 - 2 * SQUISH3;
        dy_ext1 = dy0 + 1 - SQUISH3;
      } else {
        ysv_ext0 = ysv_ext1 = ysb + 1;
        dy_ext0 = dy0 - 1 - 2 * SQUISH3;
        dy_ext1 = dy0 - 1 - SQUISH3;
      }
      if ((c & 0x04) == 0) {
        zsv_ext0 = zsb;
        zsv_ext1 = zsb - 1;
        dz_ext0 = dz0 - 2 * SQUISH3;
        dz_ext1 = dz0 + 1 - SQUISH3;
      } else {
        zsv_ext0 = zsv_ext1 = zsb + 1;
        dz_ext0 = dz0 - 1 - 2 * SQUISH3;
        dz_ext1 = dz0 - 1 - SQUISH3;
      }
    }
    // Contributions of (0,0,0), (1,0,0), (0,1,0), (0,0,1).
    value += contrib(s, xsb, ysb, zsb, dx0, dy0, dz0);
    double dx1 = dx0 - 1 - SQUISH3, dy1 = dy0 - 0 - SQUISH3, dz1 = dz0 - 0 - SQUISH3;
    value += contrib(s, xsb + 1, ysb, zsb, dx1, dy1, dz1);
    double dx2 = dx0 - 0 - SQUISH3, dy2 = dy0 - 1 - SQUISH3, dz2 = dz1;
    value += contrib(s, xsb, ysb + 1, zsb, dx2, dy2, dz2);
    double dx3 = dx2, dy3 = dy1, dz3 = dz0 - 1 - SQUISH3;
    value += contrib(s, xsb, ysb, zsb + 1, dx3, dy3, dz3);
  } else if (in_sum >= 2) {
    // Inside the tetrahedron at (1,1,1): which two of (1,1,0), (1,0,1),
    // (0,1,1) are closest.
    int a_point = 0x06, b_point = 0x05;
    double a_score = xins, b_score = yins;
    if (a_score <= b_score && zins < b_score) {
      b_score = zins;
      b_point = 0x03;
    } else if (a_score > b_score && zins < a_score) {
      a_score = zins;
      a_point = 0x03;
    }
    double wins = 3 - in_sum;
    if (wins < a_score || wins < b_score) {
      // (1,1,1) is one of the closest two vertices.
      int c = b_score < a_score ? b_point : a_point;
      if ((c & 0x01) != 0) {
        xsv_ext0 = xsb + 2;
        xsv_ext1 = xsb + 1;
        dx_ext0 = dx0 - 2 - 3 * SQUISH3;
        dx_ext1 = dx0 - 1 - 3 * SQUISH3;
      } else {
        xsv_ext0 = xsv_ext1 = xsb;
        dx_ext0 = dx_ext1 = dx0 - 3 * SQUISH3;
      }
      if ((c & 0x02) != 0) {
        ysv_ext0 = ysv_ext1 = ysb + 1;
        dy_ext0 = dy_ext1 = dy0 - 1 - 3 * SQUISH3;
        if ((c & 0x01) != 0) {
          ysv_ext1 += 1;
          dy_ext1 -= 1;
        } else {
          ysv_ext0 += 1;
          dy_ext0 -= 1;
        }
      } else {
        ysv_ext0 = ysv_ext1 = ysb;
        dy_ext0 = dy_ext1 = dy0 - 3 * SQUISH3;
      }
      if ((c & 0x04) != 0) {
        zsv_ext0 = zsb + 1;
        zsv_ext1 = zsb + 2;
        dz_ext0 = dz0 - 1 - 3 * SQUISH3;
        dz_ext1 = dz0 - 2 - 3 * SQUISH3;
      } else {
        zsv_ext0 = zsv_ext1 = zsb;
        dz_ext0 = dz_ext1 = dz0 - 3 * SQUISH3;
      }
    } else {
      // (1,1,1) is not: the two extra vertices follow from the closest two.
      int c = a_point & b_point;
      if ((c & 0x01) != 0) {
        xsv_ext0 = xsb + 1;
        xsv_ext1 = xsb + 2;
        dx_ext0 = dx0 - 1 - SQUISH3;
        dx_ext1 = dx0 - 2 - 2 * SQUISH3;
      } else {
        xsv_ext0 = xsv_ext1 = xsb;
        dx_ext0 = dx0 - SQUISH3;
        dx_ext1 = dx0 - 2 * SQUISH3;
      }
      if ((c & 0x02) != 0) {
        ysv_ext0 = ysb + 1;
        ysv_ext1 = ysb + 2;
        dy_ext0 = dy0 - 1 - SQUISH3;
        dy_ext1 = dy0 - 2 - 2 * SQUISH3;
      } else {
        ysv_ext0 = ysv_ext1 = ysb;
        dy_ext0 = dy0 - SQUISH3;
        dy_ext1 = dy0 - 2 * SQUISH3;
      }
      if ((c & 0x04) != 0) {
        zsv_ext0 = zsb + 1;
        zsv_ext1 = zsb + 2;
        dz_ext0 = dz0 - 1 - SQUISH3;
        dz_ext1 = dz0 - 2 - 2 * SQUISH3;
      } else {
        zsv_ext0 = zsv_ext1 = zsb;
        dz_ext0 = dz0 - SQUISH3;
        dz_ext1 = dz0 - 2 * SQUISH3;
      }
    }
    // Contributions of (1,1,0), (1,0,1), (0,1,1), (1,1,1).
    double dx3 = dx0 - 1 - 2 * SQUISH3, dy3 = dy0 - 1 - 2 * SQUISH3, dz3 = dz0 - 0 - 2 * SQUISH3;
    value += contrib(s, xsb + 1, ysb + 1, zsb, dx3, dy3, dz3);
    double dx2 = dx3, dy2 = dy0 - 0 - 2 * SQUISH3, dz2 = dz0 - 1 - 2 * SQUISH3;
    value += contrib(s, xsb + 1, ysb, zsb + 1, dx2, dy2, dz2);
    double dx1 = dx0 - 0 - 2 * SQUISH3, dy1 = dy3, dz1 = dz2;
    value += contrib(s, xsb, ysb + 1, zsb + 1, dx1, dy1, dz1);
    double dxa = dx0 - 1 - 3 * SQUISH3, dya = dy0 - 1 - 3 * SQUISH3, dza = dz0 - 1 - 3 * SQUISH3;
    value += contrib(s, xsb + 1, ysb + 1, zsb + 1, dxa, dya, dza);
  } else {
    // Inside the octahedron in between. Closest of (0,0,1) and (1,1,0):
    int a_point, b_point;
    double a_score, b_score;
    bool a_further, b_further;
    double p1 = xins + yins;
    if (p1 > 1) {
      a_score = p1 - 1;
      a_point = 0x03;
      a_further = true;
    } else {
      a_score = 1 - p1;
      a_point = 0x04;
      a_further = false;
    }
    // Closest of (0,1,0) and (1,0,1):
    double p2 = xins + zins;
    if (p2 > 1) {
      b_score = p2 - 1;
      b_point = 0x05;
      b_further = true;
    } else {
      b_score = 1 - p2;
      b_point = 0x02;
      b_further = false;
    }
    // The closer of (1,0,0) and (0,1,1) replaces the further of the two, if closer.
    double p3 = yins + zins;
    if (p3 > 1) {
      double score = p3 - 1;
      if (a_score <= b_score && a_score < score) {
        a_point = 0x06;
        a_further = true;
      } else if (a_score > b_score && b_score < score) {
        b_point = 0x06;
        b_further = true;
      }
    } else {
      double score = 1 - p3;
      if (a_score <= b_score && a_score < score) {
        a_point = 0x01;
        a_further = false;
      } else if (a_score > b_score && b_score < score) {
        b_point = 0x01;
        b_further = false;
      }
    }
    if (a_further == b_further) {
      if (a_further) {
        // Both on the (1,1,1) side: one extra vertex is (1,1,1), the other
        // follows from the shared axis.
        dx_ext0 = dx0 - 1 - 3 * SQUISH3;
        dy_ext0 = dy0 - 1 - 3 * SQUISH3;
        dz_ext0 = dz0 - 1 - 3 * SQUISH3;
        xsv_ext0 = xsb + 1;
        ysv_ext0 = ysb + 1;
        zsv_ext0 = zsb + 1;
        int c = a_point & b_point;
        if ((c & 0x01) != 0) {
          dx_ext1 = dx0 - 2 - 2 * SQUISH3;
          dy_ext1 = dy0 - 2 * SQUISH3;
          dz_ext1 = dz0 - 2 * SQUISH3;
          xsv_ext1 = xsb + 2;
          ysv_ext1 = ysb;
          zsv_ext1 = zsb;
        } else if ((c & 0x02) != 0) {
          dx_ext1 = dx0 - 2 * SQUISH3;
          dy_ext1 = dy0 - 2 - 2 * SQUISH3;
          dz_ext1 = dz0 - 2 * SQUISH3;
          xsv_ext1 = xsb;
          ysv_ext1 = ysb + 2;
          zsv_ext1 = zsb;
        } else {
          dx_ext1 = dx0 - 2 * SQUISH3;
          dy_ext1 = dy0 - 2 * SQUISH3;
          dz_ext1 = dz0 - 2 - 2 * SQUISH3;
          xsv_ext1 = xsb;
          ysv_ext1 = ysb;
          zsv_ext1 = zsb + 2;
        }
      } else {
        // Both on the (0,0,0) side: one extra vertex is (0,0,0), the other
        // follows from the omitted axis.
        dx_ext0 = dx0;
        dy_ext0 = dy0;
        dz_ext0 = dz0;
        xsv_ext0 = xsb;
        ysv_ext0 = ysb;
        zsv_ext0 = zsb;
        int c = a_point | b_point;
        if ((c & 0x01) == 0) {
          dx_ext1 = dx0 + 1 - SQUISH3;
          dy_ext1 = dy0 - 1 - SQUISH3;
          dz_ext1 = dz0 - 1 - SQUISH3;
          xsv_ext1 = xsb - 1;
          ysv_ext1 = ysb + 1;
          zsv_ext1 = zsb + 1;
        } else if ((c & 0x02) == 0) {
          dx_ext1 = dx0 - 1 - SQUISH3;
          dy_ext1 = dy0 + 1 - SQUISH3;
          dz_ext1 = dz0 - 1 - SQUISH3;
          xsv_ext1 = xsb + 1;
          ysv_ext1 = ysb - 1;
          zsv_ext1 = zsb + 1;
        } else {
          dx_ext1 = dx0 - 1 - SQUISH3;
          dy_ext1 = dy0 - 1 - SQUISH3;
          dz_ext1 = dz0 + 1 - SQUISH3;
          xsv_ext1 = xsb + 1;
          ysv_ext1 = ysb + 1;
          zsv_ext1 = zsb - 1;
        }
      }
    } else {
      // One closest point on each side.
      int c1 = a_further ? a_point : b_point;
      int c2 = a_further ? b_point : a_point;
      // One extra vertex is a permutation of (1,1,-1) ...
      if ((c1 & 0x01) == 0) {
        dx_ext0 = dx0 + 1 - SQUISH3;
        dy_ext0 = dy0 - 1 - SQUISH3;
        dz_ext0 = dz0 - 1 - SQUISH3;
        xsv_ext0 = xsb - 1;
        ysv_ext0 = ysb + 1;
        zsv_ext0 = zsb + 1;
      } else if ((c1 & 0x02) == 0) {
        dx_ext0 = dx0 - 1 - SQUISH3;
        dy_ext0 = dy0 + 1 - SQUISH3;
        dz_ext0 = dz0 - 1 - SQUISH3;
        xsv_ext0 = xsb + 1;
        ysv_ext0 = ysb - 1;
        zsv_ext0 = zsb + 1;
      } else {
        dx_ext0 = dx0 - 1 - SQUISH3;
        dy_ext0 = dy0 - 1 - SQUISH3;
        dz_ext0 = dz0 + 1 - SQUISH3;
        xsv_ext0 = xsb + 1;
        ysv_ext0 = ysb + 1;
        zsv_ext0 = zsb - 1;
      }
      // ... the other a permutation of (0,0,2).
      dx_ext1 = dx0 - 2 * SQUISH3;
      dy_ext1 = dy0 - 2 * SQUISH3;
      dz_ext1 = dz0 - 2 * SQUISH3;
      xsv_ext1 = xsb;
      ysv_ext1 = ysb;
      zsv_ext1 = zsb;
      if ((c2 & 0x01) != 0) {
        dx_ext1 -= 2;
        xsv_ext1 += 2;
      } else if ((c2 & 0x02) != 0) {
        dy_ext1 -= 2;
        ysv_ext1 += 2;
      } else {
        dz_ext1 -= 2;
        zsv_ext1 += 2;
      }
    }
    // Contributions of (1,0,0), (0,1,0), (0,0,1), (1,1,0), (1,0,1), (0,1,1).
    double dx1 = dx0 - 1 - SQUISH3, dy1 = dy0 - 0 - SQUISH3, dz1 = dz0 - 0 - SQUISH3;
    value += contrib(s, xsb + 1, ysb, zsb, dx1, dy1, dz1);
    double dx2 = dx0 - 0 - SQUISH3, dy2 = dy0 - 1 - SQUISH3, dz2 = dz1;
    value += contrib(s, xsb, ysb + 1, zsb, dx2, dy2, dz2);
    double dx3 = dx2, dy3 = dy1, dz3 = dz0 - 1 - SQUISH3;
    value += contrib(s, xsb, ysb, zsb + 1, dx3, dy3, dz3);
    double dx4 = dx0 - 1 - 2 * SQUISH3, dy4 = dy0 - 1 - 2 * SQUISH3, dz4 = dz0 - 0 - 2 * SQUISH3;
    value += contrib(s, xsb + 1, ysb + 1, zsb, dx4, dy4, dz4);
    double dx5 = dx4, dy5 = dy0 - 0 - 2 * SQUISH3, dz5 = dz0 - 1 - 2 * SQUISH3;
    value += contrib(s, xsb + 1, ysb, zsb + 1, dx5, dy5, dz5);
    double dx6 = dx0 - 0 - 2 * SQUISH3, dy6 = dy4, dz6 = dz5;
    value += contrib(s, xsb, ysb + 1, zsb + 1, dx6, dy6, dz6);
  }
  // The two extra vertices.
  value += contrib(s, xsv_ext0, ysv_ext0, zsv_ext0, dx_ext0, dy_ext0, dz_ext0);
  value += contrib(s, xsv_ext1, ysv_ext1, zsv_ext1, dx_ext1, dy_ext1, dz_ext1);
  return value / NORM3;
}
