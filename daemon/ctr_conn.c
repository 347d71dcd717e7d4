/* ctr_conn.c: frames in, checks, decodes, dispatches by role.
 *
 * Untrusted bytes go through three gates before anything uses them: the frame
 * length (before allocation), ctr_proto_read or ctr_proto_scan (sizes and
 * depth before unpacking) and ctr_msg_decode (shape). Any failure closes this connection
 * only, after an ERROR message and one log line naming the peer. STEP and
 * VARS, CALL and RETURN with flat values, most of a recording, pass the
 * last two gates in one (ctr_proto_read_flat), which leaves anything
 * doubtful to them. */
#include "ctr_conn.h"

#include <malloc.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctr_alloc.h"
#include "ctr_control.h"
#include "ctr_error.h"
#include "ctr_feed.h"
#include "ctr_log.h"

/* Pending writes per connection; a peer that does not read is cut off. */
#define CONN_MAX_QUEUED (4u << 20)
/* Flush a session early when this much is rendered between timer ticks. */
#define FLUSH_EARLY (4u << 20)

struct ctr_conn_s {
  uv_pipe_t pipe;      /* a socket; a FIFO pair's read side */
  uv_pipe_t out;       /* a FIFO pair's write side (PROTOCOL.md 1.1) */
  bool pair;
  int handles;         /* open: freed when the last one has closed */
  ctr_server_t *srv;
  ctr_frame_reader_t fr;
  /* From the configuration in force at accept: a reload's new limits.* go
   * to later connections, never cut off a client mid-recording. */
  ctr_limits_t limits;
  msgpack_zone zone;
  int role;
  ctr_session_t *session;
  uint64_t sid;        /* record: the session's id, kept after it ends */
  ctr_watch_t watch;   /* follow: the sessions the feed reports */
  char peer[64];       /* "pid 123 uid 1000" for log lines */
  ctr_peer_t cred;     /* the socket's peer credentials */
  uint64_t since;      /* loop ms: accepted, or a control's last request */
  size_t charged;      /* bytes of a partial frame counted in srv->buffered */
  bool cut_off;        /* did not read 4 MiB sent to it: closed at the sweep */
  bool left_early;     /* record: gone before its HELLO was answered */
  bool closing;
  size_t queued;       /* bytes in write requests not yet completed */
  ctr_conn_t *prev, *next;
};

typedef struct write_req_s {
  uv_write_t req;
  ctr_conn_t *conn;
  size_t len;
  char data[];
} write_req_t;

static void link_conn(ctr_conn_t *c) {
  ctr_server_t *srv = c->srv;

  c->next = srv->conns;
  if (srv->conns)
    srv->conns->prev = c;
  srv->conns = c;
  srv->nconns++;
}

static void unlink_conn(ctr_conn_t *c) {
  ctr_server_t *srv = c->srv;

  srv->nconns--;
  if (c->prev)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
}

ctr_conn_t *ctr_conn_next(const ctr_server_t *srv, const ctr_conn_t *c) {
  return c ? c->next : srv->conns;
}

/* Where frames to the peer go. */
static uv_stream_t *out_stream(ctr_conn_t *c) {
  return (uv_stream_t *)(c->pair ? &c->out : &c->pipe);
}

static void on_closed(uv_handle_t *h) {
  ctr_conn_t *c = h->data;
  bool big = c->fr.cap > (1u << 20);

  if (--c->handles > 0)
    return;
  ctr_frame_reader_free(&c->fr);
  /* ctrecd keeps freed heap for reuse (ctrecd.c); a large partial frame
   * (a client that stalled or was cut off) is given back at once. */
  if (big)
    malloc_trim(0);
  msgpack_zone_destroy(&c->zone);
  ctr_feed_release(&c->watch);
  free(c);
}

static void on_write(uv_write_t *req, int status) {
  write_req_t *w = (write_req_t *)req;

  w->conn->queued -= w->len;
  free(w);
}

