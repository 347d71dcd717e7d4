/* ctr_py_trace.c: the recorder of the Python shim.
 *
 * On 3.12+ the events come from sys.monitoring (ctr_py_monitor.c calls the
 * ctr__py_mon_* functions at the end of this file); everything else here,
 * the shadow stack, values, interning, push-down, pause and STACK, serves
 * both. What follows describes the 3.11 trace function, and the
 * sys.monitoring section says where it differs.
 *
 * A C trace function (Py_tracefunc, installed with PyEval_SetTrace in each
 * thread) turns CPython's call, line, return and exception events into
 * ctrec messages. Generators and coroutines need nothing special: CPython
 * reports each resume as a call and each yield as a return, so they stay
 * balanced by construction.
 *
 * Every traced frame gets an entry on a per-thread shadow stack that says
 * whether its CALL was sent, so each RETURN matches a CALL even when code in
 * skipped code (the shim itself, and the standard library and
 * site-packages where the built-in rules skip them) calls back into the
 * program. Frames of skipped code send nothing and get
 * their line events switched off, so they cost one call and one return
 * callback each.
 *
 * Per code object the shim keeps what it needs (path, name, argument
 * layout, interned ids, the daemon's filter decision) in the code object's
 * co_extra slot (PEP 523), so the hot path does no dictionary lookups of
 * its own.
 *
 * Push-down: the daemon filters everything itself, but it also sends its
 * code rules, and ctr_client_decide_in answers exactly as the daemon
 * would. A frame whose code the daemon would skip sends nothing (its
 * callees are decided on their own), and below a skip-tree frame nothing
 * is sent until it returns, so the daemon sees the same trace with less
 * work on both sides. Output and RAISE do not depend on frames in the
 * daemon, so they are still sent. With filter.pushdown: false the shim
 * decides with the rules but skips nothing (and captures every value),
 * which is how the tests check that traces are identical.
 *
 * While the daemon has paused the session the trace function is removed
 * from every thread: CPython then runs at full speed (any trace function,
 * even an empty one, turns off its specialised instructions). A small
 * watcher thread notices RESUME and reinstalls it on every thread, holding
 * the GIL; output written meanwhile notices it too.
 * Each thread then rebuilds its shadow stack from its live frames and
 * sends it as STACK before anything else. */
#include "ctr_py.h" /* Python.h first, as CPython requires */
#include "ctr_enc.h"
#include "ctr_path.h"

#include <errno.h>
#include <stdatomic.h>
#include <time.h>
#include <frameobject.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <structmember.h>
#include <sys/stat.h>
#include <unistd.h>

/* Module frames can hold many globals; VARS carries at most this many. */
#define CTR_PY_VARS_MAX 512
/* Fast locals of one function that VARS shows at most. */
#define CTR_PY_SLOTS_MAX 256
/* Fast locals of the functions whose steps are encoded in place. */
#define CTR_PY_FAST_VARS 32

static struct {
  bool on;
  uint32_t gen; /* client generation the tables were built for, +1 */
  Py_ssize_t extra_index;
  ctr_py_map_t paths;    /* co_filename -> ctr_py_path_t*, for the process */
  /* Base path, NUL, text -> ctr_py_path_t* of code from strings and
   * reloaded files (ctr__py_code_text), with their count and bytes. */
  ctr_py_map_t texts;
  size_t ntexts, text_bytes;
  ctr_py_path_t *text_overflow;
  ctr_py_map_t path_ids; /* absolute path -> id, per connection */
  ctr_py_map_t types;
  ctr_py_map_t varnames;
  uint32_t next_path, next_type, next_varname, next_func;
  char *cwd;
  char **shim_dirs; /* the shim's own folder */
  size_t nshim_dirs;
  char **lib_dirs; /* the standard library's and installed packages' */
  size_t nlib_dirs;
  unsigned long main_ident;
  uint64_t sent_thread; /* wire id of the last THREAD sent */
  pthread_key_t key;
  pthread_mutex_t threads_mu;
  ctr_py_thread_t *threads;
  msgpack_sbuffer scratch_buf;
  msgpack_packer scratch;
  int gc_was_enabled;
  Py_ssize_t trace_lines_offset; /* of PyFrameObject.f_trace_lines, or -1 */
  PyObject *str_name;            /* "__name__" */
  PyObject *str_trace_hook;      /* "_trace_hook" */
  PyObject *thread_hook;
  int64_t main_status;
  bool main_done;
  int values;    /* enum ctr_values_mode the shim captures */
  uint32_t values_gen; /* filter generation `values` was read for, +1 */
  uint32_t stamp; /* ctr_client_stamp() + 1 when gen and values_gen were set */
  atomic_bool hooks_off; /* the trace function is out of every thread */
  uint32_t epoch; /* counts resumes; threads rebuild their stack on change */
  bool missed;    /* a message found the client paused and was not sent */
  msgpack_sbuffer stack_buf; /* STACK frames being packed */
  msgpack_packer stack_pk;
  /* The resume watcher: a plain pthread, started at the first pause. */
  pthread_t watcher;
  pid_t watcher_pid; /* process that owns it; 0 when none runs */
  atomic_bool watcher_stop;
} g = {.trace_lines_offset = -1, .threads_mu = PTHREAD_MUTEX_INITIALIZER};

/* initial-exec: read straight off the thread pointer, without the
 * __tls_get_addr call a shared object otherwise makes on every event. */
static _Thread_local ctr_py_thread_t *tls_thread
    __attribute__((tls_model("initial-exec")));

/* Output of one thread to one stream not yet packed: print() writes each
 * argument, separator and end separately, and one line makes one EVENT.
 * It is packed at the next newline or before any other message. */
static struct {
  char *buf;
  size_t len;
  size_t cap;
  int kind;
  uint64_t wire_id;
  pid_t pid; /* the process that wrote it: a fork's child drops the rest */
} g_out;

/* Drops output a forked child inherited: the parent's partial line is the
 * parent's to send. What this process wrote stays, even before its first
 * message. */
static void ctr_py_out_own(void) {
  if (g_out.len > 0 && g_out.pid != getpid())
    g_out.len = 0;
}

static void ctr_py_pack_thread(msgpack_packer *pk, uint64_t wire_id) {
  if (wire_id != g.sent_thread) {
    ctr_pack_thread(pk, wire_id);
    g.sent_thread = wire_id;
  }
}

static void ctr_py_pack_output(msgpack_packer *pk) {
  ctr_py_pack_thread(pk, g_out.wire_id);
  ctr_pack_output(pk, g_out.kind, g_out.buf, g_out.len);
  g_out.len = 0;
}

/* ---- interning ------------------------------------------------------------ */

static bool ctr_py_intern(ctr_py_map_t *m, uint32_t *next, const char *key,
                          size_t n, uint32_t *id) {
  ctr_py_entry_t *e = ctr__py_map_find(m, key, n);
  if (e != NULL) {
    *id = (uint32_t)e->value;
    return false;
  }
  *id = *next;
  if (ctr__py_map_put(m, key, n, *id) != 0)
    return true; /* declared again next time: harmless */
  (*next)++;
  return true;
}

uint32_t ctr__py_type_id(msgpack_packer *pk, int kind, const char *name,
                         size_t n) {
  char buf[256];
  if (n > sizeof buf - 1)
    n = sizeof buf - 1;
  buf[0] = (char)('A' + kind);
  memcpy(buf + 1, name, n);
  uint32_t id;
  if (ctr_py_intern(&g.types, &g.next_type, buf, n + 1, &id))
    ctr_pack_type(pk, id, kind, name, n);
  return id;
}

/* Type ids of static types (int, str, list: types that live as long as the
 * process), by address and kind: most values are of these, and their ids
 * need no name hashing. An entry holds for the connection it was made in. */
#define CTR_PY_TYPE_CACHE 256

static struct {
  const PyTypeObject *tp;
  int kind;
  uint32_t id;
  uint32_t gen;
} g_type_cache[CTR_PY_TYPE_CACHE];

/* The id of static type tp as `kind` when this connection has it already:
 * no declaration is due. */
static bool ctr_py_type_known(int kind, const PyTypeObject *tp, uint32_t *id) {
  size_t h = (((uintptr_t)tp >> 4) ^ (uintptr_t)kind) % CTR_PY_TYPE_CACHE;
  if (g_type_cache[h].tp != tp || g_type_cache[h].kind != kind ||
      g_type_cache[h].gen != g.gen)
    return false;
  *id = g_type_cache[h].id;
  return true;
}

/* Ids of classes (heap types) by address, kind and name: a class can die
 * and another take its address, or be renamed, so an entry holds only
 * while the name it was made for is still tp_name. */
#define CTR_PY_CLASS_CACHE 256
#define CTR_PY_CLASS_NAME 48

static struct {
  const PyTypeObject *tp;
  int kind;
  uint32_t id;
  uint32_t gen;
  uint8_t len;
  char name[CTR_PY_CLASS_NAME];
} g_class_cache[CTR_PY_CLASS_CACHE];

static uint32_t ctr_py_class_id(msgpack_packer *pk, int kind,
                                const PyTypeObject *tp) {
  const char *name = tp->tp_name;
  size_t h = (((uintptr_t)tp >> 4) ^ (uintptr_t)kind) % CTR_PY_CLASS_CACHE;
  size_t n = g_class_cache[h].len;
  /* strncmp stops at the end of a shorter tp_name. */
  if (g_class_cache[h].tp == tp && g_class_cache[h].kind == kind &&
      g_class_cache[h].gen == g.gen &&
      strncmp(g_class_cache[h].name, name, n) == 0 && name[n] == '\0')
    return g_class_cache[h].id;
  n = strlen(name);
  uint32_t id = ctr__py_type_id(pk, kind, name, n);
  if (n < CTR_PY_CLASS_NAME) {
    g_class_cache[h].tp = tp;
    g_class_cache[h].kind = kind;
    g_class_cache[h].id = id;
    g_class_cache[h].gen = g.gen;
    g_class_cache[h].len = (uint8_t)n;
    memcpy(g_class_cache[h].name, name, n);
  }
  return id;
}

