/* ctr_rb_names.c: the ids a connection shares with the daemon.
 *
 * Types, variable names, paths and functions are declared once per
 * connection (TYPE, VARNAME, PATH, FUNC) and referred to by id afterwards.
 * A fork's child starts a new connection and declares them all again: the
 * tables are per generation. Path and function records themselves live for
 * the process. */
#include <ruby.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctr_path.h"
#include "ctr_rb.h"

/* Direct-mapped caches in front of the tables (see ctr_rb_memo). */
#define CTR_RB_MEMO_SIZE 256
#define CTR_RB_NAME_MEMO_BITS 12
#define CTR_RB_NAME_MEMO_SIZE (1u << CTR_RB_NAME_MEMO_BITS)

/* ---- interning tables ------------------------------------------------- */

static int ctr_rb_key_cmp(st_data_t a, st_data_t b) {
  const ctr_rb_key_t *x = (const ctr_rb_key_t *)a, *y = (const ctr_rb_key_t *)b;
  return x->len != y->len || memcmp(x->data, y->data, x->len) != 0;
}

static st_index_t ctr_rb_key_hash(st_data_t a) {
  const ctr_rb_key_t *x = (const ctr_rb_key_t *)a;
  return st_hash(x->data, x->len, 0x63747263);
}

const struct st_hash_type ctr__rb_key_type = {ctr_rb_key_cmp, ctr_rb_key_hash};

typedef struct ctr_rb_names_s {
  st_table *tab;
  uint32_t next;
} ctr_rb_names_t;

static ctr_rb_names_t g_types, g_varnames, g_paths;
static uint32_t g_next_func;
static st_table *g_paths_by_str; /* Ruby path String -> ctr_rb_path_t* */
static st_table *g_funcs;        /* ctr_rb_fkey_t* -> ctr_rb_func_t* */
static char g_cwd[4096];

static int ctr_rb_key_free(st_data_t k, st_data_t v, st_data_t arg) {
  free((void *)k);
  return ST_DELETE;
}

