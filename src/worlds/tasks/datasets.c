/* placeholder: being written */
#include "agora/task.h"
const ag_task_family ag_task_family_gsm8k = {"gsm8k", "(in progress)", 0, 0, NULL, NULL, NULL, NULL, NULL, NULL};
const ag_task_family ag_task_family_math = {"math", "(in progress)", 0, 0, NULL, NULL, NULL, NULL, NULL, NULL};
const ag_task_family ag_task_family_humaneval = {"humaneval", "(in progress)", 0, 0, NULL, NULL, NULL, NULL, NULL, NULL};
