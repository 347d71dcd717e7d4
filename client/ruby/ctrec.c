/* ctrec.c: the Ruby shim. `require 'ctrec'` records the program into ctrecd
 * when CT_RECORDER_SOCKET is set, and does nothing at all otherwise.
 *
 * It uses the C tracing API (rb_add_event_hook2 with raw trace args) for
 * line, call, return and raise events, and wraps STDOUT/STDERR#write and
 * Warning.warn to record program output.
 *
 * Blocks: b_call/b_return are not recorded as calls. A block's lines are
 * steps of the innermost recorded method frame, which is how the reference
 * Ruby recorder shows them, and it keeps calls and returns balanced without
 * a second kind of frame. Methods defined in skipped code (the standard
 * library, gems) produce no CALL/RETURN and no steps; a per-thread stack of
 * "CALL was sent" flags makes every RETURN match its CALL. */
#include <errno.h>
#include <fcntl.h>
#include <ruby.h>
#include <ruby/debug.h>
#include <ruby/version.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctr_rb.h"

#define CTR_RB_SHIM_VERSION CTREC_VERSION
/* SOURCE text beyond this is not sent: it would pass the daemon's default
 * string limit (limits.max_string, 4 MiB) and cost the whole connection. */
#define CTR_RB_SOURCE_MAX ((4u << 20) - 64)
/* Output is sent in pieces so that no single EVENT passes that limit. */
#define CTR_RB_EVENT_CHUNK (1u << 20)

/* With RUBY_EVENT_HOOK_FLAG_RAW_ARG Ruby calls the hook as
 * hook(data, trace_arg); the API still takes the classic pointer type. */
#define CTR_RB_HOOK_FN ((rb_event_hook_func_t)(void (*)(void))ctr_rb_hook)

#define CTR_RB_EVENTS                                                          \
  (RUBY_EVENT_LINE | RUBY_EVENT_CALL | RUBY_EVENT_RETURN | RUBY_EVENT_RAISE |  \
   RUBY_EVENT_THREAD_END)

/* ---- interning tables ------------------------------------------------- */

/* Byte-string keys (names may contain NUL) for the per-generation tables. */
typedef struct ctr_rb_key_s {
  size_t len;
  char data[];
} ctr_rb_key_t;

static int ctr_rb_key_cmp(st_data_t a, st_data_t b) {
  const ctr_rb_key_t *x = (const ctr_rb_key_t *)a, *y = (const ctr_rb_key_t *)b;
  return x->len != y->len || memcmp(x->data, y->data, x->len) != 0;
}

static st_index_t ctr_rb_key_hash(st_data_t a) {
  const ctr_rb_key_t *x = (const ctr_rb_key_t *)a;
  return st_hash(x->data, x->len, 0x63747263);
}

static const struct st_hash_type ctr_rb_key_type = {ctr_rb_key_cmp,
                                                    ctr_rb_key_hash};

typedef struct ctr_rb_names_s {
  st_table *tab;
  uint32_t next;
} ctr_rb_names_t;

static ctr_rb_names_t g_types, g_varnames, g_paths;
static uint32_t g_next_func;

static int ctr_rb_key_free(st_data_t k, st_data_t v, st_data_t arg) {
  free((void *)k);
  return ST_DELETE;
}

static void ctr_rb_names_reset(ctr_rb_names_t *nt) {
  if (nt->tab == NULL)
    nt->tab = st_init_table(&ctr_rb_key_type);
  else
    st_foreach(nt->tab, ctr_rb_key_free, 0);
  nt->next = 0;
}

/* Looks `prefix`+`name` up; returns true and sets *id for a new entry. */
static bool ctr_rb_names_intern(ctr_rb_names_t *nt, char prefix,
                                const char *name, size_t n, uint32_t *id) {
  char stackbuf[sizeof(ctr_rb_key_t) + 256];
  size_t total = n + (prefix ? 1 : 0);
  ctr_rb_key_t *k = total <= 256 ? (ctr_rb_key_t *)stackbuf
                                 : malloc(sizeof(ctr_rb_key_t) + total);
  if (k == NULL) {
    *id = 0;
    return false;
  }
  k->len = total;
  if (prefix)
    k->data[0] = prefix;
  memcpy(k->data + (prefix ? 1 : 0), name, n);
  st_data_t val;
  if (st_lookup(nt->tab, (st_data_t)k, &val)) {
    if (k != (ctr_rb_key_t *)stackbuf)
      free(k);
    *id = (uint32_t)val;
    return false;
  }
  if (k == (ctr_rb_key_t *)stackbuf) {
    k = malloc(sizeof(ctr_rb_key_t) + total);
    if (k == NULL) {
      *id = 0;
      return false;
    }
    memcpy(k, stackbuf, sizeof(ctr_rb_key_t) + total);
  }
  *id = nt->next++;
  st_insert(nt->tab, (st_data_t)k, (st_data_t)*id);
  return true;
}

