/* The maze family: a perfect maze (a random depth-first search over a grid
 * of cells) drawn as text, '#' walls and '.' open squares, S the start and
 * G the goal. The answer is a move string over U, D, L, R, one move per
 * square; any legal path that ends on G is correct, and the canonical
 * answer is the shortest one. See docs/tasks.md, "## maze". */
#include "task_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAZE_MAX_LEVEL = 5, MAZE_DEFAULT_LEVEL = 2 };
/* Tasks loaded from files may be larger than generated ones, up to this. */
enum { MAZE_MAX_SIDE = 64, MAZE_MAX_SQUARES = MAZE_MAX_SIDE * MAZE_MAX_SIDE };
/* Cells per side by level. The drawn grid has 2n - 1 squares per side:
 * cells on even rows and columns, and between two cells a wall or a
 * passage. No outer border: leaving the grid is illegal, like a wall. */
static const int cells_per_side[MAZE_MAX_LEVEL + 1] = {0, 3, 4, 5, 6, 8};
/* A repeated count in a leak ("right 30 times") is capped here: no maze
 * path needs more in one direction. */
enum { MAZE_MAX_REPEAT = 2 * MAZE_MAX_SIDE };

typedef struct maze {
  int rows, cols;
  char sq[MAZE_MAX_SQUARES]; // (rows, cols): '#', '.', 'S' or 'G'
  int start, goal;           // square indices r * cols + c
} maze;

enum { MOVE_U, MOVE_D, MOVE_L, MOVE_R };
static const char move_letters[] = "UDLR";
static const int move_dr[4] = {-1, 1, 0, 0}, move_dc[4] = {0, 0, -1, 1};
static const char *const move_words[4] = {"up", "down", "left", "right"};

/* ---- the grid ------------------------------------------------------------------- */

static ag_status maze_load(const ag_task *t, maze *m) {
  const json_t *grid = t->data ? json_object_get(t->data, "grid") : NULL;
  if (!json_is_array(grid) || json_array_size(grid) == 0 || json_array_size(grid) > MAZE_MAX_SIDE)
    return ag_error_set(AG_ERR_FORMAT, "maze task %s: data.grid must be 1..%d strings", t->id,
                        MAZE_MAX_SIDE);
  m->rows = (int)json_array_size(grid);
  m->cols = 0;
  m->start = m->goal = -1;
  for (int r = 0; r < m->rows; r++) {
    const char *row = json_string_value(json_array_get(grid, (size_t)r));
    size_t len = row ? strlen(row) : 0;
    if (!row || len == 0 || len > MAZE_MAX_SIDE || (r > 0 && (int)len != m->cols))
      return ag_error_set(AG_ERR_FORMAT, "maze task %s: grid row %d is missing or ragged", t->id,
                          r + 1);
    m->cols = (int)len;
    for (int c = 0; c < m->cols; c++) {
      char ch = row[c];
      int p = r * m->cols + c;
      if (ch != '#' && ch != '.' && ch != 'S' && ch != 'G')
        return ag_error_set(AG_ERR_FORMAT, "maze task %s: bad square '%c' in row %d", t->id, ch,
                            r + 1);
      if ((ch == 'S' && m->start >= 0) || (ch == 'G' && m->goal >= 0))
        return ag_error_set(AG_ERR_FORMAT, "maze task %s: more than one %c", t->id, ch);
      if (ch == 'S') m->start = p;
      if (ch == 'G') m->goal = p;
      m->sq[p] = ch;
    }
  }
  if (m->start < 0 || m->goal < 0)
    return ag_error_set(AG_ERR_FORMAT, "maze task %s: the grid needs one S and one G", t->id);
  return AG_OK;
}

/* 0: moved to *to; 1: off the grid; 2: into a wall. */
static int maze_step(const maze *m, int from, int dir, int *to) {
  int r = from / m->cols + move_dr[dir], c = from % m->cols + move_dc[dir];
  if (r < 0 || r >= m->rows || c < 0 || c >= m->cols) return 1;
  if (m->sq[r * m->cols + c] == '#') return 2;
  *to = r * m->cols + c;
  return 0;
}

/* Breadth-first distances from `from` over open squares; -1 where unreachable. */
static void maze_bfs(const maze *m, int from, int *dist) {
  int queue[MAZE_MAX_SQUARES];
  int n = m->rows * m->cols, head = 0, tail = 0;
  for (int p = 0; p < n; p++) dist[p] = -1;
  dist[from] = 0;
  queue[tail++] = from;
  while (head < tail) {
    int p = queue[head++];
    for (int d = 0; d < 4; d++) {
      int q;
      if (maze_step(m, p, d, &q) == 0 && dist[q] < 0) {
        dist[q] = dist[p] + 1;
        queue[tail++] = q;
      }
    }
  }
}

/* The shortest path from S to G, ties broken in the order U, D, L, R, into
 * path (at least rows * cols + 1 bytes). -1 when G cannot be reached. */
