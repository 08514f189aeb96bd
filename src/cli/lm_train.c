/* `agora lm train`: next-token training of a language model from scratch
 * (--config) or from a Hugging Face folder (--model), fully or with LoRA
 * adapters. Flag parsing and output only; the work is in libagora
 * (agora/lm_train.h, agora/lora.h). */
#include "agora/lm_train.h"

#include "agora/hf_model.h"
#include "agora/json.h"
#include "cli/args.h"
#include "cli/cli.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_FLAGS            64
#define DEFAULT_SEQ_LEN      256
#define DEFAULT_EVAL_BATCHES 20
#define DEFAULT_LOG_EVERY    10
#define DEFAULT_KEEP         2
#define EVALS_PER_RUN        10 /* --eval-every's default: 10 evaluations a run */
#define NAMES_BYTES          1024
#define PATH_BYTES           4096

static const char EPILOG[] =
    "Data: a .txt file is one document; a .jsonl file holds {\"text\": ...} documents or\n"
    "{\"messages\": [...]} conversations, rendered with the chat template and trained on\n"
    "the assistant turns only (or, with --train-names, on the messages with those names).\n"
    "Documents are packed into windows of --seq-len tokens; each conversation is a window.\n\n"
    "--config FILE is a JSON object with the model's sizes, in Hugging Face's names or\n"
    "agora's: {\"model_type\": \"llama\" | \"gpt2\", \"hidden_size\", \"num_hidden_layers\",\n"
    "\"num_attention_heads\", \"num_key_value_heads\", \"intermediate_size\",\n"
    "\"max_position_embeddings\", \"vocab_size\" (default: the tokenizer's), \"rope_theta\",\n"
    "\"tie_word_embeddings\"}; a Hugging Face config.json works as it is.\n\n"
    "Writes OUT/metrics.jsonl (step, loss, lr, grad_norm, tokens_per_second, eval_loss),\n"
    "OUT/checkpoint-N/ folders (model or adapter, optimizer, trainer_state.json) and, at\n"
    "the end, the model in OUT itself (config.json, model.safetensors, tokenizer files) or\n"
    "the LoRA adapter (adapter_config.json, adapter_model.safetensors; with --merge also\n"
    "OUT/merged/, the base model with the adapter merged in). The windows of update s\n"
    "depend only on (--seed, s), so --resume repeats an uninterrupted run bit for bit\n"
    "(same machine, same --threads). The last line on stdout is `eval_loss X` (or a JSON\n"
    "object with --json).\n";

/* ---- the model ------------------------------------------------------------------------ */

static json_t *first_key(json_t *o, const char *const *keys) {
  for (int i = 0; keys[i]; i++) {
    json_t *v = json_object_get(o, keys[i]);
    if (v && !json_is_null(v)) return v;
  }
  return NULL;
}

/* An integer field under any of its names; fallback when absent. */
static ag_status config_int(json_t *o, const char *path, const char *const *keys, int64_t fallback,
                            int64_t *out) {
  json_t *v = first_key(o, keys);
  if (!v) {
    if (fallback < 0) return ag_error_set(AG_ERR_FORMAT, "%s: missing \"%s\"", path, keys[0]);
    *out = fallback;
    return AG_OK;
  }
  if (!json_is_integer(v) || json_integer_value(v) <= 0)
    return ag_error_set(AG_ERR_FORMAT, "%s: \"%s\" must be a positive integer", path, keys[0]);
  *out = (int64_t)json_integer_value(v);
  return AG_OK;
}