uint32_t ctr__rb_type_id(msgpack_packer *pk, int kind, const char *name,
                         size_t n) {
  uint32_t id;
  if (ctr_rb_names_intern(&g_types, (char)('A' + kind), name, n, &id))
    ctr_pack_type(pk, id, kind, name, n);
  return id;
}

uint32_t ctr__rb_varname_id(msgpack_packer *pk, const char *name, size_t n) {
  uint32_t id;
  if (ctr_rb_names_intern(&g_varnames, 0, name, n, &id))
    ctr_pack_varname(pk, id, name, n);
  return id;
}

uint32_t ctr__rb_varname_id_sym(msgpack_packer *pk, ID sym) {
  VALUE s = rb_id2str(sym);
  if (NIL_P(s))
    return ctr__rb_varname_id(pk, "?", 1);
  return ctr__rb_varname_id(pk, RSTRING_PTR(s), (size_t)RSTRING_LEN(s));
}

/* ---- shim state -------------------------------------------------------- */

typedef struct ctr_rb_path_s {
  bool skip;
  bool real_file;
  char *abs; /* absolute path, or a pseudo path like "<eval>" */
  size_t len;
  uint32_t id;
  uint32_t gen; /* generation `id` belongs to; 0 = not declared */
} ctr_rb_path_t;

/* A method is known by its owner, name and definition site. */
typedef struct ctr_rb_fkey_s {
  VALUE klass;
  VALUE mid;
  VALUE path;
  long line;
} ctr_rb_fkey_t;

typedef struct ctr_rb_func_s {
  ctr_rb_fkey_t key;
  char *name;
  size_t name_len;
  ID *params; /* named parameters in order */
  int nparams;
  uint32_t id;
  uint32_t gen;
} ctr_rb_func_t;

typedef struct ctr_rb_thread_s {
  VALUE thread;
  uint64_t wire_id;
  uint8_t *flags; /* 1 when CALL was sent for that frame */
  size_t n;
  size_t cap;
  struct ctr_rb_thread_s *next;
} ctr_rb_thread_t;

static struct {
  bool on;
  uint32_t gen; /* client generation the tables were built for, +1 */
  st_table *paths; /* path VALUE -> ctr_rb_path_t* (kept for the process) */
  st_table *funcs; /* ctr_rb_fkey_t* -> ctr_rb_func_t* */
  VALUE keep;      /* marks the VALUEs used as keys above */
  char *cwd;
  char **skip;
  size_t nskip;
  ctr_rb_thread_t *threads;
  ctr_rb_thread_t *cur; /* thread of the last event */
  uint64_t sent_thread; /* wire id of the last THREAD sent */
  VALUE stdout_obj;
  VALUE stderr_obj;
  msgpack_sbuffer scratch_buf;
  msgpack_packer scratch;
} g;

static ID id_local_variables, id_local_variable_get, id_instance_method,
    id_parameters, id_attached, id_mesg, id_status;

static int ctr_rb_fkey_cmp(st_data_t a, st_data_t b) {
  return memcmp((const void *)a, (const void *)b, sizeof(ctr_rb_fkey_t)) != 0;
}

static st_index_t ctr_rb_fkey_hash(st_data_t a) {
  return st_hash((const void *)a, sizeof(ctr_rb_fkey_t), 0x66756e63);
}

static const struct st_hash_type ctr_rb_fkey_type = {ctr_rb_fkey_cmp,
                                                     ctr_rb_fkey_hash};

static int ctr_rb_mark_path(st_data_t k, st_data_t v, st_data_t arg) {
  rb_gc_mark((VALUE)k);
  return ST_CONTINUE;
}

static int ctr_rb_mark_func(st_data_t k, st_data_t v, st_data_t arg) {
  const ctr_rb_fkey_t *fk = (const ctr_rb_fkey_t *)k;
  rb_gc_mark(fk->klass);
  rb_gc_mark(fk->mid);
  rb_gc_mark(fk->path);
  return ST_CONTINUE;
}

/* rb_gc_mark pins: the tables and the thread list use object addresses. */
static void ctr_rb_keep_mark(void *p) {
  if (g.paths)
    st_foreach(g.paths, ctr_rb_mark_path, 0);
  if (g.funcs)
    st_foreach(g.funcs, ctr_rb_mark_func, 0);
  /* Threads stay listed until their THREAD_END event drops them. */
  for (ctr_rb_thread_t *t = g.threads; t; t = t->next)
    rb_gc_mark(t->thread);
}

static const rb_data_type_t ctr_rb_keep_type = {
    "ctrec_state", {ctr_rb_keep_mark, NULL, NULL}, NULL, NULL, 0};

