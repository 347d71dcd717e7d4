/* ctr_rb_tree.c: fast skip-tree.
 *
 * Inside a skip-tree nothing but errors is sent, yet Ruby calls the hook
 * for every line, call and return of the tree, which costs more than the
 * code itself. When a method frame opens a skip-tree on the only thread,
 * the hook is narrowed to CTR_RB_TREE_EVENTS and a TracePoint targeted at
 * the root method's own code reports its return. Ruby's trace
 * instructions stay in place once an event was enabled, so narrowing and
 * widening the hook costs no rewrite of the program's code. The root's
 * frame is told apart from recursive calls of the same method by the
 * depth of the Ruby stack. A new thread, or a switch to a fiber that is
 * not in the tree, widens the hook again: the tree's events are then
 * ignored until its root returns. */
#include <ruby.h>
#include <ruby/debug.h>
#include <stdlib.h>

#include "ctr_rb.h"

/* Inside a skip-tree on the only thread: no event that code fires, only
 * errors and the events that tell another thread or fiber is running. */
#define CTR_RB_TREE_EVENTS                                                     \
  (RUBY_EVENT_RAISE | RUBY_EVENT_THREAD_BEGIN | RUBY_EVENT_THREAD_END |        \
   RUBY_EVENT_FIBER_SWITCH)
/* Deepest Ruby stack a skip-tree root can be told apart in (frames). */
#define CTR_RB_DEPTH_MAX 8192

static struct {
  bool reduced;  /* the hook has CTR_RB_TREE_EVENTS only */
  size_t ftrees; /* stacks inside a fast skip-tree */
} g;

/* Number of frames on the current fiber's Ruby stack, -1 when too deep. */
static long ctr_rb_depth(void) {
  static VALUE *buf;
  static int *lines;
  if (buf == NULL) {
    buf = malloc(CTR_RB_DEPTH_MAX * sizeof *buf);
    lines = malloc(CTR_RB_DEPTH_MAX * sizeof *lines);
    if (buf == NULL || lines == NULL) {
      free(buf);
      free(lines);
      buf = NULL;
      lines = NULL;
      return -1;
    }
  }
  int n = rb_profile_frames(0, CTR_RB_DEPTH_MAX, buf, lines);
  return n >= CTR_RB_DEPTH_MAX ? -1 : n;
}

/* Narrows (on) or widens the full hook's events. */
static void ctr_rb_reduce(bool on) {
  if (!ctr__rb.hooked) {
    g.reduced = false;
    return;
  }
  if (on == g.reduced)
    return;
  g.reduced = on;
  rb_remove_event_hook(CTR_RB_HOOK_FN);
  rb_add_event_hook2(CTR_RB_HOOK_FN, on ? CTR_RB_TREE_EVENTS : CTR_RB_EVENTS,
                     Qnil, CTR_RB_HOOK_FLAGS);
}

/* Leaves the fast path for `s`: its tree's events reach the hook again. */
void ctr__rb_tree_end(ctr_rb_stack_t *s) {
  ctr_rb_func_t *f = s->ftree;
  if (f == NULL)
    return;
  s->ftree = NULL;
  f->tree_stack = NULL;
  g.ftrees--;
  rb_tracepoint_disable(f->tree_tp);
  ctr_rb_reduce(false);
}

/* Narrows the hook when the fiber running now is inside a fast tree and
 * no other thread exists; widens it otherwise. */
static void ctr_rb_tree_balance(void) {
  ctr_rb_reduce(ctr__rb.cur != NULL && ctr__rb.cur->ftree != NULL &&
                ctr__rb.cur->fiber == rb_fiber_current() && rb_thread_alone());
}