uint32_t ctr__py_type_id_of(msgpack_packer *pk, int kind,
                            const PyTypeObject *tp) {
  const char *name = tp->tp_name;
  uint32_t id;
  if (tp->tp_flags & Py_TPFLAGS_HEAPTYPE)
    return ctr_py_class_id(pk, kind, tp);
  if (ctr_py_type_known(kind, tp, &id))
    return id;
  size_t h = (((uintptr_t)tp >> 4) ^ (uintptr_t)kind) % CTR_PY_TYPE_CACHE;
  id = ctr__py_type_id(pk, kind, name, strlen(name));
  g_type_cache[h].tp = tp;
  g_type_cache[h].kind = kind;
  g_type_cache[h].id = id;
  g_type_cache[h].gen = g.gen;
  return id;
}

uint32_t ctr__py_varname_id(msgpack_packer *pk, const char *name, size_t n) {
  uint32_t id;
  if (ctr_py_intern(&g.varnames, &g.next_varname, name, n, &id))
    ctr_pack_varname(pk, id, name, n);
  return id;
}

/* Ids of ASCII str names by address: attribute names are mostly the
 * same interned strings step after step. A string can die and another
 * take its address, so an entry holds only while the text matches. */
#define CTR_PY_NAME_CACHE 1024
#define CTR_PY_NAME_LEN 40

static struct {
  const PyObject *str;
  uint32_t id;
  uint32_t gen;
  uint8_t len;
  char text[CTR_PY_NAME_LEN];
} g_name_cache[CTR_PY_NAME_CACHE];

uint32_t ctr__py_varname_id_obj(msgpack_packer *pk, PyObject *name) {
  const char *s;
  Py_ssize_t n;
  size_t h = ((uintptr_t)name >> 4) % CTR_PY_NAME_CACHE;
  bool ascii = PyUnicode_CheckExact(name) && PyUnicode_IS_COMPACT_ASCII(name) &&
               PyUnicode_GET_LENGTH(name) < CTR_PY_NAME_LEN;
  if (ascii) {
    s = (const char *)PyUnicode_DATA(name);
    n = PyUnicode_GET_LENGTH(name);
    if (g_name_cache[h].str == name && g_name_cache[h].gen == g.gen &&
        g_name_cache[h].len == n && memcmp(g_name_cache[h].text, s, n) == 0)
      return g_name_cache[h].id;
    uint32_t id = ctr__py_varname_id(pk, s, (size_t)n);
    g_name_cache[h].str = name;
    g_name_cache[h].id = id;
    g_name_cache[h].gen = g.gen;
    g_name_cache[h].len = (uint8_t)n;
    memcpy(g_name_cache[h].text, s, (size_t)n);
    return id;
  }
  PyObject *b = PyUnicode_Check(name) ? ctr__py_str_bytes(name, 4096, &s, &n)
                                      : NULL;
  if (b == NULL)
    return ctr__py_varname_id(pk, "?", 1);
  uint32_t id = ctr__py_varname_id(pk, s, (size_t)n);
  Py_DECREF(b);
  return id;
}

/* ---- threads ------------------------------------------------------------- */

static void ctr_py_thread_free(void *p) {
  ctr_py_thread_t *t = p;
  pthread_mutex_lock(&g.threads_mu);
  for (ctr_py_thread_t **pp = &g.threads; *pp; pp = &(*pp)->next) {
    if (*pp == t) {
      *pp = t->next;
      break;
    }
  }
  pthread_mutex_unlock(&g.threads_mu);
  free(t->stack);
  free(t);
}

ctr_py_thread_t *ctr__py_thread(void) {
  ctr_py_thread_t *t = tls_thread;
  if (t != NULL)
    return t;
  t = calloc(1, sizeof *t);
  if (t == NULL)
    return NULL;
  /* The main thread is the connection's thread 0. Others are named by
   * their native id: pthread idents are reused as soon as a thread ends,
   * which would merge consecutive threads into one. */
  unsigned long ident = PyThread_get_thread_ident();
  t->wire_id = ident == g.main_ident ? 0 : PyThread_get_thread_native_id();
  pthread_mutex_lock(&g.threads_mu);
  t->next = g.threads;
  g.threads = t;
  pthread_mutex_unlock(&g.threads_mu);
  pthread_setspecific(g.key, t);
  tls_thread = t;
  return t;
}

static void ctr_py_push(ctr_py_thread_t *t, ctr_py_code_t *ci, uint8_t flags,
                        PyCodeObject *co, const void *frame) {
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 64;
    ctr_py_frame_t *s = realloc(t->stack, cap * sizeof *s);
    if (s == NULL) {
      t->overflow++;
      return;
    }
    t->stack = s;
    t->cap = cap;
  }
  t->stack[t->n].code = ci;
  t->stack[t->n].co = co;
  t->stack[t->n].frame = frame;
  t->stack[t->n].flags = flags;
  t->n++;
}

/* Flags of the frame that returns; 0 for frames entered before tracing. */
static uint8_t ctr_py_pop(ctr_py_thread_t *t) {
  if (t->overflow > 0) {
    t->overflow--;
    return 0;
  }
  if (t->n == 0)
    return 0;
  return t->stack[--t->n].flags;
}

ctr_py_frame_t *ctr__py_top(ctr_py_thread_t *t) {
  return t->n > 0 && t->overflow == 0 ? &t->stack[t->n - 1] : NULL;
}

/* ---- batches --------------------------------------------------------------- */

/* The values mode the daemon asked for; everything when push-down is off. */
static int ctr_py_values_mode(void) {
  int values = ctr_client_values();
  if (!ctr_client_pushdown())
    return CTR_WV_ALL;
  return values == CTR_WV_ARGS || values == CTR_WV_NONE ? values : CTR_WV_ALL;
}

/* Ids are per connection: after a fork the child's session starts from 0. */
static void ctr_py_check_generation(void) {
  /* Read first: a change after it shows at the next quick check. */
  g.stamp = ctr_client_stamp() + 1;
  uint32_t gen = ctr_client_generation() + 1;
  uint32_t fgen;
  ctr_client_filter(&fgen);
  if (fgen + 1 != g.values_gen) {
    /* A reload may change what the daemon keeps. */
    g.values = ctr_py_values_mode();
    g.values_gen = fgen + 1;
  }
  if (gen == g.gen)
    return;
  g.gen = gen;
  ctr__py_map_clear(&g.path_ids);
  ctr__py_map_clear(&g.types);
  ctr__py_map_clear(&g.varnames);
  g.next_path = g.next_type = g.next_varname = g.next_func = 0;
  ctr_py_out_own();
  /* Frames opened before the fork belong to the parent's trace. */
  pthread_mutex_lock(&g.threads_mu);
  for (ctr_py_thread_t *t = g.threads; t; t = t->next)
    for (size_t i = 0; i < t->n; i++)
      t->stack[i].flags &= (uint8_t)~CTR_PY_F_SENT;
  pthread_mutex_unlock(&g.threads_mu);
  g.sent_thread = 0;
}

/* Opens a batch for thread t. The cyclic GC is off until ctr_py_end: a
 * collection could run a finaliser (program code) that prints, and the
 * print would try to take the batch lock this thread already holds. */
static msgpack_packer *ctr_py_begin_raw(ctr_py_thread_t *t) {
  if (t->in_pack)
    return NULL;
  msgpack_packer *pk = ctr_client_begin();
  if (pk == NULL) {
    g.missed = true;
    return NULL;
  }
  t->in_pack = true;
  g.gc_was_enabled = PyGC_Disable();
  ctr_py_check_generation();
  msgpack_sbuffer_clear(&g.scratch_buf);
  ctr__py_value_message();
  return pk;
}

/* The same, with pending output and the thread switch packed first. */
static msgpack_packer *ctr_py_begin(ctr_py_thread_t *t) {
  msgpack_packer *pk = ctr_py_begin_raw(t);
  if (pk != NULL) {
    if (g_out.len > 0)
      ctr_py_pack_output(pk);
    ctr_py_pack_thread(pk, t->wire_id);
  }
  return pk;
}

static void ctr_py_end(ctr_py_thread_t *t) {
  if (g.gc_was_enabled)
    PyGC_Enable();
  t->in_pack = false;
  ctr_client_end();
}

/* Whether a message of thread t that packs no Python object (so no code of
 * the program can run while it is packed: the cyclic GC and the in_pack
 * guard stay as they are) can skip ctr_py_begin's bookkeeping: nothing is
 * due before it (a resume, output not packed yet, a thread switch, a new
 * connection or a new values mode). Most steps, calls and returns without
 * values can. */
static inline bool ctr_py_quick_ok(const ctr_py_thread_t *t) {
  return !g.missed && !g.hooks_off && t->epoch == g.epoch && g_out.len == 0 &&
         g.sent_thread == t->wire_id && ctr_client_stamp() + 1 == g.stamp;
}

/* A line of the frame on top of t's stack, which sent its CALL, when no
 * variables are captured: one STEP encoded straight into the batch. False
 * when the general path must run. */
