/* ctr_rb_value.c: Ruby values to ctrec wire values.
 *
 * Capturing a value must not change the program: nothing here calls a method
 * that Ruby code can define or override (inspect, to_s, ==, hash, name...).
 * Objects are read through the C API only: class pointers, RARRAY/RHASH
 * iteration, instance variable tables, Struct slots. BasicObject instances
 * therefore work like any other object. The one exception is BigDecimal,
 * whose digits only its own C code can read: see ctr_rb_bigdecimal.
 *
 * Cost: containers, objects and strings near the top go through the
 * libctrec memo (ctr_vref.h), so a value the daemon already keeps travels
 * as a REF, and an object that two variables of one message hold is walked
 * once. A message captures at most WELCOME max_nodes values; past that
 * each value still to capture reads "<value budget reached>". */
#include <dlfcn.h>
#include <ruby.h>
#include <ruby/version.h>
#include <stdlib.h>
#include <string.h>

#include "ctr_enc.h"
#include "ctr_rb.h"
#include "ctr_vref.h"

#define CTR_RB_DEPTH_DEFAULT 3
#define CTR_RB_LENGTH_DEFAULT 32
#define CTR_RB_STRING_DEFAULT 4096
#define CTR_RB_DEPTH_HARD 32
/* Values this shallow (a variable's value, its elements and fields) go
 * through the memo; deeper ones travel inside them. Closing those too
 * cost REXML 10% more CPU for 1% fewer bytes sent. */
#define CTR_RB_VREF_DEPTH 2
/* Instance variables read without a heap allocation (on the stack of the
 * program's thread or fiber, which may be small). */
#define CTR_RB_IVARS_STACK 16
#define CTR_RB_BUDGET_TEXT "<value budget reached>"

VALUE ctr__rb_main_obj = Qnil;

typedef struct ctr_rb_walk_s {
  msgpack_packer *decl;
  msgpack_packer *out;
  msgpack_sbuffer *sb; /* out's buffer: the memo rewrites what was packed */
  uint32_t max_depth;
  uint32_t max_length;
  uint32_t max_string;
  VALUE visiting[CTR_RB_DEPTH_HARD + 1];
  uint32_t depth;
  bool cut; /* a budget marker was packed */
} ctr_rb_walk_t;

/* The current message's budget (PROTOCOL.md 9): values captured so far. */
static struct {
  uint32_t nodes;
  uint32_t budget; /* 0: no bound */
} g_msg;

/* What capture needs to know of a class, found once per class: whether
 * its instances are Sets, OpenStructs or exceptions, and its "#<Name>". The
 * classes are kept alive (g_class_keep), so an address stays its class's. */
enum { CTR_RB_CLASS_SET = 1, CTR_RB_CLASS_OSTRUCT = 2, CTR_RB_CLASS_EXC = 4 };

typedef struct ctr_rb_class_s {
  VALUE klass;
  unsigned flags;
  char *raw; /* "#<Name>", NULL for an anonymous class (it may be named) */
  size_t raw_len;
} ctr_rb_class_t;

#define CTR_RB_CLASS_MEMO 256
static st_table *g_classes; /* class -> ctr_rb_class_t* */
static VALUE g_class_keep;
static ctr_rb_class_t *g_class_memo[CTR_RB_CLASS_MEMO];

static void ctr_rb_walk_value(ctr_rb_walk_t *w, VALUE v);

/* ---- encoding ------------------------------------------------------------
 *
 * Values are encoded straight into the scratch buffer with ctr_enc.h:
 * msgpack-c's packer makes a call and a copy per item, which cost more
 * than the rest of a capture. The bytes are the same as ctr_pack_v_*'s. */

/* Room for n more bytes at the end of w->sb; NULL when out of memory. */
static unsigned char *ctr_rb_room(ctr_rb_walk_t *w, size_t n) {
  msgpack_sbuffer *sb = w->sb;
  if (sb->alloc - sb->size < n) {
    size_t a = sb->alloc ? sb->alloc : 8192;
    while (a - sb->size < n)
      a *= 2;
    char *d = realloc(sb->data, a);
    if (d == NULL)
      return NULL;
    sb->data = d;
    sb->alloc = a;
  }
  return (unsigned char *)sb->data + sb->size;
}

