/* ctr_ctfs_read.h: the project's CTFS reader, following the rules
 * CodeTracer's Nim reader follows (codetracer_ctfs/container.nim,
 * exec_stream.nim, record_chunk.nim, meta_dat.nim): container, members,
 * chunks, tables and meta.dat, for the tests and ctrecctl's trace reader.
 *
 * It reads a snapshot: the file as it was when loaded, cut to whole blocks,
 * so it can be used on a trace that is still being written. Every length
 * and pointer is checked: the bytes are untrusted. */
#ifndef CTR_CTFS_READ_H
#define CTR_CTFS_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctr_buf.h"

typedef struct ctr_ctfs_image_s {
  unsigned char *data;
  size_t len; /* whole blocks */
} ctr_ctfs_image_t;

int ctr_ctfs_image_load(ctr_ctfs_image_t *img, const char *path);
void ctr_ctfs_image_free(ctr_ctfs_image_t *img);

/* The content of member name (published size); CTR_ERANGE when absent. */
int ctr_ctfs_member(const ctr_ctfs_image_t *img, const char *name,
                    ctr_buf_t *out);

/* Calls cb for every record of stream name (name.dat + name.idx): the
 * records are varint-length-prefixed (values, calls, events) or step
 * records (steps). Checks that every chunk but the last holds chunk_size
 * records. Sets *count to the records read. */
typedef int (*ctr_ctfs_record_cb)(void *ctx, uint64_t index,
                                  const unsigned char *rec, size_t n);
int ctr_ctfs_stream(const ctr_ctfs_image_t *img, const char *name,
                    bool prefixed, ctr_ctfs_record_cb cb, void *ctx,
                    uint64_t *count);
/* The same from record from on: whole chunks before it are not decoded
 * (a follower's next poll), and cb sees only records from on; *count is
 * still every record of the stream. */
int ctr_ctfs_stream_from(const ctr_ctfs_image_t *img, const char *name,
                         bool prefixed, uint64_t from, ctr_ctfs_record_cb cb,
                         void *ctx, uint64_t *count);

/* Record id of table name (name.dat + name.off) into out; *count (if not
 * NULL) gets the table's records. */
int ctr_ctfs_table(const ctr_ctfs_image_t *img, const char *name, uint64_t id,
                   ctr_buf_t *out, uint64_t *count);

/* Calls cb for every record of table name from record from on (reading
 * the table once); *count gets the table's records. */
int ctr_ctfs_table_from(const ctr_ctfs_image_t *img, const char *name,
                        uint64_t from, ctr_ctfs_record_cb cb, void *ctx,
                        uint64_t *count);

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

int ctr_ctfs_read_meta(const ctr_ctfs_image_t *img, ctr_ctfs_meta_read_t *m);
/* meta.dat's paths, each followed by a NUL, into out (m->npaths of them). */
int ctr_ctfs_read_meta_paths(const ctr_ctfs_image_t *img, ctr_buf_t *out);

#endif
