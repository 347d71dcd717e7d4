/* ctr_reader.c: the trace reader's interface and its JSON backend.
 *
 * ctrecd keeps trace.json a closed JSON array: "[", records separated by
 * ",\n", then the trailer "\n]\n". New records are written over the trailer,
 * so the backend keeps the offset just past the last complete record and
 * reads on from there. A record is returned only once its whole line is on
 * disk and parses, so a write still in progress is never seen half done. */
#include "ctr_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctr_alloc.h"
#include "ctr_error.h"

#define READ_WINDOW (1u << 20)
#define READ_WINDOW_MAX (256u << 20)

struct ctr_reader_s {
  ctr_reader_format_t format;
  const ctr__trace_backend_t *vt;
  void *b;
  ctr_jval_t *rec; /* the record last returned */
  char why[512];
};

/* ---- trace.json ---------------------------------------------------------- */

typedef struct json_s {
  int fd;
  uint64_t off; /* just past the last complete record */
  bool started; /* a record was read: the next one follows ",\n" */
  bool live;    /* still being written: a cut record is not finished yet */
  char *buf;    /* the file from off on, as last read */
  size_t len, pos, cap, window;
} json_t;

/* Parses the record at buf[pos]; true when a whole one is there. */
static bool json_take(json_t *j, ctr_reader_rec_t *r) {
  const char *sep = j->started ? ",\n" : "\n";
  size_t sl = strlen(sep), rs, re;
  const char *nl;

  if (j->len - j->pos <= sl || memcmp(j->buf + j->pos, sep, sl) != 0)
    return false;
  rs = j->pos + sl;
  nl = memchr(j->buf + rs, '\n', j->len - rs);
  if (nl == NULL)
    return false;
  re = (size_t)(nl - j->buf);
  if (re > rs && j->buf[re - 1] == ',')
    re--;
  /* The trailer ("]") and a line caught mid-write both fail here. */
  if (ctr_jval_parse(j->buf + rs, re - rs, &r->rec) != 0)
    return false;
  r->text = j->buf + rs;
  r->len = re - rs;
  j->started = true;
  j->off += re - j->pos;
  j->pos = re;
  return true;
}

/* Reads the file from j->off on again (the tail may have been rewritten);
 * returns the bytes read, or -1. */
static long json_fill(json_t *j, bool *more) {
  struct stat sb;
  size_t want, got = 0;

  *more = false;
  if (fstat(j->fd, &sb) != 0)
    return -1;
  j->len = j->pos = 0;
  if ((uint64_t)sb.st_size <= j->off)
    return 0;
  want = (uint64_t)sb.st_size - j->off < j->window
             ? (size_t)((uint64_t)sb.st_size - j->off)
             : j->window;
  *more = want < (uint64_t)sb.st_size - j->off;
  if (j->cap < want) {
    j->cap = want;
    j->buf = ctr_xrealloc(j->buf, j->cap);
  }
  while (got < want) {
    ssize_t n = pread(j->fd, j->buf + got, want - got, (off_t)(j->off + got));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    if (n == 0)
      break;
    got += (size_t)n;
  }
  j->len = got;
  return (long)got;
}

/* Whether buf[pos] on, the rest of the file, is the closing bracket. */
static bool json_at_end(const json_t *j) {
  size_t i = j->pos;

  while (i < j->len && (j->buf[i] == '\n' || j->buf[i] == ' '))
    i++;
  if (i == j->len || j->buf[i++] != ']')
    return false;
  while (i < j->len && (j->buf[i] == '\n' || j->buf[i] == ' '))
    i++;
  return i == j->len;
}

static int json_next(void *b, ctr_reader_rec_t *r, char *why, size_t cap) {
  json_t *j = b;
  bool more;

  if (json_take(j, r))
    return 1;
  for (;;) {
    if (json_fill(j, &more) < 0) {
      snprintf(why, cap, "trace.json: %s", strerror(errno));
      return -errno;
    }
    if (json_take(j, r))
      return 1;
    /* One record longer than the window: read more of it at once. */
    if ((!more || j->window >= READ_WINDOW_MAX) && !j->live &&
        (more || !json_at_end(j))) {
      snprintf(why, cap,
               "trace.json: byte %llu: neither a whole record nor the end",
               (unsigned long long)j->off + j->pos);
      return CTR_EPROTO;
    }
    if (!more || j->window >= READ_WINDOW_MAX)
      return 0;
    j->window *= 2;
  }
}

static int json_listed_paths(void *b, ctr_jval_t **out) {
  (void)b;
  *out = NULL;
  return CTR_ERANGE;
}

static void json_free(void *b) {
  json_t *j = b;

  close(j->fd);
  free(j->buf);
  free(j);
}

static const ctr__trace_backend_t json_vt = {json_next, json_listed_paths,
                                             json_free};

static int json_open(void **out, const char *path, bool live) {
  json_t *j;
  int fd = open(path, O_RDONLY | O_CLOEXEC);

  if (fd < 0)
    return -errno;
  j = ctr_xrealloc(NULL, sizeof(*j));
  memset(j, 0, sizeof(*j));
  j->fd = fd;
  j->live = live;
  j->off = 1; /* trace.json starts with "[" and the first record follows */
  j->window = READ_WINDOW;
  *out = j;
  return 0;
}

/* ---- the interface ------------------------------------------------------- */

int ctr_reader_open(ctr_reader_t **out, const char *dir, bool live) {
  char path[PATH_MAX];
  ctr_reader_t *t = ctr_xrealloc(NULL, sizeof(*t));
  struct stat sb;
  int rc;

  memset(t, 0, sizeof(*t));
  snprintf(path, sizeof(path), "%s/trace.ct", dir);
  if (stat(path, &sb) == 0) {
    t->format = CTR_READER_CTFS;
    rc = ctr__trace_ctfs_open(&t->b, path, live, &t->vt);
  } else {
    snprintf(path, sizeof(path), "%s/trace.json", dir);
    t->format = CTR_READER_JSON;
    t->vt = &json_vt;
    rc = json_open(&t->b, path, live);
  }
  if (rc < 0) {
    free(t);
    return rc;
  }
  *out = t;
  return 0;
}

void ctr_reader_free(ctr_reader_t *t) {
  if (t == NULL)
    return;
  ctr_jval_free(t->rec);
  t->vt->free(t->b);
  free(t);
}

ctr_reader_format_t ctr_reader_format(const ctr_reader_t *t) { return t->format; }

const char *ctr_reader_file(const ctr_reader_t *t) {
  return t->format == CTR_READER_CTFS ? "trace.ct" : "trace.json";
}

int ctr_reader_next(ctr_reader_t *t, ctr_reader_rec_t *r) {
  int rc;

  ctr_jval_free(t->rec);
  t->rec = NULL;
  memset(r, 0, sizeof(*r));
  rc = t->vt->next(t->b, r, t->why, sizeof(t->why));
  if (rc == 1)
    t->rec = r->rec;
  return rc;
}

const char *ctr_reader_error(const ctr_reader_t *t) { return t->why; }

int ctr_reader_listed_paths(ctr_reader_t *t, ctr_jval_t **out) {
  return t->vt->listed_paths(t->b, out);
}