/* Ids are per connection: after a fork the child's session starts from 0. */
static void ctr_rb_check_generation(void) {
  uint32_t gen = ctr_client_generation() + 1;
  if (gen == g.gen)
    return;
  g.gen = gen;
  ctr_rb_names_reset(&g_types);
  ctr_rb_names_reset(&g_varnames);
  ctr_rb_names_reset(&g_paths);
  g_next_func = 0;
  /* Frames opened before the fork belong to the parent's trace. */
  for (ctr_rb_thread_t *t = g.threads; t; t = t->next)
    memset(t->flags, 0, t->n);
  g.sent_thread = 0;
}

/* ---- paths --------------------------------------------------------------- */

static bool ctr_rb_has_prefix(const char *p, const char *dir) {
  size_t n = strlen(dir);
  return strncmp(p, dir, n) == 0 && (p[n] == '/' || p[n] == '\0');
}

/* Makes `abs` (absolute) free of "." and ".." components and repeated
 * slashes, in place: the daemon rejects any other path. */
static size_t ctr_rb_normalize(char *abs) {
  size_t out = 0;
  const char *in = abs;
  while (*in) {
    while (*in == '/')
      in++;
    const char *end = strchr(in, '/');
    size_t n = end ? (size_t)(end - in) : strlen(in);
    if (n == 0)
      break;
    if (n == 1 && in[0] == '.') {
      /* skip */
    } else if (n == 2 && in[0] == '.' && in[1] == '.') {
      while (out > 0 && abs[out - 1] != '/')
        out--;
      if (out > 0)
        out--;
    } else {
      abs[out++] = '/';
      memmove(abs + out, in, n);
      out += n;
    }
    in += n;
  }
  if (out == 0)
    abs[out++] = '/';
  abs[out] = '\0';
  return out;
}

/* Code without a file ("(eval)", "-e", "-" for stdin, eval with a file
 * name that does not exist) gets a pseudo path "<...>" with no '/' in it,
 * as the protocol requires. */
static void ctr_rb_pseudo_path(ctr_rb_path_t *p, const char *s, size_t n) {
  const char *in = s;
  size_t m = n;
  if (s[0] == '(' || s[0] == '<') {
    in++;
    m -= (m >= 2 && (s[n - 1] == ')' || s[n - 1] == '>')) ? 2 : 1;
  } else if (n == 1) {
    in = "stdin";
    m = 5;
  }
  p->abs = malloc(m + 3);
  if (p->abs == NULL)
    return;
  p->abs[0] = '<';
  for (size_t i = 0; i < m; i++)
    p->abs[i + 1] = (in[i] == '/' || in[i] == '\0' || in[i] == '<' ||
                     in[i] == '>') ? '_' : in[i];
  p->abs[m + 1] = '>';
  p->abs[m + 2] = '\0';
  p->len = m + 2;
}

static ctr_rb_path_t *ctr_rb_path_info(VALUE path) {
  st_data_t val;
  if (st_lookup(g.paths, (st_data_t)path, &val))
    return (ctr_rb_path_t *)val;
  ctr_rb_path_t *p = calloc(1, sizeof *p);
  if (p == NULL)
    return NULL;
  const char *s = RSTRING_PTR(path);
  size_t n = (size_t)RSTRING_LEN(path);
  if (n == 0 || strncmp(s, "<internal:", 10) == 0) {
    p->skip = true;
  } else if (s[0] == '(' || s[0] == '<' || s[0] == '-') {
    ctr_rb_pseudo_path(p, s, n);
  } else if (memchr(s, '\0', n) == NULL) {
    size_t cl = s[0] == '/' ? 0 : strlen(g.cwd) + 1;
    p->abs = malloc(cl + n + 2);
    if (p->abs) {
      if (cl)
        snprintf(p->abs, cl + 1, "%s/", g.cwd);
      memcpy(p->abs + cl, s, n);
      p->abs[cl + n] = '\0';
      p->len = ctr_rb_normalize(p->abs);
      for (size_t i = 0; i < g.nskip; i++)
        if (ctr_rb_has_prefix(p->abs, g.skip[i]))
          p->skip = true;
      struct stat st;
      p->real_file = stat(p->abs, &st) == 0 && S_ISREG(st.st_mode);
      if (!p->real_file) {
        /* eval with a made-up file name: no file to show, so a pseudo path. */
        free(p->abs);
        p->abs = NULL;
        ctr_rb_pseudo_path(p, s, n);
      }
    }
  }
  if (p->abs == NULL)
    p->skip = true;
  st_insert(g.paths, (st_data_t)path, (st_data_t)p);
  return p;
}