/* A model configuration from --config (see EPILOG). */
static ag_status read_model_config(const char *path, int64_t tokenizer_vocab,
                                   ag_transformer_config *c) {
  json_t *o;
  ag_status st = ag_json_load(path, &o);
  if (st) return st;
  if (!json_is_object(o)) {
    json_decref(o);
    return ag_error_set(AG_ERR_FORMAT, "%s: expected a JSON object", path);
  }
  const char *type =
      json_string_value(first_key(o, (const char *const[]){"model_type", "arch", NULL}));
  bool gpt2 = type && !strcmp(type, "gpt2");
  if (type && !gpt2 && strcmp(type, "llama") && strcmp(type, "mistral") && strcmp(type, "qwen2")) {
    st = ag_error_set(AG_ERR_UNSUPPORTED,
                      "%s: model_type \"%s\": use llama (also mistral, qwen2) or gpt2", path, type);
    json_decref(o);
    return st;
  }
  int64_t vocab = 0, hidden = 0, layers = 0, heads = 0, kv = 0, inter = 0, positions = 0;
  st = config_int(o, path, (const char *const[]){"vocab_size", NULL}, tokenizer_vocab, &vocab);
  if (!st)
    st = config_int(o, path, (const char *const[]){"hidden_size", "n_embd", NULL}, -1, &hidden);
  if (!st)
    st = config_int(o, path,
                    (const char *const[]){"num_hidden_layers", "num_layers", "n_layer", NULL}, -1,
                    &layers);
  if (!st)
    st = config_int(o, path,
                    (const char *const[]){"num_attention_heads", "num_heads", "n_head", NULL}, -1,
                    &heads);
  if (!st)
    st = config_int(o, path, (const char *const[]){"num_key_value_heads", "num_kv_heads", NULL},
                    heads, &kv);
  if (!st)
    st = config_int(
        o, path,
        (const char *const[]){"max_position_embeddings", "max_positions", "n_positions", NULL},
        DEFAULT_SEQ_LEN, &positions);
  if (!st) {
    *c = gpt2 ? ag_transformer_gpt2_config(vocab, hidden, layers, heads, positions)
              : ag_transformer_llama_config(vocab, hidden, layers, heads, kv, positions);
    st = config_int(o, path, (const char *const[]){"intermediate_size", "n_inner", NULL},
                    c->intermediate_size, &inter);
    c->intermediate_size = inter;
  }
  json_t *theta = json_object_get(o, "rope_theta"),
         *tie = json_object_get(o, "tie_word_embeddings");
  json_t *eps = first_key(o, (const char *const[]){"rms_norm_eps", "layer_norm_epsilon", NULL});
  if (!st && json_is_number(theta)) c->rope.theta = (float)json_number_value(theta);
  if (!st && json_is_number(eps)) c->norm_eps = (float)json_number_value(eps);
  if (!st && json_is_boolean(tie) && !gpt2) c->tie_embeddings = json_is_true(tie);
  json_decref(o);
  if (!st) st = ag_transformer_config_check(c);
  if (st) return ag_error_wrap(st, "%s", path);
  return AG_OK;
}

/* ---- flags ------------------------------------------------------------------------------ */

typedef struct train_flags {
  const char *data, *eval_data, *format, *text_field, *chat_template, *train_names;
  const char *model, *config, *tokenizer, *out;
  double eval_fraction, epochs, lr, min_lr, weight_decay, beta1, beta2, clip;
  int64_t seq_len, batch_size, grad_accum, steps, warmup, eval_every, eval_batches, save_every,
      log_every;
  int keep, lora_rank;
  double lora_alpha, lora_dropout;
  const char *lora_targets;
  bool resume, merge;
} train_flags;

