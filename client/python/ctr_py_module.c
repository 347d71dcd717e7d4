/* ctr_py_module.c: the _ctrec extension module of the Python shim.
 *
 * ctrec._activate calls start() early (from sitecustomize, ctrec.pth or
 * python -m ctrec). start() connects through libctrec, installs the trace
 * function (ctr_py_trace.c) on the calling thread and, through
 * threading.settrace, on every thread started later (3.12+: registers the
 * sys.monitoring callbacks of ctr_py_monitor.c, which see every thread),
 * records program output by wrapping the write methods of sys.stdout,
 * sys.stderr and their buffers, and os.write, flushes before os._exit,
 * takes the text of code compiled from strings from audit events, and
 * registers finish() with atexit to send BYE with the exit status.
 *
 * With CT_RECORDER_SOCKET unset start() does nothing; when the daemon cannot
 * be reached libctrec prints one "ctrec: ..." line and the program runs on
 * untraced. */
#include "ctr_py.h" /* Python.h first, as CPython requires */

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define CTR_PY_SHIM_VERSION CTREC_VERSION

static PyObject *g_os_write;   /* the original os.write */
static PyObject *g_os_exit;    /* the original os._exit */
static PyObject *g_thread_hook; /* _ctrec._thread_hook */

/* ---- output ----------------------------------------------------------------- */

/* Installed as instance attributes of sys.stdout and sys.stderr and of
 * their binary buffers; each calls the method it replaces and records what
 * was written. The streams, their types and every other attribute stay
 * what they were.
 *
 * Text written to sys.stdout is recorded by its write(); the text stream
 * passes it on to its buffer's write() later, maybe much later (at a
 * flush). So the buffer's write() records only bytes the program writes to
 * it directly, and not while one of the text stream's methods runs on this
 * thread: those are the text already recorded. */
enum {
  CTR_PY_W_TEXT,   /* write() of a text stream */
  CTR_PY_W_GUARD,  /* another method of a text stream (flush, close, ...) */
  CTR_PY_W_BINARY, /* write() of the stream's buffer */
};

typedef struct ctr_py_writer_s {
  PyObject_HEAD PyObject *orig; /* the bound method it replaces */
  int kind;                     /* EventLogKind of what it records */
  int role;
} ctr_py_writer_t;

/* Text-stream methods running on this thread. */
static _Thread_local int tls_text_depth
    __attribute__((tls_model("initial-exec")));

static void ctr_py_writer_dealloc(PyObject *self) {
  Py_XDECREF(((ctr_py_writer_t *)self)->orig);
  Py_TYPE(self)->tp_free(self);
}

static void ctr_py_record_text(int kind, PyObject *text) {
  const char *s;
  Py_ssize_t n;
  PyObject *b = ctr__py_str_bytes(text, PY_SSIZE_T_MAX, &s, &n);
  if (b != NULL) {
    ctr__py_record_output(kind, s, (size_t)n);
    Py_DECREF(b);
  }
}

/* The first `written` bytes of a bytes-like object. */
static void ctr_py_record_bytes(int kind, PyObject *data, PyObject *written) {
  Py_ssize_t n = PyLong_Check(written) ? PyLong_AsSsize_t(written) : -1;
  Py_buffer view;
  if (n > 0 && PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) == 0) {
    ctr__py_record_output(kind, view.buf,
                          (size_t)(n < view.len ? n : view.len));
    PyBuffer_Release(&view);
  }
  PyErr_Clear();
}

static PyObject *ctr_py_writer_call(PyObject *self, PyObject *args,
                                    PyObject *kw) {
  ctr_py_writer_t *w = (ctr_py_writer_t *)self;
  bool text = w->role != CTR_PY_W_BINARY;
  tls_text_depth += text;
  PyObject *r = PyObject_Call(w->orig, args, kw);
  tls_text_depth -= text;
  if (r == NULL || w->role == CTR_PY_W_GUARD || kw != NULL ||
      PyTuple_GET_SIZE(args) != 1 || !ctr_client_active())
    return r;
  PyObject *data = PyTuple_GET_ITEM(args, 0);
  if (w->role == CTR_PY_W_TEXT && PyUnicode_Check(data))
    ctr_py_record_text(w->kind, data);
  else if (w->role == CTR_PY_W_BINARY && tls_text_depth == 0)
    ctr_py_record_bytes(w->kind, data, r);
  return r;
}

