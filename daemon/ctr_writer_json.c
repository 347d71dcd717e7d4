/* ctr_writer_json.c: the CodeTracer JSON backend of the trace writer.
 *
 * Records are JSON objects in trace.json (ctr_trace.c does the file work)
 * and ids are positions of their defining records, counted here. Values
 * become ValueRecord JSON (ctr_value.c). The text around the ids written
 * most often is kept per id (ctr_json_frag_t), and so is a definition's
 * rendered text (ctr_vdef_keep_text), under a key naming this writer. */
#include <stdlib.h>
#include <string.h>

#include "ctr_buf.h"
#include "ctr_error.h"
#include "ctr_proto.h"
#include "ctr_trace.h"
#include "ctr_value.h"
#include "ctr_writer.h"

/* Lazily filled texts around ids, indexed by id. */
typedef struct frags_s {
  ctr_json_frag_t *v;
  uint32_t n;
} frags_t;

/* A function's definition line: its call is located there. */
typedef struct fline_s {
  int64_t path, line;
} fline_t;

typedef struct json_writer_s {
  ctr_writer_t base;
  ctr_trace_t *trace;
  ctr_writer_ids_t ids;
  ctr_value_ops_t ops;
  uint64_t key; /* names this writer's kept definition texts */
  uint32_t types, names, funcs;
  int64_t redacted;   /* the type of "<redacted>" values, -1 until used */
  frags_t type_frags; /* ,"type_id":T} */
  frags_t name_frags; /* {"variable_id":V,"value": */
  frags_t step_frags; /* {"Step":{"path_id":P,"line": */
  fline_t *flines;
  uint32_t fcap;
  ctr_buf_t scratch;
} json_writer_t;

static json_writer_t *J(ctr_writer_t *w) { return (json_writer_t *)w; }
static const json_writer_t *CJ(const ctr_writer_t *w) {
  return (const json_writer_t *)w;
}

static const ctr_json_frag_t *frag(frags_t *f, int64_t id, const char *pre,
                                   const char *post) {
  uint32_t i;

  if ((uint64_t)id >= f->n) {
    uint32_t n = f->n ? f->n : 64;
    while (n <= (uint64_t)id)
      n *= 2;
    f->v = ctr_xrealloc(f->v, sizeof(*f->v) * n);
    for (i = f->n; i < n; i++)
      f->v[i].len = 0;
    f->n = n;
  }
  if (f->v[id].len == 0)
    ctr_json_frag(&f->v[id], pre, id, post);
  return &f->v[id];
}

static const ctr_json_frag_t *type_frag(json_writer_t *j, int64_t tid) {
  return frag(&j->type_frags, tid, ",\"type_id\":", "}");
}

static const ctr_json_frag_t *name_frag(json_writer_t *j, int64_t vid) {
  return frag(&j->name_frags, vid, "{\"variable_id\":", ",\"value\":");
}

/* ctr_value.c asks for texts; the session's interning gives the ids. */
static const ctr_json_frag_t *value_type(void *ctx, uint32_t shim_tid) {
  json_writer_t *j = ctx;
  int64_t tid = j->ids.type(j->ids.ctx, shim_tid);

  return tid < 0 ? NULL : type_frag(j, tid);
}

static const ctr_json_frag_t *value_name(void *ctx, uint32_t shim_vid) {
  json_writer_t *j = ctx;
  int64_t vid = j->ids.varname(j->ids.ctx, shim_vid);

  return vid < 0 ? NULL : name_frag(j, vid);
}

static int64_t value_struct(void *ctx, uint32_t shim_tid, const uint32_t *vids,
                            const int64_t *tids, uint32_t n) {
  json_writer_t *j = ctx;

  return j->ids.struct_type(j->ids.ctx, shim_tid, vids, tids, n);
}

static int json_open(ctr_writer_t **out, const ctr_writer_opts_t *o) {
  json_writer_t *j = ctr_xcalloc(1, sizeof(*j));
  int rc;

  rc = ctr_writer_open_folder(&j->trace, o, true);
  if (rc != 0) {
    free(j);
    return rc;
  }
  j->base.be = &ctr_writer_json;
  j->ids = o->ids;
  j->key = ctr_writer_key();
  j->redacted = -1;
  j->ops.ctx = j;
  j->ops.type = value_type;
  j->ops.varname = value_name;
  j->ops.struct_type = value_struct;
  j->ops.floats_as_strings = o->floats_as_strings;
  j->ops.max_depth = o->max_depth;
  j->ops.cache_key = j->key;
  *out = &j->base;
  return 0;
}