bool ctr__py_quick_line(ctr_py_thread_t *t, const ctr_py_frame_t *top,
                              int line) {
  const ctr_py_path_t *path = top->code->path;
  if (g.values == CTR_WV_ALL || path->gen != g.gen || !ctr_py_quick_ok(t))
    return false;
  unsigned char *p = ctr_client_quick(CTR_ENC_STEP_MAX);
  if (p == NULL)
    return false;
  ctr_client_quick_done(ctr_enc_step(p, path->id, line));
  return true;
}

/* Appends the scratch bytes (a message body) to the batch. */
static void ctr_py_append_scratch(msgpack_packer *pk) {
  if (g.scratch_buf.size)
    pk->callback(pk->data, g.scratch_buf.data, g.scratch_buf.size);
  msgpack_sbuffer_clear(&g.scratch_buf);
}

/* ---- paths ----------------------------------------------------------------- */

static bool ctr_py_has_prefix(const char *p, const char *dir) {
  size_t n = strlen(dir);
  return strncmp(p, dir, n) == 0 && (p[n] == '/' || p[n] == '\0');
}

static bool ctr_py_under(const char *p, char *const *dirs, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (ctr_py_has_prefix(p, dirs[i]))
      return true;
  return false;
}

/* A list of absolute directories as C strings, without trailing '/';
 * others are left out. */
static char **ctr_py_dir_list(PyObject *list, size_t *count) {
  Py_ssize_t n = PyList_Check(list) ? PyList_GET_SIZE(list) : 0;
  char **dirs = calloc((size_t)n + 1, sizeof *dirs);
  *count = 0;
  for (Py_ssize_t i = 0; dirs != NULL && i < n; i++) {
    PyObject *d = PyList_GET_ITEM(list, i);
    const char *s;
    Py_ssize_t len;
    PyObject *b = PyUnicode_Check(d) ? ctr__py_str_bytes(d, 4096, &s, &len)
                                     : NULL;
    if (b == NULL)
      continue;
    while (len > 1 && s[len - 1] == '/')
      len--;
    if (len > 1 && s[0] == '/' && (dirs[*count] = strndup(s, (size_t)len)))
      (*count)++;
    Py_DECREF(b);
  }
  return dirs;
}

/* Joins `s` to the working directory when relative and removes "." and
 * ".." components, which the protocol does not allow in paths. */
static char *ctr_py_abspath(const char *s, size_t n, size_t *out_len) {
  size_t cl = s[0] == '/' ? 0 : strlen(g.cwd);
  char *p = malloc(cl + n + 2);
  if (p == NULL)
    return NULL;
  if (cl)
    memcpy(p, g.cwd, cl);
  p[cl] = '/';
  memcpy(p + cl + 1, s, n);
  p[cl + 1 + n] = '\0';
  *out_len = ctr_path_normalize(p);
  return p;
}

/* "<string>", "<frozen os>", "<stdin>": code without a file. The protocol
 * wants a pseudo path to start with '<', end with '>' and hold no '/'. */
static char *ctr_py_pseudo(const char *s, size_t n, size_t *out_len) {
  char *p = malloc(n + 3);
  if (p == NULL)
    return NULL;
  size_t len = 0;
  if (n == 0 || s[0] != '<')
    p[len++] = '<';
  for (size_t i = 0; i < n; i++)
    p[len++] = s[i] == '/' || s[i] == '\0' ? '_' : s[i];
  if (len < 2 || p[len - 1] != '>')
    p[len++] = '>';
  p[len] = '\0';
  *out_len = len;
  return p;
}

static ctr_py_path_t *ctr_py_path_info(PyObject *filename) {
  const char *s;
  Py_ssize_t n;
  PyObject *b = PyUnicode_Check(filename)
                    ? ctr__py_str_bytes(filename, PY_SSIZE_T_MAX, &s, &n)
                    : NULL;
  if (b == NULL)
    return NULL;
  ctr_py_entry_t *e = ctr__py_map_find(&g.paths, s, (size_t)n);
  if (e != NULL) {
    Py_DECREF(b);
    return (ctr_py_path_t *)e->value;
  }
  ctr_py_path_t *p = calloc(1, sizeof *p);
  if (p == NULL) {
    Py_DECREF(b);
    return NULL;
  }
  if (n == 0 || s[0] == '<') {
    p->abs = ctr_py_pseudo(s, (size_t)n, &p->len);
    p->pseudo = true;
    p->lib = strncmp(s, "<frozen ", 8) == 0;
  } else {
    p->abs = ctr_py_abspath(s, (size_t)n, &p->len);
    p->lib = p->abs && ctr_py_under(p->abs, g.lib_dirs, g.nlib_dirs);
    p->skip = p->abs && ctr_py_under(p->abs, g.shim_dirs, g.nshim_dirs);
    struct stat st;
    p->real_file = p->abs && stat(p->abs, &st) == 0 && S_ISREG(st.st_mode);
  }
  if (p->abs == NULL)
    p->skip = true;
  if (ctr__py_map_put(&g.paths, s, (size_t)n, (uintptr_t)p) != 0) {
    free(p->abs);
    free(p);
    p = NULL;
  }
  Py_DECREF(b);
  return p;
}

/* SOURCE of a real file, whose hash is its first version's unless a
 * compiled text came first. */
static void ctr_py_pack_file(msgpack_packer *pk, uint32_t id,
                             ctr_py_path_t *p) {
  size_t n = 0;
  bool whole;
  char *text = ctr_client_read_source(p->abs, &n, &whole);
  if (text == NULL)
    return;
  if (whole)
    ctr_pack_source(pk, id, text, n);
  if (!p->hashed) {
    p->hash = ctr__py_hash(text, n);
    p->hashed = true;
  }
  free(text);
}

/* Declares the path (and its text) in this connection when needed. */
static uint32_t ctr_py_path_id(msgpack_packer *pk, ctr_py_path_t *p) {
  if (p->gen == g.gen)
    return p->id;
  uint32_t id;
  if (ctr_py_intern(&g.path_ids, &g.next_path, p->abs, p->len, &id)) {
    ctr_pack_path(pk, id, p->abs, p->len);
    if (p->text != NULL)
      ctr_pack_source(pk, id, p->text, p->text_len);
    else if (p->real_file)
      ctr_py_pack_file(pk, id, p);
  }
  p->id = id;
  p->gen = g.gen;
  return id;
}

/* ---- code objects ---------------------------------------------------------- */

static void ctr_py_code_free(void *p) {
  ctr_py_code_t *ci = p;
  if (ci == NULL)
    return;
#if CTR_PY_MONITORING
  if (ci->mon != NULL)
    ctr__py_mon_forget(ci->mon);
#endif
  free(ci->name);
  free(ci->module);
  Py_XDECREF(ci->names);
  free(ci->name_ids);
  free(ci->args);
  free(ci);
}

/* Local names in the order of the frame's fast-locals slots (co_varnames,
 * then cells that are not arguments, then free variables), which is the
 * order VARS shows them in, and the argument layout: positional-only and
 * positional, *args, keyword-only, **kwargs. */
static void ctr_py_code_names(ctr_py_code_t *ci, PyCodeObject *co) {
  PyObject *names = co->co_localsplusnames;
  Py_ssize_t k = PyTuple_GET_SIZE(names);
  ci->name_ids = calloc((size_t)(k ? k : 1), sizeof *ci->name_ids);
  ci->args = calloc((size_t)co->co_argcount + co->co_kwonlyargcount + 2,
                    sizeof *ci->args);
  if (ci->name_ids == NULL || ci->args == NULL)
    return;
  Py_ssize_t argc = co->co_argcount, kwc = co->co_kwonlyargcount;
  bool varargs = (co->co_flags & CO_VARARGS) != 0;
  bool varkw = (co->co_flags & CO_VARKEYWORDS) != 0;
  Py_ssize_t na = 0;
  for (Py_ssize_t i = 0; i < argc; i++)
    ci->args[na++] = i;
  if (varargs)
    ci->args[na++] = argc + kwc;
  for (Py_ssize_t i = 0; i < kwc; i++)
    ci->args[na++] = argc + i;
  if (varkw)
    ci->args[na++] = argc + kwc + (varargs ? 1 : 0);
  for (Py_ssize_t i = 0; i < na; i++)
    if (ci->args[i] >= k)
      na = 0; /* inconsistent code object: show no arguments */
  ci->nargs = na;
  Py_INCREF(names);
  ci->names = names;
}

static void ctr_py_code_named(ctr_py_code_t *ci, PyCodeObject *co);
static ctr_py_code_t *ctr_py_code_new(PyCodeObject *co, ctr_py_path_t *path);

ctr_py_code_t *ctr__py_code_info(PyCodeObject *co) {
  void *extra = NULL;
  if (ctr__py_code_get_extra((PyObject *)co, g.extra_index, &extra) == 0 && extra)
    return extra;
  PyErr_Clear();
  return ctr_py_code_new(co, ctr_py_path_info(co->co_filename));
}

/* The record of co, which has none yet, shown under `path`. */
static ctr_py_code_t *ctr_py_code_new(PyCodeObject *co, ctr_py_path_t *path) {
  ctr_py_code_t *ci = calloc(1, sizeof *ci);
  if (ci == NULL)
    return NULL;
  ci->path = path;
  ci->skip = ci->path == NULL || ci->path->skip;
  ci->pseudo = ci->path != NULL && ci->path->pseudo;
  ci->is_module = PyUnicode_Check(co->co_name) &&
                  PyUnicode_CompareWithASCIIString(co->co_name, "<module>") == 0;
  ci->line = co->co_firstlineno;
  if (!ci->skip)
    ctr_py_code_named(ci, co);
  if (ctr__py_code_set_extra((PyObject *)co, g.extra_index, ci) != 0) {
    PyErr_Clear();
    ctr_py_code_free(ci);
    return NULL;
  }
  return ci;
}