static void ctr_rb_done(ctr_rb_walk_t *w, const unsigned char *p) {
  w->sb->size = (size_t)(p - (const unsigned char *)w->sb->data);
}

static void ctr_rb_v_none(ctr_rb_walk_t *w, uint32_t tid) {
  unsigned char *p = ctr_rb_room(w, CTR_ENC_SCALAR_MAX);
  if (p != NULL)
    ctr_rb_done(w, ctr_enc_value_head(p, 2, CTR_V_NONE, tid));
}

static void ctr_rb_v_bool(ctr_rb_walk_t *w, uint32_t tid, bool b) {
  unsigned char *p = ctr_rb_room(w, CTR_ENC_SCALAR_MAX);
  if (p != NULL)
    ctr_rb_done(w, ctr_enc_bool(ctr_enc_value_head(p, 3, CTR_V_BOOL, tid), b));
}

static void ctr_rb_v_int(ctr_rb_walk_t *w, uint32_t tid, int64_t i) {
  unsigned char *p = ctr_rb_room(w, CTR_ENC_SCALAR_MAX);
  if (p != NULL)
    ctr_rb_done(w, ctr_enc_int(ctr_enc_value_head(p, 3, CTR_V_INT, tid), i));
}

static void ctr_rb_v_float(ctr_rb_walk_t *w, uint32_t tid, double f) {
  unsigned char *p = ctr_rb_room(w, CTR_ENC_SCALAR_MAX);
  if (p != NULL)
    ctr_rb_done(w,
                ctr_enc_double(ctr_enc_value_head(p, 3, CTR_V_FLOAT, tid), f));
}

/* STRING (bin), RAW or ERROR (str) of n bytes. */
static void ctr_rb_v_text(ctr_rb_walk_t *w, int vkind, uint32_t tid,
                          const char *s, size_t n) {
  unsigned char *p = ctr_rb_room(w, CTR_ENC_SCALAR_MAX + n);
  if (p == NULL)
    return;
  p = ctr_enc_value_head(p, 3, vkind, tid);
  p = ctr_enc_text_head(p, vkind == CTR_V_STRING, n);
  if (n > 0)
    memcpy(p, s, n);
  ctr_rb_done(w, p + n);
}

/* The head of a SEQ or STRUCT of n elements or fields. */
static void ctr_rb_v_begin(ctr_rb_walk_t *w, int vkind, uint32_t tid,
                           uint32_t n) {
  unsigned char *p = ctr_rb_room(w, CTR_ENC_SCALAR_MAX);
  if (p != NULL)
    ctr_rb_done(w, ctr_enc_array(ctr_enc_value_head(p, 3, vkind, tid), n));
}

/* The head of a field [varname_id, value]. */
static void ctr_rb_v_pair(ctr_rb_walk_t *w, uint32_t id) {
  unsigned char *p = ctr_rb_room(w, CTR_ENC_PAIR_MAX);
  if (p != NULL)
    ctr_rb_done(w, ctr_enc_uint(ctr_enc_array(p, 2), id));
}

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

/* True when a class named `cname` is among klass's ancestor classes.
 * Compares class paths instead of looking the constant up, because a
 * constant lookup can trigger an autoload, i.e. run Ruby code in the
 * middle of a capture. */
static bool ctr_rb_class_is_a(VALUE klass, const char *cname) {
  size_t n = strlen(cname);
  for (VALUE k = klass; RB_TYPE_P(k, T_CLASS); k = rb_class_superclass(k)) {
    VALUE name = ctr__rb_class_name(k);
    if ((size_t)RSTRING_LEN(name) == n &&
        memcmp(RSTRING_PTR(name), cname, n) == 0)
      return true;
  }
  return false;
}

