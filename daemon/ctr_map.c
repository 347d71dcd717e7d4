/* ctr_map.c: FNV-1a hashing with linear probing; the load stays under 1/2. */
#include "ctr_map.h"

#include <stdlib.h>
#include <string.h>

#include "ctr_buf.h"

static uint64_t hash_bytes(const void *key, size_t len) {
  const unsigned char *p = key;
  uint64_t h = 1469598103934665603ull;

  while (len--)
    h = (h ^ *p++) * 1099511628211ull;
  return h;
}

static ctr_map_entry_t *find(const ctr_map_t *m, const void *key, size_t len,
                             uint64_t h) {
  size_t i = h & (m->cap - 1);

  for (;; i = (i + 1) & (m->cap - 1)) {
    ctr_map_entry_t *e = &m->slots[i];
    if (e->key == NULL ||
        (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0))
      return e;
  }
}

int64_t ctr_map_get(const ctr_map_t *m, const void *key, size_t len) {
  ctr_map_entry_t *e;

  if (m->cap == 0)
    return -1;
  e = find(m, key, len, hash_bytes(key, len));
  return e->key ? e->value : -1;
}

static void grow(ctr_map_t *m) {
  ctr_map_t n = {0};
  size_t i;

  n.cap = m->cap ? m->cap * 2 : 16;
  n.slots = ctr_xcalloc(n.cap, sizeof(*n.slots));
  for (i = 0; i < m->cap; i++)
    if (m->slots[i].key)
      *find(&n, m->slots[i].key, m->slots[i].len, m->slots[i].hash) =
          m->slots[i];
  n.count = m->count;
  free(m->slots);
  *m = n;
}

void ctr_map_put(ctr_map_t *m, const void *key, size_t len, int64_t value) {
  uint64_t h = hash_bytes(key, len);
  ctr_map_entry_t *e;

  if ((m->count + 1) * 2 > m->cap)
    grow(m);
  e = find(m, key, len, h);
  if (e->key == NULL) {
    e->key = ctr_xmalloc(len ? len : 1);
    memcpy(e->key, key, len);
    e->len = len;
    e->hash = h;
    m->count++;
  }
  e->value = value;
}

void ctr_map_free(ctr_map_t *m) {
  size_t i;

  for (i = 0; i < m->cap; i++)
    free(m->slots[i].key);
  free(m->slots);
  m->slots = NULL;
  m->cap = m->count = 0;
}
