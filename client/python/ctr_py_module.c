/* ctr_py_module.c: the _ctrec extension module of the Python shim.
 *
 * ctrec._activate calls start() early (from sitecustomize, ctrec.pth or
 * python -m ctrec). start() connects through libctrec, installs the trace
 * function (ctr_py_trace.c) on the calling thread and, through
 * threading.settrace, on every thread started later (3.12+: registers the
 * sys.monitoring callbacks of ctr_py_monitor.c, which see every thread), records program output
 * by wrapping sys.stdout.write, sys.stderr.write and os.write, flushes
 * before os._exit, and registers
 * finish() with atexit to send BYE with the exit status.
 *
 * With CT_RECORDER_SOCKET unset start() does nothing; when the daemon cannot
 * be reached libctrec prints one "ctrec: ..." line and the program runs on
 * untraced. */
#include "ctr_py.h" /* Python.h first, as CPython requires */

#include <string.h>

#define CTR_PY_SHIM_VERSION CTREC_VERSION

static PyObject *g_os_write;   /* the original os.write */
static PyObject *g_os_exit;    /* the original os._exit */
static PyObject *g_thread_hook; /* _ctrec._thread_hook */

/* ---- output ----------------------------------------------------------------- */

/* Installed as the instance attribute `write` of sys.stdout and sys.stderr:
 * it calls the stream's own write and records the text once it is written.
 * The stream, its type and every other attribute stay what they were. */
typedef struct ctr_py_writer_s {
  PyObject_HEAD PyObject *orig; /* the bound method it replaces */
  int kind;
} ctr_py_writer_t;

static void ctr_py_writer_dealloc(PyObject *self) {
  Py_XDECREF(((ctr_py_writer_t *)self)->orig);
  Py_TYPE(self)->tp_free(self);
}

static PyObject *ctr_py_writer_call(PyObject *self, PyObject *args,
                                    PyObject *kw) {
  ctr_py_writer_t *w = (ctr_py_writer_t *)self;
  PyObject *r = PyObject_Call(w->orig, args, kw);
  if (r != NULL && kw == NULL && PyTuple_GET_SIZE(args) == 1 &&
      PyUnicode_Check(PyTuple_GET_ITEM(args, 0)) && ctr_client_active()) {
    const char *s;
    Py_ssize_t n;
    PyObject *b =
        ctr__py_str_bytes(PyTuple_GET_ITEM(args, 0), PY_SSIZE_T_MAX, &s, &n);
    if (b != NULL) {
      ctr__py_record_output(w->kind, s, (size_t)n);
      Py_DECREF(b);
    }
  }
  return r;
}

static PyTypeObject ctr_py_writer_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ctrec.write",
    .tp_basicsize = sizeof(ctr_py_writer_t),
    .tp_dealloc = ctr_py_writer_dealloc,
    .tp_call = ctr_py_writer_call,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "write() of a standard stream, recorded by ctrec",
};

static void ctr_py_wrap_stream(const char *name, int kind) {
  PyObject *stream = PySys_GetObject(name); /* borrowed */
  if (stream == NULL || stream == Py_None)
    return;
  PyObject *orig = PyObject_GetAttrString(stream, "write");
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
  if (PyObject_SetAttrString(stream, "write", (PyObject *)w) != 0)
    PyErr_Clear(); /* a stream without a __dict__: its output goes unrecorded */
  Py_DECREF(w);
}

/* os.write(fd, data): the same call, and for fds 1 and 2 the bytes written. */
static PyObject *ctr_py_os_write(PyObject *self, PyObject *const *args,
                                 Py_ssize_t nargs) {
  PyObject *r = PyObject_Vectorcall(g_os_write, args, (size_t)nargs, NULL);
  if (r == NULL || nargs != 2 || !PyLong_CheckExact(args[0]) ||
      !PyLong_CheckExact(r) || !ctr_client_active())
    return r;
  long fd = PyLong_AsLong(args[0]);
  Py_ssize_t written = PyLong_AsSsize_t(r);
  if ((fd == 1 || fd == 2) && written > 0) {
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) == 0) {
      size_t n = (size_t)(written < view.len ? written : view.len);
      ctr__py_record_output(fd == 1 ? CTR_EV_WRITE : CTR_EV_WRITE_OTHER,
                            view.buf, n);
      PyBuffer_Release(&view);
    }
  }
  PyErr_Clear();
  return r;
}

static PyMethodDef ctr_py_os_write_def = {
    "write", (PyCFunction)(void (*)(void))ctr_py_os_write, METH_FASTCALL,
    "Write a bytes object to a file descriptor."};

