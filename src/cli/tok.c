/* `agora tok encode|decode|train|info`: tokenizers. Flag parsing and output
 * only; the work is in libagora (agora/tokenizer.h). */
#include "agora/tokenizer.h"
#include "cli/args.h"
#include "cli/cli.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* All of a stream, byte for byte. */
static int read_all(FILE *f, char **data, size_t *size) {
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - n, f);
    if (n < cap) break;
    char *grown = realloc(buf, cap * 2);
    if (!grown) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = grown;
    cap *= 2;
  }
  if (!buf) return ag_cli_error("out of memory reading stdin");
  if (ferror(f)) {
    free(buf);
    return ag_cli_error("cannot read stdin: %s", strerror(errno));
  }
  *data = buf;
  *size = n;
  return 0;
}

static int load(const char *path, ag_tokenizer **t) {
  if (ag_tok_load(path, t)) return ag_cli_error("%s", ag_error_message());
  return 0;
}

/* ---- encode ------------------------------------------------------------------------ */

static int cmd_encode(int argc, char **argv) {
  const char *path = NULL;
  bool add_special = false, split_special = false;
  ag_flag flags[] = {
      {.name = "tokenizer",
       .type = AG_FLAG_STRING,
       .value = &path,
       .metavar = "PATH",
       .help = "tokenizer.json, a GGUF file, or a model folder holding tokenizer.json",
       .required = true},
      {.name = "add-special",
       .type = AG_FLAG_BOOL,
       .value = &add_special,
       .help = "add what the tokenizer adds around a text (BOS for Llama; nothing for GPT-2)"},
      {.name = "split-special",
       .type = AG_FLAG_BOOL,
       .value = &split_special,
       .help = "treat special-token text such as <|endoftext|> as plain text"},
  };
  ag_command cmd = {.name = "tok encode",
                    .summary = "Read UTF-8 text on stdin (all of it, final newline included) and "
                               "print its token ids, space-separated, on one line.",
                    .flags = flags,
                    .flag_count = (int)(sizeof flags / sizeof *flags)};
  ag_args_result r = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (r != AG_ARGS_OK) return r == AG_ARGS_HELP ? 0 : 2;
  ag_tokenizer *t = NULL;
  int rc = load(path, &t);
  char *text = NULL;
  size_t size = 0;
  if (!rc) rc = read_all(stdin, &text, &size);
  ag_tok_ids ids = {0};
  unsigned mode =
      (add_special ? AG_TOK_ADD_SPECIAL : 0) | (split_special ? AG_TOK_SPLIT_SPECIAL : 0);
  if (!rc && ag_tok_encode(t, text, size, mode, &ids)) rc = ag_cli_error("%s", ag_error_message());
  if (!rc) {
    for (int64_t i = 0; i < ids.count; i++) printf(i ? " %d" : "%d", ids.ids[i]);
    putchar('\n');
    if (fflush(stdout) != 0) rc = ag_cli_error("cannot write stdout: %s", strerror(errno));
  }
  ag_tok_ids_free(&ids);
  free(text);
  ag_tok_free(t);
  return rc;
}

/* ---- decode ------------------------------------------------------------------------ */

static int parse_ids(const char *text, size_t size, int32_t vocab, ag_tok_ids *ids) {
  size_t i = 0;
  while (i < size) {
    while (i < size && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r' ||
                        text[i] == ','))
      i++;
    if (i >= size) break;
    size_t j = i;
    while (j < size && text[j] != ' ' && text[j] != '\n' && text[j] != '\t' && text[j] != '\r' &&
           text[j] != ',')
      j++;
    char word[24];
    size_t n = j - i;
    if (n >= sizeof word) return ag_cli_error("bad token id '%.20s...' on stdin", text + i);
    memcpy(word, text + i, n);
    word[n] = '\0';
    char *end;
    errno = 0;
    long v = strtol(word, &end, 10);
    if (*end || errno || v < 0 || v >= vocab)
      return ag_cli_error("bad token id '%s' on stdin (the vocabulary has ids 0..%d)", word,
                          vocab - 1);
    if (ag_tok_ids_push(ids, (int32_t)v)) return ag_cli_error("out of memory");
    i = j;
  }
  return 0;
}

