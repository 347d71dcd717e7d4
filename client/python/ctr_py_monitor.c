/* ctr_py_monitor.c: the sys.monitoring side of the Python shim (3.12+).
 *
 * On CPython 3.12 and later the shim records through sys.monitoring (PEP
 * 669) instead of a trace function: a trace function switches off the
 * interpreter's specialised instructions everywhere, while monitoring
 * events cost something only where they are switched on. The shim takes
 * one tool id and registers C callbacks (builtin functions, called through
 * vectorcall). The events are matched here to the recorder's shadow
 * stack and handed to ctr_py_trace.c, which shares everything else
 * (values, interning, STACK) with the 3.11 trace function.
 *
 * Globally only PY_START and the events that cannot be set per code object
 * (PY_UNWIND, PY_THROW, RAISE) are on. The first PY_START of a code object
 * decides it: code the shim follows gets its local events (PY_RESUME,
 * PY_RETURN, PY_YIELD, LINE, JUMP); any other code returns DISABLE and is
 * never reported again, so the standard library and code that push-down
 * skips run at full speed. JUMP exists only to report what sys.settrace
 * reports as a line event: a loop jumping back within one line.
 *
 * While the daemon has paused the session every event is off, the global
 * ones and each followed code object's own, which is why those code
 * objects are kept in a list (unlinked when CPython frees one). */
#include "ctr_py.h" /* Python.h first, as CPython requires */

#if CTR_PY_MONITORING

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Jumps back within one line remembered per code object. */
#define CTR_PY_MON_JUMPS 2

struct ctr_py_mon_code_s {
  PyCodeObject *co; /* borrowed: the code object's own extra slot owns us */
  ctr_py_mon_code_t *prev;
  ctr_py_mon_code_t *next;
  /* Jumps back within one line, with that line: a comprehension's loop
   * (inlined since 3.12) takes one at every element, and PyCode_Addr2Line
   * reads the line table from its start each time. */
  struct {
    int from, to, line;
  } jumps[CTR_PY_MON_JUMPS];
  unsigned njumps; /* entries in use; the next one replaced is njumps % N */
};

enum {
  CTR_PY_EV_START,
  CTR_PY_EV_RESUME,
  CTR_PY_EV_RETURN,
  CTR_PY_EV_YIELD,
  CTR_PY_EV_UNWIND,
  CTR_PY_EV_THROW,
  CTR_PY_EV_RAISE,
  CTR_PY_EV_LINE,
  CTR_PY_EV_JUMP,
  CTR_PY_EV_COUNT
};

static const char *const ctr_py_ev_names[CTR_PY_EV_COUNT] = {
    "PY_START", "PY_RESUME", "PY_RETURN", "PY_YIELD", "PY_UNWIND",
    "PY_THROW", "RAISE",     "LINE",      "JUMP"};

static struct {
  PyObject *mon;     /* sys.monitoring */
  PyObject *disable; /* sys.monitoring.DISABLE */
  long bits[CTR_PY_EV_COUNT];
  long global;      /* events on for all code */
  long local;       /* events on for followed code */
  int tool;         /* the recorder's tool id, or -1 */
  int empty_tool;   /* the benchmark's, or -1 */
  bool on;          /* events are on (not paused, not stopped) */
  bool said;        /* the "tool ids taken" line was printed */
  ctr_py_mon_code_t *codes;
} m = {.tool = -1, .empty_tool = -1};

/* ---- sys.monitoring calls ------------------------------------------------- */

