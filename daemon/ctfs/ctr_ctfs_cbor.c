/* ctr_ctfs_cbor.c: wire values as CBOR ValueRecords, see ctr_ctfs_cbor.h. */
#include "ctr_ctfs_cbor.h"

#include <stdio.h>
#include <string.h>

#include "ctr_error.h"
#include "ctr_proto.h"

/* The head written in place: values are encoded for every step, so the
 * few bytes of each are not worth a call to memcpy. */
static inline void put_head(ctr_buf_t *b, unsigned major, uint64_t v) {
  unsigned char m = (unsigned char)(major << 5);
  ctr_buf_reserve(b, 9);
  unsigned char *h = (unsigned char *)b->data + b->len;
  if (v < 24) {
    h[0] = m | (unsigned char)v;
    b->len += 1;
    return;
  }
  int bytes = v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffffu ? 4 : 8;
  h[0] = m | (unsigned char)(bytes == 1   ? 24
                             : bytes == 2 ? 25
                             : bytes == 4 ? 26
                                          : 27);
  for (int i = 0; i < bytes; i++)
    h[1 + i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
  b->len += 1 + (size_t)bytes;
}

void ctr_ctfs_cbor_head(ctr_buf_t *b, unsigned major, uint64_t v) {
  put_head(b, major, v);
}

/* Whether s[0..n) is ASCII, which needs no UTF-8 check. */
static bool ascii(const unsigned char *u, size_t n) {
  unsigned char any = 0;
  for (size_t i = 0; i < n; i++)
    any |= u[i];
  return any < 0x80;
}

void ctr_ctfs_cbor_text(ctr_buf_t *b, const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t out = 0, k;
  if (ascii(u, n)) {
    put_head(b, 3, n);
    ctr_buf_add(b, s, n);
    return;
  }
  for (size_t i = 0; i < n; i += k ? k : 1)
    out += (k = ctr_utf8_seq(u + i, n - i)) ? k : 4;
  put_head(b, 3, out);
  if (out == n) {
    ctr_buf_add(b, s, n);
    return;
  }
  for (size_t i = 0; i < n; i += k ? k : 1) {
    if ((k = ctr_utf8_seq(u + i, n - i)) != 0) {
      ctr_buf_add(b, s + i, k);
    } else {
      char x[5];
      snprintf(x, sizeof(x), "\\x%02x", u[i]);
      ctr_buf_add(b, x, 4);
    }
  }
}

/* A text key or short literal (ASCII, under 24 bytes: its head is one
 * byte), without strlen or a UTF-8 check at the call. */
#define KEY(b, lit) key((b), (lit), sizeof(lit) - 1)

static inline void key(ctr_buf_t *b, const char *lit, size_t n) {
  ctr_buf_reserve(b, n + 1);
  b->data[b->len] = (char)(0x60 | n);
  memcpy(b->data + b->len + 1, lit, n);
  b->len += n + 1;
}

static int fail(const char **why, const char *text, int code) {
  *why = text;
  return code;
}

/* Opens map(n) with "kind": kind. */
static inline void head_n(ctr_buf_t *out, unsigned n, const char *kind,
                          size_t len) {
  put_head(out, 5, n);
  KEY(out, "kind");
  key(out, kind, len);
}
#define head(out, n, kind) head_n((out), (n), (kind), sizeof(kind) - 1)

static void cbor_int(ctr_buf_t *out, int64_t i) {
  if (i >= 0)
    put_head(out, 0, (uint64_t)i);
  else
    put_head(out, 1, (uint64_t)(-1 - i));
}

static int encode(const ctr_ctfs_value_ops_t *ops, const msgpack_object *o,
                  ctr_buf_t *out, uint32_t depth, const char **why);

/* Appends the elements array of SEQ/TUPLE items, or of STRUCT pair values. */
static int elements(const ctr_ctfs_value_ops_t *ops, const msgpack_object *a,
                    bool pairs, ctr_buf_t *out, uint32_t depth,
                    const char **why) {
  if (a->type != MSGPACK_OBJECT_ARRAY)
    return fail(why, "elements are not an array", CTR_EPROTO);
  if (depth >= ops->max_depth && a->via.array.size)
    return fail(why, "value nested too deeply", CTR_ELIMIT);
  put_head(out, 4, a->via.array.size);
  for (uint32_t i = 0; i < a->via.array.size; i++) {
    const msgpack_object *e = &a->via.array.ptr[i];
    if (pairs) {
      uint32_t vid;
      if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2 ||
          !ctr_obj_u32(&e->via.array.ptr[0], &vid))
        return fail(why, "struct field is not [varname_id, value]", CTR_EPROTO);
      e = &e->via.array.ptr[1];
    }
    int rc = encode(ops, e, out, depth + 1, why);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* Appends "field_names" for STRUCT pairs a, checked by elements(). */
static int field_names(const ctr_ctfs_value_ops_t *ops, const msgpack_object *a,
                       ctr_buf_t *out, const char **why) {
  KEY(out, "field_names");
  put_head(out, 4, a->via.array.size);
  for (uint32_t i = 0; i < a->via.array.size; i++) {
    uint32_t vid = 0;
    ctr_obj_u32(&a->via.array.ptr[i].via.array.ptr[0], &vid);
    int rc = ops->field(ops->ctx, vid, out);
    if (rc < 0)
      return fail(why, "struct field name id out of range", rc);
  }
  return 0;
}

/* The fixed start of a map: its head, "kind", the variant and the key of
 * its first field, as one literal (values are encoded for every step). */
#define LIT(out, lit) ctr_buf_add((out), (lit), sizeof(lit) - 1)
#define MAP2 "\xa2\x64" "kind"
#define MAP3 "\xa3\x64" "kind"
#define MAP4 "\xa4\x64" "kind"

/* Appends a value that holds no other value, up to its "type_id" (payload
 * p, NULL for None); 1 for other kinds. */
static int scalar(uint32_t vk, const msgpack_object *p, ctr_buf_t *out,
                  const char **why) {
  ctr_str_t s;
  int64_t i;

  switch (vk) {
  case CTR_V_NONE:
    LIT(out, MAP2 "\x64" "None");
    break;
  case CTR_V_BOOL:
    if (p->type != MSGPACK_OBJECT_BOOLEAN)
      return fail(why, "Bool value is not a boolean", CTR_EPROTO);
    /* Rust has {kind, b, type_id}; CodeTracer's Nim reader requires the
     * printed "text" after "b", which serde skips as an unknown field. */
    LIT(out, MAP4 "\x64" "Bool" "\x61" "b");
    ctr_buf_add(out, p->via.boolean ? "\xf5" : "\xf4", 1);
    KEY(out, "text");
    if (p->via.boolean)
      KEY(out, "true");
    else
      KEY(out, "false");
    break;
  case CTR_V_INT:
    if (!ctr_obj_i64(p, &i))
      return fail(why, "Int value is not a 64-bit integer", CTR_EPROTO);
    LIT(out, MAP3 "\x63" "Int" "\x61" "i");
    cbor_int(out, i);
    break;
  case CTR_V_FLOAT: {
    if (p->type != MSGPACK_OBJECT_FLOAT64 && p->type != MSGPACK_OBJECT_FLOAT32)
      return fail(why, "Float value is not a float", CTR_EPROTO);
    uint64_t bits;
    memcpy(&bits, &p->via.f64, 8);
    LIT(out, MAP3 "\x65" "Float" "\x61" "f");
    char f[9] = {(char)0xfb}; /* float64, big-endian */
    for (int k = 0; k < 8; k++)
      f[1 + k] = (char)(bits >> (8 * (7 - k)));
    ctr_buf_add(out, f, sizeof(f));
    break;
  }
  case CTR_V_STRING:
  case CTR_V_RAW:
  case CTR_V_ERROR:
    if (!ctr_obj_str(p, &s))
      return fail(why, "text payload is not str or bin", CTR_EPROTO);
    if (vk == CTR_V_STRING)
      LIT(out, MAP3 "\x66" "String" "\x64" "text");
    else if (vk == CTR_V_RAW)
      LIT(out, MAP3 "\x63" "Raw" "\x61" "r");
    else
      LIT(out, MAP3 "\x65" "Error" "\x63" "msg");
    ctr_ctfs_cbor_text(out, s.ptr, s.len);
    break;
  default:
    return 1;
  }
  return 0;
}

static int encode(const ctr_ctfs_value_ops_t *ops, const msgpack_object *o,
                  ctr_buf_t *out, uint32_t depth, const char **why) {
  uint32_t vk, tid;
  if (o->type == MSGPACK_OBJECT_EXT && ops->ext)
    return ops->ext(ops->ctx, o, out, depth, why);
  if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 2 ||
      !ctr_obj_u32(&o->via.array.ptr[0], &vk))
    return fail(why, "value is not [vkind, type_id, ...]", CTR_EPROTO);
  if (vk == CTR_V_DEF || vk == CTR_V_REF)
    return fail(why, "DEF or REF reached the trace writer", CTR_EPROTO);
  if (vk > CTR_V_ERROR || !ctr_obj_u32(&o->via.array.ptr[1], &tid))
    return fail(why, "unknown value kind or bad type id", CTR_EPROTO);
  int64_t type = ops->type(ops->ctx, tid);
  if (type < 0)
    return fail(why, "type id out of range", CTR_ERANGE);
  uint32_t n = o->via.array.size;
  const msgpack_object *p = n > 2 ? &o->via.array.ptr[2] : NULL;
  static const uint32_t arity[] = {2, 3, 3, 3, 3, 4, 3, 3, 3, 3, 3};
  if (n != arity[vk])
    return fail(why, "value has the wrong number of items", CTR_EPROTO);
  ctr_str_t s;
  int rc = 0;
  switch (vk) {
  case CTR_V_BIGINT: {
    const msgpack_object *mag = &o->via.array.ptr[3];
    if (p->type != MSGPACK_OBJECT_BOOLEAN || !ctr_obj_str(mag, &s))
      return fail(why, "BigInt value is not [5, tid, negative, bytes]",
                  CTR_EPROTO);
    head(out, 4, "BigInt");
    KEY(out, "b");
    put_head(out, 2, s.len);
    ctr_buf_add(out, s.ptr, s.len);
    KEY(out, "negative");
    ctr_buf_add(out, p->via.boolean ? "\xf5" : "\xf4", 1);
    break;
  }
  case CTR_V_SEQ:
    head(out, 4, "Sequence");
    KEY(out, "elements");
    if ((rc = elements(ops, p, false, out, depth, why)) < 0)
      return rc;
    KEY(out, "is_slice");
    ctr_buf_add(out, "\xf4", 1);
    break;
  case CTR_V_TUPLE:
    head(out, 3, "Tuple");
    KEY(out, "elements");
    rc = elements(ops, p, false, out, depth, why);
    break;
  case CTR_V_STRUCT:
    /* The Rust reader finds field names in the Struct type, which
     * types.dat (names only) cannot hold: they travel in the value, as
     * cbor.nim's optional "field_names" (left out when there are none). */
    head(out, ops->field && p->type == MSGPACK_OBJECT_ARRAY &&
                      p->via.array.size
                  ? 4
                  : 3,
         "Struct");
    KEY(out, "field_values");
    if ((rc = elements(ops, p, true, out, depth, why)) == 0 && ops->field &&
        p->via.array.size)
      rc = field_names(ops, p, out, why);
    break;
  default:
    rc = scalar(vk, p, out, why);
  }
  if (rc < 0)
    return rc;
  LIT(out, "\x67" "type_id");
  put_head(out, 0, (uint64_t)type);
  return 0;
}

int ctr_ctfs_cbor_value(const ctr_ctfs_value_ops_t *ops,
                        const msgpack_object *o, ctr_buf_t *out,
                        const char **why) {
  return ctr_ctfs_cbor_value_at(ops, o, out, 0, why);
}

int ctr_ctfs_cbor_value_at(const ctr_ctfs_value_ops_t *ops,
                           const msgpack_object *o, ctr_buf_t *out,
                           uint32_t depth, const char **why) {
  size_t mark = out->len;
  int rc = encode(ops, o, out, depth, why);
  if (rc < 0)
    out->len = mark;
  return rc;
}

int ctr_ctfs_cbor_scalar(const ctr_ctfs_value_ops_t *ops, uint32_t vk,
                         uint32_t tid, const msgpack_object *p, ctr_buf_t *out,
                         const char **why) {
  size_t mark = out->len;
  int64_t type = ops->type(ops->ctx, tid);
  int rc = type < 0 ? fail(why, "type id out of range", CTR_ERANGE)
                    : scalar(vk, p, out, why);

  if (rc == 1)
    rc = fail(why, "not a value that holds no other value", CTR_EPROTO);
  if (rc < 0) {
    out->len = mark;
    return rc;
  }
  LIT(out, "\x67" "type_id");
  put_head(out, 0, (uint64_t)type);
  return 0;
}
