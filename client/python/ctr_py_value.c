/* ctr_py_value.c: Python values to ctrec wire values.
 *
 * Capturing a value must not change the program, so nothing here calls a
 * method that Python code can define: no __repr__, __str__, __eq__,
 * __hash__, __len__, __iter__, properties or __getattr__. Containers are
 * read through the concrete C API (PyList_GET_ITEM, PyDict_Next,
 * _PySet_NextEntry), objects through their instance dict and __slots__
 * members, numbers and strings through their C representation. */
#include "ctr_py.h" /* Python.h first, as CPython requires */
#include "ctr_enc.h"
#include "ctr_vref.h"

#include <stdlib.h>
#include <string.h>
#include <structmember.h>

#define CTR_PY_DEPTH_DEFAULT 3
#define CTR_PY_LENGTH_DEFAULT 32
#define CTR_PY_STRING_DEFAULT 4096
#define CTR_PY_DEPTH_HARD 32

typedef struct ctr_py_walk_s {
  msgpack_packer *decl;
  msgpack_packer *out;
  msgpack_sbuffer *sb; /* out's buffer, which ctr_vref_close rewrites */
  uint32_t max_depth;
  uint32_t max_length;
  uint32_t max_string;
  uint32_t budget; /* values per message, 0: no bound */
  bool refs;       /* the daemon keeps definitions (ctr_vref) */
  PyObject *visiting[CTR_PY_DEPTH_HARD + 1];
  uint32_t depth;
  /* A "<cycle>" or a container cut by the depth limit was packed since
   * the innermost open value began. Such a value may read differently
   * under other enclosing values: an object cut at the limit, or one a
   * cycle leads back to, shows as "<cycle>" where it encloses the value.
   * A value without either was walked to the end, so none of its parts
   * can enclose it anywhere; it reads the same wherever it is met at the
   * same depth. A variable itself (depth 0) has no enclosing values. */
  bool cut;
} ctr_py_walk_t;

/* The message being captured: values counted against the budget. A REF
 * to a value met before counts as all the values it holds (ctr_vref keeps
 * the count), so that references change nothing that is recorded. */
static struct {
  uint32_t nodes;
} g_msg;

void ctr__py_value_message(void) {
  g_msg.nodes = 0;
  ctr_vref_message();
}

static void ctr_py_walk_value(ctr_py_walk_t *w, PyObject *v);

/* ---- encoding ------------------------------------------------------------- */

/* The walk encodes with ctr_enc.h straight into the scratch buffer: a
 * packer call per piece (a callback and a copy of a few bytes) cost more
 * than the encoding. Room for n more bytes, NULL when memory ran out
 * (then the piece is missing, as when a packer's write fails). */
static unsigned char *ctr_py_room(ctr_py_walk_t *w, size_t n) {
  msgpack_sbuffer *sb = w->sb;
  if (sb->alloc - sb->size < n) {
    size_t cap = sb->alloc ? sb->alloc : 8192;
    while (cap - sb->size < n)
      cap *= 2;
    char *d = realloc(sb->data, cap);
    if (d == NULL)
      return NULL;
    sb->data = d;
    sb->alloc = cap;
  }
  return (unsigned char *)sb->data + sb->size;
}

static void ctr_py_done(ctr_py_walk_t *w, const unsigned char *end) {
  w->sb->size = (size_t)(end - (const unsigned char *)w->sb->data);
}

/* [vkind, tid, [n elements...]]: the elements follow. */
static void ctr_py_container(ctr_py_walk_t *w, int vkind, uint32_t tid,
                             uint32_t n) {
  unsigned char *p = ctr_py_room(w, CTR_ENC_SCALAR_MAX + CTR_ENC_HEAD_MAX);
  if (p != NULL)
    ctr_py_done(w, ctr_enc_array(ctr_enc_value_head(p, 3, vkind, tid), n));
}

/* [varname_id, value] of a struct field: the value follows. */
static void ctr_py_field(ctr_py_walk_t *w, uint32_t varname_id) {
  unsigned char *p = ctr_py_room(w, CTR_ENC_PAIR_MAX);
  if (p != NULL)
    ctr_py_done(w, ctr_enc_uint(ctr_enc_array(p, 2), varname_id));
}