/* Sends one frame holding the packed bytes of sb. */
static void send_frame(ctr_conn_t *c, const msgpack_sbuffer *sb) {
  write_req_t *w;
  uv_buf_t buf;

  if (c->closing || c->cut_off)
    return;
  if (c->queued + sb->size > CONN_MAX_QUEUED) {
    /* Dropping frames would leave a follower with a feed that has holes;
     * it is closed instead, by the next sweep (this may run while the
     * connections are being walked). */
    c->cut_off = true;
    return;
  }
  w = ctr_xmalloc(sizeof(*w) + CTR_FRAME_HEADER + sb->size);
  w->conn = c;
  w->len = CTR_FRAME_HEADER + sb->size;
  ctr_frame_put_header(w->data, (uint32_t)sb->size);
  memcpy(w->data + CTR_FRAME_HEADER, sb->data, sb->size);
  buf = uv_buf_init(w->data, (unsigned)w->len);
  if (uv_write(&w->req, out_stream(c), &buf, 1, on_write) != 0) {
    /* The socket is broken: the read side will say so, or the sweep. */
    free(w);
    c->cut_off = true;
    return;
  }
  c->queued += w->len;
}

void ctr_conn_send(ctr_conn_t *c, const msgpack_sbuffer *sb) {
  send_frame(c, sb);
}

static void on_trace_closed(void *arg, const char *dir,
                            const ctr_session_stats_t *st, const char *state) {
  ctr_conn_t *c = arg;

  ctr_server_session_ended(c->srv, dir, st->steps, st->calls, st->events,
                           state);
  ctr_feed_trace(c, dir, st, state);
}

static void send_control(void *arg, int tag, uint64_t token) {
  ctr_conn_t *c = arg;
  msgpack_sbuffer sb;
  msgpack_packer pk;

  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  if (tag == CTR_MSG_FLUSH || tag == CTR_MSG_RECORDED)
    ctr_pack_flush(&pk, tag, token);
  else
    ctr_pack_simple(&pk, tag);
  send_frame(c, &sb);
  msgpack_sbuffer_destroy(&sb);
}

static void push_filter(ctr_conn_t *c) {
  ctr_welcome_t w;
  msgpack_sbuffer sb;
  msgpack_packer pk;

  if (c->session == NULL)
    return;
  ctr_session_welcome(c->session, &w);
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  ctr_pack_filter(&pk, w.rules, w.nrules, w.values);
  send_frame(c, &sb);
  msgpack_sbuffer_destroy(&sb);
}

static void end_session(ctr_conn_t *c, const char *reason) {
  ctr_session_t *s = c->session;

  if (s == NULL)
    return;
  c->session = NULL;
  ctr_session_end(s, reason);
  ctr_feed_end(c);
  ctr_session_free(s);
  c->srv->nsessions--;
}

