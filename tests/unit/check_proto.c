/* check_proto.c: unit tests for the wire protocol module (proto/). */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctr_path.h"
#include "ctr_proto.h"

static const ctr_limits_t default_limits = CTR_LIMITS_DEFAULT;

static msgpack_sbuffer sb;
static msgpack_packer pk;

static void setup(void) {
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
}

static void teardown(void) { msgpack_sbuffer_destroy(&sb); }

static bool str_eq(ctr_str_t s, const char *want) {
  return s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

/* Scans, unpacks and decodes every message in sb, the way the daemon does.
 * Message i points into ups[i], which the caller destroys with free_all. */
static size_t decode_all(msgpack_unpacked *ups, ctr_msg_t *msgs, size_t max) {
  size_t count = 0, off = 0, i;
  const char *why = NULL;
  int rc = ctr_proto_scan(sb.data, sb.size, &default_limits, &count, &why);

  ck_assert_msg(rc == 0, "scan failed: %s", why);
  ck_assert_uint_le(count, max);
  for (i = 0; i < count; i++) {
    msgpack_unpacked_init(&ups[i]);
    ck_assert_int_eq(msgpack_unpack_next(&ups[i], sb.data, sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    rc = ctr_msg_decode(&ups[i].data, &msgs[i], &why);
    ck_assert_msg(rc == 0, "decode of message %zu failed: %s", i, why);
  }
  ck_assert_uint_eq(off, sb.size);
  return count;
}

static void free_all(msgpack_unpacked *ups, size_t n) {
  for (size_t i = 0; i < n; i++)
    msgpack_unpacked_destroy(&ups[i]);
}

/* Scans and decodes the single message in sb; returns the decode result. */
static int decode_one(msgpack_unpacked *up, ctr_msg_t *m, const char **why) {
  size_t count = 0, off = 0;
  int rc = ctr_proto_scan(sb.data, sb.size, &default_limits, &count, why);

  ck_assert_msg(rc == 0, "scan failed: %s", *why);
  ck_assert_uint_eq(count, 1);
  ck_assert_int_eq(msgpack_unpack_next(up, sb.data, sb.size, &off),
                   MSGPACK_UNPACK_SUCCESS);
  return ctr_msg_decode(&up->data, m, why);
}

static void pack_s(const char *s) {
  msgpack_pack_str_with_body(&pk, s, strlen(s));
}

/* ---- round trips -------------------------------------------------------- */

START_TEST(test_roundtrip_hello) {
  const char *argv[] = {"prog.rb", "--flag", "x y"};
  ctr_hello_t h = {
      .version = CTR_PROTO_VERSION,
      .role = {"record", 6},
      .lang = {"ruby", 4},
      .lang_version = {"3.1.2", 5},
      .shim_version = {"0.1.0", 5},
      .pid = 1234,
      .ppid = 1,
      .program = {"/tmp/prog.rb", 12},
      .cwd = {"/tmp", 4},
      .realtime_ns = 1700000000000000000LL,
      .mono_ns = 42,
  };
  msgpack_unpacked up;
  ctr_msg_t m;
  const char *why = NULL;

  ctr_pack_hello(&pk, &h, 3, argv);
  msgpack_unpacked_init(&up);
  ck_assert_int_eq(decode_one(&up, &m, &why), 0);
  ck_assert_int_eq(m.tag, CTR_MSG_HELLO);
  ck_assert_uint_eq(m.u.hello.version, CTR_PROTO_VERSION);
  ck_assert(str_eq(m.u.hello.role, "record"));
  ck_assert(str_eq(m.u.hello.lang, "ruby"));
  ck_assert(str_eq(m.u.hello.lang_version, "3.1.2"));
  ck_assert(str_eq(m.u.hello.shim_version, "0.1.0"));
  ck_assert_int_eq(m.u.hello.pid, 1234);
  ck_assert_int_eq(m.u.hello.ppid, 1);
  ck_assert(str_eq(m.u.hello.program, "/tmp/prog.rb"));
  ck_assert(str_eq(m.u.hello.cwd, "/tmp"));
  ck_assert_int_eq(m.u.hello.realtime_ns, 1700000000000000000LL);
  ck_assert_int_eq(m.u.hello.mono_ns, 42);
  ck_assert_ptr_nonnull(m.u.hello.args);
  ck_assert_uint_eq(m.u.hello.args->via.array.size, 3);
  ctr_str_t a;
  ck_assert(ctr_obj_str(&m.u.hello.args->via.array.ptr[2], &a));
  ck_assert(str_eq(a, "x y"));

  /* Repacking a decoded HELLO carries its args object across. */
  msgpack_sbuffer_clear(&sb);
  ctr_pack_hello(&pk, &m.u.hello, -1, NULL);
  msgpack_unpacked up2;
  ctr_msg_t m2;
  msgpack_unpacked_init(&up2);
  ck_assert_int_eq(decode_one(&up2, &m2, &why), 0);
  ck_assert_uint_eq(m2.u.hello.args->via.array.size, 3);
  ck_assert(ctr_obj_str(&m2.u.hello.args->via.array.ptr[1], &a));
  ck_assert(str_eq(a, "--flag"));
  msgpack_unpacked_destroy(&up2);
  msgpack_unpacked_destroy(&up);
}
END_TEST

START_TEST(test_roundtrip_hello_minimal) {
  ctr_hello_t h = {.version = 1, .role = {"control", 7}, .pid = 9,
                   .program = {"ctrecctl", 8}};
  msgpack_unpacked up;
  ctr_msg_t m;
  const char *why = NULL;

  ctr_pack_hello(&pk, &h, 0, NULL);
  msgpack_unpacked_init(&up);
  ck_assert_int_eq(decode_one(&up, &m, &why), 0);
  ck_assert_uint_eq(m.u.hello.lang.len, 0);
  ck_assert_uint_eq(m.u.hello.cwd.len, 0);
  ck_assert_ptr_nonnull(m.u.hello.args);
  ck_assert_uint_eq(m.u.hello.args->via.array.size, 0);
  msgpack_unpacked_destroy(&up);
}
END_TEST

START_TEST(test_roundtrip_welcome) {
  ctr_welcome_t w = {.session = 77, .recording = true, .flush_ms = 100,
                     .max_depth = 3, .max_length = 32, .max_string = 1000};
  ctr_msg_t m;

  ctr_pack_welcome(&pk, &w);
  w.recording = false;
  w.session = UINT64_MAX;
  w.pushdown = true;
  w.program_control = true;
  ctr_pack_welcome(&pk, &w);

  msgpack_unpacked ups[2];
  ctr_msg_t msgs[2];
  ck_assert_uint_eq(decode_all(ups, msgs, 2), 2);
  m = msgs[0];
  ck_assert_int_eq(m.tag, CTR_MSG_WELCOME);
  ck_assert_uint_eq(m.u.welcome.session, 77);
  ck_assert(m.u.welcome.recording);
  ck_assert_uint_eq(m.u.welcome.flush_ms, 100);
  ck_assert_uint_eq(m.u.welcome.max_depth, 3);
  ck_assert_uint_eq(m.u.welcome.max_length, 32);
  ck_assert_uint_eq(m.u.welcome.max_string, 1000);
  ck_assert(!m.u.welcome.pushdown);
  ck_assert(!m.u.welcome.program_control);
  ck_assert(msgs[1].u.welcome.program_control);
  ck_assert(!msgs[1].u.welcome.recording);
  ck_assert_uint_eq(msgs[1].u.welcome.session, UINT64_MAX);
  ck_assert(msgs[1].u.welcome.pushdown);
  free_all(ups, 2);
}
END_TEST

/* Push-down and interval messages: WELCOME's values and rules, FILTER,
 * STACK and the control verbs. */
START_TEST(test_roundtrip_control_and_pushdown) {
  const ctr_wire_rule_t rules[2] = {{"/usr/lib/**", NULL, NULL, 1},
                                    {NULL, "Net::HTTP", "re:.*#get", 2}};
  ctr_welcome_t w = {.session = 5, .recording = true, .values = CTR_WV_ARGS,
                     .rules = rules, .nrules = 2};
  const uint64_t ids[2] = {3, 9};
  msgpack_unpacked ups[10];
  ctr_msg_t msgs[10];
  ctr_wire_rule_t r;
  char buf[256];

  ctr_pack_welcome(&pk, &w);
  ctr_pack_filter(&pk, rules, 2, CTR_WV_NONE);
  ctr_pack_stack_begin(&pk, 7, 2);
  ctr_pack_frame_begin(&pk, 0, 12, 1);
  ctr_pack_pair_begin(&pk, 4);
  ctr_pack_v_int(&pk, 1, 42);
  ctr_pack_frame_begin(&pk, 3, 30, 0);
  ctr_pack_select(&pk, CTR_MSG_START, false, ids, 2, 0);
  ctr_pack_select(&pk, CTR_MSG_STOP, true, NULL, 0, 1234);
  ctr_pack_simple(&pk, CTR_MSG_RELOAD);
  ctr_pack_done(&pk, 2, "started 2 session(s)");
  ctr_pack_record(&pk, false);
  ctr_pack_record(&pk, true);
  ctr_pack_flush(&pk, CTR_MSG_RECORDED, 2);
  ck_assert_uint_eq(decode_all(ups, msgs, 10), 10);

  ck_assert_int_eq(msgs[0].u.welcome.values, CTR_WV_ARGS);
  ck_assert_ptr_nonnull(msgs[0].u.welcome.filter);
  ck_assert_uint_eq(msgs[0].u.welcome.filter->via.array.size, 2);
  ck_assert_int_eq(msgs[1].tag, CTR_MSG_FILTER);
  ck_assert_int_eq(msgs[1].u.filter.values, CTR_WV_NONE);
  ck_assert(ctr_wire_rule_read(&msgs[1].u.filter.rules->via.array.ptr[0], &r,
                               buf, sizeof(buf)));
  ck_assert_str_eq(r.file, "/usr/lib/**");
  ck_assert_ptr_null(r.module);
  ck_assert_int_eq(r.action, 1);
  ck_assert(ctr_wire_rule_read(&msgs[1].u.filter.rules->via.array.ptr[1], &r,
                               buf, sizeof(buf)));
  ck_assert_str_eq(r.module, "Net::HTTP");
  ck_assert_str_eq(r.function, "re:.*#get");
  ck_assert_int_eq(r.action, 2);
  /* Too small a buffer, or a rule without selectors, is refused. */
  ck_assert(!ctr_wire_rule_read(&msgs[1].u.filter.rules->via.array.ptr[1], &r,
                                buf, 8));
  ck_assert_int_eq(msgs[2].tag, CTR_MSG_STACK);
  ck_assert_uint_eq(msgs[2].u.stack.thread, 7);
  ck_assert_uint_eq(msgs[2].u.stack.frames->via.array.size, 2);
  ck_assert_int_eq(msgs[3].tag, CTR_MSG_START);
  ck_assert_int_eq(msgs[4].tag, CTR_MSG_STOP);
  ck_assert_uint_eq(msgs[4].u.select.map->via.map.size, 3);
  ck_assert_int_eq(msgs[5].tag, CTR_MSG_RELOAD);
  ck_assert_int_eq(msgs[6].tag, CTR_MSG_DONE);
  ck_assert_int_eq(msgs[6].u.done.count, 2);
  ck_assert(str_eq(msgs[6].u.done.text, "started 2 session(s)"));
  ck_assert_int_eq(msgs[7].tag, CTR_MSG_RECORD);
  ck_assert(!msgs[7].u.record.on);
  ck_assert(msgs[8].u.record.on);
  ck_assert_int_eq(msgs[9].tag, CTR_MSG_RECORDED);
  ck_assert_uint_eq(msgs[9].u.flush.token, 2);
  free_all(ups, 10);
}
END_TEST

/* Every other message, packed as one batch the way a shim sends it. */
START_TEST(test_roundtrip_batch) {
  static const char src[] = "puts 1\n\0\xff";
  static const unsigned char mag[] = {0x01, 0x00, 0x00, 0x00, 0x00,
                                      0x00, 0x00, 0x00, 0x00};
  msgpack_unpacked ups[32];
  ctr_msg_t msgs[32];
  ctr_str_t s;
  size_t n;

  ctr_pack_error(&pk, CTR_EVERSION, "version 2 not supported");
  ctr_pack_error(&pk, CTR_EPATH, NULL);
  ctr_pack_bye(&pk, -9);
  ctr_pack_path(&pk, 0, "/tmp/a.rb", 9);
  ctr_pack_func(&pk, 0, 0, 12, "Foo#bar", 7);
  ctr_pack_type(&pk, 3, CTR_TK_STRING, "String", 6);
  ctr_pack_varname(&pk, 5, "x", 1);
  ctr_pack_source(&pk, 0, src, sizeof(src) - 1);
  ctr_pack_step(&pk, 0, 13);
  ctr_pack_call_begin(&pk, 0, 2);
  ctr_pack_pair_begin(&pk, 5);
  ctr_pack_v_int(&pk, 1, -42);
  ctr_pack_pair_begin(&pk, 6);
  ctr_pack_v_string(&pk, 3, "h\0i", 3);
  ctr_pack_return_begin(&pk);
  ctr_pack_v_bigint(&pk, 4, true, mag, sizeof(mag));
  ctr_pack_vars_begin(&pk, 8);
  ctr_pack_pair_begin(&pk, 0);
  ctr_pack_v_none(&pk, 0);
  ctr_pack_pair_begin(&pk, 1);
  ctr_pack_v_bool(&pk, 2, true);
  ctr_pack_pair_begin(&pk, 2);
  ctr_pack_v_float(&pk, 5, 2.5);
  ctr_pack_pair_begin(&pk, 3);
  ctr_pack_v_seq_begin(&pk, 6, 2);
  ctr_pack_v_int(&pk, 1, 1);
  ctr_pack_v_int(&pk, 1, 2);
  ctr_pack_pair_begin(&pk, 4);
  ctr_pack_v_tuple_begin(&pk, 7, 1);
  ctr_pack_v_none(&pk, 0);
  ctr_pack_pair_begin(&pk, 5);
  ctr_pack_v_struct_begin(&pk, 8, 1);
  ctr_pack_pair_begin(&pk, 0);
  ctr_pack_v_int(&pk, 1, 7);
  ctr_pack_pair_begin(&pk, 6);
  ctr_pack_v_raw(&pk, 9, "#<Obj>", 6);
  ctr_pack_pair_begin(&pk, 7);
  ctr_pack_v_error(&pk, 10, "boom", 4);
  ctr_pack_event(&pk, CTR_EV_WRITE, "out\n", 4);
  ctr_pack_raise(&pk, "RuntimeError", 12, "bad", 3);
  ctr_pack_thread(&pk, UINT64_MAX);
  ctr_pack_time(&pk, 123456789);
  ctr_pack_mark(&pk, "here", 4);
  ctr_pack_lost(&pk, 10, "queue full");
  ctr_pack_simple(&pk, CTR_MSG_PAUSE);
  ctr_pack_simple(&pk, CTR_MSG_RESUME);
  ctr_pack_simple(&pk, CTR_MSG_STATUS);
  ctr_pack_flush(&pk, CTR_MSG_FLUSH, 5);
  ctr_pack_flush(&pk, CTR_MSG_FLUSHED, 5);
  /* STATUS_REPLY: the daemon builds the maps. */
  ctr_pack_status_reply(&pk, 1, false);
  msgpack_pack_map(&pk, 1);
  ctr_pack_kv_u64(&pk, "id", 1);

  n = decode_all(ups, msgs, 32);
  ck_assert_uint_eq(n, 24);

  ck_assert_int_eq(msgs[0].tag, CTR_MSG_ERROR);
  ck_assert_int_eq(msgs[0].u.error.code, CTR_EVERSION);
  ck_assert(str_eq(msgs[0].u.error.text, "version 2 not supported"));
  ck_assert(str_eq(msgs[1].u.error.text, ctr_strerror(CTR_EPATH)));
  ck_assert_int_eq(msgs[2].tag, CTR_MSG_BYE);
  ck_assert_int_eq(msgs[2].u.bye.status, -9);
  ck_assert_int_eq(msgs[3].tag, CTR_MSG_PATH);
  ck_assert_uint_eq(msgs[3].u.intern.id, 0);
  ck_assert(str_eq(msgs[3].u.intern.text, "/tmp/a.rb"));
  ck_assert_int_eq(msgs[4].tag, CTR_MSG_FUNC);
  ck_assert_uint_eq(msgs[4].u.func.path_id, 0);
  ck_assert_int_eq(msgs[4].u.func.line, 12);
  ck_assert(str_eq(msgs[4].u.func.name, "Foo#bar"));
  ck_assert_int_eq(msgs[5].tag, CTR_MSG_TYPE);
  ck_assert_uint_eq(msgs[5].u.type.id, 3);
  ck_assert_int_eq(msgs[5].u.type.kind, CTR_TK_STRING);
  ck_assert(str_eq(msgs[5].u.type.name, "String"));
  ck_assert_int_eq(msgs[6].tag, CTR_MSG_VARNAME);
  ck_assert_uint_eq(msgs[6].u.intern.id, 5);
  ck_assert(str_eq(msgs[6].u.intern.text, "x"));
  ck_assert_int_eq(msgs[7].tag, CTR_MSG_SOURCE);
  ck_assert_uint_eq(msgs[7].u.source.text.len, sizeof(src) - 1);
  ck_assert_mem_eq(msgs[7].u.source.text.ptr, src, sizeof(src) - 1);
  ck_assert_int_eq(ups[7].data.via.array.ptr[2].type, MSGPACK_OBJECT_BIN);
  ck_assert_int_eq(msgs[8].tag, CTR_MSG_STEP);
  ck_assert_int_eq(msgs[8].u.step.line, 13);

  ck_assert_int_eq(msgs[9].tag, CTR_MSG_CALL);
  {
    const msgpack_object *args = msgs[9].u.call.args;
    const msgpack_object *v;
    uint32_t id;
    int64_t i;
    ck_assert_uint_eq(args->via.array.size, 2);
    ck_assert(ctr_obj_u32(&args->via.array.ptr[0].via.array.ptr[0], &id));
    ck_assert_uint_eq(id, 5);
    v = &args->via.array.ptr[0].via.array.ptr[1];
    ck_assert_uint_eq(v->via.array.size, 3);
    ck_assert(ctr_obj_i64(&v->via.array.ptr[0], &i));
    ck_assert_int_eq(i, CTR_V_INT);
    ck_assert(ctr_obj_i64(&v->via.array.ptr[2], &i));
    ck_assert_int_eq(i, -42);
    v = &args->via.array.ptr[1].via.array.ptr[1];
    ck_assert(ctr_obj_str(&v->via.array.ptr[2], &s));
    ck_assert_uint_eq(s.len, 3);
    ck_assert_mem_eq(s.ptr, "h\0i", 3);
  }
  ck_assert_int_eq(msgs[10].tag, CTR_MSG_RETURN);
  {
    const msgpack_object *v = msgs[10].u.ret.value;
    ck_assert_uint_eq(v->via.array.size, 4);
    ck_assert_int_eq(v->via.array.ptr[2].type, MSGPACK_OBJECT_BOOLEAN);
    ck_assert(v->via.array.ptr[2].via.boolean);
    ck_assert_int_eq(v->via.array.ptr[3].type, MSGPACK_OBJECT_BIN);
    ck_assert_uint_eq(v->via.array.ptr[3].via.bin.size, sizeof(mag));
  }
  ck_assert_int_eq(msgs[11].tag, CTR_MSG_VARS);
  {
    const msgpack_object *vars = msgs[11].u.vars.vars;
    static const int kinds[8] = {CTR_V_NONE, CTR_V_BOOL,  CTR_V_FLOAT,
                                 CTR_V_SEQ,  CTR_V_TUPLE, CTR_V_STRUCT,
                                 CTR_V_RAW,  CTR_V_ERROR};
    ck_assert_uint_eq(vars->via.array.size, 8);
    for (int k = 0; k < 8; k++) {
      const msgpack_object *v = &vars->via.array.ptr[k].via.array.ptr[1];
      int64_t vk;
      ck_assert(ctr_obj_i64(&v->via.array.ptr[0], &vk));
      ck_assert_int_eq(vk, kinds[k]);
    }
    const msgpack_object *f = &vars->via.array.ptr[2].via.array.ptr[1];
    ck_assert_double_eq(f->via.array.ptr[2].via.f64, 2.5);
    const msgpack_object *seq = &vars->via.array.ptr[3].via.array.ptr[1];
    ck_assert_uint_eq(seq->via.array.ptr[2].via.array.size, 2);
  }
  ck_assert_int_eq(msgs[12].tag, CTR_MSG_EVENT);
  ck_assert_int_eq(msgs[12].u.event.kind, CTR_EV_WRITE);
  ck_assert(str_eq(msgs[12].u.event.text, "out\n"));
  ck_assert_int_eq(msgs[13].tag, CTR_MSG_RAISE);
  ck_assert(str_eq(msgs[13].u.raise.cls, "RuntimeError"));
  ck_assert(str_eq(msgs[13].u.raise.text, "bad"));
  ck_assert_int_eq(msgs[14].tag, CTR_MSG_THREAD);
  ck_assert(msgs[14].u.thread.id == UINT64_MAX);
  ck_assert_int_eq(msgs[15].tag, CTR_MSG_TIME);
  ck_assert_uint_eq(msgs[15].u.time.ns, 123456789);
  ck_assert_int_eq(msgs[16].tag, CTR_MSG_MARK);
  ck_assert(str_eq(msgs[16].u.mark.text, "here"));
  ck_assert_int_eq(msgs[17].tag, CTR_MSG_LOST);
  ck_assert_uint_eq(msgs[17].u.lost.count, 10);
  ck_assert(str_eq(msgs[17].u.lost.cause, "queue full"));
  ck_assert_int_eq(msgs[18].tag, CTR_MSG_PAUSE);
  ck_assert_int_eq(msgs[19].tag, CTR_MSG_RESUME);
  ck_assert_int_eq(msgs[20].tag, CTR_MSG_STATUS);
  ck_assert_int_eq(msgs[21].tag, CTR_MSG_FLUSH);
  ck_assert_uint_eq(msgs[21].u.flush.token, 5);
  ck_assert_int_eq(msgs[22].tag, CTR_MSG_FLUSHED);
  ck_assert_uint_eq(msgs[22].u.flush.token, 5);
  ck_assert_int_eq(msgs[23].tag, CTR_MSG_STATUS_REPLY);
  ck_assert_uint_eq(msgs[23].u.status.sessions->via.array.size, 1);
  free_all(ups, n);
}
END_TEST

/* ---- frame reader ------------------------------------------------------- */

/* Collects delivered frames, concatenated, with their lengths. */
typedef struct frames_s {
  char data[256];
  size_t used;
  uint32_t lens[16];
  int n;
  int stop_after; /* return 1 from the callback after this many frames */
} frames_t;

static int on_frame(void *arg, const char *payload, uint32_t len) {
  frames_t *f = arg;
  ck_assert_int_lt(f->n, 16);
  ck_assert_uint_le(f->used + len, sizeof(f->data));
  if (len > 0)
    memcpy(f->data + f->used, payload, len);
  f->used += len;
  f->lens[f->n++] = len;
  return f->stop_after > 0 && f->n >= f->stop_after ? 1 : 0;
}

static int on_count(void *arg, const char *payload, uint32_t len) {
  (void)payload;
  ck_assert_uint_eq(len, 3u << 19);
  ++*(int *)arg;
  return 0;
}

/* Three frames: "hello", an empty one and 40 bytes. */
static size_t build_stream(char *out) {
  size_t n = 0;
  ctr_frame_put_header(out + n, 5);
  n += CTR_FRAME_HEADER;
  memcpy(out + n, "hello", 5);
  n += 5;
  ctr_frame_put_header(out + n, 0);
  n += CTR_FRAME_HEADER;
  ctr_frame_put_header(out + n, 40);
  n += CTR_FRAME_HEADER;
  for (int i = 0; i < 40; i++)
    out[n++] = (char)('a' + i % 26);
  return n;
}

static void check_frames(const frames_t *f, const char *stream) {
  ck_assert_int_eq(f->n, 3);
  ck_assert_uint_eq(f->lens[0], 5);
  ck_assert_uint_eq(f->lens[1], 0);
  ck_assert_uint_eq(f->lens[2], 40);
  ck_assert_uint_eq(f->used, 45);
  ck_assert_mem_eq(f->data, "hello", 5);
  ck_assert_mem_eq(f->data + 5, stream + 17, 40);
}

START_TEST(test_frame_header) {
  char h[CTR_FRAME_HEADER];
  ctr_frame_put_header(h, 0x01020304);
  ck_assert_mem_eq(h, "\x04\x03\x02\x01", 4);
}
END_TEST

START_TEST(test_frame_coalesced) {
  char stream[128];
  size_t n = build_stream(stream);
  frames_t f = {0};
  ctr_frame_reader_t fr;

  ctr_frame_reader_init(&fr, 1024);
  ck_assert(ctr_frame_reader_idle(&fr));
  ck_assert_int_eq(ctr_frame_reader_feed(&fr, stream, n, on_frame, &f), 0);
  check_frames(&f, stream);
  ck_assert(ctr_frame_reader_idle(&fr));
  /* Whole frames in one feed are delivered without copying. */
  ck_assert_ptr_null(fr.buf);
  ctr_frame_reader_free(&fr);
}
END_TEST

START_TEST(test_frame_split) {
  char stream[128];
  size_t n = build_stream(stream);

  /* Every chunk size, so that every byte boundary falls inside a header,
   * inside a payload and between frames at least once. */
  for (size_t chunk = 1; chunk <= n; chunk++) {
    frames_t f = {0};
    ctr_frame_reader_t fr;
    ctr_frame_reader_init(&fr, 1024);
    for (size_t off = 0; off < n; off += chunk) {
      size_t len = n - off < chunk ? n - off : chunk;
      ck_assert_int_eq(ctr_frame_reader_feed(&fr, stream + off, len, on_frame,
                                             &f),
                       0);
    }
    check_frames(&f, stream);
    ck_assert(ctr_frame_reader_idle(&fr));
    ck_assert_uint_le(fr.cap, 40);
    ctr_frame_reader_free(&fr);
  }
}
END_TEST

START_TEST(test_frame_partial_not_idle) {
  char stream[128];
  size_t n = build_stream(stream);
  frames_t f = {0};
  ctr_frame_reader_t fr;

  ctr_frame_reader_init(&fr, 1024);
  ck_assert_int_eq(ctr_frame_reader_feed(&fr, stream, 2, on_frame, &f), 0);
  ck_assert(!ctr_frame_reader_idle(&fr));
  ck_assert_int_eq(ctr_frame_reader_feed(&fr, stream + 2, n - 3, on_frame, &f),
                   0);
  ck_assert_int_eq(f.n, 2);
  ck_assert(!ctr_frame_reader_idle(&fr));
  ctr_frame_reader_free(&fr);
}
END_TEST

START_TEST(test_frame_oversized) {
  char h[CTR_FRAME_HEADER];
  frames_t f = {0};
  ctr_frame_reader_t fr;

  ctr_frame_reader_init(&fr, 1024);
  ctr_frame_put_header(h, 1025);
  /* Split header: the length is only known on the last byte. */
  ck_assert_int_eq(ctr_frame_reader_feed(&fr, h, 3, on_frame, &f), 0);
  ck_assert_int_eq(ctr_frame_reader_feed(&fr, h + 3, 1, on_frame, &f),
                   CTR_EFRAME);
  ck_assert_ptr_null(fr.buf);
  ck_assert_uint_eq(fr.cap, 0);
  /* The stream stays broken: no resynchronisation. */
  ck_assert_int_eq(ctr_frame_reader_feed(&fr, "abc", 3, on_frame, &f),
                   CTR_EFRAME);
  ck_assert_ptr_null(fr.buf);
  ck_assert_int_eq(f.n, 0);
  ctr_frame_reader_free(&fr);

  ctr_frame_reader_init(&fr, 1024);
  ctr_frame_put_header(h, UINT32_MAX);
  ck_assert_int_eq(ctr_frame_reader_feed(&fr, h, 4, on_frame, &f), CTR_EFRAME);
  ck_assert_ptr_null(fr.buf);
  ctr_frame_reader_free(&fr);
}
END_TEST

START_TEST(test_frame_max_exact) {
  char stream[4 + 16];
  frames_t f = {0};
  ctr_frame_reader_t fr;

  ctr_frame_put_header(stream, 16);
  memset(stream + 4, 'z', 16);
  ctr_frame_reader_init(&fr, 16);
  ck_assert_int_eq(ctr_frame_reader_feed(&fr, stream, 10, on_frame, &f), 0);
  ck_assert_uint_eq(fr.cap, 16);
  ck_assert_int_eq(ctr_frame_reader_feed(&fr, stream + 10, 10, on_frame, &f),
                   0);
  ck_assert_int_eq(f.n, 1);
  ck_assert_uint_eq(f.lens[0], 16);
  ctr_frame_reader_free(&fr);
}
END_TEST

/* A large reassembled frame does not pin its buffer afterwards. */
START_TEST(test_frame_large_released) {
  const uint32_t size = 3u << 19;
  char *stream = calloc(1, CTR_FRAME_HEADER + size);
  ctr_frame_reader_t fr;
  int calls = 0;

  ck_assert_ptr_nonnull(stream);
  ctr_frame_put_header(stream, size);
  ctr_frame_reader_init(&fr, 2u << 20);
  ck_assert_int_eq(ctr_frame_reader_feed(&fr, stream, 1000, on_count, &calls),
                   0);
  /* The buffer follows what arrived, not what the header announced. */
  ck_assert_uint_eq(fr.cap, 64u << 10);
  ck_assert_int_eq(ctr_frame_reader_feed(&fr, stream + 1000, 100000, on_count, &calls),
                   0);
  ck_assert_uint_eq(fr.cap, 128u << 10);
  ck_assert_int_eq(ctr_frame_reader_feed(&fr, stream + 101000, 400000, on_count, &calls),
                   0);
  ck_assert_uint_eq(fr.cap, 501000 - CTR_FRAME_HEADER);
  ck_assert_int_eq(ctr_frame_reader_feed(&fr, stream + 501000,
                                         CTR_FRAME_HEADER + size - 501000,
                                         on_count, &calls),
                   0);
  ck_assert_int_eq(calls, 1);
  ck_assert_ptr_null(fr.buf);
  ck_assert(ctr_frame_reader_idle(&fr));
  ctr_frame_reader_free(&fr);
  free(stream);
}
END_TEST

START_TEST(test_frame_callback_stops) {
  char stream[128];
  size_t n = build_stream(stream);
  frames_t f = {.stop_after = 1};
  ctr_frame_reader_t fr;

  ctr_frame_reader_init(&fr, 1024);
  ck_assert_int_eq(ctr_frame_reader_feed(&fr, stream, n, on_frame, &f), 1);
  ck_assert_int_eq(f.n, 1);
  ctr_frame_reader_free(&fr);
}
END_TEST

/* ---- scan --------------------------------------------------------------- */

static int scan(const char *b, size_t n, const ctr_limits_t *lim,
                size_t *count, const char **why) {
  *why = NULL;
  return ctr_proto_scan(b, n, lim, count, why);
}

START_TEST(test_scan_counts) {
  size_t count = 99;
  const char *why;

  ck_assert_int_eq(scan("", 0, &default_limits, &count, &why), 0);
  ck_assert_uint_eq(count, 0);
  /* 1, [], {}, "ab", [1, [2], {"k": nil}] */
  static const char b[] = "\x01\x90\x80\xa2"
                          "ab\x93\x01\x91\x02\x81\xa1k\xc0";
  ck_assert_int_eq(scan(b, sizeof(b) - 1, &default_limits, &count, &why), 0);
  ck_assert_uint_eq(count, 5);
  /* Every fixed-size scalar format, and ext. */
  static const char s[] = "\xc0\xc2\xc3\xca\0\0\0\0\xcb\0\0\0\0\0\0\0\0"
                          "\xcc\x01\xcd\0\x01\xce\0\0\0\x01\xcf\0\0\0\0\0\0\0\x01"
                          "\xd0\xff\xd1\xff\xff\xd2\xff\xff\xff\xff"
                          "\xd3\xff\xff\xff\xff\xff\xff\xff\xff\xe0"
                          "\xd4\x01\x00\xd8\x01"
                          "0123456789abcdef"
                          "\xc7\x02\x05xy\xc4\x00";
  ck_assert_int_eq(scan(s, sizeof(s) - 1, &default_limits, &count, &why), 0);
  ck_assert_uint_eq(count, 18);
}
END_TEST

START_TEST(test_scan_garbage) {
  size_t count;
  const char *why;

  ck_assert_int_eq(scan("\xc1", 1, &default_limits, &count, &why),
                   CTR_EPROTO);
  ck_assert_str_eq(why, "reserved byte 0xc1");
  ck_assert_int_eq(scan("\x92\x01\xc1", 3, &default_limits, &count, &why),
                   CTR_EPROTO);
  ck_assert_str_eq(why, "reserved byte 0xc1");
  /* Text is not msgpack: 'G' is fixint 71, 'E' ... but '\xff' at the end of
   * a str8 header that claims more than remains is truncation. */
  ck_assert_int_eq(scan("GET /\xd9\xff", 7, &default_limits, &count, &why),
                   CTR_EPROTO);
  ck_assert_int_eq(scan("\xde\xad\xbe\xef", 4, &default_limits, &count, &why),
                   CTR_EPROTO);
}
END_TEST

START_TEST(test_scan_truncated) {
  size_t count;
  const char *why;

  /* [1, 2, 3] missing its last element: caught at the header */
  ck_assert_int_eq(scan("\x93\x01\x02", 3, &default_limits, &count, &why),
                   CTR_EPROTO);
  /* [1, "abc"] with the string cut short */
  ck_assert_int_eq(scan("\x92\x01\xa3" "ab", 5, &default_limits, &count,
                        &why),
                   CTR_EPROTO);
  ck_assert_str_eq(why, "truncated object");
  /* str8 of 10 bytes with 3 present */
  ck_assert_int_eq(scan("\xd9\x0a" "abc", 5, &default_limits, &count, &why),
                   CTR_EPROTO);
  ck_assert_str_eq(why, "truncated object");
  /* uint32 with two of its four bytes */
  ck_assert_int_eq(scan("\xce\x00\x01", 3, &default_limits, &count, &why),
                   CTR_EPROTO);
  ck_assert_str_eq(why, "truncated object");
  /* map with a key and no value */
  ck_assert_int_eq(scan("\x81\xa1k", 3, &default_limits, &count, &why),
                   CTR_EPROTO);
  /* a complete object followed by a partial one */
  ck_assert_int_eq(scan("\x01\x91", 2, &default_limits, &count, &why),
                   CTR_EPROTO);
  /* array16 header cut short */
  ck_assert_int_eq(scan("\xdc\x00", 2, &default_limits, &count, &why),
                   CTR_EPROTO);
  /* fixext8 with 7 data bytes */
  ck_assert_int_eq(scan("\xd7\x01" "1234567", 9, &default_limits, &count,
                        &why),
                   CTR_EPROTO);
}
END_TEST

START_TEST(test_scan_depth) {
  char b[128];
  size_t count;
  const char *why;
  ctr_limits_t lim = default_limits;

  /* 100 nested one-element arrays around a nil. */
  memset(b, 0x91, 100);
  b[100] = (char)0xc0;
  ck_assert_int_eq(lim.max_depth, 64);
  ck_assert_int_eq(scan(b, 101, &lim, &count, &why), CTR_ELIMIT);
  ck_assert_str_eq(why, "nesting deeper than limits.max_depth");

  /* Exactly max_depth is fine; one more is not, even when empty. */
  ck_assert_int_eq(scan(b + 36, 65, &lim, &count, &why), 0);
  ck_assert_uint_eq(count, 1);
  memset(b, 0x91, 64);
  b[64] = (char)0x90;
  ck_assert_int_eq(scan(b, 65, &lim, &count, &why), CTR_ELIMIT);
  lim.max_depth = 65;
  ck_assert_int_eq(scan(b, 65, &lim, &count, &why), 0);

  /* Maps nest too. */
  lim.max_depth = 2;
  ck_assert_int_eq(scan("\x81\x01\x81\x01\x81\x01\x01", 7, &lim, &count, &why),
                   CTR_ELIMIT);
  ck_assert_int_eq(scan("\x81\x01\x81\x01\x01", 5, &lim, &count, &why), 0);

  /* Depth returns to zero between top-level objects. */
  ck_assert_int_eq(scan("\x91\x91\x01\x91\x91\x01", 6, &lim, &count, &why), 0);
  ck_assert_uint_eq(count, 2);
}
END_TEST

START_TEST(test_scan_counts_vs_bytes) {
  size_t count;
  const char *why;
  ctr_limits_t lim = default_limits;

  /* array32 announcing 4G elements: past max_elements... */
  ck_assert_int_eq(scan("\xdd\xff\xff\xff\xff", 5, &lim, &count, &why),
                   CTR_ELIMIT);
  ck_assert_str_eq(why, "array longer than limits.max_elements");
  ck_assert_int_eq(scan("\xdf\xff\xff\xff\xff", 5, &lim, &count, &why),
                   CTR_ELIMIT);
  /* ...and, with no element limit, past the bytes left. */
  lim.max_elements = UINT32_MAX;
  ck_assert_int_eq(scan("\xdd\xff\xff\xff\xff", 5, &lim, &count, &why),
                   CTR_EPROTO);
  ck_assert_str_eq(why, "array or map count larger than the bytes left");
  /* A map needs two bytes per entry: {1: 2, 3: ?} with 3 bytes left. */
  ck_assert_int_eq(scan("\x82\x01\x02\x03", 4, &lim, &count, &why),
                   CTR_EPROTO);
  ck_assert_str_eq(why, "array or map count larger than the bytes left");
  /* Elements still owed by outer arrays count as well: [[x, x, x], x] in
   * four bytes after the inner header cannot be complete. */
  ck_assert_int_eq(scan("\x92\x93\x01\x02\x03", 5, &lim, &count, &why),
                   CTR_EPROTO);
  ck_assert_str_eq(why, "array or map count larger than the bytes left");
  ck_assert_int_eq(scan("\x92\x93\x01\x02\x03\x04", 6, &lim, &count, &why), 0);

  lim.max_elements = 2;
  ck_assert_int_eq(scan("\x93\x01\x02\x03", 4, &lim, &count, &why),
                   CTR_ELIMIT);
  ck_assert_int_eq(scan("\x92\x01\x02", 3, &lim, &count, &why), 0);
}
END_TEST

START_TEST(test_scan_string_limit) {
  size_t count;
  const char *why;
  ctr_limits_t lim = default_limits;
  static char big[40];

  lim.max_string = 31;
  big[0] = (char)0xbf; /* fixstr of 31 */
  ck_assert_int_eq(scan(big, 32, &lim, &count, &why), 0);
  big[0] = (char)0xd9; /* str8 of 32 */
  big[1] = 32;
  ck_assert_int_eq(scan(big, 34, &lim, &count, &why), CTR_ELIMIT);
  ck_assert_str_eq(why, "string longer than limits.max_string");
  big[0] = (char)0xc4; /* bin8 */
  ck_assert_int_eq(scan(big, 34, &lim, &count, &why), CTR_ELIMIT);
  big[0] = (char)0xc7; /* ext8 */
  big[2] = 1;
  ck_assert_int_eq(scan(big, 35, &lim, &count, &why), CTR_ELIMIT);
  /* str32 claiming 4 GiB is a limit problem before it is truncation. */
  ck_assert_int_eq(scan("\xdb\xff\xff\xff\xff", 5, &default_limits, &count,
                        &why),
                   CTR_ELIMIT);
}
END_TEST

START_TEST(test_scan_then_unpack_packed) {
  size_t count, off = 0;
  const char *why;
  msgpack_unpacked up;

  /* Messages as the packers build them, checked with production limits. */
  ctr_pack_vars_begin(&pk, 1);
  ctr_pack_pair_begin(&pk, 0);
  ctr_pack_v_seq_begin(&pk, 1, 3);
  for (int i = 0; i < 3; i++)
    ctr_pack_v_string(&pk, 2, "abc", 3);
  ck_assert_int_eq(scan(sb.data, sb.size, &default_limits, &count, &why), 0);
  ck_assert_uint_eq(count, 1);
  msgpack_unpacked_init(&up);
  ck_assert_int_eq(msgpack_unpack_next(&up, sb.data, sb.size, &off),
                   MSGPACK_UNPACK_SUCCESS);
  ck_assert_uint_eq(off, sb.size);
  msgpack_unpacked_destroy(&up);
  /* Every strict prefix is truncated. */
  for (size_t n = 1; n < sb.size; n++)
    ck_assert_int_eq(scan(sb.data, n, &default_limits, &count, &why),
                     CTR_EPROTO);
}
END_TEST

/* ---- decode errors ------------------------------------------------------ */

static int decode_packed(const char **why) {
  msgpack_unpacked up;
  ctr_msg_t m;
  int rc;

  msgpack_unpacked_init(&up);
  rc = decode_one(&up, &m, why);
  msgpack_unpacked_destroy(&up);
  msgpack_sbuffer_clear(&sb);
  return rc;
}

/* FUNC with its module (Python), and the module that is not a string. */
START_TEST(test_func_module) {
  msgpack_unpacked up;
  ctr_msg_t m;
  const char *why;

  ctr_pack_func_in(&pk, 0, 0, 3, "Card.charge", 11, "shop.pay", 8);
  msgpack_unpacked_init(&up);
  ck_assert_int_eq(decode_one(&up, &m, &why), 0);
  ck_assert(str_eq(m.u.func.name, "Card.charge"));
  ck_assert(str_eq(m.u.func.module, "shop.pay"));
  msgpack_unpacked_destroy(&up);
  msgpack_sbuffer_clear(&sb);

  ctr_pack_func(&pk, 0, 0, 3, "Foo#bar", 7);
  msgpack_unpacked_init(&up);
  ck_assert_int_eq(decode_one(&up, &m, &why), 0);
  ck_assert_ptr_null(m.u.func.module.ptr);
  msgpack_unpacked_destroy(&up);
  msgpack_sbuffer_clear(&sb);

  msgpack_pack_array(&pk, 6);
  msgpack_pack_int(&pk, CTR_MSG_FUNC);
  msgpack_pack_int(&pk, 0);
  msgpack_pack_int(&pk, 0);
  msgpack_pack_int(&pk, 3);
  pack_s("f");
  msgpack_pack_int(&pk, 7);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  ck_assert_str_eq(why, "module is not a string");

  msgpack_pack_array(&pk, 2);
  msgpack_pack_int(&pk, CTR_MSG_RECORD);
  msgpack_pack_int(&pk, 1);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  ck_assert_str_eq(why, "RECORD switch is not a boolean");
}
END_TEST

START_TEST(test_decode_tags) {
  const char *why;

  msgpack_pack_array(&pk, 1);
  msgpack_pack_int(&pk, 99);
  ck_assert_int_eq(decode_packed(&why), CTR_ETAG);
  ck_assert_str_eq(why, "unknown message tag");

  msgpack_pack_array(&pk, 3);
  msgpack_pack_uint64(&pk, UINT64_MAX);
  msgpack_pack_int(&pk, 1);
  msgpack_pack_int(&pk, 1);
  ck_assert_int_eq(decode_packed(&why), CTR_ETAG);

  msgpack_pack_array(&pk, 1);
  msgpack_pack_int(&pk, 0);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  ck_assert_str_eq(why, "message tag is not a positive integer");

  msgpack_pack_array(&pk, 1);
  msgpack_pack_int(&pk, -20);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);

  msgpack_pack_array(&pk, 1);
  pack_s("STEP");
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);

  msgpack_pack_array(&pk, 0);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);

  msgpack_pack_int(&pk, CTR_MSG_STEP);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  ck_assert_str_eq(why, "message is not an array");

  msgpack_pack_map(&pk, 0);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
}
END_TEST