static PyTypeObject ctr_py_writer_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ctrec.write",
    .tp_basicsize = sizeof(ctr_py_writer_t),
    .tp_dealloc = ctr_py_writer_dealloc,
    .tp_call = ctr_py_writer_call,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "a method of a standard stream, recorded by ctrec",
};

/* Replaces obj.<name> by a writer of `role` around it. */
static void ctr_py_wrap_method(PyObject *obj, const char *name, int kind,
                               int role) {
  PyObject *orig = PyObject_GetAttrString(obj, name);
  if (orig == NULL) {
    PyErr_Clear();
    return;
  }
  ctr_py_writer_t *w = PyObject_New(ctr_py_writer_t, &ctr_py_writer_type);
  if (w == NULL) {
    Py_DECREF(orig);
    PyErr_Clear();
    return;
  }
  w->orig = orig;
  w->kind = kind;
  w->role = role;
  if (PyObject_SetAttrString(obj, name, (PyObject *)w) != 0)
    PyErr_Clear(); /* an object without a __dict__: its output goes unrecorded */
  Py_DECREF(w);
}

/* Text-stream methods that may pass buffered text on to the buffer. */
static const char *const ctr_py_flushing[] = {
    "flush", "close", "detach", "reconfigure", "seek", "tell", "truncate",
};

static void ctr_py_wrap_stream(const char *name, int kind) {
  PyObject *stream = PySys_GetObject(name); /* borrowed */
  if (stream == NULL || stream == Py_None)
    return;
  ctr_py_wrap_method(stream, "write", kind, CTR_PY_W_TEXT);
  for (size_t i = 0; i < sizeof ctr_py_flushing / sizeof *ctr_py_flushing; i++)
    ctr_py_wrap_method(stream, ctr_py_flushing[i], kind, CTR_PY_W_GUARD);
  PyObject *buffer = PyObject_GetAttrString(stream, "buffer");
  if (buffer != NULL)
    ctr_py_wrap_method(buffer, "write", kind, CTR_PY_W_BINARY);
  PyErr_Clear();
  Py_XDECREF(buffer);
}

/* os.write(fd, data): the same call, and for fds 1 and 2 the bytes written. */
static PyObject *ctr_py_os_write(PyObject *self, PyObject *const *args,
                                 Py_ssize_t nargs) {
  PyObject *r = PyObject_Vectorcall(g_os_write, args, (size_t)nargs, NULL);
  if (r == NULL || nargs != 2 || !PyLong_CheckExact(args[0]) ||
      !PyLong_CheckExact(r) || !ctr_client_active())
    return r;
  long fd = PyLong_AsLong(args[0]);
  if (fd == 1 || fd == 2)
    ctr_py_record_bytes(fd == 1 ? CTR_EV_WRITE : CTR_EV_WRITE_OTHER, args[1], r);
  PyErr_Clear();
  return r;
}

static PyMethodDef ctr_py_os_write_def = {
    "write", (PyCFunction)(void (*)(void))ctr_py_os_write, METH_FASTCALL,
    "Write a bytes object to a file descriptor."};

/* os._exit(n) skips atexit, where the session ends: it ends here instead,
 * with n as the exit status (a pool worker in fork mode leaves this way),
 * when the call is one that exits; a bad argument leaves the session on,
 * and the original raises as it would. */
static PyObject *ctr_py_os_exit(PyObject *self, PyObject *const *args,
                                Py_ssize_t nargs) {
  /* Also while paused: what was sent before the pause is still due. */
  if (ctr__py_trace_on() && nargs == 1 && PyLong_Check(args[0])) {
    int overflow = 0;
    long n = PyLong_AsLongAndOverflow(args[0], &overflow);
    if (overflow == 0 && n >= INT_MIN && n <= INT_MAX && !PyErr_Occurred()) {
      ctr__py_flush_output();
      ctr_client_finish((int64_t)(n & 0xff));
    }
    PyErr_Clear();
  }
  return PyObject_Vectorcall(g_os_exit, args, (size_t)nargs, NULL);
}

