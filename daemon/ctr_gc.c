/* ctr_gc.c: passes of the output folder's limits on the thread pool. */
#include "ctr_gc.h"

#include <stdlib.h>
#include <time.h>

#include "ctr_error.h"
#include "ctr_log.h"
#include "ctr_retain.h"

#define GC_EVERY_MS 60000

static bool has_limits(const ctr_config_t *cfg) {
  return cfg->output_max_age_ms > 0 || cfg->output_max_total_size > 0;
}

/* On a pool thread: touches nothing but the pass's own fields. */
static void run_pass(uv_work_t *w) {
  ctr_gc_t *gc = w->data;
  const ctr_config_t *cfg = gc->pass_cfg;
  ctr_retain_limits_t lim = {(int64_t)(cfg->output_max_age_ms / 1000),
                             cfg->output_max_total_size};
  size_t i;

  /* Under a second is still a limit. */
  if (cfg->output_max_age_ms > 0 && lim.max_age == 0)
    lim.max_age = 1;
  gc->rc = ctr_tracedir_list(cfg->output_dir, &gc->found, &gc->nfound);
  if (gc->rc < 0)
    return;
  ctr_retain_select(gc->found, gc->nfound, &lim, (int64_t)time(NULL));
  for (i = 0; i < gc->nfound; i++)
    if (gc->found[i].remove && ctr_tracedir_remove(gc->found[i].path) < 0)
      gc->found[i].remove = false;
}

static void start_pass(ctr_gc_t *gc);

/* On the loop: logs what the pass did and starts the one asked for since. */
static void pass_done(uv_work_t *w, int status) {
  ctr_gc_t *gc = w->data;
  uint64_t freed = 0;
  size_t i, n = 0;

  for (i = 0; i < gc->nfound; i++)
    if (gc->found[i].remove) {
      CTR_INFO("output limits: deleted %s (%llu bytes)", gc->found[i].path,
               (unsigned long long)gc->found[i].size);
      freed += gc->found[i].size;
      n++;
    }
  if (n)
    CTR_INFO("output limits: deleted %zu trace(s), %llu bytes", n,
             (unsigned long long)freed);
  if (gc->rc < 0 && status == 0)
    CTR_WARN("output limits: cannot read %s: %s", gc->pass_cfg->output_dir,
             ctr_strerror(gc->rc));
  ctr_tracedir_list_free(gc->found, gc->nfound);
  gc->found = NULL;
  gc->nfound = 0;
  ctr_config_unref(gc->pass_cfg);
  gc->pass_cfg = NULL;
  gc->running = false;
  if (gc->again && !gc->closing) {
    gc->again = false;
    start_pass(gc);
  }
}

static void start_pass(ctr_gc_t *gc) {
  if (gc->closing || !has_limits(*gc->cfg))
    return;
  if (gc->running) {
    gc->again = true;
    return;
  }
  gc->running = true;
  gc->pass_cfg = ctr_config_ref(*gc->cfg);
  gc->work.data = gc;
  if (uv_queue_work(gc->loop, &gc->work, run_pass, pass_done) != 0) {
    ctr_config_unref(gc->pass_cfg);
    gc->pass_cfg = NULL;
    gc->running = false;
  }
}

static void on_timer(uv_timer_t *t) { start_pass(t->data); }

void ctr_gc_start(ctr_gc_t *gc, uv_loop_t *loop,
                  const ctr_config_t *const *cfg) {
  gc->loop = loop;
  gc->cfg = cfg;
  gc->running = gc->again = gc->closing = false;
  gc->found = NULL;
  gc->nfound = 0;
  uv_timer_init(loop, &gc->timer);
  gc->timer.data = gc;
  uv_timer_start(&gc->timer, on_timer, GC_EVERY_MS, GC_EVERY_MS);
  start_pass(gc);
}

void ctr_gc_kick(ctr_gc_t *gc) { start_pass(gc); }

void ctr_gc_close(ctr_gc_t *gc) {
  if (gc->closing)
    return;
  gc->closing = true;
  uv_close((uv_handle_t *)&gc->timer, NULL);
}
