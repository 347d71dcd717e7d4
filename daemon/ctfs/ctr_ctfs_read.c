/* ctr_ctfs_read.c: the CTFS reader, see ctr_ctfs_read.h. */
#include "ctr_ctfs_read.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "ctr_ctfs_box.h"
#include "ctr_error.h"

static uint64_t le(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

/* Block blk of the snapshot: from memory, or read (into the cache slot
 * the caller names, or a buffer of the image's own); NULL past the end. */
static const unsigned char *block(ctr_ctfs_image_t *img, uint64_t blk,
                                  unsigned char *buf) {
  if (img->data)
    return blk < img->len / CTR_CTFS_BLOCK ? img->data + blk * CTR_CTFS_BLOCK
                                           : NULL;
  ssize_t r =
      pread(img->fd, buf, CTR_CTFS_BLOCK, (off_t)(blk * CTR_CTFS_BLOCK));
  if (r != (ssize_t)CTR_CTFS_BLOCK)
    return NULL;
  return buf;
}

/* Checks block 0 of a snapshot. */
static int check_head(const unsigned char *head) {
  return memcmp(head, ctr_ctfs_magic, 5) || le(head + 8, 4) != CTR_CTFS_BLOCK
             ? CTR_EPROTO
             : 0;
}

int ctr_ctfs_image_load(ctr_ctfs_image_t *img, const char *path) {
  *img = (ctr_ctfs_image_t){.fd = open(path, O_RDONLY | O_CLOEXEC)};
  if (img->fd < 0)
    return -errno;
  int rc = ctr_ctfs_image_refresh(img);
  if (rc < 0) {
    ctr_ctfs_image_free(img);
    return rc;
  }
  return 0;
}

int ctr_ctfs_image_refresh(ctr_ctfs_image_t *img) {
  unsigned char head[CTR_CTFS_BLOCK];
  const unsigned char *h = block(img, 0, head);
  if (!h || check_head(h))
    return CTR_EPROTO;
  for (size_t i = 0; i < CTR_CTFS_READ_CACHE; i++)
    img->cached[i] = 0; /* map blocks may be reused after the grace time */
  if (img->loaded && memcmp(img->head, h, CTR_CTFS_BLOCK) == 0)
    return 0;
  memcpy(img->head, h, CTR_CTFS_BLOCK);
  img->loaded = true;
  return 1;
}

int ctr_ctfs_image_mem(ctr_ctfs_image_t *img, unsigned char *data, size_t len) {
  *img = (ctr_ctfs_image_t){.fd = -1, .data = data};
  img->len = len / CTR_CTFS_BLOCK * CTR_CTFS_BLOCK; /* whole blocks only */
  int rc = ctr_ctfs_image_refresh(img);
  if (rc < 0)
    ctr_ctfs_image_free(img);
  return rc < 0 ? rc : 0;
}

void ctr_ctfs_image_free(ctr_ctfs_image_t *img) {
  if (img->fd >= 0)
    close(img->fd);
  free(img->data);
  *img = (ctr_ctfs_image_t){.fd = -1};
}

/* The pointer in slot of map block blk (0 when blk cannot be read): map
 * blocks are cached for the snapshot, since consecutive lookups walk the
 * same ones. */
static uint64_t ptr(ctr_ctfs_image_t *img, uint64_t blk, uint64_t slot) {
  size_t c = (size_t)(blk % CTR_CTFS_READ_CACHE);
  const unsigned char *b = img->cache[c];
  if (blk == 0)
    return 0;
  if (img->cached[c] != blk) {
    img->cached[c] = 0;
    if ((b = block(img, blk, img->cache[c])) == NULL)
      return 0;
    if (b == img->cache[c])
      img->cached[c] = blk;
  }
  return le(b + slot * 8, 8);
}

static uint64_t power(uint64_t level) {
  uint64_t c = 1;
  while (level--)
    c *= CTR_CTFS_USABLE;
  return c;
}

/* The data block of index bi under map root, 0 when it does not resolve. */
static uint64_t data_block(ctr_ctfs_image_t *img, uint64_t root, uint64_t bi) {
  uint64_t blk = root, level = 1;
  while (blk && bi >= power(level)) {
    bi -= power(level);
    if (++level > CTR_CTFS_LEVELS)
      return 0;
    blk = ptr(img, blk, CTR_CTFS_USABLE);
  }
  for (; blk && level > 1; level--) {
    uint64_t span = power(level - 1);
    blk = ptr(img, blk, bi / span);
    bi %= span;
  }
  return blk ? ptr(img, blk, bi) : 0;
}

/* The entry of member name in the snapshot's block 0, or NULL. */
static const unsigned char *entry(const ctr_ctfs_image_t *img,
                                  const char *name) {
  uint64_t code = ctr_ctfs_base40(name);
  uint64_t entries = le(img->head + 12, 4);
  if (entries == 0) /* 0: as many as block 0 holds */
    entries = (CTR_CTFS_BLOCK - CTR_CTFS_HEADER) / CTR_CTFS_ENTRY;
  if (entries > (CTR_CTFS_BLOCK - CTR_CTFS_HEADER) / CTR_CTFS_ENTRY)
    return NULL;
  for (uint64_t i = 0; i < entries; i++) {
    const unsigned char *e = img->head + CTR_CTFS_HEADER + i * CTR_CTFS_ENTRY;
    if (le(e + 16, 8) == code)
      return e;
  }
  return NULL;
}

int ctr_ctfs_member_size(const ctr_ctfs_image_t *img, const char *name,
                         uint64_t *size) {
  const unsigned char *e = entry(img, name);
  if (!e)
    return CTR_ERANGE;
  *size = le(e, 8);
  return 0;
}

int ctr_ctfs_member_range(ctr_ctfs_image_t *img, const char *name,
                          uint64_t from, uint64_t n, ctr_buf_t *out) {
  const unsigned char *e = entry(img, name);
  unsigned char buf[CTR_CTFS_BLOCK];
  out->len = 0;
  if (!e)
    return CTR_ERANGE;
  uint64_t size = le(e, 8), root = le(e + 8, 8);
  if (from > size || n > size - from || n > (1ull << 40))
    return CTR_EPROTO;
  ctr_buf_reserve(out, (size_t)n);
  while (n > 0) {
    uint64_t blk = data_block(img, root, from / CTR_CTFS_BLOCK);
    uint64_t in = from % CTR_CTFS_BLOCK;
    size_t k = (size_t)(CTR_CTFS_BLOCK - in < n ? CTR_CTFS_BLOCK - in : n);
    const unsigned char *b = blk ? block(img, blk, buf) : NULL;
    if (!b)
      return CTR_EPROTO;
    ctr_buf_add(out, b + in, k);
    from += k, n -= k;
  }
  return 0;
}

int ctr_ctfs_member(ctr_ctfs_image_t *img, const char *name, ctr_buf_t *out) {
  uint64_t size;
  int rc = ctr_ctfs_member_size(img, name, &size);
  out->len = 0;
  return rc < 0 ? rc : ctr_ctfs_member_range(img, name, 0, size, out);
}

bool ctr_ctfs_read_varint(const unsigned char *p, size_t n, size_t *pos,
                          uint64_t *v) {
  *v = 0;
  for (int shift = 0; *pos < n && shift < 64; shift += 7) {
    unsigned char c = p[(*pos)++];
    *v |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80))
      return true;
  }
  return false;
}

