/* ctr_stack.h: the shadow stacks of a session's threads.
 *
 * One stack of open calls per traced thread, as the daemon saw them:
 * calls into filtered code stay on it without reaching the trace, so their
 * returns are matched. A frame also carries what the value rules keep for
 * it: its argument names, and numbers a rule hid while it runs. */
#ifndef CTR_STACK_H
#define CTR_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ctr_frame_s {
  uint32_t func;
  uint8_t flags;    /* CTR_FRAME_* */
  uint32_t args_at; /* its arguments' name ids start here in thread argv */
} ctr_frame_t;

enum {
  CTR_FRAME_WANTED = 1,  /* the filter records this call */
  CTR_FRAME_TREE = 2,    /* a skip-tree call: nothing below it is recorded */
  CTR_FRAME_EMITTED = 4, /* its Call is in the current interval's trace */
  CTR_FRAME_WHILE = 8,   /* a record.while_in function */
  CTR_FRAME_ARGS = 16    /* its argument names are in argv (value rules) */
};

/* A number hidden by a value rule, remembered while the frame that hid it
 * runs: the same number under the same name (a block's or closure's view
 * of the variable) or as that frame's return value is hidden too. */
typedef struct ctr_hidden_s {
  uint64_t bits;
  char tag; /* 'i' integer, 'f' float */
  int8_t action;
  uint32_t vid;
  uint32_t depth; /* frames on the stack when it was hidden */
} ctr_hidden_t;

typedef struct ctr_thread_s {
  uint64_t id;
  ctr_frame_t *frames;
  uint32_t nframes, cap;
  uint32_t trees; /* open skip-tree frames */
  bool step_kept; /* whether the latest step reached the trace */
  uint32_t *argv; /* argument name ids of the frames with CTR_FRAME_ARGS */
  uint32_t nargv, argcap;
  ctr_hidden_t *hidden; /* ordered by depth */
  uint32_t nhidden, hcap;
} ctr_thread_t;

typedef struct ctr_stacks_s {
  ctr_thread_t *v;
  uint32_t n, cur; /* cur indexes v: the thread that runs */
  uint32_t max;    /* threads kept at most (limits.max_threads) */
  uint32_t sweep;  /* where the search for an idle thread goes on */
  uint32_t *index; /* thread id -> position in v + 1, linear probing */
  uint32_t icap;   /* slots of index, a power of two, >= 2 * n */
} ctr_stacks_t;

/* Starts with one thread, id 0, running; keeps at most max threads. */
void ctr_stacks_init(ctr_stacks_t *st, uint32_t max);
void ctr_stacks_free(ctr_stacks_t *st);

/* Makes thread id the running one, in constant time. A new thread has an
 * empty stack; when max threads are kept, it takes the place of one whose
 * stack is empty (such a thread has nothing to remember). Returns 1 when
 * another thread ran before, 0 when id ran already, -1 when max threads
 * all have calls open. */
int ctr_stacks_switch(ctr_stacks_t *st, uint64_t id);

static inline ctr_thread_t *ctr_stacks_cur(ctr_stacks_t *st) {
  return &st->v[st->cur];
}

/* An interval ended: no frame's call is in a trace, no step was kept. */
void ctr_stacks_end_interval(ctr_stacks_t *st);

static inline ctr_frame_t *ctr_stack_top(ctr_thread_t *t) {
  return t->nframes ? &t->frames[t->nframes - 1] : NULL;
}

void ctr_stack_push(ctr_thread_t *t, uint32_t func, uint8_t flags);

/* Pops the top frame (there must be one) with its argument names and the
 * numbers hidden while it ran, and returns it. */
ctr_frame_t ctr_stack_pop(ctr_thread_t *t);

/* Notes vid as an argument name of the top frame (which gets
 * CTR_FRAME_ARGS from ctr_stack_args_seen). */
void ctr_stack_note_arg(ctr_thread_t *t, uint32_t vid);
void ctr_stack_args_seen(ctr_thread_t *t);

/* Whether variable vid of frame fr (NULL: the top level) is an argument,
 * for the value rules: CTR_FILTER_ARGS, CTR_FILTER_LOCALS, or both for a
 * frame whose arguments the daemon did not see (it began while the
 * session did not record). An argument stays one in every record of its
 * frame. */
int ctr_stack_where(const ctr_thread_t *t, const ctr_frame_t *fr, uint32_t vid);

#endif