static int maze_shortest(const maze *m, char *path) {
  int dist[MAZE_MAX_SQUARES];
  maze_bfs(m, m->goal, dist);
  if (dist[m->start] < 0) return -1;
  int p = m->start, len = 0;
  while (p != m->goal) {
    for (int d = 0; d < 4; d++) {
      int q;
      if (maze_step(m, p, d, &q) == 0 && dist[q] == dist[p] - 1) {
        path[len++] = move_letters[d];
        p = q;
        break;
      }
    }
  }
  path[len] = '\0';
  return len;
}

static json_t *maze_grid_json(const maze *m) {
  json_t *grid = json_array();
  char row[MAZE_MAX_SIDE + 1];
  for (int r = 0; r < m->rows && grid; r++) {
    memcpy(row, m->sq + r * m->cols, (size_t)m->cols);
    row[m->cols] = '\0';
    if (json_array_append_new(grid, json_string(row)) != 0) {
      json_decref(grid);
      return NULL;
    }
  }
  return grid;
}

/* ---- generation ----------------------------------------------------------------- */

/* The recursive backtracker: a random spanning tree of the n x n cells, so
 * exactly one simple path joins any two squares. */
static void maze_carve(maze *m, int n, ag_rng *rng) {
  bool visited[MAZE_MAX_SIDE * MAZE_MAX_SIDE] = {false};
  int stack[MAZE_MAX_SIDE * MAZE_MAX_SIDE], top = 0;
  m->rows = m->cols = 2 * n - 1;
  for (int r = 0; r < m->rows; r++)
    for (int c = 0; c < m->cols; c++)
      m->sq[r * m->cols + c] = (r % 2 == 0 && c % 2 == 0) ? '.' : '#';
  int first = (int)ag_rng_below(rng, (uint64_t)(n * n));
  visited[first] = true;
  stack[top++] = first;
  while (top > 0) {
    int cell = stack[top - 1], ci = cell / n, cj = cell % n;
    int dirs[4], k = 0;
    for (int d = 0; d < 4; d++) {
      int ni = ci + move_dr[d], nj = cj + move_dc[d];
      if (ni >= 0 && ni < n && nj >= 0 && nj < n && !visited[ni * n + nj]) dirs[k++] = d;
    }
    if (k == 0) {
      top--;
      continue;
    }
    int d = dirs[ag_rng_below(rng, (uint64_t)k)];
    int ni = ci + move_dr[d], nj = cj + move_dc[d];
    m->sq[(2 * ci + move_dr[d]) * m->cols + 2 * cj + move_dc[d]] = '.';
    visited[ni * n + nj] = true;
    stack[top++] = ni * n + nj;
  }
}

/* S on a random cell, G on a random cell at least 2(n - 1) moves away (the
 * farthest cell when none is: one exists, a far corner is n - 1 cells
 * away in Manhattan distance). */
static void maze_place_ends(maze *m, int n, ag_rng *rng) {
  int dist[MAZE_MAX_SQUARES], candidates[MAZE_MAX_SIDE * MAZE_MAX_SIDE] = {0}, k = 0;
  int si = (int)ag_rng_below(rng, (uint64_t)n), sj = (int)ag_rng_below(rng, (uint64_t)n);
  m->start = 2 * si * m->cols + 2 * sj;
  maze_bfs(m, m->start, dist);
  int min_moves = 2 * (n - 1), farthest = m->start;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
      int p = 2 * i * m->cols + 2 * j;
      if (dist[p] >= min_moves) candidates[k++] = p;
      if (dist[p] > dist[farthest]) farthest = p;
    }
  m->goal = k > 0 ? candidates[ag_rng_below(rng, (uint64_t)k)] : farthest;
  m->sq[m->start] = 'S';
  m->sq[m->goal] = 'G';
}

static void append_grid(ag_strbuf *b, const maze *m) {
  for (int r = 0; r < m->rows; r++) {
    ag_strbuf_append(b, m->sq + r * m->cols, (size_t)m->cols);
    ag_strbuf_append(b, "\n", 1);
  }
}

static const char answer_format[] =
    "Give your final answer on a line \"Answer: <moves>\", the moves as one string of U, D, L "
    "and R.";