/* [vkind, tid, text]: STRING bytes as bin, RAW and ERROR texts as str. */
static void ctr_py_text(ctr_py_walk_t *w, int vkind, uint32_t tid,
                        const char *s, size_t n) {
  unsigned char *p =
      ctr_py_room(w, CTR_ENC_SCALAR_MAX + CTR_ENC_HEAD_MAX + n);
  if (p == NULL)
    return;
  p = ctr_enc_value_head(p, 3, vkind, tid);
  p = ctr_enc_text_head(p, vkind == CTR_V_STRING, n);
  memcpy(p, s, n);
  ctr_py_done(w, p + n);
}

/* None, bool, int or float: what ctr__py_scalar_write encodes. */
static void ctr_py_plain_value(ctr_py_walk_t *w, const ctr_py_scalar_t *sc) {
  unsigned char *p = ctr_py_room(w, CTR_ENC_SCALAR_MAX);
  if (p != NULL)
    ctr_py_done(w, ctr__py_scalar_write(p, sc));
}

static void ctr_py_none(ctr_py_walk_t *w) {
  ctr_py_scalar_t sc = {.vkind = CTR_V_NONE,
                        .tid = ctr__py_type_id_of(w->decl, CTR_TK_NONE,
                                                  Py_TYPE(Py_None))};
  ctr_py_plain_value(w, &sc);
}


/* tp_name is the C-level name: no descriptor, no metaclass involved. */
static uint32_t ctr_py_type_of(ctr_py_walk_t *w, int kind, PyObject *v) {
  return ctr__py_type_id_of(w->decl, kind, Py_TYPE(v));
}

static void ctr_py_raw(ctr_py_walk_t *w, PyObject *v, const char *text,
                       size_t n) {
  ctr_py_text(w, CTR_V_RAW, ctr_py_type_of(w, CTR_TK_RAW, v), text, n);
}

/* A string literal and its length. */
#define CTR_PY_LIT(s) s, sizeof(s) - 1

/* RAW pre + name + post, cut to 299 bytes (what snprintf into 300 bytes
 * gave); built with memcpy, because these are packed at every step for
 * every function and unopened object. */
static void ctr_py_raw_text(ctr_py_walk_t *w, PyObject *v, const char *pre,
                            size_t npre, const char *name, size_t n,
                            const char *post, size_t npost) {
  char buf[300];
  size_t len = 0;
  const char *part[3] = {pre, name, post};
  size_t plen[3] = {npre, n, npost};
  for (int i = 0; i < 3; i++) {
    size_t k = plen[i] < sizeof buf - 1 - len ? plen[i] : sizeof buf - 1 - len;
    memcpy(buf + len, part[i], k);
    len += k;
  }
  ctr_py_raw(w, v, buf, len);
}

/* "<ClassName object>": what is shown for values we do not open. */
static void ctr_py_raw_class(ctr_py_walk_t *w, PyObject *v) {
  const char *name = Py_TYPE(v)->tp_name;
  ctr_py_raw_text(w, v, CTR_PY_LIT("<"), name, strnlen(name, 250),
                  CTR_PY_LIT(" object>"));
}

/* "<prefix name>" for modules, functions and classes, with `name` a str. */
static void ctr_py_raw_named(ctr_py_walk_t *w, PyObject *v, const char *prefix,
                             size_t nprefix, PyObject *name) {
  const char *s = NULL;
  Py_ssize_t n = 0;
  PyObject *b = name != NULL && PyUnicode_Check(name)
                    ? ctr__py_str_bytes(name, 200, &s, &n)
                    : NULL;
  ctr_py_raw_text(w, v, prefix, nprefix, b ? s : "?", b ? (size_t)n : 1,
                  CTR_PY_LIT(">"));
  Py_XDECREF(b);
}

PyObject *ctr__py_str_bytes(PyObject *str, Py_ssize_t max_chars,
                            const char **s, Py_ssize_t *n) {
  Py_ssize_t len = PyUnicode_GET_LENGTH(str);
  if (PyUnicode_IS_COMPACT_ASCII(str)) {
    *s = (const char *)PyUnicode_DATA(str);
    *n = len < max_chars ? len : max_chars;
    Py_INCREF(str);
    return str;
  }
  /* A temporary UTF-8 copy: PyUnicode_AsUTF8AndSize would keep one in the
   * program's string for its whole life. surrogatepass keeps lone
   * surrogates instead of failing. */
  PyObject *part = len > max_chars ? PyUnicode_Substring(str, 0, max_chars)
                                   : (Py_INCREF(str), str);
  if (part == NULL) {
    PyErr_Clear();
    return NULL;
  }
  PyObject *b = PyUnicode_AsEncodedString(part, "utf-8", "surrogatepass");
  Py_DECREF(part);
  if (b == NULL) {
    PyErr_Clear();
    return NULL;
  }
  *s = PyBytes_AS_STRING(b);
  *n = PyBytes_GET_SIZE(b);
  return b;
}

