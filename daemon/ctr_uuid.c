/* ctr_uuid.c: UUIDv7 recording ids. */
#include "ctr_uuid.h"

#include <errno.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>

#include "ctr_error.h"

static int fill_random(unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t got = getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += got;
    n -= (size_t)got;
  }
  return 0;
}

int ctr_uuid7_at(char out[CTR_UUID_LEN + 1], int64_t now_ms) {
  /* The last id's time and counter (the daemon makes ids on one thread). */
  static uint64_t last_ms;
  static uint16_t counter;
  unsigned char u[16];
  uint64_t ms = now_ms < 0 ? 0 : (uint64_t)now_ms;
  int rc, i;

  if ((rc = fill_random(u, sizeof(u))) != 0)
    return rc;
  if (ms <= last_ms) {
    /* Within the same millisecond (or a clock that went back): the next
     * counter value; once it overflows, borrow the next millisecond. */
    ms = last_ms;
    if (++counter > 0xfff) {
      ms++;
      counter = (uint16_t)(u[6] & 0x07) << 8 | u[7];
    }
  } else {
    /* A random start that leaves room to count up. */
    counter = (uint16_t)(u[6] & 0x07) << 8 | u[7];
  }
  last_ms = ms;
  for (i = 0; i < 6; i++)
    u[i] = (unsigned char)(ms >> (40 - 8 * i));
  u[6] = (unsigned char)(0x70 | (counter >> 8));
  u[7] = (unsigned char)counter;
  u[8] = (unsigned char)(0x80 | (u[8] & 0x3f));
  snprintf(out, CTR_UUID_LEN + 1,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
           "%02x%02x%02x%02x%02x%02x",
           u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10],
           u[11], u[12], u[13], u[14], u[15]);
  return 0;
}

int ctr_uuid7(char out[CTR_UUID_LEN + 1]) {
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return ctr_uuid7_at(out, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}
