/* ctr_gate.h: the recording gate: whether a session records now.
 *
 * record.start and ctrecctl start|stop, record.windows, record.while_in
 * and the record.max_* limits of an interval decide it. Pure logic: the
 * caller passes the time (realtime milliseconds) and what the interval has
 * written, and acts on the answers (ends the interval, pauses the
 * client). */
#ifndef CTR_GATE_H
#define CTR_GATE_H

#include <stdbool.h>
#include <stdint.h>

#include "ctr_config.h"

/* Why the gate is closed under record.while_in alone: the client must
 * still send calls, since one of them may open it. */
#define CTR_GATE_WHILE_IN "outside record.while_in"

typedef struct ctr_gate_s {
  const ctr_config_t *cfg;  /* record.* in force; the caller owns it */
  int64_t process_start_ms; /* relative windows count from here */
  bool user_on;             /* record.start, then ctrecctl start|stop */
  const char *limit_hit;    /* the record.max_* limit that closed it */
  uint32_t while_depth;     /* open record.while_in calls */
} ctr_gate_t;

/* Opens or closes the gate as cfg's record.start says. */
void ctr_gate_init(ctr_gate_t *g, const ctr_config_t *cfg,
                   int64_t process_start_ms);

/* Whether the answers depend on the time (record.windows or
 * record.max_duration): callers read the clock only then, since a session
 * asks at every message. */
bool ctr_gate_timed(const ctr_gate_t *g);

/* Why the gate is closed at now_ms (a text for status and metadata), or
 * NULL when it is open. */
const char *ctr_gate_closed(const ctr_gate_t *g, int64_t now_ms);

/* Whether a client should pause while the gate is closed for why. */
bool ctr_gate_pauses(const char *why);

/* Whether any record.max_* limit is set: only then are they checked. */
bool ctr_gate_limited(const ctr_gate_t *g);

/* Checks the record.max_* limits of an interval that began at start_ms
 * and holds records records in bytes bytes; the first one reached closes
 * the gate. Returns the limit reached, or NULL. */
const char *ctr_gate_limits(ctr_gate_t *g, uint64_t records, uint64_t bytes,
                            int64_t start_ms, int64_t now_ms);

/* ctrecctl start (on) or stop. A start forgets a limit reached, so a new
 * interval may begin. Returns whether that changed the user's switch. */
bool ctr_gate_control(ctr_gate_t *g, bool on);

/* The program's own pause (off) or resume: the same switch, but a limit
 * reached stays reached, so that a program cannot record past the
 * operator's record.max_*. Returns whether that changed the switch. */
bool ctr_gate_switch(ctr_gate_t *g, bool on);

#endif