START_TEST(test_decode_arity) {
  const char *why;

  msgpack_pack_array(&pk, 2);
  msgpack_pack_int(&pk, CTR_MSG_STEP);
  msgpack_pack_int(&pk, 0);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  ck_assert_str_eq(why, "wrong number of fields for the message tag");

  msgpack_pack_array(&pk, 4);
  msgpack_pack_int(&pk, CTR_MSG_STEP);
  msgpack_pack_int(&pk, 0);
  msgpack_pack_int(&pk, 1);
  msgpack_pack_int(&pk, 2);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);

  msgpack_pack_array(&pk, 2);
  msgpack_pack_int(&pk, CTR_MSG_PAUSE);
  msgpack_pack_nil(&pk);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);

  msgpack_pack_array(&pk, 1);
  msgpack_pack_int(&pk, CTR_MSG_HELLO);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
}
END_TEST

START_TEST(test_decode_types) {
  const char *why;

  /* FILTER values other than all, args or none */
  msgpack_pack_array(&pk, 3);
  msgpack_pack_int(&pk, CTR_MSG_FILTER);
  msgpack_pack_array(&pk, 0);
  pack_s("some");
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  ck_assert_str_eq(why, "FILTER values is not all, args or none");

  /* PATH id as a string */
  msgpack_pack_array(&pk, 3);
  msgpack_pack_int(&pk, CTR_MSG_PATH);
  pack_s("0");
  pack_s("/a.rb");
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  /* PATH path as an integer */
  msgpack_pack_array(&pk, 3);
  msgpack_pack_int(&pk, CTR_MSG_PATH);
  msgpack_pack_int(&pk, 0);
  msgpack_pack_int(&pk, 0);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  /* STEP line as a float */
  msgpack_pack_array(&pk, 3);
  msgpack_pack_int(&pk, CTR_MSG_STEP);
  msgpack_pack_int(&pk, 0);
  msgpack_pack_double(&pk, 1.0);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  ck_assert_str_eq(why, "line is not an integer");
  /* CALL args as a map */
  msgpack_pack_array(&pk, 3);
  msgpack_pack_int(&pk, CTR_MSG_CALL);
  msgpack_pack_int(&pk, 0);
  msgpack_pack_map(&pk, 0);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  /* RETURN value as a scalar */
  msgpack_pack_array(&pk, 2);
  msgpack_pack_int(&pk, CTR_MSG_RETURN);
  msgpack_pack_int(&pk, 5);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  /* VARS as nil */
  msgpack_pack_array(&pk, 2);
  msgpack_pack_int(&pk, CTR_MSG_VARS);
  msgpack_pack_nil(&pk);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  /* EVENT text as an integer */
  msgpack_pack_array(&pk, 3);
  msgpack_pack_int(&pk, CTR_MSG_EVENT);
  msgpack_pack_int(&pk, 0);
  msgpack_pack_int(&pk, 0);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  /* THREAD id negative */
  msgpack_pack_array(&pk, 2);
  msgpack_pack_int(&pk, CTR_MSG_THREAD);
  msgpack_pack_int(&pk, -1);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  /* STATUS_REPLY with a non-map session */
  msgpack_pack_array(&pk, 2);
  msgpack_pack_int(&pk, CTR_MSG_STATUS_REPLY);
  msgpack_pack_array(&pk, 1);
  msgpack_pack_int(&pk, 1);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  /* EVENT text as str is as good as bin */
  msgpack_pack_array(&pk, 3);
  msgpack_pack_int(&pk, CTR_MSG_EVENT);
  msgpack_pack_int(&pk, CTR_EV_WRITE_OTHER);
  pack_s("err");
  ck_assert_int_eq(decode_packed(&why), 0);
}
END_TEST

