/* ctr_rb_hooks.c: the event hook, and what it sends for each event.
 *
 * It uses the C tracing API (rb_add_event_hook2 with raw trace args) for
 * line, call, return, block and raise events.
 *
 * Pause: when the daemon pauses the session (ctrecctl stop, outside the
 * time windows, a limit) the full hook is replaced by a wake hook on method
 * and block calls only, which just checks the client's flag. libctrec reads
 * RESUME on its own thread, and Ruby 3.1 has no safe way for a foreign
 * thread to interrupt a Ruby thread (rb_postponed_job_register needs the
 * caller's execution context), so a cheap hook that stays installed is the
 * way back. On resume each fiber rebuilds its shadow stack and sends it
 * (ctr__rb_resync). */
#include <ruby.h>
#include <ruby/debug.h>

#include "ctr_enc.h"
#include "ctr_rb.h"

/* While paused: calls notice a resume, thread ends free their stacks. */
#define CTR_RB_WAKE_EVENTS                                                     \
  (RUBY_EVENT_CALL | RUBY_EVENT_B_CALL | RUBY_EVENT_THREAD_END)

/* STEP, encoded straight into the batch: steps are most messages. */
static void ctr_rb_pack_step(uint32_t pid, long line) {
  unsigned char *start = ctr_client_reserve(CTR_ENC_STEP_MAX);
  if (start != NULL)
    ctr_client_commit((size_t)(ctr_enc_step(start, pid, line) - start));
}

/* RETURN of no value (values: none), in one write like STEP. */
static void ctr_rb_pack_return_none(msgpack_packer *pk) {
  uint32_t tid = ctr__rb_type_id_lit(pk, CTR_TK_NONE, "NilClass");
  unsigned char *start = ctr_client_reserve(2 + CTR_ENC_SCALAR_MAX);
  if (start == NULL)
    return;
  unsigned char *p = ctr_enc_head(start, 2, CTR_MSG_RETURN);
  p = ctr_enc_value_head(p, 2, CTR_V_NONE, tid);
  ctr_client_commit((size_t)(p - start));
}

static void ctr_rb_on_line(rb_trace_arg_t *targ, ctr_rb_stack_t *s, VALUE path,
                           ctr_rb_path_t *p) {
  long line = NUM2LONG(rb_tracearg_lineno(targ));
  if (ctr__rb.vmode != CTR_WV_ALL) {
    msgpack_packer *pk = ctr_client_begin();
    if (pk == NULL)
      return;
    ctr__rb_pack_thread(pk, s);
    ctr_rb_pack_step(ctr__rb_path_id(pk, p), line);
    ctr_client_end();
    return;
  }
  ctr_rb_gather_t ga = {Qnil, Qnil, s->vals};
  bool vars = false;
  if (ctr__rb.vmode == CTR_WV_ALL) {
    ctr_rb_frame_t *f = s->n ? &s->frames[s->n - 1] : NULL;
    vars = ctr__rb_frame_vars(targ, s, f, path, Qundef, &ga) &&
           ctr__rb_read_values(&ga);
  }
  msgpack_packer *pk = ctr_client_begin();
  if (pk == NULL)
    return;
  ctr__rb_pack_thread(pk, s);
  uint32_t pid = ctr__rb_path_id(pk, p);
  ctr_rb_pack_step(pid, line);
  if (ctr__rb.vmode == CTR_WV_ALL) {
    ctr__rb_value_message();
    uint32_t n = vars ? ctr__rb_value_pairs(pk, ga.names, ga.vals) : 0;
    ctr_pack_vars_begin(pk, n);
    ctr__rb_value_flush(pk);
  }
  ctr_client_end();
  RB_GC_GUARD(ga.names);
  RB_GC_GUARD(ga.binding);
}

/* A message left out by push-down would have switched the daemon to this
 * fiber's thread, which shows in the trace: switch it all the same. */
static void ctr_rb_note_thread(const ctr_rb_stack_t *s) {
  if (s->wire_id == ctr__rb.sent_thread)
    return;
  msgpack_packer *pk = ctr_client_begin();
  if (pk == NULL)
    return;
  ctr__rb_pack_thread(pk, s);
  ctr_client_end();
}

/* Sends CALL for the frame `fr` just pushed (a method, or a block that runs
 * away from home). Arguments are read after defaults are bound: Ruby fires
 * the call event once the parameters are set up. */
