/* ctr_py.h: pieces of the Python shim shared between its source files.
 *
 * Everything here is internal to the _ctrec extension (compiled with hidden
 * visibility); only PyInit__ctrec is exported. Every function runs with the
 * GIL held, which is also what protects the shim's global state. */
#ifndef CTR_PY_H
#define CTR_PY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctr_client.h"
#include "ctr_enc.h"
#include "ctr_filter.h"

/* 3.12 renamed the code-extra functions (the old names are deprecated). */
#if PY_VERSION_HEX >= 0x030C0000
#define ctr__py_code_get_extra PyUnstable_Code_GetExtra
#define ctr__py_code_set_extra PyUnstable_Code_SetExtra
#define ctr__py_request_extra PyUnstable_Eval_RequestCodeExtraIndex
/* 3.12+ record through sys.monitoring (ctr_py_monitor.c); 3.11 through a
 * C trace function. */
#define CTR_PY_MONITORING 1
#else
#define ctr__py_code_get_extra _PyCode_GetExtra
#define ctr__py_code_set_extra _PyCode_SetExtra
#define ctr__py_request_extra _PyEval_RequestCodeExtraIndex
#define CTR_PY_MONITORING 0
#endif

/* ---- byte-string tables (ctr_py_names.c) ------------------------------- */

typedef struct ctr_py_entry_s {
  char *key; /* owned copy; NULL marks a free slot */
  size_t len;
  uint64_t hash;
  uintptr_t value;
} ctr_py_entry_t;

/* Open-addressing map from byte strings (which may contain NUL) to values. */
typedef struct ctr_py_map_s {
  ctr_py_entry_t *slots;
  size_t cap; /* a power of two, or 0 before the first insert */
  size_t count;
} ctr_py_map_t;

/* FNV-1a of n bytes. */
uint64_t ctr__py_hash(const char *key, size_t n);
/* Finds `key`; returns its slot, or NULL when it is absent. */
ctr_py_entry_t *ctr__py_map_find(ctr_py_map_t *m, const char *key, size_t n);
/* Inserts an absent key; returns 0 or CTR_ENOMEM. */
int ctr__py_map_put(ctr_py_map_t *m, const char *key, size_t n,
                    uintptr_t value);
/* Drops every entry (the values are not freed). */
void ctr__py_map_clear(ctr_py_map_t *m);

/* ---- interning (ctr_py_trace.c) ------------------------------------------ */

/* Each declares its record on `pk` (the batch packer, inside begin/end) the
 * first time a name is seen in the current connection. */
uint32_t ctr__py_type_id(msgpack_packer *pk, int kind, const char *name,
                         size_t n);
/* The same for a type object's tp_name, cached for static types. */
uint32_t ctr__py_type_id_of(msgpack_packer *pk, int kind,
                            const PyTypeObject *tp);
uint32_t ctr__py_varname_id(msgpack_packer *pk, const char *name, size_t n);
/* The same for a str object; "?" for anything else. */
uint32_t ctr__py_varname_id_obj(msgpack_packer *pk, PyObject *name);

/* ---- fast locals (ctr_py_frame.c) --------------------------------------- */

/* Stores the values of a running frame's first `max` fast-locals slots (in
 * co_localsplusnames order, cells and free variables read through) in
 * out[], borrowed, NULL for an unbound one; returns how many it stored.
 * A NULL frame is the thread's current one, read without making a frame
 * object of it (sys.monitoring callbacks get none). */
Py_ssize_t ctr__py_frame_locals(PyFrameObject *frame, PyObject **out,
                                Py_ssize_t max);

/* The identity of a running frame (the interpreter's record of it, which
 * exists whether or not a frame object was made), of the current frame
 * when `frame` is NULL. */
const void *ctr__py_frame_id(PyFrameObject *frame);
/* The globals of a running frame (of the current one when `frame` is
 * NULL), borrowed; NULL when there is none. */
PyObject *ctr__py_frame_globals(PyFrameObject *frame);
/* The instruction the current frame runs, NULL without a frame. */
const void *ctr__py_frame_instr(void);
/* The identity of the current frame's caller, NULL when it has none. */
const void *ctr__py_caller_id(void);

/* ---- tracing (ctr_py_trace.c) ------------------------------------------- */

