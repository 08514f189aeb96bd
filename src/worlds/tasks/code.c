/* placeholder: being written */
#include "agora/task.h"
const ag_task_family ag_task_family_code = {"code", "(in progress)", 0, 0, NULL, NULL, NULL, NULL, NULL, NULL};
