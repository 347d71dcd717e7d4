/* ctr_stack.c: the shadow stacks of a session's threads. */
#include "ctr_stack.h"

#include <stdlib.h>
#include <string.h>

#include "ctr_buf.h"
#include "ctr_filter.h"

/* Thread ids are the shims' choice (addresses, counters): mixed so that
 * any pattern spreads over the index. */
static uint32_t slot_of(const ctr_stacks_t *st, uint64_t id) {
  id ^= id >> 33;
  id *= 0xff51afd7ed558ccdULL;
  id ^= id >> 33;
  return (uint32_t)id & (st->icap - 1);
}

static uint32_t index_find(const ctr_stacks_t *st, uint64_t id) {
  uint32_t i = slot_of(st, id);

  while (st->index[i] != 0 && st->v[st->index[i] - 1].id != id)
    i = (i + 1) & (st->icap - 1);
  return i;
}

static void index_grow(ctr_stacks_t *st) {
  uint32_t i;

  free(st->index);
  st->icap = st->icap ? st->icap * 2 : 8;
  st->index = ctr_xmalloc(sizeof(*st->index) * st->icap);
  memset(st->index, 0, sizeof(*st->index) * st->icap);
  for (i = 0; i < st->n; i++)
    st->index[index_find(st, st->v[i].id)] = i + 1;
}

/* Removes id's slot, moving later entries of its run back (no tombstones,
 * so a lookup never walks what was removed). */
static void index_remove(ctr_stacks_t *st, uint64_t id) {
  uint32_t mask = st->icap - 1, hole = index_find(st, id), i = hole;

  st->index[hole] = 0;
  for (i = (i + 1) & mask; st->index[i] != 0; i = (i + 1) & mask) {
    uint32_t home = slot_of(st, st->v[st->index[i] - 1].id);
    /* The entry may fill the hole when its home is not within (hole, i]. */
    if (((i - home) & mask) >= ((i - hole) & mask)) {
      st->index[hole] = st->index[i];
      st->index[i] = 0;
      hole = i;
    }
  }
}

void ctr_stacks_init(ctr_stacks_t *st, uint32_t max) {
  memset(st, 0, sizeof(*st));
  st->v = ctr_xmalloc(sizeof(*st->v) * 4);
  memset(st->v, 0, sizeof(*st->v));
  st->v[0].step_kept = true;
  st->n = 1;
  st->max = max ? max : 1;
  index_grow(st);
}

void ctr_stacks_free(ctr_stacks_t *st) {
  uint32_t i;

  for (i = 0; i < st->n; i++) {
    free(st->v[i].frames);
    free(st->v[i].argv);
    free(st->v[i].hidden);
  }
  free(st->v);
  free(st->index);
  memset(st, 0, sizeof(*st));
}

/* A thread whose place a new one may take: not running, no calls open,
 * nothing hidden. Searched from where the last search stopped. */
static bool reuse_idle(ctr_stacks_t *st, uint32_t *at) {
  uint32_t k, i;

  for (k = 0; k < st->n; k++) {
    i = (st->sweep + k) % st->n;
    if (i != st->cur && st->v[i].nframes == 0 && st->v[i].nhidden == 0) {
      st->sweep = i + 1;
      *at = i;
      return true;
    }
  }
  return false;
}

int ctr_stacks_switch(ctr_stacks_t *st, uint64_t id) {
  uint32_t slot = index_find(st, id), i;
  ctr_thread_t *t;

  if (st->index[slot] != 0) {
    i = st->index[slot] - 1;
    if (i == st->cur)
      return 0;
    st->cur = i;
    return 1;
  }
  if (st->n < st->max) {
    /* Room doubles at each power of two from 4 on. */
    if ((st->n & (st->n - 1)) == 0 && st->n >= 4)
      st->v = ctr_xrealloc(st->v, sizeof(*st->v) * st->n * 2);
    i = st->n++;
    memset(&st->v[i], 0, sizeof(st->v[i]));
  } else if (reuse_idle(st, &i)) {
    index_remove(st, st->v[i].id);
  } else {
    return -1;
  }
  t = &st->v[i];
  t->id = id;
  t->step_kept = true;
  if (st->n * 2 > st->icap)
    index_grow(st);
  else
    st->index[index_find(st, id)] = i + 1;
  st->cur = i;
  return 1;
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