/* Prepares the tables. `shim_dirs` lists the shim's own folder, whose
 * code is never recorded; `lib_dirs` those of the standard library and
 * installed packages, whose code (like "<frozen ...>" modules) is the
 * program's only where the rules record it; `thread_hook` is the callable
 * that threading.settrace gets. */
int ctr__py_trace_setup(PyObject *shim_dirs, PyObject *lib_dirs,
                        PyObject *thread_hook);
/* Code `co` was compiled from `text` (an exec, eval or compile string, or
 * a file compiled again): it and the code nested in it are shown under a
 * path carrying that text. A string's code gets "<string:N>" ("<pd>":
 * "<pd:N>"), one per distinct text; a file's code, when its text differs
 * from the file's first version, "<reload:name.py:N>". */
void ctr__py_code_text(PyCodeObject *co, const char *text, size_t n);
/* Installs the trace function on the calling thread. */
void ctr__py_trace_install(void);
/* The trace function itself (Py_tracefunc). */
int ctr__py_trace(PyObject *obj, PyFrameObject *frame, int what,
                  PyObject *arg);
/* sys.settrace was called on this thread with a trace function of the
 * program's (true), which replaced the recorder's, or with None (false):
 * the recorder takes the thread back. 3.11 only. */
void ctr__py_trace_handover(bool program);
/* Removes it from the calling thread and ignores events from others. */
void ctr__py_trace_stop(void);
bool ctr__py_trace_on(void);
/* False while a pause keeps the trace function out of every thread. */
bool ctr__py_trace_hooked(void);
/* The exit status the program's end implies (0, a sys.exit code, 1). */
int64_t ctr__py_exit_status(void);
/* Records output (kind 0 stdout, 2 stderr) of the calling thread. Writes
 * are joined into one EVENT per line; ctr__py_flush_output packs a partial
 * line (before os._exit, at the end). */
void ctr__py_record_output(int kind, const char *s, size_t n);
void ctr__py_flush_output(void);

/* ---- the program's API (ctr_py_trace.c): ctrec.mark, pause, resume ------ */

/* A MARK on the calling thread at its current step; nothing while the
 * program is not being recorded. */
void ctr__py_api_mark(const char *s, size_t n);
/* The program pauses (false) or resumes (true) its own recording. */
void ctr__py_api_record(bool on);
/* In a fork child (os.register_at_fork): a pause inherited from the
 * parent does not keep the child's own session from recording. */
void ctr__py_after_fork(void);

/* ---- the recorder (ctr_py_trace.c) -------------------------------------- */

/* One code object whose local events the shim has switched on
 * (ctr_py_monitor.c). */
typedef struct ctr_py_mon_code_s ctr_py_mon_code_t;

/* "Class: message" kept for the RETURN of a frame an exception unwinds. */
#define CTR_PY_EXC_TEXT 512

enum {
  CTR_PY_F_SENT = 1,      /* CALL was sent for this frame */
  CTR_PY_F_MAIN = 2,      /* the __main__ module's frame */
  CTR_PY_F_THREADING = 4, /* the threading module's body */
  CTR_PY_F_PROG = 8,      /* the program's code: CALL is due unless filtered */
  CTR_PY_F_TREE = 16,     /* in a subtree the daemon skips (push-down) */
};

typedef struct ctr_py_path_s {
  bool skip; /* never recorded: the shim's own folder, or no usable path */
  /* The standard library or installed packages (and <frozen ...>): the
   * program's only where the rules record it. */
  bool lib;
  bool pseudo; /* no file: recorded only when recorded code runs it */
  bool real_file;
  /* A real file: the hash of its text as first compiled or sent, which a
   * reloaded version's differs from. */
  bool hashed;
  uint64_t hash;
  const char *text; /* SOURCE of a path of a string's (owned elsewhere) */
  size_t text_len;
  char *abs; /* absolute path, or a pseudo path like "<string>" */
  size_t len;
  uint32_t id;
  uint32_t gen; /* generation `id` belongs to; 0 = not declared */
} ctr_py_path_t;

