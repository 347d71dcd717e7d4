/* ctr_writer_ctfs.c: the CTFS backend of the trace writer (trace.ct).
 *
 * The folder (trace_metadata.json, trace_paths.json, files/) is
 * ctr_trace.c's, without trace.json; the container is daemon/ctfs's.
 * Values become CBOR ValueRecords (ctr_ctfs_cbor.c); a definition's CBOR is
 * kept in its slot (ctr_vdef_keep_text) under a key naming this writer, as
 * the JSON backend keeps its text. Functions get ids of their own here: the
 * container interns them by name, but a call is located at its function's
 * definition line, which two functions of one name do not share. */
#include <stdlib.h>
#include <string.h>

#include "ctr_buf.h"
#include "ctr_ctfs.h"
#include "ctr_ctfs_cbor.h"
#include "ctr_error.h"
#include "ctr_proto.h"
#include "ctr_trace.h"
#include "ctr_vdef.h"
#include "ctr_writer.h"

typedef struct cfunc_s {
  int64_t id, path, line; /* the container's id, the definition line */
} cfunc_t;

typedef struct ctfs_writer_s {
  ctr_writer_t base;
  ctr_trace_t *folder;
  ctr_ctfs_t *ct;
  ctr_writer_ids_t ids;
  ctr_ctfs_value_ops_t ops;
  uint64_t key, cache_key; /* names this writer's kept CBOR; 0: none */
  int64_t none, redacted;  /* type ids: None (at toplevel), "<redacted>" */
  cfunc_t *funcs;
  uint32_t nfuncs, fcap;
  uint64_t records, pending;
  bool dirty;
  /* The latest step was left out: CTFS places a step by path * 100000 +
   * line, so a line past 99,999 has no place. Its values are left out
   * with it rather than shown at the step before. */
  bool step_lost;
  uint64_t lost_steps; /* counted as dropped, not as steps, in metadata */
  /* Each trace varname's CBOR text, for Struct "field_names": names[i]
   * ends at name_end[i]. */
  ctr_buf_t names;
  size_t *name_end;
  uint32_t nnames, ncap;
  ctr_buf_t scratch;
  struct arg_s {
    size_t end;  /* of its CBOR in scratch */
    int64_t vid; /* its trace varname id */
  } *argv;
  uint32_t acap;
} ctfs_writer_t;

static ctfs_writer_t *C(ctr_writer_t *w) { return (ctfs_writer_t *)w; }
static const ctfs_writer_t *CC(const ctr_writer_t *w) {
  return (const ctfs_writer_t *)w;
}

/* Counts a record as the JSON backend would, so record.max_records means
 * the same in both formats. */
static void wrote(ctfs_writer_t *c, uint64_t records, size_t bytes) {
  c->records += records;
  c->pending += bytes;
  c->dirty = true;
}

static int64_t value_type(void *ctx, uint32_t shim_tid) {
  ctfs_writer_t *c = ctx;
  return c->ids.type(c->ids.ctx, shim_tid);
}

static int value_field(void *ctx, uint32_t shim_vid, ctr_buf_t *out) {
  ctfs_writer_t *c = ctx;
  int64_t vid = c->ids.varname(c->ids.ctx, shim_vid);
  size_t from;

  if (vid < 0)
    return (int)vid;
  if ((uint64_t)vid >= c->nnames)
    return CTR_ERANGE;
  from = vid ? c->name_end[vid - 1] : 0;
  ctr_buf_add(out, c->names.data + from, c->name_end[vid] - from);
  return 0;
}

/* An ingested DEF or REF: its kept CBOR, or encoded and kept. */
static int value_ext(void *ctx, const msgpack_object *o, ctr_buf_t *out,
                     uint32_t depth, const char **why) {
  ctfs_writer_t *c = ctx;
  ctr_vdef_t *d = ctr_vdef_of(o);
  size_t mark = out->len, len;
  const char *kept;
  int64_t tid;
  int rc;

  if (d == NULL) {
    *why = "extension object in a value";
    return CTR_EPROTO;
  }
  if (c->cache_key &&
      (kept = ctr_vdef_text(d, c->cache_key, &len, &tid)) != NULL) {
    ctr_buf_add(out, kept, len);
    return 0;
  }
  rc = ctr_ctfs_cbor_value_at(&c->ops, ctr_vdef_value(d), out, depth, why);
  if (rc == 0 && c->cache_key)
    ctr_vdef_keep_text(d, c->cache_key, out->data + mark, out->len - mark, 0);
  return rc;
}

