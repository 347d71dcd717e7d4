/* ctr_rundir.c: the per-user folder of private daemons' sockets. */
#include "ctr_rundir.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void rundir_path(char *dir, size_t cap) {
  const char *xdg = getenv("XDG_RUNTIME_DIR");

  if (xdg && xdg[0] == '/')
    snprintf(dir, cap, "%s/ctrec", xdg);
  else
    snprintf(dir, cap, "/tmp/ctrec-%u", (unsigned)geteuid());
}

/* Whether dir is a folder only the user can use; errno says why not. */
static int private_dir(const char *dir) {
  struct stat sb;

  if (lstat(dir, &sb) != 0)
    return -1;
  if (!S_ISDIR(sb.st_mode) || sb.st_uid != geteuid() ||
      (sb.st_mode & 077) != 0) {
    errno = EPERM;
    return -1;
  }
  return 0;
}

int ctr_rundir_make(char *dir, size_t cap) {
  rundir_path(dir, cap);
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    fprintf(stderr, "ctrecctl: cannot create %s: %s\n", dir, strerror(errno));
    return -1;
  }
  if (private_dir(dir) != 0) {
    fprintf(stderr,
            "ctrecctl: %s: %s (it must be a folder of yours, mode 0700)\n",
            dir, strerror(errno));
    return -1;
  }
  return 0;
}

int ctr_rundir_socket(char *out, size_t cap, const char *dir, pid_t pid) {
  int n = snprintf(out, cap, "%s/record-%ld.sock", dir, (long)pid);

  return n > 0 && (size_t)n < cap ? 0 : -1;
}

static int by_pid(const void *a, const void *b) {
  const char *x = strrchr(*(char *const *)a, '-');
  const char *y = strrchr(*(char *const *)b, '-');
  long d = atol(x + 1) - atol(y + 1);

  return d < 0 ? -1 : d > 0;
}

size_t ctr_rundir_sockets(char ***out) {
  char dir[PATH_MAX], path[PATH_MAX * 2];
  char **v = NULL;
  size_t n = 0;
  struct dirent *de;
  DIR *d;

  *out = NULL;
  rundir_path(dir, sizeof(dir));
  if (private_dir(dir) != 0 || (d = opendir(dir)) == NULL)
    return 0;
  while ((de = readdir(d)) != NULL) {
    char *end;
    long pid;
    char **grown;
    if (strncmp(de->d_name, "record-", 7) != 0)
      continue;
    pid = strtol(de->d_name + 7, &end, 10);
    if (pid <= 0 || strcmp(end, ".sock") != 0)
      continue;
    snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
      unlink(path);
      continue;
    }
    grown = realloc(v, (n + 1) * sizeof(*v));
    if (grown == NULL || (grown[n] = strdup(path)) == NULL) {
      v = grown ? grown : v;
      break;
    }
    v = grown;
    n++;
  }
  closedir(d);
  if (n > 1)
    qsort(v, n, sizeof(*v), by_pid);
  *out = v;
  return n;
}

void ctr_rundir_free(char **v, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    free(v[i]);
  free(v);
}
