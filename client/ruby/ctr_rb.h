/* ctr_rb.h: pieces of the Ruby shim shared between its source files.
 *
 * Everything here is internal to ctrec.so (compiled with hidden visibility);
 * only Init_ctrec is exported. All functions run with the GVL held, which is
 * also what protects the shim's global state.
 *
 * ctr_rb_module.c   Init_ctrec, exit, fork, the shim's state
 * ctr_rb_names.c    ids shared with the daemon: types, varnames, paths, funcs
 * ctr_rb_eval.c     paths of eval'd and reloaded code
 * ctr_rb_stack.c    shadow stacks per fiber, frame locals, resume (STACK)
 * ctr_rb_pushdown.c the daemon's code rules, decided in the shim
 * ctr_rb_hooks.c    the event hook: STEP, VARS, CALL, RETURN, RAISE; pause
 * ctr_rb_tree.c     fast skip-tree: Ruby stops calling the hook in a tree
 * ctr_rb_value.c    Ruby values to wire values
 * ctr_rb_output.c   program output and uncaught exceptions */
#ifndef CTR_RB_H
#define CTR_RB_H

#include <ruby.h>
#include <ruby/debug.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctr_client.h"
#include "ctr_filter.h"

/* ---- shared types -------------------------------------------------------- */