static PyMethodDef ctr_py_os_exit_def = {
    "_exit", (PyCFunction)(void (*)(void))ctr_py_os_exit, METH_FASTCALL,
    "Exit to the system with specified status, without normal exit "
    "processing."};

/* Replaces obj.<name> with the C function `def` of the same name whose
 * __module__ is `module`, like the original's; *orig keeps the original.
 * True when it was replaced. */
static bool ctr_py_replace(PyObject *obj, const char *name, const char *module,
                           PyMethodDef *def, PyObject **orig) {
  *orig = PyObject_GetAttrString(obj, name);
  PyObject *modname = PyUnicode_FromString(module);
  PyObject *fn = *orig && modname ? PyCFunction_NewEx(def, NULL, modname)
                                  : NULL;
  bool done = fn != NULL && PyObject_SetAttrString(obj, name, fn) == 0;
  if (!done)
    PyErr_Clear();
  Py_XDECREF(fn);
  Py_XDECREF(modname);
  return done;
}

static void ctr_py_wrap_os_functions(void) {
  PyObject *os = PyImport_ImportModule("os");
  if (os == NULL) {
    PyErr_Clear();
    return;
  }
  ctr_py_replace(os, "write", "posix", &ctr_py_os_write_def, &g_os_write);
  ctr_py_replace(os, "_exit", "posix", &ctr_py_os_exit_def, &g_os_exit);
  Py_DECREF(os);
}

/* ---- code from strings ------------------------------------------------------ */

/* CPython keeps no text of code compiled from a string, and names it all
 * "<string>" (or the file name the program gave compile). Its audit
 * events have the text: "compile" carries the source and file name, and
 * "exec" the code object about to run. exec and eval of a string (and
 * python3 -c) raise both from the same instruction of the same frame, so
 * a compile whose exec comes from there ran that very text. On 3.12+ a
 * code watcher sees each code object made, so code that compile() makes
 * for exec(code) later gets the text of the compile just raised for its
 * file name. 3.11 has no such hook: there the exec of such code compiles
 * the pending texts of its file name again and takes the one whose code
 * is equal (CPython compares code objects by what they run), or leaves
 * it under the shared name. A real file compiled again (importlib.reload)
 * is matched by its name: the import system compiles and then runs it. */
#define CTR_PY_PENDING 8

typedef struct ctr_py_pending_s {
  PyObject *filename; /* a str; NULL for a free slot */
  char *text; /* NULL for an AST: its code has no text */
  size_t len;
  const void *frame, *instr; /* where it was compiled */
} ctr_py_pending_t;

/* Compiles whose code has not run yet, oldest first. */
static ctr_py_pending_t g_pending[CTR_PY_PENDING];
static size_t g_npending;

static void ctr_py_pending_drop(size_t i) {
  Py_CLEAR(g_pending[i].filename);
  free(g_pending[i].text);
  memmove(&g_pending[i], &g_pending[i + 1],
          (g_npending - i - 1) * sizeof *g_pending);
  g_npending--;
  g_pending[g_npending] = (ctr_py_pending_t){0};
}

static void ctr_py_on_compile(PyObject *source, PyObject *filename) {
  const char *s = NULL;
  Py_ssize_t n = 0;
  if (!PyUnicode_Check(filename))
    return;
  if (PyBytes_Check(source)) {
    s = PyBytes_AS_STRING(source);
    n = PyBytes_GET_SIZE(source);
  } else if (PyUnicode_Check(source) &&
             (s = PyUnicode_AsUTF8AndSize(source, &n)) == NULL) {
    PyErr_Clear(); /* not UTF-8 */
  }
  if ((size_t)n > CTR_CLIENT_SOURCE_MAX)
    n = CTR_CLIENT_SOURCE_MAX;
  /* An AST (or text that could not be read) is still recorded, so that
   * its code is not taken for an older compile's. */
  char *text = s != NULL ? malloc((size_t)n + 1) : NULL;
  if (s != NULL && text == NULL)
    return;
  if (text != NULL) {
    memcpy(text, s, (size_t)n);
    text[n] = '\0';
  }
  if (g_npending == CTR_PY_PENDING)
    ctr_py_pending_drop(0);
  Py_INCREF(filename);
  g_pending[g_npending++] = (ctr_py_pending_t){
      filename, text, (size_t)n, ctr__py_frame_id(NULL), ctr__py_frame_instr()};
}