static ag_status maze_generate(int level, uint64_t seed, int64_t index, ag_task *out) {
  if (level < 1 || level > MAZE_MAX_LEVEL)
    return ag_error_set(AG_ERR_INVALID, "maze: level %d is outside 1..%d", level, MAZE_MAX_LEVEL);
  ag_rng rng;
  ag_task_rng(&rng, "maze", level, seed, index);
  maze local;
  int n = cells_per_side[level];
  maze_carve(&local, n, &rng);
  maze_place_ends(&local, n, &rng);
  char path[MAZE_MAX_SQUARES + 1];
  int len = maze_shortest(&local, path);
  if (len <= 0) return ag_error_set(AG_ERR_INTERNAL, "maze: generated an unsolvable maze");

  ag_strbuf problem = {0}, solution = {0};
  ag_strbuf_printf(&problem, "Find a path from S to G in this maze. # is a wall and . is open; "
                             "each move goes one square up (U), down (D), left (L) or right "
                             "(R).\n");
  append_grid(&problem, &local);
  ag_strbuf_printf(&problem, "%s", answer_format);

  int sr = local.start / local.cols, sc = local.start % local.cols;
  int gr = local.goal / local.cols, gc = local.goal % local.cols;
  ag_strbuf_printf(&solution,
                   "S is at row %d, column %d and G at row %d, column %d (rows from the top, "
                   "columns from the left).\n",
                   sr + 1, sc + 1, gr + 1, gc + 1);
  int p = local.start;
  for (int i = 0; i < len; i++) {
    int d = (int)(strchr(move_letters, path[i]) - move_letters);
    maze_step(&local, p, d, &p);
    ag_strbuf_printf(&solution, "%s%c (%d,%d)", i ? " " : "", path[i], p / local.cols + 1,
                     p % local.cols + 1);
  }
  ag_strbuf_printf(&solution, "\nReached G in %d moves.\nAnswer: %s", len, path);

  json_t *data = json_object();
  json_t *grid = maze_grid_json(&local);
  if (!data || !grid || json_object_set_new(data, "grid", grid) != 0) {
    json_decref(data);
    ag_strbuf_free(&problem);
    ag_strbuf_free(&solution);
    return ag_error_set(AG_ERR_NOMEM, "maze: out of memory");
  }
  char *problem_text = ag_strbuf_take(&problem), *solution_text = ag_strbuf_take(&solution);
  ag_status st;
  if (!problem_text || !solution_text) {
    json_decref(data);
    st = ag_error_set(AG_ERR_NOMEM, "maze: out of memory");
  } else {
    st = ag_task_fill(out, "maze", level, seed, index, problem_text, path, solution_text, data);
  }
  free(problem_text);
  free(solution_text);
  return st;
}

/* ---- reading move strings ------------------------------------------------------- */

static bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

/* The direction of a one-letter move (any case), or -1. */
static int letter_dir(char c) {
  switch (lower(c)) {
  case 'u': return MOVE_U;
  case 'd': return MOVE_D;
  case 'l': return MOVE_L;
  case 'r': return MOVE_R;
  default: return -1;
  }
}

/* Whether the word w[0..n) equals lower-case `s` ignoring case. */
static bool word_is(const char *w, size_t n, const char *s) {
  if (strlen(s) != n) return false;
  for (size_t i = 0; i < n; i++)
    if (lower(w[i]) != s[i]) return false;
  return true;
}

/* The direction of a direction word ("Right", "down"), or -1. */
static int word_dir(const char *w, size_t n) {
  for (int d = 0; d < 4; d++)
    if (word_is(w, n, move_words[d])) return d;
  return -1;
}

/* Whether every letter of w[0..n) is a move letter ("RRDL", "rrdl"). */
static bool all_move_letters(const char *w, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (letter_dir(w[i]) < 0) return false;
  return n > 0;
}

/* Reads the moves of an answer line: move letters in any case, alone or in
 * runs ("RRDL", "r r d l"), or the words up/down/left/right, separated by
 * anything that is not a letter or digit (spaces, commas, arrows), with
 * "then" and "and" allowed between moves. Any other word or a digit makes
 * the line unparsed; bad receives the offending token. *dirs is malloc'd. */
static bool parse_moves(const char *line, int **dirs, int *count, char *bad, size_t bad_size) {
  size_t n = strlen(line);
  *dirs = malloc((n + 1) * sizeof **dirs);
  *count = 0;
  bad[0] = '\0';
  if (!*dirs) return false;
  for (size_t i = 0; i < n;) {
    if (!is_letter(line[i]) && !is_digit(line[i])) {
      i++;
      continue;
    }
    size_t j = i;
    while (j < n && (is_letter(line[j]) || is_digit(line[j]))) j++;
    const char *w = line + i;
    size_t len = j - i;
    int d = word_dir(w, len);
    if (d >= 0) {
      (*dirs)[(*count)++] = d;
    } else if (all_move_letters(w, len)) {
      for (size_t k = 0; k < len; k++) (*dirs)[(*count)++] = letter_dir(w[k]);
    } else if (!word_is(w, len, "then") && !word_is(w, len, "and")) {
      snprintf(bad, bad_size, "%.*s", (int)(len < 32 ? len : 32), w);
      return false;
    }
    i = j;
  }
  if (*count == 0) snprintf(bad, bad_size, "%s", "no moves");
  return *count > 0;
}

/* ---- verifying ------------------------------------------------------------------ */

static bool put(ag_verdict *v, const char *key, json_t *value) {
  return json_object_set_new(v->diagnostics, key, value) == 0;
}

static json_t *move_json(int dir) {
  char move[2] = {move_letters[dir], '\0'};
  return json_string(move);
}

