/* `agora lm generate|chat|eval|info`: language models from a Hugging Face
 * folder or a GGUF file. Flag parsing and output only; the work is in
 * libagora (agora/lm_model.h, agora/generate.h; conversations through
 * agora/chat_model.h). */
#include "agora/chat_model.h"
#include "agora/generate.h"
#include "agora/json.h"
#include "cli/args.h"
#include "cli/cli.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_FLAGS      32
#define DEFAULT_BATCH  8
#define CHAT_MAX_TURNS 1024
/* Stand for an empty --prompt, which the flag parser refuses as a value:
 * prescan() puts these in argv and cmd_generate compares pointers. */
static char EMPTY_PROMPT_FLAG[] = "--prompt=<empty>";
#define EMPTY_PROMPT (EMPTY_PROMPT_FLAG + 9)

/* ---- shared pieces ------------------------------------------------------------------ */

static int open_model(const char *path, ag_lm **lm) {
  if (ag_lm_open(path, lm)) return ag_cli_error("%s", ag_error_message());
  return 0;
}

/* Sampling flags shared by generate and chat. */
typedef struct sampling_flags {
  double temperature, top_p, min_p, repetition_penalty;
  int top_k;
  int64_t max_tokens;
} sampling_flags;

static int add_sampling_flags(ag_flag *flags, sampling_flags *s) {
  int n = 0;
  flags[n++] = (ag_flag){.name = "max-tokens",
                         .type = AG_FLAG_INT64,
                         .value = &s->max_tokens,
                         .metavar = "N",
                         .help = "tokens to generate at most (per prompt / reply)",
                         .min = 0,
                         .max = 1e9};
  flags[n++] = (ag_flag){.name = "temperature",
                         .type = AG_FLAG_FLOAT,
                         .value = &s->temperature,
                         .help = "sampling temperature; 0: greedy (exactly reproducible)",
                         .min = 0,
                         .max = 100};
  flags[n++] = (ag_flag){.name = "top-k",
                         .type = AG_FLAG_INT,
                         .value = &s->top_k,
                         .metavar = "K",
                         .help = "sample from the K most likely tokens; 0: all",
                         .min = 0,
                         .max = 1e9};
  flags[n++] = (ag_flag){.name = "top-p",
                         .type = AG_FLAG_FLOAT,
                         .value = &s->top_p,
                         .metavar = "P",
                         .help = "nucleus: the fewest tokens with probability >= P; 1: all",
                         .min = 1e-9,
                         .max = 1};
  flags[n++] = (ag_flag){.name = "min-p",
                         .type = AG_FLAG_FLOAT,
                         .value = &s->min_p,
                         .metavar = "P",
                         .help = "drop tokens less likely than P x the most likely; 0: none",
                         .min = 0,
                         .max = 1};
  flags[n++] = (ag_flag){.name = "repetition-penalty",
                         .type = AG_FLAG_FLOAT,
                         .value = &s->repetition_penalty,
                         .help = "divide positive / multiply negative logits of tokens seen; 1: "
                                 "none",
                         .min = 1e-6,
                         .max = 100};
  return n;
}

static ag_sampling sampling_of(const sampling_flags *s) {
  return (ag_sampling){.temperature = (float)s->temperature,
                       .top_k = s->top_k,
                       .top_p = (float)s->top_p,
                       .min_p = (float)s->min_p,
                       .repetition_penalty = (float)s->repetition_penalty};
}

/* "\n", "\t", "\\" in a --stop value become the characters (in place). */
static void unescape(char *s) {
  char *w = s;
  for (const char *r = s; *r; r++) {
    if (*r == '\\' && (r[1] == 'n' || r[1] == 't' || r[1] == '\\')) {
      r++;
      *w++ = *r == 'n' ? '\n' : *r == 't' ? '\t' : '\\';
    } else {
      *w++ = *r;
    }
  }
  *w = '\0';
}

/* Before the parser runs: collects every --stop (the parser keeps only the
 * last of a repeated flag) and lets --prompt be empty (which it refuses). */
static int prescan(int argc, char **argv, char **stops, int *stop_count) {
  *stop_count = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--")) break;
    char *value = NULL;
    if (!strcmp(argv[i], "--stop") && i + 1 < argc) {
      value = argv[i + 1];
    } else if (!strncmp(argv[i], "--stop=", 7)) {
      value = argv[i] + 7;
    } else if (!strcmp(argv[i], "--prompt") && i + 1 < argc && !argv[i + 1][0]) {
      argv[i + 1] = EMPTY_PROMPT;
    } else if (!strcmp(argv[i], "--prompt=")) {
      argv[i] = EMPTY_PROMPT_FLAG;
    }
    if (value) {
      if (*stop_count == AG_GENERATE_MAX_STOPS) {
        fprintf(stderr, "agora: error: at most %d --stop strings\n", AG_GENERATE_MAX_STOPS);
        return 2;
      }
      stops[(*stop_count)++] = value;
    }
  }
  return 0;
}

/* JSON text of any bytes: invalid UTF-8 becomes U+FFFD, as Hugging Face's
 * decoders would show it. */
