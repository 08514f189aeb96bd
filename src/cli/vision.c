/* placeholder while the vision area is written */
#include <stdio.h>

#include "cli/cli.h"

int ag_cli_vision(int argc, char **argv) {
  fprintf(stderr, "agora: error: vision is not built yet\n");
  return 1;
}
