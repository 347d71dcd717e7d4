/* ctr_session.c: applies one client's messages to its trace.
 *
 * The session decides what is recorded (the filter, the value rules, the
 * recording gate, the threads' shadow stacks) and says it to the trace
 * writer record by record; interning (ctr_intern.c) maps the client's ids
 * to the trace's. */
#include "ctr_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctr_buf.h"
#include "ctr_error.h"
#include "ctr_log.h"
#include "ctr_filter.h"
#include "ctr_gate.h"
#include "ctr_intern.h"
#include "ctr_map.h"
#include "ctr_stack.h"
#include "ctr_uuid.h"
#include "ctr_value.h"
#include "ctr_vdef.h"
#include "ctr_writer.h"

/* Hidden text long enough to be looked for inside other text. */
typedef struct inside_s {
  char *text;
  uint32_t len;
  int action;
} inside_t;

/* Rendered records kept while writing fails, before the session ends. */
#define PENDING_MAX (64u << 20)

struct ctr_session_s {
  uint64_t id;
  const ctr_config_t *cfg; /* a reference: HELLO's snapshot, then reloads' */
  uint32_t max_depth; /* limits.max_depth at HELLO, kept across reloads */
  bool floats_as_strings; /* output.float_format at HELLO */
  const ctr_writer_backend_t *format; /* output.format at HELLO */
  uid_t uid;
  gid_t gid;
  int64_t pid;         /* by the kernel */
  int64_t claimed_pid;  /* by HELLO */
  int64_t ppid;         /* by HELLO */
  char *lang, *lang_version, *program, *cwd;
  char **args;
  size_t nargs;
  time_t started, ended;
  bool bye;
  int64_t exit_status;
  char *state; /* "recording", "complete", "aborted: ..." */

  /* Intervals: each span during which the session records is a trace. */
  uint32_t interval;          /* index of the current or last interval */
  time_t interval_start, interval_end;
  int64_t interval_start_ms;
  const char *end_reason;     /* why the last interval ended */
  ctr_gate_t gate;            /* whether the session records now */
  ctr_filter_t *while_in;     /* record.while_in as function rules */
  ctr_session_hooks_t hooks;
  bool client_paused;         /* we sent PAUSE and no RESUME since */
  /* PAUSE sent and not yet confirmed by the FLUSHED that answers the
   * FLUSH sent with it: status shows "pausing". */
  bool pausing;
  uint64_t pause_token;
  uint64_t records; /* RECORD messages applied */
  const msgpack_object *stack; /* STACK frames while one is applied */
  ctr_wire_rule_t *wire_rules; /* the filter's code rules, for the client */
  uint32_t nwire_rules;

  ctr_intern_t in; /* limits.max_ids and max_source at HELLO */

  ctr_stacks_t threads;

  ctr_writer_t *trace;   /* the current interval's, or NULL */
  bool write_failed;     /* the last flush failed (already logged) */
  ctr_filter_t *filter;
  size_t nvalue_rules;
  /* Text hidden by a value rule stays hidden for the rest of the session,
   * wherever it appears: text -> strongest action. */
  ctr_map_t hidden_text;
  size_t hidden_bytes;
  inside_t inside[64]; /* the longer of it, looked for inside other text */
  uint32_t ninside;
  int values;            /* record.values */
  char *filter_text;     /* the filter in force, for the metadata */
  ctr_buf_t scratch;
  ctr_writer_var_t *vars; /* a call's arguments as the writer gets them */
  uint32_t varcap;
  ctr_session_stats_t st;
  /* Definitions for DEF and REF values (limits.value_refs at HELLO). */
  ctr_vdefs_t *vdefs;
  uint32_t value_refs;
  msgpack_object flat_refs[CTR_FLAT_VARS]; /* a flat VARS's REFs, ingested */
};

/* The effective filter as YAML text, for trace_metadata.json. */
static char *describe_filter(const ctr_filter_t *f) {
  char *text = NULL;
  size_t n = 0;
  FILE *out = open_memstream(&text, &n);

  if (out == NULL)
    return ctr_xstrndup("", 0);
  ctr_filter_describe(f, out, 0);
  fclose(out);
  return text ? text : ctr_xstrndup("", 0);
}

/* The filter's code rules in wire form, for the client; they point into
 * the filter and the config. A record.while_in function must reach the
 * daemon even where the rules skip it (its call opens an interval), so
 * for the client each while_in pattern ends the list as a record rule: the
 * shim then sends that function, and the daemon still skips its lines. */
static void make_wire_rules(ctr_session_t *s) {
  size_t n, i;
  const ctr_filter_rule_t *r = ctr_filter_rules(s->filter, &n);
  size_t nwhile = s->cfg->record_nwhile_in;

  free(s->wire_rules);
  s->wire_rules = ctr_xcalloc(n + nwhile, sizeof(*s->wire_rules));
  for (i = 0; i < n; i++) {
    s->wire_rules[i].file = r[i].file;
    s->wire_rules[i].module = r[i].module;
    s->wire_rules[i].function = r[i].function;
    s->wire_rules[i].action = r[i].action;
  }
  for (i = 0; i < nwhile; i++) {
    s->wire_rules[n + i].function = s->cfg->record_while_in[i];
    s->wire_rules[n + i].action = CTR_FILTER_RECORD;
  }
  s->nwire_rules = (uint32_t)(n + nwhile);
}

static char *dup_str(ctr_str_t s, const char *fallback) {
  return s.ptr ? ctr_xstrndup(s.ptr, s.len) : ctr_xstrndup(fallback, strlen(fallback));
}

/* record.while_in as function rules: a decision other than "record" is a
 * match. NULL when the option is empty. */
static ctr_filter_t *compile_while_in(const ctr_config_t *cfg) {
  ctr_filter_rule_t *rules;
  ctr_filter_spec_t spec = {0};
  ctr_filter_t *f = NULL;
  size_t i;

  if (cfg->record_nwhile_in == 0)
    return NULL;
  rules = ctr_xcalloc(cfg->record_nwhile_in, sizeof(*rules));
  for (i = 0; i < cfg->record_nwhile_in; i++) {
    rules[i].function = cfg->record_while_in[i];
    rules[i].action = CTR_FILTER_SKIP;
  }
  spec.rules = rules;
  spec.nrules = cfg->record_nwhile_in;
  /* The patterns were checked when the config was loaded. */
  if (ctr_filter_compile(&f, &spec, NULL, 0) != 0)
    f = NULL;
  free(rules);
  return f;
}