/* ---- code compiled from strings ------------------------------------------ */

/* Code from texts past CTR_CLIENT_TEXTS_MAX and CTR_CLIENT_TEXT_BYTES
 * shares this path. */
#define CTR_PY_TEXT_OVERFLOW "<string:over-limit>"

static ctr_py_path_t *ctr_py_text_overflow(void) {
  static const char note[] =
      "The program compiled more distinct strings than ctrec keeps the "
      "source of; the lines of the later ones are shown under this path.\n";
  ctr_py_path_t *p = g.text_overflow;
  if (p == NULL && (p = calloc(1, sizeof *p)) != NULL) {
    p->abs = strdup(CTR_PY_TEXT_OVERFLOW);
    p->len = sizeof CTR_PY_TEXT_OVERFLOW - 1;
    p->text = note;
    p->text_len = sizeof note - 1;
    p->pseudo = true;
    if (p->abs == NULL) {
      free(p);
      p = NULL;
    }
    g.text_overflow = p;
  }
  return p;
}

/* The path of `text` compiled under the pseudo path `base` ("<string>",
 * "<reload:m.py>"): "<string:N>", one per distinct text, which is its
 * SOURCE. It is library code or pseudo as `like` is. NULL when out of
 * memory. */
static ctr_py_path_t *ctr_py_text_path(const char *base, size_t blen,
                                       const char *text, size_t tlen,
                                       const ctr_py_path_t *like) {
  if (tlen > CTR_CLIENT_SOURCE_MAX)
    tlen = CTR_CLIENT_SOURCE_MAX;
  size_t klen = blen + 1 + tlen;
  char *key = malloc(klen);
  if (key == NULL)
    return NULL;
  memcpy(key, base, blen);
  key[blen] = '\0';
  memcpy(key + blen + 1, text, tlen);
  ctr_py_entry_t *e = ctr__py_map_find(&g.texts, key, klen);
  ctr_py_path_t *p = e != NULL ? (ctr_py_path_t *)e->value : NULL;
  if (e == NULL && (g.ntexts >= CTR_CLIENT_TEXTS_MAX ||
                    g.text_bytes + tlen > CTR_CLIENT_TEXT_BYTES))
    p = ctr_py_text_overflow();
  if (p != NULL) {
    free(key);
    return p;
  }
  p = calloc(1, sizeof *p);
  char *abs = malloc(blen + 24);
  if (p == NULL || abs == NULL ||
      ctr__py_map_put(&g.texts, key, klen, (uintptr_t)p) != 0) {
    free(p);
    free(abs);
    free(key);
    return NULL;
  }
  e = ctr__py_map_find(&g.texts, key, klen);
  free(key);
  g.ntexts++;
  g.text_bytes += tlen;
  /* "<string>" becomes "<string:N>", "<reload:m.py>" "<reload:m.py:N>". */
  p->len = (size_t)snprintf(abs, blen + 24, "%.*s:%zu>", (int)(blen - 1), base,
                            g.ntexts);
  p->abs = abs;
  p->text = e->key + blen + 1; /* the table keeps it */
  p->text_len = tlen;
  p->pseudo = like->pseudo;
  p->lib = like->lib;
  return p;
}

/* Shows co and the code nested in it, none of it seen before, under p. */
static void ctr_py_code_at(PyCodeObject *co, ctr_py_path_t *p, int depth) {
  void *extra = NULL;
  if (ctr__py_code_get_extra((PyObject *)co, g.extra_index, &extra) != 0) {
    PyErr_Clear();
    return;
  }
  if (extra == NULL)
    ctr_py_code_new(co, p);
  PyObject *consts = co->co_consts;
  for (Py_ssize_t i = 0; depth < 64 && i < PyTuple_GET_SIZE(consts); i++)
    if (PyCode_Check(PyTuple_GET_ITEM(consts, i)))
      ctr_py_code_at((PyCodeObject *)PyTuple_GET_ITEM(consts, i), p, depth + 1);
}

void ctr__py_code_text(PyCodeObject *co, const char *text, size_t n) {
  ctr_py_path_t *file = g.on ? ctr_py_path_info(co->co_filename) : NULL;
  ctr_py_path_t *p = NULL;
  if (file == NULL || file->skip)
    return;
  if (file->pseudo && !file->lib) {
    p = ctr_py_text_path(file->abs, file->len, text, n, file);
  } else if (file->real_file) {
    /* A file compiled again with other text (importlib.reload after an
     * edit): a trace path has one content, so the new version gets a path
     * of its own. Its first version again goes back to the file. */
    uint64_t h = ctr__py_hash(text, n);
    if (!file->hashed) {
      file->hash = h;
      file->hashed = true;
    } else if (h != file->hash) {
      char base[CTR_CLIENT_RELOAD_BASE];
      size_t bl = ctr_client_reload_base(file->abs, base);
      p = ctr_py_text_path(base, bl, text, n, file);
    }
  }
  if (p != NULL)
    ctr_py_code_at(co, p, 0);
}

/* What recorded code needs beyond the skip decision: name and locals. */
static void ctr_py_code_named(ctr_py_code_t *ci, PyCodeObject *co) {
  if (ci->name == NULL) {
    const char *s;
    Py_ssize_t n;
    PyObject *q = co->co_qualname ? co->co_qualname : co->co_name;
    PyObject *b = q && PyUnicode_Check(q) ? ctr__py_str_bytes(q, 1024, &s, &n)
                                          : NULL;
    if (b == NULL) {
      s = "?";
      n = 1;
    }
    ci->name = malloc((size_t)n + 1);
    if (ci->name) {
      memcpy(ci->name, s, (size_t)n);
      ci->name[n] = '\0';
      ci->name_len = (size_t)n;
    }
    Py_XDECREF(b);
  }
  if (ci->names == NULL && (co->co_flags & CO_OPTIMIZED))
    ctr_py_code_names(ci, co);
}

/* The module ci's code belongs to, for FUNC and selectors: the __name__ of
 * the globals of `frame` (NULL: the current frame), a frame of that code,
 * read once. Code run with globals that hold no str __name__ (exec with a
 * bare dict) has no module. */
static void ctr_py_code_module(ctr_py_code_t *ci, PyFrameObject *frame) {
  if (ci->module_done)
    return;
  ci->module_done = true;
  PyObject *globals = ctr__py_frame_globals(frame);
  PyObject *name = globals != NULL && PyDict_Check(globals)
                       ? PyDict_GetItemWithError(globals, g.str_name)
                       : NULL;
  const char *s;
  Py_ssize_t n;
  PyObject *b = name != NULL && PyUnicode_Check(name)
                    ? ctr__py_str_bytes(name, 1024, &s, &n)
                    : NULL;
  PyErr_Clear();
  if (b == NULL)
    return;
  ci->module = memchr(s, '\0', (size_t)n) ? NULL : strndup(s, (size_t)n);
  ci->module_len = ci->module ? (size_t)n : 0;
  Py_DECREF(b);
}

/* What the daemon will do with ci's code, asked again when its rules
 * change. Decided from the path, name and module the shim sends in PATH
 * and FUNC. */
static int ctr_py_action(ctr_py_code_t *ci) {
  uint32_t gen;
  ctr_client_filter(&gen);
  if (ci->action_gen != gen + 1) {
    ci->action = ci->path && ci->path->abs && ci->name
                     ? ctr_client_decide_in(ci->path->abs, ci->module, ci->name)
                     : CTR_FILTER_RECORD;
    ci->action_gen = gen + 1;
  }
  return ci->action;
}

#if CTR_PY_MONITORING
/* Whether frames of ci's code need events under sys.monitoring, switching
 * its local events on or off to match. Code that sends nothing and can
 * change nothing below it (the standard library, code push-down skips,
 * skip-tree code) gets none at all: CPython runs it at full speed. Module
 * bodies (MAIN, THREADING) and code compiled from strings (whose fate
 * depends on its caller) are always followed. */
bool ctr__py_mon_follow(PyCodeObject *co, ctr_py_code_t *ci) {
  if (ci == NULL)
    return false;
  ctr_py_code_module(ci, NULL);
  /* Library code from no file (<frozen posixpath>) depends on the rules
   * alone, like library files. */
  bool pseudo = ci->pseudo && !ci->path->lib;
  bool want = ci->is_module ||
              (!ci->skip && (pseudo || !ctr_client_pushdown() ||
                             ctr_py_action(ci) == CTR_FILTER_RECORD));
  if (want && ci->mon == NULL)
    ci->mon = ctr__py_mon_track(co);
  else if (!want && ci->mon != NULL)
    ctr__py_mon_untrack(ci->mon), ci->mon = NULL;
  return ci->mon != NULL;
}
#endif

/* The ids of ci's local names in this connection, declared on first use. */
static uint32_t *ctr_py_name_ids(msgpack_packer *pk, ctr_py_code_t *ci) {
  if (ci->names_gen != g.gen) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(ci->names); i++)
      ci->name_ids[i] =
          ctr__py_varname_id_obj(pk, PyTuple_GET_ITEM(ci->names, i));
    ci->names_gen = g.gen;
  }
  return ci->name_ids;
}

/* ---- frames ------------------------------------------------------------------ */

#if !CTR_PY_MONITORING
/* Skipped code gets no line events at all: CPython checks f_trace_lines
 * before calling the trace function. */
static void ctr_py_set_lines(PyFrameObject *frame, bool on) {
  if (g.trace_lines_offset >= 0) {
    *((char *)frame + g.trace_lines_offset) = on;
  } else if (PyObject_SetAttrString((PyObject *)frame, "f_trace_lines",
                                    on ? Py_True : Py_False) != 0) {
    PyErr_Clear();
  }
}