static int cmd_decode(int argc, char **argv) {
  const char *path = NULL;
  bool skip_special = false;
  ag_flag flags[] = {
      {.name = "tokenizer",
       .type = AG_FLAG_STRING,
       .value = &path,
       .metavar = "PATH",
       .help = "tokenizer.json, a GGUF file, or a model folder holding tokenizer.json",
       .required = true},
      {.name = "skip-special",
       .type = AG_FLAG_BOOL,
       .value = &skip_special,
       .help = "leave special tokens (BOS, EOS, <|im_end|>...) out of the text"},
  };
  ag_command cmd = {.name = "tok decode",
                    .summary = "Read token ids (separated by spaces or newlines) on stdin and "
                               "write the text they stand for, as raw bytes, on stdout.",
                    .flags = flags,
                    .flag_count = (int)(sizeof flags / sizeof *flags)};
  ag_args_result r = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (r != AG_ARGS_OK) return r == AG_ARGS_HELP ? 0 : 2;
  ag_tokenizer *t = NULL;
  int rc = load(path, &t);
  char *input = NULL;
  size_t size = 0;
  if (!rc) rc = read_all(stdin, &input, &size);
  ag_tok_ids ids = {0};
  ag_tok_text text = {0};
  if (!rc) rc = parse_ids(input, size, ag_tok_vocab_size(t), &ids);
  if (!rc && ag_tok_decode(t, ids.ids, ids.count, skip_special ? AG_TOK_SKIP_SPECIAL : 0, &text))
    rc = ag_cli_error("%s", ag_error_message());
  if (!rc &&
      ((text.size && fwrite(text.data, 1, text.size, stdout) != text.size) || fflush(stdout) != 0))
    rc = ag_cli_error("cannot write stdout: %s", strerror(errno));
  ag_tok_text_free(&text);
  ag_tok_ids_free(&ids);
  free(input);
  ag_tok_free(t);
  return rc;
}

/* ---- train ------------------------------------------------------------------------- */

#define MAX_SPECIAL 256
#define MAX_INPUTS  1024

