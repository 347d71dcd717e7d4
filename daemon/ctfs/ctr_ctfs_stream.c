/* ctr_ctfs_stream.c: chunked streams and tables, see ctr_ctfs_stream.h. */
#include "ctr_ctfs_stream.h"

#include <stdio.h>
#include <string.h>
#include <zstd.h>

#include "ctr_error.h"

/* zstd's fastest strategy short of dropping the entropy stage: on the
 * 10 KB values chunks of call-heavy code it compresses 1.5x faster than
 * level 3 (CodeTracer's writers' level) to the same size; object-heavy
 * traces come out 15% larger (REXML: 118x instead of 140x smaller than
 * their CBOR). Measured in docs/ctfs.md, "Figures". */
#define CTR_CTFS_ZSTD_LEVEL -1

static void le(unsigned char *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

static int add_pair(ctr_ctfs_box_t *box, const char *name, const char *a,
                    const char *b, int *fa, int *fb) {
  char n[16];
  snprintf(n, sizeof(n), "%s.%s", name, a);
  if ((*fa = ctr_ctfs_box_add(box, n)) < 0)
    return *fa;
  snprintf(n, sizeof(n), "%s.%s", name, b);
  return (*fb = ctr_ctfs_box_add(box, n)) < 0 ? *fb : 0;
}

int ctr_ctfs_chunks_init(ctr_ctfs_chunks_t *c, ctr_ctfs_box_t *box,
                         const char *name, uint32_t chunk_size, bool prefixed) {
  *c = (ctr_ctfs_chunks_t){
      .box = box, .chunk_size = chunk_size, .prefixed = prefixed};
  int rc = add_pair(box, name, "dat", "idx", &c->dat, &c->idx);
  if (rc < 0)
    return rc;
  unsigned char head[4];
  le(head, chunk_size, 4);
  if ((rc = ctr_ctfs_box_append(box, c->idx, head, 4)) < 0)
    return rc;
  return ctr_ctfs_box_publish(box, c->idx);
}

int ctr_ctfs_chunks_reopen(ctr_ctfs_chunks_t *c, ctr_ctfs_box_t *box,
                           const char *name, uint32_t chunk_size,
                           const ctr_ctfs_tail_t *t) {
  char n[16];
  *c = (ctr_ctfs_chunks_t){
      .box = box, .chunk_size = chunk_size, .prefixed = true};
  snprintf(n, sizeof(n), "%s.dat", name);
  c->dat = ctr_ctfs_box_find(box, n);
  snprintf(n, sizeof(n), "%s.idx", name);
  c->idx = ctr_ctfs_box_find(box, n);
  if (c->dat < 0 || c->idx < 0)
    return CTR_ERANGE;
  c->total = t->total;
  c->chunks = (ctr_ctfs_box_size(box, c->idx) - 4) / 8;
  if (t->nopen == 0) /* the next record starts a chunk */
    return 0;
  /* The last chunk is open: its region runs to the end of X.dat. */
  c->region = t->region;
  c->reserved = ctr_ctfs_box_size(box, c->dat) - t->region;
  for (uint32_t i = 0; i < t->nopen; i++) {
    ctr_ctfs_varint(&c->open, t->lens[i]);
    ctr_buf_add(&c->open, t->recs[i], t->lens[i]);
  }
  c->nopen = t->nopen;
  c->shown = c->open.len;
  return 0;
}

/* Appends a zstd skippable frame of n bytes (n >= 8) to b. */
static void skippable(ctr_buf_t *b, size_t n) {
  unsigned char h[8] = {0x50, 0x2a, 0x4d, 0x18};
  le(h + 4, n - 8, 4);
  ctr_buf_add(b, h, 8);
  ctr_buf_reserve(b, n - 8);
  memset(b->data + b->len, 0, n - 8);
  b->len += n - 8;
}

/* A region for a frame of z bytes: a quarter more, so that most flushes
 * rewrite the region without growing it, and a complete chunk keeps little
 * padding. */
static uint64_t region_for(size_t z) { return (uint64_t)z + z / 4 + 64; }

/* Full chunks not yet in the container are written this many bytes at a
 * time, and at every flush: one system call per chunk (with the sizes
 * published each time) cost the daemon a tenth of its time on call-heavy
 * code, for chunks a reader need not see before the next flush. */
#define CTR_CTFS_OUT_PIECE (256u << 10)

/* Appends the full chunks kept in c->out to X.idx and X.dat (unpublished,
 * so this may happen between flushes). */
static int put_out(ctr_ctfs_chunks_t *c) {
  int rc = 0;
  if (c->out.len &&
      ((rc = ctr_ctfs_box_append(c->box, c->idx, c->out_idx.data,
                                 c->out_idx.len)) < 0 ||
       (rc = ctr_ctfs_box_append(c->box, c->dat, c->out.data, c->out.len)) <
           0))
    return rc;
  c->out.len = c->out_idx.len = 0;
  return 0;
}

/* Puts the open chunk in X.dat as one frame, compressed in one shot so its
 * header carries its content size (readers size their buffer from it).
 * last: the chunk is complete and leaves no room for more; it then waits
 * in memory until the next flush (c->pend for the region a flush gave it,
 * else c->out, also written once CTR_CTFS_OUT_PIECE bytes wait there). */
static int put_open(ctr_ctfs_chunks_t *c, bool last) {
  ctr_buf_t *fr = &c->frame;
  fr->len = 0;
  ctr_buf_reserve(fr, ZSTD_compressBound(c->open.len));
  if (c->zc == NULL && (c->zc = ZSTD_createCCtx()) == NULL)
    ctr_oom(0);
  /* One-shot, so the frame carries its content size, as readers need; the
   * buffer holds the bound, so only memory can fail it. */
  size_t z = ZSTD_compressCCtx(c->zc, fr->data, fr->cap, c->open.data,
                               c->open.len, CTR_CTFS_ZSTD_LEVEL);
  if (ZSTD_isError(z))
    ctr_oom(0);
  fr->len = z;
  int rc;
  if (c->reserved == 0 && last) { /* its offset first, then the chunk */
    unsigned char off[8];
    le(off, ctr_ctfs_box_size(c->box, c->dat) + c->out.len, 8);
    ctr_buf_add(&c->out_idx, off, 8);
    ctr_buf_add(&c->out, fr->data, fr->len);
    c->chunks++;
    return c->out.len < CTR_CTFS_OUT_PIECE ? 0 : put_out(c);
  }
  if (c->reserved == 0) { /* the open chunk, in a region with room, after
                            * the full chunks chunks_flush just wrote */
    unsigned char off[8];
    c->region = ctr_ctfs_box_size(c->box, c->dat);
    le(off, c->region, 8);
    skippable(fr, (c->reserved = region_for(z)) - z);
    if ((rc = ctr_ctfs_box_append(c->box, c->idx, off, 8)) < 0 ||
        (rc = ctr_ctfs_box_append(c->box, c->dat, fr->data, fr->len)) < 0)
      return rc;
    c->chunks++;
  } else { /* the chunk a flush gave a region: no chunk is kept after it */
    /* Its records were all shown by that flush, rewritten by the next:
     * once full it waits like the others (a steps chunk shown at once
     * would outrun the values chunks kept in memory). */
    if (z != c->reserved && z + 8 > c->reserved) {
      /* Grow the region by padding alone, then rewrite it. */
      uint64_t grown = region_for(z);
      ctr_buf_t pad = {0};
      skippable(&pad, grown - c->reserved);
      rc = ctr_ctfs_box_append(c->box, c->dat, pad.data, pad.len);
      ctr_buf_free(&pad);
      if (rc < 0 || (rc = ctr_ctfs_box_publish(c->box, c->dat)) < 0)
        return rc;
      c->reserved = grown;
    }
    if (z < c->reserved)
      skippable(fr, c->reserved - z);
    if (last) {
      ctr_buf_t t = c->pend;
      c->pend = *fr, c->pend_at = c->region, *fr = t;
    } else if ((rc = ctr_ctfs_box_rewrite(c->box, c->dat, c->region,
                                          fr->data, fr->len)) < 0) {
      return rc;
    }
  }
  c->shown = c->open.len;
  return 0;
}

/* Counts the record just appended; a full chunk is written. */
static int added(ctr_ctfs_chunks_t *c) {
  c->total++;
  if (++c->nopen < c->chunk_size)
    return 0;
  int rc = put_open(c, true);
  c->open.len = 0, c->nopen = 0, c->shown = 0, c->reserved = 0;
  return rc;
}

int ctr_ctfs_chunks_add(ctr_ctfs_chunks_t *c, const void *rec, size_t n) {
  if (c->prefixed)
    ctr_ctfs_varint(&c->open, n);
  ctr_buf_add(&c->open, rec, n);
  return added(c);
}

size_t ctr_ctfs_chunks_begin(ctr_ctfs_chunks_t *c, size_t room) {
  size_t start = c->open.len;
  ctr_buf_reserve(&c->open, room);
  c->open.len += room;
  return start;
}

int ctr_ctfs_chunks_end(ctr_ctfs_chunks_t *c, size_t start, size_t *roomp,
                        const void *head, size_t hn) {
  size_t room = *roomp, body = c->open.len - start - room;
  unsigned char pre[10];
  size_t pn = 0;
  uint64_t v = hn + body;
  while (c->prefixed && v >= 0x80) {
    pre[pn++] = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  if (c->prefixed)
    pre[pn++] = (unsigned char)v;
  if (pn + hn != room) {
    ctr_buf_reserve(&c->open, pn + hn); /* may move open.data */
    memmove(c->open.data + start + pn + hn, c->open.data + start + room, body);
    c->open.len = start + pn + hn + body;
  }
  *roomp = pn + hn;
  for (size_t i = 0; i < pn; i++) /* a few bytes: not worth memcpy */
    c->open.data[start + i] = (char)pre[i];
  if (hn)
    memcpy(c->open.data + start + pn, head, hn);
  return added(c);
}

int ctr_ctfs_chunks_flush(ctr_ctfs_chunks_t *c) {
  /* The chunk the last flush gave a region, full since: a rewrite shows
   * it at once, so only at a flush. */
  int rc = c->pend.len ? ctr_ctfs_box_rewrite(c->box, c->dat, c->pend_at,
                                              c->pend.data, c->pend.len)
                       : 0;
  c->pend.len = 0;
  if (rc == 0)
    rc = put_out(c);
  if (rc == 0 && c->open.len > c->shown)
    rc = put_open(c, false);
  if (rc == 0 && (rc = ctr_ctfs_box_publish(c->box, c->dat)) == 0)
    rc = ctr_ctfs_box_publish(c->box, c->idx);
  return rc;
}

void ctr_ctfs_chunks_free(ctr_ctfs_chunks_t *c) {
  ctr_buf_free(&c->open);
  ctr_buf_free(&c->out);
  ctr_buf_free(&c->out_idx);
  ctr_buf_free(&c->pend);
  ctr_buf_free(&c->frame);
  ZSTD_freeCCtx(c->zc);
  c->zc = NULL;
}

int ctr_ctfs_table_init(ctr_ctfs_table_t *t, ctr_ctfs_box_t *box,
                        const char *name) {
  *t = (ctr_ctfs_table_t){.box = box};
  int rc = add_pair(box, name, "dat", "off", &t->dat, &t->off);
  if (rc < 0)
    return rc;
  unsigned char zero[8] = {0};
  if ((rc = ctr_ctfs_box_append(box, t->off, zero, 8)) < 0)
    return rc;
  return ctr_ctfs_box_publish(box, t->off);
}

int ctr_ctfs_table_publish(ctr_ctfs_table_t *t) {
  int rc = ctr_ctfs_box_publish(t->box, t->dat);
  return rc < 0 ? rc : ctr_ctfs_box_publish(t->box, t->off);
}

/* A record is published as it is added, so that no chunk, whenever it is
 * published, can name one a reader does not have. Names are few, so this
 * costs little. */
int ctr_ctfs_table_add(ctr_ctfs_table_t *t, const void *rec, size_t n) {
  int rc = ctr_ctfs_box_append(t->box, t->dat, rec, n);
  if (rc < 0)
    return rc;
  unsigned char end[8];
  le(end, ctr_ctfs_box_size(t->box, t->dat), 8);
  if ((rc = ctr_ctfs_box_append(t->box, t->off, end, 8)) == 0)
    t->count++;
  return rc < 0 ? rc : ctr_ctfs_table_publish(t);
}
