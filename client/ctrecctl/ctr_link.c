/* ctr_link.c: see ctr_link.h. */
#include "ctr_link.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctr_fifo_dial.h"

/* The FIFO links ctrecctl holds (a verb holds one or two at a time). */
#define LINKS 16

static struct {
  int rfd, wfd;
  bool settled; /* the daemon answered: rfd reopened read-only */
} links[LINKS];
static int nlinks;

static int find(int fd) {
  for (int i = 0; i < nlinks; i++)
    if (links[i].rfd == fd)
      return i;
  return -1;
}

static int open_socket(const char *path, int timeout_ms) {
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  struct sockaddr_un sa;
  int fd;

  if (strlen(path) >= sizeof(sa.sun_path)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  strcpy(sa.sun_path, path);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  /* A full listen queue makes connect() wait, for at most the send
   * timeout. */
  if (tv.tv_sec + tv.tv_usec == 0)
    tv.tv_usec = 1000;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
      connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int ctr_link_open(const char *spec, int timeout_ms) {
  const char *dir = ctr_fifo_spec(spec);
  char why[256];
  int rfd, wfd, rc;

  if (dir == NULL)
    return open_socket(spec, timeout_ms);
  if (nlinks == LINKS) {
    errno = EMFILE;
    return -1;
  }
  if ((rc = ctr_fifo_dial(dir, &rfd, &wfd, why, sizeof(why))) != 0) {
    errno = -rc;
    return -1;
  }
  links[nlinks].rfd = rfd;
  links[nlinks].wfd = wfd;
  links[nlinks].settled = false;
  nlinks++;
  return rfd;
}

int ctr_link_write(int fd, const void *p, size_t n) {
  int i = find(fd);
  size_t off = 0;

  while (off < n) {
    ssize_t w = i < 0 ? send(fd, (const char *)p + off, n - off, MSG_NOSIGNAL)
                      : write(links[i].wfd, (const char *)p + off, n - off);
    if (w < 0 && errno == EAGAIN) {
      struct pollfd pf = {i < 0 ? fd : links[i].wfd, POLLOUT, 0};
      (void)poll(&pf, 1, 1000);
      continue;
    }
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    off += (size_t)w;
  }
  return 0;
}

ssize_t ctr_link_read(int fd, void *p, size_t n) {
  int i = find(fd);
  ssize_t r;

  if (i < 0)
    return recv(fd, p, n, MSG_DONTWAIT);
  r = read(fd, p, n);
  /* Once the daemon has written, it holds both FIFOs: from then on its
   * going away is an end of stream here (PROTOCOL.md 1.1). */
  if (r > 0 && !links[i].settled && ctr_fifo_settle(fd) == 0)
    links[i].settled = true;
  return r;
}

void ctr_link_close(int fd) {
  int i = find(fd);

  if (i >= 0) {
    close(links[i].wfd);
    links[i] = links[--nlinks];
  }
  close(fd);
}
