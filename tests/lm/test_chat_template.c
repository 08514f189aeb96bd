/* Chat templates: every family renders byte for byte what the published
 * Jinja template renders (Debian's python3-jinja2, run once for all cases
 * with Hugging Face's settings), refuses what the template refuses with the
 * template's message, and reports spans that point at each message's
 * content; plus family lookup, detection from template sources and
 * tokenizer_config.json, and the unhappy paths. */
#include "agora/chat_template.h"
#include "agora/json.h"
#include "test.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEMPLATES "../shared/data/tokenizers/chat-templates/"
#define PYTHON    "/usr/bin/python3" /* Debian's, with python3-jinja2 */

/* The reference renderer: what transformers' apply_chat_template does
 * (trim_blocks, lstrip_blocks, raise_exception, strftime_now, tools=None,
 * the tokenizer's special tokens as variables), with plain jinja2. Reads a
 * JSON list of cases, writes a JSON list of results. */
static const char RENDER_PY[] =
    "import json, sys\n"
    "try:\n"
    "    import jinja2\n"
    "except ImportError:\n"
    "    sys.stderr.write('python3-jinja2 is missing: run scripts/install-deps.sh\\n')\n"
    "    sys.exit(3)\n"
    "class Refused(Exception):\n"
    "    pass\n"
    "def raise_exception(message):\n"
    "    raise Refused(message)\n"
    "def strftime_now(fmt):\n"
    "    import datetime\n"
    "    return datetime.datetime.now().strftime(fmt)\n"
    "env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)\n"
    "env.globals['raise_exception'] = raise_exception\n"
    "env.globals['strftime_now'] = strftime_now\n"
    "compiled = {}\n"
    "results = []\n"
    "for case in json.load(open(sys.argv[1], encoding='utf-8')):\n"
    "    source = case.get('source')\n"
    "    if source is None:\n"
    "        source = open(case['template'], encoding='utf-8').read()\n"
    "    if source not in compiled:\n"
    "        compiled[source] = env.from_string(source)\n"
    "    variables = dict(case['special_tokens'])\n"
    "    if 'date_string' in case:\n"
    "        variables['date_string'] = case['date_string']\n"
    "    result = {'stripped': [m['content'].strip() for m in case['messages']]}\n"
    "    try:\n"
    "        result['text'] = compiled[source].render(messages=case['messages'], tools=None,\n"
    "            documents=None, add_generation_prompt=case['add_generation_prompt'], "
    "**variables)\n"
    "    except Refused as e:\n"
    "        result['refused'] = str(e)\n"
    "    except Exception as e:\n"
    "        result['error'] = type(e).__name__ + ': ' + str(e)\n"
    "    results.append(result)\n"
    "json.dump(results, open(sys.argv[2], 'w', encoding='utf-8'), ensure_ascii=False)\n";

/* ---- the families, with their models' tokenizer_config.json tokens ------------- */

typedef struct family_case {
  const char *name;     /* agora's family name */
  const char *template; /* published template file, or NULL for plain's own */
  const char *special_tokens_json;
  bool trims; /* the template applies `| trim` to contents */
} family_case;

static const family_case FAMILIES[] = {
    {"chatml", TEMPLATES "Qwen-Qwen2.5-7B-Instruct.jinja",
     "{\"eos_token\": \"<|im_end|>\", \"pad_token\": \"<|endoftext|>\"}", false},
    {"llama3", TEMPLATES "meta-llama-Llama-3.1-8B-Instruct.jinja",
     "{\"bos_token\": \"<|begin_of_text|>\", \"eos_token\": \"<|eot_id|>\"}", true},
    {"gemma", TEMPLATES "google-gemma-2-2b-it.jinja",
     "{\"bos_token\": \"<bos>\", \"eos_token\": \"<eos>\", \"pad_token\": \"<pad>\", "
     "\"unk_token\": \"<unk>\"}",
     true},
    {"phi3", TEMPLATES "microsoft-Phi-3.5-mini-instruct.jinja",
     "{\"bos_token\": \"<s>\", \"eos_token\": \"<|endoftext|>\", \"pad_token\": \"<|endoftext|>\", "
     "\"unk_token\": \"<unk>\"}",
     false},
    {"plain", NULL, "{\"eos_token\": \"<|endoftext|>\"}", false},
};
#define N_FAMILIES (int)(sizeof FAMILIES / sizeof FAMILIES[0])

