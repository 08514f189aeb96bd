/* The `code` family's expression language: lexer, parser (typed AST),
 * canonical printer, interpreter and enumerative search. See code_lang.h
 * and docs/tasks.md ("code"). */
#include "worlds/tasks/code_lang.h"

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- operators ---------------------------------------------------------------------- */

/* Precedence, loosest first: if 0, or 1, and 2, not 3, comparisons 4, + - 5,
 * * / % 6, unary minus 7, atoms (numbers, x, calls) 8. */
typedef struct op_info {
  const char *text;
  uint8_t arity, precedence, operand; /* operand: the type every operand must have */
  uint8_t result;
} op_info;

static const op_info OPS[AG_CODE_OP_COUNT] = {
    [AG_CODE_CONST] = {"", 0, 8, AG_CODE_INT, AG_CODE_INT},
    [AG_CODE_VAR] = {"x", 0, 8, AG_CODE_INT, AG_CODE_INT},
    [AG_CODE_NEG] = {"-", 1, 7, AG_CODE_INT, AG_CODE_INT},
    [AG_CODE_ABS] = {"abs", 1, 8, AG_CODE_INT, AG_CODE_INT},
    [AG_CODE_NOT] = {"not", 1, 3, AG_CODE_BOOL, AG_CODE_BOOL},
    [AG_CODE_ADD] = {"+", 2, 5, AG_CODE_INT, AG_CODE_INT},
    [AG_CODE_SUB] = {"-", 2, 5, AG_CODE_INT, AG_CODE_INT},
    [AG_CODE_MUL] = {"*", 2, 6, AG_CODE_INT, AG_CODE_INT},
    [AG_CODE_DIV] = {"/", 2, 6, AG_CODE_INT, AG_CODE_INT},
    [AG_CODE_MOD] = {"%", 2, 6, AG_CODE_INT, AG_CODE_INT},
    [AG_CODE_MIN] = {"min", 2, 8, AG_CODE_INT, AG_CODE_INT},
    [AG_CODE_MAX] = {"max", 2, 8, AG_CODE_INT, AG_CODE_INT},
    [AG_CODE_LT] = {"<", 2, 4, AG_CODE_INT, AG_CODE_BOOL},
    [AG_CODE_LE] = {"<=", 2, 4, AG_CODE_INT, AG_CODE_BOOL},
    [AG_CODE_GT] = {">", 2, 4, AG_CODE_INT, AG_CODE_BOOL},
    [AG_CODE_GE] = {">=", 2, 4, AG_CODE_INT, AG_CODE_BOOL},
    [AG_CODE_EQ] = {"==", 2, 4, AG_CODE_INT, AG_CODE_BOOL},
    [AG_CODE_NE] = {"!=", 2, 4, AG_CODE_INT, AG_CODE_BOOL},
    [AG_CODE_AND] = {"and", 2, 2, AG_CODE_BOOL, AG_CODE_BOOL},
    [AG_CODE_OR] = {"or", 2, 1, AG_CODE_BOOL, AG_CODE_BOOL},
    [AG_CODE_IF] = {"if", 3, 0, AG_CODE_BOOL, AG_CODE_INT},
};

void ag_code_init(ag_code_program *p) {
  p->count = 0;
  p->root = -1;
}

/* Why a node cannot be added (for the parser's messages). */
typedef enum add_problem {
  ADD_OK,
  ADD_BAD,      /* bad op, arity or child index (programmer error) */
  ADD_TYPE,     /* an operand of the wrong type: bad_kid says which */
  ADD_BRANCHES, /* if-branches of different types */
  ADD_TOO_MANY, /* AG_CODE_MAX_NODES reached */
  ADD_TOO_DEEP  /* AG_CODE_MAX_DEPTH exceeded */
} add_problem;

static add_problem add_node(ag_code_program *p, ag_code_op op, int a, int b, int c, int64_t value,
                            int32_t position, int *index, int *bad_kid) {
  if ((int)op < 0 || op >= AG_CODE_OP_COUNT) return ADD_BAD;
  const op_info *info = &OPS[op];
  int kids[3] = {a, b, c};
  int depth = 0;
  for (int i = 0; i < 3; i++) {
    bool want = i < info->arity;
    if (!want) {
      if (kids[i] != -1) return ADD_BAD;
      continue;
    }
    if (kids[i] < 0 || kids[i] >= p->count) return ADD_BAD;
    const ag_code_node *k = &p->nodes[kids[i]];
    uint8_t need = op == AG_CODE_IF && i > 0 ? k->type : info->operand;
    if (k->type != need) {
      *bad_kid = kids[i];
      return ADD_TYPE;
    }
    if (k->depth > depth) depth = k->depth;
  }
  if (op == AG_CODE_CONST && value < 0) return ADD_BAD;
  if (op == AG_CODE_IF && p->nodes[b].type != p->nodes[c].type) return ADD_BRANCHES;
  if (depth + 1 > AG_CODE_MAX_DEPTH) return ADD_TOO_DEEP;
  if (p->count >= AG_CODE_MAX_NODES) return ADD_TOO_MANY;
  ag_code_node *n = &p->nodes[p->count];
  n->value = op == AG_CODE_CONST ? value : 0;
  n->position = position;
  n->kid[0] = (int16_t)a;
  n->kid[1] = (int16_t)b;
  n->kid[2] = (int16_t)c;
  n->op = (uint8_t)op;
  n->type = op == AG_CODE_IF ? p->nodes[b].type : info->result;
  n->depth = (uint8_t)(depth + 1);
  *index = p->count++;
  return ADD_OK;
}

int ag_code_add(ag_code_program *p, ag_code_op op, int a, int b, int c, int64_t value) {
  int index = -1, bad = -1;
  return add_node(p, op, a, b, c, value, 0, &index, &bad) == ADD_OK ? index : -1;
}

static int count_nodes(const ag_code_program *p, int node) {
  if (node < 0) return 0;
  const ag_code_node *n = &p->nodes[node];
  return 1 + count_nodes(p, n->kid[0]) + count_nodes(p, n->kid[1]) + count_nodes(p, n->kid[2]);
}

int ag_code_size(const ag_code_program *p) { return p->root < 0 ? 0 : count_nodes(p, p->root); }

bool ag_code_uses_x(const ag_code_program *p, int node) {
  if (node < 0) return false;
  const ag_code_node *n = &p->nodes[node];
  if (n->op == AG_CODE_VAR) return true;
  for (int i = 0; i < 3; i++)
    if (ag_code_uses_x(p, n->kid[i])) return true;
  return false;
}

/* ---- lexer -------------------------------------------------------------------------- */