static ctr_rb_class_t *ctr_rb_class_new(VALUE klass) {
  ctr_rb_class_t *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->klass = klass;
  if (ctr_rb_class_is_a(klass, "Set"))
    c->flags |= CTR_RB_CLASS_SET;
  if (ctr_rb_class_is_a(klass, "OpenStruct"))
    c->flags |= CTR_RB_CLASS_OSTRUCT;
  if (RTEST(rb_class_inherited_p(klass, rb_eException)))
    c->flags |= CTR_RB_CLASS_EXC;
  VALUE name = ctr__rb_class_name(klass);
  size_t n = (size_t)RSTRING_LEN(name);
  if (n > 240)
    n = 240;
  if (n < 2 || memcmp(RSTRING_PTR(name), "#<", 2) != 0) {
    c->raw = malloc(n + 3);
    if (c->raw != NULL) {
      c->raw[0] = '#';
      c->raw[1] = '<';
      memcpy(c->raw + 2, RSTRING_PTR(name), n);
      c->raw[n + 2] = '>';
      c->raw_len = n + 3;
    }
  }
  RB_GC_GUARD(name);
  if (g_classes == NULL) {
    g_classes = st_init_numtable();
    g_class_keep = rb_ary_new();
    rb_gc_register_mark_object(g_class_keep);
  }
  st_insert(g_classes, (st_data_t)klass, (st_data_t)c);
  rb_ary_push(g_class_keep, klass);
  return c;
}

/* The record of v's class; NULL when out of memory. */
static ctr_rb_class_t *ctr_rb_class(VALUE v) {
  VALUE klass = rb_obj_class(v);
  ctr_rb_class_t **m =
      &g_class_memo[(klass ^ (klass >> 9) ^ (klass >> 17)) % CTR_RB_CLASS_MEMO];
  if (*m != NULL && (*m)->klass == klass)
    return *m;
  st_data_t val;
  ctr_rb_class_t *c =
      g_classes != NULL && st_lookup(g_classes, (st_data_t)klass, &val)
          ? (ctr_rb_class_t *)val
          : ctr_rb_class_new(klass);
  if (c != NULL)
    *m = c;
  return c;
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
  ctr_rb_v_text(w, CTR_V_RAW, tid, text, strlen(text));
}

/* "#<ClassName>" without calling inspect. */
static void ctr_rb_raw_class(ctr_rb_walk_t *w, VALUE v) {
  uint32_t tid = ctr_rb_type_of(w, CTR_TK_RAW, v);
  ctr_rb_class_t *c = ctr_rb_class(v);
  if (c != NULL && c->raw != NULL) {
    ctr_rb_v_text(w, CTR_V_RAW, tid, c->raw, c->raw_len);
    return;
  }
  VALUE name = ctr__rb_class_name(rb_obj_class(v));
  char buf[256];
  int n = snprintf(buf, sizeof buf, "#<%.*s>",
                   (int)(RSTRING_LEN(name) > 240 ? 240 : RSTRING_LEN(name)),
                   RSTRING_PTR(name));
  ctr_rb_v_text(w, CTR_V_RAW, tid, buf, (size_t)n);
  RB_GC_GUARD(name);
}

static void ctr_rb_string(ctr_rb_walk_t *w, uint32_t tid, VALUE s) {
  size_t n = (size_t)RSTRING_LEN(s);
  if (n > w->max_string)
    n = w->max_string;
  size_t mark = ctr_vref_open(w->sb);
  ctr_rb_v_text(w, CTR_V_STRING, tid, RSTRING_PTR(s), n);
  /* By content only: a String can change between two messages. */
  if (w->depth < CTR_RB_VREF_DEPTH)
    ctr_vref_close(w->sb, mark, NULL, 0, 1);
}

static void ctr_rb_integer(ctr_rb_walk_t *w, VALUE v) {
  uint32_t tid = ctr_rb_type(w, CTR_TK_INT, "Integer");
  if (FIXNUM_P(v)) {
    ctr_rb_v_int(w, tid, (int64_t)FIX2LONG(v));
    return;
  }
  /* A magnitude of at most 63 bits fits int64 (the packing functions'
   * overflow report does not cover the sign bit). */
  if (rb_absint_numwords(v, 63, NULL) <= 1) {
    ctr_rb_v_int(w, tid, (int64_t)NUM2LL(v));
    return;
  }
  size_t n = rb_absint_size(v, NULL);
  if (n > CTR_BIGINT_MAX) {
    ctr_pack_v_bigint_over(w->out, tid, rb_absint_numwords(v, 1, NULL));
    return;
  }
  unsigned char *mag = malloc(n ? n : 1);
  if (mag == NULL) {
    ctr_rb_v_text(w, CTR_V_ERROR, tid, "out of memory", 13);
    return;
  }
  int sign = rb_integer_pack(v, mag, n, 1, 0, INTEGER_PACK_BIG_ENDIAN);
  ctr_pack_v_bigint(w->out, tid, sign < 0, mag, n);
  free(mag);
}

