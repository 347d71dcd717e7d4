/* ctr_intern.c: a session's interning. */
#include "ctr_intern.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctr_buf.h"
#include "ctr_error.h"
#include "ctr_filter.h"
#include "ctr_log.h"
#include "ctr_path.h"

#define TABLE_PUSH(t, item)                                                    \
  do {                                                                         \
    if ((t).n == (t).cap) {                                                    \
      (t).cap = (t).cap ? (t).cap * 2 : 64;                                    \
      (t).v = ctr_xrealloc((t).v, sizeof(*(t).v) * (t).cap);                   \
    }                                                                          \
    (t).v[(t).n++] = (item);                                                   \
  } while (0)

static int fail(const char **why, const char *text, int code) {
  *why = text;
  return code;
}

void ctr_intern_init(ctr_intern_t *in, uint64_t session, const char *lang,
                     uint32_t max_ids, uint32_t max_source) {
  memset(in, 0, sizeof(*in));
  in->session = session;
  in->lang = lang;
  in->max_ids = max_ids;
  in->max_source = max_source;
}

/* Only the text the shim sent: ctrecd never opens a path a client names
 * (it could be a FIFO that blocks the loop, or a file the client itself
 * may not read). The shim reads the file as the program's own user. */
static void copy_source(ctr_intern_t *in, const ctr_ipath_t *p) {
  int rc;

  if (p->source == NULL)
    return;
  rc = ctr_writer_source(in->trace, p->text, p->source, p->source_len);
  if (rc != 0)
    CTR_WARN("session %llu: cannot copy source %s: %s",
             (unsigned long long)in->session, p->text, ctr_strerror(rc));
}

static int64_t trace_path(ctr_intern_t *in, const char *text, uint32_t len) {
  int64_t tid = ctr_map_get(&in->trace_paths, text, len);

  if (tid < 0) {
    tid = ctr_writer_path(in->trace, text, len);
    ctr_map_put(&in->trace_paths, text, len, tid);
  }
  return tid;
}

int64_t ctr_intern_path(ctr_intern_t *in, uint32_t id) {
  ctr_ipath_t *p;

  if (id >= in->paths.n)
    return CTR_ERANGE;
  p = &in->paths.v[id];
  if (p->tid < 0) {
    p->tid = trace_path(in, p->text, p->len);
    copy_source(in, p);
  }
  return p->tid;
}

int64_t ctr_intern_type(void *ctx, uint32_t id) {
  ctr_intern_t *in = ctx;
  ctr_itype_t *t;

  if (id >= in->types.n)
    return CTR_ERANGE;
  t = &in->types.v[id];
  if (t->tid < 0)
    t->tid = ctr_writer_type(in->trace, t->kind, t->name, t->len);
  return t->tid;
}

int64_t ctr_intern_name(void *ctx, uint32_t id) {
  ctr_intern_t *in = ctx;
  ctr_iname_t *v;

  if (id >= in->names.n)
    return CTR_ERANGE;
  v = &in->names.v[id];
  if (v->tid < 0)
    v->tid = ctr_writer_varname(in->trace, v->text, v->len);
  return v->tid;
}

int64_t ctr_intern_struct(void *ctx, uint32_t id, const uint32_t *vids,
                          const int64_t *tids, uint32_t n) {
  ctr_intern_t *in = ctx;
  ctr_buf_t key = {0};
  const char **fields;
  uint32_t *lens, i;
  ctr_itype_t *t;
  int64_t tid;

  if (id >= in->types.n)
    return CTR_ERANGE;
  t = &in->types.v[id];
  ctr_buf_add(&key, &id, sizeof(id));
  ctr_buf_add(&key, vids, sizeof(*vids) * n);
  tid = ctr_map_get(&in->struct_types, key.data, key.len);
  if (tid < 0) {
    fields = ctr_xmalloc(sizeof(*fields) * (n ? n : 1));
    lens = ctr_xmalloc(sizeof(*lens) * (n ? n : 1));
    for (i = 0; i < n; i++) {
      fields[i] = in->names.v[vids[i]].text;
      lens[i] = in->names.v[vids[i]].len;
    }
    tid = ctr_writer_struct_type(in->trace, t->name, t->len, fields, lens, tids,
                                 n);
    ctr_map_put(&in->struct_types, key.data, key.len, tid);
    free(fields);
    free(lens);
  }
  ctr_buf_free(&key);
  return tid;
}

int64_t ctr_intern_func(ctr_intern_t *in, uint32_t id) {
  ctr_ifunc_t *f;
  int64_t pid;

  if (id >= in->funcs.n)
    return CTR_ERANGE;
  f = &in->funcs.v[id];
  if (f->tid < 0) {
    pid = ctr_intern_path(in, f->path_id);
    if (pid < 0)
      return pid;
    f->tid = ctr_writer_function(in->trace, pid, f->line, f->label, f->len);
  }
  return f->tid;
}

/* The names f's selectors see, from its label and FUNC's module (ptr NULL
 * when absent), as the shims' push-down derives them. */
static void func_names(const ctr_intern_t *in, ctr_ifunc_t *f,
                       ctr_str_t module) {
  char *mod = module.ptr ? ctr_xstrndup(module.ptr, module.len) : NULL;

  /* It fails only for want of memory (ctr_alloc.h). */
  if (ctr_filter_names(in->lang, mod, f->label, &f->module, &f->name) != 0)
    ctr_oom(0);
  free(mod);
}

