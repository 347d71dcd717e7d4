/* ctr_listener.h: the daemon's listening Unix socket.
 *
 * Binds the configured path inside a private directory (created with a
 * restrictive mode when missing, refused when others could replace the
 * socket), removes a stale socket left by a dead daemon but never steals one
 * a live daemon listens on, or takes the socket systemd passed in. */
#ifndef CTR_LISTENER_H
#define CTR_LISTENER_H

#include <stddef.h>
#include <uv.h>

int ctr_listener_open(uv_loop_t *loop, uv_pipe_t *pipe, const char *path,
                      unsigned mode, uv_connection_cb cb, char *err,
                      size_t errlen);

#endif
