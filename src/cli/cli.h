/* The command-line layer: areas and the flag parser they share. */
#ifndef AGORA_CLI_H
#define AGORA_CLI_H

#include <stdbool.h>
#include <stdint.h>

typedef struct ag_cli_area {
  const char *name;
  const char *summary;
  int (*run)(int argc, char **argv); /* argv[0] is the area name */
} ag_cli_area;

int ag_cli_vision(int argc, char **argv);
int ag_cli_tok(int argc, char **argv);
int ag_cli_lm(int argc, char **argv);
int ag_cli_lm_train(int argc, char **argv); /* `agora lm train`: argv[0] is "train" */
int ag_cli_tasks(int argc, char **argv);
int ag_cli_teach(int argc, char **argv);
int ag_cli_serve(int argc, char **argv);
int ag_cli_crafter(int, char **);
int ag_cli_sml(int argc, char **argv);
int ag_cli_sml_train(int argc, char **argv); /* `agora sml train`: argv[0] is "train" */
int ag_cli_sml_e1(int argc, char **argv);    /* `agora sml e1` */
int ag_cli_sml_e2(int argc, char **argv);    /* `agora sml e2` */
int ag_cli_sml_e3(int argc, char **argv);    /* `agora sml e3` */
int ag_cli_sml_e4(int argc, char **argv);    /* `agora sml e4` */
int ag_cli_sml_e5(int argc, char **argv);    /* `agora sml e5` */
int ag_cli_shaping(int, char **);
int ag_cli_infusion(int argc, char **argv);
int ag_cli_influence(int, char **);

#endif
