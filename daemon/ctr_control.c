/* ctr_control.c: the control role (see ctr_control.h). */
#include "ctr_control.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctr_error.h"
#include "ctr_log.h"

static void reply(ctr_conn_t *c, void (*pack)(msgpack_packer *, const void *),
                  const void *arg) {
  msgpack_sbuffer sb;
  msgpack_packer pk;

  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  pack(&pk, arg);
  ctr_conn_send(c, &sb);
  msgpack_sbuffer_destroy(&sb);
}

/* The sessions c may see, each as a STATUS_REPLY map. */
static void pack_status(msgpack_packer *pk, const void *arg) {
  const ctr_conn_t *c = arg, *it;
  const ctr_server_t *srv = ctr_conn_server(c);
  uint32_t n = 0;

  for (it = ctr_conn_next(srv, NULL); it; it = ctr_conn_next(srv, it))
    if (ctr_conn_session(it) && ctr_conn_sees(c, it))
      n++;
  ctr_pack_status_reply(pk, n, true);
  for (it = ctr_conn_next(srv, NULL); it; it = ctr_conn_next(srv, it))
    if (ctr_conn_session(it) && ctr_conn_sees(c, it))
      ctr_session_pack_status(ctr_conn_session(it), pk);
  /* Programs that went unrecorded since the daemon started, whoever ran
   * them: counts disclose nothing of a session. */
  msgpack_pack_map(pk, 2);
  ctr_pack_kv_u64(pk, "gave_up", srv->gave_up);
  ctr_pack_kv_u64(pk, "refused", srv->refused);
}

typedef struct done_s {
  int64_t count;
  const char *text;
} done_t;

static void pack_done(msgpack_packer *pk, const void *arg) {
  const done_t *d = arg;

  ctr_pack_done(pk, d->count, d->text);
}

static void reply_done(ctr_conn_t *c, int64_t count, const char *text) {
  done_t d = {count, text};

  reply(c, pack_done, &d);
}

/* Does the START/STOP selector name this session? */
static bool selected(const msgpack_object *map, const ctr_session_t *s) {
  uint64_t id = ctr_session_id(s);
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
        pid > 0 && pid == ctr_session_pid(s))
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
  const ctr_server_t *srv = ctr_conn_server(c);
  bool on = m->tag == CTR_MSG_START;
  int64_t matched = 0, changed = 0;
  char text[128];
  ctr_conn_t *it;

  for (it = ctr_conn_next(srv, NULL); it; it = ctr_conn_next(srv, it)) {
    ctr_session_t *s = ctr_conn_session(it);
    if (s == NULL || !ctr_conn_sees(c, it) || !selected(m->u.select.map, s))
      continue;
    matched++;
    changed += ctr_session_control(s, on);
  }
  snprintf(text, sizeof(text), "%s %lld session(s), %lld changed",
           on ? "started" : "stopped", (long long)matched, (long long)changed);
  CTR_INFO("%s: %s", ctr_conn_name(c), text);
  reply_done(c, matched, text);
}

int ctr_control_handle(ctr_conn_t *c, const ctr_msg_t *m) {
  ctr_server_t *srv = ctr_conn_server(c);
  char err[1024];

  switch (m->tag) {
  case CTR_MSG_STATUS:
    reply(c, pack_status, c);
    return 0;
  case CTR_MSG_START:
  case CTR_MSG_STOP:
    start_stop(c, m);
    return 0;
  case CTR_MSG_RELOAD:
    if (ctr_conn_cred(c)->uid != 0 && ctr_conn_cred(c)->uid != getuid())
      return ctr_conn_refuse(c, CTR_EPERM,
                             "only the daemon's user may reload it");
    if (ctr_server_reload(srv, err, sizeof(err)) != 0)
      return ctr_conn_refuse(c, CTR_ECONFIG, err);
    reply_done(c, srv->nsessions, "configuration reloaded");
    return 0;
  }
  return ctr_conn_fail(c, CTR_ESTATE, "not a control request");
}