static void ctr_py_string(ctr_py_walk_t *w, PyObject *v) {
  uint32_t tid = ctr_py_type_of(w, CTR_TK_STRING, v);
  const char *s;
  Py_ssize_t n;
  PyObject *b = ctr__py_str_bytes(v, (Py_ssize_t)w->max_string, &s, &n);
  if (b == NULL) {
    ctr_pack_v_error(w->out, tid, "unreadable string", 17);
    return;
  }
  if ((size_t)n > w->max_string) {
    n = (Py_ssize_t)w->max_string;
    /* Cut before a character the limit would split: its first bytes
     * alone are not UTF-8 and would show as \xNN in the trace. */
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
      n--;
  }
  ctr_py_text(w, CTR_V_STRING, tid, s, (size_t)n);
  Py_DECREF(b);
}

static void ctr_py_integer(ctr_py_walk_t *w, PyObject *v) {
  uint32_t tid = ctr_py_type_of(w, CTR_TK_INT, v);
  int overflow = 0;
  /* On an int (subclasses included) this reads the digits; it calls
   * __index__ only for non-ints, which never get here. */
  long long i = PyLong_AsLongLongAndOverflow(v, &overflow);
  if (overflow == 0) {
    if (i == -1 && PyErr_Occurred()) {
      PyErr_Clear();
      ctr_pack_v_error(w->out, tid, "unreadable int", 14);
      return;
    }
    ctr_py_scalar_t sc = {.vkind = CTR_V_INT, .tid = tid, .u.i = (int64_t)i};
    ctr_py_plain_value(w, &sc);
    return;
  }
  size_t bits = _PyLong_NumBits(v);
  if (bits == (size_t)-1) {
    PyErr_Clear();
    ctr_pack_v_error(w->out, tid, "unreadable int", 14);
    return;
  }
  if ((bits + 7) / 8 > CTR_BIGINT_MAX) {
    ctr_pack_v_bigint_over(w->out, tid, bits);
    return;
  }
  /* Two's complement needs room for the sign bit. */
  size_t n = bits / 8 + 1;
  unsigned char *buf = malloc(n);
  if (buf == NULL) {
    ctr_pack_v_error(w->out, tid, "out of memory", 13);
    return;
  }
  bool negative = overflow < 0;
  /* Two's complement, big-endian; a negative number is negated back to
   * its magnitude, because the wire carries sign and magnitude. */
#if PY_VERSION_HEX >= 0x030D0000
  int rc = _PyLong_AsByteArray((PyLongObject *)v, buf, n, 0, 1, 1);
#else
  int rc = _PyLong_AsByteArray((PyLongObject *)v, buf, n, 0, 1);
#endif
  if (rc != 0) {
    PyErr_Clear();
    free(buf);
    ctr_pack_v_error(w->out, tid, "unreadable int", 14);
    return;
  }
  if (negative) {
    unsigned carry = 1;
    for (size_t k = n; k-- > 0;) {
      unsigned s = (unsigned char)~buf[k] + carry;
      buf[k] = (unsigned char)s;
      carry = s >> 8;
    }
  }
  size_t skip = 0;
  while (skip + 1 < n && buf[skip] == 0)
    skip++;
  ctr_pack_v_bigint(w->out, tid, negative, buf + skip, n - skip);
  free(buf);
}

static uint32_t ctr_py_count(ctr_py_walk_t *w, Py_ssize_t len) {
  return (size_t)len > w->max_length ? w->max_length : (uint32_t)len;
}

static void ctr_py_items(ctr_py_walk_t *w, PyObject *const *items,
                         uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    ctr_py_walk_value(w, items[i]);
}

