/* ctr_rb_pushdown.c: the daemon's code rules, decided in the shim.
 *
 * The daemon's code rules arrive in WELCOME and FILTER. Each function
 * caches its decision (per filter generation). A "skip" frame sends no
 * CALL, RETURN, STEP or VARS of its own; inside a "skip-tree" frame the
 * hook only counts nested frames until the tree returns, or, when the
 * tree's root is a method and only one thread runs, Ruby stops calling it
 * for the tree's code at all (ctr_rb_tree.c). Output and RAISE are still
 * sent. The shim mirrors the daemon's view of the stack: a frame is
 * "known" when a CALL is sent for it or would be without push-down, and a
 * line is sent when the daemon keeps it (see ctr__rb_line_kept), so the
 * trace is the same either way. The standard library and gems are skipped
 * by the daemon's built-in rules like any other code: a file that no rule
 * naming a function applies to is decided once for all its functions
 * (ctr__rb_path_skips). */
#include <string.h>

#include "ctr_rb.h"

static uint32_t ctr_rb_filter_gen(void) {
  uint32_t gen;
  ctr_client_filter(&gen);
  return gen + 1;
}

/* The daemon's decision for code of `f` (cached per filter generation). */
static int ctr_rb_func_action(ctr_rb_func_t *f, const ctr_rb_path_t *p) {
  uint32_t gen = ctr_rb_filter_gen();
  if (f->fgen != gen) {
    f->action = f->name && ctr_client_pushdown()
                    ? ctr_client_decide(p->abs, f->name)
                    : CTR_FILTER_RECORD;
    f->fgen = gen;
  }
  return f->action;
}

/* The daemon's decision for lines outside any known frame: the file rules
 * (function and module unknown, as the daemon decides them). */
static int ctr_rb_path_action(ctr_rb_path_t *p) {
  uint32_t gen;
  const ctr_filter_t *filter = ctr_client_filter(&gen);
  if (p->fgen != gen + 1) {
    p->action = ctr_filter_decide_file(ctr_client_pushdown() ? filter : NULL,
                                       p->abs, &p->uniform);
    p->fgen = gen + 1;
  }
  return p->action;
}

/* Whether every function of the file is skipped (the standard library and
 * gems by default): its frames then need no function record, which keeps
 * skipped code about as cheap as code the hook ignores. */
bool ctr__rb_path_skips(ctr_rb_path_t *p) {
  return ctr_rb_path_action(p) == CTR_FILTER_SKIP && p->uniform;
}

/* Makes `fr` a frame the daemon knows of, deciding as it does: everything
 * below a skip-tree frame is skip-tree too. */
void ctr__rb_enter(ctr_rb_stack_t *s, ctr_rb_frame_t *fr, ctr_rb_func_t *f,
                   const ctr_rb_path_t *p) {
  fr->func = f;
  fr->src = p;
  fr->known = true;
  fr->action = s->trees ? CTR_FILTER_SKIP_TREE : ctr_rb_func_action(f, p);
  if (fr->action == CTR_FILTER_SKIP_TREE) {
    fr->tree = true;
    s->trees++;
  }
}

/* Whether the daemon keeps a line run now, deciding as it does: a line
 * of the innermost known frame's own file (the same path text, as path
 * ids are) is kept when that frame is recorded; a line of another file
 * (a required file's top level, a class body, eval'd code) or with no
 * known frame when that file is; none below a skip-tree. */
bool ctr__rb_line_kept(const ctr_rb_stack_t *s, ctr_rb_path_t *p) {
  for (size_t i = s->n; i-- > 0;) {
    const ctr_rb_frame_t *fr = &s->frames[i];
    if (!fr->known)
      continue;
    if (fr->action == CTR_FILTER_SKIP_TREE)
      return false;
    if (fr->src == p ||
        (fr->src->len == p->len && memcmp(fr->src->abs, p->abs, p->len) == 0))
      return fr->action == CTR_FILTER_RECORD;
    break;
  }
  return ctr_rb_path_action(p) == CTR_FILTER_RECORD;
}
