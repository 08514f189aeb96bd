/* Exact discounted values of memory-one policies in an iterated n-player
 * game, their gradients and mixed second derivatives (games.h).
 *
 * Notation (N = 2^n joint actions, S = N + 1 states per player):
 *   p[j][s]   player j's cooperation probability in its state s
 *   P[g][a]   prob. of joint action a after joint action g = prod_j q_j(a_j | o_j(g))
 *   s0[a]     prob. of the first joint action = prod_j q_j(a_j | start)
 *   M         I - gamma P; v^i = M^-1 r^i, x = M^-T s0, V^i = s0.v^i = x.r^i
 * A logit moves only its own factor of each product, so
 *   dq_j(a_j | s) / dtheta[j][s] = q_j(a_j | s) c,  c = 1 - p (a_j = C) or -p (a_j = D).
 * Player j's state s is seen after exactly one joint action g (the rotation
 * is a bijection), so theta[j][s] moves row g of P alone, or s0 for the
 * start state.
 *
 * Storage: lu holds M row-major, which LAPACK (column-major) reads as M^T;
 * so x solves with trans 'N' and v^i with trans 'T'. */
#include "agora/games.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ag_game_exact {
  ag_game game;
  int n, N, S;
  double gamma;
  double *p;  /* (n, S) cooperation probabilities */
  double *P;  /* (N, N) transition matrix, row-major */
  double *s0; /* (N) */
  double *lu; /* (N, N) LU factors of M^T (column-major view) */
  lapack_int *ipiv;
  double *r;      /* (n, N) rewards r^i[a] */
  double *v;      /* (n, N) v^i = M^-1 r^i */
  double *x;      /* (N) M^-T s0 */
  double *values; /* (n) */
  double *occ;    /* (N) (1 - gamma) x */
  double *rhs;    /* (N) scratch for mixed */
  double *dv;     /* (N) */
  double *dx;     /* (N) */
  double *dP;     /* (N, N) */
  bool evaluated;
};

ag_status ag_game_exact_new(const ag_game *g, double gamma, ag_game_exact **out) {
  if (!g || !out) return ag_error_set(AG_ERR_INVALID, "ag_game_exact_new: NULL argument");
  *out = NULL;
  if (g->players < AG_GAME_MIN_PLAYERS || g->players > AG_GAME_MAX_PLAYERS)
    return ag_error_set(AG_ERR_INVALID, "games: players must be %d..%d, got %d",
                        AG_GAME_MIN_PLAYERS, AG_GAME_MAX_PLAYERS, g->players);
  if (!(gamma >= 0 && gamma < 1))
    return ag_error_set(AG_ERR_INVALID, "games: the discount must be in [0, 1), got %g", gamma);
  ag_game_exact *e = calloc(1, sizeof *e);
  if (!e) return ag_error_set(AG_ERR_NOMEM, "games: out of memory");
  e->game = *g;
  e->n = g->players;
  e->N = 1 << e->n;
  e->S = e->N + 1;
  e->gamma = gamma;
  size_t n = (size_t)e->n, N = (size_t)e->N, S = (size_t)e->S;
  e->p = calloc(n * S, sizeof(double));
  e->P = calloc(N * N, sizeof(double));
  e->s0 = calloc(N, sizeof(double));
  e->lu = calloc(N * N, sizeof(double));
  e->ipiv = calloc(N, sizeof(lapack_int));
  e->r = calloc(n * N, sizeof(double));
  e->v = calloc(n * N, sizeof(double));
  e->x = calloc(N, sizeof(double));
  e->values = calloc(n, sizeof(double));
  e->occ = calloc(N, sizeof(double));
  e->rhs = calloc(N, sizeof(double));
  e->dv = calloc(N, sizeof(double));
  e->dx = calloc(N, sizeof(double));
  e->dP = calloc(N * N, sizeof(double));
  if (!e->p || !e->P || !e->s0 || !e->lu || !e->ipiv || !e->r || !e->v || !e->x || !e->values ||
      !e->occ || !e->rhs || !e->dv || !e->dx || !e->dP) {
    ag_game_exact_free(e);
    return ag_error_set(AG_ERR_NOMEM, "games: out of memory");
  }
  for (int i = 0; i < e->n; i++)
    for (int a = 0; a < e->N; a++) e->r[(size_t)i * N + a] = ag_game_reward(g, a, i);
  *out = e;
  return AG_OK;
}

void ag_game_exact_free(ag_game_exact *e) {
  if (!e) return;
  free(e->p);
  free(e->P);
  free(e->s0);
  free(e->lu);
  free(e->ipiv);
  free(e->r);
  free(e->v);
  free(e->x);
  free(e->values);
  free(e->occ);
  free(e->rhs);
  free(e->dv);
  free(e->dx);
  free(e->dP);
  free(e);
}

