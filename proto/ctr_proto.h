/* ctr_proto.h: the ctrec wire protocol (see proto/PROTOCOL.md, which is normative).
 *
 * This module has no I/O and no libuv: it frames byte streams, checks untrusted
 * msgpack against limits before anything is unpacked, decodes messages into
 * plain structs and packs every message. It is linked by the daemon, the client
 * library and ctrecctl. */
#ifndef CTR_PROTO_H
#define CTR_PROTO_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctr_error.h"

#define CTR_PROTO_VERSION 1

/* Largest BIGINT magnitude the shims send, in bytes (32,768 bits). A larger
 * integer goes as ctr_pack_v_bigint_over's RAW "<integer of N bits>". */
#define CTR_BIGINT_MAX 4096

/* Lines are 1-based (0 where an interpreter has none); a line past this
 * is no source line, and CodeTracer's readers keep lines in 32 bits. */
#define CTR_LINE_MAX INT32_MAX

/* Largest frame before HELLO is accepted: a HELLO, whose arguments are at
 * most what the kernel lets a program's command line be. */
#define CTR_HELLO_FRAME_MAX (4u << 20)

/* Frame header: u32 little-endian payload length. */
#define CTR_FRAME_HEADER 4

/* Message tags: first element of every message array. */
enum ctr_tag {
  /* handshake and end, both directions */
  CTR_MSG_HELLO = 1,   /* [1, {map}] client -> daemon */
  CTR_MSG_WELCOME = 2, /* [2, {map}] daemon -> client */
  CTR_MSG_ERROR = 3,   /* [3, code, message] either way */
  CTR_MSG_BYE = 4,     /* [4, exit_status] client -> daemon */
  /* interning, client -> daemon; ids are dense: each equals the count so far */
  CTR_MSG_PATH = 10,    /* [10, id, path] */
  CTR_MSG_FUNC = 11,    /* [11, id, path_id, line, name(, module)] */
  CTR_MSG_TYPE = 12,    /* [12, id, type_kind, lang_type] */
  CTR_MSG_VARNAME = 13, /* [13, id, name] */
  CTR_MSG_SOURCE = 14,  /* [14, path_id, text(bin)] */
  /* execution, client -> daemon */
  CTR_MSG_STEP = 20,   /* [20, path_id, line] */
  CTR_MSG_CALL = 21,   /* [21, func_id, [[varname_id, value]...]] */
  CTR_MSG_RETURN = 22, /* [22, value] */
  CTR_MSG_VARS = 23,   /* [23, [[varname_id, value]...]] */
  CTR_MSG_EVENT = 24,  /* [24, event_kind, text(str|bin)] */
  CTR_MSG_RAISE = 25,  /* [25, class_name, message] */
  CTR_MSG_THREAD = 26, /* [26, thread_id] */
  CTR_MSG_TIME = 27,   /* [27, monotonic_ns] */
  CTR_MSG_MARK = 28,   /* [28, text] */
  /* [29, thread_id, [[func_id, line, [[varname_id, value]...]]...]]: the
   * thread's live call stack, outermost first, sent after RESUME */
  CTR_MSG_STACK = 29,
  CTR_MSG_LOST = 30,   /* [30, count, cause] */
  /* [31, on]: the program pauses (false) or resumes (true) its own
   * recording (ctrec.pause/resume); only to a daemon whose WELCOME says
   * "program_control" */
  CTR_MSG_RECORD = 31,
  /* control, daemon -> client */
  CTR_MSG_PAUSE = 40,   /* [40] */
  CTR_MSG_RESUME = 41,  /* [41] */
  /* [42, [[file|nil, module|nil, function|nil, action]...]]: the code rules
   * in force (last match wins), for the client to skip code early */
  CTR_MSG_FILTER = 42,
  CTR_MSG_FLUSH = 43,   /* [43, token] */
  CTR_MSG_FLUSHED = 44, /* [44, token] client -> daemon */
  /* [45, count]: the daemon applied the client's first `count` RECORDs;
   * it comes before the PAUSE or RESUME that answers the last of them */
  CTR_MSG_RECORDED = 45,
  /* control role */
  CTR_MSG_STATUS = 50,       /* [50] ctrecctl -> daemon */
  CTR_MSG_STATUS_REPLY = 51, /* [51, [{session map}...]] daemon -> ctrecctl */
  CTR_MSG_START = 52,  /* [52, {selector}] ctrecctl -> daemon: open intervals */
  CTR_MSG_STOP = 53,   /* [53, {selector}] ctrecctl -> daemon: close them */
  CTR_MSG_RELOAD = 54, /* [54] ctrecctl -> daemon: re-read the config file */
  CTR_MSG_DONE = 55,   /* [55, count, text] daemon -> ctrecctl */
};