static void close_handles(ctr_conn_t *c) {
  uv_close((uv_handle_t *)&c->pipe, on_closed);
  if (c->pair)
    uv_close((uv_handle_t *)&c->out, on_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  ctr_conn_t *c = req->data;

  free(req);
  close_handles(c);
}

void ctr_conn_close(ctr_conn_t *c, const char *reason) {
  uv_shutdown_t *req;

  if (c->closing)
    return;
  end_session(c, reason);
  c->closing = true;
  uv_read_stop((uv_stream_t *)&c->pipe);
  c->srv->buffered -= c->charged;
  c->charged = 0;
  unlink_conn(c);
  ctr_server_conn_closed(c->srv);
  /* Shutdown lets a queued ERROR reach the peer before the close; a peer
   * that does not read would hold the connection open for ever. */
  req = c->cut_off ? NULL : ctr_xmalloc(sizeof(*req));
  if (req && uv_shutdown(req, out_stream(c), on_shutdown) == 0) {
    req->data = c;
    return;
  }
  free(req);
  close_handles(c);
}

static void send_error(ctr_conn_t *c, int code, const char *text) {
  msgpack_sbuffer sb;
  msgpack_packer pk;

  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  ctr_pack_error(&pk, code, text);
  send_frame(c, &sb);
  msgpack_sbuffer_destroy(&sb);
}

int ctr_conn_fail(ctr_conn_t *c, int code, const char *why) {
  char reason[256];

  snprintf(reason, sizeof(reason), "protocol error: %s", why);
  CTR_WARN("%s: %s (%s); closing the connection", c->peer, why,
           ctr_strerror(code));
  send_error(c, code, reason);
  ctr_conn_close(c, reason);
  return code;
}

int ctr_conn_refuse(ctr_conn_t *c, int code, const char *why) {
  send_error(c, code, why);
  ctr_conn_close(c, NULL);
  return code;
}

bool ctr_conn_sees(const ctr_conn_t *viewer, const ctr_conn_t *c) {
  return viewer->cred.uid == 0 || viewer->cred.uid == c->cred.uid;
}

/* Whether the peer has shut its side of the connection. */
static bool peer_gone(ctr_conn_t *c) {
  struct pollfd p = {.events = POLLRDHUP};
  uv_os_fd_t fd;

  if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0)
    return false;
  p.fd = fd;
  return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP)) != 0;
}

static int hello(ctr_conn_t *c, const ctr_msg_t *m) {
  const ctr_hello_t *h = &m->u.hello;
  const ctr_config_t *cfg = c->srv->cfg;
  msgpack_sbuffer sb;
  msgpack_packer pk;
  ctr_session_hooks_t hooks;
  ctr_welcome_t w;
  int rc;

  if (m->tag != CTR_MSG_HELLO)
    return ctr_conn_fail(c, CTR_ESTATE, "first message is not HELLO");
  if (h->version != CTR_PROTO_VERSION)
    return ctr_conn_fail(c, CTR_EVERSION, "unsupported protocol version");
  if (h->role.len == 7 && memcmp(h->role.ptr, "control", 7) == 0) {
    c->role = CTR_ROLE_CONTROL;
    return 0;
  }
  if (h->role.len == 6 && memcmp(h->role.ptr, "follow", 6) == 0) {
    ctr_feed_subscribe(c);
    return 0;
  }
  if (!(h->role.len == 6 && memcmp(h->role.ptr, "record", 6) == 0))
    return ctr_conn_fail(c, CTR_EPROTO, "unknown role");
  /* Frames up to limits.max_frame only from a recording client. */
  c->fr.max_frame = c->limits.max_frame;
  if (c->srv->nsessions >= cfg->max_sessions)
    return ctr_conn_fail(c, CTR_ELIMIT, "too many sessions (limits.max_sessions)");
  hooks.arg = c;
  hooks.trace_closed = on_trace_closed;
  hooks.send = send_control;
  rc = ctr_session_new(&c->session, cfg, h, ++c->srv->next_session, &c->cred,
                       &hooks);
  if (rc != 0)
    return ctr_conn_fail(c, rc, "cannot create a session");
  c->srv->nsessions++;
  c->role = CTR_ROLE_RECORD;
  c->sid = ctr_session_id(c->session);
  snprintf(c->peer, sizeof(c->peer), "session %llu (pid %lld uid %u)",
           (unsigned long long)ctr_session_id(c->session), (long long)c->cred.pid,
           (unsigned)c->cred.uid);
  CTR_DEBUG("%s: hello from %.*s", c->peer, (int)h->program.len,
            h->program.ptr ? h->program.ptr : "");
  /* What it sent before it left is recorded all the same; whether it
   * gave up is known at its end: a program that ran to its BYE did not. */
  c->left_early = peer_gone(c);
  /* Told first, so a follower knows of the session before its process can
   * go on (and exit). */
  ctr_feed_begin(c);
  ctr_session_welcome(c->session, &w);
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  ctr_pack_welcome(&pk, &w);
  send_frame(c, &sb);
  msgpack_sbuffer_destroy(&sb);
  return 0;
}

