/* ctr_vdef.h: the value definitions a session keeps (PROTOCOL.md 9.1).
 *
 * A DEF's value is copied into an immutable node. A REF inside it points
 * at the node it names and holds a reference to it, so a node stays
 * renderable as long as a kept definition uses it, even after a later DEF
 * took its slot. Ingesting a message's values rewrites each DEF and REF
 * object in place into an internal EXT object that points at its node
 * (ctr_vdef_of): rendering needs no lookup, and a REF renders what it
 * stood for when it arrived, whatever later DEFs of the same message did.
 * That is why a wire EXT is refused anywhere in a value.
 *
 * Each node also caches its rendered JSON for one trace: the caller names
 * the trace (and everything else the text depends on) by a key. */
#ifndef CTR_VDEF_H
#define CTR_VDEF_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ctr_vdef_s ctr_vdef_t;
typedef struct ctr_vdefs_s ctr_vdefs_t;

/* A table of `slots` definitions (0: DEF and REF are refused) whose values,
 * REFs expanded, stay within max_depth nesting (in the message, whose own
 * array is level 1) and max_elements values per message. */
ctr_vdefs_t *ctr_vdefs_new(uint32_t slots, uint32_t max_depth,
                           uint32_t max_elements);
void ctr_vdefs_free(ctr_vdefs_t *t);

/* Starts a message: the nodes the previous message's objects point at
 * are released, and its count of values starts again. */
void ctr_vdefs_message(ctr_vdefs_t *t);

/* Ingests value v, at nesting level `level` of its message: checks the
 * DEFs and REFs in it, keeps each DEF as a definition when its value ends
 * and rewrites them in place. Returns 0, or CTR_EPROTO, CTR_ERANGE or
 * CTR_ELIMIT with *why set. */
int ctr_vdefs_ingest(ctr_vdefs_t *t, msgpack_object *v, uint32_t level,
                     const char **why);

/* The definition an ingested object stands for, or NULL for any other
 * object. */
static inline ctr_vdef_t *ctr_vdef_of(const msgpack_object *o) {
  return o->type == MSGPACK_OBJECT_EXT ? (ctr_vdef_t *)o->via.ext.ptr : NULL;
}

/* The value of definition d; REFs in it are ingested objects too. */
const msgpack_object *ctr_vdef_value(const ctr_vdef_t *d);

/* d's JSON rendered under key (never 0) and its trace type id, or NULL. */
const char *ctr_vdef_text(const ctr_vdef_t *d, uint64_t key, size_t *len,
                          int64_t *tid);
/* Keeps text as d's JSON under key, replacing what it kept; text longer
 * than the table's cache allows is not kept. */
void ctr_vdef_keep_text(ctr_vdef_t *d, uint64_t key, const char *text,
                        size_t len, int64_t tid);
/* Drops every kept text (a new trace: its ids differ). */
void ctr_vdefs_forget_texts(ctr_vdefs_t *t);

#endif
