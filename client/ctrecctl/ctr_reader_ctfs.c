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
 * Live (docs/ctfs.md): at each poll it loads a snapshot of the file and
 * reads what the sizes published in it cover; a step is complete once its
 * values record is there. A call is only written once every call opened
 * before it has returned, so a follower learns of calls late: one whose
 * entry step was already handed out is skipped, with its return. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ctr_buf.h"
#include "ctr_ctfs_read.h"
#include "ctr_error.h"
#include "ctr_reader.h"

#define CBOR_DEPTH 250        /* as deep as check's JSON records may nest */
#define LINES_PER_FILE 100000 /* the reader's global line index */

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
  bool loaded; /* img holds a snapshot */
  bool ever;   /* a snapshot was read */
  off_t size;  /* the size and time stamp at the last look */
  struct timespec mtime;
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
  char *why;
  size_t whycap;
} ctfs_t;

static const char *const tables[4] = {"paths", "funcs", "types", "varnames"};

static void push(queue_t *q, ctr_jval_t *rec) {
  if (q->n == q->cap) {
    q->cap = q->cap ? 2 * q->cap : 64;
    q->v = ctr__trace_xrealloc(q->v, q->cap * sizeof(*q->v));
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

/* The value encoded in p[0..n), as the JSON trace holds it: Bool's "text"
 * is there for CodeTracer's Nim reader only. */
static ctr_jval_t *value(const unsigned char *p, size_t n) {
  cbor_t c = {p, n, 0};
  ctr_jval_t *v;
  const char *kind;

  if (!item(&c, &v, 0) || c.pos != n || v->type != CTR_JVAL_OBJ) {
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

/* The records of one stream from index from on, copied out. */
typedef struct recs_s {
  uint64_t from;
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
    r->v = ctr__trace_xrealloc(r->v, r->cap * sizeof(*r->v));
  }
  r->v[r->n] = (ctr_buf_t){0};
  ctr_buf_add(&r->v[r->n++], rec, n);
  return 0;
}

static void recs_free(recs_t *r) {
  for (size_t i = 0; i < r->n; i++)
    ctr_buf_free(&r->v[i]);
  free(r->v);
}

static int read_stream(ctfs_t *f, const char *name, bool prefixed,
                       uint64_t from, recs_t *out) {
  uint64_t count;
  int rc;

  out->from = from;
  rc =
      ctr_ctfs_stream_from(&f->img, name, prefixed, from, collect, out, &count);
  if (rc < 0)
    return fail(f, rc, "trace.ct: %s.dat/%s.idx: %s", name, name, what(rc));
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
        (v = value(p + *pos, (size_t)len)) == NULL)
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
  int rc = read_stream(f, "calls", true, f->ncalls, &r);

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
      ctr_jval_t *v = value(p + pos, (size_t)len);
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
      f->calls = ctr__trace_xrealloc(f->calls, f->callcap * sizeof(*f->calls));
    }
    f->calls[f->ncall++] = c;
  }
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

/* Whether the file may have changed since the last snapshot: its size or
 * time stamp moved, or that stamp is too recent to tell (time stamps are
 * coarse: a write in the same tick as the load keeps the stamp). */
static bool changed(ctfs_t *f) {
  struct stat sb;
  struct timespec now;

  if (!f->ever || stat(f->path, &sb) != 0)
    return true;
  clock_gettime(CLOCK_REALTIME, &now);
  bool same = sb.st_size == f->size && sb.st_mtim.tv_sec == f->mtime.tv_sec &&
              sb.st_mtim.tv_nsec == f->mtime.tv_nsec &&
              now.tv_sec - sb.st_mtim.tv_sec > 1;
  f->size = sb.st_size;
  f->mtime = sb.st_mtim;
  return !same;
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
      f->open = ctr__trace_xrealloc(f->open, f->opencap * sizeof(*f->open));
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

/* Reads a new snapshot and queues the records it completes. */
static int poll_trace(ctfs_t *f) {
  recs_t steps = {0}, vals = {0}, evs = {0};
  uint64_t ready, first = f->steps;
  size_t e = 0;
  int rc;

  if (!changed(f))
    return 0;
  ctr_ctfs_image_free(&f->img);
  f->loaded = false;
  rc = ctr_ctfs_image_load(&f->img, f->path);
  /* The writer creates the file, then writes its first block. */
  if (rc == CTR_EPROTO && f->live && !f->ever && short_file(f->path))
    return 0;
  if (rc < 0)
    return rc == CTR_EPROTO
               ? fail(f, rc,
                      "trace.ct: not a CTFS container (bad header, "
                      "or shorter than one block)")
               : fail(f, rc, "trace.ct: %s",
                      rc > -4096 ? strerror(-rc) : "unreadable");
  f->loaded = f->ever = true;
  rc = read_tables(f);
  if (rc == 0)
    rc = read_calls(f);
  if (rc == 0)
    rc = read_stream(f, "values", true, f->steps, &vals);
  if (rc == 0)
    rc = read_stream(f, "steps", false, f->steps, &steps);
  if (rc == 0)
    rc = read_stream(f, "events", true, f->events, &evs);
  /* A step is complete once its values record is there. */
  ready = f->steps + (steps.n < vals.n ? steps.n : vals.n);
  size_t next = 0;
  for (uint64_t i = f->steps; rc == 0 && i < ready; i++) {
    enter(f, &next, i, first);
    leave(f, i, false);
    rc = push_step(f, i, &steps.v[i - first], &vals.v[i - first]);
    for (; rc == 0 && e < evs.n; e++, f->events++) {
      uint64_t at;
      ctr_jval_t *r = event(&evs.v[e], &at);
      if (r == NULL)
        rc = fail(f, CTR_EPROTO, "trace.ct: events record %" PRIu64 ": damaged",
                  f->events);
      else if (at > i) {
        ctr_jval_free(r);
        break;
      } else
        push(&f->q, r);
    }
    leave(f, i, true);
    f->steps = i + 1;
  }
  /* A finished trace may hold calls and output but no step (a program
   * whose code was all filtered out): they are not lost with it. */
  if (rc == 0 && !f->live && f->steps == 0) {
    uint64_t at;
    enter(f, &next, UINT64_MAX, first);
    for (; rc == 0 && e < evs.n; e++, f->events++) {
      ctr_jval_t *r = event(&evs.v[e], &at);
      if (r == NULL)
        rc = fail(f, CTR_EPROTO, "trace.ct: events record %" PRIu64 ": damaged",
                  f->events);
      else
        push(&f->q, r);
    }
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
  if (f->q.head == f->q.n) {
    f->q.head = f->q.n = 0;
    if ((rc = poll_trace(f)) < 0)
      return rc;
  }
  if (f->q.head == f->q.n)
    return 0;
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
  ctr_ctfs_image_free(&f->img);
  free(f);
}

static const ctr__trace_backend_t ctfs_vt = {ctfs_next, ctfs_listed_paths,
                                             ctfs_free};

int ctr__trace_ctfs_open(void **out, const char *path, bool live,
                         const ctr__trace_backend_t **vt) {
  ctfs_t *f = ctr__trace_xrealloc(NULL, sizeof(*f));

  memset(f, 0, sizeof(*f));
  f->live = live;
  snprintf(f->path, sizeof(f->path), "%s", path);
  *out = f;
  *vt = &ctfs_vt;
  return 0;
}