/* Set while the shim compiles a pending text again: its own compile
 * raises the audit event too. */
static bool g_recompiling;

#if !CTR_PY_MONITORING
/* Whether compiling c's text gives code equal to co. */
static bool ctr_py_pending_made(const ctr_py_pending_t *c, PyObject *co) {
  static const int modes[] = {Py_file_input, Py_eval_input, Py_single_input};
  bool same = false;
  if (c->text == NULL || strlen(c->text) != c->len)
    return false;
  g_recompiling = true;
  for (size_t m = 0; m < sizeof modes / sizeof modes[0] && !same; m++) {
    PyObject *again =
        Py_CompileStringObject(c->text, c->filename, modes[m], NULL, -1);
    same = again != NULL && PyObject_RichCompareBool(again, co, Py_EQ) == 1;
    Py_XDECREF(again);
    PyErr_Clear();
  }
  g_recompiling = false;
  return same;
}
#endif

/* Whether co's file name is a pseudo one ("<string>"), which every string
 * compiled under it shares. */
static bool ctr_py_pseudo_file(PyCodeObject *co) {
  return PyUnicode_Check(co->co_filename) &&
         PyUnicode_GET_LENGTH(co->co_filename) > 0 &&
         PyUnicode_READ_CHAR(co->co_filename, 0) == '<';
}

static void ctr_py_on_exec(PyObject *code) {
  if (!PyCode_Check(code))
    return;
  PyCodeObject *co = (PyCodeObject *)code;
  bool pseudo = ctr_py_pseudo_file(co);
  const void *frame = ctr__py_frame_id(NULL), *instr = ctr__py_frame_instr();
  for (size_t i = g_npending; i-- > 0;) {
    ctr_py_pending_t *c = &g_pending[i];
    if (PyUnicode_Compare(c->filename, co->co_filename) != 0 ||
        (pseudo && (c->frame != frame || c->instr != instr)))
      continue;
    if (c->text != NULL)
      ctr__py_code_text(co, c->text, c->len);
    ctr_py_pending_drop(i);
    return;
  }
#if !CTR_PY_MONITORING
  /* Code compile() made earlier, run now. */
  for (size_t i = g_npending; pseudo && i-- > 0;) {
    ctr_py_pending_t *c = &g_pending[i];
    if (PyUnicode_Compare(c->filename, co->co_filename) != 0 ||
        !ctr_py_pending_made(c, code))
      continue;
    ctr__py_code_text(co, c->text, c->len);
    ctr_py_pending_drop(i);
    return;
  }
#endif
}

#if CTR_PY_MONITORING
/* A code object just made: from the newest compile of its pseudo file
 * name, when there is one (code nested in it comes first). */
static int ctr_py_code_made(PyCodeEvent event, PyCodeObject *co) {
  if (event != PY_CODE_EVENT_CREATE || g_npending == 0 || !ctr__py_trace_on() ||
      !ctr_py_pseudo_file(co))
    return 0;
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  for (size_t i = g_npending; i-- > 0;) {
    if (PyUnicode_Compare(g_pending[i].filename, co->co_filename) == 0) {
      if (g_pending[i].text != NULL)
        ctr__py_code_text(co, g_pending[i].text, g_pending[i].len);
      break;
    }
  }
  PyErr_Clear();
  PyErr_Restore(type, value, tb);
  return 0;
}
#endif

