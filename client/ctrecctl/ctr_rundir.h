/* ctr_rundir.h: the folder where `ctrecctl record`'s private daemons
 * listen, so that status, follow, start and stop find them.
 *
 * One folder per user, $XDG_RUNTIME_DIR/ctrec, else /tmp/ctrec-UID. It is
 * used only while it is a real folder of mode 0700 owned by the user, so
 * that no one else can put a socket in it. The private ctrecd of the
 * `ctrecctl record` with pid P listens there on record-P.sock. */
#ifndef CTR_RUNDIR_H
#define CTR_RUNDIR_H

#include <stddef.h>
#include <sys/types.h>

/* Writes the folder's path to dir, creating the folder when missing.
 * Returns 0, or -1 after saying on stderr why it cannot be used. */
int ctr_rundir_make(char *dir, size_t cap);

/* Writes the socket path of the private ctrecd of record process pid. */
int ctr_rundir_socket(char *out, size_t cap, const char *dir, pid_t pid);

/* The sockets of the private daemons whose record process is alive, in
 * pid order, as a heap array of heap strings. Sockets whose record process
 * is gone (killed before its daemon removed them) are deleted. */
size_t ctr_rundir_sockets(char ***out);
void ctr_rundir_free(char **v, size_t n);

#endif