size_t ctr_ctfs_step_len(const unsigned char *p, size_t n) {
  size_t pos = 1;
  uint64_t v, len;
  if (n == 0 || p[0] > 7 || !ctr_ctfs_read_varint(p, n, &pos, &v))
    return 0;
  if (p[0] != 2) /* every tag but Raise has one varint */
    return pos;
  if (!ctr_ctfs_read_varint(p, n, &pos, &len) || len > n - pos)
    return 0;
  return pos + len;
}

/* Walks the records of one decompressed chunk; returns how many or a
 * negative code. */
static int64_t walk(const unsigned char *p, size_t n, bool prefixed,
                    uint64_t first, ctr_ctfs_record_cb cb, void *ctx,
                    bool *stop) {
  int64_t count = 0;
  for (size_t pos = 0; pos < n; count++) {
    size_t k;
    uint64_t len;
    if (prefixed) {
      if (!ctr_ctfs_read_varint(p, n, &pos, &len) || len > n - pos)
        return CTR_EPROTO;
      k = (size_t)len;
    } else if ((k = ctr_ctfs_step_len(p + pos, n - pos)) == 0) {
      return CTR_EPROTO;
    }
    int rc = cb ? cb(ctx, first + (uint64_t)count, p + pos, k) : 0;
    if (rc < 0)
      return rc;
    pos += k;
    if (rc > 0) { /* the callback has what it wanted */
      *stop = true;
      return count + 1;
    }
  }
  return count;
}

