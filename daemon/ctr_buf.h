/* ctr_buf.h: a growable byte buffer and the JSON text helpers built on it.
 *
 * Rendering appends into buffers that are reused across records, so writing
 * a trace costs no heap allocation per event once buffers reach their size. */
#ifndef CTR_BUF_H
#define CTR_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ctr_alloc.h"

typedef struct ctr_buf_s {
  char *data;
  size_t len;
  size_t cap;
} ctr_buf_t;

void ctr_buf_grow(ctr_buf_t *b, size_t extra); /* aborts when out of memory */

/* Appending is the daemon's innermost loop, so the common case is inline
 * and string literals are appended without strlen. */
static inline void ctr_buf_reserve(ctr_buf_t *b, size_t extra) {
  if (b->len + extra > b->cap)
    ctr_buf_grow(b, extra);
}

static inline void ctr_buf_add(ctr_buf_t *b, const void *p, size_t n) {
  ctr_buf_reserve(b, n);
  if (n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
}

static inline void ctr_buf_puts(ctr_buf_t *b, const char *s) {
  ctr_buf_add(b, s, strlen(s));
}
void ctr_buf_printf(ctr_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ctr_buf_free(ctr_buf_t *b);

/* A quoted JSON string. Valid UTF-8 is kept; each byte of an invalid
 * sequence becomes the text \xNN (as Ruby and Python print it), so binary
 * strings survive readably and the JSON stays valid. */
/* Length of the valid UTF-8 sequence at s (n > 0 bytes there), or 0 when
 * it is invalid (overlong forms, surrogates and values past U+10FFFF are
 * invalid). */
size_t ctr_utf8_seq(const unsigned char *s, size_t n);
void ctr_json_str(ctr_buf_t *b, const char *s, size_t n);
/* s as text safe for a log line or a terminal: valid UTF-8 is kept except
 * control characters (C0, DEL, C1) and backslash, which become \xNN and
 * \\, as does each byte of an invalid sequence. A client's string so
 * printed can neither forge a line nor send an escape sequence. Returns
 * the text appended, NUL-terminated. */
const char *ctr_buf_printable(ctr_buf_t *b, const char *s, size_t n);
void ctr_json_i64(ctr_buf_t *b, int64_t v);
void ctr_json_u64(ctr_buf_t *b, uint64_t v);
/* Shortest text that reads back as the same double: "2.5", "1e+300",
 * "NaN", "inf", "-inf". */
void ctr_json_double_text(char out[32], double f);
void ctr_json_base64(ctr_buf_t *b, const unsigned char *p, size_t n);

/* The JSON text around one trace id, such as {"variable_id":3,"value":,
 * rendered once when the id is assigned: the same few ids are written
 * millions of times, and copying their text costs less than formatting. */
typedef struct ctr_json_frag_s {
  int64_t id;
  uint32_t len;
  char text[68];
} ctr_json_frag_t;

/* Sets f to pre, id in decimal, post (together at most 64 bytes). */
void ctr_json_frag(ctr_json_frag_t *f, const char *pre, int64_t id,
                   const char *post);

/* Copies the whole text array and counts len bytes of it: a copy of fixed
 * size compiles to a few moves, where one of variable size calls memcpy. */
static inline void ctr_buf_frag(ctr_buf_t *b, const ctr_json_frag_t *f) {
  ctr_buf_reserve(b, sizeof(f->text));
  memcpy(b->data + b->len, f->text, sizeof(f->text));
  b->len += f->len;
}

#endif