int ctr_intern_declare(ctr_intern_t *in, const ctr_msg_t *m, const char **why) {
  uint32_t n = 0, id = 0;

  switch (m->tag) {
  case CTR_MSG_PATH:
    n = in->paths.n;
    id = m->u.intern.id;
    break;
  case CTR_MSG_FUNC:
    n = in->funcs.n;
    id = m->u.func.id;
    break;
  case CTR_MSG_TYPE:
    n = in->types.n;
    id = m->u.type.id;
    break;
  case CTR_MSG_VARNAME:
    n = in->names.n;
    id = m->u.intern.id;
    break;
  }
  if (id != n)
    return fail(why, "declared id is not the next dense id", CTR_ERANGE);
  if (n >= in->max_ids)
    return fail(why, "too many declarations (limits.max_ids)", CTR_ELIMIT);
  switch (m->tag) {
  case CTR_MSG_PATH: {
    ctr_ipath_t p = {0};
    /* Any other path could escape files/ in the trace folder. */
    if (!ctr_path_ok(m->u.intern.text.ptr, m->u.intern.text.len))
      return fail(why, "source path is not absolute or contains . or ..",
                  CTR_EPATH);
    p.text = ctr_xstrndup(m->u.intern.text.ptr, m->u.intern.text.len);
    p.len = m->u.intern.text.len;
    p.tid = -1;
    p.action = -1;
    TABLE_PUSH(in->paths, p);
    break;
  }
  case CTR_MSG_FUNC: {
    ctr_ifunc_t f;
    if (m->u.func.path_id >= in->paths.n)
      return fail(why, "function path id out of range", CTR_ERANGE);
    f.path_id = m->u.func.path_id;
    f.line = m->u.func.line;
    f.label = ctr_xstrndup(m->u.func.name.ptr, m->u.func.name.len);
    f.len = m->u.func.name.len;
    f.tid = -1;
    func_names(in, &f, m->u.func.module);
    f.action = -1;
    f.while_in = -1;
    TABLE_PUSH(in->funcs, f);
    break;
  }
  case CTR_MSG_TYPE: {
    ctr_itype_t t;
    t.kind = m->u.type.kind;
    t.name = ctr_xstrndup(m->u.type.name.ptr, m->u.type.name.len);
    t.len = m->u.type.name.len;
    t.tid = -1;
    TABLE_PUSH(in->types, t);
    break;
  }
  case CTR_MSG_VARNAME: {
    ctr_iname_t v;
    v.text = ctr_xstrndup(m->u.intern.text.ptr, m->u.intern.text.len);
    v.len = m->u.intern.text.len;
    v.tid = -1;
    TABLE_PUSH(in->names, v);
    break;
  }
  }
  return 0;
}

int ctr_intern_source(ctr_intern_t *in, const ctr_msg_t *m, const char **why) {
  ctr_ipath_t *p;

  if (m->u.source.path_id >= in->paths.n)
    return fail(why, "source path id out of range", CTR_ERANGE);
  if (m->u.source.text.len > in->max_source)
    return fail(why, "source larger than limits.max_source", CTR_ELIMIT);
  p = &in->paths.v[m->u.source.path_id];
  free(p->source);
  p->source = ctr_xstrndup(m->u.source.text.ptr, m->u.source.text.len);
  p->source_len = m->u.source.text.len;
  if (p->tid >= 0)
    copy_source(in, p);
  return 0;
}

int64_t ctr_intern_path_text(ctr_intern_t *in, const char *text, uint32_t len) {
  ctr_ipath_t p = {.text = (char *)text, .len = len, .tid = -1, .action = -1};
  int64_t tid = trace_path(in, text, len);

  copy_source(in, &p);
  return tid;
}

void ctr_intern_trace(ctr_intern_t *in, ctr_writer_t *trace) {
  uint32_t i;

  in->trace = trace;
  for (i = 0; i < in->paths.n; i++)
    in->paths.v[i].tid = -1;
  for (i = 0; i < in->funcs.n; i++)
    in->funcs.v[i].tid = -1;
  for (i = 0; i < in->types.n; i++)
    in->types.v[i].tid = -1;
  for (i = 0; i < in->names.n; i++)
    in->names.v[i].tid = -1;
  ctr_map_free(&in->struct_types);
  ctr_map_free(&in->trace_paths);
}

void ctr_intern_free(ctr_intern_t *in) {
  uint32_t i;

  for (i = 0; i < in->paths.n; i++) {
    free(in->paths.v[i].text);
    free(in->paths.v[i].source);
  }
  for (i = 0; i < in->funcs.n; i++) {
    free(in->funcs.v[i].name);
    free(in->funcs.v[i].label);
    free(in->funcs.v[i].module);
  }
  for (i = 0; i < in->types.n; i++)
    free(in->types.v[i].name);
  for (i = 0; i < in->names.n; i++)
    free(in->names.v[i].text);
  free(in->paths.v);
  free(in->funcs.v);
  free(in->types.v);
  free(in->names.v);
  ctr_map_free(&in->struct_types);
  ctr_map_free(&in->trace_paths);
}
