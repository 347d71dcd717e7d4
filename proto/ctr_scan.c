/* ctr_scan.c: checks untrusted msgpack bytes before anything is unpacked,
 * and unpacks small objects of checked bytes.
 *
 * msgpack-c trusts the sizes an object declares: an array32 header makes it
 * allocate room for four billion objects, and deep nesting makes it recurse.
 * This walk reads every header without allocating and without recursion, so
 * that a buffer it accepts can be unpacked with memory proportional to its
 * length. Nesting is tracked on a fixed stack of remaining element counts.
 *
 * Most messages are a few dozen objects, and msgpack-c's general unpacker
 * with its zone costs more than everything else the daemon does with them,
 * so the same walk also builds their objects in a caller's fixed array
 * (ctr_proto_read checks and builds one message, ctr_proto_unpack builds
 * one from bytes checked before). */
#include "ctr_proto.h"

#include <string.h>

/* The stack lives in the caller's frame (8 KiB), so the depth limit is capped
 * here, well above the bound config accepts for limits.max_depth. */
#define CTR_SCAN_DEPTH_CAP 1024

typedef enum { K_SCALAR, K_BYTES, K_ARRAY, K_MAP, K_BAD } kind_t;

/* msgpack numbers are big-endian; loading them whole and swapping is
 * cheaper than assembling them byte by byte. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define FROM_BE(bits, v) (v)
#else
#define FROM_BE(bits, v) __builtin_bswap##bits(v)
#endif

/* The n-byte (1, 2, 4 or 8) big-endian number at p. */
static inline uint64_t be(const unsigned char *p, int n) {
  uint16_t v16;
  uint32_t v32;
  uint64_t v64;

  switch (n) {
  case 1:
    return p[0];
  case 2:
    memcpy(&v16, p, 2);
    return FROM_BE(16, v16);
  case 4:
    memcpy(&v32, p, 4);
    return FROM_BE(32, v32);
  default:
    memcpy(&v64, p, 8);
    return FROM_BE(64, v64);
  }
}

/* Classifies the object starting at p[0]: how many header bytes follow the
 * type byte (*hdr), what the header's length or count field is (*n; for
 * scalars the payload size) and the kind. ext data has one extra type byte,
 * counted in *extra. */
static inline kind_t classify(unsigned char b, int *hdr, int *extra, int *nbytes,
                       uint64_t *fixed) {
  *hdr = 0;
  *extra = 0;
  *nbytes = 0;
  *fixed = 0;
  if (b <= 0x7f || b >= 0xe0)
    return K_SCALAR;
  if (b <= 0x8f) {
    *fixed = b & 0x0f;
    return K_MAP;
  }
  if (b <= 0x9f) {
    *fixed = b & 0x0f;
    return K_ARRAY;
  }
  if (b <= 0xbf) {
    *fixed = b & 0x1f;
    return K_BYTES;
  }
  switch (b) {
  case 0xc0: /* nil */
  case 0xc2: /* false */
  case 0xc3: /* true */
    return K_SCALAR;
  case 0xc4: /* bin 8, 16, 32 */
  case 0xc5:
  case 0xc6:
    *nbytes = 1 << (b - 0xc4);
    return K_BYTES;
  case 0xc7: /* ext 8, 16, 32 */
  case 0xc8:
  case 0xc9:
    *nbytes = 1 << (b - 0xc7);
    *extra = 1;
    return K_BYTES;
  case 0xca: /* float 32 */
    *hdr = 4;
    return K_SCALAR;
  case 0xcb: /* float 64 */
    *hdr = 8;
    return K_SCALAR;
  case 0xcc: /* uint 8, 16, 32, 64 */
  case 0xcd:
  case 0xce:
  case 0xcf:
    *hdr = 1 << (b - 0xcc);
    return K_SCALAR;
  case 0xd0: /* int 8, 16, 32, 64 */
  case 0xd1:
  case 0xd2:
  case 0xd3:
    *hdr = 1 << (b - 0xd0);
    return K_SCALAR;
  case 0xd4: /* fixext 1, 2, 4, 8, 16 */
  case 0xd5:
  case 0xd6:
  case 0xd7:
  case 0xd8:
    *fixed = (uint64_t)1 << (b - 0xd4);
    *extra = 1;
    return K_BYTES;
  case 0xd9: /* str 8, 16, 32 */
  case 0xda:
  case 0xdb:
    *nbytes = 1 << (b - 0xd9);
    return K_BYTES;
  case 0xdc: /* array 16, 32 */
  case 0xdd:
    *nbytes = 2 << (b - 0xdc);
    return K_ARRAY;
  case 0xde: /* map 16, 32 */
  case 0xdf:
    *nbytes = 2 << (b - 0xde);
    return K_MAP;
  default: /* 0xc1 is reserved and never valid */
    return K_BAD;
  }
}

