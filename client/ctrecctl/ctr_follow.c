/* ctr_follow.c: tails a session's trace folders and prints their records.
 *
 * The trace reader (ctr_reader.h) hands out the records of a folder as they
 * become complete, from trace.json or trace.ct alike, so a write still in
 * progress is never shown half done. */
#include "ctr_follow.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctr_buf.h"
#include "ctr_jval.h"
#include "ctr_reader.h"
#include "ctr_render.h"
#include "ctr_traces.h"

#define STATUS_EVERY_MS 200
/* How long a vanished session's folder may stay "recording" before the
 * feed gives up on it (ctrecd completes it before the session disappears,
 * so only a daemon that died leaves it so). */
#define GONE_GRACE_MS 2000
/* How long follow DIR waits for a folder's metadata before reading the
 * folder as it is (ctrecd writes it a moment after the trace file). */
#define META_WAIT_MS 2000

static const char *prog_name = "ctrecctl";
static volatile sig_atomic_t interrupted;

static void on_signal(int sig) { interrupted = sig; }

static int64_t now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

  /* A signal cuts the sleep short, so Ctrl-C is handled at once. */
  nanosleep(&ts, NULL);
}

/* One trace folder being tailed. */
typedef struct tail_s {
  char dir[PATH_MAX];
  uint64_t index; /* the recording interval it holds */
  ctr_reader_t *rd;
  ctr_render_t *r;
} tail_t;

static void tail_free(tail_t *t) {
  ctr_reader_free(t->rd);
  ctr_render_free(t->r);
  memset(t, 0, sizeof(*t));
}

/* ---- tailing the trace ------------------------------------------------- */

/* Prints the records completed since the last call; returns how many, or -1
 * after printing why the trace cannot be read. */
static long drain(tail_t *t, bool json) {
  ctr_reader_rec_t r;
  long count = 0;
  int rc;

  while ((rc = ctr_reader_next(t->rd, &r)) == 1) {
    if (json && r.text)
      fwrite(r.text, 1, r.len, stdout);
    else if (json)
      ctr_jval_print(stdout, r.rec);
    else
      ctr_render_record(t->r, r.rec);
    if (json)
      putchar('\n');
    count++;
  }
  fflush(stdout);
  if (rc < 0) {
    fprintf(stderr, "%s: %s: %s\n", prog_name, t->dir, ctr_reader_error(t->rd));
    return -1;
  }
  return count;
}

/* ---- trace folders ------------------------------------------------------ */

typedef struct meta_s {
  bool ok;
  char state[256];
  char end_reason[256];
  char workdir[PATH_MAX];
  int64_t session, pid, index, daemon_pid;
} meta_t;

static void copy_str(char *dst, size_t cap, const char *src) {
  snprintf(dst, cap, "%s", src ? src : "");
}

static bool read_meta(const char *dir, meta_t *m) {
  const ctr_jval_t *c, *iv;
  ctr_traces_meta_t tm;

  memset(m, 0, sizeof(*m));
  if (ctr_traces_meta_read(dir, &tm) != 0)
    return false;
  copy_str(m->workdir, sizeof(m->workdir), tm.workdir);
  copy_str(m->state, sizeof(m->state), tm.state);
  c = ctr_jval_get(tm.root, "ctrec");
  m->session = m->index = m->daemon_pid = -1;
  m->pid = tm.pid;
  ctr_jval_i64(ctr_jval_get(c, "session"), &m->session);
  ctr_jval_i64(ctr_jval_get(c, "daemon_pid"), &m->daemon_pid);
  iv = ctr_jval_get(c, "interval");
  ctr_jval_i64(ctr_jval_get(iv, "index"), &m->index);
  copy_str(m->end_reason, sizeof(m->end_reason), ctr_jval_str(iv, "end_reason"));
  ctr_traces_meta_free(&tm);
  m->ok = true;
  return true;
}

/* A folder is finished once its metadata says complete or aborted: ctrecd
 * writes the last records before that metadata. */
static bool meta_finished(const meta_t *m) {
  return m->ok && m->state[0] && strcmp(m->state, "recording") != 0;
}

/* Whether the daemon writing the folder still runs: one that is shutting
 * down no longer answers STATUS but still completes its traces. */
static bool writer_alive(const meta_t *m) {
  return m->ok && m->daemon_pid > 0 &&
         (kill((pid_t)m->daemon_pid, 0) == 0 || errno == EPERM);
}