static int ctr_py_audit(const char *event, PyObject *args, void *data) {
  (void)data;
  if ((event[0] != 'c' && event[0] != 'e') || g_recompiling ||
      !ctr__py_trace_on() || !PyTuple_Check(args))
    return 0;
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  if (strcmp(event, "compile") == 0 && PyTuple_GET_SIZE(args) == 2)
    ctr_py_on_compile(PyTuple_GET_ITEM(args, 0), PyTuple_GET_ITEM(args, 1));
  else if (strcmp(event, "exec") == 0 && PyTuple_GET_SIZE(args) == 1)
    ctr_py_on_exec(PyTuple_GET_ITEM(args, 0));
  PyErr_Clear();
  PyErr_Restore(type, value, tb);
  return 0;
}

/* ---- threads ------------------------------------------------------------- */

/* threading.settrace(_thread_hook): a new thread calls sys.settrace with it,
 * and its first call event lands here. The hook replaces itself with the C
 * trace function for the thread and hands that first event over. */
static PyObject *ctr_py_thread_hook(PyObject *self, PyObject *const *args,
                                    Py_ssize_t nargs) {
  if (ctr__py_trace_hooked()) {
    ctr__py_trace_install();
    if (nargs >= 1 && PyFrame_Check(args[0]))
      ctr__py_trace(NULL, (PyFrameObject *)args[0], PyTrace_CALL, NULL);
  } else {
    /* Paused (or stopped): the resume installs the C function here too. */
    PyEval_SetTrace(NULL, NULL);
  }
  Py_RETURN_NONE;
}

#if !CTR_PY_MONITORING
/* Threads started with _thread.start_new_thread, which threading.settrace
 * does not reach: the function runs wrapped in a starter that installs the
 * trace function in the new thread first. */
static PyObject *g_start_new_thread; /* the original */

typedef struct ctr_py_starter_s {
  PyObject_HEAD PyObject *fn;
} ctr_py_starter_t;

static void ctr_py_starter_dealloc(PyObject *self) {
  Py_XDECREF(((ctr_py_starter_t *)self)->fn);
  Py_TYPE(self)->tp_free(self);
}

static PyObject *ctr_py_starter_call(PyObject *self, PyObject *args,
                                     PyObject *kw) {
  if (ctr__py_trace_hooked())
    ctr__py_trace_install();
  return PyObject_Call(((ctr_py_starter_t *)self)->fn, args, kw);
}

/* CPython names the function in "Exception ignored in thread started by"
 * messages: they stay the same. */
static PyObject *ctr_py_starter_repr(PyObject *self) {
  return PyObject_Repr(((ctr_py_starter_t *)self)->fn);
}

static PyTypeObject ctr_py_starter_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ctrec.thread_start",
    .tp_basicsize = sizeof(ctr_py_starter_t),
    .tp_dealloc = ctr_py_starter_dealloc,
    .tp_call = ctr_py_starter_call,
    .tp_repr = ctr_py_starter_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
};

static PyObject *ctr_py_start_new_thread(PyObject *self, PyObject *const *args,
                                         Py_ssize_t nargs) {
  if (nargs < 1 || !PyCallable_Check(args[0]))
    return PyObject_Vectorcall(g_start_new_thread, args, (size_t)nargs, NULL);
  ctr_py_starter_t *st = PyObject_New(ctr_py_starter_t, &ctr_py_starter_type);
  if (st == NULL)
    return NULL;
  Py_INCREF(args[0]);
  st->fn = args[0];
  PyObject *call[3] = {(PyObject *)st, nargs > 1 ? args[1] : NULL,
                       nargs > 2 ? args[2] : NULL};
  PyObject *r = PyObject_Vectorcall(g_start_new_thread, call,
                                    (size_t)(nargs > 3 ? 3 : nargs), NULL);
  Py_DECREF(st);
  return r;
}

static PyMethodDef ctr_py_start_new_thread_def = {
    "start_new_thread", (PyCFunction)(void (*)(void))ctr_py_start_new_thread,
    METH_FASTCALL, "Start a new thread and return its identifier."};

/* sys.settrace: a trace function of the program's replaces the recorder
 * on that thread (CPython has one per thread; the program's is what it
 * asked for), and removing it gives the thread back to the recorder. */