typedef enum tok {
  T_END,
  T_NUM,
  T_X,
  T_IF,
  T_THEN,
  T_ELSE,
  T_AND,
  T_OR,
  T_NOT,
  T_ABS,
  T_MIN,
  T_MAX,
  T_PLUS,
  T_MINUS,
  T_STAR,
  T_SLASH,
  T_PERCENT,
  T_LT,
  T_LE,
  T_GT,
  T_GE,
  T_EQ,
  T_NE,
  T_LPAREN,
  T_RPAREN,
  T_COMMA,
  /* not in the language; named so that messages can say what to write */
  T_BIG_NUM,
  T_NAME,
  T_ASSIGN,
  T_AMPAMP,
  T_BARBAR,
  T_BANG,
  T_CHAR
} tok;

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
static bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static const struct {
  const char *word;
  tok t;
} KEYWORDS[] = {{"x", T_X},   {"if", T_IF},   {"then", T_THEN}, {"else", T_ELSE}, {"and", T_AND},
                {"or", T_OR}, {"not", T_NOT}, {"abs", T_ABS},   {"min", T_MIN},   {"max", T_MAX}};

static tok lex(const char *s, size_t len, size_t *pos, size_t *start, size_t *end, int64_t *value) {
  size_t i = *pos;
  while (i < len && is_space(s[i])) i++;
  *start = i;
  tok t;
  if (i >= len) {
    t = T_END;
  } else if (is_digit(s[i])) {
    uint64_t v = 0;
    bool big = false;
    while (i < len && is_digit(s[i])) {
      uint64_t d = (uint64_t)(s[i] - '0');
      if (v > ((uint64_t)INT64_MAX - d) / 10)
        big = true;
      else
        v = v * 10 + d;
      i++;
    }
    *value = big ? 0 : (int64_t)v;
    t = big ? T_BIG_NUM : T_NUM;
  } else if (is_alpha(s[i])) {
    size_t j = i;
    while (j < len && (is_alpha(s[j]) || is_digit(s[j]))) j++;
    t = T_NAME;
    for (size_t k = 0; k < sizeof KEYWORDS / sizeof KEYWORDS[0]; k++)
      if (strlen(KEYWORDS[k].word) == j - i && memcmp(KEYWORDS[k].word, s + i, j - i) == 0)
        t = KEYWORDS[k].t;
    i = j;
  } else {
    char c = s[i], d = i + 1 < len ? s[i + 1] : '\0';
    int width = 1;
    switch (c) {
    case '+': t = T_PLUS; break;
    case '-': t = T_MINUS; break;
    case '*': t = T_STAR; break;
    case '/':
      t = T_SLASH;
      if (d == '/') width = 2; /* Python's floor division, the same operator here */
      break;
    case '%': t = T_PERCENT; break;
    case '(': t = T_LPAREN; break;
    case ')': t = T_RPAREN; break;
    case ',': t = T_COMMA; break;
    case '<':
      t = d == '=' ? T_LE : T_LT;
      width = d == '=' ? 2 : 1;
      break;
    case '>':
      t = d == '=' ? T_GE : T_GT;
      width = d == '=' ? 2 : 1;
      break;
    case '=':
      t = d == '=' ? T_EQ : T_ASSIGN;
      width = d == '=' ? 2 : 1;
      break;
    case '!':
      t = d == '=' ? T_NE : T_BANG;
      width = d == '=' ? 2 : 1;
      break;
    case '&':
      t = d == '&' ? T_AMPAMP : T_CHAR;
      width = d == '&' ? 2 : 1;
      break;
    case '|':
      t = d == '|' ? T_BARBAR : T_CHAR;
      width = d == '|' ? 2 : 1;
      break;
    default:
      t = T_CHAR;
      /* one UTF-8 sequence is one character */
      while (i + (size_t)width < len && ((unsigned char)s[i + (size_t)width] & 0xC0) == 0x80 &&
             ((unsigned char)c & 0x80))
        width++;
      break;
    }
    i += (size_t)width;
  }
  *end = i;
  *pos = i;
  return t;
}

ag_code_token_kind ag_code_next_token(const char *text, size_t length, size_t *pos, size_t *start,
                                      size_t *end) {
  int64_t value;
  tok t = lex(text, length, pos, start, end, &value);
  if (t == T_END) return AG_CODE_TOKEN_END;
  return t < T_BIG_NUM ? AG_CODE_TOKEN_LANGUAGE : AG_CODE_TOKEN_OTHER;
}

/* ---- parser ------------------------------------------------------------------------- */

typedef struct parser {
  const char *src;
  size_t len, pos;
  tok t;
  size_t ts, te; /* current token's byte range */
  int64_t tv;    /* its value when a number */
  ag_code_program *p;
  ag_code_error *err;
  int nesting;
  bool failed;
} parser;

static void advance(parser *ps) {
  ps->t = lex(ps->src, ps->len, &ps->pos, &ps->ts, &ps->te, &ps->tv);
}

static int fail(parser *ps, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(parser *ps, size_t at, const char *fmt, ...) {
  if (!ps->failed && ps->err) {
    ps->err->position = (int)at;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->err->message, sizeof ps->err->message, fmt, ap);
    va_end(ap);
  }
  ps->failed = true;
  return -1;
}

/* The current token quoted (at most 20 bytes of it), or "the end". */
static const char *describe(const parser *ps, char *buf, size_t size) {
  if (ps->t == T_END) return "the end";
  size_t n = ps->te - ps->ts;
  snprintf(buf, size, "'%.*s%s'", (int)(n > 20 ? 20 : n), ps->src + ps->ts, n > 20 ? "..." : "");
  return buf;
}

/* An error at the current token: tokens the language lacks get a hint. */
static int unexpected(parser *ps, const char *wanted) {
  char buf[40];
  switch (ps->t) {
  case T_ASSIGN: return fail(ps, ps->ts, "'=' is not an operator: compare with ==");
  case T_AMPAMP: return fail(ps, ps->ts, "write 'and' instead of &&");
  case T_BARBAR: return fail(ps, ps->ts, "write 'or' instead of ||");
  case T_BANG: return fail(ps, ps->ts, "write 'not' instead of !");
  case T_BIG_NUM: return fail(ps, ps->ts, "number too large");
  case T_NAME:
    return fail(ps, ps->ts, "unknown name %s: the input is x", describe(ps, buf, sizeof buf));
  case T_CHAR: return fail(ps, ps->ts, "unexpected character %s", describe(ps, buf, sizeof buf));
  default: return fail(ps, ps->ts, "expected %s, found %s", wanted, describe(ps, buf, sizeof buf));
  }
}

static bool enter(parser *ps) {
  if (++ps->nesting > AG_CODE_MAX_DEPTH) {
    fail(ps, ps->ts, "the program is nested too deeply (over %d levels)", AG_CODE_MAX_DEPTH);
    return false;
  }
  return true;
}

