/* Teachers (agora/dialogue.h): the programmatic teacher, which phrases a
 * verifier's verdict as corrective feedback, and the LLM teacher, any chat
 * model prompted with the problem, its solution and the dialogue so far,
 * behind a leak guard that falls back to the programmatic teacher. */
#include "worlds/dialogue/teacher.h"

#include "worlds/tasks/task_util.h"

#include <stdlib.h>
#include <string.h>

/* Phrasing tables (no numbers or number words, so that no phrasing can
 * state an answer): the first half of each is the training set, the second
 * half the held-out set (ag_pick_phrasing), so an evaluation can use
 * teacher phrasings no training dialogue contained. */
static const char *const BINARY[] = {
    /* training set */
    "That is not correct.",
    "No, that is not the right answer.",
    "That answer is wrong.",
    "Not quite; that is incorrect.",
    "That isn't it.",
    "Your answer does not check out.",
    /* held-out set */
    "Unfortunately, that is incorrect.",
    "I'm afraid that answer isn't right.",
    "That doesn't check out; it is not correct.",
    "Sorry, that is not the answer.",
    "Close attention needed: that answer is off.",
    "That is not what we are looking for.",
};
static const char *const RETRY[] = {
    "Try again.",           "Have another go.",       "Please try once more.",
    "Give it another try.", "See if you can fix it.", "Try again, more carefully.",
};
static const char *const THINK[] = {
    "Think about what the problem asks for, and work through it step by step.",
    "Think about each fact the problem gives you and how they fit together.",
    "Think about the problem again carefully; everything you need is in it.",
    "Think about which facts matter here, and use them in order.",
    "Think about the steps between what you know and what is asked.",
    "Think about how you would check a result once you have it.",
};
static const char *const ASK_ANSWER[] = {
    "Please give your answer on a line starting with Answer:",
    "When you are ready, write your answer on a line starting with Answer:",
    "Put your final answer on its own line, starting with Answer:",
    "Once you have it, write a line that begins with Answer: followed by your result.",
    "Reply with a line starting with Answer: when you have a result.",
    "End your message with a line beginning Answer: and your result.",
};
static const char *const REVEAL[] = {
    "Here is more information: ", "Something you may need: ", "A further detail: ", "Also note: ",
    "Another fact you can use: ", "Additional information: ",
};
#define COUNT(table) ((int)(sizeof table / sizeof *table))

static const char TEACHER_SYSTEM[] =
    "You are a teacher helping a student solve a problem. You know the answer and a worked "
    "solution; the student does not. Reply to the student's last message with one short "
    "message: say whether an answer is wrong and give a hint, or answer a question about the "
    "problem. Never state the answer or the final result in any form (not as digits, words, a "
    "fraction or a decimal, not the path or program itself), and never give the whole "
    "solution. Write only the message to the student.";

