/* ctr_rb_value.c: Ruby values to ctrec wire values.
 *
 * Capturing a value must not change the program: nothing here calls a method
 * that Ruby code can define or override (inspect, to_s, ==, hash, name...).
 * Objects are read through the C API only: class pointers, RARRAY/RHASH
 * iteration, instance variable tables, Struct slots. BasicObject instances
 * therefore work like any other object. The one exception is BigDecimal,
 * whose digits only its own C code can read: see ctr_rb_bigdecimal. */
#include <dlfcn.h>
#include <ruby.h>
#include <ruby/version.h>
#include <stdlib.h>
#include <string.h>

#include "ctr_rb.h"

#define CTR_RB_DEPTH_DEFAULT 3
#define CTR_RB_LENGTH_DEFAULT 32
#define CTR_RB_STRING_DEFAULT 4096
#define CTR_RB_DEPTH_HARD 32

VALUE ctr__rb_main_obj = Qnil;

typedef struct ctr_rb_walk_s {
  msgpack_packer *decl;
  msgpack_packer *out;
  uint32_t max_depth;
  uint32_t max_length;
  uint32_t max_string;
  VALUE visiting[CTR_RB_DEPTH_HARD + 1];
  uint32_t depth;
} ctr_rb_walk_t;

static void ctr_rb_walk_value(ctr_rb_walk_t *w, VALUE v);

typedef struct ctr_rb_time_arg_s {
  VALUE v;
  struct timespec ts;
} ctr_rb_time_arg_t;

static VALUE ctr_rb_time_body(VALUE arg) {
  ctr_rb_time_arg_t *a = (ctr_rb_time_arg_t *)arg;
  a->ts = rb_time_timespec(a->v);
  return Qnil;
}

/* A Time's instant. Raises for a Time not yet initialized (self in the
 * `initialize` of a Time subclass), and nothing may raise while the shim
 * holds the batch: false then. */
static bool ctr_rb_time(VALUE v, struct timespec *ts) {
  ctr_rb_time_arg_t a = {v, {0, 0}};
  int state = 0;
  rb_protect(ctr_rb_time_body, (VALUE)&a, &state);
  if (state) {
    rb_set_errinfo(Qnil);
    return false;
  }
  *ts = a.ts;
  return true;
}

VALUE ctr__rb_class_name(VALUE klass) {
  /* rb_class_path reads the stored class path (or builds "#<Class:0x...>"
   * for anonymous classes) without dispatching to Module#name. */
  return rb_class_path(klass);
}

/* `name` is a string literal. */
static uint32_t ctr_rb_type(ctr_rb_walk_t *w, int kind, const char *name) {
  return ctr__rb_type_id_lit(w->decl, kind, name);
}

static uint32_t ctr_rb_type_of(ctr_rb_walk_t *w, int kind, VALUE v) {
  return ctr__rb_type_id_class(w->decl, kind, rb_obj_class(v));
}

static void ctr_rb_raw(ctr_rb_walk_t *w, int kind_type, VALUE v,
                       const char *text) {
  uint32_t tid = ctr_rb_type_of(w, kind_type, v);
  ctr_pack_v_raw(w->out, tid, text, strlen(text));
}

/* "#<ClassName>" without calling inspect. */
static void ctr_rb_raw_class(ctr_rb_walk_t *w, VALUE v) {
  VALUE name = ctr__rb_class_name(rb_obj_class(v));
  uint32_t tid = ctr__rb_type_id(w->decl, CTR_TK_RAW, RSTRING_PTR(name),
                                 (size_t)RSTRING_LEN(name));
  char buf[256];
  int n = snprintf(buf, sizeof buf, "#<%.*s>",
                   (int)(RSTRING_LEN(name) > 240 ? 240 : RSTRING_LEN(name)),
                   RSTRING_PTR(name));
  ctr_pack_v_raw(w->out, tid, buf, (size_t)n);
}

static void ctr_rb_string(ctr_rb_walk_t *w, uint32_t tid, VALUE s) {
  size_t n = (size_t)RSTRING_LEN(s);
  if (n > w->max_string)
    n = w->max_string;
  ctr_pack_v_string(w->out, tid, RSTRING_PTR(s), n);
}

