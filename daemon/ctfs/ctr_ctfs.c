/* ctr_ctfs.c: the record-level CTFS trace writer, see ctr_ctfs.h. */
#include "ctr_ctfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctr_buf.h"
#include "ctr_ctfs_read.h"
#include "ctr_ctfs_stream.h"
#include "ctr_error.h"
#include "ctr_map.h"

/* global line index = path_id * 100000 + line (global_line_index.nim at
 * the reader's version: every file owns 100000 lines). */
#define CTR_CTFS_LINES_PER_FILE 100000u
#define CTR_CTFS_NO_RETURN 0xff /* call_stream.nim's VoidReturnMarker */
_Static_assert(CTR_CTFS_STEPS_CHUNK % CTR_CTFS_VALUES_CHUNK == 0,
               "a values chunk divides a steps chunk");

/* An open call: what its calls.dat record will say. The slot of a depth
 * is reused by every call at that depth, buffers and all, so a call costs
 * no allocation once the slots reach their sizes. */
typedef struct ctr_ctfs_open_s {
  uint64_t key, function_id, entry;
  int64_t parent; /* call key, -1 for a root call */
  uint32_t nargs, nchildren;
  uint64_t sub_off;   /* the spill's size when it opened */
  ctr_buf_t args;     /* (varname id, length, CBOR) per argument */
  ctr_buf_t children; /* call keys, as varints */
} ctr_ctfs_open_t;

/* A call not yet in calls.dat. Once returned, its record waits in the
 * spill at rec_off (rec_len bytes, never 0; 0 while the call is open), and
 * its descendants' records lie between sub_off and rec_off. Kept small:
 * every call opened inside a long one (a program's <module>) waits here. */
typedef struct ctr_ctfs_wait_s {
  uint64_t sub_off, rec_off;
  uint32_t rec_len;
} ctr_ctfs_wait_t;

typedef struct ctr_ctfs_names_s {
  ctr_ctfs_table_t table;
  ctr_map_t ids;
} ctr_ctfs_names_t;

struct ctr_ctfs_s {
  ctr_ctfs_box_t *box;
  ctr_ctfs_names_t paths, funcs, types, varnames;
  ctr_ctfs_chunks_t steps, values, calls, events;
  int err; /* the first error: the trace is then left as it is */

  /* The latest step or thread record, held until it is sealed (next
   * record, flush, close) so its values record goes out beside it. */
  bool held, held_step;
  uint64_t held_pos;  /* a step's global line index */
  ctr_buf_t held_rec; /* a thread record's bytes */
  /* The held step's values record, written in place at the end of the
   * values chunk (ctr_ctfs_chunks_begin): it holds most of a trace's
   * bytes, too many to copy twice. */
  size_t vals_at; /* where it starts in values.open */
  /* The room left there for its length, tag and count: what the last
   * record's took, so that records of one size are not moved to fit. */
  size_t vals_room;
  uint32_t nvals; /* (varname id, length, CBOR) per value so far */
  uint64_t nsteps; /* records, the held one included */
  uint64_t cursor; /* the last position written to steps */

  /* Calls not yet written, by key: pending[i] has key first_key + i - head. */
  ctr_ctfs_wait_t *pending;
  size_t head, ncalls, cap;
  uint64_t first_key;
  /* calls.dat is in call-key order, so a returned call waits for every
   * call opened before it, and the top-level call returns last: returned
   * calls wait as records in a file beside the trace (X.calls), not in
   * memory (their arguments' values make them kilobytes each). At every
   * flush the file also gets the calls opened since that are still open
   * and a mark: what it holds up to its last mark is what calls.dat owes
   * at that flush, for ctr_ctfs_recover() if the writer dies. */
  int spill_fd;         /* -1 until the tail is first written out */
  uint64_t spill_size;  /* bytes spilled: the file, then the tail */
  uint64_t spill_disk;  /* bytes of them in the file */
  ctr_buf_t spill_tail; /* the newest records, written out a MiB at once */
  ctr_buf_t spill_win;  /* records read back a MiB at once, from win_off */
  ctr_buf_t spill_one;  /* a record read back alone */
  uint64_t win_off;
  char *owed_path; /* the spill file: the trace's path + ".calls" */
  uint64_t logged; /* calls opened before this key are in the file */
  ctr_ctfs_open_t *stack; /* open calls, innermost last */
  size_t depth, stack_cap;

  ctr_buf_t rec;  /* scratch for one record */
  ctr_buf_t meta; /* meta.dat's program, args, workdir and recorder */
  ctr_buf_t meta_out; /* meta.dat's content as last written, no padding */
  int meta_f;     /* meta.dat's file, -1 until the first flush */
  uint64_t meta_size;
  bool meta_dirty;
  char **path_text;
  size_t npath_text;
  char id[37];
};

/* path with suffix appended, allocated. */
static char *suffixed(const char *path, const char *suffix) {
  size_t n = strlen(path), k = strlen(suffix) + 1;
  char *p = ctr_xmalloc(n + k);
  memcpy(p, path, n);
  memcpy(p + n, suffix, k);
  return p;
}

static int keep(ctr_ctfs_t *w, int rc) {
  if (rc < 0 && w->err == 0)
    w->err = rc;
  return rc < 0 ? rc : 0;
}

static int write_meta(ctr_ctfs_t *w);