static void ctr_rb_on_call(rb_trace_arg_t *targ, ctr_rb_stack_t *s,
                           ctr_rb_frame_t *fr, ctr_rb_func_t *f, VALUE path,
                           ctr_rb_path_t *p, bool block) {
  VALUE self = fr->self;
  ctr_rb_gather_t ga = {Qnil, Qnil, s->vals};
  bool args = false;
  if (ctr__rb.vmode != CTR_WV_NONE && (block || f->nparams > 0)) {
    args = ctr__rb_frame_vars(targ, s, fr, path,
                              block ? Qundef : f->local_names, &ga);
    if (args && !block) {
      if (f->local_names == Qundef)
        f->local_names = rb_obj_freeze(ga.names);
      /* Only the parameters, in their declared order. */
      ga.names = f->param_names;
    }
    args = args && ctr__rb_read_values(&ga);
  }

  msgpack_packer *pk = ctr_client_begin();
  if (pk == NULL)
    return;
  fr->sent = true;
  ctr__rb_pack_thread(pk, s);
  ctr__rb_func_id(pk, f, ctr__rb_path_id(pk, p));
  uint32_t n = 0;
  if (ctr__rb.vmode != CTR_WV_NONE) {
    uint32_t sid = ctr__rb_varname_id_lit(pk, "self");
    ctr_pack_pair_begin(&ctr__rb.scratch, sid);
    ctr__rb_value_message();
    ctr__rb_value_pack(pk, &ctr__rb.scratch, self);
    n = 1 + (args ? ctr__rb_value_pairs(pk, ga.names, ga.vals) : 0);
  }
  ctr_pack_call_begin(pk, f->id, n);
  if (n > 0)
    ctr__rb_value_flush(pk);
  ctr_client_end();
  RB_GC_GUARD(ga.names);
  RB_GC_GUARD(ga.binding);
  RB_GC_GUARD(self);
}

void ctr__rb_on_return(rb_trace_arg_t *targ, ctr_rb_stack_t *s) {
  if (ctr__rb.vmode == CTR_WV_NONE) {
    msgpack_packer *pk = ctr_client_begin();
    if (pk == NULL)
      return;
    ctr__rb_pack_thread(pk, s);
    ctr_rb_pack_return_none(pk);
    ctr_client_end();
    return;
  }
  VALUE v = rb_tracearg_return_value(targ);
  msgpack_packer *pk = ctr_client_begin();
  if (pk == NULL)
    return;
  ctr__rb_pack_thread(pk, s);
  ctr__rb_value_message();
  ctr__rb_value_pack(pk, &ctr__rb.scratch, v);
  ctr_pack_return_begin(pk);
  ctr__rb_value_flush(pk);
  ctr_client_end();
  RB_GC_GUARD(v);
}

static void ctr_rb_on_raise(rb_trace_arg_t *targ, ctr_rb_stack_t *s) {
  VALUE exc = rb_tracearg_raised_exception(targ);
  VALUE cls = ctr__rb_class_name(rb_obj_class(exc));
  /* The stored message, not #message, which user code may override. */
  VALUE mesg = rb_attr_get(exc, ctr__rb_id.mesg);
  if (!RB_TYPE_P(mesg, T_STRING))
    mesg = cls;
  msgpack_packer *pk = ctr_client_begin();
  if (pk == NULL)
    return;
  ctr__rb_pack_thread(pk, s);
  ctr_pack_raise(pk, RSTRING_PTR(cls), (size_t)RSTRING_LEN(cls),
                 RSTRING_PTR(mesg), (size_t)RSTRING_LEN(mesg));
  ctr_client_end();
  RB_GC_GUARD(exc);
  RB_GC_GUARD(cls);
  RB_GC_GUARD(mesg);
}

/* Paused: only the wake hook stays. The shadow stacks are dropped; they
 * are rebuilt from the live stack on resume. */
void ctr__rb_hooks_pause(void) {
  if (!ctr__rb.hooked)
    return;
  ctr__rb.hooked = false;
  rb_remove_event_hook(CTR_RB_HOOK_FN);
  rb_add_event_hook2(CTR_RB_WAKE_HOOK_FN, CTR_RB_WAKE_EVENTS, Qnil,
                     CTR_RB_HOOK_FLAGS);
  ctr__rb_stacks_clear();
}

void ctr__rb_hooks_resume(void) {
  if (ctr__rb.hooked)
    return;
  ctr__rb.hooked = true;
  rb_remove_event_hook(CTR_RB_WAKE_HOOK_FN);
  rb_add_event_hook2(CTR_RB_HOOK_FN, CTR_RB_EVENTS, Qnil, CTR_RB_HOOK_FLAGS);
  /* Every stack went stale while unhooked: each is rebuilt (and sent) on
   * its fiber's next event. This is the RESUME's STACK. */
  (void)ctr_client_take_resume();
  ctr__rb.epoch++;
  ctr__rb.cur = NULL; /* fibers switched unseen while paused */
}

/* Before anything is sent: after a RESUME this fiber's stack goes out
 * first. Call with the client active. */
void ctr__rb_sync_slow(ctr_rb_stack_t *s, bool entering) {
  if (!ctr__rb.hooked)
    ctr__rb_hooks_resume();
  if (ctr_client_take_resume())
    ctr__rb.epoch++;
  if (s->epoch != ctr__rb.epoch)
    ctr__rb_resync(s, entering);
}

