/* ctr_buf.c: growable buffers and JSON text rendering. */
#include "ctr_buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ctr_buf_grow(ctr_buf_t *b, size_t extra) {
  size_t cap = b->cap ? b->cap : 256;

  while (cap < b->len + extra)
    cap *= 2;
  b->data = ctr_xrealloc(b->data, cap);
  b->cap = cap;
}

void ctr_buf_printf(ctr_buf_t *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n < sizeof(tmp)) {
    ctr_buf_add(b, tmp, (size_t)n);
    return;
  }
  ctr_buf_reserve(b, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void ctr_buf_free(ctr_buf_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

size_t ctr_utf8_seq(const unsigned char *s, size_t n) {
  uint32_t cp;
  size_t len, i;

  if (s[0] < 0x80)
    return 1;
  if ((s[0] & 0xe0) == 0xc0) {
    len = 2;
    cp = s[0] & 0x1f;
  } else if ((s[0] & 0xf0) == 0xe0) {
    len = 3;
    cp = s[0] & 0x0f;
  } else if ((s[0] & 0xf8) == 0xf0) {
    len = 4;
    cp = s[0] & 0x07;
  } else {
    return 0;
  }
  if (len > n)
    return 0;
  for (i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
      (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

const char *ctr_buf_printable(ctr_buf_t *b, const char *str, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0, run, start = b->len;
  char *o;

  ctr_buf_reserve(b, n * 4 + 1);
  o = b->data + b->len;
  while (i < n) {
    unsigned char c = s[i];
    run = c >= 0x80 ? ctr_utf8_seq(s + i, n - i) : 1;
    /* U+0080..U+009F, the C1 controls, are C2 80..C2 9F. */
    if (run > 1 && !(run == 2 && c == 0xc2 && s[i + 1] < 0xa0)) {
      memcpy(o, s + i, run);
      o += run;
      i += run;
    } else if (c == '\\') {
      *o++ = '\\';
      *o++ = '\\';
      i++;
    } else if (run == 1 && c >= 0x20 && c != 0x7f) {
      *o++ = (char)c;
      i++;
    } else {
      /* Each byte of a control character or an invalid sequence. */
      for (run = run ? run : 1; run > 0; run--, i++) {
        *o++ = '\\';
        *o++ = 'x';
        *o++ = hex[s[i] >> 4];
        *o++ = hex[s[i] & 15];
      }
    }
  }
  b->len = (size_t)(o - b->data);
  *o = '\0';
  return b->data + start;
}

void ctr_json_str(ctr_buf_t *b, const char *str, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0, run;
  char *o;

  /* Worst case per input byte is six output bytes ("\u00XX" or "\\xNN"). */
  ctr_buf_reserve(b, n * 6 + 2);
  o = b->data + b->len;
  *o++ = '"';
  while (i < n) {
    unsigned char c = s[i];
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      *o++ = (char)c;
      i++;
      continue;
    }
    if (c >= 0x80) {
      run = ctr_utf8_seq(s + i, n - i);
      if (run) {
        memcpy(o, s + i, run);
        o += run;
        i += run;
      } else {
        *o++ = '\\';
        *o++ = '\\';
        *o++ = 'x';
        *o++ = hex[c >> 4];
        *o++ = hex[c & 15];
        i++;
      }
      continue;
    }
    *o++ = '\\';
    switch (c) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case '\n': *o++ = 'n'; break;
    case '\r': *o++ = 'r'; break;
    case '\t': *o++ = 't'; break;
    case '\b': *o++ = 'b'; break;
    case '\f': *o++ = 'f'; break;
    default:
      *o++ = 'u';
      *o++ = '0';
      *o++ = '0';
      *o++ = hex[c >> 4];
      *o++ = hex[c & 15];
    }
    i++;
  }
  *o++ = '"';
  b->len = (size_t)(o - b->data);
}

/* Integers are the bulk of a trace (ids, lines, values), so they are
 * formatted by hand, two digits at a time, straight into the buffer. */
void ctr_json_u64(ctr_buf_t *b, uint64_t v) {
  static const char pairs[] = "00010203040506070809101112131415161718192021222324"
                              "25262728293031323334353637383940414243444546474849"
                              "50515253545556575859606162636465666768697071727374"
                              "75767778798081828384858687888990919293949596979899";
  static const uint64_t pow10[20] = {
      1u,          10u,          100u,          1000u,          10000u,
      100000u,     1000000u,     10000000u,     100000000u,     1000000000u,
      10000000000u,             100000000000u,
      1000000000000u,           10000000000000u,
      100000000000000u,         1000000000000000u,
      10000000000000000u,       100000000000000000u,
      1000000000000000000u,     10000000000000000000u};
  /* Digits from the bit length: 1233/4096 is just above log10(2). */
  size_t t = v ? (size_t)((64 - __builtin_clzll(v)) * 1233) >> 12 : 0;
  size_t n = t + (v >= pow10[t]);
  uint32_t w;
  char *o;

  if (n == 0)
    n = 1;
  ctr_buf_reserve(b, n);
  b->len += n;
  o = b->data + b->len;
  /* Four digits per 64-bit division, then two at a time in 32 bits. */
  while (v >= 10000) {
    uint32_t r = (uint32_t)(v % 10000);
    v /= 10000;
    o -= 4;
    memcpy(o, pairs + r / 100 * 2, 2);
    memcpy(o + 2, pairs + r % 100 * 2, 2);
  }
  w = (uint32_t)v;
  if (w >= 100) {
    o -= 2;
    memcpy(o, pairs + w % 100 * 2, 2);
    w /= 100;
  }
  if (w >= 10)
    memcpy(o - 2, pairs + w * 2, 2);
  else
    o[-1] = (char)('0' + w);
}

void ctr_json_i64(ctr_buf_t *b, int64_t v) {
  if (v < 0) {
    ctr_buf_add(b, "-", 1);
    ctr_json_u64(b, (uint64_t)0 - (uint64_t)v);
  } else {
    ctr_json_u64(b, (uint64_t)v);
  }
}

/* The shortest text takes up to three printf and strtod rounds, and the
 * same doubles come back step after step (variables that did not change
 * at that line), so recent texts are kept, by bit pattern. */
#define DOUBLE_CACHE 4096

static _Thread_local struct {
  uint64_t bits;
  char text[32]; /* "" when the entry is empty */
} double_cache[DOUBLE_CACHE];

void ctr_json_double_text(char out[32], double f) {
  uint64_t bits;
  int prec;

  memcpy(&bits, &f, sizeof bits);
  size_t slot = (size_t)((bits * 0x9E3779B97F4A7C15u) >> 52) % DOUBLE_CACHE;
  if (double_cache[slot].text[0] != '\0' && double_cache[slot].bits == bits) {
    memcpy(out, double_cache[slot].text, 32);
    return;
  }
  if (isnan(f)) {
    strcpy(out, "NaN");
  } else if (isinf(f)) {
    strcpy(out, f < 0 ? "-inf" : "inf");
  } else {
    for (prec = 15; prec <= 17; prec++) {
      snprintf(out, 32, "%.*g", prec, f);
      if (strtod(out, NULL) == f)
        break;
    }
    /* Keep a float looking like a float: "2" would read back as an
     * integer. */
    if (strspn(out, "-0123456789") == strlen(out))
      strcat(out, ".0");
  }
  double_cache[slot].bits = bits;
  memcpy(double_cache[slot].text, out, 32);
}

void ctr_json_frag(ctr_json_frag_t *f, const char *pre, int64_t id,
                   const char *post) {
  int n;

  memset(f->text, 0, sizeof(f->text)); /* ctr_buf_frag copies all of it */
  n = snprintf(f->text, sizeof(f->text), "%s%lld%s", pre, (long long)id, post);

  f->id = id;
  f->len = n > 0 && (size_t)n < sizeof(f->text) ? (uint32_t)n : 0;
}

void ctr_json_base64(ctr_buf_t *b, const unsigned char *p, size_t n) {
  static const char tab[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i;
  char *o;

  ctr_buf_reserve(b, (n + 2) / 3 * 4 + 2);
  o = b->data + b->len;
  *o++ = '"';
  for (i = 0; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    *o++ = tab[v >> 18];
    *o++ = tab[(v >> 12) & 63];
    *o++ = tab[(v >> 6) & 63];
    *o++ = tab[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
    *o++ = tab[v >> 18];
    *o++ = tab[(v >> 12) & 63];
    *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
    *o++ = '=';
  }
  *o++ = '"';
  b->len = (size_t)(o - b->data);
}
