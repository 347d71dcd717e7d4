/* ctr_trace.c: the trace folder writer. */
#include "ctr_trace.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "ctr_alloc.h"
#include "ctr_error.h"
#include "ctr_log.h"

static const char trailer[] = "\n]\n";

/* Rendered records go to disk in blocks of about this size, as soon as a
 * block is complete. The kernel copies a block into the page cache several
 * times faster while it is still in the CPU's cache: on the benchmark
 * machine (512 KiB L2 per core) 4 MiB blocks cost about eight times the
 * system time of 256 KiB ones. */
#define CTR_TRACE_BLOCK (256u << 10)

struct ctr_trace_s {
  char *dir;
  int fd;               /* trace.json, -1 in a folder without it */
  bool json;            /* the folder has trace.json */
  int files_fd;         /* files/ */
  uint64_t body_len;    /* bytes of trace.json before the trailer */
  uint64_t records;     /* records rendered so far */
  uint64_t written;     /* of which trace.json holds */
  size_t record_start;  /* pending.len before the latest record */
  ctr_buf_t pending;    /* rendered, not yet written */
  ctr_buf_t paths;      /* trace_paths.json body without the brackets */
  uint32_t npaths;
  bool paths_dirty;
  char *workdir, *program, *args_json, *recording_id;
  ctr_buf_t meta;       /* the "ctrec" object */
  bool meta_dirty;
  bool write_failed;    /* the last write of records failed */
  ctr_trace_owner_t owner;
};

/* Gives what fd refers to to the trace's owner; a daemon that may not
 * (not root) keeps it, as the owner is then its own. */
static void own_fd(const ctr_trace_t *t, int fd) {
  if (fd >= 0 && t->owner.uid != (uid_t)-1 && fchown(fd, t->owner.uid, t->owner.gid) != 0)
    CTR_DEBUG("cannot give %s to uid %u: %s", t->dir, (unsigned)t->owner.uid,
              strerror(errno));
}

void ctr_trace_own(const ctr_trace_t *t, const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

  own_fd(t, fd);
  if (fd >= 0)
    close(fd);
}

/* Writes all of buf at off; short writes are retried. */
static int pwrite_all(int fd, const char *buf, size_t n, uint64_t off) {
  while (n > 0) {
    ssize_t w = pwrite(fd, buf, n, (off_t)off);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    buf += w;
    n -= (size_t)w;
    off += (uint64_t)w;
  }
  return 0;
}

/* Ends trace.json after body_len bytes of records: whatever a failed or
 * cut write left beyond them goes, and the trailer closes the array again
 * (in bytes the file had, so a full disk has room for it). */
static int close_array_at(int fd, uint64_t body_len) {
  if (ftruncate(fd, (off_t)body_len) != 0)
    return -errno;
  return pwrite_all(fd, trailer, sizeof(trailer) - 1, body_len);
}

/* Replaces dir/name atomically so readers never see a half-written file;
 * the new file goes to t's owner (t NULL: the replaced file's). */
static int replace_file(const ctr_trace_t *t, const char *dir,
                        const char *name, const char *data, size_t n) {
  char tmp[4096], dst[4096];
  int fd, rc;

  snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
  snprintf(dst, sizeof(dst), "%s/%s", dir, name);
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0)
    return -errno;
  if (t) {
    own_fd(t, fd);
  } else {
    struct stat st;
    if (stat(dst, &st) == 0 && (st.st_uid != geteuid() || st.st_gid != getegid()))
      (void)!fchown(fd, st.st_uid, st.st_gid);
  }
  rc = pwrite_all(fd, data, n, 0);
  close(fd);
  if (rc == 0 && rename(tmp, dst) != 0)
    rc = -errno;
  if (rc != 0)
    unlink(tmp);
  return rc;
}