/* A dict as a sequence of (key, value) tuples. */
static void ctr_py_dict(ctr_py_walk_t *w, PyObject *d) {
  uint32_t tid = ctr_py_type_of(w, CTR_TK_SEQ, d);
  uint32_t pair = ctr__py_type_id_of(w->decl, CTR_TK_TUPLE, &PyTuple_Type);
  uint32_t n = ctr_py_count(w, PyDict_GET_SIZE(d));
  ctr_py_container(w, CTR_V_SEQ, tid, n);
  Py_ssize_t pos = 0;
  PyObject *k, *v;
  uint32_t done = 0;
  while (done < n && PyDict_Next(d, &pos, &k, &v)) {
    ctr_py_container(w, CTR_V_TUPLE, pair, 2);
    ctr_py_walk_value(w, k);
    ctr_py_walk_value(w, v);
    done++;
  }
  /* The count was announced up front; stay well-formed whatever happens. */
  for (; done < n; done++)
    ctr_py_none(w);
}

static void ctr_py_set(ctr_py_walk_t *w, PyObject *s) {
  uint32_t tid = ctr_py_type_of(w, CTR_TK_SEQ, s);
  uint32_t n = ctr_py_count(w, PySet_GET_SIZE(s));
  ctr_py_container(w, CTR_V_SEQ, tid, n);
  uint32_t done = 0;
#if PY_VERSION_HEX >= 0x030D0000
  /* 3.13 hides _PySet_NextEntry. set's own iterator, called directly so
   * that a subclass's __iter__ does not run, reads the table the same way. */
  PyObject *it = PySet_Type.tp_iter(s);
  PyObject *k;
  while (it != NULL && done < n && (k = PyIter_Next(it)) != NULL) {
    ctr_py_walk_value(w, k);
    Py_DECREF(k);
    done++;
  }
  Py_XDECREF(it);
  PyErr_Clear();
#else
  Py_ssize_t pos = 0;
  PyObject *k;
  Py_hash_t h;
  while (done < n && _PySet_NextEntry(s, &pos, &k, &h)) {
    ctr_py_walk_value(w, k);
    done++;
  }
#endif
  for (; done < n; done++)
    ctr_py_none(w);
}

/* __slots__ members of v's class and its bases, in MRO order. */
typedef struct ctr_py_slots_s {
  const char *names[64];
  PyObject *values[64];
  uint32_t n;
} ctr_py_slots_t;

static void ctr_py_slots(PyObject *v, ctr_py_slots_t *sl, uint32_t cap) {
  sl->n = 0;
  PyObject *mro = Py_TYPE(v)->tp_mro;
  if (mro == NULL || !PyTuple_Check(mro))
    return;
  if (cap > 64)
    cap = 64;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(mro); i++) {
    PyTypeObject *t = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
    if (!(t->tp_flags & Py_TPFLAGS_HEAPTYPE) || t->tp_members == NULL)
      continue;
    for (PyMemberDef *m = t->tp_members; m->name != NULL; m++) {
      if (m->type != T_OBJECT_EX || strncmp(m->name, "__", 2) == 0)
        continue;
      PyObject *val = *(PyObject **)((char *)v + m->offset);
      if (val == NULL || sl->n >= cap)
        continue; /* an unset slot is no attribute */
      sl->names[sl->n] = m->name;
      sl->values[sl->n++] = val;
    }
  }
}

