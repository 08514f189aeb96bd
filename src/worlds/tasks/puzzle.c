/* placeholder: being written */
#include "agora/task.h"
const ag_task_family ag_task_family_puzzle = {"puzzle", "(in progress)", 0, 0, NULL, NULL, NULL, NULL, NULL, NULL};
