/* ctr_error.h: error codes shared by every ctrec module.
 *
 * Functions return 0 or a negative code: CTR_E* below, or a negated errno
 * value (libuv's UV_E* codes are negated errno values on Unix too). */
#ifndef CTR_ERROR_H
#define CTR_ERROR_H

enum ctr_error {
  CTR_EPROTO = -10001,   /* malformed message or value */
  CTR_EFRAME = -10002,   /* frame larger than limits.max_frame */
  CTR_ELIMIT = -10003,   /* depth, length or count past a limit */
  CTR_ETAG = -10004,     /* unknown message tag */
  CTR_ERANGE = -10005,   /* id out of range */
  CTR_EPATH = -10006,    /* path would escape the trace folder */
  CTR_EVERSION = -10007, /* protocol version mismatch */
  CTR_ECONFIG = -10008,  /* invalid configuration */
  CTR_ENOMEM = -10009,   /* allocation failed */
  CTR_ESTATE = -10010,   /* message not allowed in this state */
  CTR_EPERM = -10011,    /* peer not allowed */
};

/* Names the code for a user: "malformed message", or strerror() text. */
const char *ctr_strerror(int code);

#endif