static int add_flags(ag_flag *f, train_flags *v) {
  int n = 0;
  f[n++] = (ag_flag){.name = "data",
                     .type = AG_FLAG_STRING,
                     .value = &v->data,
                     .metavar = "FILE",
                     .help = "training corpus: .txt, or .jsonl with text or chat messages",
                     .required = true};
  f[n++] = (ag_flag){.name = "eval-data",
                     .type = AG_FLAG_STRING,
                     .value = &v->eval_data,
                     .metavar = "FILE",
                     .help = "held-out corpus for eval_loss",
                     .default_text = "--eval-fraction of --data"};
  f[n++] = (ag_flag){.name = "eval-fraction",
                     .type = AG_FLAG_FLOAT,
                     .value = &v->eval_fraction,
                     .metavar = "F",
                     .help = "windows of --data held out for evaluation (the last ones); 0: "
                             "evaluate on training windows",
                     .min = 0,
                     .max = 0.9};
  f[n++] = (ag_flag){.name = "format",
                     .type = AG_FLAG_CHOICE,
                     .value = &v->format,
                     .choices = "auto|text|jsonl|chat",
                     .help = "how to read the data files"};
  f[n++] = (ag_flag){.name = "text-field",
                     .type = AG_FLAG_STRING,
                     .value = &v->text_field,
                     .metavar = "NAME",
                     .help = "JSONL field holding a document's text"};
  f[n++] = (ag_flag){.name = "chat-template",
                     .type = AG_FLAG_STRING,
                     .value = &v->chat_template,
                     .metavar = "NAME",
                     .help = "chatml, llama3, gemma, phi3 or plain",
                     .default_text = "the model's, else plain"};
  f[n++] = (ag_flag){.name = "train-names",
                     .type = AG_FLAG_STRING,
                     .value = &v->train_names,
                     .metavar = "A,B",
                     .help = "train on the chat messages with these \"name\"s",
                     .default_text = "assistant turns"};
  f[n++] = (ag_flag){.name = "model",
                     .type = AG_FLAG_STRING,
                     .value = &v->model,
                     .metavar = "DIR",
                     .help = "fine-tune this Hugging Face model folder"};
  f[n++] = (ag_flag){.name = "config",
                     .type = AG_FLAG_STRING,
                     .value = &v->config,
                     .metavar = "FILE",
                     .help = "train a new model of these sizes (JSON, see below)"};
  f[n++] = (ag_flag){.name = "tokenizer",
                     .type = AG_FLAG_STRING,
                     .value = &v->tokenizer,
                     .metavar = "PATH",
                     .help = "tokenizer.json, GGUF or model folder",
                     .default_text = "--model"};
  f[n++] = (ag_flag){.name = "out",
                     .type = AG_FLAG_STRING,
                     .value = &v->out,
                     .metavar = "DIR",
                     .help = "run folder: checkpoints, metrics.jsonl, the final model",
                     .required = true};
  f[n++] = (ag_flag){.name = "resume",
                     .type = AG_FLAG_BOOL,
                     .value = &v->resume,
                     .help = "continue from the last complete checkpoint in --out"};
  f[n++] = (ag_flag){.name = "seq-len",
                     .type = AG_FLAG_INT64,
                     .value = &v->seq_len,
                     .metavar = "T",
                     .help = "tokens per window",
                     .min = 1,
                     .max = 1 << 20,
                     .default_text = "256, at most the model's positions"};
  f[n++] = (ag_flag){.name = "batch-size",
                     .type = AG_FLAG_INT64,
                     .value = &v->batch_size,
                     .metavar = "B",
                     .help = "windows per micro-batch",
                     .min = 1,
                     .max = 1 << 20};
  f[n++] = (ag_flag){.name = "grad-accum",
                     .type = AG_FLAG_INT64,
                     .value = &v->grad_accum,
                     .metavar = "K",
                     .help = "micro-batches per update (an update sees B * K windows)",
                     .min = 1,
                     .max = 1 << 20};
  f[n++] = (ag_flag){.name = "steps",
                     .type = AG_FLAG_INT64,
                     .value = &v->steps,
                     .metavar = "N",
                     .help = "updates",
                     .min = 1,
                     .max = 1e12,
                     .default_text = "--epochs over the data"};
  f[n++] = (ag_flag){.name = "epochs",
                     .type = AG_FLAG_FLOAT,
                     .value = &v->epochs,
                     .metavar = "E",
                     .help = "passes over the training windows (when --steps is not given)",
                     .min = 1e-6,
                     .max = 1e6};
  f[n++] = (ag_flag){.name = "lr",
                     .type = AG_FLAG_FLOAT,
                     .value = &v->lr,
                     .help = "peak learning rate (AdamW)",
                     .min = 1e-12,
                     .max = 10};
  f[n++] = (ag_flag){.name = "min-lr",
                     .type = AG_FLAG_FLOAT,
                     .value = &v->min_lr,
                     .help = "where the cosine decay ends",
                     .min = 0,
                     .max = 10,
                     .default_text = "lr / 10"};
  f[n++] = (ag_flag){.name = "warmup",
                     .type = AG_FLAG_INT64,
                     .value = &v->warmup,
                     .metavar = "N",
                     .help = "linear warmup updates",
                     .min = 0,
                     .max = 1e12,
                     .default_text = "5% of the steps"};
  f[n++] = (ag_flag){.name = "weight-decay",
                     .type = AG_FLAG_FLOAT,
                     .value = &v->weight_decay,
                     .metavar = "WD",
                     .help = "AdamW's decoupled weight decay",
                     .min = 0,
                     .max = 10,
                     .default_text = "0.1; 0 with LoRA"};
  f[n++] = (ag_flag){.name = "beta1",
                     .type = AG_FLAG_FLOAT,
                     .value = &v->beta1,
                     .help = "AdamW beta1",
                     .min = 0,
                     .max = 0.999999};
  f[n++] = (ag_flag){.name = "beta2",
                     .type = AG_FLAG_FLOAT,
                     .value = &v->beta2,
                     .help = "AdamW beta2",
                     .min = 0,
                     .max = 0.999999};
  f[n++] = (ag_flag){.name = "clip",
                     .type = AG_FLAG_FLOAT,
                     .value = &v->clip,
                     .help = "max global gradient norm; 0: no clipping",
                     .min = 0,
                     .max = 1e6};
  f[n++] = (ag_flag){.name = "eval-every",
                     .type = AG_FLAG_INT64,
                     .value = &v->eval_every,
                     .metavar = "N",
                     .help = "updates between evaluations (and the end)",
                     .min = 1,
                     .max = 1e12,
                     .default_text = "steps / 10"};
  f[n++] = (ag_flag){.name = "eval-batches",
                     .type = AG_FLAG_INT64,
                     .value = &v->eval_batches,
                     .metavar = "N",
                     .help = "micro-batches of held-out windows per evaluation; 0: all",
                     .min = 0,
                     .max = 1e12};
  f[n++] = (ag_flag){.name = "save-every",
                     .type = AG_FLAG_INT64,
                     .value = &v->save_every,
                     .metavar = "N",
                     .help = "updates between checkpoints (and the end)",
                     .min = 1,
                     .max = 1e12,
                     .default_text = "--eval-every"};
  f[n++] = (ag_flag){.name = "keep",
                     .type = AG_FLAG_INT,
                     .value = &v->keep,
                     .metavar = "N",
                     .help = "checkpoints kept; 0: all",
                     .min = 0,
                     .max = 1 << 20};
  f[n++] = (ag_flag){.name = "log-every",
                     .type = AG_FLAG_INT64,
                     .value = &v->log_every,
                     .metavar = "N",
                     .help = "updates between metrics.jsonl lines",
                     .min = 1,
                     .max = 1e12};
  f[n++] = (ag_flag){.name = "lora-rank",
                     .type = AG_FLAG_INT,
                     .value = &v->lora_rank,
                     .metavar = "R",
                     .help = "train LoRA adapters of rank R on --model; 0: all parameters",
                     .min = 0,
                     .max = 1 << 16};
  f[n++] = (ag_flag){.name = "lora-alpha",
                     .type = AG_FLAG_FLOAT,
                     .value = &v->lora_alpha,
                     .metavar = "A",
                     .help = "LoRA scale numerator: updates are scaled by A / R",
                     .min = 1e-6,
                     .max = 1e6,
                     .default_text = "2 R"};
  f[n++] = (ag_flag){.name = "lora-dropout",
                     .type = AG_FLAG_FLOAT,
                     .value = &v->lora_dropout,
                     .metavar = "P",
                     .help = "dropout on the adapters' input",
                     .min = 0,
                     .max = 0.99};
  f[n++] = (ag_flag){.name = "lora-targets",
                     .type = AG_FLAG_STRING,
                     .value = &v->lora_targets,
                     .metavar = "LIST",
                     .help = "module-name suffixes to adapt, or all-linear"};
  f[n++] = (ag_flag){.name = "merge",
                     .type = AG_FLAG_BOOL,
                     .value = &v->merge,
                     .help = "LoRA: also write OUT/merged/, the base with the adapter merged in"};
  return n;
}