/* The integer with type byte b (a fixint, or 0xcc..0xd3 with its bytes at
 * q) as msgpack-c builds it: a non-negative one is a positive integer.
 * Inline in the flat reader, which reads mostly integers. */
static inline __attribute__((always_inline)) void
unpack_int(unsigned char b, const unsigned char *q, msgpack_object *o) {
  int n;
  uint64_t u;

  if (b <= 0x7f) {
    o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    o->via.u64 = b;
  } else if (b >= 0xe0) {
    o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
    o->via.i64 = (int8_t)b;
  } else if (b <= 0xcf) { /* uint 8, 16, 32, 64 */
    o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    o->via.u64 = be(q, 1 << (b - 0xcc));
  } else { /* int 8, 16, 32, 64: sign-extended from n bytes */
    n = 1 << (b - 0xd0);
    u = be(q, n);
    if (n < 8 && (u >> (8 * n - 1)))
      u |= ~(uint64_t)0 << (8 * n);
    if ((int64_t)u >= 0) {
      o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
      o->via.u64 = u;
    } else {
      o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
      o->via.i64 = (int64_t)u;
    }
  }
}

/* The scalar with type byte b whose payload starts at q, as msgpack-c
 * unpacks it: signed formats holding a non-negative value are positive
 * integers. */
static void unpack_scalar(unsigned char b, const unsigned char *q,
                          msgpack_object *o) {
  uint64_t u;

  if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3)) {
    unpack_int(b, q, o);
  } else if (b == 0xc0) {
    o->type = MSGPACK_OBJECT_NIL;
  } else if (b == 0xc2 || b == 0xc3) {
    o->type = MSGPACK_OBJECT_BOOLEAN;
    o->via.boolean = b == 0xc3;
  } else if (b == 0xca) {
    uint32_t bits = (uint32_t)be(q, 4);
    float f;
    memcpy(&f, &bits, sizeof(f));
    o->type = MSGPACK_OBJECT_FLOAT32;
    o->via.f64 = f;
  } else { /* 0xcb */
    u = be(q, 8);
    o->type = MSGPACK_OBJECT_FLOAT64;
    memcpy(&o->via.f64, &u, sizeof(u));
  }
}

/* The str, bin or ext with type byte b whose data (after the length and,
 * for ext, the ext type q[-1]) starts at q. Even an empty one points into
 * the buffer: consumers read a NULL text as a missing one, and msgpack-c
 * leaves NULL only for an empty str before any other str in the object. */
static void unpack_bytes(unsigned char b, const unsigned char *q,
                         uint32_t size, msgpack_object *o) {
  const char *text = (const char *)q;

  if (b >= 0xc4 && b <= 0xc6) {
    o->type = MSGPACK_OBJECT_BIN;
    o->via.bin.ptr = text;
    o->via.bin.size = size;
  } else if ((b >= 0xc7 && b <= 0xc9) || (b >= 0xd4 && b <= 0xd8)) {
    o->type = MSGPACK_OBJECT_EXT;
    o->via.ext.type = (int8_t)q[-1];
    o->via.ext.ptr = (const char *)q;
    o->via.ext.size = size;
  } else {
    o->type = MSGPACK_OBJECT_STR;
    o->via.str.ptr = text;
    o->via.str.size = size;
  }
}

