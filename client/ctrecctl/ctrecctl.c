/* ctrecctl.c: the command line front end.
 *
 *   ctrecctl record [-o DIR] [-c FILE] [-L LEVEL] [-q] [-t SEC] -- CMD [ARGS...]
 *   ctrecctl status [-s SOCKET] [-t SEC] [--json]
 *   ctrecctl follow [-s SOCKET] [-t SEC] [--json] [SESSION | --pid PID]
 *   ctrecctl start|stop [-s SOCKET] [-t SEC] (SESSION... | --all | --pid PID)
 *   ctrecctl reload [-s SOCKET] [-t SEC]
 *   ctrecctl check [--live] [--floats FORM] [-q] TRACE_DIR...
 *
 * record runs CMD with the shims on its load paths. When CT_RECORDER_SOCKET
 * names no running daemon it starts a private ctrecd on a socket in a fresh
 * private directory, and stops it once the program and every traced process
 * it started have finished, so every trace is complete when it returns.
 * Through a running daemon it prints the same summary from the daemon's
 * follow feed. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctr_buf.h"
#include "ctr_check.h"
#include "ctr_follow.h"
#include "ctr_jval.h"
#include "ctr_proto.h"
#include "ctr_fifo_dial.h"
#include "ctr_link.h"
#include "ctr_rundir.h"
#include "ctr_show.h"
#include "ctr_traces.h"

#define DEFAULT_SOCKET "/run/ctrec/ctrecd.sock"
#define READY_TIMEOUT_MS 10000
#define DEFAULT_TIMEOUT_MS 5000

/* The options of every verb that talks to ctrecd. */
#define DAEMON_OPTIONS_HELP                                                    \
  "  -s, --socket PATH  daemon socket, or fifo:DIR for its named pipes\n"    \
  "                     (default: $CT_RECORDER_SOCKET, else\n"                \
  "                     " DEFAULT_SOCKET " and, but for reload,\n"          \
  "                     every private ctrecd of yours)\n"                     \
  "  -t, --timeout SEC  give up when ctrecd has not answered within SEC\n"     \
  "                     seconds (default 5)\n"
#define EXIT_CODES_HELP                                                        \
  "  0  done\n"                                                                \
  "  1  ctrecd refused (its reason follows), or no session matched\n"          \
  "  2  usage error\n"                                                         \
  "  3  ctrecd not reachable, or it hung up or answered nonsense\n"            \
  "  4  ctrecd did not answer within --timeout\n"
#define EXIT_STATUS_HELP "Exit status:\n" EXIT_CODES_HELP

static const char *prog_name = "ctrecctl";

static void die_usage(const char *verb, const char *fmt, const char *arg) {
  fprintf(stderr, "%s: ", prog_name);
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\nTry '%s %s--help'.\n", prog_name, verb ? verb : "");
  exit(2);
}

/* ---- paths next to the executable -------------------------------------- */

static void exe_dir(char *out, size_t cap) {
  ssize_t n = readlink("/proc/self/exe", out, cap - 1);
  char *slash;

  if (n <= 0) {
    snprintf(out, cap, ".");
    return;
  }
  out[n] = '\0';
  slash = strrchr(out, '/');
  if (slash)
    *slash = '\0';
}

static bool is_dir(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* The shim folder for lang: build tree layout first, then the installed one. */
static bool shim_dir(const char *lang, char *out, size_t cap) {
  static const char *const rel[] = {"../lib/ctrec", CTREC_SHIM_REL};
  char dir[PATH_MAX];
  size_t i;

  exe_dir(dir, sizeof(dir));
  for (i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
    int n = snprintf(out, cap, "%s/%s/%s", dir, rel[i], lang);
    if (n > 0 && (size_t)n < cap && is_dir(out))
      return true;
  }
  return false;
}

/* ---- talking to a daemon ----------------------------------------------- */

/* Exit statuses of the verbs that ask ctrecd something (see usage()). */
enum {
  EXIT_REFUSED = 1,     /* ctrecd answered no: an error, or nothing matched */
  EXIT_USAGE = 2,
  EXIT_UNREACHABLE = 3, /* no ctrecd, or it hung up or answered garbage */
  EXIT_TIMEOUT = 4      /* ctrecd did not answer within --timeout */
};

/* A stopped or wedged daemon still accepts connections (the kernel queues
 * them), so every exchange runs against this deadline. */
static int timeout_ms = DEFAULT_TIMEOUT_MS;

static int64_t mono_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int left_ms(int64_t deadline) {
  int64_t left = deadline - mono_ms();
  return left > 0 ? (int)left : 0;
}

static void parse_timeout(const char *verb, const char *arg) {
  char *end;
  double s = strtod(arg, &end);

  if (*end || !(s > 0 && s <= 86400))
    die_usage(verb, "--timeout: not a number of seconds (0 < s <= 86400): %s",
              arg);
  timeout_ms = (int)(s * 1000 + 0.5) > 0 ? (int)(s * 1000 + 0.5) : 1;
}

static int send_frame(int fd, const msgpack_sbuffer *sb) {
  char head[CTR_FRAME_HEADER];

  ctr_frame_put_header(head, (uint32_t)sb->size);
  if (ctr_link_write(fd, head, sizeof(head)) != 0)
    return -1;
  return ctr_link_write(fd, sb->data, sb->size);
}

typedef struct reply_s {
  msgpack_zone zone;
  msgpack_object obj;
  char *frame;
  uint32_t len;
  bool done;
} reply_t;

static int on_reply(void *arg, const char *payload, uint32_t len) {
  reply_t *r = arg;

  r->frame = malloc(len ? len : 1);
  if (r->frame == NULL)
    return CTR_ENOMEM;
  memcpy(r->frame, payload, len);
  r->len = len;
  r->done = true;
  return 1;
}

/* Reads one frame before deadline (-1: no deadline) and unpacks its first
 * message. Returns 0 or an EXIT_* status with *why set. */
static int read_reply(int fd, reply_t *r, int64_t deadline, const char **why) {
  ctr_limits_t lim = CTR_LIMITS_DEFAULT;
  ctr_frame_reader_t fr;
  char buf[65536];
  size_t count, off = 0;
  int rc = 0;

  ctr_frame_reader_init(&fr, lim.max_frame);
  memset(r, 0, sizeof(*r));
  while (!r->done) {
    struct pollfd p = {fd, POLLIN, 0};
    ssize_t n;
    int ready = poll(&p, 1, deadline < 0 ? -1 : left_ms(deadline));
    if (ready < 0 && errno == EINTR)
      continue;
    if (ready == 0) {
      *why = "no answer";
      rc = EXIT_TIMEOUT;
      break;
    }
    n = ctr_link_read(fd, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n <= 0) {
      *why = "ctrecd closed the connection";
      rc = EXIT_UNREACHABLE;
      break;
    }
    if (ctr_frame_reader_feed(&fr, buf, (size_t)n, on_reply, r) < 0) {
      *why = "bad frame from ctrecd";
      rc = EXIT_UNREACHABLE;
      break;
    }
  }
  ctr_frame_reader_free(&fr);
  if (rc == 0 && (ctr_proto_scan(r->frame, r->len, &lim, &count, why) != 0 ||
                  count < 1))
    rc = EXIT_UNREACHABLE;
  if (rc == 0) {
    msgpack_zone_init(&r->zone, 4096);
    if (msgpack_unpack(r->frame, r->len, &off, &r->zone, &r->obj) < 0) {
      *why = "undecodable answer";
      msgpack_zone_destroy(&r->zone);
      rc = EXIT_UNREACHABLE;
    }
  }
  if (rc != 0)
    free(r->frame);
  return rc;
}

static void release(reply_t *r) {
  msgpack_zone_destroy(&r->zone);
  free(r->frame);
}

typedef void (*request_fn)(msgpack_packer *pk, const void *arg);

/* Connects with role ("control" or "follow") and sends HELLO plus, when
 * request is set, one request. */
static int daemon_connect(const char *path, const char *role,
                          request_fn request, const void *arg,
                          int64_t deadline) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  ctr_hello_t h;
  char cwd[PATH_MAX];
  int fd = ctr_link_open(path, left_ms(deadline));

  if (fd < 0)
    return -1;
  memset(&h, 0, sizeof(h));
  h.version = CTR_PROTO_VERSION;
  h.role = (ctr_str_t){role, (uint32_t)strlen(role)};
  h.lang = (ctr_str_t){"none", 4};
  h.pid = getpid();
  h.ppid = getppid();
  h.program = (ctr_str_t){"ctrecctl", 8};
  if (getcwd(cwd, sizeof(cwd)))
    h.cwd = (ctr_str_t){cwd, (uint32_t)strlen(cwd)};
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  ctr_pack_hello(&pk, &h, 0, NULL);
  if (request)
    request(&pk, arg);
  if (send_frame(fd, &sb) != 0) {
    int e = errno;
    ctr_link_close(fd);
    errno = e;
    fd = -1;
  }
  msgpack_sbuffer_destroy(&sb);
  return fd;
}