/* An object as a struct of its instance attributes, or "<Class object>". */
static void ctr_py_object(ctr_py_walk_t *w, PyObject *v) {
  PyObject *dict = NULL;
  if (Py_TYPE(v)->tp_dictoffset != 0) {
    /* Reads the dict slot (materialising a managed dict); no __dict__
     * descriptor or __getattribute__ is involved. */
    PyObject **dp = _PyObject_GetDictPtr(v);
    if (dp != NULL && *dp != NULL && PyDict_Check(*dp))
      dict = *dp;
    PyErr_Clear();
  }
  ctr_py_slots_t sl;
  ctr_py_slots(v, &sl, w->max_length);
  /* The str-keyed entries shown, read in one pass and kept for after the
   * head, which announces their count. */
  size_t room = w->max_length > sl.n ? w->max_length - sl.n : 0;
  if (dict == NULL)
    room = 0;
  else if (room > (size_t)PyDict_GET_SIZE(dict))
    room = (size_t)PyDict_GET_SIZE(dict);
  PyObject *local[2 * CTR_PY_LENGTH_DEFAULT];
  PyObject **kv = room <= CTR_PY_LENGTH_DEFAULT ? local
                                                : malloc(2 * room * sizeof *kv);
  if (kv == NULL) {
    ctr_py_text(w, CTR_V_ERROR, ctr_py_type_of(w, CTR_TK_STRUCT, v),
                "out of memory", 13);
    return;
  }
  uint32_t nd = 0;
  Py_ssize_t pos = 0;
  PyObject *k, *val;
  while (nd < room && PyDict_Next(dict, &pos, &k, &val)) {
    if (PyUnicode_Check(k)) {
      kv[2 * nd] = k; /* borrowed: no code runs until they are packed */
      kv[2 * nd + 1] = val;
      nd++;
    }
  }
  if (nd + sl.n == 0) {
    ctr_py_raw_class(w, v);
  } else {
    /* Names are declared on the batch and values go to scratch, which is
     * appended after it: a name can be declared right before its value. */
    ctr_py_container(w, CTR_V_STRUCT, ctr_py_type_of(w, CTR_TK_STRUCT, v),
                     nd + sl.n);
    for (uint32_t i = 0; i < nd; i++) {
      ctr_py_field(w, ctr__py_varname_id_obj(w->decl, kv[2 * i]));
      ctr_py_walk_value(w, kv[2 * i + 1]);
    }
    for (uint32_t j = 0; j < sl.n; j++) {
      ctr_py_field(w, ctr__py_varname_id(w->decl, sl.names[j],
                                         strlen(sl.names[j])));
      ctr_py_walk_value(w, sl.values[j]);
    }
  }
  if (kv != local)
    free(kv);
}

static void ctr_py_exception(ctr_py_walk_t *w, PyObject *v) {
  /* Only the class name: the message may need str(), which allocates, and
   * we are inside the batch lock here. */
  const char *name = Py_TYPE(v)->tp_name;
  ctr_py_raw_text(w, v, CTR_PY_LIT("<"), name, strnlen(name, 250),
                  CTR_PY_LIT(">"));
}

/* Values that need no recursion. Returns false for containers and objects.
 * The checks that read a type flag or compare the type come first; the
 * types of all branches have layouts no class can combine, so the order
 * changes nothing else. */
static bool ctr_py_scalar(ctr_py_walk_t *w, PyObject *v) {
  if (v == Py_None) {
    ctr_py_none(w);
  } else if (PyBool_Check(v)) {
    ctr_py_scalar_t sc = {.vkind = CTR_V_BOOL,
                          .tid = ctr_py_type_of(w, CTR_TK_BOOL, v),
                          .u.b = v == Py_True};
    ctr_py_plain_value(w, &sc);
  } else if (PyLong_Check(v)) {
    ctr_py_integer(w, v);
  } else if (PyUnicode_Check(v)) {
    ctr_py_string(w, v);
  } else if (PyFunction_Check(v)) {
    ctr_py_raw_named(w, v, CTR_PY_LIT("<function "),
                     ((PyFunctionObject *)v)->func_qualname);
  } else if (PyMethod_Check(v) && PyFunction_Check(PyMethod_GET_FUNCTION(v))) {
    ctr_py_raw_named(
        w, v, CTR_PY_LIT("<bound method "),
        ((PyFunctionObject *)PyMethod_GET_FUNCTION(v))->func_qualname);
  } else if (PyType_Check(v)) {
    const char *name = ((PyTypeObject *)v)->tp_name;
    ctr_py_raw_text(w, v, CTR_PY_LIT("<class '"), name, strnlen(name, 250),
                    CTR_PY_LIT("'>"));
  } else if (PyBytes_Check(v)) {
    Py_ssize_t n = PyBytes_GET_SIZE(v);
    ctr_py_text(w, CTR_V_STRING, ctr_py_type_of(w, CTR_TK_STRING, v),
                PyBytes_AS_STRING(v),
                (size_t)n > w->max_string ? w->max_string : (size_t)n);
  } else if (PyExceptionInstance_Check(v)) {
    ctr_py_exception(w, v);
  } else if (PyFloat_Check(v)) {
    ctr_py_scalar_t sc = {.vkind = CTR_V_FLOAT,
                          .tid = ctr_py_type_of(w, CTR_TK_FLOAT, v),
                          .u.f = PyFloat_AS_DOUBLE(v)};
    ctr_py_plain_value(w, &sc);
  } else if (PyByteArray_Check(v)) {
    Py_ssize_t n = PyByteArray_GET_SIZE(v);
    ctr_py_text(w, CTR_V_STRING, ctr_py_type_of(w, CTR_TK_STRING, v),
                PyByteArray_AS_STRING(v),
                (size_t)n > w->max_string ? w->max_string : (size_t)n);
  } else if (PyModule_Check(v)) {
    PyObject *d = PyModule_GetDict(v);
    PyObject *name = d ? PyDict_GetItemString(d, "__name__") : NULL;
    ctr_py_raw_named(w, v, CTR_PY_LIT("<module "), name);
  } else if (PyCFunction_Check(v)) {
    const char *name = ((PyCFunctionObject *)v)->m_ml->ml_name;
    ctr_py_raw_text(w, v, CTR_PY_LIT("<built-in function "), name,
                    strnlen(name, 250), CTR_PY_LIT(">"));
  } else if (PyComplex_CheckExact(v)) {
    Py_complex c = PyComplex_AsCComplex(v);
    char buf[80];
    int n = snprintf(buf, sizeof buf, "(%.17g%+.17gj)", c.real, c.imag);
    ctr_py_raw(w, v, buf, (size_t)n);
  } else {
    return false;
  }
  return true;
}

