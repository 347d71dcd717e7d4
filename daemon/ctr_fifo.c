/* ctr_fifo.c: the named-pipe listener (see ctr_fifo.h, PROTOCOL.md 1.1).
 *
 * Nothing a client names is trusted until checked on the open descriptor:
 * a name is one path component of a fixed alphabet, each FIFO is checked
 * with lstat, opened without following links and without blocking, and
 * checked again with fstat against what lstat saw. Who the client is comes
 * from the FIFOs' owner, and the pid only from the kernel's view of which
 * process holds the FIFO. */
#include "ctr_fifo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctr_conn.h"
#include "ctr_error.h"
#include "ctr_log.h"

#define REG_NAME "ctrecd.reg"
#define NAME_MAX_LEN 64
/* Descriptors of a registering process looked at for its FIFO. */
#define FD_SCAN_MAX 65536

static bool name_ok(const char *name) {
  size_t n = strlen(name);

  if (n == 0 || n > NAME_MAX_LEN || name[0] == '.')
    return false;
  return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                      "0123456789._-") == n;
}

/* A FIFO of the pair as the client must have made it. */
static bool fifo_ok(const struct stat *st) {
  return S_ISFIFO(st->st_mode) && (st->st_mode & 077) == 0;
}

/* Whether process pid, owned by uid, holds the FIFO dev/ino open. */
static bool holds(long pid, uid_t uid, dev_t dev, ino_t ino) {
  char path[64];
  struct stat st;
  struct dirent *e;
  DIR *d;
  int n = 0;
  bool found = false;

  snprintf(path, sizeof(path), "/proc/%ld", pid);
  if (pid <= 0 || stat(path, &st) != 0 || st.st_uid != uid)
    return false;
  snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
  if ((d = opendir(path)) == NULL)
    return false;
  /* stat follows each fd's link to its file without opening it. */
  while (!found && n++ < FD_SCAN_MAX && (e = readdir(d)) != NULL)
    found = e->d_name[0] != '.' && fstatat(dirfd(d), e->d_name, &st, 0) == 0 &&
            st.st_dev == dev && st.st_ino == ino;
  closedir(d);
  return found;
}

/* Opens dir/name.suffix as flags and checks it is what lstat saw; on
 * failure -1 with *why set. */
static int open_checked(ctr_fifo_t *f, const char *name, const char *suffix,
                        int flags, struct stat *seen, const char **why) {
  char path[NAME_MAX_LEN + 8];
  struct stat st;
  int fd;

  snprintf(path, sizeof(path), "%s.%s", name, suffix);
  if (fstatat(f->dirfd, path, seen, AT_SYMLINK_NOFOLLOW) != 0) {
    *why = "a FIFO of the pair is missing";
    return -1;
  }
  if (!fifo_ok(seen)) {
    *why = "not a pair of FIFOs of mode 0600";
    return -1;
  }
  fd = openat(f->dirfd, path, flags | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    /* ENXIO: nobody holds NAME.out open for reading. */
    *why = errno == ENXIO ? "the client does not hold its FIFOs open"
                          : "a FIFO of the pair cannot be opened";
    return -1;
  }
  if (fstat(fd, &st) != 0 || st.st_dev != seen->st_dev ||
      st.st_ino != seen->st_ino) {
    close(fd);
    *why = "a FIFO of the pair was replaced while being opened";
    return -1;
  }
  return fd;
}

/* Whether a dropped registration may be logged: one line a second at
 * most, so that a client writing bad records as fast as it can does not
 * flood the log; the next line says how many were left out. */
static bool say(ctr_fifo_t *f) {
  uint64_t now = uv_now(f->srv->loop);

  if (f->said && now - f->said < 1000) {
    f->unsaid++;
    return false;
  }
  if (f->unsaid)
    CTR_WARN("fifo: %llu more registration(s) dropped",
             (unsigned long long)f->unsaid);
  f->said = now ? now : 1;
  f->unsaid = 0;
  return true;
}

static void unlink_pair(ctr_fifo_t *f, const char *name) {
  char path[NAME_MAX_LEN + 8];

  snprintf(path, sizeof(path), "%s.in", name);
  unlinkat(f->dirfd, path, 0);
  snprintf(path, sizeof(path), "%s.out", name);
  unlinkat(f->dirfd, path, 0);
}

/* One record: "ctrec1 NAME PID". */
static void registration(ctr_fifo_t *f, char *rec) {
  char name[NAME_MAX_LEN + 1], extra;
  const char *why;
  struct stat in, out;
  ctr_peer_t cred;
  long pid;
  int rfd, wfd, rc;

  if (sscanf(rec, "ctrec1 %64s %ld %c", name, &pid, &extra) != 2 ||
      !name_ok(name)) {
    if (say(f))
      CTR_WARN("fifo registration: not \"ctrec1 NAME PID\"; dropped");
    return;
  }
  /* A refused registration removes nothing: it may name someone else's
   * pair, whose own registration is still to come (stale FIFOs go at
   * the sweep). */
  rfd = open_checked(f, name, "in", O_RDONLY, &in, &why);
  wfd = rfd < 0 ? -1 : open_checked(f, name, "out", O_WRONLY, &out, &why);
  if (wfd < 0) {
    /* why is set */
  } else if (out.st_uid != in.st_uid) {
    why = "the FIFOs of the pair have different owners";
  } else if (!holds(pid, in.st_uid, in.st_dev, in.st_ino)) {
    why = "the pid given does not hold the FIFO";
  } else {
    /* From here the pair is the two processes' only. */
    unlink_pair(f, name);
    cred.pid = pid;
    cred.uid = in.st_uid;
    cred.gid = in.st_gid;
    if ((rc = ctr_conn_accept_pair(f->srv, rfd, wfd, &cred)) == 0)
      return;
    f->srv->refused++;
    if (say(f))
      CTR_WARN("fifo registration %s: %s", name, ctr_strerror(rc));
    return;
  }
  if (rfd >= 0)
    close(rfd);
  if (wfd >= 0)
    close(wfd);
  if (say(f))
    CTR_WARN("fifo registration %s (pid %ld): %s; dropped", name, pid, why);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  ctr_fifo_t *f = h->data;

  *buf = uv_buf_init(f->srv->read_buf, sizeof(f->srv->read_buf));
}

