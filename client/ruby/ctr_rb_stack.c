/* ctr_rb_stack.c: the shadow stacks, one per fiber, and frame locals.
 *
 * Frames: the shim keeps a shadow stack per fiber (a thread's own code runs
 * in its root fiber), with one entry per method and block frame. Each fiber
 * has its own wire thread id, so a fiber that yields in the middle of a
 * method (Enumerator#next, Fiber.yield) never interleaves its calls with
 * another fiber's. Each entry remembers whether a CALL was sent, which keeps
 * every RETURN matched with its CALL.
 *
 * Blocks: a block that runs inside the frame that created it (each, times,
 * yield to a block written in the caller...) is not a call of its own: its
 * lines are steps of that frame, which is how the reference Ruby recorder
 * shows them. A block that runs anywhere else (a proc or lambda called from
 * another method, a block passed down and yielded to further away) is
 * recorded as a call of "block in <method>", so its body never shows up as
 * steps of an unrelated frame.
 *
 * Locals: reading a frame's variables needs a Binding. One Binding (and the
 * list of its variable names) is made per frame, on the first event that
 * needs it, and reused by every later line of that frame: after the first
 * Binding the frame's environment lives on the heap and the Binding sees
 * every later assignment.
 *
 * Resume: on resume each fiber rebuilds its shadow stack from the live Ruby
 * stack and sends it as STACK (with the frames' current locals) before
 * anything else. */
#include <ruby.h>
#include <ruby/debug.h>
#include <stdlib.h>
#include <string.h>

#include "ctr_rb.h"

static struct {
  ctr_rb_stack_t *stacks;
  VALUE main_fiber;
} g;

void ctr__rb_stacks_init(void) { g.main_fiber = rb_fiber_current(); }

void ctr__rb_stacks_mark(void) {
  for (ctr_rb_stack_t *s = g.stacks; s; s = s->next) {
    rb_gc_mark(s->objid);
    rb_gc_mark(s->vals);
    rb_gc_mark(s->top.frame);
    rb_gc_mark(s->top.path);
    rb_gc_mark(s->top.binding);
    rb_gc_mark(s->top.names);
    for (size_t i = 0; i < s->n; i++) {
      const ctr_rb_frame_t *f = &s->frames[i];
      rb_gc_mark(f->klass);
      rb_gc_mark(f->mid);
      rb_gc_mark(f->self);
      rb_gc_mark(f->frame);
      rb_gc_mark(f->path);
      rb_gc_mark(f->binding);
      rb_gc_mark(f->names);
    }
  }
}

void ctr__rb_stacks_unsend(void) {
  for (ctr_rb_stack_t *s = g.stacks; s; s = s->next) {
    for (size_t i = 0; i < s->n; i++)
      s->frames[i].sent = s->frames[i].known = s->frames[i].tree = false;
    s->trees = 0;
  }
}

void ctr__rb_stacks_clear(void) {
  for (ctr_rb_stack_t *s = g.stacks; s; s = s->next)
    ctr__rb_stack_clear(s);
}

/* A fiber other than the main one whose stack empties has finished (or is
 * between two runs that open fresh frames): its stack is released. */
void ctr__rb_stack_release(ctr_rb_stack_t *s) {
  if (s->n == 0 && s->nested == 0 && s->fiber != g.main_fiber)
    ctr__rb_stack_free(s);
}

void ctr__rb_stack_clear(ctr_rb_stack_t *s) {
  ctr__rb_tree_end(s);
  s->n = 0;
  s->trees = s->nested = 0;
  s->top.frame = s->top.path = 0;
  s->top.binding = s->top.names = Qnil;
}

static ctr_rb_stack_t *ctr_rb_stack_new(VALUE fiber, VALUE objid) {
  ctr_rb_stack_t *s = calloc(1, sizeof *s);
  if (s == NULL)
    return NULL;
  s->fiber = fiber;
  s->thread = rb_thread_current();
  s->objid = objid;
  s->vals = rb_ary_new();
  s->wire_id = fiber == g.main_fiber ? 0 : NUM2ULL(objid);
  s->epoch = ctr__rb.epoch;
  ctr__rb_stack_clear(s);
  s->next = g.stacks;
  g.stacks = s;
  return s;
}

