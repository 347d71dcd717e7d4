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

/* Puts the open chunk in X.dat as one frame, compressed in one shot so its
 * header carries its content size (readers size their buffer from it).
 * last: the chunk is complete and leaves no room for more. */
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
  if (c->reserved == 0) { /* a new chunk: its offset first, then the chunk */
    unsigned char off[8];
    c->region = ctr_ctfs_box_size(c->box, c->dat);
    le(off, c->region, 8);
    if (!last)
      skippable(fr, (c->reserved = region_for(z)) - z);
    if ((rc = ctr_ctfs_box_append(c->box, c->idx, off, 8)) < 0 ||
        (rc = ctr_ctfs_box_append(c->box, c->dat, fr->data, fr->len)) < 0)
      return rc;
    c->chunks++;
  } else {
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
    if ((rc = ctr_ctfs_box_rewrite(c->box, c->dat, c->region, fr->data,
                                   fr->len)) < 0)
      return rc;
  }
  if ((rc = ctr_ctfs_box_publish(c->box, c->dat)) < 0 ||
      (rc = ctr_ctfs_box_publish(c->box, c->idx)) < 0)
    return rc;
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

int ctr_ctfs_chunks_end(ctr_ctfs_chunks_t *c, size_t start, size_t room,
                        const void *head, size_t hn) {
  size_t body = c->open.len - start - room;
  unsigned char pre[10];
  size_t pn = 0;
  uint64_t v = hn + body;
  while (v >= 0x80) {
    pre[pn++] = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  pre[pn++] = (unsigned char)v;
  if (pn + hn != room) {
    ctr_buf_reserve(&c->open, pn + hn); /* may move open.data */
    memmove(c->open.data + start + pn + hn, c->open.data + start + room, body);
    c->open.len = start + pn + hn + body;
  }
  memcpy(c->open.data + start, pre, pn);
  memcpy(c->open.data + start + pn, head, hn);
  return added(c);
}

int ctr_ctfs_chunks_flush(ctr_ctfs_chunks_t *c) {
  return c->open.len > c->shown ? put_open(c, false) : 0;
}

void ctr_ctfs_chunks_free(ctr_ctfs_chunks_t *c) {
  ctr_buf_free(&c->open);
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

/* A record is published as it is added: a stream's chunk, published when
 * it fills (between flushes), must find every name it refers to, and a
 * write that fails later must not leave chunks naming unpublished ones.
 * Names are few, so this costs little. */
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