static PyObject *g_sys_settrace; /* the original */

static PyObject *ctr_py_settrace(PyObject *self, PyObject *fn) {
  PyObject *r = PyObject_CallOneArg(g_sys_settrace, fn);
  /* threading's hook (a new thread installing the recorder) is ours. */
  if (r != NULL && fn != g_thread_hook)
    ctr__py_trace_handover(fn != Py_None);
  return r;
}

static PyMethodDef ctr_py_settrace_def = {
    "settrace", ctr_py_settrace, METH_O,
    "Set the global debug tracing function."};

static void ctr_py_hook_settrace(void) {
  PyObject *sys = PyImport_ImportModule("sys");
  if (sys != NULL)
    ctr_py_replace(sys, "settrace", "sys", &ctr_py_settrace_def,
                   &g_sys_settrace);
  PyErr_Clear();
  Py_XDECREF(sys);
}

/* _thread.start_new_thread and its alias start_new. */
static void ctr_py_hook_raw_threads(void) {
  PyObject *thread = PyImport_ImportModule("_thread");
  if (thread != NULL &&
      ctr_py_replace(thread, "start_new_thread", "_thread",
                     &ctr_py_start_new_thread_def, &g_start_new_thread)) {
    PyObject *fn = PyObject_GetAttrString(thread, "start_new_thread");
    if (fn == NULL || PyObject_SetAttrString(thread, "start_new", fn) != 0)
      PyErr_Clear();
    Py_XDECREF(fn);
  }
  PyErr_Clear();
  Py_XDECREF(thread);
}

/* When threading is already imported its hook is set now; otherwise the
 * trace function sets it when the threading module finishes loading, so
 * the shim never imports threading itself. */
static void ctr_py_hook_threads(void) {
  PyObject *mods = PyImport_GetModuleDict(); /* borrowed */
  PyObject *threading = PyDict_GetItemString(mods, "threading");
  if (threading == NULL)
    return;
  PyObject *r = PyObject_CallMethod(threading, "settrace", "O", g_thread_hook);
  if (r == NULL)
    PyErr_Clear();
  Py_XDECREF(r);
}
#endif

/* ---- start and finish ------------------------------------------------------ */

static PyObject *ctr_py_finish(PyObject *self, PyObject *unused) {
  if (ctr__py_trace_on()) {
    int64_t status = ctr__py_exit_status();
    ctr__py_trace_stop();
    ctr_client_finish(status);
  }
  Py_RETURN_NONE;
}

static PyObject *ctr_py_after_fork(PyObject *self, PyObject *unused) {
  ctr__py_after_fork();
  Py_RETURN_NONE;
}

/* os.register_at_fork(after_in_child=_after_fork): runs in the child with
 * the interpreter ready again, unlike a pthread_atfork handler. */
static void ctr_py_at_fork(PyObject *self) {
  PyObject *os = PyImport_ImportModule("os");
  PyObject *reg = os ? PyObject_GetAttrString(os, "register_at_fork") : NULL;
  PyObject *fn = PyObject_GetAttrString(self, "_after_fork");
  PyObject *kw = reg && fn ? Py_BuildValue("{s:O}", "after_in_child", fn) : NULL;
  PyObject *empty = kw ? PyTuple_New(0) : NULL;
  PyObject *r = empty ? PyObject_Call(reg, empty, kw) : NULL;
  if (r == NULL)
    PyErr_Clear();
  Py_XDECREF(r);
  Py_XDECREF(empty);
  Py_XDECREF(kw);
  Py_XDECREF(fn);
  Py_XDECREF(reg);
  Py_XDECREF(os);
}

static PyObject *ctr_py_start(PyObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"program", "args", "shim_dirs", "lib_dirs", NULL};
  const char *program;
  PyObject *argv, *shim_dirs, *lib_dirs;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "sO!O!O!", kwlist, &program,
                                   &PyList_Type, &argv, &PyList_Type,
                                   &shim_dirs, &PyList_Type, &lib_dirs))
    return NULL;
  if (ctr__py_trace_on())
    Py_RETURN_TRUE;
