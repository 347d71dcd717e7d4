/* ctr_follow.h: `ctrecctl follow`, a live feed of one session's records.
 *
 * The daemon reports where a session writes (STATUS, key `trace`); the feed
 * tails that folder's trace (trace.json or trace.ct), so following never slows the recording:
 * ctrecd does not know that anyone reads. When the session opens a new
 * recording interval the feed moves on to that interval's folder. */
#ifndef CTR_FOLLOW_H
#define CTR_FOLLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One session as STATUS describes it; the strings are owned (heap). */
typedef struct ctr_follow_session_s {
  uint64_t id;
  int64_t pid;
  uint64_t intervals;
  char *program;
  char *state;
  char *trace;
} ctr_follow_session_t;

/* Asks the daemon for the sessions the caller may see. Returns 0 with a heap
 * array for ctr_follow_sessions_free, or -1 after printing why. */
typedef int (*ctr_follow_status_cb)(void *arg, ctr_follow_session_t **list,
                                    size_t *n);

typedef struct ctr_follow_opts_s {
  uint64_t session;           /* 0: choose by pid, or the only session */
  int64_t pid;                /* 0: any */
  bool json;                  /* records as trace.json has them */
  unsigned poll_ms;           /* how often trace.json is checked */
  ctr_follow_status_cb status;
  void *arg;
} ctr_follow_opts_t;

void ctr_follow_sessions_free(ctr_follow_session_t *list, size_t n);

/* Follows the trace folder dir (trace.json or trace.ct) until its
 * trace_metadata.json says it is finished (at once without one), or
 * SIGINT or SIGTERM (128 + the signal). Returns the exit status for
 * ctrecctl. */
int ctr_follow_folder(const ctr_follow_opts_t *o, const char *dir);

/* Follows until the session ends and everything is printed, or SIGINT or
 * SIGTERM (128 + the signal). In JSON, one record stands between two
 * intervals: {"IntervalBoundary": {"ended": N, "state", "end_reason",
 * "next": N + 1, "trace": its folder}}. Returns the exit status for
 * ctrecctl. */
int ctr_follow_run(const ctr_follow_opts_t *o);

#endif