static int ctfs_close(ctr_writer_t *w);

static int ctfs_open(ctr_writer_t **out, const ctr_writer_opts_t *o) {
  ctfs_writer_t *c = ctr_xcalloc(1, sizeof(*c));
  ctr_buf_t path = {0};
  int rc;

  rc = ctr_writer_open_folder(&c->folder, o, false);
  if (rc != 0) {
    free(c);
    return rc;
  }
  ctr_buf_puts(&path, ctr_trace_dir(c->folder));
  ctr_buf_puts(&path, "/trace.ct");
  ctr_buf_add(&path, "", 1);
  rc = ctr_ctfs_open(&c->ct, path.data, o->recording_id);
  if (rc == 0)
    ctr_trace_own(c->folder, path.data);
  ctr_buf_free(&path);
  if (rc == 0) {
    ctr_ctfs_meta_t m = {.program = o->program,
                         .args = o->args,
                         .nargs = o->nargs,
                         .workdir = o->workdir,
                         .recorder = "ctrec"};
    rc = ctr_ctfs_metadata(c->ct, &m);
  }
  c->base.be = &ctr_writer_ctfs;
  if (rc != 0) {
    ctfs_close(&c->base);
    return rc;
  }
  c->ids = o->ids;
  c->key = c->cache_key = ctr_writer_key();
  c->none = c->redacted = -1;
  c->ops.ctx = c;
  c->ops.type = value_type;
  c->ops.ext = value_ext;
  c->ops.field = value_field;
  c->ops.max_depth = o->max_depth;
  *out = &c->base;
  return 0;
}

static int64_t ctfs_path(ctr_writer_t *w, const char *text, size_t n) {
  ctfs_writer_t *c = C(w);
  int64_t id = ctr_ctfs_path(c->ct, text, n);

  if (id >= 0)
    ctr_trace_path(c->folder, text, n); /* trace_paths.json, same order */
  wrote(c, 1, n);
  return id;
}

static int ctfs_source(ctr_writer_t *w, const char *path, const char *text,
                       size_t n) {
  return ctr_trace_source(C(w)->folder, path, text, n);
}

static int64_t ctfs_function(ctr_writer_t *w, int64_t path, int64_t line,
                             const char *name, size_t n) {
  ctfs_writer_t *c = C(w);
  int64_t id = ctr_ctfs_function(c->ct, name, n);

  if (id < 0)
    return id;
  if (c->nfuncs == c->fcap) {
    c->fcap = c->fcap ? c->fcap * 2 : 64;
    c->funcs = ctr_xrealloc(c->funcs, sizeof(*c->funcs) * c->fcap);
  }
  c->funcs[c->nfuncs] = (cfunc_t){id, path, line};
  wrote(c, 1, n);
  return c->nfuncs++;
}

static int64_t ctfs_type(ctr_writer_t *w, int kind, const char *name,
                         size_t n) {
  (void)kind; /* types.dat holds names only (docs/ctfs.md) */
  wrote(C(w), 1, n);
  return ctr_ctfs_type(C(w)->ct, name, n);
}

static int64_t ctfs_struct_type(ctr_writer_t *w, const char *name, size_t n,
                                const char *const *fields, const uint32_t *lens,
                                const int64_t *tids, uint32_t nfields) {
  (void)fields, (void)lens, (void)tids, (void)nfields;
  return ctfs_type(w, CTR_TK_STRUCT, name, n);
}

static int64_t ctfs_varname(ctr_writer_t *w, const char *text, size_t n) {
  ctfs_writer_t *c = C(w);
  int64_t id = ctr_ctfs_varname(c->ct, text, n);

  wrote(c, 1, n);
  if (id >= 0 && (uint64_t)id == c->nnames) { /* new: keep its CBOR */
    if (c->nnames == c->ncap) {
      c->ncap = c->ncap ? c->ncap * 2 : 64;
      c->name_end = ctr_xrealloc(c->name_end, sizeof(*c->name_end) * c->ncap);
    }
    ctr_ctfs_cbor_text(&c->names, text, n);
    c->name_end[c->nnames++] = c->names.len;
  }
  return id;
}

