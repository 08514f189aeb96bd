/* `agora lm generate|chat|eval|info`: language models from a Hugging Face
 * folder or a GGUF file. Flag parsing and output only; the work is in
 * libagora (agora/lm_model.h, agora/generate.h). */
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

static int64_t total_tokens(const ag_generation *g, int64_t n) {
  int64_t sum = 0;
  for (int64_t i = 0; i < n; i++) sum += g[i].tokens.count;
  return sum;
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

/* The template to chat with: the model's, or --template, or agora's plain
 * one when the model has none. */
static int chat_template_for(const ag_lm *lm, const char *name, const ag_chat_template **out) {
  if (name) {
    if (ag_chat_template_by_name(name, out)) return ag_cli_error("%s", ag_error_message());
    return 0;
  }
  if (lm->chat_template) {
    *out = lm->chat_template;
    return 0;
  }
  if (lm->chat_template_note[0])
    ag_warn("the model's chat template is not one agora renders (%s); using the plain template",
            lm->chat_template_note);
  ag_chat_template_by_family(AG_CHAT_PLAIN, out);
  return 0;
}

/* Render options for the plain template: the model's own BOS/EOS text. */
static ag_chat_render_options render_options(const ag_lm *lm, const ag_chat_template *t) {
  ag_chat_render_options r = {.add_generation_prompt = true};
  if (ag_chat_template_family(t) == AG_CHAT_PLAIN) {
    size_t n;
    const char *bos = lm->add_bos ? ag_tok_token_text(lm->tokenizer, lm->bos_id, &n) : NULL;
    int32_t eos = ag_tok_special_id(lm->tokenizer, AG_TOK_EOS);
    const char *eos_text = eos >= 0 ? ag_tok_token_text(lm->tokenizer, eos, &n) : NULL;
    r.bos_token = bos ? bos : "";
    if (eos_text) r.eos_token = eos_text;
  }
  return r;
}

/* Rendered conversation -> ids: the template writes BOS text itself when
 * the family has one; the plain template's BOS comes from render_options.
 * A generation prompt's final space ("assistant: ") is left for the model
 * to write, as the library's chat models do (see src/lm/chat_model.c). */
static ag_status encode_rendered(const ag_lm *lm, const char *text, ag_tok_ids *ids) {
  size_t len = strlen(text);
  if (len > 0 && text[len - 1] == ' ') len--;
  return ag_tok_encode(lm->tokenizer, text, len, 0, ids);
}

/* Stop ids and strings that end an assistant turn. */
static void turn_stops(const ag_lm *lm, const ag_chat_template *t, ag_generate_options *o) {
  const char *marker = ag_chat_template_end_of_turn(t);
  if (marker) {
    int32_t id = ag_tok_find(lm->tokenizer, marker, strlen(marker));
    if (id >= 0 && o->stop_id_count < AG_GENERATE_MAX_STOPS) o->stop_ids[o->stop_id_count++] = id;
    if (o->stop_count < AG_GENERATE_MAX_STOPS) o->stop[o->stop_count++] = marker;
  } else if (o->stop_count < AG_GENERATE_MAX_STOPS) {
    o->stop[o->stop_count++] = "\nuser:"; /* plain: a model that does not emit EOS */
  }
}

/* ---- generate ----------------------------------------------------------------------- */

typedef struct generate_job {
  ag_lm *lm;
  const ag_chat_template *chat; /* --chat: prompts are user messages */
  ag_generate_options options;
  bool as_json, terminal, quiet;
} generate_job;

/* One prompt's text -> ids: as is (BOS added), or as a user message. */
static int prompt_ids(const generate_job *job, const char *prompt, json_t *messages,
                      const char *where, ag_tok_ids *ids) {
  if (!job->chat && !messages) {
    if (ag_lm_encode_prompt(job->lm, prompt, strlen(prompt), ids))
      return ag_cli_error("%s: %s", where, ag_error_message());
    return 0;
  }
  ag_chat_message one = {.role = "user", .content = prompt}, *m = &one;
  int n = 1, rc = 0;
  const ag_chat_template *t = job->chat;
  if (!t && (rc = chat_template_for(job->lm, NULL, &t))) return rc;
  if (messages && (rc = read_messages(messages, &m, &n, where))) return rc;
  ag_chat_render_options r = render_options(job->lm, t);
  char *text = NULL;
  if (ag_chat_render(t, m, n, &r, &text) || encode_rendered(job->lm, text, ids))
    rc = ag_cli_error("%s: %s", where, ag_error_message());
  free(text);
  if (m != &one) free(m);
  return rc;
}

static int generate_one(generate_job *job, const char *prompt) {
  ag_tok_ids ids = {0};
  int rc = prompt_ids(job, prompt, NULL, "--prompt", &ids);
  if (rc) return rc;
  ag_generation g = {0};
  if (!job->as_json) {
    job->options.on_text = stream_text;
    job->options.user = &job->terminal;
  }
  double start = ag_time_seconds();
  ag_status st = ag_generate_ids(job->lm, &ids, 1, &job->options, &g);
  double seconds = ag_time_seconds() - start;
  ag_tok_ids_free(&ids);
  if (st) {
    ag_generation_free(&g, 1);
    return ag_cli_error("%s", ag_error_message());
  }
  if (g.dropped_tokens > 0)
    ag_warn("the prompt lost its first %lld tokens to fit the context (--truncate)",
            (long long)g.dropped_tokens);
  if (job->as_json) {
    rc = print_json_line(json_pack(
        "{s:o, s:s, s:I, s:I, s:f, s:f}", "text", json_bytes(g.text.data, g.text.size),
        "finish_reason", ag_finish_reason_name(g.finish), "prompt_tokens",
        (json_int_t)g.prompt_tokens, "generated_tokens", (json_int_t)g.tokens.count, "seconds",
        seconds, "tokens_per_second", seconds > 0 ? (double)g.tokens.count / seconds : 0.0));
  } else {
    if (job->terminal) putchar('\n');
    if (fflush(stdout) != 0) rc = ag_cli_error("cannot write stdout: %s", strerror(errno));
    if (!job->quiet && isatty(STDERR_FILENO))
      ag_info("%lld tokens in %.2f s (%.1f tokens/s), finished by %s", (long long)g.tokens.count,
              seconds, seconds > 0 ? g.tokens.count / seconds : 0.0,
              ag_finish_reason_name(g.finish));
  }
  ag_generation_free(&g, 1);
  return rc;
}

/* Writes the results of prompts [first, first + n) as JSONL lines. */
static int write_results(const ag_generation *g, json_t **lines, int64_t first, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    json_t *o = json_object();
    json_object_set_new(o, "index", json_integer((json_int_t)(first + i)));
    json_t *id = json_object_get(lines[i], "id");
    if (id) json_object_set(o, "id", id);
    json_object_set_new(o, "text", json_bytes(g[i].text.data, g[i].text.size));
    json_object_set_new(o, "finish_reason", json_string(ag_finish_reason_name(g[i].finish)));
    json_object_set_new(o, "prompt_tokens", json_integer((json_int_t)g[i].prompt_tokens));
    json_object_set_new(o, "generated_tokens", json_integer((json_int_t)g[i].tokens.count));
    int rc = print_json_line(o);
    if (rc) return rc;
  }
  return 0;
}