static int dispatch(ctr_conn_t *c, const ctr_msg_t *m) {
  const char *why = NULL;
  int rc;

  switch (c->role) {
  case CTR_ROLE_NONE:
    return hello(c, m);
  case CTR_ROLE_FOLLOW:
    return ctr_conn_fail(c, CTR_ESTATE, "a follower sends nothing after HELLO");
  case CTR_ROLE_RECORD:
    rc = ctr_session_handle(c->session, m, &why);
    return rc ? ctr_conn_fail(c, rc, why ? why : ctr_strerror(rc)) : 0;
  default:
    c->since = uv_now(c->srv->loop);
    return ctr_control_handle(c, m);
  }
}

/* Checks and unpacks the next message of a payload. Most are checked and
 * built in one pass into the server's node array; a large one makes the
 * rest of the payload go through ctr_proto_scan (once, *checked tells) and
 * is unpacked by msgpack-c into the connection's zone, cleared after the
 * frame. */
static int unpack(ctr_conn_t *c, const char *payload, uint32_t len,
                  size_t *off, bool *checked, msgpack_object *obj,
                  const char **why) {
  ctr_server_t *srv = c->srv;
  msgpack_unpack_return ur;
  int rc;

  rc = ctr_proto_read(payload, len, off, &c->limits, srv->nodes,
                      sizeof(srv->nodes) / sizeof(srv->nodes[0]), obj, why);
  if (rc != CTR_ENOMEM)
    return rc;
  if (!*checked) {
    rc = ctr_proto_scan(payload + *off, len - *off, &c->limits, NULL, why);
    if (rc != 0)
      return rc;
    *checked = true;
  }
  ur = msgpack_unpack(payload, len, off, &c->zone, obj);
  if (ur == MSGPACK_UNPACK_NOMEM_ERROR)
    ctr_oom(0);
  if (ur != MSGPACK_UNPACK_SUCCESS && ur != MSGPACK_UNPACK_EXTRA_BYTES) {
    *why = "undecodable msgpack";
    return CTR_EPROTO;
  }
  return 0;
}

/* Messages are applied as they are read: those before a bad one in the
 * same frame take effect, as if they had come in a frame of their own. */
static int on_frame(void *arg, const char *payload, uint32_t len) {
  ctr_conn_t *c = arg;
  const char *why = NULL;
  bool checked = false;
  size_t off = 0;
  msgpack_object obj;
  ctr_msg_t m;
  int rc = 0;

  while (off < len && !c->closing) {
    if (!ctr_proto_read_flat(payload, len, &off, &c->limits, &c->srv->flat,
                             &m)) {
      rc = unpack(c, payload, len, &off, &checked, &obj, &why);
      if (rc != 0) {
        rc = ctr_conn_fail(c, rc, why ? why : "malformed frame");
        break;
      }
      rc = ctr_msg_decode(&obj, &m, &why);
      if (rc != 0) {
        rc = ctr_conn_fail(c, rc, why ? why : "malformed message");
        break;
      }
    }
    rc = dispatch(c, &m);
    if (rc != 0)
      break;
  }
  msgpack_zone_clear(&c->zone);
  if (rc == 0 && c->session && !c->closing &&
      ctr_session_pending(c->session) > FLUSH_EARLY)
    ctr_session_flush(c->session);
  return rc;
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  ctr_conn_t *c = h->data;

  /* Data is consumed inside the read callback, so one buffer serves all. */
  *buf = uv_buf_init(c->srv->read_buf, sizeof(c->srv->read_buf));
}

/* The client holding the most of a partial frame. */
static ctr_conn_t *largest_partial(ctr_server_t *srv) {
  ctr_conn_t *it, *top = NULL;

  for (it = srv->conns; it; it = it->next)
    if (top == NULL || it->charged > top->charged)
      top = it;
  return top;
}