static void ctr_rb_send_source(msgpack_packer *pk, uint32_t id,
                               const char *file) {
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      (uint64_t)st.st_size <= CTR_RB_SOURCE_MAX) {
    size_t cap = (size_t)st.st_size;
    char *buf = malloc(cap ? cap : 1);
    size_t len = 0;
    while (buf != NULL && len < cap) {
      ssize_t r = read(fd, buf + len, cap - len);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        break;
      len += (size_t)r;
    }
    if (buf != NULL)
      ctr_pack_source(pk, id, buf, len);
    free(buf);
  }
  close(fd);
}

/* Declares the path (and its text) in this connection when needed. */
static uint32_t ctr_rb_path_id(msgpack_packer *pk, ctr_rb_path_t *p) {
  if (p->gen == g.gen)
    return p->id;
  uint32_t id;
  if (ctr_rb_names_intern(&g_paths, 0, p->abs, p->len, &id)) {
    ctr_pack_path(pk, id, p->abs, p->len);
    if (p->real_file)
      ctr_rb_send_source(pk, id, p->abs);
  }
  p->id = id;
  p->gen = g.gen;
  return id;
}

/* ---- threads -------------------------------------------------------------- */

static ctr_rb_thread_t *ctr_rb_thread_get(VALUE th) {
  if (g.cur && g.cur->thread == th)
    return g.cur;
  ctr_rb_thread_t *t;
  for (t = g.threads; t; t = t->next)
    if (t->thread == th)
      break;
  if (t == NULL) {
    t = calloc(1, sizeof *t);
    if (t == NULL)
      return NULL;
    t->thread = th;
    t->wire_id = th == rb_thread_main() ? 0 : NUM2ULL(rb_obj_id(th));
    t->next = g.threads;
    g.threads = t;
  }
  g.cur = t;
  return t;
}

static void ctr_rb_thread_drop(VALUE th) {
  for (ctr_rb_thread_t **pp = &g.threads; *pp; pp = &(*pp)->next) {
    if ((*pp)->thread == th) {
      ctr_rb_thread_t *t = *pp;
      *pp = t->next;
      if (g.cur == t)
        g.cur = NULL;
      free(t->flags);
      free(t);
      return;
    }
  }
}

static void ctr_rb_push(ctr_rb_thread_t *t, bool sent) {
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 64;
    uint8_t *f = realloc(t->flags, cap);
    if (f == NULL) {
      /* Without room we cannot match the RETURN later: count the frame as
       * not sent, which keeps returns from outnumbering calls. */
      return;
    }
    t->flags = f;
    t->cap = cap;
  }
  t->flags[t->n++] = sent;
}

static bool ctr_rb_pop(ctr_rb_thread_t *t) {
  if (t->n == 0)
    return false; /* a frame entered before recording started */
  return t->flags[--t->n] != 0;
}

/* Packs THREAD when the events come from another thread than last time. */
static void ctr_rb_pack_thread(msgpack_packer *pk) {
  if (g.cur && g.cur->wire_id != g.sent_thread) {
    ctr_pack_thread(pk, g.cur->wire_id);
    g.sent_thread = g.cur->wire_id;
  }
}

/* Appends the scratch bytes (a message body) to the batch. */
static void ctr_rb_append_scratch(msgpack_packer *pk) {
  if (g.scratch_buf.size)
    pk->callback(pk->data, g.scratch_buf.data, g.scratch_buf.size);
  msgpack_sbuffer_clear(&g.scratch_buf);
}

/* ---- gathering values through the frame's binding ------------------------ */

typedef struct ctr_rb_gather_s {
  VALUE binding;
  VALUE names;  /* Array of Symbol */
  VALUE values; /* Array, same length */
  const ID *params;
  int nparams;
} ctr_rb_gather_t;

static VALUE ctr_rb_gather_body(VALUE arg) {
  ctr_rb_gather_t *ga = (ctr_rb_gather_t *)arg;
  if (ga->params == NULL) {
    ga->names = rb_funcall(ga->binding, id_local_variables, 0);
    Check_Type(ga->names, T_ARRAY);
  } else {
    ga->names = rb_ary_new_capa(ga->nparams);
    for (int i = 0; i < ga->nparams; i++)
      rb_ary_push(ga->names, ID2SYM(ga->params[i]));
  }
  long n = RARRAY_LEN(ga->names);
  ga->values = rb_ary_new_capa(n);
  for (long i = 0; i < n; i++)
    rb_ary_push(ga->values, rb_funcall(ga->binding, id_local_variable_get, 1,
                                       RARRAY_AREF(ga->names, i)));
  return Qnil;
}

/* Reads locals (or the named parameters) of the traced frame. Runs before
 * ctr_client_begin: these calls could in theory reach Ruby code. */