#if CTR_PY_MONITORING
  /* Without a tool id there is nothing to record with: no session. */
  if (ctr__py_mon_claim() != 0)
    Py_RETURN_FALSE;
#endif

  Py_ssize_t argc = PyList_GET_SIZE(argv);
  const char **cargv = PyMem_Calloc((size_t)argc + 1, sizeof *cargv);
  if (cargv == NULL)
    return PyErr_NoMemory();
  for (Py_ssize_t i = 0; i < argc; i++) {
    PyObject *a = PyList_GET_ITEM(argv, i);
    cargv[i] = PyUnicode_Check(a) ? PyUnicode_AsUTF8(a) : NULL;
    if (cargv[i] == NULL) {
      PyErr_Clear();
      cargv[i] = "";
    }
  }
  char version[32];
  const char *full = Py_GetVersion();
  size_t vn = strcspn(full, " ");
  snprintf(version, sizeof version, "%.*s", (int)(vn < 31 ? vn : 31), full);
  ctr_client_info_t info = {
      .lang = "python",
      .lang_version = version,
      .shim_version = CTR_PY_SHIM_VERSION,
      .program = program,
      .argc = (int)argc,
      .argv = cargv,
  };
  int rc = ctr_client_start(&info);
  PyMem_Free(cargv);
  if (rc != 0 ||
      ctr__py_trace_setup(shim_dirs, lib_dirs, g_thread_hook) != 0) {
    /* unset: silent; failed: libctrec printed one line */
    if (rc == 0)
      ctr_client_finish(0);
#if CTR_PY_MONITORING
    ctr__py_mon_stop();
#endif
    Py_RETURN_FALSE;
  }
  /* Audit hooks cannot be removed: this one does nothing once recording
   * ends. */
  if (PySys_AddAuditHook(ctr_py_audit, NULL) != 0)
    PyErr_Clear();
#if CTR_PY_MONITORING
  if (PyCode_AddWatcher(ctr_py_code_made) < 0)
    PyErr_Clear();
#endif
  ctr_py_wrap_stream("stdout", CTR_EV_WRITE);
  ctr_py_wrap_stream("stderr", CTR_EV_WRITE_OTHER);
  ctr_py_wrap_os_functions();
  /* sys.monitoring reports every thread without a per-thread hook. */
#if !CTR_PY_MONITORING
  ctr_py_hook_threads();
  ctr_py_hook_raw_threads();
  ctr_py_hook_settrace();
#endif
  ctr_py_at_fork(self);
  PyObject *atexit = PyImport_ImportModule("atexit");
  PyObject *fin = PyObject_GetAttrString(self, "_finish");
  PyObject *r = atexit && fin ? PyObject_CallMethod(atexit, "register", "O", fin)
                              : NULL;
  if (r == NULL)
    PyErr_Clear();
  Py_XDECREF(r);
  Py_XDECREF(fin);
  Py_XDECREF(atexit);
  ctr__py_trace_install();
  Py_RETURN_TRUE;
}

/* ---- benchmark helper ------------------------------------------------------ */

#if !CTR_PY_MONITORING
static int ctr_py_empty_trace(PyObject *obj, PyFrameObject *frame, int what,
                              PyObject *arg) {
  return 0;
}
#endif

/* Installs a trace function that does nothing (3.12+: a sys.monitoring
 * tool with do-nothing callbacks for the recorder's events): the
 * interpreter's own cost of the hooks, the baseline of
 * tests/bench/python_bench.sh. */
static PyObject *ctr_py_empty(PyObject *self, PyObject *on) {
#if CTR_PY_MONITORING
  if (ctr__py_mon_empty(PyObject_IsTrue(on) == 1) != 0) {
    PyErr_SetString(PyExc_RuntimeError, "no free sys.monitoring tool id");
    return NULL;
  }
#else
  PyEval_SetTrace(PyObject_IsTrue(on) ? ctr_py_empty_trace : NULL, NULL);
#endif
  Py_RETURN_NONE;
}