START_TEST(test_decode_ids) {
  const char *why;

  ctr_pack_path(&pk, UINT32_MAX, "/a", 2);
  ck_assert_int_eq(decode_packed(&why), 0);

  msgpack_pack_array(&pk, 3);
  msgpack_pack_int(&pk, CTR_MSG_PATH);
  msgpack_pack_int(&pk, -1);
  pack_s("/a");
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  ck_assert_str_eq(why, "id is not an unsigned 32-bit integer");

  msgpack_pack_array(&pk, 3);
  msgpack_pack_int(&pk, CTR_MSG_VARNAME);
  msgpack_pack_uint64(&pk, (uint64_t)UINT32_MAX + 1);
  pack_s("x");
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);

  msgpack_pack_array(&pk, 5);
  msgpack_pack_int(&pk, CTR_MSG_FUNC);
  msgpack_pack_int(&pk, 0);
  msgpack_pack_int(&pk, -3);
  msgpack_pack_int(&pk, 1);
  pack_s("f");
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);

  msgpack_pack_array(&pk, 3);
  msgpack_pack_int(&pk, CTR_MSG_STEP);
  msgpack_pack_int(&pk, -1);
  msgpack_pack_int(&pk, 1);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);

  /* A line CodeTracer cannot place is refused, whoever consumes it. */
  ctr_pack_step(&pk, 0, -1);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  ck_assert_str_eq(why, "line out of range");
  ctr_pack_step(&pk, 0, (int64_t)INT32_MAX + 1);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  ctr_pack_step(&pk, 0, 0);
  ck_assert_int_eq(decode_packed(&why), 0);
  msgpack_pack_array(&pk, 3);
  msgpack_pack_int(&pk, CTR_MSG_STEP);
  msgpack_pack_int(&pk, 0);
  msgpack_pack_uint64(&pk, UINT64_MAX);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
}
END_TEST

