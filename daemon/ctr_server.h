/* ctr_server.h: the daemon's state shared by its connections: the loop,
 * the config, the live connections, the flush timer and shutdown.
 *
 * The configuration in force is an immutable snapshot. A reload builds a
 * new one exactly as a start does (defaults, file, the command line's
 * overrides) and swaps it in; sessions hold a reference to theirs. */
#ifndef CTR_SERVER_H
#define CTR_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "ctr_buf.h"
#include "ctr_config.h"
#include "ctr_fifo.h"
#include "ctr_gc.h"
#include "ctr_listener.h"
#include "ctr_proto.h"

typedef struct ctr_conn_s ctr_conn_t;

typedef struct ctr_server_s {
  uv_loop_t *loop;
  const ctr_config_t *cfg; /* the snapshot in force; new sessions take it */
  ctr_listener_t listener;
  ctr_fifo_t fifo; /* listen.fifo_dir */
  uv_timer_t flush_timer;
  uv_timer_t grace_timer;
  uv_timer_t sweep_timer; /* handshake and idle time-outs */
  ctr_gc_t gc;            /* output.max_age, output.max_total_size */
  uv_signal_t sig_term, sig_int, sig_hup;
  const char *config_path; /* NULL: built-in defaults, nothing to reload */
  const ctr_config_override_t *sets; /* the command line's, for reloads */
  size_t nsets;
  ctr_conn_t *conns; /* doubly linked, by ctr_conn.c (ctr_conn_next) */
  uint32_t nconns, max_conns; /* max_conns: what the fd limit leaves */
  bool refusing;              /* said once that new clients are refused */
  /* Clients that left before their HELLO was answered (they gave up on
   * a busy daemon, or died), and connections refused or closed before a
   * HELLO: programs that may have run unrecorded (STATUS_REPLY). */
  uint64_t gave_up, refused;
  size_t buffered;            /* bytes of partial frames, all connections */
  uint32_t nsessions;
  uint64_t next_session;
  bool stopping;
  int report_fd;     /* -1, or where ended sessions are summarised */
  /* Large enough for a client's 64 KiB batch and then some, so that most
   * frames arrive whole and are used in place. */
  char read_buf[256 * 1024];
  /* The objects of the message being applied. Messages are applied one at
   * a time and nothing keeps them, so one array serves every connection. */
  msgpack_object nodes[2048];
  ctr_flat_t flat; /* room for ctr_proto_read_flat */
} ctr_server_t;

/* Takes its own reference to cfg, which was built from config_path and
 * sets; both must outlive the server. */
int ctr_server_start(ctr_server_t *srv, uv_loop_t *loop,
                     const ctr_config_t *cfg, const char *config_path,
                     const ctr_config_override_t *sets, size_t nsets,
                     int report_fd, char *err, size_t errlen);
/* Rebuilds the configuration from the file and the overrides (SIGHUP,
 * ctrecctl reload) and applies it as config/ctrec.yaml says per option.
 * A new value of an option that needs a restart, or an unusable
 * output.dir, refuses the reload: the old configuration stays in force
 * and err says why ("listen.path: needs a restart"). */
int ctr_server_reload(ctr_server_t *srv, char *err, size_t errlen);
/* Stops accepting, lets clients finish for a grace period, then ends every
 * session and closes every handle. */
void ctr_server_stop(ctr_server_t *srv);
/* Drops the configuration once the loop has ended. */
void ctr_server_free(ctr_server_t *srv);

/* Called by connections: one was closed (and unlinked). */
void ctr_server_conn_closed(ctr_server_t *srv);
void ctr_server_session_ended(ctr_server_t *srv, const char *dir,
                              uint64_t steps, uint64_t calls, uint64_t events,
                              const char *state);

#endif
