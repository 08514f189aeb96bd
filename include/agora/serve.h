/* Serving a local model over the OpenAI HTTP API (lm layer, libmicrohttpd):
 * POST /v1/chat/completions, POST /v1/completions, GET /v1/models and
 * GET /health. The same API agora's endpoint client speaks, so one agora can
 * be another's student, teacher or judge. See docs/serve.md.
 *
 *   ag_server *s;
 *   ag_server_options o = ag_server_defaults();
 *   o.port = 8080;
 *   ag_server_start(lm, &o, &s);   // returns once listening
 *   ...
 *   ag_server_stop(s);
 *
 * Bad requests get 400 with an OpenAI-style body {"error":{"message",
 * "type":"invalid_request_error","param","code"}}; a body larger than
 * max_body_bytes gets 413, a prompt longer than the context 400. */
#ifndef AGORA_SERVE_H
#define AGORA_SERVE_H

#include "agora/lm_model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ag_server_options {
  const char *host; /* address to bind (default "127.0.0.1") */
  int port;         /* 0: any free port (ag_server_port says which) */
  /* The id /v1/models lists and responses carry (default "agora"); a
   * request naming another model still gets this one. */
  const char *model_name;
  /* A template family used instead of the model's own (NULL: the model's).
   * Without either, /v1/chat/completions answers 400 saying so. */
  const char *chat_template;
  int64_t max_body_bytes;     /* default 1 MiB */
  int64_t max_tokens_default; /* when a request gives no max_tokens (default 256) */
  int64_t max_tokens_limit;   /* larger requests are refused (default: the context) */
  /* Requests without a "seed" draw theirs from a generator seeded with this
   * (default 0): a server's replies are reproducible for the same requests
   * in the same order. A request's choice k samples from stream k of its
   * seed, as ag_generate_options.streams; the local engine's stream 0 is
   * what a one-choice request gets. */
  uint64_t seed;
} ag_server_options;

ag_server_options ag_server_defaults(void);

typedef struct ag_server ag_server;

/* Starts serving lm (which must outlive the server) on its own threads and
 * returns once the socket listens. Requests are generated one batch at a
 * time: those that arrive while a generation runs wait. */
ag_status ag_server_start(ag_lm *lm, const ag_server_options *options, ag_server **out);
int ag_server_port(const ag_server *s);
/* Stops listening, finishes the request in progress, frees the server. */
void ag_server_stop(ag_server *s);

#ifdef __cplusplus
}
#endif

#endif