void ctr__rb_stack_free(ctr_rb_stack_t *s) {
  for (ctr_rb_stack_t **pp = &g.stacks; *pp; pp = &(*pp)->next) {
    if (*pp == s) {
      *pp = s->next;
      break;
    }
  }
  if (ctr__rb.cur == s)
    ctr__rb.cur = NULL;
  ctr__rb_tree_end(s);
  free(s->frames);
  free(s);
}

/* The current fiber's stack. The object id is checked only when the fiber
 * changed since the last event, which is rare. While the full hook is
 * installed every fiber switch reaches it and forgets ctr__rb.cur, so with a
 * single thread (nothing can switch without an event) the last event's
 * stack is still the current one: no need to ask Ruby for the fiber. */
ctr_rb_stack_t *ctr__rb_stack_get(void) {
  if (ctr__rb.cur != NULL && ctr__rb.hooked && rb_thread_alone())
    return ctr__rb.cur;
  VALUE fiber = rb_fiber_current();
  if (ctr__rb.cur && ctr__rb.cur->fiber == fiber)
    return ctr__rb.cur;
  VALUE objid = fiber == g.main_fiber ? INT2FIX(0) : rb_obj_id(fiber);
  ctr_rb_stack_t *s;
  for (s = g.stacks; s; s = s->next)
    if (s->fiber == fiber)
      break;
  if (s != NULL && !rb_eql(s->objid, objid)) {
    /* A dead fiber's address was reused: its stack means nothing now. */
    ctr__rb_stack_free(s);
    s = NULL;
  }
  if (s == NULL)
    s = ctr_rb_stack_new(fiber, objid);
  ctr__rb.cur = s;
  return s;
}

void ctr__rb_stacks_drop_thread(VALUE th) {
  ctr_rb_stack_t *s = g.stacks;
  while (s != NULL) {
    ctr_rb_stack_t *next = s->next;
    if (s->thread == th && s->fiber != g.main_fiber)
      ctr__rb_stack_free(s);
    s = next;
  }
}

ctr_rb_frame_t *ctr__rb_push(ctr_rb_stack_t *s) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    ctr_rb_frame_t *f = realloc(s->frames, cap * sizeof *f);
    if (f == NULL)
      return NULL;
    s->frames = f;
    s->cap = cap;
  }
  ctr_rb_frame_t *f = &s->frames[s->n++];
  f->klass = f->mid = f->self = Qnil;
  f->frame = f->path = 0;
  f->binding = f->names = Qnil;
  f->func = NULL;
  f->src = NULL;
  f->sent = f->known = f->tree = f->block = false;
  f->action = CTR_FILTER_RECORD;
  return f;
}

/* Pops one frame; returns whether a CALL was sent for it. */
bool ctr__rb_pop(ctr_rb_stack_t *s) {
  if (s->n == 0)
    return false; /* a frame entered before recording started */
  ctr_rb_frame_t *f = &s->frames[--s->n];
  if (f->tree)
    s->trees--;
  return f->sent;
}

/* Packs THREAD when the events come from another fiber than last time. */
void ctr__rb_pack_thread(msgpack_packer *pk, const ctr_rb_stack_t *s) {
  uint64_t id = s != NULL ? s->wire_id : 0;
  if (id != ctr__rb.sent_thread) {
    ctr_pack_thread(pk, id);
    ctr__rb.sent_thread = id;
  }
}

/* Identity of the code running in the current frame: the method entry for
 * a method (and its blocks), else the iseq. Both are stable objects. */
VALUE ctr__rb_frame_id(void) {
  VALUE buf[1];
  int lines[1];
  if (rb_profile_frames(0, 1, buf, lines) < 1)
    return 0;
  return buf[0];
}

/* ---- gathering values through the frame's binding ------------------------ */

static VALUE ctr_rb_names_body(VALUE binding) {
  VALUE all = rb_funcall(binding, ctr__rb_id.local_variables, 0);
  Check_Type(all, T_ARRAY);
  return all;
}

