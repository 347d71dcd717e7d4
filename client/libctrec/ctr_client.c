/* ctr_client.c: libctrec, the in-process client shared by every shim.
 *
 * Locking: `send_mu` serialises everything that touches the socket (sends,
 * the non-blocking reads of control messages, connect and close); `mu`
 * guards the batch being filled. When both are needed `send_mu` is taken
 * first. A flush swaps the filled batch with an empty spare under `mu` and
 * queues it as a frame under `send_mu` only, so the program can keep
 * packing into the fresh batch while the previous one is on the wire.
 *
 * The program never waits on the daemon for long: queued frames go out
 * without blocking (the flush thread waits for the socket, in slices that
 * let go of `send_mu`), a program thread whose batch is full queues it only
 * when `send_mu` is free, and the end of the session waits for the rest
 * only while the daemon reads: at most WELCOME's `wait_ms` without a byte
 * taken. Before WELCOME (a busy daemon may take seconds to answer HELLO)
 * the program records with the default settings after waiting for it 2 s.
 * Past WELCOME's `buffer` unsent bytes nothing is
 * recorded until half of them are sent; the events left out are reported
 * as LOST "daemon not reading", and the shims send their stacks again as
 * after a RESUME. */
#include "ctr_client.h"
#include "ctr_fifo_dial.h"
#include "ctr_vref.h"

#include "ctr_enc.h"
#include "ctr_filter.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* How long a client records into its buffer waiting for WELCOME before it
 * gives up: a crowd of programs starting at once on a busy machine may
 * keep the daemon from answering for seconds. */
#define CTR_CLIENT_WELCOME_MS 30000
/* How long the program waits for WELCOME before going on without it. */
#define CTR_CLIENT_HANDSHAKE_MS 2000
#define CTR_CLIENT_SEND_HELLO_MS 2000
#define CTR_CLIENT_FLUSH_MS_DEFAULT 100
#define CTR_CLIENT_READ_MAX (1u << 20)
#define CTR_CLIENT_WAIT_MS_DEFAULT 1000
#define CTR_CLIENT_BUFFER_DEFAULT (16u << 20)
/* How long the flush thread holds send_mu waiting for the socket. */
#define CTR_CLIENT_SLICE_MS 50

typedef struct ctr_client_buf_s {
  char *data;
  size_t len;
  size_t cap;
} ctr_client_buf_t;

typedef struct ctr_client_s {
  atomic_flag busy;        /* the batch being filled: ctr_client_lock */
  pthread_mutex_t send_mu; /* the socket */
  atomic_int send_wanted;  /* threads waiting for send_mu: the flush
                            * thread lets go of it for them */
  atomic_int fatal_pending; /* a signal for the flush thread: on_fatal */
  pthread_mutex_t wake_mu; /* the flush thread's sleep and thread_stop */
  pthread_cond_t wake;     /* wakes the flush thread (with wake_mu) */
  atomic_bool enabled;     /* connected, or reconnect pending after fork */
  atomic_bool paused;      /* daemon sent PAUSE */
  atomic_bool resumed;     /* daemon sent RESUME; the shim sends STACK */
  /* RECORD messages packed, and how many the daemon said it applied
   * (RECORDED): PAUSE and RESUME sent before it applied the last one are
   * overtaken by the program's own switch. */
  _Atomic uint64_t records_sent, records_done;
  _Atomic(ctr_filter_t *) filter; /* pushed code rules, NULL: record all */
  atomic_uint filter_gen;
  atomic_int values;   /* record.values: WELCOME, then FILTER */
  atomic_bool no_pushdown; /* WELCOME's filter.pushdown: false */
  _Atomic uint64_t filtered; /* skipped by push-down, not yet reported */
  atomic_uint generation;
  atomic_uint stamp; /* moves with generation and filter_gen */
  bool started;       /* ctr_client_start succeeded once in this process */
  bool finished;      /* ctr_client_finish ran */
  bool reconnect;     /* fork child: connect at the next begin */
  bool thread_running;
  bool thread_stop;
  bool oom;           /* the current batch lost bytes to a failed realloc */
  pthread_t thread;
  int fd;
  char *socket_path;
  ctr_client_info_t info;
  ctr_welcome_t welcome;
  ctr_client_buf_t batch[2]; /* batch[cur] is filled, the other is spare */
  int cur;
  ctr_client_buf_t out;      /* framed batches not yet sent (send_mu) */
  size_t out_off;            /* bytes of out already sent */
  uint64_t sent;             /* bytes the socket took, ever (send_mu) */
  atomic_size_t backlog;     /* out's unsent bytes, for the program threads */
  atomic_bool overflow;      /* past the buffer bound: nothing is recorded */
  _Atomic uint64_t skipped;  /* events left out meanwhile, not yet reported */
  bool welcomed;             /* WELCOME read (send_mu; settings under mu) */
  /* What the daemon sends is read from rfd: fd itself on a socket, the
   * other FIFO of a pair (PROTOCOL.md 1.1), where fd only writes. */
  int rfd;
  char refusal[300];         /* why the daemon refused the session */
  uint64_t hello_ns;         /* when HELLO went out */
  msgpack_packer pk;
  ctr_frame_reader_t reader;
  uint64_t lost_batches; /* dropped whole, reported in the next batch */
  pid_t forked_from; /* pid before the last fork, 0 in the first process */
} ctr_client_t;

static ctr_client_t g_client = {
    .busy = ATOMIC_FLAG_INIT,
    .send_mu = PTHREAD_MUTEX_INITIALIZER,
    .wake_mu = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .fd = -1,
    .rfd = -1,
};

/* The batch lock. Every event takes it and almost nobody else wants it
 * (the flush thread swaps batches a few times a second), so it is a spin
 * lock: a mutex costs an event more than the rest of its bookkeeping.
 * Holders only pack or swap, so a waiter yields rather than sleeps. */
static void ctr_client_lock(ctr_client_t *c) {
  while (atomic_flag_test_and_set_explicit(&c->busy, memory_order_acquire))
    sched_yield();
}

static void ctr_client_unlock(ctr_client_t *c) {
  atomic_flag_clear_explicit(&c->busy, memory_order_release);
}

/* The signals that end a process at once by default (ctr_client_on_fatal). */
static const int ctr_client_fatal[] = {SIGTERM, SIGHUP};

/* Holds the fatal signals off this thread while it sends (a flush, the
 * end of the session), so that one arriving then is handled after the
 * send, not in the middle of it; ctr_client_unblock_fatal undoes it. */
static void ctr_client_block_fatal(sigset_t *old) {
  sigset_t set;
  sigemptyset(&set);
  for (size_t i = 0; i < sizeof(ctr_client_fatal) / sizeof(*ctr_client_fatal);
       i++)
    sigaddset(&set, ctr_client_fatal[i]);
  pthread_sigmask(SIG_BLOCK, &set, old);
}

static void ctr_client_unblock_fatal(const sigset_t *old) {
  pthread_sigmask(SIG_SETMASK, old, NULL);
}