/* Set while follow --wait polls daemons that may come and go. */
static bool quiet_failures;

/* Says on stderr why ctrecd at sock gave no usable answer. */
static int report_failure(const char *sock, int status, const char *why) {
  if (quiet_failures)
    return status;
  if (status == EXIT_TIMEOUT)
    fprintf(stderr,
            "%s: no answer from ctrecd at %s within %g s (is it stopped or "
            "wedged?)\n",
            prog_name, sock, timeout_ms / 1000.0);
  else
    fprintf(stderr, "%s: %s: %s\n", prog_name, sock, why ? why : "bad answer");
  return status;
}

/* Reads the answer on fd before deadline and decodes it, of tag want, into
 * m (valid until r is released). Returns 0, or an EXIT_* status after
 * printing why on stderr; an ERROR answer is EXIT_REFUSED and prints its
 * text as it is. */
static int answer(int fd, const char *sock, int64_t deadline, int want,
                  reply_t *r, ctr_msg_t *m) {
  const char *why = NULL;
  int rc = read_reply(fd, r, deadline, &why);

  if (rc != 0)
    return report_failure(sock, rc, why);
  if (ctr_msg_decode(&r->obj, m, &why) != 0) {
    release(r);
    return report_failure(sock, EXIT_UNREACHABLE, why);
  }
  if (m->tag == CTR_MSG_ERROR) {
    fprintf(stderr, "%s: ctrecd refused: %.*s\n", prog_name,
            (int)m->u.error.text.len, m->u.error.text.ptr);
    release(r);
    return EXIT_REFUSED;
  }
  if (m->tag != want) {
    release(r);
    return report_failure(sock, EXIT_UNREACHABLE, "unexpected answer");
  }
  return 0;
}

/* Sends one request and decodes the answer as answer() does. */
static int ask(const char *sock, request_fn request, const void *arg, int want,
               reply_t *r, ctr_msg_t *m) {
  int64_t deadline = mono_ms() + timeout_ms;
  int fd = daemon_connect(sock, "control", request, arg, deadline);
  int rc;

  if (fd < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINPROGRESS)
      return report_failure(sock, EXIT_TIMEOUT, NULL);
    if (!quiet_failures)
      fprintf(stderr, "%s: cannot reach ctrecd at %s: %s\n", prog_name, sock,
              strerror(errno));
    return EXIT_UNREACHABLE;
  }
  rc = answer(fd, sock, deadline, want, r, m);
  ctr_link_close(fd);
  return rc;
}

static void request_tag(msgpack_packer *pk, const void *arg) {
  ctr_pack_simple(pk, *(const int *)arg);
}

/* ---- which daemons ------------------------------------------------------ */

/* The daemons a verb talks to: the one -s or $CT_RECORDER_SOCKET names;
 * else the service daemon (when its socket exists) and the private daemon
 * of every `ctrecctl record` of this user (see ctr_rundir.h). */
typedef struct targets_s {
  char **socks;
  size_t n;
} targets_t;

static void targets_push(targets_t *t, const char *sock) {
  t->socks = ctr_xrealloc(t->socks, (t->n + 1) * sizeof(*t->socks));
  t->socks[t->n++] = ctr_xstrndup(sock, strlen(sock));
}

/* With fallback, an empty search gives the service socket, so that a verb
 * says why it cannot reach it. */
static void targets_find(targets_t *t, const char *named, bool fallback) {
  const char *env = getenv("CT_RECORDER_SOCKET");
  struct stat sb;
  char **priv;
  size_t np, i;

  memset(t, 0, sizeof(*t));
  if (named == NULL && env && *env)
    named = env;
  if (named) {
    targets_push(t, named);
    return;
  }
  np = ctr_rundir_sockets(&priv);
  if (stat(DEFAULT_SOCKET, &sb) == 0 || (np == 0 && fallback))
    targets_push(t, DEFAULT_SOCKET);
  for (i = 0; i < np; i++)
    targets_push(t, priv[i]);
  ctr_rundir_free(priv, np);
}

static void targets_free(targets_t *t) {
  ctr_rundir_free(t->socks, t->n);
  memset(t, 0, sizeof(*t));
}

/* ---- status ------------------------------------------------------------ */

static const msgpack_object *map_get(const msgpack_object *m, const char *key) {
  uint32_t i;
  size_t n = strlen(key);

  if (m->type != MSGPACK_OBJECT_MAP)
    return NULL;
  for (i = 0; i < m->via.map.size; i++) {
    const msgpack_object *k = &m->via.map.ptr[i].key;
    if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
        memcmp(k->via.str.ptr, key, n) == 0)
      return &m->via.map.ptr[i].val;
  }
  return NULL;
}

static void print_field(const msgpack_object *m, const char *key, int width,
                        bool json, bool last) {
  const msgpack_object *v = map_get(m, key);
  ctr_str_t s = {0};

  if (json)
    printf("\"%s\":", key);
  if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
    if (json)
      printf("%" PRIu64, v->via.u64);
    else
      printf("%-*" PRIu64, width, v->via.u64);
  } else if (v && ctr_obj_str(v, &s)) {
    /* A client's text (a program name) is shown escaped, never raw. */
    ctr_buf_t b = {0};
    if (json) {
      ctr_json_str(&b, s.ptr, s.len);
      fwrite(b.data, 1, b.len, stdout);
    } else {
      printf("%-*s", width, ctr_buf_printable(&b, s.ptr, s.len));
    }
    ctr_buf_free(&b);
  } else {
    printf(json ? "null" : "%-*s", width, "-");
  }
  if (json)
    fputs(last ? "}" : ",", stdout);
  else
    fputs(last ? "\n" : " ", stdout);
}

static const char *default_socket(void) {
  const char *s = getenv("CT_RECORDER_SOCKET");
  return s && *s ? s : DEFAULT_SOCKET;
}

/* A daemon's counts of programs that may have gone unrecorded, as a line
 * added to lines (nothing while both are 0). */
static void note_unrecorded(ctr_buf_t *lines, const char *sock,
                            const msgpack_object *d) {
  const msgpack_object *g = map_get(d, "gave_up"), *r = map_get(d, "refused");
  uint64_t gave_up = g && g->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? g->via.u64 : 0;
  uint64_t refused = r && r->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? r->via.u64 : 0;
  char line[256];

  if (gave_up == 0 && refused == 0)
    return;
  snprintf(line, sizeof(line), "since it started: %" PRIu64 " client(s) left "
           "before it answered (gave up waiting, or died), %" PRIu64
           " connection(s) refused: ", gave_up, refused);
  ctr_buf_puts(lines, line);
  ctr_buf_printable(lines, sock, strlen(sock));
  ctr_buf_puts(lines, "\n");
}

/* The daemon a session belongs to: its socket, for -s. */
static void print_daemon(const char *sock, bool json) {
  ctr_buf_t b = {0};

  if (json) {
    fputs("\"daemon\":", stdout);
    ctr_json_str(&b, sock, strlen(sock));
    fwrite(b.data, 1, b.len, stdout);
    fputs("}\n", stdout);
  } else {
    printf("%s\n", ctr_buf_printable(&b, sock, strlen(sock)));
  }
  ctr_buf_free(&b);
}

/* Prints the sessions of one STATUS answer; returns how many. */
static uint32_t print_sessions(const ctr_msg_t *m, const char *sock,
                               bool json) {
  const msgpack_object *list = m->u.status.sessions;
  uint32_t i;

  for (i = 0; i < list->via.array.size; i++) {
    const msgpack_object *s = &list->via.array.ptr[i];
    if (json)
      putchar('{');
    print_field(s, "id", 7, json, false);
    print_field(s, "pid", 7, json, false);
    print_field(s, "program", 24, json, false);
    print_field(s, "state", 9, json, false);
    print_field(s, "intervals", 9, json, false);
    print_field(s, "received", 10, json, false);
    print_field(s, "written", 10, json, false);
    if (json) {
      /* The filter is multi-line YAML: only the JSON form carries it. */
      print_field(s, "reason", 0, json, false);
      print_field(s, "filter", 0, json, false);
    }
    print_field(s, "trace", 0, json, false);
    print_daemon(sock, json);
  }
  return list->via.array.size;
}

