/* ctr_vref.c: the definitions a shim made, mirrored from the daemon's.
 *
 * Definition d lives in slot d mod n, as in the daemon, until a later DEF
 * takes the slot; ids only grow, so bytes that hold a REF to a definition
 * gone since can never match new bytes again. An index by content hash
 * finds a slot; entries that went stale when their slot was taken are
 * skipped by comparing the bytes and swept by rebuilding the index. */
#include "ctr_vref.h"

#include <stdlib.h>
#include <string.h>

#include "ctr_proto.h"

typedef struct vref_slot_s {
  uint64_t id; /* UINT64_MAX: empty */
  uint64_t hash;
  uint32_t len;
  uint32_t cap;
  unsigned char *bytes;
} vref_slot_t;

/* An object closed in the current message (ctr_vref_seen). */
typedef struct vref_seen_s {
  const void *obj;
  uint32_t depth;
  uint32_t message; /* entries of older messages are empty */
  uint32_t nodes;   /* the values it holds (ctr_vref_close) */
  uint64_t id;
} vref_seen_t;

static struct {
  uint32_t n; /* slots, 0: references off */
  vref_slot_t *slots;
  uint32_t *index; /* slot + 1, 0: empty */
  uint32_t icap;   /* power of two, at least 2n */
  uint32_t iused;  /* entries in index, stale ones included */
  uint64_t next;   /* id of the next DEF */
  vref_seen_t *seen;
  uint32_t scap;   /* power of two */
  uint32_t sused;
  uint32_t message;
} V;

static uint64_t vref_hash(const unsigned char *p, size_t n) {
  const uint64_t m = 0x9E3779B97F4A7C15u;
  uint64_t h = n * m;
  uint64_t w;
  for (; n >= 8; p += 8, n -= 8) {
    memcpy(&w, p, 8);
    w *= m;
    h = (h ^ (w ^ (w >> 29))) * 0xBF58476D1CE4E5B9u;
  }
  w = 0;
  memcpy(&w, p, n);
  h = (h ^ w) * m;
  h ^= h >> 32;
  h *= 0x94D049BB133111EBu;
  return h ^ (h >> 29);
}

static void vref_free(void) {
  for (uint32_t i = 0; i < V.n; i++)
    free(V.slots[i].bytes);
  free(V.slots);
  free(V.index);
  free(V.seen);
  memset(&V, 0, sizeof V);
}

void ctr_vref_reset(uint32_t n) {
  uint64_t next = V.next;
  vref_free();
  V.next = next; /* ids only grow, even across resets */
  if (n == 0)
    return;
  uint32_t icap = 16;
  while (icap < 2 * n && icap < (1u << 30))
    icap <<= 1;
  V.slots = malloc(sizeof *V.slots * n);
  V.index = calloc(icap, sizeof *V.index);
  V.seen = calloc(64, sizeof *V.seen);
  if (V.slots == NULL || V.index == NULL || V.seen == NULL) {
    free(V.slots);
    free(V.index);
    free(V.seen);
    V.slots = NULL;
    V.index = NULL;
    V.seen = NULL;
    return; /* references stay off */
  }
  for (uint32_t i = 0; i < n; i++)
    V.slots[i] = (vref_slot_t){.id = UINT64_MAX};
  V.n = n;
  V.icap = icap;
  V.scap = 64;
  V.message = 1;
}

void ctr_vref_forget(void) {
  if (V.n == 0)
    return;
  for (uint32_t i = 0; i < V.n; i++)
    V.slots[i].id = UINT64_MAX;
  memset(V.index, 0, sizeof *V.index * V.icap);
  V.iused = 0;
  ctr_vref_message();
}

void ctr_vref_message(void) {
  V.message++;
  V.sused = 0;
  if (V.message == 0) { /* wrapped: clear the old stamps */
    if (V.seen != NULL)
      memset(V.seen, 0, sizeof *V.seen * V.scap);
    V.message = 1;
  }
}

/* ---- packing ---------------------------------------------------------- */

/* msgpack uint of v at p; returns the bytes written (at most 9). */
static size_t vref_put_uint(unsigned char *p, uint64_t v) {
  if (v < 128) {
    p[0] = (unsigned char)v;
    return 1;
  }
  size_t n = v <= 0xFF ? 1 : v <= 0xFFFF ? 2 : v <= 0xFFFFFFFFu ? 4 : 8;
  p[0] = n == 1 ? 0xcc : n == 2 ? 0xcd : n == 4 ? 0xce : 0xcf;
  for (size_t i = 0; i < n; i++)
    p[1 + i] = (unsigned char)(v >> (8 * (n - 1 - i)));
  return 1 + n;
}

/* Writes REF id at sb[mark..], dropping what was packed there; false when
 * memory ran out (sb then ends at mark). A closed value has room for it
 * (CTR_VREF_MIN), so only ctr_vref_seen can fail. */
static bool vref_pack_ref(msgpack_sbuffer *sb, size_t mark, uint64_t id) {
  unsigned char ref[11];
  ref[0] = 0x92;
  ref[1] = CTR_V_REF;
  size_t n = 2 + vref_put_uint(ref + 2, id);
  sb->size = mark;
  return msgpack_sbuffer_write(sb, (const char *)ref, n) == 0;
}

/* Wraps the value at sb[mark..] in DEF id; false when memory ran out (the
 * value then stays as it was). */
static bool vref_pack_def(msgpack_sbuffer *sb, size_t mark, uint64_t id) {
  unsigned char head[11];
  head[0] = 0x93;
  head[1] = CTR_V_DEF;
  size_t n = 2 + vref_put_uint(head + 2, id);
  size_t len = sb->size - mark;
  if (msgpack_sbuffer_write(sb, (const char *)head, n) != 0)
    return false;
  memmove(sb->data + mark + n, sb->data + mark, len);
  memcpy(sb->data + mark, head, n);
  return true;
}