static ag_status maze_verify(const ag_task *task, const char *attempt, ag_verdict *out) {
  maze m;
  ag_status st = maze_load(task, &m);
  if (st != AG_OK) return st;
  memset(out, 0, sizeof *out);
  char *line = ag_first_line(attempt ? attempt : "");
  int *dirs = NULL, count = 0;
  char bad[40] = "no moves";
  bool parsed = line && parse_moves(line, &dirs, &count, bad, sizeof bad);
  bool out_of_memory = !line || !dirs;
  free(line);
  if (out_of_memory) return ag_error_set(AG_ERR_NOMEM, "maze: out of memory");
  if (!parsed) {
    free(dirs);
    st = ag_verdict_init(out, false, false, "unparsed");
    if (st == AG_OK && !put(out, "token", json_string(bad))) {
      ag_verdict_clear(out);
      st = ag_error_set(AG_ERR_NOMEM, "maze: out of memory");
    }
    return st;
  }
  int dist[MAZE_MAX_SQUARES];
  maze_bfs(&m, m.goal, dist);
  int p = m.start, first_away = 0, away_dir = 0, blocked = 0, i = 0;
  bool passed_goal = false;
  for (; i < count; i++) {
    int q;
    blocked = maze_step(&m, p, dirs[i], &q);
    if (blocked) break;
    if (!first_away && dist[q] > dist[p]) {
      first_away = i + 1;
      away_dir = dirs[i];
    }
    p = q;
    if (p == m.goal && i + 1 < count) passed_goal = true;
  }
  int r = p / m.cols, c = p % m.cols, gr = m.goal / m.cols, gc = m.goal % m.cols;
  bool ok;
  if (blocked) {
    // p is the square before the illegal move i.
    st = ag_verdict_init(out, false, true, "illegal_move");
    ok = st == AG_OK && put(out, "moves", json_integer(count)) &&
         put(out, "move_index", json_integer(i + 1)) && put(out, "move", move_json(dirs[i])) &&
         put(out, "row", json_integer(r + 1)) && put(out, "col", json_integer(c + 1)) &&
         put(out, "reason", json_string(blocked == 1 ? "edge" : "wall")) &&
         put(out, "distance", json_integer(dist[p])) &&
         put(out, "goal_row", json_integer(gr + 1)) && put(out, "goal_col", json_integer(gc + 1));
  } else if (p == m.goal) {
    char path[MAZE_MAX_SQUARES + 1];
    st = ag_verdict_init(out, true, true, "correct");
    ok = st == AG_OK && put(out, "moves", json_integer(count)) &&
         put(out, "shortest", json_integer(maze_shortest(&m, path)));
  } else {
    st = ag_verdict_init(out, false, true, "ended_elsewhere");
    ok = st == AG_OK && put(out, "moves", json_integer(count)) &&
         put(out, "row", json_integer(r + 1)) && put(out, "col", json_integer(c + 1)) &&
         put(out, "distance", json_integer(dist[p])) &&
         put(out, "manhattan", json_integer(abs(gr - r) + abs(gc - c))) &&
         put(out, "goal_row", json_integer(gr + 1)) && put(out, "goal_col", json_integer(gc + 1)) &&
         put(out, "passed_goal", json_boolean(passed_goal));
  }
  // The first move that takes the path farther from G (0: none), before
  // any illegal move.
  if (ok && !(out->correct)) {
    ok = put(out, "first_away", json_integer(first_away)) &&
         (!first_away || put(out, "away_move", move_json(away_dir)));
  }
  free(dirs);
  if (st == AG_OK && !ok) {
    ag_verdict_clear(out);
    st = ag_error_set(AG_ERR_NOMEM, "maze: out of memory");
  }
  return st;
}

/* ---- feedback ------------------------------------------------------------------- */

/* Phrasings: the first half is the training set, the second the held-out
 * set (ag_pick_phrasing). "{i}" is replaced by argument i. They avoid the
 * words up/down/left/right except where a direction is meant, so that no
 * feedback reads as a string of moves. */
static const char *const binary_phrasings[] = {
    "That is not correct.",     "Not quite.",
    "That path does not work.", "No, that is not it.",
    "That is wrong.",           "Sorry, that is incorrect.",
    "Not correct, try again.",  "That path is not a solution.",
};
/* {0}: "4 moves"; {1}: "further down and to the left". */
static const char *const ended_directional[] = {
    "Your path stops {0} short of the goal; from where you stop, the goal is {1}.",
    "You end {0} away from the goal. From there, the goal is {1}.",
    "That path ends {0} from the goal, which is {1} from your final square.",
    "Not at the goal yet: you finish {0} away, and the goal is {1} from there.",
    "Your moves leave you {0} from the goal; it is {1} from that point.",
    "The path finishes {0} away from G. Seen from your end point, G is {1}.",
    "You stop {0} before reaching G; G is {1} from the square you stop on.",
    "After your last move the goal is still {0} off, {1}.",
};
static const char *const passed_goal_phrasings[] = {
    "Your path reaches the goal but does not stop there.",
    "You pass through G and keep going; the path should end on G.",
    "Your moves go through the goal and then move on past it.",
    "You get to the goal at one point, but the path must end there.",
    "The path touches G and then carries on beyond it.",
    "You walk over the goal without stopping on it.",
    "At one point you stand on G, yet you keep moving.",
    "Your path visits the goal and then goes on.",
};
/* {0}: "runs into a wall" / "runs off the edge of the maze"; {1}: where. */
static const char *const illegal_directional[] = {
    "Your path {0} before it gets to the goal. Just before that move, the goal is {1}.",
    "One of your moves {0}. Just before it, the goal was {1}.",
    "That cannot be walked: the path {0} partway. At that point the goal is {1}.",
    "Your path is blocked: it {0}. Where it gets stuck, the goal is {1}.",
    "A move in your path {0}. From the last square you could reach, the goal is {1}.",
    "That path is not possible, since it {0}. The goal is {1} from the last square you reach.",
    "Part of your path {0}; from the square before the problem, the goal is {1}.",
    "Your moves fail where the path {0}. From there the goal is {1}.",
};
/* After the passed-goal sentence: {0} as above. */
static const char *const illegal_after_goal[] = {
    "After that, one of your moves {0}.",
    "Then the path {0}.",
    "Later a move {0}.",
    "Past the goal, your path {0}.",
    "Beyond that point the path {0}.",
    "One of the later moves {0}.",
    "Going on from there, the path {0}.",
    "Afterwards a move {0}.",
};
/* {0}: move number; {1}: its letter; {2}, {3}: row and column before it;
 * {4}: "a wall" / "the edge of the maze". */
