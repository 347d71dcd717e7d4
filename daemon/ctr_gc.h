/* ctr_gc.h: the output folder's limits (output.max_age,
 * output.max_total_size), applied by ctrecd to the finished traces in its
 * output folder, oldest first, never to a live one.
 *
 * A pass runs at start, after each trace completes and every minute, on
 * libuv's thread pool so that the event loop never waits for a folder to be
 * walked or deleted; one pass runs at a time, and a pass asked for while
 * one runs follows it. The traces to delete are chosen by ctr_retain, as
 * `ctrecctl gc` chooses them; each deletion is logged. */
#ifndef CTR_GC_H
#define CTR_GC_H

#include <stdbool.h>
#include <uv.h>

#include "ctr_config.h"
#include "ctr_tracedir.h"

typedef struct ctr_gc_s {
  uv_loop_t *loop;
  uv_timer_t timer;
  uv_work_t work;
  /* The daemon's configuration in force, read at each pass: a reload's
   * new limits apply from the next one. */
  const ctr_config_t *const *cfg;
  const ctr_config_t *pass_cfg; /* referenced for the pass running */
  bool running, again, closing;
  ctr_tracedir_t *found; /* the pass's traces, those deleted marked */
  size_t nfound;
  int rc;
} ctr_gc_t;

/* Starts the timer and a first pass. *cfg must stay valid (the server's
 * snapshot pointer) until ctr_gc_close. */
void ctr_gc_start(ctr_gc_t *gc, uv_loop_t *loop, const ctr_config_t *const *cfg);
/* Asks for a pass (a trace completed); nothing when no limit is set. */
void ctr_gc_kick(ctr_gc_t *gc);
/* Stops the timer; a pass running ends on its own. */
void ctr_gc_close(ctr_gc_t *gc);

#endif
