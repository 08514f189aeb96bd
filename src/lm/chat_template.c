/* Chat templates without Jinja.
 *
 * Each published template (tokenizer_config.json "chat_template") is
 * reimplemented as straight-line C that emits the same bytes Jinja does
 * under Hugging Face's settings (trim_blocks, lstrip_blocks, the model's
 * bos_token / eos_token, tools=None). The templates are short, so reading
 * one next to its render_* function below shows the correspondence. What
 * the Jinja renders matters down to details a reader could miss:
 *  - Qwen2.5 injects its own system prompt when the first message is not a
 *    system message; later system messages render as ordinary turns.
 *  - Llama 3.1 always opens with a system header carrying "Cutting Knowledge
 *    Date" and "Today Date" (date_string, default "26 Jul 2024"), and trims
 *    every content (Jinja's `trim`, i.e. Python's str.strip()).
 *  - Gemma trims contents, names the assistant "model", refuses a leading
 *    system message and roles that do not alternate user/other/user/...
 *  - Phi-3.5 drops system messages with empty content and ends a render
 *    without a generation prompt with eos_token.
 *  - Roles a template does not know are rendered or dropped exactly as its
 *    Jinja does (Qwen and Phi-3.5 drop them, Llama and Gemma print them).
 * Tool calls and tool results are out of scope: role "tool"/"ipython" is
 * refused rather than rendered approximately. */
#include "agora/chat_template.h"

#include "agora/json.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

struct ag_chat_template {
  ag_chat_family family;
  const char *name;
  const char *end_of_turn; /* NULL: the EOS token closes a turn */
  const char *bos;         /* tokenizer_config.json's bos_token ("" if none) */
  const char *eos;
};

/* agora's own template: readable as plain text, needing no special tokens
 * beyond the tokenizer's EOS (agora's BPE trainer's "<|endoftext|>"), which
 * ends every turn so that generation stops there. */
static const char PLAIN_JINJA[] =
    "{{ bos_token }}{% for message in messages %}"
    "{{ message['role'] + ': ' + message['content'] + eos_token + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}";

/* Special-token texts as each model's tokenizer_config.json sets them. */
static const ag_chat_template TEMPLATES[AG_CHAT_FAMILY_COUNT] = {
    [AG_CHAT_PLAIN] = {AG_CHAT_PLAIN, "plain", NULL, "", "<|endoftext|>"},
    [AG_CHAT_CHATML] = {AG_CHAT_CHATML, "chatml", "<|im_end|>", "", "<|im_end|>"},
    [AG_CHAT_LLAMA3] = {AG_CHAT_LLAMA3, "llama3", "<|eot_id|>", "<|begin_of_text|>", "<|eot_id|>"},
    [AG_CHAT_GEMMA] = {AG_CHAT_GEMMA, "gemma", "<end_of_turn>", "<bos>", "<eos>"},
    [AG_CHAT_PHI3] = {AG_CHAT_PHI3, "phi3", "<|end|>", "<s>", "<|endoftext|>"},
};

static const struct {
  const char *name;
  ag_chat_family family;
} NAMES[] = {
    {"chatml", AG_CHAT_CHATML}, {"qwen2", AG_CHAT_CHATML},  {"qwen2.5", AG_CHAT_CHATML},
    {"qwen", AG_CHAT_CHATML},   {"llama3", AG_CHAT_LLAMA3}, {"llama3.1", AG_CHAT_LLAMA3},
    {"gemma", AG_CHAT_GEMMA},   {"gemma2", AG_CHAT_GEMMA},  {"phi3", AG_CHAT_PHI3},
    {"phi3.5", AG_CHAT_PHI3},   {"plain", AG_CHAT_PLAIN},
};

static const char SUPPORTED[] = "chatml (qwen2), llama3, gemma, phi3, plain";

/* Qwen2.5's default system prompt, verbatim from its template. */
static const char QWEN_DEFAULT_SYSTEM[] =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
/* Llama 3.1's template: `{%- set date_string = "26 Jul 2024" %}`. */
static const char LLAMA3_DEFAULT_DATE[] = "26 Jul 2024";

const char *ag_chat_template_supported(void) { return SUPPORTED; }
const char *ag_chat_template_name(const ag_chat_template *t) { return t->name; }
ag_chat_family ag_chat_template_family(const ag_chat_template *t) { return t->family; }
const char *ag_chat_template_end_of_turn(const ag_chat_template *t) { return t->end_of_turn; }
const char *ag_chat_template_bos(const ag_chat_template *t) { return t->bos; }
const char *ag_chat_template_eos(const ag_chat_template *t) { return t->eos; }
const char *ag_chat_template_jinja(const ag_chat_template *t) {
  return t->family == AG_CHAT_PLAIN ? PLAIN_JINJA : NULL;
}