static int mk(parser *ps, ag_code_op op, int a, int b, int c, int64_t value, size_t position) {
  if (ps->failed) return -1;
  int index = -1, bad = -1;
  switch (add_node(ps->p, op, a, b, c, value, (int32_t)position, &index, &bad)) {
  case ADD_OK: return index;
  case ADD_TYPE: {
    const ag_code_node *k = &ps->p->nodes[bad];
    if (op == AG_CODE_IF)
      return fail(ps, (size_t)k->position, "the condition after 'if' must be a comparison");
    if (k->type == AG_CODE_BOOL)
      return fail(ps, (size_t)k->position, "'%s' needs numbers, but this is a condition",
                  OPS[op].text);
    return fail(ps, (size_t)k->position,
                "'%s' needs conditions (comparisons), but this is a number", OPS[op].text);
  }
  case ADD_BRANCHES:
    return fail(ps, position, "the branches of 'if' must both be numbers or both conditions");
  case ADD_TOO_DEEP:
    return fail(ps, position, "the program is nested too deeply (over %d levels)",
                AG_CODE_MAX_DEPTH);
  case ADD_TOO_MANY:
    return fail(ps, position, "the program is too long (over %d operations)", AG_CODE_MAX_NODES);
  default: return fail(ps, position, "internal error building the program");
  }
}

static bool expect(parser *ps, tok t, const char *wanted) {
  if (ps->failed) return false;
  if (ps->t != t) {
    unexpected(ps, wanted);
    return false;
  }
  advance(ps);
  return true;
}

static int parse_expr(parser *ps);

static int parse_if(parser *ps) {
  size_t at = ps->ts;
  advance(ps); /* if */
  int c = parse_expr(ps);
  if (!expect(ps, T_THEN, "'then'")) return -1;
  int a = parse_expr(ps);
  if (!expect(ps, T_ELSE, "'else'")) return -1;
  int b = parse_expr(ps);
  return mk(ps, AG_CODE_IF, c, a, b, 0, at);
}

static int parse_call(parser *ps) {
  tok name = ps->t;
  const char *text = name == T_ABS ? "abs" : name == T_MIN ? "min" : "max";
  size_t at = ps->ts;
  advance(ps);
  if (ps->t != T_LPAREN) return fail(ps, ps->ts, "%s needs its arguments in parentheses", text);
  advance(ps);
  int a = parse_expr(ps), b = -1;
  if (ps->failed) return -1;
  if (name == T_ABS) {
    if (ps->t == T_COMMA) return fail(ps, ps->ts, "abs takes one argument");
  } else {
    if (ps->t == T_RPAREN) return fail(ps, ps->ts, "%s takes two arguments", text);
    if (!expect(ps, T_COMMA, "','")) return -1;
    b = parse_expr(ps);
    if (ps->failed) return -1;
    if (ps->t == T_COMMA) return fail(ps, ps->ts, "%s takes two arguments", text);
  }
  if (!expect(ps, T_RPAREN, "')'")) return -1;
  ag_code_op op = name == T_ABS ? AG_CODE_ABS : name == T_MIN ? AG_CODE_MIN : AG_CODE_MAX;
  return mk(ps, op, a, b, -1, 0, at);
}

static int parse_atom(parser *ps) {
  if (ps->failed) return -1;
  size_t at = ps->ts;
  switch (ps->t) {
  case T_NUM: {
    int64_t v = ps->tv;
    advance(ps);
    return mk(ps, AG_CODE_CONST, -1, -1, -1, v, at);
  }
  case T_X: advance(ps); return mk(ps, AG_CODE_VAR, -1, -1, -1, 0, at);
  case T_LPAREN: {
    advance(ps);
    int e = parse_expr(ps);
    if (!expect(ps, T_RPAREN, "')'")) return -1;
    return e;
  }
  case T_ABS:
  case T_MIN:
  case T_MAX: return parse_call(ps);
  case T_IF: return parse_if(ps);
  default: return unexpected(ps, "a number, x, '(' or a function");
  }
}

static int parse_unary(parser *ps) {
  if (ps->failed) return -1;
  if (ps->t != T_MINUS) return parse_atom(ps);
  size_t at = ps->ts;
  advance(ps);
  if (!enter(ps)) return -1;
  int a = parse_unary(ps);
  ps->nesting--;
  return mk(ps, AG_CODE_NEG, a, -1, -1, 0, at);
}

static int parse_term(parser *ps) {
  int l = parse_unary(ps);
  while (!ps->failed && (ps->t == T_STAR || ps->t == T_SLASH || ps->t == T_PERCENT)) {
    ag_code_op op = ps->t == T_STAR ? AG_CODE_MUL : ps->t == T_SLASH ? AG_CODE_DIV : AG_CODE_MOD;
    size_t at = ps->ts;
    advance(ps);
    int r = parse_unary(ps);
    l = mk(ps, op, l, r, -1, 0, at);
  }
  return l;
}

static int parse_sum(parser *ps) {
  int l = parse_term(ps);
  while (!ps->failed && (ps->t == T_PLUS || ps->t == T_MINUS)) {
    ag_code_op op = ps->t == T_PLUS ? AG_CODE_ADD : AG_CODE_SUB;
    size_t at = ps->ts;
    advance(ps);
    int r = parse_term(ps);
    l = mk(ps, op, l, r, -1, 0, at);
  }
  return l;
}

static bool comparison(tok t, ag_code_op *op) {
  switch (t) {
  case T_LT: *op = AG_CODE_LT; return true;
  case T_LE: *op = AG_CODE_LE; return true;
  case T_GT: *op = AG_CODE_GT; return true;
  case T_GE: *op = AG_CODE_GE; return true;
  case T_EQ: *op = AG_CODE_EQ; return true;
  case T_NE: *op = AG_CODE_NE; return true;
  default: return false;
  }
}

static int parse_cmp(parser *ps) {
  int l = parse_sum(ps);
  ag_code_op op;
  if (ps->failed || !comparison(ps->t, &op)) return l;
  size_t at = ps->ts;
  advance(ps);
  int r = parse_sum(ps);
  l = mk(ps, op, l, r, -1, 0, at);
  if (!ps->failed && comparison(ps->t, &op))
    return fail(ps, ps->ts, "comparisons cannot be chained: join them with 'and'");
  return l;
}

static int parse_not(parser *ps) {
  if (ps->failed) return -1;
  if (ps->t != T_NOT) return parse_cmp(ps);
  size_t at = ps->ts;
  advance(ps);
  if (!enter(ps)) return -1;
  int a = parse_not(ps);
  ps->nesting--;
  return mk(ps, AG_CODE_NOT, a, -1, -1, 0, at);
}

