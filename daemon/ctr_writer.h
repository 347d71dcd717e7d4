/* ctr_writer.h: the trace writer, the one home of a trace format.
 *
 * The session says what happened, record by record (a path, a function, a
 * type, a variable name, a step, a call, a return, a value, an event, a
 * thread switch, the metadata); a backend alone knows how each is written:
 * CodeTracer JSON (ctr_writer_json.c) or CTFS (ctr_writer_ctfs.c), chosen
 * by output.format. Both write the same folder (ctr_trace.h).
 *
 * Ids. The declaring calls return this trace's id for what they declare
 * (JSON: the position of its record; CTFS: its interned id); the session
 * maps its shim ids to them lazily, per trace. Values travel as the wire
 * objects the shim sent, DEFs and REFs ingested (ctr_vdef.h): the backend
 * encodes them in its format and resolves the shim ids inside them through
 * the session's ctr_writer_ids_t, which declares on first use. */
#ifndef CTR_WRITER_H
#define CTR_WRITER_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ctr_proto.h"
#include "ctr_trace.h"

typedef struct ctr_writer_s ctr_writer_t;

/* The session's interning, as a backend sees it. Each returns this
 * trace's id for a shim id, declaring it on first use, or a negative code
 * for an unknown shim id. */
typedef struct ctr_writer_ids_s {
  void *ctx;
  int64_t (*type)(void *ctx, uint32_t shim_tid);
  int64_t (*varname)(void *ctx, uint32_t shim_vid);
  /* The Struct type for shim type tid with these field names (shim name
   * ids, already checked) whose values have these trace type ids. */
  int64_t (*struct_type)(void *ctx, uint32_t shim_tid, const uint32_t *vids,
                         const int64_t *tids, uint32_t n);
} ctr_writer_ids_t;

/* One trace folder: <root>/<name>-<pid>-<UTC time of started>[-<interval>]. */
typedef struct ctr_writer_opts_s {
  const char *root, *name;
  int64_t pid;
  time_t started;
  uint32_t interval;
  const char *workdir, *program;
  const char *const *args;
  size_t nargs;
  const char *recording_id; /* a UUIDv7 (ctr_uuid.h), one per folder */
  ctr_trace_owner_t owner;  /* who the folder belongs to */
  ctr_writer_ids_t ids;
  bool floats_as_strings; /* output.float_format: string */
  uint32_t max_depth;     /* limits.max_depth */
} ctr_writer_opts_t;

/* A variable or argument: the [varname_id, value] pair as sent (value
 * ingested), shown as "<redacted>" when a value rule says so (the pair is
 * then checked already). */
typedef struct ctr_writer_var_s {
  const msgpack_object *pair;
  bool redacted;
} ctr_writer_var_t;

/* Events a shim reported lost under one cause ("daemon not reading"); the
 * last of CTR_LOST_CAUSES takes every further cause as "other". */
#define CTR_LOST_CAUSES 8
typedef struct ctr_lost_cause_s {
  char name[48];
  uint64_t n;
} ctr_lost_cause_t;

/* What trace_metadata.json says of the recording besides the folder's own
 * workdir, program, args and recording_id. */
typedef struct ctr_writer_meta_s {
  uint64_t session;
  const char *state, *lang, *lang_version;
  int64_t pid;         /* the kernel's */
  int64_t claimed_pid; /* HELLO's, a note where it differs */
  int64_t ppid;        /* HELLO's */
  uint64_t uid, gid;
  uint32_t interval;
  time_t start, end;      /* end 0: still recording */
  const char *end_reason; /* or NULL */
  bool exited;
  int64_t exit_status;
  uint64_t received, steps, calls, returns, events, filtered, dropped, lost;
  const ctr_lost_cause_t *lost_causes; /* lost, by the shim's cause */
  uint32_t nlost_causes;
  uint32_t threads;
  const char *values; /* record.values */
  const char *filter; /* the effective filter, as YAML */
} ctr_writer_meta_t;

/* A format. Every entry but open gets the writer it opened. Functions
 * returning int64_t return an id, int 0; both a negative code on error,
 * with *why set where they take it. */