/* True when v is opened as a container or an object without asking
 * ctr_py_scalar: the exact containers, and instances of classes whose
 * only static base is object (a class deriving from float, bytes, a
 * module or a builtin function has that type in its tp_base chain: their
 * instance layouts demand it). Saves the subtype walks ctr_py_scalar
 * makes for the values object-heavy programs hold most. */
static bool ctr_py_opened(PyTypeObject *tp) {
  if (tp == &PyList_Type || tp == &PyDict_Type || tp == &PyTuple_Type)
    return true;
  if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE) ||
      (tp->tp_flags & (Py_TPFLAGS_LONG_SUBCLASS | Py_TPFLAGS_UNICODE_SUBCLASS |
                       Py_TPFLAGS_BYTES_SUBCLASS | Py_TPFLAGS_TYPE_SUBCLASS |
                       Py_TPFLAGS_BASE_EXC_SUBCLASS)))
    return false;
  PyTypeObject *base = tp;
  while (base != NULL && (base->tp_flags & Py_TPFLAGS_HEAPTYPE))
    base = base->tp_base;
  return base == &PyBaseObject_Type;
}

/* A REF to v when it was closed at this remaining depth earlier in the
 * message and the budget has room for all it holds (v counted already). */
static bool ctr_py_seen(ctr_py_walk_t *w, PyObject *v, uint32_t left) {
  uint32_t room = w->budget != 0 ? w->budget - g_msg.nodes + 1 : UINT32_MAX;
  uint32_t nodes;
  if (!ctr_vref_seen(w->sb, v, left, room, &nodes))
    return false;
  g_msg.nodes += nodes - 1;
  return true;
}

/* A container or an object: walked, then closed through ctr_vref. */
static void ctr_py_open(ctr_py_walk_t *w, PyObject *v) {
  for (uint32_t i = 0; i < w->depth; i++) {
    if (w->visiting[i] == v) {
      ctr_py_raw(w, v, "<cycle>", 7);
      w->cut = true;
      return;
    }
  }
  if (w->depth >= w->max_depth) {
    ctr_py_raw_class(w, v);
    w->cut = true;
    return;
  }
  uint32_t left = w->max_depth - w->depth;
  if (w->refs && ctr_py_seen(w, v, left))
    return;
  size_t mark = ctr_vref_open(w->sb);
  uint32_t nodes = g_msg.nodes;
  bool cut = w->cut;
  w->cut = false;
  w->visiting[w->depth++] = v;
  if (PyList_Check(v)) {
    uint32_t n = ctr_py_count(w, PyList_GET_SIZE(v));
    ctr_py_container(w, CTR_V_SEQ, ctr_py_type_of(w, CTR_TK_SEQ, v), n);
    ctr_py_items(w, ((PyListObject *)v)->ob_item, n);
  } else if (PyTuple_Check(v)) {
    uint32_t n = ctr_py_count(w, PyTuple_GET_SIZE(v));
    ctr_py_container(w, CTR_V_TUPLE, ctr_py_type_of(w, CTR_TK_TUPLE, v), n);
    ctr_py_items(w, ((PyTupleObject *)v)->ob_item, n);
  } else if (PyDict_Check(v)) {
    ctr_py_dict(w, v);
  } else if (PyAnySet_Check(v)) {
    ctr_py_set(w, v);
  } else {
    ctr_py_object(w, v);
  }
  w->depth--;
  bool alone = w->depth == 0 || !w->cut;
  ctr_vref_close(w->sb, mark, alone ? v : NULL, left, g_msg.nodes - nodes + 1);
  w->cut = w->cut || cut;
}

