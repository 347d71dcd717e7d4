/* ctr_ctfs_read.c: the CTFS reader, see ctr_ctfs_read.h. */
#include "ctr_ctfs_read.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

int ctr_ctfs_image_load(ctr_ctfs_image_t *img, const char *path) {
  *img = (ctr_ctfs_image_t){0};
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    int rc = -errno;
    if (fd >= 0)
      close(fd);
    return rc;
  }
  /* Read to the end, past the length fstat gave: the file may have grown
   * since, and block 0, read first, may already reach the new blocks. */
  size_t cap = (size_t)st.st_size + CTR_CTFS_BLOCK, len = 0;
  img->data = malloc(cap);
  while (img->data) {
    if (len == cap) {
      unsigned char *p = realloc(img->data, cap *= 2);
      if (!p) {
        free(img->data);
        img->data = NULL;
        break;
      }
      img->data = p;
    }
    ssize_t r = read(fd, img->data + len, cap - len);
    if (r <= 0)
      break;
    len += (size_t)r;
  }
  close(fd);
  if (!img->data)
    return CTR_ENOMEM;
  img->len = len / CTR_CTFS_BLOCK * CTR_CTFS_BLOCK; /* whole blocks only */
  if (img->len < CTR_CTFS_BLOCK || memcmp(img->data, ctr_ctfs_magic, 5) ||
      le(img->data + 8, 4) != CTR_CTFS_BLOCK) {
    ctr_ctfs_image_free(img);
    return CTR_EPROTO;
  }
  return 0;
}

void ctr_ctfs_image_free(ctr_ctfs_image_t *img) {
  free(img->data);
  *img = (ctr_ctfs_image_t){0};
}

/* The pointer in slot of block blk, or 0 when blk is out of the image. */
static uint64_t ptr(const ctr_ctfs_image_t *img, uint64_t blk, uint64_t slot) {
  if (blk == 0 || blk >= img->len / CTR_CTFS_BLOCK)
    return 0;
  return le(img->data + blk * CTR_CTFS_BLOCK + slot * 8, 8);
}

static uint64_t power(uint64_t level) {
  uint64_t c = 1;
  while (level--)
    c *= CTR_CTFS_USABLE;
  return c;
}

/* The data block of index bi under map root, 0 when it does not resolve. */
static uint64_t data_block(const ctr_ctfs_image_t *img, uint64_t root,
                           uint64_t bi) {
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
  blk = blk ? ptr(img, blk, bi) : 0;
  return blk < img->len / CTR_CTFS_BLOCK ? blk : 0;
}

int ctr_ctfs_member(const ctr_ctfs_image_t *img, const char *name,
                    ctr_buf_t *out) {
  uint64_t code = ctr_ctfs_base40(name);
  uint64_t entries = le(img->data + 12, 4);
  if (entries == 0) /* 0: as many as block 0 holds */
    entries = (CTR_CTFS_BLOCK - CTR_CTFS_HEADER) / CTR_CTFS_ENTRY;
  if (entries > (CTR_CTFS_BLOCK - CTR_CTFS_HEADER) / CTR_CTFS_ENTRY)
    return CTR_EPROTO;
  out->len = 0;
  for (uint64_t i = 0; i < entries; i++) {
    const unsigned char *e = img->data + CTR_CTFS_HEADER + i * CTR_CTFS_ENTRY;
    if (le(e + 16, 8) != code)
      continue;
    uint64_t size = le(e, 8), root = le(e + 8, 8);
    if (size > img->len)
      return CTR_EPROTO;
    ctr_buf_reserve(out, size);
    for (uint64_t bi = 0; out->len < size; bi++) {
      uint64_t blk = data_block(img, root, bi);
      size_t k =
          size - out->len < CTR_CTFS_BLOCK ? size - out->len : CTR_CTFS_BLOCK;
      if (blk == 0)
        return CTR_EPROTO;
      ctr_buf_add(out, img->data + blk * CTR_CTFS_BLOCK, k);
    }
    return 0;
  }
  return CTR_ERANGE;
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
                    uint64_t first, ctr_ctfs_record_cb cb, void *ctx) {
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
  }
  return count;
}