/* Looks sys.monitoring and its constants up once. */
static int ctr_py_mon_init(void) {
  if (m.mon != NULL)
    return 0;
  PyObject *mon = PySys_GetObject("monitoring"); /* borrowed */
  PyObject *events = mon ? PyObject_GetAttrString(mon, "events") : NULL;
  PyObject *disable = mon ? PyObject_GetAttrString(mon, "DISABLE") : NULL;
  int rc = events && disable ? 0 : CTR_ESTATE;
  for (int i = 0; rc == 0 && i < CTR_PY_EV_COUNT; i++) {
    PyObject *v = PyObject_GetAttrString(events, ctr_py_ev_names[i]);
    m.bits[i] = v ? PyLong_AsLong(v) : -1;
    if (m.bits[i] <= 0)
      rc = CTR_ESTATE;
    Py_XDECREF(v);
  }
  Py_XDECREF(events);
  if (rc != 0) {
    Py_XDECREF(disable);
    PyErr_Clear();
    return rc;
  }
  Py_INCREF(mon);
  m.mon = mon;
  m.disable = disable;
  m.global = m.bits[CTR_PY_EV_START] | m.bits[CTR_PY_EV_UNWIND] |
             m.bits[CTR_PY_EV_THROW] | m.bits[CTR_PY_EV_RAISE];
  m.local = m.bits[CTR_PY_EV_RESUME] | m.bits[CTR_PY_EV_RETURN] |
            m.bits[CTR_PY_EV_YIELD] | m.bits[CTR_PY_EV_LINE] |
            m.bits[CTR_PY_EV_JUMP];
  return 0;
}

/* Calls sys.monitoring.<name>(args...); 0 or CTR_ESTATE (error cleared). */
static int ctr_py_mon_call(const char *name, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  PyObject *fn = PyObject_GetAttrString(m.mon, name);
  PyObject *args = fn ? Py_VaBuildValue(fmt, ap) : NULL;
  va_end(ap);
  PyObject *r = NULL;
  if (args != NULL)
    r = PyTuple_Check(args) ? PyObject_Call(fn, args, NULL)
                            : PyObject_CallOneArg(fn, args);
  Py_XDECREF(args);
  Py_XDECREF(fn);
  if (r == NULL) {
    PyErr_Clear();
    return CTR_ESTATE;
  }
  Py_DECREF(r);
  return 0;
}

static void ctr_py_mon_local(PyCodeObject *co, long events) {
  ctr_py_mon_call("set_local_events", "(iOl)", m.tool, (PyObject *)co,
                  events);
}

/* The first free tool id, taken; -1 when all are in use. Ids 3 and 4 are
 * the ones CPython assigns to no kind of tool, so a debugger (0), coverage
 * tool (1), profiler (2, cProfile) or optimizer (5) the program starts
 * later still finds its own id free. */
static int ctr_py_mon_take(const char *name) {
  static const int ids[] = {4, 3, 0, 2, 1, 5};
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
    if (ctr_py_mon_call("use_tool_id", "(is)", ids[i], name) == 0)
      return ids[i];
  return -1;
}

/* ---- events ---------------------------------------------------------------- */

/* Frames between a followed frame and its nearest followed caller are at
 * most this many deep before the caller is taken as it stands. */
#define CTR_PY_WALK_MAX 64

/* The caller `frame` is entered under, as the trace function would see it
 * on its shadow stack. Only frames of followed code are on the stack here,
 * so the frames between the current top and `frame` (code that reports no
 * events: the standard library, skipped code) are decided again, outermost
 * first, each with the one outside it as its caller; that is how a
 * skip-tree frame in between still keeps its callees out. *tmp holds the
 * result when it is not the top itself. */
static const ctr_py_frame_t *ctr_py_mon_caller(ctr_py_thread_t *t,
                                               ctr_py_frame_t *tmp) {
  ctr_py_frame_t *top = ctr__py_top(t);
  const void *caller = ctr__py_caller_id();
  if (caller == NULL || (top != NULL && top->frame == caller))
    return top;
  /* Rare: frame objects for the walk. */
  PyFrameObject *frame = PyEval_GetFrame();
  PyFrameObject *back = frame != NULL ? PyFrame_GetBack(frame) : NULL;
  PyFrameObject *between[CTR_PY_WALK_MAX];
  size_t n = 0;
  bool found = false;
  for (PyFrameObject *f = back; f != NULL;) {
    if ((top != NULL && top->frame == ctr__py_frame_id(f)) ||
        n == CTR_PY_WALK_MAX) {
      found = true;
      Py_DECREF(f);
      break;
    }
    between[n++] = f; /* owns the reference */
    f = PyFrame_GetBack(f);
  }
  /* Not found: the stack holds nothing of this thread's live callers. */
  const ctr_py_frame_t *cur = found ? top : NULL;
  for (size_t k = n; k-- > 0;) {
    PyCodeObject *co = PyFrame_GetCode(between[k]);
    ctr_py_code_t *ci = ctr__py_code_info(co);
    bool send;
    tmp->flags = ctr__py_classify(cur, between[k], co, ci, &send);
    tmp->code = ci;
    tmp->co = co;
    tmp->frame = ctr__py_frame_id(between[k]);
    cur = tmp;
    Py_DECREF(co);
    Py_DECREF(between[k]);
  }
  return cur;
}

