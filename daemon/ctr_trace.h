/* ctr_trace.h: one CodeTracer trace folder (trace.json, trace_metadata.json,
 * trace_paths.json, files/).
 *
 * Records are rendered by the caller into ctr_trace_record() buffers and
 * reach disk in blocks of a few hundred KiB as they complete, and at
 * ctr_trace_flush(). trace.json stays a closed, valid JSON array after every
 * write: new records are written over the old closing bracket, followed by
 * a new one. Metadata is written only by ctr_trace_flush(). The writer knows nothing of
 * sockets, sessions or the wire protocol. */
#ifndef CTR_TRACE_H
#define CTR_TRACE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "ctr_buf.h"

typedef struct ctr_trace_s ctr_trace_t;

/* Who a trace folder and everything in it belong to: (uid_t)-1 and
 * (gid_t)-1 keep the daemon's own. Their mode is the daemon's umask's
 * (output.mode). */
typedef struct ctr_trace_owner_s {
  uid_t uid;
  gid_t gid;
} ctr_trace_owner_t;

/* Creates <root>/<name>-<pid>-<UTC time of started>[-<interval>]/ with
 * files/ inside (interval 1 has no suffix), for owner. workdir, program,
 * the JSON array text args_json and recording_id (a UUIDv7) go into
 * trace_metadata.json, which the first ctr_trace_flush writes. */
int ctr_trace_open(ctr_trace_t **out, const char *root, const char *name,
                   int64_t pid, time_t started, uint32_t interval,
                   const char *workdir, const char *program,
                   const char *args_json, const char *recording_id,
                   ctr_trace_owner_t owner);

/* The same folder without trace.json, for a backend that writes its own
 * trace file into ctr_trace_dir(): no records, paths listed only. */
int ctr_trace_open_folder(ctr_trace_t **out, const char *root,
                          const char *name, int64_t pid, time_t started,
                          uint32_t interval, const char *workdir,
                          const char *program, const char *args_json,
                          const char *recording_id, ctr_trace_owner_t owner);

/* Gives path, a file the caller made in t's folder, to t's owner. */
void ctr_trace_own(const ctr_trace_t *t, const char *path);

/* Starts one record: returns the buffer to append its JSON text to. The
 * previous record must be complete, since it may be written now. */
ctr_buf_t *ctr_trace_record(ctr_trace_t *t);
/* Takes back the record just started, for a caller that found its input
 * bad while rendering it in place. */
void ctr_trace_unrecord(ctr_trace_t *t);

/* Appends a Path record (trace.json only) and lists the path in
 * trace_paths.json; returns the new path id. */
uint32_t ctr_trace_path(ctr_trace_t *t, const char *path, size_t n);

/* Writes files/<path> (path absolute, already checked to hold no ".."). */
int ctr_trace_source(ctr_trace_t *t, const char *path, const char *text,
                     size_t n);

/* Sets the "ctrec" object of trace_metadata.json (JSON text, copied). */
void ctr_trace_set_meta(ctr_trace_t *t, const char *ctrec_json, size_t n);

/* Writes pending records, then metadata and paths when they changed. */
int ctr_trace_flush(ctr_trace_t *t);
bool ctr_trace_dirty(const ctr_trace_t *t);
size_t ctr_trace_pending(const ctr_trace_t *t);

const char *ctr_trace_dir(const ctr_trace_t *t);
uint64_t ctr_trace_records(const ctr_trace_t *t);
/* The records trace.json will hold once the metadata being rendered is
 * written: all of them, or after a failed write those written before. */
uint64_t ctr_trace_records_kept(const ctr_trace_t *t);
/* Bytes of trace.json, written and pending. */
uint64_t ctr_trace_bytes(const ctr_trace_t *t);

/* Completes what a trace writer left in folder dir when its daemon died
 * (ctr_writer_repair); 0 or a negative code. */
typedef int (*ctr_trace_repair_cb)(const char *dir);

/* Closes the trace.json of folder dir again after a write that was cut
 * (a killed daemon, a full disk): the records after the last whole one
 * go, and the trailer is put back. 0 when it is valid JSON again. */
int ctr_trace_repair_json(const char *dir);

/* Marks traces under root that a daemon left "recording" when it died
 * (its pid no longer runs) as aborted, once repair (if not NULL) has
 * completed each. Returns how many were marked. */
int ctr_trace_recover(const char *root, ctr_trace_repair_cb repair);

/* Flushes and frees. */
int ctr_trace_close(ctr_trace_t *t);

#endif