ag_status ag_chat_template_by_family(ag_chat_family family, const ag_chat_template **out) {
  if (!out || (int)family < 0 || family >= AG_CHAT_FAMILY_COUNT)
    return ag_error_set(AG_ERR_INVALID, "chat template: no family %d (supported: %s)", (int)family,
                        SUPPORTED);
  *out = &TEMPLATES[family];
  return AG_OK;
}

ag_status ag_chat_template_by_name(const char *name, const ag_chat_template **out) {
  if (!name || !out) return ag_error_set(AG_ERR_INVALID, "chat template: NULL name");
  for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
    if (strcasecmp(name, NAMES[i].name) == 0)
      return ag_chat_template_by_family(NAMES[i].family, out);
  return ag_error_set(AG_ERR_NOT_FOUND, "chat template: unknown family \"%s\" (supported: %s)",
                      name, SUPPORTED);
}

/* ---- detection ------------------------------------------------------------------ */

static bool has_all(const char *s, const char *const *parts) {
  for (; *parts; parts++)
    if (!strstr(s, *parts)) return false;
  return true;
}

/* Substrings that together single out each published template. They are
 * strict on purpose: a variant (Qwen3's thinking tags, Llama 3.2's
 * strftime_now date, Gemma 3's system handling, Phi-3-mini's older layout)
 * renders differently and must be rejected, not rendered wrongly. */
static const char *const QWEN_MARKS[] = {"<|im_start|>", QWEN_DEFAULT_SYSTEM,
                                         "message.role == \"assistant\" and not message.tool_calls",
                                         NULL};
static const char *const LLAMA3_MARKS[] = {
    "<|start_header_id|>", "Cutting Knowledge Date: December 2023",
    "set date_string = \"26 Jul 2024\"", "message['content'] | trim", NULL};
static const char *const GEMMA_MARKS[] = {
    "<start_of_turn>", "raise_exception('System role not supported')",
    "Conversation roles must alternate user/assistant/user/assistant/...",
    "message['content'] | trim", NULL};
static const char *const PHI3_MARKS[] = {"<|system|>",
                                         "<|user|>",
                                         "<|assistant|>",
                                         "<|end|>",
                                         "message['role'] == 'system' and message['content']",
                                         "{{ eos_token }}",
                                         NULL};

ag_status ag_chat_template_detect(const char *source, const ag_chat_template **out) {
  if (!source || !out) return ag_error_set(AG_ERR_INVALID, "chat template: NULL source");
  ag_chat_family family = AG_CHAT_FAMILY_COUNT;
  if (strstr(source, PLAIN_JINJA))
    family = AG_CHAT_PLAIN;
  else if (has_all(source, QWEN_MARKS))
    family = AG_CHAT_CHATML;
  else if (has_all(source, LLAMA3_MARKS) && !strstr(source, "strftime_now"))
    family = AG_CHAT_LLAMA3;
  else if (has_all(source, GEMMA_MARKS))
    family = AG_CHAT_GEMMA;
  else if (has_all(source, PHI3_MARKS))
    family = AG_CHAT_PHI3;
  if (family == AG_CHAT_FAMILY_COUNT)
    return ag_error_set(AG_ERR_UNSUPPORTED,
                        "chat template: not one agora knows (it recognises the published "
                        "templates of Qwen2.5, Llama 3.1, Gemma 2 and Phi-3.5, and its own plain "
                        "one); pick a family by name: %s",
                        SUPPORTED);
  *out = &TEMPLATES[family];
  return AG_OK;
}

