/* ctr_traces.c: `ctrecctl ls`, `rm` and `gc`.
 *
 * ls reads only each folder's trace_metadata.json and sizes, so it stays
 * fast on hundreds of traces. rm and gc never delete a live trace (one a
 * running ctrecd still records); gc chooses what to delete exactly as
 * ctrecd's output limits do (ctr_retain_select). */
#include "ctr_traces.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctr_buf.h"
#include "ctr_config.h"
#include "ctr_error.h"
#include "ctr_retain.h"
#include "ctr_tracedir.h"

static const char *prog_name = "ctrecctl";

/* ---- metadata ----------------------------------------------------------- */

int ctr_traces_meta_read(const char *dir, ctr_traces_meta_t *m) {
  char path[4096];
  const ctr_jval_t *c;
  ctr_buf_t text = {0};
  char chunk[65536];
  ssize_t n;
  int fd;

  memset(m, 0, sizeof(*m));
  m->pid = m->exit_status = m->steps = -1;
  snprintf(path, sizeof(path), "%s/trace_metadata.json", dir);
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return -1;
  while ((n = read(fd, chunk, sizeof(chunk))) > 0 || (n < 0 && errno == EINTR))
    if (n > 0)
      ctr_buf_add(&text, chunk, (size_t)n);
  close(fd);
  /* ctrecd replaces the file by rename, so a read sees one whole version. */
  if (ctr_jval_parse(text.data ? text.data : "", text.len, &m->root) != 0) {
    ctr_buf_free(&text);
    m->root = NULL;
    return -1;
  }
  ctr_buf_free(&text);
  m->workdir = ctr_jval_str(m->root, "workdir");
  m->program = ctr_jval_str(m->root, "program");
  c = ctr_jval_get(m->root, "ctrec");
  m->state = ctr_jval_str(c, "state");
  ctr_jval_i64(ctr_jval_get(c, "pid"), &m->pid);
  ctr_jval_i64(ctr_jval_get(c, "exit_status"), &m->exit_status);
  ctr_jval_i64(ctr_jval_get(ctr_jval_get(c, "counters"), "steps"), &m->steps);
  return 0;
}

void ctr_traces_meta_free(ctr_traces_meta_t *m) {
  ctr_jval_free(m->root);
  memset(m, 0, sizeof(*m));
}

/* ---- words for people --------------------------------------------------- */

static void size_text(char *out, size_t cap, uint64_t bytes) {
  static const char units[] = "KMGT";
  double v = (double)bytes;
  int u = -1;

  if (bytes < 1024) {
    snprintf(out, cap, "%" PRIu64 "B", bytes);
    return;
  }
  while (v >= 1024 && u < 3) {
    v /= 1024;
    u++;
  }
  snprintf(out, cap, v < 10 ? "%.1f%c" : "%.0f%c", v, units[u]);
}

