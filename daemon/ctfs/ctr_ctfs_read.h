/* ctr_ctfs_read.h: the project's CTFS reader, following the rules
 * CodeTracer's Nim reader follows (codetracer_ctfs/container.nim,
 * exec_stream.nim, record_chunk.nim, meta_dat.nim): container, members,
 * chunks, tables and meta.dat, for the tests and ctrecctl's trace reader.
 *
 * It reads a snapshot: block 0 (the file entries: sizes and map roots) as
 * read at load or at the latest refresh, and then, with pread, only the
 * blocks that what is asked for needs (map blocks, a member's bytes, the
 * chunks from a record on). A writer never changes in place what a block 0
 * it published reaches, and reuses unlinked blocks only after
 * CTR_CTFS_GRACE_MS (docs/ctfs.md, "Live ordering"), so a snapshot reads
 * whole if its blocks are read within that time of the block 0 they came
 * from. Every length and pointer is checked: the bytes are untrusted. */
#ifndef CTR_CTFS_READ_H
#define CTR_CTFS_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctr_buf.h"
#include "ctr_ctfs_box.h"

#define CTR_CTFS_READ_CACHE 8 /* map blocks kept per snapshot */

typedef struct ctr_ctfs_image_s {
  int fd;              /* -1 for a file in memory */
  unsigned char *data; /* ctr_ctfs_image_mem's bytes */
  size_t len;          /* their whole blocks */
  bool loaded;
  unsigned char head[CTR_CTFS_BLOCK];   /* the snapshot's block 0 */
  uint64_t cached[CTR_CTFS_READ_CACHE]; /* block numbers, 0: empty */
  unsigned char cache[CTR_CTFS_READ_CACHE][CTR_CTFS_BLOCK];
} ctr_ctfs_image_t;

/* Opens the container at path and reads its block 0. */
int ctr_ctfs_image_load(ctr_ctfs_image_t *img, const char *path);
/* Takes a new snapshot: reads block 0 again. Returns 1 when it changed
 * (a file's size or map root moved), 0 when not, or a negative code. */
int ctr_ctfs_image_refresh(ctr_ctfs_image_t *img);
/* A container read whole into data (malloc'd; the image frees it), as
 * CodeTracer's reader loads one. */
int ctr_ctfs_image_mem(ctr_ctfs_image_t *img, unsigned char *data, size_t len);
void ctr_ctfs_image_free(ctr_ctfs_image_t *img);

/* The content of member name (published size); CTR_ERANGE when absent. */
int ctr_ctfs_member(ctr_ctfs_image_t *img, const char *name, ctr_buf_t *out);
/* Its published size. */
int ctr_ctfs_member_size(const ctr_ctfs_image_t *img, const char *name,
                         uint64_t *size);
/* Its bytes [from, from + n), which must be within that size. */
int ctr_ctfs_member_range(ctr_ctfs_image_t *img, const char *name,
                          uint64_t from, uint64_t n, ctr_buf_t *out);

/* Calls cb for every record of stream name (name.dat + name.idx), reading
 * and decoding one chunk at a time: the records are varint-length-prefixed
 * (values, calls, events) or step records (steps). Checks that every chunk
 * but the last holds chunk_size records. Sets *count to the records read.
 * A callback returning > 0 stops the walk after its record (*count then
 * counts up to it). */
typedef int (*ctr_ctfs_record_cb)(void *ctx, uint64_t index,
                                  const unsigned char *rec, size_t n);
int ctr_ctfs_stream(ctr_ctfs_image_t *img, const char *name, bool prefixed,
                    ctr_ctfs_record_cb cb, void *ctx, uint64_t *count);
/* The same from record from on: whole chunks before it are not read
 * (a follower's next poll), and cb sees only records from on; *count is
 * still every record of the stream. */
int ctr_ctfs_stream_from(ctr_ctfs_image_t *img, const char *name, bool prefixed,
                         uint64_t from, ctr_ctfs_record_cb cb, void *ctx,
                         uint64_t *count);

/* Record id of table name (name.dat + name.off) into out; *count (if not
 * NULL) gets the table's records. */
int ctr_ctfs_table(ctr_ctfs_image_t *img, const char *name, uint64_t id,
                   ctr_buf_t *out, uint64_t *count);

/* Calls cb for every record of table name from record from on (reading
 * the table once); *count gets the table's records. */
int ctr_ctfs_table_from(ctr_ctfs_image_t *img, const char *name, uint64_t from,
                        ctr_ctfs_record_cb cb, void *ctx, uint64_t *count);

/* The length of the step record at p (at most n bytes), or 0. */
size_t ctr_ctfs_step_len(const unsigned char *p, size_t n);

/* Reads an unsigned LEB128 varint at *pos; false past the end. */
bool ctr_ctfs_read_varint(const unsigned char *p, size_t n, size_t *pos,
                          uint64_t *v);

/* meta.dat v3's fixed part. */
typedef struct ctr_ctfs_meta_read_s {
  uint16_t version, flags;
  char recording_id[37];
  uint64_t npaths;
} ctr_ctfs_meta_read_t;

int ctr_ctfs_read_meta(ctr_ctfs_image_t *img, ctr_ctfs_meta_read_t *m);
/* meta.dat's paths, each followed by a NUL, into out (m->npaths of them). */
int ctr_ctfs_read_meta_paths(ctr_ctfs_image_t *img, ctr_buf_t *out);

#endif