/* Value kinds on the wire: every value is [vkind, type_id, payload...]. */
enum ctr_vkind {
  CTR_V_NONE = 0,   /* [0, tid] */
  CTR_V_BOOL = 1,   /* [1, tid, bool] */
  CTR_V_INT = 2,    /* [2, tid, int64] */
  CTR_V_FLOAT = 3,  /* [3, tid, float64] */
  CTR_V_STRING = 4, /* [4, tid, str|bin]: bytes as written by the program */
  CTR_V_BIGINT = 5, /* [5, tid, negative, bin big-endian magnitude] */
  CTR_V_SEQ = 6,    /* [6, tid, [value...]] */
  CTR_V_TUPLE = 7,  /* [7, tid, [value...]] */
  CTR_V_STRUCT = 8, /* [8, tid, [[varname_id, value]...]] */
  CTR_V_RAW = 9,    /* [9, tid, text] */
  CTR_V_ERROR = 10, /* [10, tid, text]: value could not be captured */
  CTR_V_DEF = 11,   /* [11, def_id, value]: value, kept as definition def_id */
  CTR_V_REF = 12,   /* [12, def_id]: the value of a kept definition */
  CTR_V_MAX = CTR_V_REF
};

/* CodeTracer TypeKind numbers used by the shims (trace-format.md 2.3). */
enum ctr_type_kind {
  CTR_TK_SEQ = 0,
  CTR_TK_STRUCT = 6,
  CTR_TK_INT = 7,
  CTR_TK_FLOAT = 8,
  CTR_TK_STRING = 9,
  CTR_TK_BOOL = 12,
  CTR_TK_RAW = 16,
  CTR_TK_ERROR = 24,
  CTR_TK_TUPLE = 27,
  CTR_TK_NONE = 30,
  CTR_TK_MAX = 33
};

/* CodeTracer EventLogKind numbers (trace-format.md 2.4). */
enum ctr_event_kind {
  CTR_EV_WRITE = 0,       /* stdout */
  CTR_EV_WRITE_FILE = 1,
  CTR_EV_WRITE_OTHER = 2, /* stderr */
  CTR_EV_READ = 3,
  CTR_EV_ERROR = 11,
  CTR_EV_TRACE_LOG = 12,
  CTR_EV_MAX = 13
};

/* Limits applied to untrusted bytes. Defaults come from the config table. */
typedef struct ctr_limits_s {
  uint32_t max_frame;    /* payload bytes of one frame */
  uint32_t max_depth;    /* nesting of arrays and maps in one message */
  uint32_t max_string;   /* bytes of one str or bin */
  uint32_t max_elements; /* entries of one array or map */
  uint32_t max_ids;      /* interned ids of each kind per connection */
} ctr_limits_t;

#define CTR_LIMITS_DEFAULT                                                     \
  { (16u << 20), 64, (4u << 20), (1u << 20), (1u << 22) }

typedef struct ctr_str_s {
  const char *ptr; /* not NUL-terminated; points into the unpacked frame */
  uint32_t len;
} ctr_str_t;

/* HELLO map. Strings point into the unpacked frame. */
typedef struct ctr_hello_s {
  uint32_t version;
  ctr_str_t role; /* "record", "control", "follow" */
  ctr_str_t lang; /* "ruby", "python" */
  ctr_str_t lang_version;
  ctr_str_t shim_version;
  int64_t pid;
  int64_t ppid;
  ctr_str_t program;
  const msgpack_object *args; /* array of str; NULL when packing with argv */
  ctr_str_t cwd;
  int64_t realtime_ns;
  int64_t mono_ns;
} ctr_hello_t;