#define FAIL(code, text)                                                       \
  do {                                                                         \
    if (why != NULL)                                                           \
      *why = (text);                                                           \
    return (code);                                                             \
  } while (0)

/* Nesting that walk() builds objects for; deeper objects are left to
 * msgpack-c. */
#define CTR_UNPACK_DEPTH 32

_Static_assert(sizeof(msgpack_object_kv) == 2 * sizeof(msgpack_object),
               "a map's entries are unpacked as key, value object pairs");

/* Limits for bytes that were checked already: only the walk's own bounds. */
static const ctr_limits_t unlimited = {UINT32_MAX, CTR_SCAN_DEPTH_CAP,
                                       UINT32_MAX, UINT32_MAX, UINT32_MAX};

/* Walks the one top-level object at buf + *off, checking it against lim,
 * and, when nodes is not NULL, builds it into out and the first cap objects
 * of nodes as msgpack_unpack would. Returns 0 and advances *off; CTR_EPROTO
 * or CTR_ELIMIT with *why set for bad bytes; CTR_ENOMEM, leaving *off, when
 * the object is fine so far but needs more nodes or deeper nesting than it
 * builds. Checking and building are one pass because the daemon reads most
 * messages this way and the bytes are then touched once. */
static int walk(const char *buf, size_t len, size_t *off,
                const ctr_limits_t *lim, msgpack_object *nodes, size_t cap,
                msgpack_object *out, const char **why) {
  const unsigned char *p = (const unsigned char *)buf;
  /* Elements still expected by each open container, innermost last, and
   * while building, the slot of its next element. */
  uint64_t left[CTR_SCAN_DEPTH_CAP];
  msgpack_object *next[CTR_UNPACK_DEPTH];
  uint32_t max_depth = lim->max_depth;
  uint32_t sp = 0;
  /* Sum of left[]: every pending element needs at least one more byte. */
  uint64_t pending = 0;
  size_t pos = *off, used = 0;
  msgpack_object *o = out;

  if (max_depth > CTR_SCAN_DEPTH_CAP)
    max_depth = CTR_SCAN_DEPTH_CAP;
  for (;;) {
    int hdr, extra, nbytes;
    uint64_t size;
    size_t avail;
    unsigned char b;
    kind_t k;

    if (pos >= len)
      FAIL(CTR_EPROTO, "truncated object");
    b = p[pos];
    /* Small non-negative integers (tags, ids, lines, kinds) are most of
     * the objects the daemon reads, so they skip the general decoding. */
    if (b <= 0x7f) {
      if (nodes != NULL) {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = b;
      }
      pos++;
      goto complete;
    }
    k = classify(b, &hdr, &extra, &nbytes, &size);
    if (k == K_BAD)
      FAIL(CTR_EPROTO, "reserved byte 0xc1");
    pos++;
    avail = len - pos;
    if ((size_t)(hdr + nbytes + extra) > avail)
      FAIL(CTR_EPROTO, "truncated object");
    if (nbytes > 0)
      size = be(p + pos, nbytes);
    pos += (size_t)(nbytes + extra);
    avail = len - pos - (size_t)hdr;

    switch (k) {
    case K_SCALAR:
      if (nodes != NULL)
        unpack_scalar(b, p + pos, o);
      pos += (size_t)hdr;
      break;
    case K_BYTES:
      if (size > lim->max_string)
        FAIL(CTR_ELIMIT, "string longer than limits.max_string");
      if (size > avail)
        FAIL(CTR_EPROTO, "truncated object");
      if (nodes != NULL)
        unpack_bytes(b, p + pos, (uint32_t)size, o);
      pos += (size_t)size;
      break;
    default: { /* K_ARRAY, K_MAP */
      uint64_t slots = k == K_MAP ? size * 2 : size;
      if (size > lim->max_elements)
        FAIL(CTR_ELIMIT, k == K_ARRAY ? "array longer than limits.max_elements"
                                      : "map larger than limits.max_elements");
      if (sp + 1 > max_depth)
        FAIL(CTR_ELIMIT, "nesting deeper than limits.max_depth");
      /* pending counts the elements owed after the ones on the path to
       * here; this container's own elements replace it in the byte
       * budget. */
      if (slots + pending > avail)
        FAIL(CTR_EPROTO, "array or map count larger than the bytes left");
      if (nodes != NULL) {
        if (slots > cap - used || (slots > 0 && sp >= CTR_UNPACK_DEPTH))
          return CTR_ENOMEM;
        if (k == K_MAP) {
          o->type = MSGPACK_OBJECT_MAP;
          o->via.map.size = (uint32_t)size;
          o->via.map.ptr = (msgpack_object_kv *)(nodes + used);
        } else {
          o->type = MSGPACK_OBJECT_ARRAY;
          o->via.array.size = (uint32_t)size;
          o->via.array.ptr = nodes + used;
        }
      }
      if (slots > 0) {
        if (nodes != NULL) {
          next[sp] = nodes + used;
          used += (size_t)slots;
          o = next[sp]++;
        }
        left[sp++] = slots - 1;
        pending += slots - 1;
        continue;
      }
      break;
    }
    }

  complete:
    /* This object is complete; so is every container whose last element
     * it was. */
    while (sp > 0 && left[sp - 1] == 0)
      sp--;
    if (sp == 0)
      break;
    left[sp - 1]--;
    pending--;
    if (nodes != NULL)
      o = next[sp - 1]++;
  }
  *off = pos;
  return 0;
}