static int cmd_train(int argc, char **argv) {
  ag_tok_train_config c = ag_tok_train_defaults();
  const char *out = NULL, *special = "<|endoftext|>", *pre = c.pre_tokenizer, *field = "text";
  int vocab_size = c.vocab_size;
  int64_t min_frequency = c.min_frequency;
  bool quiet = false, as_json = false;
  ag_flag flags[] = {
      {.name = "out",
       .type = AG_FLAG_STRING,
       .value = &out,
       .metavar = "PATH",
       .help = "tokenizer.json to write (a folder gets PATH/tokenizer.json)",
       .required = true},
      {.name = "vocab-size",
       .type = AG_FLAG_INT,
       .value = &vocab_size,
       .metavar = "N",
       .help = "tokens in all: special tokens + 256 bytes + merges",
       .min = 257,
       .max = 1 << 24},
      {.name = "min-frequency",
       .type = AG_FLAG_INT64,
       .value = &min_frequency,
       .metavar = "N",
       .help = "never merge a pair seen fewer times",
       .min = 1,
       .max = 1e15},
      {.name = "special",
       .type = AG_FLAG_STRING,
       .value = &special,
       .metavar = "LIST",
       .help = "comma-separated special tokens, ids 0, 1, ... (\"\" for none)"},
      {.name = "pre-tokenizer",
       .type = AG_FLAG_STRING,
       .value = &pre,
       .metavar = "NAME",
       .help = "word-splitting regex by llama.cpp name: llama3, gpt-2, qwen2, starcoder..."},
      {.name = "field",
       .type = AG_FLAG_STRING,
       .value = &field,
       .metavar = "NAME",
       .help = "JSONL inputs: the string field to read (objects with \"messages\" use each "
               "message's content)"},
      {.name = "quiet", .type = AG_FLAG_BOOL, .value = &quiet, .help = "no progress display"},
      {.name = "json",
       .type = AG_FLAG_BOOL,
       .value = &as_json,
       .help = "the last line on stdout is one JSON object"},
  };
  ag_command cmd = {
      .name = "tok train",
      .summary = "Train a byte-level BPE tokenizer on text files (line by line) or JSONL files "
                 "(.jsonl/.json) and write a Hugging Face tokenizer.json. \"-\" reads text from "
                 "stdin. The same inputs and flags always give the same tokenizer.",
      .flags = flags,
      .flag_count = (int)(sizeof flags / sizeof *flags),
      .positional_metavar = "FILE..."};
  const char *inputs[MAX_INPUTS];
  int n_inputs = 0;
  ag_args_result r = ag_args_parse(&cmd, argc, argv, inputs, MAX_INPUTS, &n_inputs);
  if (r != AG_ARGS_OK) return r == AG_ARGS_HELP ? 0 : 2;
  if (n_inputs == 0) return ag_args_usage_error(&cmd, "no input files");
  if (quiet) ag_progress_set_quiet(true);

  /* the special token list */
  char *list = strdup(special);
  const char *names[MAX_SPECIAL];
  int n_names = 0;
  if (!list) return ag_cli_error("out of memory");
  for (char *p = list; *p && n_names < MAX_SPECIAL;) {
    char *comma = strchr(p, ',');
    if (comma) *comma = '\0';
    if (*p) names[n_names++] = p;
    if (!comma) break;
    p = comma + 1;
  }
  c.vocab_size = vocab_size;
  c.min_frequency = min_frequency;
  c.pre_tokenizer = pre;
  c.special_tokens = names;
  c.n_special = n_names;

  /* PATH/tokenizer.json for a folder */
  struct stat sb;
  size_t n = strlen(out);
  bool folder = (n > 0 && out[n - 1] == '/') || (stat(out, &sb) == 0 && S_ISDIR(sb.st_mode));
  char *out_path = malloc(n + 20);
  if (!out_path) {
    free(list);
    return ag_cli_error("out of memory");
  }
  while (folder && n > 1 && out[n - 1] == '/') n--; /* "dir/" -> "dir/tokenizer.json" */
  snprintf(out_path, strlen(out) + 20, folder ? "%.*s/tokenizer.json" : "%.*s", (int)n, out);

  ag_tok_trainer *tr = NULL;
  ag_tokenizer *t = NULL;
  int rc = 0;
  if (ag_tok_trainer_create(&c, &tr)) rc = ag_cli_error("%s", ag_error_message());
  for (int i = 0; !rc && i < n_inputs; i++)
    if (ag_tok_trainer_feed_file(tr, inputs[i], field)) rc = ag_cli_error("%s", ag_error_message());
  int64_t words = ag_tok_trainer_word_count(tr);
  if (!rc && ag_tok_trainer_finish(tr, &t)) rc = ag_cli_error("%s", ag_error_message());
  if (!rc && ag_tok_save_json(t, out_path)) rc = ag_cli_error("%s", ag_error_message());
  if (!rc) {
    if (as_json) {
      json_t *o = json_pack("{s:s, s:i, s:I, s:I}", "tokenizer", out_path, "vocab_size",
                            (int)ag_tok_vocab_size(t), "merges", (json_int_t)ag_tok_merge_count(t),
                            "distinct_words", (json_int_t)words);
      char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
      if (s) printf("%s\n", s);
      free(s);
      json_decref(o);
    } else {
      printf("wrote %s: %d tokens, %lld merges, from %lld distinct words\n", out_path,
             ag_tok_vocab_size(t), (long long)ag_tok_merge_count(t), (long long)words);
    }
  }
  ag_tok_free(t);
  ag_tok_trainer_free(tr);
  free(out_path);
  free(list);
  return rc;
}