/* Counts c's partial frame in the bytes held for all clients; past
 * limits.max_buffered the client holding the most goes, so that one
 * client's stalled frames cannot starve the others. */
static void charge(ctr_conn_t *c) {
  ctr_server_t *srv = c->srv;
  size_t now = ctr_frame_reader_idle(&c->fr) ? 0 : c->fr.cap;

  srv->buffered += now - c->charged;
  c->charged = now;
  if (srv->buffered > srv->cfg->max_buffered)
    ctr_conn_fail(largest_partial(srv), CTR_ELIMIT,
         "partial frames of all clients past limits.max_buffered; this "
         "client held the most");
}

/* A client that left before its HELLO was answered, without BYE: it gave
 * up on a busy daemon (libctrec waits 30 s) or died; counted for STATUS. */
static bool gave_up(ctr_conn_t *c) {
  if (!c->left_early || c->session == NULL ||
      ctr_session_exited(c->session))
    return false;
  c->srv->gave_up++;
  CTR_WARN("%s: the client left before its HELLO was answered (it gave up "
           "waiting, or died)", c->peer);
  return true;
}

static void read_cb(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf) {
  ctr_conn_t *c = stream->data;
  int rc;

  if (c->closing)
    return;
  if (n > 0) {
    rc = ctr_frame_reader_feed(&c->fr, buf->base, (size_t)n, on_frame, c);
    if (c->closing)
      return;
    if (rc == CTR_EFRAME)
      ctr_conn_fail(c, rc, c->role == CTR_ROLE_NONE
                      ? "frame before HELLO larger than a HELLO needs (4 MiB)"
                      : "frame larger than limits.max_frame");
    else if (rc == CTR_ENOMEM)
      ctr_oom(0);
    else
      charge(c);
    return;
  }
  /* A Unix socket's peer that closes with our answer unread (a short
   * program whose WELCOME came after its BYE) resets the connection: that
   * is its end all the same. */
  if (n == UV_EOF || n == UV_ECONNRESET) {
    if (!ctr_frame_reader_idle(&c->fr))
      CTR_WARN("%s: connection ended inside a frame", c->peer);
    if (gave_up(c))
      ctr_conn_close(c, "client gave up waiting for ctrecd's answer (or "
                        "died before it came)");
    else
      ctr_conn_close(c, "client disconnected without BYE");
  } else if (n < 0) {
    CTR_WARN("%s: read error: %s", c->peer, uv_strerror((int)n));
    ctr_conn_close(c, "connection error");
  }
}

void ctr_conn_tick(ctr_conn_t *c) {
  if (c->session == NULL)
    return;
  ctr_session_tick(c->session);
  ctr_session_flush(c->session);
}

void ctr_conn_reload(ctr_conn_t *c, const ctr_config_t *cfg) {
  if (c->session == NULL)
    return;
  ctr_session_reload(c->session, cfg);
  push_filter(c);
}

static ctr_conn_t *conn_new(ctr_server_t *srv) {
  ctr_conn_t *c = ctr_xcalloc(1, sizeof(*c));

  c->srv = srv;
  uv_pipe_init(srv->loop, &c->pipe, 0);
  c->pipe.data = c;
  c->handles = 1;
  c->limits.max_frame = srv->cfg->max_frame;
  c->limits.max_depth = srv->cfg->max_depth;
  c->limits.max_string = srv->cfg->max_string;
  c->limits.max_elements = srv->cfg->max_elements;
  c->limits.max_ids = srv->cfg->max_ids;
  ctr_frame_reader_init(&c->fr, c->limits.max_frame < CTR_HELLO_FRAME_MAX
                                     ? c->limits.max_frame
                                     : CTR_HELLO_FRAME_MAX);
  c->since = uv_now(srv->loop);
  /* One chunk holds the objects of a whole batch, so clearing the zone
   * between frames frees nothing. */
  msgpack_zone_init(&c->zone, 256 * 1024);
  return c;
}

