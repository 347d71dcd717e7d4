/* ctr_py_frame.c: reads a running frame's local variables straight from its
 * fast-locals slots.
 *
 * The public way, PyFrame_GetLocals, copies every local into a dict (3.11,
 * 3.12) or builds a proxy (3.13) at each call, which is most of what a line
 * event costs the recorder. The slots themselves sit in the interpreter's
 * frame record, whose layout is private: this file alone includes CPython's
 * internal frame header, which is why it is compiled against each
 * interpreter's own headers like the rest of the extension. It reads what
 * CPython's own f_locals reads and changes nothing. */
#include "ctr_py.h" /* Python.h first, as CPython requires */

#define Py_BUILD_CORE 1
#include <internal/pycore_frame.h>

/* Kinds of co_localspluskinds (internal/pycore_code.h, stable since 3.11). */
#define CTR_PY_FAST_CELL 0x40
#define CTR_PY_FAST_FREE 0x80

/* The interpreter frame of `frame`, or of the innermost complete Python
 * frame of this thread when `frame` is NULL, the one PyEval_GetFrame
 * would make an object of. */
static _PyInterpreterFrame *ctr_py_iframe(PyFrameObject *frame) {
  if (frame != NULL)
    return frame->f_frame;
  PyThreadState *ts = PyThreadState_Get();
#if PY_VERSION_HEX >= 0x030D0000
  _PyInterpreterFrame *f = ts->current_frame;
#else
  _PyInterpreterFrame *f = ts->cframe->current_frame;
#endif
  while (f != NULL && _PyFrame_IsIncomplete(f))
    f = f->previous;
  return f;
}

static PyCodeObject *ctr_py_icode(_PyInterpreterFrame *f) {
#if PY_VERSION_HEX >= 0x030D0000
  return _PyFrame_GetCode(f);
#else
  return f->f_code;
#endif
}

const void *ctr__py_frame_id(PyFrameObject *frame) {
  return ctr_py_iframe(frame);
}

PyObject *ctr__py_frame_globals(PyFrameObject *frame) {
  _PyInterpreterFrame *f = ctr_py_iframe(frame);
  return f != NULL ? f->f_globals : NULL;
}

const void *ctr__py_frame_instr(void) {
  _PyInterpreterFrame *f = ctr_py_iframe(NULL);
#if PY_VERSION_HEX >= 0x030D0000
  return f != NULL ? f->instr_ptr : NULL;
#else
  return f != NULL ? f->prev_instr : NULL;
#endif
}

const void *ctr__py_caller_id(void) {
  _PyInterpreterFrame *f = ctr_py_iframe(NULL);
  if (f == NULL)
    return NULL;
  f = f->previous;
  while (f != NULL && _PyFrame_IsIncomplete(f))
    f = f->previous;
  return f;
}

Py_ssize_t ctr__py_frame_locals(PyFrameObject *frame, PyObject **out,
                                Py_ssize_t max) {
  _PyInterpreterFrame *f = ctr_py_iframe(frame);
  if (f == NULL)
    return 0;
  PyCodeObject *co = ctr_py_icode(f);
  Py_ssize_t n = co->co_nlocalsplus;
  const unsigned char *kinds =
      (const unsigned char *)PyBytes_AS_STRING(co->co_localspluskinds);
  if (n > max)
    n = max;
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *v = f->localsplus[i];
    /* A free variable's slot holds its cell once COPY_FREE_VARS ran, and a
     * cell variable's once MAKE_CELL ran; both run before the first line.
     * Before that an argument that is also a cell holds its plain value. */
    if (v != NULL && (kinds[i] & (CTR_PY_FAST_CELL | CTR_PY_FAST_FREE)) &&
        PyCell_Check(v))
      v = PyCell_GET(v);
    out[i] = v;
  }
  return n;
}