/* ---- the index ------------------------------------------------------------ */

static void vref_index_put(uint32_t slot) {
  uint32_t mask = V.icap - 1;
  uint32_t i = (uint32_t)V.slots[slot].hash & mask;
  while (V.index[i] != 0)
    i = (i + 1) & mask;
  V.index[i] = slot + 1;
  V.iused++;
}

/* Drops stale entries: at most n live ones remain, in 2n places. */
static void vref_index_rebuild(void) {
  memset(V.index, 0, sizeof *V.index * V.icap);
  V.iused = 0;
  for (uint32_t s = 0; s < V.n; s++)
    if (V.slots[s].id != UINT64_MAX)
      vref_index_put(s);
}

static vref_slot_t *vref_find(const unsigned char *p, uint32_t len,
                              uint64_t h) {
  uint32_t mask = V.icap - 1;
  for (uint32_t i = (uint32_t)h & mask; V.index[i] != 0; i = (i + 1) & mask) {
    vref_slot_t *s = &V.slots[V.index[i] - 1];
    if (s->hash == h && s->len == len && s->id != UINT64_MAX &&
        memcmp(s->bytes, p, len) == 0)
      return s;
  }
  return NULL;
}

/* Keeps the bytes as definition V.next; NULL when memory ran out. */
static vref_slot_t *vref_define(const unsigned char *p, uint32_t len,
                                uint64_t h) {
  uint32_t slot = (uint32_t)(V.next % V.n);
  vref_slot_t *s = &V.slots[slot];
  if (s->cap < len) {
    unsigned char *b = realloc(s->bytes, len);
    if (b == NULL)
      return NULL;
    s->bytes = b;
    s->cap = len;
  }
  /* The old entry's index place now leads here under another hash: it is
   * skipped until the next rebuild. */
  if (V.iused + 1 > V.icap / 2 + V.icap / 4)
    vref_index_rebuild();
  memcpy(s->bytes, p, len);
  s->len = len;
  s->hash = h;
  s->id = V.next++;
  vref_index_put(slot);
  return s;
}

/* ---- identity within a message ------------------------------------------- */

static uint32_t vref_seen_hash(const void *obj, uint32_t depth) {
  uint64_t k = (uint64_t)(uintptr_t)obj * 0x9E3779B97F4A7C15u + depth;
  return (uint32_t)(k >> 32);
}

static vref_seen_t *vref_seen_find(const void *obj, uint32_t depth) {
  uint32_t mask = V.scap - 1;
  for (uint32_t i = vref_seen_hash(obj, depth) & mask;
       V.seen[i].message == V.message; i = (i + 1) & mask)
    if (V.seen[i].obj == obj && V.seen[i].depth == depth)
      return &V.seen[i];
  return NULL;
}

static void vref_seen_put(const void *obj, uint32_t depth, uint32_t nodes,
                          uint64_t id) {
  if (V.sused + 1 > V.scap / 2) {
    /* Grow; the old table only holds this message's entries. */
    vref_seen_t *old = V.seen;
    uint32_t ocap = V.scap;
    vref_seen_t *t = calloc((size_t)ocap * 2, sizeof *t);
    if (t == NULL)
      return; /* only a shortcut */
    V.seen = t;
    V.scap = ocap * 2;
    V.sused = 0;
    for (uint32_t i = 0; i < ocap; i++)
      if (old[i].message == V.message)
        vref_seen_put(old[i].obj, old[i].depth, old[i].nodes, old[i].id);
    free(old);
  }
  uint32_t mask = V.scap - 1;
  uint32_t i = vref_seen_hash(obj, depth) & mask;
  while (V.seen[i].message == V.message) {
    if (V.seen[i].obj == obj && V.seen[i].depth == depth) {
      V.seen[i].nodes = nodes;
      V.seen[i].id = id;
      return;
    }
    i = (i + 1) & mask;
  }
  V.seen[i] = (vref_seen_t){obj, depth, V.message, nodes, id};
  V.sused++;
}

bool ctr_vref_seen(msgpack_sbuffer *sb, const void *obj, uint32_t depth,
                   uint32_t room, uint32_t *nodes) {
  if (V.n == 0 || obj == NULL)
    return false;
  vref_seen_t *e = vref_seen_find(obj, depth);
  if (e == NULL || V.slots[e->id % V.n].id != e->id || e->nodes > room)
    return false; /* unknown, its slot was taken since, or too big */
  if (!vref_pack_ref(sb, sb->size, e->id))
    return false;
  if (nodes != NULL)
    *nodes = e->nodes;
  return true;
}

void ctr_vref_close(msgpack_sbuffer *sb, size_t mark, const void *obj,
                    uint32_t depth, uint32_t nodes) {
  size_t len = sb->size - mark;
  if (V.n == 0 || len < CTR_VREF_MIN || len > CTR_VREF_MAX)
    return;
  const unsigned char *p = (const unsigned char *)sb->data + mark;
  uint64_t h = vref_hash(p, len);
  vref_slot_t *s = vref_find(p, (uint32_t)len, h);
  if (s != NULL) {
    vref_pack_ref(sb, mark, s->id);
  } else {
    s = vref_define(p, (uint32_t)len, h);
    if (s == NULL)
      return; /* out of memory: sent in full */
    if (!vref_pack_def(sb, mark, s->id)) {
      s->id = UINT64_MAX; /* never reached the daemon */
      return;
    }
  }
  if (obj != NULL)
    vref_seen_put(obj, depth, nodes, s->id);
}
