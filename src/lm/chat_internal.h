/* Pieces shared by the chat models (chat_model.c), their HTTP client
 * (chat_http.c) and the server (serve.c); not public. */
#ifndef AGORA_LM_CHAT_INTERNAL_H
#define AGORA_LM_CHAT_INTERNAL_H

#include "agora/chat_model.h"

/* ---- the local engine (chat_model.c) --------------------------------------------- */

/* The prompt text for messages[0..n) (see ag_chat_model_prompt): the first
 * system message folded into the first user message for a template that
 * refuses system messages (Gemma); the plain template gets lm's EOS text. */
ag_status ag_chat_local_text(const ag_lm *lm, const ag_chat_template *t,
                             const ag_chat_message *messages, int n, char **out);
/* Whether the template's generation prompt ends in a space, which the
 * prompt text leaves out: the model writes it as part of its first token,
 * and a reply that begins with it is returned without it. */
bool ag_chat_local_prompt_space(const ag_chat_template *t);
/* The ids of that text (BOS first when lm adds one and the text lacks it).
 * With drop_oldest, the oldest messages after a leading system message are
 * dropped (whole user/assistant exchanges) while the ids and room exceed
 * the context. */
ag_status ag_chat_local_ids(const ag_lm *lm, const ag_chat_template *t,
                            const ag_chat_message *messages, int n, bool drop_oldest, int64_t room,
                            ag_tok_ids *out);
/* Generation options for replies: params' sampling, max_tokens, seed,
 * ignore_eos and stop strings, and the template's end-of-turn id (or its
 * text as a stop string when the tokenizer lacks the token; "\nuser:" for
 * plain, whose turns end with EOS); no end of turn with ignore_eos. The
 * streaming callback is not copied. */
ag_status ag_chat_local_options(const ag_lm *lm, const ag_chat_template *t,
                                const ag_chat_params *params, ag_generate_options *out);

/* ---- the endpoint client (chat_http.c) -------------------------------------------- */

typedef struct ag_chat_http ag_chat_http;
/* url: the base URL ("http://HOST:PORT/v1"), model: the requests' "model". */
ag_status ag_chat_http_open(const char *url, const char *model, const ag_chat_model_options *o,
                            ag_chat_http **out);
ag_status ag_chat_http_reply(ag_chat_http *h, const ag_chat_conversation *convs, int64_t n,
                             const ag_chat_params *params, ag_chat_reply *out);
void ag_chat_http_close(ag_chat_http *h);

/* The "seed" sent for (seed, stream): the seed itself for stream 0, else a
 * mix of both; within [0, 2^63) so that it is a JSON integer. */
uint64_t ag_chat_http_seed(uint64_t seed, uint64_t stream);

#endif