int ctr_ctfs_stream(ctr_ctfs_image_t *img, const char *name, bool prefixed,
                    ctr_ctfs_record_cb cb, void *ctx, uint64_t *count) {
  return ctr_ctfs_stream_from(img, name, prefixed, 0, cb, ctx, count);
}

/* Calls the callback only from record from on. */
typedef struct from_s {
  uint64_t from;
  ctr_ctfs_record_cb cb;
  void *ctx;
} from_t;

static int from_cb(void *ctx, uint64_t index, const unsigned char *rec,
                   size_t n) {
  from_t *f = ctx;
  return index < f->from || !f->cb ? 0 : f->cb(f->ctx, index, rec, n);
}

int ctr_ctfs_stream_from(ctr_ctfs_image_t *img, const char *name, bool prefixed,
                         uint64_t from, ctr_ctfs_record_cb cb, void *ctx,
                         uint64_t *count) {
  from_t f = {from, cb, ctx};
  char nd[16], ni[16];
  ctr_buf_t dat = {0}, idx = {0}, raw = {0};
  uint64_t dat_size = 0, idx_size = 0, chunk_size = 0, chunks = 0, first = 0;
  snprintf(nd, sizeof(nd), "%s.dat", name);
  snprintf(ni, sizeof(ni), "%s.idx", name);
  *count = 0;
  int rc = ctr_ctfs_member_size(img, nd, &dat_size);
  if (rc == 0)
    rc = ctr_ctfs_member_size(img, ni, &idx_size);
  if (rc == 0 && (idx_size < 4 || (idx_size - 4) % 8))
    rc = CTR_EPROTO;
  if (rc == 0 && (rc = ctr_ctfs_member_range(img, ni, 0, 4, &idx)) == 0 &&
      (chunk_size = le((unsigned char *)idx.data, 4)) == 0)
    rc = CTR_EPROTO;
  /* Chunks wholly before from were read at an earlier poll: only the
   * offsets from the first chunk left on are read, and the data from it. */
  if (rc == 0 && (chunks = (idx_size - 4) / 8) > 0) {
    first = from / chunk_size < chunks - 1 ? from / chunk_size : chunks - 1;
    rc = ctr_ctfs_member_range(img, ni, 4 + 8 * first, 8 * (chunks - first),
                               &idx);
  }
  *count = first * chunk_size;
  bool stop = false;
  for (uint64_t i = first; rc == 0 && !stop && i < chunks; i++) {
    const unsigned char *o = (unsigned char *)idx.data + 8 * (i - first);
    uint64_t a = le(o, 8), b = i + 1 < chunks ? le(o + 8, 8) : dat_size;
    if (a >= b || b > dat_size ||
        (rc = ctr_ctfs_member_range(img, nd, a, b - a, &dat)) < 0) {
      rc = rc < 0 ? rc : CTR_EPROTO;
      break;
    }
    /* The chunk is its first frame, with its content size. What follows
     * is padding (skippable frames) or, in the last chunk's range while a
     * writer adds a chunk, the new chunk's frame: X.dat is published
     * before the X.idx entry that bounds the last chunk. */
    size_t fsize = ZSTD_findFrameCompressedSize(dat.data, b - a);
    unsigned long long size = ZSTD_isError(fsize)
                                  ? ZSTD_CONTENTSIZE_ERROR
                                  : ZSTD_getFrameContentSize(dat.data, fsize);
    if (size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR ||
        size > (64u << 20)) {
      rc = CTR_EPROTO;
      break;
    }
    raw.len = 0;
    ctr_buf_reserve(&raw, size + 1);
    size_t got = ZSTD_decompress(raw.data, size, dat.data, fsize);
    if (ZSTD_isError(got) || got != size) {
      rc = CTR_EPROTO;
      break;
    }
    int64_t k = walk((unsigned char *)raw.data, got, prefixed, *count, from_cb,
                     &f, &stop);
    if (k < 0)
      rc = (int)k;
    else if (!stop && i + 1 < chunks && (uint64_t)k != chunk_size)
      rc = CTR_EPROTO; /* readers locate record N at chunk N / chunk_size */
    else
      *count += (uint64_t)k;
  }
  ctr_buf_free(&dat);
  ctr_buf_free(&idx);
  ctr_buf_free(&raw);
  return rc;
}

