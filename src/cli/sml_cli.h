/* Flags shared by `agora sml train` and the experiments that run it
 * (sml_train.c, sml_exp.c). */
#ifndef AGORA_CLI_SML_CLI_H
#define AGORA_CLI_SML_CLI_H

#include "agora/sml_train.h"
#include "cli/args.h"

/* ag_sml_train_options and the flag values that need converting. */
typedef struct ag_sml_train_cli {
  ag_sml_train_options o;
  const char *mode, *families, *eval_families, *lora_targets;
  double lr, clip, temperature, eval_temperature, lora_alpha, lora_dropout;
  int lora_rank;
} ag_sml_train_cli;

/* Sets t to the defaults and appends the training flags (all but --student,
 * --out and --resume) to table; returns how many. */
int ag_cli_sml_train_flags(ag_flag *table, ag_sml_train_cli *t);
/* After parsing: checks the combinations and fills t->o; a usage error
 * (already printed) returns nonzero. */
int ag_cli_sml_train_finish(ag_command *cmd, const ag_common_flags *common, ag_sml_train_cli *t);

#endif