int ctr_ctfs_stream(const ctr_ctfs_image_t *img, const char *name,
                    bool prefixed, ctr_ctfs_record_cb cb, void *ctx,
                    uint64_t *count) {
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

int ctr_ctfs_stream_from(const ctr_ctfs_image_t *img, const char *name,
                         bool prefixed, uint64_t from, ctr_ctfs_record_cb cb,
                         void *ctx, uint64_t *count) {
  from_t f = {from, cb, ctx};
  char n[16];
  ctr_buf_t dat = {0}, idx = {0}, raw = {0};
  snprintf(n, sizeof(n), "%s.dat", name);
  int rc = ctr_ctfs_member(img, n, &dat);
  snprintf(n, sizeof(n), "%s.idx", name);
  if (rc == 0)
    rc = ctr_ctfs_member(img, n, &idx);
  *count = 0;
  if (rc == 0 && (idx.len < 4 || (idx.len - 4) % 8))
    rc = CTR_EPROTO;
  uint64_t chunk_size = rc == 0 ? le((unsigned char *)idx.data, 4) : 0;
  if (rc == 0 && chunk_size == 0)
    rc = CTR_EPROTO;
  size_t chunks = rc == 0 ? (idx.len - 4) / 8 : 0;
  for (size_t i = 0; rc == 0 && i < chunks; i++) {
    uint64_t from = le((unsigned char *)idx.data + 4 + 8 * i, 8);
    uint64_t to = i + 1 < chunks
                      ? le((unsigned char *)idx.data + 4 + 8 * (i + 1), 8)
                      : dat.len;
    if (from >= to || to > dat.len) {
      rc = CTR_EPROTO;
      break;
    }
    /* A chunk wholly before from was read at an earlier poll. */
    if (i + 1 < chunks && (i + 1) * chunk_size <= f.from) {
      *count += chunk_size;
      continue;
    }
    /* One frame with its content size, then only skippable frames. */
    unsigned long long size =
        ZSTD_getFrameContentSize(dat.data + from, to - from);
    if (size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR ||
        size > (64u << 20)) {
      rc = CTR_EPROTO;
      break;
    }
    raw.len = 0;
    ctr_buf_reserve(&raw, size + 1);
    size_t got = ZSTD_decompress(raw.data, size, dat.data + from, to - from);
    if (ZSTD_isError(got) || got != size) {
      rc = CTR_EPROTO;
      break;
    }
    int64_t k =
        walk((unsigned char *)raw.data, got, prefixed, *count, from_cb, &f);
    if (k < 0)
      rc = (int)k;
    else if (i + 1 < chunks && (uint64_t)k != chunk_size)
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

int ctr_ctfs_table(const ctr_ctfs_image_t *img, const char *name, uint64_t id,
                   ctr_buf_t *out, uint64_t *count) {
  one_t o = {id, out, false};
  uint64_t records;
  int rc = ctr_ctfs_table_from(img, name, out ? id : UINT64_MAX,
                               out ? one_cb : NULL, &o, &records);
  if (count)
    *count = records;
  if (rc == 0 && out && !o.found)
    rc = CTR_ERANGE;
  return rc;
}

int ctr_ctfs_table_from(const ctr_ctfs_image_t *img, const char *name,
                        uint64_t from, ctr_ctfs_record_cb cb, void *ctx,
                        uint64_t *count) {
  char n[16];
  ctr_buf_t dat = {0}, off = {0};
  snprintf(n, sizeof(n), "%s.dat", name);
  int rc = ctr_ctfs_member(img, n, &dat);
  snprintf(n, sizeof(n), "%s.off", name);
  if (rc == 0)
    rc = ctr_ctfs_member(img, n, &off);
  if (rc == 0 && (off.len < 8 || off.len % 8))
    rc = CTR_EPROTO;
  uint64_t records = rc == 0 ? off.len / 8 - 1 : 0;
  *count = records;
  for (uint64_t id = from; rc == 0 && cb && id < records; id++) {
    uint64_t a = le((unsigned char *)off.data + 8 * id, 8);
    uint64_t b = le((unsigned char *)off.data + 8 * (id + 1), 8);
    if (a > b || b > dat.len) {
      rc = CTR_EPROTO;
      break;
    }
    rc = cb(ctx, id, (unsigned char *)dat.data + a, b - a);
    if (rc > 0) { /* the callback has what it wanted */
      rc = 0;
      break;
    }
  }
  ctr_buf_free(&dat);
  ctr_buf_free(&off);
  return rc;
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
static int read_meta(const ctr_ctfs_image_t *img, ctr_ctfs_meta_read_t *m,
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

int ctr_ctfs_read_meta(const ctr_ctfs_image_t *img, ctr_ctfs_meta_read_t *m) {
  return read_meta(img, m, NULL);
}

int ctr_ctfs_read_meta_paths(const ctr_ctfs_image_t *img, ctr_buf_t *out) {
  ctr_ctfs_meta_read_t m;
  out->len = 0;
  return read_meta(img, &m, out);
}