static int parse_and(parser *ps) {
  int l = parse_not(ps);
  while (!ps->failed && ps->t == T_AND) {
    size_t at = ps->ts;
    advance(ps);
    int r = parse_not(ps);
    l = mk(ps, AG_CODE_AND, l, r, -1, 0, at);
  }
  return l;
}

static int parse_or(parser *ps) {
  int l = parse_and(ps);
  while (!ps->failed && ps->t == T_OR) {
    size_t at = ps->ts;
    advance(ps);
    int r = parse_and(ps);
    l = mk(ps, AG_CODE_OR, l, r, -1, 0, at);
  }
  return l;
}

static int parse_expr(parser *ps) {
  if (ps->failed || !enter(ps)) return -1;
  int e = ps->t == T_IF ? parse_if(ps) : parse_or(ps);
  ps->nesting--;
  return e;
}

bool ag_code_parse(const char *source, size_t length, ag_code_program *out, ag_code_error *err) {
  ag_code_init(out);
  if (err) {
    err->position = 0;
    err->message[0] = '\0';
  }
  parser ps = {.src = source, .len = length, .p = out, .err = err};
  if (length > AG_CODE_MAX_SOURCE) {
    fail(&ps, AG_CODE_MAX_SOURCE, "the program is too long (over %d characters)",
         AG_CODE_MAX_SOURCE);
    return false;
  }
  advance(&ps);
  if (ps.t == T_END) {
    fail(&ps, ps.ts, "the program is empty");
    return false;
  }
  int root = parse_expr(&ps);
  if (!ps.failed && ps.t != T_END) {
    /* "2x", "3(x + 1)": say how to multiply */
    if (ps.t == T_X || ps.t == T_LPAREN)
      fail(&ps, ps.ts, "missing operator before %s (multiply with *)", ps.t == T_X ? "'x'" : "'('");
    else
      unexpected(&ps, "an operator or the end");
  }
  if (!ps.failed && out->nodes[root].type != AG_CODE_INT)
    fail(&ps, 0, "the program must compute a number, but it is a condition");
  if (ps.failed) {
    ag_code_init(out);
    return false;
  }
  out->root = root;
  return true;
}

/* ---- printer ------------------------------------------------------------------------ */

typedef struct writer {
  char *buf;
  size_t size, len;
  bool ok;
} writer;

static void put(writer *w, const char *s) {
  size_t n = strlen(s);
  if (!w->ok || w->len + n + 1 > w->size) {
    w->ok = false;
    return;
  }
  memcpy(w->buf + w->len, s, n + 1);
  w->len += n;
}

static int precedence(const ag_code_program *p, int node) {
  return OPS[p->nodes[node].op].precedence;
}

static void print_node(const ag_code_program *p, int node, writer *w);

static void print_wrapped(const ag_code_program *p, int node, bool parens, writer *w) {
  if (parens) put(w, "(");
  print_node(p, node, w);
  if (parens) put(w, ")");
}

static void print_node(const ag_code_program *p, int node, writer *w) {
  const ag_code_node *n = &p->nodes[node];
  const op_info *info = &OPS[n->op];
  char num[24];
  switch ((ag_code_op)n->op) {
  case AG_CODE_CONST:
    snprintf(num, sizeof num, "%lld", (long long)n->value);
    put(w, num);
    return;
  case AG_CODE_VAR: put(w, "x"); return;
  case AG_CODE_NEG:
    put(w, "-");
    /* -(-x), -(x * 2): only atoms go bare */
    print_wrapped(p, n->kid[0], precedence(p, n->kid[0]) < 8, w);
    return;
  case AG_CODE_NOT:
    put(w, "not ");
    print_wrapped(p, n->kid[0], precedence(p, n->kid[0]) < 3, w);
    return;
  case AG_CODE_ABS:
  case AG_CODE_MIN:
  case AG_CODE_MAX:
    put(w, info->text);
    put(w, "(");
    print_node(p, n->kid[0], w);
    if (n->op != AG_CODE_ABS) {
      put(w, ", ");
      print_node(p, n->kid[1], w);
    }
    put(w, ")");
    return;
  case AG_CODE_IF:
    put(w, "if ");
    print_wrapped(p, n->kid[0], precedence(p, n->kid[0]) == 0, w);
    put(w, " then ");
    print_node(p, n->kid[1], w);
    put(w, " else ");
    print_node(p, n->kid[2], w);
    return;
  default: {
    /* binary infix: left-associative, comparisons do not chain */
    int prec = info->precedence;
    int lp = precedence(p, n->kid[0]), rp = precedence(p, n->kid[1]);
    print_wrapped(p, n->kid[0], prec == 4 ? lp <= prec : lp < prec, w);
    put(w, " ");
    put(w, info->text);
    put(w, " ");
    print_wrapped(p, n->kid[1], rp <= prec, w);
    return;
  }
  }
}

bool ag_code_print_node(const ag_code_program *p, int node, char *buf, size_t size) {
  if (!buf || size == 0) return false;
  buf[0] = '\0';
  if (node < 0 || node >= p->count) return false;
  writer w = {buf, size, 0, true};
  print_node(p, node, &w);
  if (!w.ok) buf[0] = '\0';
  return w.ok;
}

bool ag_code_print(const ag_code_program *p, char *buf, size_t size) {
  return ag_code_print_node(p, p->root, buf, size);
}

/* ---- interpreter -------------------------------------------------------------------- */

const char *ag_code_eval_status_name(ag_code_eval_status s) {
  switch (s) {
  case AG_CODE_EVAL_OK: return "ok";
  case AG_CODE_EVAL_DIVISION_BY_ZERO: return "division_by_zero";
  case AG_CODE_EVAL_OVERFLOW: return "overflow";
  case AG_CODE_EVAL_STEP_LIMIT: return "step_limit";
  }
  return "unknown";
}

/* Floor division and modulo (Python's // and %), overflow-checked. */
static ag_code_eval_status floor_div(int64_t a, int64_t b, int64_t *out) {
  if (b == 0) return AG_CODE_EVAL_DIVISION_BY_ZERO;
  if (a == INT64_MIN && b == -1) return AG_CODE_EVAL_OVERFLOW;
  int64_t q = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0))) q--;
  *out = q;
  return AG_CODE_EVAL_OK;
}

static ag_code_eval_status floor_mod(int64_t a, int64_t b, int64_t *out) {
  if (b == 0) return AG_CODE_EVAL_DIVISION_BY_ZERO;
  if (b == -1) {
    *out = 0; /* a % -1 is 0; C's INT64_MIN % -1 is undefined */
    return AG_CODE_EVAL_OK;
  }
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  *out = r;
  return AG_CODE_EVAL_OK;
}

typedef struct evaluator {
  const ag_code_program *p;
  int64_t x;
  long steps, limit;
} evaluator;

