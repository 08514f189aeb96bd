/* Chat templates (lm layer): a conversation in the chat-messages shape
 * rendered into the text a chat model was trained on, byte for byte what the
 * model's published Jinja template renders through Hugging Face's
 * apply_chat_template with its defaults, without a Jinja engine.
 *
 * Families: Qwen2.5's ChatML ("chatml", "qwen2"), Llama 3.1 ("llama3"),
 * Gemma / Gemma 2 ("gemma"), Phi-3.5 ("phi3") and agora's own "plain".
 * Tools are out of scope: there is no tools argument, and messages with role
 * "tool" or "ipython" are refused (AG_ERR_UNSUPPORTED). See docs/chat.md. */
#ifndef AGORA_CHAT_TEMPLATE_H
#define AGORA_CHAT_TEMPLATE_H

#include "agora/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One message: {"role": ..., "content": ..., "name": ...} of DESIGN.md. */
typedef struct ag_chat_message {
  const char *role;    /* "system", "user", "assistant", or another role */
  const char *content; /* UTF-8 text, never NULL */
  const char *name;    /* optional speaker (NULL); no template renders it */
} ag_chat_message;

typedef enum ag_chat_family {
  AG_CHAT_PLAIN = 0, /* agora's own: "role: content<eos>\n" */
  AG_CHAT_CHATML,    /* Qwen2.5: <|im_start|>role\n...<|im_end|>\n */
  AG_CHAT_LLAMA3,    /* Llama 3.1: <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
  AG_CHAT_GEMMA,     /* Gemma, Gemma 2: <start_of_turn>role\n...<end_of_turn>\n */
  AG_CHAT_PHI3,      /* Phi-3.5: <|role|>\n...<|end|>\n */
  AG_CHAT_FAMILY_COUNT
} ag_chat_family;

/* A template is a static, read-only object: never freed. */
typedef struct ag_chat_template ag_chat_template;

/* By family name: "chatml" / "qwen2" / "qwen", "llama3", "gemma" / "gemma2",
 * "phi3" / "phi3.5", "plain" (case-insensitive). An unknown name is an error
 * listing the supported ones. */
ag_status ag_chat_template_by_name(const char *name, const ag_chat_template **out);
ag_status ag_chat_template_by_family(ag_chat_family family, const ag_chat_template **out);
/* Recognises a Jinja chat template (tokenizer_config.json's "chat_template")
 * as one of the published templates this file reimplements, by distinctive
 * substrings; anything else is AG_ERR_UNSUPPORTED naming the families. */
ag_status ag_chat_template_detect(const char *jinja_source, const ag_chat_template **out);
/* The same from a model folder (its chat_template.jinja, else its
 * tokenizer_config.json) or a tokenizer_config.json file. "chat_template"
 * may be a string or a list of {"name", "template"} (the "default" one is
 * used). No template at all is AG_ERR_NOT_FOUND. */
ag_status ag_chat_template_load(const char *path, const ag_chat_template **out);

const char *ag_chat_template_name(const ag_chat_template *t); /* "chatml", "llama3", ... */
ag_chat_family ag_chat_template_family(const ag_chat_template *t);
/* The marker that closes a turn ("<|im_end|>", "<|eot_id|>", "<end_of_turn>",
 * "<|end|>"): where generation stops. NULL for plain, whose turns end with
 * the EOS token. */
const char *ag_chat_template_end_of_turn(const ag_chat_template *t);
/* The family's BOS / EOS text as the model's tokenizer_config.json sets it
 * ("" when it has none): the defaults of ag_chat_render_options. */
const char *ag_chat_template_bos(const ag_chat_template *t);
const char *ag_chat_template_eos(const ag_chat_template *t);
/* The Jinja source of agora's plain template, for the tokenizer_config.json
 * of a model agora writes (so transformers renders it the same); NULL for the
 * published families, whose sources live with their models. */
const char *ag_chat_template_jinja(const ag_chat_template *t);
/* "chatml (qwen2), llama3, gemma, phi3, plain": for error messages. */
const char *ag_chat_template_supported(void);

typedef struct ag_chat_render_options {
  /* Append the header of an assistant turn for the model to complete. */
  bool add_generation_prompt;
  /* BOS / EOS text as the template sees them; NULL: the family's own
   * (Gemma "<bos>", Llama 3.1 "<|begin_of_text|>", Phi-3.5 "<s>" and
   * "<|endoftext|>", plain "" and "<|endoftext|>"). */
  const char *bos_token;
  const char *eos_token;
  /* Llama 3.1's "Today Date: ..." line; NULL: the template's own default,
   * "26 Jul 2024". */
  const char *date_string;
} ag_chat_render_options;

/* Where one message landed in the rendered text, in bytes from its start. */
typedef struct ag_chat_span {
  int64_t begin;    /* first byte of the content; -1 if the template drops the message */
  int64_t end;      /* one past the content (trimmed where the template trims) */
  int64_t turn_end; /* one past the end-of-turn marker that follows (EOS for plain):
                       what an assistant turn must learn to emit; == end if none */
} ag_chat_span;

/* Renders n >= 1 messages into *out (malloc'd, NUL-terminated; the caller
 * frees it). options may be NULL (all defaults, no generation prompt). A
 * conversation the published template refuses (Gemma: a system message,
 * roles that do not alternate user/assistant) is refused with AG_ERR_INVALID
 * and the template's own message. */
ag_status ag_chat_render(const ag_chat_template *t, const ag_chat_message *messages, int n,
                         const ag_chat_render_options *options, char **out);
/* The same, and spans[i] (n entries) says where messages[i]'s content is:
 * the assistant spans give the loss mask of "train on assistant turns". */
ag_status ag_chat_render_spans(const ag_chat_template *t, const ag_chat_message *messages, int n,
                               const ag_chat_render_options *options, char **out,
                               ag_chat_span *spans);

#ifdef __cplusplus
}
#endif
#endif
