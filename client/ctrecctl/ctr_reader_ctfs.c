/* ctr_reader_ctfs.c: the trace reader's CTFS backend (trace.ct).
 *
 * A CTFS trace keeps its facts in separate streams: interning tables, steps
 * (one values record per step), calls (written when they return, in the
 * order they opened, with their entry and exit steps) and events (each at a
 * step). This backend merges them back into the JSON trace's order: the
 * names a record uses, then per step its Calls (those entered at it), the
 * Step with its Values, its Events, and the Returns of the calls that exit
 * at it, innermost first.
 *
 * Live (docs/ctfs.md): at each poll it reads block 0 again (a snapshot of
 * the sizes and map roots) and, when that moved, only what is new: the
 * tables' new records and the chunks from the first record not yet handed
 * out (ctr_ctfs_read); a step is complete once its values record is
 * there. A call is only written once every call opened
 * before it has returned, so a follower learns of calls late: one whose
 * entry step was already handed out is skipped, with its return. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctr_buf.h"
#include "ctr_ctfs_read.h"
#include "ctr_error.h"
#include "ctr_map.h"
#include "ctr_reader.h"

#define CBOR_DEPTH 250        /* as deep as check's JSON records may nest */
#define LINES_PER_FILE 100000 /* the reader's global line index */
/* Records of a stream one poll reads at most: steps and values, calls and
 * (at first) events. */
#define WINDOW 4096

typedef struct call_s {
  uint64_t key, entry, exit;
  ctr_jval_t *call, *ret; /* the records still to hand out */
} call_t;

/* Records built, waiting to be handed out. */
typedef struct queue_s {
  ctr_jval_t **v;
  size_t head, n, cap;
} queue_t;

typedef struct ctfs_s {
  char path[4096];
  ctr_ctfs_image_t img;
  bool live;
  bool loaded;        /* img holds a snapshot */
  bool read;          /* a snapshot's records were read */
  bool more;          /* the snapshot holds records not read yet */
  bool calls_all;     /* the calls stream was read to its end */
  size_t evwin;       /* events read per poll */
  uint64_t tables[4]; /* records of each table handed out */
  int table;          /* the table being read */
  uint64_t steps;     /* steps handed out */
  uint64_t ncalls;    /* call records read */
  uint64_t events;    /* events handed out */
  uint64_t gli;       /* the global line index of the latest step */
  call_t *calls;      /* read, their Call not handed out yet, by key */
  size_t ncall, callcap;
  call_t *open; /* handed out, their Return not yet: a stack */
  size_t nopen, opencap;
  queue_t q;
  /* Types as the JSON trace numbers them, by the positions of their Type
   * records: types.dat's, and among them a Struct type per class and
   * field names met in values, as the JSON trace declares them. */
  struct ctype_s {
    char *name;
    uint64_t out; /* its Type record's position */
  } *ctypes;      /* by types.dat id */
  size_t nctypes, ctcap;
  uint64_t types_out; /* Type records queued */
  ctr_map_t structs;  /* types.dat id + field names -> position */
  char *why;
  size_t whycap;
} ctfs_t;

static const char *const tables[4] = {"paths", "funcs", "types", "varnames"};

static void push(queue_t *q, ctr_jval_t *rec) {
  if (q->n == q->cap) {
    q->cap = q->cap ? 2 * q->cap : 64;
    q->v = ctr_xrealloc(q->v, q->cap * sizeof(*q->v));
  }
  q->v[q->n++] = rec;
}

static ctr_jval_t *num_u(uint64_t v) {
  char s[24];
  int n = snprintf(s, sizeof(s), "%" PRIu64, v);
  return ctr_jval_new(CTR_JVAL_NUM, s, (size_t)n);
}

static ctr_jval_t *str(const char *s, size_t n) {
  return ctr_jval_new(CTR_JVAL_STR, s, n);
}

/* {name: payload} */
static ctr_jval_t *record(const char *name, ctr_jval_t *payload) {
  ctr_jval_t *r = ctr_jval_new(CTR_JVAL_OBJ, NULL, 0);
  ctr_jval_add(r, name, payload);
  return r;
}

