/* ctr_link.h: ctrecctl's connection to a ctrecd: its Unix socket, or a
 * pair of FIFOs in its folder for "fifo:DIR" (PROTOCOL.md 1.1). A link is
 * named by the descriptor it reads from, so that the verbs poll and keep
 * one int whichever the transport; the FIFO it writes to is the link's to
 * know. */
#ifndef CTR_LINK_H
#define CTR_LINK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Connects to spec (a socket path or fifo:DIR) within timeout_ms. Returns
 * the descriptor to read and poll, or -1 with errno set (ENXIO for a FIFO
 * folder no daemon reads). */
int ctr_link_open(const char *spec, int timeout_ms);

/* Writes all n bytes (waiting on a full pipe), never raising SIGPIPE.
 * Returns 0, or -1 with errno set. */
int ctr_link_write(int fd, const void *p, size_t n);

/* Reads what is there (at least a byte once poll said POLLIN): > 0 bytes,
 * 0 at end of stream, -1 with errno (EAGAIN: nothing yet). */
ssize_t ctr_link_read(int fd, void *p, size_t n);

void ctr_link_close(int fd);

#endif
