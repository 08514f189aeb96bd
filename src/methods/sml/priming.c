/* Question priming (agora/sml_train.h): wrong answer turns of a dialogue
 * replaced by clarifying questions written from the teacher's private
 * knowledge, and the teacher's turns after them by the answers. */
#include "agora/sml_train.h"
#include "worlds/tasks/task_util.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUESTION_WORDS 8

static const char *const ASK_SHARD[] = {
    "Before I answer, I need more information. Can you tell me about %s?",
    "I am missing something to solve this. What do we know about %s?",
    "Could you tell me more about %s before I try an answer?",
};
static const char *const ASK_START[] = {
    "Before I answer: how should I start?",
    "Could you give me a hint for the first step?",
    "What should I work out first?",
};

#define COUNT(a) ((int)(sizeof(a) / sizeof *(a)))

void ag_sml_messages_free(ag_chat_message *m, int count) {
  if (!m) return;
  for (int i = 0; i < count; i++) {
    free((char *)m[i].role);
    free((char *)m[i].content);
    free((char *)m[i].name);
  }
  free(m);
}

/* The words of a shard a student could ask about without knowing it: no
 * numbers, no punctuation, at most QUESTION_WORDS. */
static char *shard_topic(const char *text) {
  ag_strbuf b = {0};
  int words = 0;
  const char *s = text;
  while (*s && words < QUESTION_WORDS) {
    while (*s && !isalnum((unsigned char)*s)) s++;
    const char *w = s;
    bool digit = false;
    while (*s && (isalnum((unsigned char)*s) || *s == '\'')) digit |= isdigit((unsigned char)*s++);
    if (s == w || digit) continue;
    ag_strbuf_printf(&b, "%s%.*s", words ? " " : "", (int)(s - w), w);
    words++;
  }
  if (words == 0) ag_strbuf_printf(&b, "the missing part of the problem");
  return ag_strbuf_take(&b);
}

/* The first line of the worked solution that is a step (not the answer line
 * and not a leak), or NULL. */
static char *first_step(const ag_task *task) {
  const ag_task_family *f = NULL;
  if (ag_task_family_get(task->family, &f) || !task->solution) {
    ag_error_clear();
    return NULL;
  }
  const char *s = task->solution;
  while (*s) {
    size_t n = strcspn(s, "\n");
    const char *line = s;
    s += n + (s[n] == '\n');
    while (n > 0 && isspace((unsigned char)line[n - 1])) n--;
    while (n > 0 && isspace((unsigned char)*line)) line++, n--;
    if (n == 0 || !strncmp(line, "Answer:", 7)) continue;
    char *text = malloc(n + 1);
    if (!text) return NULL;
    memcpy(text, line, n);
    text[n] = '\0';
    if (f->leaks && f->leaks(task, text)) {
      free(text);
      return NULL; /* the first step already states the answer: too much */
    }
    return text;
  }
  return NULL;
}

