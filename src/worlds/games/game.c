/* n-player binary-action games: the payoff families of PAPERS.md §10, tables
 * from JSON files, and the joint-action / perspective indexing. */
#include "agora/games.h"
#include "agora/json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static ag_status check_players(int players) {
  if (players < AG_GAME_MIN_PLAYERS || players > AG_GAME_MAX_PLAYERS)
    return ag_error_set(AG_ERR_INVALID, "games: players must be %d..%d, got %d",
                        AG_GAME_MIN_PLAYERS, AG_GAME_MAX_PLAYERS, players);
  return AG_OK;
}

static void set_name(ag_game *g, const char *name) {
  snprintf(g->name, sizeof g->name, "%s", name ? name : "table");
}

/* Fills payoff[k][own] for k = 0..n from a family's closed form. */
static void fill_family(ag_game *g, int family, int n) {
  for (int k = 0; k <= n; k++) {
    int c = n - k; /* cooperators */
    double coop = 0, defect = 0;
    switch (family) {
    case 0: /* ipd */
      coop = 2.0 * (n - 1 - k);
      defect = 2.0 * (n - k) + 1;
      break;
    case 1: /* sd: benefit n to all if anyone cooperates, cost n-1 shared */
      coop = c > 0 ? n - (double)(n - 1) / c : 0;
      defect = c > 0 ? n : 0;
      break;
    case 2: { /* sh: threshold public good */
      int t = n <= 4 ? 2 : 3;
      if (c >= t) {
        defect = 6.0 * c / n;
        coop = defect - 3;
      } else {
        coop = -3;
        defect = 0;
      }
      break;
    }
    default: { /* tc: tragedy of the commons */
      int m = n <= 4 ? 1 : 2;
      coop = k <= m ? 2 : -3;
      defect = k <= m ? 5 : 0;
      break;
    }
    }
    g->payoff[k][0] = k == n ? NAN : coop;
    g->payoff[k][1] = k == 0 ? NAN : defect;
  }
}

ag_status ag_game_make(const char *family, int players, ag_game *out) {
  static const char *names[] = {"ipd", "sd", "sh", "tc"};
  if (!family || !out) return ag_error_set(AG_ERR_INVALID, "ag_game_make: NULL argument");
  int f = -1;
  for (int i = 0; i < 4; i++)
    if (!strcmp(family, names[i])) f = i;
  if (f < 0)
    return ag_error_set(AG_ERR_INVALID, "games: unknown game '%s' (ipd, sd, sh, tc or a file)",
                        family);
  if (players < 2 || players > 5)
    return ag_error_set(AG_ERR_INVALID, "games: '%s' is defined for 2..5 players, got %d", family,
                        players);
  memset(out, 0, sizeof *out);
  set_name(out, family);
  out->players = players;
  fill_family(out, f, players);
  return AG_OK;
}

ag_status ag_game_from_table(const char *name, int players, const double (*table)[2],
                             ag_game *out) {
  if (!table || !out) return ag_error_set(AG_ERR_INVALID, "ag_game_from_table: NULL argument");
  ag_status st = check_players(players);
  if (st) return st;
  for (int k = 0; k <= players; k++)
    for (int a = 0; a < 2; a++) {
      bool impossible = (k == 0 && a == 1) || (k == players && a == 0);
      if (!impossible && !isfinite(table[k][a]))
        return ag_error_set(AG_ERR_INVALID, "games: payoff[%d][%d]: not a finite number", k, a);
    }
  memset(out, 0, sizeof *out);
  set_name(out, name);
  out->players = players;
  for (int k = 0; k <= players; k++)
    for (int a = 0; a < 2; a++) {
      bool impossible = (k == 0 && a == 1) || (k == players && a == 0);
      out->payoff[k][a] = impossible ? NAN : table[k][a];
    }
  return AG_OK;
}

