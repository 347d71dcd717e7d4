/* ctr_session.h: one recording client (one traced process).
 *
 * A session owns the client's interning tables, its per-thread call depths
 * and its trace folder, which opens on the first execution message. Messages
 * arrive already decoded; values are checked while they are rendered. */
#ifndef CTR_SESSION_H
#define CTR_SESSION_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ctr_config.h"
#include "ctr_proto.h"
#include "ctr_writer.h"

typedef struct ctr_session_s ctr_session_t;

typedef struct ctr_session_stats_s {
  uint64_t received; /* messages */
  uint64_t written;  /* trace records */
  uint64_t steps, calls, returns, events;
  uint64_t filtered; /* steps, calls and returns left out by the filter */
  uint64_t dropped;  /* messages that could not be placed (unbalanced) */
  uint64_t lost;     /* events the shim reported as dropped */
  ctr_lost_cause_t lost_causes[CTR_LOST_CAUSES];
  uint32_t nlost_causes;
  uint32_t intervals;
} ctr_session_stats_t;

/* What a session asks of its connection. */
typedef struct ctr_session_hooks_s {
  void *arg;
  /* An interval's trace was completed, with that interval's counters. */
  void (*trace_closed)(void *arg, const char *dir,
                       const ctr_session_stats_t *st, const char *state);
  /* Send CTR_MSG_PAUSE, CTR_MSG_RESUME, or CTR_MSG_FLUSH or
   * CTR_MSG_RECORDED (with token) to the client: a paused client sends
   * nothing (its hooks are off), answers RESUME with STACK and FLUSH with
   * FLUSHED. */
  void (*send)(void *arg, int tag, uint64_t token);
} ctr_session_hooks_t;

/* Who the client is by the kernel (the socket's peer credentials), not by
 * its own word: pid is 0 when the peer's pid is not visible in the
 * daemon's pid namespace, -1 when unknown. */
typedef struct ctr_peer_s {
  int64_t pid;
  uid_t uid;
  gid_t gid;
} ctr_peer_t;

/* Takes a reference to cfg, a snapshot (ctr_config_snapshot). The pid
 * HELLO claims is kept only as a note where it differs from peer's; its
 * ppid is the shim's (which knows the process a daemonized one was forked
 * from). */
int ctr_session_new(ctr_session_t **out, const ctr_config_t *cfg,
                    const ctr_hello_t *hello, uint64_t id,
                    const ctr_peer_t *peer, const ctr_session_hooks_t *hooks);

/* The WELCOME for this session: limits, values mode and code rules (the
 * rules stay valid until the next reload). FILTER carries the last two. */
void ctr_session_welcome(ctr_session_t *s, ctr_welcome_t *w);

/* Applies one message. Its values are rewritten in place (their DEFs and
 * REFs resolved, ctr_vdef.h): the message is the session's to consume.
 * On error returns a negative code with *why set; the caller then ends
 * the session as aborted and closes the connection. */
int ctr_session_handle(ctr_session_t *s, const ctr_msg_t *m, const char **why);

/* Writes pending records and metadata when anything changed. */
int ctr_session_flush(ctr_session_t *s);

/* Re-checks time windows and the interval duration (the daemon calls it
 * every flush period, so intervals end on time while a program idles). */
void ctr_session_tick(ctr_session_t *s);

/* ctrecctl start (on) or stop: opens a new interval at the next event, or
 * ends the current one. Returns 1 when that changed anything. */
int ctr_session_control(ctr_session_t *s, bool on);

/* Moves the session to a reloaded configuration (it takes a reference):
 * the filter, record.* and output.dir apply from the next event on, with a
 * mark in the trace; what the shim learnt in WELCOME (limits.value_*,
 * flush_ms), output.float_format, output.format and limits.* stay as they
 * were at HELLO. */
void ctr_session_reload(ctr_session_t *s, const ctr_config_t *cfg);

/* Bytes rendered but not yet written. */
size_t ctr_session_pending(const ctr_session_t *s);

/* Completes the trace: state is "complete" after BYE, otherwise
 * "aborted: <reason>". Safe to call more than once. */
void ctr_session_end(ctr_session_t *s, const char *abort_reason);

uint64_t ctr_session_id(const ctr_session_t *s);
/* Whether the program said BYE (it ran to its end). */
bool ctr_session_exited(const ctr_session_t *s);
int64_t ctr_session_pid(const ctr_session_t *s);

/* One STATUS_REPLY map for this session. */
void ctr_session_pack_status(const ctr_session_t *s, msgpack_packer *pk);

void ctr_session_free(ctr_session_t *s);

#endif