/* ---- the conversations ------------------------------------------------------ */

#define MAX_MESSAGES 6
typedef struct conversation {
  const char *label;
  ag_chat_message m[MAX_MESSAGES]; /* up to the first NULL role */
} conversation;

#define MSG(role, content)                                                                         \
  { role, content, NULL }
#define NAMED(role, content, speaker)                                                              \
  { role, content, speaker }

static const conversation CONVERSATIONS[] = {
    {"single user turn", {MSG("user", "Hello!")}},
    {"user/assistant/user",
     {MSG("user", "What is 2+2?"), MSG("assistant", "4."), MSG("user", "And 3+3?")}},
    {"system then user", {MSG("system", "You are terse."), MSG("user", "Name a colour.")}},
    {"ends with assistant",
     {MSG("system", "Answer in French."), MSG("user", "Hello"), MSG("assistant", "Bonjour"),
      MSG("user", "Thanks"), MSG("assistant", "De rien")}},
    {"empty contents", {MSG("user", ""), MSG("assistant", ""), MSG("user", "")}},
    {"empty system", {MSG("system", ""), MSG("user", "hi")}},
    {"system only", {MSG("system", "  Be brief.\n")}},
    {"whitespace around contents",
     {MSG("system", "\n  Rules:\n- be kind\n\n"), MSG("user", "  \n hello \n\n"),
      MSG("assistant", "\n\tanswer  \n"), MSG("user", " \t ")}},
    {"unicode",
     {MSG("user", "h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x99\x82"),
      MSG("assistant", "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xe2\x80\x94 \xd9\x85"
                       "\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7")}},
    /* U+3000, U+00A0, U+2000-200A, U+2028, U+2029, U+202F, U+205F, U+0085,
     * U+1680 and ASCII 0x1c-0x1f are whitespace to Python's strip(); U+200B
     * (zero width space) is not. */
    {"unicode whitespace",
     {MSG("user", "\xe3\x80\x80\xc2\xa0 wide \xe2\x80\xa8"),
      MSG("assistant", "\xc2\x85\xe2\x80\x89x\xe1\x9a\x80"),
      MSG("user",
          "\xe2\x80\xa9\xe2\x80\x80\xe2\x80\x8bzw\xe2\x80\x8b\xe2\x80\x8a\xe2\x80\xaf\xe2\x81\x9f"),
      MSG("assistant", "\x1c\x0b\x0c\x1f ctl \x1e\r\x1d")}},
    /* Near misses: U+180E, U+200C, U+2030, U+200B are not whitespace. */
    {"not quite whitespace",
     {MSG("user", "\xe1\xa0\x8e x \xe2\x80\x8c"), MSG("assistant", "\xe2\x80\xb0y\xe2\x80\x8b")}},
    {"template syntax in content",
     {MSG("user", "{{ bos_token }} {% if x %}<|im_end|>\n<|eot_id|>"),
      MSG("assistant", "<start_of_turn>model\n'quotes' \"and\" \\backslash")}},
    {"named speakers",
     {NAMED("user", "Teach me.", "student"), NAMED("assistant", "Listen.", "teacher")}},
    {"unknown role between turns",
     {MSG("user", "Hi"), MSG("developer", "internal note"), MSG("user", "Again")}},
    {"system later on",
     {MSG("user", "Hi"), MSG("assistant", "Hello"), MSG("user", "Bye"),
      MSG("system", "Late rule")}},
    {"assistant first", {MSG("assistant", "I speak first"), MSG("user", "ok")}},
    {"two users in a row", {MSG("user", "one"), MSG("user", "two")}},
    {"system then assistant", {MSG("system", "sys"), MSG("assistant", "a")}},
};
#define N_CONVERSATIONS (int)(sizeof CONVERSATIONS / sizeof CONVERSATIONS[0])

static int message_count(const conversation *c) {
  int n = 0;
  while (n < MAX_MESSAGES && c->m[n].role) n++;
  return n;
}