static void ctr_py_no_lines(PyFrameObject *frame) {
  ctr_py_set_lines(frame, false);
}
#endif

/* MAIN or THREADING for a module body, from its globals' __name__. */
static uint8_t ctr_py_module_role(PyFrameObject *frame) {
  if (frame == NULL)
    frame = PyEval_GetFrame();
  PyObject *globals = frame != NULL ? PyFrame_GetGlobals(frame) : NULL;
  uint8_t flags = 0;
  if (globals != NULL && PyDict_Check(globals)) {
    PyObject *name = PyDict_GetItemWithError(globals, g.str_name);
    if (name != NULL && PyUnicode_CheckExact(name)) {
      if (PyUnicode_CompareWithASCIIString(name, "__main__") == 0)
        flags = CTR_PY_F_MAIN;
      else if (PyUnicode_CompareWithASCIIString(name, "threading") == 0)
        flags = CTR_PY_F_THREADING;
    }
  }
  PyErr_Clear();
  Py_XDECREF(globals);
  return flags;
}

/* The frame's locals as a dict (fast locals copied in), or NULL. A NULL
 * frame is the current one. */
static PyObject *ctr_py_locals(PyFrameObject *frame) {
  if (frame == NULL)
    frame = PyEval_GetFrame();
  if (frame == NULL)
    return NULL;
  PyObject *l = PyFrame_GetLocals(frame);
  if (l == NULL)
    PyErr_Clear();
#if PY_VERSION_HEX >= 0x030D0000
  /* 3.13 gives optimized frames a write-through proxy (PEP 667); its
   * keys() and lookups are C code that reads the frame, never the
   * program's. */
  if (l != NULL && !PyDict_Check(l)) {
    PyObject *d = PyDict_New();
    if (d != NULL && PyDict_Merge(d, l, 1) != 0) {
      Py_CLEAR(d);
      PyErr_Clear();
    }
    Py_DECREF(l);
    l = d;
  }
#endif
  return l;
}

/* Globals that are part of every module are not variables of the program. */
static bool ctr_py_module_noise(PyObject *name, PyObject *v) {
  if (PyUnicode_GET_LENGTH(name) >= 2 && PyUnicode_READ_CHAR(name, 0) == '_' &&
      PyUnicode_READ_CHAR(name, 1) == '_')
    return true;
  return PyModule_Check(v) || PyFunction_Check(v) || PyType_Check(v) ||
         PyCFunction_Check(v);
}

/* The variables of a module or class body, read before a batch opens
 * (PyFrame_GetLocals allocates); NULL for optimized code, whose slots are
 * read while packing. */
static PyObject *ctr_py_body_locals(ctr_py_code_t *ci, PyFrameObject *frame) {
  return ci->names == NULL ? ctr_py_locals(frame) : NULL;
}

/* Packs [[varname_id, value]...] of the bound fast locals of an optimized
 * frame into scratch: those at the slot indices `which` (n of them), or all
 * when `which` is NULL. */
static uint32_t ctr_py_pack_slots(msgpack_packer *pk, ctr_py_code_t *ci,
                                  PyFrameObject *frame, const Py_ssize_t *which,
                                  Py_ssize_t n) {
  PyObject *slots[CTR_PY_SLOTS_MAX];
  Py_ssize_t nslots = ctr__py_frame_locals(frame, slots, CTR_PY_SLOTS_MAX);
  uint32_t *ids = ctr_py_name_ids(pk, ci);
  uint32_t count = 0;
  if (which == NULL)
    n = nslots;
  for (Py_ssize_t k = 0; k < n; k++) {
    Py_ssize_t i = which ? which[k] : k;
    if (i >= nslots || slots[i] == NULL)
      continue; /* unbound */
    ctr_pack_pair_begin(&g.scratch, ids[i]);
    ctr__py_value_pack(pk, &g.scratch, slots[i]);
    count++;
  }
  return count;
}

/* Packs [[varname_id, value]...] of the visible variables into scratch;
 * `locals` is what ctr_py_body_locals gave. */
static uint32_t ctr_py_pack_locals(msgpack_packer *pk, ctr_py_code_t *ci,
                                   PyFrameObject *frame, PyObject *locals) {
  if (ci->names != NULL)
    return ctr_py_pack_slots(pk, ci, frame, NULL, 0);
  if (locals == NULL || !PyDict_Check(locals))
    return 0;
  /* Module and class bodies: their namespace, without the noise. */
  uint32_t n = 0;
  Py_ssize_t pos = 0;
  PyObject *k, *v;
  while (n < CTR_PY_VARS_MAX && PyDict_Next(locals, &pos, &k, &v)) {
    if (!PyUnicode_Check(k) || ctr_py_module_noise(k, v))
      continue;
    ctr_pack_pair_begin(&g.scratch, ctr__py_varname_id_obj(pk, k));
    ctr__py_value_pack(pk, &g.scratch, v);
    n++;
  }
  return n;
}

/* Packs [[varname_id, value]...] of ci's arguments into scratch. */
static uint32_t ctr_py_pack_args(msgpack_packer *pk, ctr_py_code_t *ci,
                                 PyFrameObject *frame) {
  if (ci->names == NULL || ci->nargs == 0)
    return 0;
  return ctr_py_pack_slots(pk, ci, frame, ci->args, ci->nargs);
}

/* ---- events ------------------------------------------------------------------ */

/* Declares ci's function (and path) in this connection when needed. */
static uint32_t ctr_py_func_id(msgpack_packer *pk, ctr_py_code_t *ci) {
  uint32_t pid = ctr_py_path_id(pk, ci->path);
  if (ci->func_gen != g.gen) {
    ci->func_id = g.next_func++;
    ctr_pack_func_in(pk, ci->func_id, pid, ci->line, ci->name ? ci->name : "?",
                     ci->name ? ci->name_len : 1, ci->module, ci->module_len);
    ci->func_gen = g.gen;
  }
  return ci->func_id;
}

static bool ctr_py_send_call(ctr_py_thread_t *t, PyFrameObject *frame,
                             ctr_py_code_t *ci) {
  /* Without values the CALL packs no Python object; once the function is
   * declared it is a few bytes. */
  if (g.values == CTR_WV_NONE && ci->func_gen == g.gen && ctr_py_quick_ok(t)) {
    unsigned char *p = ctr_client_quick(3 + CTR_ENC_INT_MAX);
    if (p != NULL) {
      p = ctr_enc_head(p, 3, CTR_MSG_CALL);
      p = ctr_enc_uint(p, ci->func_id);
      ctr_client_quick_done(ctr_enc_array(p, 0));
      return true;
    }
  }
  msgpack_packer *pk = ctr_py_begin(t);
  if (pk == NULL)
    return false;
  uint32_t fid = ctr_py_func_id(pk, ci);
  uint32_t n = g.values != CTR_WV_NONE ? ctr_py_pack_args(pk, ci, frame) : 0;
  ctr_pack_call_begin(pk, fid, n);
  ctr_py_append_scratch(pk);
  ctr_py_end(t);
  return true;
}

/* The flags of a frame entered under `caller` (NULL: none known), except
 * SENT; *send says whether its CALL is due. Both the trace function and
 * the stack rebuilt at a resume decide here, so they always agree. */
uint8_t ctr__py_classify(const ctr_py_frame_t *caller,
                               PyFrameObject *frame, PyCodeObject *co,
                               ctr_py_code_t *ci, bool *send) {
  uint8_t flags = ci != NULL && ci->is_module ? ctr_py_module_role(frame) : 0;
  if (ci != NULL)
    ctr_py_code_module(ci, frame);
  /* The file that runs as __main__ is the program even in a library
   * folder (python3 -m calendar): it and the functions it defines are
   * recorded unless a rule skips them. */
  if ((flags & CTR_PY_F_MAIN) && !ci->skip)
    ci->path->lib = false;
  /* Code compiled from a string (eval, exec, namedtuple, dataclasses) is
   * the program's when the program runs it, or when it is __main__ (-c).
   * "The program's" does not depend on the daemon's rules, so that a
   * filtered caller changes nothing below it. */
  bool prog = ci != NULL && !ci->skip;
  /* Library code is the program's only where the rules record it (the
   * built-in rules skip it): elsewhere the exceptions it raises and the
   * strings it compiles are its own business. The same with push-down off,
   * so that the traces agree. */
  bool lib = prog && ci->path->lib;
  if (lib)
    prog = ctr_py_action(ci) == CTR_FILTER_RECORD;
  if (prog && ci->pseudo && !(flags & CTR_PY_F_MAIN))
    prog = caller != NULL && (caller->flags & CTR_PY_F_PROG);
  bool tree = caller != NULL && (caller->flags & CTR_PY_F_TREE);
  /* Without push-down the daemon sees library code too: it must know what
   * it skips to decide the callbacks below. */
  bool pushdown = ctr_client_pushdown();
  *send = prog || (lib && !pushdown);
  if ((prog || lib) && pushdown) {
    int action = tree ? CTR_FILTER_SKIP_TREE : ctr_py_action(ci);
    if (action == CTR_FILTER_SKIP_TREE)
      tree = true;
    *send = action == CTR_FILTER_RECORD;
  }
  if (prog)
    flags |= CTR_PY_F_PROG;
  if (tree)
    flags |= CTR_PY_F_TREE;
  return flags;
}

