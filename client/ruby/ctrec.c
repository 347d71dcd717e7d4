/* ctrec.c: the Ruby shim. `require 'ctrec'` records the program into ctrecd
 * when CT_RECORDER_SOCKET is set, and does nothing at all otherwise.
 *
 * It uses the C tracing API (rb_add_event_hook2 with raw trace args) for
 * line, call, return, block and raise events, and wraps STDOUT/STDERR#write
 * and #syswrite and Warning.warn to record program output.
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
 * Push-down: the daemon's code rules arrive in WELCOME and FILTER. Each
 * function caches its decision (per filter generation). A "skip" frame
 * sends no CALL, RETURN, STEP or VARS of its own; inside a "skip-tree"
 * frame the hook only counts nested frames until the tree returns, or,
 * when the tree's root is a method and only one thread runs, Ruby stops
 * calling it for the tree's code at all (see "fast skip-tree"). Output
 * and RAISE are still sent. The shim mirrors the daemon's view of the
 * stack: a frame is "known" when a CALL is sent for it or would be without
 * push-down, and a line is sent when the daemon keeps it (see
 * ctr_rb_line_kept), so the trace is the same either way. The standard
 * library and gems are skipped by the daemon's built-in rules like any
 * other code: a file that no rule naming a function applies to is
 * decided once for all its functions (ctr_rb_path_skips).
 *
 * Pause: when the daemon pauses the session (ctrecctl stop, outside the
 * time windows, a limit) the full hook is replaced by a wake hook on method
 * and block calls only, which just checks the client's flag. libctrec reads
 * RESUME on its own thread, and Ruby 3.1 has no safe way for a foreign
 * thread to interrupt a Ruby thread (rb_postponed_job_register needs the
 * caller's execution context), so a cheap hook that stays installed is the
 * way back. On resume each fiber rebuilds its shadow stack from the live
 * Ruby stack and sends it as STACK (with the frames' current locals) before
 * anything else.
 *
 * Everything else comes from ctrec.yaml through the daemon. The one
 * environment switch, for tests/bench/ruby_bench.sh (README, "Environment
 * variables"): CTREC_BENCH_EMPTY_HOOK=1 installs a hook that does nothing
 * for the same events, and records nothing. */
#include <errno.h>
#include <pthread.h>
#include <ruby.h>
#include <ruby/debug.h>
#include <ruby/ractor.h>
#include <ruby/version.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctr_enc.h"
#include "ctr_filter.h"
#include "ctr_rb.h"

#define CTR_RB_SHIM_VERSION CTREC_VERSION
/* Output is sent in pieces so that no single EVENT passes the daemon's
 * default limits.max_string. */
#define CTR_RB_EVENT_CHUNK (1u << 20)
/* Eval'd code gets one pseudo path per distinct eval string (a string
 * evaluated again reuses its path), within CTR_CLIENT_TEXTS_MAX and
 * CTR_CLIENT_TEXT_BYTES; later ones share this one. */
#define CTR_RB_EVAL_OVERFLOW "<eval:over-limit>"
/* Compiled eval iseqs are kept alive (their addresses are the lookup keys)
 * in a ring of this many; the oldest is forgotten when it wraps, so a loop
 * evaluating strings for ever keeps memory flat. A forgotten iseq that still
 * runs shows its lines under the bare "<eval>" path. */
#define CTR_RB_EVAL_ISEQS_MAX 16384

/* With RUBY_EVENT_HOOK_FLAG_RAW_ARG Ruby calls the hook as
 * hook(data, trace_arg); the API still takes the classic pointer type. */
#define CTR_RB_HOOK_FN ((rb_event_hook_func_t)(void (*)(void))ctr_rb_hook)
#define CTR_RB_EMPTY_HOOK_FN                                                   \
  ((rb_event_hook_func_t)(void (*)(void))ctr_rb_empty_hook)
#define CTR_RB_WAKE_HOOK_FN                                                    \
  ((rb_event_hook_func_t)(void (*)(void))ctr_rb_wake_hook)

#define CTR_RB_EVENTS                                                          \
  (RUBY_EVENT_LINE | RUBY_EVENT_CALL | RUBY_EVENT_RETURN |                     \
   RUBY_EVENT_B_CALL | RUBY_EVENT_B_RETURN | RUBY_EVENT_RAISE |                \
   RUBY_EVENT_THREAD_END | RUBY_EVENT_FIBER_SWITCH)
/* Inside a skip-tree on the only thread: no event that code fires, only
 * errors and the events that tell another thread or fiber is running. */
#define CTR_RB_TREE_EVENTS                                                     \
  (RUBY_EVENT_RAISE | RUBY_EVENT_THREAD_BEGIN | RUBY_EVENT_THREAD_END |        \
   RUBY_EVENT_FIBER_SWITCH)
/* Deepest Ruby stack a skip-tree root can be told apart in (frames). */
#define CTR_RB_DEPTH_MAX 8192
/* While paused: calls notice a resume, thread ends free their stacks. */
#define CTR_RB_WAKE_EVENTS                                                     \
  (RUBY_EVENT_CALL | RUBY_EVENT_B_CALL | RUBY_EVENT_THREAD_END)

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

/* Fast paths in front of the name tables, cleared with them: by Symbol id,
 * by (class, kind) and by (string literal, kind). Hashing a pointer is much
 * cheaper than hashing the name, and a class name costs an allocation. */
static st_table *g_varname_by_id, *g_type_by_class, *g_type_by_lit;
static VALUE g_type_classes; /* keeps the classes used as keys alive */

/* Direct-mapped caches in front of those tables: a variable or type is
 * looked up for every value captured, and most lookups hit the few names
 * of the code running now. An entry is valid for its generation only. */
#define CTR_RB_MEMO_SIZE 256

typedef struct ctr_rb_memo_s {
  st_data_t key;
  uint32_t id;
  uint32_t gen;
} ctr_rb_memo_t;

static ctr_rb_memo_t g_varname_memo[CTR_RB_MEMO_SIZE];
static ctr_rb_memo_t g_type_lit_memo[CTR_RB_MEMO_SIZE];
static uint32_t g_memo_gen; /* the client generation the tables are for */

static ctr_rb_memo_t *ctr_rb_memo(ctr_rb_memo_t *memo, st_data_t key) {
  return &memo[(key ^ (key >> 9) ^ (key >> 17)) % CTR_RB_MEMO_SIZE];
}

uint32_t ctr__rb_varname_id_sym(msgpack_packer *pk, ID sym) {
  ctr_rb_memo_t *m = ctr_rb_memo(g_varname_memo, (st_data_t)sym);
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
  if (st_lookup(g_type_by_class, key, &val))
    return (uint32_t)val;
  VALUE name = ctr__rb_class_name(klass);
  uint32_t id = ctr__rb_type_id(pk, kind, RSTRING_PTR(name),
                                (size_t)RSTRING_LEN(name));
  st_insert(g_type_by_class, key, (st_data_t)id);
  rb_ary_push(g_type_classes, klass);
  RB_GC_GUARD(name);
  return id;
}

uint32_t ctr__rb_type_id_lit(msgpack_packer *pk, int kind, const char *lit) {
  st_data_t key = (st_data_t)lit * 64 + (st_data_t)kind, val;
  ctr_rb_memo_t *m = ctr_rb_memo(g_type_lit_memo, key);
  if (m->key == key && m->gen == g_memo_gen)
    return m->id;
  uint32_t id;
  if (st_lookup(g_type_by_lit, key, &val)) {
    id = (uint32_t)val;
  } else {
    id = ctr__rb_type_id(pk, kind, lit, strlen(lit));
    st_insert(g_type_by_lit, key, (st_data_t)id);
  }
  m->key = key;
  m->id = id;
  m->gen = g_memo_gen;
  return id;
}

/* ---- shim state -------------------------------------------------------- */

typedef struct ctr_rb_path_s {
  bool skip;
  bool real_file;
  bool evalish; /* "(eval)" or a made-up file name: one path per eval string */
  bool reloaded; /* a real file loaded again with other text (see evals) */
  uint32_t loads; /* times this real file was compiled by load/require */
  st_index_t hash; /* hash of the file's text at its first load */
  char *abs; /* absolute path, or a pseudo path like "<eval:3>" */
  size_t len;
  char *text; /* source of eval'd code, sent as its SOURCE */
  size_t text_len;
  uint32_t id;
  uint32_t gen; /* generation `id` belongs to; 0 = not declared */
  int action;   /* pushed rules' decision for its top-level lines */
  bool uniform;  /* ...and for all its functions (no rule names one) */
  uint32_t fgen; /* filter generation of the two + 1; 0 = not decided */
} ctr_rb_path_t;

