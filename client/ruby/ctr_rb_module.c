/* ctr_rb_module.c: the Ruby shim. `require 'ctrec'` records the program
 * into ctrecd when CT_RECORDER_SOCKET is set, and does nothing at all
 * otherwise.
 *
 * Init_ctrec starts the client and installs the event hook
 * (ctr_rb_hooks.c) and the output wrappers (ctr_rb_output.c); this file
 * also ends the session at exit, exit! and Process.daemon, and holds the
 * state every event reads (ctr_rb.h).
 *
 * Everything else comes from ctrec.yaml through the daemon. The one
 * environment switch, for tests/bench/ruby_bench.sh (README, "Environment
 * variables"): CTREC_BENCH_EMPTY_HOOK=1 installs a hook that does nothing
 * for the same events, and records nothing. */
#include <pthread.h>
#include <ruby.h>
#include <ruby/debug.h>
#include <ruby/version.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctr_rb.h"

#define CTR_RB_SHIM_VERSION CTREC_VERSION

ctr_rb_state_t ctr__rb;
ctr_rb_ids_t ctr__rb_id;

static struct {
  bool on;
  bool daemonize; /* Process.daemon is forking: the parent ends at once */
  VALUE keep;     /* marks the VALUEs the shim's tables use as keys */
} g;

/* rb_gc_mark pins: the tables and the stacks use object addresses. Fibers
 * and threads are not marked, so that a finished fiber can be collected. */
static void ctr_rb_keep_mark(void *p) {
  (void)p;
  rb_gc_mark(ctr__rb.loader);
  ctr__rb_names_mark();
  ctr__rb_stacks_mark();
}

static const rb_data_type_t ctr_rb_keep_type = {
    "ctrec_state", {ctr_rb_keep_mark, NULL, NULL}, NULL, NULL, 0};

/* Ids are per connection: after a fork the child's session starts from 0. */
void ctr__rb_new_generation(uint32_t gen) {
  ctr__rb.gen = gen;
  ctr__rb_names_reset(gen);
  ctr__rb_stacks_unsend();
  ctr__rb.sent_thread = UINT64_MAX;
}

static bool ctr_rb_env_is(const char *name, const char *value) {
  const char *v = getenv(name);
  return v != NULL && strcmp(v, value) == 0;
}

/* Ends the session: no events after this one. */
static void ctr_rb_finish(int64_t status) {
  rb_remove_event_hook(CTR_RB_HOOK_FN);
  rb_remove_event_hook(CTR_RB_WAKE_HOOK_FN);
  ctr_client_finish(status);
}

static void ctr_rb_end(VALUE data) {
  int64_t status = 0;
  VALUE err = rb_gv_get("$!");
  if (!NIL_P(err)) {
    status = 1;
    if (rb_obj_is_kind_of(err, rb_eSystemExit)) {
      VALUE st = rb_attr_get(err, ctr__rb_id.status);
      if (FIXNUM_P(st))
        status = FIX2LONG(st);
    } else {
      if (rb_obj_is_kind_of(err, rb_eSignal)) {
        VALUE signo = rb_attr_get(err, ctr__rb_id.signo);
        if (FIXNUM_P(signo))
          status = 128 + FIX2LONG(signo);
      }
      rb_remove_event_hook(CTR_RB_HOOK_FN);
      rb_remove_event_hook(CTR_RB_WAKE_HOOK_FN);
      ctr__rb.hooked = true; /* no hook may come back for the last output */
      ctr__rb_record_uncaught(err);
    }
  }
  ctr_rb_finish(status);
}

/* exit! skips at_exit handlers and the shim's end: finish first (flush and
 * BYE, a few syscalls), then let the original do its work. */
static VALUE ctr_rb_exit_bang(int argc, VALUE *argv, VALUE self) {
  int64_t status = 1;
  if (argc > 0) {
    if (argv[0] == Qtrue)
      status = 0;
    else if (argv[0] == Qfalse)
      status = 1;
    else if (FIXNUM_P(argv[0]))
      status = FIX2LONG(argv[0]);
  }
  if (ctr__rb_main_ractor())
    ctr_rb_finish(status);
  return rb_call_super(argc, argv);
}

/* Process.daemon forks, and the parent leaves with _exit at once: the
 * parent's session is ended from the fork handler below. */
static VALUE ctr_rb_daemon(int argc, VALUE *argv, VALUE self) {
  g.daemonize = ctr__rb_main_ractor();
  VALUE r = rb_call_super(argc, argv);
  g.daemonize = false;
  return r;
}

static void ctr_rb_atfork_parent(void) {
  if (g.daemonize) {
    g.daemonize = false;
    ctr_client_finish(0);
  }
}

/* Only the forking thread lives on in the child, maybe not the one of the
 * last event. */
static void ctr_rb_atfork_child(void) {
  g.daemonize = false;
  ctr__rb.cur = NULL;
}

/* The innermost Ruby-level `require` on the stack (rubygems' Kernel#require
 * when it is loaded), whose last lines run once the hook is in place. */