/* Serves c once its handles are open and its peer known; on error c is
 * closed (rc). */
static int conn_start(ctr_conn_t *c, int rc) {
  if (rc == 0 && c->srv->nconns >= c->srv->max_conns)
    rc = CTR_ELIMIT;
  if (rc != 0) {
    close_handles(c);
    return rc;
  }
  snprintf(c->peer, sizeof(c->peer), "peer pid %lld uid %u",
           (long long)c->cred.pid, (unsigned)c->cred.uid);
  link_conn(c);
  return uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb);
}

int ctr_conn_accept(ctr_server_t *srv, int fd) {
  ctr_conn_t *c = conn_new(srv);
  struct ucred cred;
  socklen_t clen = sizeof(cred);
  int rc;

  if (fd < 0)
    rc = uv_accept((uv_stream_t *)&srv->listener.pipe, (uv_stream_t *)&c->pipe);
  else if ((rc = uv_pipe_open(&c->pipe, fd)) != 0)
    close(fd);
  c->cred.pid = -1;
  c->cred.uid = (uid_t)-1;
  c->cred.gid = (gid_t)-1;
  if (rc == 0 && uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0 &&
      getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) {
    c->cred.pid = cred.pid;
    c->cred.uid = cred.uid;
    c->cred.gid = cred.gid;
  }
  return conn_start(c, rc);
}

int ctr_conn_accept_pair(ctr_server_t *srv, int rfd, int wfd,
                         const ctr_peer_t *cred) {
  ctr_conn_t *c = conn_new(srv);
  int rc;

  c->pair = true;
  c->handles = 2;
  uv_pipe_init(srv->loop, &c->out, 0);
  c->out.data = c;
  c->cred = *cred;
  if ((rc = uv_pipe_open(&c->pipe, rfd)) != 0) {
    close(rfd);
    close(wfd);
  } else if ((rc = uv_pipe_open(&c->out, wfd)) != 0) {
    close(wfd);
  }
  return conn_start(c, rc);
}

/* Whether the peer's bytes wait unread: a daemon behind on a crowd of
 * clients has not read what they sent in time, which is no silence. */
static bool waiting_bytes(ctr_conn_t *c) {
  uv_os_fd_t fd;
  int n = 0;

  return uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0 &&
         ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

void ctr_conn_sweep(ctr_conn_t *c, uint64_t now) {
  uint32_t limit = c->srv->cfg->handshake_ms;

  if (c->closing)
    return;
  if (c->cut_off) {
    CTR_WARN("%s: does not read what it is sent (4 MiB queued); closing",
             c->peer);
    ctr_conn_close(c, "client does not read");
    return;
  }
  if (now - c->since < limit || waiting_bytes(c))
    return;
  if (c->role == CTR_ROLE_NONE) {
    c->srv->refused++;
    ctr_conn_fail(c, CTR_ESTATE, "no HELLO within limits.handshake_timeout_ms");
  }
  else if (c->role == CTR_ROLE_CONTROL)
    ctr_conn_close(c, "control connection idle");
}

int ctr_conn_role(const ctr_conn_t *c) { return c->role; }
void ctr_conn_set_role(ctr_conn_t *c, int role) { c->role = role; }
bool ctr_conn_closing(const ctr_conn_t *c) { return c->closing; }
ctr_session_t *ctr_conn_session(const ctr_conn_t *c) { return c->session; }
uint64_t ctr_conn_sid(const ctr_conn_t *c) { return c->sid; }
const ctr_peer_t *ctr_conn_cred(const ctr_conn_t *c) { return &c->cred; }
const char *ctr_conn_name(const ctr_conn_t *c) { return c->peer; }
ctr_server_t *ctr_conn_server(const ctr_conn_t *c) { return c->srv; }
ctr_watch_t *ctr_conn_watch(ctr_conn_t *c) { return &c->watch; }
