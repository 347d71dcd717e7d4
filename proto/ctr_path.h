/* ctr_path.h: source paths as the protocol allows them (PROTOCOL.md 7).
 *
 * One implementation for the shims, which make the paths they declare
 * acceptable, and the daemon, which checks every PATH it is sent. */
#ifndef CTR_PATH_H
#define CTR_PATH_H

#include <stdbool.h>
#include <stddef.h>

/* Rewrites the absolute path p (NUL-terminated, starting with '/') in
 * place without "." and ".." components and repeated or trailing slashes,
 * as the kernel would resolve them lexically ("/.." is "/"); returns its
 * new length. */
size_t ctr_path_normalize(char *p);

/* True when the n bytes at p are a path the protocol accepts: absolute
 * without "." or ".." components, or a pseudo path "<...>" without '/';
 * in both cases without NUL bytes. */
bool ctr_path_ok(const char *p, size_t n);

#endif