static void ctr_rb_integer(ctr_rb_walk_t *w, VALUE v) {
  uint32_t tid = ctr_rb_type(w, CTR_TK_INT, "Integer");
  if (FIXNUM_P(v)) {
    ctr_pack_v_int(w->out, tid, (int64_t)FIX2LONG(v));
    return;
  }
  /* A magnitude of at most 63 bits fits int64 (the packing functions'
   * overflow report does not cover the sign bit). */
  if (rb_absint_numwords(v, 63, NULL) <= 1) {
    ctr_pack_v_int(w->out, tid, (int64_t)NUM2LL(v));
    return;
  }
  size_t n = rb_absint_size(v, NULL);
  if (n > CTR_BIGINT_MAX) {
    ctr_pack_v_bigint_over(w->out, tid, rb_absint_numwords(v, 1, NULL));
    return;
  }
  unsigned char *mag = malloc(n ? n : 1);
  if (mag == NULL) {
    ctr_pack_v_error(w->out, tid, "out of memory", 13);
    return;
  }
  int sign = rb_integer_pack(v, mag, n, 1, 0, INTEGER_PACK_BIG_ENDIAN);
  ctr_pack_v_bigint(w->out, tid, sign < 0, mag, n);
  free(mag);
}

/* Pair ("k", "v") used for hash entries, as the reference recorder does. */
static void ctr_rb_pair(ctr_rb_walk_t *w, VALUE k, VALUE v) {
  uint32_t tid = ctr_rb_type(w, CTR_TK_STRUCT, "Pair");
  uint32_t kid = ctr__rb_varname_id(w->decl, "k", 1);
  uint32_t vid = ctr__rb_varname_id(w->decl, "v", 1);
  ctr_pack_v_struct_begin(w->out, tid, 2);
  ctr_pack_pair_begin(w->out, kid);
  ctr_rb_walk_value(w, k);
  ctr_pack_pair_begin(w->out, vid);
  ctr_rb_walk_value(w, v);
}

typedef struct ctr_rb_hash_it_s {
  ctr_rb_walk_t *w;
  uint32_t left;
  bool keys_only;
} ctr_rb_hash_it_t;

static int ctr_rb_hash_cb(VALUE k, VALUE v, VALUE arg) {
  ctr_rb_hash_it_t *it = (ctr_rb_hash_it_t *)arg;
  if (it->left == 0)
    return ST_STOP;
  it->left--;
  if (it->keys_only)
    ctr_rb_walk_value(it->w, k);
  else
    ctr_rb_pair(it->w, k, v);
  return it->left ? ST_CONTINUE : ST_STOP;
}

/* A Hash as a sequence of pairs (or of keys, for Set), typed `type`. */
static void ctr_rb_hash(ctr_rb_walk_t *w, VALUE h, VALUE type,
                        bool keys_only) {
  uint32_t tid = ctr__rb_type_id_class(w->decl, CTR_TK_SEQ, type);
  size_t size = RHASH_SIZE(h);
  uint32_t n = size > w->max_length ? w->max_length : (uint32_t)size;
  ctr_pack_v_seq_begin(w->out, tid, n);
  if (n == 0)
    return;
  ctr_rb_hash_it_t it = {w, n, keys_only};
  rb_hash_foreach(h, ctr_rb_hash_cb, (VALUE)&it);
  /* The count was announced up front; a hash cannot shrink while we hold
   * the GVL, but stay well-formed whatever happens. */
  while (it.left-- > 0)
    ctr_pack_v_none(w->out, ctr_rb_type(w, CTR_TK_NONE, "NilClass"));
}

static void ctr_rb_array(ctr_rb_walk_t *w, VALUE a) {
  uint32_t tid = ctr_rb_type_of(w, CTR_TK_SEQ, a);
  long len = RARRAY_LEN(a);
  uint32_t n = (unsigned long)len > w->max_length ? w->max_length : (uint32_t)len;
  ctr_pack_v_seq_begin(w->out, tid, n);
  for (uint32_t i = 0; i < n; i++)
    ctr_rb_walk_value(w, RARRAY_AREF(a, i));
}

static void ctr_rb_struct2(ctr_rb_walk_t *w, VALUE type, const char *n1,
                           VALUE v1, const char *n2, VALUE v2) {
  uint32_t tid = ctr__rb_type_id_class(w->decl, CTR_TK_STRUCT, type);
  uint32_t id1 = ctr__rb_varname_id(w->decl, n1, strlen(n1));
  uint32_t id2 = ctr__rb_varname_id(w->decl, n2, strlen(n2));
  ctr_pack_v_struct_begin(w->out, tid, 2);
  ctr_pack_pair_begin(w->out, id1);
  ctr_rb_walk_value(w, v1);
  ctr_pack_pair_begin(w->out, id2);
  ctr_rb_walk_value(w, v2);
}

