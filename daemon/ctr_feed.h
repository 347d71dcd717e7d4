/* ctr_feed.h: the follow role, a feed of the sessions that the follower's
 * own process tree starts: each one's beginning, every trace it completes
 * (folder and counters) and its end. `ctrecctl record` through a running
 * ctrecd prints its summary from it. */
#ifndef CTR_FEED_H
#define CTR_FEED_H

#include "ctr_conn.h"

/* A follower's sessions: the ids of those it was told began and not yet
 * that they ended. */
typedef struct ctr_watch_s {
  uint64_t *ids;
  uint32_t n;
} ctr_watch_t;

/* Makes c a follower and acknowledges it with an empty STATUS_REPLY. */
void ctr_feed_subscribe(ctr_conn_t *c);

/* Frees what a follower's watch holds (its connection is gone). */
void ctr_feed_release(ctr_watch_t *w);

/* Called for a record connection: its session began (before WELCOME, while
 * the traced process waits), completed a trace, or ended. */
void ctr_feed_begin(ctr_conn_t *rec);
void ctr_feed_trace(ctr_conn_t *rec, const char *dir,
                    const ctr_session_stats_t *st, const char *state);
void ctr_feed_end(ctr_conn_t *rec);

/* Whether pid descends from ancestor by the kernel's parent links. */
bool ctr_feed_descends(int64_t pid, int64_t ancestor);

#endif