static bool state_ended(const char *state) {
  return strcmp(state, "complete") == 0 || strncmp(state, "aborted", 7) == 0;
}

static int tail_open(tail_t *t, const char *dir, uint64_t index, bool json) {
  ctr_render_opts_t ro = {.out = stdout, .dir = dir, .source = true,
                          .from = -1, .to = -1};
  meta_t m;
  int rc;

  tail_free(t);
  snprintf(t->dir, sizeof(t->dir), "%s", dir);
  t->index = index;
  if ((rc = ctr_reader_open(&t->rd, dir, true)) < 0) {
    fprintf(stderr, "%s: cannot open the trace in %s: %s\n", prog_name, dir,
            strerror(-rc));
    return -1;
  }
  if (read_meta(dir, &m) && m.workdir[0])
    ro.workdir = m.workdir;
  t->r = ctr_render_new(&ro);
  if (!json) {
    printf("== interval %" PRIu64 ": %s ==\n", index, dir);
    fflush(stdout);
  }
  return 0;
}

/* Looks in the output folder for the folder of interval index of session
 * sid. Interval folders share the first folder's name up to its time stamp
 * (the last 'Z'), which keeps the search to this program's folders. */
static bool find_interval(const char *known, uint64_t sid, int64_t pid,
                          uint64_t index, char *out, size_t cap) {
  char parent[PATH_MAX], prefix[PATH_MAX], *slash, *z;
  struct dirent *de;
  bool found = false;
  DIR *d;

  snprintf(parent, sizeof(parent), "%s", known);
  slash = strrchr(parent, '/');
  if (slash == NULL)
    return false;
  *slash = '\0';
  snprintf(prefix, sizeof(prefix), "%s", slash + 1);
  z = strrchr(prefix, 'Z');
  if (z)
    z[1] = '\0';
  d = opendir(parent[0] ? parent : "/");
  if (d == NULL)
    return false;
  while (!found && (de = readdir(d)) != NULL) {
    char dir[PATH_MAX * 2];
    meta_t m;
    if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
      continue;
    snprintf(dir, sizeof(dir), "%s/%s", parent, de->d_name);
    if (read_meta(dir, &m) && m.session == (int64_t)sid && m.pid == pid &&
        m.index == (int64_t)index && strlen(dir) < cap) {
      snprintf(out, cap, "%s", dir);
      found = true;
    }
  }
  closedir(d);
  return found;
}

/* ---- choosing the session ----------------------------------------------- */

void ctr_follow_sessions_free(ctr_follow_session_t *list, size_t n) {
  size_t i;

  for (i = 0; i < n; i++) {
    free(list[i].program);
    free(list[i].state);
    free(list[i].trace);
  }
  free(list);
}

static const ctr_follow_session_t *pick(const ctr_follow_opts_t *o,
                                        const ctr_follow_session_t *list,
                                        size_t n) {
  const ctr_follow_session_t *best = NULL;
  size_t i;

  for (i = 0; i < n; i++) {
    const ctr_follow_session_t *s = &list[i];
    if (o->session && s->id != o->session)
      continue;
    if (o->pid && s->pid != o->pid)
      continue;
    if (best == NULL || s->id > best->id)
      best = s;
  }
  if (best)
    return best;
  if (o->session)
    fprintf(stderr,
            "%s: follow: no live session %" PRIu64 " (see '%s status')\n",
            prog_name, o->session, prog_name);
  else if (o->pid)
    fprintf(stderr,
            "%s: follow: no live session for pid %" PRId64
            " (see '%s status')\n",
            prog_name, o->pid, prog_name);
  else
    fprintf(stderr, "%s: follow: no live session to follow\n", prog_name);
  return NULL;
}

/* Without a SESSION or --pid the only live session is followed; with
 * several, guessing could follow the wrong program, so the user chooses. */
static bool ambiguous(const ctr_follow_opts_t *o,
                      const ctr_follow_session_t *list, size_t n) {
  size_t i;

  if (o->session || o->pid || n < 2)
    return false;
  fprintf(stderr,
          "%s: follow: %zu live sessions; name one (ctrecctl follow SESSION "
          "or --pid PID):\n",
          prog_name, n);
  for (i = 0; i < n; i++)
    fprintf(stderr, "  %-7" PRIu64 " pid %-7" PRId64 " %s\n", list[i].id,
            list[i].pid, list[i].program);
  return true;
}

