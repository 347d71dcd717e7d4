/* ctr_conn.h: one client connection: framing, limits, decoding, and the
 * role chosen by HELLO (record: a session; control: ctr_control.c; follow:
 * a feed of sessions, ctr_feed.c). The other modules see a connection
 * through these functions only. */
#ifndef CTR_CONN_H
#define CTR_CONN_H

#include <msgpack.h>
#include <stdbool.h>
#include <uv.h>

#include "ctr_server.h"
#include "ctr_session.h"

/* The role HELLO chose. */
enum { CTR_ROLE_NONE, CTR_ROLE_RECORD, CTR_ROLE_CONTROL, CTR_ROLE_FOLLOW };

/* Accepts a pending connection from the listener (fd -1), or serves one
 * accepted already (fd, which it owns from then on). */
int ctr_conn_accept(ctr_server_t *srv, int fd);

/* Serves a registered FIFO pair (ctr_fifo.c): reads rfd, writes wfd (it
 * owns both from then on); cred is who the registration proved it is. */
int ctr_conn_accept_pair(ctr_server_t *srv, int rfd, int wfd,
                         const ctr_peer_t *cred);

/* The server's connections, newest first: ctr_conn_next(NULL) is the
 * first. A loop that may close the connection it is at takes the next one
 * first. */
ctr_conn_t *ctr_conn_next(const ctr_server_t *srv, const ctr_conn_t *c);

/* Ends the connection: the session (if any) ends as aborted with reason
 * unless it said BYE. Idempotent. */
void ctr_conn_close(ctr_conn_t *c, const char *reason);

/* A protocol error: logs it naming the peer, sends ERROR and closes.
 * Returns code. */
int ctr_conn_fail(ctr_conn_t *c, int code, const char *why);

/* A request the daemon turns down, which is no protocol error: the peer
 * gets why as it is, then the connection closes. Returns code. */
int ctr_conn_refuse(ctr_conn_t *c, int code, const char *why);

/* Closes c when it has not sent HELLO within limits.handshake_timeout_ms,
 * is a control connection idle for as long, or has not read 4 MiB sent to
 * it; now is the loop's ms. */
void ctr_conn_sweep(ctr_conn_t *c, uint64_t now);

/* Every flush period: the session's time checks, then its pending records
 * go to disk. */
void ctr_conn_tick(ctr_conn_t *c);

/* Moves the session to a reloaded configuration and sends its client the
 * new code rules. */
void ctr_conn_reload(ctr_conn_t *c, const ctr_config_t *cfg);

/* Sends one frame holding the bytes of sb. A peer that has not read 4 MiB
 * sent before is sent nothing more and is closed by the next sweep: a
 * follower with holes in its feed would be misled. */
void ctr_conn_send(ctr_conn_t *c, const msgpack_sbuffer *sb);

/* Whether viewer's peer may see c's session (STATUS, START, STOP, the
 * follow feed): root sees every session, another user those of its uid. */
bool ctr_conn_sees(const ctr_conn_t *viewer, const ctr_conn_t *c);

int ctr_conn_role(const ctr_conn_t *c);
void ctr_conn_set_role(ctr_conn_t *c, int role);
bool ctr_conn_closing(const ctr_conn_t *c);
/* NULL unless a record connection whose session has not ended. */
ctr_session_t *ctr_conn_session(const ctr_conn_t *c);
/* A record connection's session id, kept after the session ended. */
uint64_t ctr_conn_sid(const ctr_conn_t *c);
/* The socket's peer credentials. */
const ctr_peer_t *ctr_conn_cred(const ctr_conn_t *c);
/* "peer pid 123 uid 1000", "session 4 (pid 123 uid 1000)": for log lines. */
const char *ctr_conn_name(const ctr_conn_t *c);
ctr_server_t *ctr_conn_server(const ctr_conn_t *c);
/* A follower's sessions (ctr_feed.c keeps them). */
struct ctr_watch_s *ctr_conn_watch(ctr_conn_t *c);

#endif