static void sanitize_name(char *out, size_t cap, const char *name) {
  const char *base = strrchr(name, '/');
  size_t i = 0;

  base = base ? base + 1 : name;
  for (; *base && i + 1 < cap && i < 64; base++)
    out[i++] = (isalnum((unsigned char)*base) || strchr("._-", *base))
                   ? *base : '_';
  out[i] = '\0';
  /* A folder name must not look like an option ("-c") or be hidden. */
  if (i == 0 || out[0] == '.' || out[0] == '-')
    out[0] = i ? '_' : '\0';
  if (i == 0)
    snprintf(out, cap, "trace");
}

static int open_folder(ctr_trace_t **out, const char *root, const char *name,
                       int64_t pid, time_t started, uint32_t interval,
                       const char *workdir, const char *program,
                       const char *args_json, const char *recording_id,
                       ctr_trace_owner_t owner, bool json) {
  char safe[80], stamp[32], base[4096], dir[4200], sub[4300];
  struct tm tm;
  ctr_trace_t *t;
  int n;

  sanitize_name(safe, sizeof(safe), name);
  gmtime_r(&started, &tm);
  strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
  snprintf(base, sizeof(base), "%s/%s-%lld-%s", root, safe, (long long)pid,
           stamp);
  if (interval > 1)
    snprintf(base + strlen(base), sizeof(base) - strlen(base), "-%u", interval);
  /* A reused pid in the same second still gets a folder of its own. */
  for (n = 1;; n++) {
    if (n == 1)
      snprintf(dir, sizeof(dir), "%s", base);
    else
      snprintf(dir, sizeof(dir), "%s.%d", base, n);
    if (mkdir(dir, 0755) == 0)
      break;
    if (errno != EEXIST || n > 1000)
      return -errno;
  }
  t = ctr_xcalloc(1, sizeof(*t));
  t->fd = t->files_fd = -1;
  t->json = json;
  t->owner = owner;
  t->dir = ctr_xstrdup(dir);
  t->workdir = ctr_xstrdup(workdir);
  t->program = ctr_xstrdup(program);
  t->args_json = ctr_xstrdup(args_json);
  t->recording_id = ctr_xstrdup(recording_id);
  ctr_trace_own(t, dir);
  snprintf(sub, sizeof(sub), "%s/files", dir);
  mkdir(sub, 0755);
  t->files_fd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  own_fd(t, t->files_fd);
  if (json) {
    snprintf(sub, sizeof(sub), "%s/trace.json", dir);
    t->fd = open(sub, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    own_fd(t, t->fd);
  }
  if ((json && t->fd < 0) || t->files_fd < 0) {
    n = -errno;
    ctr_trace_close(t);
    return n;
  }
  t->body_len = 1;
  t->paths_dirty = t->meta_dirty = true;
  /* trace_metadata.json is written at the first flush, after the trace
   * file it describes (a reader that finds it finds the trace) and with
   * what the caller says of the trace (ctr_trace_set_meta). */
  n = json ? pwrite_all(t->fd, "[" "\n]\n", 4, 0) : 0;
  if (n != 0) {
    ctr_trace_close(t);
    return n;
  }
  *out = t;
  return 0;
}

int ctr_trace_open(ctr_trace_t **out, const char *root, const char *name,
                   int64_t pid, time_t started, uint32_t interval,
                   const char *workdir, const char *program,
                   const char *args_json, const char *recording_id,
                   ctr_trace_owner_t owner) {
  return open_folder(out, root, name, pid, started, interval, workdir,
                     program, args_json, recording_id, owner, true);
}

int ctr_trace_open_folder(ctr_trace_t **out, const char *root,
                          const char *name, int64_t pid, time_t started,
                          uint32_t interval, const char *workdir,
                          const char *program, const char *args_json,
                          const char *recording_id, ctr_trace_owner_t owner) {
  return open_folder(out, root, name, pid, started, interval, workdir,
                     program, args_json, recording_id, owner, false);
}

static int write_records(ctr_trace_t *t);

ctr_buf_t *ctr_trace_record(ctr_trace_t *t) {
  /* The previous record is complete here. After a failure only flushes
   * retry, so a full disk does not cost a system call per record. */
  if (t->pending.len >= CTR_TRACE_BLOCK && !t->write_failed)
    write_records(t);
  t->record_start = t->pending.len;
  ctr_buf_add(&t->pending, t->records ? ",\n" : "\n", t->records ? 2 : 1);
  t->records++;
  return &t->pending;
}

void ctr_trace_unrecord(ctr_trace_t *t) {
  t->pending.len = t->record_start;
  t->records--;
}

uint32_t ctr_trace_path(ctr_trace_t *t, const char *path, size_t n) {
  if (t->fd >= 0) {
    ctr_buf_t *b = ctr_trace_record(t);
    ctr_buf_puts(b, "{\"Path\":");
    ctr_json_str(b, path, n);
    ctr_buf_add(b, "}", 1);
  }
  if (t->npaths)
    ctr_buf_add(&t->paths, ",", 1);
  ctr_json_str(&t->paths, path, n);
  t->paths_dirty = true;
  return t->npaths++;
}

/* Creates the directories of rel under files/ one component at a time with
 * mkdirat, so nothing is followed out of the folder, and opens the file. */
static int open_source(const ctr_trace_t *t, const char *rel) {
  char part[4096];
  const char *p = rel, *slash;
  int dfd = dup(t->files_fd), fd;

  if (dfd < 0)
    return -errno;
  while ((slash = strchr(p, '/')) != NULL) {
    size_t n = (size_t)(slash - p);
    int next;
    if (n > 0 && !(n == 1 && p[0] == '.')) {
      if (n >= sizeof(part) || (n == 2 && p[0] == '.' && p[1] == '.')) {
        close(dfd);
        return CTR_EPATH;
      }
      memcpy(part, p, n);
      part[n] = '\0';
      if (mkdirat(dfd, part, 0755) != 0 && errno != EEXIST) {
        int e = -errno;
        close(dfd);
        return e;
      }
      next = openat(dfd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      close(dfd);
      if (next < 0)
        return -errno;
      own_fd(t, next);
      dfd = next;
    }
    p = slash + 1;
  }
  if (*p == '\0' || strcmp(p, "..") == 0 || strcmp(p, ".") == 0) {
    close(dfd);
    return CTR_EPATH;
  }
  fd = openat(dfd, p, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
              0644);
  close(dfd);
  own_fd(t, fd);
  return fd < 0 ? -errno : fd;
}

int ctr_trace_source(ctr_trace_t *t, const char *path, const char *text,
                     size_t n) {
  int fd, rc;

  while (*path == '/')
    path++;
  fd = open_source(t, path);
  if (fd < 0)
    return fd;
  rc = pwrite_all(fd, text, n, 0);
  close(fd);
  return rc;
}

void ctr_trace_set_meta(ctr_trace_t *t, const char *json, size_t n) {
  t->meta.len = 0;
  ctr_buf_add(&t->meta, json, n);
  t->meta_dirty = true;
}

static int write_meta(ctr_trace_t *t) {
  ctr_buf_t b = {0};
  int rc;

  ctr_buf_puts(&b, "{\"workdir\":");
  ctr_json_str(&b, t->workdir, strlen(t->workdir));
  ctr_buf_puts(&b, ",\"program\":");
  ctr_json_str(&b, t->program, strlen(t->program));
  ctr_buf_puts(&b, ",\"args\":");
  ctr_buf_puts(&b, t->args_json);
  ctr_buf_puts(&b, ",\"recording_id\":");
  ctr_json_str(&b, t->recording_id, strlen(t->recording_id));
  if (t->meta.len) {
    ctr_buf_puts(&b, ",\"ctrec\":");
    ctr_buf_add(&b, t->meta.data, t->meta.len);
  }
  ctr_buf_puts(&b, "}\n");
  rc = replace_file(t, t->dir, "trace_metadata.json", b.data, b.len);
  ctr_buf_free(&b);
  return rc;
}

static int write_paths(ctr_trace_t *t) {
  ctr_buf_t b = {0};
  int rc;

  ctr_buf_add(&b, "[", 1);
  ctr_buf_add(&b, t->paths.data, t->paths.len);
  ctr_buf_puts(&b, "]\n");
  rc = replace_file(t, t->dir, "trace_paths.json", b.data, b.len);
  ctr_buf_free(&b);
  return rc;
}

/* Writes the pending records, keeping trace.json a closed JSON array. */
static int write_records(ctr_trace_t *t) {
  int rc = 0;

  /* Paths first: a reader that sees a Path record then finds it listed. */
  if (t->paths_dirty) {
    rc = write_paths(t);
    t->paths_dirty = rc != 0;
  }
  if (rc == 0 && t->pending.len) {
    /* Records then trailer in one write, over the old trailer. */
    ctr_buf_add(&t->pending, trailer, sizeof(trailer) - 1);
    rc = pwrite_all(t->fd, t->pending.data, t->pending.len, t->body_len);
    if (rc == 0) {
      t->body_len += t->pending.len - (sizeof(trailer) - 1);
      t->written = t->records;
    } else {
      /* A full disk: the records written in part go, the file stays the
       * valid trace it was; they are tried again at the next flush. */
      t->pending.len -= sizeof(trailer) - 1;
      (void)close_array_at(t->fd, t->body_len);
    }
    if (rc == 0)
      t->pending.len = 0;
  }
  t->write_failed = rc != 0;
  return rc;
}

int ctr_trace_flush(ctr_trace_t *t) {
  int rc = write_records(t), mrc = 0;

  /* The metadata says what the trace is even when records cannot be
   * written; a failed update leaves the previous version. */
  if (t->meta_dirty) {
    mrc = write_meta(t);
    t->meta_dirty = mrc != 0;
  }
  return rc != 0 ? rc : mrc;
}

bool ctr_trace_dirty(const ctr_trace_t *t) {
  return t->pending.len || t->meta_dirty || t->paths_dirty;
}

size_t ctr_trace_pending(const ctr_trace_t *t) { return t->pending.len; }
const char *ctr_trace_dir(const ctr_trace_t *t) { return t->dir; }
uint64_t ctr_trace_records(const ctr_trace_t *t) { return t->records; }

uint64_t ctr_trace_records_kept(const ctr_trace_t *t) {
  /* Until a write fails, the flush that writes the metadata writes every
   * record rendered before it. */
  return t->write_failed ? t->written : t->records;
}
uint64_t ctr_trace_bytes(const ctr_trace_t *t) {
  return t->body_len + t->pending.len;
}

int ctr_trace_close(ctr_trace_t *t) {
  int rc = 0;

  if ((t->fd >= 0 || !t->json) && t->files_fd >= 0 && t->dir &&
      t->recording_id)
    rc = ctr_trace_flush(t);
  if (t->fd >= 0)
    close(t->fd);
  if (t->files_fd >= 0)
    close(t->files_fd);
  ctr_buf_free(&t->pending);
  ctr_buf_free(&t->paths);
  ctr_buf_free(&t->meta);
  free(t->dir);
  free(t->workdir);
  free(t->program);
  free(t->args_json);
  free(t->recording_id);
  free(t);
  return rc;
}

/* Whether line (one record, compact JSON) is whole: its braces and
 * brackets close, outside strings, and nothing is left open. */
static bool whole_record(const char *p, size_t n) {
  int depth = 0;
  bool in_str = false;

  if (n == 0 || p[0] != '{')
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (in_str) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '{' || c == '[') {
      depth++;
    } else if ((c == '}' || c == ']') && --depth == 0) {
      return i == n - 1;
    }
  }
  return false;
}

