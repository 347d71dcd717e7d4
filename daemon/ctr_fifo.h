/* ctr_fifo.h: the named-pipe listener (listen.fifo_dir): a folder where
 * clients that cannot use sockets register pairs of FIFOs, each of which
 * then serves as one connection. proto/PROTOCOL.md section 1.1 is the
 * design: registration, how a client is identified and trusted, end of
 * stream and stale FIFOs. */
#ifndef CTR_FIFO_H
#define CTR_FIFO_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct ctr_server_s;

/* Age of a FIFO no registration named that makes it stale: far past any
 * handshake, so that a client on a busy machine is never cut off. */
#define CTR_FIFO_STALE_MS 60000

/* Longest registration record, newline included (one atomic write). */
#define CTR_FIFO_RECORD_MAX 128

typedef struct ctr_fifo_s {
  struct ctr_server_s *srv;
  uv_pipe_t reg;   /* ctrecd.reg, held open for reading and writing */
  int dirfd;       /* the folder, -1 when not listening */
  char dir[PATH_MAX];
  char rec[CTR_FIFO_RECORD_MAX]; /* a record not yet complete */
  size_t len;
  bool skipping;   /* inside a record too long: dropped to its newline */
  uint64_t swept;  /* loop ms of the last stale-FIFO sweep */
  uint64_t said;   /* loop ms of the last dropped registration logged */
  uint64_t unsaid; /* dropped registrations not logged since */
} ctr_fifo_t;

/* Creates (or checks) dir and its registration FIFO and starts reading
 * registrations; mode is listen.mode, which says who may register. */
int ctr_fifo_open(ctr_fifo_t *f, struct ctr_server_s *srv, const char *dir,
                  unsigned mode, char *err, size_t errlen);

/* Removes FIFOs last written max_age_ms ago or earlier, which no
 * registration named (their client died first); at most once a second.
 * now: loop ms. */
void ctr_fifo_sweep(ctr_fifo_t *f, uint64_t now, uint64_t max_age_ms);

/* Stops reading registrations and removes the registration FIFO.
 * Idempotent; a listener never opened is closed too. */
void ctr_fifo_close(ctr_fifo_t *f);

#endif