int ctr_proto_scan(const char *buf, size_t len, const ctr_limits_t *lim,
                   size_t *count, const char **why) {
  size_t pos = 0, n = 0;
  int rc;

  if (count != NULL)
    *count = 0;
  while (pos < len) {
    rc = walk(buf, len, &pos, lim, NULL, 0, NULL, why);
    if (rc != 0)
      return rc;
    n++;
  }
  if (count != NULL)
    *count = n;
  return 0;
}

/* ---- the flat messages ----------------------------------------------------- */

/* The readers below are small and run for every byte of the bulk of a
 * recording: forced inline, so each message is read in one function. */
#define FLAT_INLINE static inline __attribute__((always_inline))

/* hot_scalar() for anything but a positive fixint. */
static bool hot_other(const unsigned char *p, size_t len, size_t *pos,
                      const ctr_limits_t *lim, msgpack_object *o) {
  size_t at = *pos;
  int hdr, extra, nbytes;
  uint64_t size;
  unsigned char b;
  kind_t k;

  if (at >= len)
    return false;
  b = p[at++];
  k = classify(b, &hdr, &extra, &nbytes, &size);
  if ((k != K_SCALAR && k != K_BYTES) ||
      (size_t)(hdr + nbytes + extra) > len - at)
    return false;
  if (nbytes > 0)
    size = be(p + at, nbytes);
  at += (size_t)(nbytes + extra);
  if (k == K_SCALAR) {
    unpack_scalar(b, p + at, o);
    at += (size_t)hdr;
  } else {
    if (size > lim->max_string || size > len - at)
      return false;
    unpack_bytes(b, p + at, (uint32_t)size, o);
    at += (size_t)size;
  }
  *pos = at;
  return true;
}

/* One scalar, str, bin or ext at p[*pos], built into *o as walk() builds
 * it; false, with *pos unchanged, for a container and for bytes walk()
 * would reject. Positive fixints (tags, ids, kinds) are most of them. */
FLAT_INLINE bool hot_scalar(const unsigned char *p, size_t len, size_t *pos,
                              const ctr_limits_t *lim, msgpack_object *o) {
  if (*pos < len && p[*pos] <= 0x7f) {
    o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    o->via.u64 = p[(*pos)++];
    return true;
  }
  return hot_other(p, len, pos, lim, o);
}

