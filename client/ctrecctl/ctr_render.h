/* ctr_render.h: the step listing of a trace, shared by `ctrecctl show` and
 * `ctrecctl follow`.
 *
 * It takes the records of one trace folder in order, as the trace reader
 * (ctr_reader.h) hands them out, and prints each step with its file:line
 * and source text (from the folder's files/ copy), indented by call depth;
 * calls with their arguments, returns with their values, the variables that
 * changed since the previous step of the same frame, and output events. The
 * same entries can be printed as JSON lines instead. */
#ifndef CTR_RENDER_H
#define CTR_RENDER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ctr_jval.h"

typedef struct ctr_render_s ctr_render_t;

typedef struct ctr_render_opts_s {
  FILE *out;
  const char *dir;     /* the trace folder, whose files/ has the sources */
  const char *workdir; /* paths inside it are shown relative to it, or NULL */
  bool source;         /* each step's source line after its file:line */
  bool calls;          /* only calls and returns */
  bool json;           /* one JSON object per entry instead of text */
  int64_t from, to;    /* the steps shown, inclusive; -1 leaves a side open */
} ctr_render_opts_t;

ctr_render_t *ctr_render_new(const ctr_render_opts_t *o);
void ctr_render_free(ctr_render_t *r);

/* Renders one record. A Step is held back until the next record says
 * whether it is a call's location (not shown) or a line the program ran. */
void ctr_render_record(ctr_render_t *r, const ctr_jval_t *rec);

/* Prints the Step held back, for a caller that has no next record yet. */
void ctr_render_flush(ctr_render_t *r);

#endif