typedef struct ctr_rb_path_s {
  bool skip;
  bool real_file;
  bool evalish;  /* "(eval)" or a made-up file name: one path per eval string */
  bool reloaded; /* a real file loaded again with other text (see evals) */
  uint32_t loads;  /* times this real file was compiled by load/require */
  st_index_t hash; /* hash of the file's text at its first load */
  char *abs;       /* absolute path, or a pseudo path like "<eval:3>" */
  size_t len;
  char *text; /* source of eval'd code, sent as its SOURCE */
  size_t text_len;
  uint32_t id;
  uint32_t gen;  /* generation `id` belongs to; 0 = not declared */
  int action;    /* pushed rules' decision for its top-level lines */
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
  ctr_rb_func_t *func;      /* set for known frames, unless path_skips */
  const ctr_rb_path_t *src; /* set for known frames: its code's path */
  bool sent;                /* a CALL was sent for it */
  bool known; /* the daemon sees a CALL for it without push-down */
  bool tree;  /* known with action skip-tree: counted in `trees` */
  bool block;
  int action; /* for known frames: the daemon's decision */
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

/* The state the hook reads on every event. */
typedef struct ctr_rb_state_s {
  int vmode;          /* enum ctr_values_mode: the daemon's record.values */
  uint32_t vmode_gen; /* filter generation vmode was read for, +1 */
  uint32_t gen;       /* client generation the tables were built for, +1 */
  bool hooked;        /* the full hook is installed (else the wake hook) */
  uint32_t epoch;     /* bumped at each resume: every stack is rebuilt */
  VALUE loader; /* frame of the Ruby-level require loading the shim, or 0 */
  uint64_t sent_thread; /* wire id of the last THREAD sent, or UINT64_MAX */
  ctr_rb_stack_t *cur;  /* stack of the last event */
  /* A message's values, packed after the ids they use are declared. */
  msgpack_sbuffer scratch_buf;
  msgpack_packer scratch;
} ctr_rb_state_t;

extern ctr_rb_state_t ctr__rb;

/* Method names the shim calls, interned once. */
typedef struct ctr_rb_ids_s {
  ID local_variables, local_variable_get, instance_method, parameters, attached,
      mesg, status, full_message, highlight, order, top, eval_script,
      instruction_sequence, each_child, signo, label, path, first_lineno,
      lineno, enable, target, of;
} ctr_rb_ids_t;

extern ctr_rb_ids_t ctr__rb_id;

/* ---- the shim (ctr_rb_module.c) ------------------------------------------ */

/* Ids are per connection: a new one (after a fork) starts them afresh. */
void ctr__rb_new_generation(uint32_t gen);

/* Runs on every event: the common case stays inline. */
static inline void ctr__rb_check_generation(void) {
  uint32_t gen = ctr_client_generation() + 1;
  uint32_t fgen;
  ctr_client_filter(&fgen);
  if (fgen + 1 != ctr__rb.vmode_gen) {
    ctr__rb.vmode = ctr_client_values();
    ctr__rb.vmode_gen = fgen + 1;
  }
  if (gen != ctr__rb.gen)
    ctr__rb_new_generation(gen);
}

/* Prepends a module (anonymous: the program sees no new constant) with one
 * C method to `target`, public or private. */
void ctr__rb_wrap(VALUE target, const char *name, VALUE (*fn)(ANYARGS),
                  int arity, bool private);

/* ---- names (ctr_rb_names.c) ---------------------------------------------- */

/* Makes the tables; `cwd` resolves relative paths. */
void ctr__rb_names_init(const char *cwd);
/* Forgets every id: a new connection declares everything again. */
void ctr__rb_names_reset(uint32_t gen);
/* Marks the VALUEs the tables use as keys. */
void ctr__rb_names_mark(void);

/* Interning of the ids that a connection shares with the daemon. Each
 * declares its record on `pk` (the batch packer, inside begin/end) the first
 * time a name is seen in the current generation. */
uint32_t ctr__rb_type_id(msgpack_packer *pk, int kind, const char *name,
                         size_t n);
uint32_t ctr__rb_varname_id(msgpack_packer *pk, const char *name, size_t n);
uint32_t ctr__rb_varname_id_sym(msgpack_packer *pk, ID id);
/* Type of the instances of `klass`, shown with its class path. */
uint32_t ctr__rb_type_id_class(msgpack_packer *pk, int kind, VALUE klass);
/* Variable and type named by a string literal (its address is the cache
 * key). */
uint32_t ctr__rb_varname_id_lit(msgpack_packer *pk, const char *lit);
uint32_t ctr__rb_type_id_lit(msgpack_packer *pk, int kind, const char *lit);

/* The record of a Ruby path string (kept for the process); NULL when out of
 * memory. */
ctr_rb_path_t *ctr__rb_path_info(VALUE path);
/* Declares the path (and its text) in this connection when needed. */
uint32_t ctr__rb_path_id(msgpack_packer *pk, ctr_rb_path_t *p);
/* A table key of bytes, for tables of names that may contain NUL. */
typedef struct ctr_rb_key_s {
  size_t len;
  char data[];
} ctr_rb_key_t;
extern const struct st_hash_type ctr__rb_key_type;

/* The function of a frame; NULL when out of memory. */
ctr_rb_func_t *ctr__rb_func_lookup(VALUE klass, VALUE mid, VALUE path,
                                   long line, bool block,
                                   const ctr_rb_path_t *src);
ctr_rb_func_t *ctr__rb_func_info(rb_trace_arg_t *targ, VALUE path, bool block,
                                 const ctr_rb_path_t *src);
/* Declares the function (FUNC) in this connection when needed. */
uint32_t ctr__rb_func_id(msgpack_packer *pk, ctr_rb_func_t *f, uint32_t pid);

/* ---- eval'd code (ctr_rb_eval.c) ----------------------------------------- */

/* Starts watching compiled code. */
void ctr__rb_eval_init(void);
/* The path of the eval string or reloaded file whose iseq (a
 * RubyVM::InstructionSequence) is `iseqw`; NULL for others. */
ctr_rb_path_t *ctr__rb_eval_path_of(VALUE iseqw);
/* The same for the frame running now. */
ctr_rb_path_t *ctr__rb_eval_path(void);

/* ---- stacks (ctr_rb_stack.c) --------------------------------------------- */

void ctr__rb_stacks_init(void);
void ctr__rb_stacks_mark(void);
/* Frames opened before a fork belong to the parent's trace. */
void ctr__rb_stacks_unsend(void);
/* The current fiber's stack; NULL when out of memory. */
ctr_rb_stack_t *ctr__rb_stack_get(void);
void ctr__rb_stack_clear(ctr_rb_stack_t *s);
void ctr__rb_stack_free(ctr_rb_stack_t *s);
/* Frees the stack of a fiber other than the main one once it is empty. */
void ctr__rb_stack_release(ctr_rb_stack_t *s);
/* Frees the stacks of the fibers of a thread that ended. */
void ctr__rb_stacks_drop_thread(VALUE th);
/* Pushes a frame (NULL when out of memory); pops one and returns whether a
 * CALL was sent for it. */
ctr_rb_frame_t *ctr__rb_push(ctr_rb_stack_t *s);
bool ctr__rb_pop(ctr_rb_stack_t *s);
/* Whether block frame `b` runs in the frame that created it. */
bool ctr__rb_block_at_home(const ctr_rb_stack_t *s, const ctr_rb_frame_t *b);
/* Identity of the code running in the current frame. */
VALUE ctr__rb_frame_id(void);
/* Packs THREAD when the events come from another fiber than last time. */
void ctr__rb_pack_thread(msgpack_packer *pk, const ctr_rb_stack_t *s);
/* Rebuilds `s` from the live Ruby stack and sends it as STACK. */
void ctr__rb_resync(ctr_rb_stack_t *s, bool entering);
/* Forgets every stack's fibers (every fork child, and every pause). */
void ctr__rb_stacks_clear(void);

/* A frame's locals: names and values, read before the batch is taken. */
typedef struct ctr_rb_gather_s {
  VALUE binding;
  VALUE names; /* Array of Symbol */
  VALUE vals;  /* the stack's scratch Array: values in the same order */
} ctr_rb_gather_t;

bool ctr__rb_frame_vars(rb_trace_arg_t *targ, ctr_rb_stack_t *s,
                        ctr_rb_frame_t *f, VALUE path, VALUE known,
                        ctr_rb_gather_t *ga);
bool ctr__rb_read_values(ctr_rb_gather_t *ga);

/* ---- push-down (ctr_rb_pushdown.c) --------------------------------------- */

/* Whether every function of the file is skipped. */
bool ctr__rb_path_skips(ctr_rb_path_t *p);
/* Makes `fr` a frame the daemon knows of, deciding as it does. */
void ctr__rb_enter(ctr_rb_stack_t *s, ctr_rb_frame_t *fr, ctr_rb_func_t *f,
                   const ctr_rb_path_t *p);
/* Whether the daemon keeps a line of `p` run now. */
bool ctr__rb_line_kept(const ctr_rb_stack_t *s, ctr_rb_path_t *p);

/* ---- hooks (ctr_rb_hooks.c) ---------------------------------------------- */

#define CTR_RB_EVENTS                                                          \
  (RUBY_EVENT_LINE | RUBY_EVENT_CALL | RUBY_EVENT_RETURN | RUBY_EVENT_B_CALL | \
   RUBY_EVENT_B_RETURN | RUBY_EVENT_RAISE | RUBY_EVENT_THREAD_END |            \
   RUBY_EVENT_FIBER_SWITCH)
#define CTR_RB_HOOK_FLAGS                                                      \
  (RUBY_EVENT_HOOK_FLAG_SAFE | RUBY_EVENT_HOOK_FLAG_RAW_ARG)

/* With RUBY_EVENT_HOOK_FLAG_RAW_ARG Ruby calls the hook as
 * hook(data, trace_arg); the API still takes the classic pointer type. */
#define CTR_RB_HOOK_FN ((rb_event_hook_func_t)(void (*)(void))ctr__rb_hook)
#define CTR_RB_EMPTY_HOOK_FN                                                   \
  ((rb_event_hook_func_t)(void (*)(void))ctr__rb_empty_hook)
#define CTR_RB_WAKE_HOOK_FN                                                    \
  ((rb_event_hook_func_t)(void (*)(void))ctr__rb_wake_hook)

void ctr__rb_hook(VALUE data, rb_trace_arg_t *targ);
void ctr__rb_wake_hook(VALUE data, rb_trace_arg_t *targ);
void ctr__rb_empty_hook(VALUE data, rb_trace_arg_t *targ);
/* Paused: only the wake hook stays. */
void ctr__rb_hooks_pause(void);
/* Resumed: the full hook is back, and each stack is sent again. */
void ctr__rb_hooks_resume(void);
void ctr__rb_on_return(rb_trace_arg_t *targ, ctr_rb_stack_t *s);

void ctr__rb_sync_slow(ctr_rb_stack_t *s, bool entering);
/* Before anything is sent: after a RESUME this fiber's stack goes out
 * first. Runs on every event: nothing to do unless paused, resumed or
 * stale. Call with the client active. */
static inline void ctr__rb_sync(ctr_rb_stack_t *s, bool entering) {
  if (ctr__rb.hooked && s->epoch == ctr__rb.epoch) {
    if (!ctr_client_take_resume())
      return;
    ctr__rb.epoch++;
  }
  ctr__rb_sync_slow(s, entering);
}

/* ---- fast skip-tree (ctr_rb_tree.c) -------------------------------------- */

/* Called when the method frame just pushed on `s` opened a skip-tree. */
void ctr__rb_tree_begin(ctr_rb_stack_t *s, ctr_rb_func_t *f);
/* Leaves the fast path for `s`: its tree's events reach the hook again. */
void ctr__rb_tree_end(ctr_rb_stack_t *s);
/* Another fiber or thread runs now. */
void ctr__rb_tree_switch(void);

/* ---- values (ctr_rb_value.c) --------------------------------------------- */

/* Starts the values of one message (a VARS, a CALL's arguments, a RETURN,
 * a STACK frame): the budget (WELCOME max_nodes) counts from here, and
 * objects may have changed since the last message. Inside begin/end. */
void ctr__rb_value_message(void);
/* Captures one value. Declarations go to `decl` (the batch); the value bytes
 * go to `out` (a scratch packer) because a message's head must be packed
 * after every id it refers to has been declared. Never calls a method that
 * Ruby code can override. */
void ctr__rb_value_pack(msgpack_packer *decl, msgpack_packer *out, VALUE v);
/* Packs [[varname_id, value]...] pairs into scratch; returns the count. */
uint32_t ctr__rb_value_pairs(msgpack_packer *pk, VALUE names, VALUE vals);
/* Appends the scratch bytes (a message body) to the batch. */
void ctr__rb_value_flush(msgpack_packer *pk);

/* The object that is `self` at the top level ("main"), shown as Raw. */
extern VALUE ctr__rb_main_obj;

/* Class name without calling Module#name (which can be overridden). */
VALUE ctr__rb_class_name(VALUE klass);

/* ---- output (ctr_rb_output.c) -------------------------------------------- */

/* Wraps STDOUT/STDERR#write and #syswrite and Warning.warn. */
void ctr__rb_output_init(void);
/* Whether the code running now is in the main Ractor. */
bool ctr__rb_main_ractor(void);
/* Records the message Ruby prints for an uncaught exception. */
void ctr__rb_record_uncaught(VALUE err);

#endif