static bool is_directory(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

static ag_status detect_file(const char *path, const ag_chat_template **out) {
  char *source;
  size_t bytes;
  ag_status st = ag_read_file(path, &source, &bytes);
  if (st) return st;
  st = ag_chat_template_detect(source, out);
  free(source);
  return st ? ag_error_wrap(st, "%s", path) : AG_OK;
}

/* tokenizer_config.json: "chat_template" is a string, or (transformers'
 * named templates) a list of {"name", "template"} of which "default" is
 * what apply_chat_template uses. */
static ag_status detect_config(const char *path, const ag_chat_template **out) {
  json_t *root;
  ag_status st = ag_json_load(path, &root);
  if (st) return st;
  json_t *field = json_is_object(root) ? json_object_get(root, "chat_template") : NULL;
  const char *source = json_string_value(field);
  size_t i;
  json_t *entry;
  if (json_is_array(field)) {
    json_array_foreach(field, i, entry) {
      const char *name = json_string_value(json_object_get(entry, "name"));
      if (name && strcmp(name, "default") == 0)
        source = json_string_value(json_object_get(entry, "template"));
    }
  }
  if (!source)
    st = ag_error_set(AG_ERR_NOT_FOUND, "%s: no \"chat_template\" string", path);
  else if ((st = ag_chat_template_detect(source, out)))
    st = ag_error_wrap(st, "%s", path);
  json_decref(root);
  return st;
}

ag_status ag_chat_template_load(const char *path, const ag_chat_template **out) {
  if (!path || !out) return ag_error_set(AG_ERR_INVALID, "chat template: NULL path");
  if (!is_directory(path)) {
    if (!ag_file_exists(path)) return ag_error_set(AG_ERR_NOT_FOUND, "%s: no such file", path);
    return ends_with(path, ".jinja") ? detect_file(path, out) : detect_config(path, out);
  }
  /* Recent transformers save the template beside tokenizer_config.json. */
  size_t n = strlen(path) + sizeof "/tokenizer_config.json";
  char *file = malloc(n);
  if (!file) return ag_error_set(AG_ERR_NOMEM, "chat template: out of memory");
  ag_status st;
  snprintf(file, n, "%s/chat_template.jinja", path);
  if (ag_file_exists(file))
    st = detect_file(file, out);
  else {
    snprintf(file, n, "%s/tokenizer_config.json", path);
    st = ag_file_exists(file)
             ? detect_config(file, out)
             : ag_error_set(AG_ERR_NOT_FOUND, "%s: no chat_template.jinja or tokenizer_config.json",
                            path);
  }
  free(file);
  return st;
}

/* ---- rendering ------------------------------------------------------------------ */

typedef struct render {
  const ag_chat_template *t;
  const ag_chat_message *messages;
  int n;
  bool add_generation_prompt;
  const char *bos, *eos, *date_string;
  char *data; /* the text so far */
  size_t size, capacity;
  bool out_of_memory;
  ag_chat_span *spans; /* n entries, or NULL */
} render;

static void put_n(render *r, const char *s, size_t n) {
  if (r->out_of_memory) return;
  if (r->size + n + 1 > r->capacity) {
    size_t capacity = r->capacity ? r->capacity : 256;
    while (capacity < r->size + n + 1) capacity *= 2;
    char *grown = realloc(r->data, capacity);
    if (!grown) {
      r->out_of_memory = true;
      return;
    }
    r->data = grown;
    r->capacity = capacity;
  }
  memcpy(r->data + r->size, s, n);
  r->size += n;
  r->data[r->size] = '\0';
}

static void put(render *r, const char *s) { put_n(r, s, strlen(s)); }

/* Bytes of the Python-whitespace code point (str.isspace: the characters
 * Jinja's `trim`, i.e. str.strip(), removes) that starts at s[0], or 0. */
static size_t space_at(const unsigned char *s, size_t n) {
  if (n >= 1 && ((s[0] >= 0x09 && s[0] <= 0x0d) || (s[0] >= 0x1c && s[0] <= 0x20))) return 1;
  if (n >= 2 && s[0] == 0xc2 && (s[1] == 0x85 || s[1] == 0xa0)) return 2; /* U+0085, U+00A0 */
  if (n < 3) return 0;
  if (s[0] == 0xe1 && s[1] == 0x9a && s[2] == 0x80) return 3; /* U+1680 */
  if (s[0] == 0xe2 && s[1] == 0x80 &&
      (s[2] <= 0x8a || s[2] == 0xa8 || s[2] == 0xa9 || s[2] == 0xaf) && s[2] >= 0x80)
    return 3;                                                 /* U+2000-200A, 2028, 2029, 202F */
  if (s[0] == 0xe2 && s[1] == 0x81 && s[2] == 0x9f) return 3; /* U+205F */
  if (s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x80) return 3; /* U+3000 */
  return 0;
}

/* The same for the code point that ends just before s[n]. */
static size_t space_before(const unsigned char *s, size_t n) {
  for (size_t k = 1; k <= 3 && k <= n; k++)
    if (space_at(s + n - k, k) == k) return k;
  return 0;
}

/* Appends message i's content, trimmed as Jinja's `trim` does if asked,
 * recording its span. */
static void put_content(render *r, int i, bool trim) {
  const unsigned char *s = (const unsigned char *)r->messages[i].content;
  size_t begin = 0, end = strlen((const char *)s), k;
  if (trim) {
    while (begin < end && (k = space_at(s + begin, end - begin))) begin += k;
    while (end > begin && (k = space_before(s + begin, end - begin))) end -= k;
  }
  if (r->spans) r->spans[i].begin = (int64_t)r->size;
  put_n(r, (const char *)s + begin, end - begin);
  if (r->spans) r->spans[i].end = r->spans[i].turn_end = (int64_t)r->size;
}

/* Appends the marker that closes message i's turn, extending its span. */
static void put_end_of_turn(render *r, int i, const char *marker) {
  put(r, marker);
  if (r->spans) r->spans[i].turn_end = (int64_t)r->size;
}

static bool role_is(const ag_chat_message *m, const char *role) {
  return strcmp(m->role, role) == 0;
}

/* A conversation the Jinja template refuses via raise_exception(message). */
static ag_status refused(const render *r, const char *message) {
  return ag_error_set(AG_ERR_INVALID, "chat template %s: %s", r->t->name, message);
}

/* Qwen2.5 (no tools): a system turn always opens the text. */
static ag_status render_chatml(render *r) {
  const ag_chat_message *m = r->messages;
  put(r, "<|im_start|>system\n");
  if (role_is(&m[0], "system")) {
    put_content(r, 0, false);
    put_end_of_turn(r, 0, "<|im_end|>");
  } else {
    put(r, QWEN_DEFAULT_SYSTEM);
    put(r, "<|im_end|>");
  }
  put(r, "\n");
  for (int i = 0; i < r->n; i++) {
    /* Other roles (and the first system message, rendered above) fall
     * through every branch of the template's loop. */
    if (role_is(&m[i], "user") || (role_is(&m[i], "system") && i > 0) ||
        role_is(&m[i], "assistant")) {
      put(r, "<|im_start|>");
      put(r, m[i].role);
      put(r, "\n");
      put_content(r, i, false);
      put_end_of_turn(r, i, "<|im_end|>");
      put(r, "\n");
    }
  }
  if (r->add_generation_prompt) put(r, "<|im_start|>assistant\n");
  return AG_OK;
}

/* Llama 3.1 (no tools): the system header carries the dates and the (trimmed)
 * first system message; every turn is trimmed. */
static ag_status render_llama3(render *r) {
  const ag_chat_message *m = r->messages;
  int first = 0;
  put(r, r->bos);
  put(r, "<|start_header_id|>system<|end_header_id|>\n\n");
  put(r, "Cutting Knowledge Date: December 2023\n");
  put(r, "Today Date: ");
  put(r, r->date_string);
  put(r, "\n\n");
  if (role_is(&m[0], "system")) {
    put_content(r, 0, true);
    put_end_of_turn(r, 0, "<|eot_id|>");
    first = 1;
  } else {
    put(r, "<|eot_id|>");
  }
  for (int i = first; i < r->n; i++) {
    put(r, "<|start_header_id|>");
    put(r, m[i].role);
    put(r, "<|end_header_id|>\n\n");
    put_content(r, i, true);
    put_end_of_turn(r, i, "<|eot_id|>");
  }
  if (r->add_generation_prompt) put(r, "<|start_header_id|>assistant<|end_header_id|>\n\n");
  return AG_OK;
}

/* Gemma / Gemma 2: user turns at even positions, any other role at odd ones
 * ("assistant" printed as "model"); no system message first. */
static ag_status render_gemma(render *r) {
  const ag_chat_message *m = r->messages;
  if (role_is(&m[0], "system")) return refused(r, "System role not supported");
  put(r, r->bos);
  for (int i = 0; i < r->n; i++) {
    if (role_is(&m[i], "user") != (i % 2 == 0))
      return refused(r, "Conversation roles must alternate user/assistant/user/assistant/...");
    put(r, "<start_of_turn>");
    put(r, role_is(&m[i], "assistant") ? "model" : m[i].role);
    put(r, "\n");
    put_content(r, i, true);
    put_end_of_turn(r, i, "<end_of_turn>");
    put(r, "\n");
  }
  if (r->add_generation_prompt) put(r, "<start_of_turn>model\n");
  return AG_OK;
}

/* Phi-3.5: system (if non-empty), user and assistant turns; other roles are
 * dropped; EOS closes a conversation that asks for no reply. */
static ag_status render_phi3(render *r) {
  const ag_chat_message *m = r->messages;
  for (int i = 0; i < r->n; i++) {
    const char *tag = NULL;
    if (role_is(&m[i], "system") && m[i].content[0])
      tag = "<|system|>\n";
    else if (role_is(&m[i], "user"))
      tag = "<|user|>\n";
    else if (role_is(&m[i], "assistant"))
      tag = "<|assistant|>\n";
    if (!tag) continue;
    put(r, tag);
    put_content(r, i, false);
    put_end_of_turn(r, i, "<|end|>");
    put(r, "\n");
  }
  put(r, r->add_generation_prompt ? "<|assistant|>\n" : r->eos);
  return AG_OK;
}

/* agora's plain template: PLAIN_JINJA above. */
static ag_status render_plain(render *r) {
  const ag_chat_message *m = r->messages;
  put(r, r->bos);
  for (int i = 0; i < r->n; i++) {
    put(r, m[i].role);
    put(r, ": ");
    put_content(r, i, false);
    put_end_of_turn(r, i, r->eos);
    put(r, "\n");
  }
  if (r->add_generation_prompt) put(r, "assistant: ");
  return AG_OK;
}

static ag_status check_messages(const ag_chat_template *t, const ag_chat_message *messages, int n) {
  if (n < 1 || !messages)
    return ag_error_set(AG_ERR_INVALID, "chat template %s: empty conversation (%d messages)",
                        t->name, n);
  for (int i = 0; i < n; i++) {
    if (!messages[i].role || !messages[i].content)
      return ag_error_set(AG_ERR_INVALID, "chat template %s: message %d has no %s", t->name, i,
                          messages[i].role ? "content" : "role");
    if (strcmp(messages[i].role, "tool") == 0 || strcmp(messages[i].role, "ipython") == 0)
      return ag_error_set(AG_ERR_UNSUPPORTED,
                          "chat template %s: message %d has role \"%s\": tool messages and tool "
                          "calls are not supported (docs/chat.md)",
                          t->name, i, messages[i].role);
  }
  return AG_OK;
}

ag_status ag_chat_render_spans(const ag_chat_template *t, const ag_chat_message *messages, int n,
                               const ag_chat_render_options *options, char **out,
                               ag_chat_span *spans) {
  if (!out) return ag_error_set(AG_ERR_INVALID, "chat template: NULL output");
  *out = NULL;
  if (!t) return ag_error_set(AG_ERR_INVALID, "chat template: NULL template");
  ag_status st = check_messages(t, messages, n);
  if (st) return st;
  const ag_chat_render_options defaults = {0};
  if (!options) options = &defaults;
  render r = {
      .t = t,
      .messages = messages,
      .n = n,
      .add_generation_prompt = options->add_generation_prompt,
      .bos = options->bos_token ? options->bos_token : t->bos,
      .eos = options->eos_token ? options->eos_token : t->eos,
      .date_string = options->date_string ? options->date_string : LLAMA3_DEFAULT_DATE,
      .spans = spans,
  };
  for (int i = 0; spans && i < n; i++) spans[i] = (ag_chat_span){-1, -1, -1};
  switch (t->family) {
  case AG_CHAT_CHATML: st = render_chatml(&r); break;
  case AG_CHAT_LLAMA3: st = render_llama3(&r); break;
  case AG_CHAT_GEMMA: st = render_gemma(&r); break;
  case AG_CHAT_PHI3: st = render_phi3(&r); break;
  case AG_CHAT_PLAIN: st = render_plain(&r); break;
  default: st = ag_error_set(AG_ERR_INTERNAL, "chat template: bad family %d", (int)t->family);
  }
  if (!st) {
    put_n(&r, "", 0); /* allocates if nothing was rendered: *out is always a string */
    if (r.out_of_memory) st = ag_error_set(AG_ERR_NOMEM, "chat template: out of memory");
  }
  if (st) {
    free(r.data);
    for (int i = 0; spans && i < n; i++) spans[i] = (ag_chat_span){-1, -1, -1};
    return st;
  }
  *out = r.data;
  return AG_OK;
}

ag_status ag_chat_render(const ag_chat_template *t, const ag_chat_message *messages, int n,
                         const ag_chat_render_options *options, char **out) {
  return ag_chat_render_spans(t, messages, n, options, out, NULL);
}