/* ---- the command --------------------------------------------------------------------------- */

/* Splits "a,b" (in buf, modified) into the options' train names. */
static bool set_train_names(char *buf, ag_lm_data_options *o) {
  o->n_train_names = 0;
  for (char *p = strtok(buf, ","); p; p = strtok(NULL, ",")) {
    while (*p == ' ') p++;
    if (!*p) continue;
    if (o->n_train_names == AG_LM_MAX_TRAIN_NAMES) return false;
    o->train_names[o->n_train_names++] = p;
  }
  return o->n_train_names > 0;
}

static bool is_dir(const char *path) {
  struct stat s;
  return stat(path, &s) == 0 && S_ISDIR(s.st_mode);
}

typedef struct session {
  ag_tokenizer *tok;
  ag_transformer *model;
  ag_lm_data *train, *eval;
  ag_hf_info info;
} session;

static void session_free(session *s) {
  ag_lm_data_free(s->train);
  ag_lm_data_free(s->eval);
  ag_transformer_destroy(s->model);
  ag_tok_free(s->tok);
}

/* Model, tokenizer and config.json's token ids. */
static ag_status open_model(const train_flags *v, session *s) {
  const char *tok_path = v->tokenizer ? v->tokenizer : v->model;
  ag_status st = ag_tok_load(tok_path, &s->tok);
  if (st) return st;
  memset(&s->info, 0, sizeof s->info);
  s->info.bos_token_id = s->info.pad_token_id = -1;
  if (v->model) {
    st = ag_hf_load(v->model, v->lora_rank > 0 ? AG_HF_LOAD_MAPPED : AG_HF_LOAD_TRAINABLE,
                    &s->model, &s->info);
  } else {
    ag_transformer_config c;
    st = read_model_config(v->config, ag_tok_vocab_size(s->tok), &c);
    if (!st) st = ag_transformer_create(&c, &s->model);
    int32_t eos = ag_tok_special_id(s->tok, AG_TOK_EOS);
    s->info.bos_token_id = ag_tok_special_id(s->tok, AG_TOK_BOS);
    s->info.pad_token_id = ag_tok_special_id(s->tok, AG_TOK_PAD);
    if (eos >= 0) s->info.eos_token_ids[s->info.eos_count++] = eos;
  }
  if (!st) st = ag_transformer_check_vocab(s->model, ag_tok_vocab_size(s->tok));
  return st;
}