/* Recursion depth is the AST depth, at most AG_CODE_MAX_DEPTH. */
static ag_code_eval_status eval_node(evaluator *e, int node, int64_t *out) {
  if (++e->steps > e->limit) return AG_CODE_EVAL_STEP_LIMIT;
  const ag_code_node *n = &e->p->nodes[node];
  int64_t a = 0, b = 0;
  ag_code_eval_status s;
  switch ((ag_code_op)n->op) {
  case AG_CODE_CONST: *out = n->value; return AG_CODE_EVAL_OK;
  case AG_CODE_VAR: *out = e->x; return AG_CODE_EVAL_OK;
  case AG_CODE_IF:
    if ((s = eval_node(e, n->kid[0], &a))) return s;
    return eval_node(e, a ? n->kid[1] : n->kid[2], out);
  case AG_CODE_AND:
  case AG_CODE_OR:
    if ((s = eval_node(e, n->kid[0], &a))) return s;
    if ((n->op == AG_CODE_AND) == (a == 0)) {
      *out = a; /* decided by the left operand */
      return AG_CODE_EVAL_OK;
    }
    return eval_node(e, n->kid[1], out);
  default: break;
  }
  if ((s = eval_node(e, n->kid[0], &a))) return s;
  if (OPS[n->op].arity == 2 && (s = eval_node(e, n->kid[1], &b))) return s;
  switch ((ag_code_op)n->op) {
  case AG_CODE_NEG:
  case AG_CODE_ABS:
    if (n->op == AG_CODE_ABS && a >= 0) {
      *out = a;
      return AG_CODE_EVAL_OK;
    }
    if (a == INT64_MIN) return AG_CODE_EVAL_OVERFLOW;
    *out = -a;
    return AG_CODE_EVAL_OK;
  case AG_CODE_NOT: *out = !a; return AG_CODE_EVAL_OK;
  case AG_CODE_ADD: return __builtin_add_overflow(a, b, out) ? AG_CODE_EVAL_OVERFLOW : 0;
  case AG_CODE_SUB: return __builtin_sub_overflow(a, b, out) ? AG_CODE_EVAL_OVERFLOW : 0;
  case AG_CODE_MUL: return __builtin_mul_overflow(a, b, out) ? AG_CODE_EVAL_OVERFLOW : 0;
  case AG_CODE_DIV: return floor_div(a, b, out);
  case AG_CODE_MOD: return floor_mod(a, b, out);
  case AG_CODE_MIN: *out = a < b ? a : b; return AG_CODE_EVAL_OK;
  case AG_CODE_MAX: *out = a > b ? a : b; return AG_CODE_EVAL_OK;
  case AG_CODE_LT: *out = a < b; return AG_CODE_EVAL_OK;
  case AG_CODE_LE: *out = a <= b; return AG_CODE_EVAL_OK;
  case AG_CODE_GT: *out = a > b; return AG_CODE_EVAL_OK;
  case AG_CODE_GE: *out = a >= b; return AG_CODE_EVAL_OK;
  case AG_CODE_EQ: *out = a == b; return AG_CODE_EVAL_OK;
  case AG_CODE_NE: *out = a != b; return AG_CODE_EVAL_OK;
  default: return AG_CODE_EVAL_OK; /* handled above */
  }
}

ag_code_eval_status ag_code_eval_limited(const ag_code_program *p, int64_t x, long step_limit,
                                         int64_t *value) {
  *value = 0;
  if (p->root < 0) return AG_CODE_EVAL_OK;
  evaluator e = {p, x, 0, step_limit};
  return eval_node(&e, p->root, value);
}

/* ---- search ------------------------------------------------------------------------- */

/* Intermediate values are kept within +-2^20 so that vectors fit int32 and
 * sums and products of two of them cannot overflow int64; a term that
 * leaves the bound is dropped (the generator keeps its numbers far below). */
#define VALUE_BOUND     (1 << 20)
#define MAX_SEARCH_SIZE 32

typedef struct bank_entry {
  int32_t a, b;  /* operand entries, -1 where absent */
  int32_t value; /* a literal's value (CONST, NEG of CONST) */
  uint8_t op, type, size, has_x;
} bank_entry;

typedef struct bank {
  int n; /* tests */
  bank_entry *e;
  int32_t *v; /* (count, n) values; conditions are 0/1 */
  int count, cap, max;
  /* open addressing over (type, vector): the hash's high half beside id + 1
   * (0: empty), so most misses are told apart without reading the entry */
  uint64_t *slot;
  size_t slot_cap;
  uint64_t *hash;  /* per entry, for rehashing */
  int32_t *ids[2]; /* entries of each type in order of size */
  int nids[2], idcap[2];
  int start[2][MAX_SEARCH_SIZE + 2]; /* ids[t][start[t][s] .. start[t][s+1]) have size s */
  const int32_t *target;
  int32_t *tmp;
  int found; /* entry equal to the target, -1 none */
  bool oom;
} bank;

/* A random odd multiplier per test: the products are independent, so the
 * hash of a vector costs about one multiply per test, then a finaliser. */
static const uint64_t HASH_KEYS[AG_CODE_SEARCH_MAX_TESTS] = {
    0x9E3779B97F4A7C15ULL, 0xBF58476D1CE4E5B9ULL, 0x94D049BB133111EBULL, 0xD6E8FEB86659FD93ULL,
    0xA0761D6478BD642FULL, 0xE7037ED1A0B428DBULL, 0x8EBC6AF09C88C6E3ULL, 0x589965CC75374CC3ULL,
    0x1D8E4E27C47D124FULL, 0xC2B2AE3D27D4EB4FULL, 0x165667B19E3779F9ULL, 0x27D4EB2F165667C5ULL,
    0xFF51AFD7ED558CCDULL, 0xC4CEB9FE1A85EC53ULL, 0x87C37B91114253D5ULL, 0x4CF5AD432745937FULL,
    0x52DCE729DA3ED0B5ULL, 0x38495AB5F1A3C7E1ULL, 0x7FB5D329728EA185ULL, 0x81DADEF4BC2DD44DULL,
    0xD35A2D97FC61A3B7ULL, 0x2545F4914F6CDD1DULL, 0x9FB21C651E98DF25ULL, 0x3C6EF372FE94F82BULL,
    0xA54FF53A5F1D36F1ULL, 0x510E527FADE682D1ULL, 0x9B05688C2B3E6C1FULL, 0x1F83D9ABFB41BD6BULL,
    0x5BE0CD19137E2179ULL, 0xCBBB9D5DC1059ED9ULL, 0x629A292A367CD507ULL, 0x9159015A3070DD17ULL};