static PyObject *ctr_py_active(PyObject *self, PyObject *unused) {
  return PyBool_FromLong(ctr__py_trace_on() && ctr_client_active());
}

/* ---- the program's API: ctrec.mark, pause, resume ---------------------- */

/* Each does nothing unless the program is being recorded, and none runs
 * code of the program's or raises: the program behaves as untraced. */
static PyObject *ctr_py_mark(PyObject *self, PyObject *text) {
  if (!ctr__py_trace_on() || !ctr_client_active())
    Py_RETURN_NONE;
  char other[200];
  const char *s = other;
  Py_ssize_t n;
  PyObject *b = NULL;
  if (PyUnicode_Check(text)) {
    if ((b = ctr__py_str_bytes(text, CTR_CLIENT_MARK_MAX, &s, &n)) == NULL)
      Py_RETURN_NONE;
  } else if (PyBytes_Check(text)) {
    s = PyBytes_AS_STRING(text);
    n = PyBytes_GET_SIZE(text);
  } else {
    /* Its type's name, not str(text): that would run the program's code. */
    n = snprintf(other, sizeof other, "<%.150s>", Py_TYPE(text)->tp_name);
  }
  ctr__py_api_mark(s,
                   (size_t)(n < CTR_CLIENT_MARK_MAX ? n : CTR_CLIENT_MARK_MAX));
  Py_XDECREF(b);
  Py_RETURN_NONE;
}

static PyObject *ctr_py_pause(PyObject *self, PyObject *unused) {
  ctr__py_api_record(false);
  Py_RETURN_NONE;
}

static PyObject *ctr_py_resume(PyObject *self, PyObject *unused) {
  ctr__py_api_record(true);
  Py_RETURN_NONE;
}

static PyMethodDef ctr_py_methods[] = {
    {"start", (PyCFunction)(void (*)(void))ctr_py_start,
     METH_VARARGS | METH_KEYWORDS,
     "start(program, args, shim_dirs, lib_dirs) -> bool\n"
     "Connects to $CT_RECORDER_SOCKET and starts recording. Code under\n"
     "shim_dirs (the shim's own) is never recorded, not even as __main__;\n"
     "lib_dirs hold the standard library and installed packages, which\n"
     "the daemon's rules skip or record."},
    {"_finish", ctr_py_finish, METH_NOARGS,
     "Sends BYE with the exit status (registered with atexit)."},
    {"_after_fork", ctr_py_after_fork, METH_NOARGS,
     "Lets a fork child record while its parent is paused."},
    {"_thread_hook", (PyCFunction)(void (*)(void))ctr_py_thread_hook,
     METH_FASTCALL, "Installs the recorder in a new thread."},
    {"_empty_trace", ctr_py_empty, METH_O,
     "Installs (True) or removes a do-nothing C trace function."},
    {"active", ctr_py_active, METH_NOARGS, "True while recording."},
    {"mark", ctr_py_mark, METH_O,
     "mark(text): an event in the trace at the current step."},
    {"pause", ctr_py_pause, METH_NOARGS,
     "Ends the recording interval, as ctrecctl stop does."},
    {"resume", ctr_py_resume, METH_NOARGS,
     "Opens a new recording interval, as ctrecctl start does."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef ctr_py_module = {
    PyModuleDef_HEAD_INIT, "_ctrec",
    "ctrec recorder for CPython (C extension; use ctrec._activate).", -1,
    ctr_py_methods, NULL, NULL, NULL, NULL};

/* PyMODINIT_FUNC exports the symbol despite the hidden default. */
PyMODINIT_FUNC PyInit__ctrec(void) {
  if (PyType_Ready(&ctr_py_writer_type) < 0)
    return NULL;
#if !CTR_PY_MONITORING
  if (PyType_Ready(&ctr_py_starter_type) < 0)
    return NULL;
#endif
  PyObject *m = PyModule_Create(&ctr_py_module);
  if (m == NULL)
    return NULL;
  g_thread_hook = PyObject_GetAttrString(m, "_thread_hook");
  if (g_thread_hook == NULL) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