int ag_game_exact_players(const ag_game_exact *e) { return e->n; }
double ag_game_exact_gamma(const ag_game_exact *e) { return e->gamma; }
const double *ag_game_exact_values(const ag_game_exact *e) { return e->values; }
const double *ag_game_exact_occupancy(const ag_game_exact *e) { return e->occ; }

static double sigmoid(double z) {
  if (z >= 0) return 1 / (1 + exp(-z));
  double t = exp(z);
  return t / (1 + t);
}

/* c_j(a | state): d log q_j(a_j | state) / d theta[j][state]. */
static inline double score(const ag_game_exact *e, int j, int a, int state) {
  double p = e->p[(size_t)j * e->S + state];
  return ag_game_action(e->n, a, j) == 0 ? 1 - p : -p;
}

/* Every player's cooperation probability in its state after joint action g
 * (g = N: the start state): coop (n). */
static void coop_after(const ag_game_exact *e, int g, double *coop) {
  for (int j = 0; j < e->n; j++) coop[j] = e->p[(size_t)j * e->S + ag_game_perspective(e->n, j, g)];
}

/* Probability of joint action a (player j's action is bit n-1-j) given
 * every player's cooperation probability coop (n). */
static double joint_prob(int n, const double *coop, int a) {
  double prob = 1;
  for (int j = 0; j < n; j++) prob *= (a >> (n - 1 - j)) & 1 ? 1 - coop[j] : coop[j];
  return prob;
}

ag_status ag_game_exact_evaluate(ag_game_exact *e, const double *theta) {
  if (!e || !theta) return ag_error_set(AG_ERR_INVALID, "ag_game_exact_evaluate: NULL argument");
  int n = e->n, N = e->N, S = e->S;
  e->evaluated = false;
  for (int k = 0; k < n * S; k++) {
    if (!isfinite(theta[k]))
      return ag_error_set(AG_ERR_INVALID, "games: logit theta[%d][%d] is not finite", k / S, k % S);
    e->p[k] = sigmoid(theta[k]);
  }
  double coop[AG_GAME_MAX_PLAYERS];
  for (int g = 0; g < N; g++) {
    coop_after(e, g, coop);
    for (int a = 0; a < N; a++) {
      double pr = joint_prob(n, coop, a);
      e->P[(size_t)g * N + a] = pr;
      e->lu[(size_t)g * N + a] = (g == a) - e->gamma * pr;
    }
  }
  coop_after(e, N, coop);
  for (int a = 0; a < N; a++) e->s0[a] = joint_prob(n, coop, a);
  lapack_int info = LAPACKE_dgetrf(LAPACK_COL_MAJOR, N, N, e->lu, N, e->ipiv);
  if (info != 0)
    return ag_error_set(AG_ERR_INTERNAL, "games: LU of I - gamma P failed (dgetrf info %d)",
                        (int)info);
  memcpy(e->v, e->r, sizeof(double) * (size_t)n * N);
  info = LAPACKE_dgetrs(LAPACK_COL_MAJOR, 'T', N, n, e->lu, N, e->ipiv, e->v, N);
  if (info == 0) {
    memcpy(e->x, e->s0, sizeof(double) * (size_t)N);
    info = LAPACKE_dgetrs(LAPACK_COL_MAJOR, 'N', N, 1, e->lu, N, e->ipiv, e->x, N);
  }
  if (info != 0) return ag_error_set(AG_ERR_INTERNAL, "games: dgetrs failed (info %d)", (int)info);
  for (int i = 0; i < n; i++) {
    double s = 0;
    for (int a = 0; a < N; a++) s += e->s0[a] * e->v[(size_t)i * N + a];
    e->values[i] = s;
  }
  for (int a = 0; a < N; a++) e->occ[a] = (1 - e->gamma) * e->x[a];
  e->evaluated = true;
  return AG_OK;
}

void ag_game_exact_cooperation(const ag_game_exact *e, double *coop) {
  for (int i = 0; i < e->n; i++) {
    double c = 0;
    for (int a = 0; a < e->N; a++)
      if (ag_game_action(e->n, a, i) == 0) c += e->occ[a];
    coop[i] = c;
  }
}