/* Function 0 is <top-level>, called before the first step; type None
 * names a value-less return, as in the JSON trace. */
static int ctfs_toplevel(ctr_writer_t *w, int64_t path) {
  ctfs_writer_t *c = C(w);
  int64_t f;

  c->nfuncs = 0;
  if ((f = ctfs_function(w, path, 1, "<top-level>", 11)) < 0)
    return (int)f;
  wrote(c, 1, 0);
  if ((c->none = ctfs_type(w, CTR_TK_NONE, "None", 4)) < 0)
    return (int)c->none;
  return ctr_ctfs_call(c->ct, (uint64_t)c->funcs[f].id);
}

static int ctfs_step(ctr_writer_t *w, int64_t path, int64_t line) {
  ctfs_writer_t *c = C(w);
  int rc = ctr_ctfs_step(c->ct, (uint64_t)path, (uint64_t)line);

  c->step_lost = rc == CTR_ERANGE;
  if (rc == 0)
    wrote(c, 1, 4);
  c->lost_steps += c->step_lost;
  return c->step_lost ? 0 : rc;
}

/* A Raw "<redacted>" value. */
static int redacted_cbor(ctfs_writer_t *c, ctr_buf_t *out) {
  if (c->redacted < 0 &&
      (c->redacted = ctfs_type(&c->base, CTR_TK_RAW, "<redacted>", 10)) < 0)
    return (int)c->redacted;
  ctr_ctfs_cbor_head(out, 5, 3);
  ctr_ctfs_cbor_text(out, "kind", 4);
  ctr_ctfs_cbor_text(out, "Raw", 3);
  ctr_ctfs_cbor_text(out, "r", 1);
  ctr_ctfs_cbor_text(out, "<redacted>", 10);
  ctr_ctfs_cbor_text(out, "type_id", 7);
  ctr_ctfs_cbor_head(out, 0, (uint64_t)c->redacted);
  return 0;
}

/* Appends var's value as CBOR to out and returns its trace varname id. */
static int64_t encode_var(ctfs_writer_t *c, const ctr_writer_var_t *var,
                          ctr_buf_t *out, const char **why) {
  const msgpack_object *p = var->pair;
  uint32_t shim_vid;
  int64_t vid;
  int rc;

  if (p->type != MSGPACK_OBJECT_ARRAY || p->via.array.size != 2 ||
      !ctr_obj_u32(&p->via.array.ptr[0], &shim_vid)) {
    *why = "variable is not [varname_id, value]";
    return CTR_EPROTO;
  }
  if (var->redacted)
    rc = redacted_cbor(c, out);
  else
    rc = ctr_ctfs_cbor_value(&c->ops, &p->via.array.ptr[1], out, why);
  if (rc < 0)
    return rc;
  if ((vid = c->ids.varname(c->ids.ctx, shim_vid)) < 0)
    *why = "variable name id out of range";
  return vid;
}

/* The step at the definition line, then the call and its arguments: a
 * CTFS call begins at the next step, so the definition line stays the
 * caller's step, as in the JSON trace. Arguments are encoded first:
 * nothing is written when one is bad. */