/* One render: a family, a conversation, the options. */
typedef struct render_case {
  int family, conversation;
  ag_chat_render_options options;
} render_case;

/* Option overrides, checked against Jinja given the same variables. */
static const struct {
  const char *family;
  int conversation;
  ag_chat_render_options options;
} OVERRIDES[] = {
    {"llama3", 2, {false, NULL, NULL, "05 Mar 2025"}}, {"llama3", 1, {true, "", NULL, NULL}},
    {"gemma", 1, {true, "[BOS]", NULL, NULL}},         {"phi3", 3, {false, NULL, "</s>", NULL}},
    {"plain", 3, {false, "<s>", "</s>", NULL}},        {"plain", 1, {true, NULL, "", NULL}},
};
#define N_OVERRIDES (int)(sizeof OVERRIDES / sizeof OVERRIDES[0])

static int family_index(const char *name) {
  for (int f = 0; f < N_FAMILIES; f++)
    if (strcmp(FAMILIES[f].name, name) == 0) return f;
  return -1;
}

static int build_cases(render_case *cases) {
  int count = 0;
  for (int f = 0; f < N_FAMILIES; f++)
    for (int c = 0; c < N_CONVERSATIONS; c++)
      for (int gen = 0; gen < 2; gen++)
        cases[count++] = (render_case){f, c, {.add_generation_prompt = gen}};
  for (int o = 0; o < N_OVERRIDES; o++)
    cases[count++] = (render_case){family_index(OVERRIDES[o].family), OVERRIDES[o].conversation,
                                   OVERRIDES[o].options};
  return count;
}
#define MAX_CASES (N_FAMILIES * N_CONVERSATIONS * 2 + N_OVERRIDES)

/* ---- the reference renders ------------------------------------------------- */

static json_t *case_json(const render_case *rc) {
  const family_case *f = &FAMILIES[rc->family];
  const conversation *c = &CONVERSATIONS[rc->conversation];
  json_t *messages = json_array();
  for (int i = 0; i < message_count(c); i++) {
    json_t *m = json_pack("{s:s, s:s}", "role", c->m[i].role, "content", c->m[i].content);
    if (c->m[i].name) json_object_set_new(m, "name", json_string(c->m[i].name));
    json_array_append_new(messages, m);
  }
  json_t *tokens = json_loads(f->special_tokens_json, 0, NULL);
  if (rc->options.bos_token)
    json_object_set_new(tokens, "bos_token", json_string(rc->options.bos_token));
  if (rc->options.eos_token)
    json_object_set_new(tokens, "eos_token", json_string(rc->options.eos_token));
  json_t *j = json_pack("{s:o, s:o, s:b}", "messages", messages, "special_tokens", tokens,
                        "add_generation_prompt", rc->options.add_generation_prompt);
  if (f->template) {
    json_object_set_new(j, "template", json_string(f->template));
  } else {
    const ag_chat_template *t;
    if (ag_chat_template_by_name(f->name, &t) == AG_OK)
      json_object_set_new(j, "source", json_string(ag_chat_template_jinja(t)));
  }
  if (rc->options.date_string)
    json_object_set_new(j, "date_string", json_string(rc->options.date_string));
  return j;
}

static char tmp_paths[3][600];

/* Renders every case with jinja2 in one python3 run; NULL (and a message
 * saying what to install) when that is impossible. */