/* ---- CBOR ValueRecords as the JSON trace's values -------------------------
 */

typedef struct cbor_s {
  const unsigned char *p;
  size_t n, pos;
} cbor_t;

static bool head(cbor_t *c, unsigned *major, uint64_t *arg) {
  unsigned info;
  int k;

  if (c->pos >= c->n)
    return false;
  *major = c->p[c->pos] >> 5;
  info = c->p[c->pos++] & 31;
  if (info < 24) {
    *arg = info;
    return true;
  }
  if (info > 27)
    return false;
  k = 1 << (info - 24);
  if (c->n - c->pos < (size_t)k)
    return false;
  for (*arg = 0; k > 0; k--)
    *arg = (*arg << 8) | c->p[c->pos++];
  return true;
}

static void base64(ctr_buf_t *b, const unsigned char *p, size_t n) {
  static const char tab[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i;

  for (i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 |
                 (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                 (i + 2 < n ? p[i + 2] : 0);
    char o[4] = {tab[v >> 18], tab[(v >> 12) & 63],
                 i + 1 < n ? tab[(v >> 6) & 63] : '=',
                 i + 2 < n ? tab[v & 63] : '='};
    ctr_buf_add(b, o, 4);
  }
}

static bool item(cbor_t *c, ctr_jval_t **out, int depth);

/* Decodes one CBOR item into *out; false when it is not well formed or
 * not of the shapes a ValueRecord uses (*out may then hold a part). */
static bool item_part(cbor_t *c, ctr_jval_t **out, int depth) {
  unsigned major;
  uint64_t arg, i;
  char s[32];
  unsigned char first = c->pos < c->n ? c->p[c->pos] : 0;

  *out = NULL;
  if (depth > CBOR_DEPTH || !head(c, &major, &arg))
    return false;
  switch (major) {
  case 0:
  case 1:
    if (major == 1 && arg > (uint64_t)INT64_MAX)
      return false;
    snprintf(s, sizeof(s), major ? "-%" PRIu64 : "%" PRIu64,
             major ? arg + 1 : arg);
    *out = ctr_jval_new(CTR_JVAL_NUM, s, strlen(s));
    return true;
  case 2: {
    ctr_buf_t b = {0};
    if (arg > c->n - c->pos)
      return false;
    base64(&b, c->p + c->pos, (size_t)arg); /* BigInt "b", as in JSON */
    *out = str(b.data ? b.data : "", b.len);
    ctr_buf_free(&b);
    c->pos += (size_t)arg;
    return true;
  }
  case 3:
    if (arg > c->n - c->pos)
      return false;
    *out = str((const char *)c->p + c->pos, (size_t)arg);
    c->pos += (size_t)arg;
    return true;
  case 4:
  case 5:
    if (arg > c->n - c->pos)
      return false; /* every item takes a byte at least */
    *out = ctr_jval_new(major == 4 ? CTR_JVAL_ARR : CTR_JVAL_OBJ, NULL, 0);
    for (i = 0; i < arg; i++) {
      ctr_jval_t *k = NULL, *v;
      if (major == 5 && (!item(c, &k, depth + 1) || k->type != CTR_JVAL_STR)) {
        ctr_jval_free(k);
        return false;
      }
      if (!item(c, &v, depth + 1)) {
        ctr_jval_free(k);
        return false;
      }
      ctr_jval_add(*out, k ? k->str : NULL, v);
      ctr_jval_free(k);
    }
    return true;
  case 7:
    if (arg == 20 || arg == 21) {
      *out = ctr_jval_new(CTR_JVAL_BOOL, NULL, 0);
      (*out)->b = arg == 21;
    } else if (arg == 22) {
      *out = ctr_jval_new(CTR_JVAL_NULL, NULL, 0);
    } else if (first == 0xfb) {
      /* A Float: the JSON trace holds its text (floats as strings). */
      double f;
      memcpy(&f, &arg, sizeof(f));
      ctr_json_double_text(s, f);
      *out = str(s, strlen(s));
    } else {
      return false;
    }
    return true;
  }
  return false;
}

/* The same, leaving *out NULL when it fails. */
static bool item(cbor_t *c, ctr_jval_t **out, int depth) {
  if (item_part(c, out, depth))
    return true;
  ctr_jval_free(*out);
  *out = NULL;
  return false;
}

/* Sets number node v to u. */
static void set_num(ctr_jval_t *v, uint64_t u) {
  ctr_jval_t *n = num_u(u);
  char *s = v->str;

  v->str = n->str, v->len = n->len;
  n->str = s;
  ctr_jval_free(n);
}

/* The position of the Struct type of types.dat type id for these field
 * names (strings) of these field values: queued as a Type record when new,
 * with the field types of this value, as the JSON trace declares it. */
static int64_t struct_type(ctfs_t *f, uint64_t id, const ctr_jval_t *names,
                           const ctr_jval_t *vals) {
  ctr_buf_t key = {0};
  const ctr_jval_t *n, *e;
  ctr_jval_t *o, *info, *fields, *fo;
  int64_t out;

  ctr_buf_add(&key, &id, sizeof(id));
  for (n = names->child, e = vals->child; n && e; n = n->next, e = e->next) {
    if (n->type != CTR_JVAL_STR || ctr_jval_get(e, "type_id") == NULL)
      break;
    ctr_buf_add(&key, n->str, n->len + 1); /* with its NUL: a separator */
  }
  if (n || e) { /* as many names as values, each a string */
    ctr_buf_free(&key);
    return -1;
  }
  if ((out = ctr_map_get(&f->structs, key.data, key.len)) < 0) {
    o = ctr_jval_new(CTR_JVAL_OBJ, NULL, 0);
    ctr_jval_add(o, "kind", num_u(6)); /* TypeKind Struct */
    ctr_jval_add(o, "lang_type",
                 str(f->ctypes[id].name, strlen(f->ctypes[id].name)));
    info = ctr_jval_add(o, "specific_info", ctr_jval_new(CTR_JVAL_OBJ, NULL, 0));
    ctr_jval_add(info, "kind", str("Struct", 6));
    fields = ctr_jval_add(info, "fields", ctr_jval_new(CTR_JVAL_ARR, NULL, 0));
    for (n = names->child, e = vals->child; n; n = n->next, e = e->next) {
      const ctr_jval_t *t = ctr_jval_get(e, "type_id");
      fo = ctr_jval_add(fields, NULL, ctr_jval_new(CTR_JVAL_OBJ, NULL, 0));
      ctr_jval_add(fo, "name", str(n->str, n->len));
      ctr_jval_add(fo, "type_id", ctr_jval_new(CTR_JVAL_NUM, t->str, t->len));
    }
    push(&f->q, record("Type", o));
    out = (int64_t)f->types_out++;
    ctr_map_put(&f->structs, key.data, key.len, out);
  }
  ctr_buf_free(&key);
  return out;
}

/* Renumbers the types of value v (and of the values inside it) to the
 * positions of their Type records, and gives a Struct with "field_names"
 * the Struct type of its class and names (the names then go: the JSON
 * trace keeps them in the type). False when a type is unknown. */
static bool retype(ctfs_t *f, ctr_jval_t *v) {
  ctr_jval_t **m, *tid = NULL, *names = NULL, *vals = NULL;
  int64_t id, out;
  bool ok = true;

  for (m = &v->child; ok && *m;) {
    ctr_jval_t *c = *m;
    if (c->key && strcmp(c->key, "field_names") == 0 &&
        c->type == CTR_JVAL_ARR && names == NULL) {
      *m = c->next;
      c->next = NULL;
      names = c;
      continue;
    }
    if (c->key && strcmp(c->key, "type_id") == 0)
      tid = c;
    else if (c->key && strcmp(c->key, "field_values") == 0)
      vals = c;
    if (c->type == CTR_JVAL_OBJ || c->type == CTR_JVAL_ARR)
      ok = retype(f, c);
    m = &c->next;
  }
  if (ok && tid) {
    ok = ctr_jval_i64(tid, &id) && id >= 0 && (uint64_t)id < f->nctypes;
    out = ok ? (int64_t)f->ctypes[id].out : -1;
    if (ok && names && vals && vals->type == CTR_JVAL_ARR)
      ok = (out = struct_type(f, (uint64_t)id, names, vals)) >= 0;
    if (ok)
      set_num(tid, (uint64_t)out);
  }
  ctr_jval_free(names);
  return ok;
}

/* The value encoded in p[0..n), as the JSON trace holds it: Bool's "text"
 * is there for CodeTracer's Nim reader only. */
static ctr_jval_t *value(ctfs_t *f, const unsigned char *p, size_t n) {
  cbor_t c = {p, n, 0};
  ctr_jval_t *v;
  const char *kind;

  if (!item(&c, &v, 0) || c.pos != n || v->type != CTR_JVAL_OBJ ||
      !retype(f, v)) {
    ctr_jval_free(v);
    return NULL;
  }
  kind = ctr_jval_str(v, "kind");
  if (kind && strcmp(kind, "Bool") == 0) {
    ctr_jval_t **m;
    for (m = &v->child; *m; m = &(*m)->next)
      if (strcmp((*m)->key, "text") == 0) {
        ctr_jval_t *gone = *m;
        *m = gone->next;
        gone->next = NULL;
        ctr_jval_free(gone);
        break;
      }
  }
  return v;
}

/* ---- reading the streams ------------------------------------------------ */

static int fail(ctfs_t *f, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(ctfs_t *f, int code, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(f->why, f->whycap, fmt, ap);
  va_end(ap);
  return code;
}

static const char *what(int rc) {
  return rc == CTR_ERANGE   ? "missing"
         : rc == CTR_ENOMEM ? "out of memory"
                            : "damaged";
}

/* Up to max records of one stream from index from on, copied out. */
typedef struct recs_s {
  uint64_t from;
  size_t max;
  bool all;     /* they reach the end of the stream */
  ctr_buf_t *v; /* one buffer per record */
  size_t n, cap;
} recs_t;

static int collect(void *ctx, uint64_t index, const unsigned char *rec,
                   size_t n) {
  recs_t *r = ctx;

  if (index < r->from)
    return 0;
  if (r->n == r->cap) {
    r->cap = r->cap ? 2 * r->cap : 256;
    r->v = ctr_xrealloc(r->v, r->cap * sizeof(*r->v));
  }
  r->v[r->n] = (ctr_buf_t){0};
  ctr_buf_add(&r->v[r->n++], rec, n);
  return r->n < r->max ? 0 : 1; /* enough for this poll */
}

static void recs_free(recs_t *r) {
  for (size_t i = 0; i < r->n; i++)
    ctr_buf_free(&r->v[i]);
  free(r->v);
}

/* Reads up to max records of stream name from record from on. */
static int read_stream(ctfs_t *f, const char *name, bool prefixed,
                       uint64_t from, size_t max, recs_t *out) {
  uint64_t count;
  int rc;

  out->from = from;
  out->max = max;
  rc =
      ctr_ctfs_stream_from(&f->img, name, prefixed, from, collect, out, &count);
  if (rc < 0)
    return fail(f, rc, "trace.ct: %s.dat/%s.idx: %s", name, name, what(rc));
  out->all = out->n < max;
  return 0;
}

/* A table's record as its interning record. */
static int table_cb(void *ctx, uint64_t index, const unsigned char *rec,
                    size_t n) {
  ctfs_t *f = ctx;
  ctr_jval_t *p = str((const char *)rec, n), *o;

  (void)index;
  switch (f->table) {
  case 0:
    push(&f->q, record("Path", p));
    break;
  case 3:
    push(&f->q, record("VariableName", p));
    break;
  default: /* funcs.dat and types.dat hold names only */
    o = ctr_jval_new(CTR_JVAL_OBJ, NULL, 0);
    ctr_jval_add(o, f->table == 1 ? "name" : "lang_type", p);
    push(&f->q, record(f->table == 1 ? "Function" : "Type", o));
    if (f->table == 2) {
      if (f->nctypes == f->ctcap) {
        f->ctcap = f->ctcap ? 2 * f->ctcap : 64;
        f->ctypes =
            ctr_xrealloc(f->ctypes, f->ctcap * sizeof(*f->ctypes));
      }
      f->ctypes[f->nctypes].name = ctr_xrealloc(NULL, n + 1);
      memcpy(f->ctypes[f->nctypes].name, rec, n);
      f->ctypes[f->nctypes].name[n] = '\0';
      f->ctypes[f->nctypes++].out = f->types_out++;
    }
  }
  return 0;
}

/* The new records of the interning tables. */
static int read_tables(ctfs_t *f) {
  for (f->table = 0; f->table < 4; f->table++) {
    int rc = ctr_ctfs_table_from(&f->img, tables[f->table], f->tables[f->table],
                                 table_cb, f, &f->tables[f->table]);
    if (rc < 0)
      return fail(f, rc, "trace.ct: the %s table: %s", tables[f->table],
                  what(rc));
  }
  return 0;
}

/* (varname id, length, CBOR) pairs as {"variable_id", "value"} objects
 * appended to list (or Value records pushed when list is NULL). */
static bool pairs(ctfs_t *f, const unsigned char *p, size_t n, size_t *pos,
                  uint64_t count, ctr_jval_t *list) {
  for (uint64_t i = 0; i < count; i++) {
    uint64_t var, len;
    ctr_jval_t *o, *v;
    if (!ctr_ctfs_read_varint(p, n, pos, &var) ||
        !ctr_ctfs_read_varint(p, n, pos, &len) || len > n - *pos ||
        (v = value(f, p + *pos, (size_t)len)) == NULL)
      return false;
    *pos += (size_t)len;
    o = ctr_jval_new(CTR_JVAL_OBJ, NULL, 0);
    ctr_jval_add(o, "variable_id", num_u(var));
    ctr_jval_add(o, "value", v);
    if (list)
      ctr_jval_add(list, NULL, o);
    else
      push(&f->q, record("Value", o));
  }
  return true;
}

static int read_calls(ctfs_t *f) {
  recs_t r = {0};
  int rc = read_stream(f, "calls", true, f->ncalls, WINDOW, &r);

  for (size_t i = 0; rc == 0 && i < r.n; i++, f->ncalls++) {
    const unsigned char *p = (unsigned char *)r.v[i].data;
    size_t n = r.v[i].len, pos = 0;
    uint64_t fn, parent, depth, nargs, len;
    call_t c = {f->ncalls, 0, 0, NULL, NULL};
    ctr_jval_t *o = ctr_jval_new(CTR_JVAL_OBJ, NULL, 0), *args, *ret;
    bool ok = ctr_ctfs_read_varint(p, n, &pos, &fn) &&
              ctr_ctfs_read_varint(p, n, &pos, &parent) &&
              ctr_ctfs_read_varint(p, n, &pos, &c.entry) &&
              ctr_ctfs_read_varint(p, n, &pos, &c.exit) &&
              ctr_ctfs_read_varint(p, n, &pos, &depth) &&
              ctr_ctfs_read_varint(p, n, &pos, &nargs) && c.entry <= c.exit;
    ctr_jval_add(o, "function_id", num_u(fn));
    args = ctr_jval_add(o, "args", ctr_jval_new(CTR_JVAL_ARR, NULL, 0));
    ok = ok && pairs(f, p, n, &pos, nargs, args) &&
         ctr_ctfs_read_varint(p, n, &pos, &len) && len <= n - pos && len > 0;
    ret = ctr_jval_new(CTR_JVAL_OBJ, NULL, 0);
    if (ok && !(len == 1 && p[pos] == 0xff)) { /* 0xFF: no return value */
      ctr_jval_t *v = value(f, p + pos, (size_t)len);
      if (v)
        ctr_jval_add(ret, "return_value", v);
      ok = v != NULL;
    }
    c.call = record("Call", o);
    c.ret = record("Return", ret);
    if (!ok) {
      ctr_jval_free(c.call);
      ctr_jval_free(c.ret);
      rc = fail(f, CTR_EPROTO,
                "trace.ct: calls record %" PRIu64
                ": not a call (bad lengths, steps or values)",
                c.key);
      break;
    }
    if (f->ncall == f->callcap) {
      f->callcap = f->callcap ? 2 * f->callcap : 64;
      f->calls = ctr_xrealloc(f->calls, f->callcap * sizeof(*f->calls));
    }
    f->calls[f->ncall++] = c;
  }
  f->calls_all = rc == 0 && r.all;
  recs_free(&r);
  return rc;
}

/* Pushes step i's record and its values. */
static int push_step(ctfs_t *f, uint64_t i, const ctr_buf_t *st,
                     const ctr_buf_t *vals) {
  const unsigned char *p = (unsigned char *)st->data;
  size_t pos = 1;
  uint64_t v, count;
  static const char *const thread[] = {"ThreadSwitch", "ThreadStart",
                                       "ThreadExit"};

  if (!ctr_ctfs_read_varint(p, st->len, &pos, &v))
    return fail(f, CTR_EPROTO, "trace.ct: step %" PRIu64 ": damaged", i);
  if (p[0] == 0 || p[0] == 1) {
    ctr_jval_t *o = ctr_jval_new(CTR_JVAL_OBJ, NULL, 0);
    f->gli = p[0] == 0
                 ? v
                 : f->gli + (uint64_t)((int64_t)(v >> 1) ^ -(int64_t)(v & 1));
    ctr_jval_add(o, "path_id", num_u(f->gli / LINES_PER_FILE));
    ctr_jval_add(o, "line", num_u(f->gli % LINES_PER_FILE));
    push(&f->q, record("Step", o));
  } else if (p[0] >= 4 && p[0] <= 6) {
    push(&f->q, record(thread[p[0] - 4], num_u(v)));
  }
  p = (unsigned char *)vals->data;
  pos = 0;
  if (vals->len == 0)
    return 0;
  if (p[0] != 0 ||
      !(pos = 1, ctr_ctfs_read_varint(p, vals->len, &pos, &count)) ||
      !pairs(f, p, vals->len, &pos, count, NULL) || pos != vals->len)
    return fail(f, CTR_EPROTO,
                "trace.ct: values record %" PRIu64 ": a value does not decode",
                i);
  return 0;
}

static ctr_jval_t *event(const ctr_buf_t *e, uint64_t *step) {
  const unsigned char *p = (unsigned char *)e->data;
  size_t pos = 1, n = e->len;
  uint64_t ml, cl;
  ctr_jval_t *o;

  if (n == 0 || p[0] > 13 || !ctr_ctfs_read_varint(p, n, &pos, step) ||
      !ctr_ctfs_read_varint(p, n, &pos, &ml) || ml > n - pos)
    return NULL;
  o = ctr_jval_new(CTR_JVAL_OBJ, NULL, 0);
  ctr_jval_add(o, "kind", num_u(p[0]));
  ctr_jval_add(o, "metadata", str((const char *)p + pos, (size_t)ml));
  pos += (size_t)ml;
  if (!ctr_ctfs_read_varint(p, n, &pos, &cl) || cl != n - pos) {
    ctr_jval_free(o);
    return NULL;
  }
  ctr_jval_add(o, "content", str((const char *)p + pos, (size_t)cl));
  return record("Event", o);
}

static bool short_file(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && sb.st_size < 4096;
}

/* Queues the Calls entered at step i (calls are in the order they opened,
 * so their entry steps rise, but for a call without a step of its own,
 * placed at its caller's step). A call whose entry step was handed out at
 * an earlier poll was learnt of too late (live) and is skipped. */
static void enter(ctfs_t *f, size_t *next, uint64_t i, uint64_t first) {
  while (*next < f->ncall && f->calls[*next].entry <= i) {
    call_t *c = &f->calls[(*next)++];
    if (c->entry < first) {
      ctr_jval_free(c->call);
      ctr_jval_free(c->ret);
      continue;
    }
    push(&f->q, c->call);
    if (f->nopen == f->opencap) {
      f->opencap = f->opencap ? 2 * f->opencap : 64;
      f->open = ctr_xrealloc(f->open, f->opencap * sizeof(*f->open));
    }
    f->open[f->nopen++] = *c;
  }
}

/* Queues the Returns of the innermost calls that exit before step i, or
 * at it (after). */
static void leave(ctfs_t *f, uint64_t i, bool at) {
  while (f->nopen > 0 && (f->open[f->nopen - 1].exit < i ||
                          (at && f->open[f->nopen - 1].exit == i)))
    push(&f->q, f->open[--f->nopen].ret);
}

/* Queues the events read (evs, from *e on) of the steps before step
 * limit. Returns 0 or CTR_EPROTO. */
static int push_events(ctfs_t *f, const recs_t *evs, size_t *e,
                       uint64_t limit) {
  for (; *e < evs->n; ++*e, f->events++) {
    uint64_t at;
    ctr_jval_t *r = event(&evs->v[*e], &at);
    if (r == NULL)
      return fail(f, CTR_EPROTO,
                  "trace.ct: events record %" PRIu64 ": damaged", f->events);
    if (at >= limit) {
      ctr_jval_free(r);
      break;
    }
    push(&f->q, r);
  }
  return 0;
}

/* Whether every call entered at step i and every event at it is read:
 * the streams were read to their end, or past step i. */
static bool step_known(const ctfs_t *f, uint64_t i, const recs_t *evs,
                       uint64_t ev_last) {
  return (f->calls_all || (f->ncall > 0 && f->calls[f->ncall - 1].entry > i)) &&
         (evs->all || ev_last > i);
}

/* Reads the snapshot (a new one when block 0 moved) on from what was
 * handed out, a window of each stream at a time so that memory stays
 * bounded whatever the trace's size, and queues the records it completes.
 * f->more: the snapshot holds more than this poll read. */
static int poll_trace(ctfs_t *f) {
  recs_t steps = {0}, vals = {0}, evs = {0};
  uint64_t ready, first = f->steps, ev_last = 0;
  size_t e = 0;
  int rc;

  rc = f->loaded ? ctr_ctfs_image_refresh(&f->img)
                 : ctr_ctfs_image_load(&f->img, f->path);
  /* The writer creates the file, then writes its first block. */
  if (rc == CTR_EPROTO && f->live && !f->loaded && short_file(f->path))
    return 0;
  if (rc < 0)
    return rc == CTR_EPROTO
               ? fail(f, rc,
                      "trace.ct: not a CTFS container (bad header, "
                      "or shorter than one block)")
               : fail(f, rc, "trace.ct: %s",
                      rc > -4096 ? strerror(-rc) : "unreadable");
  bool moved = rc == 1 || !f->read; /* unchanged: nothing new to read */
  if (!moved && !f->more)
    return 0;
  f->loaded = f->read = true;
  f->more = false;
  rc = moved ? read_tables(f) : 0;
  f->calls_all = f->calls_all && !moved;
  /* More calls when those read do not reach past the next step. */
  if (rc == 0 && !f->calls_all &&
      (f->ncall == 0 || f->calls[f->ncall - 1].entry <= f->steps))
    rc = read_calls(f);
  if (rc == 0)
    rc = read_stream(f, "values", true, f->steps, WINDOW, &vals);
  if (rc == 0)
    rc = read_stream(f, "steps", false, f->steps, WINDOW, &steps);
  if (rc == 0)
    rc = read_stream(f, "events", true, f->events, f->evwin, &evs);
  if (rc == 0 && evs.n > 0) {
    ctr_jval_t *r = event(&evs.v[evs.n - 1], &ev_last);
    if (r == NULL)
      rc = fail(f, CTR_EPROTO, "trace.ct: events record %" PRIu64 ": damaged",
                f->events + evs.n - 1);
    ctr_jval_free(r);
  }
  /* Events at a step an earlier poll handed out as the last one (a flush
   * came between the step and them) go out now, before any later step. */
  if (rc == 0)
    rc = push_events(f, &evs, &e, f->steps);
  /* A step is complete once its values record is there. */
  ready = f->steps + (steps.n < vals.n ? steps.n : vals.n);
  f->more = rc == 0 && (!steps.all || !vals.all);
  size_t next = 0;
  for (uint64_t i = f->steps; rc == 0 && i < ready; i++) {
    if (!step_known(f, i, &evs, ev_last)) { /* the next poll reads on */
      f->more = true;
      if (i == first && !evs.all && ev_last <= i)
        f->evwin *= 2; /* more events at one step than a window holds */
      break;
    }
    enter(f, &next, i, first);
    leave(f, i, false);
    rc = push_step(f, i, &steps.v[i - first], &vals.v[i - first]);
    if (rc == 0)
      rc = push_events(f, &evs, &e, i + 1);
    leave(f, i, true);
    f->steps = i + 1;
  }
  /* A finished trace may hold calls and output but no step (a program
   * whose code was all filtered out): they are not lost with it. */
  if (rc == 0 && !f->live && f->steps == 0) {
    enter(f, &next, UINT64_MAX, first);
    rc = push_events(f, &evs, &e, UINT64_MAX);
    leave(f, UINT64_MAX, true);
  }
  if (next > 0) {
    f->ncall -= next;
    memmove(f->calls, f->calls + next, f->ncall * sizeof(*f->calls));
  }
  recs_free(&steps);
  recs_free(&vals);
  recs_free(&evs);
  return rc;
}

static int ctfs_next(void *b, ctr_reader_rec_t *r, char *why, size_t cap) {
  ctfs_t *f = b;
  int rc;

  f->why = why;
  f->whycap = cap;
  while (f->q.head == f->q.n) {
    f->q.head = f->q.n = 0;
    if ((rc = poll_trace(f)) < 0)
      return rc;
    if (f->q.n == 0 && !f->more)
      return 0;
  }
  r->rec = f->q.v[f->q.head++];
  return 1;
}

static int ctfs_listed_paths(void *b, ctr_jval_t **out) {
  ctfs_t *f = b;
  ctr_buf_t paths = {0};
  int rc = f->loaded ? 0 : ctr_ctfs_image_load(&f->img, f->path);

  *out = NULL;
  if (rc == 0)
    f->loaded = true;
  if (rc == 0 && (rc = ctr_ctfs_read_meta_paths(&f->img, &paths)) == 0) {
    /* Linked here, not by ctr_jval_add, which walks the list: tens of
     * thousands of paths (Python's exec strings) took seconds. */
    ctr_jval_t **tail = &(*out = ctr_jval_new(CTR_JVAL_ARR, NULL, 0))->child;
    for (size_t at = 0; at < paths.len; tail = &(*tail)->next) {
      size_t n = strlen(paths.data + at);
      *tail = str(paths.data + at, n);
      at += n + 1;
    }
  }
  ctr_buf_free(&paths);
  return rc;
}

static void ctfs_free(void *b) {
  ctfs_t *f = b;

  while (f->q.head < f->q.n)
    ctr_jval_free(f->q.v[f->q.head++]);
  free(f->q.v);
  for (size_t k = 0; k < f->ncall; k++) {
    ctr_jval_free(f->calls[k].call);
    ctr_jval_free(f->calls[k].ret);
  }
  free(f->calls);
  while (f->nopen > 0)
    ctr_jval_free(f->open[--f->nopen].ret);
  free(f->open);
  for (size_t k = 0; k < f->nctypes; k++)
    free(f->ctypes[k].name);
  free(f->ctypes);
  ctr_map_free(&f->structs);
  ctr_ctfs_image_free(&f->img);
  free(f);
}

static const ctr__trace_backend_t ctfs_vt = {ctfs_next, ctfs_listed_paths,
                                             ctfs_free};

int ctr__trace_ctfs_open(void **out, const char *path, bool live,
                         const ctr__trace_backend_t **vt) {
  ctfs_t *f = ctr_xrealloc(NULL, sizeof(*f));

  memset(f, 0, sizeof(*f));
  f->img.fd = -1;
  f->evwin = WINDOW;
  f->live = live;
  snprintf(f->path, sizeof(f->path), "%s", path);
  *out = f;
  *vt = &ctfs_vt;
  return 0;
}