/* Which values a client captures (WELCOME "values"). */
enum ctr_values_mode { CTR_WV_ALL = 0, CTR_WV_ARGS = 1, CTR_WV_NONE = 2 };

/* One code rule of FILTER and WELCOME "filter": NULL selectors are absent;
 * action is 0 record, 1 skip, 2 skip-tree (as ctr_filter_action). */
typedef struct ctr_wire_rule_s {
  const char *file, *module, *function;
  int action;
} ctr_wire_rule_t;

/* WELCOME map: what the daemon tells a recording client. */
typedef struct ctr_welcome_s {
  uint64_t session;
  bool recording;      /* false: start paused */
  uint32_t flush_ms;   /* client background flush period */
  uint32_t max_depth;  /* value nesting the client should capture */
  uint32_t max_length; /* elements per container the client should capture */
  uint32_t max_string; /* bytes per string the client should capture */
  uint32_t max_nodes;  /* values per step the client should capture, 0: no bound */
  uint32_t refs;       /* definitions the daemon keeps (DEF/REF), 0: none */
  uint32_t wait_ms;    /* longest the program may wait on the daemon, 0: 1000 */
  uint32_t buffer;     /* bytes the client may hold unsent, 0: 16 MiB */
  int values;          /* enum ctr_values_mode */
  bool pushdown;       /* false: decide with the rules but skip nothing */
  bool program_control; /* the daemon takes RECORD (ctrec.pause/resume) */
  /* Packing: rules/nrules. Decoding: filter points at the rule array
   * (NULL when absent) until the frame's zone is cleared. */
  const ctr_wire_rule_t *rules;
  uint32_t nrules;
  const msgpack_object *filter;
} ctr_welcome_t;

/* A decoded message. Pointers stay valid until the frame's zone is cleared. */
/* A variable [varname_id, [vkind, type_id(, payload)]] whose value holds
 * no other value (None, Bool, Int, Float, String, Raw, Error), its payload
 * of the type that kind takes; NIL for None. A REF [12, def_id] holds no
 * other value either: tid 0, its def_id the payload. */
typedef struct ctr_flat_var_s {
  uint32_t vid, vk, tid;
  msgpack_object payload;
} ctr_flat_var_t;

/* The most variables (arguments) a message read by ctr_proto_read_flat
 * holds. */
#define CTR_FLAT_VARS 15

/* ctr_proto_read_flat's room: the variables it reads, and the objects a
 * CALL's arguments or a RETURN's value are built into. */
typedef struct ctr_flat_s {
  ctr_flat_var_t vars[CTR_FLAT_VARS];
  msgpack_object nodes[1 + 6 * CTR_FLAT_VARS];
} ctr_flat_t;

/* v as msgpack objects: o[0] its name id, o[1] its value (elements in
 * o[2..4], a REF's in o[2..3]); the pair [name, value] is then an array of
 * o's first two. */
void ctr_flat_objects(const ctr_flat_var_t *v, msgpack_object o[5]);