/* Generates a batch of JSONL lines; lines are freed by the caller. */
static int generate_batch(generate_job *job, json_t **lines, int64_t first, int64_t n,
                          const char *path, const int64_t *line_numbers, int64_t *tokens) {
  ag_tok_ids *ids = calloc((size_t)n, sizeof *ids);
  ag_generation *g = calloc((size_t)n, sizeof *g);
  int rc = !ids || !g ? ag_cli_error("out of memory") : 0;
  for (int64_t i = 0; !rc && i < n; i++) {
    char where[600];
    snprintf(where, sizeof where, "%s:%lld", path, (long long)line_numbers[i]);
    json_t *messages = json_object_get(lines[i], "messages");
    const char *prompt = json_string_value(json_object_get(lines[i], "prompt"));
    if (!prompt) prompt = json_string_value(json_object_get(lines[i], "text"));
    if (!prompt && !messages)
      rc = ag_cli_error("%s: each line needs a string \"prompt\" (or \"text\") or a "
                        "\"messages\" array",
                        where);
    if (!rc) rc = prompt_ids(job, prompt ? prompt : "", messages, where, &ids[i]);
  }
  if (!rc) {
    job->options.index_base = first;
    job->options.on_text = NULL;
    if (ag_generate_ids(job->lm, ids, n, &job->options, g))
      rc = ag_cli_error("%s: %s", path, ag_error_message());
  }
  if (!rc) rc = write_results(g, lines, first, n);
  if (!rc) *tokens += total_tokens(g, n);
  for (int64_t i = 0; ids && i < n; i++) ag_tok_ids_free(&ids[i]);
  if (g) ag_generation_free(g, n);
  free(ids);
  free(g);
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
  generate_job job = {
      .as_json = common.json, .terminal = isatty(STDOUT_FILENO), .quiet = common.quiet};
  job.options = ag_generate_defaults();
  job.options.sampling = sampling_of(&s);
  job.options.max_new_tokens = s.max_tokens;
  job.options.seed = common.seed;
  job.options.truncate = truncate;
  job.options.ignore_eos = ignore_eos;
  for (int i = 0; i < stop_count; i++) {
    unescape(stops[i]);
    if (!stops[i][0]) return ag_args_usage_error(&cmd, "--stop needs a non-empty value");
    job.options.stop[job.options.stop_count++] = stops[i];
  }
  int rc = open_model(model, &job.lm);
  if (rc) return rc;
  if (chat) rc = chat_template_for(job.lm, NULL, &job.chat);
  if (!rc)
    rc = prompt ? generate_one(&job, prompt == EMPTY_PROMPT ? "" : prompt)
                : generate_file(&job, prompts, batch);
  ag_lm_close(job.lm);
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
  int count, first;            /* messages[first..count) are sent (plus a system message) */
  bool has_system;
} conversation;