int ctr_trace_repair_json(const char *dir) {
  char path[4200];
  ctr_buf_t b = {0};
  struct stat st;
  uint64_t base = 0;
  int fd, rc;

  snprintf(path, sizeof(path), "%s/trace.json", dir);
  fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return errno == ENOENT ? 0 : -errno;
  /* Records are one per line ("[", then "\n{...}" with ",\n" between):
   * the cut is in the last line, which is kept when it is whole. The
   * file's last 64 MiB hold a whole record (a frame is at most 16 MiB). */
  rc = fstat(fd, &st) != 0 ? -errno : 0;
  if (rc == 0) {
    size_t want = (size_t)st.st_size;
    if (want > (64u << 20)) {
      base = (uint64_t)st.st_size - (64u << 20);
      want = 64u << 20;
    }
    ctr_buf_reserve(&b, want + 1);
    ssize_t n = pread(fd, b.data, want, (off_t)base);
    rc = n < 0 ? -errno : 0;
    b.len = n > 0 ? (size_t)n : 0;
  }
  if (rc == 0 && !(b.len >= 4 && memcmp(b.data + b.len - 3, trailer, 3) == 0)) {
    size_t end = b.len, start;
    bool found = false;
    while (end > 1 && !found) {
      start = end;
      while (start > 0 && b.data[start - 1] != '\n')
        start--;
      size_t len = end - start;
      if (len > 0 && b.data[start + len - 1] == ',')
        len--;
      if (start > 0 && whole_record(b.data + start, len)) {
        end = start + len;
        found = true;
        break;
      }
      /* Not whole: the previous line, without its separating comma. */
      end = start > 0 ? start - 1 : 0;
      if (end > 1 && b.data[end - 1] == ',')
        end--;
    }
    if (found)
      rc = close_array_at(fd, base + end);
    else
      rc = base == 0 ? close_array_at(fd, 1) : CTR_ELIMIT; /* "[" alone */
  }
  close(fd);
  ctr_buf_free(&b);
  return rc;
}