START_TEST(test_decode_kinds) {
  const char *why;

  ctr_pack_event(&pk, CTR_EV_MAX, "x", 1);
  ck_assert_int_eq(decode_packed(&why), 0);
  ctr_pack_event(&pk, CTR_EV_MAX + 1, "x", 1);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  ck_assert_str_eq(why, "event kind out of range");
  ctr_pack_event(&pk, -1, "x", 1);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);

  ctr_pack_type(&pk, 0, CTR_TK_MAX, "T", 1);
  ck_assert_int_eq(decode_packed(&why), 0);
  ctr_pack_type(&pk, 0, CTR_TK_MAX + 1, "T", 1);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  ck_assert_str_eq(why, "type kind out of range");
  ctr_pack_type(&pk, 0, -1, "T", 1);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
}
END_TEST

START_TEST(test_decode_hello_map) {
  const char *why;
  msgpack_unpacked up;
  ctr_msg_t m;

  /* Unknown keys are ignored, optional keys may be missing. */
  msgpack_pack_array(&pk, 2);
  msgpack_pack_int(&pk, CTR_MSG_HELLO);
  msgpack_pack_map(&pk, 5);
  pack_s("future");
  msgpack_pack_map(&pk, 0);
  pack_s("version");
  msgpack_pack_int(&pk, 1);
  pack_s("role");
  pack_s("follow");
  pack_s("pid");
  msgpack_pack_int(&pk, 3);
  pack_s("program");
  msgpack_pack_bin_with_body(&pk, "p", 1);
  msgpack_unpacked_init(&up);
  ck_assert_int_eq(decode_one(&up, &m, &why), 0);
  ck_assert(str_eq(m.u.hello.role, "follow"));
  ck_assert(str_eq(m.u.hello.program, "p"));
  ck_assert_ptr_null(m.u.hello.lang.ptr);
  ck_assert_uint_eq(m.u.hello.lang.len, 0);
  ck_assert_ptr_null(m.u.hello.args);
  ck_assert_int_eq(m.u.hello.ppid, 0);
  msgpack_unpacked_destroy(&up);
  msgpack_sbuffer_clear(&sb);

  /* Missing pid */
  msgpack_pack_array(&pk, 2);
  msgpack_pack_int(&pk, CTR_MSG_HELLO);
  msgpack_pack_map(&pk, 3);
  pack_s("version");
  msgpack_pack_int(&pk, 1);
  pack_s("role");
  pack_s("record");
  pack_s("program");
  pack_s("p");
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  ck_assert_str_eq(why, "HELLO lacks version, role, pid or program");

  /* Wrong type for a known key */
  msgpack_pack_array(&pk, 2);
  msgpack_pack_int(&pk, CTR_MSG_HELLO);
  msgpack_pack_map(&pk, 4);
  pack_s("version");
  pack_s("1");
  pack_s("role");
  pack_s("record");
  pack_s("pid");
  msgpack_pack_int(&pk, 3);
  pack_s("program");
  pack_s("p");
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  ck_assert_str_eq(why, "HELLO field has the wrong type");

  /* args must be an array of strings */
  msgpack_pack_array(&pk, 2);
  msgpack_pack_int(&pk, CTR_MSG_HELLO);
  msgpack_pack_map(&pk, 5);
  pack_s("version");
  msgpack_pack_int(&pk, 1);
  pack_s("role");
  pack_s("record");
  pack_s("pid");
  msgpack_pack_int(&pk, 3);
  pack_s("program");
  pack_s("p");
  pack_s("args");
  msgpack_pack_array(&pk, 1);
  msgpack_pack_int(&pk, 1);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);

  /* Duplicate key */
  msgpack_pack_array(&pk, 2);
  msgpack_pack_int(&pk, CTR_MSG_HELLO);
  msgpack_pack_map(&pk, 5);
  pack_s("version");
  msgpack_pack_int(&pk, 1);
  pack_s("role");
  pack_s("record");
  pack_s("pid");
  msgpack_pack_int(&pk, 3);
  pack_s("program");
  pack_s("p");
  pack_s("pid");
  msgpack_pack_int(&pk, 4);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  ck_assert_str_eq(why, "HELLO has a duplicate key");

  /* Non-string key */
  msgpack_pack_array(&pk, 2);
  msgpack_pack_int(&pk, CTR_MSG_HELLO);
  msgpack_pack_map(&pk, 1);
  msgpack_pack_int(&pk, 1);
  msgpack_pack_int(&pk, 1);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);

  /* Body not a map */
  msgpack_pack_array(&pk, 2);
  msgpack_pack_int(&pk, CTR_MSG_HELLO);
  msgpack_pack_array(&pk, 0);
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
}
END_TEST

