/* ctr_stack.c: the shadow stacks of a session's threads. */
#include "ctr_stack.h"

#include <stdlib.h>
#include <string.h>

#include "ctr_buf.h"
#include "ctr_filter.h"

void ctr_stacks_init(ctr_stacks_t *st) {
  st->v = ctr_xmalloc(sizeof(*st->v) * 4);
  memset(st->v, 0, sizeof(*st->v));
  st->v[0].step_kept = true;
  st->n = 1;
  st->cur = 0;
}

void ctr_stacks_free(ctr_stacks_t *st) {
  uint32_t i;

  for (i = 0; i < st->n; i++) {
    free(st->v[i].frames);
    free(st->v[i].argv);
    free(st->v[i].hidden);
  }
  free(st->v);
  st->v = NULL;
  st->n = 0;
}

bool ctr_stacks_switch(ctr_stacks_t *st, uint64_t id) {
  uint32_t i;

  for (i = 0; i < st->n && st->v[i].id != id; i++)
    ;
  if (i == st->n) {
    /* Room doubles at each power of two from 4 on. */
    if ((st->n & (st->n - 1)) == 0 && st->n >= 4)
      st->v = ctr_xrealloc(st->v, sizeof(*st->v) * st->n * 2);
    memset(&st->v[i], 0, sizeof(st->v[i]));
    st->v[i].id = id;
    st->v[i].step_kept = true;
    st->n++;
  }
  if (i == st->cur)
    return false;
  st->cur = i;
  return true;
}

void ctr_stacks_end_interval(ctr_stacks_t *st) {
  uint32_t i, j;

  for (i = 0; i < st->n; i++) {
    for (j = 0; j < st->v[i].nframes; j++)
      st->v[i].frames[j].flags &= (uint8_t)~CTR_FRAME_EMITTED;
    st->v[i].step_kept = false;
  }
}

void ctr_stack_push(ctr_thread_t *t, uint32_t func, uint8_t flags) {
  if (t->nframes == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 32;
    t->frames = ctr_xrealloc(t->frames, sizeof(*t->frames) * t->cap);
  }
  t->frames[t->nframes].func = func;
  t->frames[t->nframes].flags = flags;
  t->frames[t->nframes].args_at = t->nargv;
  t->nframes++;
  if (flags & CTR_FRAME_TREE)
    t->trees++;
}

ctr_frame_t ctr_stack_pop(ctr_thread_t *t) {
  ctr_frame_t f = t->frames[--t->nframes];

  t->nargv = f.args_at;
  while (t->nhidden && t->hidden[t->nhidden - 1].depth > t->nframes)
    t->nhidden--;
  if (f.flags & CTR_FRAME_TREE)
    t->trees--;
  return f;
}

void ctr_stack_note_arg(ctr_thread_t *t, uint32_t vid) {
  if (t->nargv == t->argcap) {
    t->argcap = t->argcap ? t->argcap * 2 : 32;
    t->argv = ctr_xrealloc(t->argv, sizeof(*t->argv) * t->argcap);
  }
  t->argv[t->nargv++] = vid;
}

void ctr_stack_args_seen(ctr_thread_t *t) {
  t->frames[t->nframes - 1].flags |= CTR_FRAME_ARGS;
}

int ctr_stack_where(const ctr_thread_t *t, const ctr_frame_t *fr,
                    uint32_t vid) {
  uint32_t i, end;

  if (fr == NULL)
    return CTR_FILTER_LOCALS;
  if (!(fr->flags & CTR_FRAME_ARGS))
    return CTR_FILTER_ARGS | CTR_FILTER_LOCALS;
  end = fr + 1 < t->frames + t->nframes ? fr[1].args_at : t->nargv;
  for (i = fr->args_at; i < end; i++)
    if (t->argv[i] == vid)
      return CTR_FILTER_ARGS;
  return CTR_FILTER_LOCALS;
}
