/* ctr_alloc.c: allocation that never returns NULL (ctr_alloc.h). */
#include "ctr_alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Noreturn void ctr_oom(size_t bytes) {
  if (bytes)
    fprintf(stderr, "%s: out of memory (allocating %zu bytes); exiting\n",
            program_invocation_short_name, bytes);
  else
    fprintf(stderr, "%s: out of memory; exiting\n",
            program_invocation_short_name);
  abort();
}

void *ctr_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);

  if (p == NULL)
    ctr_oom(n);
  return p;
}

void *ctr_xcalloc(size_t count, size_t size) {
  void *p = calloc(count ? count : 1, size ? size : 1);

  if (p == NULL)
    ctr_oom(count * size);
  return p;
}

void *ctr_xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (p == NULL)
    ctr_oom(n);
  return p;
}

char *ctr_xstrdup(const char *s) {
  return ctr_xstrndup(s, strlen(s));
}

char *ctr_xstrndup(const char *s, size_t n) {
  char *d;

  d = ctr_xmalloc(n + 1);
  if (n)
    memcpy(d, s, n);
  d[n] = '\0';
  return d;
}