static json_t *json_bytes(const char *s, size_t n) {
  json_t *v = json_stringn(s, n);
  if (v) return v;
  char *clean = malloc(3 * n + 1);
  if (!clean) return NULL;
  size_t w = 0;
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; k++) ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
    if (ok && len > 1 && json_stringn(s + i, len) == NULL) ok = false; /* overlong, surrogate */
    if (ok) {
      memcpy(clean + w, s + i, len);
      w += len;
      i += len;
    } else {
      memcpy(clean + w, "\xEF\xBF\xBD", 3);
      w += 3;
      i++;
    }
  }
  v = json_stringn(clean, w);
  free(clean);
  return v;
}

static int print_json_line(json_t *o) {
  if (!o) return ag_cli_error("out of memory");
  char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8));
  json_decref(o);
  if (!text) return ag_cli_error("out of memory");
  printf("%s\n", text);
  free(text);
  if (fflush(stdout) != 0) return ag_cli_error("cannot write stdout: %s", strerror(errno));
  return 0;
}

/* Streams text to stdout, flushing at once on a terminal. */
static void stream_text(void *user, int64_t index, const char *text, size_t bytes) {
  (void)index;
  fwrite(text, 1, bytes, stdout);
  if (*(bool *)user) fflush(stdout);
}

/* A conversation from a JSON "messages" array (strings borrowed from it). */
static int read_messages(json_t *array, ag_chat_message **out, int *n, const char *where) {
  size_t count = json_array_size(array);
  if (!json_is_array(array) || count == 0 || count > CHAT_MAX_TURNS)
    return ag_cli_error("%s: \"messages\" must be a non-empty array", where);
  ag_chat_message *m = calloc(count, sizeof *m);
  if (!m) return ag_cli_error("out of memory");
  for (size_t i = 0; i < count; i++) {
    json_t *item = json_array_get(array, i);
    const char *role = json_string_value(json_object_get(item, "role"));
    const char *content = json_string_value(json_object_get(item, "content"));
    if (!role || !content) {
      free(m);
      return ag_cli_error("%s: message %zu needs string \"role\" and \"content\"", where, i);
    }
    m[i] = (ag_chat_message){.role = role, .content = content};
  }
  *out = m;
  *n = (int)count;
  return 0;
}

/* ---- generate ----------------------------------------------------------------------- */

/* Conversations go through the library's chat model (agora/chat_model.h):
 * the model's template (agora's plain one when it has none), its
 * end-of-turn stops, one random stream per prompt. Plain prompts are
 * continued by ag_generate on the same model. */
typedef struct generate_job {
  ag_chat_model *chat_model;
  ag_lm *lm;                   /* the chat model's */
  bool chat;                   /* --chat: prompts are user messages */
  ag_generate_options options; /* plain prompts */
  ag_chat_params params;       /* conversations */
  bool as_json, terminal, quiet;
} generate_job;

/* What a prompt gave, from a generation or a chat reply. */
typedef struct result {
  const char *text;
  size_t bytes;
  ag_finish_reason finish;
  int64_t prompt_tokens, tokens, dropped_tokens;
} result;

static result of_generation(const ag_generation *g) {
  return (result){g->text.data ? g->text.data : "",
                  g->text.size,
                  g->finish,
                  g->prompt_tokens,
                  g->tokens.count,
                  g->dropped_tokens};
}

static result of_reply(const ag_chat_reply *r) {
  return (result){r->content ? r->content : "",
                  r->content ? strlen(r->content) : 0,
                  r->finish,
                  r->prompt_tokens,
                  r->completion_tokens,
                  r->dropped_tokens};
}

/* --prompt: the text continued, or under --chat replied to as a user
 * message; streamed to stdout unless --json. */
static int generate_one(generate_job *job, const char *prompt) {
  ag_generation g = {0};
  ag_chat_reply reply = {0};
  ag_tok_ids ids = {0};
  double start = ag_time_seconds();
  int rc = 0;
  if (job->chat) {
    ag_chat_message message = {.role = "user", .content = prompt};
    ag_chat_conversation c = {&message, 1, 0};
    if (!job->as_json) {
      job->params.on_text = stream_text;
      job->params.user = &job->terminal;
    }
    if (ag_chat_model_reply(job->chat_model, &c, 1, &job->params, &reply))
      rc = ag_cli_error("%s", ag_error_message());
  } else {
    if (!job->as_json) {
      job->options.on_text = stream_text;
      job->options.user = &job->terminal;
    }
    if (ag_lm_encode_prompt(job->lm, prompt, strlen(prompt), &ids))
      rc = ag_cli_error("--prompt: %s", ag_error_message());
    else if (ag_generate_ids(job->lm, &ids, 1, &job->options, &g))
      rc = ag_cli_error("%s", ag_error_message());
  }
  double seconds = ag_time_seconds() - start;
  ag_tok_ids_free(&ids);
  result res = job->chat ? of_reply(&reply) : of_generation(&g);
  if (!rc && res.dropped_tokens > 0)
    ag_warn("the prompt lost its first %lld tokens to fit the context (--truncate)",
            (long long)res.dropped_tokens);
  if (!rc && job->as_json) {
    rc = print_json_line(json_pack(
        "{s:o, s:s, s:I, s:I, s:f, s:f}", "text", json_bytes(res.text, res.bytes), "finish_reason",
        ag_finish_reason_name(res.finish), "prompt_tokens", (json_int_t)res.prompt_tokens,
        "generated_tokens", (json_int_t)res.tokens, "seconds", seconds, "tokens_per_second",
        seconds > 0 ? (double)res.tokens / seconds : 0.0));
  } else if (!rc) {
    if (job->terminal) putchar('\n');
    if (fflush(stdout) != 0) rc = ag_cli_error("cannot write stdout: %s", strerror(errno));
    if (!job->quiet && isatty(STDERR_FILENO))
      ag_info("%lld tokens in %.2f s (%.1f tokens/s), finished by %s", (long long)res.tokens,
              seconds, seconds > 0 ? res.tokens / seconds : 0.0, ag_finish_reason_name(res.finish));
  }
  ag_generation_free(&g, 1);
  ag_chat_reply_clear(&reply, 1);
  return rc;
}