typedef struct ctr_msg_s {
  int tag;
  union {
    ctr_hello_t hello;
    ctr_welcome_t welcome;
    struct { int64_t code; ctr_str_t text; } error;
    struct { int64_t status; } bye;
    struct { uint32_t id; ctr_str_t text; } intern; /* PATH, VARNAME */
    /* module.ptr is NULL when FUNC has no module field */
    struct { uint32_t id; uint32_t path_id; int64_t line; ctr_str_t name, module; } func;
    struct { uint32_t id; int kind; ctr_str_t name; } type;
    struct { uint32_t path_id; ctr_str_t text; } source;
    struct { uint32_t path_id; int64_t line; } step;
    struct { uint32_t func_id; const msgpack_object *args; } call; /* array of pairs */
    struct { const msgpack_object *value; } ret;
    /* VARS: an array of pairs, or (read by ctr_proto_read_flat, vars
     * NULL) nflat variables whose values hold no other value */
    struct {
      const msgpack_object *vars;
      const struct ctr_flat_var_s *flat;
      uint32_t nflat;
    } vars;
    struct { int kind; ctr_str_t text; } event;
    struct { ctr_str_t cls; ctr_str_t text; } raise;
    struct { uint64_t id; } thread;
    struct { uint64_t ns; } time;
    struct { ctr_str_t text; } mark;
    struct { bool on; } record;
    struct { uint64_t count; ctr_str_t cause; } lost;
    struct { uint64_t token; } flush;
    struct {
      const msgpack_object *sessions; /* array of maps */
      const msgpack_object *daemon;   /* map, or NULL */
    } status;
    /* START/STOP selector map: "all" (bool), "sessions" (array of ids),
     * "pid" (int); checked by the consumer. */
    struct { const msgpack_object *map; } select;
    struct {
      const msgpack_object *rules; /* array of rules */
      int values;                  /* enum ctr_values_mode */
    } filter;
    struct { uint64_t thread; const msgpack_object *frames; } stack;
    struct { int64_t count; ctr_str_t text; } done;
  } u;
} ctr_msg_t;

/* ---- framing ---------------------------------------------------------- */

typedef int (*ctr_frame_cb)(void *arg, const char *payload, uint32_t len);

/* Reassembles frames from a byte stream. The buffer grows only after the
 * header's length passed the limit check. */
typedef struct ctr_frame_reader_s {
  uint32_t max_frame;
  char header[CTR_FRAME_HEADER];
  uint32_t header_len;
  char *buf;
  uint32_t cap;
  uint32_t need; /* payload length of the frame being read */
  uint32_t have;
} ctr_frame_reader_t;

void ctr_frame_reader_init(ctr_frame_reader_t *fr, uint32_t max_frame);
void ctr_frame_reader_free(ctr_frame_reader_t *fr);
/* Feeds bytes; calls cb once per complete frame. Returns 0, the first nonzero
 * value cb returned, CTR_EFRAME for an oversized frame or CTR_ENOMEM. */
int ctr_frame_reader_feed(ctr_frame_reader_t *fr, const char *data, size_t len,
                          ctr_frame_cb cb, void *arg);
/* True when no partial frame is buffered. */
bool ctr_frame_reader_idle(const ctr_frame_reader_t *fr);

void ctr_frame_put_header(char out[CTR_FRAME_HEADER], uint32_t len);

/* ---- checking and decoding untrusted payloads ------------------------- */

/* Walks raw msgpack without allocating: every object complete, depth,
 * string lengths and element counts within limits, and each declared count
 * no larger than the bytes left. On success *count is the number of
 * top-level objects. On failure *why names the problem. */
int ctr_proto_scan(const char *buf, size_t len, const ctr_limits_t *lim,
                   size_t *count, const char **why);

/* Checks the one object at buf + *off as ctr_proto_scan checks every
 * object, and unpacks it as ctr_proto_unpack does, in one pass. Returns 0
 * and advances *off; CTR_EPROTO or CTR_ELIMIT with *why set when the bytes
 * are bad (as ctr_proto_scan would report them); or CTR_ENOMEM, leaving
 * *off, when the object needs more nodes or deeper nesting than it builds:
 * the caller then checks the rest with ctr_proto_scan and unpacks the
 * object with msgpack-c. */
int ctr_proto_read(const char *buf, size_t len, size_t *off,
                   const ctr_limits_t *lim, msgpack_object *nodes, size_t cap,
                   msgpack_object *out, const char **why);

/* The bulk of a recording, read and decoded in one pass: STEP, and VARS,
 * CALL and RETURN whose values (at most CTR_FLAT_VARS) are all flat. A
 * VARS keeps its variables in w (u.vars.flat, u.vars.vars NULL); a CALL's
 * arguments and a RETURN's value are built as objects in w, as
 * ctr_msg_decode would give them. True with *m decoded and *off advanced;
 * false, leaving *off, for any other message, and for anything
 * ctr_proto_read or ctr_msg_decode would reject or the limits forbid:
 * those take the general path, which reports them. */