/* One record into out (the callback of ctr_ctfs_table). */
typedef struct one_s {
  uint64_t id;
  ctr_buf_t *out;
  bool found;
} one_t;

static int one_cb(void *ctx, uint64_t index, const unsigned char *rec,
                  size_t n) {
  one_t *o = ctx;
  if (index != o->id)
    return 0;
  o->out->len = 0;
  ctr_buf_add(o->out, rec, n);
  o->found = true;
  return 1; /* stop */
}

/* Calls cb for the records of table name from record from to record to
 * (excluded), reading only their offsets and bytes. */
static int table_range(ctr_ctfs_image_t *img, const char *name, uint64_t from,
                       uint64_t to, ctr_ctfs_record_cb cb, void *ctx,
                       uint64_t *count) {
  char nd[16], no[16];
  ctr_buf_t dat = {0}, off = {0};
  uint64_t dat_size = 0, off_size = 0;
  snprintf(nd, sizeof(nd), "%s.dat", name);
  snprintf(no, sizeof(no), "%s.off", name);
  *count = 0;
  int rc = ctr_ctfs_member_size(img, nd, &dat_size);
  if (rc == 0)
    rc = ctr_ctfs_member_size(img, no, &off_size);
  if (rc == 0 && (off_size < 8 || off_size % 8))
    rc = CTR_EPROTO;
  uint64_t records = rc == 0 ? off_size / 8 - 1 : 0;
  *count = records;
  to = to < records ? to : records;
  if (rc < 0 || !cb || from >= to)
    return rc;
  uint64_t base = 0, end = 0;
  if ((rc = ctr_ctfs_member_range(img, no, 8 * from, 8 * (to - from + 1),
                                  &off)) == 0) {
    base = le((unsigned char *)off.data, 8);
    end = le((unsigned char *)off.data + 8 * (to - from), 8);
    if (base > end || end > dat_size)
      rc = CTR_EPROTO;
  }
  if (rc == 0)
    rc = ctr_ctfs_member_range(img, nd, base, end - base, &dat);
  for (uint64_t id = from; rc == 0 && id < to; id++) {
    uint64_t a = le((unsigned char *)off.data + 8 * (id - from), 8);
    uint64_t b = le((unsigned char *)off.data + 8 * (id - from + 1), 8);
    if (a < base || a > b || b > end) {
      rc = CTR_EPROTO;
      break;
    }
    rc = cb(ctx, id, (unsigned char *)dat.data + (a - base), b - a);
    if (rc > 0) { /* the callback has what it wanted */
      rc = 0;
      break;
    }
  }
  ctr_buf_free(&dat);
  ctr_buf_free(&off);
  return rc;
}

