/* Hand-built Crafter scenes for the tests: the world of seed 0 after reset
 * with every creature removed (the player stays), which each test then
 * reshapes around the player. */
#ifndef AGORA_TESTS_CRAFTER_SCENE_H
#define AGORA_TESTS_CRAFTER_SCENE_H

#include "agora/crafter.h"
#include "worlds/crafter/crafter_internal.h"

/* NULL when the environment cannot be made. Free with ag_crafter_destroy. */
static inline ag_crafter_env *crafter_without_creatures(void) {
  ag_crafter_env *e = NULL;
  if (ag_crafter_create(0, &e) || ag_crafter_reset(e)) {
    ag_crafter_destroy(e);
    return NULL;
  }
  ag_crafter_world *w = &e->world;
  for (uint32_t id = 2; id < w->object_count; id++) {
    ag_crafter_object *o = &w->objects[id];
    if (!o->type) continue;
    w->obj[o->x * AG_CRAFTER_AREA + o->y] = 0;
    o->type = AG_CRAFTER_OBJ_NONE;
  }
  return e;
}

#endif
