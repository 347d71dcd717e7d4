/* ctr_gate.c: the recording gate. */
#include "ctr_gate.h"

#include <string.h>

void ctr_gate_init(ctr_gate_t *g, const ctr_config_t *cfg,
                   int64_t process_start_ms) {
  memset(g, 0, sizeof(*g));
  g->cfg = cfg;
  g->process_start_ms = process_start_ms;
  g->user_on = cfg->record_start == CTR_RECORD_RECORDING;
}

static bool in_window(const ctr_gate_t *g, int64_t now) {
  const ctr_config_t *cfg = g->cfg;
  size_t i;

  if (cfg->record_nwindows == 0)
    return true;
  for (i = 0; i < cfg->record_nwindows; i++) {
    const ctr_record_window_t *w = &cfg->record_windows[i];
    if (w->absolute) {
      if ((!w->has_at || now >= w->at_ms) &&
          (!w->has_until || now < w->until_ms))
        return true;
    } else {
      int64_t rel = now - g->process_start_ms;
      if (rel >= (int64_t)w->after_ms &&
          (!w->has_for || rel < (int64_t)(w->after_ms + w->for_ms)))
        return true;
    }
  }
  return false;
}

bool ctr_gate_limited(const ctr_gate_t *g) {
  const ctr_config_t *cfg = g->cfg;

  return cfg->record_max_events || cfg->record_max_bytes ||
         cfg->record_max_duration_ms;
}

bool ctr_gate_timed(const ctr_gate_t *g) {
  return g->cfg->record_nwindows > 0 || g->cfg->record_max_duration_ms > 0;
}

const char *ctr_gate_closed(const ctr_gate_t *g, int64_t now_ms) {
  if (!g->user_on)
    return "stopped";
  if (g->limit_hit)
    return g->limit_hit;
  if (!in_window(g, now_ms))
    return "outside record.windows";
  if (g->cfg->record_nwhile_in && g->while_depth == 0)
    return CTR_GATE_WHILE_IN;
  return NULL;
}

bool ctr_gate_pauses(const char *why) {
  return why && strcmp(why, CTR_GATE_WHILE_IN) != 0;
}

const char *ctr_gate_limits(ctr_gate_t *g, uint64_t records, uint64_t bytes,
                            int64_t start_ms, int64_t now_ms) {
  const ctr_config_t *cfg = g->cfg;

  if (cfg->record_max_events && records >= cfg->record_max_events)
    g->limit_hit = "record.max_events reached";
  else if (cfg->record_max_bytes && bytes >= cfg->record_max_bytes)
    g->limit_hit = "record.max_bytes reached";
  else if (cfg->record_max_duration_ms &&
           now_ms - start_ms >= (int64_t)cfg->record_max_duration_ms)
    g->limit_hit = "record.max_duration reached";
  return g->limit_hit;
}

bool ctr_gate_control(ctr_gate_t *g, bool on) {
  bool was = g->user_on && g->limit_hit == NULL;

  g->user_on = on;
  if (on)
    g->limit_hit = NULL; /* a manual start begins a fresh interval */
  return was != on;
}

bool ctr_gate_switch(ctr_gate_t *g, bool on) {
  bool was = g->user_on;

  g->user_on = on;
  return was != on;
}