static int64_t json_path(ctr_writer_t *w, const char *text, size_t n) {
  json_writer_t *j = J(w);
  int64_t id = ctr_trace_path(j->trace, text, n);

  frag(&j->step_frags, id, "{\"Step\":{\"path_id\":", ",\"line\":");
  return id;
}

static int json_source(ctr_writer_t *w, const char *path, const char *text,
                       size_t n) {
  return ctr_trace_source(J(w)->trace, path, text, n);
}

static int64_t json_function(ctr_writer_t *w, int64_t path, int64_t line,
                             const char *name, size_t n) {
  json_writer_t *j = J(w);
  ctr_buf_t *b = ctr_trace_record(j->trace);

  ctr_buf_puts(b, "{\"Function\":{\"path_id\":");
  ctr_json_i64(b, path);
  ctr_buf_puts(b, ",\"line\":");
  ctr_json_i64(b, line);
  ctr_buf_puts(b, ",\"name\":");
  ctr_json_str(b, name, n);
  ctr_buf_puts(b, "}}");
  if (j->funcs == j->fcap) {
    j->fcap = j->fcap ? j->fcap * 2 : 64;
    j->flines = ctr_xrealloc(j->flines, sizeof(*j->flines) * j->fcap);
  }
  j->flines[j->funcs] = (fline_t){path, line};
  return j->funcs++;
}

static int64_t json_type(ctr_writer_t *w, int kind, const char *name,
                         size_t n) {
  json_writer_t *j = J(w);
  ctr_buf_t *b = ctr_trace_record(j->trace);

  ctr_buf_puts(b, "{\"Type\":{\"kind\":");
  ctr_json_i64(b, kind);
  ctr_buf_puts(b, ",\"lang_type\":");
  ctr_json_str(b, name, n);
  ctr_buf_puts(b, ",\"specific_info\":{\"kind\":\"None\"}}}");
  return j->types++;
}

static int64_t json_struct_type(ctr_writer_t *w, const char *name, size_t n,
                                const char *const *fields, const uint32_t *lens,
                                const int64_t *tids, uint32_t nfields) {
  json_writer_t *j = J(w);
  ctr_buf_t *b = ctr_trace_record(j->trace);
  uint32_t i;

  ctr_buf_puts(b, "{\"Type\":{\"kind\":6,\"lang_type\":");
  ctr_json_str(b, name, n);
  ctr_buf_puts(b, ",\"specific_info\":{\"kind\":\"Struct\",\"fields\":[");
  for (i = 0; i < nfields; i++) {
    ctr_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
    ctr_json_str(b, fields[i], lens[i]);
    ctr_buf_puts(b, ",\"type_id\":");
    ctr_json_i64(b, tids[i]);
    ctr_buf_add(b, "}", 1);
  }
  ctr_buf_puts(b, "]}}}");
  return j->types++;
}

static int64_t json_varname(ctr_writer_t *w, const char *text, size_t n) {
  json_writer_t *j = J(w);
  ctr_buf_t *b = ctr_trace_record(j->trace);

  ctr_buf_puts(b, "{\"VariableName\":");
  ctr_json_str(b, text, n);
  ctr_buf_add(b, "}", 1);
  return j->names++;
}

/* Function 0 and its call come first (trace-format R2), then type 0 =
 * None, which a value-less return names. */
static int json_toplevel(ctr_writer_t *w, int64_t path) {
  json_writer_t *j = J(w);
  ctr_buf_t *b = ctr_trace_record(j->trace);

  ctr_buf_puts(b, "{\"Function\":{\"path_id\":");
  ctr_json_i64(b, path);
  ctr_buf_puts(b, ",\"line\":1,\"name\":\"<top-level>\"}}");
  if (j->fcap == 0) {
    j->fcap = 64;
    j->flines = ctr_xmalloc(sizeof(*j->flines) * j->fcap);
  }
  j->flines[0] = (fline_t){path, 1};
  j->funcs = 1;
  b = ctr_trace_record(j->trace);
  ctr_buf_puts(b, "{\"Call\":{\"function_id\":0,\"args\":[]}}");
  json_type(w, CTR_TK_NONE, "None", 4);
  return 0;
}