/* A frame of code `co` entered under `caller`. */
void ctr__py_on_call(ctr_py_thread_t *t, PyFrameObject *frame,
                           PyCodeObject *co, ctr_py_code_t *ci,
                           const ctr_py_frame_t *caller) {
  bool send;
  uint8_t flags = ctr__py_classify(caller, frame, co, ci, &send);
  /* The program's code that push-down skips: its CALL and RETURN count as
   * filtered for the metadata (its lines are not even traced). */
  if (!send && (flags & CTR_PY_F_PROG))
    ctr_client_filtered(2);
  if (send && ctr_py_send_call(t, frame, ci))
    flags |= CTR_PY_F_SENT;
#if !CTR_PY_MONITORING
  if (!send)
    ctr_py_no_lines(frame);
#endif
  ctr_py_push(t, ci, flags, co, ctr__py_frame_id(frame));
}

/* STEP, and VARS (when `vars`) of an optimized frame whose variables are
 * all scalars, encoded straight into the batch: most steps are like that,
 * and they are the bulk of a trace. False, with nothing but declarations
 * packed, when a variable needs the general path. */
static bool ctr_py_fast_step(msgpack_packer *pk, ctr_py_code_t *ci,
                             PyFrameObject *frame, uint32_t pid, int line,
                             bool vars) {
  PyObject *slots[CTR_PY_FAST_VARS];
  ctr_py_scalar_t vals[CTR_PY_FAST_VARS];
  uint32_t ids[CTR_PY_FAST_VARS];
  Py_ssize_t n = 0;
  uint32_t *name_ids = NULL;
  if (vars) {
    n = ctr__py_frame_locals(frame, slots, CTR_PY_FAST_VARS);
    if (n == CTR_PY_FAST_VARS)
      return false; /* maybe more than fit */
    name_ids = ctr_py_name_ids(pk, ci);
  }
  size_t size = CTR_ENC_STEP_MAX + CTR_ENC_VARS_MAX;
  uint32_t count = 0;
  for (Py_ssize_t i = 0; i < n; i++) {
    if (slots[i] == NULL)
      continue; /* unbound */
    if (!ctr__py_scalar_read(pk, slots[i], &vals[count]))
      return false;
    ids[count] = name_ids[i];
    size += CTR_ENC_PAIR_MAX + ctr__py_scalar_size(&vals[count]);
    count++;
  }
  uint32_t budget = ctr_client_settings()->max_nodes;
  if (budget != 0 && count > budget)
    return false; /* the general path marks where the budget ran out */
  unsigned char *start = ctr_client_reserve(size);
  if (start == NULL)
    return true; /* out of memory: the batch is dropped whole */
  unsigned char *p = ctr_enc_step(start, pid, line);
  if (vars) {
    p = ctr_enc_head(p, 2, CTR_MSG_VARS);
    p = ctr_enc_array(p, count);
  }
  for (uint32_t k = 0; k < count; k++) {
    p = ctr_enc_array(p, 2);
    p = ctr_enc_uint(p, ids[k]);
    p = ctr__py_scalar_write(p, &vals[k]);
  }
  ctr_client_commit((size_t)(p - start));
  return true;
}

void ctr__py_on_line(ctr_py_thread_t *t, PyFrameObject *frame,
                           ctr_py_code_t *ci, int line) {
  /* VARS only when the daemon keeps them (values: all). */
  bool vars = g.values == CTR_WV_ALL;
  PyObject *locals = vars ? ctr_py_body_locals(ci, frame) : NULL;
  msgpack_packer *pk = ctr_py_begin(t);
  if (pk != NULL) {
    uint32_t pid = ctr_py_path_id(pk, ci->path);
    if ((!vars || ci->names != NULL) &&
        ctr_py_fast_step(pk, ci, frame, pid, line, vars)) {
      ctr_py_end(t);
      return;
    }
    ctr_pack_step(pk, pid, line);
    if (vars) {
      uint32_t n = ctr_py_pack_locals(pk, ci, frame, locals);
      ctr_pack_vars_begin(pk, n);
      ctr_py_append_scratch(pk);
    }
    ctr_py_end(t);
  }
  Py_XDECREF(locals);
}

/* The exit status an exception gives when it ends the program. */
static int64_t ctr_py_status_of(PyObject *exc) {
  PyTypeObject *tp = Py_TYPE(exc);
  if (PyType_IsSubtype(tp, (PyTypeObject *)PyExc_SystemExit)) {
    PyObject *code = ((PySystemExitObject *)exc)->code;
    if (code == NULL || code == Py_None)
      return 0;
    if (PyLong_Check(code)) {
      long c = PyLong_AsLong(code);
      if (c == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 1;
      }
      return (int64_t)(c & 0xff);
    }
    return 1; /* the message is printed and the status is 1 */
  }
  if (PyType_IsSubtype(tp, (PyTypeObject *)PyExc_KeyboardInterrupt))
    return 130; /* CPython re-raises SIGINT: 128 + 2 for a shell */
  return 1;
}

/* `exc` raised in (or passing through) the frame `top` describes, with
 * its traceback so far. */
void ctr__py_on_exception(ctr_py_thread_t *t, const ctr_py_frame_t *top,
                                PyObject *exc, PyObject *tb) {
  if (top == NULL || exc == NULL || !PyExceptionInstance_Check(exc))
    return;
  if (top->flags & CTR_PY_F_MAIN)
    g.main_status = ctr_py_status_of(exc);
  /* The daemon records RAISE wherever it comes from, so it is sent from
   * filtered frames of the program too. */
  if (!(top->flags & CTR_PY_F_PROG) || !ctr_client_active())
    return;
  /* Generators and coroutines end with these; they are control flow. */
  PyTypeObject *tp = Py_TYPE(exc);
  bool flow = PyType_IsSubtype(tp, (PyTypeObject *)PyExc_StopIteration) ||
              PyType_IsSubtype(tp, (PyTypeObject *)PyExc_StopAsyncIteration) ||
              PyType_IsSubtype(tp, (PyTypeObject *)PyExc_GeneratorExit);
  /* CPython reports the exception again in every frame it passes through;
   * one RAISE is sent where it was raised (a one-entry traceback) or where
   * it first reaches recorded code. */
  bool fresh = exc != t->last_exc || tb == NULL || !PyTraceBack_Check(tb) ||
               ((PyTracebackObject *)tb)->tb_next == NULL;
  t->last_exc = exc;
  if (!fresh)
    return;
  const char *cls = tp->tp_name;
  size_t cn = strlen(cls);
  char msg[CTR_PY_EXC_TEXT];
  size_t mn = ctr__py_exc_message(exc, msg, sizeof msg);
  snprintf(t->exc_text, sizeof t->exc_text, "%.100s%s%.400s", cls, mn ? ": " : "",
           msg);
  msgpack_packer *pk = flow ? NULL : ctr_py_begin(t);
  if (pk == NULL)
    return;
  ctr_pack_raise(pk, cls, cn, msg, mn);
  ctr_py_end(t);
}

static void ctr_py_hook_threading(PyFrameObject *frame) {
  PyObject *globals = PyFrame_GetGlobals(frame);
  if (globals != NULL && PyDict_Check(globals) && g.thread_hook != NULL) {
    PyObject *cur = PyDict_GetItemWithError(globals, g.str_trace_hook);
    if (cur == Py_None)
      PyDict_SetItem(globals, g.str_trace_hook, g.thread_hook);
  }
  PyErr_Clear();
  Py_XDECREF(globals);
}

/* RETURN of a scalar value encoded straight into the batch; false (with
 * nothing but a declaration packed) for any other value. */
static bool ctr_py_return_scalar(msgpack_packer *pk, PyObject *value) {
  ctr_py_scalar_t sc;
  if (!ctr__py_scalar_read(pk, value, &sc))
    return false;
  unsigned char *start = ctr_client_reserve(2 + ctr__py_scalar_size(&sc));
  if (start != NULL) {
    unsigned char *p = ctr_enc_head(start, 2, CTR_MSG_RETURN);
    ctr_client_commit((size_t)(ctr__py_scalar_write(p, &sc) - start));
  }
  return true;
}

void ctr__py_on_return(ctr_py_thread_t *t, PyFrameObject *frame,
                             PyObject *arg) {
  uint8_t flags = ctr_py_pop(t);
  if (flags & CTR_PY_F_MAIN) {
    g.main_done = true;
    if (arg != NULL)
      g.main_status = 0;
  }
  /* sys.monitoring reports every thread by itself. */
  if (!CTR_PY_MONITORING && (flags & CTR_PY_F_THREADING) && arg != NULL)
    ctr_py_hook_threading(frame);
  if (!(flags & CTR_PY_F_SENT))
    return;
  /* Without values the RETURN packs no Python object; once None's type is
   * declared it is a few bytes. */
  uint32_t none_tid;
  if (g.values == CTR_WV_NONE && ctr_py_quick_ok(t) &&
      ctr_py_type_known(CTR_TK_NONE, Py_TYPE(Py_None), &none_tid)) {
    unsigned char *p = ctr_client_quick(2 + CTR_ENC_SCALAR_MAX);
    if (p != NULL) {
      p = ctr_enc_head(p, 2, CTR_MSG_RETURN);
      ctr_client_quick_done(ctr_enc_value_head(p, 2, CTR_V_NONE, none_tid));
      return;
    }
  }
  msgpack_packer *pk = ctr_py_begin(t);
  if (pk == NULL)
    return;
  PyObject *value = g.values == CTR_WV_NONE ? Py_None : arg;
  if (value != NULL && ctr_py_return_scalar(pk, value)) {
    ctr_py_end(t);
    return;
  }
  if (value != NULL) {
    ctr__py_value_pack(pk, &g.scratch, value);
  } else {
    /* Unwound by an exception: no value was returned. */
    uint32_t tid = ctr__py_type_id(pk, CTR_TK_ERROR, "<exception>", 11);
    char text[CTR_PY_EXC_TEXT + 16];
    int n = snprintf(text, sizeof text, "raised %s",
                     t->exc_text[0] ? t->exc_text : "an exception");
    ctr_pack_v_error(&g.scratch, tid, text,
                     n < 0 ? 0 : (size_t)n >= sizeof text ? sizeof text - 1
                                                          : (size_t)n);
  }
  ctr_pack_return_begin(pk);
  ctr_py_append_scratch(pk);
  ctr_py_end(t);
}