static const char *const illegal_localised[] = {
    "Your move {0} ({1}) runs into {4}: from row {2}, column {3} you cannot go that way.",
    "Move number {0}, {1}, is blocked by {4} at row {2}, column {3}.",
    "Check move {0} ({1}): at row {2}, column {3} it would go into {4}.",
    "The problem is move {0} ({1}); from row {2}, column {3} it hits {4}.",
    "Move {0} of your path ({1}) hits {4} when you are at row {2}, column {3}.",
    "At row {2}, column {3}, your move {0} ({1}) is impossible: {4} is in the way.",
    "Step {0} of your answer, {1}, bumps into {4} from row {2}, column {3}.",
    "From row {2}, column {3} the move {1} (number {0} in your list) meets {4}.",
};
/* {0}: move number; {1}: its letter. */
static const char *const away_localised[] = {
    "Your move {0} ({1}) takes you away from the goal; the moves before it are fine.",
    "Things go wrong at move {0} ({1}): it leads away from G.",
    "Move {0} ({1}) is where your path turns away from the goal.",
    "Everything before move {0} is on track, but move {0} ({1}) heads away from the goal.",
    "The first move that leads away from G is move {0} ({1}).",
    "Your path is on course until move {0}, {1}, which goes away from the goal.",
    "Look again at move {0} ({1}): after it you are farther from the goal than before.",
    "Move {0} in your list ({1}) is the first one that increases the distance to G.",
};
/* {0}, {1}: row and column where the path ends; {2}: "4 moves". */
static const char *const short_localised[] = {
    "Every move you made is on track, but you stop at row {0}, column {1}, {2} from the goal.",
    "Your moves are all good so far; they end at row {0}, column {1}, {2} short of G.",
    "Nothing you did is wrong, but the path stops too early, at row {0}, column {1}, {2} short.",
    "You are heading the correct way, but you end at row {0}, column {1}, {2} from G.",
    "All your moves bring you closer, yet you halt at row {0}, column {1}, {2} away from G.",
    "The path is on course and simply stops early, at row {0}, column {1} ({2} to go).",
    "No move of yours is a mistake; you just end at row {0}, column {1} with {2} still needed.",
    "Keep going: you stop at row {0}, column {1}, and the goal is {2} away along open squares.",
};
static const char *const unparsed_phrasings[] = {
    "I could not read your moves; write them as one string of U, D, L and R.",
    "Your answer is not a move string. Use only the letters U, D, L, R.",
    "I cannot follow that answer: give the moves as letters U, D, L, R, one per step.",
    "That is not in the move format. Please answer with a string of U, D, L and R.",
    "The answer should be a sequence of moves (U, D, L, R); I could not read yours.",
    "I could not make out a path there. List the moves with the letters U, D, L and R.",
    "Please write the path as moves, each one of U, D, L or R.",
    "That answer is not a list of moves; use the four letters U, D, L and R.",
};
static const char *const correct_phrasings[] = {
    "That path reaches the goal.",
    "Correct, you get to G.",
    "Yes, that works.",
    "Well done, that is a path to the goal.",
    "That is correct.",
    "Good, the path ends on G.",
    "Yes, you reach the goal.",
    "That path is a solution.",
};
#define COUNT_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static int64_t diag_int(const json_t *diag, const char *key) {
  return json_integer_value(json_object_get(diag, key));
}

/* "further down and to the left": where the goal lies seen from (r, c). */
static void describe_where(char *buf, size_t size, int dr, int dc) {
  const char *v = dr < 0 ? "up" : dr > 0 ? "down" : NULL;
  const char *h = dc < 0 ? "to the left" : dc > 0 ? "to the right" : NULL;
  if (v && h)
    snprintf(buf, size, "further %s and %s", v, h);
  else if (v)
    snprintf(buf, size, "further %s", v);
  else
    snprintf(buf, size, "%s", h ? h : "where you are");
}