/* Records end at a newline; one longer than CTR_FIFO_RECORD_MAX is dropped
 * whole (a writer past PIPE_BUF may interleave with others anyway). */
static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  ctr_fifo_t *f = s->data;

  for (ssize_t i = 0; i < n; i++) {
    char ch = buf->base[i];
    if (ch == '\n') {
      if (!f->skipping) {
        f->rec[f->len] = '\0';
        registration(f, f->rec);
      }
      f->len = 0;
      f->skipping = false;
    } else if (f->skipping || f->len + 1 >= sizeof(f->rec)) {
      if (!f->skipping && say(f))
        CTR_WARN("fifo registration longer than %d bytes; dropped",
                 CTR_FIFO_RECORD_MAX);
      f->skipping = true;
    } else {
      f->rec[f->len++] = ch;
    }
  }
}

/* The modes that listen.mode's bits for the group and others give. */
static void modes(unsigned mode, mode_t *dir, mode_t *reg) {
  if (mode & 0006)
    *dir = 01733, *reg = 0622;
  else if (mode & 0060)
    *dir = 01730, *reg = 0620;
  else
    *dir = 0700, *reg = 0600;
}

int ctr_fifo_open(ctr_fifo_t *f, struct ctr_server_s *srv, const char *dir,
                  unsigned mode, char *err, size_t errlen) {
  mode_t dmode, rmode;
  struct stat st;
  int fd, rc;

  memset(f, 0, sizeof(*f));
  f->srv = srv;
  f->dirfd = -1;
  modes(mode, &dmode, &rmode);
  snprintf(f->dir, sizeof(f->dir), "%s", dir);
  if (mkdir(dir, 0700) == 0)
    (void)chmod(dir, dmode);
  else if (errno != EEXIST)
    goto fail;
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    goto fail;
  /* Others could replace the registration FIFO, or remove FIFOs, in a
   * folder they own or may write without the sticky bit. */
  if (fstat(fd, &st) != 0 || st.st_uid != geteuid() ||
      ((st.st_mode & 022) && !(st.st_mode & S_ISVTX))) {
    close(fd);
    snprintf(err, errlen, "listen.fifo_dir %s: not a folder of the daemon's "
             "user, or writable by others without the sticky bit", dir);
    return CTR_EPERM;
  }
  f->dirfd = fd;
  if (fstatat(fd, REG_NAME, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      (!S_ISFIFO(st.st_mode) || unlinkat(fd, REG_NAME, 0) != 0)) {
    snprintf(err, errlen, "listen.fifo_dir %s: %s is in the way", dir,
             REG_NAME);
    return CTR_EPERM;
  }
  if (mkfifoat(fd, REG_NAME, 0600) != 0 ||
      fchmodat(fd, REG_NAME, rmode, 0) != 0)
    goto fail;
  fd = openat(f->dirfd, REG_NAME, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    goto fail;
  uv_pipe_init(srv->loop, &f->reg, 0);
  f->reg.data = f;
  if ((rc = uv_pipe_open(&f->reg, fd)) != 0 ||
      (rc = uv_read_start((uv_stream_t *)&f->reg, alloc_cb, read_cb)) != 0) {
    snprintf(err, errlen, "listen.fifo_dir %s: %s", dir, uv_strerror(rc));
    return rc;
  }
  return 0;
fail:
  rc = -errno;
  snprintf(err, errlen, "listen.fifo_dir %s: %s", dir, strerror(errno));
  return rc;
}

void ctr_fifo_sweep(ctr_fifo_t *f, uint64_t now, uint64_t max_age_ms) {
  struct timespec ts;
  struct dirent *e;
  struct stat st;
  DIR *d;
  int fd;

  if (f->dirfd < 0 || now - f->swept < 1000)
    return;
  f->swept = now;
  clock_gettime(CLOCK_REALTIME, &ts);
  if ((fd = dup(f->dirfd)) < 0 || (d = fdopendir(fd)) == NULL) {
    if (fd >= 0)
      close(fd);
    return;
  }
  rewinddir(d);
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, REG_NAME) == 0 ||
        fstatat(f->dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISFIFO(st.st_mode))
      continue;
    if (ts.tv_sec - st.st_mtim.tv_sec >= 0 &&
        (uint64_t)(ts.tv_sec - st.st_mtim.tv_sec) * 1000 >= max_age_ms &&
        unlinkat(f->dirfd, e->d_name, 0) == 0)
      CTR_DEBUG("removed stale FIFO %s/%s", f->dir, e->d_name);
  }
  closedir(d);
}

void ctr_fifo_close(ctr_fifo_t *f) {
  if (f->dirfd < 0)
    return;
  unlinkat(f->dirfd, REG_NAME, 0);
  close(f->dirfd);
  f->dirfd = -1;
  /* Made again at the next start; one still holding FIFOs stays. */
  (void)rmdir(f->dir);
  if (f->reg.loop != NULL) /* opened past uv_pipe_init */
    uv_close((uv_handle_t *)&f->reg, NULL);
}
