/* ctr_ctfs_box.c: the CTFS container, see ctr_ctfs_box.h. */
#include "ctr_ctfs_box.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctr_buf.h"
#include "ctr_error.h"

const unsigned char ctr_ctfs_magic[5] = {0xC0, 0xDE, 0x72, 0xAC, 0xE2};

typedef struct ctr_ctfs_file_s {
  uint64_t size;      /* bytes appended */
  uint64_t published; /* the size the entry says */
  uint64_t map;       /* level-1 map block */
  uint64_t tail;      /* the data block holding the last bytes */
  uint64_t name;      /* base40 */
} ctr_ctfs_file_t;

/* A block a rewrite left unreferenced, and when (CLOCK_MONOTONIC, ms). */
typedef struct ctr_ctfs_retired_s {
  uint64_t blk;
  uint64_t at;
} ctr_ctfs_retired_t;

struct ctr_ctfs_box_s {
  int fd;
  uint64_t next_block; /* the next block to allocate */
  uint64_t end_block;  /* the file's length in blocks, zeros past next */
  ctr_ctfs_retired_t *retired; /* oldest first, from retired_head */
  size_t retired_head, nretired, retired_cap;
  ctr_ctfs_file_t files[CTR_CTFS_ENTRIES];
  unsigned nfiles;
  int failed; /* the first write error (-errno); nothing is written after */
};

static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

static int put(ctr_ctfs_box_t *b, uint64_t off, const void *p, size_t n) {
  const char *s = p;
  while (n) {
    ssize_t w = pwrite(b->fd, s, n, (off_t)off);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    s += w, n -= (size_t)w, off += (uint64_t)w;
  }
  return 0;
}

/* A write error (a full disk) stops all writing: the file stays the
 * container it was at its last publish, which every reader can open, and
 * the writer goes on as if it wrote, so that its caller need not know
 * until ctr_ctfs_box_failed(). Errors of the container's own rules
 * (CTR_E*) are returned as they are. */
static int sticky(ctr_ctfs_box_t *b, int rc) {
  if (rc < 0 && rc > -4096) {
    if (b->failed == 0)
      b->failed = rc;
    return 0;
  }
  return rc;
}

int ctr_ctfs_box_failed(const ctr_ctfs_box_t *b) { return b->failed; }

static uint64_t get_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

static int get_ptr(ctr_ctfs_box_t *b, uint64_t blk, uint64_t slot,
                   uint64_t *v) {
  unsigned char p[8];
  ssize_t r = pread(b->fd, p, 8, (off_t)(blk * CTR_CTFS_BLOCK + slot * 8));
  if (r != 8)
    return r < 0 ? -errno : CTR_EPROTO;
  *v = 0;
  for (int i = 7; i >= 0; i--)
    *v = (*v << 8) | p[i];
  return 0;
}