static bool ctr_rb_gather(rb_trace_arg_t *targ, ctr_rb_gather_t *ga) {
  ga->binding = ga->names = ga->values = Qnil;
  if (ga->params != NULL && ga->nparams == 0)
    return true; /* only self: no binding needed */
  ga->binding = rb_tracearg_binding(targ);
  if (NIL_P(ga->binding))
    return false;
  int state = 0;
  rb_protect(ctr_rb_gather_body, (VALUE)ga, &state);
  if (state) {
    rb_set_errinfo(Qnil);
    return false;
  }
  return true;
}

/* Packs [[varname_id, value]...] pairs into scratch; returns the count. */
static uint32_t ctr_rb_pack_pairs(msgpack_packer *pk, const ctr_rb_gather_t *ga) {
  if (NIL_P(ga->names) || NIL_P(ga->values))
    return 0;
  long n = RARRAY_LEN(ga->values);
  for (long i = 0; i < n; i++) {
    VALUE name = RARRAY_AREF(ga->names, i);
    uint32_t vid = SYMBOL_P(name) ? ctr__rb_varname_id_sym(pk, SYM2ID(name))
                                  : ctr__rb_varname_id(pk, "?", 1);
    ctr_pack_pair_begin(&g.scratch, vid);
    ctr__rb_value_pack(pk, &g.scratch, RARRAY_AREF(ga->values, i));
  }
  return (uint32_t)n;
}

/* ---- events --------------------------------------------------------------- */

static void ctr_rb_on_line(rb_trace_arg_t *targ, ctr_rb_path_t *p) {
  long line = NUM2LONG(rb_tracearg_lineno(targ));
  ctr_rb_gather_t ga = {0};
  ctr_rb_gather(targ, &ga);
  msgpack_packer *pk = ctr_client_begin();
  if (pk == NULL)
    return;
  ctr_rb_check_generation();
  ctr_rb_pack_thread(pk);
  uint32_t pid = ctr_rb_path_id(pk, p);
  ctr_pack_step(pk, pid, line);
  uint32_t n = ctr_rb_pack_pairs(pk, &ga);
  ctr_pack_vars_begin(pk, n);
  ctr_rb_append_scratch(pk);
  ctr_client_end();
  RB_GC_GUARD(ga.names);
  RB_GC_GUARD(ga.values);
  RB_GC_GUARD(ga.binding);
}

static VALUE ctr_rb_params_body(VALUE arg) {
  VALUE *a = (VALUE *)arg;
  VALUE um = rb_funcall(a[0], id_instance_method, 1, a[1]);
  return rb_funcall(um, id_parameters, 0);
}

/* Function name as the reference recorder shows it: plain for methods
 * defined at the top level, "Class#m" for instance methods and "Class.m"
 * for singleton methods. */
static VALUE ctr_rb_func_name(VALUE klass, VALUE mid) {
  VALUE m = SYMBOL_P(mid) ? rb_sym2str(mid) : rb_str_new_cstr("?");
  if (klass == rb_cObject || NIL_P(klass) || RB_TYPE_P(klass, T_ICLASS))
    return rb_str_dup(m);
  const char *sep = "#";
  VALUE owner = klass;
  if (FL_TEST(klass, FL_SINGLETON)) {
    VALUE att = rb_attr_get(klass, id_attached);
    sep = ".";
    if (att == ctr__rb_main_obj)
      return rb_str_dup(m);
    owner = (RB_TYPE_P(att, T_CLASS) || RB_TYPE_P(att, T_MODULE))
                ? att
                : rb_obj_class(att);
  }
  VALUE s = rb_str_dup(ctr__rb_class_name(owner));
  rb_str_cat_cstr(s, sep);
  rb_str_append(s, m);
  return s;
}

static ctr_rb_func_t *ctr_rb_func_info(rb_trace_arg_t *targ, VALUE path) {
  ctr_rb_fkey_t key;
  memset(&key, 0, sizeof key);
  key.klass = rb_tracearg_defined_class(targ);
  key.mid = rb_tracearg_method_id(targ);
  key.path = path;
  key.line = NUM2LONG(rb_tracearg_lineno(targ));
  st_data_t val;
  if (st_lookup(g.funcs, (st_data_t)&key, &val))
    return (ctr_rb_func_t *)val;

  ctr_rb_func_t *f = calloc(1, sizeof *f);
  if (f == NULL)
    return NULL;
  f->key = key;
  VALUE name = ctr_rb_func_name(key.klass, key.mid);
  f->name_len = (size_t)RSTRING_LEN(name);
  f->name = malloc(f->name_len + 1);
  if (f->name)
    memcpy(f->name, RSTRING_PTR(name), f->name_len);
  else
    f->name_len = 0;

  /* Parameter names come from the method's owner, so that a method reached
   * through super reports its own parameters. */
  f->nparams = 0;
  if (SYMBOL_P(key.mid) &&
      (RB_TYPE_P(key.klass, T_CLASS) || RB_TYPE_P(key.klass, T_MODULE))) {
    VALUE a[2] = {key.klass, key.mid};
    int state = 0;
    VALUE params = rb_protect(ctr_rb_params_body, (VALUE)a, &state);
    if (state) {
      rb_set_errinfo(Qnil);
    } else if (RB_TYPE_P(params, T_ARRAY)) {
      long n = RARRAY_LEN(params);
      f->params = malloc(sizeof(ID) * (size_t)(n ? n : 1));
      for (long i = 0; f->params && i < n; i++) {
        VALUE pr = RARRAY_AREF(params, i);
        if (RB_TYPE_P(pr, T_ARRAY) && RARRAY_LEN(pr) >= 2 &&
            SYMBOL_P(RARRAY_AREF(pr, 1)))
          f->params[f->nparams++] = SYM2ID(RARRAY_AREF(pr, 1));
      }
    }
  }
  ctr_rb_fkey_t *k = &f->key;
  st_insert(g.funcs, (st_data_t)k, (st_data_t)f);
  RB_GC_GUARD(name);
  return f;
}