static uint64_t hash_vector(const int32_t *v, int n, int type) {
  uint64_t h = (uint64_t)(type + 1) * 0x9E3779B97F4A7C15ULL;
  for (int i = 0; i < n; i++) h += (uint64_t)(uint32_t)v[i] * HASH_KEYS[i];
  /* splitmix64's finaliser: every input bit reaches the low bits used */
  h ^= h >> 31;
  h *= 0xBF58476D1CE4E5B9ULL;
  return h ^ (h >> 29);
}

static bool same_vector(const int32_t *a, const int32_t *b, int n) {
  for (int i = 0; i < n; i++)
    if (a[i] != b[i]) return false;
  return true;
}

static int lookup(const bank *b, int type, const int32_t *v) {
  size_t mask = b->slot_cap - 1;
  uint64_t h = hash_vector(v, b->n, type), tag = h >> 32;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    uint64_t s = b->slot[i];
    if (s == 0) return -1;
    if (s >> 32 != tag) continue;
    int id = (int)(uint32_t)s - 1;
    if (b->e[id].type == type && same_vector(b->v + (size_t)id * (size_t)b->n, v, b->n)) return id;
  }
}

static void slot_insert(bank *b, int id) {
  size_t mask = b->slot_cap - 1;
  uint64_t h = b->hash[id];
  size_t i = h & mask;
  while (b->slot[i]) i = (i + 1) & mask;
  b->slot[i] = (h >> 32 << 32) | (uint32_t)(id + 1);
}

static bool bank_grow(bank *b) {
  if (b->count + 1 > b->cap) {
    int cap = b->cap ? b->cap * 2 : 1024;
    bank_entry *e = realloc(b->e, (size_t)cap * sizeof *e);
    if (e) b->e = e;
    int32_t *v = realloc(b->v, (size_t)cap * (size_t)b->n * sizeof *v);
    if (v) b->v = v;
    uint64_t *hash = realloc(b->hash, (size_t)cap * sizeof *hash);
    if (hash) b->hash = hash;
    if (!e || !v || !hash) return false;
    b->cap = cap;
  }
  if ((size_t)(b->count + 1) * 2 > b->slot_cap) {
    size_t cap = b->slot_cap ? b->slot_cap * 2 : 8192;
    uint64_t *slot = calloc(cap, sizeof *slot);
    if (!slot) return false;
    free(b->slot);
    b->slot = slot;
    b->slot_cap = cap;
    for (int id = 0; id < b->count; id++) slot_insert(b, id);
  }
  return true;
}

/* Adds the candidate in b->tmp unless an equal vector of its type is kept.
 * false when the search must stop (full, out of memory, or the target was
 * found). */
static bool offer(bank *b, int type, int op, int a, int c, int32_t value, int size, bool has_x) {
  if (lookup(b, type, b->tmp) >= 0) return true;
  if (b->count >= b->max) return false;
  if (!bank_grow(b)) {
    b->oom = true;
    return false;
  }
  int id = b->count++;
  b->e[id] = (bank_entry){a, c, value, (uint8_t)op, (uint8_t)type, (uint8_t)size, has_x};
  memcpy(b->v + (size_t)id * (size_t)b->n, b->tmp, (size_t)b->n * sizeof *b->tmp);
  b->hash[id] = hash_vector(b->tmp, b->n, type);
  slot_insert(b, id);
  if (b->nids[type] + 1 > b->idcap[type]) {
    int cap = b->idcap[type] ? b->idcap[type] * 2 : 1024;
    int32_t *ids = realloc(b->ids[type], (size_t)cap * sizeof *ids);
    if (!ids) {
      b->oom = true;
      return false;
    }
    b->ids[type] = ids;
    b->idcap[type] = cap;
  }
  b->ids[type][b->nids[type]++] = id;
  if (type == AG_CODE_INT && same_vector(b->tmp, b->target, b->n)) {
    b->found = id;
    return false;
  }
  return true;
}

static bool in_bound(int64_t r) { return r >= -VALUE_BOUND && r <= VALUE_BOUND; }

/* The vector of op applied to entries a (and c) into b->tmp; false when
 * some test divides by zero or leaves the bound. One loop per operator,
 * so that the compiler can vectorise the common ones. */
static bool apply(bank *b, int op, int a, int c) {
  const int n = b->n;
  const int32_t *va = b->v + (size_t)a * (size_t)n;
  const int32_t *vc = c >= 0 ? b->v + (size_t)c * (size_t)n : va;
  int32_t *out = b->tmp;
  uint64_t bad = 0;
#define LANES(expr)                                                                                \
  for (int i = 0; i < n; i++) {                                                                    \
    int64_t x = va[i], y = vc[i], r = (expr);                                                      \
    bad |= (uint64_t)(r + VALUE_BOUND) > 2 * (uint64_t)VALUE_BOUND;                                \
    out[i] = (int32_t)r;                                                                           \
  }                                                                                                \
  break
  switch (op) {
  case AG_CODE_NEG: LANES(-x + 0 * y);
  case AG_CODE_ABS: LANES((x < 0 ? -x : x) + 0 * y);
  case AG_CODE_NOT: LANES(!x + 0 * y);
  case AG_CODE_ADD: LANES(x + y);
  case AG_CODE_SUB: LANES(x - y);
  case AG_CODE_MUL: LANES(x * y);
  case AG_CODE_MIN: LANES(x < y ? x : y);
  case AG_CODE_MAX: LANES(x > y ? x : y);
  case AG_CODE_LT: LANES(x < y);
  case AG_CODE_LE: LANES(x <= y);
  case AG_CODE_EQ: LANES(x == y);
  case AG_CODE_NE: LANES(x != y);
  case AG_CODE_AND: LANES(x && y);
  case AG_CODE_OR: LANES(x || y);
  case AG_CODE_DIV:
  case AG_CODE_MOD:
    for (int i = 0; i < n; i++)
      if (vc[i] == 0) return false;
    if (op == AG_CODE_DIV) {
      LANES(x / y - (x % y != 0 && ((x < 0) != (y < 0))));
    } else {
      LANES(x % y + (x % y != 0 && ((x % y < 0) != (y < 0)) ? y : 0));
    }
  default: return false;
  }
#undef LANES
  return bad == 0;
}

static bool commutative(int op) {
  return op == AG_CODE_ADD || op == AG_CODE_MUL || op == AG_CODE_MIN || op == AG_CODE_MAX ||
         op == AG_CODE_EQ || op == AG_CODE_NE || op == AG_CODE_AND || op == AG_CODE_OR;
}

/* Literals worth combining with a term by op (left: the literal is the left
 * operand). The rest are redundant with a literal that is kept (x + -3 is
 * x - 3), useless (x * 1, x % 1) or always fail (x / 0): skipping them
 * saves most of the candidates of the largest size. */
