/* ctr_fifo_dial.c: see ctr_fifo_dial.h. */
#include "ctr_fifo_dial.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *ctr_fifo_spec(const char *spec) {
  size_t n = strlen(CTR_FIFO_PREFIX);

  return spec && strncmp(spec, CTR_FIFO_PREFIX, n) == 0 ? spec + n : NULL;
}

static int fail(char *why, size_t whylen, const char *what, const char *dir) {
  int e = errno;

  snprintf(why, whylen, "%s%s: %s", CTR_FIFO_PREFIX, dir,
           e == ENXIO && what == NULL ? "no ctrecd reads this folder"
                                      : strerror(e));
  return -e;
}

int ctr_fifo_dial(const char *dir, int *rfd, int *wfd, char *why,
                  size_t whylen) {
  char name[64], in[4096], out[4096], reg[4096], rec[128];
  unsigned rnd = 0;
  int fd, rc, len;

  *rfd = *wfd = -1;
  if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
    rnd = (unsigned)time(NULL) ^ (unsigned)clock();
  snprintf(name, sizeof(name), "c-%ld-%08x", (long)getpid(), rnd);
  if (snprintf(in, sizeof(in), "%s/%s.in", dir, name) >= (int)sizeof(in) ||
      snprintf(out, sizeof(out), "%s/%s.out", dir, name) >= (int)sizeof(out) ||
      snprintf(reg, sizeof(reg), "%s/ctrecd.reg", dir) >= (int)sizeof(reg)) {
    errno = ENAMETOOLONG;
    return fail(why, whylen, "", dir);
  }
  if (mkfifo(in, 0600) != 0)
    return fail(why, whylen, "", dir);
  if (mkfifo(out, 0600) != 0) {
    rc = fail(why, whylen, "", dir);
    unlink(in);
    return rc;
  }
  /* Read-write: opening never blocks, and no end of stream is read while
   * the daemon has yet to open its side. */
  *rfd = open(out, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
  *wfd = *rfd < 0 ? -1 : open(in, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
  fd = *wfd < 0 ? -1 : open(reg, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
  len = snprintf(rec, sizeof(rec), "ctrec1 %s %ld\n", name, (long)getpid());
  /* One write of less than PIPE_BUF: whole or not at all. */
  if (fd < 0 || write(fd, rec, (size_t)len) != len) {
    rc = fail(why, whylen, fd < 0 && *wfd >= 0 ? NULL : "", dir);
    if (fd >= 0)
      close(fd);
    if (*rfd >= 0)
      close(*rfd);
    if (*wfd >= 0)
      close(*wfd);
    *rfd = *wfd = -1;
    unlink(in);
    unlink(out);
    return rc;
  }
  close(fd);
  return 0;
}

int ctr_fifo_settle(int rfd) {
  char self[64];
  int fd, rc = 0;

  snprintf(self, sizeof(self), "/proc/self/fd/%d", rfd);
  fd = open(self, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  if (dup3(fd, rfd, O_CLOEXEC) < 0)
    rc = -errno;
  close(fd);
  return rc;
}
