/* ctr_msg.c: decodes one unpacked message into ctr_msg_t.
 *
 * The input has already passed ctr_proto_scan, so sizes are sane; this file
 * checks meaning: a known tag, the exact arity of its layout and the type of
 * every field. Value payloads are only checked at their outer level, since
 * the session walks them anyway when it renders them. */
#include "ctr_proto.h"

#include <string.h>

static bool obj_u64(const msgpack_object *o, uint64_t *out) {
  if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
    return false;
  *out = o->via.u64;
  return true;
}

static bool key_is(const ctr_str_t *k, const char *name) {
  size_t n = strlen(name);
  return k->len == n && memcmp(k->ptr, name, n) == 0;
}

/* record.values by name (WELCOME "values", FILTER): false for any other. */
static bool values_of(const msgpack_object *o, int *values) {
  ctr_str_t s;
  bool ok = ctr_obj_str(o, &s) &&
            (key_is(&s, "all") || key_is(&s, "args") || key_is(&s, "none"));
  *values = !ok                 ? CTR_WV_ALL
            : key_is(&s, "none") ? CTR_WV_NONE
            : key_is(&s, "args") ? CTR_WV_ARGS
                                 : CTR_WV_ALL;
  return ok;
}

const char *ctr_tag_name(int tag) {
  switch (tag) {
  case CTR_MSG_HELLO:
    return "HELLO";
  case CTR_MSG_WELCOME:
    return "WELCOME";
  case CTR_MSG_ERROR:
    return "ERROR";
  case CTR_MSG_BYE:
    return "BYE";
  case CTR_MSG_PATH:
    return "PATH";
  case CTR_MSG_FUNC:
    return "FUNC";
  case CTR_MSG_TYPE:
    return "TYPE";
  case CTR_MSG_VARNAME:
    return "VARNAME";
  case CTR_MSG_SOURCE:
    return "SOURCE";
  case CTR_MSG_STEP:
    return "STEP";
  case CTR_MSG_CALL:
    return "CALL";
  case CTR_MSG_RETURN:
    return "RETURN";
  case CTR_MSG_VARS:
    return "VARS";
  case CTR_MSG_EVENT:
    return "EVENT";
  case CTR_MSG_RAISE:
    return "RAISE";
  case CTR_MSG_THREAD:
    return "THREAD";
  case CTR_MSG_TIME:
    return "TIME";
  case CTR_MSG_MARK:
    return "MARK";
  case CTR_MSG_LOST:
    return "LOST";
  case CTR_MSG_RECORD:
    return "RECORD";
  case CTR_MSG_PAUSE:
    return "PAUSE";
  case CTR_MSG_RESUME:
    return "RESUME";
  case CTR_MSG_FLUSH:
    return "FLUSH";
  case CTR_MSG_FLUSHED:
    return "FLUSHED";
  case CTR_MSG_RECORDED:
    return "RECORDED";
  case CTR_MSG_STATUS:
    return "STATUS";
  case CTR_MSG_STATUS_REPLY:
    return "STATUS_REPLY";
  case CTR_MSG_FILTER:
    return "FILTER";
  case CTR_MSG_STACK:
    return "STACK";
  case CTR_MSG_START:
    return "START";
  case CTR_MSG_STOP:
    return "STOP";
  case CTR_MSG_RELOAD:
    return "RELOAD";
  case CTR_MSG_DONE:
    return "DONE";
  default:
    return "unknown";
  }
}

/* Array length of each known tag's layout, 0 for unknown tags. */
static uint32_t arity(int tag) {
  switch (tag) {
  case CTR_MSG_PAUSE:
  case CTR_MSG_RESUME:
  case CTR_MSG_STATUS:
  case CTR_MSG_RELOAD:
    return 1;
  case CTR_MSG_START:
  case CTR_MSG_STOP:
  case CTR_MSG_HELLO:
  case CTR_MSG_WELCOME:
  case CTR_MSG_BYE:
  case CTR_MSG_RETURN:
  case CTR_MSG_VARS:
  case CTR_MSG_THREAD:
  case CTR_MSG_TIME:
  case CTR_MSG_MARK:
  case CTR_MSG_RECORD:
  case CTR_MSG_FLUSH:
  case CTR_MSG_FLUSHED:
  case CTR_MSG_RECORDED:
  case CTR_MSG_STATUS_REPLY:
    return 2;
  case CTR_MSG_ERROR:
  case CTR_MSG_DONE:
  case CTR_MSG_STACK:
  case CTR_MSG_PATH:
  case CTR_MSG_VARNAME:
  case CTR_MSG_SOURCE:
  case CTR_MSG_STEP:
  case CTR_MSG_CALL:
  case CTR_MSG_EVENT:
  case CTR_MSG_RAISE:
  case CTR_MSG_LOST:
  case CTR_MSG_FILTER:
    return 3;
  case CTR_MSG_TYPE:
    return 4;
  case CTR_MSG_FUNC:
    return 5;
  default:
    return 0;
  }
}