/* New code rules: code switched off under the old ones may be recorded
 * now, so every location it disabled reports again once. */
/* Filter generation the followed code was decided for, +1. */
static uint32_t g_mon_rules_gen;

static void ctr_py_mon_check_rules(void) {
  uint32_t gen;
  ctr_client_filter(&gen);
  if (gen + 1 == g_mon_rules_gen)
    return;
  if (g_mon_rules_gen != 0)
    ctr__py_mon_restart();
  g_mon_rules_gen = gen + 1;
}

static bool ctr_py_mon_start(PyCodeObject *co) {
  if (!ctr__py_trace_on())
    return false;
  ctr_py_thread_t *t = ctr__py_thread();
  if (t == NULL || t->in_pack)
    return false;
  ctr_py_mon_check_rules();
  ctr_py_code_t *ci = ctr__py_code_info(co);
  if (!ctr__py_mon_follow(co, ci)) {
    /* Push-down skips the program's code for good: only its first call
     * is counted as filtered, the rest never reach the shim. */
    if (ci != NULL && !ci->skip && !ci->path->lib)
      ctr_client_filtered(2);
    return true;
  }
  ctr_py_err_t err;
  ctr__py_err_save(&err);
  /* The frame is named by its identity: making a frame object for every
   * call costs more than the event. */
  if (ctr__py_ready(t, NULL, true)) {
    ctr_py_frame_t tmp;
    ctr__py_on_call(t, NULL, co, ci, ctr_py_mon_caller(t, &tmp));
  }
  ctr__py_err_restore(&err);
  return false;
}

/* The shadow-stack entry of the current frame, of code `co`, or NULL when
 * the frame is not on the stack. Entries above it belong to frames that
 * left without an event (code switched off while they ran) and go. */
static ctr_py_frame_t *ctr_py_mon_current(ctr_py_thread_t *t,
                                          PyCodeObject *co) {
  ctr_py_frame_t *top = ctr__py_top(t);
  if (top == NULL)
    return NULL;
  if (top->co == co)
    return top;
  ctr_py_code_t *ci = ctr__py_code_info(co);
  if (ci == NULL || ci->mon == NULL)
    return NULL;
  const void *frame = ctr__py_frame_id(NULL);
  for (size_t i = t->n; i-- > 0;) {
    if (t->stack[i].frame == frame) {
      t->n = i + 1;
      return &t->stack[i];
    }
  }
  return NULL;
}

static void ctr_py_mon_end(PyCodeObject *co, PyObject *value) {
  if (!ctr__py_trace_on())
    return;
  ctr_py_thread_t *t = ctr__py_thread();
  if (t == NULL || t->in_pack || ctr_py_mon_current(t, co) == NULL)
    return;
  ctr_py_err_t err;
  ctr__py_err_save(&err);
  /* No frame object: making one for every frame costs more than the
   * event; the current frame is found when needed. */
  if (ctr__py_ready(t, NULL, false))
    ctr__py_on_return(t, NULL, value);
  ctr__py_err_restore(&err);
}

