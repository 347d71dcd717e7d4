/* ctr_listener.c: safe socket setup (tmux server.c and chrony do the same
 * checks for their control sockets). */
#include "ctr_listener.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctr_error.h"

#define SD_LISTEN_FDS_START 3

/* The socket systemd passed (ctrecd.socket), or -1. */
static int systemd_fd(void) {
  const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");

  if (pid == NULL || fds == NULL || atol(pid) != (long)getpid() || atoi(fds) < 1)
    return -1;
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  return SD_LISTEN_FDS_START;
}

/* Creates missing parents; the socket's own directory gets the socket's
 * access bits turned into directory bits, so 0600 gives 0700. */
static int private_dir(const char *path, unsigned mode, char *err,
                       size_t errlen) {
  char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
  struct stat sb;
  char *slash, *p;
  unsigned dmode = 0700 | ((mode & 0060) ? 0050 : 0) | ((mode & 0006) ? 0005 : 0);

  snprintf(dir, sizeof(dir), "%s", path);
  slash = strrchr(dir, '/');
  if (slash == NULL || slash == dir)
    return 0;
  *slash = '\0';
  if (stat(dir, &sb) != 0) {
    for (p = dir + 1; *p; p++) {
      if (*p != '/')
        continue;
      *p = '\0';
      if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -errno;
      }
      *p = '/';
    }
    if (mkdir(dir, dmode) != 0 && errno != EEXIST) {
      snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
      return -errno;
    }
    if (stat(dir, &sb) != 0)
      return -errno;
  }
  if (!S_ISDIR(sb.st_mode)) {
    snprintf(err, errlen, "%s is not a directory", dir);
    return CTR_EPERM;
  }
  if ((sb.st_uid != geteuid() && sb.st_uid != 0) ||
      ((sb.st_mode & 0022) && !(sb.st_mode & S_ISVTX))) {
    snprintf(err, errlen,
             "%s is writable by other users; use a private directory", dir);
    return CTR_EPERM;
  }
  return 0;
}

/* Unlinks a socket no daemon answers on; refuses a live one. */
static int clear_stale(const char *path, char *err, size_t errlen) {
  struct sockaddr_un sa;
  struct stat sb;
  int fd, rc;

  if (lstat(path, &sb) != 0)
    return errno == ENOENT ? 0 : -errno;
  if (!S_ISSOCK(sb.st_mode)) {
    snprintf(err, errlen, "%s exists and is not a socket", path);
    return CTR_EPERM;
  }
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
  close(fd);
  if (rc == 0) {
    snprintf(err, errlen, "another ctrecd is already listening on %s", path);
    return UV_EADDRINUSE;
  }
  if (unlink(path) != 0 && errno != ENOENT) {
    snprintf(err, errlen, "cannot remove stale socket %s: %s", path,
             strerror(errno));
    return -errno;
  }
  return 0;
}

int ctr_listener_open(uv_loop_t *loop, uv_pipe_t *pipe, const char *path,
                      unsigned mode, uv_connection_cb cb, char *err,
                      size_t errlen) {
  int fd = systemd_fd(), rc;
  mode_t old;

  uv_pipe_init(loop, pipe, 0);
  if (fd >= 0) {
    rc = uv_pipe_open(pipe, fd);
    if (rc != 0)
      snprintf(err, errlen, "cannot use the socket from systemd: %s",
               uv_strerror(rc));
  } else {
    if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
      snprintf(err, errlen, "socket path too long: %s", path);
      return UV_ENAMETOOLONG;
    }
    rc = private_dir(path, mode, err, errlen);
    if (rc == 0)
      rc = clear_stale(path, err, errlen);
    if (rc != 0)
      return rc;
    /* The umask closes the window between bind and chmod. */
    old = umask(0177);
    rc = uv_pipe_bind(pipe, path);
    umask(old);
    if (rc == 0 && chmod(path, mode) != 0)
      rc = -errno;
    if (rc != 0)
      snprintf(err, errlen, "cannot listen on %s: %s", path, uv_strerror(rc));
  }
  if (rc == 0) {
    rc = uv_listen((uv_stream_t *)pipe, 128, cb);
    if (rc != 0)
      snprintf(err, errlen, "cannot listen on %s: %s", path, uv_strerror(rc));
  }
  return rc;
}
