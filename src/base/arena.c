/* Bump allocator in chunks. Reset keeps the chunks, so steady-state steps
 * reuse memory instead of calling malloc. */
#include <stdlib.h>
#include <string.h>

#include "agora/base.h"

typedef struct chunk {
  struct chunk *next;
  size_t size, used;
  unsigned char *mem;
} chunk;

struct ag_arena {
  chunk *head;    /* chunk being filled */
  chunk *first;   /* all chunks, in order */
  size_t chunk_bytes;
  size_t used;
};

ag_arena *ag_arena_create(size_t chunk_bytes) {
  ag_arena *a = calloc(1, sizeof *a);
  if (!a) {
    ag_error_set(AG_ERR_NOMEM, "arena: out of memory");
    return NULL;
  }
  a->chunk_bytes = chunk_bytes ? chunk_bytes : (size_t)1 << 20;
  return a;
}

void ag_arena_destroy(ag_arena *a) {
  if (!a) return;
  chunk *c = a->first;
  while (c) {
    chunk *next = c->next;
    free(c->mem);
    free(c);
    c = next;
  }
  free(a);
}

static chunk *chunk_new(size_t size) {
  chunk *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  /* 64-byte alignment for SIMD and cache lines. */
  size = (size + 63) & ~(size_t)63;
  c->mem = aligned_alloc(64, size);
  if (!c->mem) {
    free(c);
    return NULL;
  }
  c->size = size;
  return c;
}

void *ag_arena_alloc(ag_arena *a, size_t bytes, size_t align) {
  if (align < 16) align = 16;
  if (bytes == 0) bytes = 1;
  for (chunk *c = a->head; c; c = c->next) {
    size_t start = (c->used + align - 1) & ~(align - 1);
    if (start + bytes <= c->size) {
      c->used = start + bytes;
      a->head = c;
      a->used += bytes;
      return c->mem + start;
    }
  }
  size_t size = bytes + align > a->chunk_bytes ? bytes + align : a->chunk_bytes;
  chunk *c = chunk_new(size);
  if (!c) {
    ag_error_set(AG_ERR_NOMEM, "arena: cannot allocate %zu bytes", size);
    return NULL;
  }
  /* Append at the end of the list so reset walks chunks in order. */
  if (!a->first) {
    a->first = c;
  } else {
    chunk *last = a->first;
    while (last->next) last = last->next;
    last->next = c;
  }
  a->head = c;
  size_t start = 0;
  c->used = bytes;
  a->used += bytes;
  return c->mem + start;
}

void *ag_arena_calloc(ag_arena *a, size_t bytes, size_t align) {
  void *p = ag_arena_alloc(a, bytes, align);
  if (p) memset(p, 0, bytes);
  return p;
}

void ag_arena_reset(ag_arena *a) {
  for (chunk *c = a->first; c; c = c->next) c->used = 0;
  a->head = a->first;
  a->used = 0;
}

size_t ag_arena_used(const ag_arena *a) { return a->used; }

size_t ag_arena_capacity(const ag_arena *a) {
  size_t total = 0;
  for (const chunk *c = a->first; c; c = c->next) total += c->size;
  return total;
}