#define FAIL(text)                                                             \
  do {                                                                         \
    *why = (text);                                                             \
    return CTR_EPROTO;                                                         \
  } while (0)

/* Map keys of HELLO, one bit each, to find missing and duplicate keys. */
enum {
  H_VERSION = 1 << 0,
  H_ROLE = 1 << 1,
  H_LANG = 1 << 2,
  H_LANG_VERSION = 1 << 3,
  H_SHIM_VERSION = 1 << 4,
  H_PID = 1 << 5,
  H_PPID = 1 << 6,
  H_PROGRAM = 1 << 7,
  H_ARGS = 1 << 8,
  H_CWD = 1 << 9,
  H_REALTIME = 1 << 10,
  H_MONO = 1 << 11,
  H_REQUIRED = H_VERSION | H_ROLE | H_PID | H_PROGRAM
};

static int decode_hello(const msgpack_object *o, ctr_hello_t *h,
                        const char **why) {
  unsigned seen = 0;

  memset(h, 0, sizeof(*h));
  if (o->type != MSGPACK_OBJECT_MAP)
    FAIL("HELLO body is not a map");
  for (uint32_t i = 0; i < o->via.map.size; i++) {
    const msgpack_object *v = &o->via.map.ptr[i].val;
    ctr_str_t k;
    unsigned bit;
    bool ok;

    if (!ctr_obj_str(&o->via.map.ptr[i].key, &k))
      FAIL("HELLO key is not a string");
    if (key_is(&k, "version")) {
      bit = H_VERSION;
      ok = ctr_obj_u32(v, &h->version);
    } else if (key_is(&k, "role")) {
      bit = H_ROLE;
      ok = ctr_obj_str(v, &h->role);
    } else if (key_is(&k, "lang")) {
      bit = H_LANG;
      ok = ctr_obj_str(v, &h->lang);
    } else if (key_is(&k, "lang_version")) {
      bit = H_LANG_VERSION;
      ok = ctr_obj_str(v, &h->lang_version);
    } else if (key_is(&k, "shim_version")) {
      bit = H_SHIM_VERSION;
      ok = ctr_obj_str(v, &h->shim_version);
    } else if (key_is(&k, "pid")) {
      bit = H_PID;
      ok = ctr_obj_i64(v, &h->pid);
    } else if (key_is(&k, "ppid")) {
      bit = H_PPID;
      ok = ctr_obj_i64(v, &h->ppid);
    } else if (key_is(&k, "program")) {
      bit = H_PROGRAM;
      ok = ctr_obj_str(v, &h->program);
    } else if (key_is(&k, "args")) {
      bit = H_ARGS;
      ok = v->type == MSGPACK_OBJECT_ARRAY;
      for (uint32_t j = 0; ok && j < v->via.array.size; j++) {
        ctr_str_t a;
        ok = ctr_obj_str(&v->via.array.ptr[j], &a);
      }
      h->args = v;
    } else if (key_is(&k, "cwd")) {
      bit = H_CWD;
      ok = ctr_obj_str(v, &h->cwd);
    } else if (key_is(&k, "realtime_ns")) {
      bit = H_REALTIME;
      ok = ctr_obj_i64(v, &h->realtime_ns);
    } else if (key_is(&k, "mono_ns")) {
      bit = H_MONO;
      ok = ctr_obj_i64(v, &h->mono_ns);
    } else {
      /* Newer clients may send more; older daemons ignore it. */
      continue;
    }
    if (seen & bit)
      FAIL("HELLO has a duplicate key");
    if (!ok)
      FAIL("HELLO field has the wrong type");
    seen |= bit;
  }
  if ((seen & H_REQUIRED) != H_REQUIRED)
    FAIL("HELLO lacks version, role, pid or program");
  return 0;
}