static json_t *reference_renders(const render_case *cases, int count) {
  if (access(PYTHON, X_OK) != 0) {
    fprintf(stderr,
            "%s not found: the references need Debian's python3 and python3-jinja2 "
            "(scripts/install-deps.sh installs them)\n",
            PYTHON);
    return NULL;
  }
  for (int i = 0; i < count; i++) {
    const family_case *f = &FAMILIES[cases[i].family];
    if (f->template && access(f->template, R_OK) != 0) {
      fprintf(stderr, "%s not found (run the tests from the repository root, beside ../shared)\n",
              f->template);
      return NULL;
    }
  }
  const char *dir = test_tmpdir();
  snprintf(tmp_paths[0], sizeof tmp_paths[0], "%s/render.py", dir);
  snprintf(tmp_paths[1], sizeof tmp_paths[1], "%s/cases.json", dir);
  snprintf(tmp_paths[2], sizeof tmp_paths[2], "%s/renders.json", dir);
  json_t *list = json_array();
  for (int i = 0; i < count; i++) json_array_append_new(list, case_json(&cases[i]));
  bool written = ag_atomic_write(tmp_paths[0], RENDER_PY, strlen(RENDER_PY)) == AG_OK &&
                 json_dump_file(list, tmp_paths[1], 0) == 0;
  json_decref(list);
  if (!written) {
    fprintf(stderr, "cannot write the reference inputs in %s\n", dir);
    return NULL;
  }
  char command[2048];
  snprintf(command, sizeof command, "%s '%s' '%s' '%s'", PYTHON, tmp_paths[0], tmp_paths[1],
           tmp_paths[2]);
  int rc = system(command);
  if (rc != 0) {
    int code = rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    fprintf(stderr, "%s failed (exit status %d)%s\n", command, code,
            code == 3 ? ": install python3-jinja2 (scripts/install-deps.sh)" : "");
    return NULL;
  }
  json_t *results;
  if (ag_json_load(tmp_paths[2], &results)) {
    fprintf(stderr, "reading the references: %s\n", ag_error_message());
    return NULL;
  }
  return results;
}

static void remove_tmp(void) {
  for (int i = 0; i < 3; i++)
    if (tmp_paths[i][0]) remove(tmp_paths[i]);
}

/* ---- comparison -------------------------------------------------------------- */

static void print_escaped(const char *label, const char *s, size_t from, size_t to) {
  fprintf(stderr, "  %s[%zu..]: \"", label, from);
  for (size_t i = from; i < to && s[i]; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '\n')
      fputs("\\n", stderr);
    else if (ch == '\t')
      fputs("\\t", stderr);
    else if (ch < 0x20 || ch >= 0x7f || ch == '"')
      fprintf(stderr, "\\x%02x", ch);
    else
      fputc(ch, stderr);
  }
  fputs("\"\n", stderr);
}

static void show_difference(const char *ours, const char *want) {
  size_t i = 0;
  while (ours[i] && ours[i] == want[i]) i++;
  size_t from = i > 40 ? i - 40 : 0;
  fprintf(stderr, "  first difference at byte %zu\n", i);
  print_escaped("agora", ours, from, i + 40);
  print_escaped("jinja", want, from, i + 40);
}

static bool dropped_by(const char *family, const ag_chat_message *m) {
  bool known =
      !strcmp(m->role, "user") || !strcmp(m->role, "assistant") || !strcmp(m->role, "system");
  if (!strcmp(family, "chatml")) return !known;
  if (!strcmp(family, "phi3")) return !known || (!strcmp(m->role, "system") && !m->content[0]);
  return false;
}

/* Each kept message's span holds its (stripped, where the template trims)
 * content followed by the turn's closing marker; spans come in order. */
static void check_spans(const render_case *rc, const char *text, const ag_chat_span *spans,
                        json_t *stripped) {
  const family_case *f = &FAMILIES[rc->family];
  const conversation *c = &CONVERSATIONS[rc->conversation];
  const ag_chat_template *t;
  if (ag_chat_template_by_name(f->name, &t)) return;
  const char *marker = ag_chat_template_end_of_turn(t);
  if (!marker) marker = rc->options.eos_token ? rc->options.eos_token : ag_chat_template_eos(t);
  int64_t length = (int64_t)strlen(text), previous_end = 0;
  for (int i = 0; i < message_count(c); i++) {
    const ag_chat_span *s = &spans[i];
    if (dropped_by(f->name, &c->m[i])) {
      CHECK_MSG(s->begin == -1 && s->end == -1 && s->turn_end == -1, "%s, %s: message %d kept",
                f->name, c->label, i);
      continue;
    }
    const char *want =
        f->trims ? json_string_value(json_array_get(stripped, (size_t)i)) : c->m[i].content;
    if (!want) want = "";
    int64_t want_bytes = (int64_t)strlen(want), marker_bytes = (int64_t)strlen(marker);
    bool ordered = s->begin >= previous_end && s->end >= s->begin && s->turn_end <= length;
    CHECK_MSG(ordered, "%s, %s: message %d span [%lld, %lld, %lld) out of order", f->name, c->label,
              i, (long long)s->begin, (long long)s->end, (long long)s->turn_end);
    if (!ordered) return;
    CHECK_MSG(s->end - s->begin == want_bytes && !memcmp(text + s->begin, want, (size_t)want_bytes),
              "%s, %s: message %d span [%lld, %lld) is not its content", f->name, c->label, i,
              (long long)s->begin, (long long)s->end);
    CHECK_MSG(s->turn_end - s->end == marker_bytes &&
                  !memcmp(text + s->end, marker, (size_t)marker_bytes),
              "%s, %s: message %d turn does not end with %s", f->name, c->label, i, marker);
    previous_end = s->turn_end;
  }
}