static void count_moves(char *buf, size_t size, int64_t n) {
  snprintf(buf, size, "%lld move%s", (long long)n, n == 1 ? "" : "s");
}

static ag_status maze_feedback(const ag_task *task, const ag_verdict *verdict,
                               ag_feedback_level level, ag_phrasing_set set, ag_rng *rng,
                               char **out) {
  *out = NULL;
  const json_t *diag = verdict ? verdict->diagnostics : NULL;
  const char *kind = json_string_value(json_object_get(diag, "kind"));
  if (!kind)
    return ag_error_set(AG_ERR_INVALID, "maze task %s: the verdict has no diagnostics", task->id);
  ag_strbuf b = {0};
  char a0[48], a1[48], a2[48], a3[48];
  if (strcmp(kind, "correct") == 0) {
    ag_pick_fill(&b, correct_phrasings, COUNT_OF(correct_phrasings), set, rng, NULL, 0);
  } else if (strcmp(kind, "unparsed") == 0) {
    ag_pick_fill(&b, unparsed_phrasings, COUNT_OF(unparsed_phrasings), set, rng, NULL, 0);
  } else if (level == AG_FEEDBACK_BINARY) {
    ag_pick_fill(&b, binary_phrasings, COUNT_OF(binary_phrasings), set, rng, NULL, 0);
  } else if (strcmp(kind, "illegal_move") == 0) {
    const char *reason = json_string_value(json_object_get(diag, "reason"));
    bool edge = reason && strcmp(reason, "edge") == 0;
    int64_t row = diag_int(diag, "row"), col = diag_int(diag, "col");
    if (level == AG_FEEDBACK_DIRECTIONAL) {
      const char *args[2] = {edge ? "runs off the edge of the maze" : "runs into a wall", a1};
      if (diag_int(diag, "distance") == 0) {
        ag_pick_fill(&b, passed_goal_phrasings, COUNT_OF(passed_goal_phrasings), set, rng, NULL, 0);
        ag_pick_fill(&b, illegal_after_goal, COUNT_OF(illegal_after_goal), set, rng, args, 1);
      } else {
        describe_where(a1, sizeof a1, (int)(diag_int(diag, "goal_row") - row),
                       (int)(diag_int(diag, "goal_col") - col));
        ag_pick_fill(&b, illegal_directional, COUNT_OF(illegal_directional), set, rng, args, 2);
      }
    } else {
      const char *move = json_string_value(json_object_get(diag, "move"));
      snprintf(a0, sizeof a0, "%lld", (long long)diag_int(diag, "move_index"));
      snprintf(a2, sizeof a2, "%lld", (long long)row);
      snprintf(a3, sizeof a3, "%lld", (long long)col);
      const char *args[5] = {a0, move ? move : "?", a2, a3,
                             edge ? "the edge of the maze" : "a wall"};
      ag_pick_fill(&b, illegal_localised, COUNT_OF(illegal_localised), set, rng, args, 5);
    }
  } else if (strcmp(kind, "ended_elsewhere") == 0) {
    int64_t row = diag_int(diag, "row"), col = diag_int(diag, "col");
    int64_t first_away = diag_int(diag, "first_away");
    if (json_is_true(json_object_get(diag, "passed_goal")))
      ag_pick_fill(&b, passed_goal_phrasings, COUNT_OF(passed_goal_phrasings), set, rng, NULL, 0);
    count_moves(a0, sizeof a0, diag_int(diag, "distance"));
    if (level == AG_FEEDBACK_DIRECTIONAL) {
      describe_where(a1, sizeof a1, (int)(diag_int(diag, "goal_row") - row),
                     (int)(diag_int(diag, "goal_col") - col));
      const char *args[2] = {a0, a1};
      ag_pick_fill(&b, ended_directional, COUNT_OF(ended_directional), set, rng, args, 2);
    } else if (first_away > 0) {
      const char *move = json_string_value(json_object_get(diag, "away_move"));
      snprintf(a1, sizeof a1, "%lld", (long long)first_away);
      const char *args[2] = {a1, move ? move : "?"};
      ag_pick_fill(&b, away_localised, COUNT_OF(away_localised), set, rng, args, 2);
    } else {
      snprintf(a1, sizeof a1, "%lld", (long long)row);
      snprintf(a2, sizeof a2, "%lld", (long long)col);
      const char *args[3] = {a1, a2, a0};
      ag_pick_fill(&b, short_localised, COUNT_OF(short_localised), set, rng, args, 3);
    }
  } else {
    ag_pick_fill(&b, binary_phrasings, COUNT_OF(binary_phrasings), set, rng, NULL, 0);
  }
  *out = ag_strbuf_take(&b);
  return *out ? AG_OK : ag_error_set(AG_ERR_NOMEM, "maze: out of memory");
}

/* ---- leaks ---------------------------------------------------------------------- */

/* Words that may stand between the moves of a path written out in prose
 * ("go right twice, then down") without ending it. */
