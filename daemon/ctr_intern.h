/* ctr_intern.h: a session's interning: what its client declared (PATH,
 * FUNC, TYPE, VARNAME, SOURCE) and the lazy map from those shim ids to
 * the ids of the open trace.
 *
 * Shim ids are dense per connection. A trace id is the writer's (for
 * JSON, the position of the defining record in one trace): a path,
 * function, type or name is declared to the writer the first time a record
 * of the trace uses it, and a path's first use copies its source into the
 * trace folder. Each new trace (interval) starts with no trace ids. */
#ifndef CTR_INTERN_H
#define CTR_INTERN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ctr_map.h"
#include "ctr_proto.h"
#include "ctr_writer.h"

typedef struct ctr_ipath_s {
  char *text;
  uint32_t len;
  int64_t tid;   /* trace path id, -1 until used */
  int8_t action; /* filter decision for top-level lines, -1 until asked */
  char *source;  /* text from SOURCE, kept to fill files/ of later traces */
  uint32_t source_len;
} ctr_ipath_t;

typedef struct ctr_ifunc_s {
  uint32_t path_id;
  int64_t line;
  char *name;   /* as selectors see it (ctr_filter_names) */
  char *label;  /* as the trace shows it: FUNC's name */
  uint32_t len; /* of label */
  int64_t tid;
  char *module;    /* as selectors see it, or NULL */
  int8_t action;   /* filter decision, -1 until asked */
  int8_t while_in; /* matches record.while_in, -1 until asked */
} ctr_ifunc_t;

typedef struct ctr_itype_s {
  int kind;
  char *name;
  uint32_t len;
  int64_t tid; /* trace type id, -1 until used */
} ctr_itype_t;

typedef struct ctr_iname_s {
  char *text;
  uint32_t len;
  int64_t tid; /* trace variable name id, -1 until used */
} ctr_iname_t;

#define CTR_ITABLE(T)                                                          \
  struct {                                                                     \
    T *v;                                                                      \
    uint32_t n, cap;                                                           \
  }

/* The tables are read by the session (ids below n are declared); only
 * this module changes them. */
typedef struct ctr_intern_s {
  CTR_ITABLE(ctr_ipath_t) paths;
  CTR_ITABLE(ctr_ifunc_t) funcs;
  CTR_ITABLE(ctr_itype_t) types;
  CTR_ITABLE(ctr_iname_t) names;
  ctr_map_t struct_types;       /* shim type + field names -> trace type id */
  ctr_map_t trace_paths;        /* path text -> trace path id */
  ctr_writer_t *trace;          /* the open trace, or NULL */
  uint64_t session;             /* for logs */
  const char *lang;             /* the client's, for function selectors */
  uint32_t max_ids, max_source; /* limits.* */
} ctr_intern_t;

void ctr_intern_init(ctr_intern_t *in, uint64_t session, const char *lang,
                     uint32_t max_ids, uint32_t max_source);
void ctr_intern_free(ctr_intern_t *in);

/* Applies PATH, FUNC, TYPE or VARNAME. Returns 0 or a negative code with
 * *why set. */
int ctr_intern_declare(ctr_intern_t *in, const ctr_msg_t *m, const char **why);
/* Applies SOURCE: kept for this and later traces. */
int ctr_intern_source(ctr_intern_t *in, const ctr_msg_t *m, const char **why);

/* Maps to trace (NULL: none open) from now on, with no trace id yet. */
void ctr_intern_trace(ctr_intern_t *in, ctr_writer_t *trace);

/* The trace id of a path given by its text, declared on first use with
 * its source copied (the program's own path, before the client names it). */
int64_t ctr_intern_path_text(ctr_intern_t *in, const char *text, uint32_t len);

/* The trace ids of shim ids, declared on first use; a negative code for
 * an unknown id. The last three are ctr_writer_ids_t's (ctx: in). */
int64_t ctr_intern_path(ctr_intern_t *in, uint32_t id);
int64_t ctr_intern_func(ctr_intern_t *in, uint32_t id);
int64_t ctr_intern_type(void *in, uint32_t id);
int64_t ctr_intern_name(void *in, uint32_t id);
int64_t ctr_intern_struct(void *in, uint32_t id, const uint32_t *vids,
                          const int64_t *tids, uint32_t n);

#endif
