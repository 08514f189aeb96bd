/* Sampling and text generation (lm layer).
 *
 *   ag_generate_options o = ag_generate_defaults();
 *   o.sampling.temperature = 0;             // greedy: exactly reproducible
 *   o.max_new_tokens = 200;
 *   ag_generation g;
 *   const char *prompt = "Once upon a time";
 *   if (ag_generate(lm, &prompt, 1, &o, &g) == AG_OK) fwrite(g.text.data, 1, g.text.size, stdout);
 *   ag_generation_free(&g, 1);
 *
 * Several prompts of different lengths are generated together through one KV
 * cache (agora/transformer.h): one prefill step for all prompts, then one
 * decoding step per token for the sequences still running. Sequence i draws
 * from its own random stream, ag_rng_seed2(seed, index_base + i) (or
 * streams[i]), so a prompt's text depends on the seed and its stream, not on
 * the batch it ran in. */
#ifndef AGORA_GENERATE_H
#define AGORA_GENERATE_H

#include "agora/lm_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- sampling ------------------------------------------------------------------ */

/* Applied in Hugging Face's order: repetition penalty, temperature, top-k,
 * top-p, min-p, then a draw from what remains. temperature 0 is greedy (the
 * highest logit after the repetition penalty; ties go to the lower id), and
 * so is top_k 1. */
typedef struct ag_sampling {
  float temperature;        /* logits / temperature; 0: greedy */
  int32_t top_k;            /* keep the k most likely tokens; 0: all */
  float top_p;              /* keep the fewest tokens whose probability sums to >= top_p; 1: all */
  float min_p;              /* drop tokens less likely than min_p x the most likely; 0: none */
  float repetition_penalty; /* over tokens seen (prompt and output): positive logits
                               divided by it, negative ones multiplied; 1: none */
} ag_sampling;

/* temperature 1, top_k 0, top_p 1, min_p 0, repetition_penalty 1: plain
 * sampling from the model's distribution. */
ag_sampling ag_sampling_defaults(void);
/* An error naming the field when a value is out of range (temperature < 0,
 * top_k < 0, top_p outside (0, 1], min_p outside [0, 1], penalty <= 0). */
ag_status ag_sampling_check(const ag_sampling *s);

/* Scratch for choosing tokens from a vocabulary of V ids: allocate once,
 * reuse for every step (a draw allocates nothing). Not shared by threads. */
typedef struct ag_sampler ag_sampler;
ag_status ag_sampler_create(const ag_sampling *s, int64_t vocab_size, ag_sampler **out);
void ag_sampler_destroy(ag_sampler *s);
/* The next token from logits (V), which are modified in place. history
 * (count ids; may be NULL) is what the repetition penalty sees. rng may be
 * NULL for greedy sampling. */
int32_t ag_sampler_next(ag_sampler *s, float *logits, const int32_t *history, int64_t count,
                        ag_rng *rng);

/* ---- generation ---------------------------------------------------------------- */

#define AG_GENERATE_MAX_STOPS 16

/* Called with each piece of text as it becomes final: whole UTF-8
 * characters, never part of a stop string. index is index_base + i for the
 * call's prompt i. */
typedef void (*ag_text_fn)(void *user, int64_t index, const char *text, size_t bytes);

typedef struct ag_generate_options {
  ag_sampling sampling;
  int64_t max_new_tokens; /* tokens generated per prompt at most */
  /* Texts that end generation; the text returned stops before the first
   * one found, which is not included. */
  const char *stop[AG_GENERATE_MAX_STOPS];
  int stop_count;
  /* Ids that end generation besides the model's EOS ids (chat templates'
   * end-of-turn tokens); not included in the text. */
  int32_t stop_ids[AG_GENERATE_MAX_STOPS];
  int stop_id_count;
  bool ignore_eos; /* keep going past EOS ids (benchmarks) */
  uint64_t seed;
  int64_t index_base;
  /* The random stream of each prompt: prompt i samples from
   * ag_rng_seed2(seed, streams[i]) (n entries); NULL: index_base + i. Lets
   * callers batch prompts whose streams are their own (chat conversations,
   * requests of a server) and still get each one's text. */
  const uint64_t *streams;
  /* A prompt longer than the context is an error unless truncate: then its
   * first tokens (after BOS) are dropped so that it leaves room for
   * max_new_tokens, or for half the context when max_new_tokens is larger. */
  bool truncate;
  int64_t max_batch;  /* prompts decoded together at most; 0: all of them */
  ag_text_fn on_text; /* streaming; NULL: none */
  void *user;
} ag_generate_options;

/* Sampling defaults, 256 new tokens, no stop strings, seed 0. */
ag_generate_options ag_generate_defaults(void);

typedef enum ag_finish_reason {
  AG_FINISH_LENGTH = 0, /* max_new_tokens reached */
  AG_FINISH_EOS = 1,    /* an EOS or stop id was drawn */
  AG_FINISH_STOP = 2,   /* a stop string appeared */
  AG_FINISH_CONTEXT = 3 /* the model's context is full */
} ag_finish_reason;
const char *ag_finish_reason_name(ag_finish_reason r); /* "length", "eos", "stop", "context" */

typedef struct ag_generation {
  ag_tok_text text;       /* the generated text (raw bytes), stop string and EOS excluded */
  ag_tok_ids tokens;      /* every id drawn, the final EOS / stop id included */
  int64_t prompt_tokens;  /* after BOS and truncation */
  int64_t dropped_tokens; /* prompt tokens truncation dropped */
  ag_finish_reason finish;
} ag_generation;

/* Frees the text and tokens of n results and zeroes them. */
void ag_generation_free(ag_generation *g, int64_t n);

/* Generates a continuation of each of n text prompts (BOS added as the model
 * says) into out[0..n), which the caller frees with ag_generation_free
 * (also after an error). */
ag_status ag_generate(ag_lm *lm, const char *const *prompts, int64_t n,
                      const ag_generate_options *o, ag_generation *out);
/* The same from prompts already tokenized (nothing is added). */
ag_status ag_generate_ids(ag_lm *lm, const ag_tok_ids *prompts, int64_t n,
                          const ag_generate_options *o, ag_generation *out);

#ifdef __cplusplus
}
#endif
#endif