static void ctr_rb_struct(ctr_rb_walk_t *w, VALUE v) {
  VALUE members = rb_struct_members(v);
  long len = RARRAY_LEN(members);
  uint32_t n = (unsigned long)len > w->max_length ? w->max_length : (uint32_t)len;
  uint32_t tid = ctr_rb_type_of(w, CTR_TK_STRUCT, v);
  uint32_t *ids = malloc(sizeof *ids * (n ? n : 1));
  if (ids == NULL) {
    ctr_pack_v_error(w->out, tid, "out of memory", 13);
    return;
  }
  for (uint32_t i = 0; i < n; i++) {
    VALUE m = RARRAY_AREF(members, i);
    ids[i] = SYMBOL_P(m) ? ctr__rb_varname_id_sym(w->decl, SYM2ID(m))
                         : ctr__rb_varname_id(w->decl, "?", 1);
  }
  ctr_pack_v_struct_begin(w->out, tid, n);
  for (uint32_t i = 0; i < n; i++) {
    ctr_pack_pair_begin(w->out, ids[i]);
    ctr_rb_walk_value(w, rb_struct_aref(v, LONG2FIX(i)));
  }
  free(ids);
  RB_GC_GUARD(members);
}

typedef struct ctr_rb_ivars_s {
  ID *names;
  VALUE *values;
  uint32_t n;
  uint32_t cap;
} ctr_rb_ivars_t;

static int ctr_rb_ivar_cb(ID key, VALUE val, st_data_t arg) {
  ctr_rb_ivars_t *iv = (ctr_rb_ivars_t *)arg;
  /* Internal slots (an exception's "mesg", "bt"...) have no '@'. */
  if (!rb_is_instance_id(key))
    return ST_CONTINUE;
  if (iv->n >= iv->cap)
    return ST_STOP;
  iv->names[iv->n] = key;
  iv->values[iv->n] = val;
  iv->n++;
  return ST_CONTINUE;
}

/* Any other object: a struct of its instance variables, or "#<Class>". */
static void ctr_rb_object(ctr_rb_walk_t *w, VALUE v) {
  VALUE mesg = Qnil;
  if (RB_TYPE_P(v, T_OBJECT) && rb_obj_is_kind_of(v, rb_eException))
    mesg = rb_attr_get(v, rb_intern("mesg"));
  bool has_mesg = RB_TYPE_P(mesg, T_STRING);
  uint32_t cap = w->max_length;
  ctr_rb_ivars_t iv = {NULL, NULL, 0, cap};
  if (cap > 0 && rb_ivar_count(v) > 0) {
    iv.names = malloc(sizeof *iv.names * cap);
    iv.values = malloc(sizeof *iv.values * cap);
    if (iv.names != NULL && iv.values != NULL)
      rb_ivar_foreach(v, ctr_rb_ivar_cb, (st_data_t)&iv);
  }
  if (iv.n == 0 && !has_mesg) {
    free(iv.names);
    free(iv.values);
    ctr_rb_raw_class(w, v);
    return;
  }
  uint32_t tid = ctr_rb_type_of(w, CTR_TK_STRUCT, v);
  uint32_t mid = has_mesg ? ctr__rb_varname_id(w->decl, "message", 7) : 0;
  uint32_t *ids = malloc(sizeof *ids * (iv.n ? iv.n : 1));
  if (ids == NULL) {
    free(iv.names);
    free(iv.values);
    ctr_pack_v_error(w->out, tid, "out of memory", 13);
    return;
  }
  for (uint32_t i = 0; i < iv.n; i++)
    ids[i] = ctr__rb_varname_id_sym(w->decl, iv.names[i]);
  ctr_pack_v_struct_begin(w->out, tid, iv.n + (has_mesg ? 1 : 0));
  if (has_mesg) {
    ctr_pack_pair_begin(w->out, mid);
    ctr_rb_walk_value(w, mesg);
  }
  for (uint32_t i = 0; i < iv.n; i++) {
    ctr_pack_pair_begin(w->out, ids[i]);
    ctr_rb_walk_value(w, iv.values[i]);
  }
  free(ids);
  free(iv.names);
  free(iv.values);
}