static int cmd_status(int argc, char **argv) {
  static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                       {"timeout", required_argument, NULL, 't'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  static const int tag = CTR_MSG_STATUS;
  const char *sock = NULL;
  bool json = false, header = false;
  ctr_buf_t unrecorded = {0}; /* note_unrecorded's lines */
  targets_t t;
  reply_t r;
  ctr_msg_t m;
  uint32_t total = 0;
  size_t i;
  int opt, rc = 0;

  optind = 1;
  while ((opt = getopt_long(argc, argv, "+s:t:jh", opts, NULL)) != -1) {
    switch (opt) {
    case 's': sock = optarg; break;
    case 't': parse_timeout("status ", optarg); break;
    case 'j': json = true; break;
    case 'h':
      printf("Usage: %s status [-s SOCKET] [-t SEC] [--json]\n"
             "List the live sessions of ctrecd: pid, program, state, messages\n"
             "received, trace records written, the trace folder, and the socket\n"
             "of the daemon that records it (for -s). Without -s or\n"
             "$CT_RECORDER_SOCKET: the service ctrecd and the private ctrecd of\n"
             "every 'ctrecctl record' of yours.\n\n"
             DAEMON_OPTIONS_HELP
             "      --json         one JSON object per session\n\n"
             "Without --json, a last line per daemon counts, since it started,\n"
             "clients that left before it answered their HELLO (they gave up\n"
             "on a busy daemon after 30 s, or died) and connections it refused\n"
             "or closed before a HELLO (descriptor limit, handshake time-out):\n"
             "programs that may have run unrecorded. It is left out while both\n"
             "are 0.\n\n"
             EXIT_STATUS_HELP,
             prog_name);
      return 0;
    default: die_usage("status ", "%s", "invalid option");
    }
  }
  if (optind < argc)
    die_usage("status ", "unexpected argument: %s", argv[optind]);
  targets_find(&t, sock, true);
  for (i = 0; i < t.n; i++) {
    int one = ask(t.socks[i], request_tag, &tag, CTR_MSG_STATUS_REPLY, &r, &m);
    if (one != 0) {
      rc = rc ? rc : one;
      continue;
    }
    if (!json && !header)
      printf("%-7s %-7s %-24s %-9s %-9s %-10s %-10s %s %s\n", "SESSION", "PID",
             "PROGRAM", "STATE", "INTERVALS", "RECEIVED", "WRITTEN", "TRACE",
             "DAEMON");
    header = true;
    total += print_sessions(&m, t.socks[i], json);
    if (m.u.status.daemon)
      note_unrecorded(&unrecorded, t.socks[i], m.u.status.daemon);
    release(&r);
  }
  if (!json && total == 0 && header)
    printf("(no live sessions)\n");
  if (!json && unrecorded.len)
    fwrite(unrecorded.data, 1, unrecorded.len, stdout);
  ctr_buf_free(&unrecorded);
  targets_free(&t);
  return rc;
}

/* ---- follow ------------------------------------------------------------ */

/* A string of the answer, made printable when it is only shown (a
 * program name) rather than used (a trace path). */
/* The daemon's answer to a control command; it names programs. */
static void print_done(const ctr_msg_t *m) {
  ctr_buf_t b = {0};

  printf("%s\n", ctr_buf_printable(&b, m->u.done.text.ptr, m->u.done.text.len));
  ctr_buf_free(&b);
}

static char *obj_strdup(const msgpack_object *m, const char *key, bool shown) {
  const msgpack_object *v = map_get(m, key);
  ctr_str_t s = {0};
  ctr_buf_t b = {0};

  if (v == NULL || !ctr_obj_str(v, &s))
    s.len = 0;
  if (shown)
    ctr_buf_printable(&b, s.ptr, s.len);
  else
    ctr_buf_add(&b, s.ptr, s.len);
  ctr_buf_add(&b, "", 1);
  return b.data;
}

static uint64_t obj_u64(const msgpack_object *m, const char *key) {
  const msgpack_object *v = map_get(m, key);

  return v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? v->via.u64 : 0;
}

/* The follow feed's view of STATUS: the sessions copied out of the reply,
 * which is released before the feed goes on. */
static int follow_status(void *arg, ctr_follow_session_t **out, size_t *n) {
  static const int tag = CTR_MSG_STATUS;
  const msgpack_object *list;
  ctr_follow_session_t *v;
  reply_t r;
  ctr_msg_t m;
  uint32_t i;

  if (ask(arg, request_tag, &tag, CTR_MSG_STATUS_REPLY, &r, &m) != 0)
    return -1;
  list = m.u.status.sessions;
  v = ctr_xcalloc(list->via.array.size + 1, sizeof(*v));
  for (i = 0; i < list->via.array.size; i++) {
    const msgpack_object *s = &list->via.array.ptr[i];
    v[i].id = obj_u64(s, "id");
    v[i].pid = (int64_t)obj_u64(s, "pid");
    v[i].intervals = obj_u64(s, "intervals");
    v[i].program = obj_strdup(s, "program", true);
    v[i].state = obj_strdup(s, "state", true);
    v[i].trace = obj_strdup(s, "trace", false);
  }
  *out = v;
  *n = list->via.array.size;
  release(&r);
  return 0;
}

/* A session live when follow --wait began: not the next one. */
typedef struct known_s {
  char *sock;
  uint64_t id;
} known_t;

typedef struct finder_s {
  ctr_follow_opts_t *fo;
  const char *named;   /* -s SOCKET */
  const char *program; /* --program NAME */
  bool wait;
  known_t *known;
  size_t nknown;
  char *sock;          /* the daemon chosen (heap) */
} finder_t;

static bool program_is(const char *program, const char *name) {
  const char *base = strrchr(program, '/');

  return strcmp(program, name) == 0 || (base && strcmp(base + 1, name) == 0);
}

static bool is_known(const finder_t *fd, const char *sock, uint64_t id) {
  size_t i;

  for (i = 0; i < fd->nknown; i++)
    if (fd->known[i].id == id && strcmp(fd->known[i].sock, sock) == 0)
      return true;
  return false;
}

/* Whether s is a session follow is asked for. Waiting, a session already
 * live is not the next one, but for --pid: a process has one session. */
static bool wanted(const finder_t *fd, const char *sock,
                   const ctr_follow_session_t *s) {
  const ctr_follow_opts_t *o = fd->fo;

  if ((o->session && s->id != o->session) || (o->pid && s->pid != o->pid) ||
      (fd->program && !program_is(s->program, fd->program)))
    return false;
  return !fd->wait || o->pid || !is_known(fd, sock, s->id);
}

/* Looks at every daemon for the sessions follow is asked for; remembers
 * every live one when remember is set. Returns how many daemons hold one,
 * with fd->sock the first of them and, for --program, fo->session its
 * newest session there. Several daemons holding one are listed on stderr
 * when list is set. A daemon that does not answer is passed over: when
 * nothing is found, following the default daemon says why. */
static size_t find_sessions(finder_t *fd, bool remember, bool list) {
  targets_t t;
  size_t d, i, holders = 0;

  quiet_failures = true;
  targets_find(&t, fd->named, !fd->wait);
  for (d = 0; d < t.n; d++) {
    ctr_follow_session_t *v = NULL;
    const ctr_follow_session_t *best = NULL;
    size_t n = 0;
    if (follow_status(t.socks[d], &v, &n) != 0)
      continue;
    for (i = 0; i < n; i++) {
      if (remember) {
        fd->known = ctr_xrealloc(fd->known, (fd->nknown + 1) * sizeof(*fd->known));
        fd->known[fd->nknown].sock = ctr_xstrndup(t.socks[d], strlen(t.socks[d]));
        fd->known[fd->nknown++].id = v[i].id;
      }
      if (wanted(fd, t.socks[d], &v[i]) && (best == NULL || v[i].id > best->id))
        best = &v[i];
    }
    if (best && holders++ == 0) {
      fd->sock = ctr_xstrndup(t.socks[d], strlen(t.socks[d]));
      if (fd->program || fd->wait)
        fd->fo->session = best->id;
    }
    for (i = 0; best && list && i < n; i++)
      if (wanted(fd, t.socks[d], &v[i]))
        fprintf(stderr, "  %-7" PRIu64 " pid %-7" PRId64 " %-24s %s\n",
                v[i].id, v[i].pid, v[i].program, t.socks[d]);
    ctr_follow_sessions_free(v, n);
  }
  targets_free(&t);
  quiet_failures = false;
  return holders;
}

static volatile sig_atomic_t follow_signal;

static void on_follow_signal(int sig) { follow_signal = sig; }

/* Polls every daemon, new private ones too, until a session follow is
 * asked for begins. Returns 0, or the exit status for a signal. */
static int wait_for_session(finder_t *fd) {
  struct sigaction sa, old_int, old_term;
  struct timespec tick = {0, 100 * 1000000L};

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_follow_signal;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  find_sessions(fd, true, false);
  while (fd->sock == NULL && !follow_signal) {
    nanosleep(&tick, NULL);
    find_sessions(fd, false, false);
  }
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  return follow_signal ? 128 + follow_signal : 0;
}

static int cmd_follow(int argc, char **argv) {
  static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                       {"timeout", required_argument, NULL, 't'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"pid", required_argument, NULL, 'p'},
                                       {"program", required_argument, NULL, 'P'},
                                       {"wait", no_argument, NULL, 'w'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  ctr_follow_opts_t fo;
  finder_t fd;
  char *end;
  size_t i;
  int opt, rc;

  memset(&fo, 0, sizeof(fo));
  memset(&fd, 0, sizeof(fd));
  fd.fo = &fo;
  fo.poll_ms = 50;
  optind = 1;
  while ((opt = getopt_long(argc, argv, "s:t:jp:P:wh", opts, NULL)) != -1) {
    switch (opt) {
    case 's': fd.named = optarg; break;
    case 't': parse_timeout("follow ", optarg); break;
    case 'j': fo.json = true; break;
    case 'p':
      fo.pid = strtoll(optarg, &end, 10);
      if (*end || fo.pid <= 0)
        die_usage("follow ", "--pid: not a process id: %s", optarg);
      break;
    case 'P':
      if (!*optarg)
        die_usage("follow ", "%s", "--program: a program name");
      fd.program = optarg;
      break;
    case 'w': fd.wait = true; break;
    case 'h':
      printf("Usage: %s follow [-s SOCKET] [-t SEC] [--json] [--wait]\n"
             "                [SESSION | --pid PID | --program NAME]\n"
             "       %s follow [--json] TRACE_DIR\n"
             "Print a live session's trace records as they are written: first\n"
             "what is already on disk, then new records as they arrive. The feed\n"
             "moves on to each new recording interval and ends by itself when the\n"
             "session ends (exit status 0). Without SESSION, --pid or --program\n"
             "it follows the only live session (see '%s status'). Without -s,\n"
             "it looks at the service ctrecd and every private ctrecd of yours.\n"
             "With TRACE_DIR it follows that folder (trace.json or trace.ct)\n"
             "until its trace_metadata.json says it is complete or aborted.\n\n"
             "The listing shows the lines run, calls with their arguments,\n"
             "returns, output, and variables when their value changes, with a\n"
             "line where each recording interval begins and ends; --json prints\n"
             "every record, and between two intervals one boundary record:\n"
             "  {\"IntervalBoundary\":{\"ended\":1,\"state\":\"complete\",\n"
             "   \"end_reason\":\"stopped by ctrecctl\",\"next\":2,\"trace\":\"DIR\"}}\n"
             "Following only reads the trace folder, so it never slows the\n"
             "recording.\n\n"
             DAEMON_OPTIONS_HELP
             "  -j, --json         each record as one JSON line, as in trace.json\n"
             "                     (default: a readable step listing)\n"
             "  -p, --pid PID      the session of that process\n"
             "  -P, --program NAME the newest session of that program (its path or\n"
             "                     file name, as '%s status' shows it)\n"
             "  -w, --wait         wait for the next session to begin (of --pid\n"
             "                     PID or --program NAME, else any), also in a\n"
             "                     ctrecd that starts meanwhile, then follow it;\n"
             "                     a live session of --pid PID is followed at once\n\n"
             "Exit status: 0 when the session ended; 1 when no session matched or\n"
             "the session was lost; 2 for a usage error; 130 after Ctrl-C\n"
             "(SIGINT), 143 after SIGTERM.\n",
             prog_name, prog_name, prog_name, prog_name);
      return 0;
    default: die_usage("follow ", "%s", "invalid option");
    }
  }
  if (optind < argc) {
    unsigned long long id = strtoull(argv[optind], &end, 10);
    struct stat sb;
    /* Not a session id but a folder: follow that trace folder itself. */
    if ((*end || argv[optind][0] == '-') && stat(argv[optind], &sb) == 0 &&
        S_ISDIR(sb.st_mode)) {
      if (optind + 1 < argc || fo.pid || fd.program || fd.wait)
        die_usage("follow ", "%s",
                  "a TRACE_DIR takes no SESSION, --pid, --program or --wait");
      return ctr_follow_folder(&fo, argv[optind]);
    }
    if (*end || id == 0 || argv[optind][0] == '-')
      die_usage("follow ", "not a session id or trace folder: %s",
                argv[optind]);
    fo.session = id;
    optind++;
  }
  if (optind < argc)
    die_usage("follow ", "unexpected argument: %s", argv[optind]);
  if ((fo.session != 0) + (fo.pid != 0) + (fd.program != NULL) > 1)
    die_usage("follow ", "%s", "name one of SESSION, --pid PID or --program NAME");
  if (fd.wait) {
    if ((rc = wait_for_session(&fd)) != 0)
      return rc;
  } else if (find_sessions(&fd, false, false) > 1) {
    fprintf(stderr,
            "%s: follow: sessions in several ctrecds match; name one with -s "
            "SOCKET or --pid PID:\n",
            prog_name);
    free(fd.sock);
    fd.sock = NULL;
    find_sessions(&fd, false, true);
    rc = 1;
    goto done;
  } else if (fd.program && fd.sock == NULL) {
    fprintf(stderr, "%s: follow: no live session of %s (see '%s status')\n",
            prog_name, fd.program, prog_name);
    rc = 1;
    goto done;
  }
  fo.status = follow_status;
  /* No match anywhere: the service daemon (or -s) says so. */
  fo.arg = fd.sock ? fd.sock : (void *)(fd.named ? fd.named : default_socket());
  rc = ctr_follow_run(&fo);
done:
  free(fd.sock);
  for (i = 0; i < fd.nknown; i++)
    free(fd.known[i].sock);
  free(fd.known);
  return rc;
}

/* ---- start, stop, reload ------------------------------------------------ */

typedef struct select_s {
  int tag;
  bool all;
  uint64_t ids[64];
  uint32_t nids;
  int64_t pid;
} select_t;

static void request_select(msgpack_packer *pk, const void *arg) {
  const select_t *sel = arg;
  ctr_pack_select(pk, sel->tag, sel->all, sel->ids, sel->nids, sel->pid);
}

static int cmd_start_stop(int argc, char **argv, int tag) {
  static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                       {"timeout", required_argument, NULL, 't'},
                                       {"all", no_argument, NULL, 'a'},
                                       {"pid", required_argument, NULL, 'p'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *verb = tag == CTR_MSG_START ? "start " : "stop ";
  const char *sock = NULL;
  select_t sel = {tag, false, {0}, 0, 0};
  uint64_t matched = 0;
  targets_t t;
  char *end;
  reply_t r;
  ctr_msg_t m;
  int opt, i, rc = 0;
  size_t d;

  optind = 1;
  while ((opt = getopt_long(argc, argv, "+s:t:ap:h", opts, NULL)) != -1) {
    switch (opt) {
    case 's': sock = optarg; break;
    case 't': parse_timeout(verb, optarg); break;
    case 'a': sel.all = true; break;
    case 'p':
      sel.pid = strtoll(optarg, &end, 10);
      if (*end || sel.pid <= 0)
        die_usage(verb, "--pid: not a process id: %s", optarg);
      break;
    case 'h':
      printf("Usage: %s %s[-s SOCKET] [-t SEC] (SESSION... | --all | --pid PID)\n"
             "%s recording intervals of live sessions at run time. Each\n"
             "interval is written as its own trace folder; a started interval\n"
             "opens with the calls already on the program's stack. Without -s,\n"
             "--all and --pid reach every ctrecd of yours; SESSION ids are per\n"
             "daemon, so they need -s when several run.\n\n"
             DAEMON_OPTIONS_HELP
             "  -a, --all          every session of yours (root: every session)\n"
             "  -p, --pid PID      the session of that process\n\n"
             EXIT_STATUS_HELP,
             prog_name, verb, tag == CTR_MSG_START ? "Open" : "Close");
      return 0;
    default: die_usage(verb, "%s", "invalid option");
    }
  }
  for (i = optind; i < argc; i++) {
    unsigned long long id = strtoull(argv[i], &end, 10);
    if (*end || id == 0 || sel.nids == 64)
      die_usage(verb, "not a session id: %s", argv[i]);
    sel.ids[sel.nids++] = id;
  }
  if (!sel.all && sel.nids == 0 && sel.pid == 0)
    die_usage(verb, "%s", "name SESSION ids, --all or --pid PID");
  targets_find(&t, sock, true);
  if (sel.nids && t.n > 1) {
    fprintf(stderr,
            "%s: %s: session ids are per ctrecd and %zu are running; name "
            "one with -s SOCKET (see '%s status'), or use --pid or --all\n",
            prog_name, tag == CTR_MSG_START ? "start" : "stop", t.n,
            prog_name);
    targets_free(&t);
    return EXIT_USAGE;
  }
  for (d = 0; d < t.n; d++) {
    if ((i = ask(t.socks[d], request_select, &sel, CTR_MSG_DONE, &r, &m)) != 0) {
      rc = rc ? rc : i;
      continue;
    }
    if (m.u.done.count > 0 || t.n == 1)
      print_done(&m);
    matched += m.u.done.count;
    release(&r);
  }
  targets_free(&t);
  if (rc == 0 && matched == 0) {
    fprintf(stderr, "%s: no session matched\n", prog_name);
    rc = EXIT_REFUSED;
  }
  return rc;
}

static int cmd_reload(int argc, char **argv) {
  static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                       {"timeout", required_argument, NULL, 't'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  static const int tag = CTR_MSG_RELOAD;
  const char *sock = default_socket();
  reply_t r;
  ctr_msg_t m;
  int opt, rc;

  optind = 1;
  while ((opt = getopt_long(argc, argv, "+s:t:h", opts, NULL)) != -1) {
    switch (opt) {
    case 's': sock = optarg; break;
    case 't': parse_timeout("reload ", optarg); break;
    case 'h':
      printf("Usage: %s reload [-s SOCKET] [-t SEC]\n"
             "Make ctrecd re-read its config file (as SIGHUP does). A valid new\n"
             "filter applies to live sessions from a marked point on; an invalid\n"
             "file is refused with its FILE:LINE:COLUMN error and the old\n"
             "config stays.\n\n"
             DAEMON_OPTIONS_HELP "\n"
             EXIT_STATUS_HELP,
             prog_name);
      return 0;
    default: die_usage("reload ", "%s", "invalid option");
    }
  }
  if (optind < argc)
    die_usage("reload ", "unexpected argument: %s", argv[optind]);
  if ((rc = ask(sock, request_tag, &tag, CTR_MSG_DONE, &r, &m)) != 0)
    return rc;
  print_done(&m);
  release(&r);
  return 0;
}

/* ---- record ------------------------------------------------------------ */

static volatile sig_atomic_t child_pid;
/* The last SIGTERM, SIGINT, SIGHUP or SIGQUIT ctrecctl got: once the
 * command has exited, ctrecctl stops waiting for its other processes. */
static volatile sig_atomic_t stop_signal;

/* Passes a signal sent to ctrecctl on to the command. The terminal sends
 * SIGINT and SIGQUIT to the command itself (si_code SI_KERNEL), so those
 * are passed on only when someone sent them to ctrecctl alone. */
static void forward_signal(int sig, siginfo_t *si, void *ctx) {
  (void)ctx;
  if (sig != SIGUSR1 && sig != SIGUSR2)
    stop_signal = sig;
  if ((sig == SIGINT || sig == SIGQUIT) && si->si_code == SI_KERNEL)
    return;
  if (child_pid > 0)
    kill((pid_t)child_pid, sig);
}

static void prepend_env(const char *name, const char *value, const char *sep,
                        bool append) {
  const char *old = getenv(name);
  char *v;

  if (old && *old) {
    size_t n = strlen(old) + strlen(value) + strlen(sep) + 1;
    v = malloc(n);
    if (v == NULL)
      return;
    if (append)
      snprintf(v, n, "%s%s%s", old, sep, value);
    else
      snprintf(v, n, "%s%s%s", value, sep, old);
    setenv(name, v, 1);
    free(v);
  } else {
    setenv(name, value, 1);
  }
}

/* Starts ctrecd listening on sock; returns its pid, or -1 after printing why. */
static pid_t start_daemon(const char *sock, const char *out, const char *config,
                          const char *log_level, const char *format,
                          char *const *sets, int nsets, int *report_rd) {
  char dir[PATH_MAX], daemon[PATH_MAX + 16], ready_arg[16], report_arg[16];
  char format_arg[32];
  int ready[2], report[2];
  char buf[16];
  ssize_t n;
  pid_t pid, parent = getpid();
  struct pollfd p;

  exe_dir(dir, sizeof(dir));
  snprintf(daemon, sizeof(daemon), "%s/ctrecd", dir);
  if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(report, O_CLOEXEC) != 0) {
    perror("ctrecctl: pipe");
    return -1;
  }
  pid = fork();
  if (pid < 0) {
    perror("ctrecctl: fork");
    return -1;
  }
  if (pid == 0) {
    const char **args = calloc((size_t)(20 + 2 * nsets), sizeof(*args));
    int a = 0, i;
    /* Its own process group: a Ctrl-C meant for the program must not stop
     * the daemon before it has completed the traces. When ctrecctl dies,
     * even of SIGKILL, the daemon completes them and stops. */
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent || args == NULL)
      _exit(125);
    dup2(ready[1], 3);
    dup2(report[1], 4);
    snprintf(ready_arg, sizeof(ready_arg), "%d", 3);
    snprintf(report_arg, sizeof(report_arg), "%d", 4);
    args[a++] = daemon;
    if (config) {
      args[a++] = "--config";
      args[a++] = config;
    }
    args[a++] = "--listen";
    args[a++] = sock;
    args[a++] = "--output";
    args[a++] = out;
    args[a++] = "--ready-fd";
    args[a++] = ready_arg;
    args[a++] = "--report-fd";
    args[a++] = report_arg;
    args[a++] = "--log-level";
    args[a++] = log_level;
    if (format) {
      snprintf(format_arg, sizeof(format_arg), "output.format=%s", format);
      args[a++] = "--set";
      args[a++] = format_arg;
    }
    if (!config) {
      /* A private daemon serves this program alone, which the user runs
       * to get its trace: at exit it waits for its daemon to take all,
       * however busy the machine (a -c file may say otherwise). */
      args[a++] = "--set";
      args[a++] = "limits.client_wait_ms=60000";
    }
    /* record's own options come last: they win. */
    for (i = 0; i < nsets; i++) {
      args[a++] = "--set";
      args[a++] = sets[i];
    }
    args[a] = NULL;
    execv(daemon, (char *const *)args);
    fprintf(stderr, "ctrecctl: cannot run %s: %s\n", daemon, strerror(errno));
    _exit(127);
  }
  close(ready[1]);
  close(report[1]);
  p.fd = ready[0];
  p.events = POLLIN;
  n = poll(&p, 1, READY_TIMEOUT_MS) == 1 ? read(ready[0], buf, sizeof(buf)) : -1;
  close(ready[0]);
  if (n <= 0) {
    fprintf(stderr, "ctrecctl: ctrecd did not start (socket %s)\n", sock);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    close(report[0]);
    return -1;
  }
  *report_rd = report[0];
  return pid;
}

static uint64_t tree_bytes;

static int add_size(const char *path, const struct stat *sb, int type,
                    struct FTW *ftw) {
  (void)path, (void)ftw;
  if (type == FTW_F)
    tree_bytes += (uint64_t)sb->st_size;
  return 0;
}

/* "12.3 KiB": sizes as ls -h gives them, in powers of 1024. */
static void format_size(ctr_buf_t *b, uint64_t n) {
  static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = (double)n;
  int u = -1;

  if (n < 1024) {
    ctr_buf_printf(b, "%" PRIu64 " B", n);
    return;
  }
  while (v >= 1024 && u < 3) {
    v /= 1024;
    u++;
  }
  ctr_buf_printf(b, "%.1f %s", v, unit[u]);
}

static bool iso_seconds(const char *iso, time_t *out) {
  struct tm tm;
  const char *end;

  memset(&tm, 0, sizeof(tm));
  if (iso == NULL || (end = strptime(iso, "%Y-%m-%dT%H:%M:%SZ", &tm)) == NULL ||
      *end)
    return false;
  *out = timegm(&tm);
  return true;
}

/* What the trace folder says of the program and of itself: its exit
 * status, how long the interval lasted and the folder's size. */
static void trace_facts(ctr_buf_t *b, const char *dir) {
  const ctr_jval_t *c, *iv;
  ctr_traces_meta_t m;
  int64_t status;
  time_t t0, t1;

  if (ctr_traces_meta_read(dir, &m) == 0) {
    c = ctr_jval_get(m.root, "ctrec");
    iv = ctr_jval_get(c, "interval");
    if (ctr_jval_i64(ctr_jval_get(c, "exit_status"), &status))
      ctr_buf_printf(b, "exit %" PRId64 ", ", status);
    else
      ctr_buf_puts(b, "no exit status, ");
    if (iso_seconds(ctr_jval_str(iv, "start"), &t0) &&
        iso_seconds(ctr_jval_str(iv, "end"), &t1) && t1 >= t0)
      ctr_buf_printf(b, t1 == t0 ? "under 1 s, " : "%lld s, ",
                     (long long)(t1 - t0));
  }
  ctr_traces_meta_free(&m);
  tree_bytes = 0;
  nftw(dir, add_size, 8, FTW_PHYS);
  format_size(b, tree_bytes);
}

static void count(ctr_buf_t *b, const char *n, const char *what) {
  ctr_buf_printf(b, "%s %s%s", n, what, strcmp(n, "1") == 0 ? "" : "s");
}

/* The summary line of one completed trace, the same in both modes. */
static void print_trace(const char *dir, const char *steps, const char *calls,
                        const char *events, const char *state) {
  ctr_buf_t b = {0}, line = {0};

  count(&line, steps, "step");
  ctr_buf_puts(&line, ", ");
  count(&line, calls, "call");
  ctr_buf_puts(&line, ", ");
  count(&line, events, "event");
  ctr_buf_puts(&line, "; ");
  trace_facts(&line, dir);
  fprintf(stderr, "%s: trace %s: %.*s (%s)\n", prog_name, dir, (int)line.len,
          line.data, ctr_buf_printable(&b, state, strlen(state)));
  ctr_buf_free(&b);
  ctr_buf_free(&line);
}

/* Prints one line per finished trace from the private daemon's report. */
static void print_report(int fd, bool quiet) {
  char buf[8192];
  size_t len = 0;
  ssize_t n;
  int traces = 0;
  char *line, *save = NULL;

  while ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0 ||
         (n < 0 && errno == EINTR))
    if (n > 0)
      len += (size_t)n;
  buf[len] = '\0';
  for (line = strtok_r(buf, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char *f[5];
    int i;
    f[0] = line;
    for (i = 1; i < 5 && f[i - 1]; i++) {
      char *tab = strchr(f[i - 1], '\t');
      if (tab)
        *tab++ = '\0';
      f[i] = tab;
    }
    if (i < 5 || f[4] == NULL)
      continue;
    traces++;
    if (!quiet)
      print_trace(f[0], f[1], f[2], f[3], f[4]);
  }
  if (!quiet && traces == 0)
    fprintf(stderr, "ctrecctl: nothing was recorded\n");
}

/* ---- record through a running ctrecd ------------------------------------ */

/* How long the command's other processes get to finish after it exits, as
 * a private ctrecd gives them before it stops. */
#define GRACE_MS 3000

/* The follow feed of the sessions this process's descendants start: the
 * daemon decides descent from the kernel's parent links, and ctrecctl is
 * their subreaper, so orphans stay its descendants. */
typedef struct open_s {
  uint64_t id;
  int64_t pid;
} open_t;

typedef struct feed_s {
  int fd;
  ctr_frame_reader_t fr;
  open_t *open; /* sessions begun and not yet ended */
  size_t nopen;
  int traces;
  bool quiet, lost;
  /* A private ctrecd: its report prints the traces, and ctrecctl waits
   * for every session of the command's processes, however long. */
  bool private_daemon;
  pid_t daemon; /* the private ctrecd, a child that is not the command's */
} feed_t;

static void feed_event(feed_t *f, const msgpack_object *e) {
  char *event = obj_strdup(e, "event", false);
  uint64_t id = obj_u64(e, "id");
  size_t i;

  if (strcmp(event, "begin") == 0) {
    f->open = ctr_xrealloc(f->open, (f->nopen + 1) * sizeof(*f->open));
    f->open[f->nopen].id = id;
    f->open[f->nopen++].pid = (int64_t)obj_u64(e, "pid");
  } else if (strcmp(event, "end") == 0) {
    for (i = 0; i < f->nopen; i++)
      if (f->open[i].id == id) {
        f->open[i] = f->open[--f->nopen];
        break;
      }
  } else if (strcmp(event, "trace") == 0) {
    char *dir = obj_strdup(e, "trace", false), *state = obj_strdup(e, "state", false);
    char n[3][24];
    snprintf(n[0], sizeof(n[0]), "%" PRIu64, obj_u64(e, "steps"));
    snprintf(n[1], sizeof(n[1]), "%" PRIu64, obj_u64(e, "calls"));
    snprintf(n[2], sizeof(n[2]), "%" PRIu64, obj_u64(e, "events"));
    f->traces++;
    if (!f->quiet && !f->private_daemon)
      print_trace(dir, n[0], n[1], n[2], state);
    free(dir);
    free(state);
  }
  free(event);
}

static int on_feed_frame(void *arg, const char *payload, uint32_t len) {
  ctr_limits_t lim = CTR_LIMITS_DEFAULT;
  feed_t *f = arg;
  msgpack_zone zone;
  msgpack_object obj;
  msgpack_unpack_return ur;
  const char *why;
  size_t off = 0;
  ctr_msg_t m;
  uint32_t i;

  if (ctr_proto_scan(payload, len, &lim, NULL, &why) != 0)
    return CTR_EPROTO;
  msgpack_zone_init(&zone, 4096);
  while (off < len && ((ur = msgpack_unpack(payload, len, &off, &zone, &obj)) ==
                           MSGPACK_UNPACK_SUCCESS ||
                       ur == MSGPACK_UNPACK_EXTRA_BYTES)) {
    if (ctr_msg_decode(&obj, &m, &why) != 0 || m.tag != CTR_MSG_STATUS_REPLY)
      continue;
    for (i = 0; i < m.u.status.sessions->via.array.size; i++)
      feed_event(f, &m.u.status.sessions->via.array.ptr[i]);
  }
  msgpack_zone_destroy(&zone);
  return 0;
}

/* Reads what the feed holds without waiting. */
static void feed_drain(feed_t *f) {
  char buf[65536];
  ssize_t n;

  while (!f->lost) {
    n = ctr_link_read(f->fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return;
    if (n <= 0 ||
        ctr_frame_reader_feed(&f->fr, buf, (size_t)n, on_feed_frame, f) < 0)
      f->lost = true;
  }
}

/* Subscribes to the feed of sock; 0, or 125 after printing why. */
static int feed_open(feed_t *f, const char *sock, bool quiet) {
  ctr_limits_t lim = CTR_LIMITS_DEFAULT;
  int64_t deadline = mono_ms() + timeout_ms;
  reply_t r;
  ctr_msg_t m;

  memset(f, 0, sizeof(*f));
  f->quiet = quiet;
  f->fd = daemon_connect(sock, "follow", NULL, NULL, deadline);
  if (f->fd < 0) {
    fprintf(stderr, "%s: cannot reach ctrecd at %s: %s\n", prog_name, sock,
            strerror(errno));
    return 125;
  }
  /* The answer acknowledges the subscription: sessions that begin from
   * now on are reported. */
  if (answer(f->fd, sock, deadline, CTR_MSG_STATUS_REPLY, &r, &m) != 0) {
    ctr_link_close(f->fd);
    return 125;
  }
  release(&r);
  ctr_frame_reader_init(&f->fr, lim.max_frame);
  return 0;
}

/* Whether a process with an open session has exited: its session is about
 * to end, so it is worth waiting for even after a signal. */
static bool ending_sessions(const feed_t *f) {
  size_t i;

  for (i = 0; i < f->nopen; i++)
    if (kill((pid_t)f->open[i].pid, 0) != 0 && errno == ESRCH)
      return true;
  return false;
}

/* Whether ctrecctl has children besides the private ctrecd: the command's
 * processes, its orphans included (ctrecctl is their subreaper). Without
 * /proc's list of children, any child counts. */
static bool command_children(const feed_t *f) {
  char path[64], buf[4096];
  ssize_t n;
  int fd;

  snprintf(path, sizeof(path), "/proc/self/task/%ld/children", (long)getpid());
  if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
    return true;
  n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n < 0)
    return true;
  buf[n] = '\0';
  for (char *p = buf, *end; *p; p = end) {
    long child = strtol(p, &end, 10);
    if (end == p)
      break;
    if (child != (long)f->daemon)
      return true;
  }
  return false;
}

/* Waits for the command (pid) and reaps its orphans. Once it has exited,
 * waits up to GRACE_MS for its other processes to begin sessions, and for
 * the end of every session they began: up to GRACE_MS through a running
 * ctrecd, which records them on anyway; until they end, or ctrecctl is
 * told to stop, through a private one. Returns the command's wait
 * status. */
static int feed_wait(feed_t *f, pid_t pid) {
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  int64_t grace_end = -1;
  int status = 125 << 8;
  bool told = false;
  size_t i;

  for (;;) {
    struct pollfd p[2] = {{f->lost ? -1 : f->fd, POLLIN, 0}, {pidfd, POLLIN, 0}};
    bool children = true, waited;
    pid_t r;
    int st;
    while ((r = waitpid(-1, &st, WNOHANG)) > 0)
      if (r == pid) {
        status = st;
        child_pid = 0;
        grace_end = mono_ms() + GRACE_MS;
        if (pidfd >= 0)
          close(pidfd);
        pidfd = -1;
      }
    if ((r < 0 && errno == ECHILD) || (r == 0 && !command_children(f)))
      children = false;
    /* A session's beginning is in the feed before its process can exit. */
    feed_drain(f);
    waited = grace_end >= 0 && mono_ms() >= grace_end;
    if (grace_end >= 0 &&
        ((!children && f->nopen == 0) || f->lost ||
         (stop_signal && (waited || !ending_sessions(f))) ||
         (waited && (f->nopen == 0 || !f->private_daemon))))
      break;
    if (waited && !told && !f->quiet) {
      fprintf(stderr, "%s: the command exited; waiting for the %zu recorded "
              "process%s it started (pid", prog_name, f->nopen,
              f->nopen == 1 ? "" : "es");
      for (i = 0; i < f->nopen; i++)
        fprintf(stderr, " %" PRId64, f->open[i].pid);
      fputs("; Ctrl-C stops waiting)\n", stderr);
      told = true;
    }
    p[1].fd = pidfd;
    poll(p, 2, grace_end >= 0 || pidfd < 0 ? 50 : 1000);
  }
  if (f->lost && !f->quiet)
    fprintf(stderr, "%s: ctrecd closed the connection; this summary may be "
            "incomplete\n", prog_name);
  for (i = 0; i < f->nopen && !f->quiet; i++)
    if (f->private_daemon)
      fprintf(stderr, "%s: stopped waiting for pid %" PRId64 " (session %"
              PRIu64 "): %s; its trace is aborted unless it ends within 3 s\n",
              prog_name,
              f->open[i].pid, f->open[i].id,
              stop_signal ? strsignal(stop_signal) : "ctrecd hung up");
    else
      fprintf(stderr, "%s: session %" PRIu64 " (pid %" PRId64 ") is still "
              "recording (see '%s status')\n", prog_name, f->open[i].id,
              f->open[i].pid, prog_name);
  if (!f->quiet && !f->private_daemon && f->traces == 0)
    fprintf(stderr, "%s: nothing was recorded\n", prog_name);
  ctr_frame_reader_free(&f->fr);
  free(f->open);
  ctr_link_close(f->fd);
  return status;
}

/* Appends one filter rule for --skip or --only: PATTERN names a function,
 * or a file or module with a file: or module: prefix. */
static void add_rule(ctr_buf_t *rules, const char *arg, const char *action) {
  static const char *const kinds[] = {"file:", "module:", "function:"};
  const char *kind = "function", *pattern = arg;
  size_t i;

  for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
    if (strncmp(arg, kinds[i], strlen(kinds[i])) == 0) {
      kind = kinds[i];
      pattern = arg + strlen(kinds[i]);
    }
  if (!*pattern)
    die_usage("record ", "--skip/--only: an empty pattern: %s", arg);
  ctr_buf_printf(rules, "%s{%.*s: ", rules->len > 1 ? ", " : "",
                 (int)strcspn(kind, ":"), kind);
  /* A JSON string is a YAML double-quoted scalar. */
  ctr_json_str(rules, pattern, strlen(pattern));
  ctr_buf_printf(rules, ", action: %s}", action);
}

static int cmd_record(int argc, char **argv) {
  enum { OPT_VALUES = 256, OPT_SKIP, OPT_ONLY, OPT_PAUSED, OPT_SET,
         OPT_TRANSPORT };
  static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                       {"config", required_argument, NULL, 'c'},
                                       {"quiet", no_argument, NULL, 'q'},
                                       {"timeout", required_argument, NULL, 't'},
                                       {"log-level", required_argument, NULL, 'L'},
                                       {"format", required_argument, NULL, 'f'},
                                       {"values", required_argument, NULL, OPT_VALUES},
                                       {"skip", required_argument, NULL, OPT_SKIP},
                                       {"only", required_argument, NULL, OPT_ONLY},
                                       {"paused", no_argument, NULL, OPT_PAUSED},
                                       {"set", required_argument, NULL, OPT_SET},
                                       {"transport", required_argument, NULL,
                                        OPT_TRANSPORT},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *out = "ctrec-traces", *config = NULL, *refused = NULL;
  const char *format = NULL;
  /* The private ctrecd shares the program's terminal: warnings only. */
  const char *log_level = "warn";
  char rundir[PATH_MAX], sock[PATH_MAX + 16], shim[PATH_MAX], outabs[PATH_MAX];
  char fifos[PATH_MAX + 32] = ""; /* --transport fifo: CT_RECORDER_SOCKET */
  bool quiet = false, private_daemon = true, only = false, fifo = false;
  /* --set KEY=VALUE options for the private ctrecd, in order. */
  char **sets = ctr_xmalloc((size_t)(argc + 2) * sizeof(*sets));
  ctr_buf_t rules = {0}, only_rules = {0};
  pid_t daemon = -1, pid;
  int opt, status = 0, report = -1, fd, nsets = 0;
  struct sigaction sa;
  const char *service;
  feed_t feed;

  optind = 1;
  ctr_buf_puts(&rules, "[");
  while ((opt = getopt_long(argc, argv, "+o:c:qt:L:f:h", opts, NULL)) != -1) {
    switch (opt) {
    case 'f':
      if (strcmp(optarg, "json") != 0 && strcmp(optarg, "ctfs") != 0)
        die_usage("record ", "--format: json or ctfs, not %s", optarg);
      format = optarg;
      refused = "-f: a running ctrecd writes its own output.format";
      break;
    case 'L':
      log_level = optarg;
      refused = "-L: a running ctrecd keeps its own log level";
      break;
    case 'o':
      out = optarg;
      refused = "-o: a running ctrecd writes its traces to its own output.dir";
      break;
    case 'c':
      config = optarg;
      refused = "-c: a running ctrecd keeps its own configuration";
      break;
    case OPT_VALUES:
      if (strcmp(optarg, "all") != 0 && strcmp(optarg, "args") != 0 &&
          strcmp(optarg, "none") != 0)
        die_usage("record ", "--values: all, args or none, not %s", optarg);
      sets[nsets] = ctr_xmalloc(strlen(optarg) + 16);
      sprintf(sets[nsets++], "record.values=%s", optarg);
      refused = "--values: a running ctrecd keeps its own record.values";
      break;
    case OPT_SKIP:
    case OPT_ONLY:
      add_rule(&rules, optarg, opt == OPT_SKIP ? "skip" : "record");
      only = only || opt == OPT_ONLY;
      refused = opt == OPT_SKIP
                    ? "--skip: a running ctrecd keeps its own filter.rules"
                    : "--only: a running ctrecd keeps its own filter.rules";
      break;
    case OPT_PAUSED:
      sets[nsets++] = ctr_xstrndup("record.start=paused", 19);
      refused = "--paused: a running ctrecd keeps its own record.start";
      break;
    case OPT_SET:
      if (strchr(optarg, '=') == NULL || optarg[0] == '=')
        die_usage("record ", "--set: expected KEY=VALUE, not %s", optarg);
      sets[nsets++] = ctr_xstrndup(optarg, strlen(optarg));
      refused = "--set: a running ctrecd keeps its own configuration";
      break;
    case OPT_TRANSPORT:
      if (strcmp(optarg, "fifo") != 0 && strcmp(optarg, "socket") != 0)
        die_usage("record ", "--transport: socket or fifo, not %s", optarg);
      fifo = strcmp(optarg, "fifo") == 0;
      refused = "--transport: a running ctrecd listens where its "
                "configuration says";
      break;
    case 'q': quiet = true; break;
    case 't': parse_timeout("record ", optarg); break;
    case 'h':
      printf("Usage: %s record [OPTIONS] -- CMD [ARGS...]\n"
             "Run CMD, record every Ruby or Python process it starts, and print\n"
             "one line per trace on stderr:\n"
             "  ctrecctl: trace DIR: 12 steps, 1 call, 0 events; exit 0, 2 s, 4.1 KiB (complete)\n"
             "(the program's exit status, how long the trace lasted, and the\n"
             "size of its folder).\n\n"
             "Without a ctrecd at $CT_RECORDER_SOCKET, a private ctrecd is\n"
             "started for this run; ctrecctl says where it records and on which\n"
             "socket, in $XDG_RUNTIME_DIR/ctrec (else /tmp/ctrec-UID, mode 0700),\n"
             "where 'ctrecctl status', 'follow', 'start' and 'stop' find it by\n"
             "themselves. It waits for CMD and for every recorded process CMD\n"
             "started, background ones too (Ctrl-C or SIGTERM stops waiting),\n"
             "then stops the daemon, which completes every trace; should\n"
             "ctrecctl be killed, even by SIGKILL, the daemon completes the\n"
             "traces and stops by itself.\n"
             "With a running ctrecd, traces go where that daemon's output.dir\n"
             "says (so the options below that configure a private daemon are\n"
             "refused), the daemon reports the sessions of CMD's processes, and\n"
             "CMD's other processes get 3 s after it exits to finish.\n\n"
             "  -o, --output DIR   where the private ctrecd writes\n"
             "                     (default: ./ctrec-traces)\n"
             "  -c, --config FILE  ctrec.yaml for the private ctrecd\n"
             "  -f, --format FORMAT  trace format of the private ctrecd: ctfs\n"
             "                     (trace.ct) or json (trace.json, for CodeTracer\n"
             "                     before 2026-07); default: its output.format,\n"
             "                     ctfs unless -c says otherwise\n"
             "  -L, --log-level LEVEL  the private ctrecd's log level on stderr:\n"
             "                     error, warn (default), info or debug\n"
             "      --values WHICH values to record: all (default), args or none\n"
             "                     (record.values)\n"
             "      --skip PATTERN leave out the matching code (a filter rule with\n"
             "                     action skip); repeatable\n"
             "      --only PATTERN record only the matching code: everything else\n"
             "                     is skipped; repeatable, and mixes with --skip\n"
             "                     in order (the last matching one decides)\n"
             "                     PATTERN names a function (Foo#bar, **.main),\n"
             "                     or a file or module with a file: or module:\n"
             "                     prefix (file:**/lib/**, module:json.**), as\n"
             "                     patterns in ctrec.yaml's filter.rules do; the\n"
             "                     rules replace filter.rules, so not with -c\n"
             "      --paused       start every session paused, until 'ctrecctl\n"
             "                     start' (record.start: paused)\n"
             "      --set KEY=VALUE  any ctrec.yaml option, as ctrecd --set\n"
             "                     (a list as YAML: --set 'record.while_in=[main]');\n"
             "                     repeatable, and wins over the options above\n"
             "      --transport T  how CMD's processes reach the private ctrecd:\n"
             "                     socket (default) or fifo, named pipes in a\n"
             "                     folder beside its socket (listen.fifo_dir),\n"
             "                     for programs that may not use sockets\n"
             "  -q, --quiet        print nothing but CMD's own output\n"
             "  -t, --timeout SEC  give up when a running ctrecd has not answered\n"
             "                     within SEC seconds (default 5)\n\n"
             "Exit status: the program's own (a program killed by a signal\n"
             "makes ctrecctl die of the same signal); 2 for a usage error, 125\n"
             "when ctrecctl cannot record (CMD is not run), 126 or 127 when\n"
             "CMD cannot be run.\n",
             prog_name);
      return 0;
    default: die_usage("record ", "%s", "invalid option");
    }
  }
  if (optind >= argc)
    die_usage("record ", "%s", "missing command to record (record -- CMD ...)");
  if (rules.len > 1) {
    if (config)
      die_usage("record ", "%s",
                "--skip and --only replace the filter.rules of -c FILE; put "
                "the rules in the file");
    /* --only: everything is skipped first, so that only what a later
     * rule records is kept. */
    ctr_buf_puts(&only_rules, "filter.rules=[");
    if (only)
      ctr_buf_puts(&only_rules, "{file: \"**\", action: skip}, ");
    ctr_buf_add(&only_rules, rules.data + 1, rules.len - 1);
    ctr_buf_add(&only_rules, "]", 2);
    /* Before the --set options, so that theirs win. */
    memmove(sets + 1, sets, (size_t)nsets * sizeof(*sets));
    sets[0] = only_rules.data;
    only_rules.data = NULL;
    nsets++;
  }
  ctr_buf_free(&rules);

  service = getenv("CT_RECORDER_SOCKET");
  if (service && *service &&
      (fd = ctr_link_open(service, timeout_ms)) >= 0) {
    ctr_link_close(fd);
    private_daemon = false;
    snprintf(sock, sizeof(sock), "%s", service);
  }
  if (private_daemon && ctr_rundir_make(rundir, sizeof(rundir)) == 0 &&
      ctr_rundir_socket(sock, sizeof(sock), rundir, getpid()) == 0) {
    if (fifo) {
      snprintf(fifos, sizeof(fifos), "fifo:%s/record-%ld.fifos", rundir,
               (long)getpid());
      sets[nsets] = ctr_xmalloc(strlen(fifos) + 32);
      sprintf(sets[nsets++], "listen.fifo_dir=%s", ctr_fifo_spec(fifos));
    }
    if (mkdir(out, 0755) != 0 && errno != EEXIST)
      fprintf(stderr, "ctrecctl: cannot create %s: %s\n", out, strerror(errno));
    else {
      if (realpath(out, outabs) == NULL)
        snprintf(outabs, sizeof(outabs), "%s", out);
      daemon = start_daemon(sock, outabs, config, log_level, format, sets,
                            nsets, &report);
    }
  }
  while (nsets > 0)
    free(sets[--nsets]);
  free(sets);
  if (private_daemon && daemon < 0)
    return 125;
  if (!private_daemon && refused) {
    fprintf(stderr,
            "%s: record: %s; unset CT_RECORDER_SOCKET (now %s) to record "
            "with a private ctrecd\n",
            prog_name, refused, sock);
    return EXIT_USAGE;
  }
  if (private_daemon && !quiet)
    fprintf(stderr,
            "ctrecctl: recording to %s (private ctrecd at %s, pid %ld; "
            "'ctrecctl status' reaches it)\n",
            outabs, sock, (long)daemon);
  if ((opt = feed_open(&feed, sock, quiet)) != 0) {
    if (private_daemon) {
      kill(daemon, SIGTERM);
      close(report);
      waitpid(daemon, NULL, 0);
    }
    return opt;
  }
  feed.private_daemon = private_daemon;
  feed.daemon = daemon;
  if (!private_daemon && !quiet)
    fprintf(stderr, "ctrecctl: recording through the ctrecd at %s\n", sock);
  /* Orphans of the command stay descendants of ctrecctl, so their
   * sessions are reported and waited for too. */
  prctl(PR_SET_CHILD_SUBREAPER, 1);

  /* Every process the program starts inherits these. */
  setenv("CT_RECORDER_SOCKET", fifos[0] ? fifos : sock, 1);
  if (shim_dir("ruby", shim, sizeof(shim))) {
    prepend_env("RUBYLIB", shim, ":", false);
    prepend_env("RUBYOPT", "-rctrec", " ", true);
  }
  if (shim_dir("python", shim, sizeof(shim)))
    prepend_env("PYTHONPATH", shim, ":", false);

  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = forward_signal;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGQUIT, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);
  sigaction(SIGUSR2, &sa, NULL);

  pid = fork();
  if (pid == 0) {
    signal(SIGINT, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
    signal(SIGUSR2, SIG_DFL);
    execvp(argv[optind], argv + optind);
    fprintf(stderr, "%s: cannot run %s: %s\n", prog_name, argv[optind],
            strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  if (pid > 0) {
    child_pid = pid;
    status = feed_wait(&feed, pid);
  } else {
    perror("ctrecctl: fork");
    status = 125 << 8;
  }

  if (private_daemon) {
    kill(daemon, SIGTERM);
    print_report(report, quiet);
    close(report);
    while (waitpid(daemon, NULL, 0) < 0 && errno == EINTR)
      ;
  }
  if (WIFSIGNALED(status)) {
    /* Die the way the program died, so callers see the same status. */
    signal(WTERMSIG(status), SIG_DFL);
    kill(getpid(), WTERMSIG(status));
    return 128 + WTERMSIG(status);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 125;
}

/* ---- main -------------------------------------------------------------- */

static void usage(FILE *out) {
  fprintf(out,
          "Usage: %s VERB [OPTIONS]\n"
          "       %s --help | --version\n"
          "Control the ctrec recorder.\n\n"
          "Verbs:\n"
          "  record -- CMD...   run CMD and record the Ruby/Python processes it starts\n"
          "  status             list the live sessions of a ctrecd\n"
          "  follow [SESSION]   print a live session's records as they arrive\n"
          "  follow TRACE_DIR   the same for one trace folder (trace.json or .ct)\n"
          "  start SESSION...   open recording intervals (--all, --pid PID)\n"
          "  stop SESSION...    close them\n"
          "  reload             re-read the daemon's config file\n"
          "  check TRACE_DIR... verify trace folders, JSON or CTFS (exit 1 when one\n"
          "                     is invalid)\n"
          "  show TRACE_DIR     print a trace as a step listing with source text\n"
          "  ls [DIR]           list the traces in DIR (default ./ctrec-traces)\n"
          "  rm TRACE_DIR...    delete finished traces\n"
          "  gc [DIR]           delete old finished traces (--older-than, --max-size)\n\n"
          "status, follow, start, stop and reload take:\n"
          DAEMON_OPTIONS_HELP
          "and record takes -t too, for a running ctrecd.\n\n"
          "Exit status of status, start, stop and reload:\n" EXIT_CODES_HELP
          "record exits with the program's status, follow with 0 once the\n"
          "session has ended (130 on Ctrl-C); show, ls, rm, gc and check with\n"
          "0 when done, 1 when a trace cannot be read, is invalid or is not\n"
          "deleted, 2 for a usage error ('VERB --help' says which).\n\n"
          "Environment: CT_RECORDER_SOCKET (the daemon, a socket or fifo:DIR)\n"
          "and XDG_RUNTIME_DIR (where private daemons listen).\n\n"
          "'%s VERB --help' describes a verb.\n",
          prog_name, prog_name, prog_name);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (strcmp(argv[1], "record") == 0)
    return cmd_record(argc - 1, argv + 1);
  if (strcmp(argv[1], "status") == 0)
    return cmd_status(argc - 1, argv + 1);
  if (strcmp(argv[1], "follow") == 0)
    return cmd_follow(argc - 1, argv + 1);
  if (strcmp(argv[1], "start") == 0)
    return cmd_start_stop(argc - 1, argv + 1, CTR_MSG_START);
  if (strcmp(argv[1], "stop") == 0)
    return cmd_start_stop(argc - 1, argv + 1, CTR_MSG_STOP);
  if (strcmp(argv[1], "reload") == 0)
    return cmd_reload(argc - 1, argv + 1);
  if (strcmp(argv[1], "check") == 0)
    return ctr_check_main(argc - 1, argv + 1);
  if (strcmp(argv[1], "show") == 0)
    return ctr_show_main(argc - 1, argv + 1);
  if (strcmp(argv[1], "ls") == 0)
    return ctr_traces_ls_main(argc - 1, argv + 1);
  if (strcmp(argv[1], "rm") == 0)
    return ctr_traces_rm_main(argc - 1, argv + 1);
  if (strcmp(argv[1], "gc") == 0)
    return ctr_traces_gc_main(argc - 1, argv + 1);
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    puts("ctrecctl " CTREC_VERSION);
    return 0;
  }
  fprintf(stderr, "%s: unknown verb '%s'\n", prog_name, argv[1]);
  usage(stderr);
  return 2;
}