bool ctr_proto_read_flat(const char *buf, size_t len, size_t *off,
                         const ctr_limits_t *lim, ctr_flat_t *w, ctr_msg_t *m);

/* Unpacks the object at buf + *off, in bytes ctr_proto_scan accepted, as
 * msgpack_unpack would, into out and the first cap objects of nodes, and
 * advances *off. Strings point into buf. Returns CTR_ELIMIT, leaving *off,
 * when the object needs more nodes or deeper nesting than it handles; the
 * caller then unpacks it with msgpack-c. */
int ctr_proto_unpack(const char *buf, size_t len, size_t *off,
                     msgpack_object *nodes, size_t cap, msgpack_object *out);

/* Decodes one top-level object. Checks the tag, arity and field types; value
 * payloads (CALL args, RETURN, VARS) are left as objects for the consumer.
 * Only the fields of m->tag's layout are set. On failure returns CTR_EPROTO
 * or CTR_ETAG and sets *why. */
int ctr_msg_decode(const msgpack_object *o, ctr_msg_t *m, const char **why);

/* Helpers for consumers of value objects. They are inline because the
 * daemon calls them for every field of every message it renders. */
static inline bool ctr_obj_str(const msgpack_object *o, ctr_str_t *out) {
  if (o->type == MSGPACK_OBJECT_STR) { /* str or bin */
    out->ptr = o->via.str.ptr;
    out->len = o->via.str.size;
    return true;
  }
  if (o->type == MSGPACK_OBJECT_BIN) {
    out->ptr = o->via.bin.ptr;
    out->len = o->via.bin.size;
    return true;
  }
  return false;
}

static inline bool ctr_obj_u32(const msgpack_object *o, uint32_t *out) {
  if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > UINT32_MAX)
    return false;
  *out = (uint32_t)o->via.u64;
  return true;
}

static inline bool ctr_obj_i64(const msgpack_object *o, int64_t *out) {
  if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
    if (o->via.u64 > INT64_MAX)
      return false;
    *out = (int64_t)o->via.u64;
    return true;
  }
  if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
    *out = o->via.i64;
    return true;
  }
  return false;
}

const char *ctr_tag_name(int tag);

/* ---- packing ---------------------------------------------------------- */

/* Each packs one complete message (or, for *_begin, its head: the caller
 * then packs exactly the announced number of items). */
void ctr_pack_hello(msgpack_packer *pk, const ctr_hello_t *h, int argc,
                    const char *const *argv);
void ctr_pack_welcome(msgpack_packer *pk, const ctr_welcome_t *w);
void ctr_pack_error(msgpack_packer *pk, int code, const char *text);
void ctr_pack_bye(msgpack_packer *pk, int64_t status);
void ctr_pack_path(msgpack_packer *pk, uint32_t id, const char *p, size_t n);
void ctr_pack_func(msgpack_packer *pk, uint32_t id, uint32_t path_id,
                   int64_t line, const char *name, size_t n);
/* FUNC with the module the function belongs to (Python's __name__), or
 * without one when module is NULL, as ctr_pack_func packs it. */
void ctr_pack_func_in(msgpack_packer *pk, uint32_t id, uint32_t path_id,
                      int64_t line, const char *name, size_t n,
                      const char *module, size_t mn);
void ctr_pack_type(msgpack_packer *pk, uint32_t id, int kind, const char *name,
                   size_t n);
void ctr_pack_varname(msgpack_packer *pk, uint32_t id, const char *name,
                      size_t n);
void ctr_pack_source(msgpack_packer *pk, uint32_t path_id, const char *text,
                     size_t n);
void ctr_pack_step(msgpack_packer *pk, uint32_t path_id, int64_t line);
void ctr_pack_call_begin(msgpack_packer *pk, uint32_t func_id, uint32_t nargs);
void ctr_pack_return_begin(msgpack_packer *pk); /* then one value */
void ctr_pack_vars_begin(msgpack_packer *pk, uint32_t nvars);
/* One [varname_id, value] pair in CALL, VARS or a struct: then one value. */
void ctr_pack_pair_begin(msgpack_packer *pk, uint32_t varname_id);
void ctr_pack_event(msgpack_packer *pk, int kind, const char *text, size_t n);
/* Program output of any length as EVENTs of kind, in pieces of at most
 * CTR_OUTPUT_PIECE bytes so that none passes the daemon's default
 * limits.max_string. At least one EVENT, even for n == 0. */