static void ctr_rb_table_reset(ctr_rb_names_t *nt) {
  if (nt->tab == NULL)
    nt->tab = st_init_table(&ctr__rb_key_type);
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

/* Fast paths in front of the name tables, cleared with them: by Symbol id,
 * by (class, kind) and by (string literal, kind). Hashing a pointer is much
 * cheaper than hashing the name, and a class name costs an allocation. */
static st_table *g_varname_by_id, *g_type_by_class, *g_by_lit;
static VALUE g_type_classes; /* keeps the classes used as keys alive */

/* Direct-mapped caches in front of those tables: a variable or type is
 * looked up for every value captured, and most lookups hit the few names
 * of the code running now. An entry is valid for its generation only. */

typedef struct ctr_rb_memo_s {
  st_data_t key;
  uint32_t id;
  uint32_t gen;
} ctr_rb_memo_t;

static ctr_rb_memo_t g_varname_memo[CTR_RB_NAME_MEMO_SIZE];
static ctr_rb_memo_t g_lit_memo[CTR_RB_MEMO_SIZE];
static ctr_rb_memo_t g_type_class_memo[CTR_RB_NAME_MEMO_SIZE];
static uint32_t g_memo_gen; /* the client generation the tables are for */

static ctr_rb_memo_t *ctr_rb_memo(ctr_rb_memo_t *memo, st_data_t key) {
  return &memo[(key ^ (key >> 9) ^ (key >> 17)) % CTR_RB_MEMO_SIZE];
}

/* The same for the larger memos of variable names (every instance
 * variable of every object captured) and of class types. */
static ctr_rb_memo_t *ctr_rb_memo_big(ctr_rb_memo_t *memo, st_data_t key) {
  return &memo[(uint64_t)key * 0x9E3779B97F4A7C15u >>
               (64 - CTR_RB_NAME_MEMO_BITS)];
}

uint32_t ctr__rb_varname_id_sym(msgpack_packer *pk, ID sym) {
  ctr_rb_memo_t *m = ctr_rb_memo_big(g_varname_memo, (st_data_t)sym);
  if (m->key == (st_data_t)sym && m->gen == g_memo_gen)
    return m->id;
  st_data_t val;
  uint32_t id;
  if (st_lookup(g_varname_by_id, (st_data_t)sym, &val)) {
    id = (uint32_t)val;
  } else {
    VALUE s = rb_id2str(sym);
    if (NIL_P(s))
      return ctr__rb_varname_id(pk, "?", 1);
    id = ctr__rb_varname_id(pk, RSTRING_PTR(s), (size_t)RSTRING_LEN(s));
    st_insert(g_varname_by_id, (st_data_t)sym, (st_data_t)id);
  }
  m->key = (st_data_t)sym;
  m->id = id;
  m->gen = g_memo_gen;
  return id;
}

uint32_t ctr__rb_type_id_class(msgpack_packer *pk, int kind, VALUE klass) {
  st_data_t key = (st_data_t)klass * 64 + (st_data_t)kind, val;
  ctr_rb_memo_t *m = ctr_rb_memo_big(g_type_class_memo, key);
  if (m->key == key && m->gen == g_memo_gen)
    return m->id; /* g_type_classes keeps the class: its address is its own */
  uint32_t id;
  if (st_lookup(g_type_by_class, key, &val)) {
    id = (uint32_t)val;
  } else {
    VALUE name = ctr__rb_class_name(klass);
    id =
        ctr__rb_type_id(pk, kind, RSTRING_PTR(name), (size_t)RSTRING_LEN(name));
    st_insert(g_type_by_class, key, (st_data_t)id);
    rb_ary_push(g_type_classes, klass);
    RB_GC_GUARD(name);
  }
  m->key = key;
  m->id = id;
  m->gen = g_memo_gen;
  return id;
}

/* A variable name (kind -1) or a type of `kind` named by a string literal,
 * keyed by the literal's address. */
static uint32_t ctr_rb_lit_id(msgpack_packer *pk, int kind, const char *lit) {
  st_data_t key = (st_data_t)lit * 64 + (st_data_t)(kind + 1), val;
  ctr_rb_memo_t *m = ctr_rb_memo(g_lit_memo, key);
  if (m->key == key && m->gen == g_memo_gen)
    return m->id;
  uint32_t id;
  if (st_lookup(g_by_lit, key, &val)) {
    id = (uint32_t)val;
  } else {
    id = kind < 0 ? ctr__rb_varname_id(pk, lit, strlen(lit))
                  : ctr__rb_type_id(pk, kind, lit, strlen(lit));
    st_insert(g_by_lit, key, (st_data_t)id);
  }
  m->key = key;
  m->id = id;
  m->gen = g_memo_gen;
  return id;
}

uint32_t ctr__rb_varname_id_lit(msgpack_packer *pk, const char *lit) {
  return ctr_rb_lit_id(pk, -1, lit);
}

uint32_t ctr__rb_type_id_lit(msgpack_packer *pk, int kind, const char *lit) {
  return ctr_rb_lit_id(pk, kind, lit);
}

static int ctr_rb_fkey_cmp(st_data_t a, st_data_t b) {
  return memcmp((const void *)a, (const void *)b, sizeof(ctr_rb_fkey_t)) != 0;
}

static st_index_t ctr_rb_fkey_hash(st_data_t a) {
  return st_hash((const void *)a, sizeof(ctr_rb_fkey_t), 0x66756e63);
}

static const struct st_hash_type ctr_rb_fkey_type = {ctr_rb_fkey_cmp,
                                                     ctr_rb_fkey_hash};

void ctr__rb_names_init(const char *cwd) {
  snprintf(g_cwd, sizeof g_cwd, "%s", cwd);
  g_paths_by_str = st_init_numtable();
  g_funcs = st_init_table(&ctr_rb_fkey_type);
  g_varname_by_id = st_init_numtable();
  g_type_by_class = st_init_numtable();
  g_by_lit = st_init_numtable();
  g_type_classes = rb_ary_new();
  rb_gc_register_mark_object(g_type_classes);
}

void ctr__rb_names_reset(uint32_t gen) {
  ctr_rb_table_reset(&g_types);
  ctr_rb_table_reset(&g_varnames);
  ctr_rb_table_reset(&g_paths);
  st_clear(g_varname_by_id);
  st_clear(g_type_by_class);
  st_clear(g_by_lit);
  g_memo_gen = gen;
  g_next_func = 0;
}

static int ctr_rb_mark_path(st_data_t k, st_data_t v, st_data_t arg) {
  rb_gc_mark((VALUE)k);
  return ST_CONTINUE;
}

static int ctr_rb_mark_func(st_data_t k, st_data_t v, st_data_t arg) {
  const ctr_rb_fkey_t *fk = (const ctr_rb_fkey_t *)k;
  const ctr_rb_func_t *f = (const ctr_rb_func_t *)v;
  rb_gc_mark(f->param_names);
  rb_gc_mark(f->local_names);
  rb_gc_mark(f->tree_tp);
  rb_gc_mark(f->tree_iseq);
  rb_gc_mark(fk->klass);
  rb_gc_mark(fk->mid);
  rb_gc_mark(fk->path);
  return ST_CONTINUE;
}

/* rb_gc_mark pins: the tables use object addresses. */
void ctr__rb_names_mark(void) {
  if (g_paths_by_str)
    st_foreach(g_paths_by_str, ctr_rb_mark_path, 0);
  if (g_funcs)
    st_foreach(g_funcs, ctr_rb_mark_func, 0);
}

/* ---- paths --------------------------------------------------------------- */

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
    p->abs[i + 1] =
        (in[i] == '/' || in[i] == '\0' || in[i] == '<' || in[i] == '>') ? '_'
                                                                        : in[i];
  p->abs[m + 1] = '>';
  p->abs[m + 2] = '\0';
  p->len = m + 2;
}

