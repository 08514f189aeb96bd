/* The expression language of the `code` task family (internal to
 * src/worlds/tasks): a program is one integer expression of the input x,
 *
 *   x * 2 + 1      abs(x - 4)      max(x, 5) % 3
 *   if x > 3 and x != 7 then x - 3 else 3 - x
 *
 * with a tokenizer, a parser to a typed AST (numbers and conditions), a
 * printer to canonical text, an interpreter that detects division by zero
 * and int64 overflow under a step limit, and an enumerative search for the
 * smallest program consistent with input/output examples. Grammar and
 * semantics: docs/tasks.md, section "code".
 *
 * Nothing here recurses deeper than AG_CODE_MAX_DEPTH (checked while
 * parsing and building), so hostile input cannot exhaust the C stack. */
#ifndef AGORA_CODE_LANG_H
#define AGORA_CODE_LANG_H

#include "agora/base.h"

enum {
  AG_CODE_MAX_SOURCE = 1000, /* bytes of program text the parser accepts */
  AG_CODE_MAX_NODES = 256,   /* AST nodes of one program */
  AG_CODE_MAX_DEPTH = 64,    /* nesting of the AST and of the parser */
  AG_CODE_STEP_LIMIT = 100000
};

typedef enum ag_code_op {
  AG_CODE_CONST, /* value >= 0; a negative number is NEG(CONST) */
  AG_CODE_VAR,   /* x */
  AG_CODE_NEG,
  AG_CODE_ABS,
  AG_CODE_NOT,
  AG_CODE_ADD,
  AG_CODE_SUB,
  AG_CODE_MUL,
  AG_CODE_DIV, /* rounds toward minus infinity (Python's //) */
  AG_CODE_MOD, /* sign of the divisor (Python's %) */
  AG_CODE_MIN,
  AG_CODE_MAX,
  AG_CODE_LT,
  AG_CODE_LE,
  AG_CODE_GT,
  AG_CODE_GE,
  AG_CODE_EQ,
  AG_CODE_NE,
  AG_CODE_AND, /* short-circuit */
  AG_CODE_OR,  /* short-circuit */
  AG_CODE_IF,  /* kid[0] ? kid[1] : kid[2]; only the chosen branch runs */
  AG_CODE_OP_COUNT
} ag_code_op;

typedef enum ag_code_type { AG_CODE_INT = 0, AG_CODE_BOOL = 1 } ag_code_type;

typedef struct ag_code_node {
  int64_t value;    /* CONST only */
  int32_t position; /* byte offset in the parsed source (0 for built nodes) */
  int16_t kid[3];   /* children, -1 where absent */
  uint8_t op, type, depth;
} ag_code_node;

/* A program: nodes in a fixed array (children before parents), root last
 * added by the parser. About 6 KiB; fine on the stack. */
typedef struct ag_code_program {
  ag_code_node nodes[AG_CODE_MAX_NODES];
  int count;
  int root; /* -1 when empty */
} ag_code_program;

typedef struct ag_code_error {
  int position; /* byte offset in the source where the problem is */
  char message[160];
} ag_code_error;

void ag_code_init(ag_code_program *p);

/* Appends a node (children by index, -1 where absent) after checking arity,
 * operand types, constant >= 0, node count and depth; returns its index or
 * -1. Does not change the root. */
int ag_code_add(ag_code_program *p, ag_code_op op, int a, int b, int c, int64_t value);

/* Parses source[0, length) (need not be NUL-terminated). The program must
 * compute a number. false with err filled (err may be NULL) on any error:
 * a bad token, a syntax or type error, too long, too deep. */
bool ag_code_parse(const char *source, size_t length, ag_code_program *out, ag_code_error *err);

/* Canonical text: single spaces around binary operators, no redundant
 * parentheses, `/` for division. print(parse(print(p))) == print(p).
 * false when it does not fit in size bytes. */
bool ag_code_print(const ag_code_program *p, char *buf, size_t size);
bool ag_code_print_node(const ag_code_program *p, int node, char *buf, size_t size);

/* Nodes reachable from the root. */
int ag_code_size(const ag_code_program *p);
/* Whether the subtree at node reads x. */
bool ag_code_uses_x(const ag_code_program *p, int node);

typedef enum ag_code_eval_status {
  AG_CODE_EVAL_OK = 0,
  AG_CODE_EVAL_DIVISION_BY_ZERO,
  AG_CODE_EVAL_OVERFLOW,
  AG_CODE_EVAL_STEP_LIMIT
} ag_code_eval_status;

/* "ok", "division_by_zero", "overflow", "step_limit". */
const char *ag_code_eval_status_name(ag_code_eval_status s);

/* Runs the program on x (a condition yields 0 or 1). At most step_limit
 * node visits. */
ag_code_eval_status ag_code_eval_limited(const ag_code_program *p, int64_t x, long step_limit,
                                         int64_t *value);
static inline ag_code_eval_status ag_code_eval(const ag_code_program *p, int64_t x,
                                               int64_t *value) {
  return ag_code_eval_limited(p, x, AG_CODE_STEP_LIMIT, value);
}

/* ---- tokens (for scanning free text for programs) -------------------------------- */

typedef enum ag_code_token_kind {
  AG_CODE_TOKEN_END = 0,
  AG_CODE_TOKEN_LANGUAGE, /* a token of the language */
  AG_CODE_TOKEN_OTHER     /* a word or character the language does not have */
} ag_code_token_kind;

/* The token starting at or after *pos (spaces skipped): kind and its byte
 * range [start, end); advances *pos to end. */
ag_code_token_kind ag_code_next_token(const char *text, size_t length, size_t *pos, size_t *start,
                                      size_t *end);

/* ---- search ------------------------------------------------------------------------ */

/* Bounds of ag_code_search: together they bound its time and memory. */
typedef struct ag_code_search_limits {
  int term_size;      /* number-valued terms are enumerated up to this many nodes */
  int condition_size; /* conditions up to this many nodes */
  int max_size;       /* no answer larger than this */
  int max_bank;       /* terms and conditions kept at most */
} ag_code_search_limits;

enum {
  AG_CODE_SEARCH_MAX_TESTS = 32,
  AG_CODE_SEARCH_LITERAL = 10,    /* literals -10..10 */
  AG_CODE_SEARCH_CONDITIONAL = 16 /* tests at most for the if-then-else step */
};

ag_code_search_limits ag_code_search_default_limits(void);

/* Looks for a small program p with p(inputs[i]) == outputs[i] for all
 * 1 <= n <= AG_CODE_SEARCH_MAX_TESTS tests, without runtime errors:
 * bottom-up enumeration of terms by size, keeping one term per vector of
 * values on the tests (observational equivalence); then top-level t1 + t2,
 * t1 - t2, t1 * t2 over the kept terms; then `if c then t1 else t2` over
 * kept conditions and terms (at most AG_CODE_SEARCH_CONDITIONAL tests).
 * Terms use literals -10..10, never combine two literals, compare a term
 * with a literal, and divide (/ %) a term by a literal, not twice in a row;
 * intermediate values stay within +-2^20. The smallest found wins;
 * deterministic. *found false when nothing fits within the limits. Fails
 * only on bad arguments or out of memory. */
ag_status ag_code_search(const int64_t *inputs, const int64_t *outputs, int n,
                         const ag_code_search_limits *limits, ag_code_program *out, bool *found);

#endif