typedef struct ctr_py_code_s {
  ctr_py_path_t *path;
  bool skip;
  bool pseudo;
  bool is_module;
  char *name; /* co_qualname */
  size_t name_len;
  char *module; /* its globals' __name__, or NULL (ctr_py_code_module) */
  size_t module_len;
  bool module_done;
  int64_t line;
  uint32_t func_id;
  uint32_t func_gen;
  PyObject *names; /* tuple of local names (optimized code only) */
  uint32_t *name_ids;
  uint32_t names_gen;
  Py_ssize_t *args; /* indices into names, in declaration order */
  Py_ssize_t nargs;
  int action;          /* ctr_client_decide_in for this code */
  uint32_t action_gen; /* filter generation `action` belongs to, +1 */
  ctr_py_mon_code_t *mon; /* its local events (sys.monitoring), or NULL */
} ctr_py_code_t;

typedef struct ctr_py_frame_s {
  ctr_py_code_t *code;
  PyCodeObject *co;  /* identity only: sys.monitoring names the code */
  const void *frame; /* identity only: ctr__py_frame_id */
  uint8_t flags;
} ctr_py_frame_t;

typedef struct ctr_py_thread_s {
  uint64_t wire_id;
  ctr_py_frame_t *stack;
  size_t n;
  size_t cap;
  size_t overflow; /* frames that found no room on the stack */
  const void *last_exc;
  char exc_text[CTR_PY_EXC_TEXT];
  bool in_pack;
  bool foreign;   /* the program's own trace function runs here (3.11) */
  uint32_t epoch; /* the resume this stack was rebuilt for */
  struct ctr_py_thread_s *next;
} ctr_py_thread_t;

/* The exception a callback may find pending, set aside while the shim
 * works: nothing the shim does may leave an exception behind or eat the
 * program's. One is pending only on some exception events, so the common
 * case costs a check. */
typedef struct ctr_py_err_s {
  PyObject *type, *value, *tb;
  bool pending;
} ctr_py_err_t;

/* The calling thread's record, made on first use; NULL without memory. */
ctr_py_thread_t *ctr__py_thread(void);
/* The entry of t's innermost frame, NULL when there is none. */
ctr_py_frame_t *ctr__py_top(ctr_py_thread_t *t);
/* What the shim knows of code `co`, made on first use; NULL when it
 * cannot be recorded at all. */
ctr_py_code_t *ctr__py_code_info(PyCodeObject *co);
/* Sets aside and puts back an exception pending around the shim's work. */
void ctr__py_err_save(ctr_py_err_t *e);
void ctr__py_err_restore(ctr_py_err_t *e);
/* Called before a thread packs anything: false while nothing may be sent.
 * After a resume the thread first sends its stack, from `inner` (NULL: the
 * current frame) outwards, or from its caller when `entered`. */
bool ctr__py_ready(ctr_py_thread_t *t, PyFrameObject *inner, bool entered);
/* The flags of a frame entered under `caller`; *send says whether its CALL
 * is due. */
uint8_t ctr__py_classify(const ctr_py_frame_t *caller, PyFrameObject *frame,
                         PyCodeObject *co, ctr_py_code_t *ci, bool *send);
/* The events, for the trace function and the sys.monitoring callbacks
 * alike; a NULL frame is the current one. */
void ctr__py_on_call(ctr_py_thread_t *t, PyFrameObject *frame,
                     PyCodeObject *co, ctr_py_code_t *ci,
                     const ctr_py_frame_t *caller);
void ctr__py_on_line(ctr_py_thread_t *t, PyFrameObject *frame,
                     ctr_py_code_t *ci, int line);
void ctr__py_on_return(ctr_py_thread_t *t, PyFrameObject *frame,
                       PyObject *arg);
void ctr__py_on_exception(ctr_py_thread_t *t, const ctr_py_frame_t *top,
                          PyObject *exc, PyObject *tb);
/* A line of `top` (which sent its CALL) as one STEP straight into the batch
 * when no variables are due; false when ctr__py_on_line must run. */
bool ctr__py_quick_line(ctr_py_thread_t *t, const ctr_py_frame_t *top,
                        int line);
/* Whether sys.monitoring follows co (switching its local events to
 * match). 3.12+ only. */
bool ctr__py_mon_follow(PyCodeObject *co, ctr_py_code_t *ci);

/* ---- sys.monitoring (ctr_py_monitor.c, 3.12+) ------------------------------ */