static VALUE ctr_rb_values_body(VALUE arg) {
  ctr_rb_gather_t *ga = (ctr_rb_gather_t *)arg;
  long n = RARRAY_LEN(ga->names);
  for (long i = 0; i < n; i++)
    rb_ary_push(ga->vals, rb_funcall(ga->binding, ctr__rb_id.local_variable_get,
                                     1, RARRAY_AREF(ga->names, i)));
  return Qnil;
}

/* Binding and variable names of the frame running now, made once per
 * frame. `f` is the shadow entry the event belongs to (NULL: the top level
 * of the script or thread). A frame no event opened (a class body, a
 * required file, eval'd code) is recognised by its code identity or path
 * differing from the entry's, and gets a fresh Binding each time. `known`
 * is the frame's variable names when the caller knows them, else Qundef. */
bool ctr__rb_frame_vars(rb_trace_arg_t *targ, ctr_rb_stack_t *s,
                        ctr_rb_frame_t *f, VALUE path, VALUE known,
                        ctr_rb_gather_t *ga) {
  VALUE fid = ctr__rb_frame_id();
  VALUE *slot_frame = f ? &f->frame : &s->top.frame;
  VALUE *slot_path = f ? &f->path : &s->top.path;
  VALUE *slot_binding = f ? &f->binding : &s->top.binding;
  VALUE *slot_names = f ? &f->names : &s->top.names;
  bool cache = true;
  if (*slot_frame == 0 || NIL_P(*slot_binding)) {
    *slot_frame = fid;
    *slot_path = path;
  } else if (*slot_frame != fid || *slot_path != path) {
    cache = f == NULL; /* the top level moves on (require); others nest */
    if (cache) {
      *slot_frame = fid;
      *slot_path = path;
      *slot_binding = *slot_names = Qnil;
    }
  } else {
    ga->binding = *slot_binding;
    ga->names = *slot_names;
    return !NIL_P(ga->names);
  }
  ga->binding = rb_tracearg_binding(targ);
  if (NIL_P(ga->binding))
    return false;
  if (known != Qundef) {
    ga->names = known;
  } else {
    int state = 0;
    ga->names = rb_protect(ctr_rb_names_body, ga->binding, &state);
    if (state) {
      rb_set_errinfo(Qnil);
      ga->names = Qnil;
      return false;
    }
  }
  if (cache) {
    *slot_binding = ga->binding;
    *slot_names = ga->names;
  }
  return true;
}

/* Reads the values of ga->names into ga->vals. Runs before
 * ctr_client_begin: Binding#local_variable_get is C and reads the
 * environment only, but Ruby may switch threads on its way back, and no
 * thread may do that while holding the batch lock. Each fiber has its own
 * scratch Array for the same reason. */
bool ctr__rb_read_values(ctr_rb_gather_t *ga) {
  rb_ary_clear(ga->vals);
  if (NIL_P(ga->names) || RARRAY_LEN(ga->names) == 0)
    return true;
  int state = 0;
  rb_protect(ctr_rb_values_body, (VALUE)ga, &state);
  if (state) {
    rb_set_errinfo(Qnil);
    rb_ary_clear(ga->vals);
    return false;
  }
  return true;
}

/* Whether a block starting now runs inside the frame that created it: the
 * innermost known frame is the block's home method on the same self. A
 * frame of code the rules skip is known too, so a block that library code
 * yields to is a call of its own (under its nearest recorded caller); only
 * frames the hook ignores (code without a path) do not count. With no
 * known frame the block must come from the top level. */
bool ctr__rb_block_at_home(const ctr_rb_stack_t *s, const ctr_rb_frame_t *b) {
  for (size_t i = s->n - 1; i-- > 0;) {
    const ctr_rb_frame_t *f = &s->frames[i];
    if (!f->known)
      continue;
    return f->mid == b->mid && f->klass == b->klass && f->self == b->self;
  }
  return !SYMBOL_P(b->mid);
}

/* ---- resume: the live stack ------------------------------------------------
 */

/* One Ruby frame of the live stack, innermost first: [iseq, class, self,
 * binding, line]. C frames are left out. */