/* ---- the feed ----------------------------------------------------------- */

typedef struct follower_s {
  const ctr_follow_opts_t *o;
  uint64_t sid;
  int64_t pid;
  tail_t t;
  bool tailing;
  uint64_t next;      /* the interval to follow after the current one */
  char known[PATH_MAX]; /* a trace folder of this session, once seen */
  bool lost;          /* ctrecd stopped answering */
  bool gone;          /* the session ended or disappeared */
  bool finished;      /* the last folder followed was completed */
  uint64_t intervals; /* from the latest STATUS */
  char trace[PATH_MAX];
  int64_t gone_at;
  ctr_buf_t ended;    /* --json: the start of the boundary record */
} follower_t;

/* Asks STATUS and updates what is known about the session. */
static void refresh(follower_t *f) {
  ctr_follow_session_t *list = NULL;
  size_t n = 0, i;

  if (f->lost || f->gone)
    return;
  if (f->o->status(f->o->arg, &list, &n) != 0) {
    f->lost = f->gone = true;
    return;
  }
  f->gone = true;
  for (i = 0; i < n; i++)
    if (list[i].id == f->sid && list[i].pid == f->pid) {
      f->gone = state_ended(list[i].state);
      f->intervals = list[i].intervals;
      copy_str(f->trace, sizeof(f->trace), list[i].trace);
      if (f->trace[0])
        copy_str(f->known, sizeof(f->known), f->trace);
    }
  ctr_follow_sessions_free(list, n);
}

/* Finds the folder of interval f->next once it exists; true when it was
 * opened. */
static bool open_next(follower_t *f) {
  char dir[PATH_MAX];

  if (!f->gone && f->intervals == f->next && f->trace[0])
    copy_str(dir, sizeof(dir), f->trace);
  else if ((f->gone || f->intervals >= f->next) && f->known[0] &&
           find_interval(f->known, f->sid, f->pid, f->next, dir, sizeof(dir)))
    ;
  else
    return false;
  if (tail_open(&f->t, dir, f->next, f->o->json) != 0)
    return false;
  if (f->ended.len) {
    ctr_buf_printf(&f->ended, ",\"next\":%" PRIu64 ",\"trace\":", f->next);
    ctr_json_str(&f->ended, dir, strlen(dir));
    printf("%.*s}}\n", (int)f->ended.len, f->ended.data);
    fflush(stdout);
    ctr_buf_free(&f->ended);
  }
  f->tailing = true;
  f->finished = false;
  return true;
}

static void finish_folder(follower_t *f, const meta_t *m) {
  /* "aborted: <why>" already says why the interval ended. */
  bool said = strncmp(m->state, "aborted: ", 9) == 0 &&
              strcmp(m->state + 9, m->end_reason) == 0;
  bool why = m->end_reason[0] && !said;

  if (f->o->json) {
    /* Said when the next interval opens, in one boundary record. */
    ctr_buf_free(&f->ended);
    ctr_buf_printf(&f->ended, "{\"IntervalBoundary\":{\"ended\":%" PRIu64
                   ",\"state\":", f->t.index);
    ctr_json_str(&f->ended, m->state, strlen(m->state));
    ctr_buf_puts(&f->ended, ",\"end_reason\":");
    ctr_json_str(&f->ended, m->end_reason, strlen(m->end_reason));
  } else {
    ctr_buf_t b = {0};
    size_t at;
    ctr_render_flush(f->t.r);
    ctr_buf_printable(&b, m->state, strlen(m->state));
    at = b.len + 1;
    ctr_buf_add(&b, "", 1);
    ctr_buf_printable(&b, m->end_reason, strlen(m->end_reason));
    printf("== interval %" PRIu64 " %s%s%s%s ==\n", f->t.index, b.data,
           why ? " (" : "", why ? b.data + at : "", why ? ")" : "");
    ctr_buf_free(&b);
    fflush(stdout);
  }
  f->next = f->t.index + 1;
  tail_free(&f->t);
  f->tailing = false;
  f->finished = true;
}