#define CTR_OUTPUT_PIECE (1u << 20)
void ctr_pack_output(msgpack_packer *pk, int kind, const char *text, size_t n);
void ctr_pack_raise(msgpack_packer *pk, const char *cls, size_t cn,
                    const char *text, size_t tn);
void ctr_pack_thread(msgpack_packer *pk, uint64_t id);
void ctr_pack_time(msgpack_packer *pk, uint64_t ns);
void ctr_pack_mark(msgpack_packer *pk, const char *text, size_t n);
void ctr_pack_record(msgpack_packer *pk, bool on);
void ctr_pack_lost(msgpack_packer *pk, uint64_t count, const char *cause);
void ctr_pack_simple(msgpack_packer *pk, int tag); /* PAUSE, RESUME, STATUS, RELOAD */
/* START or STOP for all sessions, the given session ids, or a pid (> 0). */
void ctr_pack_select(msgpack_packer *pk, int tag, bool all,
                     const uint64_t *ids, uint32_t nids, int64_t pid);
void ctr_pack_done(msgpack_packer *pk, int64_t count, const char *text);
void ctr_pack_filter(msgpack_packer *pk, const ctr_wire_rule_t *rules,
                     uint32_t n, int values);
/* STACK head; then nframes times ctr_pack_frame_begin and nvars pairs. */
void ctr_pack_stack_begin(msgpack_packer *pk, uint64_t thread,
                          uint32_t nframes);
void ctr_pack_frame_begin(msgpack_packer *pk, uint32_t func_id, int64_t line,
                          uint32_t nvars);
/* Reads one rule of a decoded FILTER or WELCOME filter array; strings are
 * NUL-terminated copies in buf (cap bytes). Returns false when malformed. */
bool ctr_wire_rule_read(const msgpack_object *o, ctr_wire_rule_t *r,
                        char *buf, size_t cap);
void ctr_pack_flush(msgpack_packer *pk, int tag, uint64_t token);
/* STATUS_REPLY up to its array of n session maps, which the caller packs
 * (then, with daemon, a map of the daemon's own counters); one key and
 * value of such a map. */
void ctr_pack_status_reply(msgpack_packer *pk, uint32_t n, bool daemon);
void ctr_pack_kv_str(msgpack_packer *pk, const char *key, const char *val);
void ctr_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t val);

/* Values. */
void ctr_pack_v_none(msgpack_packer *pk, uint32_t tid);
void ctr_pack_v_bool(msgpack_packer *pk, uint32_t tid, bool b);
void ctr_pack_v_int(msgpack_packer *pk, uint32_t tid, int64_t i);
void ctr_pack_v_float(msgpack_packer *pk, uint32_t tid, double f);
void ctr_pack_v_string(msgpack_packer *pk, uint32_t tid, const char *s,
                       size_t n);
void ctr_pack_v_bigint(msgpack_packer *pk, uint32_t tid, bool negative,
                       const unsigned char *magnitude, size_t n);
/* An integer past CTR_BIGINT_MAX: RAW "<integer of N bits>", N the bits of
 * its magnitude. */
void ctr_pack_v_bigint_over(msgpack_packer *pk, uint32_t tid, uint64_t bits);
void ctr_pack_v_seq_begin(msgpack_packer *pk, uint32_t tid, uint32_t n);
void ctr_pack_v_tuple_begin(msgpack_packer *pk, uint32_t tid, uint32_t n);
/* then n pairs, each ctr_pack_pair_begin + value */
void ctr_pack_v_struct_begin(msgpack_packer *pk, uint32_t tid, uint32_t n);
void ctr_pack_v_raw(msgpack_packer *pk, uint32_t tid, const char *s, size_t n);
void ctr_pack_v_error(msgpack_packer *pk, uint32_t tid, const char *s,
                      size_t n);

#endif