static const char *const path_filler[] = {
    "then",  "and",     "go",      "move",  "moves", "step",  "steps", "again", "more",   "to",
    "the",   "further", "a",       "an",    "of",    "by",    "cell",  "cells", "square", "squares",
    "space", "spaces",  "finally", "first", "next",  "after", "that",  "is",    "it",     "you",
    "going", "head",    "turn",    "take",  "from",  "there", "now",   "once",
};
static const char *const count_words[] = {"zero", "one",   "two",   "three", "four", "five",
                                          "six",  "seven", "eight", "nine",  "ten"};

enum { TOKEN_DIR, TOKEN_NUM, TOKEN_TIMES, TOKEN_MULT, TOKEN_FILLER, TOKEN_PUNCT, TOKEN_BREAK };

typedef struct path_token {
  int type;
  int value;  // the direction, the count of NUM and MULT, the character of PUNCT
  bool glued; // no space or punctuation between it and the token before
} path_token;

typedef struct token_list {
  path_token *items;
  size_t count, capacity;
  bool failed;
} token_list;

static void token_push(token_list *l, int type, int value, bool glued) {
  if (l->count == l->capacity) {
    size_t cap = l->capacity ? 2 * l->capacity : 64;
    path_token *grown = realloc(l->items, cap * sizeof *grown);
    if (!grown) {
      l->failed = true;
      return;
    }
    l->items = grown;
    l->capacity = cap;
  }
  l->items[l->count++] = (path_token){type, value, glued};
}

static int clamp_count(long v) { return v > MAZE_MAX_REPEAT ? MAZE_MAX_REPEAT : (int)v; }

/* One letter piece of a word: move letters, a direction word, a count word,
 * "x"/"times", a filler, or anything else (which ends a run of moves). */
static void lex_letters(token_list *l, const char *w, size_t n, bool glued, bool digits_follow) {
  int d = word_dir(w, n);
  if (d >= 0) {
    token_push(l, TOKEN_DIR, d, glued);
    return;
  }
  if (all_move_letters(w, n)) {
    for (size_t k = 0; k < n; k++) token_push(l, TOKEN_DIR, letter_dir(w[k]), k > 0 || glued);
    return;
  }
  if (word_is(w, n, "x") || word_is(w, n, "times")) {
    token_push(l, TOKEN_TIMES, 0, glued);
    return;
  }
  if (digits_follow && n > 1 && lower(w[n - 1]) == 'x' && all_move_letters(w, n - 1)) {
    lex_letters(l, w, n - 1, glued, false); // "Rx3"
    token_push(l, TOKEN_TIMES, 0, true);
    return;
  }
  if (word_is(w, n, "twice") || word_is(w, n, "thrice")) {
    token_push(l, TOKEN_MULT, word_is(w, n, "twice") ? 2 : 3, glued);
    return;
  }
  for (int v = 0; v < COUNT_OF(count_words); v++)
    if (word_is(w, n, count_words[v])) {
      token_push(l, TOKEN_NUM, v, glued);
      return;
    }
  for (int k = 0; k < COUNT_OF(path_filler); k++)
    if (word_is(w, n, path_filler[k])) {
      token_push(l, TOKEN_FILLER, 0, glued);
      return;
    }
  token_push(l, TOKEN_BREAK, 0, glued);
}

static void lex_path(token_list *l, const char *text) {
  size_t n = strlen(text);
  bool glued = false;
  for (size_t i = 0; i < n;) {
    char ch = text[i];
    if (is_digit(ch)) {
      size_t j = i;
      long v = 0;
      while (j < n && is_digit(text[j])) {
        if (v < 1000000) v = v * 10 + (text[j] - '0');
        j++;
      }
      token_push(l, TOKEN_NUM, clamp_count(v), glued);
      glued = true;
      i = j;
    } else if (is_letter(ch)) {
      size_t j = i;
      while (j < n && is_letter(text[j])) j++;
      lex_letters(l, text + i, j - i, glued, j < n && is_digit(text[j]));
      glued = true;
      i = j;
    } else {
      if (ch != ' ' && ch != '\t') token_push(l, TOKEN_PUNCT, (unsigned char)ch, false);
      glued = false;
      i++;
    }
  }
}

/* Whether some stretch of the moves walks from S to G without a wall. */
static bool walks_to_goal(const maze *m, const int *dirs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int p = m->start;
    for (size_t j = i; j < n; j++) {
      if (maze_step(m, p, dirs[j], &p) != 0) break;
      if (p == m->goal) return true;
    }
  }
  return false;
}

/* Reads text as runs of moves: move letters and direction words with
 * counts ("3R", "R3", "Rx3", "3 right", "right 3 times", "right twice"),
 * joined by punctuation and filler words; any other word ends a run. A run
 * leaks when some stretch of it walks from S to G. */