/* A function is known by its kind, owner, name and definition site. */
typedef struct ctr_rb_fkey_s {
  VALUE klass;
  VALUE mid;
  VALUE path;
  long line;
  long block; /* 1 for "block in ..." functions */
  /* The path its code is shown under: eval strings and reloaded versions of
   * a file share Ruby's path but not ours. */
  const void *src;
} ctr_rb_fkey_t;

typedef struct ctr_rb_func_s {
  ctr_rb_fkey_t key;
  char *name;
  size_t name_len;
  ID *params; /* named parameters in order */
  int nparams;
  VALUE param_names; /* the same as an Array of Symbols, or Qnil */
  /* A method's local variable names depend on its code only: read once,
   * at its first call (Qundef until then; never set for blocks). */
  VALUE local_names;
  uint32_t id;
  uint32_t gen;
  int action;    /* pushed rules' decision (enum ctr_filter_action) */
  uint32_t fgen; /* filter generation of `action` + 1; 0 = not decided */
  /* Skip-tree root on the fast path: a TracePoint on the method's own
   * return (made once; Qnil when the method is not plain Ruby code), and
   * the stack it is enabled for (NULL: disabled). */
  int tree_tp_state; /* 0 not tried, 1 made, -1 not possible */
  VALUE tree_tp;
  VALUE tree_iseq;
  struct ctr_rb_stack_s *tree_stack;
} ctr_rb_func_t;

/* One method or block frame of a fiber's shadow stack. */
typedef struct ctr_rb_frame_s {
  VALUE klass; /* the frame's method: a block compares its own home here */
  VALUE mid;
  VALUE self;
  VALUE frame;   /* rb_profile_frames' id of the frame's code, 0 = unknown */
  VALUE path;    /* path of its events */
  VALUE binding; /* Qnil until first needed */
  VALUE names;   /* Array of local variable Symbols, Qnil until needed */
  ctr_rb_func_t *func;      /* set for known frames, unless ctr_rb_path_skips */
  const ctr_rb_path_t *src; /* set for known frames: its code's path */
  bool sent;     /* a CALL was sent for it */
  bool known;    /* the daemon sees a CALL for it without push-down */
  bool tree;     /* known with action skip-tree: counted in `trees` */
  bool block;
  int action;    /* for known frames: the daemon's decision */
} ctr_rb_frame_t;

/* The frame no event opened: the main script's (or a thread's) top level. */
typedef struct ctr_rb_top_s {
  VALUE frame;
  VALUE path;
  VALUE binding;
  VALUE names;
} ctr_rb_top_t;

typedef struct ctr_rb_stack_s {
  VALUE fiber; /* not marked: `objid` tells a reused address apart */
  VALUE thread;
  VALUE objid;
  VALUE vals; /* scratch Array of the values being captured */
  uint64_t wire_id;
  ctr_rb_frame_t *frames;
  size_t n;
  size_t cap;
  size_t trees;  /* known skip-tree frames on the stack */
  size_t nested; /* frames entered inside a skip-tree, not kept (push-down) */
  /* Fast skip-tree: the root frame's function (its TracePoint reports the
   * root's return) and the Ruby stack depth of the root frame. While set,
   * the hook ignores this fiber's code events. */
  ctr_rb_func_t *ftree;
  long fdepth;
  uint32_t epoch; /* resume epoch this stack was rebuilt for */
  ctr_rb_top_t top;
  struct ctr_rb_stack_s *next;
} ctr_rb_stack_t;

static struct {
  bool on;
  int vmode;       /* enum ctr_values_mode: the daemon's record.values */
  uint32_t vmode_gen; /* filter generation vmode was read for, +1 */
  bool hooked;     /* the full hook is installed (else the wake hook) */
  bool reduced;    /* the hook has CTR_RB_TREE_EVENTS only (fast skip-tree) */
  size_t ftrees;   /* stacks inside a fast skip-tree */
  uint32_t epoch;  /* bumped at each resume: every stack is rebuilt */
  bool daemonize;  /* Process.daemon is forking: the parent ends at once */
  uint32_t gen;    /* client generation the tables were built for, +1 */
  st_table *paths; /* path VALUE -> ctr_rb_path_t* (kept for the process) */
  st_table *funcs; /* ctr_rb_fkey_t* -> ctr_rb_func_t* */
  st_table *evals; /* iseq pointer -> ctr_rb_path_t* of its eval string */
  VALUE eval_iseqs; /* ring of CTR_RB_EVAL_ISEQS_MAX keeping those alive */
  long eval_next;   /* next slot of the ring */
  st_table *eval_texts; /* pseudo path + text -> ctr_rb_path_t* (dedupe) */
  ctr_rb_path_t *eval_overflow;
  size_t eval_bytes;
  uint32_t nevals;
  VALUE keep;      /* marks the VALUEs used as keys above */
  char *cwd;
  ctr_rb_stack_t *stacks;
  ctr_rb_stack_t *cur; /* stack of the last event */
  VALUE main_fiber;
  VALUE loader; /* frame of the Ruby-level require loading the shim, or 0 */
  uint64_t sent_thread; /* wire id of the last THREAD sent, or UINT64_MAX */
  VALUE stdout_obj;
  VALUE stderr_obj;
  rb_ractor_local_key_t main_key; /* set only in the main Ractor */
  msgpack_sbuffer scratch_buf;
  msgpack_packer scratch;
} g;

static ID id_local_variables, id_local_variable_get, id_instance_method,
    id_parameters, id_attached, id_mesg, id_status, id_full_message,
    id_highlight, id_order, id_top, id_eval_script, id_instruction_sequence,
    id_each_child, id_signo, id_label, id_path, id_first_lineno, id_lineno,
    id_enable, id_target, id_of;

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
  const struct ctr_rb_func_s *f = (const struct ctr_rb_func_s *)v;
  rb_gc_mark(f->param_names);
  rb_gc_mark(f->local_names);
  rb_gc_mark(f->tree_tp);
  rb_gc_mark(f->tree_iseq);
  rb_gc_mark(fk->klass);
  rb_gc_mark(fk->mid);
  rb_gc_mark(fk->path);
  return ST_CONTINUE;
}

/* rb_gc_mark pins: the tables and the stacks use object addresses. Fibers
 * and threads are not marked, so that a finished fiber can be collected. */