static VALUE ctr_rb_collect(const rb_debug_inspector_t *dc, void *arg) {
  (void)arg;
  VALUE locs = rb_debug_inspector_backtrace_locations(dc);
  VALUE out = rb_ary_new();
  for (long i = 0; i < RARRAY_LEN(locs); i++) {
    VALUE iseq = rb_debug_inspector_frame_iseq_get(dc, i);
    if (NIL_P(iseq))
      continue;
    VALUE e = rb_ary_new_capa(5);
    rb_ary_push(e, iseq);
    rb_ary_push(e, rb_debug_inspector_frame_class_get(dc, i));
    rb_ary_push(e, rb_debug_inspector_frame_self_get(dc, i));
    rb_ary_push(e, rb_debug_inspector_frame_binding_get(dc, i));
    rb_ary_push(e, rb_funcall(RARRAY_AREF(locs, i), ctr__rb_id.lineno, 0));
    rb_ary_push(out, e);
  }
  return out;
}

/* What kind of frame an iseq label names: 1 a method, 2 a block, 0 code
 * that no call event opens (<main>, <class:X>, rescue in, ...). For a
 * block, *home is the label of its home. */
static int ctr_rb_label_kind(const char *l, const char **home) {
  if (strncmp(l, "block ", 6) == 0) {
    const char *in = strstr(l, " in ");
    *home = in ? in + 4 : "";
    return 2;
  }
  if (strncmp(l, "rescue in ", 10) == 0 || strncmp(l, "ensure in ", 10) == 0)
    return 0;
  if (l[0] == '<' &&
      ((l[1] >= 'a' && l[1] <= 'z') || (l[1] >= 'A' && l[1] <= 'Z')))
    return 0;
  return 1;
}

static VALUE ctr_rb_inspect_body(VALUE arg) {
  (void)arg;
  return rb_debug_inspector_open(ctr_rb_collect, NULL);
}

/* Per live frame: [iseq path, first line, label] and its variables. */
static VALUE ctr_rb_frame_meta_body(VALUE iseq) {
  VALUE m = rb_ary_new_capa(3);
  rb_ary_push(m, rb_funcall(iseq, ctr__rb_id.path, 0));
  rb_ary_push(m, rb_funcall(iseq, ctr__rb_id.first_lineno, 0));
  rb_ary_push(m, rb_funcall(iseq, ctr__rb_id.label, 0));
  return m;
}

/* Rebuilds `s` from the live Ruby stack, as the hook would have built it,
 * and sends the known frames (the ones the daemon is sent CALL for) as
 * STACK with their current lines and locals. With `entering` the innermost
 * frame is the one a call event is opening: the hook pushes it itself. */
