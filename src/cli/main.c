/* The agora command: `agora <area> <verb> [flags]`. Argument parsing and
 * dispatch only; the work is in the library. */
#include "agora/base.h"
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static const ag_cli_area areas[] = {
    {"vision", "train and evaluate image classifiers (MLP, CNN, ResNet)", ag_cli_vision},
    {"tok", "tokenizers: encode, decode, train (tokenizer.json, GGUF)", ag_cli_tok},
    {"lm", "language models: generate, chat, eval, train (HF folders, GGUF files)", ag_cli_lm},
    {"serve", "serve a local model over the OpenAI HTTP API", ag_cli_serve},
    {"tasks", "verifiable tasks: list, generate, load, verify, check data sets", ag_cli_tasks},
    {"teach", "teacher-student dialogues: eval a student with a teacher", ag_cli_teach},
    {"crafter", "the Crafter game: replay (play, eval, render, bench to come)", ag_cli_crafter},
    {"sml", "social meta-learning: pretrain, train, experiments", ag_cli_sml},
    {"shape", "n-player opponent shaping: learners, LOLA, the ES shaper, sweeps", ag_cli_shaping},
    {"infusion", "Infusion: edit training images so retraining raises a target", ag_cli_infusion},
    {"influence", "influence functions (EK-FAC): training images behind a prediction",
     ag_cli_influence},
};

static void usage(FILE *f) {
  fprintf(f, "usage: agora <area> <verb> [flags]\n\n"
             "agora: machine learning through interaction.\n\nareas:\n");
  for (size_t i = 0; i < sizeof areas / sizeof *areas; i++)
    fprintf(f, "  %-10s %s\n", areas[i].name, areas[i].summary);
  fprintf(f, "\nglobal flags:\n"
             "  --help       show this help\n"
             "  --version    print the version\n\n"
             "Run `agora <area> --help` for an area's verbs and flags.\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *area = argv[1];
  if (!strcmp(area, "--help") || !strcmp(area, "-h") || !strcmp(area, "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(area, "--version")) {
    printf("agora %s\n", AG_VERSION);
    return 0;
  }
  for (size_t i = 0; i < sizeof areas / sizeof *areas; i++)
    if (!strcmp(area, areas[i].name)) return areas[i].run(argc - 1, argv + 1);
  fprintf(stderr, "agora: error: unknown area '%s'\n", area);
  usage(stderr);
  return 2;
}