static bool maze_leaks(const ag_task *task, const char *text) {
  maze m;
  if (!text || maze_load(task, &m) != AG_OK) {
    ag_error_clear();
    return false;
  }
  token_list l = {0};
  lex_path(&l, text);
  token_push(&l, TOKEN_BREAK, 0, false);
  int *dirs = malloc((l.count * MAZE_MAX_REPEAT + 1) * sizeof *dirs);
  if (l.failed || !dirs) {
    // Out of memory: refuse the text rather than let a leak through.
    free(l.items);
    free(dirs);
    return true;
  }
  size_t count = 0;
  int last = -1; // the index of the last DIR token of the run
  bool leak = false;
  for (size_t i = 0; i < l.count && !leak; i++) {
    const path_token *t = &l.items[i];
    const path_token *prev = i > 0 ? &l.items[i - 1] : NULL;
    switch (t->type) {
    case TOKEN_DIR: {
      // A gloss such as "down (D)" names one move, not two.
      if (i >= 2 && prev->type == TOKEN_PUNCT && prev->value == '(' &&
          l.items[i - 2].type == TOKEN_DIR && l.items[i - 2].value == t->value)
        break;
      // "3 right" / "3R": a count right before the move, with only spaces between.
      int times = prev && prev->type == TOKEN_NUM &&
                          (i < 2 || l.items[i - 2].type != TOKEN_DIR || !prev->glued)
                      ? prev->value
                      : 1;
      for (int k = 0; k < times; k++) dirs[count++] = t->value;
      last = (int)i;
      break;
    }
    case TOKEN_NUM: {
      // "R3" (glued to its move), "right 3 times", "R x3": the count follows
      // the move; it repeats it count - 1 more times.
      bool after_move =
          prev && ((prev->type == TOKEN_DIR && t->glued) ||
                   (prev->type == TOKEN_TIMES && i >= 2 && l.items[i - 2].type == TOKEN_DIR));
      bool before_times =
          prev && prev->type == TOKEN_DIR && i + 1 < l.count && l.items[i + 1].type == TOKEN_TIMES;
      if ((after_move || before_times) && last >= 0)
        for (int k = 1; k < t->value; k++) dirs[count++] = l.items[last].value;
      break;
    }
    case TOKEN_MULT:
      if (prev && prev->type == TOKEN_DIR)
        for (int k = 1; k < t->value; k++) dirs[count++] = prev->value;
      break;
    case TOKEN_BREAK:
      leak = walks_to_goal(&m, dirs, count);
      count = 0;
      last = -1;
      break;
    default: break;
    }
  }
  free(dirs);
  free(l.items);
  return leak;
}

/* ---- solving and sharding ------------------------------------------------------- */

static ag_status maze_solve(const ag_task *task, char **answer) {
  maze m;
  ag_status st = maze_load(task, &m);
  if (st != AG_OK) return st;
  char path[MAZE_MAX_SQUARES + 1];
  if (maze_shortest(&m, path) < 0)
    return ag_error_set(AG_ERR_FORMAT, "maze task %s: G cannot be reached from S", task->id);
  *answer = strdup(path);
  return *answer ? AG_OK : ag_error_set(AG_ERR_NOMEM, "maze: out of memory");
}

static void free_shards(ag_task *t) {
  for (int i = 0; i < t->shard_count; i++) free(t->shards[i].text);
  free(t->shards);
  t->shards = NULL;
  t->shard_count = 0;
}

/* The goal, then one shard per row; a row is required when the shortest
 * path crosses it (in a perfect maze every path from S to G does). */
static ag_status maze_shard(ag_task *task) {
  maze m;
  ag_status st = maze_load(task, &m);
  if (st != AG_OK) return st;
  char path[MAZE_MAX_SQUARES + 1];
  if (maze_shortest(&m, path) < 0)
    return ag_error_set(AG_ERR_FORMAT, "maze task %s: G cannot be reached from S", task->id);
  bool on_path[MAZE_MAX_SIDE] = {false};
  int p = m.start;
  on_path[p / m.cols] = true;
  for (const char *c = path; *c; c++) {
    maze_step(&m, p, (int)(strchr(move_letters, *c) - move_letters), &p);
    on_path[p / m.cols] = true;
  }
  free_shards(task);
  char text[512];
  snprintf(text, sizeof text,
           "Find a path from S to G in a maze of %d rows and %d columns that I will show you "
           "row by row. # is a wall and . is open; each move goes one square up (U), down (D), "
           "left (L) or right (R). %s",
           m.rows, m.cols, answer_format);
  st = ag_task_add_shard(task, text, false); // given up front
  for (int r = 0; r < m.rows && st == AG_OK; r++) {
    snprintf(text, sizeof text, "Row %d of the maze: %.*s", r + 1, m.cols, m.sq + r * m.cols);
    st = ag_task_add_shard(task, text, on_path[r]);
  }
  return st;
}

const ag_task_family ag_task_family_maze = {
    .name = "maze",
    .summary = "find a path through a text grid maze; the answer is a move string (U/D/L/R)",
    .max_level = MAZE_MAX_LEVEL,
    .default_level = MAZE_DEFAULT_LEVEL,
    .generate = maze_generate,
    .verify = maze_verify,
    .feedback = maze_feedback,
    .leaks = maze_leaks,
    .solve = maze_solve,
    .shard = maze_shard,
};