static int matched_renders = 0, matched_refusals = 0;

static void check_case(const render_case *rc, json_t *reference) {
  const family_case *f = &FAMILIES[rc->family];
  const conversation *c = &CONVERSATIONS[rc->conversation];
  const ag_chat_template *t;
  CHECK_OK(ag_chat_template_by_name(f->name, &t));
  if (!t) return;
  int n = message_count(c);
  ag_chat_span spans[MAX_MESSAGES];
  char *text = NULL;
  ag_status st = ag_chat_render_spans(t, c->m, n, &rc->options, &text, spans);
  const char *want = json_string_value(json_object_get(reference, "text"));
  const char *refusal = json_string_value(json_object_get(reference, "refused"));
  const char *error = json_string_value(json_object_get(reference, "error"));
  const char *gen = rc->options.add_generation_prompt ? "with" : "without";
  if (want) {
    CHECK_MSG(st == AG_OK, "%s, %s, %s generation prompt: %s", f->name, c->label, gen,
              ag_error_message());
    if (st == AG_OK) {
      bool same = strcmp(text, want) == 0;
      CHECK_MSG(same, "%s, %s, %s generation prompt: differs from Jinja", f->name, c->label, gen);
      if (!same)
        show_difference(text, want);
      else
        matched_renders++;
      check_spans(rc, text, spans, json_object_get(reference, "stripped"));
    }
  } else if (refusal) {
    CHECK_MSG(st == AG_ERR_INVALID && strstr(ag_error_message(), refusal) && !text,
              "%s, %s: Jinja refuses (\"%s\"), agora gave status %d: %s", f->name, c->label,
              refusal, (int)st, st ? ag_error_message() : text);
    if (st == AG_ERR_INVALID && strstr(ag_error_message(), refusal)) matched_refusals++;
  } else {
    CHECK_MSG(st != AG_OK, "%s, %s: Jinja fails (%s) but agora renders", f->name, c->label,
              error ? error : "?");
  }
  free(text);
}

TEST(renders_match_jinja_byte_for_byte) {
  render_case cases[MAX_CASES];
  int count = build_cases(cases);
  json_t *references = reference_renders(cases, count);
  CHECK_MSG(references != NULL, "no reference renders (see the message above)");
  if (!references) return;
  CHECK_MSG((int)json_array_size(references) == count, "%zu references for %d cases",
            json_array_size(references), count);
  for (int i = 0; i < count && i < (int)json_array_size(references); i++)
    check_case(&cases[i], json_array_get(references, (size_t)i));
  json_decref(references);
  remove_tmp();
  fprintf(stderr, "     %d renders identical to Jinja, %d refusals as Jinja's\n", matched_renders,
          matched_refusals);
  /* The set covers refusals (Gemma's two) as well as renders. */
  CHECK(matched_refusals >= 5);
  CHECK(matched_renders + matched_refusals == count);
}

/* ---- defaults, spelled out ------------------------------------------------------ */

static char *render_by_name(const char *family, const ag_chat_message *m, int n, bool gen) {
  const ag_chat_template *t;
  char *text = NULL;
  ag_chat_render_options options = {.add_generation_prompt = gen};
  if (ag_chat_template_by_name(family, &t) || ag_chat_render(t, m, n, &options, &text)) {
    fprintf(stderr, "%s: %s\n", family, ag_error_message());
    return NULL;
  }
  return text;
}