static int64_t now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ctr_session_new(ctr_session_t **out, const ctr_config_t *cfg,
                    const ctr_hello_t *h, uint64_t id,
                    const ctr_peer_t *peer, const ctr_session_hooks_t *hooks) {
  ctr_session_t *s = ctr_xcalloc(1, sizeof(*s));
  uint32_t i;

  s->id = id;
  s->cfg = ctr_config_ref(cfg);
  s->uid = peer->uid;
  s->gid = peer->gid;
  s->pid = peer->pid;
  /* A process gone before ctrecd read its HELLO has no parent left to
   * look up: its own word is all there is. */
  s->ppid = h->ppid;
  s->claimed_pid = h->pid;
  s->lang = dup_str(h->lang, "unknown");
  s->lang_version = dup_str(h->lang_version, "");
  s->program = dup_str(h->program, "");
  s->cwd = dup_str(h->cwd, "/");
  ctr_intern_init(&s->in, id, s->lang, cfg->max_ids, cfg->max_source);
  s->nargs = h->args ? h->args->via.array.size : 0;
  s->args = ctr_xmalloc(sizeof(*s->args) * (s->nargs ? s->nargs : 1));
  for (i = 0; i < s->nargs; i++) {
    ctr_str_t a = {0};
    ctr_obj_str(&h->args->via.array.ptr[i], &a);
    s->args[i] = ctr_xstrndup(a.ptr ? a.ptr : "", a.len);
  }
  s->started = time(NULL);
  ctr_gate_init(&s->gate, s->cfg,
                h->realtime_ns > 0 ? h->realtime_ns / 1000000 : now_ms());
  s->while_in = compile_while_in(cfg);
  s->hooks = *hooks;
  s->exit_status = -1;
  s->state = ctr_xstrndup("recording", 9);
  ctr_stacks_init(&s->threads, cfg->max_threads);
  s->filter = ctr_filter_ref(cfg->filter);
  make_wire_rules(s);
  ctr_filter_values(s->filter, &s->nvalue_rules);
  s->values = cfg->record_values;
  s->filter_text = describe_filter(s->filter);
  s->floats_as_strings = cfg->float_format == CTR_FLOAT_STRING;
  s->format = cfg->output_format == CTR_FORMAT_CTFS ? &ctr_writer_ctfs
                                                    : &ctr_writer_json;
  s->max_depth = cfg->max_depth;
  s->value_refs = cfg->value_refs;
  s->vdefs = ctr_vdefs_new(cfg->value_refs, cfg->max_depth, cfg->max_elements);
  *out = s;
  return 0;
}

/* ---- trace-side interning ---------------------------------------------- */

/* A definition's encoded value is reused within one trace, and only when
 * no value rule applies: the rules look at every value they render. */
static void set_reuse(ctr_session_t *s) {
  if (s->trace)
    ctr_writer_reuse(s->trace, s->nvalue_rules == 0);
}

/* Forgets every trace id: a new interval is a self-contained trace. */
static void reset_trace_ids(ctr_session_t *s) {
  ctr_vdefs_forget_texts(s->vdefs);
  ctr_intern_trace(&s->in, s->trace);
}

static void call_record(ctr_session_t *s, uint32_t func, uint32_t nargs);
static int decide_var(ctr_session_t *s, ctr_thread_t *t, uint32_t depth,
                      const msgpack_object *pair, int where,
                      ctr_writer_var_t *out, const char **why);
static int check_value(ctr_session_t *s, const msgpack_object *v,
                       const char **why);
static int check_pair(ctr_session_t *s, const msgpack_object *pair,
                      const char **why);

/* Room for n variables in s->vars. */
static ctr_writer_var_t *vars_room(ctr_session_t *s, uint32_t n) {
  if (n > s->varcap) {
    s->varcap = n > 2 * s->varcap ? n : 2 * s->varcap;
    s->vars = ctr_xrealloc(s->vars, sizeof(*s->vars) * s->varcap);
  }
  return s->vars;
}

/* Collects into s->vars the arguments of a synthetic call: the frame's
 * variables from the STACK being applied, or none; a bad one is left out.
 * STACK was checked. */
static uint32_t synthetic_args(ctr_session_t *s, ctr_thread_t *t, uint32_t i) {
  const msgpack_object *vars;
  const char *why;
  uint32_t j, n = 0;

  if (s->stack == NULL || i >= s->stack->via.array.size ||
      s->values == CTR_VALUES_NONE)
    return 0;
  vars = &s->stack->via.array.ptr[i].via.array.ptr[2];
  vars_room(s, vars->via.array.size);
  for (j = 0; j < vars->via.array.size; j++) {
    const msgpack_object *p = &vars->via.array.ptr[j];
    if (decide_var(s, t, i + 1, p, 0, &s->vars[n], &why) == 1 &&
        check_pair(s, p, &why) == 0)
      n++;
  }
  return n;
}

/* Synthetic calls, outermost first, for t's recorded frames that the open
 * trace has not seen: frames already on the stack when the interval began
 * (for another thread, when it next runs) or that a STACK revealed. Their
 * arguments are the frames' variables when a STACK is being applied. */
static void open_frames(ctr_session_t *s, ctr_thread_t *t) {
  uint32_t i;

  for (i = 0; i < t->nframes; i++)
    if ((t->frames[i].flags & (CTR_FRAME_WANTED | CTR_FRAME_EMITTED)) == CTR_FRAME_WANTED) {
      ctr_intern_func(&s->in, t->frames[i].func);
      call_record(s, t->frames[i].func, synthetic_args(s, t, i));
      t->frames[i].flags |= CTR_FRAME_EMITTED;
    }
}

static void write_meta(ctr_session_t *s);
static int flush_trace(ctr_session_t *s);

/* Opens the next interval's trace, which begins with the program's path
 * and top-level call, then a synthetic call for each recorded frame
 * already on the current thread's stack, so the interval replays
 * coherently on its own. */
static int open_interval(ctr_session_t *s) {
  const char *prog = s->program;
  ctr_thread_t *t = ctr_stacks_cur(&s->threads);
  ctr_writer_opts_t o = {
      .root = s->cfg->output_dir,
      .name = prog,
      .pid = s->pid,
      .started = s->started,
      .interval = s->interval + 1,
      .workdir = s->cwd,
      .program = prog,
      .args = (const char *const *)s->args,
      .nargs = s->nargs,
      .ids = {&s->in, ctr_intern_type, ctr_intern_name, ctr_intern_struct},
      .floats_as_strings = s->floats_as_strings,
      .max_depth = s->max_depth,
      /* A root daemon gives each trace to the traced program's user. */
      .owner = geteuid() == 0 ? (ctr_trace_owner_t){s->uid, s->gid}
                              : (ctr_trace_owner_t){(uid_t)-1, (gid_t)-1},
  };
  char id[CTR_UUID_LEN + 1];
  int64_t top;
  int rc;

  if ((rc = ctr_uuid7(id)) != 0) {
    CTR_ERROR("session %llu: cannot make a recording id: %s",
              (unsigned long long)s->id, ctr_strerror(rc));
    return rc;
  }
  o.recording_id = id;
  rc = ctr_writer_open(&s->trace, s->format, &o);
  if (rc != 0) {
    CTR_ERROR("session %llu: cannot create a trace folder in %s: %s",
              (unsigned long long)s->id, s->cfg->output_dir, ctr_strerror(rc));
    return rc;
  }
  reset_trace_ids(s);
  set_reuse(s);
  s->interval++;
  s->st.intervals = s->interval;
  s->interval_start = time(NULL);
  s->interval_start_ms = now_ms();
  s->interval_end = 0;
  s->end_reason = NULL;
  s->st.steps = s->st.calls = s->st.returns = s->st.events = 0;
  s->st.filtered = s->st.written = 0;
  CTR_INFO("session %llu: pid %lld (%s) interval %u recording into %s",
           (unsigned long long)s->id, (long long)s->pid, prog, s->interval,
           ctr_writer_dir(s->trace));
  if (prog[0] == '/' && strstr(prog, "/../") == NULL)
    top = ctr_intern_path_text(&s->in, prog, (uint32_t)strlen(prog));
  else
    top = ctr_intern_path_text(&s->in, "<toplevel>", 10);
  ctr_writer_toplevel(s->trace, top);
  /* A call record like any other: the counters say what readers count. */
  s->st.calls++;
  open_frames(s, t);
  /* The folder's first metadata: a trace never shows up without its
   * state, which recovery and readers go by. */
  flush_trace(s);
  return 0;
}

/* Completes the current interval's trace with state ("complete" or
 * "aborted: ..."); calls opened in it stay open, as the format allows. */