static void ctr_rb_on_call(rb_trace_arg_t *targ, VALUE path,
                           ctr_rb_path_t *p) {
  ctr_rb_func_t *f = ctr_rb_func_info(targ, path);
  if (f == NULL)
    return;
  VALUE self = rb_tracearg_self(targ);
  ctr_rb_gather_t ga = {0};
  static const ID no_params[1];
  ga.params = f->params ? f->params : no_params;
  ga.nparams = f->nparams;
  ctr_rb_gather(targ, &ga);

  msgpack_packer *pk = ctr_client_begin();
  if (pk == NULL)
    return;
  ctr_rb_check_generation();
  ctr_rb_pack_thread(pk);
  uint32_t pid = ctr_rb_path_id(pk, p);
  if (f->gen != g.gen) {
    f->id = g_next_func++;
    ctr_pack_func(pk, f->id, pid, f->key.line, f->name, f->name_len);
    f->gen = g.gen;
  }
  uint32_t sid = ctr__rb_varname_id(pk, "self", 4);
  ctr_pack_pair_begin(&g.scratch, sid);
  ctr__rb_value_pack(pk, &g.scratch, self);
  uint32_t n = ctr_rb_pack_pairs(pk, &ga);
  ctr_pack_call_begin(pk, f->id, n + 1);
  ctr_rb_append_scratch(pk);
  ctr_client_end();
  RB_GC_GUARD(ga.names);
  RB_GC_GUARD(ga.values);
  RB_GC_GUARD(ga.binding);
  RB_GC_GUARD(self);
}

static void ctr_rb_on_return(rb_trace_arg_t *targ) {
  VALUE v = rb_tracearg_return_value(targ);
  msgpack_packer *pk = ctr_client_begin();
  if (pk == NULL)
    return;
  ctr_rb_check_generation();
  ctr_rb_pack_thread(pk);
  ctr__rb_value_pack(pk, &g.scratch, v);
  ctr_pack_return_begin(pk);
  ctr_rb_append_scratch(pk);
  ctr_client_end();
  RB_GC_GUARD(v);
}

static void ctr_rb_on_raise(rb_trace_arg_t *targ) {
  VALUE exc = rb_tracearg_raised_exception(targ);
  VALUE cls = ctr__rb_class_name(rb_obj_class(exc));
  /* The stored message, not #message, which user code may override. */
  VALUE mesg = rb_attr_get(exc, id_mesg);
  if (!RB_TYPE_P(mesg, T_STRING))
    mesg = cls;
  msgpack_packer *pk = ctr_client_begin();
  if (pk == NULL)
    return;
  ctr_rb_check_generation();
  ctr_rb_pack_thread(pk);
  ctr_pack_raise(pk, RSTRING_PTR(cls), (size_t)RSTRING_LEN(cls),
                 RSTRING_PTR(mesg), (size_t)RSTRING_LEN(mesg));
  ctr_client_end();
  RB_GC_GUARD(exc);
  RB_GC_GUARD(cls);
  RB_GC_GUARD(mesg);
}