static int set_ptr(ctr_ctfs_box_t *b, uint64_t blk, uint64_t slot, uint64_t v) {
  unsigned char p[8];
  put_u64(p, v);
  return put(b, blk * CTR_CTFS_BLOCK + slot * 8, p, 8);
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void retire(ctr_ctfs_box_t *b, uint64_t blk) {
  if (b->nretired == b->retired_cap) {
    if (b->retired_head) { /* reuse the room of the blocks taken back */
      b->nretired -= b->retired_head;
      memmove(b->retired, b->retired + b->retired_head,
              b->nretired * sizeof(*b->retired));
      b->retired_head = 0;
    } else {
      b->retired_cap = b->retired_cap ? 2 * b->retired_cap : 64;
      b->retired =
          ctr_xrealloc(b->retired, b->retired_cap * sizeof(*b->retired));
    }
  }
  b->retired[b->nretired++] = (ctr_ctfs_retired_t){blk, now_ms()};
}

/* Writes a new whole block: n bytes of p, the rest zero. The block is one
 * a rewrite retired at least CTR_CTFS_GRACE_MS ago, else a new one at the
 * end of the container. */
static int new_block(ctr_ctfs_box_t *b, const void *p, size_t n,
                     uint64_t *blk) {
  unsigned char block[CTR_CTFS_BLOCK];
  memset(block + n, 0, sizeof(block) - n);
  if (n)
    memcpy(block, p, n);
  bool reuse = b->retired_head < b->nretired &&
               now_ms() - b->retired[b->retired_head].at >= CTR_CTFS_GRACE_MS;
  uint64_t at = reuse ? b->retired[b->retired_head].blk : b->next_block;
  int rc = put(b, at * CTR_CTFS_BLOCK, block, sizeof(block));
  /* The slack after the block, not before it: a new file grown by zeros
   * first showed readers a blank header (see CTR_CTFS_SLACK). It is never
   * less than CTR_CTFS_SLACK: grown only once used up, it left readers as
   * little as one block. Where the file may not grow by as much (a file
   * size limit), the blocks that fit are still written: a recovery
   * appending the calls owed needs them. */
  if (rc == 0 && at + CTR_CTFS_SLACK >= b->end_block &&
      ftruncate(b->fd, (off_t)((at + 2 * CTR_CTFS_SLACK) * CTR_CTFS_BLOCK)) ==
          0)
    b->end_block = at + 2 * CTR_CTFS_SLACK;
  if (rc == 0) {
    *blk = at;
    if (reuse)
      b->retired_head++;
    else
      b->next_block++;
  }
  return rc;
}

/* The pointer in slot of map block blk, made when missing: a new map block
 * is written zeroed before it is linked, and no published size reaches
 * through it until the data pointer below it is written. */
static int child(ctr_ctfs_box_t *b, uint64_t blk, uint64_t slot,
                 uint64_t *out) {
  int rc = get_ptr(b, blk, slot, out);
  if (rc == 0 && *out == 0 && (rc = new_block(b, NULL, 0, out)) == 0)
    rc = set_ptr(b, blk, slot, *out);
  return rc;
}

static uint64_t power(uint64_t level) {
  uint64_t c = 1;
  while (level--)
    c *= CTR_CTFS_USABLE;
  return c;
}

/* Points data block index bi of the file mapped at root to block data. */
static int link_block(ctr_ctfs_box_t *b, uint64_t root, uint64_t bi,
                      uint64_t data) {
  uint64_t blk = root, level = 1;
  int rc;
  while (bi >= power(level)) { /* the chain: one map block per level */
    bi -= power(level);
    if (++level > CTR_CTFS_LEVELS)
      return CTR_ELIMIT;
    if ((rc = child(b, blk, CTR_CTFS_USABLE, &blk)) < 0)
      return rc;
  }
  for (; level > 1; level--) {
    uint64_t span = power(level - 1);
    if ((rc = child(b, blk, bi / span, &blk)) < 0)
      return rc;
    bi %= span;
  }
  return set_ptr(b, blk, bi, data);
}

/* The data block of index bi in the tree at root (0 when unmapped). */
static int lookup(ctr_ctfs_box_t *b, uint64_t root, uint64_t bi,
                  uint64_t *out) {
  uint64_t blk = root, level = 1;
  int rc = 0;
  while (rc == 0 && blk && bi >= power(level)) {
    bi -= power(level);
    if (++level > CTR_CTFS_LEVELS)
      return CTR_ELIMIT;
    rc = get_ptr(b, blk, CTR_CTFS_USABLE, &blk);
  }
  for (; rc == 0 && blk && level > 1; level--) {
    uint64_t span = power(level - 1);
    rc = get_ptr(b, blk, bi / span, &blk);
    bi %= span;
  }
  return rc < 0 ? rc : blk ? get_ptr(b, blk, bi, out) : (*out = 0, 0);
}

/* The map blocks one rewrite has copied (its new tree, unreachable until
 * the switch) and the blocks they replace. */
typedef struct ctr_ctfs_cow_s {
  uint64_t blk[64], old[64];
  int n;
} ctr_ctfs_cow_t;

/* Writes a copy of block blk at the end of the container. */
static int copy_block(ctr_ctfs_box_t *b, ctr_ctfs_cow_t *c, uint64_t blk,
                      uint64_t *out) {
  unsigned char block[CTR_CTFS_BLOCK];
  if (c->n == (int)(sizeof(c->blk) / sizeof(c->blk[0])))
    return CTR_ELIMIT;
  if (pread(b->fd, block, sizeof(block), (off_t)(blk * CTR_CTFS_BLOCK)) !=
      (ssize_t)sizeof(block))
    return CTR_EPROTO;
  int rc = new_block(b, block, sizeof(block), out);
  if (rc == 0)
    c->old[c->n] = blk, c->blk[c->n++] = *out;
  return rc;
}

/* child() for the new tree: a map block of the old tree is copied first. */
static int cow_child(ctr_ctfs_box_t *b, ctr_ctfs_cow_t *c, uint64_t blk,
                     uint64_t slot, uint64_t *out) {
  uint64_t old = 0;
  int rc = get_ptr(b, blk, slot, &old);
  if (rc < 0)
    return rc;
  for (int i = 0; i < c->n; i++)
    if (c->blk[i] == old)
      return *out = old, 0;
  if (old == 0)
    rc = new_block(b, NULL, 0, out);
  else
    rc = copy_block(b, c, old, out);
  return rc < 0 ? rc : set_ptr(b, blk, slot, *out);
}

/* link_block() in the new tree at root. */
static int cow_link(ctr_ctfs_box_t *b, ctr_ctfs_cow_t *c, uint64_t root,
                    uint64_t bi, uint64_t data) {
  uint64_t blk = root, level = 1;
  int rc;
  while (bi >= power(level)) {
    bi -= power(level);
    if (++level > CTR_CTFS_LEVELS)
      return CTR_ELIMIT;
    if ((rc = cow_child(b, c, blk, CTR_CTFS_USABLE, &blk)) < 0)
      return rc;
  }
  for (; level > 1; level--) {
    uint64_t span = power(level - 1);
    if ((rc = cow_child(b, c, blk, bi / span, &blk)) < 0)
      return rc;
    bi %= span;
  }
  return set_ptr(b, blk, bi, data);
}

uint64_t ctr_ctfs_base40(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > 12)
    return 0;
  uint64_t v = 0, m = 1;
  for (size_t i = 0; i < n; i++, m *= 40) {
    char c = name[i];
    uint64_t d = c >= '0' && c <= '9'   ? (uint64_t)(c - '0' + 1)
                 : c >= 'a' && c <= 'z' ? (uint64_t)(c - 'a' + 11)
                 : c == '.'             ? 37
                 : c == '/'             ? 38
                 : c == '-'             ? 39
                                        : 0;
    if (d == 0)
      return 0;
    v += d * m;
  }
  return v;
}