typedef struct ctr_writer_backend_s {
  const char *name;
  int (*open)(ctr_writer_t **out, const ctr_writer_opts_t *o);
  int64_t (*path)(ctr_writer_t *w, const char *text, size_t n);
  int (*source)(ctr_writer_t *w, const char *path, const char *text, size_t n);
  int64_t (*function)(ctr_writer_t *w, int64_t path, int64_t line,
                      const char *name, size_t n);
  int64_t (*type)(ctr_writer_t *w, int kind, const char *name, size_t n);
  int64_t (*struct_type)(ctr_writer_t *w, const char *name, size_t n,
                         const char *const *fields, const uint32_t *lens,
                         const int64_t *tids, uint32_t nfields);
  int64_t (*varname)(ctr_writer_t *w, const char *text, size_t n);
  int (*toplevel)(ctr_writer_t *w, int64_t path);
  int (*step)(ctr_writer_t *w, int64_t path, int64_t line);
  int (*call)(ctr_writer_t *w, int64_t function, const ctr_writer_var_t *args,
              uint32_t n, const char **why);
  int (*ret)(ctr_writer_t *w, const msgpack_object *value, bool redacted,
             const char **why);
  int (*value)(ctr_writer_t *w, const ctr_writer_var_t *var, const char **why);
  /* Optional: a variable whose value holds no other value, as the flat
   * reader decoded it (no REF, no value rule in force), written without
   * building its objects: most variables of call-heavy code are such. */
  int (*flat_value)(ctr_writer_t *w, const ctr_flat_var_t *v,
                    const char **why);
  int (*event)(ctr_writer_t *w, int kind, const char *text, size_t n);
  int (*thread)(ctr_writer_t *w, uint64_t id);
  void (*reuse)(ctr_writer_t *w, bool on);
  void (*metadata)(ctr_writer_t *w, const ctr_writer_meta_t *m);
  int (*flush)(ctr_writer_t *w);
  /* Optional: writes what the trace still owes at its end (CTFS: the
   * calls still open, and those that waited for them) before the flush
   * that precedes the final metadata, so that a write failing there
   * makes the trace "aborted". Nothing is recorded after it. */
  int (*end)(ctr_writer_t *w);
  bool (*dirty)(const ctr_writer_t *w);
  size_t (*pending)(const ctr_writer_t *w);
  uint64_t (*records)(const ctr_writer_t *w);
  uint64_t (*bytes)(const ctr_writer_t *w);
  const char *(*dir)(const ctr_writer_t *w);
  int (*close)(ctr_writer_t *w);
  /* Optional: completes what a writer of this format left in folder dir
   * when its daemon was killed. */
  int (*repair)(const char *dir);
} ctr_writer_backend_t;

/* Every backend's writer starts with this. */
struct ctr_writer_s {
  const ctr_writer_backend_t *be;
  int io_error; /* the first write error of a record, for flush to report */
};

/* A write error (-errno, a full disk) is no fault of the client whose
 * record it was: it is kept for ctr_writer_flush, which the session turns
 * into the trace's "aborted: cannot write" state. Other codes (a bad
 * value) are the client's and returned. */
static inline int ctr_writer_io(ctr_writer_t *w, int rc) {
  if (rc < 0 && rc > -4096) {
    if (w->io_error == 0)
      w->io_error = rc;
    return 0;
  }
  return rc;
}

extern const ctr_writer_backend_t ctr_writer_json;
extern const ctr_writer_backend_t ctr_writer_ctfs;

/* A new key naming one writer's encodings kept in definition slots
 * (ctr_vdef_keep_text), never 0. */
uint64_t ctr_writer_key(void);

struct ctr_trace_s;
/* Opens o's trace folder (ctr_trace.h), with trace.json when json. */
int ctr_writer_open_folder(struct ctr_trace_s **t, const ctr_writer_opts_t *o,
                           bool json);
/* Sets the "ctrec" object of folder t's trace_metadata.json from m, with
 * the backend's count of records written (the folder helper both backends
 * share). */
void ctr_writer_set_meta(struct ctr_trace_s *t, const ctr_writer_meta_t *m,
                         uint64_t records);

/* Completes, in every format, what a writer left in trace folder dir when
 * its daemon died (ctr_trace_recover's repair); 0 or a negative code. */
int ctr_writer_repair(const char *dir);

/* Opens a trace folder with backend be. */
static inline int ctr_writer_open(ctr_writer_t **out,
                                  const ctr_writer_backend_t *be,
                                  const ctr_writer_opts_t *o) {
  return be->open(out, o);
}

