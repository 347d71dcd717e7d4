/* ctr_scan.c: checks untrusted msgpack bytes before anything is unpacked.
 *
 * msgpack-c trusts the sizes an object declares: an array32 header makes it
 * allocate room for four billion objects, and deep nesting makes it recurse.
 * This walk reads every header without allocating and without recursion, so
 * that a buffer it accepts can be unpacked with memory proportional to its
 * length. Nesting is tracked on a fixed stack of remaining element counts. */
#include "ctr_proto.h"

/* The stack lives in the caller's frame (8 KiB), so the depth limit is capped
 * here; it matches the upper bound config accepts for limits.max_depth. */
#define CTR_SCAN_DEPTH_CAP 1024

typedef enum { K_SCALAR, K_BYTES, K_ARRAY, K_MAP, K_BAD } kind_t;

static uint64_t be(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

/* Classifies the object starting at p[0]: how many header bytes follow the
 * type byte (*hdr), what the header's length or count field is (*n; for
 * scalars the payload size) and the kind. ext data has one extra type byte,
 * counted in *extra. */
static kind_t classify(unsigned char b, int *hdr, int *extra, int *nbytes,
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
