/* ctr_listener.c: safe socket setup (tmux server.c and chrony do the same
 * checks for their control sockets). */
#include "ctr_listener.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctr_error.h"

#define SD_LISTEN_FDS_START 3

/* Checks that fd is a listening Unix stream socket, as sd_is_socket_unix
 * does, and keeps it from leaking into anything ctrecd might exec. */
static int check_inherited(int fd, char *err, size_t errlen) {
  struct sockaddr_un sa;
  socklen_t len = sizeof(int), salen = sizeof(sa);
  int type = 0, listening = 0;

  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
      getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &salen) != 0 ||
      sa.sun_family != AF_UNIX || type != SOCK_STREAM || !listening) {
    snprintf(err, errlen,
             "fd %d from systemd (LISTEN_FDS) is not a listening Unix "
             "stream socket",
             fd);
    return CTR_EPERM;
  }
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
    return -errno;
  return 0;
}

/* Sets *fd to the socket systemd passed (ctrecd.socket), or to -1 when
 * there is none. As sd_listen_fds(1) does, the variables count only
 * when LISTEN_PID is this process, and they are removed either way so that
 * no child inherits them. ctrecd.socket has one ListenStream; several sockets
 * are refused rather than guessed between. */
static int systemd_fd(int *fd, char *err, size_t errlen) {
  const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
  const char *names = getenv("LISTEN_FDNAMES");
  char *end;
  long n;
  int rc = 0;

  *fd = -1;

  if (pid && fds && strtol(pid, &end, 10) == (long)getpid() && *end == '\0') {
    size_t nnames = 1;
    for (const char *p = names; p && *p; p++)
      nnames += *p == ':';
    n = strtol(fds, &end, 10);
    if (*fds == '\0' || *end != '\0' || n < 1 || n > 1024) {
      snprintf(err, errlen, "LISTEN_FDS=%s: expected a number of sockets",
               fds);
      rc = CTR_ECONFIG;
    } else if (names && nnames != (size_t)n) {
      snprintf(err, errlen, "LISTEN_FDNAMES=%s names %zu socket(s), but "
               "LISTEN_FDS=%ld", names, nnames, n);
      rc = CTR_ECONFIG;
    } else if (n != 1) {
      snprintf(err, errlen, "systemd passed %ld sockets (%s); ctrecd listens "
               "on one: give its socket unit a single ListenStream", n,
               names ? names : "unnamed");
      rc = CTR_ECONFIG;
    } else {
      rc = check_inherited(SD_LISTEN_FDS_START, err, errlen);
      if (rc == 0)
        *fd = SD_LISTEN_FDS_START;
    }
  }
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  return rc;
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

int ctr_listener_open(ctr_listener_t *l, uv_loop_t *loop, const char *path,
                      unsigned mode, uv_connection_cb cb, char *err,
                      size_t errlen) {
  int fd, rc;
  struct stat sb;
  mode_t old;

  memset(l, 0, sizeof(*l));
  uv_pipe_init(loop, &l->pipe, 0);
  l->open = true;
  snprintf(l->path, sizeof(l->path), "%s", path);
  rc = systemd_fd(&fd, err, errlen);
  if (rc != 0)
    return rc;
  if (fd >= 0) {
    size_t len = sizeof(l->path) - 1;
    rc = uv_pipe_open(&l->pipe, fd);
    if (rc != 0)
      snprintf(err, errlen, "cannot use the socket from systemd: %s",
               uv_strerror(rc));
    /* Messages name the socket systemd made, whatever listen.path says. */
    else if (uv_pipe_getsockname(&l->pipe, l->path, &len) == 0 && len > 0)
      l->path[len] = '\0';
    else
      snprintf(l->path, sizeof(l->path), "fd %d from systemd", fd);
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
    rc = uv_pipe_bind(&l->pipe, path);
    umask(old);
    if (rc == 0 && lstat(path, &sb) != 0)
      rc = -errno;
    if (rc == 0) {
      l->bound = true;
      l->dev = sb.st_dev;
      l->ino = sb.st_ino;
      if (chmod(path, mode) != 0)
        rc = -errno;
    }
    if (rc != 0)
      snprintf(err, errlen, "cannot listen on %s: %s", path, uv_strerror(rc));
  }
  if (rc == 0) {
    rc = uv_listen((uv_stream_t *)&l->pipe, 128, cb);
    if (rc != 0)
      snprintf(err, errlen, "cannot listen on %s: %s", l->path,
               uv_strerror(rc));
  }
  return rc;
}

void ctr_listener_close(ctr_listener_t *l) {
  struct stat sb;

  if (!l->open)
    return;
  l->open = false;
  uv_close((uv_handle_t *)&l->pipe, NULL);
  /* Another daemon may have replaced the file since (after removing it as
   * stale); only the socket bound here goes. */
  if (l->bound && lstat(l->path, &sb) == 0 && S_ISSOCK(sb.st_mode) &&
      sb.st_dev == l->dev && sb.st_ino == l->ino)
    unlink(l->path);
}
