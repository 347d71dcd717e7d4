/* ctr_ctfs.h: a CodeTracer CTFS trace (trace.ct) written record by record,
 * readable by a follower after every ctr_ctfs_flush().
 *
 * The interface is the trace writer's record level: the caller says what
 * happened (a step, a call, a value) and this module alone knows the
 * format: interning tables paths/funcs/types/varnames, the streams
 * steps/values/calls/events, and meta.dat, which CodeTracer's reader needs
 * to see any stream: written at open, and last in every flush that changes
 * it (layout and live ordering: docs/ctfs.md).
 *
 * Ids are this trace's: ctr_ctfs_path() and friends return them, interned
 * by name (functions and types too, as CodeTracer's writer does). Values
 * are CBOR ValueRecords (ctr_ctfs_cbor.h builds them from wire values).
 * Every function returns 0 (or an id >= 0) or a negative CTR_E* code; after
 * an I/O error the trace is unusable except for ctr_ctfs_close(). */
#ifndef CTR_CTFS_H
#define CTR_CTFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ctr_ctfs_s ctr_ctfs_t;

/* Records per chunk of each stream: CodeTracer's defaults. A values chunk
 * must divide a steps chunk (see seal() in ctr_ctfs.c). */
#define CTR_CTFS_STEPS_CHUNK 4096
#define CTR_CTFS_VALUES_CHUNK 256
#define CTR_CTFS_CALLS_CHUNK 256
#define CTR_CTFS_EVENTS_CHUNK 64

/* What meta.dat says besides the recording id and the paths. */
typedef struct ctr_ctfs_meta_s {
  const char *program;
  const char *const *args;
  size_t nargs;
  const char *workdir;
  const char *recorder; /* e.g. "ctrec" */
} ctr_ctfs_meta_t;

typedef enum {
  CTR_CTFS_THREAD_SWITCH = 4, /* the step tags of exec_stream.nim */
  CTR_CTFS_THREAD_START = 5,
  CTR_CTFS_THREAD_EXIT = 6,
} ctr_ctfs_thread_t;

/* Creates path (which must not exist) with every member, empty; meta.dat
 * carries recording_id (a UUIDv7, 36 characters: ctr_uuid.h). The file is
 * made as path.new and linked to path once whole, so a reader never finds
 * a container without its members. */
int ctr_ctfs_open(ctr_ctfs_t **out, const char *path,
                  const char *recording_id);

/* The recording id (UUIDv7 text, 36 characters) meta.dat will carry, for
 * trace_metadata.json too. */
const char *ctr_ctfs_recording_id(const ctr_ctfs_t *w);

/* Interned ids (the same name gives the same id). */
int64_t ctr_ctfs_path(ctr_ctfs_t *w, const char *path, size_t n);
int64_t ctr_ctfs_function(ctr_ctfs_t *w, const char *name, size_t n);
int64_t ctr_ctfs_type(ctr_ctfs_t *w, const char *name, size_t n);
int64_t ctr_ctfs_varname(ctr_ctfs_t *w, const char *name, size_t n);

/* A step at line of path_id. Steps are numbered from 0 in order, thread
 * records included (a reader's step index). */
int ctr_ctfs_step(ctr_ctfs_t *w, uint64_t path_id, uint64_t line);
/* A visible variable of the latest step (until the next step, thread
 * record or flush: later, CTR_ESTATE). */
int ctr_ctfs_value(ctr_ctfs_t *w, uint64_t varname_id, const void *cbor,
                   size_t n);
int ctr_ctfs_thread(ctr_ctfs_t *w, ctr_ctfs_thread_t what, uint64_t tid);

/* Opens a call of function_id; it begins at the next step. */
int ctr_ctfs_call(ctr_ctfs_t *w, uint64_t function_id);
/* An argument of the innermost open call. */
int ctr_ctfs_arg(ctr_ctfs_t *w, uint64_t varname_id, const void *cbor,
                 size_t n);
/* Closes the innermost open call at the latest step, with its return value
 * (cbor NULL: none). Calls reach calls.dat in the order they were opened,
 * so a call is written once every call opened before it has returned. */
int ctr_ctfs_return(ctr_ctfs_t *w, const void *cbor, size_t n);

/* An event (EventLogKind, e.g. 0 stdout) at the latest step. */
int ctr_ctfs_event(ctr_ctfs_t *w, unsigned kind, const void *meta,
                   size_t meta_n, const void *content, size_t n);

/* Sets what meta.dat will say (copied). */
int ctr_ctfs_metadata(ctr_ctfs_t *w, const ctr_ctfs_meta_t *m);

/* Makes everything recorded so far readable by a follower. */
int ctr_ctfs_flush(ctr_ctfs_t *w);

/* Returns the calls still open at the latest step: their records and the
 * returned calls that waited for them go out (a flush publishes them),
 * after a flush of everything else. Nothing may be recorded after it.
 * Returns the first error met. */
int ctr_ctfs_end(ctr_ctfs_t *w);

/* Ends the trace (ctr_ctfs_end), flushes and frees. An
 * aborted recording is closed the same way; meta.dat cannot say how a
 * recording ended, the trace folder's metadata does. Returns the first
 * error met. */
int ctr_ctfs_close(ctr_ctfs_t *w);

/* Completes the calls stream of the trace at path, left by a writer that
 * died (killed): its spill file (path + ".calls", see ctr_ctfs.c) says
 * what calls.dat owed at the writer's last flush. The returned calls are
 * appended in key order, the open ones exit at the last step without a
 * value; then the spill file goes. Safe to run again after being killed
 * itself: it goes on from what calls.dat holds. Returns the records
 * added, 0 when nothing was owed, or a negative code. */
int ctr_ctfs_recover(const char *path);

/* Counts so far, for logs and tests. */
uint64_t ctr_ctfs_steps(const ctr_ctfs_t *w);
uint64_t ctr_ctfs_calls(const ctr_ctfs_t *w);
/* Bytes of the container in use (its blocks). */
uint64_t ctr_ctfs_bytes(const ctr_ctfs_t *w);

#endif
