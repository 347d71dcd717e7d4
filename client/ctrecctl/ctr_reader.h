/* ctr_reader.h: the records of a trace folder, in order, whatever its format.
 *
 * ctrecctl's verbs (check, follow) consume records in one vocabulary, the
 * CodeTracer JSON trace's ({"Step": {...}}, {"Call": {...}}, ...), as
 * ctr_jval trees. Two backends produce them: trace.json, read as a stream,
 * and trace.ct (CTFS, ctr_reader_ctfs.c), read through ctr_ctfs_read. Both
 * are live: ctr_reader_next() returns what is complete now and, called again
 * later, what was written since, so a trace still being recorded can be
 * followed. A folder holding trace.ct is read as CTFS (as CodeTracer does:
 * a .ct file shadows trace.json). */
#ifndef CTR_READER_H
#define CTR_READER_H

#include <stdbool.h>
#include <stddef.h>

#include "ctr_jval.h"

typedef struct ctr_reader_s ctr_reader_t;

typedef enum ctr_reader_format_e {
  CTR_READER_JSON,
  CTR_READER_CTFS
} ctr_reader_format_t;

/* What a backend returns for one record; see ctr_reader_next(). */
typedef struct ctr_reader_rec_s {
  ctr_jval_t *rec;  /* owned by the reader until the next call */
  const char *text; /* the record's own JSON text, or NULL (CTFS) */
  size_t len;
} ctr_reader_rec_t;

/* Opens the trace of folder dir. live: it may still be being written, so
 * a trace.ct not yet one block long is one being created (no records yet),
 * not a broken one. Returns 0, or -errno when neither file can be opened
 * (ENOENT: the folder holds neither). */
int ctr_reader_open(ctr_reader_t **out, const char *dir, bool live);
void ctr_reader_free(ctr_reader_t *t);

ctr_reader_format_t ctr_reader_format(const ctr_reader_t *t);
/* "trace.json" or "trace.ct", for messages. */
const char *ctr_reader_file(const ctr_reader_t *t);

/* The next complete record: 1 and *r, 0 when there is none yet (call again
 * to poll), or a negative CTR_E* code when the trace is broken, with
 * ctr_reader_error() saying where and why in words for users. */
int ctr_reader_next(ctr_reader_t *t, ctr_reader_rec_t *r);
const char *ctr_reader_error(const ctr_reader_t *t);

/* The paths a CTFS trace lists in meta.dat (CodeTracer resolves step
 * positions through them), as a JSON array; CTR_ERANGE for JSON traces,
 * whose list is trace_paths.json beside them. The caller frees *out. */
int ctr_reader_listed_paths(ctr_reader_t *t, ctr_jval_t **out);

/* ---- backends (ctr_reader.c holds the JSON one) ---- */
typedef struct ctr__trace_backend_s {
  int (*next)(void *b, ctr_reader_rec_t *r, char *why, size_t cap);
  int (*listed_paths)(void *b, ctr_jval_t **out);
  void (*free)(void *b);
} ctr__trace_backend_t;

/* Opens the CTFS backend over path (trace.ct). */
int ctr__trace_ctfs_open(void **out, const char *path, bool live,
                         const ctr__trace_backend_t **vt);

#endif