/* ---- pause and resume --------------------------------------------------- */

/* Installs or removes the trace function in every thread of the
 * interpreter. The caller holds the GIL, so no thread state comes or goes
 * meanwhile, and the others wait for the GIL, where changing their trace
 * function is what sys.settrace in 3.12's threading.settrace_all_threads
 * does too. */
static void ctr_py_hooks_set(bool on) {
#if CTR_PY_MONITORING
  ctr__py_mon_hooks(on);
#else
  /* Threads where the program runs a trace function of its own
   * (sys.settrace) keep it. */
  PyThreadState *cur = PyThreadState_Get();
  PyInterpreterState *interp = PyThreadState_GetInterpreter(cur);
  for (PyThreadState *ts = PyInterpreterState_ThreadHead(interp); ts;
       ts = PyThreadState_Next(ts))
    if (ts->c_tracefunc == (on ? NULL : ctr__py_trace) &&
        _PyEval_SetTrace(ts, on ? ctr__py_trace : NULL, NULL) != 0)
      PyErr_Clear();
#endif
  g.hooks_off = !on;
}

/* Puts the hooks back after a pause, or after messages found the client
 * paused: every thread rebuilds its stack before its next message. */
static void ctr_py_rehook(void) {
  if (g.hooks_off)
    ctr_py_hooks_set(true);
  g.epoch++;
  g.missed = false;
}

/* Polls for the end of a pause and then puts the hooks back itself, with
 * the GIL: whichever threads run Python code record again from their next
 * event, whatever the main thread is doing (a pending call would wait for
 * the main thread, which may be blocked in a join). libctrec reads the
 * daemon's RESUME on its flush thread, so polling at half the flush
 * period adds little delay. */
static void *ctr_py_watch(void *arg) {
  const ctr_welcome_t *w = ctr_client_settings();
  long ms = w && w->flush_ms ? (long)w->flush_ms / 2 : 50;
  ms = ms < 5 ? 5 : ms > 50 ? 50 : ms;
  struct timespec ts = {0, ms * 1000000L};
  while (!atomic_load(&g.watcher_stop)) {
    nanosleep(&ts, NULL);
    if (!atomic_load(&g.hooks_off) || !ctr_client_active())
      continue;
    PyGILState_STATE st = PyGILState_Ensure();
    if (g.on && g.hooks_off && !atomic_load(&g.watcher_stop) &&
        ctr_client_active())
      ctr_py_rehook();
    PyGILState_Release(st);
  }
  return arg;
}

/* Starts the watcher in this process (again after a fork) when needed. */
static void ctr_py_watch_start(void) {
  pid_t pid = getpid();
  if (g.watcher_pid == pid)
    return;
  atomic_store(&g.watcher_stop, false);
  if (pthread_create(&g.watcher, NULL, ctr_py_watch, NULL) == 0)
    g.watcher_pid = pid;
}

/* Packs one STACK frame (head and variables) into stack_pk. */
static void ctr_py_stack_frame(msgpack_packer *pk, ctr_py_code_t *ci,
                               PyFrameObject *frame, PyObject *locals) {
  uint32_t fid = ctr_py_func_id(pk, ci);
  uint32_t n = 0;
  msgpack_sbuffer_clear(&g.scratch_buf);
  ctr__py_value_message();
  if (g.values == CTR_WV_ALL)
    n = ctr_py_pack_locals(pk, ci, frame, locals);
  else if (g.values == CTR_WV_ARGS)
    n = ctr_py_pack_args(pk, ci, frame);
  ctr_pack_frame_begin(&g.stack_pk, fid, PyFrame_GetLineNumber(frame), n);
  if (g.scratch_buf.size)
    msgpack_sbuffer_write(&g.stack_buf, g.scratch_buf.data,
                          g.scratch_buf.size);
  msgpack_sbuffer_clear(&g.scratch_buf);
}

/* Rebuilds t's shadow stack from the live frames, from the outermost to
 * `inner` (NULL: none), deciding each as if it had just been entered, and
 * sends the frames that get a CALL as STACK, with their current line and
 * variables. The daemon replaces its view of the thread with it. */
static void ctr_py_resync(ctr_py_thread_t *t, PyFrameObject *inner) {
  size_t n = 0, cap = 64;
  PyFrameObject **frames = malloc(cap * sizeof *frames);
  /* A fork child's new connection unmarks the frames sent before it: that
   * must happen before the stack is rebuilt, not to the rebuilt one. */
  ctr_py_check_generation();
  t->epoch = g.epoch;
  t->n = 0;
  t->overflow = 0;
  if (frames == NULL)
    return;
  PyFrameObject *f = inner;
  Py_XINCREF(f);
  while (f != NULL) {
    if (n == cap) {
      PyFrameObject **more = realloc(frames, 2 * cap * sizeof *frames);
      if (more == NULL) {
        Py_DECREF(f);
        break;
      }
      frames = more;
      cap *= 2;
    }
    frames[n++] = f; /* owns the reference */
    f = PyFrame_GetBack(f);
  }
  /* Outermost first, as STACK wants them. Each frame is decided with the
   * one outside it as its caller; under sys.monitoring only frames of
   * followed code go on the shadow stack (the others report no return),
   * but the frames between still pass their flags on. */
  PyObject **locals = calloc(n ? n : 1, sizeof *locals);
  ctr_py_code_t **cis = calloc(n ? n : 1, sizeof *cis);
  uint32_t nsent = 0;
  ctr_py_frame_t caller = {0};
  bool have_caller = false;
  for (size_t k = n; locals != NULL && cis != NULL && k-- > 0;) {
    PyFrameObject *f = frames[k];
    PyCodeObject *co = PyFrame_GetCode(f);
    ctr_py_code_t *ci = ctr__py_code_info(co);
    bool send;
    uint8_t flags = ctr__py_classify(have_caller ? &caller : NULL, f, co, ci,
                                    &send);
#if CTR_PY_MONITORING
    bool follow = ctr__py_mon_follow(co, ci);
#else
    bool follow = true;
    ctr_py_set_lines(f, send);
#endif
    if (send && follow) {
      flags |= CTR_PY_F_SENT;
      nsent++;
      cis[k] = ci;
      if (g.values == CTR_WV_ALL)
        locals[k] = ctr_py_body_locals(ci, f);
    }
    if (follow)
      ctr_py_push(t, ci, flags, co, ctr__py_frame_id(f));
    caller.code = ci;
    caller.flags = flags;
    have_caller = true;
    Py_DECREF(co);
  }
  msgpack_packer *pk = ctr_py_begin_raw(t);
  if (pk == NULL) {
    /* Nothing was sent, so nothing is open in the daemon. */
    for (size_t i = 0; i < t->n; i++)
      t->stack[i].flags &= (uint8_t)~CTR_PY_F_SENT;
  } else {
    msgpack_sbuffer_clear(&g.stack_buf);
    for (size_t k = n; cis != NULL && k-- > 0;)
      if (cis[k] != NULL)
        ctr_py_stack_frame(pk, cis[k], frames[k], locals[k]);
    ctr_pack_stack_begin(pk, t->wire_id, nsent);
    if (g.stack_buf.size)
      pk->callback(pk->data, g.stack_buf.data, g.stack_buf.size);
    msgpack_sbuffer_clear(&g.stack_buf);
    g.sent_thread = t->wire_id;
    ctr_py_end(t);
  }
  free(cis);
  for (size_t k = 0; k < n; k++) {
    if (locals != NULL)
      Py_XDECREF(locals[k]);
    Py_DECREF(frames[k]);
  }
  free(locals);
  free(frames);
}

/* Called before a thread packs anything. Returns false while nothing may
 * be sent: then the trace function is removed until the daemon resumes.
 * After a resume that the daemon missed something before, each thread
 * first rebuilds and sends its stack, from `inner` (NULL: the current
 * frame) outwards, or from its caller for a frame being `entered` (which
 * is not on the stack yet). */
bool ctr__py_ready(ctr_py_thread_t *t, PyFrameObject *inner,
                         bool entered) {
  if (!ctr_client_active()) {
    if (!g.hooks_off) {
      ctr_py_hooks_set(false);
      ctr_py_watch_start();
    }
    return false;
  }
  /* A RESUME calls for STACK only when the daemon missed part of the
   * stacks: the hooks went off, or a message found the client paused. A
   * pause that ended before the shim noticed it (PAUSE and RESUME between
   * two events, or a PAUSE the client dropped) sent every call and return,
   * so the daemon knows the stacks already; it may also have opened the
   * new interval with them from messages still in flight, and a STACK
   * then would replace frames whose calls are in the trace, leaving those
   * calls without returns. */
  bool resumed = ctr_client_take_resume() && g.missed;
  if (resumed || g.hooks_off)
    ctr_py_rehook();
  if (t->epoch != g.epoch) {
    if (inner == NULL)
      inner = PyEval_GetFrame(); /* the current frame: see the callers */
    /* Only here: PyFrame_GetBack creates the caller's frame object. */
    PyFrameObject *back = entered && inner ? PyFrame_GetBack(inner) : NULL;
    ctr_py_resync(t, entered ? back : inner);
    Py_XDECREF(back);
  }
  return true;
}

void ctr__py_err_save(ctr_py_err_t *e) {
  e->type = e->value = e->tb = NULL;
  e->pending = PyErr_Occurred() != NULL;
  if (e->pending)
    PyErr_Fetch(&e->type, &e->value, &e->tb);
}

