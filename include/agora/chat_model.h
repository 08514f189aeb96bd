/* Chat models (lm layer): one interface, messages in and a reply out, with
 * sampling parameters and a seed, whatever answers: the local engine on a
 * model folder or GGUF file (rendered with its chat template, batched
 * generation), any OpenAI-compatible chat-completions endpoint over HTTP
 * (libcurl; concurrent requests, retries), or a function (scripted agents
 * in tests and experiments).
 *
 *   ag_chat_model *m;
 *   ag_chat_model_open("http://127.0.0.1:8080/v1#qwen2.5-0.5b", NULL, &m);
 *   // or ag_chat_model_open("models/stories260K", NULL, &m)
 *   ag_chat_message msgs[] = {{"user", "What is 2 + 3?", NULL}};
 *   ag_chat_conversation c = {msgs, 1, 0};
 *   ag_chat_params p = ag_chat_params_defaults();
 *   ag_chat_reply r;
 *   if (ag_chat_model_reply(m, &c, 1, &p, &r) == AG_OK) puts(r.content);
 *   ag_chat_reply_clear(&r, 1);
 *   ag_chat_model_close(m);
 *
 * See docs/chat-models.md. */
#ifndef AGORA_CHAT_MODEL_H
#define AGORA_CHAT_MODEL_H

#include "agora/chat_template.h"
#include "agora/generate.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A conversation to reply to. stream picks the random stream the reply's
 * sampling draws from: ag_rng_seed2(params->seed, stream) for the local
 * engine, a seed derived from both for an endpoint (the seed itself for
 * stream 0, so agora serve samples as the local engine does there). The
 * same (seed, stream, messages) gives the same local reply whatever else is
 * batched. */
typedef struct ag_chat_conversation {
  const ag_chat_message *messages;
  int count;
  uint64_t stream;
} ag_chat_conversation;

typedef struct ag_chat_params {
  ag_sampling sampling; /* temperature, top-k, top-p, min-p, repetition penalty */
  int64_t max_tokens;   /* tokens in the reply at most */
  uint64_t seed;
  const char *stop[AG_GENERATE_MAX_STOPS]; /* the reply ends before the first one */
  int stop_count;
  /* Local: keep generating past the model's EOS ids and the template's
   * end of turn (benchmarks); an endpoint or a function ignores it. */
  bool ignore_eos;
  /* Streaming (NULL: none): called with each piece of reply i's text as it
   * becomes final (index i of the call); the pieces make up out[i].content.
   * The local engine calls it while generating (whole UTF-8 characters, as
   * ag_generate does); an endpoint or a function once per reply, with the
   * whole content, when the call has succeeded. */
  ag_text_fn on_text;
  void *user;
  /* The role of the turn the model writes: NULL or "assistant" (a reply),
   * or another role the template renders, e.g. "user" for a model that
   * writes its teacher's next turn itself (feedback prediction's
   * self-critique, agora sml --self-teach). Local models only; an endpoint
   * refuses any role but assistant. */
  const char *reply_role;
} ag_chat_params;

/* ag_sampling_defaults(), 256 tokens, seed 0, no stop strings. */
ag_chat_params ag_chat_params_defaults(void);

typedef struct ag_chat_reply {
  char *content;           /* the reply text (malloc'd) */
  ag_finish_reason finish; /* "stop" from an endpoint maps to AG_FINISH_EOS */
  int64_t prompt_tokens;   /* as counted by the model (an endpoint's usage) */
  int64_t completion_tokens;
  /* Local, with the truncate option: prompt tokens left out to fit the
   * context (the oldest messages dropped whole, then the start of the rest). */
  int64_t dropped_tokens;
} ag_chat_reply;

/* Frees the contents of n replies and zeroes them. */
void ag_chat_reply_clear(ag_chat_reply *r, int64_t n);