int ctr_ctfs_open(ctr_ctfs_t **out, const char *path,
                  const char *recording_id) {
  if (strlen(recording_id) != sizeof(((ctr_ctfs_t *)0)->id) - 1)
    return CTR_ERANGE;
  ctr_ctfs_t *w = ctr_xcalloc(1, sizeof(*w));
  w->meta_f = -1;
  w->spill_fd = -1;
  w->vals_room = 3; /* a record under 128 bytes, of under 128 values */
  w->meta_dirty = true;
  w->owed_path = suffixed(path, ".calls");
  memcpy(w->id, recording_id, sizeof(w->id));
  /* Made under a name of its own and linked into place once whole: a
   * reader that finds path finds every member and meta.dat (a follower
   * started as the file appeared read a container half made). */
  char *made = suffixed(path, ".new");
  int rc = ctr_ctfs_box_create(&w->box, made);
  if (rc < 0) {
    free(made);
    free(w->owed_path);
    free(w);
    return rc;
  }
  if ((rc = ctr_ctfs_table_init(&w->paths.table, w->box, "paths")) < 0 ||
      (rc = ctr_ctfs_table_init(&w->funcs.table, w->box, "funcs")) < 0 ||
      (rc = ctr_ctfs_table_init(&w->types.table, w->box, "types")) < 0 ||
      (rc = ctr_ctfs_table_init(&w->varnames.table, w->box, "varnames")) < 0 ||
      (rc = ctr_ctfs_chunks_init(&w->steps, w->box, "steps",
                                 CTR_CTFS_STEPS_CHUNK, false)) < 0 ||
      (rc = ctr_ctfs_chunks_init(&w->values, w->box, "values",
                                 CTR_CTFS_VALUES_CHUNK, true)) < 0 ||
      (rc = ctr_ctfs_chunks_init(&w->calls, w->box, "calls",
                                 CTR_CTFS_CALLS_CHUNK, true)) < 0 ||
      (rc = ctr_ctfs_chunks_init(&w->events, w->box, "events",
                                 CTR_CTFS_EVENTS_CHUNK, true)) < 0 ||
      (rc = write_meta(w)) < 0 || /* readable from the start, if empty */
      (rc = link(made, path) < 0 ? -errno : 0) < 0) {
    w->err = rc;
    ctr_ctfs_close(w);
  }
  unlink(made);
  free(made);
  if (rc == 0)
    *out = w;
  return rc;
}

const char *ctr_ctfs_recording_id(const ctr_ctfs_t *w) { return w->id; }

static int64_t intern(ctr_ctfs_t *w, ctr_ctfs_names_t *t, const char *name,
                      size_t n) {
  if (w->err)
    return w->err;
  int64_t id = ctr_map_get(&t->ids, name, n);
  if (id >= 0)
    return id;
  id = (int64_t)t->table.count;
  if (keep(w, ctr_ctfs_table_add(&t->table, name, n)) < 0)
    return w->err;
  ctr_map_put(&t->ids, name, n, id);
  return id;
}

int64_t ctr_ctfs_path(ctr_ctfs_t *w, const char *path, size_t n) {
  size_t before = w->paths.table.count;
  int64_t id = intern(w, &w->paths, path, n);
  if (id >= 0 && w->paths.table.count > before) { /* meta.dat lists them */
    char **p =
        ctr_xrealloc(w->path_text, (w->npath_text + 1) * sizeof(*w->path_text));
    p[w->npath_text++] = ctr_xstrndup(path, n);
    w->path_text = p;
    w->meta_dirty = true;
  }
  return id;
}

int64_t ctr_ctfs_function(ctr_ctfs_t *w, const char *name, size_t n) {
  return intern(w, &w->funcs, name, n);
}

int64_t ctr_ctfs_type(ctr_ctfs_t *w, const char *name, size_t n) {
  return intern(w, &w->types, name, n);
}

int64_t ctr_ctfs_varname(ctr_ctfs_t *w, const char *name, size_t n) {
  return intern(w, &w->varnames, name, n);
}

static size_t varint_len(uint64_t v) {
  size_t n = 1;
  while (v >>= 7)
    n++;
  return n;
}

/* Writes the held record and its values record. A position is an
 * AbsoluteStep at the start of a chunk, else a DeltaStep when its zigzag
 * delta is strictly shorter (exec_stream.nim's rule, so two writers of one
 * recording write the same bytes). */
static int seal(ctr_ctfs_t *w) {
  if (!w->held)
    return 0;
  w->held = false;
  ctr_buf_t *r = &w->rec;
  r->len = 0;
  int rc;
  if (w->nvals) {
    ctr_buf_add(r, "\0", 1); /* StepValues */
    ctr_ctfs_varint(r, w->nvals);
    rc = ctr_ctfs_chunks_end(&w->values, w->vals_at, &w->vals_room, r->data,
                             r->len);
  } else {
    rc = ctr_ctfs_chunks_add(&w->values, "", 0);
  }
  w->nvals = 0;
  if (rc < 0)
    return keep(w, rc);
  /* The values record went first, and a values chunk divides a steps
   * chunk, so a full steps chunk, shown at once, never outruns its values:
   * a reader has the values of every step it sees. */
  if (!w->held_step)
    return keep(w, ctr_ctfs_chunks_add(&w->steps, w->held_rec.data,
                                       w->held_rec.len));
  ctr_buf_t *o = &w->steps.open;
  size_t at = ctr_ctfs_chunks_begin(&w->steps, 0);
  int64_t d = (int64_t)(w->held_pos - w->cursor);
  uint64_t z = ((uint64_t)d << 1) ^ (uint64_t)(d >> 63);
  if (w->steps.nopen > 0 && varint_len(z) < varint_len(w->held_pos)) {
    ctr_ctfs_varint(o, 1); /* DeltaStep */
    ctr_ctfs_varint(o, z);
  } else {
    ctr_ctfs_varint(o, 0); /* AbsoluteStep */
    ctr_ctfs_varint(o, w->held_pos);
  }
  w->cursor = w->held_pos;
  size_t none = 0; /* no prefix, no head */
  return keep(w, ctr_ctfs_chunks_end(&w->steps, at, &none, NULL, 0));
}