static void duration_text(char *out, size_t cap, int64_t s) {
  if (s < 0)
    snprintf(out, cap, "-");
  else if (s < 60)
    snprintf(out, cap, "%" PRId64 "s", s);
  else if (s < 3600)
    snprintf(out, cap, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
  else if (s < 86400)
    snprintf(out, cap, "%" PRId64 "h%02" PRId64 "m", s / 3600, s / 60 % 60);
  else
    snprintf(out, cap, "%" PRId64 "d%02" PRId64 "h", s / 86400, s / 3600 % 24);
}

static void time_text(char *out, size_t cap, int64_t t) {
  time_t tt = (time_t)t;
  struct tm tm;

  if (t < 0 || gmtime_r(&tt, &tm) == NULL)
    snprintf(out, cap, "-");
  else
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The state a person should read: a trace left "recording" by a daemon
 * that is gone is aborted (the next ctrecd on the folder marks it so). */
static const char *state_text(const ctr_tracedir_t *t, const char *state) {
  if (t->recording && !t->live)
    return "aborted: daemon stopped unexpectedly";
  return state ? state : "?";
}

/* ---- ls ----------------------------------------------------------------- */

/* A cell of 512 bytes: the number, or "-" when the metadata has none. */
static void number_text(char *cell, int64_t v) {
  if (v == -1)
    snprintf(cell, 512, "-");
  else
    snprintf(cell, 512, "%" PRId64, v);
}

/* A member: the number, or null when the metadata has none. */
static void number_json(ctr_buf_t *b, const char *key, int64_t v) {
  if (v == -1)
    ctr_buf_printf(b, ",\"%s\":null", key);
  else
    ctr_buf_printf(b, ",\"%s\":%" PRId64, key, v);
}

static int newest_first(const void *a, const void *b) {
  const ctr_tracedir_t *x = a, *y = b;
  int64_t tx = x->started >= 0 ? x->started : x->time;
  int64_t ty = y->started >= 0 ? y->started : y->time;

  if (tx != ty)
    return tx > ty ? -1 : 1;
  return strcmp(y->path, x->path);
}

enum { COL_TRACE, COL_STARTED, COL_DURATION, COL_STATE, COL_EXIT, COL_STEPS,
       COL_SIZE, COL_PID, COL_PROGRAM, NCOLS };

/* The optional DIR operand of verb (ls, gc), after its options: *dir is
 * left as it is without one. Nonzero (said why) when there are more. */
static int dir_operand(int argc, char **argv, const char *verb,
                       const char **dir) {
  if (argc - optind > 1) {
    fprintf(stderr, "%s: %s: unexpected argument: %s\n", prog_name, verb,
            argv[optind + 1]);
    return 2;
  }
  if (optind < argc)
    *dir = argv[optind];
  return 0;
}

static void ls_usage(FILE *out) {
  fprintf(out,
          "Usage: %s ls [--json] [DIR]\n"
          "List the trace folders in DIR (default: ./" CTR_TRACES_DEFAULT_DIR
          ", where\n'%s record' writes), newest first: folder, start time (UTC),\n"
          "duration, state (recording, complete or aborted: why), exit status,\n"
          "steps, size on disk, pid and program. Only each folder's\n"
          "trace_metadata.json is read.\n\n"
          "  --json  one JSON object per trace\n\n"
          "Exit status: 0 done, 1 DIR cannot be read, 2 usage error.\n",
          prog_name, prog_name);
}

static void ls_json(const ctr_tracedir_t *t, const ctr_traces_meta_t *m,
                    int64_t duration) {
  const char *state = state_text(t, m->state);
  char started[32];
  ctr_buf_t b = {0};

  time_text(started, sizeof(started), t->started);
  ctr_buf_puts(&b, "{\"trace\":");
  ctr_json_str(&b, t->path, strlen(t->path));
  ctr_buf_puts(&b, ",\"program\":");
  if (m->program)
    ctr_json_str(&b, m->program, strlen(m->program));
  else
    ctr_buf_puts(&b, "null");
  number_json(&b, "pid", m->pid);
  ctr_buf_puts(&b, ",\"started\":");
  if (t->started >= 0)
    ctr_json_str(&b, started, strlen(started));
  else
    ctr_buf_puts(&b, "null");
  number_json(&b, "duration", duration);
  ctr_buf_puts(&b, ",\"state\":");
  ctr_json_str(&b, state, strlen(state));
  ctr_buf_printf(&b, ",\"live\":%s", t->live ? "true" : "false");
  number_json(&b, "exit_status", m->exit_status);
  number_json(&b, "steps", m->steps);
  ctr_buf_printf(&b, ",\"size\":%" PRIu64 "}\n", t->size);
  fwrite(b.data, 1, b.len, stdout);
  ctr_buf_free(&b);
}

int ctr_traces_ls_main(int argc, char **argv) {
  static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *dir = CTR_TRACES_DEFAULT_DIR;
  char *cells = NULL;
  size_t n, i, c, width[NCOLS] = {0};
  ctr_tracedir_t *v;
  bool json = false;
  int opt, rc;

  optind = 1;
  while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
    switch (opt) {
    case 'j': json = true; break;
    case 'h': ls_usage(stdout); return 0;
    default: ls_usage(stderr); return 2;
    }
  }
  if (dir_operand(argc, argv, "ls", &dir) != 0)
    return 2;
  if ((rc = ctr_tracedir_list(dir, &v, &n)) < 0) {
    fprintf(stderr, "%s: ls: %s: %s\n", prog_name, dir, ctr_strerror(rc));
    return 1;
  }
  qsort(v, n, sizeof(*v), newest_first);
  /* Text: every cell first, so the columns can be as wide as they need. */
  static const char *const head[NCOLS] = {
      "TRACE", "STARTED", "DURATION", "STATE", "EXIT",
      "STEPS", "SIZE",    "PID",      "PROGRAM"};
#define CELL(row, col) (cells + ((row) * NCOLS + (col)) * 512)
  if (!json) {
    cells = ctr_xmalloc((n + 1) * NCOLS * 512);
    for (c = 0; c < NCOLS; c++)
      snprintf(CELL(0, c), 512, "%s", head[c]);
  }
  for (i = 0; i < n; i++) {
    ctr_traces_meta_t m;
    int64_t duration = -1;
    ctr_buf_t b = {0};
    const char *slash = strrchr(v[i].path, '/');
    ctr_traces_meta_read(v[i].path, &m);
    if (v[i].started >= 0 && v[i].ended >= v[i].started)
      duration = v[i].ended - v[i].started;
    if (json) {
      ls_json(&v[i], &m, duration);
    } else {
      char *row[NCOLS];
      for (c = 0; c < NCOLS; c++)
        row[c] = CELL(i + 1, c);
      snprintf(row[COL_TRACE], 512, "%s",
               ctr_buf_printable(&b, slash ? slash + 1 : v[i].path,
                                 strlen(slash ? slash + 1 : v[i].path)));
      time_text(row[COL_STARTED], 512, v[i].started);
      duration_text(row[COL_DURATION], 512, duration);
      b.len = 0;
      snprintf(row[COL_STATE], 512, "%s",
               ctr_buf_printable(&b, state_text(&v[i], m.state),
                                 strlen(state_text(&v[i], m.state))));
      number_text(row[COL_EXIT], m.exit_status);
      number_text(row[COL_STEPS], m.steps);
      size_text(row[COL_SIZE], 512, v[i].size);
      number_text(row[COL_PID], m.pid);
      b.len = 0;
      snprintf(row[COL_PROGRAM], 512, "%s",
               m.program ? ctr_buf_printable(&b, m.program, strlen(m.program))
                         : "?");
    }
    ctr_buf_free(&b);
    ctr_traces_meta_free(&m);
  }
  if (!json) {
    for (i = 0; i <= n; i++)
      for (c = 0; c < NCOLS; c++)
        if (strlen(CELL(i, c)) > width[c])
          width[c] = strlen(CELL(i, c));
    for (i = 0; i <= n; i++)
      for (c = 0; c < NCOLS; c++) {
        /* Numbers right-aligned, words left. */
        bool right = c == COL_DURATION || c == COL_EXIT || c == COL_STEPS ||
                     c == COL_SIZE || c == COL_PID;
        printf(c + 1 < NCOLS ? (right ? "%*s  " : "%-*s  ") : "%.*s\n",
               (int)width[c], CELL(i, c));
      }
  }
#undef CELL
  free(cells);
  ctr_tracedir_list_free(v, n);
  return 0;
}

/* ---- rm ----------------------------------------------------------------- */

static void rm_usage(FILE *out) {
  fprintf(out,
          "Usage: %s rm TRACE_DIR...\n"
          "Delete trace folders. A folder that is not a ctrec trace folder\n"
          "(one with ctrec's trace_metadata.json), or a trace a running ctrecd\n"
          "still records, is refused and kept.\n\n"
          "Exit status: 0 all deleted, 1 one was refused or could not be\n"
          "deleted, 2 usage error.\n",
          prog_name);
}

/* Why folder dir is not deleted, or NULL when it is a finished trace. */
static const char *refusal(const char *dir, ctr_tracedir_t *t, int *rc) {
  *rc = ctr_tracedir_stat(dir, t);
  if (*rc == CTR_EPATH)
    return "not a ctrec trace folder";
  if (*rc < 0)
    return ctr_strerror(*rc);
  if (t->live)
    return "still being recorded (stop it first: ctrecctl stop)";
  return NULL;
}

int ctr_traces_rm_main(int argc, char **argv) {
  static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  int opt, i, rc, status = 0;

  optind = 1;
  while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
    switch (opt) {
    case 'h': rm_usage(stdout); return 0;
    default: rm_usage(stderr); return 2;
    }
  }
  if (optind == argc) {
    fprintf(stderr, "%s: rm: name at least one TRACE_DIR\n", prog_name);
    return 2;
  }
  for (i = optind; i < argc; i++) {
    ctr_tracedir_t t;
    char size[32];
    const char *why = refusal(argv[i], &t, &rc);
    if (why == NULL && (rc = ctr_tracedir_remove(argv[i])) < 0)
      why = ctr_strerror(rc);
    if (why) {
      fprintf(stderr, "%s: rm: %s: %s\n", prog_name, argv[i], why);
      status = 1;
    } else {
      size_text(size, sizeof(size), t.size);
      printf("removed %s (%s)\n", argv[i], size);
    }
    ctr_tracedir_free(&t);
  }
  return status;
}

