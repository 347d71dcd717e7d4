/* ctr_enc.h: msgpack encoding of the hot messages straight into memory.
 *
 * msgpack-c's packer hands every item to a callback, which costs more than
 * the encoding itself when the item is a small integer. These inline
 * encoders write at a cursor instead and return the cursor after what they
 * wrote; the caller makes sure there is room (CTR_ENC_*_MAX bound each
 * piece). They pick the same forms msgpack-c does (the shortest encoding of
 * each integer), so either way the bytes on the wire are the same. */
#ifndef CTR_ENC_H
#define CTR_ENC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ctr_proto.h"

/* The most bytes one integer, one array head or one text head takes. */
#define CTR_ENC_INT_MAX 9
#define CTR_ENC_HEAD_MAX 5
/* STEP [20, path_id, line]; VARS head [23, [n]]; a pair head [id, ...];
 * a scalar value [vkind, tid, payload] without text bytes. */
#define CTR_ENC_STEP_MAX (1 + 1 + CTR_ENC_INT_MAX + CTR_ENC_INT_MAX)
#define CTR_ENC_VARS_MAX (1 + 1 + CTR_ENC_HEAD_MAX)
#define CTR_ENC_PAIR_MAX (1 + CTR_ENC_INT_MAX)
#define CTR_ENC_SCALAR_MAX (1 + 1 + CTR_ENC_INT_MAX + CTR_ENC_INT_MAX)

static inline unsigned char *ctr_enc_be(unsigned char *p, unsigned char tag,
                                        uint64_t v, int bytes) {
  *p++ = tag;
  for (int i = bytes - 1; i >= 0; i--)
    *p++ = (unsigned char)(v >> (8 * i));
  return p;
}

static inline unsigned char *ctr_enc_uint(unsigned char *p, uint64_t v) {
  if (v < 0x80) {
    *p++ = (unsigned char)v;
    return p;
  }
  if (v <= UINT8_MAX)
    return ctr_enc_be(p, 0xcc, v, 1);
  if (v <= UINT16_MAX)
    return ctr_enc_be(p, 0xcd, v, 2);
  if (v <= UINT32_MAX)
    return ctr_enc_be(p, 0xce, v, 4);
  return ctr_enc_be(p, 0xcf, v, 8);
}

static inline unsigned char *ctr_enc_int(unsigned char *p, int64_t v) {
  if (v >= 0)
    return ctr_enc_uint(p, (uint64_t)v);
  if (v >= -32) {
    *p++ = (unsigned char)(int8_t)v;
    return p;
  }
  if (v >= INT8_MIN)
    return ctr_enc_be(p, 0xd0, (uint64_t)v, 1);
  if (v >= INT16_MIN)
    return ctr_enc_be(p, 0xd1, (uint64_t)v, 2);
  if (v >= INT32_MIN)
    return ctr_enc_be(p, 0xd2, (uint64_t)v, 4);
  return ctr_enc_be(p, 0xd3, (uint64_t)v, 8);
}

static inline unsigned char *ctr_enc_array(unsigned char *p, uint32_t n) {
  if (n < 16) {
    *p++ = (unsigned char)(0x90 | n);
    return p;
  }
  if (n <= UINT16_MAX)
    return ctr_enc_be(p, 0xdc, n, 2);
  return ctr_enc_be(p, 0xdd, n, 4);
}

static inline unsigned char *ctr_enc_bool(unsigned char *p, bool b) {
  *p++ = b ? 0xc3 : 0xc2;
  return p;
}

static inline unsigned char *ctr_enc_double(unsigned char *p, double f) {
  uint64_t bits;
  memcpy(&bits, &f, sizeof bits);
  return ctr_enc_be(p, 0xcb, bits, 8);
}

/* The head of a str (bin false) or bin of n bytes; the bytes follow. */
static inline unsigned char *ctr_enc_text_head(unsigned char *p, bool bin,
                                               size_t n) {
  if (!bin && n < 32) {
    *p++ = (unsigned char)(0xa0 | n);
    return p;
  }
  if (n <= UINT8_MAX)
    return ctr_enc_be(p, bin ? 0xc4 : 0xd9, n, 1);
  if (n <= UINT16_MAX)
    return ctr_enc_be(p, bin ? 0xc5 : 0xda, n, 2);
  return ctr_enc_be(p, bin ? 0xc6 : 0xdb, n, 4);
}

/* [tag, ...] with n elements in all (tags are below 128). */
static inline unsigned char *ctr_enc_head(unsigned char *p, uint32_t n,
                                          int tag) {
  p = ctr_enc_array(p, n);
  *p++ = (unsigned char)tag;
  return p;
}

/* A value [vkind, type_id, payload...] with n elements in all. */
static inline unsigned char *ctr_enc_value_head(unsigned char *p, uint32_t n,
                                                int vkind, uint32_t tid) {
  p = ctr_enc_head(p, n, vkind);
  return ctr_enc_uint(p, tid);
}

static inline unsigned char *ctr_enc_step(unsigned char *p, uint32_t path_id,
                                          int64_t line) {
  p = ctr_enc_head(p, 3, CTR_MSG_STEP);
  p = ctr_enc_uint(p, path_id);
  return ctr_enc_int(p, line);
}

#endif