static uint64_t ctr_client_clock(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t ctr_client_now_ns(void) { return ctr_client_clock(CLOCK_MONOTONIC); }

/* Room for len more bytes in the batch being filled, or NULL. A failed
 * allocation marks the batch so that it is dropped whole instead of sending
 * a truncated message. */
static char *ctr_client_room(ctr_client_t *c, size_t len) {
  ctr_client_buf_t *b = &c->batch[c->cur];
  if (c->oom)
    return NULL;
  if (b->len + len > b->cap) {
    size_t cap = b->cap ? b->cap : 2 * CTR_CLIENT_BATCH;
    while (cap < b->len + len)
      cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) {
      c->oom = true;
      return NULL;
    }
    b->data = p;
    b->cap = cap;
  }
  return b->data + b->len;
}

/* Appends to the batch being filled (the packer's callback). */
static int ctr_client_write_cb(void *data, const char *buf, size_t len) {
  ctr_client_t *c = data;
  char *p = ctr_client_room(c, len);
  if (p != NULL) {
    memcpy(p, buf, len);
    c->batch[c->cur].len += len;
  }
  return 0;
}

unsigned char *ctr_client_reserve(size_t n) {
  return (unsigned char *)ctr_client_room(&g_client, n);
}

void ctr_client_commit(size_t used) { g_client.batch[g_client.cur].len += used; }

/* Unsent bytes past which the program waits (WELCOME's buffer). */
static size_t ctr_client_bound(const ctr_client_t *c) {
  return c->welcome.buffer ? c->welcome.buffer : CTR_CLIENT_BUFFER_DEFAULT;
}

static uint64_t ctr_client_wait_ns(const ctr_client_t *c) {
  uint32_t ms = c->welcome.wait_ms ? c->welcome.wait_ms : CTR_CLIENT_WAIT_MS_DEFAULT;
  return (uint64_t)ms * 1000000u;
}

/* Reads what is there without blocking: recv on a socket, read on a FIFO
 * (opened non-blocking). */
static ssize_t ctr_client_recv(int fd, char *buf, size_t n) {
  ssize_t r = recv(fd, buf, n, MSG_DONTWAIT);

  return r < 0 && errno == ENOTSOCK ? read(fd, buf, n) : r;
}

/* Sends up to n bytes without blocking past deadline (monotonic ns); never
 * raises SIGPIPE. Returns the bytes sent, or -errno when the connection
 * failed. Only send and poll: safe in a signal handler. */
