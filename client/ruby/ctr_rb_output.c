/* ctr_rb_output.c: program output, recorded as EVENTs.
 *
 * STDOUT/STDERR#write and #syswrite and Warning.warn are wrapped by
 * prepended modules; the message of an uncaught exception is recorded the
 * way Ruby prints it. */
#include <ruby.h>
#include <ruby/ractor.h>

#include "ctr_rb.h"


static struct {
  VALUE stdout_obj;
  VALUE stderr_obj;
  rb_ractor_local_key_t main_key; /* set only in the main Ractor */
} g;

/* Objects are not shared between Ractors, but a prepended method is: code
 * running in another Ractor must never touch the shim's state. */
bool ctr__rb_main_ractor(void) {
  return rb_ractor_local_storage_ptr(g.main_key) != NULL;
}

static void ctr_rb_record_output(int kind, const char *s, size_t n) {
  if (n == 0)
    return;
  ctr__rb_check_generation();
  ctr_rb_stack_t *st = ctr__rb_stack_get();
  if (st != NULL && ctr_client_active())
    ctr__rb_sync(st, false);
  msgpack_packer *pk = ctr_client_begin();
  if (pk == NULL)
    return;
  ctr__rb_pack_thread(pk, st);
  ctr_pack_output(pk, kind, s, n);
  ctr_client_end();
}

static int ctr_rb_output_kind(VALUE self) {
  return self == g.stderr_obj ? CTR_EV_WRITE_OTHER : CTR_EV_WRITE;
}

/* Prepended to STDOUT's and STDERR's singleton classes. The arguments are
 * converted with to_s once, here, exactly as IO#write would, so the bytes we
 * record are the bytes written and user code runs no more often. Every
 * writer of these objects ends here: puts, print, p, pp, printf, putc,
 * $stdout.write and $stdout = STDERR alike; a $stdout that is another
 * object (a StringIO) is no program output and is not seen. */
static VALUE ctr_rb_write(int argc, VALUE *argv, VALUE self) {
  if (!ctr_client_active() || !ctr__rb_main_ractor())
    return rb_call_super(argc, argv);
  VALUE strs = rb_ary_new_capa(argc);
  for (int i = 0; i < argc; i++)
    rb_ary_push(strs, rb_obj_as_string(argv[i]));
  VALUE r = rb_call_super(argc, RARRAY_CONST_PTR(strs));
  /* puts writes the text and its newline in one call: one event. */
  VALUE all = argc == 1 ? RARRAY_AREF(strs, 0) : rb_str_buf_new(0);
  for (int i = 0; argc > 1 && i < argc; i++) {
    VALUE si = RARRAY_AREF(strs, i);
    rb_str_buf_cat(all, RSTRING_PTR(si),
                   RSTRING_LEN(si)); /* bytes, no re-encoding */
  }
  ctr_rb_record_output(ctr_rb_output_kind(self), RSTRING_PTR(all),
                       (size_t)RSTRING_LEN(all));
  RB_GC_GUARD(strs);
  RB_GC_GUARD(all);
  return r;
}

/* IO#syswrite bypasses #write: recorded here, as many bytes as it wrote. */
static VALUE ctr_rb_syswrite(VALUE self, VALUE str) {
  if (!ctr_client_active() || !ctr__rb_main_ractor())
    return rb_call_super(1, &str);
  VALUE s = rb_obj_as_string(str);
  VALUE r = rb_call_super(1, &s);
  if (FIXNUM_P(r)) {
    long n = FIX2LONG(r);
    if (n > RSTRING_LEN(s))
      n = RSTRING_LEN(s);
    if (n > 0)
      ctr_rb_record_output(ctr_rb_output_kind(self), RSTRING_PTR(s), (size_t)n);
  }
  RB_GC_GUARD(s);
  return r;
}

/* Warning.warn writes straight to file descriptor 2 while $stderr is still
 * STDERR, bypassing STDERR#write; otherwise it goes through $stderr.write
 * and is recorded there (or goes elsewhere, and is no program output). */
static VALUE ctr_rb_warn(int argc, VALUE *argv, VALUE self) {
  VALUE r = rb_call_super_kw(argc, argv, rb_keyword_given_p());
  if (argc > 0 && RB_TYPE_P(argv[0], T_STRING) && ctr_client_active() &&
      ctr__rb_main_ractor() && rb_gv_get("$stderr") == g.stderr_obj)
    ctr_rb_record_output(CTR_EV_WRITE_OTHER, RSTRING_PTR(argv[0]),
                         (size_t)RSTRING_LEN(argv[0]));
  return r;
}

static VALUE ctr_rb_full_message_body(VALUE err) {
  VALUE opts = rb_hash_new();
  VALUE tty = rb_funcall(g.stderr_obj, rb_intern("tty?"), 0);
  rb_hash_aset(opts, ID2SYM(ctr__rb_id.highlight), RTEST(tty) ? Qtrue : Qfalse);
  rb_hash_aset(opts, ID2SYM(ctr__rb_id.order), ID2SYM(ctr__rb_id.top));
  return rb_funcall_with_block_kw(err, ctr__rb_id.full_message, 1, &opts, Qnil,
                                  RB_PASS_KEYWORDS);
}

/* Ruby prints the message of an uncaught exception after the last at_exit
 * handler, straight to file descriptor 2: record the same text now. A
 * SignalException (SIGTERM...) ends the process silently. */
void ctr__rb_record_uncaught(VALUE err) {
  if (rb_obj_is_instance_of(err, rb_eSignal) ||
      rb_gv_get("$stderr") != g.stderr_obj)
    return;
  int state = 0;
  VALUE text = rb_protect(ctr_rb_full_message_body, err, &state);
  if (state) {
    rb_set_errinfo(Qnil);
    return;
  }
  if (RB_TYPE_P(text, T_STRING))
    ctr_rb_record_output(CTR_EV_WRITE_OTHER, RSTRING_PTR(text),
                         (size_t)RSTRING_LEN(text));
  RB_GC_GUARD(text);
}

void ctr__rb_output_init(void) {
  g.main_key = rb_ractor_local_storage_ptr_newkey(NULL);
  rb_ractor_local_storage_ptr_set(g.main_key, &g);
  g.stdout_obj = rb_stdout;
  g.stderr_obj = rb_stderr;
  VALUE outs[2] = {rb_singleton_class(g.stdout_obj),
                   rb_singleton_class(g.stderr_obj)};
  for (int i = 0; i < 2; i++) {
    ctr__rb_wrap(outs[i], "write", RUBY_METHOD_FUNC(ctr_rb_write), -1, false);
    ctr__rb_wrap(outs[i], "syswrite", RUBY_METHOD_FUNC(ctr_rb_syswrite), 1,
                 false);
  }
  if (rb_const_defined(rb_cObject, rb_intern("Warning"))) {
    VALUE warning = rb_const_get(rb_cObject, rb_intern("Warning"));
    ctr__rb_wrap(rb_singleton_class(warning), "warn",
                 RUBY_METHOD_FUNC(ctr_rb_warn), -1, false);
  }
}