static bool literal_fits(int op, bool left, int32_t k) {
  switch (op) {
  case AG_CODE_ADD: return k > 0;
  case AG_CODE_SUB: return k > 0;
  case AG_CODE_MUL: return k >= 2 || k <= -2;
  case AG_CODE_DIV:
  case AG_CODE_MOD: return left ? k > 0 : k >= 2;
  default: return true; /* min, max, comparisons */
  }
}

/* All binary candidates of op with operand types t, sizes sa + sc = s - 1.
 * Two literals are never combined (constant subterms other than literals
 * are never needed), comparisons compare a term with a literal, and / and %
 * divide a term by a literal (x % (7 - x) fits examples by accident, and
 * no generated program needs it), never a quotient by a literal again
 * (x / 2 / 3 is x / 6) nor a remainder (x % 5 % 4 is a contrived fit). */
static bool combine(bank *b, int op, int t, int result, int s) {
  bool comparison = result == AG_CODE_BOOL && t == AG_CODE_INT;
  bool divides = op == AG_CODE_DIV || op == AG_CODE_MOD;
  for (int sa = 1; sa <= s - 2; sa++) {
    int sc = s - 1 - sa;
    if (commutative(op) && sa > sc) continue;
    for (int i = b->start[t][sa]; i < b->start[t][sa + 1]; i++) {
      int a = b->ids[t][i];
      /* copies: offer() may move b->e */
      const bank_entry ea = b->e[a];
      if (!ea.has_x && !literal_fits(op, true, ea.value)) continue;
      int j0 = commutative(op) && sa == sc ? i : b->start[t][sc];
      for (int j = j0; j < b->start[t][sc + 1]; j++) {
        int c = b->ids[t][j];
        const bank_entry ec = b->e[c];
        if (!ea.has_x && !ec.has_x) continue;
        if (!ec.has_x && !literal_fits(op, false, ec.value)) continue;
        if (comparison && ea.has_x == ec.has_x) continue;
        if (divides && (!ea.has_x || ec.has_x || ea.op == op)) continue;
        if (apply(b, op, a, c) && !offer(b, result, op, a, c, 0, s, true)) return false;
      }
    }
  }
  return true;
}

static void enumerate(bank *b, const int64_t *inputs, const ag_code_search_limits *lim) {
  int top = lim->term_size > lim->condition_size ? lim->term_size : lim->condition_size;
  for (int s = 1; s <= top; s++) {
    b->start[0][s] = b->nids[0];
    b->start[1][s] = b->nids[1];
    /* entries of size s are appended below; start[.][s + 1] closes them */
    bool terms = s <= lim->term_size, conditions = s <= lim->condition_size;
    bool go = true;
    if (s == 1) {
      for (int i = 0; i < b->n; i++) b->tmp[i] = (int32_t)inputs[i];
      go = offer(b, AG_CODE_INT, AG_CODE_VAR, -1, -1, 0, 1, true);
      for (int k = 0; go && k <= AG_CODE_SEARCH_LITERAL; k++) {
        for (int i = 0; i < b->n; i++) b->tmp[i] = k;
        go = offer(b, AG_CODE_INT, AG_CODE_CONST, -1, -1, k, 1, false);
      }
    } else {
      int from = b->start[0][s - 1], to = b->nids[0];
      for (int i = from; go && terms && i < to; i++) {
        int a = b->ids[0][i];
        if (!b->e[a].has_x) {
          /* negative literals: -k */
          if (b->e[a].op == AG_CODE_CONST && b->e[a].value > 0 && apply(b, AG_CODE_NEG, a, -1))
            go = offer(b, AG_CODE_INT, AG_CODE_NEG, a, -1, -b->e[a].value, s, false);
          continue;
        }
        if (apply(b, AG_CODE_NEG, a, -1))
          go = offer(b, AG_CODE_INT, AG_CODE_NEG, a, -1, 0, s, true);
        if (go && apply(b, AG_CODE_ABS, a, -1))
          go = offer(b, AG_CODE_INT, AG_CODE_ABS, a, -1, 0, s, true);
      }
      from = b->start[1][s - 1], to = b->nids[1];
      for (int i = from; go && conditions && i < to; i++)
        if (apply(b, AG_CODE_NOT, b->ids[1][i], -1))
          go = offer(b, AG_CODE_BOOL, AG_CODE_NOT, b->ids[1][i], -1, 0, s, true);
      /* combine reads only sizes below s; new entries land at size s */
      static const int INT_OPS[] = {AG_CODE_ADD, AG_CODE_SUB, AG_CODE_MUL, AG_CODE_DIV,
                                    AG_CODE_MOD, AG_CODE_MIN, AG_CODE_MAX};
      /* k < t and t < k give every threshold in both directions (t <= k is
       * t < k + 1); orders of larger terms than x, -x, abs(x) are rarely
       * needed (x * 2 < 7 is x < 4), their equalities are (x % 2 == 0) */
      static const int CMP_OPS[] = {AG_CODE_EQ, AG_CODE_NE, AG_CODE_LT};
      int cmp_ops = s <= 4 ? 3 : 2;
      for (size_t k = 0; go && terms && k < sizeof INT_OPS / sizeof *INT_OPS; k++)
        go = combine(b, INT_OPS[k], AG_CODE_INT, AG_CODE_INT, s);
      for (int k = 0; go && terms && conditions && k < cmp_ops; k++)
        go = combine(b, CMP_OPS[k], AG_CODE_INT, AG_CODE_BOOL, s);
      for (int k = 0; go && conditions && k < 2; k++)
        go = combine(b, k ? AG_CODE_OR : AG_CODE_AND, AG_CODE_BOOL, AG_CODE_BOOL, s);
    }
    b->start[0][s + 1] = b->nids[0];
    b->start[1][s + 1] = b->nids[1];
    if (!go) return;
  }
}

/* A found program: an entry, or op(a, c) / if d then a else c over entries. */
typedef struct candidate {
  int op; /* -1: entry a alone */
  int a, c, d;
  int size;
} candidate;

static void invert(bank *b, const ag_code_search_limits *lim, candidate *best) {
  const int32_t *y = b->target;
  int n = b->n;
  for (int i = 0; i < b->nids[0]; i++) {
    int a = b->ids[0][i];
    int sa = b->e[a].size;
    if (sa + 2 >= best->size) break; /* sizes ascend: nothing smaller follows */
    const int32_t *va = b->v + (size_t)a * (size_t)n;
    for (int op = 0; op < 3; op++) {
      bool ok = true;
      for (int k = 0; ok && k < n; k++) {
        int64_t r;
        if (op == 0)
          r = (int64_t)y[k] - va[k]; /* a + c = y */
        else if (op == 1)
          r = (int64_t)va[k] - y[k]; /* a - c = y */
        else {
          if (va[k] == 0 || y[k] % va[k] != 0) ok = false; /* a * c = y */
          r = ok ? y[k] / va[k] : 0;
        }
        if (!in_bound(r)) ok = false;
        b->tmp[k] = (int32_t)r;
      }
      if (!ok) continue;
      int c = lookup(b, AG_CODE_INT, b->tmp);
      if (c < 0) continue;
      int size = 1 + sa + b->e[c].size;
      if (size < best->size && size <= lim->max_size) {
        static const int OP[] = {AG_CODE_ADD, AG_CODE_SUB, AG_CODE_MUL};
        *best = (candidate){OP[op], a, c, -1, size};
      }
    }
  }
}