/* Our own metadata is compact JSON, so the fields can be found as text. */
static bool left_by_dead_daemon(const char *meta) {
  const char *p = strstr(meta, "\"daemon_pid\":");
  long pid;

  if (strstr(meta, "\"state\":\"recording\"") == NULL || p == NULL)
    return false;
  pid = strtol(p + 13, NULL, 10);
  return pid > 0 && (pid == (long)getpid() ||
                     (kill((pid_t)pid, 0) != 0 && errno == ESRCH));
}

int ctr_trace_recover(const char *root, ctr_trace_repair_cb repair) {
  static const char from[] = "\"state\":\"recording\"";
  static const char to[] = "\"state\":\"aborted: daemon stopped unexpectedly\"";
  char path[4096], chunk[65536], *buf;
  struct dirent *de;
  DIR *d = opendir(root);
  int marked = 0;

  if (d == NULL)
    return 0;
  while ((de = readdir(d)) != NULL) {
    ctr_buf_t b = {0}, meta = {0};
    char *hit;
    ssize_t n;
    int fd;
    if (de->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "%s/%s/trace_metadata.json", root, de->d_name);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
      continue;
    /* Whatever its size: a long command line makes it large. */
    while ((n = read(fd, chunk, sizeof(chunk))) > 0 || (n < 0 && errno == EINTR))
      if (n > 0)
        ctr_buf_add(&meta, chunk, (size_t)n);
    close(fd);
    ctr_buf_add(&meta, "", 1);
    buf = meta.data;
    if (meta.len <= 1 || !left_by_dead_daemon(buf)) {
      ctr_buf_free(&meta);
      continue;
    }
    snprintf(path, sizeof(path), "%s/%s", root, de->d_name);
    /* The trace first: marked aborted, it is never looked at again. */
    if (repair && (n = repair(path)) < 0)
      CTR_WARN("%s: could not complete the trace a stopped daemon left: %s",
               path, ctr_strerror((int)n));
    hit = strstr(buf, from);
    ctr_buf_add(&b, buf, (size_t)(hit - buf));
    ctr_buf_add(&b, to, sizeof(to) - 1);
    ctr_buf_puts(&b, hit + sizeof(from) - 1);
    if (replace_file(NULL, path, "trace_metadata.json", b.data, b.len) == 0)
      marked++;
    ctr_buf_free(&b);
    ctr_buf_free(&meta);
  }
  closedir(d);
  return marked;
}