static VALUE ctr_rb_loader_frame(void) {
  VALUE buf[8];
  int lines[8];
  int n = rb_profile_frames(0, 8, buf, lines);
  for (int i = 0; i < n; i++) {
    VALUE name = rb_profile_frame_method_name(buf[i]);
    if (!NIL_P(rb_profile_frame_path(buf[i])) && RB_TYPE_P(name, T_STRING) &&
        strcmp(StringValueCStr(name), "require") == 0)
      return buf[i];
  }
  return 0;
}

static VALUE ctr_rb_main_body(VALUE arg) {
  VALUE b = rb_const_get(rb_cObject, rb_intern("TOPLEVEL_BINDING"));
  return rb_funcall(b, rb_intern("receiver"), 0);
}

/* `cwd` (4096 bytes) receives the working directory. */
static int ctr_rb_start_client(char *cwd) {
  if (getcwd(cwd, 4096) == NULL)
    strcpy(cwd, "/");

  VALUE prog = rb_gv_get("$0");
  VALUE abs = Qnil;
  if (RB_TYPE_P(prog, T_STRING)) {
    if (RSTRING_PTR(prog)[0] == '/') {
      abs = rb_str_dup(prog);
    } else if (RSTRING_PTR(prog)[0] == '-') {
      /* ruby -e and ruby - (stdin): the command, not a lone "-e", names
       * the program and its trace folder. */
      abs = rb_str_new_cstr("ruby ");
      rb_str_append(abs, prog);
    } else {
      abs = rb_str_new_cstr(cwd);
      rb_str_cat_cstr(abs, "/");
      rb_str_append(abs, prog);
    }
  }
  VALUE argv = rb_get_argv();
  long argc = RB_TYPE_P(argv, T_ARRAY) ? RARRAY_LEN(argv) : 0;
  const char **args = calloc((size_t)argc + 1, sizeof *args);
  if (args == NULL)
    return -1;
  for (long i = 0; i < argc; i++) {
    VALUE a = RARRAY_AREF(argv, i);
    args[i] = RB_TYPE_P(a, T_STRING) ? StringValueCStr(a) : "";
  }
  ctr_client_info_t info = {
      .lang = "ruby",
      .lang_version = ruby_version,
      .shim_version = CTR_RB_SHIM_VERSION,
      .program = NIL_P(abs) ? "" : StringValueCStr(abs),
      .argc = (int)argc,
      .argv = args,
  };
  int rc = ctr_client_start(&info);
  free(args);
  RB_GC_GUARD(abs);
  RB_GC_GUARD(argv);
  return rc;
}

/* Prepends a module with one C method to `target` (public or private). */
void ctr__rb_wrap(VALUE target, const char *name, VALUE (*fn)(ANYARGS),
                  int arity, bool private) {
  VALUE m = rb_module_new();
  if (private)
    rb_define_private_method(m, name, fn, arity);
  else
    rb_define_method(m, name, fn, arity);
  rb_gc_register_mark_object(m);
  rb_prepend_module(target, m);
}

/* ---- the program's API: Ctrec.mark, pause, resume, recording ------------ */

/* Each does nothing unless the program is being recorded, and none calls
 * a method of the program's or raises: the program behaves as untraced. */
static bool ctr_rb_api_on(void) { return g.on && ctr__rb_main_ractor(); }

static VALUE ctr_rb_api_mark(VALUE self, VALUE text) {
  if (!ctr_rb_api_on() || !ctr_client_active())
    return Qnil;
  /* Not text.to_s, which would run the program's code: its class name. */
  VALUE s = RB_TYPE_P(text, T_STRING) ? text : rb_str_new_cstr("<");
  if (s != text) {
    VALUE name = ctr__rb_class_name(rb_obj_class(text));
    if (RB_TYPE_P(name, T_STRING))
      rb_str_append(s, name);
    rb_str_cat_cstr(s, ">");
  }
  ctr__rb_check_generation();
  ctr_rb_stack_t *st = ctr__rb_stack_get();
  if (st != NULL)
    ctr__rb_sync(st, false);
  msgpack_packer *pk = ctr_client_begin();
  if (pk != NULL) {
    long n = RSTRING_LEN(s);
    ctr__rb_pack_thread(pk, st);
    ctr_pack_mark(pk, RSTRING_PTR(s),
                  (size_t)(n < CTR_CLIENT_MARK_MAX ? n : CTR_CLIENT_MARK_MAX));
    ctr_client_end();
  }
  RB_GC_GUARD(s);
  return Qnil;
}

static void ctr_rb_api_record(bool on) {
  if (!ctr_rb_api_on())
    return;
  ctr_client_record(on);
  /* The full hook comes back now, so the lines after resume are
   * recorded; each fiber sends its stack first. */
  if (on && ctr_client_active())
    ctr__rb_hooks_resume();
}

static VALUE ctr_rb_api_pause(VALUE self) {
  ctr_rb_api_record(false);
  return Qnil;
}

static VALUE ctr_rb_api_resume(VALUE self) {
  ctr_rb_api_record(true);
  return Qnil;
}

static VALUE ctr_rb_api_yield(VALUE unused) { return rb_yield_values(0); }

