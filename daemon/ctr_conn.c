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
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctr_error.h"
#include "ctr_feed.h"
#include "ctr_log.h"

/* Pending writes per connection; a peer that does not read is cut off. */
#define CONN_MAX_QUEUED (4u << 20)
/* Flush a session early when this much is rendered between timer ticks. */
#define FLUSH_EARLY (4u << 20)

typedef struct write_req_s {
  uv_write_t req;
  ctr_conn_t *conn;
  size_t len;
  char data[];
} write_req_t;

static void on_closed(uv_handle_t *h) {
  ctr_conn_t *c = h->data;
  bool big = c->fr.cap > (1u << 20);

  ctr_frame_reader_free(&c->fr);
  /* ctrecd keeps freed heap for reuse (ctrecd.c); a large partial frame
   * (a client that stalled or was cut off) is given back at once. */
  if (big)
    malloc_trim(0);
  msgpack_zone_destroy(&c->zone);
  free(c->watched);
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
  w = malloc(sizeof(*w) + CTR_FRAME_HEADER + sb->size);
  if (w == NULL)
    return;
  w->conn = c;
  w->len = CTR_FRAME_HEADER + sb->size;
  ctr_frame_put_header(w->data, (uint32_t)sb->size);
  memcpy(w->data + CTR_FRAME_HEADER, sb->data, sb->size);
  buf = uv_buf_init(w->data, (unsigned)w->len);
  if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &buf, 1, on_write) != 0) {
    free(w);
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

void ctr_conn_push_filter(ctr_conn_t *c) {
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

static void on_shutdown(uv_shutdown_t *req, int status) {
  ctr_conn_t *c = req->data;

  free(req);
  uv_close((uv_handle_t *)&c->pipe, on_closed);
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
  ctr_server_conn_closed(c->srv, c);
  /* Shutdown lets a queued ERROR reach the peer before the close; a peer
   * that does not read would hold the connection open for ever. */
  req = c->cut_off ? NULL : malloc(sizeof(*req));
  if (req && uv_shutdown(req, (uv_stream_t *)&c->pipe, on_shutdown) == 0) {
    req->data = c;
    return;
  }
  free(req);
  uv_close((uv_handle_t *)&c->pipe, on_closed);
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

static int fail(ctr_conn_t *c, int code, const char *why) {
  char reason[256];

  snprintf(reason, sizeof(reason), "protocol error: %s", why);
  CTR_WARN("%s: %s (%s); closing the connection", c->peer, why,
           ctr_strerror(code));
  send_error(c, code, reason);
  ctr_conn_close(c, reason);
  return code;
}

/* A control request ctrecd turns down: the peer gets the reason as it is,
 * which is no protocol error. */
static int refuse(ctr_conn_t *c, int code, const char *why) {
  send_error(c, code, why);
  ctr_conn_close(c, NULL);
  return code;
}

bool ctr_conn_sees(const ctr_conn_t *viewer, const ctr_conn_t *c) {
  return viewer->cred.uid == 0 || viewer->cred.uid == c->cred.uid;
}

static void reply_status(ctr_conn_t *c) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  ctr_conn_t *it;
  uint32_t n = 0;

  for (it = c->srv->conns; it; it = it->next)
    if (it->session && ctr_conn_sees(c, it))
      n++;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  ctr_pack_status_reply(&pk, n);
  for (it = c->srv->conns; it; it = it->next)
    if (it->session && ctr_conn_sees(c, it))
      ctr_session_pack_status(it->session, &pk);
  send_frame(c, &sb);
  msgpack_sbuffer_destroy(&sb);
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
    return fail(c, CTR_ESTATE, "first message is not HELLO");
  if (h->version != CTR_PROTO_VERSION)
    return fail(c, CTR_EVERSION, "unsupported protocol version");
  if (h->role.len == 7 && memcmp(h->role.ptr, "control", 7) == 0) {
    c->role = CTR_ROLE_CONTROL;
    return 0;
  }
  if (h->role.len == 6 && memcmp(h->role.ptr, "follow", 6) == 0) {
    ctr_feed_subscribe(c);
    return 0;
  }
  if (!(h->role.len == 6 && memcmp(h->role.ptr, "record", 6) == 0))
    return fail(c, CTR_EPROTO, "unknown role");
  /* Frames up to limits.max_frame only from a recording client. */
  c->fr.max_frame = c->limits.max_frame;
  if (c->srv->nsessions >= cfg->max_sessions)
    return fail(c, CTR_ELIMIT, "too many sessions (limits.max_sessions)");
  hooks.arg = c;
  hooks.trace_closed = on_trace_closed;
  hooks.send = send_control;
  rc = ctr_session_new(&c->session, cfg, h, ++c->srv->next_session, &c->cred,
                       &hooks);
  if (rc != 0)
    return fail(c, rc, "cannot create a session");
  c->srv->nsessions++;
  c->role = CTR_ROLE_RECORD;
  c->sid = ctr_session_id(c->session);
  snprintf(c->peer, sizeof(c->peer), "session %llu (pid %lld uid %u)",
           (unsigned long long)ctr_session_id(c->session), (long long)c->cred.pid,
           (unsigned)c->cred.uid);
  CTR_DEBUG("%s: hello from %.*s", c->peer, (int)h->program.len,
            h->program.ptr ? h->program.ptr : "");
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

static void reply_done(ctr_conn_t *c, int64_t count, const char *text) {
  msgpack_sbuffer sb;
  msgpack_packer pk;

  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  ctr_pack_done(&pk, count, text);
  send_frame(c, &sb);
  msgpack_sbuffer_destroy(&sb);
}

/* Does the START/STOP selector name this session? */
static bool selected(const msgpack_object *map, const ctr_conn_t *it) {
  uint64_t id = ctr_session_id(it->session);
  uint32_t i, j;

  for (i = 0; i < map->via.map.size; i++) {
    const msgpack_object *k = &map->via.map.ptr[i].key;
    const msgpack_object *v = &map->via.map.ptr[i].val;
    ctr_str_t key;
    int64_t pid;
    if (!ctr_obj_str(k, &key))
      continue;
    if (key.len == 3 && memcmp(key.ptr, "all", 3) == 0 &&
        v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean)
      return true;
    if (key.len == 3 && memcmp(key.ptr, "pid", 3) == 0 && ctr_obj_i64(v, &pid) &&
        pid > 0 && pid == ctr_session_pid(it->session))
      return true;
    if (key.len == 8 && memcmp(key.ptr, "sessions", 8) == 0 &&
        v->type == MSGPACK_OBJECT_ARRAY)
      for (j = 0; j < v->via.array.size; j++)
        if (v->via.array.ptr[j].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            v->via.array.ptr[j].via.u64 == id)
          return true;
  }
  return false;
}

/* ctrecctl start|stop: acts on the caller's own sessions (root: all). */
static void start_stop(ctr_conn_t *c, const ctr_msg_t *m) {
  bool on = m->tag == CTR_MSG_START;
  int64_t matched = 0, changed = 0;
  char text[128];
  ctr_conn_t *it;

  for (it = c->srv->conns; it; it = it->next) {
    if (it->session == NULL || !ctr_conn_sees(c, it) ||
        !selected(m->u.select.map, it))
      continue;
    matched++;
    changed += ctr_session_control(it->session, on);
  }
  snprintf(text, sizeof(text), "%s %lld session(s), %lld changed",
           on ? "started" : "stopped", (long long)matched, (long long)changed);
  CTR_INFO("%s: %s", c->peer, text);
  reply_done(c, matched, text);
}

static int control(ctr_conn_t *c, const ctr_msg_t *m) {
  char err[1024];

  c->since = uv_now(c->srv->loop);
  switch (m->tag) {
  case CTR_MSG_STATUS:
    reply_status(c);
    return 0;
  case CTR_MSG_START:
  case CTR_MSG_STOP:
    start_stop(c, m);
    return 0;
  case CTR_MSG_RELOAD:
    if (c->cred.uid != 0 && c->cred.uid != getuid())
      return refuse(c, CTR_EPERM, "only the daemon's user may reload it");
    if (ctr_server_reload(c->srv, err, sizeof(err)) != 0)
      return refuse(c, CTR_ECONFIG, err);
    reply_done(c, c->srv->nsessions, "configuration reloaded");
    return 0;
  }
  return fail(c, CTR_ESTATE, "not a control request");
}

static int dispatch(ctr_conn_t *c, const ctr_msg_t *m) {
  const char *why = NULL;
  int rc;

  switch (c->role) {
  case CTR_ROLE_NONE:
    return hello(c, m);
  case CTR_ROLE_FOLLOW:
    return fail(c, CTR_ESTATE, "a follower sends nothing after HELLO");
  case CTR_ROLE_RECORD:
    rc = ctr_session_handle(c->session, m, &why);
    return rc ? fail(c, rc, why ? why : ctr_strerror(rc)) : 0;
  default:
    return control(c, m);
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
        rc = fail(c, rc, why ? why : "malformed frame");
        break;
      }
      rc = ctr_msg_decode(&obj, &m, &why);
      if (rc != 0) {
        rc = fail(c, rc, why ? why : "malformed message");
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
    fail(largest_partial(srv), CTR_ELIMIT,
         "partial frames of all clients past limits.max_buffered; this "
         "client held the most");
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
      fail(c, rc, c->role == CTR_ROLE_NONE
                      ? "frame before HELLO larger than a HELLO needs (4 MiB)"
                      : "frame larger than limits.max_frame");
    else if (rc == CTR_ENOMEM)
      fail(c, rc, "out of memory for a frame");
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
    ctr_conn_close(c, "client disconnected without BYE");
  } else if (n < 0) {
    CTR_WARN("%s: read error: %s", c->peer, uv_strerror((int)n));
    ctr_conn_close(c, "connection error");
  }
}

void ctr_conn_flush(ctr_conn_t *c) {
  if (c->session)
    ctr_session_flush(c->session);
}

int ctr_conn_accept(ctr_server_t *srv) {
  ctr_conn_t *c = calloc(1, sizeof(*c));
  struct ucred cred;
  socklen_t clen = sizeof(cred);
  uv_os_fd_t fd;
  int rc;

  if (c == NULL)
    return CTR_ENOMEM;
  c->srv = srv;
  uv_pipe_init(srv->loop, &c->pipe, 0);
  c->pipe.data = c;
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
  rc = uv_accept((uv_stream_t *)&srv->listener.pipe, (uv_stream_t *)&c->pipe);
  if (rc != 0 || srv->nconns >= srv->max_conns) {
    uv_close((uv_handle_t *)&c->pipe, on_closed);
    return rc != 0 ? rc : CTR_ELIMIT;
  }
  c->cred.pid = -1;
  c->cred.uid = (uid_t)-1;
  c->cred.gid = (gid_t)-1;
  if (uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0 &&
      getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) {
    c->cred.pid = cred.pid;
    c->cred.uid = cred.uid;
    c->cred.gid = cred.gid;
  }
  snprintf(c->peer, sizeof(c->peer), "peer pid %lld uid %u", (long long)c->cred.pid,
           (unsigned)c->cred.uid);
  c->next = srv->conns;
  if (srv->conns)
    srv->conns->prev = c;
  srv->conns = c;
  srv->nconns++;
  return uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb);
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
  if (c->role == CTR_ROLE_NONE)
    fail(c, CTR_ESTATE, "no HELLO within limits.handshake_timeout_ms");
  else if (c->role == CTR_ROLE_CONTROL)
    ctr_conn_close(c, "control connection idle");
}