/* A fixarray header of n elements (n < 16) at p[*pos]. */
FLAT_INLINE bool hot_array(const unsigned char *p, size_t len, size_t *pos,
                      uint32_t *n) {
  if (*pos >= len || (p[*pos] & 0xf0) != 0x90)
    return false;
  *n = p[(*pos)++] & 0x0f;
  return true;
}

/* An integer at p[*pos], in any of its forms, into *o as unpack_scalar
 * builds it; false for anything else. Ids, kinds and lines are most of
 * what the flat messages hold, and positive fixints most of those. */
FLAT_INLINE bool flat_int(const unsigned char *p, size_t len, size_t *pos,
                            msgpack_object *o) {
  size_t at = *pos;
  int n;

  if (at >= len)
    return false;
  if (p[at] <= 0x7f) {
    o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    o->via.u64 = p[at];
    *pos = at + 1;
    return true;
  }
  if (p[at] >= 0xe0)
    n = 0;
  else if (p[at] >= 0xcc && p[at] <= 0xd3)
    n = 1 << ((p[at] - 0xcc) & 3);
  else
    return false;
  if ((size_t)n > len - at - 1)
    return false;
  unpack_int(p[at], p + at + 1, o);
  *pos = at + 1 + (size_t)n;
  return true;
}

/* An unsigned 32-bit integer, as ctr_obj_u32 takes one, into *out. */
FLAT_INLINE bool flat_u32(const unsigned char *p, size_t len, size_t *pos,
                            uint32_t *out) {
  msgpack_object o;

  if (*pos < len && p[*pos] <= 0x7f) {
    *out = p[(*pos)++];
    return true;
  }
  return flat_int(p, len, pos, &o) && ctr_obj_u32(&o, out);
}

/* A flat value [kind, type] or [kind, type, payload] into v: a payload of
 * the type its kind takes (what ctr_value_render_scalar accepts); or a REF
 * [12, def_id], its id the payload. */
FLAT_INLINE bool flat_value(const unsigned char *p, size_t len, size_t *pos,
                       const ctr_limits_t *lim, ctr_flat_var_t *v) {
  ctr_str_t text;
  int64_t i;
  uint32_t n;

  if (!hot_array(p, len, pos, &n) || n < 2 || n > 3 ||
      !flat_u32(p, len, pos, &v->vk))
    return false;
  if (v->vk == CTR_V_REF) {
    v->tid = 0;
    return n == 2 && flat_int(p, len, pos, &v->payload) &&
           v->payload.type == MSGPACK_OBJECT_POSITIVE_INTEGER;
  }
  if (!flat_u32(p, len, pos, &v->tid))
    return false;
  if (n == 2) {
    v->payload.type = MSGPACK_OBJECT_NIL;
    return v->vk == CTR_V_NONE;
  }
  if (v->vk == CTR_V_INT)
    return flat_int(p, len, pos, &v->payload) && ctr_obj_i64(&v->payload, &i);
  if (!hot_scalar(p, len, pos, lim, &v->payload))
    return false;
  switch (v->vk) {
  case CTR_V_BOOL:
    return v->payload.type == MSGPACK_OBJECT_BOOLEAN;
  case CTR_V_FLOAT:
    return v->payload.type == MSGPACK_OBJECT_FLOAT64 ||
           v->payload.type == MSGPACK_OBJECT_FLOAT32;
  case CTR_V_STRING:
  case CTR_V_RAW:
  case CTR_V_ERROR:
    return ctr_obj_str(&v->payload, &text);
  default:
    return false;
  }
}

/* [[name, value]...] (fewer than 16, all flat) into vars; *n the count. */
FLAT_INLINE bool flat_pairs(const unsigned char *p, size_t len, size_t *pos,
                       const ctr_limits_t *lim, ctr_flat_var_t *vars,
                       uint32_t *n) {
  uint32_t two, i;

  if (!hot_array(p, len, pos, n))
    return false;
  for (i = 0; i < *n; i++)
    if (!hot_array(p, len, pos, &two) || two != 2 ||
        !flat_u32(p, len, pos, &vars[i].vid) ||
        !flat_value(p, len, pos, lim, &vars[i]))
      return false;
  return true;
}