/* A line by the general path (ctr__py_mon_line's quick one declined). */
static __attribute__((noinline)) void ctr_py_mon_line_slow(ctr_py_thread_t *t,
                                                           PyCodeObject *co,
                                                           int line) {
  ctr_py_frame_t *top;
  ctr_py_err_t err;
  ctr__py_err_save(&err);
  if (ctr__py_ready(t, NULL, false)) {
    top = ctr__py_top(t); /* a resume rebuilds the stack */
    if (top != NULL && top->co == co && (top->flags & CTR_PY_F_SENT))
      ctr__py_on_line(t, NULL, top->code, line);
  }
  ctr__py_err_restore(&err);
}

static void ctr_py_mon_line(PyCodeObject *co, int line) {
  if (!ctr__py_trace_on())
    return;
  ctr_py_thread_t *t = ctr__py_thread();
  if (t == NULL || t->in_pack)
    return;
  ctr_py_frame_t *top = ctr__py_top(t);
  if (top == NULL || top->co != co || !(top->flags & CTR_PY_F_SENT) ||
      ctr__py_quick_line(t, top, line))
    return;
  ctr_py_mon_line_slow(t, co, line);
}

/* The line of a jump back from `from` to `to` within one line, -1 for
 * any other jump. A code object's bytecode never changes, so what was
 * found once holds. */
static int ctr_py_mon_jump_line(PyCodeObject *co, int from, int to) {
  ctr_py_code_t *ci = ctr__py_code_info(co);
  ctr_py_mon_code_t *c = ci != NULL ? ci->mon : NULL;
  unsigned n = c == NULL                   ? 0
               : c->njumps < CTR_PY_MON_JUMPS ? c->njumps
                                              : CTR_PY_MON_JUMPS;
  for (unsigned i = 0; i < n; i++)
    if (c->jumps[i].from == from && c->jumps[i].to == to)
      return c->jumps[i].line;
  int line = PyCode_Addr2Line(co, to);
  if (line < 0 || line != PyCode_Addr2Line(co, from))
    return -1;
  if (c != NULL) {
    unsigned i = c->njumps++ % CTR_PY_MON_JUMPS;
    c->jumps[i].from = from;
    c->jumps[i].to = to;
    c->jumps[i].line = line;
  }
  return line;
}

static bool ctr_py_mon_jump(PyCodeObject *co, int from, int to) {
  /* sys.settrace reports a line again when a loop jumps back within one
   * line; any other jump is covered by LINE, so its location goes quiet. */
  if (to > from)
    return true;
  int line = ctr_py_mon_jump_line(co, from, to);
  if (line < 0)
    return true;
  ctr_py_mon_line(co, line);
  return false;
}

static void ctr_py_mon_raise(PyCodeObject *co, PyObject *exc) {
  if (!ctr__py_trace_on())
    return;
  ctr_py_thread_t *t = ctr__py_thread();
  if (t == NULL || t->in_pack)
    return;
  ctr_py_err_t err;
  ctr__py_err_save(&err);
  PyFrameObject *frame = PyEval_GetFrame();
  if (frame != NULL && ctr__py_ready(t, frame, false)) {
    ctr_py_frame_t *top = ctr__py_top(t), tmp = {0};
    const ctr_py_frame_t *where = top;
    if (top == NULL || top->co != co) {
      /* A frame of code that reports no events: the program's only when
       * push-down skips it. */
      ctr_py_code_t *ci = ctr__py_code_info(co);
      tmp.code = ci;
      tmp.flags = ci != NULL && !ci->skip && !ci->pseudo && !ci->path->lib
                      ? CTR_PY_F_PROG
                      : 0;
      where = &tmp;
    }
    PyObject *tb = PyException_GetTraceback(exc);
    ctr__py_on_exception(t, where, exc, tb);
    Py_XDECREF(tb);
  }
  ctr__py_err_restore(&err);
}

/* ---- callbacks ------------------------------------------------------------ */

static PyObject *ctr_py_mon_result(bool disable) {
  PyObject *r = disable ? m.disable : Py_None;
  Py_INCREF(r);
  return r;
}