void ctr__py_err_restore(ctr_py_err_t *e) {
  if (PyErr_Occurred())
    PyErr_Clear();
  if (e->pending)
    PyErr_Restore(e->type, e->value, e->tb);
}

int ctr__py_trace(PyObject *obj, PyFrameObject *frame, int what,
                  PyObject *arg) {
  if (!g.on)
    return 0;
  ctr_py_thread_t *t = ctr__py_thread();
  if (t == NULL || t->in_pack)
    return 0;
  if (what == PyTrace_LINE) {
    ctr_py_frame_t *top = ctr__py_top(t);
    if (top != NULL && (top->flags & CTR_PY_F_SENT) &&
        ctr__py_quick_line(t, top, PyFrame_GetLineNumber(frame)))
      return 0;
  }
  ctr_py_err_t err;
  ctr__py_err_save(&err);
  if (!ctr__py_ready(t, frame, what == PyTrace_CALL))
    what = -1;
  switch (what) {
  case PyTrace_CALL: {
    PyCodeObject *co = PyFrame_GetCode(frame);
    ctr__py_on_call(t, frame, co, ctr__py_code_info(co), ctr__py_top(t));
    Py_DECREF(co);
    break;
  }
  case PyTrace_LINE: {
    ctr_py_frame_t *top = ctr__py_top(t);
    if (top != NULL && (top->flags & CTR_PY_F_SENT) && ctr_client_active())
      ctr__py_on_line(t, frame, top->code, PyFrame_GetLineNumber(frame));
    break;
  }
  case PyTrace_RETURN:
    ctr__py_on_return(t, frame, arg);
    break;
  case PyTrace_EXCEPTION:
    if (PyTuple_Check(arg) && PyTuple_GET_SIZE(arg) >= 3)
      ctr__py_on_exception(t, ctr__py_top(t), PyTuple_GET_ITEM(arg, 1),
                          PyTuple_GET_ITEM(arg, 2));
    break;
  default:
    break;
  }
  ctr__py_err_restore(&err);
  return 0;
}

/* ---- the program's API -------------------------------------------------- */

void ctr__py_api_mark(const char *s, size_t n) {
  if (!g.on)
    return;
  ctr_py_thread_t *t = ctr__py_thread();
  /* ctr_py_begin packs the output written before the mark first. */
  if (t == NULL || t->in_pack || !ctr__py_ready(t, NULL, false))
    return;
  msgpack_packer *pk = ctr_py_begin(t);
  if (pk == NULL)
    return;
  ctr_pack_mark(pk, s, n);
  ctr_py_end(t);
}

void ctr__py_after_fork(void) {
  /* A fork child is a session of its own, which the daemon starts as
   * record.start says: the hooks a pause took out come back (the watcher
   * did not survive the fork). */
  if (g.on && g.hooks_off && ctr_client_active())
    ctr_py_rehook();
}

void ctr__py_api_record(bool on) {
  if (!g.on)
    return;
  /* Output written before a pause belongs to the interval it ends. */
  if (!on)
    ctr__py_flush_output();
  ctr_client_record(on);
  /* The hooks come back now, not when the watcher looks: the lines after
   * resume() are recorded, each thread sending its stack first. */
  if (on && g.hooks_off && ctr_client_active())
    ctr_py_rehook();
}

/* ---- output ----------------------------------------------------------------- */

void ctr__py_record_output(int kind, const char *s, size_t n) {
  if (!g.on || n == 0)
    return;
  ctr_py_thread_t *t = ctr__py_thread();
  if (t == NULL || t->in_pack || !ctr__py_ready(t, PyEval_GetFrame(), false))
    return;
  ctr_py_out_own();
  bool same = g_out.len > 0 && g_out.kind == kind && g_out.wire_id == t->wire_id;
  if (!same && g_out.len > 0)
    ctr__py_flush_output();
  if (g_out.len + n > g_out.cap && g_out.len + n <= CTR_OUTPUT_PIECE) {
    size_t cap = g_out.cap ? g_out.cap : 256;
    while (cap < g_out.len + n)
      cap *= 2;
    char *b = realloc(g_out.buf, cap);
    if (b != NULL) {
      g_out.buf = b;
      g_out.cap = cap;
    }
  }
  if (g_out.len + n <= g_out.cap) {
    /* Text already held is this process's (ctr_py_out_own). */
    if (g_out.len == 0)
      g_out.pid = getpid();
    memcpy(g_out.buf + g_out.len, s, n);
    g_out.len += n;
    g_out.kind = kind;
    g_out.wire_id = t->wire_id;
    if (s[n - 1] == '\n')
      ctr__py_flush_output();
    return;
  }
  /* Too big to hold: what is pending first, then this text directly. */
  ctr__py_flush_output();
  msgpack_packer *pk = ctr_py_begin(t);
  if (pk == NULL)
    return;
  ctr_pack_output(pk, kind, s, n);
  ctr_py_end(t);
}

void ctr__py_flush_output(void) {
  if (g_out.len == 0)
    return;
  msgpack_packer *pk = ctr_client_begin();
  if (pk == NULL) {
    g_out.len = 0;
    return;
  }
  ctr_py_check_generation();
  if (g_out.len > 0)
    ctr_py_pack_output(pk);
  ctr_client_end();
}

/* ---- start and exit ----------------------------------------------------- */

#if !CTR_PY_MONITORING
/* Finds where CPython keeps f_trace_lines, from the frame type's member
 * table, so that switching line events off is a store, not a setattr. */
static void ctr_py_find_trace_lines(void) {
  PyObject *d = PyDict_GetItemString(PyFrame_Type.tp_dict, "f_trace_lines");
  if (d != NULL && Py_IS_TYPE(d, &PyMemberDescr_Type)) {
    PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
    if (m->type == T_BOOL)
      g.trace_lines_offset = m->offset;
  }
}
#endif

int ctr__py_trace_setup(PyObject *shim_dirs, PyObject *lib_dirs,
                        PyObject *thread_hook) {
  char cwd[4096];
  if (getcwd(cwd, sizeof cwd) == NULL)
    strcpy(cwd, "/");
  g.cwd = strdup(cwd);
  g.extra_index = ctr__py_request_extra(ctr_py_code_free);
  g.str_name = PyUnicode_InternFromString("__name__");
  g.str_trace_hook = PyUnicode_InternFromString("_trace_hook");
  if (g.cwd == NULL || g.extra_index < 0 || g.str_name == NULL ||
      g.str_trace_hook == NULL || pthread_key_create(&g.key, ctr_py_thread_free) != 0) {
    PyErr_Clear();
    return CTR_ENOMEM;
  }
  g.shim_dirs = ctr_py_dir_list(shim_dirs, &g.nshim_dirs);
  g.lib_dirs = ctr_py_dir_list(lib_dirs, &g.nlib_dirs);
  g.main_ident = PyThread_get_thread_ident();
  Py_XINCREF(thread_hook);
  g.thread_hook = thread_hook;
  msgpack_sbuffer_init(&g.scratch_buf);
  msgpack_packer_init(&g.scratch, &g.scratch_buf, msgpack_sbuffer_write);
  msgpack_sbuffer_init(&g.stack_buf);
  msgpack_packer_init(&g.stack_pk, &g.stack_buf, msgpack_sbuffer_write);
  g.values = ctr_py_values_mode();
#if !CTR_PY_MONITORING
  ctr_py_find_trace_lines();
#endif
  g.on = true;
  return 0;
}

#if !CTR_PY_MONITORING
void ctr__py_trace_handover(bool program) {
  ctr_py_thread_t *t = ctr__py_thread();
  if (!g.on || t == NULL || t->in_pack)
    return;
  if (program) {
    if (t->foreign)
      return;
    t->foreign = true;
    msgpack_packer *pk = ctr_py_begin(t);
    if (pk != NULL) {
      static const char why[] =
          "the program traces this thread itself (sys.settrace): not "
          "recorded until it stops";
      ctr_pack_mark(pk, why, sizeof why - 1);
      ctr_py_end(t);
    }
    return;
  }
  /* The stack may have changed unseen: the next event sends it as STACK. */
  if (t->foreign)
    t->epoch = g.epoch - 1;
  t->foreign = false;
  if (!g.hooks_off)
    PyEval_SetTrace(ctr__py_trace, NULL);
}
#endif

void ctr__py_trace_install(void) {
#if CTR_PY_MONITORING
  ctr__py_mon_install();
#else
  PyEval_SetTrace(ctr__py_trace, NULL);
#endif
}

int64_t ctr__py_exit_status(void) {
  if (g.main_done)
    return g.main_status;
  /* No __main__ frame seen (stdin, an embedding): an uncaught exception
   * is what PyErr_Print leaves in sys.last_value. */
  PyObject *last = PySys_GetObject("last_value");
  return last != NULL && last != Py_None ? 1 : 0;
}

void ctr__py_trace_stop(void) {
  ctr__py_flush_output();
  g.on = false;
#if CTR_PY_MONITORING
  ctr__py_mon_stop();
#else
  PyEval_SetTrace(NULL, NULL);
#endif
  if (g.watcher_pid == getpid()) {
    atomic_store(&g.watcher_stop, true);
    /* Without the GIL: the watcher may be waiting for it. */
    Py_BEGIN_ALLOW_THREADS
    pthread_join(g.watcher, NULL);
    Py_END_ALLOW_THREADS
    g.watcher_pid = 0;
  }
}

bool ctr__py_trace_on(void) { return g.on; }

bool ctr__py_trace_hooked(void) { return g.on && !g.hooks_off; }
