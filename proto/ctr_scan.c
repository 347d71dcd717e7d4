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
 * so ctr_proto_unpack builds their objects in a caller's fixed array with
 * the same header walk. */
#include "ctr_proto.h"

#include <string.h>

/* The stack lives in the caller's frame (8 KiB), so the depth limit is capped
 * here; it matches the upper bound config accepts for limits.max_depth. */
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

#define FAIL(code, text)                                                       \
  do {                                                                         \
    if (why != NULL)                                                           \
      *why = (text);                                                           \
    return (code);                                                             \
  } while (0)

int ctr_proto_scan(const char *buf, size_t len, const ctr_limits_t *lim,
                   size_t *count, const char **why) {
  const unsigned char *p = (const unsigned char *)buf;
  /* Elements still expected by each open container, innermost last. */
  uint64_t stack[CTR_SCAN_DEPTH_CAP];
  uint32_t max_depth = lim->max_depth;
  uint32_t sp = 0;
  /* Sum of stack[]: every pending element needs at least one more byte. */
  uint64_t pending = 0;
  size_t pos = 0;
  size_t n = 0;

  if (max_depth > CTR_SCAN_DEPTH_CAP)
    max_depth = CTR_SCAN_DEPTH_CAP;
  if (count != NULL)
    *count = 0;

  while (pos < len) {
    int hdr, extra, nbytes;
    uint64_t size;
    size_t left;
    kind_t k = classify(p[pos], &hdr, &extra, &nbytes, &size);

    if (k == K_BAD)
      FAIL(CTR_EPROTO, "reserved byte 0xc1");
    pos++;
    left = len - pos;
    if ((size_t)(hdr + nbytes + extra) > left)
      FAIL(CTR_EPROTO, "truncated object");
    if (nbytes > 0)
      size = be(p + pos, nbytes);
    pos += (size_t)(hdr + nbytes + extra);
    left = len - pos;

    switch (k) {
    case K_BYTES:
      if (size > lim->max_string)
        FAIL(CTR_ELIMIT, "string longer than limits.max_string");
      if (size > left)
        FAIL(CTR_EPROTO, "truncated object");
      pos += (size_t)size;
      break;
    case K_ARRAY:
    case K_MAP:
      if (size > lim->max_elements)
        FAIL(CTR_ELIMIT, k == K_ARRAY ? "array longer than limits.max_elements"
                                      : "map larger than limits.max_elements");
      if (sp + 1 > max_depth)
        FAIL(CTR_ELIMIT, "nesting deeper than limits.max_depth");
      if (k == K_MAP)
        size *= 2;
      /* Each open container's count includes the element on the path to
       * here, so pending - sp elements are owed besides this one, and this
       * container's own elements replace it in the byte budget. */
      if (size + (pending - sp) > left)
        FAIL(CTR_EPROTO, "array or map count larger than the bytes left");
      if (size > 0) {
        stack[sp++] = size;
        pending += size;
        continue;
      }
      break;
    default:
      break;
    }

    /* One element is complete: count it against its container, and close
     * every container that this completes in turn. */
    while (sp > 0) {
      stack[sp - 1]--;
      pending--;
      if (stack[sp - 1] > 0)
        break;
      sp--;
    }
    if (sp == 0)
      n++;
  }

  if (sp > 0)
    FAIL(CTR_EPROTO, "truncated object");
  if (count != NULL)
    *count = n;
  return 0;
}

/* Nesting ctr_proto_unpack handles itself; deeper objects are left to
 * msgpack-c. */
#define CTR_UNPACK_DEPTH 32

_Static_assert(sizeof(msgpack_object_kv) == 2 * sizeof(msgpack_object),
               "a map's entries are unpacked as key, value object pairs");

/* The scalar with type byte b whose payload starts at q, as msgpack-c
 * unpacks it: signed formats holding a non-negative value are positive
 * integers. */
static void unpack_scalar(unsigned char b, const unsigned char *q,
                          msgpack_object *o) {
  int n;
  uint64_t u;

  if (b <= 0x7f) {
    o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    o->via.u64 = b;
  } else if (b >= 0xe0) {
    o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
    o->via.i64 = (int8_t)b;
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
  } else if (b == 0xcb) {
    u = be(q, 8);
    o->type = MSGPACK_OBJECT_FLOAT64;
    memcpy(&o->via.f64, &u, sizeof(u));
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

int ctr_proto_unpack(const char *buf, size_t len, size_t *off,
                     msgpack_object *nodes, size_t cap, msgpack_object *out) {
  const unsigned char *p = (const unsigned char *)buf;
  /* Open containers, innermost last: the next slot and the slots left. */
  struct {
    msgpack_object *next;
    uint64_t left;
  } stack[CTR_UNPACK_DEPTH];
  uint32_t sp = 0;
  size_t pos = *off, used = 0;
  msgpack_object *o = out;

  if (pos >= len)
    return CTR_EPROTO;
  for (;;) {
    int hdr, extra, nbytes;
    uint64_t size;
    unsigned char b = p[pos];
    kind_t k = classify(b, &hdr, &extra, &nbytes, &size);

    pos++;
    if (nbytes > 0)
      size = be(p + pos, nbytes);
    pos += (size_t)(nbytes + extra);
    switch (k) {
    case K_SCALAR:
      unpack_scalar(b, p + pos, o);
      pos += (size_t)hdr;
      break;
    case K_BYTES:
      unpack_bytes(b, p + pos, (uint32_t)size, o);
      pos += (size_t)size;
      break;
    case K_ARRAY:
    case K_MAP: {
      uint64_t slots = k == K_MAP ? size * 2 : size;
      if (slots > cap - used || (slots > 0 && sp == CTR_UNPACK_DEPTH))
        return CTR_ELIMIT;
      if (k == K_MAP) {
        o->type = MSGPACK_OBJECT_MAP;
        o->via.map.size = (uint32_t)size;
        o->via.map.ptr = (msgpack_object_kv *)(nodes + used);
      } else {
        o->type = MSGPACK_OBJECT_ARRAY;
        o->via.array.size = (uint32_t)size;
        o->via.array.ptr = nodes + used;
      }
      if (slots > 0) {
        stack[sp].next = nodes + used;
        stack[sp].left = slots;
        sp++;
        used += (size_t)slots;
        o = stack[sp - 1].next++;
        stack[sp - 1].left--;
        continue;
      }
      break;
    }
    default:
      return CTR_EPROTO;
    }

    /* This object is complete; so is every container whose last slot it
     * filled. */
    while (sp > 0 && stack[sp - 1].left == 0)
      sp--;
    if (sp == 0)
      break;
    o = stack[sp - 1].next++;
    stack[sp - 1].left--;
  }
  *off = pos;
  return 0;
}