static ssize_t ctr_client_send_by(int fd, const char *p, size_t n,
                                  uint64_t deadline) {
  size_t done = 0;
  while (done < n) {
    ssize_t w = send(fd, p + done, n - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    /* A FIFO, non-blocking and never without a reader (PROTOCOL.md 1.1):
     * write cannot raise SIGPIPE. */
    if (w < 0 && errno == ENOTSOCK)
      w = write(fd, p + done, n - done);
    if (w > 0) {
      done += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
      return -errno;
    uint64_t now = ctr_client_now_ns();
    if (now >= deadline)
      break;
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    (void)poll(&pf, 1, (int)((deadline - now + 999999u) / 1000000u));
  }
  return (ssize_t)done;
}

/* One frame, whole or failed (the handshake, the end after a fatal
 * signal). */
static int ctr_client_send_frame(int fd, const char *p, size_t n,
                                 uint64_t deadline) {
  char hdr[CTR_FRAME_HEADER];
  ctr_frame_put_header(hdr, (uint32_t)n);
  ssize_t w = ctr_client_send_by(fd, hdr, sizeof hdr, deadline);
  if (w < 0)
    return (int)w;
  if (w != (ssize_t)sizeof hdr)
    return -ETIMEDOUT;
  w = ctr_client_send_by(fd, p, n, deadline);
  if (w < 0)
    return (int)w;
  return (size_t)w == n ? 0 : -ETIMEDOUT;
}

/* The connection is gone: turn off, tell the user once. Caller holds send_mu. */
/* Closes the connection's descriptors. Only close: safe after fork and in
 * a signal handler. */
static void ctr_client_close(ctr_client_t *c) {
  if (c->rfd >= 0 && c->rfd != c->fd)
    close(c->rfd);
  if (c->fd >= 0)
    close(c->fd);
  c->fd = c->rfd = -1;
}

static void ctr_client_lost(ctr_client_t *c, const char *why) {
  ctr_client_close(c);
  if (atomic_exchange(&c->enabled, false))
    fprintf(stderr, "ctrec: lost connection to ctrecd (%s); recording disabled\n",
            why);
}

/* A batch is lost whole: its DEFs never reach the daemon, nor its
 * RECORDs, which the daemon will then never say it applied. */
static void ctr_client_drop(ctr_client_t *c) {
  c->lost_batches++;
  ctr_vref_forget();
  atomic_store(&c->records_sent, atomic_load(&c->records_done));
}

/* Takes the filled batch (caller holds mu) into the spare slot and returns
 * it, or NULL when there is nothing to send. */
static ctr_client_buf_t *ctr_client_swap(ctr_client_t *c) {
  ctr_client_buf_t *b = &c->batch[c->cur];
  if (b->len == 0)
    return NULL;
  if (c->oom) {
    b->len = 0;
    c->oom = false;
    ctr_client_drop(c);
    return NULL;
  }
  c->cur ^= 1;
  c->batch[c->cur].len = 0;
  return b;
}

/* Sends queued bytes until none are left or deadline passes. Caller holds
 * send_mu. */
static void ctr_client_pump(ctr_client_t *c, uint64_t deadline) {
  if (c->fd >= 0 && c->out_off < c->out.len) {
    ssize_t w = ctr_client_send_by(c->fd, c->out.data + c->out_off,
                                   c->out.len - c->out_off, deadline);
    if (w < 0) {
      ctr_client_lost(c, strerror((int)-w));
    } else {
      c->out_off += (size_t)w;
      c->sent += (uint64_t)w;
    }
  }
  if (c->fd < 0 || c->out_off == c->out.len) {
    c->out.len = c->out_off = 0;
  } else if (c->out_off > (1u << 20) && c->out_off > c->out.len / 2) {
    memmove(c->out.data, c->out.data + c->out_off, c->out.len - c->out_off);
    c->out.len -= c->out_off;
    c->out_off = 0;
  }
  atomic_store(&c->backlog, c->out.len - c->out_off);
}

/* Sends what is queued until at most keep bytes are left, as long as the
 * daemon keeps reading; false once wait_ms pass without a byte taken (a
 * stopped or wedged daemon). Caller holds send_mu. */
static bool ctr_client_drain(ctr_client_t *c, size_t keep) {
  while (c->fd >= 0 && c->out.len - c->out_off > keep) {
    size_t left = c->out.len - c->out_off;
    ctr_client_pump(c, ctr_client_now_ns() + ctr_client_wait_ns(c));
    if (c->fd >= 0 && c->out.len - c->out_off == left)
      return false;
  }
  return true;
}

/* Queues one swapped-out batch as a frame and sends what the socket takes
 * by deadline. Caller holds send_mu (not mu). */
static void ctr_client_send_batch(ctr_client_t *c, ctr_client_buf_t *b,
                                  uint64_t deadline) {
  if (c->fd >= 0 && atomic_load(&c->enabled)) {
    size_t need = c->out.len + CTR_FRAME_HEADER + b->len;
    if (need > c->out.cap) {
      size_t cap = c->out.cap ? c->out.cap : 2 * CTR_CLIENT_BATCH;
      while (cap < need)
        cap *= 2;
      char *p = realloc(c->out.data, cap);
      if (p == NULL) {
        /* Lost whole, as a batch the shim could not pack. */
        ctr_client_drop(c);
        b->len = 0;
        return;
      }
      c->out.data = p;
      c->out.cap = cap;
    }
    ctr_frame_put_header(c->out.data + c->out.len, (uint32_t)b->len);
    memcpy(c->out.data + c->out.len + CTR_FRAME_HEADER, b->data, b->len);
    c->out.len = need;
    ctr_client_pump(c, deadline);
  }
  b->len = 0;
}

char *ctr_client_read_source(const char *file, size_t *len, bool *whole) {
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  struct stat st;
  char *buf = NULL;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    size_t cap = (uint64_t)st.st_size < CTR_CLIENT_SOURCE_MAX
                     ? (size_t)st.st_size
                     : CTR_CLIENT_SOURCE_MAX;
    buf = malloc(cap ? cap : 1);
    *len = 0;
    while (buf != NULL && *len < cap) {
      ssize_t r = read(fd, buf + *len, cap - *len);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        break;
      *len += (size_t)r;
    }
    *whole = (uint64_t)st.st_size <= CTR_CLIENT_SOURCE_MAX;
  }
  close(fd);
  return buf;
}

size_t ctr_client_reload_base(const char *file,
                              char out[CTR_CLIENT_RELOAD_BASE]) {
  const char *name = strrchr(file, '/');
  name = name ? name + 1 : file;
  int n = snprintf(out, CTR_CLIENT_RELOAD_BASE, "<reload:%.255s>", name);
  for (int i = 1; i < n - 1; i++)
    if (out[i] == '<' || out[i] == '>')
      out[i] = '_';
  return (size_t)n;
}

void ctr_client_pack_source(msgpack_packer *pk, uint32_t path_id,
                            const char *file) {
  size_t len;
  bool whole;
  char *buf = ctr_client_read_source(file, &len, &whole);
  if (buf != NULL && whole)
    ctr_pack_source(pk, path_id, buf, len);
  free(buf);
}

/* Queues the filled batch and sends what the socket takes by deadline.
 * Without `wait`, a program thread does not even wait for send_mu: the
 * flush thread holding it is sending, and will take the batch later. */
static void ctr_client_flush_by(ctr_client_t *c, bool wait, uint64_t deadline) {
  sigset_t old;
  ctr_client_block_fatal(&old);
  if (wait)
    pthread_mutex_lock(&c->send_mu);
  else if (pthread_mutex_trylock(&c->send_mu) != 0) {
    ctr_client_unblock_fatal(&old);
    return;
  }
  ctr_client_lock(c);
  ctr_client_buf_t *b = ctr_client_swap(c);
  ctr_client_unlock(c);
  if (b != NULL)
    ctr_client_send_batch(c, b, deadline);
  else
    ctr_client_pump(c, deadline);
  pthread_mutex_unlock(&c->send_mu);
  ctr_client_unblock_fatal(&old);
}

void ctr_client_flush(void) {
  ctr_client_t *c = &g_client;
  ctr_client_flush_by(c, true, ctr_client_now_ns());
  pthread_mutex_lock(&c->send_mu);
  (void)ctr_client_drain(c, 0);
  pthread_mutex_unlock(&c->send_mu);
}

/* ---- control messages from the daemon ------------------------------- */

/* Compiles pushed rules; NULL (record everything) when they are malformed,
 * which is safe: the daemon filters again. */
static ctr_filter_t *ctr_client_compile(const msgpack_object *arr) {
  uint32_t n = arr->via.array.size, i;
  ctr_filter_rule_t *rules = calloc(n ? n : 1, sizeof(*rules));
  char *buf = malloc((size_t)n * 3 * (CTR_FILTER_MAX_PATTERN + 1) + 1);
  ctr_filter_spec_t spec = {0};
  ctr_filter_t *f = NULL;
  size_t used = 0;

  if (rules && buf) {
    for (i = 0; i < n; i++) {
      ctr_wire_rule_t w;
      size_t cap = 3 * (CTR_FILTER_MAX_PATTERN + 1);
      if (!ctr_wire_rule_read(&arr->via.array.ptr[i], &w, buf + used, cap))
        break;
      rules[i].file = w.file;
      rules[i].module = w.module;
      rules[i].function = w.function;
      rules[i].action = w.action;
      used += cap;
    }
    spec.rules = rules;
    spec.nrules = n;
    if (i != n || ctr_filter_compile(&f, &spec, NULL, 0) != 0)
      f = NULL;
  }
  free(rules);
  free(buf);
  return f;
}

/* Installs new rules. The old ones are kept (never freed) because a shim
 * thread may be deciding with them right now; reloads are rare. */
static void ctr_client_set_filter(ctr_client_t *c, const msgpack_object *arr,
                                  int values) {
  atomic_store(&c->values, values);
  atomic_store(&c->filter, arr ? ctr_client_compile(arr) : NULL);
  atomic_fetch_add(&c->filter_gen, 1);
  atomic_fetch_add(&c->stamp, 1);
}

int ctr_client_values(void) { return atomic_load(&g_client.values); }

bool ctr_client_pushdown(void) {
  return !atomic_load_explicit(&g_client.no_pushdown, memory_order_relaxed);
}

const struct ctr_filter_s *ctr_client_filter(uint32_t *generation) {
  if (generation)
    *generation = atomic_load(&g_client.filter_gen);
  return atomic_load(&g_client.filter);
}

int ctr_client_decide(const char *file, const char *function) {
  return ctr_client_decide_in(file, NULL, function);
}

int ctr_client_decide_in(const char *file, const char *module,
                         const char *function) {
  const ctr_filter_t *f = atomic_load(&g_client.filter);
  char *mod, *fn;
  int action;

  if (f == NULL)
    return CTR_FILTER_RECORD;
  if (ctr_filter_names(g_client.info.lang, module, function, &mod, &fn) != 0)
    return CTR_FILTER_RECORD; /* out of memory: the daemon still filters */
  action = ctr_filter_decide(f, file, mod, fn);
  free(mod);
  free(fn);
  return action;
}

void ctr_client_filtered(uint64_t n) {
  atomic_fetch_add_explicit(&g_client.filtered, n, memory_order_relaxed);
}

/* Reports what push-down skipped since the last report. Caller holds mu. */
static void ctr_client_pack_filtered(ctr_client_t *c) {
  uint64_t n = atomic_exchange(&c->filtered, 0);

  if (n > 0)
    ctr_pack_lost(&c->pk, n, "filtered");
}

/* Reports the events left out while the daemon did not read. Caller holds
 * mu. */
static void ctr_client_pack_skipped(ctr_client_t *c) {
  uint64_t n = atomic_exchange(&c->skipped, 0);

  if (n > 0)
    ctr_pack_lost(&c->pk, n, "daemon not reading");
}

bool ctr_client_take_resume(void) {
  return atomic_load_explicit(&g_client.resumed, memory_order_relaxed) &&
         atomic_exchange(&g_client.resumed, false);
}

/* The tag of a daemon message, or 0 when it has none. */
static int ctr_client_tag(const msgpack_object *o) {
  if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size == 0 ||
      o->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
      o->via.array.ptr[0].via.u64 > INT16_MAX)
    return 0;
  return (int)o->via.array.ptr[0].via.u64;
}