/* Writes the results of prompts [first, first + n) as JSONL lines. */
static int write_results(const result *res, json_t **lines, int64_t first, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    json_t *o = json_object();
    json_object_set_new(o, "index", json_integer((json_int_t)(first + i)));
    json_t *id = json_object_get(lines[i], "id");
    if (id) json_object_set(o, "id", id);
    json_object_set_new(o, "text", json_bytes(res[i].text, res[i].bytes));
    json_object_set_new(o, "finish_reason", json_string(ag_finish_reason_name(res[i].finish)));
    json_object_set_new(o, "prompt_tokens", json_integer((json_int_t)res[i].prompt_tokens));
    json_object_set_new(o, "generated_tokens", json_integer((json_int_t)res[i].tokens));
    int rc = print_json_line(o);
    if (rc) return rc;
  }
  return 0;
}

/* A batch of JSONL lines: conversations (a "messages" array, or a prompt
 * under --chat) through the chat model, plain prompts through ag_generate.
 * Line first + i samples from stream first + i either way. */
typedef struct prompt_batch {
  ag_chat_conversation *convs;
  ag_chat_message *single; /* per line: a --chat prompt as a user message */
  ag_chat_message **owned; /* per line: a "messages" array read */
  ag_chat_reply *replies;  /* convs' */
  ag_tok_ids *ids;         /* plain prompts' */
  uint64_t *streams;       /* plain prompts' */
  ag_generation *g;        /* plain prompts' */
  int64_t *slot;           /* per line: its index in convs or ids */
  bool *is_chat;           /* per line */
  result *res;             /* per line */
  int64_t chats, plains;
} prompt_batch;

static void batch_free(prompt_batch *b, int64_t n) {
  for (int64_t i = 0; b->owned && i < n; i++) free(b->owned[i]);
  for (int64_t i = 0; b->ids && i < b->plains; i++) ag_tok_ids_free(&b->ids[i]);
  if (b->replies) ag_chat_reply_clear(b->replies, b->chats);
  if (b->g) ag_generation_free(b->g, b->plains);
  free(b->convs);
  free(b->single);
  free(b->owned);
  free(b->replies);
  free(b->ids);
  free(b->streams);
  free(b->g);
  free(b->slot);
  free(b->is_chat);
  free(b->res);
}

/* Line i of the batch into b: a conversation or a plain prompt's ids. */
static int batch_add(generate_job *job, prompt_batch *b, json_t *line, int64_t i, int64_t index,
                     const char *where) {
  json_t *messages = json_object_get(line, "messages");
  const char *prompt = json_string_value(json_object_get(line, "prompt"));
  if (!prompt) prompt = json_string_value(json_object_get(line, "text"));
  if (!prompt && !messages)
    return ag_cli_error("%s: each line needs a string \"prompt\" (or \"text\") or a "
                        "\"messages\" array",
                        where);
  b->is_chat[i] = messages || job->chat;
  if (!b->is_chat[i]) {
    b->slot[i] = b->plains++;
    b->streams[b->slot[i]] = (uint64_t)index;
    if (ag_lm_encode_prompt(job->lm, prompt, strlen(prompt), &b->ids[b->slot[i]]))
      return ag_cli_error("%s: %s", where, ag_error_message());
    return 0;
  }
  ag_chat_conversation *c = &b->convs[b->chats];
  b->slot[i] = b->chats++;
  *c = (ag_chat_conversation){.messages = &b->single[i], .count = 1, .stream = (uint64_t)index};
  if (messages) {
    int rc = read_messages(messages, &b->owned[i], &c->count, where);
    if (rc) return rc;
    c->messages = b->owned[i];
  } else {
    b->single[i] = (ag_chat_message){.role = "user", .content = prompt};
  }
  /* Rendered here only to name the line a template refuses. */
  char *text = NULL;
  ag_status st = ag_chat_model_prompt(job->chat_model, c->messages, c->count, &text);
  free(text);
  return st ? ag_cli_error("%s: %s", where, ag_error_message()) : 0;
}