int ctr_ctfs_step(ctr_ctfs_t *w, uint64_t path_id, uint64_t line) {
  if (w->err || seal(w) < 0)
    return w->err;
  if (path_id >= w->paths.table.count || line >= CTR_CTFS_LINES_PER_FILE)
    return CTR_ERANGE;
  w->held = w->held_step = true;
  w->held_pos = path_id * CTR_CTFS_LINES_PER_FILE + line;
  w->nsteps++;
  return 0;
}

int ctr_ctfs_value(ctr_ctfs_t *w, uint64_t varname_id, const void *cbor,
                   size_t n) {
  if (w->err)
    return w->err;
  if (!w->held || !w->held_step)
    return CTR_ESTATE;
  if (varname_id >= w->varnames.table.count)
    return CTR_ERANGE;
  if (w->nvals == 0)
    w->vals_at = ctr_ctfs_chunks_begin(&w->values, w->vals_room);
  ctr_ctfs_varint(&w->values.open, varname_id);
  ctr_ctfs_varint(&w->values.open, n);
  ctr_buf_add(&w->values.open, cbor, n);
  w->nvals++;
  return 0;
}

int ctr_ctfs_thread(ctr_ctfs_t *w, ctr_ctfs_thread_t what, uint64_t tid) {
  if (w->err || seal(w) < 0)
    return w->err;
  w->held = true, w->held_step = false;
  w->held_rec.len = 0;
  char tag = (char)what;
  ctr_buf_add(&w->held_rec, &tag, 1);
  ctr_ctfs_varint(&w->held_rec, tid);
  w->nsteps++;
  return 0;
}

static ctr_ctfs_wait_t *wait_at(ctr_ctfs_t *w, uint64_t key) {
  return &w->pending[w->head + (size_t)(key - w->first_key)];
}

int ctr_ctfs_call(ctr_ctfs_t *w, uint64_t function_id) {
  if (w->err)
    return w->err;
  if (function_id >= w->funcs.table.count)
    return CTR_ERANGE;
  if (w->ncalls == w->cap) {
    w->cap = w->cap ? 2 * w->cap : 64;
    w->pending = ctr_xrealloc(w->pending, w->cap * sizeof(*w->pending));
  }
  if (w->depth == w->stack_cap) {
    size_t cap = w->stack_cap ? 2 * w->stack_cap : 64;
    w->stack = ctr_xrealloc(w->stack, cap * sizeof(*w->stack));
    memset(w->stack + w->stack_cap, 0,
           (cap - w->stack_cap) * sizeof(*w->stack));
    w->stack_cap = cap;
  }
  uint64_t key = w->first_key + (w->ncalls - w->head);
  w->pending[w->ncalls++] = (ctr_ctfs_wait_t){.rec_len = 0};
  ctr_ctfs_open_t *c = &w->stack[w->depth];
  c->key = key;
  c->function_id = function_id;
  c->entry = w->nsteps;
  c->parent = -1;
  c->nargs = c->nchildren = 0;
  c->sub_off = w->spill_size;
  c->args.len = c->children.len = 0;
  if (w->depth) {
    ctr_ctfs_open_t *p = c - 1;
    c->parent = (int64_t)p->key;
    ctr_ctfs_varint(&p->children, key);
    p->nchildren++;
  }
  w->depth++;
  return 0;
}

int ctr_ctfs_arg(ctr_ctfs_t *w, uint64_t varname_id, const void *cbor,
                 size_t n) {
  if (w->err)
    return w->err;
  if (w->depth == 0)
    return CTR_ESTATE;
  if (varname_id >= w->varnames.table.count)
    return CTR_ERANGE;
  ctr_ctfs_open_t *c = &w->stack[w->depth - 1];
  ctr_ctfs_varint(&c->args, varname_id);
  ctr_ctfs_varint(&c->args, n);
  ctr_buf_add(&c->args, cbor, n);
  c->nargs++;
  return 0;
}