int ctr_ctfs_box_create(ctr_ctfs_box_t **out, const char *path) {
  ctr_ctfs_box_t *b = ctr_xcalloc(1, sizeof(*b));
  b->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (b->fd < 0) {
    int rc = -errno;
    free(b);
    return rc;
  }
  unsigned char head[CTR_CTFS_HEADER] = {0};
  memcpy(head, ctr_ctfs_magic, 5);
  head[5] = CTR_CTFS_VERSION; /* then encryption 0, shards 0 */
  put_u32(head + 8, CTR_CTFS_BLOCK);
  put_u32(head + 12, CTR_CTFS_ENTRIES);
  uint64_t blk;
  int rc = new_block(b, head, sizeof(head), &blk);
  if (rc < 0) {
    ctr_ctfs_box_close(b);
    return rc;
  }
  *out = b;
  return 0;
}

/* The highest block reachable from map block blk of a tree level levels
 * deep (1: its pointers are data blocks), into *max. */
static int highest(ctr_ctfs_box_t *b, uint64_t blk, int level, uint64_t *max) {
  unsigned char m[CTR_CTFS_BLOCK];
  if (blk >= b->end_block ||
      pread(b->fd, m, sizeof(m), (off_t)(blk * CTR_CTFS_BLOCK)) !=
          (ssize_t)sizeof(m))
    return CTR_EPROTO;
  *max = blk > *max ? blk : *max;
  for (uint64_t slot = 0; slot < CTR_CTFS_USABLE; slot++) {
    uint64_t p = get_u64(m + slot * 8);
    if (p == 0)
      continue;
    if (p >= b->end_block)
      return CTR_EPROTO;
    int rc = level == 1 ? (*max = p > *max ? p : *max, 0)
                        : highest(b, p, level - 1, max);
    if (rc < 0)
      return rc;
  }
  return 0;
}