static void ctr_rb_hook(VALUE data, rb_trace_arg_t *targ) {
  rb_event_flag_t ev = rb_tracearg_event_flag(targ);
  if (ev == RUBY_EVENT_THREAD_END) {
    ctr_rb_thread_drop(rb_thread_current());
    return;
  }
  ctr_rb_thread_t *t = ctr_rb_thread_get(rb_thread_current());
  if (t == NULL)
    return;
  if (ev == RUBY_EVENT_RETURN) {
    if (ctr_rb_pop(t) && ctr_client_active())
      ctr_rb_on_return(targ);
    return;
  }
  VALUE path = rb_tracearg_path(targ);
  ctr_rb_path_t *p = RB_TYPE_P(path, T_STRING) ? ctr_rb_path_info(path) : NULL;
  bool record = p != NULL && !p->skip && ctr_client_active();
  switch (ev) {
  case RUBY_EVENT_CALL:
    ctr_rb_push(t, record);
    if (record)
      ctr_rb_on_call(targ, path, p);
    break;
  case RUBY_EVENT_LINE:
    if (record)
      ctr_rb_on_line(targ, p);
    break;
  case RUBY_EVENT_RAISE:
    if (record)
      ctr_rb_on_raise(targ);
    break;
  default:
    break;
  }
}

/* ---- output ----------------------------------------------------------------- */

static void ctr_rb_record_output(int kind, VALUE str) {
  const char *s = RSTRING_PTR(str);
  size_t n = (size_t)RSTRING_LEN(str);
  if (n == 0)
    return;
  msgpack_packer *pk = ctr_client_begin();
  if (pk == NULL)
    return;
  ctr_rb_check_generation();
  if (g.cur == NULL || g.cur->thread != rb_thread_current())
    ctr_rb_thread_get(rb_thread_current());
  ctr_rb_pack_thread(pk);
  do {
    size_t k = n > CTR_RB_EVENT_CHUNK ? CTR_RB_EVENT_CHUNK : n;
    ctr_pack_event(pk, kind, s, k);
    s += k;
    n -= k;
  } while (n > 0);
  ctr_client_end();
  RB_GC_GUARD(str);
}

/* Prepended to STDOUT's and STDERR's singleton classes. The arguments are
 * converted with to_s once, here, exactly as IO#write would, so the bytes we
 * record are the bytes written and user code runs no more often. */
static VALUE ctr_rb_write(int argc, VALUE *argv, VALUE self) {
  if (!ctr_client_active())
    return rb_call_super(argc, argv);
  VALUE strs = rb_ary_new_capa(argc);
  for (int i = 0; i < argc; i++)
    rb_ary_push(strs, rb_obj_as_string(argv[i]));
  VALUE r = rb_call_super(argc, RARRAY_CONST_PTR(strs));
  int kind = self == g.stderr_obj ? CTR_EV_WRITE_OTHER : CTR_EV_WRITE;
  /* puts writes the text and its newline in one call: one event. */
  VALUE all = argc == 1 ? RARRAY_AREF(strs, 0) : rb_str_buf_new(0);
  for (int i = 0; argc > 1 && i < argc; i++) {
    VALUE si = RARRAY_AREF(strs, i);
    rb_str_buf_cat(all, RSTRING_PTR(si), RSTRING_LEN(si)); /* bytes, no re-encoding */
  }
  ctr_rb_record_output(kind, all);
  RB_GC_GUARD(strs);
  RB_GC_GUARD(all);
  return r;
}

/* Warning.warn writes straight to file descriptor 2 while $stderr is still
 * STDERR, bypassing STDERR#write; otherwise it goes through $stderr.write
 * and is recorded there (or goes elsewhere, and is no program output). */
static VALUE ctr_rb_warn(int argc, VALUE *argv, VALUE self) {
  VALUE r = rb_call_super_kw(argc, argv, rb_keyword_given_p());
  if (argc > 0 && RB_TYPE_P(argv[0], T_STRING) && ctr_client_active() &&
      rb_gv_get("$stderr") == g.stderr_obj)
    ctr_rb_record_output(CTR_EV_WRITE_OTHER, argv[0]);
  return r;
}

/* ---- start and exit ----------------------------------------------------- */

static void ctr_rb_end(VALUE data) {
  rb_remove_event_hook(CTR_RB_HOOK_FN);
  int64_t status = 0;
  VALUE err = rb_gv_get("$!");
  if (!NIL_P(err)) {
    status = 1;
    if (rb_obj_is_kind_of(err, rb_eSystemExit)) {
      VALUE st = rb_attr_get(err, id_status);
      if (FIXNUM_P(st))
        status = FIX2LONG(st);
    }
  }
  ctr_client_finish(status);
}