/* Applies PAUSE, RESUME and FILTER, which need no lock; false for others. */
static bool ctr_client_apply(ctr_client_t *c, const msgpack_object *o) {
  bool overtaken = atomic_load(&c->records_done) < atomic_load(&c->records_sent);
  switch (ctr_client_tag(o)) {
  case CTR_MSG_PAUSE:
    if (!overtaken)
      atomic_store(&c->paused, true);
    return true;
  case CTR_MSG_RESUME:
    if (!overtaken) {
      atomic_store(&c->resumed, true);
      atomic_store(&c->paused, false);
    }
    return true;
  case CTR_MSG_RECORDED:
    if (o->via.array.size == 2 &&
        o->via.array.ptr[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
      atomic_store(&c->records_done, o->via.array.ptr[1].via.u64);
    return true;
  case CTR_MSG_FILTER: {
    ctr_msg_t m;
    const char *why;
    if (ctr_msg_decode(o, &m, &why) == 0)
      ctr_client_set_filter(c, m.u.filter.rules, m.u.filter.values);
    return true;
  }
  default:
    return false;
  }
}

/* ---- handshake ------------------------------------------------------ */

/* The settings before WELCOME: the daemon's defaults (config/ctrec.yaml),
 * the built-in code rules (standard library and gems skipped), no
 * references. Caller holds mu. */
static void ctr_client_default_settings(ctr_client_t *c) {
  ctr_filter_spec_t spec = {.defaults = true};
  ctr_filter_t *f = NULL;

  memset(&c->welcome, 0, sizeof c->welcome);
  c->welcome.recording = true;
  c->welcome.pushdown = true;
  c->welcome.values = CTR_WV_ALL;
  ctr_vref_reset(0);
  atomic_store(&c->no_pushdown, false);
  if (ctr_filter_compile(&f, &spec, NULL, 0) != 0)
    f = NULL; /* out of memory: everything is recorded, the daemon filters */
  atomic_store(&c->values, CTR_WV_ALL);
  atomic_store(&c->filter, f);
  atomic_fetch_add(&c->filter_gen, 1);
  atomic_fetch_add(&c->stamp, 1);
}

/* The daemon's first answer: WELCOME puts its settings in force (the
 * caller holds mu, or `lock` says to take it: the program packs with
 * them); ERROR ends recording. False when the answer is neither, or
 * refuses. Caller holds send_mu. */
static bool ctr_client_on_welcome(ctr_client_t *c, const msgpack_object *o,
                                  bool lock) {
  ctr_msg_t m;
  const char *why = NULL;
  int rc = ctr_msg_decode(o, &m, &why);

  if (rc == 0 && m.tag == CTR_MSG_WELCOME) {
    if (lock)
      ctr_client_lock(c);
    c->welcome = m.u.welcome;
    c->welcome.filter = NULL;
    c->welcome.rules = NULL;
    ctr_vref_reset(m.u.welcome.refs);
    atomic_store(&c->no_pushdown, !m.u.welcome.pushdown);
    /* The rule array lives in this frame only: compile it now. */
    ctr_client_set_filter(c, m.u.welcome.filter, m.u.welcome.values);
    atomic_store(&c->paused, !m.u.welcome.recording);
    c->welcomed = true;
    /* The daemon holds the FIFO pair now: its end becomes ours to see. */
    if (c->rfd != c->fd)
      (void)ctr_fifo_settle(c->rfd);
    if (lock)
      ctr_client_unlock(c);
    return true;
  }
  if (rc == 0 && m.tag == CTR_MSG_ERROR)
    snprintf(c->refusal, sizeof c->refusal, "refused: %.*s",
             (int)m.u.error.text.len, m.u.error.text.ptr);
  else
    snprintf(c->refusal, sizeof c->refusal, "bad answer: %s",
             why ? why : "not WELCOME");
  ctr_client_lost(c, c->refusal);
  return false;
}

/* Frames read while the session opens (caller holds send_mu and mu): the
 * WELCOME, and what came with it (a PAUSE right away, and the FLUSH that
 * confirms it, answered at once: nothing was sent since HELLO). */
static int ctr_client_on_opening(void *arg, const char *payload, uint32_t len) {
  ctr_client_t *c = arg;
  size_t off = 0;
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  while (c->fd >= 0 &&
         msgpack_unpack_next(&u, payload, len, &off) == MSGPACK_UNPACK_SUCCESS) {
    const msgpack_object *o = &u.data;
    if (!c->welcomed) {
      if (!ctr_client_on_welcome(c, o, false))
        break;
      continue;
    }
    if (ctr_client_apply(c, o) || ctr_client_tag(o) != CTR_MSG_FLUSH ||
        o->via.array.size < 2 ||
        o->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
      continue;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ctr_pack_flush(&pk, CTR_MSG_FLUSHED, o->via.array.ptr[1].via.u64);
    (void)ctr_client_send_frame(c->fd, sb.data, sb.size,
                                ctr_client_now_ns() + ctr_client_wait_ns(c));
    msgpack_sbuffer_destroy(&sb);
  }
  msgpack_unpacked_destroy(&u);
  return 0;
}

static int ctr_client_on_frame(void *arg, const char *payload, uint32_t len) {
  ctr_client_t *c = arg;
  size_t off = 0;
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  while (msgpack_unpack_next(&u, payload, len, &off) == MSGPACK_UNPACK_SUCCESS) {
    const msgpack_object *o = &u.data;
    int tag = ctr_client_tag(o);
    if (!c->welcomed) {
      if (!ctr_client_on_welcome(c, o, true))
        break;
    } else if (ctr_client_apply(c, o)) {
      continue;
    } else if (tag == CTR_MSG_FLUSH && o->via.array.size >= 2) {
      /* The caller holds send_mu, so the answer goes straight out after
       * whatever the program packed so far. */
      uint64_t token = o->via.array.ptr[1].via.u64;
      ctr_client_lock(c);
      msgpack_packer *pk = &c->pk;
      if (c->batch[c->cur].len == 0)
        ctr_pack_time(pk, ctr_client_now_ns());
      ctr_pack_flush(pk, CTR_MSG_FLUSHED, token);
      ctr_client_buf_t *b = ctr_client_swap(c);
      ctr_client_unlock(c);
      if (b != NULL)
        ctr_client_send_batch(c, b, ctr_client_now_ns());
    } else if (tag == CTR_MSG_ERROR) {
      ctr_msg_t m;
      const char *why = NULL;
      if (ctr_msg_decode(o, &m, &why) == 0)
        fprintf(stderr, "ctrec: ctrecd: %.*s\n", (int)m.u.error.text.len,
                m.u.error.text.ptr);
    }
  }
  msgpack_unpacked_destroy(&u);
  return 0;
}

/* Drains whatever the daemon sent without blocking. Caller holds send_mu. */
static void ctr_client_read_control(ctr_client_t *c) {
  char buf[4096];
  while (c->fd >= 0) {
    ssize_t r = ctr_client_recv(c->rfd, buf, sizeof buf);
    if (r > 0) {
      if (ctr_frame_reader_feed(&c->reader, buf, (size_t)r, ctr_client_on_frame,
                                c) < 0) {
        ctr_client_lost(c, "bad frame from daemon");
        return;
      }
      continue;
    }
    if (r == 0) {
      ctr_client_lost(c, "closed by daemon");
      return;
    }
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      ctr_client_lost(c, strerror(errno));
    return;
  }
}

/* ---- fatal signals --------------------------------------------------- */

enum { CTR_TAKEN, CTR_PACKING, CTR_UNTAKEN };

/* Takes the socket and the batch for ctr_client_on_fatal, waiting up to
 * 200 ms for the flush thread to let go of the socket (it sends in
 * slices). CTR_PACKING: a program thread holds the batch, packing an
 * event; it may be this very thread, interrupted, so waiting is no use. */
static int ctr_client_take_for_signal(ctr_client_t *c) {
  int got = CTR_UNTAKEN;
  atomic_fetch_add(&c->send_wanted, 1);
  for (int i = 0; i < 200; i++) {
    bool sending = pthread_mutex_trylock(&c->send_mu) != 0;
    bool packing =
        atomic_flag_test_and_set_explicit(&c->busy, memory_order_acquire);
    if (!sending && !packing) {
      got = CTR_TAKEN;
      break;
    }
    /* Let go of whichever was taken. */
    if (!packing)
      ctr_client_unlock(c);
    if (!sending)
      pthread_mutex_unlock(&c->send_mu);
    if (packing) {
      got = CTR_PACKING;
      break;
    }
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
  atomic_fetch_sub(&c->send_wanted, 1);
  return got;
}

/* Ends the session for a fatal signal: what is queued, the batch, then a
 * BYE with status 128 + sig, through send() alone, with no allocation.
 * Caller holds send_mu and mu. */
static void ctr_client_end_by_signal(ctr_client_t *c, int sig) {
  /* ctr_client_finish may be under way on another thread (it marks the
   * client finished first): until it takes the locks, the end is sent
   * here. */
  if (!atomic_load(&c->enabled) || c->fd < 0 || c->reconnect || c->oom)
    return;
  unsigned char end[64], *p = end;
  uint64_t filtered = atomic_exchange(&c->filtered, 0);
  ctr_client_buf_t *b = &c->batch[c->cur];
  p = ctr_enc_head(p, 2, CTR_MSG_TIME);
  p = ctr_enc_uint(p, ctr_client_now_ns());
  if (filtered > 0) {
    p = ctr_enc_head(p, 3, CTR_MSG_LOST);
    p = ctr_enc_uint(p, filtered);
    p = ctr_enc_text_head(p, false, 8);
    memcpy(p, "filtered", 8);
    p += 8;
  }
  p = ctr_enc_head(p, 2, CTR_MSG_BYE);
  p = ctr_enc_int(p, 128 + sig);
  /* What is queued first, then the batch and the end, all within
   * wait_ms: a daemon that does not read must not hold the death. */
  uint64_t deadline = ctr_client_now_ns() + ctr_client_wait_ns(c);
  ssize_t w = c->out.len > c->out_off
                  ? ctr_client_send_by(c->fd, c->out.data + c->out_off,
                                       c->out.len - c->out_off, deadline)
                  : 0;
  if (w >= 0 && (size_t)w == c->out.len - c->out_off &&
      (b->len == 0 ||
       ctr_client_send_frame(c->fd, b->data, b->len, deadline) == 0))
    ctr_client_send_frame(c->fd, (const char *)end, (size_t)(p - end),
                          deadline);
  b->len = 0;
  c->finished = true;
  atomic_store(&c->enabled, false);
}

/* SIGTERM or SIGHUP with its default action, which kills the process where
 * it stands (Python leaves both so; a pool terminates its workers with
 * SIGTERM): the session ends first, then the default action runs and the
 * process dies of the signal as it would have. With the socket and the
 * batch free (a flush or the end of the session holds these signals off
 * while it sends) the session ends here. A program thread packing an event
 * holds the batch, and it may be the one interrupted: the signal is then
 * the flush thread's, which ends the session and sends it again within
 * flush_ms (ctr_client_fatal_pending), while the interrupted thread, its
 * event packed, waits for it (ctr_client_end). Without a flush thread, or
 * with the socket held for 200 ms, the trace ends aborted. */
static void ctr_client_on_fatal(int sig) {
  ctr_client_t *c = &g_client;
  int saved = errno;
  int got = ctr_client_take_for_signal(c);
  if (got == CTR_PACKING && c->thread_running && !c->finished) {
    atomic_store(&c->fatal_pending, sig);
    errno = saved;
    return;
  }
  if (got == CTR_TAKEN) {
    ctr_client_end_by_signal(c, sig);
    ctr_client_unlock(c);
    pthread_mutex_unlock(&c->send_mu);
  }
  signal(sig, SIG_DFL);
  raise(sig); /* delivered when this handler returns */
  errno = saved;
}

/* The flush thread's part of a fatal signal a packing thread got: once
 * that thread lets go of the batch, the session ends with everything
 * packed so far, then the signal goes to the process again, now with its
 * default action. False when none is pending. */
static bool ctr_client_fatal_pending(ctr_client_t *c) {
  int sig = atomic_load(&c->fatal_pending);
  if (sig == 0)
    return false;
  pthread_mutex_lock(&c->send_mu);
  ctr_client_lock(c);
  ctr_client_end_by_signal(c, sig);
  ctr_client_unlock(c);
  pthread_mutex_unlock(&c->send_mu);
  signal(sig, SIG_DFL);
  kill(getpid(), sig); /* this thread blocks it: another takes it */
  return true;
}

/* ---- flush thread --------------------------------------------------- */

static void *ctr_client_thread_main(void *arg) {
  ctr_client_t *c = arg;
  bool stalled = false;
  pthread_mutex_lock(&c->wake_mu);
  while (!c->thread_stop) {
    /* With frames still queued that the daemon takes, the next slice of
     * sending starts at once: it waits for the socket itself. After a
     * slice that sent nothing (a stopped daemon), or while another thread
     * waits for send_mu (ctr_client_throttle, ctr_client_on_fatal), it
     * first waits a slice without send_mu: taking it back at once starved
     * them for seconds behind a slow daemon. */
    stalled = stalled || atomic_load(&c->send_wanted) > 0;
    if (atomic_load(&c->backlog) == 0 || stalled) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      uint64_t ms = stalled ? CTR_CLIENT_SLICE_MS
                  : c->welcome.flush_ms ? c->welcome.flush_ms
                                        : CTR_CLIENT_FLUSH_MS_DEFAULT;
      ts.tv_sec += (time_t)(ms / 1000);
      ts.tv_nsec += (long)(ms % 1000) * 1000000L;
      if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
      }
      pthread_cond_timedwait(&c->wake, &c->wake_mu, &ts);
    }
    if (c->thread_stop)
      break;
    pthread_mutex_unlock(&c->wake_mu);
    if (ctr_client_fatal_pending(c))
      return NULL;

    pthread_mutex_lock(&c->send_mu);
    if (c->fd >= 0)
      ctr_client_read_control(c);
    if (c->fd >= 0 && !c->welcomed &&
        ctr_client_now_ns() - c->hello_ns > CTR_CLIENT_WELCOME_MS * 1000000ull)
      ctr_client_lost(c, "no answer within 30 s");
    ctr_client_lock(c);
    ctr_client_buf_t *b = ctr_client_swap(c);
    ctr_client_unlock(c);
    uint64_t slice = ctr_client_now_ns() + CTR_CLIENT_SLICE_MS * 1000000ull;
    uint64_t before = c->sent;
    if (b != NULL)
      ctr_client_send_batch(c, b, slice);
    else
      ctr_client_pump(c, slice);
    stalled = c->sent == before && atomic_load(&c->backlog) > 0;
    pthread_mutex_unlock(&c->send_mu);

    pthread_mutex_lock(&c->wake_mu);
  }
  pthread_mutex_unlock(&c->wake_mu);
  return NULL;
}

/* The flush thread takes no signals: the program's threads handle them
 * (ctr_client_on_fatal must not land in the thread holding the socket). */
static void ctr_client_thread_start(ctr_client_t *c) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  c->thread_stop = false;
  if (pthread_create(&c->thread, NULL, ctr_client_thread_main, c) == 0)
    c->thread_running = true;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Catches the fatal signals whose action is still the default one. */
static void ctr_client_catch_fatal(void) {
  for (size_t i = 0; i < sizeof(ctr_client_fatal) / sizeof(*ctr_client_fatal);
       i++) {
    const int *sigs = ctr_client_fatal;
    struct sigaction old, sa;
    if (sigaction(sigs[i], NULL, &old) != 0 || (old.sa_flags & SA_SIGINFO) ||
        old.sa_handler != SIG_DFL)
      continue;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = ctr_client_on_fatal;
    sigemptyset(&sa.sa_mask);
    sigaction(sigs[i], &sa, NULL);
  }
}

static void ctr_client_thread_stop(ctr_client_t *c) {
  if (!c->thread_running)
    return;
  pthread_mutex_lock(&c->wake_mu);
  c->thread_stop = true;
  pthread_cond_signal(&c->wake);
  pthread_mutex_unlock(&c->wake_mu);
  pthread_join(c->thread, NULL);
  c->thread_running = false;
}

static ctr_str_t ctr_client_str(const char *s) {
  if (s == NULL)
    s = "";
  return (ctr_str_t){s, (uint32_t)strlen(s)};
}

/* Opens a connection to the daemon: its Unix socket, or a pair of FIFOs
 * in its folder for "fifo:DIR". *fd writes, *rfd reads (the same socket). */
static int ctr_client_dial(const char *spec, int *fd, int *rfd, char *why,
                           size_t whylen) {
  const char *dir = ctr_fifo_spec(spec);
  if (dir != NULL)
    return ctr_fifo_dial(dir, rfd, fd, why, whylen);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (strlen(spec) >= sizeof sa.sun_path) {
    snprintf(why, whylen, "socket path too long");
    return -ENAMETOOLONG;
  }
  strcpy(sa.sun_path, spec);
  *fd = *rfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (*fd < 0) {
    int e = errno;
    snprintf(why, whylen, "cannot create socket: %s", strerror(e));
    return -e;
  }
  int rc;
  do {
    rc = connect(*fd, (struct sockaddr *)&sa, sizeof sa);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    int e = errno;
    snprintf(why, whylen, "cannot connect to %s: %s", spec, strerror(e));
    close(*fd);
    *fd = *rfd = -1;
    return -e;
  }
  return 0;
}

/* Connects and sends HELLO. On failure fills *why. */
static int ctr_client_connect(ctr_client_t *c, char *why, size_t whylen) {
  int fd, rfd;
  int rc = ctr_client_dial(c->socket_path, &fd, &rfd, why, whylen);
  if (rc < 0)
    return rc;

  char cwd[4096];
  if (getcwd(cwd, sizeof cwd) == NULL)
    cwd[0] = '\0';
  const ctr_client_info_t *in = &c->info;
  ctr_hello_t h;
  memset(&h, 0, sizeof h);
  h.version = CTR_PROTO_VERSION;
  h.role = ctr_client_str("record");
  h.lang = ctr_client_str(in->lang);
  h.lang_version = ctr_client_str(in->lang_version);
  h.shim_version = ctr_client_str(in->shim_version);
  h.pid = getpid();
  /* A fork child reports the process it was forked from even when that
   * one has already exited (Process.daemon), when getppid() says 1. */
  h.ppid = c->forked_from ? c->forked_from : getppid();
  h.program = ctr_client_str(in->program);
  h.cwd = ctr_client_str(cwd);
  h.realtime_ns = (int64_t)ctr_client_clock(CLOCK_REALTIME);
  h.mono_ns = (int64_t)ctr_client_now_ns();

  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  ctr_pack_hello(&pk, &h, in->argc, in->argv);
  rc = ctr_client_send_frame(fd, sb.data, sb.size,
                             ctr_client_now_ns() +
                                 CTR_CLIENT_SEND_HELLO_MS * 1000000ull);
  msgpack_sbuffer_destroy(&sb);
  if (rc < 0) {
    snprintf(why, whylen, "cannot send HELLO to %s: %s", c->socket_path,
             strerror(-rc));
    if (rfd != fd)
      close(rfd);
    close(fd);
    return rc;
  }

  ctr_frame_reader_free(&c->reader);
  ctr_frame_reader_init(&c->reader, CTR_CLIENT_READ_MAX);
  ctr_client_default_settings(c);
  c->welcomed = false;
  c->hello_ns = ctr_client_now_ns();
  c->fd = fd;
  c->rfd = rfd;
  /* WELCOME comes at once from a daemon with time for it. From a busy one
   * it is the flush thread's to read: the program goes on recording into
   * its buffer, with the default settings until WELCOME arrives. */
  uint64_t deadline = c->hello_ns + CTR_CLIENT_HANDSHAKE_MS * 1000000ull;
  while (c->fd >= 0 && !c->welcomed) {
    uint64_t now = ctr_client_now_ns();
    if (now >= deadline)
      break;
    struct pollfd p = {.fd = rfd, .events = POLLIN};
    int n = poll(&p, 1, (int)((deadline - now) / 1000000u) + 1);
    if (n <= 0)
      continue;
    char buf[4096];
    ssize_t r = ctr_client_recv(rfd, buf, sizeof buf);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (r <= 0) {
      snprintf(why, whylen, "%s closed the connection during the handshake",
               c->socket_path);
      ctr_client_lost(c, "");
      return -ECONNRESET;
    }
    if (ctr_frame_reader_feed(&c->reader, buf, (size_t)r,
                              ctr_client_on_opening, c) < 0 && !c->welcomed) {
      snprintf(why, whylen, "bad answer from %s", c->socket_path);
      ctr_client_lost(c, "");
      return CTR_EPROTO;
    }
  }
  if (c->fd < 0) {
    snprintf(why, whylen, "%s: %s", c->socket_path, c->refusal);
    return CTR_EPROTO;
  }
  return 0;
}

/* Connects and starts the flush thread. Caller holds send_mu and mu. */
static int ctr_client_session_open(ctr_client_t *c) {
  char why[512];
  int rc = ctr_client_connect(c, why, sizeof why);
  if (rc < 0) {
    atomic_store(&c->enabled, false);
    fprintf(stderr, "ctrec: %s; recording disabled\n", why);
    return rc;
  }
  c->batch[0].len = c->batch[1].len = 0;
  c->oom = false;
  atomic_store(&c->enabled, true);
  return 0;
}

/* ---- fork ------------------------------------------------------------ */

/* Sends what the parent packed so far so that neither process sends it
 * twice, then holds both locks across fork so the child gets them in a
 * known state. */
static pid_t g_prefork_pid;

static void ctr_client_atfork_prepare(void) {
  ctr_client_t *c = &g_client;
  /* A process that never opened its own session (the middle process of a
   * double fork, as in Process.daemon) passes its own parent on. */
  g_prefork_pid = c->reconnect && c->forked_from ? c->forked_from : getpid();
  pthread_mutex_lock(&c->send_mu);
  ctr_client_lock(c);
  ctr_client_buf_t *b = ctr_client_swap(c);
  if (b != NULL)
    ctr_client_send_batch(c, b, ctr_client_now_ns());
}

static void ctr_client_atfork_parent(void) {
  ctr_client_unlock(&g_client);
  pthread_mutex_unlock(&g_client.send_mu);
}

/* Only cheap, allocation-free work here: the child may be about to exec. */
static void ctr_client_atfork_child(void) {
  ctr_client_t *c = &g_client;
  ctr_client_close(c);
  c->batch[0].len = c->batch[1].len = 0;
  c->out.len = c->out_off = 0; /* the parent's to send */
  atomic_store(&c->backlog, 0);
  atomic_store(&c->overflow, false);
  atomic_store(&c->skipped, 0);
  atomic_store(&c->fatal_pending, 0); /* the parent's */
  c->oom = false;
  c->forked_from = g_prefork_pid;
  c->thread_running = false; /* the thread did not survive fork */
  /* The parent's flush thread may have been waiting on them. */
  pthread_mutex_init(&c->wake_mu, NULL);
  pthread_cond_init(&c->wake, NULL);
  if (c->started && !c->finished && atomic_load(&c->enabled)) {
    /* The child is a new session: the daemon tells it afresh whether to
     * record, so a pause inherited from the parent must not stop it. */
    atomic_store(&c->paused, false);
    atomic_store(&c->resumed, false);
    atomic_store(&c->filtered, 0);
    atomic_store(&c->records_sent, 0);
    atomic_store(&c->records_done, 0);
    c->reconnect = true;
    atomic_fetch_add(&c->generation, 1);
    atomic_fetch_add(&c->stamp, 1);
  }
  ctr_client_unlock(c);
  pthread_mutex_unlock(&c->send_mu);
}

/* Last resort when the shim's exit hook did not run: push out what is
 * buffered (no BYE, so the daemon can tell). */
static void ctr_client_atexit(void) {
  ctr_client_t *c = &g_client;
  if (c->started && !c->finished && !c->reconnect && atomic_load(&c->enabled))
    ctr_client_flush();
}

/* ---- API ------------------------------------------------------------- */

static char *ctr_client_strdup(const char *s) { return s ? strdup(s) : NULL; }

int ctr_client_start(const ctr_client_info_t *info) {
  ctr_client_t *c = &g_client;
  const char *path = getenv("CT_RECORDER_SOCKET");
  if (path == NULL || path[0] == '\0')
    return 1;
  if (c->started)
    return atomic_load(&c->enabled) ? 0 : CTR_ESTATE;

  /* Keep our own copies: the reconnect after fork needs them later. */
  c->socket_path = strdup(path);
  c->info.lang = ctr_client_strdup(info->lang);
  c->info.lang_version = ctr_client_strdup(info->lang_version);
  c->info.shim_version = ctr_client_strdup(info->shim_version);
  c->info.program = ctr_client_strdup(info->program);
  c->info.argc = info->argc > 0 ? info->argc : 0;
  char **argv = calloc((size_t)c->info.argc + 1, sizeof *argv);
  for (int i = 0; argv != NULL && i < c->info.argc; i++)
    argv[i] = ctr_client_strdup(info->argv[i]);
  c->info.argv = (const char *const *)argv;
  if (c->socket_path == NULL || argv == NULL) {
    fprintf(stderr, "ctrec: out of memory; recording disabled\n");
    return CTR_ENOMEM;
  }
  msgpack_packer_init(&c->pk, c, ctr_client_write_cb);
  ctr_frame_reader_init(&c->reader, CTR_CLIENT_READ_MAX);

  pthread_mutex_lock(&c->send_mu);
  ctr_client_lock(c);
  int rc = ctr_client_session_open(c);
  ctr_client_unlock(c);
  pthread_mutex_unlock(&c->send_mu);
  if (rc < 0)
    return rc;
  c->started = true;
  ctr_client_thread_start(c);
  ctr_client_catch_fatal();
  pthread_atfork(ctr_client_atfork_prepare, ctr_client_atfork_parent,
                 ctr_client_atfork_child);
  atexit(ctr_client_atexit);
  return 0;
}

bool ctr_client_active(void) {
  return atomic_load_explicit(&g_client.enabled, memory_order_relaxed) &&
         !atomic_load_explicit(&g_client.paused, memory_order_relaxed);
}

const ctr_welcome_t *ctr_client_settings(void) { return &g_client.welcome; }

uint32_t ctr_client_generation(void) { return atomic_load(&g_client.generation); }

uint32_t ctr_client_stamp(void) {
  return atomic_load_explicit(&g_client.stamp, memory_order_acquire);
}

/* First use in a fork child: open a session of our own. */
static bool ctr_client_reconnect(ctr_client_t *c) {
  pthread_mutex_lock(&c->send_mu);
  ctr_client_lock(c);
  bool ok = true;
  if (c->reconnect) {
    c->reconnect = false;
    ok = ctr_client_session_open(c) == 0;
  }
  ctr_client_unlock(c);
  pthread_mutex_unlock(&c->send_mu);
  if (ok && !c->thread_running)
    ctr_client_thread_start(c);
  return ok;
}

/* Whether more may be packed: false while overflowing (the daemon took
 * nothing for wait_ms with `buffer` bytes unsent, see throttle), until
 * half of them are sent, or with twice `buffer` held (a batch the flush
 * thread could not take); then *caught_up says that the shims must send
 * their stacks again (as after RESUME) and the events left out be
 * reported. Caller holds mu. */
static bool ctr_client_room_left(ctr_client_t *c, bool *caught_up) {
  size_t bound = ctr_client_bound(c);
  size_t held = atomic_load_explicit(&c->backlog, memory_order_relaxed) +
                c->batch[c->cur].len;

  *caught_up = false;
  if (!atomic_load_explicit(&c->overflow, memory_order_relaxed)) {
    if (held <= 2 * bound) /* past bound, the next begin waits first */
      return true;
    atomic_store(&c->overflow, true);
    return false;
  }
  if (held > bound / 2)
    return false;
  atomic_store(&c->overflow, false);
  atomic_store(&c->resumed, true);
  *caught_up = true;
  return true;
}

/* More than WELCOME's buffer unsent: the program waits for a daemon that
 * reads, as long as it takes bytes, until half is sent; after wait_ms
 * without a byte taken it stops waiting and records nothing until the
 * daemon catches up (the overflow). Called without mu. */
static void ctr_client_throttle(ctr_client_t *c, size_t bound) {
  sigset_t old;
  ctr_client_block_fatal(&old);
  atomic_fetch_add(&c->send_wanted, 1);
  pthread_mutex_lock(&c->send_mu);
  atomic_fetch_sub(&c->send_wanted, 1);
  ctr_client_lock(c);
  ctr_client_buf_t *b = ctr_client_swap(c);
  ctr_client_unlock(c);
  if (b != NULL)
    ctr_client_send_batch(c, b, ctr_client_now_ns());
  if (!ctr_client_drain(c, bound / 2))
    atomic_store(&c->overflow, true);
  pthread_mutex_unlock(&c->send_mu);
  ctr_client_unblock_fatal(&old);
}

msgpack_packer *ctr_client_begin(void) {
  ctr_client_t *c = &g_client;
  bool caught_up;
  if (!ctr_client_active())
    return NULL;
  if (c->reconnect && !ctr_client_reconnect(c))
    return NULL;
  size_t bound = ctr_client_bound(c);
  if (atomic_load_explicit(&c->backlog, memory_order_relaxed) > bound &&
      !atomic_load_explicit(&c->overflow, memory_order_relaxed))
    ctr_client_throttle(c, bound);
  ctr_client_lock(c);
  if (!atomic_load(&c->enabled)) {
    ctr_client_unlock(c);
    return NULL;
  }
  if (!ctr_client_room_left(c, &caught_up)) {
    ctr_client_unlock(c);
    atomic_fetch_add_explicit(&c->skipped, 1, memory_order_relaxed);
    return NULL;
  }
  if (c->batch[c->cur].len == 0) {
    ctr_pack_time(&c->pk, ctr_client_now_ns());
    if (c->lost_batches > 0) {
      ctr_pack_lost(&c->pk, c->lost_batches, "shim out of memory");
      c->lost_batches = 0;
    }
    ctr_client_pack_filtered(c);
  }
  if (caught_up)
    ctr_client_pack_skipped(c);
  return &c->pk;
}

/* A thread whose event a fatal signal interrupted goes no further than
 * that event, as it would have without the shim: it waits for the flush
 * thread to end the session and send the signal again, or ends the
 * process itself should that not come. */
static void ctr_client_await_fatal(ctr_client_t *c) {
  uint64_t until = ctr_client_now_ns() + ctr_client_wait_ns(c) +
                   (c->welcome.flush_ms + 1000) * 1000000ull;
  struct timespec ms = {0, 1000000};
  pthread_mutex_lock(&c->wake_mu); /* now, not at its next flush */
  pthread_cond_signal(&c->wake);
  pthread_mutex_unlock(&c->wake_mu);
  while (ctr_client_now_ns() < until)
    nanosleep(&ms, NULL);
  int sig = atomic_load(&c->fatal_pending);
  signal(sig, SIG_DFL);
  raise(sig);
}

void ctr_client_end(void) {
  ctr_client_t *c = &g_client;
  bool full = c->batch[c->cur].len >= CTR_CLIENT_BATCH;
  ctr_client_unlock(c);
  if (atomic_load_explicit(&c->fatal_pending, memory_order_relaxed))
    ctr_client_await_fatal(c);
  if (full)
    ctr_client_flush_by(c, false, ctr_client_now_ns());
}

void ctr_client_record(bool on) {
  ctr_client_t *c = &g_client;
  if (!atomic_load(&c->enabled) || c->finished)
    return;
  if (c->reconnect && !ctr_client_reconnect(c))
    return;
  ctr_client_lock(c);
  /* Sent also while paused, like TIME and LOST: a resume is sent then. */
  if (atomic_load(&c->enabled) && c->welcome.program_control) {
    if (c->batch[c->cur].len == 0)
      ctr_pack_time(&c->pk, ctr_client_now_ns());
    ctr_pack_record(&c->pk, on);
    atomic_fetch_add(&c->records_sent, 1);
    if (atomic_exchange(&c->paused, !on) && on)
      atomic_store(&c->resumed, true);
  }
  ctr_client_unlock(c);
}

unsigned char *ctr_client_quick(size_t n) {
  ctr_client_t *c = &g_client;
  ctr_client_buf_t *b;

  if (!ctr_client_active() || c->reconnect)
    return NULL;
  ctr_client_lock(c);
  b = &c->batch[c->cur];
  /* A batch starts with TIME (ctr_client_begin packs it). */
  if (b->len == 0 || b->len + n > b->cap || c->oom ||
      atomic_load_explicit(&c->overflow, memory_order_relaxed)) {
    ctr_client_unlock(c);
    return NULL;
  }
  return (unsigned char *)b->data + b->len;
}

void ctr_client_quick_done(unsigned char *end) {
  ctr_client_buf_t *b = &g_client.batch[g_client.cur];

  b->len = (size_t)((char *)end - b->data);
  ctr_client_end();
}

void ctr_client_finish(int64_t exit_status) {
  ctr_client_t *c = &g_client;
  sigset_t old;
  if (!c->started || c->finished)
    return;
  ctr_client_block_fatal(&old);
  c->finished = true;
  ctr_client_thread_stop(c);
  /* A fatal signal the flush thread had no time for: the program dies of
   * it once the session has ended with its status. */
  int sig = atomic_load(&c->fatal_pending);
  if (sig != 0) {
    exit_status = 128 + sig;
    signal(sig, SIG_DFL);
    raise(sig); /* to this thread, once unblocked at the end */
  }
  if (c->reconnect) {
    /* A fork child that never recorded anything has no session to end. */
    c->reconnect = false;
    atomic_store(&c->enabled, false);
    ctr_client_unblock_fatal(&old);
    return;
  }
  pthread_mutex_lock(&c->send_mu);
  ctr_client_lock(c);
  if (atomic_load(&c->enabled)) {
    if (c->batch[c->cur].len == 0)
      ctr_pack_time(&c->pk, ctr_client_now_ns());
    ctr_client_pack_filtered(c);
    ctr_client_pack_skipped(c);
    ctr_pack_bye(&c->pk, exit_status);
  }
  ctr_client_buf_t *b = ctr_client_swap(c);
  ctr_client_unlock(c);
  /* A daemon that takes nothing for wait_ms gets nothing more: the trace
   * then ends without BYE (aborted), which is the truth. */
  if (b != NULL)
    ctr_client_send_batch(c, b, ctr_client_now_ns());
  (void)ctr_client_drain(c, 0);
  atomic_store(&c->enabled, false);
  if (c->fd >= 0 && c->rfd == c->fd)
    shutdown(c->fd, SHUT_WR);
  ctr_client_close(c);
  pthread_mutex_unlock(&c->send_mu);
  ctr_client_unblock_fatal(&old);
}