/* Generates a batch of JSONL lines; lines are freed by the caller. */
static int generate_batch(generate_job *job, json_t **lines, int64_t first, int64_t n,
                          const char *path, const int64_t *line_numbers, int64_t *tokens) {
  prompt_batch b = {0};
  size_t count = (size_t)n;
  b.convs = calloc(count, sizeof *b.convs);
  b.single = calloc(count, sizeof *b.single);
  b.owned = calloc(count, sizeof *b.owned);
  b.replies = calloc(count, sizeof *b.replies);
  b.ids = calloc(count, sizeof *b.ids);
  b.streams = calloc(count, sizeof *b.streams);
  b.g = calloc(count, sizeof *b.g);
  b.slot = calloc(count, sizeof *b.slot);
  b.is_chat = calloc(count, sizeof *b.is_chat);
  b.res = calloc(count, sizeof *b.res);
  int rc = !b.convs || !b.single || !b.owned || !b.replies || !b.ids || !b.streams || !b.g ||
                   !b.slot || !b.is_chat || !b.res
               ? ag_cli_error("out of memory")
               : 0;
  for (int64_t i = 0; !rc && i < n; i++) {
    char where[600];
    snprintf(where, sizeof where, "%s:%lld", path, (long long)line_numbers[i]);
    rc = batch_add(job, &b, lines[i], i, first + i, where);
  }
  if (!rc && b.plains > 0) {
    job->options.on_text = NULL;
    job->options.streams = b.streams;
    if (ag_generate_ids(job->lm, b.ids, b.plains, &job->options, b.g))
      rc = ag_cli_error("%s: %s", path, ag_error_message());
    job->options.streams = NULL;
  }
  if (!rc && b.chats > 0) {
    job->params.on_text = NULL;
    if (ag_chat_model_reply(job->chat_model, b.convs, b.chats, &job->params, b.replies))
      rc = ag_cli_error("%s: %s", path, ag_error_message());
  }
  for (int64_t i = 0; !rc && i < n; i++) {
    b.res[i] = b.is_chat[i] ? of_reply(&b.replies[b.slot[i]]) : of_generation(&b.g[b.slot[i]]);
    *tokens += b.res[i].tokens;
  }
  if (!rc) rc = write_results(b.res, lines, first, n);
  batch_free(&b, n);
  return rc;
}

static int generate_file(generate_job *job, const char *path, int64_t batch) {
  ag_jsonl_reader *r = NULL;
  if (ag_jsonl_open(path, &r)) return ag_cli_error("%s", ag_error_message());
  json_t **lines = calloc((size_t)batch, sizeof *lines);
  int64_t *numbers = calloc((size_t)batch, sizeof *numbers);
  int rc = !lines || !numbers ? ag_cli_error("out of memory") : 0;
  int64_t done = 0, tokens = 0, n = 0;
  double start = ag_time_seconds();
  ag_progress *p = ag_progress_begin("generate", 0, "prompts");
  for (bool end = false; !rc && !end;) {
    json_t *v = NULL;
    if (ag_jsonl_next(r, &v)) {
      rc = ag_cli_error("%s", ag_error_message());
      break;
    }
    if (v && !json_is_object(v)) {
      json_decref(v);
      rc = ag_cli_error("%s:%lld: each line must be a JSON object", path,
                        (long long)ag_jsonl_line(r));
      break;
    }
    if (v) {
      numbers[n] = ag_jsonl_line(r);
      lines[n++] = v;
    }
    end = v == NULL;
    if (n == batch || (end && n > 0)) {
      rc = generate_batch(job, lines, done, n, path, numbers, &tokens);
      for (int64_t i = 0; i < n; i++) json_decref(lines[i]);
      done += n;
      n = 0;
      ag_progress_update(p, done);
    }
  }
  ag_progress_end(p);
  for (int64_t i = 0; i < n; i++) json_decref(lines[i]);
  free(lines);
  free(numbers);
  ag_jsonl_close(r);
  double seconds = ag_time_seconds() - start;
  if (!rc && !job->quiet)
    ag_info("%lld prompts, %lld tokens in %.2f s (%.1f tokens/s)", (long long)done,
            (long long)tokens, seconds, seconds > 0 ? tokens / seconds : 0.0);
  return rc;
}