ctr_rb_path_t *ctr__rb_path_info(VALUE path) {
  /* Consecutive events mostly come from the same file. */
  static VALUE last_path;
  static ctr_rb_path_t *last_info;
  if (path == last_path && last_info != NULL)
    return last_info;
  st_data_t val;
  if (st_lookup(g_paths_by_str, (st_data_t)path, &val)) {
    last_path = path;
    last_info = (ctr_rb_path_t *)val;
    return last_info;
  }
  ctr_rb_path_t *p = calloc(1, sizeof *p);
  if (p == NULL)
    return NULL;
  const char *s = RSTRING_PTR(path);
  size_t n = (size_t)RSTRING_LEN(path);
  if (n == 0) {
    p->skip = true;
  } else if (strncmp(s, "<internal:", 10) == 0) {
    ctr_rb_pseudo_path(p, s, n); /* Ruby's own code: no text, never eval'd */
  } else if (s[0] == '(' || s[0] == '<' || s[0] == '-') {
    ctr_rb_pseudo_path(p, s, n);
    p->evalish = s[0] != '-';
  } else if (memchr(s, '\0', n) == NULL) {
    size_t cl = s[0] == '/' ? 0 : strlen(g_cwd) + 1;
    p->abs = malloc(cl + n + 2);
    if (p->abs) {
      if (cl)
        snprintf(p->abs, cl + 1, "%s/", g_cwd);
      memcpy(p->abs + cl, s, n);
      p->abs[cl + n] = '\0';
      p->len = ctr_path_normalize(p->abs); /* the daemon rejects others */
      struct stat st;
      p->real_file = stat(p->abs, &st) == 0 && S_ISREG(st.st_mode);
      if (!p->real_file) {
        /* eval with a made-up file name: no file to show, so a pseudo path. */
        free(p->abs);
        p->abs = NULL;
        ctr_rb_pseudo_path(p, s, n);
        p->evalish = true;
      }
    }
  }
  if (p->abs == NULL)
    p->skip = true;
  st_insert(g_paths_by_str, (st_data_t)path, (st_data_t)p);
  return p;
}

/* Declares the path (and its text) in this connection when needed. */
uint32_t ctr__rb_path_id(msgpack_packer *pk, ctr_rb_path_t *p) {
  if (p->gen == ctr__rb.gen)
    return p->id;
  uint32_t id;
  if (ctr_rb_names_intern(&g_paths, 0, p->abs, p->len, &id)) {
    ctr_pack_path(pk, id, p->abs, p->len);
    if (p->real_file)
      ctr_client_pack_source(pk, id, p->abs);
    else if (p->text != NULL)
      ctr_pack_source(pk, id, p->text, p->text_len);
  }
  p->id = id;
  p->gen = ctr__rb.gen;
  return id;
}

static VALUE ctr_rb_params_body(VALUE arg) {
  VALUE *a = (VALUE *)arg;
  VALUE um = rb_funcall(a[0], ctr__rb_id.instance_method, 1, a[1]);
  return rb_funcall(um, ctr__rb_id.parameters, 0);
}

/* Function name as the reference recorder shows it: plain for methods
 * defined at the top level, "Class#m" for instance methods and "Class.m"
 * for singleton methods. */