/* if d then a else c: a must match the tests where d holds, c the others.
 * For every set of tests (a bit mask) the smallest term matching at least
 * those: a superset sweep over the 2^n masks. */
static bool conditional(bank *b, const ag_code_search_limits *lim, candidate *best) {
  int n = b->n;
  if (n > AG_CODE_SEARCH_CONDITIONAL || b->nids[1] == 0) return true;
  if (best->size <= 6) return true; /* the smallest if-then-else has 6 nodes */
  size_t masks = (size_t)1 << n;
  uint32_t full = (uint32_t)(masks - 1);
  uint8_t *size = malloc(masks);
  int32_t *term = malloc(masks * sizeof *term);
  if (!size || !term) {
    free(size);
    free(term);
    return false;
  }
  memset(size, 255, masks);
  for (int i = 0; i < b->nids[0]; i++) {
    int a = b->ids[0][i];
    const int32_t *va = b->v + (size_t)a * (size_t)n;
    uint32_t m = 0;
    for (int k = 0; k < n; k++)
      if (va[k] == b->target[k]) m |= 1u << k;
    if (b->e[a].size < size[m]) {
      size[m] = b->e[a].size;
      term[m] = a;
    }
  }
  for (int bit = 0; bit < n; bit++)
    for (uint32_t m = 0; m <= full; m++)
      if (!(m & (1u << bit)) && size[m | (1u << bit)] < size[m]) {
        size[m] = size[m | (1u << bit)];
        term[m] = term[m | (1u << bit)];
      }
  for (int i = 0; i < b->nids[1]; i++) {
    int d = b->ids[1][i];
    int sd = b->e[d].size;
    if (1 + sd + 2 >= best->size) break;
    const int32_t *vd = b->v + (size_t)d * (size_t)n;
    uint32_t m = 0;
    for (int k = 0; k < n; k++)
      if (vd[k]) m |= 1u << k;
    if (m == 0 || m == full || size[m] == 255 || size[full & ~m] == 255) continue;
    int total = 1 + sd + size[m] + size[full & ~m];
    if (total < best->size && total <= lim->max_size)
      *best = (candidate){AG_CODE_IF, term[m], term[full & ~m], d, total};
  }
  free(size);
  free(term);
  return true;
}

static int build(const bank *b, int id, ag_code_program *p) {
  const bank_entry *e = &b->e[id];
  int a = e->a >= 0 ? build(b, e->a, p) : -1;
  int c = e->b >= 0 ? build(b, e->b, p) : -1;
  if ((e->a >= 0 && a < 0) || (e->b >= 0 && c < 0)) return -1;
  return ag_code_add(p, (ag_code_op)e->op, a, c, -1, e->value);
}

ag_code_search_limits ag_code_search_default_limits(void) {
  /* Measured: terms of 5 nodes over 13 tests keep about 10^4 entries and
   * take about a millisecond; 6 would take ten times as long. Conditions
   * of 7 nodes hold x % 3 == 2 (5) and x < 2 or x == 7 (7); 8 or 9 would
   * add x > -3 and x < 5 at no gain on generated tasks. */
  return (ag_code_search_limits){
      .term_size = 5, .condition_size = 7, .max_size = 15, .max_bank = 200000};
}

ag_status ag_code_search(const int64_t *inputs, const int64_t *outputs, int n,
                         const ag_code_search_limits *limits, ag_code_program *out, bool *found) {
  *found = false;
  ag_code_init(out);
  ag_code_search_limits lim = limits ? *limits : ag_code_search_default_limits();
  if (n < 1 || n > AG_CODE_SEARCH_MAX_TESTS || lim.term_size < 1 ||
      lim.term_size > MAX_SEARCH_SIZE || lim.condition_size > MAX_SEARCH_SIZE || lim.max_bank < 1)
    return ag_error_set(AG_ERR_INVALID, "code search: bad test count %d or limits", n);
  int32_t target[AG_CODE_SEARCH_MAX_TESTS], tmp[AG_CODE_SEARCH_MAX_TESTS];
  for (int i = 0; i < n; i++) {
    if (!in_bound(outputs[i]) || !in_bound(inputs[i])) return AG_OK; /* out of reach */
    target[i] = (int32_t)outputs[i];
  }
  bank b = {.n = n, .max = lim.max_bank, .target = target, .tmp = tmp, .found = -1};
  if (!bank_grow(&b))
    b.oom = true; /* the hash table exists before the first lookup */
  else
    enumerate(&b, inputs, &lim);
  candidate best = {.op = -1, .a = -1, .c = -1, .d = -1, .size = INT_MAX};
  ag_status st = AG_OK;
  if (b.oom) {
    st = ag_error_set(AG_ERR_NOMEM, "code search: out of memory");
  } else if (b.found >= 0) {
    best = (candidate){-1, b.found, -1, -1, b.e[b.found].size};
  } else {
    invert(&b, &lim, &best);
    if (!conditional(&b, &lim, &best))
      st = ag_error_set(AG_ERR_NOMEM, "code search: out of memory");
  }
  if (st == AG_OK && best.size != INT_MAX) {
    int root = -1;
    if (best.op < 0) {
      root = build(&b, best.a, out);
    } else {
      int a = build(&b, best.a, out), c = build(&b, best.c, out);
      int d = best.d >= 0 ? build(&b, best.d, out) : -1;
      root = best.op == AG_CODE_IF ? ag_code_add(out, AG_CODE_IF, d, a, c, 0)
                                   : ag_code_add(out, (ag_code_op)best.op, a, c, -1, 0);
    }
    out->root = root;
    /* the bank's arithmetic mirrors the interpreter's: check it agrees */
    for (int i = 0; root >= 0 && i < n; i++) {
      int64_t v;
      if (ag_code_eval(out, inputs[i], &v) != AG_CODE_EVAL_OK || v != outputs[i]) root = -1;
    }
    if (root < 0) {
      ag_code_init(out);
      st = ag_error_set(AG_ERR_INTERNAL, "code search: built program does not fit the tests");
    } else {
      *found = true;
    }
  }
  free(b.e);
  free(b.v);
  free(b.slot);
  free(b.hash);
  free(b.ids[0]);
  free(b.ids[1]);
  return st;
}