typedef struct ag_chat_model_options {
  /* Local: a template family name ("chatml", "llama3", "gemma", "phi3",
   * "plain") used instead of the model's own; NULL: the model's. A local
   * model without a template and no override cannot be opened as a chat
   * model (an error saying so and naming this option). */
  const char *chat_template;
  /* Local: a model without a template agora renders, and no chat_template,
   * chats with the plain template instead of failing (a warning at the first
   * reply says why when the model has a template agora does not render). */
  bool plain_fallback;
  /* Local: sequences decoded together at most (0: all replies of a call). */
  int64_t max_batch;
  /* Local: drop the start of a conversation too long for the context
   * instead of failing. */
  bool truncate;
  /* Endpoint: the environment variable holding the API key (default
   * "AGORA_API_KEY"; unset or empty: no Authorization header). */
  const char *api_key_env;
  double timeout_seconds;         /* per request, whole transfer (default 300) */
  double connect_timeout_seconds; /* default 10 */
  /* Endpoint: tries after the first on 429, 5xx, timeouts and refused
   * connections (default 4), waiting backoff_seconds x 2^try (default 1;
   * a Retry-After header wins). A 4xx other than 429 is not retried: its
   * error body's message is reported. */
  int retries;
  double backoff_seconds;
  int concurrency; /* endpoint: requests in flight at most (default 8) */
} ag_chat_model_options;

ag_chat_model_options ag_chat_model_defaults(void);

typedef struct ag_chat_model ag_chat_model;

/* True for "http://..." and "https://..." specs. */
bool ag_chat_model_is_endpoint(const char *spec);

/* Opens a MODEL argument: a model folder or GGUF file, or an endpoint
 * "http://HOST:PORT/v1#MODEL_NAME" (the part after '#' is the "model" field
 * of requests; required). options may be NULL (defaults). Opening an
 * endpoint does not contact it. */
ag_status ag_chat_model_open(const char *spec, const ag_chat_model_options *options,
                             ag_chat_model **out);

/* A chat model that is a function: it fills out[0..n) (content malloc'd)
 * for convs[0..n). For scripted agents. name is copied. */
typedef ag_status (*ag_chat_fn)(void *user, const ag_chat_conversation *convs, int64_t n,
                                const ag_chat_params *params, ag_chat_reply *out);
ag_status ag_chat_model_custom(const char *name, ag_chat_fn fn, void *user, ag_chat_model **out);

/* Replies to n conversations: one batched generation for a local model,
 * up to `concurrency` requests at once for an endpoint. out[0..n) are
 * zeroed first and must be cleared by the caller, also after an error (some
 * may be filled). Roles are "system", "user", "assistant"; a local template
 * that refuses a system message (Gemma) gets it folded into the first user
 * message, separated by a blank line. An endpoint that stays unreachable,
 * refuses the key or times out after the retries is an error naming the
 * URL and what happened. */
ag_status ag_chat_model_reply(ag_chat_model *m, const ag_chat_conversation *convs, int64_t n,
                              const ag_chat_params *params, ag_chat_reply *out);

/* The name the model is known by: the folder's or file's base name, the
 * endpoint's model name, or the custom name. */
const char *ag_chat_model_name(const ag_chat_model *m);
/* The local engine's model, or NULL for an endpoint or a function. */
ag_lm *ag_chat_model_lm(ag_chat_model *m);
void ag_chat_model_close(ag_chat_model *m);

/* Renders a conversation for a local model as ag_chat_model_reply does
 * (system folding, generation prompt, BOS/EOS text); *out malloc'd. The
 * BOS/EOS text is the family's own; ag_chat_model_prompt uses the model's.
 * A generation prompt that ends in a space (plain: "assistant: ") is cut
 * before it: byte-level BPE trains a reply's first word with its leading
 * space, so the model writes that space itself, and the reply returned
 * leaves it out. */
ag_status ag_chat_model_render(const ag_chat_template *t, const ag_chat_message *messages, int n,
                               char **out);
/* The text a local chat model replies from: ag_chat_model_render with the
 * model's own EOS text in the plain template (whose BOS text is empty). The
 * reply is generated from its ids (special-token text becomes the token),
 * after BOS when the model adds one and the text does not start with it,
 * as ag_generate does for a prompt. Not for an endpoint or a function. */
ag_status ag_chat_model_prompt(const ag_chat_model *m, const ag_chat_message *messages, int n,
                               char **out);

#ifdef __cplusplus
}
#endif

#endif