#define CTR_PY_CODE_ARG(n)                                                   \
  if (nargs < (n) || !PyCode_Check(args[0]))                                 \
    Py_RETURN_NONE;                                                          \
  PyCodeObject *co = (PyCodeObject *)args[0]

static PyObject *ctr_py_cb_start(PyObject *self, PyObject *const *args,
                                 Py_ssize_t nargs) {
  CTR_PY_CODE_ARG(2);
  return ctr_py_mon_result(ctr_py_mon_start(co));
}

/* PY_THROW resumes a generator like PY_RESUME, but is not a local event:
 * CPython does not accept DISABLE from it. */
static PyObject *ctr_py_cb_throw(PyObject *self, PyObject *const *args,
                                 Py_ssize_t nargs) {
  CTR_PY_CODE_ARG(3);
  ctr_py_mon_start(co);
  Py_RETURN_NONE;
}

static PyObject *ctr_py_cb_return(PyObject *self, PyObject *const *args,
                                  Py_ssize_t nargs) {
  CTR_PY_CODE_ARG(3);
  ctr_py_mon_end(co, args[2]);
  Py_RETURN_NONE;
}

static PyObject *ctr_py_cb_unwind(PyObject *self, PyObject *const *args,
                                  Py_ssize_t nargs) {
  CTR_PY_CODE_ARG(3);
  ctr_py_mon_end(co, NULL);
  Py_RETURN_NONE;
}

static PyObject *ctr_py_cb_raise(PyObject *self, PyObject *const *args,
                                 Py_ssize_t nargs) {
  CTR_PY_CODE_ARG(3);
  ctr_py_mon_raise(co, args[2]);
  Py_RETURN_NONE;
}

static PyObject *ctr_py_cb_line(PyObject *self, PyObject *const *args,
                                Py_ssize_t nargs) {
  CTR_PY_CODE_ARG(2);
  long line = PyLong_AsLong(args[1]);
  if (line == -1 && PyErr_Occurred())
    PyErr_Clear();
  else
    ctr_py_mon_line(co, (int)line);
  Py_RETURN_NONE;
}

static PyObject *ctr_py_cb_jump(PyObject *self, PyObject *const *args,
                                Py_ssize_t nargs) {
  CTR_PY_CODE_ARG(3);
  long from = PyLong_AsLong(args[1]);
  long to = PyLong_AsLong(args[2]);
  if (PyErr_Occurred()) {
    PyErr_Clear();
    Py_RETURN_NONE;
  }
  return ctr_py_mon_result(ctr_py_mon_jump(co, (int)from, (int)to));
}

static PyObject *ctr_py_cb_empty(PyObject *self, PyObject *const *args,
                                 Py_ssize_t nargs) {
  Py_RETURN_NONE;
}

#define CTR_PY_CB(name, fn)                                                  \
  {name, (PyCFunction)(void (*)(void))fn, METH_FASTCALL, NULL}

/* In the order of the CTR_PY_EV_* events. */
static PyMethodDef ctr_py_cb_defs[CTR_PY_EV_COUNT] = {
    CTR_PY_CB("ctrec_py_start", ctr_py_cb_start),
    CTR_PY_CB("ctrec_py_resume", ctr_py_cb_start),
    CTR_PY_CB("ctrec_py_return", ctr_py_cb_return),
    CTR_PY_CB("ctrec_py_yield", ctr_py_cb_return),
    CTR_PY_CB("ctrec_py_unwind", ctr_py_cb_unwind),
    CTR_PY_CB("ctrec_py_throw", ctr_py_cb_throw),
    CTR_PY_CB("ctrec_raise", ctr_py_cb_raise),
    CTR_PY_CB("ctrec_line", ctr_py_cb_line),
    CTR_PY_CB("ctrec_jump", ctr_py_cb_jump),
};

static PyMethodDef ctr_py_cb_empty_def = CTR_PY_CB("ctrec_empty",
                                                   ctr_py_cb_empty);

/* Registers callbacks for every event with `tool`: the recorder's, or the
 * empty one for each when `empty`. */