static void ctr_py_walk_value(ctr_py_walk_t *w, PyObject *v) {
  if (w->budget != 0 && g_msg.nodes >= w->budget) {
    ctr_py_text(w, CTR_V_ERROR, ctr_py_type_of(w, CTR_TK_ERROR, v),
                "<value budget reached>", 22);
    return;
  }
  g_msg.nodes++;
  PyTypeObject *tp = Py_TYPE(v);
  if (ctr_py_opened(tp)) {
    ctr_py_open(w, v);
    return;
  }
  size_t mark = ctr_vref_open(w->sb);
  if (!ctr_py_scalar(w, v)) {
    ctr_py_open(w, v);
    return;
  }
  /* Long strings (and long RAW texts) repeat from step to step too. */
  if (w->sb->size - mark >= CTR_PY_REF_TEXT)
    ctr_vref_close(w->sb, mark, NULL, 0, 1);
}

static uint32_t ctr_py_max_string(const ctr_welcome_t *s) {
  return s->max_string ? s->max_string : CTR_PY_STRING_DEFAULT;
}

void ctr__py_value_pack(msgpack_packer *decl, msgpack_packer *out,
                        PyObject *v) {
  const ctr_welcome_t *s = ctr_client_settings();
  ctr_py_walk_t w;
  w.decl = decl;
  w.out = out;
  w.sb = (msgpack_sbuffer *)out->data;
  w.max_depth = s->max_depth ? s->max_depth : CTR_PY_DEPTH_DEFAULT;
  if (w.max_depth > CTR_PY_DEPTH_HARD)
    w.max_depth = CTR_PY_DEPTH_HARD;
  w.max_length = s->max_length ? s->max_length : CTR_PY_LENGTH_DEFAULT;
  w.max_string = ctr_py_max_string(s);
  w.budget = s->max_nodes;
  w.refs = s->refs != 0;
  w.depth = 0;
  w.cut = false;
  ctr_py_walk_value(&w, v);
}

/* ---- scalars encoded in place --------------------------------------------- */

/* The same wire values ctr_py_scalar packs, for the types most variables
 * hold: read first (declaring the type), written later in one piece. */
bool ctr__py_scalar_read(msgpack_packer *decl, PyObject *v,
                         ctr_py_scalar_t *out) {
  PyTypeObject *tp = Py_TYPE(v);
  if (tp == &PyLong_Type) {
    int overflow = 0;
    long long i = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow != 0)
      return false; /* a BIGINT */
    out->vkind = CTR_V_INT;
    out->tid = ctr__py_type_id_of(decl, CTR_TK_INT, tp);
    out->u.i = i;
  } else if (v == Py_None) {
    out->vkind = CTR_V_NONE;
    out->tid = ctr__py_type_id_of(decl, CTR_TK_NONE, tp);
  } else if (tp == &PyBool_Type) {
    out->vkind = CTR_V_BOOL;
    out->tid = ctr__py_type_id_of(decl, CTR_TK_BOOL, tp);
    out->u.b = v == Py_True;
  } else if (tp == &PyFloat_Type) {
    out->vkind = CTR_V_FLOAT;
    out->tid = ctr__py_type_id_of(decl, CTR_TK_FLOAT, tp);
    out->u.f = PyFloat_AS_DOUBLE(v);
  } else if (tp == &PyUnicode_Type && PyUnicode_IS_COMPACT_ASCII(v)) {
    size_t n = (size_t)PyUnicode_GET_LENGTH(v);
    const ctr_welcome_t *s = ctr_client_settings();
    size_t max = ctr_py_max_string(s);
    if (s->refs != 0 && (n < max ? n : max) >= CTR_PY_REF_SCALAR)
      return false; /* long: through ctr_vref */
    out->vkind = CTR_V_STRING;
    out->tid = ctr__py_type_id_of(decl, CTR_TK_STRING, tp);
    out->u.t.s = (const char *)PyUnicode_DATA(v);
    out->u.t.n = n > max ? max : n;
  } else {
    return false;
  }
  return true;
}