int ctr_ctfs_box_open(ctr_ctfs_box_t **out, const char *path) {
  ctr_ctfs_box_t *b = ctr_xcalloc(1, sizeof(*b));
  unsigned char head[CTR_CTFS_BLOCK], blk[CTR_CTFS_BLOCK];
  struct stat st;
  int rc = 0;
  b->fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (b->fd < 0 || fstat(b->fd, &st) < 0) {
    rc = -errno;
    goto fail;
  }
  b->end_block = (uint64_t)st.st_size / CTR_CTFS_BLOCK;
  if (pread(b->fd, head, sizeof(head), 0) != (ssize_t)sizeof(head) ||
      memcmp(head, ctr_ctfs_magic, 5) || head[5] != CTR_CTFS_VERSION ||
      (get_u64(head + 8) & 0xffffffffu) != CTR_CTFS_BLOCK) {
    rc = CTR_EPROTO;
    goto fail;
  }
  /* Every block a map reaches, published or not, stays where it is. */
  uint64_t max = 0;
  for (; rc == 0 && b->nfiles < CTR_CTFS_ENTRIES; b->nfiles++) {
    const unsigned char *e =
        head + CTR_CTFS_HEADER + (uint64_t)b->nfiles * CTR_CTFS_ENTRY;
    ctr_ctfs_file_t *f = &b->files[b->nfiles];
    if ((f->name = get_u64(e + 16)) == 0)
      break;
    f->size = f->published = get_u64(e);
    f->map = get_u64(e + 8);
    uint64_t chain = f->map;
    for (int level = 1; rc == 0 && chain; level++) {
      if (level > CTR_CTFS_LEVELS ||
          (rc = highest(b, chain, level, &max)) < 0 ||
          (rc = get_ptr(b, chain, CTR_CTFS_USABLE, &chain)) < 0)
        rc = rc < 0 ? rc : CTR_ELIMIT;
    }
    if (rc == 0 && f->size % CTR_CTFS_BLOCK &&
        ((rc = lookup(b, f->map, f->size / CTR_CTFS_BLOCK, &f->tail)) < 0 ||
         f->tail == 0))
      rc = rc < 0 ? rc : CTR_EPROTO;
  }
  /* Blocks past the last one in use are zeros (the slack), but for blocks
   * a rewrite retired, which a follower may still be reading. */
  b->next_block = max + 1;
  for (uint64_t at = b->end_block; rc == 0 && at > b->next_block; at--) {
    if (pread(b->fd, blk, sizeof(blk), (off_t)((at - 1) * CTR_CTFS_BLOCK)) !=
        (ssize_t)sizeof(blk)) {
      rc = CTR_EPROTO;
    } else if (blk[0] || memcmp(blk, blk + 1, sizeof(blk) - 1)) {
      b->next_block = at;
      break;
    }
  }
  if (rc == 0) {
    *out = b;
    return 0;
  }
fail:
  if (b->fd >= 0)
    close(b->fd);
  free(b);
  return rc;
}

int ctr_ctfs_box_find(const ctr_ctfs_box_t *b, const char *name) {
  uint64_t code = ctr_ctfs_base40(name);
  for (unsigned i = 0; code && i < b->nfiles; i++)
    if (b->files[i].name == code)
      return (int)i;
  return CTR_ERANGE;
}

static int box_add(ctr_ctfs_box_t *b, const char *name) {
  uint64_t code = ctr_ctfs_base40(name);
  if (code == 0)
    return CTR_EPROTO;
  if (b->nfiles == CTR_CTFS_ENTRIES)
    return CTR_ELIMIT;
  ctr_ctfs_file_t *f = &b->files[b->nfiles];
  int rc = new_block(b, NULL, 0, &f->map);
  if (rc < 0)
    return rc;
  /* Size 0 first: the entry names an empty file until a publish. */
  unsigned char e[CTR_CTFS_ENTRY];
  put_u64(e, 0);
  put_u64(e + 8, f->map);
  put_u64(e + 16, code);
  f->name = code;
  rc = put(b, CTR_CTFS_HEADER + (uint64_t)b->nfiles * CTR_CTFS_ENTRY, e,
           sizeof(e));
  return rc < 0 ? rc : (int)b->nfiles++;
}

static int box_append(ctr_ctfs_box_t *b, int fi, const void *p, size_t n) {
  ctr_ctfs_file_t *f = &b->files[fi];
  const char *s = p;
  while (n) {
    uint64_t in = f->size % CTR_CTFS_BLOCK;
    size_t k = CTR_CTFS_BLOCK - in < n ? CTR_CTFS_BLOCK - in : n;
    int rc;
    if (in == 0) { /* data block first, then the pointer to it */
      if ((rc = new_block(b, s, k, &f->tail)) < 0 ||
          (rc = link_block(b, f->map, f->size / CTR_CTFS_BLOCK, f->tail)) < 0)
        return rc;
    } else if ((rc = put(b, f->tail * CTR_CTFS_BLOCK + in, s, k)) < 0) {
      return rc; /* the tail block, past the published size */
    }
    s += k, n -= k, f->size += k;
  }
  return 0;
}

