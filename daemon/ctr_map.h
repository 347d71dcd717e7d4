/* ctr_map.h: a small open-addressing hash map from byte strings to ints. */
#ifndef CTR_MAP_H
#define CTR_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct ctr_map_entry_s {
  char *key;
  size_t len;
  uint64_t hash;
  int64_t value;
} ctr_map_entry_t;

typedef struct ctr_map_s {
  ctr_map_entry_t *slots;
  size_t cap; /* power of two */
  size_t count;
} ctr_map_t;

/* Returns the value stored for key, or -1. */
int64_t ctr_map_get(const ctr_map_t *m, const void *key, size_t len);
void ctr_map_put(ctr_map_t *m, const void *key, size_t len, int64_t value);
void ctr_map_free(ctr_map_t *m);

#endif