static VALUE ctr_rb_func_name(VALUE klass, VALUE mid) {
  VALUE m = SYMBOL_P(mid) ? rb_sym2str(mid) : rb_str_new_cstr("<main>");
  if (klass == rb_cObject || NIL_P(klass) || RB_TYPE_P(klass, T_ICLASS))
    return rb_str_dup(m);
  const char *sep = "#";
  VALUE owner = klass;
  if (FL_TEST(klass, FL_SINGLETON)) {
    VALUE att = rb_attr_get(klass, ctr__rb_id.attached);
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

/* Direct-mapped cache in front of g_funcs: a call-heavy loop calls the
 * same few functions, and hashing the whole key costs more than this. */
static ctr_rb_func_t *g_func_memo[CTR_RB_MEMO_SIZE];

ctr_rb_func_t *ctr__rb_func_lookup(VALUE klass, VALUE mid, VALUE path,
                                   long line, bool block,
                                   const ctr_rb_path_t *src) {
  ctr_rb_fkey_t key;
  memset(&key, 0, sizeof key);
  key.klass = klass;
  key.mid = mid;
  key.path = path;
  key.line = line;
  key.block = block;
  key.src = src;
  st_data_t h = (st_data_t)klass ^ ((st_data_t)mid >> 3) ^
                ((st_data_t)path >> 5) ^ (st_data_t)line * 7 ^ (st_data_t)block;
  ctr_rb_func_t **memo = &g_func_memo[(h ^ (h >> 11)) % CTR_RB_MEMO_SIZE];
  if (*memo != NULL && memcmp(&(*memo)->key, &key, sizeof key) == 0)
    return *memo;
  st_data_t val;
  if (st_lookup(g_funcs, (st_data_t)&key, &val)) {
    *memo = (ctr_rb_func_t *)val;
    return *memo;
  }

  ctr_rb_func_t *f = calloc(1, sizeof *f);
  if (f == NULL)
    return NULL;
  f->key = key;
  VALUE name = ctr_rb_func_name(key.klass, key.mid);
  if (block) {
    VALUE b = rb_str_new_cstr("block in ");
    rb_str_append(b, name);
    name = b;
  }
  f->name_len = (size_t)RSTRING_LEN(name);
  f->name = malloc(f->name_len + 1);
  if (f->name) {
    memcpy(f->name, RSTRING_PTR(name), f->name_len);
    f->name[f->name_len] = '\0'; /* a C string for the filter */
  } else {
    f->name_len = 0;
  }

  /* Parameter names come from the method's owner, so that a method reached
   * through super reports its own parameters. Anonymous ones (`*`, `**`,
   * `&`, `...`) have no local variable to read. */
  f->nparams = 0;
  if (!block && SYMBOL_P(key.mid) &&
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
            SYMBOL_P(RARRAY_AREF(pr, 1)) &&
            rb_is_local_id(SYM2ID(RARRAY_AREF(pr, 1))))
          f->params[f->nparams++] = SYM2ID(RARRAY_AREF(pr, 1));
      }
    }
  }
  f->param_names = Qnil;
  f->local_names = Qundef;
  f->tree_tp = f->tree_iseq = Qnil;
  if (f->nparams > 0) {
    f->param_names = rb_ary_new_capa(f->nparams);
    for (int i = 0; i < f->nparams; i++)
      rb_ary_push(f->param_names, ID2SYM(f->params[i]));
    rb_obj_freeze(f->param_names);
  }
  ctr_rb_fkey_t *k = &f->key;
  st_insert(g_funcs, (st_data_t)k, (st_data_t)f);
  *memo = f;
  RB_GC_GUARD(name);
  return f;
}

ctr_rb_func_t *ctr__rb_func_info(rb_trace_arg_t *targ, VALUE path, bool block,
                                 const ctr_rb_path_t *src) {
  return ctr__rb_func_lookup(rb_tracearg_defined_class(targ),
                             rb_tracearg_method_id(targ), path,
                             NUM2LONG(rb_tracearg_lineno(targ)), block, src);
}

uint32_t ctr__rb_func_id(msgpack_packer *pk, ctr_rb_func_t *f, uint32_t pid) {
  if (f->gen != ctr__rb.gen) {
    f->id = g_next_func++;
    ctr_pack_func(pk, f->id, pid, f->key.line, f->name, f->name_len);
    f->gen = ctr__rb.gen;
  }
  return f->id;
}