static void array_node(msgpack_object *o, msgpack_object *items, uint32_t n) {
  o->type = MSGPACK_OBJECT_ARRAY;
  o->via.array.size = n;
  o->via.array.ptr = items;
}

static void uint_node(msgpack_object *o, uint64_t v) {
  o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
  o->via.u64 = v;
}

void ctr_flat_objects(const ctr_flat_var_t *v, msgpack_object o[5]) {
  uint_node(&o[0], v->vid);
  uint_node(&o[2], v->vk);
  if (v->vk == CTR_V_REF) {
    array_node(&o[1], &o[2], 2);
    o[3] = v->payload;
    return;
  }
  array_node(&o[1], &o[2], v->vk == CTR_V_NONE ? 2 : 3);
  uint_node(&o[3], v->tid);
  o[4] = v->payload;
}

bool ctr_proto_read_flat(const char *buf, size_t len, size_t *off,
                         const ctr_limits_t *lim, ctr_flat_t *w, ctr_msg_t *m) {
  const unsigned char *p = (const unsigned char *)buf;
  size_t pos = *off + 2; /* past the array head and the tag (a fixint) */
  msgpack_object b;
  uint32_t n, i;

  /* A VARS nests four deep and holds fixarrays of fewer than 16. */
  if (len - *off < 3 || lim->max_depth < 4 || lim->max_elements < CTR_FLAT_VARS)
    return false;
  switch (p[*off] << 8 | p[*off + 1]) {
  case 0x9300 | CTR_MSG_STEP:
    if (!flat_u32(p, len, &pos, &m->u.step.path_id) ||
        !flat_int(p, len, &pos, &b) || !ctr_obj_i64(&b, &m->u.step.line))
      return false;
    break;
  case 0x9200 | CTR_MSG_VARS:
    if (!flat_pairs(p, len, &pos, lim, w->vars, &n))
      return false;
    m->u.vars.vars = NULL;
    m->u.vars.flat = w->vars;
    m->u.vars.nflat = n;
    break;
  case 0x9300 | CTR_MSG_CALL:
    if (!flat_u32(p, len, &pos, &m->u.call.func_id) ||
        !flat_pairs(p, len, &pos, lim, w->vars, &n))
      return false;
    /* The array, its pairs, then each pair's five objects. */
    array_node(&w->nodes[0], &w->nodes[1], n);
    for (i = 0; i < n; i++) {
      msgpack_object *o = &w->nodes[1 + n + 5 * i];
      ctr_flat_objects(&w->vars[i], o);
      array_node(&w->nodes[1 + i], o, 2);
    }
    m->u.call.args = &w->nodes[0];
    break;
  case 0x9200 | CTR_MSG_RETURN:
    w->vars[0].vid = 0;
    if (!flat_value(p, len, &pos, lim, &w->vars[0]))
      return false;
    ctr_flat_objects(&w->vars[0], w->nodes);
    m->u.ret.value = &w->nodes[1];
    break;
  default:
    return false;
  }
  m->tag = p[*off + 1];
  *off = pos;
  return true;
}

int ctr_proto_read(const char *buf, size_t len, size_t *off,
                   const ctr_limits_t *lim, msgpack_object *nodes, size_t cap,
                   msgpack_object *out, const char **why) {
  return walk(buf, len, off, lim, nodes, cap, out, why);
}

int ctr_proto_unpack(const char *buf, size_t len, size_t *off,
                     msgpack_object *nodes, size_t cap, msgpack_object *out) {
  int rc = walk(buf, len, off, &unlimited, nodes, cap, out, NULL);

  return rc == CTR_ENOMEM ? CTR_ELIMIT : rc;
}