ag_status ag_game_load(const char *path, ag_game *out) {
  if (!path || !out) return ag_error_set(AG_ERR_INVALID, "ag_game_load: NULL argument");
  json_t *root = NULL;
  ag_status st = ag_json_load(path, &root);
  if (st) return st;
  double table[AG_GAME_MAX_PLAYERS + 1][2];
  const char *name = "table";
  int n = 0;
  st = AG_ERR_FORMAT;
  if (!json_is_object(root)) {
    ag_error_set(st, "%s: expected a JSON object with \"players\" and \"payoff\"", path);
    goto done;
  }
  json_t *jn = json_object_get(root, "name");
  if (jn) {
    if (!json_is_string(jn)) {
      ag_error_set(st, "%s: \"name\": expected a string", path);
      goto done;
    }
    name = json_string_value(jn);
  }
  json_t *jp = json_object_get(root, "players");
  if (!json_is_integer(jp)) {
    ag_error_set(st, "%s: \"players\": expected an integer", path);
    goto done;
  }
  json_int_t players = json_integer_value(jp);
  if (players < AG_GAME_MIN_PLAYERS || players > AG_GAME_MAX_PLAYERS) {
    ag_error_set(st, "%s: \"players\": must be %d..%d, got %lld", path, AG_GAME_MIN_PLAYERS,
                 AG_GAME_MAX_PLAYERS, (long long)players);
    goto done;
  }
  n = (int)players;
  json_t *rows = json_object_get(root, "payoff");
  if (!json_is_array(rows) || json_array_size(rows) != (size_t)n + 1) {
    ag_error_set(st, "%s: \"payoff\": expected an array of players + 1 = %d rows, got %s", path,
                 n + 1,
                 json_is_array(rows) ? "a different number of rows"
                 : rows              ? "a non-array"
                                     : "nothing");
    goto done;
  }
  for (int k = 0; k <= n; k++) {
    json_t *row = json_array_get(rows, (size_t)k);
    if (!json_is_array(row) || json_array_size(row) != 2) {
      ag_error_set(st, "%s: payoff[%d]: expected [cooperator, defector]", path, k);
      goto done;
    }
    for (int a = 0; a < 2; a++) {
      json_t *v = json_array_get(row, (size_t)a);
      bool impossible = (k == 0 && a == 1) || (k == n && a == 0);
      if (impossible && (json_is_null(v) || json_is_number(v))) {
        table[k][a] = NAN;
        continue;
      }
      if (!json_is_number(v) || !isfinite(json_number_value(v))) {
        ag_error_set(st, "%s: payoff[%d][%d]: not a finite number", path, k, a);
        goto done;
      }
      table[k][a] = json_number_value(v);
    }
  }
  st = ag_game_from_table(name, n, (const double(*)[2])table, out);
  if (st) ag_error_wrap(st, "%s", path);
done:
  json_decref(root);
  return st;
}

ag_status ag_game_open(const char *spec, int players, ag_game *out) {
  if (!spec || !out) return ag_error_set(AG_ERR_INVALID, "ag_game_open: NULL argument");
  static const char *names[] = {"ipd", "sd", "sh", "tc"};
  for (int i = 0; i < 4; i++)
    if (!strcmp(spec, names[i])) return ag_game_make(spec, players, out);
  ag_status st = ag_game_load(spec, out);
  if (st) return st;
  if (out->players != players)
    return ag_error_set(AG_ERR_INVALID, "%s: the table is for %d players, but %d were asked for",
                        spec, out->players, players);
  return AG_OK;
}

int ag_game_state_count(int players) { return (1 << players) + 1; }

int ag_game_defectors(int players, int joint) {
  int k = 0;
  for (int j = 0; j < players; j++) k += (joint >> j) & 1;
  return k;
}

int ag_game_action(int players, int joint, int player) {
  return (joint >> (players - 1 - player)) & 1;
}

int ag_game_perspective(int players, int player, int joint) {
  int full = 1 << players;
  if (joint >= full) return full; /* the start state */
  int r = player % players;
  if (r == 0) return joint;
  return ((joint << r) | (joint >> (players - r))) & (full - 1);
}

int ag_game_joint_from_perspective(int players, int player, int state) {
  int r = player % players;
  return ag_game_perspective(players, r ? players - r : 0, state);
}

double ag_game_reward(const ag_game *g, int joint, int player) {
  int n = g->players;
  return g->payoff[ag_game_defectors(n, joint)][ag_game_action(n, joint, player)];
}