int ctr_ctfs_table(ctr_ctfs_image_t *img, const char *name, uint64_t id,
                   ctr_buf_t *out, uint64_t *count) {
  one_t o = {id, out, false};
  uint64_t records;
  int rc =
      table_range(img, name, id, id + 1, out ? one_cb : NULL, &o, &records);
  if (count)
    *count = records;
  if (rc == 0 && out && !o.found)
    rc = CTR_ERANGE;
  return rc;
}

int ctr_ctfs_table_from(ctr_ctfs_image_t *img, const char *name, uint64_t from,
                        ctr_ctfs_record_cb cb, void *ctx, uint64_t *count) {
  return table_range(img, name, from, UINT64_MAX, cb, ctx, count);
}

/* Skips one varint-prefixed string at *pos. */
static bool skip_str(const unsigned char *p, size_t n, size_t *pos) {
  uint64_t len;
  if (!ctr_ctfs_read_varint(p, n, pos, &len) || len > n - *pos)
    return false;
  *pos += len;
  return true;
}

/* Reads meta.dat into m and, when paths is not NULL, its paths. */
static int read_meta(ctr_ctfs_image_t *img, ctr_ctfs_meta_read_t *m,
                     ctr_buf_t *paths) {
  ctr_buf_t b = {0};
  int rc = ctr_ctfs_member(img, "meta.dat", &b);
  const unsigned char *p = (unsigned char *)b.data;
  size_t pos = 8, n = b.len;
  uint64_t len, nargs;
  if (rc == 0 && (n < 8 || memcmp(p, "CTMD", 4)))
    rc = CTR_EPROTO;
  if (rc == 0) {
    m->version = (uint16_t)le(p + 4, 2);
    m->flags = (uint16_t)le(p + 6, 2);
    if (!ctr_ctfs_read_varint(p, n, &pos, &len) || len != 36 || n - pos < 36)
      rc = CTR_EPROTO;
  }
  if (rc == 0) {
    memcpy(m->recording_id, p + pos, 36);
    m->recording_id[36] = '\0';
    pos += 36;
    bool ok = skip_str(p, n, &pos) && /* program */
              ctr_ctfs_read_varint(p, n, &pos, &nargs) && nargs <= n;
    for (uint64_t i = 0; ok && i < nargs; i++)
      ok = skip_str(p, n, &pos);
    /* workdir, recorder id, then the paths */
    ok = ok && skip_str(p, n, &pos) && skip_str(p, n, &pos) &&
         ctr_ctfs_read_varint(p, n, &pos, &m->npaths) && m->npaths <= n;
    for (uint64_t i = 0; ok && paths && i < m->npaths; i++) {
      size_t at = pos;
      ok = skip_str(p, n, &pos);
      ctr_ctfs_read_varint(p, n, &at, &len);
      if (ok) {
        ctr_buf_add(paths, p + at, (size_t)len);
        ctr_buf_add(paths, "", 1);
      }
    }
    if (!ok)
      rc = CTR_EPROTO;
  }
  ctr_buf_free(&b);
  return rc;
}

int ctr_ctfs_read_meta(ctr_ctfs_image_t *img, ctr_ctfs_meta_read_t *m) {
  return read_meta(img, m, NULL);
}

int ctr_ctfs_read_meta_paths(ctr_ctfs_image_t *img, ctr_buf_t *out) {
  ctr_ctfs_meta_read_t m;
  out->len = 0;
  return read_meta(img, &m, out);
}