static void close_interval(ctr_session_t *s, const char *state,
                           const char *reason) {
  const char *why;
  char failed[200], *dir;
  int rc;

  if (s->trace == NULL)
    return;
  s->interval_end = time(NULL);
  s->end_reason = reason;
  /* Everything written, what the format owes at the end included, while
   * the metadata still says "recording": a full disk then makes the trace
   * say so (its files stay valid up to the last write that worked)
   * instead of "complete". */
  ctr_writer_end(s->trace);
  if ((rc = ctr_writer_flush(s->trace)) != 0) {
    snprintf(failed, sizeof(failed), "aborted: cannot write the trace: %s",
             ctr_strerror(rc));
    state = failed;
  }
  free(s->state);
  s->state = ctr_xstrndup(state, strlen(state));
  s->st.written = ctr_writer_records(s->trace);
  write_meta(s);
  /* The final state is written at close, after the calls a CTFS trace
   * still owes, and only then is anyone told. */
  dir = ctr_xstrndup(ctr_writer_dir(s->trace), strlen(ctr_writer_dir(s->trace)));
  ctr_writer_close(s->trace);
  s->trace = NULL;
  /* "aborted: <why>" names the reason already. */
  why = reason == NULL ? "end" : strstr(s->state, reason) ? NULL : reason;
  CTR_INFO("session %llu: interval %u %s%s%s%s: %llu steps, %llu calls, %llu "
           "events in %s",
           (unsigned long long)s->id, s->interval, s->state, why ? " (" : "",
           why ? why : "", why ? ")" : "", (unsigned long long)s->st.steps,
           (unsigned long long)s->st.calls, (unsigned long long)s->st.events,
           dir);
  if (s->hooks.trace_closed)
    s->hooks.trace_closed(s->hooks.arg, dir, &s->st, s->state);
  free(dir);
  reset_trace_ids(s);
  ctr_stacks_end_interval(&s->threads);
  free(s->state);
  s->state = ctr_xstrndup("recording", 9);
}

/* ---- recording gate ----------------------------------------------------- */

/* The time for the gate, read only when its answer depends on it. */
static int64_t gate_now(const ctr_session_t *s) {
  return ctr_gate_timed(&s->gate) ? now_ms() : 0;
}

/* Why the session does not record now, or NULL when it does. */
static const char *gate_closed(const ctr_session_t *s) {
  return ctr_gate_closed(&s->gate, gate_now(s));
}

/* Sends PAUSE (with the FLUSH that confirms it) or RESUME. */
static void tell_client(ctr_session_t *s, bool pause) {
  if (s->hooks.send == NULL || s->ended)
    return;
  s->client_paused = pause;
  s->pausing = pause;
  s->hooks.send(s->hooks.arg, pause ? CTR_MSG_PAUSE : CTR_MSG_RESUME, 0);
  if (pause)
    s->hooks.send(s->hooks.arg, CTR_MSG_FLUSH, ++s->pause_token);
}

/* Ends the interval when the gate closed; true while it is open. A client
 * is paused while nothing it sends could be recorded; under while_in the
 * daemon must see the calls, so the client stays on. */
static bool gate_open(ctr_session_t *s) {
  const char *why = gate_closed(s);
  bool pause = ctr_gate_pauses(why);

  if (why && s->trace)
    close_interval(s, "complete", why);
  if (pause != s->client_paused)
    tell_client(s, pause);
  return why == NULL;
}

/* Ends the interval at the first record.max_* limit it reaches. */
static void check_limits(ctr_session_t *s) {
  const char *hit;

  if (s->trace == NULL || !ctr_gate_limited(&s->gate))
    return;
  hit = ctr_gate_limits(&s->gate, ctr_writer_records(s->trace),
                        ctr_writer_bytes(s->trace), s->interval_start_ms,
                        gate_now(s));
  if (hit)
    close_interval(s, "complete", hit);
}

/* Opens the interval's trace on its first record. */
static int ensure_trace(ctr_session_t *s) {
  return s->trace ? 0 : open_interval(s);
}

/* ---- messages ---------------------------------------------------------- */

