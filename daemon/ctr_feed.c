/* ctr_feed.c: the follow role (see ctr_feed.h and PROTOCOL.md section 6).
 *
 * Descent is decided once, at the session's HELLO, while the traced process
 * is alive and waiting for WELCOME. Both pids come from SO_PEERCRED, never
 * from what a client says, and a follower sees only sessions of its own uid
 * (root: all), as STATUS does. Each follower keeps the ids of the sessions
 * it was told about until they end. */
#include "ctr_feed.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctr_alloc.h"
#include "ctr_log.h"

/* Longest chain of parents walked; real process trees are far shallower. */
#define MAX_GENERATIONS 4096

static int64_t parent_of(int64_t pid) {
  char path[64], buf[1024];
  const char *close_paren;
  long long ppid;
  ssize_t n;
  int fd;

  snprintf(path, sizeof(path), "/proc/%lld/stat", (long long)pid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0)
    return -1;
  buf[n] = '\0';
  /* "pid (comm) state ppid ...": comm may hold spaces and parentheses. */
  close_paren = strrchr(buf, ')');
  if (close_paren == NULL || sscanf(close_paren + 1, " %*c %lld", &ppid) != 1)
    return -1;
  return ppid;
}

bool ctr_feed_descends(int64_t pid, int64_t ancestor) {
  int i;

  if (pid <= 1 || ancestor <= 0)
    return false;
  for (i = 0; i < MAX_GENERATIONS && pid > 1; i++) {
    pid = parent_of(pid);
    if (pid == ancestor)
      return true;
  }
  return false;
}

/* The feed's entries are STATUS_REPLY maps with an "event" key. */
static void send_event(ctr_conn_t *f, const ctr_conn_t *rec, const char *event,
                       const char *dir, const ctr_session_stats_t *st,
                       const char *state) {
  msgpack_sbuffer sb;
  msgpack_packer pk;

  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  ctr_pack_status_reply(&pk, 1, false);
  msgpack_pack_map(&pk, dir ? 8 : 3);
  ctr_pack_kv_str(&pk, "event", event);
  ctr_pack_kv_u64(&pk, "id", ctr_conn_sid(rec));
  ctr_pack_kv_u64(&pk, "pid", (uint64_t)ctr_conn_cred(rec)->pid);
  if (dir) {
    ctr_pack_kv_str(&pk, "trace", dir);
    ctr_pack_kv_str(&pk, "state", state);
    ctr_pack_kv_u64(&pk, "steps", st->steps);
    ctr_pack_kv_u64(&pk, "calls", st->calls);
    ctr_pack_kv_u64(&pk, "events", st->events);
  }
  ctr_conn_send(f, &sb);
  msgpack_sbuffer_destroy(&sb);
}

static int watch_index(ctr_conn_t *f, uint64_t id) {
  const ctr_watch_t *w = ctr_conn_watch(f);
  uint32_t i;

  for (i = 0; i < w->n; i++)
    if (w->ids[i] == id)
      return (int)i;
  return -1;
}

void ctr_feed_subscribe(ctr_conn_t *c) {
  msgpack_sbuffer sb;
  msgpack_packer pk;

  ctr_conn_set_role(c, CTR_ROLE_FOLLOW);
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  ctr_pack_status_reply(&pk, 0, false);
  ctr_conn_send(c, &sb);
  msgpack_sbuffer_destroy(&sb);
}

void ctr_feed_release(ctr_watch_t *w) {
  free(w->ids);
  w->ids = NULL;
  w->n = 0;
}

void ctr_feed_begin(ctr_conn_t *rec) {
  const ctr_server_t *srv = ctr_conn_server(rec);
  ctr_conn_t *f;

  for (f = ctr_conn_next(srv, NULL); f; f = ctr_conn_next(srv, f)) {
    ctr_watch_t *w = ctr_conn_watch(f);
    if (ctr_conn_role(f) != CTR_ROLE_FOLLOW || ctr_conn_closing(f) ||
        !ctr_conn_sees(f, rec) ||
        !ctr_feed_descends(ctr_conn_cred(rec)->pid, ctr_conn_cred(f)->pid))
      continue;
    /* At most one entry per live session, so this stays bounded by
     * limits.max_sessions. */
    w->ids = ctr_xrealloc(w->ids, (w->n + 1) * sizeof(*w->ids));
    w->ids[w->n++] = ctr_conn_sid(rec);
    send_event(f, rec, "begin", NULL, NULL, NULL);
  }
}

void ctr_feed_trace(ctr_conn_t *rec, const char *dir,
                    const ctr_session_stats_t *st, const char *state) {
  const ctr_server_t *srv = ctr_conn_server(rec);
  ctr_conn_t *f;

  for (f = ctr_conn_next(srv, NULL); f; f = ctr_conn_next(srv, f))
    if (ctr_conn_role(f) == CTR_ROLE_FOLLOW &&
        watch_index(f, ctr_conn_sid(rec)) >= 0)
      send_event(f, rec, "trace", dir, st, state);
}

void ctr_feed_end(ctr_conn_t *rec) {
  const ctr_server_t *srv = ctr_conn_server(rec);
  ctr_conn_t *f;
  int i;

  for (f = ctr_conn_next(srv, NULL); f; f = ctr_conn_next(srv, f))
    if (ctr_conn_role(f) == CTR_ROLE_FOLLOW &&
        (i = watch_index(f, ctr_conn_sid(rec))) >= 0) {
      ctr_watch_t *w = ctr_conn_watch(f);
      send_event(f, rec, "end", NULL, NULL, NULL);
      w->ids[i] = w->ids[--w->n];
    }
}
