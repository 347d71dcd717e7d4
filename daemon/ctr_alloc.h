/* ctr_alloc.h: the daemon's one out-of-memory policy, as chrony's: an
 * allocation that fails ends the process with a message. Every limit a
 * client can push against (frames, buffered bytes, sessions, threads,
 * ids) is bounded well below the machine's memory, so a failure here
 * means the machine is out of memory, where carrying on with half-done
 * work would only trade a clear exit for a corrupt trace; traces on disk
 * stay readable, and the next start recovers those left open. (The shims
 * live inside someone else's program and have the opposite policy: they
 * stop recording and the program goes on; see libctrec.) */
#ifndef CTR_ALLOC_H
#define CTR_ALLOC_H

#include <stddef.h>

#if defined(__GNUC__)
#define CTR_ALLOC_ATTR __attribute__((malloc, returns_nonnull))
#else
#define CTR_ALLOC_ATTR
#endif

/* Says so on stderr (bytes: what was asked, 0 when unknown) and aborts. */
_Noreturn void ctr_oom(size_t bytes);
void *ctr_xmalloc(size_t n) CTR_ALLOC_ATTR;
void *ctr_xcalloc(size_t count, size_t size) CTR_ALLOC_ATTR;
/* Like realloc, but never NULL; p is NULL or from these functions. */
void *ctr_xrealloc(void *p, size_t n);
char *ctr_xstrdup(const char *s) CTR_ALLOC_ATTR;
/* n bytes of s (which may hold NULs or lack one) and a NUL. */
char *ctr_xstrndup(const char *s, size_t n) CTR_ALLOC_ATTR;

#endif
