/* ctr_frame.c: reassembles length-prefixed frames from a byte stream.
 *
 * The length is checked against max_frame before any memory is reserved, so
 * a peer that announces a huge frame costs nothing. A frame that arrives
 * whole inside one feed is handed to the callback straight from the caller's
 * bytes; only frames split across feeds are copied. */
#include "ctr_proto.h"

#include <stdlib.h>
#include <string.h>

/* A buffer larger than this is released once its frame is delivered, so one
 * big frame does not pin memory for the rest of a long connection. */
#define CTR_FRAME_KEEP (1u << 20)
#define CTR_FRAME_MIN_GROW (64u << 10)

void ctr_frame_reader_init(ctr_frame_reader_t *fr, uint32_t max_frame) {
  memset(fr, 0, sizeof(*fr));
  fr->max_frame = max_frame;
}

void ctr_frame_reader_free(ctr_frame_reader_t *fr) {
  free(fr->buf);
  fr->buf = NULL;
  fr->cap = 0;
  fr->header_len = 0;
  fr->need = 0;
  fr->have = 0;
}

bool ctr_frame_reader_idle(const ctr_frame_reader_t *fr) {
  return fr->header_len == 0;
}

void ctr_frame_put_header(char out[CTR_FRAME_HEADER], uint32_t len) {
  out[0] = (char)(len & 0xff);
  out[1] = (char)((len >> 8) & 0xff);
  out[2] = (char)((len >> 16) & 0xff);
  out[3] = (char)((len >> 24) & 0xff);
}

static uint32_t get_header(const char h[CTR_FRAME_HEADER]) {
  const unsigned char *u = (const unsigned char *)h;
  return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 |
         (uint32_t)u[3] << 24;
}

/* Makes room for the payload of the frame whose header just completed. */
/* Room for avail more bytes of the frame being read. The buffer grows with
 * what arrived (doubling, up to the frame's length), never with what a
 * header merely announces: a client that sends a header and stalls holds
 * little memory. */
static int reserve(ctr_frame_reader_t *fr, size_t avail) {
  size_t want = fr->have + (avail < fr->need - fr->have ? avail : fr->need - fr->have);
  size_t cap;
  char *nb;

  if (want <= fr->cap)
    return 0;
  cap = fr->cap * 2 > CTR_FRAME_MIN_GROW ? fr->cap * 2 : CTR_FRAME_MIN_GROW;
  if (cap < want)
    cap = want;
  if (cap > fr->need)
    cap = fr->need;
  nb = realloc(fr->buf, cap);
  if (nb == NULL)
    return CTR_ENOMEM;
  fr->buf = nb;
  fr->cap = (uint32_t)cap;
  return 0;
}

/* Ends the current frame so the next byte starts a header. This happens
 * before the callback runs, so the reader is consistent whatever it does. */
static void reset(ctr_frame_reader_t *fr) {
  fr->header_len = 0;
  fr->need = 0;
  fr->have = 0;
}

int ctr_frame_reader_feed(ctr_frame_reader_t *fr, const char *data, size_t len,
                          ctr_frame_cb cb, void *arg) {
  int rc;

  /* An oversized header stays in place so that every later feed fails the
   * same way: the stream cannot be resynchronised. */
  if (fr->header_len == CTR_FRAME_HEADER && fr->need > fr->max_frame)
    return CTR_EFRAME;

  while (len > 0) {
    if (fr->header_len < CTR_FRAME_HEADER) {
      size_t n = CTR_FRAME_HEADER - fr->header_len;
      if (n > len)
        n = len;
      memcpy(fr->header + fr->header_len, data, n);
      fr->header_len += (uint32_t)n;
      data += n;
      len -= n;
      if (fr->header_len < CTR_FRAME_HEADER)
        return 0;
      fr->need = get_header(fr->header);
      fr->have = 0;
      if (fr->need > fr->max_frame)
        return CTR_EFRAME;
    }

    if (fr->have == 0 && len >= fr->need) {
      /* The whole payload is here (or it is empty): no copy. */
      const char *payload = data;
      uint32_t n = fr->need;
      data += n;
      len -= n;
      reset(fr);
      rc = cb(arg, payload, n);
      if (rc != 0)
        return rc;
      continue;
    }

    rc = reserve(fr, len);
    if (rc != 0)
      return rc;
    {
      size_t n = fr->need - fr->have;
      if (n > len)
        n = len;
      if (n > 0) /* no buffer yet when nothing is left to copy */
        memcpy(fr->buf + fr->have, data, n);
      fr->have += (uint32_t)n;
      data += n;
      len -= n;
    }
    if (fr->have < fr->need)
      return 0;

    {
      uint32_t n = fr->need;
      reset(fr);
      rc = cb(arg, fr->buf, n);
      /* The callback is done with the payload, so a large buffer can go. */
      if (fr->cap > CTR_FRAME_KEEP) {
        free(fr->buf);
        fr->buf = NULL;
        fr->cap = 0;
      }
      if (rc != 0)
        return rc;
    }
  }
  return 0;
}
