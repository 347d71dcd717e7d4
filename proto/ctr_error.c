/* ctr_error.c: user-facing names for ctrec error codes. */
#include "ctr_error.h"

#include <string.h>

const char *ctr_strerror(int code) {
  switch (code) {
  case 0:
    return "success";
  case CTR_EPROTO:
    return "malformed message";
  case CTR_EFRAME:
    return "frame larger than limits.max_frame";
  case CTR_ELIMIT:
    return "value past a configured limit";
  case CTR_ETAG:
    return "unknown message tag";
  case CTR_ERANGE:
    return "id out of range";
  case CTR_EPATH:
    return "path would escape the trace folder";
  case CTR_EVERSION:
    return "protocol version mismatch";
  case CTR_ECONFIG:
    return "invalid configuration";
  case CTR_ENOMEM:
    return "out of memory";
  case CTR_ESTATE:
    return "message not allowed in this state";
  case CTR_EPERM:
    return "peer not allowed";
  default:
    break;
  }
  /* Negative errno values (and libuv's UV_E* codes, which are the same on
   * Unix) are named by the C library. Anything else is a caller bug, but it
   * still deserves a readable answer rather than NULL. */
  if (code < 0 && code > -10000)
    return strerror(-code);
  return "unknown error";
}