static void conversation_free(conversation *c) {
  for (int i = 0; i < c->count; i++) free(c->owned[i]);
}

static int conversation_add(conversation *c, const char *role, char *content) {
  if (c->count == CHAT_MAX_TURNS) {
    free(content);
    return ag_cli_error("chat: more than %d messages", CHAT_MAX_TURNS);
  }
  c->owned[c->count] = content;
  c->messages[c->count++] = (ag_chat_message){.role = role, .content = content};
  return 0;
}

/* The ids of the conversation so far, dropping the oldest exchanges (not the
 * system message) until the prompt leaves room for a reply. */
static int chat_prompt(const ag_lm *lm, const ag_chat_template *t, conversation *c,
                       int64_t reply_room, ag_tok_ids *ids) {
  ag_chat_render_options r = render_options(lm, t);
  ag_chat_message view[CHAT_MAX_TURNS];
  for (;;) {
    int n = 0;
    if (c->has_system) view[n++] = c->messages[0];
    for (int i = c->first; i < c->count; i++) view[n++] = c->messages[i];
    char *text = NULL;
    ids->count = 0;
    if (ag_chat_render(t, view, n, &r, &text) || encode_rendered(lm, text, ids)) {
      free(text);
      return ag_cli_error("%s", ag_error_message());
    }
    free(text);
    if (ids->count + reply_room <= lm->context_length || c->first >= c->count - 1) return 0;
    c->first += 2; /* forget the oldest user message and its reply */
    ag_warn("chat: the conversation outgrew the context; forgetting the oldest exchange");
  }
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
  ag_lm *lm = NULL;
  int rc = open_model(model, &lm);
  if (rc) return rc;
  const ag_chat_template *t = NULL;
  rc = chat_template_for(lm, template_name, &t);
  conversation *c = calloc(1, sizeof *c);
  if (!rc && !c) rc = ag_cli_error("out of memory");
  if (!rc && system) {
    char *copy = strdup(system);
    rc = copy ? conversation_add(c, "system", copy) : ag_cli_error("out of memory");
    c->has_system = true;
    c->first = 1;
  }
  bool terminal = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
  ag_generate_options o = ag_generate_defaults();
  o.sampling = sampling_of(&s);
  o.max_new_tokens = s.max_tokens;
  o.seed = common.seed;
  turn_stops(lm, t, &o);
  o.on_text = stream_text;
  bool flush = true;
  o.user = &flush;
  ag_tok_ids ids = {0};
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
    int64_t room =
        o.max_new_tokens < lm->context_length / 2 ? o.max_new_tokens : lm->context_length / 2;
    if (!rc) rc = chat_prompt(lm, t, c, room, &ids);
    ag_generation g = {0};
    o.index_base = turn;
    if (!rc && ag_generate_ids(lm, &ids, 1, &o, &g)) rc = ag_cli_error("%s", ag_error_message());
    if (!rc) {
      putchar('\n');
      fflush(stdout);
      char *reply = malloc(g.text.size + 1);
      if (!reply) rc = ag_cli_error("out of memory");
      if (reply) {
        memcpy(reply, g.text.data ? g.text.data : "", g.text.size);
        reply[g.text.size] = '\0';
        rc = conversation_add(c, "assistant", reply);
      }
    }
    ag_generation_free(&g, 1);
  }
  ag_tok_ids_free(&ids);
  if (c) conversation_free(c);
  free(c);
  ag_lm_close(lm);
  return rc;
}

/* ---- eval --------------------------------------------------------------------------- */

/* Scores a JSONL file's documents (field, or "messages" rendered). */
static int eval_jsonl(ag_lm *lm, const char *path, const char *field, int64_t window, int64_t limit,
                      ag_lm_score *score, int64_t *documents) {
  ag_jsonl_reader *r = NULL;
  if (ag_jsonl_open(path, &r)) return ag_cli_error("%s", ag_error_message());
  int rc = 0;
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
    if (!json_is_string(text) && messages) {
      ag_chat_message *m = NULL;
      int n = 0;
      const ag_chat_template *t = NULL;
      char where[600];
      snprintf(where, sizeof where, "%s:%lld", path, (long long)ag_jsonl_line(r));
      rc = read_messages(messages, &m, &n, where);
      if (!rc) rc = chat_template_for(lm, NULL, &t);
      ag_chat_render_options o = t ? render_options(lm, t) : (ag_chat_render_options){0};
      o.add_generation_prompt = false;
      if (!rc && ag_chat_render(t, m, n, &o, &rendered))
        rc = ag_cli_error("%s: %s", where, ag_error_message());
      free(m);
    } else if (!json_is_string(text)) {
      rc = ag_cli_error("%s:%lld: no string field \"%s\" (choose one with --field)", path,
                        (long long)ag_jsonl_line(r), field);
    }
    if (!rc) {
      const char *s = rendered ? rendered : json_string_value(text);
      size_t bytes = rendered ? strlen(rendered) : json_string_length(text);
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