static int ctfs_call(ctr_writer_t *w, int64_t function,
                     const ctr_writer_var_t *args, uint32_t n,
                     const char **why) {
  ctfs_writer_t *c = C(w);
  uint32_t i;
  int rc = 0;

  if (function < 0 || (uint64_t)function >= c->nfuncs)
    return CTR_ERANGE;
  if (n > c->acap) {
    c->acap = n;
    c->argv = ctr_xrealloc(c->argv, sizeof(*c->argv) * n);
  }
  c->scratch.len = 0;
  for (i = 0; i < n; i++) {
    if ((c->argv[i].vid = encode_var(c, &args[i], &c->scratch, why)) < 0)
      return (int)c->argv[i].vid;
    c->argv[i].end = c->scratch.len;
  }
  /* A call whose definition line has no place still opens: it then
   * begins at its first step, and its return closes it. */
  if ((rc = ctfs_step(w, c->funcs[function].path, c->funcs[function].line)) == 0)
    rc = ctr_ctfs_call(c->ct, (uint64_t)c->funcs[function].id);
  for (i = 0; i < n && rc == 0; i++) {
    size_t from = i ? c->argv[i - 1].end : 0;
    rc = ctr_ctfs_arg(c->ct, (uint64_t)c->argv[i].vid, c->scratch.data + from,
                      c->argv[i].end - from);
  }
  wrote(c, 2, c->scratch.len + 8);
  return rc;
}

static int ctfs_return(ctr_writer_t *w, const msgpack_object *value,
                       bool redacted, const char **why) {
  ctfs_writer_t *c = C(w);
  int rc = 0;

  c->scratch.len = 0;
  if (redacted) {
    rc = redacted_cbor(c, &c->scratch);
  } else if (value) {
    rc = ctr_ctfs_cbor_value(&c->ops, value, &c->scratch, why);
  } else {
    ctr_ctfs_cbor_head(&c->scratch, 5, 2);
    ctr_ctfs_cbor_text(&c->scratch, "kind", 4);
    ctr_ctfs_cbor_text(&c->scratch, "None", 4);
    ctr_ctfs_cbor_text(&c->scratch, "type_id", 7);
    ctr_ctfs_cbor_head(&c->scratch, 0, (uint64_t)(c->none < 0 ? 0 : c->none));
  }
  if (rc < 0)
    return rc;
  wrote(c, 1, c->scratch.len);
  return ctr_ctfs_return(c->ct, c->scratch.data, c->scratch.len);
}

static int ctfs_value(ctr_writer_t *w, const ctr_writer_var_t *var,
                      const char **why) {
  ctfs_writer_t *c = C(w);
  const msgpack_object *p = var->pair;
  const char *kept;
  ctr_vdef_t *d;
  uint32_t shim_vid;
  int64_t vid, tid;
  size_t len;

  if (c->step_lost)
    return 0;
  /* A definition's kept CBOR goes to the trace as it is, not through
   * scratch: most bytes of an object-heavy trace are such. */
  if (!var->redacted && c->cache_key && p->type == MSGPACK_OBJECT_ARRAY &&
      p->via.array.size == 2 && ctr_obj_u32(&p->via.array.ptr[0], &shim_vid) &&
      (d = ctr_vdef_of(&p->via.array.ptr[1])) != NULL &&
      (kept = ctr_vdef_text(d, c->cache_key, &len, &tid)) != NULL) {
    if ((vid = c->ids.varname(c->ids.ctx, shim_vid)) < 0) {
      *why = "variable name id out of range";
      return (int)vid;
    }
    wrote(c, 1, len);
    return ctr_ctfs_value(c->ct, (uint64_t)vid, kept, len);
  }
  c->scratch.len = 0;
  if ((vid = encode_var(c, var, &c->scratch, why)) < 0)
    return (int)vid;
  wrote(c, 1, c->scratch.len);
  return ctr_ctfs_value(c->ct, (uint64_t)vid, c->scratch.data, c->scratch.len);
}

/* Encoded straight from what ctr_proto_read_flat decoded. */
static int ctfs_flat_value(ctr_writer_t *w, const ctr_flat_var_t *v,
                           const char **why) {
  ctfs_writer_t *c = C(w);
  int64_t vid;
  int rc;

  if (c->step_lost)
    return 0;
  c->scratch.len = 0;
  rc = ctr_ctfs_cbor_scalar(&c->ops, v->vk, v->tid,
                            v->vk == CTR_V_NONE ? NULL : &v->payload,
                            &c->scratch, why);
  if (rc < 0)
    return rc;
  if ((vid = c->ids.varname(c->ids.ctx, v->vid)) < 0) {
    *why = "variable name id out of range";
    return (int)vid;
  }
  wrote(c, 1, c->scratch.len);
  return ctr_ctfs_value(c->ct, (uint64_t)vid, c->scratch.data, c->scratch.len);
}