void ag_game_exact_gradients(const ag_game_exact *e, double *grad) {
  int n = e->n, N = e->N, S = e->S;
  double moved[1 << AG_GAME_MAX_PLAYERS]; /* row[a] c_j(a, s), shared by every i */
  for (int j = 0; j < n; j++) {
    for (int s = 0; s <= N; s++) {
      /* The row of P (or s0) that theta[j][s] moves, and its weight. */
      int g = s == N ? N : ag_game_joint_from_perspective(n, j, s);
      const double *row = s == N ? e->s0 : e->P + (size_t)g * N;
      double w = s == N ? 1 : e->gamma * e->x[g];
      for (int a = 0; a < N; a++) moved[a] = row[a] * score(e, j, a, s);
      /* One accumulator per player, each summed in the order of a: the n
       * sums run side by side instead of one long dependency chain. */
      double acc[AG_GAME_MAX_PLAYERS] = {0};
      for (int a = 0; a < N; a++)
        for (int i = 0; i < n; i++) acc[i] += moved[a] * e->v[(size_t)i * N + a];
      for (int i = 0; i < n; i++) grad[((size_t)i * n + j) * S + s] = w * acc[i];
    }
  }
}

ag_status ag_game_exact_mixed(ag_game_exact *e, int value_player, int wrt_player,
                              int tangent_player, const double *u, double *out) {
  if (!e || !u || !out) return ag_error_set(AG_ERR_INVALID, "ag_game_exact_mixed: NULL argument");
  int n = e->n, N = e->N;
  if (value_player < 0 || value_player >= n || wrt_player < 0 || wrt_player >= n ||
      tangent_player < 0 || tangent_player >= n)
    return ag_error_set(AG_ERR_INVALID, "ag_game_exact_mixed: players %d, %d, %d outside 0..%d",
                        value_player, wrt_player, tangent_player, n - 1);
  if (!e->evaluated)
    return ag_error_set(AG_ERR_INVALID, "ag_game_exact_mixed: no successful evaluation");
  const int i = wrt_player, j = tangent_player;
  const double gamma = e->gamma;
  const double *v = e->v + (size_t)value_player * N;
  /* Tangents of P and s0 along theta_j += eps u. */
  double ds0_scale = u[N];
  for (int g = 0; g < N; g++) {
    int sj = ag_game_perspective(n, j, g);
    for (int a = 0; a < N; a++)
      e->dP[(size_t)g * N + a] = e->P[(size_t)g * N + a] * score(e, j, a, sj) * u[sj];
  }
  /* dv = M^-1 (gamma dP v). */
  for (int g = 0; g < N; g++) {
    double s = 0;
    for (int a = 0; a < N; a++) s += e->dP[(size_t)g * N + a] * v[a];
    e->dv[g] = gamma * s;
  }
  /* dx = M^-T (ds0 + gamma dP^T x). */
  for (int a = 0; a < N; a++) e->dx[a] = e->s0[a] * score(e, j, a, N) * ds0_scale;
  for (int g = 0; g < N; g++) {
    double xg = gamma * e->x[g];
    for (int a = 0; a < N; a++) e->dx[a] += e->dP[(size_t)g * N + a] * xg;
  }
  lapack_int info = LAPACKE_dgetrs(LAPACK_COL_MAJOR, 'T', N, 1, e->lu, N, e->ipiv, e->dv, N);
  if (info == 0) info = LAPACKE_dgetrs(LAPACK_COL_MAJOR, 'N', N, 1, e->lu, N, e->ipiv, e->dx, N);
  if (info != 0) return ag_error_set(AG_ERR_INTERNAL, "games: dgetrs failed (info %d)", (int)info);
  /* The gradient wrt theta_i[s], differentiated:
   *   grad[s] = w(s) sum_a row[a] c_i(a, s) v[a], with w = gamma x[g] (or 1 at the start). */
  for (int s = 0; s <= N; s++) {
    int g = s == N ? N : ag_game_joint_from_perspective(n, i, s);
    const double *row = s == N ? e->s0 : e->P + (size_t)g * N;
    double pi = e->p[(size_t)i * e->S + s];
    /* d c_i / d eps: nonzero only when the tangent moves player i's own logit. */
    double dc = i == j ? -pi * (1 - pi) * u[s] : 0;
    double base = 0, dbase = 0;
    for (int a = 0; a < N; a++) {
      double c = score(e, i, a, s);
      double drow = s == N ? e->s0[a] * score(e, j, a, N) * ds0_scale : e->dP[(size_t)g * N + a];
      base += row[a] * c * v[a];
      dbase += drow * c * v[a] + row[a] * dc * v[a] + row[a] * c * e->dv[a];
    }
    if (s == N)
      out[s] = dbase;
    else
      out[s] = gamma * (e->dx[g] * base + e->x[g] * dbase);
  }
  return AG_OK;
}