/* ---- info -------------------------------------------------------------------------- */

static void print_role(const ag_tokenizer *t, const char *name, ag_tok_role role) {
  int32_t id = ag_tok_special_id(t, role);
  size_t n = 0;
  const char *s = id >= 0 ? ag_tok_token_text(t, id, &n) : NULL;
  if (s)
    printf("%-10s %d %.*s\n", name, id, (int)n, s);
  else
    printf("%-10s none\n", name);
}

static int cmd_info(int argc, char **argv) {
  const char *path = NULL;
  bool as_json = false;
  ag_flag flags[] = {
      {.name = "tokenizer",
       .type = AG_FLAG_STRING,
       .value = &path,
       .metavar = "PATH",
       .help = "tokenizer.json, a GGUF file, or a model folder holding tokenizer.json",
       .required = true},
      {.name = "json", .type = AG_FLAG_BOOL, .value = &as_json, .help = "print one JSON object"},
  };
  ag_command cmd = {.name = "tok info",
                    .summary = "Describe a tokenizer: model, pre-tokenizer, sizes, special ids.",
                    .flags = flags,
                    .flag_count = (int)(sizeof flags / sizeof *flags)};
  ag_args_result r = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (r != AG_ARGS_OK) return r == AG_ARGS_HELP ? 0 : 2;
  ag_tokenizer *t = NULL;
  int rc = load(path, &t);
  if (rc) return rc;
  int64_t special = 0;
  for (int32_t id = 0; id < ag_tok_vocab_size(t); id++) special += ag_tok_is_special(t, id);
  if (as_json) {
    json_t *o = json_pack(
        "{s:s, s:s, s:i, s:I, s:I, s:i, s:i, s:i, s:i}", "model", ag_tok_model_name(t),
        "pre_tokenizer", ag_tok_pre_name(t), "vocab_size", (int)ag_tok_vocab_size(t), "merges",
        (json_int_t)ag_tok_merge_count(t), "special_tokens", (json_int_t)special, "bos",
        (int)ag_tok_special_id(t, AG_TOK_BOS), "eos", (int)ag_tok_special_id(t, AG_TOK_EOS), "unk",
        (int)ag_tok_special_id(t, AG_TOK_UNK), "pad", (int)ag_tok_special_id(t, AG_TOK_PAD));
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (s) printf("%s\n", s);
    free(s);
    json_decref(o);
  } else {
    printf("model      %s\npre        %s\nvocab      %d\nmerges     %lld\nspecial    %lld\n",
           ag_tok_model_name(t), ag_tok_pre_name(t), ag_tok_vocab_size(t),
           (long long)ag_tok_merge_count(t), (long long)special);
    print_role(t, "bos", AG_TOK_BOS);
    print_role(t, "eos", AG_TOK_EOS);
    print_role(t, "unk", AG_TOK_UNK);
    print_role(t, "pad", AG_TOK_PAD);
  }
  ag_tok_free(t);
  return 0;
}

int ag_cli_tok(int argc, char **argv) {
  static const ag_cli_verb verbs[] = {
      {"encode", "text on stdin -> token ids on stdout (one line)", cmd_encode},
      {"decode", "token ids on stdin -> text (raw bytes) on stdout", cmd_decode},
      {"train", "train a byte-level BPE tokenizer, write tokenizer.json", cmd_train},
      {"info", "describe a tokenizer", cmd_info},
  };
  static const ag_cli_area_help area = {
      "tok",
      "Tokenizers: Hugging Face tokenizer.json (BPE, byte-level or with byte fallback),\nGGUF "
      "vocabularies (llama.cpp pre-tokenizers), and a byte-level BPE trainer.",
      verbs, (int)(sizeof verbs / sizeof *verbs)};
  return ag_cli_dispatch(&area, argc, argv);
}