START_TEST(test_decode_welcome_map) {
  const char *why;

  msgpack_pack_array(&pk, 2);
  msgpack_pack_int(&pk, CTR_MSG_WELCOME);
  msgpack_pack_map(&pk, 2);
  pack_s("session");
  msgpack_pack_int(&pk, 1);
  pack_s("state");
  pack_s("running");
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);

  msgpack_pack_array(&pk, 2);
  msgpack_pack_int(&pk, CTR_MSG_WELCOME);
  msgpack_pack_map(&pk, 1);
  pack_s("state");
  pack_s("paused");
  ck_assert_int_eq(decode_packed(&why), CTR_EPROTO);
  ck_assert_str_eq(why, "WELCOME lacks session or state");
}
END_TEST

/* ---- helpers and names -------------------------------------------------- */

START_TEST(test_obj_helpers) {
  msgpack_object o;
  uint32_t u;
  int64_t i;
  ctr_str_t s;

  o.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
  o.via.u64 = (uint64_t)INT64_MAX + 1;
  ck_assert(!ctr_obj_i64(&o, &i));
  ck_assert(!ctr_obj_u32(&o, &u));
  o.via.u64 = UINT32_MAX;
  ck_assert(ctr_obj_u32(&o, &u));
  ck_assert_uint_eq(u, UINT32_MAX);
  o.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
  o.via.i64 = INT64_MIN;
  ck_assert(ctr_obj_i64(&o, &i));
  ck_assert(i == INT64_MIN);
  ck_assert(!ctr_obj_u32(&o, &u));
  ck_assert(!ctr_obj_str(&o, &s));
  o.type = MSGPACK_OBJECT_NIL;
  ck_assert(!ctr_obj_i64(&o, &i));
}
END_TEST