static int json_step(ctr_writer_t *w, int64_t path, int64_t line) {
  json_writer_t *j = J(w);
  ctr_buf_t *b = ctr_trace_record(j->trace);

  ctr_buf_frag(
      b, frag(&j->step_frags, path, "{\"Step\":{\"path_id\":", ",\"line\":"));
  ctr_json_i64(b, line);
  ctr_buf_puts(b, "}}");
  return 0;
}

static int64_t redacted_type(json_writer_t *j) {
  if (j->redacted < 0)
    j->redacted = json_type(&j->base, CTR_TK_RAW, "<redacted>", 10);
  return j->redacted;
}

/* Appends {"variable_id":V,"value":...} for var. */
static int render_var(json_writer_t *j, const ctr_writer_var_t *var,
                      ctr_buf_t *out, const char **why) {
  const ctr_json_frag_t *name;
  int64_t tid;

  if (!var->redacted)
    return ctr_value_render_pair(&j->ops, var->pair, out, why) < 0 ? CTR_EPROTO
                                                                   : 0;
  /* The type is declared before the name, as it always was. */
  tid = redacted_type(j);
  name = value_name(j, (uint32_t)var->pair->via.array.ptr[0].via.u64);
  if (name == NULL) {
    *why = "variable name id out of range";
    return CTR_EPROTO;
  }
  ctr_buf_frag(out, name);
  ctr_buf_puts(out, "{\"kind\":\"Raw\",\"r\":\"<redacted>\",\"type_id\":");
  ctr_json_i64(out, tid);
  ctr_buf_puts(out, "}}");
  return 0;
}

/* A step at the callee's definition line, then the Call. The arguments
 * are rendered first: a record must not be interleaved with the Type and
 * VariableName records they declare. */
static int json_call(ctr_writer_t *w, int64_t function,
                     const ctr_writer_var_t *args, uint32_t n,
                     const char **why) {
  json_writer_t *j = J(w);
  ctr_buf_t *b;
  uint32_t i;
  int rc;

  j->scratch.len = 0;
  for (i = 0; i < n; i++) {
    if (i)
      ctr_buf_add(&j->scratch, ",", 1);
    if ((rc = render_var(j, &args[i], &j->scratch, why)) != 0)
      return rc;
  }
  json_step(w, j->flines[function].path, j->flines[function].line);
  b = ctr_trace_record(j->trace);
  ctr_buf_puts(b, "{\"Call\":{\"function_id\":");
  ctr_json_i64(b, function);
  ctr_buf_puts(b, ",\"args\":[");
  ctr_buf_add(b, j->scratch.data, j->scratch.len);
  ctr_buf_puts(b, "]}}");
  return 0;
}

static int json_return(ctr_writer_t *w, const msgpack_object *value,
                       bool redacted, const char **why) {
  json_writer_t *j = J(w);
  int64_t tid = -1;
  ctr_buf_t *b;

  j->scratch.len = 0;
  if (redacted)
    tid = redacted_type(j);
  else if (value && ctr_value_render(&j->ops, value, &j->scratch, why) < 0)
    return CTR_EPROTO;
  b = ctr_trace_record(j->trace);
  ctr_buf_puts(b, "{\"Return\":{\"return_value\":");
  if (redacted) {
    ctr_buf_puts(b, "{\"kind\":\"Raw\",\"r\":\"<redacted>\",\"type_id\":");
    ctr_json_i64(b, tid);
    ctr_buf_add(b, "}", 1);
  } else if (value == NULL) {
    ctr_buf_puts(b, "{\"kind\":\"None\",\"type_id\":0}");
  } else {
    ctr_buf_add(b, j->scratch.data, j->scratch.len);
  }
  ctr_buf_puts(b, "}}");
  return 0;
}

static int json_value(ctr_writer_t *w, const ctr_writer_var_t *var,
                      const char **why) {
  json_writer_t *j = J(w);
  ctr_buf_t *b;
  int rc;

  j->scratch.len = 0;
  if ((rc = render_var(j, var, &j->scratch, why)) != 0)
    return rc;
  b = ctr_trace_record(j->trace);
  ctr_buf_puts(b, "{\"Value\":");
  ctr_buf_add(b, j->scratch.data, j->scratch.len);
  ctr_buf_add(b, "}", 1);
  return 0;
}