static int cmd_generate(int argc, char **argv) {
  ag_common_flags common = {0};
  const char *model = NULL, *prompt = NULL, *prompts = NULL;
  sampling_flags s = {
      .temperature = 1.0, .top_p = 1.0, .repetition_penalty = 1.0, .max_tokens = 256};
  bool truncate = false, chat = false, ignore_eos = false;
  int64_t batch = DEFAULT_BATCH;
  const char *stop_dummy = NULL;
  char *stops[AG_GENERATE_MAX_STOPS];
  int stop_count = 0;
  if (prescan(argc, argv, stops, &stop_count)) return 2;
  ag_flag table[MAX_FLAGS];
  int n = 0;
  table[n++] = (ag_flag){.name = "model",
                         .type = AG_FLAG_STRING,
                         .value = &model,
                         .metavar = "PATH",
                         .help = "a Hugging Face model folder or a .gguf file",
                         .required = true};
  table[n++] = (ag_flag){.name = "prompt",
                         .type = AG_FLAG_STRING,
                         .value = &prompt,
                         .metavar = "TEXT",
                         .help = "the text to continue (may be \"\": BOS alone); the "
                                 "continuation alone goes to stdout"};
  table[n++] = (ag_flag){.name = "prompts",
                         .type = AG_FLAG_STRING,
                         .value = &prompts,
                         .metavar = "FILE",
                         .help = "JSONL, one {\"prompt\": ...} or {\"messages\": [...]} per line; "
                                 "writes one JSON line per prompt"};
  n += add_sampling_flags(table + n, &s);
  table[n++] = (ag_flag){.name = "stop",
                         .type = AG_FLAG_STRING,
                         .value = &stop_dummy,
                         .metavar = "TEXT",
                         .help = "end at this text, which is not printed (repeatable; \\n and \\t "
                                 "are newline and tab)"};
  table[n++] = (ag_flag){.name = "truncate",
                         .type = AG_FLAG_BOOL,
                         .value = &truncate,
                         .help = "drop a long prompt's first tokens (after BOS) to make room, "
                                 "instead of failing"};
  table[n++] = (ag_flag){.name = "chat",
                         .type = AG_FLAG_BOOL,
                         .value = &chat,
                         .help = "wrap each prompt as a user message in the model's chat template"};
  table[n++] = (ag_flag){.name = "batch-size",
                         .type = AG_FLAG_INT64,
                         .value = &batch,
                         .metavar = "N",
                         .help = "--prompts: prompts decoded together",
                         .min = 1,
                         .max = 4096};
  table[n++] = (ag_flag){.name = "ignore-eos",
                         .type = AG_FLAG_BOOL,
                         .value = &ignore_eos,
                         .help = "keep generating past the end-of-sequence token"};
  ag_flag flags[MAX_FLAGS + AG_COMMON_FLAG_COUNT];
  int count = ag_args_with_common(flags, table, n, &common, true);
  ag_command cmd = {
      .name = "lm generate",
      .summary = "Continue a prompt (--prompt) or each prompt of a JSONL file (--prompts), "
                 "several at a time through one KV cache. The model's BOS is prepended as its "
                 "tokenizer config says. With --prompt, only the generated text is printed "
                 "(streamed as it comes on a terminal).",
      .flags = flags,
      .flag_count = count};
  ag_args_result r = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (r != AG_ARGS_OK) return r == AG_ARGS_HELP ? 0 : 2;
  if (!prompt == !prompts) return ag_args_usage_error(&cmd, "give either --prompt or --prompts");
  ag_args_apply_common(&common);
  generate_job job = {.chat = chat,
                      .as_json = common.json,
                      .terminal = isatty(STDOUT_FILENO),
                      .quiet = common.quiet};
  job.options = ag_generate_defaults();
  job.options.sampling = sampling_of(&s);
  job.options.max_new_tokens = s.max_tokens;
  job.options.seed = common.seed;
  job.options.truncate = truncate;
  job.options.ignore_eos = ignore_eos;
  job.params = ag_chat_params_defaults();
  job.params.sampling = job.options.sampling;
  job.params.max_tokens = s.max_tokens;
  job.params.seed = common.seed;
  job.params.ignore_eos = ignore_eos;
  for (int i = 0; i < stop_count; i++) {
    unescape(stops[i]);
    if (!stops[i][0]) return ag_args_usage_error(&cmd, "--stop needs a non-empty value");
    job.options.stop[job.options.stop_count++] = stops[i];
    job.params.stop[job.params.stop_count++] = stops[i];
  }
  if (ag_chat_model_is_endpoint(model))
    return ag_cli_error("%s: no such model (expected a Hugging Face model folder or a .gguf file)",
                        model);
  /* One model for both kinds of prompt; conversations without a template
   * of the model's use the plain one. */
  ag_chat_model_options mo = ag_chat_model_defaults();
  mo.plain_fallback = true;
  mo.truncate = truncate;
  if (ag_chat_model_open(model, &mo, &job.chat_model))
    return ag_cli_error("%s", ag_error_message());
  job.lm = ag_chat_model_lm(job.chat_model);
  int rc = prompt ? generate_one(&job, prompt == EMPTY_PROMPT ? "" : prompt)
                  : generate_file(&job, prompts, batch);
  ag_chat_model_close(job.chat_model);
  return rc;
}

/* ---- chat --------------------------------------------------------------------------- */

/* One line of stdin without its newline (malloc'd); NULL at end of input
 * (or when memory runs out). */
static char *read_line(FILE *f) {
  size_t cap = 256, n = 0;
  char *line = malloc(cap);
  if (!line) return NULL;
  int c;
  while ((c = fgetc(f)) != EOF && c != '\n') {
    if (n + 1 == cap) {
      char *grown = realloc(line, cap * 2);
      if (!grown) {
        free(line);
        return NULL;
      }
      line = grown;
      cap *= 2;
    }
    line[n++] = (char)c;
  }
  if (c == EOF && n == 0) {
    free(line);
    return NULL;
  }
  if (n > 0 && line[n - 1] == '\r') n--;
  line[n] = '\0';
  return line;
}

typedef struct conversation {
  ag_chat_message messages[CHAT_MAX_TURNS];
  char *owned[CHAT_MAX_TURNS]; /* contents we allocated */
  int count;
} conversation;

static void conversation_free(conversation *c) {
  for (int i = 0; i < c->count; i++) free(c->owned[i]);
}