size_t ctr__py_scalar_size(const ctr_py_scalar_t *s) {
  return CTR_ENC_SCALAR_MAX +
         (s->vkind == CTR_V_STRING ? CTR_ENC_HEAD_MAX + s->u.t.n : 0);
}

unsigned char *ctr__py_scalar_write(unsigned char *p,
                                    const ctr_py_scalar_t *s) {
  switch (s->vkind) {
  case CTR_V_INT:
    p = ctr_enc_value_head(p, 3, CTR_V_INT, s->tid);
    return ctr_enc_int(p, s->u.i);
  case CTR_V_NONE:
    return ctr_enc_value_head(p, 2, CTR_V_NONE, s->tid);
  case CTR_V_BOOL:
    p = ctr_enc_value_head(p, 3, CTR_V_BOOL, s->tid);
    return ctr_enc_bool(p, s->u.b);
  case CTR_V_FLOAT:
    p = ctr_enc_value_head(p, 3, CTR_V_FLOAT, s->tid);
    return ctr_enc_double(p, s->u.f);
  default:
    p = ctr_enc_value_head(p, 3, CTR_V_STRING, s->tid);
    p = ctr_enc_text_head(p, true, s->u.t.n);
    memcpy(p, s->u.t.s, s->u.t.n);
    return p + s->u.t.n;
  }
}

/* ---- exceptions ------------------------------------------------------------ */

/* True when str() of `o` is computed by CPython alone: exact builtin
 * scalars, and tuples of them. */
static bool ctr_py_plain(PyObject *o, int depth) {
  if (o == Py_None || PyUnicode_CheckExact(o) || PyLong_CheckExact(o) ||
      PyFloat_CheckExact(o) || PyBool_Check(o) || PyBytes_CheckExact(o))
    return true;
  if (PyTuple_CheckExact(o) && depth < 2) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(o); i++)
      if (!ctr_py_plain(PyTuple_GET_ITEM(o, i), depth + 1))
        return false;
    return true;
  }
  return false;
}

/* str(exc) runs no program code when the class's __str__ is a builtin one
 * (a class without its own __str__ inherits the slot of its first builtin
 * base) and everything that __str__ formats is plain. */
static bool ctr_py_exc_str_safe(PyObject *exc) {
  PyTypeObject *tp = Py_TYPE(exc);
  PyTypeObject *base = tp;
  while (base != NULL && (base->tp_flags & Py_TPFLAGS_HEAPTYPE))
    base = base->tp_base;
  if (base == NULL || base->tp_str != tp->tp_str)
    return false;
  PyBaseExceptionObject *be = (PyBaseExceptionObject *)exc;
  if (be->args == NULL || !ctr_py_plain(be->args, 0))
    return false;
  if (PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_OSError)) {
    PyOSErrorObject *oe = (PyOSErrorObject *)exc;
    if ((oe->filename && !ctr_py_plain(oe->filename, 0)) ||
        (oe->filename2 && !ctr_py_plain(oe->filename2, 0)))
      return false;
  }
  return true;
}

size_t ctr__py_exc_message(PyObject *exc, char *buf, size_t cap) {
  buf[0] = '\0';
  if (!ctr_py_exc_str_safe(exc))
    return 0;
  size_t len = 0;
  PyObject *et, *ev, *etb;
  PyErr_Fetch(&et, &ev, &etb);
  PyObject *s = PyObject_Str(exc);
  if (s != NULL && PyUnicode_Check(s)) {
    const char *p;
    Py_ssize_t pn;
    PyObject *b = ctr__py_str_bytes(s, (Py_ssize_t)cap, &p, &pn);
    if (b != NULL) {
      len = (size_t)pn < cap - 1 ? (size_t)pn : cap - 1;
      memcpy(buf, p, len);
      buf[len] = '\0';
      Py_DECREF(b);
    }
  }
  Py_XDECREF(s);
  PyErr_Clear();
  PyErr_Restore(et, ev, etb);
  return len;
}