/* Declarations: each returns this trace's id for what it declares. */
static inline int64_t ctr_writer_path(ctr_writer_t *w, const char *text,
                                      size_t n) {
  return w->be->path(w, text, n);
}
/* The text of source file path (absolute, checked) for the trace. */
static inline int ctr_writer_source(ctr_writer_t *w, const char *path,
                                    const char *text, size_t n) {
  return w->be->source(w, path, text, n);
}
static inline int64_t ctr_writer_function(ctr_writer_t *w, int64_t path,
                                          int64_t line, const char *name,
                                          size_t n) {
  return w->be->function(w, path, line, name, n);
}
/* A type of kind (CTR_TK_*) named name. */
static inline int64_t ctr_writer_type(ctr_writer_t *w, int kind,
                                      const char *name, size_t n) {
  return w->be->type(w, kind, name, n);
}
/* A struct type named name with these fields and field types. */
static inline int64_t
ctr_writer_struct_type(ctr_writer_t *w, const char *name, size_t n,
                       const char *const *fields, const uint32_t *lens,
                       const int64_t *tids, uint32_t nfields) {
  return w->be->struct_type(w, name, n, fields, lens, tids, nfields);
}
static inline int64_t ctr_writer_varname(ctr_writer_t *w, const char *text,
                                         size_t n) {
  return w->be->varname(w, text, n);
}

/* What every trace starts with, once its program's path is declared: the
 * top-level function and its call, so the trace replays on its own. */
static inline int ctr_writer_toplevel(ctr_writer_t *w, int64_t path) {
  return ctr_writer_io(w, w->be->toplevel(w, path));
}

/* A line executed. */
static inline int ctr_writer_step(ctr_writer_t *w, int64_t path, int64_t line) {
  return ctr_writer_io(w, w->be->step(w, path, line));
}
/* A call of function, with its arguments; it is located at the function's
 * definition line (trace-format R3), which the backend writes as its
 * format wants. Nothing is written when an argument is bad. */
static inline int ctr_writer_call(ctr_writer_t *w, int64_t function,
                                  const ctr_writer_var_t *args, uint32_t n,
                                  const char **why) {
  return ctr_writer_io(w, w->be->call(w, function, args, n, why));
}
/* The innermost call returns value (NULL: none). */
static inline int ctr_writer_return(ctr_writer_t *w,
                                    const msgpack_object *value, bool redacted,
                                    const char **why) {
  return ctr_writer_io(w, w->be->ret(w, value, redacted, why));
}
/* A variable visible at the latest step. */
static inline int ctr_writer_value(ctr_writer_t *w, const ctr_writer_var_t *var,
                                   const char **why) {
  return ctr_writer_io(w, w->be->value(w, var, why));
}
/* The same for a flat variable; 1 when the backend takes only pairs. */
static inline int ctr_writer_flat_value(ctr_writer_t *w,
                                        const ctr_flat_var_t *v,
                                        const char **why) {
  return w->be->flat_value ? ctr_writer_io(w, w->be->flat_value(w, v, why)) : 1;
}
/* An event of kind (CTR_EV_*) with its text. */
static inline int ctr_writer_event(ctr_writer_t *w, int kind, const char *text,
                                   size_t n) {
  return ctr_writer_io(w, w->be->event(w, kind, text, n));
}
/* The thread that runs from now on. */
static inline int ctr_writer_thread(ctr_writer_t *w, uint64_t id) {
  return ctr_writer_io(w, w->be->thread(w, id));
}
/* Whether a backend may reuse what it encoded for a definition (no value
 * rule looks at the values: they would see only the first use). */
static inline void ctr_writer_reuse(ctr_writer_t *w, bool on) {
  w->be->reuse(w, on);
}
/* Sets the recording's metadata, written at the next flush. */
static inline void ctr_writer_metadata(ctr_writer_t *w,
                                       const ctr_writer_meta_t *m) {
  w->be->metadata(w, m);
}
/* Writes what is pending; then a reader sees everything recorded. */
static inline int ctr_writer_flush(ctr_writer_t *w) {
  int rc = w->be->flush(w);
  return rc != 0 ? rc : w->io_error;
}
/* The trace ends: see end; a write error is kept for the next flush. */
static inline int ctr_writer_end(ctr_writer_t *w) {
  return w->be->end ? ctr_writer_io(w, w->be->end(w)) : 0;
}
/* Whether anything is yet to be written. */
static inline bool ctr_writer_dirty(const ctr_writer_t *w) {
  return w->be->dirty(w);
}
/* Bytes encoded but not yet written. */
static inline size_t ctr_writer_pending(const ctr_writer_t *w) {
  return w->be->pending(w);
}
/* Records written or pending, and the trace's size in bytes. */
static inline uint64_t ctr_writer_records(const ctr_writer_t *w) {
  return w->be->records(w);
}
static inline uint64_t ctr_writer_bytes(const ctr_writer_t *w) {
  return w->be->bytes(w);
}
static inline const char *ctr_writer_dir(const ctr_writer_t *w) {
  return w->be->dir(w);
}
/* Flushes and frees. */
static inline int ctr_writer_close(ctr_writer_t *w) { return w->be->close(w); }

#endif
