/* ctr_fifo_dial.h: a client's side of the named-pipe transport
 * (PROTOCOL.md 1.1): makes its pair of FIFOs in the daemon's folder and
 * registers it. Shared by libctrec and ctrecctl. */
#ifndef CTR_FIFO_DIAL_H
#define CTR_FIFO_DIAL_H

#include <stdbool.h>
#include <stddef.h>

/* The prefix of CT_RECORDER_SOCKET (and ctrecctl -s) naming a FIFO folder. */
#define CTR_FIFO_PREFIX "fifo:"

/* The folder spec names, or NULL when spec is a socket path. */
const char *ctr_fifo_spec(const char *spec);

/* Makes and registers a FIFO pair in dir. *rfd reads what the daemon sends,
 * *wfd writes to it; both are non-blocking and close-on-exec. Returns 0,
 * or -errno with why set (ENXIO: no daemon reads the folder). */
int ctr_fifo_dial(const char *dir, int *rfd, int *wfd, char *why,
                  size_t whylen);

/* Once the daemon has answered (it holds both FIFOs): reopens rfd
 * read-only in place, so that a daemon that goes away is an end of stream,
 * as on a socket. Returns 0 or -errno. */
int ctr_fifo_settle(int rfd);

#endif