static int spill_open(ctr_ctfs_t *w) {
  w->spill_fd = open(w->owed_path,
                     O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  return w->spill_fd < 0 ? -errno : 0;
}

static int spill_io(int fd, void *p, size_t n, uint64_t off, bool out) {
  while (n > 0) {
    ssize_t k =
        out ? pwrite(fd, p, n, (off_t)off) : pread(fd, p, n, (off_t)off);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return k < 0 ? -errno : CTR_EPROTO;
    p = (char *)p + k, n -= (size_t)k, off += (uint64_t)k;
  }
  return 0;
}

/* Records go to the file and come back in MiB pieces: one system call per
 * call record made ctrecd's CPU time grow by half on REXML. */
#define SPILL_PIECE (1u << 20)

/* Writes the spill's tail to the file. */
static int spill_out(ctr_ctfs_t *w) {
  int rc = w->spill_fd < 0 ? spill_open(w) : 0;
  if (rc == 0)
    rc = spill_io(w->spill_fd, w->spill_tail.data, w->spill_tail.len,
                  w->spill_disk, true);
  w->spill_disk += w->spill_tail.len;
  w->spill_tail.len = 0;
  return rc;
}

/* The spill's entries: u8 kind, varint call key, varint length, payload. */
enum {
  OWED_RETURNED = 1, /* the call's calls.dat record */
  OWED_OPEN = 2,     /* function, parent, entry, depth, nargs, args */
  OWED_MARK = 3,     /* a flush; its key is the next call key */
};

/* An entry's length is a varint of this fixed width (LEB128 readers take
 * one with needless 0x80 bytes), so that its payload can be encoded in
 * place behind it: payloads stay under 256 MiB (CTR_ELIMIT). */
#define SPILL_LEN_WIDTH 4

/* Starts an entry in the spill's tail; its payload is then appended to
 * w->spill_tail, and spill_end() completes it. Returns where it starts. */
static size_t spill_begin(ctr_ctfs_t *w, int kind, uint64_t key) {
  size_t start = w->spill_tail.len;
  char k = (char)kind;
  ctr_buf_add(&w->spill_tail, &k, 1);
  ctr_ctfs_varint(&w->spill_tail, key);
  ctr_buf_reserve(&w->spill_tail, SPILL_LEN_WIDTH);
  w->spill_tail.len += SPILL_LEN_WIDTH;
  return start;
}

/* Completes the entry begun at start; its payload's offset in *off. */
static int spill_end(ctr_ctfs_t *w, size_t start, uint64_t *off) {
  ctr_buf_t *t = &w->spill_tail;
  size_t body = start + 1;
  while (t->data[body++] & 0x80) /* past the key */
    ;
  size_t n = t->len - body - SPILL_LEN_WIDTH;
  if (n >> (7 * SPILL_LEN_WIDTH)) {
    t->len = start;
    return CTR_ELIMIT;
  }
  for (int i = 0; i < SPILL_LEN_WIDTH; i++)
    t->data[body + i] = (char)(((n >> (7 * i)) & 0x7f) |
                               (i + 1 < SPILL_LEN_WIDTH ? 0x80 : 0));
  *off = w->spill_size + (body + SPILL_LEN_WIDTH - start);
  w->spill_size += t->len - start;
  return t->len < SPILL_PIECE ? 0 : spill_out(w);
}

/* Appends an entry of n bytes at p to the spill; its payload's offset in
 * *off. */
static int spill_put(ctr_ctfs_t *w, int kind, uint64_t key, const void *p,
                     size_t n, uint64_t *off) {
  size_t start = spill_begin(w, kind, key);
  ctr_buf_add(&w->spill_tail, p, n);
  return spill_end(w, start, off);
}

/* Call c's record, valid until the next spill call. Records are spilled
 * as calls return (a call after its descendants) and read in key order (a
 * call before them): a window starting at a record would be loaded again
 * for each of its descendants. So a window starts where the call's
 * descendants start, when they and the call fit in one, and then serves
 * them all; a call whose descendants do not fit is read alone, beside the
 * window. Windows so start in key order, which is the spill's order of
 * sub_off, and keep what the last one read: the file is read once. */
static int spill_get(ctr_ctfs_t *w, const ctr_ctfs_wait_t *c,
                     const unsigned char **p) {
  uint64_t off = c->rec_off, end = off + c->rec_len, from = c->sub_off;
  uint64_t win_end = w->win_off + w->spill_win.len;
  if (off >= w->spill_disk) {
    *p = (const unsigned char *)w->spill_tail.data + (off - w->spill_disk);
    return 0;
  }
  if (off >= w->win_off && end <= win_end) {
    *p = (const unsigned char *)w->spill_win.data + (off - w->win_off);
    return 0;
  }
  int rc;
  if (end - from > SPILL_PIECE) {
    w->spill_one.len = 0;
    ctr_buf_reserve(&w->spill_one, c->rec_len);
    rc = spill_io(w->spill_fd, w->spill_one.data, c->rec_len, off, false);
    *p = (const unsigned char *)w->spill_one.data;
    return rc;
  }
  /* end <= to: the record is in the file */
  uint64_t to = from + SPILL_PIECE < w->spill_disk ? from + SPILL_PIECE
                                                  : w->spill_disk;
  size_t kept = 0;
  if (from >= w->win_off && from < win_end) {
    kept = (size_t)(win_end - from);
    memmove(w->spill_win.data, w->spill_win.data + (from - w->win_off), kept);
  }
  w->spill_win.len = kept;
  ctr_buf_reserve(&w->spill_win, (size_t)(to - from) - kept);
  rc = spill_io(w->spill_fd, w->spill_win.data + kept,
                (size_t)(to - from) - kept, from + kept, false);
  w->spill_win.len = rc < 0 ? 0 : (size_t)(to - from);
  w->win_off = from;
  *p = (const unsigned char *)w->spill_win.data + (off - from);
  return rc;
}

/* No record waits: the spill starts over, and the file gives its room back. */
static int spill_reset(ctr_ctfs_t *w) {
  w->spill_size = w->spill_disk = w->win_off = 0;
  w->spill_tail.len = w->spill_win.len = 0;
  return w->spill_fd >= 0 && ftruncate(w->spill_fd, 0) < 0 ? -errno : 0;
}

/* Appends the fields of the open call at depth d to r, up to its return
 * value,
 * with exit as its exit step, or without one when exit is NULL (the
 * spill's OWED_OPEN). */
static void call_fields(ctr_ctfs_t *w, ctr_buf_t *r, size_t d,
                        const uint64_t *exit) {
  const ctr_ctfs_open_t *c = &w->stack[d];
  ctr_ctfs_varint(r, c->function_id);
  ctr_ctfs_svarint(r, c->parent);
  ctr_ctfs_varint(r, c->entry);
  if (exit)
    ctr_ctfs_varint(r, *exit);
  ctr_ctfs_varint(r, d);
  ctr_ctfs_varint(r, c->nargs);
  ctr_buf_add(r, c->args.data, c->args.len);
}

/* Encodes the innermost open call, returning ret (n bytes of CBOR, or
 * the no-return marker), as its calls.dat record, which waits in the
 * spill until every earlier call is written. */
static int seal_call(ctr_ctfs_t *w, const void *ret, size_t n) {
  ctr_ctfs_open_t *c = &w->stack[w->depth - 1];
  ctr_ctfs_wait_t *t = wait_at(w, c->key);
  ctr_buf_t *r = &w->spill_tail;
  uint64_t exit = w->nsteps ? w->nsteps - 1 : 0;
  if (c->entry > exit) /* no step ran inside: the call is at its caller's */
    c->entry = exit;
  size_t start = spill_begin(w, OWED_RETURNED, c->key), len = r->len;
  call_fields(w, r, w->depth - 1, &exit);
  ctr_ctfs_varint(r, n);
  ctr_buf_add(r, ret, n);
  ctr_ctfs_varint(r, 0); /* no exception */
  ctr_ctfs_varint(r, c->nchildren);
  ctr_buf_add(r, c->children.data, c->children.len);
  t->rec_len = (uint32_t)(r->len - len);
  t->sub_off = c->sub_off;
  w->depth--;
  return keep(w, spill_end(w, start, &t->rec_off));
}

/* Writes the returned calls that every earlier call key has preceded. */
static int write_calls(ctr_ctfs_t *w) {
  while (w->head < w->ncalls && w->pending[w->head].rec_len) {
    ctr_ctfs_wait_t *c = &w->pending[w->head];
    const unsigned char *rec;
    int rc = spill_get(w, c, &rec);
    if (rc == 0)
      rc = ctr_ctfs_chunks_add(&w->calls, rec, c->rec_len);
    w->head++, w->first_key++;
    if (keep(w, rc) < 0)
      return w->err;
  }
  if (w->head > 64 && 2 * w->head > w->ncalls) { /* drop the written */
    memmove(w->pending, w->pending + w->head,
            (w->ncalls - w->head) * sizeof(*w->pending));
    w->ncalls -= w->head, w->head = 0;
  }
  return 0;
}

int ctr_ctfs_return(ctr_ctfs_t *w, const void *cbor, size_t n) {
  if (w->err)
    return w->err;
  if (w->depth == 0)
    return CTR_ESTATE;
  if (cbor == NULL)
    cbor = "\xff", n = 1;
  if (seal_call(w, cbor, n) < 0)
    return w->err;
  return write_calls(w);
}

/* Brings the spill file up to this flush (calls.dat just was): the calls
 * opened since the last one and still open, then a mark. With nothing
 * owed, the file starts over instead. */
static int owe(ctr_ctfs_t *w) {
  uint64_t next = ctr_ctfs_calls(w), off;
  size_t i = w->depth;
  int rc = 0;
  if (w->head == w->ncalls) {
    w->logged = next;
    return w->spill_size ? keep(w, spill_reset(w)) : 0;
  }
  while (i > 0 && w->stack[i - 1].key >= w->logged)
    i--;
  for (; rc == 0 && i < w->depth; i++) {
    w->rec.len = 0;
    call_fields(w, &w->rec, i, NULL);
    rc = spill_put(w, OWED_OPEN, w->stack[i].key, w->rec.data, w->rec.len,
                   &off);
  }
  if (rc == 0 && (rc = spill_put(w, OWED_MARK, next, NULL, 0, &off)) == 0 &&
      (rc = spill_out(w)) == 0)
    w->logged = next;
  return keep(w, rc);
}

int ctr_ctfs_event(ctr_ctfs_t *w, unsigned kind, const void *meta,
                   size_t meta_n, const void *content, size_t n) {
  if (w->err)
    return w->err;
  if (kind > 13) /* EventLogKind has 14 values */
    return CTR_ERANGE;
  ctr_buf_t *r = &w->rec;
  r->len = 0;
  char k = (char)kind;
  ctr_buf_add(r, &k, 1);
  ctr_ctfs_varint(r, w->nsteps ? w->nsteps - 1 : 0);
  ctr_ctfs_varint(r, meta_n);
  ctr_buf_add(r, meta, meta_n);
  ctr_ctfs_varint(r, n);
  ctr_buf_add(r, content, n);
  return keep(w, ctr_ctfs_chunks_add(&w->events, r->data, r->len));
}

static void meta_str(ctr_buf_t *b, const char *s) {
  size_t n = s ? strlen(s) : 0;
  ctr_ctfs_varint(b, n);
  ctr_buf_add(b, s, n);
}

int ctr_ctfs_metadata(ctr_ctfs_t *w, const ctr_ctfs_meta_t *m) {
  ctr_buf_t *b = &w->meta; /* everything before the paths */
  b->len = 0;
  meta_str(b, m->program);
  ctr_ctfs_varint(b, m->nargs);
  for (size_t i = 0; i < m->nargs; i++)
    meta_str(b, m->args[i]);
  meta_str(b, m->workdir);
  meta_str(b, m->recorder);
  w->meta_dirty = true;
  return 0;
}

/* meta.dat v3 (meta_dat.nim): "CTMD", u16 3, u16 flags, the recording id,
 * program, args, workdir, recorder id, paths. The flags say which streams
 * exist: calls (bit 8), steps (9), values (10), events (11) and the
 * interning tables (12); readers skip a stream whose bit is clear. */
#define CTR_CTFS_META_FLAGS 0x1f00
static int write_meta(ctr_ctfs_t *w) {
  ctr_buf_t *b = &w->rec;
  b->len = 0;
  ctr_buf_add(b, "CTMD\3\0", 6);
  char flags[2] = {CTR_CTFS_META_FLAGS & 0xff, CTR_CTFS_META_FLAGS >> 8};
  ctr_buf_add(b, flags, 2);
  meta_str(b, w->id);
  if (w->meta.len)
    ctr_buf_add(b, w->meta.data, w->meta.len);
  else /* no metadata given: empty program, args, workdir, recorder */
    ctr_buf_add(b, "\0\0\0\0", 4);
  ctr_ctfs_varint(b, w->npath_text);
  for (size_t i = 0; i < w->npath_text; i++)
    meta_str(b, w->path_text[i]);
  /* Zeros pad it to a size it keeps while it fits: readers stop after the
   * paths, and a rewrite of the same size is seen whole. It grows by zeros
   * first (the old content stays valid), then is rewritten. */
  int rc = 0;
  size_t len = b->len;
  if (w->meta_f < 0 &&
      (rc = w->meta_f = ctr_ctfs_box_add(w->box, "meta.dat")) < 0)
    return keep(w, rc);
  if (w->meta_size == 0) { /* new: written with its content at once */
    uint64_t size = 2 * (uint64_t)len + 256;
    ctr_buf_reserve(b, size - len);
    memset(b->data + len, 0, size - len);
    rc = ctr_ctfs_box_append(w->box, w->meta_f, b->data, size);
    if (rc == 0)
      w->meta_size = size;
    goto publish;
  }
  if (len > w->meta_size) {
    uint64_t size = 2 * (uint64_t)len + 256;
    char *zeros = ctr_xcalloc(1, size - w->meta_size);
    rc = ctr_ctfs_box_append(w->box, w->meta_f, zeros, size - w->meta_size);
    free(zeros);
    if (rc == 0)
      rc = ctr_ctfs_box_publish(w->box, w->meta_f);
    if (rc < 0)
      return keep(w, rc);
    w->meta_size = size;
  }
  /* Only the bytes that changed are rewritten (mostly the path count and
   * the new paths): a rewrite is bounded (CTR_CTFS_REWRITE_MAX blocks),
   * and a whole meta.dat passed that at some 40,000 paths. */
  size_t from = 0, end = len > w->meta_out.len ? len : w->meta_out.len;
  while (from < len && from < w->meta_out.len &&
         b->data[from] == w->meta_out.data[from])
    from++;
  ctr_buf_reserve(b, end - len);
  memset(b->data + len, 0, end - len);
  if (from < end)
    rc = ctr_ctfs_box_rewrite(w->box, w->meta_f, from, b->data + from,
                              end - from);
publish:
  if (rc == 0)
    rc = ctr_ctfs_box_publish(w->box, w->meta_f);
  if (rc == 0) {
    w->meta_dirty = false;
    w->meta_out.len = 0;
    ctr_buf_add(&w->meta_out, b->data, len);
  }
  return keep(w, rc);
}

int ctr_ctfs_flush(ctr_ctfs_t *w) {
  if (w->err || seal(w) < 0)
    return w->err;
  /* Names before what refers to them; values and events before their
   * steps, so that a follower that sees a step has all of them (one that
   * saw steps before their events showed the events late, out of order). */
  ctr_ctfs_table_t *t[] = {&w->paths.table, &w->funcs.table, &w->types.table,
                           &w->varnames.table};
  for (size_t i = 0; i < 4; i++)
    if (keep(w, ctr_ctfs_table_publish(t[i])) < 0)
      return w->err;
  ctr_ctfs_chunks_t *s[] = {&w->values, &w->events, &w->steps, &w->calls};
  for (size_t i = 0; i < 4; i++)
    if (keep(w, ctr_ctfs_chunks_flush(s[i])) < 0)
      return w->err;
  if (owe(w) < 0)
    return w->err;
  /* Last: readers find the streams through its flags and resolve step
   * positions through its paths. */
  int rc = w->meta_dirty ? write_meta(w) : 0;
  /* A write the container could not make stopped all writing there. */
  return rc != 0 ? rc : ctr_ctfs_box_failed(w->box);
}

int ctr_ctfs_end(ctr_ctfs_t *w) {
  /* The steps first: a disk that fills up with the calls keeps them. */
  int rc = w->depth ? ctr_ctfs_flush(w) : 0;
  if (rc != 0)
    return rc;
  while (w->err == 0 && w->depth)
    ctr_ctfs_return(w, NULL, 0);
  return w->err;
}

int ctr_ctfs_close(ctr_ctfs_t *w) {
  if (ctr_ctfs_end(w) == 0)
    ctr_ctfs_flush(w);
  int rc = w->err;
  if (w->box) {
    int crc = ctr_ctfs_box_close(w->box);
    rc = rc ? rc : crc;
  }
  ctr_ctfs_names_t *n[] = {&w->paths, &w->funcs, &w->types, &w->varnames};
  for (size_t i = 0; i < 4; i++)
    ctr_map_free(&n[i]->ids);
  ctr_ctfs_chunks_t *s[] = {&w->steps, &w->values, &w->calls, &w->events};
  for (size_t i = 0; i < 4; i++)
    ctr_ctfs_chunks_free(s[i]);
  for (size_t i = 0; i < w->stack_cap; i++) {
    ctr_buf_free(&w->stack[i].args);
    ctr_buf_free(&w->stack[i].children);
  }
  if (w->spill_fd >= 0) { /* a closed trace owes nothing, or never will */
    close(w->spill_fd);
    /* Stopped by a write error (a full disk), the writer still owes the
     * calls its last good flush logged: appended as for a killed writer,
     * if there is room now. */
    if (rc != 0 && w->box) {
      char *path = ctr_xstrndup(w->owed_path,
                                strlen(w->owed_path) - sizeof(".calls") + 1);
      ctr_ctfs_recover(path);
      free(path);
    }
    unlink(w->owed_path);
  }
  ctr_buf_free(&w->spill_tail);
  ctr_buf_free(&w->spill_win);
  ctr_buf_free(&w->spill_one);
  free(w->owed_path);
  for (size_t i = 0; i < w->npath_text; i++)
    free(w->path_text[i]);
  free(w->path_text);
  free(w->pending);
  free(w->stack);
  ctr_buf_free(&w->held_rec);
  ctr_buf_free(&w->rec);
  ctr_buf_free(&w->meta);
  ctr_buf_free(&w->meta_out);
  free(w);
  return rc;
}

uint64_t ctr_ctfs_steps(const ctr_ctfs_t *w) { return w->nsteps; }

uint64_t ctr_ctfs_bytes(const ctr_ctfs_t *w) {
  return ctr_ctfs_box_used(w->box);
}

uint64_t ctr_ctfs_calls(const ctr_ctfs_t *w) {
  return w->first_key + (w->ncalls - w->head);
}

/* ---- recovery ----------------------------------------------------------- */

/* Where calls.dat stood when its writer died, as the reader sees it. */
typedef struct ctr_ctfs_left_s {
  uint64_t steps, calls, region;
  ctr_buf_t recs; /* the records of an open last chunk, back to back */
  size_t *lens;
  uint32_t nopen;
} ctr_ctfs_left_t;

static int left_rec(void *ctx, uint64_t index, const unsigned char *rec,
                    size_t n) {
  ctr_ctfs_left_t *l = ctx;
  (void)index;
  l->lens = ctr_xrealloc(l->lens, (l->nopen + 1) * sizeof(*l->lens));
  l->lens[l->nopen++] = n;
  ctr_buf_add(&l->recs, rec, n);
  return 0;
}

static int read_left(const char *path, ctr_ctfs_left_t *l) {
  ctr_ctfs_image_t img;
  ctr_buf_t idx = {0};
  int rc = ctr_ctfs_image_load(&img, path);
  if (rc < 0)
    return rc;
  if ((rc = ctr_ctfs_stream_from(&img, "steps", false, UINT64_MAX, NULL, NULL,
                                 &l->steps)) == 0 &&
      (rc = ctr_ctfs_stream_from(&img, "calls", true, UINT64_MAX, NULL, NULL,
                                 &l->calls)) == 0 &&
      l->calls % CTR_CTFS_CALLS_CHUNK)
    rc = ctr_ctfs_stream_from(&img, "calls", true,
                              l->calls - l->calls % CTR_CTFS_CALLS_CHUNK,
                              left_rec, l, &l->calls);
  if (rc == 0 && (rc = ctr_ctfs_member(&img, "calls.idx", &idx)) == 0 &&
      idx.len >= 12) {
    const unsigned char *p = (unsigned char *)idx.data + idx.len - 8;
    for (int i = 7; i >= 0; i--)
      l->region = (l->region << 8) | p[i];
  }
  ctr_buf_free(&idx);
  ctr_ctfs_image_free(&img);
  return rc;
}

/* One spill entry at *pos of the n bytes at p. */
static bool owed_entry(const unsigned char *p, size_t n, size_t *pos, int *kind,
                       uint64_t *key, size_t *at, size_t *len) {
  uint64_t l;
  if (*pos >= n)
    return false;
  *kind = p[(*pos)++];
  if (!ctr_ctfs_read_varint(p, n, pos, key) ||
      !ctr_ctfs_read_varint(p, n, pos, &l) || l > n - *pos)
    return false;
  *at = *pos, *len = (size_t)l;
  *pos += (size_t)l;
  return true;
}

/* What the spill up to its last mark owes from call key first on: for key
 * first + i, ret[i] (its record) or else open[i] (it was open), as
 * offset + 1 and length. */
typedef struct ctr_ctfs_owed_s {
  uint64_t first, next; /* keys [first, next) */
  size_t *ret, *ret_len, *open, *open_len;
} ctr_ctfs_owed_t;

static void read_owed(const unsigned char *p, size_t n, ctr_ctfs_owed_t *o) {
  size_t pos = 0, end = 0, at, len;
  uint64_t key, next = 0;
  int kind;
  while (owed_entry(p, n, &pos, &kind, &key, &at, &len))
    if (kind == OWED_MARK)
      end = pos, next = key;
  o->next = next > o->first ? next : o->first;
  size_t m = (size_t)(o->next - o->first);
  o->ret = ctr_xcalloc(m + 1, sizeof(size_t));
  o->ret_len = ctr_xcalloc(m + 1, sizeof(size_t));
  o->open = ctr_xcalloc(m + 1, sizeof(size_t));
  o->open_len = ctr_xcalloc(m + 1, sizeof(size_t));
  for (pos = 0; pos < end && owed_entry(p, end, &pos, &kind, &key, &at, &len);)
    if (key >= o->first && key < o->next && kind != OWED_MARK) {
      size_t i = (size_t)(key - o->first);
      (kind == OWED_RETURNED ? o->ret : o->open)[i] = at + 1;
      (kind == OWED_RETURNED ? o->ret_len : o->open_len)[i] = len;
    }
}

static void owed_free(ctr_ctfs_owed_t *o) {
  free(o->ret);
  free(o->ret_len);
  free(o->open);
  free(o->open_len);
}

/* The calls.dat record of call key, open when its writer died: it exits
 * at the last step, without a value, with the children the spill names. */
static void closed_record(ctr_buf_t *r, const unsigned char *p, size_t n,
                          uint64_t last, const ctr_buf_t *kids,
                          uint64_t nkids) {
  size_t pos = 0, from;
  uint64_t v;
  r->len = 0;
  for (int i = 0; i < 2; i++) { /* function, parent */
    from = pos;
    ctr_ctfs_read_varint(p, n, &pos, &v);
    ctr_buf_add(r, p + from, pos - from);
  }
  ctr_ctfs_read_varint(p, n, &pos, &v); /* entry: no step inside, the last */
  ctr_ctfs_varint(r, v < last ? v : last);
  ctr_ctfs_varint(r, last);
  ctr_buf_add(r, p + pos, n - pos); /* depth, args */
  ctr_ctfs_varint(r, 1);
  ctr_buf_add(r, "\xff", 1); /* no return value */
  ctr_ctfs_varint(r, 0);     /* no exception */
  ctr_ctfs_varint(r, nkids);
  ctr_buf_add(r, kids->data, kids->len);
}

/* Appends the owed records to calls.dat, in key order from its end on. */
static int append_owed(const char *path, const ctr_ctfs_left_t *l,
                       const unsigned char *p, const ctr_ctfs_owed_t *o) {
  ctr_ctfs_box_t *box;
  ctr_ctfs_chunks_t calls;
  const unsigned char **recs = NULL;
  size_t m = (size_t)(o->next - o->first);
  uint64_t last = l->steps ? l->steps - 1 : 0;
  int rc = ctr_ctfs_box_open(&box, path);
  if (rc < 0)
    return rc;
  recs = ctr_xrealloc(NULL, (l->nopen + 1) * sizeof(*recs));
  for (uint32_t i = 0, at = 0; i < l->nopen; at += (uint32_t)l->lens[i++])
    recs[i] = (const unsigned char *)l->recs.data + at;
  ctr_ctfs_tail_t t = {l->calls, l->region, recs, l->lens, l->nopen};
  rc = ctr_ctfs_chunks_reopen(&calls, box, "calls", CTR_CTFS_CALLS_CHUNK, &t);
  free(recs);
  /* The children of an open call: the owed calls naming it their parent
   * (every call opened after it is owed too). */
  ctr_buf_t *kids = rc == 0 ? ctr_xcalloc(m + 1, sizeof(*kids)) : NULL;
  uint64_t *nkids = rc == 0 ? ctr_xcalloc(m + 1, sizeof(*nkids)) : NULL;
  for (size_t i = 0; rc == 0 && i < m; i++) {
    size_t at = o->ret[i] ? o->ret[i] : o->open[i], pos = 0;
    size_t n = o->ret[i] ? o->ret_len[i] : o->open_len[i];
    uint64_t fn, zz;
    if (!at || !ctr_ctfs_read_varint(p + at - 1, n, &pos, &fn) ||
        !ctr_ctfs_read_varint(p + at - 1, n, &pos, &zz))
      break;
    int64_t parent = (int64_t)(zz >> 1) ^ -(int64_t)(zz & 1);
    if (parent >= (int64_t)o->first && (uint64_t)parent < o->next &&
        !o->ret[parent - (int64_t)o->first]) {
      ctr_ctfs_varint(&kids[parent - (int64_t)o->first], o->first + i);
      nkids[parent - (int64_t)o->first]++;
    }
  }
  ctr_buf_t r = {0};
  for (size_t i = 0; rc == 0 && i < m; i++) {
    if (o->ret[i]) {
      rc = ctr_ctfs_chunks_add(&calls, p + o->ret[i] - 1, o->ret_len[i]);
    } else if (o->open[i]) {
      closed_record(&r, p + o->open[i] - 1, o->open_len[i], last, &kids[i],
                    nkids[i]);
      rc = ctr_ctfs_chunks_add(&calls, r.data, r.len);
    } else {
      rc = CTR_EPROTO; /* a gap: the records before it are kept */
    }
  }
  int frc = ctr_ctfs_chunks_flush(&calls);
  rc = rc ? rc : frc ? frc : ctr_ctfs_box_failed(box);
  for (size_t i = 0; kids && i < m; i++)
    ctr_buf_free(&kids[i]);
  free(kids);
  free(nkids);
  ctr_buf_free(&r);
  ctr_ctfs_chunks_free(&calls);
  int crc = ctr_ctfs_box_close(box);
  return rc ? rc : crc;
}

int ctr_ctfs_recover(const char *path) {
  char *owed = suffixed(path, ".new");
  unlink(owed); /* a container its writer died making: never shown */
  free(owed);
  owed = suffixed(path, ".calls");
  int fd = open(owed, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), rc = 0;
  struct stat st;
  ctr_ctfs_left_t l = {0};
  ctr_ctfs_owed_t o = {0};
  void *map = NULL;

  if (fd < 0) {
    rc = errno == ENOENT ? 0 : -errno;
    free(owed);
    return rc;
  }
  if (fstat(fd, &st) < 0)
    rc = -errno;
  else if (st.st_size > 0 && (map = mmap(NULL, (size_t)st.st_size, PROT_READ,
                                         MAP_PRIVATE, fd, 0)) == MAP_FAILED)
    rc = -errno, map = NULL;
  close(fd);
  if (rc == 0)
    rc = read_left(path, &l);
  if (rc == 0 && map) {
    o.first = l.calls;
    read_owed(map, (size_t)st.st_size, &o);
    if (o.next > o.first)
      rc = append_owed(path, &l, map, &o);
  }
  if (rc == 0) /* done: a recovery run again finds nothing to do */
    unlink(owed);
  if (map)
    munmap(map, (size_t)st.st_size);
  owed_free(&o);
  ctr_buf_free(&l.recs);
  free(l.lens);
  free(owed);
  return rc < 0 ? rc : (int)(o.next - o.first);
}