enum {
  W_SESSION = 1 << 0,
  W_STATE = 1 << 1,
  W_FLUSH = 1 << 2,
  W_DEPTH = 1 << 3,
  W_LENGTH = 1 << 4,
  W_STRING = 1 << 5,
  W_VALUES = 1 << 6,
  W_FILTER = 1 << 7,
  W_PUSHDOWN = 1 << 8,
  W_NODES = 1 << 9,
  W_REFS = 1 << 10,
  W_WAIT = 1 << 11,
  W_BUFFER = 1 << 12,
  W_PROGRAM = 1 << 13,
  W_REQUIRED = W_SESSION | W_STATE
};

static int decode_welcome(const msgpack_object *o, ctr_welcome_t *w,
                          const char **why) {
  unsigned seen = 0;

  memset(w, 0, sizeof(*w));
  w->pushdown = true;
  if (o->type != MSGPACK_OBJECT_MAP)
    FAIL("WELCOME body is not a map");
  for (uint32_t i = 0; i < o->via.map.size; i++) {
    const msgpack_object *v = &o->via.map.ptr[i].val;
    ctr_str_t k, s;
    unsigned bit;
    bool ok;

    if (!ctr_obj_str(&o->via.map.ptr[i].key, &k))
      FAIL("WELCOME key is not a string");
    if (key_is(&k, "session")) {
      bit = W_SESSION;
      ok = obj_u64(v, &w->session);
    } else if (key_is(&k, "state")) {
      bit = W_STATE;
      ok = ctr_obj_str(v, &s) &&
           (key_is(&s, "recording") || key_is(&s, "paused"));
      w->recording = ok && key_is(&s, "recording");
    } else if (key_is(&k, "flush_ms")) {
      bit = W_FLUSH;
      ok = ctr_obj_u32(v, &w->flush_ms);
    } else if (key_is(&k, "max_depth")) {
      bit = W_DEPTH;
      ok = ctr_obj_u32(v, &w->max_depth);
    } else if (key_is(&k, "max_length")) {
      bit = W_LENGTH;
      ok = ctr_obj_u32(v, &w->max_length);
    } else if (key_is(&k, "max_string")) {
      bit = W_STRING;
      ok = ctr_obj_u32(v, &w->max_string);
    } else if (key_is(&k, "max_nodes")) {
      bit = W_NODES;
      ok = ctr_obj_u32(v, &w->max_nodes);
    } else if (key_is(&k, "refs")) {
      bit = W_REFS;
      ok = ctr_obj_u32(v, &w->refs);
    } else if (key_is(&k, "wait_ms")) {
      bit = W_WAIT;
      ok = ctr_obj_u32(v, &w->wait_ms);
    } else if (key_is(&k, "buffer")) {
      bit = W_BUFFER;
      ok = ctr_obj_u32(v, &w->buffer);
    } else if (key_is(&k, "values")) {
      bit = W_VALUES;
      ok = values_of(v, &w->values);
    } else if (key_is(&k, "filter")) {
      bit = W_FILTER;
      ok = v->type == MSGPACK_OBJECT_ARRAY;
      w->filter = v;
    } else if (key_is(&k, "pushdown")) {
      bit = W_PUSHDOWN;
      ok = v->type == MSGPACK_OBJECT_BOOLEAN;
      w->pushdown = !ok || v->via.boolean;
    } else if (key_is(&k, "program_control")) {
      bit = W_PROGRAM;
      ok = v->type == MSGPACK_OBJECT_BOOLEAN;
      w->program_control = ok && v->via.boolean;
    } else {
      continue;
    }
    if (seen & bit)
      FAIL("WELCOME has a duplicate key");
    if (!ok)
      FAIL("WELCOME field has the wrong type");
    seen |= bit;
  }
  if ((seen & W_REQUIRED) != W_REQUIRED)
    FAIL("WELCOME lacks session or state");
  return 0;
}

static bool is_array(const msgpack_object *o) {
  return o->type == MSGPACK_OBJECT_ARRAY;
}

