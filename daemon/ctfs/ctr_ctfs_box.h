/* ctr_ctfs_box.h: the CTFS container (trace.ct), append-only, written
 * through a plain file descriptor so a follower can read it while it grows.
 *
 * Layout (CodeTracer codetracer_ctfs/container.nim, block_mapping.nim):
 * block 0 holds the 16-byte header and the 24-byte file entries (u64 size,
 * u64 level-1 map block, u64 base40 name); every other block is 4096 bytes
 * of file data or of map pointers. A map block holds 511 pointers and, in
 * its last slot, the chain to the next level (up to five levels).
 *
 * Live ordering: ctr_ctfs_box_append() writes data blocks, then the map
 * pointers that reach them (a new map block is written whole before the
 * pointer to it), and never a size. ctr_ctfs_box_publish() then writes the
 * entry's size. Syscalls on one descriptor reach the page cache in program
 * order, so a reader that sees a size sees everything it covers; nothing is
 * fsynced (ordered for readers, not for a crash). Every block is written
 * whole, so the container is always a whole number of blocks. An aligned
 * 8-byte write (a size, a pointer) is taken to be seen whole. */
#ifndef CTR_CTFS_BOX_H
#define CTR_CTFS_BOX_H

#include <stddef.h>
#include <stdint.h>

#define CTR_CTFS_BLOCK 4096u
#define CTR_CTFS_ENTRIES 31u /* root entries, declared in the header */
#define CTR_CTFS_HEADER 16u
#define CTR_CTFS_ENTRY 24u
#define CTR_CTFS_USABLE (CTR_CTFS_BLOCK / 8 - 1) /* pointers per map block */
#define CTR_CTFS_LEVELS 5
#define CTR_CTFS_VERSION 4
/* Blocks a rewrite leaves unreferenced are reused this long after: a
 * follower must read the blocks it reaches within this time of reading the
 * pointers that reach them. Whole-file readers take milliseconds, but a
 * loaded machine can stall one for a second (a sanitized test did); the
 * cost is at most this long's worth of rewritten blocks kept unused. */
#define CTR_CTFS_GRACE_MS 10000u
#define CTR_CTFS_REWRITE_MAX 256 /* data blocks one rewrite may replace */
/* The file is kept at least this many blocks (at most twice as many)
 * longer than what it uses (zeros, until close). Readers take the file's
 * length, then read block 0, whose entries may by then reach blocks
 * written since: they are inside the length the reader took unless the
 * writer allocated more than this in between. */
#define CTR_CTFS_SLACK 256u

extern const unsigned char ctr_ctfs_magic[5];

typedef struct ctr_ctfs_box_s ctr_ctfs_box_t;

/* Creates path (it must not exist) and writes block 0. */
int ctr_ctfs_box_create(ctr_ctfs_box_t **out, const char *path);

/* Opens the container at path, left by a writer that is gone, to append
 * to its files: they keep their published sizes, and new blocks go past
 * every block in use (published or not) and past the blocks a rewrite
 * retired. */
int ctr_ctfs_box_open(ctr_ctfs_box_t **out, const char *path);

/* The index of file name, or CTR_ERANGE. */
int ctr_ctfs_box_find(const ctr_ctfs_box_t *b, const char *name);

/* Adds an empty file named name (base40: 0-9 a-z . / -, at most 12
 * characters); returns its index (>= 0) or a negative code. */
int ctr_ctfs_box_add(ctr_ctfs_box_t *b, const char *name);

/* Appends n bytes to file f; they stay invisible until published. */
int ctr_ctfs_box_append(ctr_ctfs_box_t *b, int f, const void *p, size_t n);

/* Replaces bytes [from, from + n) of file f, already appended, at once:
 * the blocks they touch and the map blocks above them are copied (copy on
 * write) and the entry's map pointer is switched in one 8-byte write, so a
 * reader sees the old bytes or the new, never a mix. The size is unchanged;
 * the old blocks are reused after CTR_CTFS_GRACE_MS. */
int ctr_ctfs_box_rewrite(ctr_ctfs_box_t *b, int f, uint64_t from, const void *p,
                         size_t n);

/* Makes everything appended to file f so far visible. */
int ctr_ctfs_box_publish(ctr_ctfs_box_t *b, int f);

/* Bytes appended to file f (published or not). */
uint64_t ctr_ctfs_box_size(const ctr_ctfs_box_t *b, int f);

/* Bytes of the blocks in use. */
uint64_t ctr_ctfs_box_used(const ctr_ctfs_box_t *b);

/* The first write error (-errno), after which add, append, rewrite and
 * publish write nothing and return 0: the file stays valid as of the last
 * publish. 0 while every write succeeded. */
int ctr_ctfs_box_failed(const ctr_ctfs_box_t *b);
/* Closes the descriptor and frees; the file stays as it is. */
int ctr_ctfs_box_close(ctr_ctfs_box_t *b);

/* The base40 code of name, or 0 when name cannot be encoded. */
uint64_t ctr_ctfs_base40(const char *name);

#endif
