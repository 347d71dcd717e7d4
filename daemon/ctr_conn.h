/* ctr_conn.h: one client connection: framing, limits, decoding and the
 * role chosen by HELLO (record: a session; control: status queries;
 * follow: a feed of sessions, ctr_feed.c). */
#ifndef CTR_CONN_H
#define CTR_CONN_H

#include <msgpack.h>
#include <stdbool.h>
#include <uv.h>

#include "ctr_server.h"
#include "ctr_session.h"

/* The role HELLO chose. */
enum { CTR_ROLE_NONE, CTR_ROLE_RECORD, CTR_ROLE_CONTROL, CTR_ROLE_FOLLOW };

struct ctr_conn_s {
  uv_pipe_t pipe;
  ctr_server_t *srv;
  ctr_frame_reader_t fr;
  /* From the configuration in force at accept: a reload's new limits.* go
   * to later connections, never cut off a client mid-recording. */
  ctr_limits_t limits;
  msgpack_zone zone;
  int role;
  ctr_session_t *session;
  uint64_t sid;      /* record: the session's id, kept after it ends */
  uint64_t *watched; /* follow: ids of the sessions the feed reports */
  uint32_t nwatched;
  char peer[64]; /* "pid 123 uid 1000" for log lines */
  ctr_peer_t cred; /* the socket's peer credentials */
  uint64_t since;  /* loop ms: accepted, or a control's last request */
  size_t charged;  /* bytes of a partial frame counted in srv->buffered */
  bool cut_off;    /* did not read 4 MiB sent to it: closed at the sweep */
  bool closing;
  size_t queued; /* bytes in write requests not yet completed */
  ctr_conn_t *prev, *next;
};

/* Accepts a pending connection from the listener. */
int ctr_conn_accept(ctr_server_t *srv);

/* Ends the connection: the session (if any) ends as aborted with reason
 * unless it said BYE. Idempotent. */
void ctr_conn_close(ctr_conn_t *c, const char *reason);

/* Closes c when it has not sent HELLO within limits.handshake_timeout_ms,
 * is a control connection idle for as long, or has not read 4 MiB sent to
 * it; now is the loop's ms. */
void ctr_conn_sweep(ctr_conn_t *c, uint64_t now);

/* Whether viewer's peer may see c's session (STATUS, START, STOP, the
 * follow feed): root sees every session, another user those of its uid. */
bool ctr_conn_sees(const ctr_conn_t *viewer, const ctr_conn_t *c);

/* Sends one frame holding the bytes of sb; a peer that has not read 4 MiB
 * sent before is closed instead (by the next ctr_conn_sweep). */
void ctr_conn_send(ctr_conn_t *c, const msgpack_sbuffer *sb);

/* Sends the session's code rules to its client (after a reload). */
void ctr_conn_push_filter(ctr_conn_t *c);

/* Writes pending trace records of this connection's session. */
void ctr_conn_flush(ctr_conn_t *c);

#endif