void ctr__rb_resync(ctr_rb_stack_t *s, bool entering) {
  s->epoch = ctr__rb.epoch;
  ctr__rb_stack_clear(s);
  int state = 0;
  VALUE live = rb_protect(ctr_rb_inspect_body, Qnil, &state);
  if (state || !RB_TYPE_P(live, T_ARRAY)) {
    rb_set_errinfo(Qnil);
    live = rb_ary_new();
  }
  /* [frame index, line, names, values] per frame sent. */
  VALUE sent = rb_ary_new();
  long first = entering ? 1 : 0;
  for (long i = RARRAY_LEN(live) - 1; i >= first; i--) {
    VALUE e = RARRAY_AREF(live, i);
    VALUE meta = rb_protect(ctr_rb_frame_meta_body, RARRAY_AREF(e, 0), &state);
    if (state) {
      rb_set_errinfo(Qnil);
      continue;
    }
    VALUE path = RARRAY_AREF(meta, 0), label = RARRAY_AREF(meta, 2);
    if (!RB_TYPE_P(path, T_STRING) || !RB_TYPE_P(label, T_STRING) ||
        !FIXNUM_P(RARRAY_AREF(meta, 1)))
      continue;
    const char *home = NULL;
    int kind = ctr_rb_label_kind(StringValueCStr(label), &home);
    if (kind == 0)
      continue;
    if (s->trees > 0) {
      s->nested++;
      continue;
    }
    ctr_rb_frame_t *fr = ctr__rb_push(s);
    if (fr == NULL)
      break;
    fr->klass = RARRAY_AREF(e, 1);
    fr->self = RARRAY_AREF(e, 2);
    fr->block = kind == 2;
    if (kind == 1)
      fr->mid = rb_str_intern(label);
    else if (!NIL_P(fr->klass))
      fr->mid = ID2SYM(rb_intern(home));
    ctr_rb_path_t *p = ctr__rb_path_info(path);
    if (p != NULL && (p->evalish || p->reloaded)) {
      ctr_rb_path_t *ep = ctr__rb_eval_path_of(RARRAY_AREF(e, 0));
      if (ep != NULL)
        p = ep;
    }
    if (p == NULL || p->skip || (fr->block && ctr__rb_block_at_home(s, fr)))
      continue;
    ctr_rb_func_t *f = ctr__rb_func_lookup(
        fr->klass, fr->mid, path, FIX2LONG(RARRAY_AREF(meta, 1)), fr->block, p);
    if (f == NULL)
      continue;
    ctr__rb_enter(s, fr, f, p);
    if (fr->action != CTR_FILTER_RECORD)
      continue;
    fr->sent = true;
    ctr_rb_gather_t ga = {RARRAY_AREF(e, 3), Qnil, rb_ary_new()};
    if (ctr__rb.vmode != CTR_WV_NONE && !NIL_P(ga.binding)) {
      ga.names = rb_protect(ctr_rb_names_body, ga.binding, &state);
      if (state) {
        rb_set_errinfo(Qnil);
        ga.names = Qnil;
      } else if (ctr__rb.vmode == CTR_WV_ARGS && !fr->block) {
        ga.names = f->param_names;
      }
      if (!ctr__rb_read_values(&ga))
        ga.names = Qnil;
    }
    VALUE rec = rb_ary_new_capa(5);
    rb_ary_push(rec, LONG2NUM((long)(s->n - 1)));
    rb_ary_push(rec, RARRAY_AREF(e, 4));
    rb_ary_push(rec, ga.names);
    rb_ary_push(rec, ga.vals);
    rb_ary_push(rec, path);
    rb_ary_push(sent, rec);
  }

  msgpack_packer *pk = ctr_client_begin();
  if (pk == NULL)
    return;
  msgpack_sbuffer_clear(&ctr__rb.scratch_buf);
  long nsent = RARRAY_LEN(sent);
  for (long i = 0; i < nsent; i++) {
    VALUE rec = RARRAY_AREF(sent, i);
    ctr_rb_frame_t *fr = &s->frames[NUM2LONG(RARRAY_AREF(rec, 0))];
    ctr_rb_func_t *f = fr->func;
    ctr_rb_path_t *p = ctr__rb_path_info(RARRAY_AREF(rec, 4));
    ctr__rb_func_id(pk, f, ctr__rb_path_id(pk, p));
    VALUE names = RARRAY_AREF(rec, 2), vals = RARRAY_AREF(rec, 3);
    VALUE line = RARRAY_AREF(rec, 1);
    uint32_t nvars = 0;
    if (ctr__rb.vmode != CTR_WV_NONE)
      nvars = 1 + (uint32_t)(NIL_P(names) ? 0 : RARRAY_LEN(vals));
    ctr_pack_frame_begin(&ctr__rb.scratch, f->id,
                         FIXNUM_P(line) ? FIX2LONG(line) : 0, nvars);
    if (ctr__rb.vmode != CTR_WV_NONE) {
      uint32_t sid = ctr__rb_varname_id_lit(pk, "self");
      ctr_pack_pair_begin(&ctr__rb.scratch, sid);
      ctr__rb_value_message();
      ctr__rb_value_pack(pk, &ctr__rb.scratch, fr->self);
      if (!NIL_P(names))
        ctr__rb_value_pairs(pk, names, vals);
    }
  }
  ctr_pack_stack_begin(pk, s->wire_id, (uint32_t)nsent);
  ctr__rb_value_flush(pk);
  ctr__rb.sent_thread = s->wire_id; /* STACK switched the daemon's thread */
  ctr_client_end();
  RB_GC_GUARD(live);
  RB_GC_GUARD(sent);
}