static int box_rewrite(ctr_ctfs_box_t *b, int fi, uint64_t from,
                         const void *p, size_t n) {
  ctr_ctfs_file_t *f = &b->files[fi];
  if (n == 0)
    return 0;
  if (from + n > f->size)
    return CTR_ERANGE;
  ctr_ctfs_cow_t c = {.n = 0};
  uint64_t root, tail = f->tail, olds[CTR_CTFS_REWRITE_MAX];
  size_t nolds = 0;
  if (n > sizeof(olds) / sizeof(olds[0]) * CTR_CTFS_BLOCK - CTR_CTFS_BLOCK)
    return CTR_ELIMIT;
  int rc = copy_block(b, &c, f->map, &root);
  const char *s = p;
  for (uint64_t bi = from / CTR_CTFS_BLOCK; rc == 0 && n; bi++) {
    unsigned char block[CTR_CTFS_BLOCK];
    uint64_t old = 0, nb = 0, in = from % CTR_CTFS_BLOCK;
    size_t k = CTR_CTFS_BLOCK - in < n ? CTR_CTFS_BLOCK - in : n;
    if ((rc = lookup(b, f->map, bi, &old)) < 0)
      break;
    if (old == 0 ||
        pread(b->fd, block, sizeof(block), (off_t)(old * CTR_CTFS_BLOCK)) !=
            (ssize_t)sizeof(block)) {
      rc = CTR_EPROTO;
      break;
    }
    memcpy(block + in, s, k);
    if ((rc = new_block(b, block, sizeof(block), &nb)) < 0 ||
        (rc = cow_link(b, &c, root, bi, nb)) < 0)
      break;
    if (old == f->tail)
      tail = nb;
    olds[nolds++] = old;
    s += k, n -= k, from += k;
  }
  if (rc < 0)
    return rc;
  /* The switch, once everything the new tree reaches is written. */
  unsigned char m[8];
  put_u64(m, root);
  rc = put(b, CTR_CTFS_HEADER + (uint64_t)fi * CTR_CTFS_ENTRY + 8, m, 8);
  if (rc < 0)
    return rc;
  f->map = root, f->tail = tail;
  for (size_t i = 0; i < nolds; i++)
    retire(b, olds[i]);
  for (int i = 0; i < c.n; i++)
    retire(b, c.old[i]);
  return 0;
}

static int box_publish(ctr_ctfs_box_t *b, int fi) {
  ctr_ctfs_file_t *f = &b->files[fi];
  if (f->published == f->size)
    return 0;
  unsigned char p[8];
  put_u64(p, f->size);
  int rc = put(b, CTR_CTFS_HEADER + (uint64_t)fi * CTR_CTFS_ENTRY, p, 8);
  if (rc == 0)
    f->published = f->size;
  return rc;
}

uint64_t ctr_ctfs_box_size(const ctr_ctfs_box_t *b, int fi) {
  return b->files[fi].size;
}

uint64_t ctr_ctfs_box_used(const ctr_ctfs_box_t *b) {
  return b->next_block * CTR_CTFS_BLOCK;
}

int ctr_ctfs_box_close(ctr_ctfs_box_t *b) {
  int rc = 0;
  if (!b->failed && b->next_block && b->next_block < b->end_block &&
      ftruncate(b->fd, (off_t)(b->next_block * CTR_CTFS_BLOCK)) < 0)
    rc = -errno; /* the slack goes, the file ends at its last block */
  if (close(b->fd) < 0 && rc == 0)
    rc = -errno;
  free(b->retired);
  free(b);
  return rc;
}

int ctr_ctfs_box_add(ctr_ctfs_box_t *b, const char *name) {
  return b->failed ? 0 : sticky(b, box_add(b, name));
}

int ctr_ctfs_box_append(ctr_ctfs_box_t *b, int fi, const void *p, size_t n) {
  return b->failed ? 0 : sticky(b, box_append(b, fi, p, n));
}

int ctr_ctfs_box_rewrite(ctr_ctfs_box_t *b, int fi, uint64_t from,
                         const void *p, size_t n) {
  return b->failed ? 0 : sticky(b, box_rewrite(b, fi, from, p, n));
}

int ctr_ctfs_box_publish(ctr_ctfs_box_t *b, int fi) {
  return b->failed ? 0 : sticky(b, box_publish(b, fi));
}