static ag_status load_data(const train_flags *v, const ag_lm_data_options *o, session *s) {
  ag_status st = ag_lm_data_create(s->tok, o, &s->train);
  if (!st) st = ag_lm_data_add_file(s->train, v->data);
  if (!st && v->eval_data) {
    st = ag_lm_data_create(s->tok, o, &s->eval);
    if (!st) st = ag_lm_data_add_file(s->eval, v->eval_data);
  }
  if (st) return st;
  int64_t windows = ag_lm_data_windows(s->train);
  if (windows == 0)
    return ag_error_set(AG_ERR_INVALID,
                        "%s holds nothing to train on (%lld conversations without a trained "
                        "message)",
                        v->data, (long long)ag_lm_data_skipped(s->train));
  if (!v->eval_data && v->eval_fraction > 0) {
    int64_t held = (int64_t)llround(v->eval_fraction * (double)windows);
    if (held < 1) held = 1;
    if (held < windows) {
      st = ag_lm_data_split(s->train, held, &s->eval);
    } else {
      ag_info("%s has %lld window(s): evaluating on the training windows", v->data,
              (long long)windows);
    }
  }
  if (ag_lm_data_truncated(s->train))
    ag_warn("%lld conversation(s) were longer than --seq-len %lld tokens and were cut",
            (long long)ag_lm_data_truncated(s->train), (long long)o->seq_len);
  return st;
}

static int print_result(bool as_json, const ag_lm_train_result *r, const train_flags *v,
                        int64_t steps) {
  if (as_json) {
    json_t *o = json_pack(
        "{s:o, s:o, s:I, s:I, s:I, s:f, s:f, s:b, s:s, s:i}", "eval_loss",
        isfinite(r->eval_loss) ? json_real(r->eval_loss) : json_null(), "train_loss",
        isfinite(r->train_loss) ? json_real(r->train_loss) : json_null(), "steps",
        (json_int_t)r->steps, "total_steps", (json_int_t)steps, "tokens", (json_int_t)r->tokens,
        "seconds", r->seconds, "tokens_per_second", r->tokens_per_second, "resumed", r->resumed,
        "out", v->out, "threads", ag_threads_get());
    char *text =
        o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8)) : NULL;
    json_decref(o);
    if (!text) return ag_cli_error("out of memory");
    printf("%s\n", text);
    free(text);
  } else {
    printf("steps %lld\ntrain_loss %.4f\neval_loss %.4f\n", (long long)r->steps, r->train_loss,
           r->eval_loss);
  }
  fflush(stdout);
  return 0;
}

