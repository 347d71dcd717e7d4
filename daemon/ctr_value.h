/* ctr_value.h: turns wire values ([vkind, type_id, payload...]) into
 * CodeTracer ValueRecord JSON, checking them as untrusted input: the JSON
 * writer's values (ctr_writer_json.c), and the check of a value that is
 * not written.
 *
 * Type and variable ids are mapped through callbacks, which may emit the
 * Type and VariableName records a value needs before the record holding it. */
#ifndef CTR_VALUE_H
#define CTR_VALUE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctr_buf.h"

typedef struct ctr_value_ops_s {
  void *ctx;
  /* Each returns the trace id with its text, or NULL for an unknown shim
   * id: for a type ,"type_id":T} and for a variable name
   * {"variable_id":V,"value": */
  const ctr_json_frag_t *(*type)(void *ctx, uint32_t tid);
  const ctr_json_frag_t *(*varname)(void *ctx, uint32_t vid);
  /* The Struct type for shim type tid with these field names (shim
   * variable name ids, already checked) and field value types (trace ids),
   * emitted on first use. */
  int64_t (*struct_type)(void *ctx, uint32_t tid, const uint32_t *vids,
                         const int64_t *tids, uint32_t n);
  bool floats_as_strings;
  uint32_t max_depth;
  /* Names the trace and everything else a rendered text depends on: a
   * definition's JSON is kept under it and reused (0: never). */
  uint64_t cache_key;
} ctr_value_ops_t;

/* Values must have been ingested (ctr_vdefs_ingest): their DEFs and REFs
 * are then objects naming definitions, rendered as those values.
 *
 * Appends one ValueRecord. Returns its trace type id or a negative code
 * with *why set. */
int64_t ctr_value_render(const ctr_value_ops_t *ops, const msgpack_object *o,
                         ctr_buf_t *out, const char **why);

/* Appends the part of a ValueRecord that a value of scalar kind vk (None,
 * Bool, Int, Float, String, Raw, Error) adds after "kind": its payload p
 * (NULL for None) checked; the caller then closes it with its type. Returns
 * 0 or a negative code with *why set. */
int ctr_value_render_scalar(const ctr_value_ops_t *ops, uint32_t vk,
                            const msgpack_object *p, ctr_buf_t *out,
                            const char **why);

/* Appends {"variable_id":V,"value":...} for one [varname_id, value] pair.
 * Returns 0 or a negative code with *why set. */
int ctr_value_render_pair(const ctr_value_ops_t *ops, const msgpack_object *p,
                          ctr_buf_t *out, const char **why);

/* Checks wire value o as rendering it would, declaring nothing: known_type
 * and known_name say whether a shim id is declared; scratch is rendered
 * into. Returns 0 or a
 * negative code with *why set. */
int ctr_value_check(const msgpack_object *o, uint32_t max_depth,
                    bool (*known_type)(void *ctx, uint32_t id),
                    bool (*known_name)(void *ctx, uint32_t id), void *ctx,
                    ctr_buf_t *scratch, const char **why);

#endif