static VALUE ctr_rb_tree_tp_body(VALUE arg) {
  ctr_rb_func_t *f = (ctr_rb_func_t *)arg;
  VALUE um =
      rb_funcall(f->key.klass, ctr__rb_id.instance_method, 1, f->key.mid);
  VALUE iseqc = rb_const_get(rb_const_get(rb_cObject, rb_intern("RubyVM")),
                             rb_intern("InstructionSequence"));
  VALUE iseq = rb_funcall(iseqc, ctr__rb_id.of, 1, um);
  if (NIL_P(iseq))
    return Qnil;
  /* The method's own code, not a block defined as a method or another
   * method under the same name. */
  VALUE label = rb_funcall(iseq, ctr__rb_id.label, 0);
  VALUE path = rb_funcall(iseq, ctr__rb_id.path, 0);
  VALUE line = rb_funcall(iseq, ctr__rb_id.first_lineno, 0);
  if (!RB_TYPE_P(label, T_STRING) ||
      !RTEST(rb_str_equal(label, rb_sym2str(f->key.mid))) ||
      !RB_TYPE_P(path, T_STRING) || !RTEST(rb_str_equal(path, f->key.path)) ||
      !FIXNUM_P(line) || FIX2LONG(line) != f->key.line)
    return Qnil;
  return iseq;
}

static void ctr_rb_tree_return(VALUE tpval, void *data);

/* Makes the root TracePoint of `f` once; false when it cannot have one. */
static bool ctr_rb_tree_tp(ctr_rb_func_t *f) {
  if (f->tree_tp_state == 0) {
    f->tree_tp_state = -1;
    if (!SYMBOL_P(f->key.mid) || !RB_TYPE_P(f->key.path, T_STRING) ||
        !(RB_TYPE_P(f->key.klass, T_CLASS) ||
          RB_TYPE_P(f->key.klass, T_MODULE)))
      return false;
    int state = 0;
    VALUE iseq = rb_protect(ctr_rb_tree_tp_body, (VALUE)f, &state);
    if (state) {
      rb_set_errinfo(Qnil);
      return false;
    }
    if (NIL_P(iseq))
      return false;
    f->tree_iseq = iseq;
    f->tree_tp = rb_tracepoint_new(0, RUBY_EVENT_RETURN, ctr_rb_tree_return, f);
    f->tree_tp_state = 1;
  }
  return f->tree_tp_state > 0;
}

static VALUE ctr_rb_tree_enable_body(VALUE arg) {
  ctr_rb_func_t *f = (ctr_rb_func_t *)arg;
  VALUE opts = rb_hash_new();
  rb_hash_aset(opts, ID2SYM(ctr__rb_id.target), f->tree_iseq);
  return rb_funcallv_kw(f->tree_tp, ctr__rb_id.enable, 1, &opts,
                        RB_PASS_KEYWORDS);
}

/* Called when the method frame just pushed on `s` opened a skip-tree. */
void ctr__rb_tree_begin(ctr_rb_stack_t *s, ctr_rb_func_t *f) {
  if (!ctr__rb.hooked || s->ftree != NULL || s->nested > 0 ||
      f->tree_stack != NULL || !rb_thread_alone() || !ctr_rb_tree_tp(f))
    return;
  long depth = ctr_rb_depth();
  if (depth < 0)
    return;
  int state = 0;
  rb_protect(ctr_rb_tree_enable_body, (VALUE)f, &state);
  if (state) {
    rb_set_errinfo(Qnil);
    f->tree_tp_state = -1;
    return;
  }
  s->ftree = f;
  s->fdepth = depth;
  g.ftrees++;
  f->tree_stack = s;
  ctr_rb_reduce(true);
}

/* The root TracePoint of a fast tree: its method returns, maybe from a
 * recursive call or in another fiber. */
static void ctr_rb_tree_return(VALUE tpval, void *data) {
  ctr_rb_func_t *f = data;
  ctr_rb_stack_t *s = f->tree_stack;
  if (s == NULL || s->fiber != rb_fiber_current() ||
      ctr_rb_depth() != s->fdepth)
    return;
  ctr__rb_tree_end(s);
  if (!ctr_client_active()) {
    ctr__rb_hooks_pause();
    return;
  }
  ctr__rb_check_generation();
  ctr__rb.cur = s;
  ctr__rb_sync(s, false);
  rb_trace_arg_t *targ = rb_tracearg_from_tracepoint(tpval);
  if (s->n > 0 && s->frames[s->n - 1].known && !s->frames[s->n - 1].sent)
    ctr_client_filtered(1);
  if (ctr__rb_pop(s))
    ctr__rb_on_return(targ, s);
  ctr__rb_stack_release(s);
}

void ctr__rb_tree_switch(void) {
  if (g.ftrees > 0) {
    (void)ctr__rb_stack_get();
    ctr_rb_tree_balance();
  }
}