uint64_t ag_dialogue_mix(uint64_t a, uint64_t b) {
  uint64_t z = a ^ ((b << 29) | (b >> 35)) ^ 0x9E3779B97F4A7C15ull * (b + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

char *ag_teacher_opening(const ag_task *task, bool sharded) {
  const char *text = task->problem;
  if (sharded && task->shard_count > 0 && task->shards[0].text) text = task->shards[0].text;
  char *s = strdup(text ? text : "");
  if (!s) ag_error_set(AG_ERR_NOMEM, "teacher: out of memory");
  return s;
}

ag_status ag_teacher_feedback(const ag_task *task, const ag_verdict *verdict,
                              ag_feedback_level level, ag_phrasing_set set, ag_rng *rng,
                              char **out) {
  *out = NULL;
  if (!task || !rng) return ag_error_set(AG_ERR_INVALID, "teacher feedback: no task or rng");
  ag_strbuf b = {0};
  if (!verdict) {
    ag_strbuf_printf(&b, "%s %s", ag_pick_phrasing(THINK, COUNT(THINK), set, rng),
                     ag_pick_phrasing(ASK_ANSWER, COUNT(ASK_ANSWER), set, rng));
  } else {
    const ag_task_family *f = NULL;
    if (level != AG_FEEDBACK_BINARY && ag_task_family_get(task->family, &f) == AG_OK &&
        f->feedback) {
      char *text = NULL;
      ag_status st = f->feedback(task, verdict, level, set, rng, &text);
      if (st) {
        ag_strbuf_free(&b);
        return ag_error_wrap(st, "teacher feedback on %s", task->id);
      }
      *out = text;
      return AG_OK;
    }
    ag_strbuf_printf(&b, "%s %s", ag_pick_phrasing(BINARY, COUNT(BINARY), set, rng),
                     ag_pick_phrasing(RETRY, COUNT(RETRY), set, rng));
  }
  char *s = ag_strbuf_take(&b);
  if (!s) return AG_ERR_NOMEM;
  *out = s;
  return AG_OK;
}

/* message + (a blank line and) the revealed shard, introduced by a phrasing.
 * Takes message (may be NULL: the shard alone). */
static ag_status with_shard(char *message, const ag_task *task, int shard, ag_phrasing_set set,
                            ag_rng *rng, char **out) {
  if (shard < 0 || shard >= task->shard_count) {
    *out = message;
    return AG_OK;
  }
  ag_strbuf b = {0};
  if (message && message[0]) ag_strbuf_printf(&b, "%s\n\n", message);
  free(message);
  ag_strbuf_printf(&b, "%s%s", ag_pick_phrasing(REVEAL, COUNT(REVEAL), set, rng),
                   task->shards[shard].text ? task->shards[shard].text : "");
  *out = ag_strbuf_take(&b);
  return *out ? AG_OK : AG_ERR_NOMEM;
}

/* The programmatic reply to one request, shard included. */
static ag_status programmatic_reply(const ag_teacher_options *o, const ag_teacher_request *r,
                                    ag_rng *rng, char **out) {
  const ag_task *task = &r->dialogue->task;
  char *message = NULL;
  /* A question answered by a shard needs no nudge on top of it. */
  if (r->verdict || r->shard < 0) {
    ag_status st = ag_teacher_feedback(task, r->verdict, o->level, o->phrasing, rng, &message);
    if (st) return st;
  }
  return with_shard(message, task, r->shard, o->phrasing, rng, out);
}

/* ---- the LLM teacher ------------------------------------------------------------- */

static bool is_blank(const char *s) {
  for (; s && *s; s++)
    if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') return false;
  return true;
}

/* The prompt's user message: the secret, the dialogue so far, the verdict. */
static char *llm_prompt(const ag_teacher_request *r) {
  const ag_dialogue *d = r->dialogue;
  const ag_task *t = &d->task;
  ag_strbuf b = {0};
  ag_strbuf_printf(&b, "Problem:\n%s\n\nAnswer (secret): %s\n\nWorked solution (secret):\n%s\n\n",
                   t->problem ? t->problem : "", t->answer ? t->answer : "",
                   t->solution ? t->solution : "");
  if (d->sharded)
    ag_strbuf_printf(&b, "The student was given only the information in the dialogue below, not "
                         "the whole problem.\n\n");
  ag_strbuf_printf(&b, "The dialogue so far:\n");
  for (int i = 0; i < d->message_count; i++) {
    const ag_chat_message *m = &d->messages[i];
    if (m->role && !strcmp(m->role, "system")) continue;
    bool student = m->role && !strcmp(m->role, "assistant");
    ag_strbuf_printf(&b, "\n%s: %s\n", student ? "Student" : "Teacher", m->content);
  }
  if (r->verdict) {
    const char *kind = json_string_value(json_object_get(r->verdict->diagnostics, "kind"));
    ag_strbuf_printf(&b, "\nThe student's last answer is wrong (checker: %s).",
                     kind ? kind : "wrong");
  } else {
    ag_strbuf_printf(&b, "\nThe student's last message is a question or a comment, not an answer.");
  }
  ag_strbuf_printf(&b, " Write your next message to the student.");
  return ag_strbuf_take(&b);
}

static bool leaks_answer(const ag_task *task, const char *text) {
  const ag_task_family *f = NULL;
  if (ag_task_family_get(task->family, &f) == AG_OK && f->leaks) return f->leaks(task, text);
  ag_error_clear();
  /* A family without a guard: at least the answer as written. */
  return task->answer && task->answer[0] && strstr(text, task->answer) != NULL;
}

static void free_all(char **out, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    free(out[i]);
    out[i] = NULL;
  }
}

static ag_status llm_replies(const ag_teacher_options *o, const ag_teacher_request *requests,
                             int64_t n, char **out, ag_rng *rngs, ag_teacher_stats *stats) {
  char **prompts = calloc((size_t)n, sizeof *prompts);
  ag_chat_message(*messages)[2] = calloc((size_t)n, sizeof *messages);
  ag_chat_conversation *convs = calloc((size_t)n, sizeof *convs);
  ag_chat_reply *replies = calloc((size_t)n, sizeof *replies);
  int64_t *pending = calloc((size_t)n, sizeof *pending); /* request index per conversation */
  ag_status st = AG_OK;
  if (!prompts || !messages || !convs || !replies || !pending) {
    st = ag_error_set(AG_ERR_NOMEM, "LLM teacher: out of memory");
    goto done;
  }
  for (int64_t i = 0; i < n; i++) {
    prompts[i] = llm_prompt(&requests[i]);
    if (!prompts[i]) {
      st = AG_ERR_NOMEM;
      goto done;
    }
    messages[i][0] = (ag_chat_message){"system", TEACHER_SYSTEM, NULL};
    messages[i][1] = (ag_chat_message){"user", prompts[i], NULL};
  }
  int64_t waiting = n;
  for (int64_t i = 0; i < n; i++) pending[i] = i;
  for (int attempt = 0; attempt <= o->max_regenerations && waiting > 0; attempt++) {
    for (int64_t j = 0; j < waiting; j++) {
      int64_t i = pending[j];
      convs[j] = (ag_chat_conversation){messages[i], 2,
                                        ag_dialogue_mix(requests[i].stream, (uint64_t)attempt)};
    }
    st = ag_chat_model_reply(o->model, convs, waiting, &o->params, replies);
    if (st) {
      ag_chat_reply_clear(replies, waiting);
      st = ag_error_wrap(st, "LLM teacher %s", ag_chat_model_name(o->model));
      goto done;
    }
    int64_t still = 0;
    for (int64_t j = 0; j < waiting; j++) {
      int64_t i = pending[j];
      const char *text = replies[j].content ? replies[j].content : "";
      if (is_blank(text) || leaks_answer(&requests[i].dialogue->task, text)) {
        if (stats) stats->rejected++;
        pending[still++] = i;
      } else {
        out[i] = replies[j].content;
        replies[j].content = NULL;
      }
    }
    ag_chat_reply_clear(replies, waiting);
    waiting = still;
  }
  for (int64_t j = 0; j < waiting; j++) {
    int64_t i = pending[j];
    if (stats) stats->fallbacks++;
    st = ag_teacher_feedback(&requests[i].dialogue->task, requests[i].verdict, o->level,
                             o->phrasing, &rngs[i], &out[i]);
    if (st) goto done;
  }
  /* The shard, a fact of the problem, is the simulator's and not checked. */
  for (int64_t i = 0; i < n; i++) {
    st = with_shard(out[i], &requests[i].dialogue->task, requests[i].shard, o->phrasing, &rngs[i],
                    &out[i]);
    if (st) goto done;
  }
done:
  if (st) free_all(out, n);
  for (int64_t i = 0; prompts && i < n; i++) free(prompts[i]);
  free(prompts);
  free(messages);
  free(convs);
  free(replies);
  free(pending);
  return st;
}

ag_status ag_teacher_replies(const ag_teacher_options *o, const ag_teacher_request *requests,
                             int64_t n, uint64_t seed, char **out, ag_teacher_stats *stats) {
  if (!o || (n > 0 && (!requests || !out)))
    return ag_error_set(AG_ERR_INVALID, "teacher replies: missing arguments");
  if (n <= 0) return AG_OK;
  for (int64_t i = 0; i < n; i++) out[i] = NULL;
  ag_rng *rngs = calloc((size_t)n, sizeof *rngs);
  if (!rngs) return ag_error_set(AG_ERR_NOMEM, "teacher replies: out of memory");
  for (int64_t i = 0; i < n; i++) ag_rng_seed2(&rngs[i], seed, requests[i].stream);
  ag_status st = AG_OK;
  if (o->model) {
    st = llm_replies(o, requests, n, out, rngs, stats);
  } else {
    for (int64_t i = 0; i < n && !st; i++)
      st = programmatic_reply(o, &requests[i], &rngs[i], &out[i]);
    if (st) free_all(out, n);
  }
  if (!st && stats) stats->messages += n;
  free(rngs);
  return st;
}

ag_teacher_options ag_teacher_defaults(void) {
  ag_teacher_options o;
  memset(&o, 0, sizeof o);
  o.level = AG_FEEDBACK_DIRECTIONAL;
  o.phrasing = AG_PHRASING_HELDOUT;
  o.model = NULL;
  o.params = ag_chat_params_defaults();
  o.max_regenerations = 2;
  return o;
}