/* ---- gc ----------------------------------------------------------------- */

static void gc_usage(FILE *out) {
  fprintf(out,
          "Usage: %s gc [DIR] [--older-than DURATION] [--max-size SIZE] "
          "[--dry-run]\n"
          "Delete finished traces in DIR (default: ./" CTR_TRACES_DEFAULT_DIR
          "), oldest\nfirst, until none is older than DURATION and all of them "
          "together fit\nin SIZE; a trace still being recorded is never "
          "deleted. A trace's age\ncounts from the end its trace_metadata.json "
          "gives (else its start).\nctrecd applies the same rules to its "
          "output folder (output.max_age,\noutput.max_total_size).\n\n"
          "  --older-than DURATION  30s, 10m, 2h, 7d\n"
          "  --max-size SIZE        500K, 20M, 3G (binary units)\n"
          "  --dry-run              say what would be deleted, delete nothing\n\n"
          "Exit status: 0 done, 1 DIR or a trace could not be read or "
          "deleted,\n2 usage error.\n",
          prog_name);
}

int ctr_traces_gc_main(int argc, char **argv) {
  static const struct option opts[] = {
      {"older-than", required_argument, NULL, 'o'},
      {"max-size", required_argument, NULL, 's'},
      {"dry-run", no_argument, NULL, 'n'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  ctr_retain_limits_t lim = {0, 0};
  const char *dir = CTR_TRACES_DEFAULT_DIR;
  uint64_t age_ms, freed = 0;
  size_t n, i, count = 0;
  ctr_tracedir_t *v;
  bool dry = false;
  int opt, rc, status = 0;
  char size[32], when[32];

  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (opt) {
    case 'o':
      if (ctr_config_parse_duration(optarg, &age_ms) != 0 || age_ms < 1000) {
        fprintf(stderr,
                "%s: gc: --older-than: a duration such as 30s, 10m, 2h or "
                "7d, not %s\n",
                prog_name, optarg);
        return 2;
      }
      lim.max_age = (int64_t)(age_ms / 1000);
      break;
    case 's':
      if (ctr_config_parse_size(optarg, &lim.max_size) != 0 ||
          lim.max_size == 0) {
        fprintf(stderr,
                "%s: gc: --max-size: a size such as 500K, 20M or 3G, not %s\n",
                prog_name, optarg);
        return 2;
      }
      break;
    case 'n': dry = true; break;
    case 'h': gc_usage(stdout); return 0;
    default: gc_usage(stderr); return 2;
    }
  }
  if (dir_operand(argc, argv, "gc", &dir) != 0)
    return 2;
  if (lim.max_age == 0 && lim.max_size == 0) {
    fprintf(stderr, "%s: gc: name a limit: --older-than or --max-size\n",
            prog_name);
    return 2;
  }
  if ((rc = ctr_tracedir_list(dir, &v, &n)) < 0) {
    fprintf(stderr, "%s: gc: %s: %s\n", prog_name, dir, ctr_strerror(rc));
    return 1;
  }
  ctr_retain_select(v, n, &lim, (int64_t)time(NULL));
  for (i = 0; i < n; i++) {
    if (!v[i].remove)
      continue;
    if (!dry && (rc = ctr_tracedir_remove(v[i].path)) < 0) {
      fprintf(stderr, "%s: gc: %s: %s\n", prog_name, v[i].path,
              ctr_strerror(rc));
      status = 1;
      continue;
    }
    size_text(size, sizeof(size), v[i].size);
    time_text(when, sizeof(when), v[i].time);
    printf("%s %s (%s, from %s)\n", dry ? "would remove" : "removed",
           v[i].path, size, when);
    freed += v[i].size;
    count++;
  }
  size_text(size, sizeof(size), freed);
  printf("%s %s in %zu trace%s\n", dry ? "would free" : "freed", size, count,
         count == 1 ? "" : "s");
  ctr_tracedir_list_free(v, n);
  return status;
}
