/* Bump allocator in chunks. Reset keeps the chunks, so steady-state steps
 * reuse memory instead of calling malloc. */
#include "agora/base.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct chunk {
  struct chunk *next;
  size_t size, used;
  unsigned char *mem;
} chunk;

struct ag_arena {
  chunk *head;  /* chunk being filled */
  chunk *first; /* all chunks, in order */
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
  c->mem = ag_alloc_large(size);
  if (!c->mem) {
    free(c);
    return NULL;
  }
  c->size = size;
  return c;
}

/* Offset of the first byte at or after c->used whose address is a multiple
 * of align. Aligning the address, not the offset, matters for align > 64:
 * chunks themselves are only 64-byte aligned. */
static size_t aligned_start(const chunk *c, size_t align) {
  uintptr_t at = (uintptr_t)(c->mem + c->used);
  uintptr_t aligned = (at + align - 1) & ~(uintptr_t)(align - 1);
  return c->used + (size_t)(aligned - at);
}

void *ag_arena_alloc(ag_arena *a, size_t bytes, size_t align) {
  if (align < 16) align = 16;
  if (align & (align - 1)) {
    ag_error_set(AG_ERR_INVALID, "arena: alignment %zu is not a power of two", align);
    return NULL;
  }
  if (bytes == 0) bytes = 1;
  if (bytes > SIZE_MAX - 2 * align - 64) {
    ag_error_set(AG_ERR_NOMEM, "arena: cannot allocate %zu bytes", bytes);
    return NULL;
  }
  for (chunk *c = a->head; c; c = c->next) {
    size_t start = aligned_start(c, align);
    if (start <= c->size && bytes <= c->size - start) {
      c->used = start + bytes;
      a->head = c;
      a->used += bytes;
      return c->mem + start;
    }
  }
  /* Room for the worst-case padding when align exceeds the chunk's own 64. */
  size_t need = align > 64 ? bytes + align : bytes;
  size_t size = need > a->chunk_bytes ? need : a->chunk_bytes;
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
  size_t start = aligned_start(c, align);
  c->used = start + bytes;
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