#if CTR_PY_MONITORING
/* Takes the tool id (DEBUGGER_ID, else PROFILER_ID) before recording
 * starts; when both are taken it says so once on stderr and fails. */
int ctr__py_mon_claim(void);
/* Registers the callbacks and switches the global events on. */
int ctr__py_mon_install(void);
/* Switches co's local events on (now, or at the next resume while events
 * are off); NULL when that failed. */
ctr_py_mon_code_t *ctr__py_mon_track(PyCodeObject *co);
/* Switches them off again and forgets co. */
void ctr__py_mon_untrack(ctr_py_mon_code_t *m);
/* Forgets co without touching it: it is being deallocated. */
void ctr__py_mon_forget(ctr_py_mon_code_t *m);
/* Every event on or off: global events and each followed code's own. */
void ctr__py_mon_hooks(bool on);
/* Locations switched off with DISABLE report again (new code rules). */
void ctr__py_mon_restart(void);
/* Everything off and the tool id given back (the end of recording). */
void ctr__py_mon_stop(void);
/* The benchmark's baseline: do-nothing callbacks for the same events. */
int ctr__py_mon_empty(bool on);

#endif

/* ---- values (ctr_py_value.c) --------------------------------------------- */

/* Starts the capture of a message (a VARS, a CALL's arguments, a RETURN,
 * one STACK frame): the value budget (WELCOME max_nodes) and ctr_vref's
 * identities count per message. */
void ctr__py_value_message(void);

/* Captures one value, counted against the message's budget. Declarations go to `decl` (the batch); the value bytes
 * go to `out` (a scratch packer) because a message's head must be packed
 * after every id it refers to has been declared. Runs no Python code that a
 * program can define: no __repr__, __eq__, __hash__, properties or
 * __getattr__. */
void ctr__py_value_pack(msgpack_packer *decl, msgpack_packer *out,
                        PyObject *v);

/* The message of an exception, str(exc), written to buf (always
 * NUL-terminated; cap > 0) and its length returned. It is computed only when
 * str() cannot run program code (see the definition); otherwise it is
 * empty. Call it outside ctr_client_begin/end: str() allocates. */
size_t ctr__py_exc_message(PyObject *exc, char *buf, size_t cap);

/* A scalar value (None, bool, an int that fits 64 bits, float, ASCII str,
 * of exactly those types) read for ctr__py_scalar_write. */
typedef struct ctr_py_scalar_s {
  int vkind; /* CTR_V_NONE, BOOL, INT, FLOAT or STRING */
  uint32_t tid;
  union {
    int64_t i;
    double f;
    bool b;
    struct {
      const char *s; /* into the str object, which must stay alive */
      size_t n;
    } t;
  } u;
} ctr_py_scalar_t;

/* Values packed in at least this many bytes, long strings mostly, go
 * through ctr_vref when the daemon keeps definitions; shorter ones are
 * sent in full (a REF would save little). */
#define CTR_PY_REF_TEXT 64
/* ASCII strings of at least this many bytes then take the general path
 * (packed, they might reach CTR_PY_REF_TEXT). */
#define CTR_PY_REF_SCALAR (CTR_PY_REF_TEXT - CTR_ENC_SCALAR_MAX - CTR_ENC_HEAD_MAX)

/* Reads v into *out, declaring its type on `decl` when new; false when v
 * is not such a scalar, or a long string while the daemon keeps
 * definitions (then it goes through ctr__py_value_pack). */
bool ctr__py_scalar_read(msgpack_packer *decl, PyObject *v,
                         ctr_py_scalar_t *out);
/* The most bytes ctr__py_scalar_write takes for s. */
size_t ctr__py_scalar_size(const ctr_py_scalar_t *s);
/* Encodes s as the wire value ctr__py_value_pack would; returns the end. */
unsigned char *ctr__py_scalar_write(unsigned char *p,
                                    const ctr_py_scalar_t *s);

/* Bytes of a str object for the wire: the UTF-8 of at most `max_chars`
 * characters, lone surrogates passed through. Returns a new reference to a
 * bytes object (or NULL with no error set) and points *s and *n into it;
 * for pure-ASCII strings it returns a new reference to `str` itself and
 * points into its data. */
PyObject *ctr__py_str_bytes(PyObject *str, Py_ssize_t max_chars,
                            const char **s, Py_ssize_t *n);

#endif