ag_status ag_sml_clarifying_question(const ag_task *task, const bool *revealed, ag_rng *rng,
                                     char **question, char **reply) {
  *question = *reply = NULL;
  if (!task || !rng) return ag_error_set(AG_ERR_INVALID, "clarifying question: bad arguments");
  ag_strbuf q = {0}, a = {0};
  if (task->shard_count > 1) {
    int pick = -1;
    for (int pass = 0; pass < 2 && pick < 0; pass++)
      for (int i = 1; i < task->shard_count && pick < 0; i++) {
        bool known = revealed ? revealed[i] : false;
        if (!known && (pass == 1 || task->shards[i].required)) pick = i;
      }
    if (pick > 0) {
      char *topic = shard_topic(task->shards[pick].text);
      if (!topic) return ag_error_set(AG_ERR_NOMEM, "out of memory");
      ag_strbuf_printf(&q, ASK_SHARD[ag_rng_below(rng, COUNT(ASK_SHARD))], topic);
      ag_strbuf_printf(&a, "%s", task->shards[pick].text);
      free(topic);
    }
  }
  if (!q.size) {
    ag_strbuf_printf(&q, "%s", ASK_START[ag_rng_below(rng, COUNT(ASK_START))]);
    char *step = first_step(task);
    if (step) {
      ag_strbuf_printf(&a, "Start here: %s", step);
      free(step);
    } else {
      char *nudge = NULL;
      ag_status st =
          ag_teacher_feedback(task, NULL, AG_FEEDBACK_DIRECTIONAL, AG_PHRASING_TRAIN, rng, &nudge);
      if (st) {
        ag_strbuf_free(&q);
        ag_strbuf_free(&a);
        return st;
      }
      ag_strbuf_printf(&a, "%s", nudge);
      free(nudge);
    }
  }
  *question = ag_strbuf_take(&q);
  *reply = ag_strbuf_take(&a);
  if (!*question || !*reply) {
    free(*question);
    free(*reply);
    *question = *reply = NULL;
    return ag_error_set(AG_ERR_NOMEM, "out of memory");
  }
  return AG_OK;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static bool is_student(const ag_chat_message *m) {
  return !strcmp(m->role, "assistant") && (!m->name || !strcmp(m->name, "student"));
}

ag_status ag_sml_prime_dialogue(const ag_task *task, const ag_chat_message *messages, int count,
                                double decay, ag_rng *rng, ag_chat_message **out, int *out_count,
                                int *edits) {
  *out = NULL;
  *out_count = 0;
  *edits = 0;
  const ag_task_family *f = NULL;
  if (!task || !messages || count < 0 || !rng || !(decay >= 0 && decay <= 1))
    return ag_error_set(AG_ERR_INVALID, "question priming: bad arguments");
  ag_status st = ag_task_family_get(task->family, &f);
  if (st) return st;
  ag_chat_message *m = calloc((size_t)(count > 0 ? count : 1), sizeof *m);
  bool *revealed =
      calloc((size_t)(task->shard_count > 0 ? task->shard_count : 1), sizeof *revealed);
  if (!m || !revealed) {
    free(m);
    free(revealed);
    return ag_error_set(AG_ERR_NOMEM, "out of memory");
  }
  if (task->shard_count > 0) revealed[0] = true;
  int turn = 0;
  for (int i = 0; i < count && !st; i++) {
    const ag_chat_message *src = &messages[i];
    m[i].role = dup_or_null(src->role);
    m[i].name = dup_or_null(src->name);
    m[i].content = NULL;
    /* Shards are known once a teacher turn has stated them. */
    if (!is_student(src) && strcmp(src->role, "system"))
      for (int s = 1; s < task->shard_count; s++)
        if (!revealed[s] && strstr(src->content, task->shards[s].text)) revealed[s] = true;
    bool replace = false;
    if (is_student(src)) {
      turn++;
      char *attempt = NULL;
      if (ag_task_extract_attempt(src->content, &attempt)) {
        ag_verdict v = {0};
        st = f->verify(task, attempt, &v);
        /* Every wrong attempt draws, so the edits of a seed do not depend
         * on which earlier draws came out. */
        if (!st && !v.correct)
          replace = ag_rng_uniform(rng) < pow(decay, (double)turn) && i + 1 < count;
        ag_verdict_clear(&v);
      }
      free(attempt);
    }
    if (st) break;
    if (replace) {
      char *q = NULL, *a = NULL;
      st = ag_sml_clarifying_question(task, revealed, rng, &q, &a);
      if (st) break;
      m[i].content = q;
      i++;
      m[i].role = dup_or_null(messages[i].role);
      m[i].name = dup_or_null(messages[i].name);
      m[i].content = a;
      for (int s = 1; s < task->shard_count; s++)
        if (!revealed[s] && strstr(a, task->shards[s].text)) revealed[s] = true;
      (*edits)++;
    } else {
      m[i].content = strdup(src->content);
    }
    if (!m[i].role || !m[i].content || (messages[i].name && !m[i].name))
      st = ag_error_set(AG_ERR_NOMEM, "out of memory");
  }
  free(revealed);
  if (st) {
    ag_sml_messages_free(m, count);
    *edits = 0;
    return st;
  }
  *out = m;
  *out_count = count;
  return AG_OK;
}