static int follow(follower_t *f) {
  const ctr_follow_opts_t *o = f->o;
  int64_t last_status = now_ms();

  for (;;) {
    bool finished = false;
    long got;
    meta_t m;
    if (interrupted)
      return 128 + interrupted;
    if (f->tailing) {
      /* Metadata first: when it says finished, the drain after it has
       * seen every record of the folder. */
      finished = read_meta(f->t.dir, &m) && meta_finished(&m);
      got = drain(&f->t, o->json);
      if (got < 0)
        return 1;
      if (finished) {
        finish_folder(f, &m);
        refresh(f);
        last_status = now_ms();
        continue;
      }
      /* Nothing new: a held Step is shown rather than kept waiting. */
      if (!o->json && got == 0) {
        ctr_render_flush(f->t.r);
        fflush(stdout);
      }
    }
    if (!f->tailing || now_ms() - last_status >= STATUS_EVERY_MS) {
      refresh(f);
      last_status = now_ms();
    }
    if (!f->tailing) {
      if (open_next(f))
        continue;
      if (f->gone) {
        if (!o->json)
          printf("== session %" PRIu64 " ended ==\n", f->sid);
        /* A daemon that stopped after completing the trace ended it well. */
        return f->lost && !f->finished ? 1 : 0;
      }
    } else if (f->lost && writer_alive(&m)) {
      f->gone_at = 0;
    } else if (f->gone) {
      if (f->gone_at == 0)
        f->gone_at = now_ms();
      else if (now_ms() - f->gone_at > GONE_GRACE_MS) {
        drain(&f->t, o->json);
        fprintf(stderr,
                "%s: follow: session %" PRIu64 " is gone but %s was not "
                "completed\n",
                prog_name, f->sid, f->t.dir);
        return 1;
      }
    }
    sleep_ms(o->poll_ms);
  }
}

static void catch_signals(void) {
  struct sigaction sa;

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

int ctr_follow_folder(const ctr_follow_opts_t *o, const char *dir) {
  follower_t f;
  meta_t m;
  int rc = 0;

  memset(&f, 0, sizeof(f));
  f.o = o;
  catch_signals();
  /* ctrecd writes a new folder's metadata right after its trace file: a
   * folder found in between gets a moment to have it. */
  for (int64_t until = now_ms() + META_WAIT_MS;
       !read_meta(dir, &m) && now_ms() < until && !interrupted;)
    sleep_ms(o->poll_ms);
  if (tail_open(&f.t, dir, m.ok && m.index > 0 ? (uint64_t)m.index : 0,
                o->json) != 0)
    return 1;
  for (;;) {
    /* Metadata first: when it says finished, the drain after it has seen
     * every record. A folder still without metadata is read as it is. */
    bool has = read_meta(dir, &m), finished = !has || meta_finished(&m);
    if (drain(&f.t, o->json) < 0) {
      rc = 1;
      break;
    }
    if (finished) {
      if (has)
        finish_folder(&f, &m);
      break;
    }
    if (!o->json) {
      ctr_render_flush(f.t.r);
      fflush(stdout);
    }
    if (interrupted) {
      rc = 128 + interrupted;
      break;
    }
    sleep_ms(o->poll_ms);
  }
  tail_free(&f.t);
  ctr_buf_free(&f.ended);
  fflush(stdout);
  return rc;
}

int ctr_follow_run(const ctr_follow_opts_t *o) {
  ctr_follow_session_t *list = NULL;
  const ctr_follow_session_t *s;
  follower_t f;
  size_t n = 0;
  int rc;

  if (o->status(o->arg, &list, &n) != 0)
    return 1;
  if (ambiguous(o, list, n) || (s = pick(o, list, n)) == NULL) {
    ctr_follow_sessions_free(list, n);
    return 1;
  }
  memset(&f, 0, sizeof(f));
  f.o = o;
  f.sid = s->id;
  f.pid = s->pid;
  f.intervals = s->intervals;
  copy_str(f.trace, sizeof(f.trace), s->trace);
  copy_str(f.known, sizeof(f.known), s->trace);
  f.gone = state_ended(s->state);
  /* A session between intervals is followed from its next one. */
  f.next = f.trace[0] ? f.intervals : f.intervals + 1;
  if (!o->json) {
    printf("== session %" PRIu64 ": pid %" PRId64 " %s ==\n", s->id, s->pid,
           s->program);
    fflush(stdout);
  }
  ctr_follow_sessions_free(list, n);

  catch_signals();
  rc = follow(&f);
  tail_free(&f.t);
  ctr_buf_free(&f.ended);
  fflush(stdout);
  return rc;
}