/* ---- BigDecimal ----------------------------------------------------------
 *
 * A BigDecimal keeps its digits in a C struct private to the bigdecimal
 * extension, so the only faithful reader is BigDecimal#to_s itself. Calling
 * it through Ruby would run whatever the program put in its place, so the
 * shim calls the extension's C function directly, and only while the method
 * that Ruby would dispatch to is still that C function: the method entry is
 * looked up for each value (a program can redefine or prepend to_s at any
 * time) and compared with the one seen the first time. The function
 * pointer is read from Ruby 3.1's method entry layout (vm_core's method.h,
 * not installed); dladdr() must place it inside bigdecimal.so before it is
 * ever called, so a layout that does not match falls back to "#<BigDecimal>"
 * instead of calling anything. */

#if RUBY_API_VERSION_MAJOR == 3 && RUBY_API_VERSION_MINOR == 1
#define CTR_RB_HAVE_ME_LAYOUT 1

/* rb_method_entry_t and the head of rb_method_definition_t of Ruby 3.1. */
typedef struct ctr_rb_me_s {
  VALUE flags;
  VALUE defined_class;
  const struct ctr_rb_mdef_s *def;
  ID called_id;
  VALUE owner;
} ctr_rb_me_t;

typedef struct ctr_rb_mdef_s {
  unsigned int bits1; /* type:4, iseq_overload:1, alias_count:27 */
  unsigned int bits2; /* complemented_count:28, no_redef_warning:1 */
  VALUE (*func)(int argc, VALUE *argv, VALUE self); /* body.cfunc.func */
  void *invoker;
  int argc;
} ctr_rb_mdef_t;

#define CTR_RB_METHOD_TYPE_CFUNC 1

/* Not in Ruby's public headers, but exported by libruby. */
extern const ctr_rb_me_t *rb_method_entry(VALUE klass, ID id);
#endif

static struct {
  int state; /* 0 not tried, 1 usable, -1 not usable */
  VALUE klass;
  const void *me;
  VALUE (*to_s)(int argc, VALUE *argv, VALUE self);
} g_bigdec;

static bool ctr_rb_is_bigdecimal(VALUE v) {
  if (!RB_TYPE_P(v, T_DATA) || !RTYPEDDATA_P(v))
    return false;
  const char *n = RTYPEDDATA_TYPE(v)->wrap_struct_name;
  return n != NULL && strcmp(n, "BigDecimal") == 0;
}

/* Finds BigDecimal#to_s's C function the first time a BigDecimal is seen. */
static void ctr_rb_bigdecimal_init(VALUE klass) {
  g_bigdec.state = -1;
#ifdef CTR_RB_HAVE_ME_LAYOUT
  const ctr_rb_me_t *me = rb_method_entry(klass, rb_intern("to_s"));
  if (me == NULL || me->owner != klass || me->def == NULL ||
      (me->def->bits1 & 0xf) != CTR_RB_METHOD_TYPE_CFUNC ||
      me->def->argc != -1 || me->def->func == NULL)
    return;
  Dl_info info;
  void *fn = (void *)(uintptr_t)me->def->func;
  if (dladdr(fn, &info) == 0 || info.dli_fname == NULL)
    return;
  const char *base = strrchr(info.dli_fname, '/');
  base = base ? base + 1 : info.dli_fname;
  if (strcmp(base, "bigdecimal.so") != 0)
    return;
  g_bigdec.klass = klass;
  g_bigdec.me = me;
  g_bigdec.to_s = me->def->func;
  g_bigdec.state = 1;
#else
  (void)klass;
#endif
}

static VALUE ctr_rb_bigdecimal_to_s(VALUE v) {
  return g_bigdec.to_s(0, NULL, v);
}

/* The text of BigDecimal#to_s ("0.125e1"), or Qnil when to_s is no longer
 * the extension's own or the call failed. */