static int ctfs_event(ctr_writer_t *w, int kind, const char *text, size_t n) {
  wrote(C(w), 1, n);
  return ctr_ctfs_event(C(w)->ct, (unsigned)kind, "", 0, text, n);
}

static int ctfs_thread(ctr_writer_t *w, uint64_t id) {
  wrote(C(w), 1, 4);
  return ctr_ctfs_thread(C(w)->ct, CTR_CTFS_THREAD_SWITCH, id);
}

static void ctfs_reuse(ctr_writer_t *w, bool on) {
  C(w)->cache_key = on ? C(w)->key : 0;
}

static void ctfs_metadata(ctr_writer_t *w, const ctr_writer_meta_t *m) {
  ctfs_writer_t *c = C(w);
  ctr_writer_meta_t mm = *m;
  uint64_t lost = c->lost_steps < m->steps ? c->lost_steps : m->steps;

  mm.steps -= lost;
  mm.dropped += lost;
  ctr_writer_set_meta(c->folder, &mm, c->records);
}

/* trace.ct first: trace_metadata.json never counts what it lacks. */
static int ctfs_flush(ctr_writer_t *w) {
  ctfs_writer_t *c = C(w);
  int rc = ctr_ctfs_flush(c->ct), rc2 = ctr_trace_flush(c->folder);

  if (rc == 0) {
    c->pending = 0;
    c->dirty = false;
  }
  return rc ? rc : rc2;
}

static int ctfs_end(ctr_writer_t *w) { return ctr_ctfs_end(C(w)->ct); }

static bool ctfs_dirty(const ctr_writer_t *w) {
  return CC(w)->dirty || ctr_trace_dirty(CC(w)->folder);
}
static size_t ctfs_pending(const ctr_writer_t *w) { return CC(w)->pending; }
static uint64_t ctfs_records(const ctr_writer_t *w) { return CC(w)->records; }
static uint64_t ctfs_bytes(const ctr_writer_t *w) {
  return ctr_ctfs_bytes(CC(w)->ct);
}
static const char *ctfs_dir(const ctr_writer_t *w) {
  return ctr_trace_dir(CC(w)->folder);
}

static int ctfs_close(ctr_writer_t *w) {
  ctfs_writer_t *c = C(w);
  int rc = c->ct ? ctr_ctfs_close(c->ct) : 0, rc2 = ctr_trace_close(c->folder);

  free(c->funcs);
  free(c->argv);
  free(c->name_end);
  ctr_buf_free(&c->names);
  ctr_buf_free(&c->scratch);
  free(c);
  return rc ? rc : rc2;
}

/* A killed daemon's trace.ct lacks the calls still waiting or open at its
 * last flush: they are appended (ctr_ctfs_recover). */
static int ctfs_repair(const char *dir) {
  ctr_buf_t path = {0};
  int rc;

  ctr_buf_puts(&path, dir);
  ctr_buf_puts(&path, "/trace.ct");
  ctr_buf_add(&path, "", 1);
  rc = ctr_ctfs_recover(path.data);
  ctr_buf_free(&path);
  return rc < 0 ? rc : 0;
}

const ctr_writer_backend_t ctr_writer_ctfs = {
    .name = "ctfs",
    .open = ctfs_open,
    .path = ctfs_path,
    .source = ctfs_source,
    .function = ctfs_function,
    .type = ctfs_type,
    .struct_type = ctfs_struct_type,
    .varname = ctfs_varname,
    .toplevel = ctfs_toplevel,
    .step = ctfs_step,
    .call = ctfs_call,
    .ret = ctfs_return,
    .value = ctfs_value,
    .flat_value = ctfs_flat_value,
    .event = ctfs_event,
    .thread = ctfs_thread,
    .reuse = ctfs_reuse,
    .metadata = ctfs_metadata,
    .flush = ctfs_flush,
    .end = ctfs_end,
    .dirty = ctfs_dirty,
    .pending = ctfs_pending,
    .records = ctfs_records,
    .bytes = ctfs_bytes,
    .dir = ctfs_dir,
    .close = ctfs_close,
    .repair = ctfs_repair,
};