/* Pair ("k", "v") used for hash entries, as the reference recorder does. */
static void ctr_rb_pair(ctr_rb_walk_t *w, VALUE k, VALUE v) {
  uint32_t tid = ctr_rb_type(w, CTR_TK_STRUCT, "Pair");
  uint32_t kid = ctr__rb_varname_id_lit(w->decl, "k");
  uint32_t vid = ctr__rb_varname_id_lit(w->decl, "v");
  ctr_rb_v_begin(w, CTR_V_STRUCT, tid, 2);
  ctr_rb_v_pair(w, kid);
  ctr_rb_walk_value(w, k);
  ctr_rb_v_pair(w, vid);
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
static void ctr_rb_hash(ctr_rb_walk_t *w, VALUE h, VALUE type, bool keys_only) {
  uint32_t tid = ctr__rb_type_id_class(w->decl, CTR_TK_SEQ, type);
  size_t size = RHASH_SIZE(h);
  uint32_t n = size > w->max_length ? w->max_length : (uint32_t)size;
  ctr_rb_v_begin(w, CTR_V_SEQ, tid, n);
  if (n == 0)
    return;
  ctr_rb_hash_it_t it = {w, n, keys_only};
  rb_hash_foreach(h, ctr_rb_hash_cb, (VALUE)&it);
  /* The count was announced up front; a hash cannot shrink while we hold
   * the GVL, but stay well-formed whatever happens. */
  while (it.left-- > 0)
    ctr_rb_v_none(w, ctr_rb_type(w, CTR_TK_NONE, "NilClass"));
}

static void ctr_rb_array(ctr_rb_walk_t *w, VALUE a) {
  uint32_t tid = ctr_rb_type_of(w, CTR_TK_SEQ, a);
  long len = RARRAY_LEN(a);
  uint32_t n =
      (unsigned long)len > w->max_length ? w->max_length : (uint32_t)len;
  ctr_rb_v_begin(w, CTR_V_SEQ, tid, n);
  for (uint32_t i = 0; i < n; i++)
    ctr_rb_walk_value(w, RARRAY_AREF(a, i));
}

static void ctr_rb_struct2(ctr_rb_walk_t *w, VALUE type, const char *n1,
                           VALUE v1, const char *n2, VALUE v2) {
  uint32_t tid = ctr__rb_type_id_class(w->decl, CTR_TK_STRUCT, type);
  uint32_t id1 = ctr__rb_varname_id_lit(w->decl, n1);
  uint32_t id2 = ctr__rb_varname_id_lit(w->decl, n2);
  ctr_rb_v_begin(w, CTR_V_STRUCT, tid, 2);
  ctr_rb_v_pair(w, id1);
  ctr_rb_walk_value(w, v1);
  ctr_rb_v_pair(w, id2);
  ctr_rb_walk_value(w, v2);
}

static void ctr_rb_struct(ctr_rb_walk_t *w, VALUE v) {
  VALUE members = rb_struct_members(v);
  long len = RARRAY_LEN(members);
  uint32_t n =
      (unsigned long)len > w->max_length ? w->max_length : (uint32_t)len;
  uint32_t tid = ctr_rb_type_of(w, CTR_TK_STRUCT, v);
  ctr_rb_v_begin(w, CTR_V_STRUCT, tid, n);
  for (uint32_t i = 0; i < n; i++) {
    VALUE m = RARRAY_AREF(members, i);
    ctr_rb_v_pair(w, SYMBOL_P(m) ? ctr__rb_varname_id_sym(w->decl, SYM2ID(m))
                                 : ctr__rb_varname_id(w->decl, "?", 1));
    ctr_rb_walk_value(w, rb_struct_aref(v, LONG2FIX(i)));
  }
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
static void ctr_rb_object(ctr_rb_walk_t *w, VALUE v, const ctr_rb_class_t *c) {
  VALUE mesg = Qnil;
  if (RB_TYPE_P(v, T_OBJECT) && c != NULL && (c->flags & CTR_RB_CLASS_EXC))
    mesg = rb_attr_get(v, ctr__rb_id.mesg);
  bool has_mesg = RB_TYPE_P(mesg, T_STRING);
  uint32_t cap = w->max_length;
  ID names_stack[CTR_RB_IVARS_STACK];
  VALUE values_stack[CTR_RB_IVARS_STACK];
  ctr_rb_ivars_t iv = {names_stack, values_stack, 0, cap};
  if (cap > CTR_RB_IVARS_STACK) {
    if (rb_ivar_count(v) <= CTR_RB_IVARS_STACK) {
      iv.cap = CTR_RB_IVARS_STACK; /* all of them fit */
    } else {
      iv.names = malloc(sizeof *iv.names * cap);
      iv.values = malloc(sizeof *iv.values * cap);
    }
  }
  if (cap > 0 && iv.names != NULL && iv.values != NULL)
    rb_ivar_foreach(v, ctr_rb_ivar_cb, (st_data_t)&iv);
  if (iv.n > 0 || has_mesg) {
    uint32_t tid = ctr_rb_type_of(w, CTR_TK_STRUCT, v);
    ctr_rb_v_begin(w, CTR_V_STRUCT, tid, iv.n + (has_mesg ? 1 : 0));
    if (has_mesg) {
      ctr_rb_v_pair(w, ctr__rb_varname_id_lit(w->decl, "message"));
      ctr_rb_walk_value(w, mesg);
    }
    for (uint32_t i = 0; i < iv.n; i++) {
      ctr_rb_v_pair(w, ctr__rb_varname_id_sym(w->decl, iv.names[i]));
      ctr_rb_walk_value(w, iv.values[i]);
    }
  } else {
    ctr_rb_raw_class(w, v);
  }
  if (iv.names != names_stack) {
    free(iv.names);
    free(iv.values);
  }
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
  ctr_rb_class_t *c = ctr_rb_class(v);
  if (RB_TYPE_P(v, T_OBJECT) && c != NULL) {
    if (c->flags & CTR_RB_CLASS_SET) {
      VALUE h = rb_attr_get(v, rb_intern("@hash"));
      if (RB_TYPE_P(h, T_HASH)) {
        ctr_rb_hash(w, h, rb_obj_class(v), true);
        return;
      }
    }
    if (c->flags & CTR_RB_CLASS_OSTRUCT) {
      VALUE h = rb_attr_get(v, rb_intern("@table"));
      if (RB_TYPE_P(h, T_HASH)) {
        ctr_rb_hash(w, h, rb_obj_class(v), false);
        return;
      }
    }
  }
  ctr_rb_object(w, v, c);
}

/* Packs the object v (on the visiting stack from w->depth) with `pack`,
 * through the memo, which turns the bytes into a REF or a DEF.
 *
 * A value of the message's own (a variable, self, an argument) met again
 * in the same message is the REF ctr_vref_seen packs, unless its bytes
 * depended on where it was met: a budget marker. Nested ones are walked
 * again: their bytes also depend on their ancestors, which show as
 * "<cycle>" wherever the walk meets them, and two places with the same
 * depth left can have different ancestors. */
static void ctr_rb_nest(ctr_rb_walk_t *w, VALUE v,
                        void (*pack)(ctr_rb_walk_t *w, VALUE v)) {
  bool top = w->depth == 0;
  if (top && ctr_vref_seen(w->sb, (const void *)v, w->max_depth, UINT32_MAX,
                           NULL))
    return;
  bool cut = w->cut;
  w->cut = false;
  w->visiting[w->depth++] = v;
  size_t mark = ctr_vref_open(w->sb);
  pack(w, v);
  w->depth--;
  if (w->depth < CTR_RB_VREF_DEPTH)
    ctr_vref_close(w->sb, mark, top && !w->cut ? (const void *)v : NULL,
                   w->max_depth, 1);
  w->cut = w->cut || cut;
}

static void ctr_rb_regexp(ctr_rb_walk_t *w, VALUE v) {
  ctr_rb_struct2(w, rb_obj_class(v), "source", RREGEXP_SRC(v), "options",
                 INT2FIX(rb_reg_options(v)));
}

/* A Time with a readable instant (checked by the caller). */
static void ctr_rb_time_value(ctr_rb_walk_t *w, VALUE v) {
  struct timespec ts = {0, 0};
  (void)ctr_rb_time(v, &ts);
  ctr_rb_struct2(w, rb_obj_class(v), "sec", LONG2NUM(ts.tv_sec), "nsec",
                 LONG2NUM(ts.tv_nsec));
}

static void ctr_rb_walk_value(ctr_rb_walk_t *w, VALUE v) {
  if (g_msg.budget != 0 && g_msg.nodes >= g_msg.budget) {
    ctr_rb_v_text(w, CTR_V_ERROR, ctr_rb_type(w, CTR_TK_ERROR, "No type"),
                  CTR_RB_BUDGET_TEXT, sizeof CTR_RB_BUDGET_TEXT - 1);
    w->cut = true;
    return;
  }
  g_msg.nodes++;
  if (FIXNUM_P(v)) {
    ctr_rb_integer(w, v);
    return;
  }
  if (NIL_P(v)) {
    ctr_rb_v_none(w, ctr_rb_type(w, CTR_TK_NONE, "NilClass"));
    return;
  }
  if (v == Qtrue || v == Qfalse) {
    ctr_rb_v_bool(w, ctr_rb_type(w, CTR_TK_BOOL, "Bool"), v == Qtrue);
    return;
  }
  if (RB_FLOAT_TYPE_P(v)) {
    ctr_rb_v_float(w, ctr_rb_type(w, CTR_TK_FLOAT, "Float"), RFLOAT_VALUE(v));
    return;
  }
  if (SYMBOL_P(v)) {
    VALUE s = rb_sym2str(v);
    ctr_rb_string(w, ctr_rb_type(w, CTR_TK_STRING, "Symbol"), s);
    return;
  }
  if (SPECIAL_CONST_P(v) || RB_TYPE_P(v, T_UNDEF)) {
    ctr_rb_v_text(w, CTR_V_ERROR, ctr_rb_type(w, CTR_TK_ERROR, "No type"),
                  "<special>", 9);
    return;
  }
  if (v == ctr__rb_main_obj) {
    ctr_rb_v_text(w, CTR_V_RAW, ctr_rb_type(w, CTR_TK_RAW, "Object"), "main",
                  4);
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
    ctr_rb_v_text(w, CTR_V_RAW, ctr_rb_type_of(w, CTR_TK_RAW, v),
                  RSTRING_PTR(name), (size_t)RSTRING_LEN(name));
    return;
  }
  case T_REGEXP:
    if (w->depth >= w->max_depth)
      break;
    ctr_rb_nest(w, v, ctr_rb_regexp);
    return;
  case T_DATA:
    if (ctr_rb_is_bigdecimal(v)) {
      VALUE text = ctr_rb_bigdecimal_text(v);
      if (NIL_P(text))
        break;
      ctr_rb_v_text(w, CTR_V_RAW, ctr_rb_type_of(w, CTR_TK_RAW, v),
                    RSTRING_PTR(text), (size_t)RSTRING_LEN(text));
      RB_GC_GUARD(text);
      return;
    }
    if (rb_obj_is_kind_of(v, rb_cTime)) {
      struct timespec ts;
      if (w->depth >= w->max_depth || !ctr_rb_time(v, &ts))
        break;
      ctr_rb_nest(w, v, ctr_rb_time_value);
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
  ctr_rb_nest(w, v, ctr_rb_compound);
}

void ctr__rb_value_message(void) {
  g_msg.nodes = 0;
  g_msg.budget = ctr_client_settings()->max_nodes;
  ctr_vref_message();
}

void ctr__rb_value_pack(msgpack_packer *decl, msgpack_packer *out, VALUE v) {
  const ctr_welcome_t *s = ctr_client_settings();
  ctr_rb_walk_t w;
  w.decl = decl;
  w.out = out;
  w.sb = (msgpack_sbuffer *)out->data;
  w.max_depth = s->max_depth ? s->max_depth : CTR_RB_DEPTH_DEFAULT;
  if (w.max_depth > CTR_RB_DEPTH_HARD)
    w.max_depth = CTR_RB_DEPTH_HARD;
  w.max_length = s->max_length ? s->max_length : CTR_RB_LENGTH_DEFAULT;
  w.max_string = s->max_string ? s->max_string : CTR_RB_STRING_DEFAULT;
  w.depth = 0;
  w.cut = false;
  ctr_rb_walk_value(&w, v);
}

/* Packs [[varname_id, value]...] pairs into scratch; returns the count. */
uint32_t ctr__rb_value_pairs(msgpack_packer *pk, VALUE names, VALUE vals) {
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