static void ctr_rb_keep_mark(void *p) {
  rb_gc_mark(g.loader);
  if (g.paths)
    st_foreach(g.paths, ctr_rb_mark_path, 0);
  if (g.funcs)
    st_foreach(g.funcs, ctr_rb_mark_func, 0);
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

static const rb_data_type_t ctr_rb_keep_type = {
    "ctrec_state", {ctr_rb_keep_mark, NULL, NULL}, NULL, NULL, 0};

/* Ids are per connection: after a fork the child's session starts from 0. */
static void ctr_rb_new_generation(uint32_t gen) {
  g.gen = gen;
  ctr_rb_names_reset(&g_types);
  ctr_rb_names_reset(&g_varnames);
  ctr_rb_names_reset(&g_paths);
  st_clear(g_varname_by_id);
  st_clear(g_type_by_class);
  st_clear(g_type_by_lit);
  g_memo_gen = gen;
  g_next_func = 0;
  /* Frames opened before the fork belong to the parent's trace. */
  for (ctr_rb_stack_t *s = g.stacks; s; s = s->next) {
    for (size_t i = 0; i < s->n; i++)
      s->frames[i].sent = s->frames[i].known = s->frames[i].tree = false;
    s->trees = 0;
  }
  g.sent_thread = UINT64_MAX;
}

static bool ctr_rb_env_is(const char *name, const char *value) {
  const char *v = getenv(name);
  return v != NULL && strcmp(v, value) == 0;
}

/* Runs on every event: the common case stays inline. */
static inline void ctr_rb_check_generation(void) {
  uint32_t gen = ctr_client_generation() + 1;
  uint32_t fgen;
  ctr_client_filter(&fgen);
  if (fgen + 1 != g.vmode_gen) {
    g.vmode = ctr_client_values();
    g.vmode_gen = fgen + 1;
  }
  if (gen != g.gen)
    ctr_rb_new_generation(gen);
}

/* ---- paths --------------------------------------------------------------- */

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
  /* Consecutive events mostly come from the same file. */
  static VALUE last_path;
  static ctr_rb_path_t *last_info;
  if (path == last_path && last_info != NULL)
    return last_info;
  st_data_t val;
  if (st_lookup(g.paths, (st_data_t)path, &val)) {
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
    size_t cl = s[0] == '/' ? 0 : strlen(g.cwd) + 1;
    p->abs = malloc(cl + n + 2);
    if (p->abs) {
      if (cl)
        snprintf(p->abs, cl + 1, "%s/", g.cwd);
      memcpy(p->abs + cl, s, n);
      p->abs[cl + n] = '\0';
      p->len = ctr_rb_normalize(p->abs);
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
  st_insert(g.paths, (st_data_t)path, (st_data_t)p);
  return p;
}

/* Declares the path (and its text) in this connection when needed. */
static uint32_t ctr_rb_path_id(msgpack_packer *pk, ctr_rb_path_t *p) {
  if (p->gen == g.gen)
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
  p->gen = g.gen;
  return id;
}

/* ---- stacks (one per fiber) ------------------------------------------------- */

static void ctr_rb_tree_end(ctr_rb_stack_t *s);

static void ctr_rb_stack_clear(ctr_rb_stack_t *s) {
  ctr_rb_tree_end(s);
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
  s->epoch = g.epoch;
  ctr_rb_stack_clear(s);
  s->next = g.stacks;
  g.stacks = s;
  return s;
}

static void ctr_rb_stack_free(ctr_rb_stack_t *s) {
  for (ctr_rb_stack_t **pp = &g.stacks; *pp; pp = &(*pp)->next) {
    if (*pp == s) {
      *pp = s->next;
      break;
    }
  }
  if (g.cur == s)
    g.cur = NULL;
  ctr_rb_tree_end(s);
  free(s->frames);
  free(s);
}

/* The current fiber's stack. The object id is checked only when the fiber
 * changed since the last event, which is rare. While the full hook is
 * installed every fiber switch reaches it and forgets g.cur, so with a
 * single thread (nothing can switch without an event) the last event's
 * stack is still the current one: no need to ask Ruby for the fiber. */
static ctr_rb_stack_t *ctr_rb_stack_get(void) {
  if (g.cur != NULL && g.hooked && rb_thread_alone())
    return g.cur;
  VALUE fiber = rb_fiber_current();
  if (g.cur && g.cur->fiber == fiber)
    return g.cur;
  VALUE objid = fiber == g.main_fiber ? INT2FIX(0) : rb_obj_id(fiber);
  ctr_rb_stack_t *s;
  for (s = g.stacks; s; s = s->next)
    if (s->fiber == fiber)
      break;
  if (s != NULL && !rb_eql(s->objid, objid)) {
    /* A dead fiber's address was reused: its stack means nothing now. */
    ctr_rb_stack_free(s);
    s = NULL;
  }
  if (s == NULL)
    s = ctr_rb_stack_new(fiber, objid);
  g.cur = s;
  return s;
}

static void ctr_rb_stacks_drop_thread(VALUE th) {
  ctr_rb_stack_t *s = g.stacks;
  while (s != NULL) {
    ctr_rb_stack_t *next = s->next;
    if (s->thread == th && s->fiber != g.main_fiber)
      ctr_rb_stack_free(s);
    s = next;
  }
}

static ctr_rb_frame_t *ctr_rb_push(ctr_rb_stack_t *s) {
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
static bool ctr_rb_pop(ctr_rb_stack_t *s) {
  if (s->n == 0)
    return false; /* a frame entered before recording started */
  ctr_rb_frame_t *f = &s->frames[--s->n];
  if (f->tree)
    s->trees--;
  return f->sent;
}

/* Packs THREAD when the events come from another fiber than last time. */
static void ctr_rb_pack_thread(msgpack_packer *pk, const ctr_rb_stack_t *s) {
  uint64_t id = s != NULL ? s->wire_id : 0;
  if (id != g.sent_thread) {
    ctr_pack_thread(pk, id);
    g.sent_thread = id;
  }
}

/* Appends the scratch bytes (a message body) to the batch. */
static void ctr_rb_append_scratch(msgpack_packer *pk) {
  if (g.scratch_buf.size)
    pk->callback(pk->data, g.scratch_buf.data, g.scratch_buf.size);
  msgpack_sbuffer_clear(&g.scratch_buf);
}

/* Identity of the code running in the current frame: the method entry for
 * a method (and its blocks), else the iseq. Both are stable objects. */
static VALUE ctr_rb_frame_id(void) {
  VALUE buf[1];
  int lines[1];
  if (rb_profile_frames(0, 1, buf, lines) < 1)
    return 0;
  return buf[0];
}

/* ---- gathering values through the frame's binding ------------------------ */

typedef struct ctr_rb_gather_s {
  VALUE binding;
  VALUE names; /* Array of Symbol */
  VALUE vals;  /* the stack's scratch Array: values in the same order */
} ctr_rb_gather_t;

static VALUE ctr_rb_names_body(VALUE binding) {
  VALUE all = rb_funcall(binding, id_local_variables, 0);
  Check_Type(all, T_ARRAY);
  return all;
}

static VALUE ctr_rb_values_body(VALUE arg) {
  ctr_rb_gather_t *ga = (ctr_rb_gather_t *)arg;
  long n = RARRAY_LEN(ga->names);
  for (long i = 0; i < n; i++)
    rb_ary_push(ga->vals, rb_funcall(ga->binding, id_local_variable_get, 1,
                                   RARRAY_AREF(ga->names, i)));
  return Qnil;
}

/* Binding and variable names of the frame running now, made once per
 * frame. `f` is the shadow entry the event belongs to (NULL: the top level
 * of the script or thread). A frame no event opened (a class body, a
 * required file, eval'd code) is recognised by its code identity or path
 * differing from the entry's, and gets a fresh Binding each time. `known`
 * is the frame's variable names when the caller knows them, else Qundef. */
static bool ctr_rb_frame_vars(rb_trace_arg_t *targ, ctr_rb_stack_t *s,
                              ctr_rb_frame_t *f, VALUE path, VALUE known,
                              ctr_rb_gather_t *ga) {
  VALUE fid = ctr_rb_frame_id();
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
static bool ctr_rb_read_values(ctr_rb_gather_t *ga) {
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

/* Packs [[varname_id, value]...] pairs into scratch; returns the count. */
static uint32_t ctr_rb_pack_pairs(msgpack_packer *pk, VALUE names,
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
    ctr_pack_pair_begin(&g.scratch, vid);
    ctr__rb_value_pack(pk, &g.scratch, RARRAY_AREF(vals, i));
  }
  return (uint32_t)n;
}

/* ---- eval'd code ------------------------------------------------------------ */

/* Every distinct eval string (eval, instance_eval, class_eval, ERB...)
 * compiled under a pseudo path gets a path of its own, "<eval:N>", whose
 * SOURCE is the string itself, so the trace is self-contained; a file
 * loaded again with other text gets one the same way ("<reload:f.rb:N>"). A TracePoint on
 * script_compiled (rare events, so a Ruby-level TracePoint costs nothing
 * measurable) registers the new iseq and all its children; an event in a
 * pseudo path then looks its iseq up through the debug inspector. */

static ctr_rb_path_t *g_eval_registering;

static VALUE ctr_rb_eval_register(VALUE iseqw);

static VALUE ctr_rb_eval_child(RB_BLOCK_CALL_FUNC_ARGLIST(child, arg)) {
  return ctr_rb_eval_register(child);
}

static VALUE ctr_rb_eval_register(VALUE iseqw) {
  if (!RB_TYPE_P(iseqw, T_DATA) || !RTYPEDDATA_P(iseqw))
    return Qnil;
  long slot = g.eval_next;
  g.eval_next = (g.eval_next + 1) % CTR_RB_EVAL_ISEQS_MAX;
  if (slot < RARRAY_LEN(g.eval_iseqs)) {
    /* Still alive (the ring held it), so its address is still its own. */
    st_data_t old = (st_data_t)RTYPEDDATA_DATA(RARRAY_AREF(g.eval_iseqs, slot));
    st_delete(g.evals, &old, NULL);
  }
  st_insert(g.evals, (st_data_t)RTYPEDDATA_DATA(iseqw),
            (st_data_t)g_eval_registering);
  rb_ary_store(g.eval_iseqs, slot, iseqw);
  rb_block_call(iseqw, id_each_child, 0, NULL, ctr_rb_eval_child, Qnil);
  return Qnil;
}

/* The path of one text compiled under the pseudo path `base` ("<eval>",
 * "<reload:lib.rb>"...): "<eval:N>", one per distinct text, deduplicated
 * by text so that a string evaluated again reuses its path. NULL when out
 * of memory. */
static ctr_rb_path_t *ctr_rb_text_path(const char *base, size_t blen,
                                       const char *text, size_t tlen) {
  if (tlen > CTR_CLIENT_SOURCE_MAX)
    tlen = CTR_CLIENT_SOURCE_MAX;
  ctr_rb_key_t *k = malloc(sizeof *k + blen + 1 + tlen);
  if (k == NULL)
    return NULL;
  k->len = blen + 1 + tlen;
  memcpy(k->data, base, blen);
  k->data[blen] = '\0';
  memcpy(k->data + blen + 1, text, tlen);
  st_data_t val;
  if (st_lookup(g.eval_texts, (st_data_t)k, &val)) {
    free(k);
    return (ctr_rb_path_t *)val;
  }
  if (g.nevals >= CTR_CLIENT_TEXTS_MAX ||
      g.eval_bytes + tlen > CTR_CLIENT_TEXT_BYTES) {
    free(k);
    return g.eval_overflow;
  }
  ctr_rb_path_t *p = calloc(1, sizeof *p);
  if (p == NULL || (p->abs = malloc(blen + 24)) == NULL) {
    free(p);
    free(k);
    return NULL;
  }
  g.nevals++;
  g.eval_bytes += tlen;
  /* "<eval>" becomes "<eval:N>", "<erb>" "<erb:N>". */
  p->len = (size_t)snprintf(p->abs, blen + 24, "%.*s:%u>", (int)(blen - 1),
                            base, g.nevals);
  p->text_len = tlen;
  p->text = k->data + blen + 1; /* the key lives as long as the path */
  st_insert(g.eval_texts, (st_data_t)k, (st_data_t)p);
  return p;
}

/* load of a file already loaded: when its text changed, the new version
 * gets a pseudo path "<reload:name.rb:N>" carrying that text, because a
 * trace path has one content (the first version's, under the real path).
 * Versions are told apart by their text, so loading version 1 again goes
 * back to the real path. Returns the path its code should be shown under,
 * or NULL for the real path itself. */
static ctr_rb_path_t *ctr_rb_reload_path(ctr_rb_path_t *p) {
  size_t n = 0;
  bool whole;
  char *text = ctr_client_read_source(p->abs, &n, &whole);
  if (text == NULL)
    return NULL;
  st_index_t h = st_hash(text, n, 0x72656c64);
  ctr_rb_path_t *r = NULL;
  if (p->loads++ == 0) {
    p->hash = h;
  } else if (h != p->hash) {
    /* "<reload:name.rb>" becomes "<reload:name.rb:N>", deduplicated with
     * the file's other versions by text. */
    char base[CTR_CLIENT_RELOAD_BASE];
    size_t bl = ctr_client_reload_base(p->abs, base);
    r = ctr_rb_text_path(base, bl, text, n);
    if (r != NULL)
      p->reloaded = true;
  }
  free(text);
  return r;
}

/* The main script of `ruby -e`, which Ruby compiles like an eval string
 * under the name "-e": its text becomes the source of "<-e>". Other text
 * compiled under that name later (eval with the file name "-e") gets a path
 * of its own, as a reloaded file does. Returns that path, or NULL for the
 * main script. */
static ctr_rb_path_t *ctr_rb_script_path(ctr_rb_path_t *base, VALUE script) {
  size_t n = (size_t)RSTRING_LEN(script);
  if (n > CTR_CLIENT_SOURCE_MAX)
    n = CTR_CLIENT_SOURCE_MAX;
  if (base->text == NULL) {
    base->text = malloc(n ? n : 1);
    if (base->text != NULL) {
      memcpy(base->text, RSTRING_PTR(script), n);
      base->text_len = n;
    }
    return NULL;
  }
  if (n == base->text_len && memcmp(base->text, RSTRING_PTR(script), n) == 0)
    return NULL;
  ctr_rb_path_t *r = ctr_rb_text_path(base->abs, base->len, RSTRING_PTR(script),
                                      (size_t)RSTRING_LEN(script));
  if (r != NULL)
    base->reloaded = true;
  return r;
}

static VALUE ctr_rb_compiled_body(VALUE tpval) {
  VALUE script = rb_funcall(tpval, id_eval_script, 0);
  VALUE iseqw = rb_funcall(tpval, id_instruction_sequence, 0);
  VALUE path = rb_funcall(iseqw, id_path, 0);
  if (!RB_TYPE_P(path, T_STRING))
    return Qnil;
  ctr_rb_path_t *base = ctr_rb_path_info(path);
  if (base == NULL || base->skip)
    return Qnil;
  ctr_rb_path_t *p;
  if (!RB_TYPE_P(script, T_STRING)) {
    /* require and load: a real file, maybe loaded again. */
    if (!base->real_file)
      return Qnil;
    p = ctr_rb_reload_path(base);
  } else if (base->evalish) {
    p = ctr_rb_text_path(base->abs, base->len, RSTRING_PTR(script),
                         (size_t)RSTRING_LEN(script));
  } else if (!base->real_file) {
    p = ctr_rb_script_path(base, script);
  } else {
    return Qnil;
  }
  if (p == NULL)
    return Qnil;
  g_eval_registering = p;
  ctr_rb_eval_register(iseqw);
  g_eval_registering = NULL;
  RB_GC_GUARD(script);
  return Qnil;
}

static void ctr_rb_on_compiled(VALUE tpval, void *data) {
  (void)data;
  if (!ctr_client_active())
    return;
  int state = 0;
  rb_protect(ctr_rb_compiled_body, tpval, &state);
  if (state)
    rb_set_errinfo(Qnil);
}

static VALUE ctr_rb_inspect_iseq(const rb_debug_inspector_t *dc, void *arg) {
  (void)arg;
  return rb_debug_inspector_frame_iseq_get(dc, 0);
}

static ctr_rb_path_t *ctr_rb_eval_path(void) {
  VALUE iseqw = rb_debug_inspector_open(ctr_rb_inspect_iseq, NULL);
  st_data_t val;
  if (RB_TYPE_P(iseqw, T_DATA) && RTYPEDDATA_P(iseqw) &&
      st_lookup(g.evals, (st_data_t)RTYPEDDATA_DATA(iseqw), &val))
    return (ctr_rb_path_t *)val;
  return NULL;
}

/* ---- events --------------------------------------------------------------- */

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

static void ctr_rb_on_line(rb_trace_arg_t *targ, ctr_rb_stack_t *s,
                           VALUE path, ctr_rb_path_t *p) {
  long line = NUM2LONG(rb_tracearg_lineno(targ));
  if (g.vmode != CTR_WV_ALL) {
    msgpack_packer *pk = ctr_client_begin();
    if (pk == NULL)
      return;
    ctr_rb_pack_thread(pk, s);
    ctr_rb_pack_step(ctr_rb_path_id(pk, p), line);
    ctr_client_end();
    return;
  }
  ctr_rb_gather_t ga = {Qnil, Qnil, s->vals};
  bool vars = false;
  if (g.vmode == CTR_WV_ALL) {
    ctr_rb_frame_t *f = s->n ? &s->frames[s->n - 1] : NULL;
    vars = ctr_rb_frame_vars(targ, s, f, path, Qundef, &ga) &&
           ctr_rb_read_values(&ga);
  }
  msgpack_packer *pk = ctr_client_begin();
  if (pk == NULL)
    return;
  ctr_rb_pack_thread(pk, s);
  uint32_t pid = ctr_rb_path_id(pk, p);
  ctr_rb_pack_step(pid, line);
  if (g.vmode == CTR_WV_ALL) {
    uint32_t n = vars ? ctr_rb_pack_pairs(pk, ga.names, ga.vals) : 0;
    ctr_pack_vars_begin(pk, n);
    ctr_rb_append_scratch(pk);
  }
  ctr_client_end();
  RB_GC_GUARD(ga.names);
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
  VALUE m = SYMBOL_P(mid) ? rb_sym2str(mid) : rb_str_new_cstr("<main>");
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

/* Direct-mapped cache in front of g.funcs: a call-heavy loop calls the
 * same few functions, and hashing the whole key costs more than this. */
static ctr_rb_func_t *g_func_memo[CTR_RB_MEMO_SIZE];

static ctr_rb_func_t *ctr_rb_func_lookup(VALUE klass, VALUE mid, VALUE path,
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
  if (st_lookup(g.funcs, (st_data_t)&key, &val)) {
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
  st_insert(g.funcs, (st_data_t)k, (st_data_t)f);
  *memo = f;
  RB_GC_GUARD(name);
  return f;
}

static ctr_rb_func_t *ctr_rb_func_info(rb_trace_arg_t *targ, VALUE path,
                                       bool block, const ctr_rb_path_t *src) {
  return ctr_rb_func_lookup(rb_tracearg_defined_class(targ),
                            rb_tracearg_method_id(targ), path,
                            NUM2LONG(rb_tracearg_lineno(targ)), block, src);
}

/* ---- push-down ------------------------------------------------------------ */

static uint32_t ctr_rb_filter_gen(void) {
  uint32_t gen;
  ctr_client_filter(&gen);
  return gen + 1;
}

/* The daemon's decision for code of `f` (cached per filter generation). */
static int ctr_rb_func_action(ctr_rb_func_t *f, const ctr_rb_path_t *p) {
  uint32_t gen = ctr_rb_filter_gen();
  if (f->fgen != gen) {
    f->action = f->name && ctr_client_pushdown()
                    ? ctr_client_decide(p->abs, f->name)
                    : CTR_FILTER_RECORD;
    f->fgen = gen;
  }
  return f->action;
}

/* The daemon's decision for lines outside any known frame: the file rules
 * (function and module unknown, as the daemon decides them). */
static int ctr_rb_path_action(ctr_rb_path_t *p) {
  uint32_t gen;
  const ctr_filter_t *filter = ctr_client_filter(&gen);
  if (p->fgen != gen + 1) {
    p->action = ctr_filter_decide_file(ctr_client_pushdown() ? filter : NULL,
                                       p->abs, &p->uniform);
    p->fgen = gen + 1;
  }
  return p->action;
}

/* Whether every function of the file is skipped (the standard library and
 * gems by default): its frames then need no function record, which keeps
 * skipped code about as cheap as code the hook ignores. */
static bool ctr_rb_path_skips(ctr_rb_path_t *p) {
  return ctr_rb_path_action(p) == CTR_FILTER_SKIP && p->uniform;
}

/* Makes `fr` a frame the daemon knows of, deciding as it does: everything
 * below a skip-tree frame is skip-tree too. */
static void ctr_rb_enter(ctr_rb_stack_t *s, ctr_rb_frame_t *fr,
                         ctr_rb_func_t *f, const ctr_rb_path_t *p) {
  fr->func = f;
  fr->src = p;
  fr->known = true;
  fr->action = s->trees ? CTR_FILTER_SKIP_TREE : ctr_rb_func_action(f, p);
  if (fr->action == CTR_FILTER_SKIP_TREE) {
    fr->tree = true;
    s->trees++;
  }
}

/* Whether the daemon keeps a line run now, deciding as it does: a line
 * of the innermost known frame's own file (the same path text, as path
 * ids are) is kept when that frame is recorded; a line of another file
 * (a required file's top level, a class body, eval'd code) or with no
 * known frame when that file is; none below a skip-tree. */
static bool ctr_rb_line_kept(const ctr_rb_stack_t *s, ctr_rb_path_t *p) {
  for (size_t i = s->n; i-- > 0;) {
    const ctr_rb_frame_t *fr = &s->frames[i];
    if (!fr->known)
      continue;
    if (fr->action == CTR_FILTER_SKIP_TREE)
      return false;
    if (fr->src == p ||
        (fr->src->len == p->len && memcmp(fr->src->abs, p->abs, p->len) == 0))
      return fr->action == CTR_FILTER_RECORD;
    break;
  }
  return ctr_rb_path_action(p) == CTR_FILTER_RECORD;
}

/* A message left out by push-down would have switched the daemon to this
 * fiber's thread, which shows in the trace: switch it all the same. */
static void ctr_rb_note_thread(const ctr_rb_stack_t *s) {
  if (s->wire_id == g.sent_thread)
    return;
  msgpack_packer *pk = ctr_client_begin();
  if (pk == NULL)
    return;
  ctr_rb_pack_thread(pk, s);
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
  if (g.vmode != CTR_WV_NONE && (block || f->nparams > 0)) {
    args = ctr_rb_frame_vars(targ, s, fr, path, block ? Qundef : f->local_names,
                             &ga);
    if (args && !block) {
      if (f->local_names == Qundef)
        f->local_names = rb_obj_freeze(ga.names);
      /* Only the parameters, in their declared order. */
      ga.names = f->param_names;
    }
    args = args && ctr_rb_read_values(&ga);
  }

  msgpack_packer *pk = ctr_client_begin();
  if (pk == NULL)
    return;
  fr->sent = true;
  ctr_rb_pack_thread(pk, s);
  uint32_t pid = ctr_rb_path_id(pk, p);
  if (f->gen != g.gen) {
    f->id = g_next_func++;
    ctr_pack_func(pk, f->id, pid, f->key.line, f->name, f->name_len);
    f->gen = g.gen;
  }
  uint32_t n = 0;
  if (g.vmode != CTR_WV_NONE) {
    uint32_t sid = ctr__rb_varname_id(pk, "self", 4);
    ctr_pack_pair_begin(&g.scratch, sid);
    ctr__rb_value_pack(pk, &g.scratch, self);
    n = 1 + (args ? ctr_rb_pack_pairs(pk, ga.names, ga.vals) : 0);
  }
  ctr_pack_call_begin(pk, f->id, n);
  if (n > 0)
    ctr_rb_append_scratch(pk);
  ctr_client_end();
  RB_GC_GUARD(ga.names);
  RB_GC_GUARD(ga.binding);
  RB_GC_GUARD(self);
}

static void ctr_rb_on_return(rb_trace_arg_t *targ, ctr_rb_stack_t *s) {
  if (g.vmode == CTR_WV_NONE) {
    msgpack_packer *pk = ctr_client_begin();
    if (pk == NULL)
      return;
    ctr_rb_pack_thread(pk, s);
    ctr_rb_pack_return_none(pk);
    ctr_client_end();
    return;
  }
  VALUE v = rb_tracearg_return_value(targ);
  msgpack_packer *pk = ctr_client_begin();
  if (pk == NULL)
    return;
  ctr_rb_pack_thread(pk, s);
  ctr__rb_value_pack(pk, &g.scratch, v);
  ctr_pack_return_begin(pk);
  ctr_rb_append_scratch(pk);
  ctr_client_end();
  RB_GC_GUARD(v);
}

static void ctr_rb_on_raise(rb_trace_arg_t *targ, ctr_rb_stack_t *s) {
  VALUE exc = rb_tracearg_raised_exception(targ);
  VALUE cls = ctr__rb_class_name(rb_obj_class(exc));
  /* The stored message, not #message, which user code may override. */
  VALUE mesg = rb_attr_get(exc, id_mesg);
  if (!RB_TYPE_P(mesg, T_STRING))
    mesg = cls;
  msgpack_packer *pk = ctr_client_begin();
  if (pk == NULL)
    return;
  ctr_rb_pack_thread(pk, s);
  ctr_pack_raise(pk, RSTRING_PTR(cls), (size_t)RSTRING_LEN(cls),
                 RSTRING_PTR(mesg), (size_t)RSTRING_LEN(mesg));
  ctr_client_end();
  RB_GC_GUARD(exc);
  RB_GC_GUARD(cls);
  RB_GC_GUARD(mesg);
}

/* Whether a block starting now runs inside the frame that created it: the
 * innermost known frame is the block's home method on the same self. A
 * frame of code the rules skip is known too, so a block that library code
 * yields to is a call of its own (under its nearest recorded caller); only
 * frames the hook ignores (code without a path) do not count. With no
 * known frame the block must come from the top level. */
static bool ctr_rb_block_at_home(const ctr_rb_stack_t *s,
                                 const ctr_rb_frame_t *b) {
  for (size_t i = s->n - 1; i-- > 0;) {
    const ctr_rb_frame_t *f = &s->frames[i];
    if (!f->known)
      continue;
    return f->mid == b->mid && f->klass == b->klass && f->self == b->self;
  }
  return !SYMBOL_P(b->mid);
}

/* Code of a known eval string: its pseudo path, found through the iseq of
 * the running frame. Only asked for events in "(eval)"-like paths. */
static ctr_rb_path_t *ctr_rb_eval_path(void);

/* ---- resume: the live stack ------------------------------------------------ */

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
    rb_ary_push(e, rb_funcall(RARRAY_AREF(locs, i), id_lineno, 0));
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
  if (l[0] == '<' && ((l[1] >= 'a' && l[1] <= 'z') || (l[1] >= 'A' && l[1] <= 'Z')))
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
  rb_ary_push(m, rb_funcall(iseq, id_path, 0));
  rb_ary_push(m, rb_funcall(iseq, id_first_lineno, 0));
  rb_ary_push(m, rb_funcall(iseq, id_label, 0));
  return m;
}

/* Rebuilds `s` from the live Ruby stack, as the hook would have built it,
 * and sends the known frames (the ones the daemon is sent CALL for) as
 * STACK with their current lines and locals. With `entering` the innermost
 * frame is the one a call event is opening: the hook pushes it itself. */
static void ctr_rb_resync(ctr_rb_stack_t *s, bool entering) {
  s->epoch = g.epoch;
  ctr_rb_stack_clear(s);
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
    ctr_rb_frame_t *fr = ctr_rb_push(s);
    if (fr == NULL)
      break;
    fr->klass = RARRAY_AREF(e, 1);
    fr->self = RARRAY_AREF(e, 2);
    fr->block = kind == 2;
    if (kind == 1)
      fr->mid = rb_str_intern(label);
    else if (!NIL_P(fr->klass))
      fr->mid = ID2SYM(rb_intern(home));
    ctr_rb_path_t *p = ctr_rb_path_info(path);
    if (p != NULL && (p->evalish || p->reloaded)) {
      VALUE iseqw = RARRAY_AREF(e, 0);
      st_data_t val;
      if (RB_TYPE_P(iseqw, T_DATA) && RTYPEDDATA_P(iseqw) &&
          st_lookup(g.evals, (st_data_t)RTYPEDDATA_DATA(iseqw), &val))
        p = (ctr_rb_path_t *)val;
    }
    if (p == NULL || p->skip || (fr->block && ctr_rb_block_at_home(s, fr)))
      continue;
    ctr_rb_func_t *f = ctr_rb_func_lookup(
        fr->klass, fr->mid, path, FIX2LONG(RARRAY_AREF(meta, 1)), fr->block, p);
    if (f == NULL)
      continue;
    ctr_rb_enter(s, fr, f, p);
    if (fr->action != CTR_FILTER_RECORD)
      continue;
    fr->sent = true;
    ctr_rb_gather_t ga = {RARRAY_AREF(e, 3), Qnil, rb_ary_new()};
    if (g.vmode != CTR_WV_NONE && !NIL_P(ga.binding)) {
      ga.names = rb_protect(ctr_rb_names_body, ga.binding, &state);
      if (state) {
        rb_set_errinfo(Qnil);
        ga.names = Qnil;
      } else if (g.vmode == CTR_WV_ARGS && !fr->block) {
        ga.names = f->param_names;
      }
      if (!ctr_rb_read_values(&ga))
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
  msgpack_sbuffer_clear(&g.scratch_buf);
  long nsent = RARRAY_LEN(sent);
  for (long i = 0; i < nsent; i++) {
    VALUE rec = RARRAY_AREF(sent, i);
    ctr_rb_frame_t *fr = &s->frames[NUM2LONG(RARRAY_AREF(rec, 0))];
    ctr_rb_func_t *f = fr->func;
    ctr_rb_path_t *p = ctr_rb_path_info(RARRAY_AREF(rec, 4));
    uint32_t pid = ctr_rb_path_id(pk, p);
    if (f->gen != g.gen) {
      f->id = g_next_func++;
      ctr_pack_func(pk, f->id, pid, f->key.line, f->name, f->name_len);
      f->gen = g.gen;
    }
    VALUE names = RARRAY_AREF(rec, 2), vals = RARRAY_AREF(rec, 3);
    VALUE line = RARRAY_AREF(rec, 1);
    uint32_t nvars = 0;
    if (g.vmode != CTR_WV_NONE)
      nvars = 1 + (uint32_t)(NIL_P(names) ? 0 : RARRAY_LEN(vals));
    ctr_pack_frame_begin(&g.scratch, f->id, FIXNUM_P(line) ? FIX2LONG(line) : 0,
                         nvars);
    if (g.vmode != CTR_WV_NONE) {
      uint32_t sid = ctr__rb_varname_id(pk, "self", 4);
      ctr_pack_pair_begin(&g.scratch, sid);
      ctr__rb_value_pack(pk, &g.scratch, fr->self);
      if (!NIL_P(names))
        ctr_rb_pack_pairs(pk, names, vals);
    }
  }
  ctr_pack_stack_begin(pk, s->wire_id, (uint32_t)nsent);
  ctr_rb_append_scratch(pk);
  g.sent_thread = s->wire_id; /* STACK switched the daemon's thread */
  ctr_client_end();
  RB_GC_GUARD(live);
  RB_GC_GUARD(sent);
}

/* ---- hooks ---------------------------------------------------------------- */

static void ctr_rb_hook(VALUE data, rb_trace_arg_t *targ);
static void ctr_rb_wake_hook(VALUE data, rb_trace_arg_t *targ);

/* ---- fast skip-tree ------------------------------------------------------
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
  if (!g.hooked) {
    g.reduced = false;
    return;
  }
  if (on == g.reduced)
    return;
  g.reduced = on;
  rb_remove_event_hook(CTR_RB_HOOK_FN);
  rb_add_event_hook2(CTR_RB_HOOK_FN, on ? CTR_RB_TREE_EVENTS : CTR_RB_EVENTS,
                     Qnil,
                     RUBY_EVENT_HOOK_FLAG_SAFE | RUBY_EVENT_HOOK_FLAG_RAW_ARG);
}

/* Leaves the fast path for `s`: its tree's events reach the hook again. */
static void ctr_rb_tree_end(ctr_rb_stack_t *s) {
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
  ctr_rb_reduce(g.cur != NULL && g.cur->ftree != NULL &&
                g.cur->fiber == rb_fiber_current() && rb_thread_alone());
}

static VALUE ctr_rb_tree_tp_body(VALUE arg) {
  ctr_rb_func_t *f = (ctr_rb_func_t *)arg;
  VALUE um = rb_funcall(f->key.klass, id_instance_method, 1, f->key.mid);
  VALUE iseqc = rb_const_get(rb_const_get(rb_cObject, rb_intern("RubyVM")),
                             rb_intern("InstructionSequence"));
  VALUE iseq = rb_funcall(iseqc, id_of, 1, um);
  if (NIL_P(iseq))
    return Qnil;
  /* The method's own code, not a block defined as a method or another
   * method under the same name. */
  VALUE label = rb_funcall(iseq, id_label, 0);
  VALUE path = rb_funcall(iseq, id_path, 0);
  VALUE line = rb_funcall(iseq, id_first_lineno, 0);
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
        !(RB_TYPE_P(f->key.klass, T_CLASS) || RB_TYPE_P(f->key.klass, T_MODULE)))
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
  rb_hash_aset(opts, ID2SYM(id_target), f->tree_iseq);
  return rb_funcallv_kw(f->tree_tp, id_enable, 1, &opts, RB_PASS_KEYWORDS);
}

/* Called when the method frame just pushed on `s` opened a skip-tree. */
static void ctr_rb_tree_begin(ctr_rb_stack_t *s, ctr_rb_func_t *f) {
  if (!g.hooked || s->ftree != NULL || s->nested > 0 || f->tree_stack != NULL ||
      !rb_thread_alone() || !ctr_rb_tree_tp(f))
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

/* Paused: only the wake hook stays. The shadow stacks are dropped; they
 * are rebuilt from the live stack on resume. */
static void ctr_rb_hooks_pause(void) {
  if (!g.hooked)
    return;
  g.hooked = false;
  rb_remove_event_hook(CTR_RB_HOOK_FN);
  rb_add_event_hook2(CTR_RB_WAKE_HOOK_FN, CTR_RB_WAKE_EVENTS, Qnil,
                     RUBY_EVENT_HOOK_FLAG_SAFE | RUBY_EVENT_HOOK_FLAG_RAW_ARG);
  for (ctr_rb_stack_t *s = g.stacks; s; s = s->next)
    ctr_rb_stack_clear(s);
}

static void ctr_rb_hooks_resume(void) {
  if (g.hooked)
    return;
  g.hooked = true;
  rb_remove_event_hook(CTR_RB_WAKE_HOOK_FN);
  rb_add_event_hook2(CTR_RB_HOOK_FN, CTR_RB_EVENTS, Qnil,
                     RUBY_EVENT_HOOK_FLAG_SAFE | RUBY_EVENT_HOOK_FLAG_RAW_ARG);
  /* Every stack went stale while unhooked: each is rebuilt (and sent) on
   * its fiber's next event. This is the RESUME's STACK. */
  (void)ctr_client_take_resume();
  g.epoch++;
  g.cur = NULL; /* fibers switched unseen while paused */
}

/* Before anything is sent: after a RESUME this fiber's stack goes out
 * first. Call with the client active. */
static void ctr_rb_sync_slow(ctr_rb_stack_t *s, bool entering) {
  if (!g.hooked)
    ctr_rb_hooks_resume();
  if (ctr_client_take_resume())
    g.epoch++;
  if (s->epoch != g.epoch)
    ctr_rb_resync(s, entering);
}

/* Runs on every event: nothing to do unless paused, resumed or stale. */
static inline void ctr_rb_sync(ctr_rb_stack_t *s, bool entering) {
  if (g.hooked && s->epoch == g.epoch) {
    if (!ctr_client_take_resume())
      return;
    g.epoch++;
  }
  ctr_rb_sync_slow(s, entering);
}

/* The root TracePoint of a fast tree: its method returns, maybe from a
 * recursive call or in another fiber. */
static void ctr_rb_tree_return(VALUE tpval, void *data) {
  ctr_rb_func_t *f = data;
  ctr_rb_stack_t *s = f->tree_stack;
  if (s == NULL || s->fiber != rb_fiber_current() ||
      ctr_rb_depth() != s->fdepth)
    return;
  ctr_rb_tree_end(s);
  if (!ctr_client_active()) {
    ctr_rb_hooks_pause();
    return;
  }
  ctr_rb_check_generation();
  g.cur = s;
  ctr_rb_sync(s, false);
  rb_trace_arg_t *targ = rb_tracearg_from_tracepoint(tpval);
  if (s->n > 0 && s->frames[s->n - 1].known && !s->frames[s->n - 1].sent)
    ctr_client_filtered(1);
  if (ctr_rb_pop(s))
    ctr_rb_on_return(targ, s);
  if (s->n == 0 && s->nested == 0 && s->fiber != g.main_fiber)
    ctr_rb_stack_free(s);
}

static void ctr_rb_hook(VALUE data, rb_trace_arg_t *targ) {
  rb_event_flag_t ev = rb_tracearg_event_flag(targ);
  if (ev == RUBY_EVENT_THREAD_END) {
    ctr_rb_stacks_drop_thread(rb_thread_current());
    return;
  }
  if (ev == RUBY_EVENT_FIBER_SWITCH || ev == RUBY_EVENT_THREAD_BEGIN) {
    g.cur = NULL;
    if (g.ftrees > 0) {
      (void)ctr_rb_stack_get();
      ctr_rb_tree_balance();
    }
    return;
  }
  if (g.loader != 0) {
    /* The rest of the require that loaded the shim: not the program. */
    if (ev == RUBY_EVENT_RETURN && ctr_rb_frame_id() == g.loader)
      g.loader = 0;
    return;
  }
  if (!ctr_client_active()) {
    ctr_rb_hooks_pause();
    return;
  }
  /* Before any pop: after fork, frames of the parent's trace are no
   * longer "sent" in the child's. */
  ctr_rb_check_generation();
  ctr_rb_stack_t *s = ctr_rb_stack_get();
  if (s == NULL)
    return;
  bool call = ev == RUBY_EVENT_CALL || ev == RUBY_EVENT_B_CALL;
  ctr_rb_sync(s, call);
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
    if (ctr_rb_pop(s))
      ctr_rb_on_return(targ, s);
    /* A fiber other than the main one whose stack empties has finished
     * (or is between two runs that open fresh frames): release it. */
    if (s->n == 0 && s->nested == 0 && s->fiber != g.main_fiber)
      ctr_rb_stack_free(s);
    return;
  }
  VALUE path = rb_tracearg_path(targ);
  ctr_rb_path_t *p = RB_TYPE_P(path, T_STRING) ? ctr_rb_path_info(path) : NULL;
  if (p != NULL && (p->evalish || p->reloaded)) {
    ctr_rb_path_t *e = ctr_rb_eval_path();
    if (e != NULL)
      p = e;
  }
  bool record = p != NULL && !p->skip;
  switch (ev) {
  case RUBY_EVENT_CALL:
  case RUBY_EVENT_B_CALL: {
    ctr_rb_frame_t *fr = ctr_rb_push(s);
    if (fr == NULL)
      return;
    fr->klass = rb_tracearg_defined_class(targ);
    fr->mid = rb_tracearg_method_id(targ);
    fr->self = rb_tracearg_self(targ);
    fr->block = ev == RUBY_EVENT_B_CALL;
    if (!record || (fr->block && ctr_rb_block_at_home(s, fr)))
      break;
    if (ctr_rb_path_skips(p)) {
      fr->src = p;
      fr->known = true;
      fr->action = CTR_FILTER_SKIP;
      ctr_rb_note_thread(s);
      ctr_client_filtered(1);
      break;
    }
    ctr_rb_func_t *f = ctr_rb_func_info(targ, path, fr->block, p);
    if (f == NULL)
      break;
    ctr_rb_enter(s, fr, f, p);
    if (fr->action == CTR_FILTER_RECORD) {
      ctr_rb_on_call(targ, s, fr, f, path, p, fr->block);
    } else {
      ctr_rb_note_thread(s);
      ctr_client_filtered(1);
      if (fr->tree && s->trees == 1 && ev == RUBY_EVENT_CALL)
        ctr_rb_tree_begin(s, f);
    }
    break;
  }
  case RUBY_EVENT_LINE:
    if (!record)
      break;
    if (ctr_rb_line_kept(s, p)) {
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
static void ctr_rb_wake_hook(VALUE data, rb_trace_arg_t *targ) {
  if (rb_tracearg_event_flag(targ) == RUBY_EVENT_THREAD_END) {
    ctr_rb_stacks_drop_thread(rb_thread_current());
    return;
  }
  if (!ctr_client_active())
    return;
  ctr_rb_hooks_resume();
  ctr_rb_hook(data, targ);
}

static void ctr_rb_empty_hook(VALUE data, rb_trace_arg_t *targ) {
  (void)data;
  (void)targ;
}

/* ---- output ----------------------------------------------------------------- */

/* Objects are not shared between Ractors, but a prepended method is: code
 * running in another Ractor must never touch the shim's state. */
static bool ctr_rb_main_ractor(void) {
  return rb_ractor_local_storage_ptr(g.main_key) != NULL;
}

static void ctr_rb_record_output(int kind, const char *s, size_t n) {
  if (n == 0)
    return;
  ctr_rb_check_generation();
  ctr_rb_stack_t *st = ctr_rb_stack_get();
  if (st != NULL && ctr_client_active())
    ctr_rb_sync(st, false);
  msgpack_packer *pk = ctr_client_begin();
  if (pk == NULL)
    return;
  ctr_rb_pack_thread(pk, st);
  do {
    size_t k = n > CTR_RB_EVENT_CHUNK ? CTR_RB_EVENT_CHUNK : n;
    ctr_pack_event(pk, kind, s, k);
    s += k;
    n -= k;
  } while (n > 0);
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
  if (!ctr_client_active() || !ctr_rb_main_ractor())
    return rb_call_super(argc, argv);
  VALUE strs = rb_ary_new_capa(argc);
  for (int i = 0; i < argc; i++)
    rb_ary_push(strs, rb_obj_as_string(argv[i]));
  VALUE r = rb_call_super(argc, RARRAY_CONST_PTR(strs));
  /* puts writes the text and its newline in one call: one event. */
  VALUE all = argc == 1 ? RARRAY_AREF(strs, 0) : rb_str_buf_new(0);
  for (int i = 0; argc > 1 && i < argc; i++) {
    VALUE si = RARRAY_AREF(strs, i);
    rb_str_buf_cat(all, RSTRING_PTR(si), RSTRING_LEN(si)); /* bytes, no re-encoding */
  }
  ctr_rb_record_output(ctr_rb_output_kind(self), RSTRING_PTR(all),
                       (size_t)RSTRING_LEN(all));
  RB_GC_GUARD(strs);
  RB_GC_GUARD(all);
  return r;
}

/* IO#syswrite bypasses #write: recorded here, as many bytes as it wrote. */
static VALUE ctr_rb_syswrite(VALUE self, VALUE str) {
  if (!ctr_client_active() || !ctr_rb_main_ractor())
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
      ctr_rb_main_ractor() && rb_gv_get("$stderr") == g.stderr_obj)
    ctr_rb_record_output(CTR_EV_WRITE_OTHER, RSTRING_PTR(argv[0]),
                         (size_t)RSTRING_LEN(argv[0]));
  return r;
}

/* ---- start and exit ----------------------------------------------------- */

/* Ends the session: no events after this one. */
static void ctr_rb_finish(int64_t status) {
  rb_remove_event_hook(CTR_RB_HOOK_FN);
  rb_remove_event_hook(CTR_RB_WAKE_HOOK_FN);
  ctr_client_finish(status);
}

static VALUE ctr_rb_full_message_body(VALUE err) {
  VALUE opts = rb_hash_new();
  VALUE tty = rb_funcall(g.stderr_obj, rb_intern("tty?"), 0);
  rb_hash_aset(opts, ID2SYM(id_highlight), RTEST(tty) ? Qtrue : Qfalse);
  rb_hash_aset(opts, ID2SYM(id_order), ID2SYM(id_top));
  return rb_funcall_with_block_kw(err, id_full_message, 1, &opts, Qnil,
                                  RB_PASS_KEYWORDS);
}

/* Ruby prints the message of an uncaught exception after the last at_exit
 * handler, straight to file descriptor 2: record the same text now. A
 * SignalException (SIGTERM...) ends the process silently. */
static void ctr_rb_record_uncaught(VALUE err) {
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

static void ctr_rb_end(VALUE data) {
  int64_t status = 0;
  VALUE err = rb_gv_get("$!");
  if (!NIL_P(err)) {
    status = 1;
    if (rb_obj_is_kind_of(err, rb_eSystemExit)) {
      VALUE st = rb_attr_get(err, id_status);
      if (FIXNUM_P(st))
        status = FIX2LONG(st);
    } else {
      if (rb_obj_is_kind_of(err, rb_eSignal)) {
        VALUE signo = rb_attr_get(err, id_signo);
        if (FIXNUM_P(signo))
          status = 128 + FIX2LONG(signo);
      }
      rb_remove_event_hook(CTR_RB_HOOK_FN);
      rb_remove_event_hook(CTR_RB_WAKE_HOOK_FN);
      g.hooked = true; /* no hook may come back for the last output */
      ctr_rb_record_uncaught(err);
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
  if (ctr_rb_main_ractor())
    ctr_rb_finish(status);
  return rb_call_super(argc, argv);
}

/* Process.daemon forks, and the parent leaves with _exit at once: the
 * parent's session is ended from the fork handler below. */
static VALUE ctr_rb_daemon(int argc, VALUE *argv, VALUE self) {
  g.daemonize = ctr_rb_main_ractor();
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
  g.cur = NULL;
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
    if (RSTRING_PTR(prog)[0] == '/') {
      abs = rb_str_dup(prog);
    } else if (RSTRING_PTR(prog)[0] == '-') {
      /* ruby -e and ruby - (stdin): the command, not a lone "-e", names
       * the program and its trace folder. */
      abs = rb_str_new_cstr("ruby ");
      rb_str_append(abs, prog);
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

/* Prepends a module with one C method to `target` (public or private). */
static void ctr_rb_wrap(VALUE target, const char *name, VALUE (*fn)(ANYARGS),
                        int arity, bool private) {
  VALUE m = rb_module_new();
  if (private)
    rb_define_private_method(m, name, fn, arity);
  else
    rb_define_method(m, name, fn, arity);
  rb_gc_register_mark_object(m);
  rb_prepend_module(target, m);
}

__attribute__((visibility("default"))) void Init_ctrec(void) {
  if (g.on)
    return;
  if (ctr_rb_env_is("CTREC_BENCH_EMPTY_HOOK", "1")) {
    g.on = true;
    rb_add_event_hook2(CTR_RB_EMPTY_HOOK_FN, CTR_RB_EVENTS, Qnil,
                       RUBY_EVENT_HOOK_FLAG_SAFE | RUBY_EVENT_HOOK_FLAG_RAW_ARG);
    return;
  }
  id_local_variables = rb_intern("local_variables");
  id_local_variable_get = rb_intern("local_variable_get");
  id_instance_method = rb_intern("instance_method");
  id_parameters = rb_intern("parameters");
  id_attached = rb_intern("__attached__");
  id_mesg = rb_intern("mesg");
  id_status = rb_intern("status");
  id_full_message = rb_intern("full_message");
  id_highlight = rb_intern("highlight");
  id_order = rb_intern("order");
  id_top = rb_intern("top");
  id_eval_script = rb_intern("eval_script");
  id_instruction_sequence = rb_intern("instruction_sequence");
  id_each_child = rb_intern("each_child");
  id_signo = rb_intern("signo");
  id_label = rb_intern("label");
  id_path = rb_intern("path");
  id_first_lineno = rb_intern("first_lineno");
  id_lineno = rb_intern("lineno");
  id_enable = rb_intern("enable");
  id_target = rb_intern("target");
  id_of = rb_intern("of");
  if (ctr_rb_start_client() != 0)
    return; /* unset: silent; failed: libctrec printed one line */
  g.on = true;
  g.vmode = ctr_client_values();

  int state = 0;
  ctr__rb_main_obj = rb_protect(ctr_rb_main_body, Qnil, &state);
  if (state) {
    rb_set_errinfo(Qnil);
    ctr__rb_main_obj = Qundef;
  }
  g.paths = st_init_numtable();
  g.funcs = st_init_table(&ctr_rb_fkey_type);
  g.evals = st_init_numtable();
  g.eval_iseqs = rb_ary_new();
  rb_gc_register_mark_object(g.eval_iseqs);
  g.eval_texts = st_init_table(&ctr_rb_key_type);
  g.eval_overflow = calloc(1, sizeof *g.eval_overflow);
  if (g.eval_overflow != NULL) {
    static const char note[] =
        "The program evaluated more distinct strings than ctrec keeps the "
        "source of; the lines of the later ones are shown under this path.\n";
    g.eval_overflow->abs = strdup(CTR_RB_EVAL_OVERFLOW);
    g.eval_overflow->len = strlen(CTR_RB_EVAL_OVERFLOW);
    g.eval_overflow->text = (char *)note;
    g.eval_overflow->text_len = sizeof note - 1;
    if (g.eval_overflow->abs == NULL)
      g.eval_overflow = NULL;
  }
  /* Ruby calls a data object's mark function only when its pointer is
   * set, hence &g. */
  g.keep = TypedData_Wrap_Struct(0, &ctr_rb_keep_type, &g);
  rb_gc_register_mark_object(g.keep);
  msgpack_sbuffer_init(&g.scratch_buf);
  msgpack_packer_init(&g.scratch, &g.scratch_buf, msgpack_sbuffer_write);
  g.sent_thread = UINT64_MAX;
  g_varname_by_id = st_init_numtable();
  g_type_by_class = st_init_numtable();
  g_type_by_lit = st_init_numtable();
  g_type_classes = rb_ary_new();
  rb_gc_register_mark_object(g_type_classes);
  ctr_rb_check_generation();
  g.main_fiber = rb_fiber_current();
  g.loader = ctr_rb_loader_frame();
  g.main_key = rb_ractor_local_storage_ptr_newkey(NULL);
  rb_ractor_local_storage_ptr_set(g.main_key, &g);

  /* Anonymous modules: the program sees no new constant. */
  g.stdout_obj = rb_stdout;
  g.stderr_obj = rb_stderr;
  VALUE outs[2] = {rb_singleton_class(g.stdout_obj),
                   rb_singleton_class(g.stderr_obj)};
  for (int i = 0; i < 2; i++) {
    ctr_rb_wrap(outs[i], "write", RUBY_METHOD_FUNC(ctr_rb_write), -1, false);
    ctr_rb_wrap(outs[i], "syswrite", RUBY_METHOD_FUNC(ctr_rb_syswrite), 1,
                false);
  }
  if (rb_const_defined(rb_cObject, rb_intern("Warning"))) {
    VALUE warning = rb_const_get(rb_cObject, rb_intern("Warning"));
    ctr_rb_wrap(rb_singleton_class(warning), "warn",
                RUBY_METHOD_FUNC(ctr_rb_warn), -1, false);
  }
  ctr_rb_wrap(rb_mKernel, "exit!", RUBY_METHOD_FUNC(ctr_rb_exit_bang), -1,
              true);
  ctr_rb_wrap(rb_singleton_class(rb_mKernel), "exit!",
              RUBY_METHOD_FUNC(ctr_rb_exit_bang), -1, false);
  ctr_rb_wrap(rb_singleton_class(rb_mProcess), "exit!",
              RUBY_METHOD_FUNC(ctr_rb_exit_bang), -1, false);
  ctr_rb_wrap(rb_singleton_class(rb_mProcess), "daemon",
              RUBY_METHOD_FUNC(ctr_rb_daemon), -1, false);
  pthread_atfork(NULL, ctr_rb_atfork_parent, ctr_rb_atfork_child);

  VALUE tp = rb_tracepoint_new(0, RUBY_EVENT_SCRIPT_COMPILED,
                               ctr_rb_on_compiled, NULL);
  rb_gc_register_mark_object(tp);
  rb_tracepoint_enable(tp);

  rb_set_end_proc(ctr_rb_end, Qnil);
  g.hooked = true;
  rb_add_event_hook2(CTR_RB_HOOK_FN, CTR_RB_EVENTS, Qnil,
                     RUBY_EVENT_HOOK_FLAG_SAFE | RUBY_EVENT_HOOK_FLAG_RAW_ARG);
}