static VALUE ctr_rb_config_body(VALUE arg) {
  VALUE dirs = rb_ary_new();
  if (!rb_const_defined(rb_cObject, rb_intern("RbConfig")))
    rb_require("rbconfig");
  VALUE conf = rb_const_get(rb_const_get(rb_cObject, rb_intern("RbConfig")),
                            rb_intern("CONFIG"));
  static const char *const keys[] = {"rubylibprefix", "rubylibdir",
                                     "rubyarchdir",   "vendordir",
                                     "sitedir",       "vendorlibdir",
                                     "sitelibdir",    "vendorarchdir",
                                     "sitearchdir"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    rb_ary_push(dirs, rb_hash_aref(conf, rb_str_new_cstr(keys[i])));
  if (rb_const_defined(rb_cObject, rb_intern("Gem"))) {
    VALUE gem = rb_const_get(rb_cObject, rb_intern("Gem"));
    rb_ary_concat(dirs, rb_funcall(gem, rb_intern("path"), 0));
    rb_ary_push(dirs, rb_funcall(gem, rb_intern("default_dir"), 0));
  }
  return dirs;
}

/* Directories of the standard library and installed gems: skipped. */
static void ctr_rb_skip_dirs(void) {
  int state = 0;
  VALUE dirs = rb_protect(ctr_rb_config_body, Qnil, &state);
  if (state) {
    rb_set_errinfo(Qnil);
    return;
  }
  long n = RARRAY_LEN(dirs);
  g.skip = calloc((size_t)n + 1, sizeof *g.skip);
  if (g.skip == NULL)
    return;
  for (long i = 0; i < n; i++) {
    VALUE d = RARRAY_AREF(dirs, i);
    if (!RB_TYPE_P(d, T_STRING) || RSTRING_LEN(d) < 2)
      continue;
    char *s = strndup(RSTRING_PTR(d), (size_t)RSTRING_LEN(d));
    if (s == NULL)
      continue;
    size_t len = strlen(s);
    while (len > 1 && s[len - 1] == '/')
      s[--len] = '\0';
    g.skip[g.nskip++] = s;
  }
  RB_GC_GUARD(dirs);
}

static VALUE ctr_rb_main_body(VALUE arg) {
  VALUE b = rb_const_get(rb_cObject, rb_intern("TOPLEVEL_BINDING"));
  return rb_funcall(b, rb_intern("receiver"), 0);
}

static int ctr_rb_start_client(void) {
  char cwd[4096];
  if (getcwd(cwd, sizeof cwd) == NULL)
    strcpy(cwd, "/");
  g.cwd = strdup(cwd);
  if (g.cwd == NULL)
    return -1;

  VALUE prog = rb_gv_get("$0");
  VALUE abs = Qnil;
  if (RB_TYPE_P(prog, T_STRING)) {
    if (RSTRING_PTR(prog)[0] == '/' || RSTRING_PTR(prog)[0] == '-') {
      abs = rb_str_dup(prog);
    } else {
      abs = rb_str_new_cstr(g.cwd);
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

__attribute__((visibility("default"))) void Init_ctrec(void) {
  if (g.on)
    return;
  id_local_variables = rb_intern("local_variables");
  id_local_variable_get = rb_intern("local_variable_get");
  id_instance_method = rb_intern("instance_method");
  id_parameters = rb_intern("parameters");
  id_attached = rb_intern("__attached__");
  id_mesg = rb_intern("mesg");
  id_status = rb_intern("status");
  if (ctr_rb_start_client() != 0)
    return; /* unset: silent; failed: libctrec printed one line */
  g.on = true;

  int state = 0;
  ctr__rb_main_obj = rb_protect(ctr_rb_main_body, Qnil, &state);
  if (state) {
    rb_set_errinfo(Qnil);
    ctr__rb_main_obj = Qundef;
  }
  ctr_rb_skip_dirs();
  g.paths = st_init_numtable();
  g.funcs = st_init_table(&ctr_rb_fkey_type);
  g.keep = TypedData_Wrap_Struct(0, &ctr_rb_keep_type, NULL);
  rb_gc_register_mark_object(g.keep);
  msgpack_sbuffer_init(&g.scratch_buf);
  msgpack_packer_init(&g.scratch, &g.scratch_buf, msgpack_sbuffer_write);
  ctr_rb_check_generation();

  /* Anonymous modules: the program sees no new constant. */
  g.stdout_obj = rb_stdout;
  g.stderr_obj = rb_stderr;
  VALUE out = rb_module_new();
  rb_define_method(out, "write", ctr_rb_write, -1);
  rb_gc_register_mark_object(out);
  rb_prepend_module(rb_singleton_class(g.stdout_obj), out);
  rb_prepend_module(rb_singleton_class(g.stderr_obj), out);
  if (rb_const_defined(rb_cObject, rb_intern("Warning"))) {
    VALUE warning = rb_const_get(rb_cObject, rb_intern("Warning"));
    VALUE w = rb_module_new();
    rb_define_method(w, "warn", ctr_rb_warn, -1);
    rb_gc_register_mark_object(w);
    rb_prepend_module(rb_singleton_class(warning), w);
  }

  rb_set_end_proc(ctr_rb_end, Qnil);
  rb_add_event_hook2(CTR_RB_HOOK_FN, CTR_RB_EVENTS, Qnil,
                     RUBY_EVENT_HOOK_FLAG_SAFE | RUBY_EVENT_HOOK_FLAG_RAW_ARG);
}