TEST(defaults_are_the_templates_own) {
  const ag_chat_message user = {"user", "Hi", NULL};
  char *qwen = render_by_name("qwen2", &user, 1, true);
  CHECK(qwen && strstr(qwen, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are "
                             "a helpful assistant.<|im_end|>\n") == qwen);
  CHECK(qwen && strstr(qwen, "<|im_start|>assistant\n"));
  char *llama = render_by_name("llama3", &user, 1, false);
  CHECK(llama && strstr(llama, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                               "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
                               "<|eot_id|>") == llama);
  char *gemma = render_by_name("gemma", &user, 1, true);
  CHECK(gemma &&
        !strcmp(gemma, "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"));
  char *phi = render_by_name("phi3", &user, 1, false);
  CHECK(phi && !strcmp(phi, "<|user|>\nHi<|end|>\n<|endoftext|>"));
  char *plain = render_by_name("plain", &user, 1, true);
  CHECK(plain && !strcmp(plain, "user: Hi<|endoftext|>\nassistant: "));
  free(qwen);
  free(llama);
  free(gemma);
  free(phi);
  free(plain);
}

/* ---- family lookup and detection -------------------------------------------------- */

TEST(families_by_name) {
  const struct {
    const char *name;
    ag_chat_family family;
  } names[] = {{"chatml", AG_CHAT_CHATML}, {"qwen2", AG_CHAT_CHATML}, {"Qwen2.5", AG_CHAT_CHATML},
               {"llama3", AG_CHAT_LLAMA3}, {"gemma", AG_CHAT_GEMMA},  {"gemma2", AG_CHAT_GEMMA},
               {"phi3", AG_CHAT_PHI3},     {"PLAIN", AG_CHAT_PLAIN}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const ag_chat_template *t = NULL;
    CHECK_OK(ag_chat_template_by_name(names[i].name, &t));
    CHECK_MSG(t && ag_chat_template_family(t) == names[i].family, "%s", names[i].name);
  }
  const ag_chat_template *t = NULL;
  CHECK(ag_chat_template_by_name("mistral", &t) == AG_ERR_NOT_FOUND);
  CHECK(strstr(ag_error_message(), "mistral") && strstr(ag_error_message(), "llama3"));
  CHECK(ag_chat_template_by_family(AG_CHAT_FAMILY_COUNT, &t) == AG_ERR_INVALID);
  CHECK_OK(ag_chat_template_by_family(AG_CHAT_GEMMA, &t));
  CHECK(t && !strcmp(ag_chat_template_name(t), "gemma"));
  CHECK(t && !strcmp(ag_chat_template_end_of_turn(t), "<end_of_turn>"));
}

static char *read_text(const char *path) {
  char *data = NULL;
  size_t n;
  if (ag_read_file(path, &data, &n)) fprintf(stderr, "%s\n", ag_error_message());
  return data;
}

/* Replaces the first `from` in s (malloc'd) by `to`. */
static char *replaced(const char *s, const char *from, const char *to) {
  const char *at = strstr(s, from);
  if (!at) return NULL;
  size_t head = (size_t)(at - s), n = strlen(s) - strlen(from) + strlen(to) + 1;
  char *r = malloc(n);
  snprintf(r, n, "%.*s%s%s", (int)head, s, to, at + strlen(from));
  return r;
}

TEST(detects_the_published_templates) {
  for (int f = 0; f < N_FAMILIES; f++) {
    const ag_chat_template *t = NULL, *want = NULL;
    CHECK_OK(ag_chat_template_by_name(FAMILIES[f].name, &want));
    char *source = FAMILIES[f].template ? read_text(FAMILIES[f].template)
                                        : strdup(ag_chat_template_jinja(want));
    CHECK_MSG(source != NULL, "%s: cannot read the template", FAMILIES[f].name);
    if (!source) continue;
    CHECK_OK(ag_chat_template_detect(source, &t));
    CHECK_MSG(t == want, "%s detected as %s", FAMILIES[f].name, t ? ag_chat_template_name(t) : "-");
    free(source);
  }
  /* Variants that render differently are not mistaken for the originals. */
  char *llama = read_text(TEMPLATES "meta-llama-Llama-3.1-8B-Instruct.jinja");
  char *llama32 = llama ? replaced(llama, "{%- set date_string = \"26 Jul 2024\" %}",
                                   "{%- set date_string = strftime_now(\"%d %b %Y\") %}")
                        : NULL;
  char *gemma = read_text(TEMPLATES "google-gemma-2-2b-it.jinja");
  char *gemma_sys =
      gemma ? replaced(gemma, "raise_exception('System role not supported')", "''") : NULL;
  const char *others[] = {llama32, gemma_sys, "{{ messages }}", "",
                          "{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}"};
  for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
    const ag_chat_template *t = NULL;
    CHECK_MSG(others[i] != NULL, "variant %zu not built", i);
    if (!others[i]) continue;
    CHECK_MSG(ag_chat_template_detect(others[i], &t) == AG_ERR_UNSUPPORTED, "variant %zu accepted",
              i);
    CHECK(strstr(ag_error_message(), "chatml (qwen2), llama3, gemma, phi3, plain"));
  }
  free(llama);
  free(llama32);
  free(gemma);
  free(gemma_sys);
}

