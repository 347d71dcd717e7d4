/* ctr_ctfs_cbor.h: wire values (PROTOCOL.md section 9, kinds 0-10) as the
 * CBOR ValueRecords of a CTFS trace.
 *
 * The bytes are those of the Rust codetracer_trace_types ValueRecord under
 * serde and cbor4ii: a map whose first key is "kind", then the variant's
 * fields in declaration order, every key a text string, integers in their
 * shortest form. Two shapes follow CodeTracer's Nim reader (cbor.nim), which
 * decodes strictly, where it differs: Float "f" is a CBOR float64, and Bool
 * also carries "text" ("true"/"false"), a field serde ignores. A Struct
 * with fields also carries their names, "field_names" after
 * "field_values" (cbor.nim's optional key; types.dat holds type names
 * only). Values are untrusted and checked here. */
#ifndef CTR_CTFS_CBOR_H
#define CTR_CTFS_CBOR_H

#include <msgpack.h>
#include <stdint.h>

#include "ctr_buf.h"

typedef struct ctr_ctfs_value_ops_s {
  void *ctx;
  /* The trace type id of shim type tid, or a negative code. */
  int64_t (*type)(void *ctx, uint32_t tid);
  uint32_t max_depth; /* nesting allowed below the top value */
  /* Encodes an EXT object (the daemon's ingested DEF or REF) at depth, or
   * NULL to refuse EXT as any other kind. */
  int (*ext)(void *ctx, const msgpack_object *o, ctr_buf_t *out,
             uint32_t depth, const char **why);
  /* Appends the name of struct field vid (a shim name id) as a CBOR text,
   * or returns a negative code. NULL: Structs carry no "field_names". */
  int (*field)(void *ctx, uint32_t vid, ctr_buf_t *out);
} ctr_ctfs_value_ops_t;

/* Appends one ValueRecord. Wire DEF and REF are refused: the daemon
 * resolves them (ops->ext). Returns 0 or a negative code with *why set. */
int ctr_ctfs_cbor_value(const ctr_ctfs_value_ops_t *ops,
                        const msgpack_object *o, ctr_buf_t *out,
                        const char **why);
/* The same for a value nested at depth (what ops->ext encodes). */
int ctr_ctfs_cbor_value_at(const ctr_ctfs_value_ops_t *ops,
                           const msgpack_object *o, ctr_buf_t *out,
                           uint32_t depth, const char **why);

/* The same for a value that holds no other value (ctr_flat_var_t's kinds:
 * None, Bool, Int, Float, String, Raw, Error) of kind vk and shim type
 * tid, its payload p (NULL for None), as ctr_proto_read_flat decoded it. */
int ctr_ctfs_cbor_scalar(const ctr_ctfs_value_ops_t *ops, uint32_t vk,
                         uint32_t tid, const msgpack_object *p, ctr_buf_t *out,
                         const char **why);

/* CBOR heads: major type (0-7) and argument in the shortest form. */
void ctr_ctfs_cbor_head(ctr_buf_t *b, unsigned major, uint64_t v);
/* A text string; bytes that are not valid UTF-8 become the text \xNN. */
void ctr_ctfs_cbor_text(ctr_buf_t *b, const char *s, size_t n);

#endif