int ag_cli_lm_train(int argc, char **argv) {
  ag_common_flags common = {0};
  ag_lm_train_config defaults = ag_lm_train_defaults();
  ag_lora_config lora_defaults = ag_lora_defaults();
  train_flags v = {.format = "auto",
                   .text_field = "text",
                   .eval_fraction = 0.05,
                   .epochs = 1,
                   .lr = defaults.lr,
                   .min_lr = 0,
                   .weight_decay = defaults.weight_decay,
                   .beta1 = defaults.beta1,
                   .beta2 = defaults.beta2,
                   .clip = defaults.clip_norm,
                   .batch_size = defaults.batch_size,
                   .grad_accum = 1,
                   .eval_batches = DEFAULT_EVAL_BATCHES,
                   .log_every = DEFAULT_LOG_EVERY,
                   .keep = DEFAULT_KEEP,
                   .lora_dropout = lora_defaults.dropout,
                   .lora_targets = lora_defaults.target_modules};
  ag_flag flags[MAX_FLAGS];
  ag_flag own[MAX_FLAGS - AG_COMMON_FLAG_COUNT];
  int n = ag_args_with_common(flags, own, add_flags(own, &v), &common, true);
  ag_command cmd = {.name = "lm train",
                    .summary = "Train a language model on next tokens: from scratch (--config) "
                               "or from a\nHugging Face folder (--model), all parameters or "
                               "LoRA adapters (--lora-rank).",
                    .flags = flags,
                    .flag_count = n,
                    .epilog = EPILOG};
  ag_args_result r = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (r == AG_ARGS_HELP) return 0;
  if (r) return 2;
  if (!v.model == !v.config)
    return ag_args_usage_error(&cmd, "give one of --model DIR (fine-tune) or --config FILE "
                                     "(a new model)");
  if (v.config && !v.tokenizer) return ag_args_usage_error(&cmd, "--config needs --tokenizer PATH");
  if (v.config && v.lora_rank > 0)
    return ag_args_usage_error(&cmd, "LoRA (--lora-rank) adapts a loaded --model");
  if (v.merge && v.lora_rank == 0) return ag_args_usage_error(&cmd, "--merge needs --lora-rank");
  if (v.model && !is_dir(v.model))
    return ag_args_usage_error(&cmd, "--model %s is not a Hugging Face model folder", v.model);
  char names[NAMES_BYTES] = "";
  ag_lm_data_options o = {.text_field = v.text_field};
  if (v.train_names) {
    snprintf(names, sizeof names, "%s", v.train_names);
    if (!set_train_names(names, &o))
      return ag_args_usage_error(&cmd, "--train-names wants 1 to %d comma-separated names",
                                 AG_LM_MAX_TRAIN_NAMES);
  }
  ag_args_apply_common(&common);
  o.format = !strcmp(v.format, "text")    ? AG_LM_DATA_TEXT
             : !strcmp(v.format, "jsonl") ? AG_LM_DATA_JSONL
             : !strcmp(v.format, "chat")  ? AG_LM_DATA_CHAT
                                          : AG_LM_DATA_AUTO;

  session s = {0};
  ag_status st = open_model(&v, &s);
  const ag_transformer_config *mc = st ? NULL : ag_transformer_config_of(s.model);
  if (!st) {
    o.seq_len = ag_args_find(&cmd, "seq-len")->seen   ? v.seq_len
                : mc->max_positions < DEFAULT_SEQ_LEN ? mc->max_positions
                                                      : DEFAULT_SEQ_LEN;
    if (o.seq_len > mc->max_positions) {
      st = ag_error_set(AG_ERR_INVALID, "--seq-len %lld exceeds the model's %lld positions",
                        (long long)o.seq_len, (long long)mc->max_positions);
    } else if (v.chat_template) {
      st = ag_chat_template_by_name(v.chat_template, &o.chat_template);
    } else if (v.model && ag_chat_template_load(v.model, &o.chat_template)) {
      ag_error_clear();
      o.chat_template = NULL; /* plain */
    }
  }
  if (!st) st = load_data(&v, &o, &s);
  if (st) {
    session_free(&s);
    return ag_cli_error("%s", ag_error_message());
  }

  ag_lm_train_config c = defaults;
  c.batch_size = v.batch_size;
  c.grad_accum = v.grad_accum;
  int64_t per_update = v.batch_size * v.grad_accum, windows = ag_lm_data_windows(s.train);
  c.steps = ag_args_find(&cmd, "steps")->seen
                ? v.steps
                : (int64_t)ceil(v.epochs * (double)windows / (double)per_update);
  if (c.steps < 1) c.steps = 1;
  c.lr = (float)v.lr;
  c.min_lr = ag_args_find(&cmd, "min-lr")->seen ? (float)v.min_lr : -1.0f;
  c.warmup_steps = ag_args_find(&cmd, "warmup")->seen ? v.warmup : -1;
  c.weight_decay = ag_args_find(&cmd, "weight-decay")->seen ? (float)v.weight_decay
                   : v.lora_rank > 0                        ? 0.0f
                                                            : (float)v.weight_decay;
  c.beta1 = (float)v.beta1;
  c.beta2 = (float)v.beta2;
  c.clip_norm = (float)v.clip;
  c.seed = common.seed;
  if (v.lora_rank > 0) {
    c.lora.rank = v.lora_rank;
    c.lora.alpha =
        ag_args_find(&cmd, "lora-alpha")->seen ? (float)v.lora_alpha : 2.0f * (float)v.lora_rank;
    c.lora.dropout = (float)v.lora_dropout;
    snprintf(c.lora.target_modules, sizeof c.lora.target_modules, "%s", v.lora_targets);
    snprintf(c.lora.base_model_name_or_path, sizeof c.lora.base_model_name_or_path, "%s", v.model);
  }
  /* A new model starts from GPT-2's initialisation (a resumed run then
   * loads its checkpoint over it). */
  if (v.config) ag_transformer_init(s.model, common.seed);
  int64_t eval_every = ag_args_find(&cmd, "eval-every")->seen
                           ? v.eval_every
                           : (c.steps + EVALS_PER_RUN - 1) / EVALS_PER_RUN;
  ag_lm_train_run run = {.out_dir = v.out,
                         .resume = v.resume,
                         .save_every =
                             ag_args_find(&cmd, "save-every")->seen ? v.save_every : eval_every,
                         .keep = v.keep,
                         .eval_every = eval_every,
                         .eval_batches = v.eval_batches,
                         .log_every = v.log_every,
                         .tokenizer_path = v.tokenizer ? v.tokenizer : v.model,
                         .tokenizer = s.tok,
                         .chat_template = o.chat_template,
                         .model_info = &s.info,
                         .progress = !common.quiet};
  ag_params *p = ag_transformer_params(s.model);
  ag_info("%s: %lld windows of %lld tokens (%lld trained), %lld held out; %s model, %lld "
          "parameters; %lld updates of %lld windows",
          v.data, (long long)windows, (long long)o.seq_len,
          (long long)ag_lm_data_target_tokens(s.train),
          (long long)(s.eval ? ag_lm_data_windows(s.eval) : 0),
          mc->arch == AG_ARCH_GPT2 ? "gpt2" : "llama", (long long)p->total, (long long)c.steps,
          (long long)per_update);
  ag_lm_train_result result;
  st = ag_lm_train(s.model, &c, s.train, s.eval, &run, &result);
  if (!st && v.merge && result.steps == c.steps) {
    char merged[PATH_BYTES];
    int w = snprintf(merged, sizeof merged, "%s/merged", v.out);
    st = w > 0 && (size_t)w < sizeof merged
             ? ag_lm_merge_adapter(v.model, v.out, merged)
             : ag_error_set(AG_ERR_INVALID, "--out path is too long");
  }
  session_free(&s);
  if (st) return ag_cli_error("%s", ag_error_message());
  return print_result(common.json, &result, &v, c.steps);
}