static void write_text(const char *path, const char *text) {
  CHECK_OK(ag_atomic_write(path, text, strlen(text)));
}

TEST(loads_from_tokenizer_config_and_model_folders) {
  char folder[600], path[700];
  snprintf(folder, sizeof folder, "%s/model", test_tmpdir());
  CHECK_OK(ag_mkdir_p(folder));
  char *phi = read_text(TEMPLATES "microsoft-Phi-3.5-mini-instruct.jinja");
  char *gemma = read_text(TEMPLATES "google-gemma-2-2b-it.jinja");
  if (!phi || !gemma) {
    CHECK_MSG(false, "templates missing");
    free(phi);
    free(gemma);
    return;
  }
  const ag_chat_template *t = NULL;

  /* A string chat_template, through the folder and through the file. */
  json_t *config = json_pack("{s:s, s:s}", "chat_template", phi, "eos_token", "<|endoftext|>");
  snprintf(path, sizeof path, "%s/tokenizer_config.json", folder);
  CHECK_OK(ag_json_save(path, config));
  json_decref(config);
  CHECK_OK(ag_chat_template_load(folder, &t));
  CHECK(t && ag_chat_template_family(t) == AG_CHAT_PHI3);
  t = NULL;
  CHECK_OK(ag_chat_template_load(path, &t));
  CHECK(t && ag_chat_template_family(t) == AG_CHAT_PHI3);

  /* chat_template.jinja beside it wins, as in recent transformers. */
  char jinja[700];
  snprintf(jinja, sizeof jinja, "%s/chat_template.jinja", folder);
  write_text(jinja, gemma);
  CHECK_OK(ag_chat_template_load(folder, &t));
  CHECK(t && ag_chat_template_family(t) == AG_CHAT_GEMMA);
  remove(jinja);

  /* Named templates: the "default" one. */
  config = json_pack("{s:[{s:s, s:s}, {s:s, s:s}]}", "chat_template", "name", "tool_use",
                     "template", "{{ tools }}", "name", "default", "template", gemma);
  CHECK_OK(ag_json_save(path, config));
  json_decref(config);
  CHECK_OK(ag_chat_template_load(folder, &t));
  CHECK(t && ag_chat_template_family(t) == AG_CHAT_GEMMA);

  /* No template, an unknown one, a missing folder. */
  write_text(path, "{\"eos_token\": \"</s>\"}");
  CHECK(ag_chat_template_load(folder, &t) == AG_ERR_NOT_FOUND);
  CHECK(strstr(ag_error_message(), "chat_template"));
  write_text(path, "{\"chat_template\": \"{{ messages }}\"}");
  CHECK(ag_chat_template_load(folder, &t) == AG_ERR_UNSUPPORTED);
  CHECK(strstr(ag_error_message(), "tokenizer_config.json") && strstr(ag_error_message(), "phi3"));
  write_text(path, "{\"chat_template\": ");
  CHECK(ag_chat_template_load(folder, &t) != AG_OK);
  remove(path);
  CHECK(ag_chat_template_load(folder, &t) == AG_ERR_NOT_FOUND);
  rmdir(folder);
  CHECK(ag_chat_template_load(folder, &t) == AG_ERR_NOT_FOUND);
  free(phi);
  free(gemma);
}