static int ctr_py_mon_register(int tool, bool empty) {
  for (int i = 0; i < CTR_PY_EV_COUNT; i++) {
    PyMethodDef *def = empty ? &ctr_py_cb_empty_def : &ctr_py_cb_defs[i];
    PyObject *fn = PyCFunction_New(def, NULL);
    int rc = fn ? ctr_py_mon_call("register_callback", "(ilO)", tool,
                                  m.bits[i], fn)
                : CTR_ENOMEM;
    Py_XDECREF(fn);
    if (rc != 0) {
      PyErr_Clear();
      return rc;
    }
  }
  return 0;
}

/* ---- the recorder's tool -------------------------------------------------- */

int ctr__py_mon_claim(void) {
  if (m.tool >= 0)
    return 0;
  if (ctr_py_mon_init() != 0)
    return CTR_ESTATE;
  m.tool = ctr_py_mon_take("ctrec");
  if (m.tool < 0) {
    if (!m.said)
      fprintf(stderr, "ctrec: every sys.monitoring tool id is in use; "
                      "recording disabled\n");
    m.said = true;
    return CTR_ESTATE;
  }
  return 0;
}

int ctr__py_mon_install(void) {
  if (m.tool < 0 && ctr__py_mon_claim() != 0)
    return CTR_ESTATE;
  int rc = ctr_py_mon_register(m.tool, false);
  if (rc != 0)
    return rc;
  ctr__py_mon_hooks(true);
  return 0;
}

ctr_py_mon_code_t *ctr__py_mon_track(PyCodeObject *co) {
  if (m.tool < 0)
    return NULL;
  ctr_py_mon_code_t *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->co = co;
  c->next = m.codes;
  if (m.codes != NULL)
    m.codes->prev = c;
  m.codes = c;
  if (m.on)
    ctr_py_mon_local(co, m.local);
  return c;
}

void ctr__py_mon_forget(ctr_py_mon_code_t *c) {
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    m.codes = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  free(c);
}

void ctr__py_mon_untrack(ctr_py_mon_code_t *c) {
  if (m.on)
    ctr_py_mon_local(c->co, 0);
  ctr__py_mon_forget(c);
}

void ctr__py_mon_hooks(bool on) {
  if (m.tool < 0)
    return;
  ctr_py_mon_call("set_events", "(il)", m.tool, on ? m.global : 0L);
  for (ctr_py_mon_code_t *c = m.codes; c != NULL; c = c->next)
    ctr_py_mon_local(c->co, on ? m.local : 0);
  m.on = on;
}

void ctr__py_mon_restart(void) {
  if (m.tool >= 0)
    ctr_py_mon_call("restart_events", "()");
}

void ctr__py_mon_stop(void) {
  if (m.tool < 0)
    return;
  ctr__py_mon_hooks(false);
  for (int i = 0; i < CTR_PY_EV_COUNT; i++)
    ctr_py_mon_call("register_callback", "(ilO)", m.tool, m.bits[i], Py_None);
  ctr_py_mon_call("free_tool_id", "(i)", m.tool);
  m.tool = -1;
}

/* ---- the benchmark's baseline ----------------------------------------------- */

int ctr__py_mon_empty(bool on) {
  if (ctr_py_mon_init() != 0)
    return CTR_ESTATE;
  if (on && m.empty_tool < 0) {
    m.empty_tool = ctr_py_mon_take("ctrec-empty");
    if (m.empty_tool < 0 || ctr_py_mon_register(m.empty_tool, true) != 0)
      return CTR_ESTATE;
    long all = 0;
    for (int i = 0; i < CTR_PY_EV_COUNT; i++)
      all |= m.bits[i];
    return ctr_py_mon_call("set_events", "(il)", m.empty_tool, all);
  }
  if (!on && m.empty_tool >= 0) {
    ctr_py_mon_call("set_events", "(il)", m.empty_tool, 0L);
    ctr_py_mon_call("free_tool_id", "(i)", m.empty_tool);
    m.empty_tool = -1;
  }
  return 0;
}

#endif
