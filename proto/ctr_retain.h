/* ctr_retain.h: which finished traces of an output folder to delete so
 * that it keeps within its limits, for the daemon (output.max_age,
 * output.max_total_size) and `ctrecctl gc` alike.
 *
 * Pure: it looks only at what ctr_tracedir_stat read and at the time it is
 * given, so a unit test can drive it. */
#ifndef CTR_RETAIN_H
#define CTR_RETAIN_H

#include <stddef.h>
#include <stdint.h>

#include "ctr_tracedir.h"

typedef struct ctr_retain_limits_s {
  int64_t max_age;   /* seconds; traces older than this go; 0: no limit */
  uint64_t max_size; /* bytes all traces may take together; 0: no limit */
} ctr_retain_limits_t;

/* Sorts v oldest first (by time, then path) and marks with remove the
 * finished traces to delete: every one older than max_age, then the oldest
 * others until all of v, live traces included, fit in max_size. A live
 * trace is never marked. Returns how many were marked. */
size_t ctr_retain_select(ctr_tracedir_t *v, size_t n,
                         const ctr_retain_limits_t *lim, int64_t now);

#endif