/* One normalisation for both shims, one check for the daemon: whatever
 * the first makes, the second accepts. */
/* Output of any length goes in pieces no EVENT of which passes
 * CTR_OUTPUT_PIECE; empty output is still one EVENT. */
START_TEST(test_output_pieces) {
  size_t n = 2 * CTR_OUTPUT_PIECE + 5;
  char *text = malloc(n);
  msgpack_sbuffer sb;
  msgpack_packer pk;
  ck_assert_ptr_nonnull(text);
  memset(text, 'x', n);
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  ctr_pack_output(&pk, CTR_EV_WRITE, text, n);
  ctr_pack_output(&pk, CTR_EV_WRITE_OTHER, text, 0);
  size_t off = 0, want[] = {CTR_OUTPUT_PIECE, CTR_OUTPUT_PIECE, 5, 0};
  for (int i = 0; i < 4; i++) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    ck_assert_int_eq(msgpack_unpack_next(&u, sb.data, sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *a = u.data.via.array.ptr;
    ck_assert_uint_eq(a[0].via.u64, CTR_MSG_EVENT);
    ck_assert_uint_eq(a[1].via.u64, i < 3 ? CTR_EV_WRITE : CTR_EV_WRITE_OTHER);
    ck_assert_uint_eq(a[2].via.bin.size, want[i]);
    msgpack_unpacked_destroy(&u);
  }
  ck_assert_uint_eq(off, sb.size);
  msgpack_sbuffer_destroy(&sb);
  free(text);
}
END_TEST

START_TEST(test_paths) {
  static const char *const cases[][2] = {
      {"/a/b/c.rb", "/a/b/c.rb"},   {"/a/./b//c.rb", "/a/b/c.rb"},
      {"/a/b/../c.rb", "/a/c.rb"},  {"/../../x", "/x"},
      {"/a/b/", "/a/b"},            {"/", "/"},
      {"//", "/"},                  {"/a/..", "/"},
      {"/a/.../b", "/a/.../b"},     {"/a/..b/.c", "/a/..b/.c"},
      {"/a/b/../../..", "/"},       {"/x/./../y/./z/..", "/y"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char buf[64];
    strcpy(buf, cases[i][0]);
    size_t n = ctr_path_normalize(buf);
    ck_assert_str_eq(buf, cases[i][1]);
    ck_assert_uint_eq(n, strlen(cases[i][1]));
    /* "/" is a normalized path but names no file. */
    ck_assert(ctr_path_ok(buf, n) == (n > 1));
  }
  static const char *const bad[] = {"",    "a/b", "/a/./b", "/a/../b", "/..", "/a/.",
                                    "<a/b>", "<a", "./x",   "<>x",     "/a/b/..",
                                    "/",   "//",  "/a//b",  "/a/"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(!ctr_path_ok(bad[i], strlen(bad[i])), "%s", bad[i]);
  ck_assert(ctr_path_ok("<eval:3>", 8));
  ck_assert(ctr_path_ok("<>", 2));
  ck_assert(!ctr_path_ok("/a\000b", 4));
}
END_TEST

START_TEST(test_names) {
  static const int codes[] = {CTR_EPROTO, CTR_EFRAME, CTR_ELIMIT,
                              CTR_ETAG,   CTR_ERANGE, CTR_EPATH,
                              CTR_EVERSION, CTR_ECONFIG, CTR_ENOMEM,
                              CTR_ESTATE, CTR_EPERM};
  for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
    const char *s = ctr_strerror(codes[i]);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_ne(s, "unknown error");
    for (size_t j = 0; j < i; j++)
      ck_assert_str_ne(s, ctr_strerror(codes[j]));
  }
  ck_assert_str_eq(ctr_strerror(CTR_EPROTO), "malformed message");
  ck_assert_str_eq(ctr_strerror(-ENOENT), strerror(ENOENT));
  ck_assert_str_eq(ctr_strerror(-99999), "unknown error");
  ck_assert_str_eq(ctr_tag_name(CTR_MSG_STEP), "STEP");
  ck_assert_str_eq(ctr_tag_name(CTR_MSG_STATUS_REPLY), "STATUS_REPLY");
  ck_assert_str_eq(ctr_tag_name(99), "unknown");
}
END_TEST

/* ---- the flat reader ------------------------------------------------------- */

/* Reads the single message in sb with ctr_proto_read_flat; true when it
 * took it, which must then be all of sb. */
static bool read_flat(const ctr_limits_t *lim, ctr_flat_t *w, ctr_msg_t *m) {
  size_t off = 0;
  bool ok = ctr_proto_read_flat(sb.data, sb.size, &off, lim, w, m);

  ck_assert_uint_eq(off, ok ? sb.size : 0);
  return ok;
}

/* Two objects as msgpack-c would compare them. */
static bool same_obj(const msgpack_object *a, const msgpack_object *b) {
  return msgpack_object_equal(*a, *b);
}

START_TEST(test_flat_step_and_vars_as_decoded) {
  static ctr_flat_t w;
  ctr_flat_var_t *vars = w.vars;
  msgpack_unpacked up;
  ctr_msg_t m, g;
  const char *why = NULL;

  ctr_pack_step(&pk, 70000, -3);
  ck_assert(read_flat(&default_limits, &w, &m));
  ck_assert_int_eq(m.tag, CTR_MSG_STEP);
  ck_assert_uint_eq(m.u.step.path_id, 70000);
  ck_assert_int_eq(m.u.step.line, -3);

  msgpack_sbuffer_clear(&sb);
  ctr_pack_vars_begin(&pk, 7);
  ctr_pack_pair_begin(&pk, 0);
  ctr_pack_v_none(&pk, 1);
  ctr_pack_pair_begin(&pk, 300);
  ctr_pack_v_bool(&pk, 2, true);
  ctr_pack_pair_begin(&pk, 2);
  ctr_pack_v_int(&pk, 3, INT64_MIN);
  ctr_pack_pair_begin(&pk, 3);
  ctr_pack_v_float(&pk, 4, 2.5);
  ctr_pack_pair_begin(&pk, 4);
  ctr_pack_v_string(&pk, 5, "h\0i", 3);
  ctr_pack_pair_begin(&pk, 5);
  ctr_pack_v_raw(&pk, 6, "#<X>", 4);
  ctr_pack_pair_begin(&pk, 6);
  ctr_pack_v_error(&pk, 7, "no", 2);
  ck_assert(read_flat(&default_limits, &w, &m));
  ck_assert_int_eq(m.tag, CTR_MSG_VARS);
  ck_assert_ptr_null(m.u.vars.vars);
  ck_assert_uint_eq(m.u.vars.nflat, 7);
  msgpack_unpacked_init(&up);
  ck_assert_int_eq(decode_one(&up, &g, &why), 0);
  /* Each variable is the pair the general path decodes. */
  for (uint32_t i = 0; i < 7; i++) {
    const msgpack_object *pair = &g.u.vars.vars->via.array.ptr[i];
    const msgpack_object *v = &pair->via.array.ptr[1];
    ck_assert_uint_eq(vars[i].vid, pair->via.array.ptr[0].via.u64);
    ck_assert_uint_eq(vars[i].vk, v->via.array.ptr[0].via.u64);
    ck_assert_uint_eq(vars[i].tid, v->via.array.ptr[1].via.u64);
    if (v->via.array.size == 2) {
      ck_assert_int_eq(vars[i].payload.type, MSGPACK_OBJECT_NIL);
      continue;
    }
    ck_assert_int_eq(vars[i].payload.type, v->via.array.ptr[2].type);
    if (v->via.array.ptr[2].type == MSGPACK_OBJECT_STR ||
        v->via.array.ptr[2].type == MSGPACK_OBJECT_BIN) {
      ck_assert_uint_eq(vars[i].payload.via.str.size,
                        v->via.array.ptr[2].via.str.size);
      ck_assert_mem_eq(vars[i].payload.via.str.ptr, v->via.array.ptr[2].via.str.ptr,
                       vars[i].payload.via.str.size);
    } else if (v->via.array.ptr[2].type == MSGPACK_OBJECT_BOOLEAN) {
      ck_assert(vars[i].payload.via.boolean == v->via.array.ptr[2].via.boolean);
    } else {
      ck_assert_uint_eq(vars[i].payload.via.u64, v->via.array.ptr[2].via.u64);
    }
  }
  msgpack_unpacked_destroy(&up);

  /* CALL and RETURN: built as the objects the general path decodes. */
  msgpack_sbuffer_clear(&sb);
  ctr_pack_call_begin(&pk, 9, 2);
  ctr_pack_pair_begin(&pk, 1);
  ctr_pack_v_int(&pk, 3, 1 << 20);
  ctr_pack_pair_begin(&pk, 2);
  ctr_pack_v_none(&pk, 1);
  ck_assert(read_flat(&default_limits, &w, &m));
  msgpack_unpacked_init(&up);
  ck_assert_int_eq(decode_one(&up, &g, &why), 0);
  ck_assert_int_eq(m.tag, CTR_MSG_CALL);
  ck_assert_uint_eq(m.u.call.func_id, 9);
  ck_assert(same_obj(m.u.call.args, g.u.call.args));
  msgpack_unpacked_destroy(&up);
  msgpack_sbuffer_clear(&sb);
  ctr_pack_return_begin(&pk);
  ctr_pack_v_float(&pk, 4, -0.5);
  ck_assert(read_flat(&default_limits, &w, &m));
  msgpack_unpacked_init(&up);
  ck_assert_int_eq(decode_one(&up, &g, &why), 0);
  ck_assert_int_eq(m.tag, CTR_MSG_RETURN);
  ck_assert(same_obj(m.u.ret.value, g.u.ret.value));
  msgpack_unpacked_destroy(&up);
}
END_TEST

static void pack_ref(uint64_t id) {
  msgpack_pack_array(&pk, 2);
  msgpack_pack_uint32(&pk, CTR_V_REF);
  msgpack_pack_uint64(&pk, id);
}

/* A REF holds no other value: VARS, CALL and RETURN holding REFs take the
 * flat path, as the objects the general path decodes. A DEF does not. */
START_TEST(test_flat_refs_as_decoded) {
  static ctr_flat_t w;
  msgpack_unpacked up;
  msgpack_object o[5];
  ctr_msg_t m, g;
  const char *why = NULL;

  ctr_pack_vars_begin(&pk, 2);
  ctr_pack_pair_begin(&pk, 3);
  pack_ref(UINT64_MAX);
  ctr_pack_pair_begin(&pk, 4);
  ctr_pack_v_int(&pk, 1, 7);
  ck_assert(read_flat(&default_limits, &w, &m));
  ck_assert_int_eq(m.tag, CTR_MSG_VARS);
  ck_assert_uint_eq(m.u.vars.nflat, 2);
  ck_assert_uint_eq(w.vars[0].vk, CTR_V_REF);
  ck_assert_uint_eq(w.vars[0].payload.via.u64, UINT64_MAX);
  msgpack_unpacked_init(&up);
  ck_assert_int_eq(decode_one(&up, &g, &why), 0);
  ctr_flat_objects(&w.vars[0], o);
  ck_assert(same_obj(&o[1], &g.u.vars.vars->via.array.ptr[0].via.array.ptr[1]));
  msgpack_unpacked_destroy(&up);

  msgpack_sbuffer_clear(&sb);
  ctr_pack_call_begin(&pk, 2, 1);
  ctr_pack_pair_begin(&pk, 0);
  pack_ref(300);
  ck_assert(read_flat(&default_limits, &w, &m));
  msgpack_unpacked_init(&up);
  ck_assert_int_eq(decode_one(&up, &g, &why), 0);
  ck_assert(same_obj(m.u.call.args, g.u.call.args));
  msgpack_unpacked_destroy(&up);

  msgpack_sbuffer_clear(&sb);
  ctr_pack_return_begin(&pk);
  pack_ref(0);
  ck_assert(read_flat(&default_limits, &w, &m));
  msgpack_unpacked_init(&up);
  ck_assert_int_eq(decode_one(&up, &g, &why), 0);
  ck_assert(same_obj(m.u.ret.value, g.u.ret.value));
  msgpack_unpacked_destroy(&up);

  /* A DEF, a REF with a type id or a negative id: the general path. */
  msgpack_sbuffer_clear(&sb);
  ctr_pack_return_begin(&pk);
  msgpack_pack_array(&pk, 3);
  msgpack_pack_uint32(&pk, CTR_V_DEF);
  msgpack_pack_uint32(&pk, 1);
  ctr_pack_v_int(&pk, 1, 7);
  ck_assert(!read_flat(&default_limits, &w, &m));
  msgpack_sbuffer_clear(&sb);
  ctr_pack_return_begin(&pk);
  ctr_pack_v_int(&pk, 1, 7);
  sb.data[3] = CTR_V_REF; /* [12, 1, 7] */
  ck_assert(!read_flat(&default_limits, &w, &m));
  msgpack_sbuffer_clear(&sb);
  ctr_pack_return_begin(&pk);
  msgpack_pack_array(&pk, 2);
  msgpack_pack_uint32(&pk, CTR_V_REF);
  msgpack_pack_int64(&pk, -1);
  ck_assert(!read_flat(&default_limits, &w, &m));
}
END_TEST

/* Anything else is left, untouched, to the general path. */
START_TEST(test_flat_leaves_the_rest) {
  static ctr_flat_t vars;
  ctr_limits_t small = CTR_LIMITS_DEFAULT;
  ctr_msg_t m;
  char big[64];

  /* A container value. */
  ctr_pack_vars_begin(&pk, 1);
  ctr_pack_pair_begin(&pk, 0);
  ctr_pack_v_seq_begin(&pk, 1, 1);
  ctr_pack_v_int(&pk, 2, 1);
  ck_assert(!read_flat(&default_limits, &vars, &m));
  /* More variables than a fixarray holds. */
  msgpack_sbuffer_clear(&sb);
  ctr_pack_vars_begin(&pk, CTR_FLAT_VARS + 1);
  for (int i = 0; i <= CTR_FLAT_VARS; i++) {
    ctr_pack_pair_begin(&pk, (uint32_t)i);
    ctr_pack_v_int(&pk, 1, i);
  }
  ck_assert(!read_flat(&default_limits, &vars, &m));
  /* A payload of the wrong type for its kind, and a name that is no id. */
  msgpack_sbuffer_clear(&sb);
  ctr_pack_vars_begin(&pk, 1);
  ctr_pack_pair_begin(&pk, 0);
  msgpack_pack_array(&pk, 3);
  msgpack_pack_uint32(&pk, CTR_V_INT);
  msgpack_pack_uint32(&pk, 1);
  msgpack_pack_double(&pk, 1.5);
  ck_assert(!read_flat(&default_limits, &vars, &m));
  msgpack_sbuffer_clear(&sb);
  ctr_pack_vars_begin(&pk, 1);
  msgpack_pack_array(&pk, 2);
  msgpack_pack_int64(&pk, -1);
  ctr_pack_v_none(&pk, 1);
  ck_assert(!read_flat(&default_limits, &vars, &m));
  /* A string past limits.max_string. */
  memset(big, 'x', sizeof(big));
  small.max_string = 10;
  msgpack_sbuffer_clear(&sb);
  ctr_pack_vars_begin(&pk, 1);
  ctr_pack_pair_begin(&pk, 0);
  ctr_pack_v_string(&pk, 1, big, sizeof(big));
  ck_assert(read_flat(&default_limits, &vars, &m));
  ck_assert(!read_flat(&small, &vars, &m));
  /* Cut short, at every length. */
  for (size_t n = 0; n < sb.size; n++) {
    size_t off = 0;
    ck_assert(!ctr_proto_read_flat(sb.data, n, &off, &default_limits, &vars, &m));
    ck_assert_uint_eq(off, 0);
  }
  /* A STEP whose line is no integer, and other messages. */
  msgpack_sbuffer_clear(&sb);
  msgpack_pack_array(&pk, 3);
  msgpack_pack_uint32(&pk, CTR_MSG_STEP);
  msgpack_pack_uint32(&pk, 0);
  msgpack_pack_double(&pk, 3.0);
  ck_assert(!read_flat(&default_limits, &vars, &m));
  msgpack_sbuffer_clear(&sb);
  ctr_pack_call_begin(&pk, 0, 1);
  ctr_pack_pair_begin(&pk, 0);
  ctr_pack_v_tuple_begin(&pk, 1, 0);
  ck_assert(!read_flat(&default_limits, &vars, &m));
  msgpack_sbuffer_clear(&sb);
  ctr_pack_thread(&pk, 3);
  ck_assert(!read_flat(&default_limits, &vars, &m));
}
END_TEST

Suite *ctr_proto_suite(void) {
  Suite *s = suite_create("proto");
  TCase *tc;

  tc = tcase_create("roundtrip");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_roundtrip_hello);
  tcase_add_test(tc, test_roundtrip_hello_minimal);
  tcase_add_test(tc, test_roundtrip_welcome);
  tcase_add_test(tc, test_roundtrip_control_and_pushdown);
  tcase_add_test(tc, test_roundtrip_batch);
  tcase_add_test(tc, test_func_module);
  suite_add_tcase(s, tc);

  tc = tcase_create("frame");
  tcase_add_test(tc, test_frame_header);
  tcase_add_test(tc, test_frame_coalesced);
  tcase_add_test(tc, test_frame_split);
  tcase_add_test(tc, test_frame_partial_not_idle);
  tcase_add_test(tc, test_frame_oversized);
  tcase_add_test(tc, test_frame_max_exact);
  tcase_add_test(tc, test_frame_callback_stops);
  tcase_add_test(tc, test_frame_large_released);
  suite_add_tcase(s, tc);

  tc = tcase_create("scan");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_scan_counts);
  tcase_add_test(tc, test_scan_garbage);
  tcase_add_test(tc, test_scan_truncated);
  tcase_add_test(tc, test_scan_depth);
  tcase_add_test(tc, test_scan_counts_vs_bytes);
  tcase_add_test(tc, test_scan_string_limit);
  tcase_add_test(tc, test_scan_then_unpack_packed);
  suite_add_tcase(s, tc);

  tc = tcase_create("flat");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_flat_step_and_vars_as_decoded);
  tcase_add_test(tc, test_flat_leaves_the_rest);
  tcase_add_test(tc, test_flat_refs_as_decoded);
  suite_add_tcase(s, tc);

  tc = tcase_create("decode");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_decode_tags);
  tcase_add_test(tc, test_decode_arity);
  tcase_add_test(tc, test_decode_types);
  tcase_add_test(tc, test_decode_ids);
  tcase_add_test(tc, test_decode_kinds);
  tcase_add_test(tc, test_decode_hello_map);
  tcase_add_test(tc, test_decode_welcome_map);
  tcase_add_test(tc, test_obj_helpers);
  tcase_add_test(tc, test_names);
  tcase_add_test(tc, test_paths);
  tcase_add_test(tc, test_output_pieces);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(ctr_proto_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
