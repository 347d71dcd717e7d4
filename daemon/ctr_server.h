/* ctr_server.h: the daemon's state shared by its connections: the loop,
 * the config, the live connections, the flush timer and shutdown. */
#ifndef CTR_SERVER_H
#define CTR_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "ctr_buf.h"
#include "ctr_config.h"
#include "ctr_proto.h"

typedef struct ctr_conn_s ctr_conn_t;

typedef struct ctr_server_s {
  uv_loop_t *loop;
  ctr_config_t *cfg;
  ctr_limits_t limits;
  uv_pipe_t listener;
  bool listening;
  uv_timer_t flush_timer;
  uv_timer_t grace_timer;
  uv_signal_t sig_term, sig_int, sig_hup;
  const char *config_path; /* NULL: built-in defaults, nothing to reload */
  ctr_conn_t *conns; /* doubly linked */
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

int ctr_server_start(ctr_server_t *srv, uv_loop_t *loop, ctr_config_t *cfg,
                     const char *config_path, int report_fd, char *err,
                     size_t errlen);
/* Re-reads the config file (SIGHUP, ctrecctl reload). On error the old
 * configuration stays in force and err says why. */
int ctr_server_reload(ctr_server_t *srv, char *err, size_t errlen);
/* Stops accepting, lets clients finish for a grace period, then ends every
 * session and closes every handle. */
void ctr_server_stop(ctr_server_t *srv);

/* Called by connections. */
void ctr_server_conn_closed(ctr_server_t *srv, ctr_conn_t *c);
void ctr_server_session_ended(ctr_server_t *srv, const char *dir,
                              uint64_t steps, uint64_t calls, uint64_t events,
                              const char *state);

#endif