static VALUE ctr_rb_bigdecimal_text(VALUE v) {
  VALUE klass = rb_obj_class(v);
  if (g_bigdec.state == 0)
    ctr_rb_bigdecimal_init(klass);
#ifdef CTR_RB_HAVE_ME_LAYOUT
  if (g_bigdec.state != 1 || klass != g_bigdec.klass ||
      (const void *)rb_method_entry(CLASS_OF(v), rb_intern("to_s")) !=
          g_bigdec.me)
    return Qnil;
  int state = 0;
  VALUE s = rb_protect(ctr_rb_bigdecimal_to_s, v, &state);
  if (state) {
    rb_set_errinfo(Qnil);
    return Qnil;
  }
  return RB_TYPE_P(s, T_STRING) ? s : Qnil;
#else
  return Qnil;
#endif
}

/* True when a class named `cname` is among v's ancestor classes. Compares
 * class paths instead of looking the constant up, because a constant lookup
 * can trigger an autoload, i.e. run Ruby code in the middle of a capture. */
static bool ctr_rb_is_a(VALUE v, const char *cname) {
  size_t n = strlen(cname);
  for (VALUE k = rb_obj_class(v); RB_TYPE_P(k, T_CLASS);
       k = rb_class_superclass(k)) {
    VALUE name = ctr__rb_class_name(k);
    if ((size_t)RSTRING_LEN(name) == n && memcmp(RSTRING_PTR(name), cname, n) == 0)
      return true;
  }
  return false;
}

static void ctr_rb_compound(ctr_rb_walk_t *w, VALUE v) {
  switch (BUILTIN_TYPE(v)) {
  case T_ARRAY:
    ctr_rb_array(w, v);
    return;
  case T_HASH:
    ctr_rb_hash(w, v, rb_obj_class(v), false);
    return;
  case T_RATIONAL:
    ctr_rb_struct2(w, rb_obj_class(v), "numerator", rb_rational_num(v),
                   "denominator", rb_rational_den(v));
    return;
  case T_COMPLEX:
    ctr_rb_struct2(w, rb_obj_class(v), "real", rb_complex_real(v), "imag",
                   rb_complex_imag(v));
    return;
  case T_STRUCT:
    if (rb_obj_is_kind_of(v, rb_cRange)) {
      ctr_rb_struct2(w, rb_obj_class(v), "begin", RSTRUCT_GET(v, 0), "end",
                     RSTRUCT_GET(v, 1));
    } else {
      ctr_rb_struct(w, v);
    }
    return;
  default:
    break;
  }
  if (!RB_TYPE_P(v, T_OBJECT)) {
    ctr_rb_object(w, v);
    return;
  }
  if (ctr_rb_is_a(v, "Set")) {
    VALUE h = rb_attr_get(v, rb_intern("@hash"));
    if (RB_TYPE_P(h, T_HASH)) {
      ctr_rb_hash(w, h, rb_obj_class(v), true);
      return;
    }
  }
  if (ctr_rb_is_a(v, "OpenStruct")) {
    VALUE h = rb_attr_get(v, rb_intern("@table"));
    if (RB_TYPE_P(h, T_HASH)) {
      ctr_rb_hash(w, h, rb_obj_class(v), false);
      return;
    }
  }
  ctr_rb_object(w, v);
}