/* Runs on every event: nothing to do unless paused, resumed or stale. */
void ctr__rb_hook(VALUE data, rb_trace_arg_t *targ) {
  rb_event_flag_t ev = rb_tracearg_event_flag(targ);
  if (ev == RUBY_EVENT_THREAD_END) {
    ctr__rb_stacks_drop_thread(rb_thread_current());
    return;
  }
  if (ev == RUBY_EVENT_FIBER_SWITCH || ev == RUBY_EVENT_THREAD_BEGIN) {
    ctr__rb.cur = NULL;
    ctr__rb_tree_switch();
    return;
  }
  if (ctr__rb.loader != 0) {
    /* The rest of the require that loaded the shim: not the program. */
    if (ev == RUBY_EVENT_RETURN && ctr__rb_frame_id() == ctr__rb.loader)
      ctr__rb.loader = 0;
    return;
  }
  if (!ctr_client_active()) {
    ctr__rb_hooks_pause();
    return;
  }
  /* Before any pop: after fork, frames of the parent's trace are no
   * longer "sent" in the child's. */
  ctr__rb_check_generation();
  ctr_rb_stack_t *s = ctr__rb_stack_get();
  if (s == NULL)
    return;
  bool call = ev == RUBY_EVENT_CALL || ev == RUBY_EVENT_B_CALL;
  ctr__rb_sync(s, call);
  bool ret = ev == RUBY_EVENT_RETURN || ev == RUBY_EVENT_B_RETURN;
  if (s->ftree != NULL && ev != RUBY_EVENT_RAISE)
    return; /* a fast tree's code, seen while the hook is wide */
  if (s->nested > 0 || s->trees > 0) {
    /* Inside a skip-tree: count frames, send nothing but errors. */
    if (call) {
      s->nested++;
      ctr_client_filtered(1);
      return;
    }
    if (ret && s->nested > 0) {
      s->nested--;
      ctr_client_filtered(1);
      return;
    }
    if (ev == RUBY_EVENT_LINE) {
      ctr_client_filtered(1);
      return;
    }
  }
  if (ret) {
    /* A frame the daemon would have been told of, skipped by push-down. */
    if (s->n > 0 && s->frames[s->n - 1].known && !s->frames[s->n - 1].sent)
      ctr_client_filtered(1);
    if (ctr__rb_pop(s))
      ctr__rb_on_return(targ, s);
    ctr__rb_stack_release(s);
    return;
  }
  VALUE path = rb_tracearg_path(targ);
  ctr_rb_path_t *p = RB_TYPE_P(path, T_STRING) ? ctr__rb_path_info(path) : NULL;
  if (p != NULL && (p->evalish || p->reloaded)) {
    ctr_rb_path_t *e = ctr__rb_eval_path();
    if (e != NULL)
      p = e;
  }
  bool record = p != NULL && !p->skip;
  switch (ev) {
  case RUBY_EVENT_CALL:
  case RUBY_EVENT_B_CALL: {
    ctr_rb_frame_t *fr = ctr__rb_push(s);
    if (fr == NULL)
      return;
    fr->klass = rb_tracearg_defined_class(targ);
    fr->mid = rb_tracearg_method_id(targ);
    fr->self = rb_tracearg_self(targ);
    fr->block = ev == RUBY_EVENT_B_CALL;
    if (!record || (fr->block && ctr__rb_block_at_home(s, fr)))
      break;
    if (ctr__rb_path_skips(p)) {
      fr->src = p;
      fr->known = true;
      fr->action = CTR_FILTER_SKIP;
      ctr_rb_note_thread(s);
      ctr_client_filtered(1);
      break;
    }
    ctr_rb_func_t *f = ctr__rb_func_info(targ, path, fr->block, p);
    if (f == NULL)
      break;
    ctr__rb_enter(s, fr, f, p);
    if (fr->action == CTR_FILTER_RECORD) {
      ctr_rb_on_call(targ, s, fr, f, path, p, fr->block);
    } else {
      ctr_rb_note_thread(s);
      ctr_client_filtered(1);
      if (fr->tree && s->trees == 1 && ev == RUBY_EVENT_CALL)
        ctr__rb_tree_begin(s, f);
    }
    break;
  }
  case RUBY_EVENT_LINE:
    if (!record)
      break;
    if (ctr__rb_line_kept(s, p)) {
      ctr_rb_on_line(targ, s, path, p);
    } else {
      ctr_rb_note_thread(s);
      ctr_client_filtered(1);
    }
    break;
  case RUBY_EVENT_RAISE:
    if (record)
      ctr_rb_on_raise(targ, s);
    break;
  default:
    break;
  }
}

/* Installed while paused: the first call after a resume puts the full
 * hook back and hands it this event. */
void ctr__rb_wake_hook(VALUE data, rb_trace_arg_t *targ) {
  if (rb_tracearg_event_flag(targ) == RUBY_EVENT_THREAD_END) {
    ctr__rb_stacks_drop_thread(rb_thread_current());
    return;
  }
  if (!ctr_client_active())
    return;
  ctr__rb_hooks_resume();
  ctr__rb_hook(data, targ);
}

void ctr__rb_empty_hook(VALUE data, rb_trace_arg_t *targ) {
  (void)data;
  (void)targ;
}
