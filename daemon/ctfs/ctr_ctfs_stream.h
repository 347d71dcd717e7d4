/* ctr_ctfs_stream.h: the two kinds of CTFS member a trace is made of.
 *
 * A chunked stream (steps, values, calls, events) is X.dat, independent zstd
 * frames of chunk_size records each, and X.idx, u32 chunk_size then a u64
 * offset per chunk into X.dat (CodeTracer exec_stream.nim, value_stream.nim,
 * record_chunk.nim). Readers find record N in chunk N / chunk_size, so every
 * chunk but the last holds exactly chunk_size records, and count the last
 * chunk by decoding it.
 *
 * A table (paths, funcs, types, varnames) is X.dat, the records back to
 * back, and X.off, u64 offsets: 0, then the end of each record
 * (variable_record_table.nim).
 *
 * Both publish their .dat before the file that points into it (.idx,
 * .off), so a reader never follows an offset past the data it has.
 *
 * A flush must show the records of the open chunk too, and readers allow
 * neither a short chunk before the last nor a chunk of two zstd frames.
 * So a flushed open chunk gets a region of X.dat: its frame, then a zstd
 * skippable frame up to the region's end (decoders skip it). Each later
 * flush rewrites the region at once (ctr_ctfs_box_rewrite) with the frame
 * of all its records so far, growing the region first, padding only, when
 * the frame no longer fits. The chunk keeps its offset in X.idx. */
#ifndef CTR_CTFS_STREAM_H
#define CTR_CTFS_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctr_buf.h"
#include "ctr_ctfs_box.h"

typedef struct ctr_ctfs_chunks_s {
  ctr_ctfs_box_t *box;
  int dat, idx;
  uint32_t chunk_size; /* records per chunk */
  bool prefixed;       /* each record carries a varint length */
  ctr_buf_t open;      /* the records of the open chunk */
  uint32_t nopen;      /* how many */
  size_t shown;        /* bytes of open a flush has put in X.dat */
  uint64_t region;     /* where the open chunk's region starts in X.dat */
  uint64_t reserved;   /* its size; 0 while the chunk is not in X.dat */
  uint64_t total;      /* records added */
  uint64_t chunks;     /* chunks in X.idx, or kept for it in out_idx */
  ctr_buf_t out;       /* full chunks' frames not yet in X.dat */
  ctr_buf_t out_idx;   /* and their offsets, not yet in X.idx */
  ctr_buf_t pend;      /* a full chunk's frame for its region, at pend_at */
  uint64_t pend_at;
  ctr_buf_t frame;     /* scratch for compression */
  struct ZSTD_CCtx_s *zc; /* kept: ZSTD_compress makes a context per call */
} ctr_ctfs_chunks_t;

/* Adds name.dat and name.idx (name at most 8 characters). */
int ctr_ctfs_chunks_init(ctr_ctfs_chunks_t *c, ctr_ctfs_box_t *box,
                         const char *name, uint32_t chunk_size, bool prefixed);
/* What a reader found at the end of a length-prefixed stream that a
 * writer left: its records, where its last chunk starts and, when that
 * chunk is not full, its records. */
typedef struct ctr_ctfs_tail_s {
  uint64_t total, region;
  const unsigned char *const *recs;
  const size_t *lens;
  uint32_t nopen;
} ctr_ctfs_tail_t;

/* Takes up length-prefixed stream name of a reopened container
 * (ctr_ctfs_box_open) where its writer left it, as t says. */
int ctr_ctfs_chunks_reopen(ctr_ctfs_chunks_t *c, ctr_ctfs_box_t *box,
                           const char *name, uint32_t chunk_size,
                           const ctr_ctfs_tail_t *t);
/* Adds one record; a full chunk is written (published at the next flush). */
int ctr_ctfs_chunks_add(ctr_ctfs_chunks_t *c, const void *rec, size_t n);
/* A record written in place, not copied: begin leaves room for about
 * room bytes of length prefix (prefixed streams only) and head at the end
 * of c->open and returns where the record starts; the caller appends its
 * body to c->open; end puts the prefix and head (hn bytes) before the
 * body, moving the body when *room (the room begin left) was not right,
 * sets *room to the bytes they took, and adds the record as
 * ctr_ctfs_chunks_add does. Nothing else may touch c in between. */
size_t ctr_ctfs_chunks_begin(ctr_ctfs_chunks_t *c, size_t room);
int ctr_ctfs_chunks_end(ctr_ctfs_chunks_t *c, size_t start, size_t *room,
                        const void *head, size_t hn);
/* Writes the full chunks not yet written and the open chunk as it is, and
 * publishes them. */
int ctr_ctfs_chunks_flush(ctr_ctfs_chunks_t *c);
void ctr_ctfs_chunks_free(ctr_ctfs_chunks_t *c);

typedef struct ctr_ctfs_table_s {
  ctr_ctfs_box_t *box;
  int dat, off;
  uint64_t count;
} ctr_ctfs_table_t;

int ctr_ctfs_table_init(ctr_ctfs_table_t *t, ctr_ctfs_box_t *box,
                        const char *name);
/* Appends record number t->count (not yet published). */
int ctr_ctfs_table_add(ctr_ctfs_table_t *t, const void *rec, size_t n);
int ctr_ctfs_table_publish(ctr_ctfs_table_t *t);

/* LEB128 varints as the Nim varint.nim writes them; signed ones zigzag.
 * Inline: every value of every step has two. */
static inline void ctr_ctfs_varint(ctr_buf_t *b, uint64_t v) {
  ctr_buf_reserve(b, 10);
  while (v >= 0x80) {
    b->data[b->len++] = (char)(v | 0x80);
    v >>= 7;
  }
  b->data[b->len++] = (char)v;
}
static inline void ctr_ctfs_svarint(ctr_buf_t *b, int64_t v) {
  ctr_ctfs_varint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

#endif