static void ctr_rb_walk_value(ctr_rb_walk_t *w, VALUE v) {
  if (FIXNUM_P(v)) {
    ctr_rb_integer(w, v);
    return;
  }
  if (NIL_P(v)) {
    ctr_pack_v_none(w->out, ctr_rb_type(w, CTR_TK_NONE, "NilClass"));
    return;
  }
  if (v == Qtrue || v == Qfalse) {
    ctr_pack_v_bool(w->out, ctr_rb_type(w, CTR_TK_BOOL, "Bool"), v == Qtrue);
    return;
  }
  if (RB_FLOAT_TYPE_P(v)) {
    ctr_pack_v_float(w->out, ctr_rb_type(w, CTR_TK_FLOAT, "Float"),
                     RFLOAT_VALUE(v));
    return;
  }
  if (SYMBOL_P(v)) {
    VALUE s = rb_sym2str(v);
    ctr_rb_string(w, ctr_rb_type(w, CTR_TK_STRING, "Symbol"), s);
    return;
  }
  if (SPECIAL_CONST_P(v) || RB_TYPE_P(v, T_UNDEF)) {
    ctr_pack_v_error(w->out, ctr_rb_type(w, CTR_TK_ERROR, "No type"),
                     "<special>", 9);
    return;
  }
  if (v == ctr__rb_main_obj) {
    ctr_pack_v_raw(w->out, ctr_rb_type(w, CTR_TK_RAW, "Object"), "main", 4);
    return;
  }
  switch (BUILTIN_TYPE(v)) {
  case T_BIGNUM:
    ctr_rb_integer(w, v);
    return;
  case T_STRING:
    ctr_rb_string(w, ctr_rb_type_of(w, CTR_TK_STRING, v), v);
    return;
  case T_CLASS:
  case T_MODULE: {
    VALUE name = ctr__rb_class_name(v);
    ctr_pack_v_raw(w->out, ctr_rb_type_of(w, CTR_TK_RAW, v), RSTRING_PTR(name),
                   (size_t)RSTRING_LEN(name));
    return;
  }
  case T_REGEXP: {
    if (w->depth >= w->max_depth)
      break;
    VALUE src = RREGEXP_SRC(v);
    w->visiting[w->depth++] = v;
    ctr_rb_struct2(w, rb_obj_class(v), "source", src, "options",
                   INT2FIX(rb_reg_options(v)));
    w->depth--;
    return;
  }
  case T_DATA:
    if (ctr_rb_is_bigdecimal(v)) {
      VALUE text = ctr_rb_bigdecimal_text(v);
      if (NIL_P(text))
        break;
      ctr_pack_v_raw(w->out, ctr_rb_type_of(w, CTR_TK_RAW, v),
                     RSTRING_PTR(text), (size_t)RSTRING_LEN(text));
      RB_GC_GUARD(text);
      return;
    }
    if (rb_obj_is_kind_of(v, rb_cTime)) {
      struct timespec ts;
      if (w->depth >= w->max_depth || !ctr_rb_time(v, &ts))
        break;
      w->visiting[w->depth++] = v;
      ctr_rb_struct2(w, rb_obj_class(v), "sec", LONG2NUM(ts.tv_sec),
                     "nsec", LONG2NUM(ts.tv_nsec));
      w->depth--;
      return;
    }
    break;
  default:
    break;
  }
  for (uint32_t i = 0; i < w->depth; i++) {
    if (w->visiting[i] == v) {
      ctr_rb_raw(w, CTR_TK_RAW, v, "<cycle>");
      return;
    }
  }
  if (w->depth >= w->max_depth) {
    ctr_rb_raw_class(w, v);
    return;
  }
  w->visiting[w->depth++] = v;
  ctr_rb_compound(w, v);
  w->depth--;
}

void ctr__rb_value_pack(msgpack_packer *decl, msgpack_packer *out, VALUE v) {
  const ctr_welcome_t *s = ctr_client_settings();
  ctr_rb_walk_t w;
  w.decl = decl;
  w.out = out;
  w.max_depth = s->max_depth ? s->max_depth : CTR_RB_DEPTH_DEFAULT;
  if (w.max_depth > CTR_RB_DEPTH_HARD)
    w.max_depth = CTR_RB_DEPTH_HARD;
  w.max_length = s->max_length ? s->max_length : CTR_RB_LENGTH_DEFAULT;
  w.max_string = s->max_string ? s->max_string : CTR_RB_STRING_DEFAULT;
  w.depth = 0;
  ctr_rb_walk_value(&w, v);
}

/* Packs [[varname_id, value]...] pairs into scratch; returns the count. */
uint32_t ctr__rb_value_pairs(msgpack_packer *pk, VALUE names,
                                  VALUE vals) {
  if (NIL_P(names))
    return 0;
  long n = RARRAY_LEN(vals);
  if (n > RARRAY_LEN(names))
    n = RARRAY_LEN(names);
  for (long i = 0; i < n; i++) {
    VALUE name = RARRAY_AREF(names, i);
    uint32_t vid = SYMBOL_P(name) ? ctr__rb_varname_id_sym(pk, SYM2ID(name))
                                  : ctr__rb_varname_id(pk, "?", 1);
    ctr_pack_pair_begin(&ctr__rb.scratch, vid);
    ctr__rb_value_pack(pk, &ctr__rb.scratch, RARRAY_AREF(vals, i));
  }
  return (uint32_t)n;
}

void ctr__rb_value_flush(msgpack_packer *pk) {
  if (ctr__rb.scratch_buf.size)
    pk->callback(pk->data, ctr__rb.scratch_buf.data, ctr__rb.scratch_buf.size);
  msgpack_sbuffer_clear(&ctr__rb.scratch_buf);
}
