/* The user simulator of sharded tasks (agora/dialogue.h): which hidden shard
 * to reveal after a student turn. A question gets the shard that shares the
 * most content words with it; anything else gets the next shard in order. */
#include "agora/dialogue.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Words too common to say what a question is about. Direction words (up,
 * down, left, right) are content in mazes and stay out of this list. */
static const char *const STOP_WORDS[] = {
    "a",      "about", "after", "again", "all",     "also",  "am",     "an",      "and",   "answer",
    "any",    "are",   "as",    "at",    "be",      "been",  "before", "but",     "by",    "can",
    "could",  "did",   "do",    "does",  "each",    "for",   "from",   "get",     "give",  "had",
    "has",    "have",  "he",    "her",   "here",    "him",   "his",    "how",     "i",     "if",
    "in",     "into",  "is",    "it",    "its",     "just",  "know",   "let",     "like",  "many",
    "may",    "me",    "might", "more",  "most",    "much",  "must",   "my",      "need",  "no",
    "not",    "now",   "of",    "on",    "or",      "our",   "please", "problem", "s",     "she",
    "should", "so",    "some",  "t",     "tell",    "than",  "that",   "the",     "their", "them",
    "then",   "there", "these", "they",  "this",    "those", "to",     "too",     "us",    "was",
    "we",     "were",  "what",  "when",  "where",   "which", "who",    "why",     "will",  "with",
    "would",  "yes",   "you",   "your",  "question"};

#define WORD_MAX_BYTES 48

static bool is_stop_word(const char *w) {
  for (size_t i = 0; i < sizeof STOP_WORDS / sizeof *STOP_WORDS; i++)
    if (!strcmp(w, STOP_WORDS[i])) return true;
  return false;
}

/* The next word of text at *pos: a run of letters and digits, lower-cased,
 * a plural "s" dropped ("apples" matches "apple"); false at the end. */
static bool next_word(const char *text, size_t *pos, char word[WORD_MAX_BYTES]) {
  size_t i = *pos;
  for (;;) {
    while (text[i] && !isalnum((unsigned char)text[i])) i++;
    if (!text[i]) {
      *pos = i;
      return false;
    }
    size_t n = 0;
    while (isalnum((unsigned char)text[i])) {
      if (n + 1 < WORD_MAX_BYTES) word[n++] = (char)tolower((unsigned char)text[i]);
      i++;
    }
    word[n] = '\0';
    if (n > 3 && word[n - 1] == 's' && word[n - 2] != 's') word[n - 1] = '\0';
    if (!is_stop_word(word)) {
      *pos = i;
      return true;
    }
  }
}

typedef char word_t[WORD_MAX_BYTES];

/* The distinct content words of text (malloc'd; *count of them). NULL with
 * *count 0 when there are none or memory runs out (then nothing overlaps). */
static word_t *distinct_words(const char *text, int *count) {
  *count = 0;
  int capacity = 0;
  word_t *words = NULL;
  word_t w;
  size_t pos = 0;
  while (next_word(text, &pos, w)) {
    bool seen = false;
    for (int i = 0; i < *count && !seen; i++) seen = !strcmp(words[i], w);
    if (seen) continue;
    if (*count == capacity) {
      int grown_capacity = capacity ? 2 * capacity : 32;
      word_t *grown = realloc(words, (size_t)grown_capacity * sizeof *grown);
      if (!grown) break;
      words = grown;
      capacity = grown_capacity;
    }
    memcpy(words[(*count)++], w, WORD_MAX_BYTES);
  }
  return words;
}

/* Content words shared by the question and a shard, each counted once.
 * Texts are short (a sentence or two), so the quadratic scan is fine. */
static int overlap(word_t *question, int question_count, const char *shard) {
  int shard_count = 0, shared = 0;
  word_t *words = distinct_words(shard, &shard_count);
  for (int i = 0; i < shard_count; i++)
    for (int j = 0; j < question_count; j++)
      if (!strcmp(words[i], question[j])) {
        shared++;
        break;
      }
  free(words);
  return shared;
}

/* The part of a student turn that can ask something: all of it when there
 * is no "Answer:" line, else what precedes that line if it has a '?'.
 * NULL: the turn asks nothing. */
static char *question_part(const char *turn) {
  const char *line = turn;
  while (line && *line) {
    const char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (!strncmp(p, "Answer:", 7)) {
      size_t n = (size_t)(line - turn);
      if (!memchr(turn, '?', n)) return NULL;
      char *q = malloc(n + 1);
      if (!q) return NULL;
      memcpy(q, turn, n);
      q[n] = '\0';
      return q;
    }
    line = strchr(line, '\n');
    if (line) line++;
  }
  return strdup(turn);
}

int ag_shard_pick(const ag_task *task, const bool *revealed, const char *student_turn) {
  if (!task || !revealed) return -1;
  int next = -1;
  for (int i = 0; i < task->shard_count; i++)
    if (!revealed[i]) {
      next = i;
      break;
    }
  if (next < 0) return -1;
  char *question = student_turn ? question_part(student_turn) : NULL;
  if (!question) return next;
  int question_count = 0;
  word_t *words = distinct_words(question, &question_count);
  free(question);
  int best = -1, best_overlap = 0;
  for (int i = 0; i < task->shard_count && question_count > 0; i++) {
    if (revealed[i] || !task->shards[i].text) continue;
    int o = overlap(words, question_count, task->shards[i].text);
    if (o > best_overlap) { /* strictly more: ties stay with the earlier shard */
      best = i;
      best_overlap = o;
    }
  }
  free(words);
  return best >= 0 ? best : next;
}
