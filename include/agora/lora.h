/* LoRA adapters for the transformer (nn layer): Hu et al. 2021, "LoRA:
 * Low-Rank Adaptation of Large Language Models".
 *
 * Each targeted projection y = x W^T + b (W (out, in)) gains a low-rank
 * update:
 *
 *   y = x W^T + b + (alpha / r) * dropout(x) A^T B^T     A (r, in), B (out, r)
 *
 * A starts uniform in +-1/sqrt(in) (PEFT's kaiming_uniform with a = sqrt(5))
 * and B at zero, so a fresh adapter leaves the model's output unchanged. The
 * adapters live in their own ag_params store: an optimizer over that store
 * trains them alone, and while they are attached the base model's parameters
 * do not require gradients (backward computes no weight gradients for them).
 *
 * Targets are module names matched by suffix as PEFT does: "q_proj" picks
 * every model.layers.N.self_attn.q_proj; "c_attn" picks GPT-2's fused q/k/v
 * weight (one adapter, B's rows split into q, k and v like the weight's;
 * in training each of the three draws its own dropout mask).
 *
 * Files follow the PEFT layout, so `peft` loads what agora saves and the
 * other way round:
 *   adapter_config.json        r, lora_alpha, lora_dropout, target_modules,
 *                              base_model_name_or_path, peft_type "LORA",
 *                              task_type "CAUSAL_LM", bias "none"
 *   adapter_model.safetensors  base_model.model.<module>.lora_A.weight (r, in)
 *                              base_model.model.<module>.lora_B.weight (out, r)
 *
 *   ag_lora_config c = ag_lora_defaults();       // r 8, alpha 16, q_proj,v_proj
 *   ag_lora *lora;
 *   ag_lora_create(model, &c, seed, &lora);      // attached: forwards use it
 *   ag_optim_create(ag_lora_params(lora), ...);  // train the adapters only
 *   ...
 *   ag_lora_save(lora, "out/adapter");
 *   ag_lora_merge(lora, model);                  // W += alpha/r B A; detached
 *   ag_lora_destroy(lora); */
#ifndef AGORA_LORA_H
#define AGORA_LORA_H

#include "agora/transformer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AG_LORA_TARGETS_MAX 256
#define AG_LORA_BASE_MAX    512

typedef struct ag_lora_config {
  int rank;      /* r >= 1 */
  float alpha;   /* lora_alpha: the update is scaled by alpha / r */
  float dropout; /* lora_dropout: on the adapter's input, training only */
  /* Comma-separated module-name suffixes: "q_proj,v_proj"; "all-linear":
   * every projection in the blocks. */
  char target_modules[AG_LORA_TARGETS_MAX];
  /* Recorded in adapter_config.json: where the base model came from. */
  char base_model_name_or_path[AG_LORA_BASE_MAX];
} ag_lora_config;

/* r 8, alpha 16, dropout 0.05, targets "q_proj,v_proj" (PEFT's own default
 * for Llama-family models), no base path. */
ag_lora_config ag_lora_defaults(void);
/* Checks rank >= 1, alpha > 0, dropout in [0, 1), a target list. */
ag_status ag_lora_config_check(const ag_lora_config *c);

typedef struct ag_lora ag_lora;

/* Adapters for every projection of m that c targets (none matching is an
 * error naming the targets and an example module), A drawn from seed, B
 * zero, attached to m (ag_transformer_set_adapter). m must outlive the
 * adapters. */
ag_status ag_lora_create(ag_transformer *m, const ag_lora_config *c, uint64_t seed, ag_lora **out);
/* Detaches from the model (if still attached) and frees. */
void ag_lora_destroy(ag_lora *l);

const ag_lora_config *ag_lora_config_of(const ag_lora *l);
/* The adapters' parameters, named as in adapter_model.safetensors. */
ag_params *ag_lora_params(ag_lora *l);
/* Projections adapted (each with an A and a B). */
int ag_lora_module_count(const ag_lora *l);
/* The i-th module's name, "model.layers.0.self_attn.q_proj". */
const char *ag_lora_module_name(const ag_lora *l, int i);
/* alpha / r. */
float ag_lora_scale(const ag_lora *l);

/* (Re)installs the adapters in their model / removes them: the model then
 * computes its base output. Detaching restores the base parameters'
 * requires_grad flags. */
void ag_lora_attach(ag_lora *l);
void ag_lora_detach(ag_lora *l);
bool ag_lora_attached(const ag_lora *l);

/* Writes DIR/adapter_config.json and DIR/adapter_model.safetensors (F32),
 * each atomically; creates DIR. */
ag_status ag_lora_save(const ag_lora *l, const char *dir);
/* Reads a PEFT LoRA folder (F32, F16 or BF16 tensors) for model m and
 * attaches it. A file naming a module m lacks, a shape that does not fit
 * its weight, or a config that is not LoRA is an error naming the file. */
ag_status ag_lora_load(const char *dir, ag_transformer *m, ag_lora **out);

/* Adds (alpha / r) B A to the weights of the same names in target (l's own
 * model or another one with the same parameters, e.g. a trainable copy of
 * the base). target must be trainable (its weights writable). Merging into
 * the model l is attached to detaches l, so the model's output is the same
 * before and after. */
ag_status ag_lora_merge(ag_lora *l, ag_transformer *target);

#ifdef __cplusplus
}
#endif
#endif