/* Rendered in place: the name and type are declared before the record
 * starts, so nothing comes between. The same text json_value gives. */
static int json_flat_value(ctr_writer_t *w, const ctr_flat_var_t *v,
                           const char **why) {
  json_writer_t *j = J(w);
  const ctr_json_frag_t *name = value_name(j, v->vid), *type;
  ctr_buf_t *b;

  if (name == NULL) {
    *why = "variable name id out of range";
    return CTR_EPROTO;
  }
  if ((type = value_type(j, v->tid)) == NULL) {
    *why = "value type id out of range";
    return CTR_EPROTO;
  }
  b = ctr_trace_record(j->trace);
  ctr_buf_puts(b, "{\"Value\":");
  ctr_buf_frag(b, name);
  if (ctr_value_render_scalar(&j->ops, v->vk,
                              v->vk == CTR_V_NONE ? NULL : &v->payload, b,
                              why) < 0) {
    ctr_trace_unrecord(j->trace);
    return CTR_EPROTO;
  }
  ctr_buf_frag(b, type);
  ctr_buf_add(b, "}}", 2);
  return 0;
}

static int json_event(ctr_writer_t *w, int kind, const char *text, size_t n) {
  ctr_buf_t *b = ctr_trace_record(J(w)->trace);

  ctr_buf_puts(b, "{\"Event\":{\"kind\":");
  ctr_json_i64(b, kind);
  ctr_buf_puts(b, ",\"metadata\":\"\",\"content\":");
  ctr_json_str(b, text, n);
  ctr_buf_puts(b, "}}");
  return 0;
}

static int json_thread(ctr_writer_t *w, uint64_t id) {
  ctr_buf_t *b = ctr_trace_record(J(w)->trace);

  ctr_buf_puts(b, "{\"ThreadSwitch\":");
  ctr_json_u64(b, id);
  ctr_buf_add(b, "}", 1);
  return 0;
}

static void json_reuse(ctr_writer_t *w, bool on) {
  J(w)->ops.cache_key = on ? J(w)->key : 0;
}

static void json_metadata(ctr_writer_t *w, const ctr_writer_meta_t *m) {
  json_writer_t *j = J(w);

  ctr_writer_set_meta(j->trace, m, ctr_trace_records_kept(j->trace));
}

static int json_flush(ctr_writer_t *w) { return ctr_trace_flush(J(w)->trace); }
static bool json_dirty(const ctr_writer_t *w) {
  return ctr_trace_dirty(CJ(w)->trace);
}
static size_t json_pending(const ctr_writer_t *w) {
  return ctr_trace_pending(CJ(w)->trace);
}
static uint64_t json_records(const ctr_writer_t *w) {
  return ctr_trace_records(CJ(w)->trace);
}
static uint64_t json_bytes(const ctr_writer_t *w) {
  return ctr_trace_bytes(CJ(w)->trace);
}
static const char *json_dir(const ctr_writer_t *w) {
  return ctr_trace_dir(CJ(w)->trace);
}

static int json_close(ctr_writer_t *w) {
  json_writer_t *j = J(w);
  int rc = ctr_trace_close(j->trace);

  free(j->type_frags.v);
  free(j->name_frags.v);
  free(j->step_frags.v);
  free(j->flines);
  ctr_buf_free(&j->scratch);
  free(j);
  return rc;
}

const ctr_writer_backend_t ctr_writer_json = {
    .name = "json",
    .open = json_open,
    .path = json_path,
    .source = json_source,
    .function = json_function,
    .type = json_type,
    .struct_type = json_struct_type,
    .varname = json_varname,
    .toplevel = json_toplevel,
    .step = json_step,
    .call = json_call,
    .ret = json_return,
    .value = json_value,
    .flat_value = json_flat_value,
    .event = json_event,
    .thread = json_thread,
    .reuse = json_reuse,
    .metadata = json_metadata,
    .flush = json_flush,
    .dirty = json_dirty,
    .pending = json_pending,
    .records = json_records,
    .bytes = json_bytes,
    .dir = json_dir,
    .close = json_close,
    .repair = ctr_trace_repair_json,
};
