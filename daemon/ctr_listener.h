/* ctr_listener.h: the daemon's listening Unix socket.
 *
 * Binds the configured path inside a private directory (created with a
 * restrictive mode when missing, refused when others could replace the
 * socket), removes a stale socket left by a dead daemon but never steals one
 * a live daemon listens on, or takes the socket systemd passed in
 * (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES, as sd_listen_fds reads them).
 * Only a socket the listener bound itself is removed when it closes: one
 * from systemd belongs to ctrecd.socket and serves the next activation. */
#ifndef CTR_LISTENER_H
#define CTR_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/un.h>
#include <uv.h>

typedef struct ctr_listener_s {
  uv_pipe_t pipe;
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* or systemd's */
  bool bound;      /* bound here: close removes path (when still ours) */
  dev_t dev;       /* of the socket file bound here */
  ino_t ino;
  bool open;
} ctr_listener_t;

/* Starts listening and calls cb for each connection; pipe.data is left to
 * the caller. On error err says why; ctr_listener_close still closes. */
int ctr_listener_open(ctr_listener_t *l, uv_loop_t *loop, const char *path,
                      unsigned mode, uv_connection_cb cb, char *err,
                      size_t errlen);

/* Stops listening and removes the socket file if this listener bound it.
 * Idempotent. */
void ctr_listener_close(ctr_listener_t *l);

#endif
