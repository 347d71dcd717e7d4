/* ctr_py_names.c: a small open-addressing hash map keyed by byte strings.
 *
 * The shim interns paths, type names and variable names per connection. A
 * C table keeps Python objects (and their __hash__/__eq__) out of it, so
 * interning never runs program code and never allocates Python objects. */
#include <stdlib.h>
#include <string.h>

#include "ctr_py.h"

uint64_t ctr__py_hash(const char *key, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)key[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

static ctr_py_entry_t *ctr_py_map_slot(ctr_py_map_t *m, const char *key,
                                       size_t n, uint64_t h) {
  size_t mask = m->cap - 1;
  for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
    ctr_py_entry_t *e = &m->slots[i];
    if (e->key == NULL ||
        (e->hash == h && e->len == n && memcmp(e->key, key, n) == 0))
      return e;
  }
}

ctr_py_entry_t *ctr__py_map_find(ctr_py_map_t *m, const char *key, size_t n) {
  if (m->cap == 0)
    return NULL;
  ctr_py_entry_t *e = ctr_py_map_slot(m, key, n, ctr__py_hash(key, n));
  return e->key ? e : NULL;
}

static int ctr_py_map_grow(ctr_py_map_t *m) {
  size_t cap = m->cap ? m->cap * 2 : 64;
  ctr_py_entry_t *slots = calloc(cap, sizeof *slots);
  if (slots == NULL)
    return CTR_ENOMEM;
  ctr_py_map_t bigger = {slots, cap, m->count};
  for (size_t i = 0; i < m->cap; i++) {
    ctr_py_entry_t *e = &m->slots[i];
    if (e->key)
      *ctr_py_map_slot(&bigger, e->key, e->len, e->hash) = *e;
  }
  free(m->slots);
  *m = bigger;
  return 0;
}

int ctr__py_map_put(ctr_py_map_t *m, const char *key, size_t n,
                    uintptr_t value) {
  /* At most half full, so probes stay short and a free slot always exists. */
  if ((m->count + 1) * 2 > m->cap && ctr_py_map_grow(m) != 0)
    return CTR_ENOMEM;
  char *copy = malloc(n ? n : 1);
  if (copy == NULL)
    return CTR_ENOMEM;
  memcpy(copy, key, n);
  uint64_t h = ctr__py_hash(key, n);
  ctr_py_entry_t *e = ctr_py_map_slot(m, key, n, h);
  e->key = copy;
  e->len = n;
  e->hash = h;
  e->value = value;
  m->count++;
  return 0;
}

void ctr__py_map_clear(ctr_py_map_t *m) {
  for (size_t i = 0; i < m->cap; i++)
    free(m->slots[i].key);
  if (m->cap)
    memset(m->slots, 0, m->cap * sizeof *m->slots);
  m->count = 0;
}
