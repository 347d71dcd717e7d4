/* ctr_retain.c: the choice of traces to delete, oldest first. */
#include "ctr_retain.h"

#include <stdlib.h>
#include <string.h>

static int oldest_first(const void *a, const void *b) {
  const ctr_tracedir_t *x = a, *y = b;

  if (x->time != y->time)
    return x->time < y->time ? -1 : 1;
  return strcmp(x->path ? x->path : "", y->path ? y->path : "");
}

size_t ctr_retain_select(ctr_tracedir_t *v, size_t n,
                         const ctr_retain_limits_t *lim, int64_t now) {
  uint64_t total = 0;
  size_t i, marked = 0;

  if (n > 1)
    qsort(v, n, sizeof(*v), oldest_first);
  for (i = 0; i < n; i++) {
    v[i].remove = false;
    total += v[i].size;
  }
  for (i = 0; i < n; i++) {
    bool old = lim->max_age > 0 && now - v[i].time > lim->max_age;
    bool over = lim->max_size > 0 && total > lim->max_size;
    if (v[i].live || !(old || over))
      continue;
    v[i].remove = true;
    total -= v[i].size;
    marked++;
  }
  return marked;
}