/* Counts a client reports stick at the maximum instead of wrapping. */
static uint64_t sat_add(uint64_t a, uint64_t b) {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Adds to the total and to the cause's own count. */
static void count_lost(ctr_session_stats_t *st, ctr_str_t cause, uint64_t n) {
  ctr_lost_cause_t *c = NULL;
  uint32_t i;

  st->lost = sat_add(st->lost, n);
  if (cause.len >= sizeof(c->name))
    cause.len = sizeof(c->name) - 1;
  for (i = 0; i < st->nlost_causes && c == NULL; i++)
    if (strlen(st->lost_causes[i].name) == cause.len &&
        memcmp(st->lost_causes[i].name, cause.ptr, cause.len) == 0)
      c = &st->lost_causes[i];
  if (c == NULL && st->nlost_causes == CTR_LOST_CAUSES) {
    c = &st->lost_causes[CTR_LOST_CAUSES - 1];
    strcpy(c->name, "other");
  } else if (c == NULL) {
    c = &st->lost_causes[st->nlost_causes++];
    memcpy(c->name, cause.ptr, cause.len);
    c->name[cause.len] = '\0';
  }
  c->n = sat_add(c->n, n);
}

static int fail(const char **why, const char *text, int code) {
  *why = text;
  return code;
}

static ctr_thread_t *cur_thread(ctr_session_t *s) {
  return ctr_stacks_cur(&s->threads);
}

static int switch_thread(ctr_session_t *s, uint64_t id, const char **why) {
  int rc = ctr_stacks_switch(&s->threads, id);

  if (rc < 0)
    return fail(why, "more threads with calls open than limits.max_threads",
                CTR_ELIMIT);
  if (rc > 0 && s->trace)
    ctr_writer_thread(s->trace, id);
  return 0;
}

static void event_record(ctr_session_t *s, int kind, const char *text,
                         size_t n, const char *text2, size_t n2) {
  s->scratch.len = 0;
  ctr_buf_add(&s->scratch, text, n);
  if (text2 && n2 > 0) {
    ctr_buf_add(&s->scratch, ": ", 2);
    ctr_buf_add(&s->scratch, text2, n2);
  }
  ctr_writer_event(s->trace, kind, s->scratch.data, s->scratch.len);
  s->st.events++;
}

/* ---- filtering --------------------------------------------------------- */


static int func_action(ctr_session_t *s, uint32_t id) {
  ctr_ifunc_t *f = &s->in.funcs.v[id];

  if (f->action < 0)
    f->action = (int8_t)ctr_filter_decide(s->filter, s->in.paths.v[f->path_id].text,
                                          f->module, f->name);
  return f->action;
}

/* Lines outside any call (a script's top level) follow the file rules. */
static int path_action(ctr_session_t *s, uint32_t id) {
  ctr_ipath_t *p = &s->in.paths.v[id];

  if (p->action < 0)
    p->action = (int8_t)ctr_filter_decide(s->filter, p->text, NULL, NULL);
  return p->action;
}

/* ---- value rules ------------------------------------------------------- */

#define RETURN_NAME UINT32_MAX /* the "name" of a return value */
/* Bounds on what is remembered of hidden values (numbers per thread, text
 * per session): past them a copy under another name is no longer caught,
 * though the named variable still is. */
#define HIDDEN_MAX 1024u
#define HIDDEN_BYTES (4u << 20)
/* Hidden text this long is also looked for inside other text; shorter
 * text would match too much. */
#define HIDDEN_INSIDE 6u

/* A leaf of a value that can carry a secret: text (text.ptr set) or a
 * number (bits, with tag 'i' or 'f'). */
typedef struct leaf_s {
  ctr_str_t text;
  bool inside;  /* text: also look for it inside other text */
  bool printed; /* a printed form ("main", "#<Proc>", a class name) is
                   checked but not remembered: it would hide too much */
  char tag;
  uint64_t bits;
} leaf_t;

typedef struct leaf_visit_s {
  ctr_session_t *s;
  ctr_thread_t *t;
  uint32_t vid, depth; /* the value's name (or RETURN_NAME) and frame */
  int action; /* what adding gives, or the strongest match found */
} leaf_visit_t;

typedef void leaf_fn(leaf_visit_t *c, const leaf_t *leaf);

/* Calls fn for each leaf of value v that can carry a secret: strings and
 * printed forms, big integers (their magnitude as text) and numbers. The
 * value is untrusted and not yet checked, so anything unexpected is passed
 * over. */
static void each_leaf(const msgpack_object *v, uint32_t level, leaf_fn *fn,
                      leaf_visit_t *c) {
  const msgpack_object *e;
  leaf_t leaf = {0};
  uint32_t vk, i;
  const ctr_vdef_t *d = ctr_vdef_of(v);

  if (d && level <= 64) {
    each_leaf(ctr_vdef_value(d), level + 1, fn, c);
    return;
  }
  if (level > 64 || v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size < 3 ||
      !ctr_obj_u32(&v->via.array.ptr[0], &vk))
    return;
  e = v->via.array.ptr;
  switch (vk) {
  case CTR_V_SEQ:
  case CTR_V_TUPLE:
  case CTR_V_STRUCT:
    if (e[2].type != MSGPACK_OBJECT_ARRAY)
      return;
    for (i = 0; i < e[2].via.array.size; i++) {
      const msgpack_object *x = &e[2].via.array.ptr[i];
      if (vk == CTR_V_STRUCT)
        x = x->type == MSGPACK_OBJECT_ARRAY && x->via.array.size == 2
                ? &x->via.array.ptr[1] : NULL;
      if (x)
        each_leaf(x, level + 1, fn, c);
    }
    return;
  case CTR_V_STRING:
  case CTR_V_RAW:
    leaf.inside = true;
    leaf.printed = vk == CTR_V_RAW;
    if (!ctr_obj_str(&e[2], &leaf.text) || leaf.text.len == 0)
      return;
    break;
  case CTR_V_BIGINT:
    if (v->via.array.size != 4 || !ctr_obj_str(&e[3], &leaf.text) ||
        leaf.text.len == 0)
      return;
    break;
  case CTR_V_INT:
  case CTR_V_FLOAT:
    if (e[2].type == MSGPACK_OBJECT_FLOAT32 || e[2].type == MSGPACK_OBJECT_FLOAT64) {
      leaf.tag = 'f';
      memcpy(&leaf.bits, &e[2].via.f64, sizeof(leaf.bits));
    } else if (e[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
               e[2].type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
      leaf.tag = 'i';
      leaf.bits = e[2].via.u64;
    } else {
      return;
    }
    break;
  default:
    return;
  }
  fn(c, &leaf);
}

/* Hidden text matches anywhere, also inside longer text; a hidden number
 * under its own name, or as the return value of the frame that hid it. */
static void find_leaf(leaf_visit_t *c, const leaf_t *leaf) {
  const ctr_session_t *s = c->s;
  int64_t a;
  uint32_t i;

  if (leaf->text.ptr) {
    a = ctr_map_get(&s->hidden_text, leaf->text.ptr, leaf->text.len);
    if (a > c->action)
      c->action = (int)a;
    for (i = 0; leaf->inside && i < s->ninside; i++)
      if (s->inside[i].action > c->action && leaf->text.len > s->inside[i].len &&
          memmem(leaf->text.ptr, leaf->text.len, s->inside[i].text,
                 s->inside[i].len))
        c->action = s->inside[i].action;
    return;
  }
  for (i = 0; i < c->t->nhidden; i++) {
    const ctr_hidden_t *h = &c->t->hidden[i];
    if (h->action > c->action && h->bits == leaf->bits && h->tag == leaf->tag &&
        (h->vid == c->vid || (c->vid == RETURN_NAME && h->depth == c->depth)))
      c->action = h->action;
  }
}

static void add_text(ctr_session_t *s, const leaf_t *leaf, int action) {
  const ctr_str_t *x = &leaf->text;
  int64_t was = ctr_map_get(&s->hidden_text, x->ptr, x->len);
  inside_t *in;

  if (was >= action)
    return;
  if (was < 0) {
    if (s->hidden_text.count == HIDDEN_MAX ||
        s->hidden_bytes + x->len > HIDDEN_BYTES)
      return;
    s->hidden_bytes += x->len;
  }
  ctr_map_put(&s->hidden_text, x->ptr, x->len, action);
  if (!leaf->inside || x->len < HIDDEN_INSIDE)
    return;
  /* A stronger action for text already looked for inside updates it. */
  for (in = s->inside; in < s->inside + s->ninside; in++)
    if (in->len == x->len && memcmp(in->text, x->ptr, x->len) == 0) {
      in->action = action;
      return;
    }
  if (s->ninside < sizeof(s->inside) / sizeof(s->inside[0])) {
    in = &s->inside[s->ninside++];
    in->text = ctr_xstrndup(x->ptr, x->len);
    in->len = x->len;
    in->action = action;
  }
}

static void add_leaf(leaf_visit_t *c, const leaf_t *leaf) {
  ctr_thread_t *t = c->t;
  uint32_t i;

  if (leaf->text.ptr) {
    if (!leaf->printed)
      add_text(c->s, leaf, c->action);
    return;
  }
  /* The caller of a returned number holds it under a name yet unknown. */
  if (c->vid == RETURN_NAME)
    return;
  for (i = 0; i < t->nhidden; i++)
    if (t->hidden[i].bits == leaf->bits && t->hidden[i].tag == leaf->tag &&
        t->hidden[i].vid == c->vid && t->hidden[i].action >= c->action)
      return;
  if (t->nhidden == HIDDEN_MAX)
    return;
  if (t->nhidden == t->hcap) {
    t->hcap = t->hcap ? t->hcap * 2 : 16;
    t->hidden = ctr_xrealloc(t->hidden, sizeof(*t->hidden) * t->hcap);
  }
  t->hidden[t->nhidden++] =
      (ctr_hidden_t){leaf->bits, leaf->tag, (int8_t)c->action, c->vid, c->depth};
}

/* The strongest action of the hidden values that value v (named vid, in
 * t's frame at depth) holds. */
static int hidden_action(ctr_session_t *s, ctr_thread_t *t, const msgpack_object *v,
                         uint32_t vid, uint32_t depth) {
  leaf_visit_t c = {s, t, vid, depth, CTR_FILTER_KEEP};

  if (s->hidden_text.count || t->nhidden)
    each_leaf(v, 0, find_leaf, &c);
  return c.action;
}

/* Remembers the leaves of value v, hidden with action. */
static void hide(ctr_session_t *s, ctr_thread_t *t, const msgpack_object *v,
                 uint32_t vid, uint32_t depth, int action) {
  leaf_visit_t c = {s, t, vid, depth, action};

  each_leaf(v, 0, add_leaf, &c);
}

/* Remembers the argument names of t's newest frame, so that its steps
 * show them under the rules for arguments. */
static void note_args(ctr_thread_t *t, const msgpack_object *args) {
  uint32_t i, vid;

  for (i = 0; i < args->via.array.size; i++) {
    const msgpack_object *p = &args->via.array.ptr[i];
    if (p->type != MSGPACK_OBJECT_ARRAY || p->via.array.size != 2 ||
        !ctr_obj_u32(&p->via.array.ptr[0], &vid))
      continue;
    ctr_stack_note_arg(t, vid);
  }
  ctr_stack_args_seen(t);
}

/* Accepts names and types as the trace would, declaring nothing: a value
 * that is not written is still checked. */
static bool known_type(void *ctx, uint32_t id) {
  return id < ((ctr_session_t *)ctx)->in.types.n;
}
static bool known_name(void *ctx, uint32_t id) {
  return id < ((ctr_session_t *)ctx)->in.names.n;
}

static int check_value(ctr_session_t *s, const msgpack_object *v,
                       const char **why) {
  return ctr_value_check(v, s->max_depth, known_type, known_name, s,
                         &s->scratch, why);
}

static int check_pair(ctr_session_t *s, const msgpack_object *pair,
                      const char **why) {
  uint32_t vid;

  if (pair->type != MSGPACK_OBJECT_ARRAY || pair->via.array.size != 2 ||
      !ctr_obj_u32(&pair->via.array.ptr[0], &vid))
    return fail(why, "variable is not [varname_id, value]", CTR_EPROTO);
  if (vid >= s->in.names.n)
    return fail(why, "variable name id out of range", CTR_EPROTO);
  return check_value(s, &pair->via.array.ptr[1], why);
}

/* Decides how one [varname_id, value] pair of the frame at depth (0: the
 * top level) is written after the value rules: returns 1 with *out set,
 * 0 when the rules drop it, or a negative code. where is CTR_FILTER_ARGS
 * for a call's arguments, 0 to ask var_where. */
static int decide_var(ctr_session_t *s, ctr_thread_t *t, uint32_t depth,
                      const msgpack_object *pair, int where,
                      ctr_writer_var_t *out, const char **why) {
  const ctr_frame_t *fr = depth ? &t->frames[depth - 1] : NULL;
  const ctr_ifunc_t *f = fr ? &s->in.funcs.v[fr->func] : NULL;
  uint32_t vid;
  int action, held;

  out->pair = pair;
  out->redacted = false;
  if (s->nvalue_rules == 0)
    return 1;
  if (pair->type != MSGPACK_OBJECT_ARRAY || pair->via.array.size != 2 ||
      !ctr_obj_u32(&pair->via.array.ptr[0], &vid) || vid >= s->in.names.n)
    return fail(why, "variable is not [varname_id, value]", CTR_EPROTO);
  action = ctr_filter_value(s->filter, f ? s->in.paths.v[f->path_id].text : NULL,
                            f ? f->module : NULL, f ? f->name : NULL,
                            where ? where : ctr_stack_where(t, fr, vid),
                            s->in.names.v[vid].text);
  held = hidden_action(s, t, &pair->via.array.ptr[1], vid, depth);
  if (held > action)
    action = held;
  if (action != CTR_FILTER_KEEP)
    hide(s, t, &pair->via.array.ptr[1], vid, depth, action);
  if (action == CTR_FILTER_DROP)
    return 0;
  out->redacted = action != CTR_FILTER_KEEP;
  return 1;
}

/* A step at the callee's definition line (the call's location, R3), then
 * the Call with its nargs arguments from s->vars, already checked. The
 * function is already mapped. */
static void call_record(ctr_session_t *s, uint32_t func, uint32_t nargs) {
  const char *why;

  ctr_writer_call(s->trace, s->in.funcs.v[func].tid, s->vars, nargs, &why);
  s->st.steps++;
  s->st.calls++;
}

/* A line in its frame's own file belongs to the frame. A line of another
 * file run without a call of its own (a required file's top level, a
 * class body, eval'd code) follows that file's rules, as lines outside
 * any call do; below a skip-tree nothing is kept. */
static bool step_wanted(ctr_session_t *s, const ctr_frame_t *fr, uint32_t path) {
  if (fr && (fr->flags & CTR_FRAME_TREE))
    return false;
  if (fr && s->in.funcs.v[fr->func].path_id == path)
    return (fr->flags & CTR_FRAME_WANTED) != 0;
  return path_action(s, path) == CTR_FILTER_RECORD;
}

static int step(ctr_session_t *s, const ctr_msg_t *m, const char **why) {
  ctr_thread_t *t = cur_thread(s);
  ctr_frame_t *fr = ctr_stack_top(t);
  int rc;

  if (m->u.step.path_id >= s->in.paths.n)
    return fail(why, "step path id out of range", CTR_ERANGE);
  t->step_kept = step_wanted(s, fr, m->u.step.path_id);
  if (t->step_kept && !gate_open(s))
    t->step_kept = false;
  if (!t->step_kept) {
    s->st.filtered++;
    return 0;
  }
  if ((rc = ensure_trace(s)) != 0)
    return fail(why, "cannot create the trace folder", rc);
  ctr_writer_step(s->trace, ctr_intern_path(&s->in, m->u.step.path_id), m->u.step.line);
  s->st.steps++;
  return 0;
}

static bool is_while_in(ctr_session_t *s, uint32_t id) {
  ctr_ifunc_t *f = &s->in.funcs.v[id];

  if (s->while_in == NULL)
    return false;
  if (f->while_in < 0)
    f->while_in = ctr_filter_decide(s->while_in, s->in.paths.v[f->path_id].text,
                                    f->module, f->name) != CTR_FILTER_RECORD;
  return f->while_in;
}

/* The flags of a frame entering fid on thread t: what the filter wants,
 * skip-tree inherited from callers, and while_in (counted here). */
static uint8_t enter_flags(ctr_session_t *s, const ctr_thread_t *t, uint32_t fid) {
  int action = t->trees ? CTR_FILTER_SKIP_TREE : func_action(s, fid);
  uint8_t flags = action == CTR_FILTER_RECORD      ? CTR_FRAME_WANTED
                  : action == CTR_FILTER_SKIP_TREE ? CTR_FRAME_TREE
                                                   : 0;

  if (is_while_in(s, fid)) {
    flags |= CTR_FRAME_WHILE;
    s->gate.while_depth++;
  }
  return flags;
}

static int call(ctr_session_t *s, const ctr_msg_t *m, const char **why) {
  const msgpack_object *args = m->u.call.args;
  ctr_thread_t *t = cur_thread(s);
  uint32_t fid = m->u.call.func_id, i, n = 0;
  uint8_t flags;
  int rc;

  if (fid >= s->in.funcs.n)
    return fail(why, "call function id out of range", CTR_ERANGE);
  /* Entering a while_in function may open an interval, in which the frames
   * below become synthetic calls. */
  flags = enter_flags(s, t, fid);
  if (!(flags & CTR_FRAME_WANTED) || !gate_open(s)) {
    ctr_stack_push(t, fid, flags);
    s->st.filtered++;
    return 0;
  }
  if ((rc = ensure_trace(s)) != 0)
    return fail(why, "cannot create the trace folder", rc);
  ctr_intern_func(&s->in, fid);
  ctr_stack_push(t, fid, flags | CTR_FRAME_EMITTED);
  if (s->nvalue_rules)
    note_args(t, args);
  vars_room(s, args->via.array.size);
  for (i = 0; s->values != CTR_VALUES_NONE && i < args->via.array.size; i++) {
    rc = decide_var(s, t, t->nframes, &args->via.array.ptr[i], CTR_FILTER_ARGS,
                    &s->vars[n], why);
    if (rc < 0)
      return rc;
    n += (uint32_t)rc;
  }
  if (ctr_writer_call(s->trace, s->in.funcs.v[fid].tid, s->vars, n, why) != 0)
    return CTR_EPROTO;
  s->st.steps++;
  s->st.calls++;
  t->step_kept = true;
  return 0;
}

static int ret(ctr_session_t *s, const ctr_msg_t *m, const char **why) {
  ctr_thread_t *t = cur_thread(s);
  ctr_frame_t *fr = ctr_stack_top(t), f;
  int action = CTR_FILTER_KEEP, held;
  bool write;

  if (fr && (fr->flags & CTR_FRAME_EMITTED) && s->nvalue_rules) {
    action = ctr_filter_value(s->filter,
                              s->in.paths.v[s->in.funcs.v[fr->func].path_id].text,
                              s->in.funcs.v[fr->func].module,
                              s->in.funcs.v[fr->func].name, CTR_FILTER_RETURN, NULL);
    held = hidden_action(s, t, m->u.ret.value, RETURN_NAME, t->nframes);
    if (held > action)
      action = held;
  }
  /* The value is checked even when it is not written; a value that is not
   * written declares nothing in the trace, so the trace is the same
   * whether or not the client sent it. */
  write = fr && (fr->flags & CTR_FRAME_EMITTED) && s->values != CTR_VALUES_NONE &&
          action == CTR_FILTER_KEEP;
  if (!write && check_value(s, m->u.ret.value, why) != 0)
    return CTR_EPROTO;
  if (fr == NULL) {
    /* More returns than calls would make the reader panic. */
    s->st.dropped++;
    return 0;
  }
  f = ctr_stack_pop(t);
  /* The caller now holds the hidden value under a name of its own. */
  if (action != CTR_FILTER_KEEP)
    hide(s, t, m->u.ret.value, RETURN_NAME, t->nframes, action);
  if (f.flags & CTR_FRAME_EMITTED) {
    if (ctr_writer_return(s->trace, write ? m->u.ret.value : NULL,
                          action == CTR_FILTER_REDACT &&
                              s->values != CTR_VALUES_NONE,
                          why) != 0)
      return CTR_EPROTO;
    s->st.returns++;
  } else {
    s->st.filtered++;
  }
  if (f.flags & CTR_FRAME_WHILE) {
    s->gate.while_depth--;
    gate_open(s);
  }
  return 0;
}

/* A flat variable as the [varname_id, value] pair it was sent as, built
 * in tmp (six objects). */
static const msgpack_object *flat_pair(const ctr_flat_var_t *v,
                                       const msgpack_object *ref,
                                       msgpack_object *tmp) {
  ctr_flat_objects(v, tmp);
  if (v->vk == CTR_V_REF)
    tmp[1] = *ref; /* the definition it names, ingested */
  tmp[5].type = MSGPACK_OBJECT_ARRAY;
  tmp[5].via.array.size = 2;
  tmp[5].via.array.ptr = tmp;
  return &tmp[5];
}

static int vars(ctr_session_t *s, const ctr_msg_t *m, const char **why) {
  ctr_thread_t *t = cur_thread(s);
  const msgpack_object *v = m->u.vars.vars, *pair;
  const ctr_flat_var_t *flat = m->u.vars.flat;
  uint32_t i, n = v ? v->via.array.size : m->u.vars.nflat;
  msgpack_object tmp[6];
  ctr_writer_var_t var;
  int rc;

  if (!t->step_kept || s->trace == NULL || s->values != CTR_VALUES_ALL)
    return 0;
  for (i = 0; i < n; i++) {
    /* A REF's value may need Type records, and value rules look at the
     * pair: those take the general way. */
    if (v == NULL && s->nvalue_rules == 0 && flat[i].vk != CTR_V_REF &&
        (rc = ctr_writer_flat_value(s->trace, &flat[i], why)) <= 0) {
      if (rc < 0)
        return rc;
      continue;
    }
    pair =
        v ? &v->via.array.ptr[i] : flat_pair(&flat[i], &s->flat_refs[i], tmp);
    rc = decide_var(s, t, t->nframes, pair, 0, &var, why);
    if (rc < 0)
      return rc;
    if (rc == 1 && ctr_writer_value(s->trace, &var, why) != 0)
      return CTR_EPROTO;
  }
  return 0;
}

static int event(ctr_session_t *s, int kind, ctr_str_t a, ctr_str_t b,
                 const char **why) {
  int rc;

  if (!gate_open(s)) {
    s->st.filtered++;
    return 0;
  }
  if ((rc = ensure_trace(s)) != 0)
    return fail(why, "cannot create the trace folder", rc);
  event_record(s, kind, a.ptr, a.len, b.ptr, b.len);
  return 0;
}

/* A resumed client's live stack: it replaces what the daemon knew of the
 * thread, and a new interval opens with a synthetic call (carrying the
 * frame's current variables) for each recorded frame. */
static int stack(ctr_session_t *s, const ctr_msg_t *m, const char **why) {
  const msgpack_object *fr = m->u.stack.frames;
  ctr_thread_t *t;
  uint32_t i, fid, keep;
  int64_t line;
  int rc = 0;

  for (i = 0; i < fr->via.array.size; i++) {
    const msgpack_object *f = &fr->via.array.ptr[i];
    if (f->type != MSGPACK_OBJECT_ARRAY || f->via.array.size != 3 ||
        !ctr_obj_u32(&f->via.array.ptr[0], &fid) ||
        !ctr_obj_i64(&f->via.array.ptr[1], &line) ||
        f->via.array.ptr[2].type != MSGPACK_OBJECT_ARRAY)
      return fail(why, "STACK frame is not [func_id, line, vars]", CTR_EPROTO);
    if (line < 0 || line > CTR_LINE_MAX)
      return fail(why, "STACK frame line out of range", CTR_ERANGE);
    if (fid >= s->in.funcs.n)
      return fail(why, "STACK function id out of range", CTR_ERANGE);
  }
  if ((rc = switch_thread(s, m->u.stack.thread, why)) != 0)
    return rc;
  t = cur_thread(s);
  /* Frames the daemon already knows (the same functions from the bottom)
   * keep their state; the calls that ended meanwhile are closed in the
   * trace, and the frames above are entered anew. */
  for (keep = 0; keep < t->nframes && keep < fr->via.array.size; keep++)
    if (t->frames[keep].func !=
        (uint32_t)fr->via.array.ptr[keep].via.array.ptr[0].via.u64)
      break;
  while (t->nframes > keep) {
    ctr_frame_t f = ctr_stack_pop(t);
    if (f.flags & CTR_FRAME_WHILE)
      s->gate.while_depth--;
    if ((f.flags & CTR_FRAME_EMITTED) && s->trace) {
      ctr_writer_return(s->trace, NULL, false, why);
      s->st.returns++;
    }
  }
  for (i = keep; i < fr->via.array.size; i++) {
    fid = (uint32_t)fr->via.array.ptr[i].via.array.ptr[0].via.u64;
    ctr_stack_push(t, fid, enter_flags(s, t, fid));
  }
  s->stack = fr;
  if (s->trace && gate_closed(s) == NULL)
    open_frames(s, t);
  if (gate_open(s) && s->trace == NULL && (rc = ensure_trace(s)) != 0)
    rc = fail(why, "cannot create the trace folder", rc);
  s->stack = NULL;
  return rc;
}

static int execute(ctr_session_t *s, const ctr_msg_t *m, const char **why) {
  static const ctr_str_t none = {NULL, 0};

  switch (m->tag) {
  case CTR_MSG_STEP:
    return step(s, m, why);
  case CTR_MSG_CALL:
    return call(s, m, why);
  case CTR_MSG_RETURN:
    return ret(s, m, why);
  case CTR_MSG_VARS:
    return vars(s, m, why);
  case CTR_MSG_EVENT:
    return event(s, m->u.event.kind, m->u.event.text, none, why);
  case CTR_MSG_RAISE:
    return event(s, CTR_EV_ERROR, m->u.raise.cls, m->u.raise.text, why);
  case CTR_MSG_MARK:
    return event(s, CTR_EV_TRACE_LOG, m->u.mark.text, none, why);
  case CTR_MSG_THREAD:
    if (switch_thread(s, m->u.thread.id, why) != 0)
      return CTR_ELIMIT;
    /* A thread that runs for the first time in this interval. */
    if (s->trace && gate_closed(s) == NULL)
      open_frames(s, cur_thread(s));
    return 0;
  case CTR_MSG_STACK:
    return stack(s, m, why);
  }
  return fail(why, "message not allowed from a recording client", CTR_ESTATE);
}

/* Ingests the values of a list of [varname_id, value] pairs, each pair at
 * nesting level `level`; malformed pairs are left for rendering to report. */
static int ingest_pairs(ctr_session_t *s, const msgpack_object *pairs,
                        uint32_t level, const char **why) {
  uint32_t i;
  int rc;

  if (pairs->type != MSGPACK_OBJECT_ARRAY)
    return 0;
  for (i = 0; i < pairs->via.array.size; i++) {
    msgpack_object *p = &pairs->via.array.ptr[i];
    if (p->type == MSGPACK_OBJECT_ARRAY && p->via.array.size == 2 &&
        (rc = ctr_vdefs_ingest(s->vdefs, &p->via.array.ptr[1], level + 1,
                               why)) != 0)
      return rc;
  }
  return 0;
}

/* Takes the DEFs and REFs of a message's values, whatever becomes of the
 * message, so that the client's definitions and the daemon's never part
 * (PROTOCOL.md 9.1). Levels count the message array as 1. The values are
 * rewritten in place: the message is the session's to consume. */
static int ingest(ctr_session_t *s, const ctr_msg_t *m, const char **why) {
  const msgpack_object *fr;
  uint32_t i;
  int rc;

  ctr_vdefs_message(s->vdefs);
  switch (m->tag) {
  case CTR_MSG_VARS:
    if (m->u.vars.vars)
      return ingest_pairs(s, m->u.vars.vars, 3, why);
    for (i = 0; i < m->u.vars.nflat; i++) {
      msgpack_object tmp[5];
      if (m->u.vars.flat[i].vk != CTR_V_REF)
        continue;
      /* The value [12, def_id] as it came, then what it becomes. */
      ctr_flat_objects(&m->u.vars.flat[i], tmp);
      if ((rc = ctr_vdefs_ingest(s->vdefs, &tmp[1], 4, why)) != 0)
        return rc;
      s->flat_refs[i] = tmp[1];
    }
    return 0;
  case CTR_MSG_CALL:
    return ingest_pairs(s, m->u.call.args, 3, why);
  case CTR_MSG_RETURN:
    return ctr_vdefs_ingest(s->vdefs, (msgpack_object *)m->u.ret.value, 2, why);
  case CTR_MSG_STACK:
    fr = m->u.stack.frames;
    for (i = 0; i < fr->via.array.size; i++) {
      const msgpack_object *f = &fr->via.array.ptr[i];
      if (f->type == MSGPACK_OBJECT_ARRAY && f->via.array.size == 3 &&
          (rc = ingest_pairs(s, &f->via.array.ptr[2], 5, why)) != 0)
        return rc;
    }
    return 0;
  }
  return 0;
}

static void program_control(ctr_session_t *s, bool on);

int ctr_session_handle(ctr_session_t *s, const ctr_msg_t *m, const char **why) {
  int rc;

  s->st.received++;
  if (s->bye)
    return fail(why, "message after BYE", CTR_ESTATE);
  switch (m->tag) {
  case CTR_MSG_PATH:
  case CTR_MSG_FUNC:
  case CTR_MSG_TYPE:
  case CTR_MSG_VARNAME:
    return ctr_intern_declare(&s->in, m, why);
  case CTR_MSG_SOURCE:
    return ctr_intern_source(&s->in, m, why);
  case CTR_MSG_TIME:
    return 0;
  case CTR_MSG_FLUSHED:
    if (s->pausing && m->u.flush.token == s->pause_token)
      s->pausing = false;
    return 0;
  case CTR_MSG_LOST:
    /* What the client skipped by the pushed rules is filtering, not loss. */
    if (m->u.lost.cause.len == 8 && memcmp(m->u.lost.cause.ptr, "filtered", 8) == 0)
      s->st.filtered = sat_add(s->st.filtered, m->u.lost.count);
    else
      count_lost(&s->st, m->u.lost.cause, m->u.lost.count);
    return 0;
  case CTR_MSG_RECORD:
    program_control(s, m->u.record.on);
    return 0;
  case CTR_MSG_BYE:
    s->bye = true;
    s->exit_status = m->u.bye.status;
    return 0;
  case CTR_MSG_VARS:
  case CTR_MSG_CALL:
  case CTR_MSG_RETURN:
  case CTR_MSG_STACK:
    if ((rc = ingest(s, m, why)) != 0)
      return rc;
    break;
  }
  rc = execute(s, m, why);
  if (rc == 0)
    check_limits(s);
  /* Records wait in memory while the disk refuses them, but not without
   * bound: the session ends, aborted, and the client turns itself off. */
  if (rc == 0 && s->write_failed && ctr_session_pending(s) > PENDING_MAX)
    rc = fail(why, "the trace cannot be written (see the earlier error)",
              CTR_ELIMIT);
  return rc;
}

/* ---- metadata and lifecycle ------------------------------------------- */

static void write_meta(ctr_session_t *s) {
  ctr_writer_meta_t m = {
      .session = s->id,
      .state = s->state,
      .lang = s->lang,
      .lang_version = s->lang_version,
      .pid = s->pid,
      .ppid = s->ppid,
      .claimed_pid = s->claimed_pid,
      .uid = s->uid,
      .gid = s->gid,
      .interval = s->interval,
      .start = s->interval_start,
      .end = s->interval_end,
      .end_reason = s->end_reason,
      .exited = s->bye,
      .exit_status = s->exit_status,
      .received = s->st.received,
      .steps = s->st.steps,
      .calls = s->st.calls,
      .returns = s->st.returns,
      .events = s->st.events,
      .filtered = s->st.filtered,
      .dropped = s->st.dropped,
      .lost = s->st.lost,
      .lost_causes = s->st.lost_causes,
      .nlost_causes = s->st.nlost_causes,
      .threads = s->threads.n,
      .values = s->values == CTR_VALUES_ALL    ? "all"
                : s->values == CTR_VALUES_ARGS ? "args"
                                               : "none",
      .filter = s->filter_text,
  };

  ctr_writer_metadata(s->trace, &m);
}

/* Writes the metadata and whatever the trace holds unwritten. */
static int flush_trace(ctr_session_t *s) {
  int rc;

  s->st.written = ctr_writer_records(s->trace);
  write_meta(s);
  rc = ctr_writer_flush(s->trace);
  /* Logged when writing starts failing, not at every flush after. */
  if (rc != 0 && !s->write_failed)
    CTR_ERROR("session %llu: cannot write %s: %s", (unsigned long long)s->id,
              ctr_writer_dir(s->trace), ctr_strerror(rc));
  s->write_failed = rc != 0;
  return rc;
}

int ctr_session_flush(ctr_session_t *s) {
  if (s->trace == NULL)
    return 0;
  if (!ctr_writer_dirty(s->trace) && s->st.written == ctr_writer_records(s->trace))
    return 0;
  return flush_trace(s);
}

void ctr_session_end(ctr_session_t *s, const char *abort_reason) {
  char state[300];

  if (s->ended)
    return;
  s->ended = time(NULL);
  if (s->bye || abort_reason == NULL)
    snprintf(state, sizeof(state), "complete");
  else
    snprintf(state, sizeof(state), "aborted: %s", abort_reason);
  close_interval(s, state, s->bye ? "program exited" : abort_reason);
  free(s->state);
  s->state = ctr_xstrndup(state, strlen(state));
}

void ctr_session_tick(ctr_session_t *s) {
  if (s->ended)
    return;
  gate_open(s);
  check_limits(s);
}

/* Opens or closes the user's switch of the gate; reason is why the
 * interval ends. by_program: the program's own switch, which leaves a
 * record.max_* limit reached in force (ctrecctl start forgets it). */
static int control(ctr_session_t *s, bool on, bool by_program,
                   const char *reason) {
  bool changed;

  if (s->ended)
    return 0;
  changed = by_program ? ctr_gate_switch(&s->gate, on)
                       : ctr_gate_control(&s->gate, on);
  if (s->trace && !on)
    close_interval(s, "complete", reason);
  gate_open(s);
  return changed;
}

int ctr_session_control(ctr_session_t *s, bool on) {
  return control(s, on, false, "stopped by ctrecctl");
}

/* RECORD: the program paused or resumed itself (ctrec.pause/resume). Its
 * client has already stopped or started sending. After a pause the
 * daemon confirms with PAUSE and FLUSH as for ctrecctl stop. A client
 * that resumed itself while the gate stays shut gets PAUSE again even
 * when it was paused already: it did not wait for our word. */
static void program_control(ctr_session_t *s, bool on) {
  bool was_paused = s->client_paused;

  /* Said first: the client then drops the PAUSE and RESUME sent before
   * this, which its own switch overtook, and takes our answer. */
  if (s->hooks.send && !s->ended)
    s->hooks.send(s->hooks.arg, CTR_MSG_RECORDED, ++s->records);
  control(s, on, true, "paused by the program");
  if (on && was_paused && s->client_paused)
    tell_client(s, true);
}

void ctr_session_reload(ctr_session_t *s, const ctr_config_t *cfg) {
  static const ctr_str_t mark = {"ctrec: configuration reloaded", 29};
  static const ctr_str_t none = {NULL, 0};
  const char *why;
  uint32_t i;

  ctr_config_unref(s->cfg);
  s->cfg = ctr_config_ref(cfg);
  s->gate.cfg = s->cfg;
  ctr_filter_free(s->filter);
  s->filter = ctr_filter_ref(s->cfg->filter);
  ctr_filter_values(s->filter, &s->nvalue_rules);
  set_reuse(s);
  ctr_filter_free(s->while_in);
  s->while_in = compile_while_in(s->cfg);
  s->values = s->cfg->record_values;
  free(s->filter_text);
  s->filter_text = describe_filter(s->filter);
  make_wire_rules(s);
  for (i = 0; i < s->in.funcs.n; i++)
    s->in.funcs.v[i].action = s->in.funcs.v[i].while_in = -1;
  for (i = 0; i < s->in.paths.n; i++)
    s->in.paths.v[i].action = -1;
  /* The point where the new rules start, visible in the trace. */
  if (s->trace)
    event(s, CTR_EV_TRACE_LOG, mark, none, &why);
}

void ctr_session_welcome(ctr_session_t *s, ctr_welcome_t *w) {
  memset(w, 0, sizeof(*w));
  w->session = s->id;
  /* A session that starts paused still starts its client recording: the
   * daemon pauses it right away, and the client's stack is then known. */
  w->recording = true;
  w->flush_ms = s->cfg->flush_interval_ms;
  w->max_depth = s->cfg->value_depth;
  w->max_length = s->cfg->value_length;
  w->max_string = s->cfg->value_string;
  w->max_nodes = s->cfg->value_budget;
  w->refs = s->value_refs;
  w->wait_ms = s->cfg->client_wait_ms;
  w->buffer = s->cfg->client_buffer;
  w->values = s->values == CTR_VALUES_NONE   ? CTR_WV_NONE
              : s->values == CTR_VALUES_ARGS ? CTR_WV_ARGS
                                             : CTR_WV_ALL;
  w->rules = s->wire_rules;
  w->nrules = s->nwire_rules;
  w->pushdown = s->cfg->filter_pushdown;
  w->program_control = true;
}

size_t ctr_session_pending(const ctr_session_t *s) {
  return s->trace ? ctr_writer_pending(s->trace) : 0;
}

bool ctr_session_exited(const ctr_session_t *s) { return s->bye; }

uint64_t ctr_session_id(const ctr_session_t *s) { return s->id; }
int64_t ctr_session_pid(const ctr_session_t *s) { return s->pid; }
static const char *session_state(const ctr_session_t *s) {
  if (s->ended || s->trace)
    return s->state;
  /* Between intervals: the client has yet to confirm a PAUSE, or the gate
   * is open and the program has yet to run (and send its STACK). */
  if (gate_closed(s))
    return s->pausing ? "pausing" : "paused";
  return "resuming";
}
static const char *trace_dir(const ctr_session_t *s) {
  return s->trace ? ctr_writer_dir(s->trace) : NULL;
}

void ctr_session_pack_status(const ctr_session_t *s, msgpack_packer *pk) {
  const char *dir = trace_dir(s);

  msgpack_pack_map(pk, 14);
  ctr_pack_kv_u64(pk, "id", s->id);
  ctr_pack_kv_u64(pk, "pid", (uint64_t)s->pid);
  ctr_pack_kv_u64(pk, "ppid", (uint64_t)s->ppid);
  ctr_pack_kv_u64(pk, "uid", s->uid);
  ctr_pack_kv_str(pk, "lang", s->lang);
  ctr_pack_kv_str(pk, "program", s->program);
  ctr_pack_kv_str(pk, "state", session_state(s));
  ctr_pack_kv_u64(pk, "intervals", s->interval);
  ctr_pack_kv_str(pk, "reason", s->trace ? "" : gate_closed(s) ? gate_closed(s) : "");
  ctr_pack_kv_str(pk, "filter", s->filter_text);
  ctr_pack_kv_u64(pk, "received", s->st.received);
  ctr_pack_kv_u64(pk, "written", s->trace ? ctr_writer_records(s->trace) : 0);
  ctr_pack_kv_str(pk, "trace", dir ? dir : "");
  ctr_pack_kv_u64(pk, "dropped", sat_add(s->st.dropped, s->st.lost));
}

void ctr_session_free(ctr_session_t *s) {
  uint32_t i;

  if (s->trace)
    ctr_writer_close(s->trace);
  ctr_intern_free(&s->in);
  ctr_stacks_free(&s->threads);
  ctr_filter_free(s->filter);
  ctr_filter_free(s->while_in);
  ctr_config_unref(s->cfg);
  free(s->wire_rules);
  free(s->filter_text);
  ctr_map_free(&s->hidden_text);
  for (i = 0; i < s->ninside; i++)
    free(s->inside[i].text);
  ctr_buf_free(&s->scratch);
  ctr_vdefs_free(s->vdefs);
  free(s->lang);
  free(s->lang_version);
  free(s->program);
  free(s->cwd);
  for (i = 0; i < s->nargs; i++)
    free(s->args[i]);
  free(s->args);
  free(s->vars);
  free(s->state);
  free(s);
}