static int conversation_add(conversation *c, const char *role, char *content) {
  if (!content) return ag_cli_error("out of memory");
  if (c->count == CHAT_MAX_TURNS) {
    free(content);
    return ag_cli_error("chat: more than %d messages", CHAT_MAX_TURNS);
  }
  c->owned[c->count] = content;
  c->messages[c->count++] = (ag_chat_message){.role = role, .content = content};
  return 0;
}

static int cmd_chat(int argc, char **argv) {
  ag_common_flags common = {0};
  const char *model = NULL, *system = NULL, *template_name = NULL;
  sampling_flags s = {
      .temperature = 0.7, .top_p = 1.0, .repetition_penalty = 1.0, .max_tokens = 512};
  ag_flag table[MAX_FLAGS];
  int n = 0;
  table[n++] = (ag_flag){.name = "model",
                         .type = AG_FLAG_STRING,
                         .value = &model,
                         .metavar = "PATH",
                         .help = "a Hugging Face model folder or a .gguf file",
                         .required = true};
  table[n++] = (ag_flag){.name = "system",
                         .type = AG_FLAG_STRING,
                         .value = &system,
                         .metavar = "TEXT",
                         .help = "a system message that starts the conversation"};
  table[n++] = (ag_flag){.name = "template",
                         .type = AG_FLAG_STRING,
                         .value = &template_name,
                         .metavar = "NAME",
                         .help = "chat template by family (chatml, llama3, gemma, phi3, plain); "
                                 "default: the model's own, else plain"};
  n += add_sampling_flags(table + n, &s);
  ag_flag flags[MAX_FLAGS + AG_COMMON_FLAG_COUNT];
  int count = ag_args_with_common(flags, table, n, &common, true);
  ag_command cmd = {.name = "lm chat",
                    .summary = "Talk with a model: each line on stdin is a user message; each "
                               "reply is printed on stdout followed by a newline. Works with a "
                               "pipe as well as a terminal; ends at end of input.",
                    .flags = flags,
                    .flag_count = count};
  ag_args_result r = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (r != AG_ARGS_OK) return r == AG_ARGS_HELP ? 0 : 2;
  ag_args_apply_common(&common);
  if (ag_chat_model_is_endpoint(model))
    return ag_cli_error("%s: no such model (expected a Hugging Face model folder or a .gguf file)",
                        model);
  /* The oldest exchanges give way when the conversation outgrows the context. */
  ag_chat_model_options mo = ag_chat_model_defaults();
  mo.chat_template = template_name;
  mo.plain_fallback = true;
  mo.truncate = true;
  ag_chat_model *m = NULL;
  if (ag_chat_model_open(model, &mo, &m)) return ag_cli_error("%s", ag_error_message());
  conversation *c = calloc(1, sizeof *c);
  int rc = c ? 0 : ag_cli_error("out of memory");
  if (!rc && system) rc = conversation_add(c, "system", strdup(system));
  bool terminal = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO), flush = true, warned = false;
  ag_chat_params p = ag_chat_params_defaults();
  p.sampling = sampling_of(&s);
  p.max_tokens = s.max_tokens;
  p.seed = common.seed;
  p.on_text = stream_text;
  p.user = &flush;
  /* Turn t (counting empty lines) samples from stream t. */
  for (int64_t turn = 0; !rc; turn++) {
    if (terminal) {
      fputs("> ", stderr);
      fflush(stderr);
    }
    char *line = read_line(stdin);
    if (!line) break;
    if (!line[0]) {
      free(line);
      continue;
    }
    rc = conversation_add(c, "user", line);
    ag_chat_conversation conv = {c->messages, c->count, (uint64_t)turn};
    ag_chat_reply reply = {0};
    if (!rc && ag_chat_model_reply(m, &conv, 1, &p, &reply))
      rc = ag_cli_error("%s", ag_error_message());
    if (!rc) {
      putchar('\n');
      fflush(stdout);
      if (reply.dropped_tokens > 0 && !warned)
        ag_warn("chat: the conversation outgrew the context; its oldest messages are left out");
      warned = warned || reply.dropped_tokens > 0;
      rc = conversation_add(c, "assistant", strdup(reply.content));
    }
    ag_chat_reply_clear(&reply, 1);
  }
  if (c) conversation_free(c);
  free(c);
  ag_chat_model_close(m);
  return rc;
}

/* ---- eval --------------------------------------------------------------------------- */

/* eval: a conversation's text as `agora lm train` renders chat data
 * (agora/lm_train.h): the model's template (plain when it has none), the
 * tokenizer's BOS/EOS text, no generation prompt. *skip: the bytes of a
 * leading BOS text, which ag_lm_score_text writes as the BOS id itself. */