/* ---- unhappy paths -------------------------------------------------------------- */

TEST(bad_conversations_are_errors) {
  const ag_chat_template *t = NULL;
  CHECK_OK(ag_chat_template_by_name("chatml", &t));
  char *text = (char *)"untouched";
  const ag_chat_message ok = {"user", "hi", NULL};
  CHECK(ag_chat_render(t, &ok, 0, NULL, &text) == AG_ERR_INVALID && text == NULL);
  CHECK(strstr(ag_error_message(), "empty conversation"));
  CHECK(ag_chat_render(t, NULL, 1, NULL, &text) == AG_ERR_INVALID);
  const ag_chat_message no_content[] = {{"user", NULL, NULL}};
  CHECK(ag_chat_render(t, no_content, 1, NULL, &text) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "message 0 has no content"));
  const ag_chat_message no_role[] = {{NULL, "x", NULL}};
  CHECK(ag_chat_render(t, no_role, 1, NULL, &text) == AG_ERR_INVALID);
  CHECK(ag_chat_render(NULL, &ok, 1, NULL, &text) == AG_ERR_INVALID);
  CHECK(ag_chat_render(t, &ok, 1, NULL, NULL) == AG_ERR_INVALID);
  /* Tool results and calls are out of scope, in every family. */
  const ag_chat_message tool[] = {{"user", "weather?", NULL}, {"tool", "{\"temp\": 20}", NULL}};
  const ag_chat_message ipython[] = {{"user", "run", NULL}, {"ipython", "42", NULL}};
  for (int f = 0; f < N_FAMILIES; f++) {
    CHECK_OK(ag_chat_template_by_name(FAMILIES[f].name, &t));
    CHECK_MSG(ag_chat_render(t, tool, 2, NULL, &text) == AG_ERR_UNSUPPORTED, "%s",
              FAMILIES[f].name);
    CHECK(strstr(ag_error_message(), "tool"));
    CHECK(ag_chat_render(t, ipython, 2, NULL, &text) == AG_ERR_UNSUPPORTED);
  }
  /* A refusal leaves no text and clears the spans. */
  CHECK_OK(ag_chat_template_by_name("gemma", &t));
  const ag_chat_message system_first[] = {{"system", "s", NULL}, {"user", "u", NULL}};
  ag_chat_span spans[2] = {{5, 5, 5}, {5, 5, 5}};
  CHECK(ag_chat_render_spans(t, system_first, 2, NULL, &text, spans) == AG_ERR_INVALID);
  CHECK(text == NULL && spans[0].begin == -1 && spans[1].turn_end == -1);
  CHECK(!strcmp(ag_error_message(), "chat template gemma: System role not supported"));
}

/* A loss mask over assistant turns, as training will build it. */
TEST(assistant_spans_give_a_loss_mask) {
  const ag_chat_template *t = NULL;
  CHECK_OK(ag_chat_template_by_name("llama3", &t));
  const ag_chat_message m[] = {{"user", "2+2?", NULL},
                               {"assistant", " 4 \n", NULL},
                               {"user", "3+3?", NULL},
                               {"assistant", "6", NULL}};
  ag_chat_span spans[4];
  char *text = NULL;
  CHECK_OK(ag_chat_render_spans(t, m, 4, NULL, &text, spans));
  if (!text) return;
  size_t n = strlen(text);
  char *trained = calloc(n + 1, 1);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    for (int j = 1; j < 4; j += 2)
      if ((int64_t)i >= spans[j].begin && (int64_t)i < spans[j].turn_end) trained[k++] = text[i];
  CHECK_MSG(!strcmp(trained, "4<|eot_id|>6<|eot_id|>"), "trained on \"%s\"", trained);
  free(trained);
  free(text);
}

int main(void) {
  RUN(renders_match_jinja_byte_for_byte);
  RUN(defaults_are_the_templates_own);
  RUN(families_by_name);
  RUN(detects_the_published_templates);
  RUN(loads_from_tokenizer_config_and_model_folders);
  RUN(bad_conversations_are_errors);
  RUN(assistant_spans_give_a_loss_mask);
  remove_tmp();
  rmdir(test_tmpdir());
  TEST_MAIN_END();
}
