/* ctr_tracedir.c: reading, sizing and deleting trace folders.
 *
 * ctrecd writes trace_metadata.json as compact JSON, so the few members
 * needed here are found as text, as ctr_trace_recover finds them: a key
 * such as "state":" cannot occur inside a string value, whose quotes are
 * escaped. */
#include "ctr_tracedir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctr_error.h"

/* Metadata grows with the command line; past this it is not ctrec's. */
#define META_MAX (16 << 20)

/* The text after "key": in meta, or NULL. */
static const char *member(const char *meta, const char *key) {
  char pat[64];
  const char *p;

  snprintf(pat, sizeof(pat), "\"%s\":", key);
  p = strstr(meta, pat);
  return p ? p + strlen(pat) : NULL;
}

/* An ISO 8601 UTC time as ctrecd writes it ("2026-12-02T13:01:17Z"). */
static int64_t member_time(const char *meta, const char *key) {
  const char *p = member(meta, key);
  struct tm tm;
  int n = 0;

  memset(&tm, 0, sizeof(tm));
  if (p == NULL ||
      sscanf(p, "\"%4d-%2d-%2dT%2d:%2d:%2dZ\"%n", &tm.tm_year, &tm.tm_mon,
             &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 ||
      n == 0)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (int64_t)timegm(&tm);
}

static char *read_meta(int dfd, struct stat *sb) {
  size_t len = 0;
  ssize_t n;
  char *text;
  int fd = openat(dfd, "trace_metadata.json", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

  if (fd < 0)
    return NULL;
  if (fstat(fd, sb) != 0 || !S_ISREG(sb->st_mode) || sb->st_size > META_MAX) {
    close(fd);
    return NULL;
  }
  text = malloc((size_t)sb->st_size + 1);
  while (text && len < (size_t)sb->st_size &&
         ((n = read(fd, text + len, (size_t)sb->st_size - len)) > 0 ||
          (n < 0 && errno == EINTR)))
    if (n > 0)
      len += (size_t)n;
  close(fd);
  if (text)
    text[len] = '\0';
  return text;
}

/* Bytes on disk of everything under the open folder dfd (closed here). */
static uint64_t disk_usage(int dfd) {
  uint64_t total = 0;
  struct dirent *de;
  struct stat sb;
  DIR *d = fdopendir(dfd);

  if (d == NULL) {
    close(dfd);
    return 0;
  }
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
        fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
      continue;
    total += (uint64_t)sb.st_blocks * 512;
    if (S_ISDIR(sb.st_mode)) {
      int sub = openat(dirfd(d), de->d_name,
                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0)
        total += disk_usage(sub);
    }
  }
  closedir(d);
  return total;
}

int ctr_tracedir_stat(const char *dir, ctr_tracedir_t *out) {
  const char *state, *pid;
  struct stat sb;
  char *meta;
  long daemon;
  int dfd;

  memset(out, 0, sizeof(*out));
  dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0)
    return errno == ENOTDIR || errno == ELOOP ? CTR_EPATH : -errno;
  meta = read_meta(dfd, &sb);
  if (meta == NULL || member(meta, "ctrec") == NULL ||
      (state = member(meta, "state")) == NULL) {
    free(meta);
    close(dfd);
    return CTR_EPATH;
  }
  out->recording = strncmp(state, "\"recording\"", 11) == 0;
  pid = member(meta, "daemon_pid");
  daemon = pid ? strtol(pid, NULL, 10) : 0;
  out->live = out->recording && daemon > 0 &&
              (kill((pid_t)daemon, 0) == 0 || errno == EPERM);
  out->started = member_time(meta, "start");
  out->ended = out->recording ? -1 : member_time(meta, "end");
  out->time = out->ended >= 0     ? out->ended
              : out->started >= 0 ? out->started
                                  : (int64_t)sb.st_mtime;
  free(meta);
  out->size = fstat(dfd, &sb) == 0 ? (uint64_t)sb.st_blocks * 512 : 0;
  out->size += disk_usage(dfd);
  out->path = strdup(dir);
  return out->path ? 0 : CTR_ENOMEM;
}

void ctr_tracedir_free(ctr_tracedir_t *t) {
  free(t->path);
  t->path = NULL;
}

void ctr_tracedir_list_free(ctr_tracedir_t *v, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    ctr_tracedir_free(&v[i]);
  free(v);
}

int ctr_tracedir_list(const char *root, ctr_tracedir_t **out, size_t *n) {
  ctr_tracedir_t *v = NULL, *grown;
  size_t cap = 0;
  struct dirent *de;
  DIR *d = opendir(root);

  *out = NULL;
  *n = 0;
  if (d == NULL)
    return -errno;
  while ((de = readdir(d)) != NULL) {
    char path[4096];
    if (de->d_name[0] == '.' ||
        snprintf(path, sizeof(path), "%s/%s", root, de->d_name) >=
            (int)sizeof(path))
      continue;
    if (*n == cap) {
      cap = cap ? cap * 2 : 32;
      grown = realloc(v, cap * sizeof(*v));
      if (grown == NULL)
        break;
      v = grown;
    }
    if (ctr_tracedir_stat(path, &v[*n]) == 0)
      (*n)++;
  }
  closedir(d);
  *out = v;
  return 0;
}

/* Deletes everything in the open folder dfd (closed here) but the entry
named keep (NULL: none). */
static int remove_in(int dfd, const char *keep) {
  struct dirent *de;
  struct stat sb;
  int rc = 0;
  DIR *d = fdopendir(dfd);

  if (d == NULL) {
    rc = -errno;
    close(dfd);
    return rc;
  }
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
        (keep && strcmp(de->d_name, keep) == 0))
      continue;
    if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISDIR(sb.st_mode)) {
      int sub = openat(dirfd(d), de->d_name,
                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      int r = sub >= 0 ? remove_in(sub, NULL) : -errno;
      if (r == 0 && unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) != 0)
        r = -errno;
      if (r != 0 && rc == 0)
        rc = r;
    } else if (unlinkat(dirfd(d), de->d_name, 0) != 0 && rc == 0) {
      rc = -errno;
    }
  }
  closedir(d);
  return rc;
}

int ctr_tracedir_remove(const char *dir) {
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  int rc;

  if (dfd < 0)
    return -errno;
  /* The metadata last: a folder left half deleted is still a trace
   * folder, which the next rm or gc finishes deleting. */
  rc = remove_in(fcntl(dfd, F_DUPFD_CLOEXEC, 0), "trace_metadata.json");
  if (rc == 0 && unlinkat(dfd, "trace_metadata.json", 0) != 0 &&
      errno != ENOENT)
    rc = -errno;
  close(dfd);
  if (rc == 0 && rmdir(dir) != 0)
    rc = -errno;
  return rc;
}