static ag_status eval_render(const ag_lm *lm, const ag_chat_message *m, int n, char **out,
                             size_t *skip) {
  const ag_chat_template *t = lm->chat_template;
  if (!t) ag_chat_template_by_family(AG_CHAT_PLAIN, &t);
  char *special[2] = {NULL, NULL};
  const ag_tok_role roles[2] = {AG_TOK_BOS, AG_TOK_EOS};
  for (int i = 0; i < 2; i++) {
    int32_t id = ag_tok_special_id(lm->tokenizer, roles[i]);
    size_t bytes = 0;
    const char *text = id >= 0 ? ag_tok_token_text(lm->tokenizer, id, &bytes) : NULL;
    if (text && (special[i] = malloc(bytes + 1)) != NULL) {
      memcpy(special[i], text, bytes);
      special[i][bytes] = '\0';
    }
  }
  ag_chat_render_options o = {.bos_token = special[0], .eos_token = special[1]};
  ag_status st = ag_chat_render(t, m, n, &o, out);
  size_t bos = special[0] ? strlen(special[0]) : 0;
  *skip = !st && lm->add_bos && bos > 0 && !strncmp(*out, special[0], bos) ? bos : 0;
  free(special[0]);
  free(special[1]);
  return st;
}

/* Scores a JSONL file's documents (field, or "messages" rendered). */
static int eval_jsonl(ag_lm *lm, const char *path, const char *field, int64_t window, int64_t limit,
                      ag_lm_score *score, int64_t *documents) {
  ag_jsonl_reader *r = NULL;
  if (ag_jsonl_open(path, &r)) return ag_cli_error("%s", ag_error_message());
  int rc = 0;
  bool warned = false;
  ag_progress *p = ag_progress_begin("eval", 0, "documents");
  while (!rc && (limit == 0 || *documents < limit)) {
    json_t *v = NULL;
    if (ag_jsonl_next(r, &v)) {
      rc = ag_cli_error("%s", ag_error_message());
      break;
    }
    if (!v) break;
    json_t *text = json_object_get(v, field);
    json_t *messages = json_object_get(v, "messages");
    char *rendered = NULL;
    size_t skip = 0;
    if (!json_is_string(text) && messages) {
      ag_chat_message *m = NULL;
      int n = 0;
      char where[600];
      snprintf(where, sizeof where, "%s:%lld", path, (long long)ag_jsonl_line(r));
      rc = read_messages(messages, &m, &n, where);
      if (!rc && !warned && !lm->chat_template && lm->chat_template_note[0])
        ag_warn("the model's chat template is not one agora renders (%s); using the plain "
                "template",
                lm->chat_template_note);
      warned = true;
      if (!rc && eval_render(lm, m, n, &rendered, &skip))
        rc = ag_cli_error("%s: %s", where, ag_error_message());
      free(m);
    } else if (!json_is_string(text)) {
      rc = ag_cli_error("%s:%lld: no string field \"%s\" (choose one with --field)", path,
                        (long long)ag_jsonl_line(r), field);
    }
    if (!rc) {
      const char *s = rendered ? rendered + skip : json_string_value(text);
      size_t bytes = rendered ? strlen(rendered) - skip : json_string_length(text);
      if (ag_lm_score_text(lm, s, bytes, window, score))
        rc = ag_cli_error("%s:%lld: %s", path, (long long)ag_jsonl_line(r), ag_error_message());
      (*documents)++;
      ag_progress_update(p, *documents);
    }
    free(rendered);
    json_decref(v);
  }
  ag_progress_end(p);
  ag_jsonl_close(r);
  return rc;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

static int cmd_eval(int argc, char **argv) {
  ag_common_flags common = {0};
  const char *model = NULL, *data = NULL, *field = "text";
  int64_t window = 0, limit = 0;
  ag_flag table[] = {
      {.name = "model",
       .type = AG_FLAG_STRING,
       .value = &model,
       .metavar = "PATH",
       .help = "a Hugging Face model folder or a .gguf file",
       .required = true},
      {.name = "data",
       .type = AG_FLAG_STRING,
       .value = &data,
       .metavar = "FILE",
       .help = "a text file (one document) or JSONL (.jsonl/.json: one document per line)",
       .required = true},
      {.name = "field",
       .type = AG_FLAG_STRING,
       .value = &field,
       .metavar = "NAME",
       .help = "JSONL: the string field to score (lines with \"messages\" are rendered "
               "through the chat template)"},
      {.name = "window",
       .type = AG_FLAG_INT64,
       .value = &window,
       .metavar = "N",
       .help = "tokens per context window; longer documents are cut into windows",
       .min = 0,
       .max = 1e9,
       .default_text = "the model's context"},
      {.name = "limit",
       .type = AG_FLAG_INT64,
       .value = &limit,
       .metavar = "N",
       .help = "JSONL: score the first N documents only; 0: all",
       .min = 0,
       .max = 1e12},
  };
  ag_flag flags[sizeof table / sizeof *table + AG_COMMON_FLAG_COUNT];
  int count = ag_args_with_common(flags, table, (int)(sizeof table / sizeof *table), &common, true);
  ag_command cmd = {.name = "lm eval",
                    .summary = "Mean next-token loss (nats) and perplexity of a model on a "
                               "corpus. Each document starts with the model's BOS; every token "
                               "after the first is predicted once.",
                    .flags = flags,
                    .flag_count = count};
  ag_args_result r = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (r != AG_ARGS_OK) return r == AG_ARGS_HELP ? 0 : 2;
  if (window == 1) return ag_args_usage_error(&cmd, "--window must be at least 2 tokens");
  ag_args_apply_common(&common);
  ag_lm *lm = NULL;
  int rc = open_model(model, &lm);
  if (rc) return rc;
  ag_lm_score score = {0};
  int64_t documents = 0;
  double start = ag_time_seconds();
  if (ends_with(data, ".jsonl") || ends_with(data, ".json")) {
    rc = eval_jsonl(lm, data, field, window, limit, &score, &documents);
  } else {
    char *text = NULL;
    size_t bytes = 0;
    if (ag_read_file(data, &text, &bytes) || ag_lm_score_text(lm, text, bytes, window, &score))
      rc = ag_cli_error("%s", ag_error_message());
    documents = 1;
    free(text);
  }
  double seconds = ag_time_seconds() - start;
  ag_lm_close(lm);
  if (rc) return rc;
  if (score.tokens == 0) return ag_cli_error("%s: no tokens to predict", data);
  double loss = score.nll_sum / (double)score.tokens;
  double bits_per_byte = score.bytes > 0 ? score.nll_sum / log(2.0) / (double)score.bytes : 0;
  if (common.json)
    return print_json_line(json_pack(
        "{s:I, s:I, s:I, s:f, s:f, s:f, s:f}", "documents", (json_int_t)documents, "tokens",
        (json_int_t)score.tokens, "bytes", (json_int_t)score.bytes, "loss", loss, "perplexity",
        exp(loss), "bits_per_byte", bits_per_byte, "seconds", seconds));
  printf("documents      %lld\ntokens         %lld\nloss           %.6f\nperplexity     %.4f\n"
         "bits_per_byte  %.4f\n",
         (long long)documents, (long long)score.tokens, loss, exp(loss), bits_per_byte);
  return fflush(stdout) != 0 ? ag_cli_error("cannot write stdout: %s", strerror(errno)) : 0;
}

/* ---- info --------------------------------------------------------------------------- */

static int cmd_info(int argc, char **argv) {
  const char *model = NULL;
  bool as_json = false;
  ag_flag flags[] = {
      {.name = "model",
       .type = AG_FLAG_STRING,
       .value = &model,
       .metavar = "PATH",
       .help = "a Hugging Face model folder or a .gguf file",
       .required = true},
      {.name = "json", .type = AG_FLAG_BOOL, .value = &as_json, .help = "print one JSON object"}};
  ag_command cmd = {.name = "lm info",
                    .summary = "Describe a model: shape, tokenizer, special ids, chat template.",
                    .flags = flags,
                    .flag_count = (int)(sizeof flags / sizeof *flags)};
  ag_args_result r = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (r != AG_ARGS_OK) return r == AG_ARGS_HELP ? 0 : 2;
  ag_lm *lm = NULL;
  int rc = open_model(model, &lm);
  if (rc) return rc;
  const ag_transformer_config *c = ag_transformer_config_of(lm->model);
  int64_t params = ag_transformer_params(lm->model)->total;
  const char *tmpl = lm->chat_template ? ag_chat_template_name(lm->chat_template) : "none";
  json_t *eos = json_array();
  for (int i = 0; i < lm->eos_count; i++) json_array_append_new(eos, json_integer(lm->eos_ids[i]));
  json_t *o = json_pack(
      "{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:s, s:i, s:i, s:b, s:o, "
      "s:s}",
      "format", lm->format == AG_LM_GGUF ? "gguf" : "hf", "arch",
      c->arch == AG_ARCH_GPT2 ? "gpt2" : "llama", "parameters", (json_int_t)params, "vocab_size",
      (json_int_t)c->vocab_size, "hidden_size", (json_int_t)c->hidden_size, "intermediate_size",
      (json_int_t)c->intermediate_size, "layers", (json_int_t)c->num_layers, "heads",
      (json_int_t)c->num_heads, "kv_heads", (json_int_t)c->num_kv_heads, "head_dim",
      (json_int_t)c->head_dim, "context_length", (json_int_t)lm->context_length, "tied_embeddings",
      c->tie_embeddings, "tokenizer", ag_tok_model_name(lm->tokenizer), "tokenizer_vocab",
      (int)ag_tok_vocab_size(lm->tokenizer), "bos", (int)lm->bos_id, "add_bos", lm->add_bos, "eos",
      eos, "chat_template", tmpl);
  if (as_json) {
    rc = print_json_line(o);
  } else if (o) {
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
      char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
      printf("%-18s %s\n", key, text ? text : "?");
      free(text);
    }
    json_decref(o);
  }
  ag_lm_close(lm);
  return rc;
}

int ag_cli_lm(int argc, char **argv) {
  static const ag_cli_verb verbs[] = {
      {"generate", "continue a prompt, or every prompt of a JSONL file", cmd_generate},
      {"chat", "talk with a model through its chat template (lines on stdin)", cmd_chat},
      {"eval", "loss and perplexity on a text or JSONL corpus", cmd_eval},
      {"info", "describe a model", cmd_info},
      {"train", "train or fine-tune (full or LoRA) on text, JSONL or chat data", ag_cli_lm_train},
  };
  static const ag_cli_area_help area = {
      "lm",
      "Language models: a Hugging Face model folder (config.json, "
      "model.safetensors,\ntokenizer.json) or a llama.cpp GGUF file (F32, F16, BF16, Q8_0).",
      verbs, (int)(sizeof verbs / sizeof *verbs)};
  return ag_cli_dispatch(&area, argc, argv);
}