int ctr_msg_decode(const msgpack_object *o, ctr_msg_t *m, const char **why) {
  const msgpack_object *f;
  uint32_t n;
  int64_t kind;
  const char *ignored;

  if (why == NULL)
    why = &ignored;
  /* Only the tag's own fields are set: clearing the whole union cost more
   * than the rest of decoding a STEP. */
  m->tag = 0;
  if (o->type != MSGPACK_OBJECT_ARRAY)
    FAIL("message is not an array");
  n = o->via.array.size;
  f = o->via.array.ptr;
  if (n == 0 || f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
      f[0].via.u64 == 0)
    FAIL("message tag is not a positive integer");
  if (f[0].via.u64 > INT16_MAX || arity((int)f[0].via.u64) == 0) {
    *why = "unknown message tag";
    return CTR_ETAG;
  }
  m->tag = (int)f[0].via.u64;
  /* FUNC's module and STATUS_REPLY's daemon map are optional last
   * fields. */
  if (n != arity(m->tag) &&
      !((m->tag == CTR_MSG_FUNC || m->tag == CTR_MSG_STATUS_REPLY) &&
        n == arity(m->tag) + 1))
    FAIL("wrong number of fields for the message tag");

  switch (m->tag) {
  case CTR_MSG_HELLO:
    return decode_hello(&f[1], &m->u.hello, why);
  case CTR_MSG_WELCOME:
    return decode_welcome(&f[1], &m->u.welcome, why);
  case CTR_MSG_ERROR:
    if (!ctr_obj_i64(&f[1], &m->u.error.code))
      FAIL("ERROR code is not an integer");
    if (!ctr_obj_str(&f[2], &m->u.error.text))
      FAIL("ERROR text is not a string");
    return 0;
  case CTR_MSG_BYE:
    if (!ctr_obj_i64(&f[1], &m->u.bye.status))
      FAIL("BYE status is not an integer");
    return 0;
  case CTR_MSG_PATH:
  case CTR_MSG_VARNAME:
    if (!ctr_obj_u32(&f[1], &m->u.intern.id))
      FAIL("id is not an unsigned 32-bit integer");
    if (!ctr_obj_str(&f[2], &m->u.intern.text))
      FAIL("name is not a string");
    return 0;
  case CTR_MSG_FUNC:
    if (!ctr_obj_u32(&f[1], &m->u.func.id) ||
        !ctr_obj_u32(&f[2], &m->u.func.path_id))
      FAIL("id is not an unsigned 32-bit integer");
    if (!ctr_obj_i64(&f[3], &m->u.func.line))
      FAIL("line is not an integer");
    if (m->u.func.line < 0 || m->u.func.line > CTR_LINE_MAX)
      FAIL("line out of range");
    if (!ctr_obj_str(&f[4], &m->u.func.name))
      FAIL("name is not a string");
    m->u.func.module = (ctr_str_t){0};
    if (n == 6 && !ctr_obj_str(&f[5], &m->u.func.module))
      FAIL("module is not a string");
    return 0;
  case CTR_MSG_TYPE:
    if (!ctr_obj_u32(&f[1], &m->u.type.id))
      FAIL("id is not an unsigned 32-bit integer");
    if (!ctr_obj_i64(&f[2], &kind) || kind < 0 || kind > CTR_TK_MAX)
      FAIL("type kind out of range");
    m->u.type.kind = (int)kind;
    if (!ctr_obj_str(&f[3], &m->u.type.name))
      FAIL("name is not a string");
    return 0;
  case CTR_MSG_SOURCE:
    if (!ctr_obj_u32(&f[1], &m->u.source.path_id))
      FAIL("id is not an unsigned 32-bit integer");
    if (!ctr_obj_str(&f[2], &m->u.source.text))
      FAIL("SOURCE text is not a string");
    return 0;
  case CTR_MSG_STEP:
    if (!ctr_obj_u32(&f[1], &m->u.step.path_id))
      FAIL("id is not an unsigned 32-bit integer");
    if (!ctr_obj_i64(&f[2], &m->u.step.line))
      FAIL("line is not an integer");
    if (m->u.step.line < 0 || m->u.step.line > CTR_LINE_MAX)
      FAIL("line out of range");
    return 0;
  case CTR_MSG_CALL:
    if (!ctr_obj_u32(&f[1], &m->u.call.func_id))
      FAIL("id is not an unsigned 32-bit integer");
    if (!is_array(&f[2]))
      FAIL("CALL arguments are not an array");
    m->u.call.args = &f[2];
    return 0;
  case CTR_MSG_RETURN:
    if (!is_array(&f[1]))
      FAIL("RETURN value is not an array");
    m->u.ret.value = &f[1];
    return 0;
  case CTR_MSG_VARS:
    if (!is_array(&f[1]))
      FAIL("VARS variables are not an array");
    m->u.vars.vars = &f[1];
    return 0;
  case CTR_MSG_EVENT:
    if (!ctr_obj_i64(&f[1], &kind) || kind < 0 || kind > CTR_EV_MAX)
      FAIL("event kind out of range");
    m->u.event.kind = (int)kind;
    if (!ctr_obj_str(&f[2], &m->u.event.text))
      FAIL("EVENT text is not a string");
    return 0;
  case CTR_MSG_RAISE:
    if (!ctr_obj_str(&f[1], &m->u.raise.cls))
      FAIL("RAISE class is not a string");
    if (!ctr_obj_str(&f[2], &m->u.raise.text))
      FAIL("RAISE message is not a string");
    return 0;
  case CTR_MSG_THREAD:
    if (!obj_u64(&f[1], &m->u.thread.id))
      FAIL("thread id is not an unsigned integer");
    return 0;
  case CTR_MSG_TIME:
    if (!obj_u64(&f[1], &m->u.time.ns))
      FAIL("time is not an unsigned integer");
    return 0;
  case CTR_MSG_MARK:
    if (!ctr_obj_str(&f[1], &m->u.mark.text))
      FAIL("MARK text is not a string");
    return 0;
  case CTR_MSG_RECORD:
    if (f[1].type != MSGPACK_OBJECT_BOOLEAN)
      FAIL("RECORD switch is not a boolean");
    m->u.record.on = f[1].via.boolean;
    return 0;
  case CTR_MSG_LOST:
    if (!obj_u64(&f[1], &m->u.lost.count))
      FAIL("LOST count is not an unsigned integer");
    if (!ctr_obj_str(&f[2], &m->u.lost.cause))
      FAIL("LOST cause is not a string");
    return 0;
  case CTR_MSG_FLUSH:
  case CTR_MSG_FLUSHED:
  case CTR_MSG_RECORDED:
    if (!obj_u64(&f[1], &m->u.flush.token))
      FAIL("flush token is not an unsigned integer");
    return 0;
  case CTR_MSG_STATUS_REPLY:
    if (!is_array(&f[1]))
      FAIL("STATUS_REPLY sessions are not an array");
    for (uint32_t i = 0; i < f[1].via.array.size; i++)
      if (f[1].via.array.ptr[i].type != MSGPACK_OBJECT_MAP)
        FAIL("STATUS_REPLY session is not a map");
    if (n == 3 && f[2].type != MSGPACK_OBJECT_MAP)
      FAIL("STATUS_REPLY daemon counters are not a map");
    m->u.status.sessions = &f[1];
    m->u.status.daemon = n == 3 ? &f[2] : NULL;
    return 0;
  case CTR_MSG_START:
  case CTR_MSG_STOP:
    if (f[1].type != MSGPACK_OBJECT_MAP)
      FAIL("selector is not a map");
    m->u.select.map = &f[1];
    return 0;
  case CTR_MSG_FILTER:
    if (!is_array(&f[1]))
      FAIL("FILTER rules are not an array");
    if (!values_of(&f[2], &m->u.filter.values))
      FAIL("FILTER values is not all, args or none");
    m->u.filter.rules = &f[1];
    return 0;
  case CTR_MSG_STACK:
    if (!obj_u64(&f[1], &m->u.stack.thread))
      FAIL("thread id is not an unsigned integer");
    if (!is_array(&f[2]))
      FAIL("STACK frames are not an array");
    m->u.stack.frames = &f[2];
    return 0;
  case CTR_MSG_DONE:
    if (!ctr_obj_i64(&f[1], &m->u.done.count))
      FAIL("DONE count is not an integer");
    if (!ctr_obj_str(&f[2], &m->u.done.text))
      FAIL("DONE text is not a string");
    return 0;
  default: /* PAUSE, RESUME, STATUS, RELOAD: the tag is the whole message */
    return 0;
  }
}

bool ctr_wire_rule_read(const msgpack_object *o, ctr_wire_rule_t *r,
                        char *buf, size_t cap) {
  const char **slots[3] = {&r->file, &r->module, &r->function};
  size_t used = 0;
  int64_t action;
  int i;

  if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 4 ||
      !ctr_obj_i64(&o->via.array.ptr[3], &action) || action < 0 || action > 2)
    return false;
  r->action = (int)action;
  for (i = 0; i < 3; i++) {
    const msgpack_object *v = &o->via.array.ptr[i];
    ctr_str_t t;
    *slots[i] = NULL;
    if (v->type == MSGPACK_OBJECT_NIL)
      continue;
    if (!ctr_obj_str(v, &t) || used + t.len + 1 > cap ||
        memchr(t.ptr, '\0', t.len))
      return false;
    memcpy(buf + used, t.ptr, t.len);
    buf[used + t.len] = '\0';
    *slots[i] = buf + used;
    used += t.len + 1;
  }
  return r->file || r->module || r->function;
}
