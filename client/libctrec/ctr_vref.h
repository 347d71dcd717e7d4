/* ctr_vref.h: values sent once, referred to afterwards (PROTOCOL.md 9.1).
 *
 * Real programs show the same large values at step after step: `self`, a
 * configuration, a parser's tables. A shim encodes each value as before,
 * into a packer over a msgpack_sbuffer, and brackets every container,
 * object and long string with ctr_vref_open and ctr_vref_close. close
 * compares the bytes just written with the values defined before: when the
 * daemon still keeps the same bytes it replaces them with a REF (a few
 * bytes); otherwise it wraps them in a DEF, which the daemon keeps. Inner
 * values close first, so an outer value that changed travels as a small
 * array of REFs to its unchanged parts.
 *
 * Everything here runs with the batch lock held (between ctr_client_begin
 * and ctr_client_end), and everything packed through it must be sent: a
 * DEF that never reaches the daemon would leave later REFs dangling. When
 * the daemon keeps no definitions (WELCOME refs 0) the calls change
 * nothing, so shims need not ask. */
#ifndef CTR_VREF_H
#define CTR_VREF_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

/* Values shorter than this are sent in full: a REF would save little.
 * Longer ones than CTR_VREF_MAX are sent in full too, so that what the
 * shim and the daemon keep stays bounded. */
#define CTR_VREF_MIN 12
#define CTR_VREF_MAX (64u * 1024)

/* Marks the start of a value about to be packed into sb. */
static inline size_t ctr_vref_open(const msgpack_sbuffer *sb) {
  return sb->size;
}

/* The value packed into sb since `mark` is complete: replaces it with a REF
 * or wraps it in a DEF. `obj` (may be NULL) and `depth` name what was
 * packed, for ctr_vref_seen: the same object packed again in this message
 * at the same remaining depth gives the same bytes. `nodes` is how many
 * values it holds, itself included, for a shim that counts them against
 * a budget (ctr_vref_seen gives it back). */
void ctr_vref_close(msgpack_sbuffer *sb, size_t mark, const void *obj,
                    uint32_t depth, uint32_t nodes);

/* When `obj` was closed at `depth` in the current message, its definition
 * is still kept and it holds at most `room` values, packs a REF to it into
 * sb, sets *nodes (when not NULL) to the values it holds and returns true:
 * the shim need not walk it again (a message is captured while no program
 * code runs, so an object cannot change within one). */
bool ctr_vref_seen(msgpack_sbuffer *sb, const void *obj, uint32_t depth,
                   uint32_t room, uint32_t *nodes);

/* Starts a new message for ctr_vref_seen: objects may change between two
 * messages. */
void ctr_vref_message(void);

/* For libctrec: a new connection keeping `n` definitions (WELCOME refs);
 * forget: everything sent before may not have reached the daemon (a batch
 * was dropped), so nothing defined so far is referred to again. */
void ctr_vref_reset(uint32_t n);
void ctr_vref_forget(void);

#endif