/* os._exit(n) skips atexit: what is batched is sent first, without BYE, so
 * the trace holds everything and is marked aborted. */
static PyObject *ctr_py_os_exit(PyObject *self, PyObject *const *args,
                                Py_ssize_t nargs) {
  if (ctr_client_active()) {
    ctr__py_flush_output();
    ctr_client_flush();
  }
  return PyObject_Vectorcall(g_os_exit, args, (size_t)nargs, NULL);
}

static PyMethodDef ctr_py_os_exit_def = {
    "_exit", (PyCFunction)(void (*)(void))ctr_py_os_exit, METH_FASTCALL,
    "Exit to the system with specified status, without normal exit "
    "processing."};

/* Replaces os.<name> with a function of the same name whose __module__ is
 * "posix", like the original's; *orig keeps the original. */
static void ctr_py_wrap_os(PyObject *os, const char *name, PyMethodDef *def,
                           PyObject **orig) {
  *orig = PyObject_GetAttrString(os, name);
  PyObject *modname = PyUnicode_FromString("posix");
  PyObject *fn = *orig && modname ? PyCFunction_NewEx(def, NULL, modname)
                                  : NULL;
  if (fn == NULL || PyObject_SetAttrString(os, name, fn) != 0)
    PyErr_Clear();
  Py_XDECREF(fn);
  Py_XDECREF(modname);
}

static void ctr_py_wrap_os_functions(void) {
  PyObject *os = PyImport_ImportModule("os");
  if (os == NULL) {
    PyErr_Clear();
    return;
  }
  ctr_py_wrap_os(os, "write", &ctr_py_os_write_def, &g_os_write);
  ctr_py_wrap_os(os, "_exit", &ctr_py_os_exit_def, &g_os_exit);
  Py_DECREF(os);
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

/* ---- start and finish ------------------------------------------------------ */

static PyObject *ctr_py_finish(PyObject *self, PyObject *unused) {
  if (ctr__py_trace_on()) {
    int64_t status = ctr__py_exit_status();
    ctr__py_trace_stop();
    ctr_client_finish(status);
  }
  Py_RETURN_NONE;
}

static PyObject *ctr_py_start(PyObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"program", "args", "skip_dirs", "skip_frozen", NULL};
  const char *program;
  PyObject *argv, *skip;
  int skip_frozen = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "sO!O!|p", kwlist, &program,
                                   &PyList_Type, &argv, &PyList_Type, &skip,
                                   &skip_frozen))
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
      ctr__py_trace_setup(skip, skip_frozen != 0, g_thread_hook) != 0) {
    /* unset: silent; failed: libctrec printed one line */
    if (rc == 0)
      ctr_client_finish(0);
#if CTR_PY_MONITORING
    ctr__py_mon_stop();
#endif
    Py_RETURN_FALSE;
  }
  ctr_py_wrap_stream("stdout", CTR_EV_WRITE);
  ctr_py_wrap_stream("stderr", CTR_EV_WRITE_OTHER);
  ctr_py_wrap_os_functions();
  /* sys.monitoring reports every thread without a per-thread hook. */
  if (!CTR_PY_MONITORING)
    ctr_py_hook_threads();
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

static PyMethodDef ctr_py_methods[] = {
    {"start", (PyCFunction)(void (*)(void))ctr_py_start,
     METH_VARARGS | METH_KEYWORDS,
     "start(program, args, skip_dirs, skip_frozen=True) -> bool\n"
     "Connects to $CT_RECORDER_SOCKET and starts recording. Code under\n"
     "skip_dirs is not recorded; skip_dirs[0] is the shim's own folder,\n"
     "which is never recorded, not even as __main__."},
    {"_finish", ctr_py_finish, METH_NOARGS,
     "Sends BYE with the exit status (registered with atexit)."},
    {"_thread_hook", (PyCFunction)(void (*)(void))ctr_py_thread_hook,
     METH_FASTCALL, "Installs the recorder in a new thread."},
    {"_empty_trace", ctr_py_empty, METH_O,
     "Installs (True) or removes a do-nothing C trace function."},
    {"active", ctr_py_active, METH_NOARGS, "True while recording."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef ctr_py_module = {
    PyModuleDef_HEAD_INIT, "_ctrec",
    "ctrec recorder for CPython (C extension; use ctrec._activate).", -1,
    ctr_py_methods, NULL, NULL, NULL, NULL};

/* PyMODINIT_FUNC exports the symbol despite the hidden default. */
PyMODINIT_FUNC PyInit__ctrec(void) {
  if (PyType_Ready(&ctr_py_writer_type) < 0)
    return NULL;
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