static VALUE ctr_rb_api_restore(VALUE was) {
  if (!RTEST(was))
    ctr_rb_api_record(false);
  return Qnil;
}

/* Ctrec.recording { }: records the block, then goes back to the state
 * before it, also when the block raises or throws. */
static VALUE ctr_rb_api_recording(VALUE self) {
  rb_need_block();
  VALUE was = ctr_rb_api_on() && ctr_client_active() ? Qtrue : Qfalse;
  ctr_rb_api_record(true);
  return rb_ensure(ctr_rb_api_yield, Qnil, ctr_rb_api_restore, was);
}

/* Defined whether or not the program is recorded, so that code calling
 * it runs the same either way. */
static void ctr_rb_api_define(void) {
  VALUE m = rb_define_module("Ctrec");
  rb_define_module_function(m, "mark", ctr_rb_api_mark, 1);
  rb_define_module_function(m, "pause", ctr_rb_api_pause, 0);
  rb_define_module_function(m, "resume", ctr_rb_api_resume, 0);
  rb_define_module_function(m, "recording", ctr_rb_api_recording, 0);
}

__attribute__((visibility("default"))) void Init_ctrec(void) {
  if (g.on)
    return;
  ctr_rb_api_define();
  if (ctr_rb_env_is("CTREC_BENCH_EMPTY_HOOK", "1")) {
    g.on = true;
    rb_add_event_hook2(CTR_RB_EMPTY_HOOK_FN, CTR_RB_EVENTS, Qnil,
                       CTR_RB_HOOK_FLAGS);
    return;
  }
  ctr__rb_id.local_variables = rb_intern("local_variables");
  ctr__rb_id.local_variable_get = rb_intern("local_variable_get");
  ctr__rb_id.instance_method = rb_intern("instance_method");
  ctr__rb_id.parameters = rb_intern("parameters");
  ctr__rb_id.attached = rb_intern("__attached__");
  ctr__rb_id.mesg = rb_intern("mesg");
  ctr__rb_id.status = rb_intern("status");
  ctr__rb_id.full_message = rb_intern("full_message");
  ctr__rb_id.highlight = rb_intern("highlight");
  ctr__rb_id.order = rb_intern("order");
  ctr__rb_id.top = rb_intern("top");
  ctr__rb_id.eval_script = rb_intern("eval_script");
  ctr__rb_id.instruction_sequence = rb_intern("instruction_sequence");
  ctr__rb_id.each_child = rb_intern("each_child");
  ctr__rb_id.signo = rb_intern("signo");
  ctr__rb_id.label = rb_intern("label");
  ctr__rb_id.path = rb_intern("path");
  ctr__rb_id.first_lineno = rb_intern("first_lineno");
  ctr__rb_id.lineno = rb_intern("lineno");
  ctr__rb_id.enable = rb_intern("enable");
  ctr__rb_id.target = rb_intern("target");
  ctr__rb_id.of = rb_intern("of");
  char cwd[4096];
  if (ctr_rb_start_client(cwd) != 0)
    return; /* unset: silent; failed: libctrec printed one line */
  ctr__rb_names_init(cwd);
  g.on = true;
  ctr__rb.vmode = ctr_client_values();

  int state = 0;
  ctr__rb_main_obj = rb_protect(ctr_rb_main_body, Qnil, &state);
  if (state) {
    rb_set_errinfo(Qnil);
    ctr__rb_main_obj = Qundef;
  }
  ctr__rb_eval_init();
  /* Ruby calls a data object's mark function only when its pointer is
   * set, hence &g. */
  g.keep = TypedData_Wrap_Struct(0, &ctr_rb_keep_type, &g);
  rb_gc_register_mark_object(g.keep);
  msgpack_sbuffer_init(&ctr__rb.scratch_buf);
  msgpack_packer_init(&ctr__rb.scratch, &ctr__rb.scratch_buf,
                      msgpack_sbuffer_write);
  ctr__rb.sent_thread = UINT64_MAX;
  ctr__rb_check_generation();
  ctr__rb_stacks_init();
  ctr__rb.loader = ctr_rb_loader_frame();
  ctr__rb_output_init();
  ctr__rb_wrap(rb_mKernel, "exit!", RUBY_METHOD_FUNC(ctr_rb_exit_bang), -1,
               true);
  ctr__rb_wrap(rb_singleton_class(rb_mKernel), "exit!",
               RUBY_METHOD_FUNC(ctr_rb_exit_bang), -1, false);
  ctr__rb_wrap(rb_singleton_class(rb_mProcess), "exit!",
               RUBY_METHOD_FUNC(ctr_rb_exit_bang), -1, false);
  ctr__rb_wrap(rb_singleton_class(rb_mProcess), "daemon",
               RUBY_METHOD_FUNC(ctr_rb_daemon), -1, false);
  pthread_atfork(NULL, ctr_rb_atfork_parent, ctr_rb_atfork_child);

  rb_set_end_proc(ctr_rb_end, Qnil);
  ctr__rb.hooked = true;
  rb_add_event_hook2(CTR_RB_HOOK_FN, CTR_RB_EVENTS, Qnil, CTR_RB_HOOK_FLAGS);
}