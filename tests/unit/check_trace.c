/* check_trace.c: the daemon's output side: JSON text, value rendering from
 * untrusted wire values, and the trace folder writer. */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctr_buf.h"
#include "ctr_config.h"
#include "ctr_error.h"
#include "ctr_proto.h"
#include "ctr_session.h"
#include "ctr_trace.h"
#include "ctr_value.h"

/* A recording id for the trace folders written here. */
#define ID "0190a6b4-0c2e-7d3f-8a1b-2c3d4e5f6a7b"
/* Folders that stay the daemon's own. */
#define DAEMON ((ctr_trace_owner_t){(uid_t)-1, (gid_t)-1})

static char *json_of(const char *s, size_t n) {
  ctr_buf_t b = {0};

  ctr_json_str(&b, s, n);
  ctr_buf_add(&b, "", 1);
  return b.data;
}

START_TEST(json_escapes_and_keeps_utf8) {
  char *j = json_of("a\"b\\c\n\t\x01 \xc3\xa9", 11);
  ck_assert_str_eq(j, "\"a\\\"b\\\\c\\n\\t\\u0001 \xc3\xa9\"");
  free(j);
}
END_TEST

START_TEST(json_invalid_utf8_becomes_text_escapes) {
  /* A lone continuation byte, a truncated sequence, an overlong form and a
   * surrogate: each invalid byte shows as \xNN and the JSON stays valid. */
  char *j = json_of("\xff" "a" "\xe2\x82" "\xc0\xaf" "\xed\xa0\x80", 9);
  ck_assert_str_eq(j, "\"\\\\xffa\\\\xe2\\\\x82\\\\xc0\\\\xaf\\\\xed\\\\xa0\\\\x80\"");
  free(j);
}
END_TEST

START_TEST(printable_text_cannot_forge_lines_or_escapes) {
  /* A newline, ESC, DEL, a C1 control (U+009B, CSI), backslash and an
   * invalid byte are escaped; other UTF-8 stays. */
  static const char in[] = "a\nctrecd: x\x1b[31m\x7f\xc2\x9b\\\xff\xc3\xa9\xc2\xa0";
  ctr_buf_t b = {0};
  const char *out;

  ctr_buf_puts(&b, "pre|");
  out = ctr_buf_printable(&b, in, sizeof in - 1);
  ck_assert_str_eq(out, "a\\x0actrecd: x\\x1b[31m\\x7f\\xc2\\x9b\\\\\\xff\xc3\xa9\xc2\xa0");
  ck_assert_str_eq(b.data, "pre|a\\x0actrecd: x\\x1b[31m\\x7f\\xc2\\x9b\\\\\\xff\xc3\xa9\xc2\xa0");
  ck_assert_uint_eq(b.len, strlen(b.data));
  ctr_buf_free(&b);
}
END_TEST

START_TEST(floats_round_trip_as_text) {
  char t[32];

  ctr_json_double_text(t, 2.5);
  ck_assert_str_eq(t, "2.5");
  ctr_json_double_text(t, 0.1);
  ck_assert_str_eq(t, "0.1");
  ctr_json_double_text(t, 3.0);
  ck_assert_str_eq(t, "3.0");
  ctr_json_double_text(t, 1e300);
  ck_assert_str_eq(t, "1e+300");
  ctr_json_double_text(t, 1.0 / 0.0);
  ck_assert_str_eq(t, "inf");
  ctr_json_double_text(t, -1.0 / 0.0);
  ck_assert_str_eq(t, "-inf");
  ctr_json_double_text(t, 0.0 / 0.0);
  ck_assert_str_eq(t, "NaN");
}
END_TEST

/* Texts are kept by bit pattern: every double, asked again after many
 * others filled the cache, reads back to itself. */
START_TEST(float_texts_kept_exactly) {
  char t[32];
  double f;

  ctr_json_double_text(t, 0.0);
  ck_assert_str_eq(t, "0.0");
  ctr_json_double_text(t, -0.0);
  ck_assert_str_eq(t, "-0.0");
  ctr_json_double_text(t, 0.0);
  ck_assert_str_eq(t, "0.0");
  for (int round = 0; round < 2; round++) {
    for (int i = 1; i < 20000; i++) {
      f = (double)i / 7.0 * (i % 2 ? 1 : -1e-5);
      ctr_json_double_text(t, f);
      ck_assert(strtod(t, NULL) == f);
    }
  }
}
END_TEST

START_TEST(integers) {
  ctr_buf_t b = {0};

  ctr_json_i64(&b, 0);
  ctr_buf_add(&b, " ", 1);
  ctr_json_i64(&b, -42);
  ctr_buf_add(&b, " ", 1);
  ctr_json_i64(&b, INT64_MIN);
  ctr_buf_add(&b, " ", 1);
  ctr_json_u64(&b, UINT64_MAX);
  ctr_buf_add(&b, "", 1);
  ck_assert_str_eq(b.data, "0 -42 -9223372036854775808 18446744073709551615");
  /* Every digit count, each power of ten and its neighbours, as printf. */
  for (uint64_t p = 1;; p *= 10) {
    uint64_t vs[3] = {p - 1, p, p + 1};
    for (int k = 0; k < 3; k++) {
      char want[32];
      b.len = 0;
      ctr_json_u64(&b, vs[k]);
      snprintf(want, sizeof(want), "%llu", (unsigned long long)vs[k]);
      ck_assert_uint_eq(b.len, strlen(want));
      ck_assert_mem_eq(b.data, want, b.len);
    }
    if (p > UINT64_MAX / 10)
      break;
  }
  ctr_buf_free(&b);
}
END_TEST

START_TEST(base64_pads) {
  ctr_buf_t b = {0};

  ctr_json_base64(&b, (const unsigned char *)"\x01\x00", 2);
  ctr_json_base64(&b, (const unsigned char *)"abc", 3);
  ctr_json_base64(&b, (const unsigned char *)"a", 1);
  ctr_buf_add(&b, "", 1);
  ck_assert_str_eq(b.data, "\"AQA=\"\"YWJj\"\"YQ==\"");
  ctr_buf_free(&b);
}
END_TEST

START_TEST(fragments) {
  ctr_json_frag_t f;
  ctr_buf_t b = {0};

  ctr_json_frag(&f, "{\"variable_id\":", 12345, ",\"value\":");
  ck_assert_int_eq(f.id, 12345);
  ctr_buf_frag(&b, &f);
  ctr_json_frag(&f, ",\"type_id\":", INT64_MIN, "}");
  ctr_buf_frag(&b, &f);
  ctr_buf_add(&b, "", 1);
  ck_assert_str_eq(b.data, "{\"variable_id\":12345,\"value\":"
                           ",\"type_id\":-9223372036854775808}");
  ctr_buf_free(&b);
}
END_TEST

/* ---- values ------------------------------------------------------------ */

static uint32_t ntypes = 3, nnames = 2;
static int struct_calls;

/* Renderers keep a type's text while they render what is inside it. */
static ctr_json_frag_t type_frags[8], name_frags[8];

static const ctr_json_frag_t *t_type(void *ctx, uint32_t tid) {
  if (tid >= ntypes)
    return NULL;
  ctr_json_frag(&type_frags[tid], ",\"type_id\":", (int64_t)tid + 10, "}");
  return &type_frags[tid];
}
static const ctr_json_frag_t *t_name(void *ctx, uint32_t vid) {
  if (vid >= nnames)
    return NULL;
  ctr_json_frag(&name_frags[vid], "{\"variable_id\":", (int64_t)vid + 20,
                ",\"value\":");
  return &name_frags[vid];
}
static int64_t t_struct(void *ctx, uint32_t tid, const uint32_t *vids,
                        const int64_t *tids, uint32_t n) {
  struct_calls++;
  return tid < ntypes ? 99 : CTR_ERANGE;
}

static const ctr_value_ops_t ops = {NULL, t_type, t_name, t_struct, true, 4, 0};

/* Packs with fn, unpacks, renders; returns the JSON or NULL with *rc. */
static char *render(void (*fn)(msgpack_packer *), int64_t *rc,
                    const char **why) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_zone zone;
  msgpack_object obj;
  ctr_buf_t out = {0};
  size_t off = 0;

  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  fn(&pk);
  msgpack_zone_init(&zone, 1024);
  ck_assert_int_ge(msgpack_unpack(sb.data, sb.size, &off, &zone, &obj), 0);
  *rc = ctr_value_render(&ops, &obj, &out, why);
  ctr_buf_add(&out, "", 1);
  msgpack_zone_destroy(&zone);
  msgpack_sbuffer_destroy(&sb);
  return out.data;
}

static void v_seq(msgpack_packer *pk) {
  ctr_pack_v_seq_begin(pk, 0, 3);
  ctr_pack_v_int(pk, 1, -5);
  ctr_pack_v_float(pk, 2, 0.5);
  ctr_pack_v_string(pk, 1, "x\xff", 2);
}

START_TEST(renders_sequence) {
  const char *why = NULL;
  int64_t rc;
  char *j = render(v_seq, &rc, &why);

  ck_assert_int_eq(rc, 10);
  ck_assert_str_eq(j, "{\"kind\":\"Sequence\",\"elements\":["
                      "{\"kind\":\"Int\",\"i\":-5,\"type_id\":11},"
                      "{\"kind\":\"Float\",\"f\":\"0.5\",\"type_id\":12},"
                      "{\"kind\":\"String\",\"text\":\"x\\\\xff\",\"type_id\":11}],"
                      "\"is_slice\":false,\"type_id\":10}");
  free(j);
}
END_TEST

static void v_struct(msgpack_packer *pk) {
  ctr_pack_v_struct_begin(pk, 2, 2);
  ctr_pack_pair_begin(pk, 0);
  ctr_pack_v_bool(pk, 0, true);
  ctr_pack_pair_begin(pk, 1);
  ctr_pack_v_bigint(pk, 0, true, (const unsigned char *)"\x01\x00", 2);
}

START_TEST(renders_struct_and_bigint) {
  const char *why = NULL;
  int64_t rc;
  char *j;

  struct_calls = 0;
  j = render(v_struct, &rc, &why);
  ck_assert_int_eq(rc, 99);
  ck_assert_int_eq(struct_calls, 1);
  ck_assert_str_eq(j, "{\"kind\":\"Struct\",\"field_values\":["
                      "{\"kind\":\"Bool\",\"b\":true,\"type_id\":10},"
                      "{\"kind\":\"BigInt\",\"b\":\"AQA=\",\"negative\":true,\"type_id\":10}],"
                      "\"type_id\":99}");
  free(j);
}
END_TEST

static void v_deep(msgpack_packer *pk) {
  int i;
  for (i = 0; i < 6; i++)
    ctr_pack_v_seq_begin(pk, 0, 1);
  ctr_pack_v_none(pk, 0);
}
static void v_bad_type(msgpack_packer *pk) { ctr_pack_v_int(pk, 7, 1); }
static void v_bad_name(msgpack_packer *pk) {
  ctr_pack_v_struct_begin(pk, 0, 1);
  ctr_pack_pair_begin(pk, 5);
  ctr_pack_v_none(pk, 0);
}
static void v_bad_kind(msgpack_packer *pk) {
  msgpack_pack_array(pk, 3);
  msgpack_pack_int(pk, 42);
  msgpack_pack_int(pk, 0);
  msgpack_pack_int(pk, 0);
}
static void v_bad_int(msgpack_packer *pk) {
  msgpack_pack_array(pk, 3);
  msgpack_pack_int(pk, CTR_V_INT);
  msgpack_pack_int(pk, 0);
  msgpack_pack_str_with_body(pk, "1", 1);
}

START_TEST(rejects_bad_values) {
  void (*cases[])(msgpack_packer *) = {v_deep, v_bad_type, v_bad_name,
                                       v_bad_kind, v_bad_int};
  const char *whys[] = {"value nested deeper than limits.max_depth",
                        "value type id out of range",
                        "struct field name id out of range",
                        "unknown value kind",
                        "Int value is not a 64-bit integer"};
  size_t i;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *why = NULL;
    int64_t rc;
    char *j = render(cases[i], &rc, &why);
    ck_assert_int_lt(rc, 0);
    ck_assert_str_eq(why, whys[i]);
    free(j);
  }
}
END_TEST

/* ---- trace folder ------------------------------------------------------ */

static char *slurp(const char *dir, const char *name) {
  char path[4096], *buf;
  FILE *f;
  long n;

  snprintf(path, sizeof(path), "%s/%s", dir, name);
  f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  rewind(f);
  buf = calloc(1, (size_t)n + 1);
  ck_assert_int_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  return buf;
}

START_TEST(trace_is_closed_json_after_every_flush) {
  char root[] = "/tmp/ctrec-check-XXXXXX", *text;
  ctr_trace_t *t;
  const char *dir;

  ck_assert_ptr_nonnull(mkdtemp(root));
  ck_assert_int_eq(ctr_trace_open(&t, root, "/x/prog.rb", 42, 0, 1, "/w", "/x/prog.rb",
                                  "[\"a\"]", ID, DAEMON), 0);
  dir = ctr_trace_dir(t);
  text = slurp(dir, "trace.json");
  ck_assert_str_eq(text, "[\n]\n");
  free(text);
  ck_assert_uint_eq(ctr_trace_path(t, "/x/prog.rb", 10), 0);
  ctr_buf_puts(ctr_trace_record(t), "{\"Step\":{\"path_id\":0,\"line\":1}}");
  ck_assert_int_eq(ctr_trace_flush(t), 0);
  text = slurp(dir, "trace.json");
  ck_assert_str_eq(text, "[\n{\"Path\":\"/x/prog.rb\"},\n"
                         "{\"Step\":{\"path_id\":0,\"line\":1}}\n]\n");
  free(text);
  ctr_buf_puts(ctr_trace_record(t), "{\"Step\":{\"path_id\":0,\"line\":2}}");
  ctr_trace_set_meta(t, "{\"state\":\"complete\"}", 20);
  ck_assert_int_eq(ctr_trace_source(t, "/x/prog.rb", "a = 1\n", 6), 0);
  ck_assert_int_eq(ctr_trace_flush(t), 0);
  text = slurp(dir, "trace_paths.json");
  ck_assert_str_eq(text, "[\"/x/prog.rb\"]\n");
  free(text);
  text = slurp(dir, "trace_metadata.json");
  ck_assert_str_eq(text, "{\"workdir\":\"/w\",\"program\":\"/x/prog.rb\","
                         "\"args\":[\"a\"],\"recording_id\":\"" ID "\","
                         "\"ctrec\":{\"state\":\"complete\"}}\n");
  free(text);
  text = slurp(dir, "files/x/prog.rb");
  ck_assert_str_eq(text, "a = 1\n");
  free(text);
  ck_assert_int_eq(ctr_trace_close(t), 0);
  ck_assert_int_eq(ctr_trace_recover(root, NULL), 0);
}
END_TEST

/* A folder for a backend with its own trace file: no trace.json, the same
 * metadata, paths and sources. */
START_TEST(a_folder_without_trace_json) {
  char root[] = "/tmp/ctrec-check-XXXXXX", dir[4200], path[4300], *text;
  ctr_trace_t *t;

  ck_assert_ptr_nonnull(mkdtemp(root));
  ck_assert_int_eq(ctr_trace_open_folder(&t, root, "/x/prog.rb", 42, 0, 1, "/w",
                                         "/x/prog.rb", "[]", ID, DAEMON), 0);
  snprintf(dir, sizeof(dir), "%s", ctr_trace_dir(t));
  snprintf(path, sizeof(path), "%s/trace.json", dir);
  ck_assert_int_ne(access(path, F_OK), 0);
  ck_assert_uint_eq(ctr_trace_path(t, "/x/prog.rb", 10), 0);
  ck_assert_uint_eq(ctr_trace_path(t, "/x/lib.rb", 9), 1);
  ck_assert_uint_eq(ctr_trace_records(t), 0);
  ctr_trace_set_meta(t, "{\"state\":\"recording\"}", 21);
  ck_assert_int_eq(ctr_trace_source(t, "/x/prog.rb", "a = 1\n", 6), 0);
  ck_assert_int_eq(ctr_trace_close(t), 0);
  ck_assert_int_ne(access(path, F_OK), 0);
  text = slurp(dir, "trace_paths.json");
  ck_assert_str_eq(text, "[\"/x/prog.rb\",\"/x/lib.rb\"]\n");
  free(text);
  text = slurp(dir, "trace_metadata.json");
  ck_assert_str_eq(text, "{\"workdir\":\"/w\",\"program\":\"/x/prog.rb\","
                         "\"args\":[],\"recording_id\":\"" ID "\","
                         "\"ctrec\":{\"state\":\"recording\"}}\n");
  free(text);
  text = slurp(dir, "files/x/prog.rb");
  ck_assert_str_eq(text, "a = 1\n");
  free(text);
}
END_TEST

START_TEST(folder_names_are_safe) {
  char root[] = "/tmp/ctrec-check-XXXXXX";
  const char *base;
  ctr_trace_t *t;

  ck_assert_ptr_nonnull(mkdtemp(root));
  ck_assert_int_eq(ctr_trace_open(&t, root, "-c", 7, 0, 1, "/", "-c", "[]", ID, DAEMON), 0);
  base = strrchr(ctr_trace_dir(t), '/') + 1;
  ck_assert_str_eq(base, "_c-7-19700101T000000Z");
  ctr_trace_close(t);
  ck_assert_int_eq(ctr_trace_open(&t, root, "/x/../a b.rb", 7, 0, 3, "/", "p", "[]", ID, DAEMON),
                   0);
  base = strrchr(ctr_trace_dir(t), '/') + 1;
  ck_assert_str_eq(base, "a_b.rb-7-19700101T000000Z-3");
  ctr_trace_close(t);
}
END_TEST

START_TEST(folder_belongs_to_its_owner) {
  /* As root, the folder and all in it go to the traced program's user;
   * otherwise the owner asked for is the daemon's own. */
  ctr_trace_owner_t who = geteuid() == 0 ? (ctr_trace_owner_t){65534, 65534}
                                         : (ctr_trace_owner_t){getuid(), getgid()};
  const char *names[] = {"", "/files", "/files/a", "/files/a/b.rb", "/trace.json",
                         "/trace_metadata.json", "/trace_paths.json"};
  char root[] = "/tmp/ctrec-check-XXXXXX", path[4200];
  ctr_trace_t *t;
  struct stat st;

  ck_assert_ptr_nonnull(mkdtemp(root));
  ck_assert_int_eq(ctr_trace_open(&t, root, "p", 1, 0, 1, "/", "p", "[]", ID, who), 0);
  ck_assert_int_eq(ctr_trace_source(t, "/a/b.rb", "x = 1\n", 6), 0);
  ck_assert_int_eq(ctr_trace_flush(t), 0);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    snprintf(path, sizeof path, "%s%s", ctr_trace_dir(t), names[i]);
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert_msg(st.st_uid == who.uid && st.st_gid == who.gid, "%s", path);
  }
  ctr_trace_close(t);
}
END_TEST

/* trace.json cut anywhere by a killed daemon or a full disk is closed
 * again after its last whole record. */
START_TEST(cut_trace_json_is_closed_again) {
  static const char *const cases[][2] = {
      {"[\n{\"a\":1},\n{\"b\":{\"c\":[1,2]}},\n{\"d\":\"x}", "[\n{\"a\":1},\n{\"b\":{\"c\":[1,2]}}\n]\n"},
      {"[\n{\"a\":1},\n{\"b\":{\"c\":[1,2]}}", "[\n{\"a\":1},\n{\"b\":{\"c\":[1,2]}}\n]\n"},
      {"[\n{\"a\":1},\n{\"b\":{\"c\":[1,2]}", "[\n{\"a\":1}\n]\n"},
      {"[\n{\"a\":\"}\\\"\"},", "[\n{\"a\":\"}\\\"\"}\n]\n"},
      {"[\n{\"a\":1}\n]", "[\n{\"a\":1}\n]\n"},
      {"[\n{\"a", "[\n]\n"},
      {"[", "[\n]\n"},
      {"[\n{\"a\":1}\n]\n", "[\n{\"a\":1}\n]\n"},
  };
  char root[] = "/tmp/ctrec-check-XXXXXX", path[4200], got[256];

  ck_assert_ptr_nonnull(mkdtemp(root));
  snprintf(path, sizeof path, "%s/trace.json", root);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    FILE *f = fopen(path, "w");
    fputs(cases[i][0], f);
    fclose(f);
    ck_assert_int_eq(ctr_trace_repair_json(root), 0);
    f = fopen(path, "r");
    size_t n = fread(got, 1, sizeof got - 1, f);
    fclose(f);
    got[n] = '\0';
    ck_assert_msg(strcmp(got, cases[i][1]) == 0, "case %zu: %s", i, got);
  }
  unlink(path);
  rmdir(root);
}
END_TEST

START_TEST(source_paths_cannot_escape) {
  char root[] = "/tmp/ctrec-check-XXXXXX";
  ctr_trace_t *t;

  ck_assert_ptr_nonnull(mkdtemp(root));
  ck_assert_int_eq(ctr_trace_open(&t, root, "p", 1, 0, 2, "/", "p", "[]", ID, DAEMON), 0);
  ck_assert_int_eq(ctr_trace_source(t, "/a/../../etc/x", "x", 1), CTR_EPATH);
  ck_assert_int_eq(ctr_trace_source(t, "/a/..", "x", 1), CTR_EPATH);
  ck_assert_int_eq(ctr_trace_source(t, "/a/./b/c.rb", "x", 1), 0);
  ctr_trace_close(t);
}
END_TEST


/* ---- DEF and REF through a session --------------------------------------- */

/* A session's messages are packed twice: with DEF and REF (refs true) and
 * with every value in full; the traces must be the same text. */
static bool refs;
static msgpack_sbuffer msb;
static msgpack_packer mpk;

enum { P_APP, P_LIB };
enum { T_NONE, T_INT, T_FLOAT, T_STR, T_LIST, T_OBJ };
enum { N_SELF, N_X, N_A, N_B, N_TOKEN };

typedef struct run_s {
  char root[32];
  char dirs[4][4096];
  int ndirs;
  ctr_session_t *s;
  const ctr_config_t *cfg;
} run_t;

static void closed_cb(void *arg, const char *dir, const ctr_session_stats_t *st,
                      const char *state) {
  run_t *r = arg;

  ck_assert_int_lt(r->ndirs, 4);
  snprintf(r->dirs[r->ndirs++], sizeof(r->dirs[0]), "%s", dir);
}

/* A session of a configuration with these --set options (and the file
 * yaml, unless NULL) writing into a new folder. */
static void run_open(run_t *r, const char *yaml, const char *const *sets) {
  ctr_config_override_t o[8];
  ctr_session_hooks_t hooks = {r, closed_cb, NULL};
  ctr_hello_t h = {0};
  ctr_peer_t peer;
  char err[512] = "", cfgfile[64] = "";
  size_t n = 0;

  memset(r, 0, sizeof(*r));
  snprintf(r->root, sizeof(r->root), "/tmp/ctrec-refs-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(r->root));
  o[n++] = (ctr_config_override_t){"output.dir", r->root, "--set"};
  /* These tests read the records back from trace.json. */
  o[n++] = (ctr_config_override_t){"output.format", "json", "--set"};
  for (; sets && *sets; sets += 2)
    o[n++] = (ctr_config_override_t){sets[0], sets[1], "--set"};
  if (yaml) {
    FILE *f;
    snprintf(cfgfile, sizeof(cfgfile), "%s/ctrec.yaml", r->root);
    f = fopen(cfgfile, "w");
    ck_assert_ptr_nonnull(f);
    fputs(yaml, f);
    fclose(f);
  }
  ck_assert_msg(ctr_config_snapshot(&r->cfg, yaml ? cfgfile : NULL, o, n, err,
                                    sizeof(err)) == 0, "%s", err);
  h.version = CTR_PROTO_VERSION;
  h.pid = 4242;
  h.ppid = 1;
  h.program = (ctr_str_t){"/x/p.py", 7};
  peer.pid = 4242;
  peer.uid = getuid();
  peer.gid = getgid();
  ck_assert_int_eq(ctr_session_new(&r->s, r->cfg, &h, 1, &peer, &hooks), 0);
  msgpack_sbuffer_init(&msb);
  msgpack_packer_init(&mpk, &msb, msgpack_sbuffer_write);
}

/* Applies the messages packed since the last call as ctrecd does: the
 * flat reader first, else unpacked by msgpack-c and decoded. Returns the
 * session's first error. */
static int run_send(run_t *r, const char **why) {
  static ctr_flat_t flat;
  ctr_limits_t lim = CTR_LIMITS_DEFAULT;
  msgpack_zone zone;
  msgpack_object obj;
  ctr_msg_t m;
  size_t off = 0;
  int rc = 0;

  lim.max_depth = r->cfg->max_depth;
  msgpack_zone_init(&zone, 4096);
  while (off < msb.size && rc == 0) {
    if (!ctr_proto_read_flat(msb.data, msb.size, &off, &lim, &flat, &m)) {
      ck_assert_int_gt(msgpack_unpack(msb.data, msb.size, &off, &zone, &obj), 0);
      ck_assert_int_eq(ctr_msg_decode(&obj, &m, why), 0);
    }
    rc = ctr_session_handle(r->s, &m, why);
  }
  msgpack_zone_destroy(&zone);
  msgpack_sbuffer_clear(&msb);
  return rc;
}

static void run_ok(run_t *r) {
  const char *why = "";
  int rc = run_send(r, &why);

  ck_assert_msg(rc == 0, "session refused a message: %s", why);
}

static int remove_cb(const char *path, const struct stat *sb, int flag,
                     struct FTW *ftw) {
  return remove(path);
}

/* Removes the session's folder and its traces. */
static void run_remove(run_t *r) {
  ck_assert_int_eq(nftw(r->root, remove_cb, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* Ends the session; its traces are removed unless keep is true (then
 * run_remove does it). */
static void run_close(run_t *r, bool keep) {
  ctr_session_end(r->s, NULL);
  ctr_session_free(r->s);
  ctr_config_unref(r->cfg);
  msgpack_sbuffer_destroy(&msb);
  if (!keep)
    run_remove(r);
}

static void declare_all(void) {
  ctr_pack_path(&mpk, P_APP, "/x/p.py", 7);
  ctr_pack_path(&mpk, P_LIB, "/usr/lib/python3.11/lib.py", 26);
  ctr_pack_func(&mpk, 0, P_APP, 10, "f", 1);
  ctr_pack_type(&mpk, T_NONE, CTR_TK_NONE, "NoneType", 8);
  ctr_pack_type(&mpk, T_INT, CTR_TK_INT, "int", 3);
  ctr_pack_type(&mpk, T_FLOAT, CTR_TK_FLOAT, "float", 5);
  ctr_pack_type(&mpk, T_STR, CTR_TK_STRING, "str", 3);
  ctr_pack_type(&mpk, T_LIST, CTR_TK_SEQ, "list", 4);
  ctr_pack_type(&mpk, T_OBJ, CTR_TK_STRUCT, "Obj", 3);
  ctr_pack_varname(&mpk, N_SELF, "self", 4);
  ctr_pack_varname(&mpk, N_X, "x", 1);
  ctr_pack_varname(&mpk, N_A, "a", 1);
  ctr_pack_varname(&mpk, N_B, "b", 1);
  ctr_pack_varname(&mpk, N_TOKEN, "token", 5);
}

/* With refs, the head of DEF id: the value packed next is kept. */
static void def(uint64_t id) {
  if (!refs)
    return;
  msgpack_pack_array(&mpk, 3);
  msgpack_pack_uint32(&mpk, CTR_V_DEF);
  msgpack_pack_uint64(&mpk, id);
}

/* With refs, REF id, and true; false: the caller packs the value. */
static bool ref(uint64_t id) {
  if (!refs)
    return false;
  msgpack_pack_array(&mpk, 2);
  msgpack_pack_uint32(&mpk, CTR_V_REF);
  msgpack_pack_uint64(&mpk, id);
  return true;
}

/* A STEP and a VARS of one variable, whose value is packed next. */
static void one_var(uint32_t path, int64_t line, uint32_t vid) {
  ctr_pack_step(&mpk, path, line);
  ctr_pack_vars_begin(&mpk, 1);
  ctr_pack_pair_begin(&mpk, vid);
}

static void v_list_full(void) {
  ctr_pack_v_seq_begin(&mpk, T_LIST, 3);
  ctr_pack_v_int(&mpk, T_INT, 1);
  ctr_pack_v_float(&mpk, T_FLOAT, 2.5);
  ctr_pack_v_string(&mpk, T_STR, "hello world", 11);
}

/* The list, defined as id (0: referred to as list_id). */
static void v_list(uint64_t id, uint64_t list_id) {
  if (id == 0 && ref(list_id))
    return;
  def(id);
  v_list_full();
}

/* Obj{a: the list, b: None}, defined as id (0: referred to as obj_id),
 * holding the list defined as list_id (0: referred to). */
static void v_obj(uint64_t id, uint64_t obj_id, uint64_t list_id) {
  if (id == 0 && ref(obj_id))
    return;
  def(id);
  ctr_pack_v_struct_begin(&mpk, T_OBJ, 2);
  ctr_pack_pair_begin(&mpk, N_A);
  v_list(list_id, list_id ? list_id : 1);
  ctr_pack_pair_begin(&mpk, N_B);
  ctr_pack_v_none(&mpk, T_NONE);
}

static char *trace_text(const char *dir) { return slurp(dir, "trace.json"); }

/* Runs script in a session of this configuration once with DEF and REF
 * and once with every value in full: the traces must be the same text.
 * *a holds the folders of the first. */
static void same_traces(run_t *a, const char *yaml, const char *const *sets,
                        void (*script)(run_t *)) {
  run_t b;

  refs = true;
  run_open(a, yaml, sets);
  script(a);
  run_close(a, true);
  refs = false;
  run_open(&b, yaml, sets);
  script(&b);
  run_close(&b, true);
  ck_assert_int_eq(a->ndirs, b.ndirs);
  for (int i = 0; i < a->ndirs; i++) {
    char *x = trace_text(a->dirs[i]), *y = trace_text(b.dirs[i]);
    ck_assert_str_eq(x, y);
    free(x);
    free(y);
  }
  run_remove(&b);
}

static int count_of(const char *text, const char *what) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, what)) != NULL; p++)
    n++;
  return n;
}

/* DEF and REF in VARS (flat and not), CALL, RETURN and STACK, nested in a
 * DEF and in a plain value: the trace is the one of full values. */
static void script_everywhere(run_t *r) {
  declare_all();
  ctr_pack_step(&mpk, P_APP, 1);
  ctr_pack_vars_begin(&mpk, 2);
  ctr_pack_pair_begin(&mpk, N_SELF);
  v_obj(2, 0, 1); /* DEF 2 Obj{a: DEF 1 list} */
  ctr_pack_pair_begin(&mpk, N_X);
  ctr_pack_v_int(&mpk, T_INT, 5);
  ctr_pack_step(&mpk, P_APP, 2);
  ctr_pack_vars_begin(&mpk, 2);
  ctr_pack_pair_begin(&mpk, N_SELF);
  v_obj(0, 2, 0);
  ctr_pack_pair_begin(&mpk, N_X);
  v_list(0, 1);
  run_ok(r);
  ctr_pack_call_begin(&mpk, 0, 1);
  ctr_pack_pair_begin(&mpk, N_SELF);
  v_obj(0, 2, 0);
  one_var(P_APP, 11, N_A);
  ctr_pack_v_tuple_begin(&mpk, T_LIST, 2);
  v_list(0, 1);
  v_obj(0, 2, 0);
  ctr_pack_return_begin(&mpk);
  v_list(0, 1);
  run_ok(r);
  /* The live stack, as after a RESUME: a synthetic call with the frame's
   * variables. */
  ctr_pack_stack_begin(&mpk, 0, 1);
  ctr_pack_frame_begin(&mpk, 0, 12, 2);
  ctr_pack_pair_begin(&mpk, N_SELF);
  v_obj(0, 2, 0);
  ctr_pack_pair_begin(&mpk, N_X);
  def(3); /* a DEF of REFs */
  ctr_pack_v_seq_begin(&mpk, T_LIST, 2);
  v_obj(0, 2, 0);
  v_list(0, 1);
  one_var(P_APP, 13, N_X);
  if (!ref(3)) {
    ctr_pack_v_seq_begin(&mpk, T_LIST, 2);
    v_obj(0, 2, 0);
    v_list(0, 1);
  }
  ctr_pack_return_begin(&mpk);
  ctr_pack_v_none(&mpk, T_NONE);
  ctr_pack_bye(&mpk, 0);
  run_ok(r);
}

START_TEST(refs_render_as_full_values) {
  run_t a;
  char *text;

  same_traces(&a, NULL, NULL, script_everywhere);
  text = trace_text(a.dirs[0]);
  /* Every place shows the list: the first VARS once, the second twice,
   * the call, the tuple twice, the return, the synthetic call three times
   * and the last VARS twice. */
  ck_assert_int_eq(count_of(text, "hello world"), 12);
  free(text);
  run_remove(&a);
}
END_TEST

/* Definitions made where nothing is written (a filtered step, a stopped
 * session) still count; a REF in a later interval declares its types in
 * that trace again. */
static void script_unwritten(run_t *r) {
  declare_all();
  one_var(P_LIB, 5, N_SELF);
  v_obj(2, 0, 1);
  one_var(P_APP, 1, N_SELF);
  v_obj(0, 2, 0);
  run_ok(r);
  ck_assert_int_eq(ctr_session_control(r->s, false), 1);
  one_var(P_APP, 2, N_X);
  def(3);
  ctr_pack_v_seq_begin(&mpk, T_LIST, 1);
  v_list(0, 1);
  run_ok(r);
  ck_assert_int_eq(ctr_session_control(r->s, true), 1);
  ctr_pack_step(&mpk, P_APP, 3);
  ctr_pack_vars_begin(&mpk, 2);
  ctr_pack_pair_begin(&mpk, N_SELF);
  v_obj(0, 2, 0);
  ctr_pack_pair_begin(&mpk, N_X);
  if (!ref(3)) {
    ctr_pack_v_seq_begin(&mpk, T_LIST, 1);
    v_list(0, 1);
  }
  ctr_pack_bye(&mpk, 0);
  run_ok(r);
}

START_TEST(refs_to_unwritten_and_earlier_intervals) {
  run_t a;
  char *text;

  same_traces(&a, NULL, NULL, script_unwritten);
  ck_assert_int_eq(a.ndirs, 2);
  text = trace_text(a.dirs[1]);
  ck_assert_int_eq(count_of(text, "\"lang_type\":\"Obj\""), 1);
  ck_assert_int_eq(count_of(text, "hello world"), 2);
  free(text);
  run_remove(&a);
}
END_TEST

/* With two slots, DEF 3 takes the slot of 1: Obj (2) still shows the list
 * it was defined with. */
static void script_evicted(run_t *r) {
  declare_all();
  one_var(P_APP, 1, N_SELF);
  v_obj(2, 0, 1);
  one_var(P_APP, 2, N_X);
  def(3);
  ctr_pack_v_int(&mpk, T_INT, 1234567);
  for (int i = 0; i < 3; i++) {
    one_var(P_APP, 3 + i, N_SELF);
    v_obj(0, 2, 0);
  }
  run_ok(r);
}

START_TEST(kept_definition_outlives_its_slot) {
  static const char *const two[] = {"limits.value_refs", "2", NULL};
  const char *why = "";
  run_t r;

  same_traces(&r, NULL, two, script_evicted);
  run_remove(&r);
  /* And a REF to 1 is an error. */
  refs = true;
  run_open(&r, NULL, two);
  script_evicted(&r);
  one_var(P_APP, 9, N_X);
  ref(1);
  ck_assert_int_eq(run_send(&r, &why), CTR_ERANGE);
  ck_assert_str_eq(why, "REF to a definition that is not kept");
  run_close(&r, false);
}
END_TEST

/* A value rule sees through references: a rule's variable whose value is
 * a REF is redacted, and text hidden under one name is hidden in a REF to
 * it and in an object holding it. */
static void script_rules(run_t *r) {
  declare_all();
  one_var(P_APP, 1, N_TOKEN);
  def(1);
  ctr_pack_v_string(&mpk, T_STR, "hunter2-secret", 14);
  ctr_pack_step(&mpk, P_APP, 2);
  ctr_pack_vars_begin(&mpk, 2);
  ctr_pack_pair_begin(&mpk, N_X);
  if (!ref(1))
    ctr_pack_v_string(&mpk, T_STR, "hunter2-secret", 14);
  ctr_pack_pair_begin(&mpk, N_SELF);
  def(2);
  ctr_pack_v_struct_begin(&mpk, T_OBJ, 1);
  ctr_pack_pair_begin(&mpk, N_A);
  if (!ref(1))
    ctr_pack_v_string(&mpk, T_STR, "hunter2-secret", 14);
  one_var(P_APP, 3, N_B);
  if (!ref(2)) {
    ctr_pack_v_struct_begin(&mpk, T_OBJ, 1);
    ctr_pack_pair_begin(&mpk, N_A);
    ctr_pack_v_string(&mpk, T_STR, "hunter2-secret", 14);
  }
  /* Shown before a rule hides it, then not. */
  one_var(P_APP, 4, N_X);
  def(3);
  ctr_pack_v_string(&mpk, T_STR, "other words", 11);
  one_var(P_APP, 5, N_TOKEN);
  if (!ref(3))
    ctr_pack_v_string(&mpk, T_STR, "other words", 11);
  one_var(P_APP, 6, N_X);
  if (!ref(3))
    ctr_pack_v_string(&mpk, T_STR, "other words", 11);
  ctr_pack_bye(&mpk, 0);
  run_ok(r);
}

START_TEST(value_rules_see_through_refs) {
  static const char yaml[] =
      "filter:\n  values:\n    - {name: token, action: redact}\n";
  run_t a;
  char *text;

  same_traces(&a, yaml, NULL, script_rules);
  text = trace_text(a.dirs[0]);
  ck_assert_int_eq(count_of(text, "hunter2"), 0);
  ck_assert_int_eq(count_of(text, "other words"), 1);
  /* Six values and their type's name. */
  ck_assert_int_eq(count_of(text, "<redacted>"), 7);
  free(text);
  run_remove(&a);
}
END_TEST

/* One hostile message after the declarations; its error and reason. */
typedef struct bad_s {
  void (*pack)(void);
  int code;
  const char *why;
} bad_t;

static void raw_def(uint64_t id) {
  refs = true;
  def(id);
}
static void raw_ref(uint64_t id) {
  refs = true;
  ref(id);
}
static void b_ref_first(void) {
  one_var(P_APP, 1, N_X);
  raw_ref(0);
}
static void b_def_twice(void) {
  one_var(P_APP, 1, N_X);
  raw_def(5);
  ctr_pack_v_int(&mpk, T_INT, 1);
  one_var(P_APP, 1, N_X);
  raw_def(5);
  ctr_pack_v_int(&mpk, T_INT, 1);
}
static void b_def_def(void) {
  one_var(P_APP, 1, N_X);
  raw_def(5);
  raw_def(4);
  ctr_pack_v_int(&mpk, T_INT, 1);
}
static void b_def_ref(void) {
  one_var(P_APP, 1, N_X);
  raw_def(1);
  ctr_pack_v_int(&mpk, T_INT, 1);
  one_var(P_APP, 1, N_X);
  raw_def(2);
  raw_ref(1);
}
static void b_huge(void) {
  /* The largest id works; no DEF can follow it, and its neighbour was
   * never made. */
  one_var(P_APP, 1, N_X);
  raw_def(UINT64_MAX);
  ctr_pack_v_int(&mpk, T_INT, 1);
  one_var(P_APP, 1, N_X);
  raw_ref(UINT64_MAX);
  one_var(P_APP, 1, N_X);
  raw_ref(UINT64_MAX - 4096);
}
static void b_deep(void) {
  /* Each DEF nests the last one one level deeper. */
  one_var(P_APP, 1, N_X);
  raw_def(1);
  ctr_pack_v_int(&mpk, T_INT, 1);
  for (uint64_t i = 2; i < 40; i++) {
    one_var(P_APP, 1, N_X);
    raw_def(i);
    ctr_pack_v_seq_begin(&mpk, T_LIST, 1);
    raw_ref(i - 1);
  }
}
static void b_wide(void) {
  /* 1000 values, 1100 times over: past limits.max_elements. */
  one_var(P_APP, 1, N_X);
  raw_def(1);
  ctr_pack_v_seq_begin(&mpk, T_LIST, 999);
  for (int i = 0; i < 999; i++)
    ctr_pack_v_int(&mpk, T_INT, i);
  one_var(P_APP, 1, N_X);
  raw_def(2);
  ctr_pack_v_seq_begin(&mpk, T_LIST, 1100);
  for (int i = 0; i < 1100; i++)
    raw_ref(1);
}
static void b_many_refs(void) {
  /* No one value is too large, but the message is. */
  one_var(P_APP, 1, N_X);
  raw_def(1);
  ctr_pack_v_seq_begin(&mpk, T_LIST, 999);
  for (int i = 0; i < 999; i++)
    ctr_pack_v_int(&mpk, T_INT, i);
  ctr_pack_step(&mpk, P_APP, 1);
  ctr_pack_vars_begin(&mpk, 1100);
  for (uint32_t i = 0; i < 1100; i++) {
    ctr_pack_pair_begin(&mpk, N_X);
    raw_ref(1);
  }
}
static void b_ext(void) {
  one_var(P_APP, 1, N_X);
  ctr_pack_v_seq_begin(&mpk, T_LIST, 1);
  msgpack_pack_ext_with_body(&mpk, "\x01\x02\x03\x04\x05\x06\x07\x08", 8, 1);
}
static void b_ext_payload(void) {
  one_var(P_APP, 1, N_X);
  raw_def(1);
  msgpack_pack_array(&mpk, 3);
  msgpack_pack_uint32(&mpk, CTR_V_STRING);
  msgpack_pack_uint32(&mpk, T_STR);
  msgpack_pack_ext_with_body(&mpk, "\x01\x02\x03\x04\x05\x06\x07\x08", 8, 1);
}
static void b_ref_in_filtered_call(void) {
  /* Checked even where nothing is written. */
  ctr_pack_step(&mpk, P_LIB, 1);
  ctr_pack_call_begin(&mpk, 0, 1);
  ctr_pack_pair_begin(&mpk, N_X);
  raw_ref(3);
}
static void b_return_ref(void) {
  ctr_pack_return_begin(&mpk);
  raw_ref(3);
}
static void b_stack_def(void) {
  ctr_pack_stack_begin(&mpk, 0, 1);
  ctr_pack_frame_begin(&mpk, 0, 12, 1);
  ctr_pack_pair_begin(&mpk, N_X);
  raw_def(1);
  raw_def(0);
  ctr_pack_v_int(&mpk, T_INT, 1);
}

START_TEST(hostile_refs_are_refused) {
  static const bad_t cases[] = {
      {b_ref_first, CTR_ERANGE, "REF to a definition that is not kept"},
      {b_def_twice, CTR_ERANGE, "DEF id not above the previous DEF's"},
      {b_def_def, CTR_EPROTO, "DEF of a DEF or REF value"},
      {b_def_ref, CTR_EPROTO, "DEF of a DEF or REF value"},
      {b_huge, CTR_ERANGE, "REF to a definition that is not kept"},
      {b_deep, CTR_ELIMIT,
       "value with references expanded nested deeper than limits.max_depth"},
      {b_wide, CTR_ELIMIT, "DEF value with references expanded holds more "
                           "than limits.max_elements values"},
      {b_many_refs, CTR_ELIMIT, "values with references expanded hold more "
                                "than limits.max_elements values"},
      {b_ext, CTR_EPROTO, "ext object in a value"},
      {b_ext_payload, CTR_EPROTO, "ext object in a value"},
      {b_ref_in_filtered_call, CTR_ERANGE,
       "REF to a definition that is not kept"},
      {b_return_ref, CTR_ERANGE, "REF to a definition that is not kept"},
      {b_stack_def, CTR_EPROTO, "DEF of a DEF or REF value"},
  };
  static const char *const off[] = {"limits.value_refs", "0", NULL};

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *why = "";
    run_t r;
    run_open(&r, NULL, NULL);
    declare_all();
    run_ok(&r);
    cases[i].pack();
    ck_assert_msg(run_send(&r, &why) == cases[i].code, "case %zu: %s", i, why);
    ck_assert_str_eq(why, cases[i].why);
    run_close(&r, false);
  }
  /* With limits.value_refs 0 any DEF or REF is an error, and WELCOME says
   * so. */
  for (int i = 0; i < 2; i++) {
    const char *why = "";
    ctr_welcome_t w;
    run_t r;
    run_open(&r, NULL, i ? off : NULL);
    ctr_session_welcome(r.s, &w);
    ck_assert_uint_eq(w.refs, i ? 0 : 4096);
    declare_all();
    one_var(P_APP, 1, N_X);
    raw_def(1);
    ctr_pack_v_int(&mpk, T_INT, 1);
    ck_assert_int_eq(run_send(&r, &why), i ? CTR_EPROTO : 0);
    if (i)
      ck_assert_str_eq(why, "DEF or REF value, but limits.value_refs is 0");
    run_close(&r, false);
  }
}
END_TEST

/* ---- sessions: message sequences and the records they give ----------- */

/* One of each record a session writes, with a value rule redacting an
 * argument and a return value: the exact JSON text, which the writer
 * refactor must keep. */
static void script_records(run_t *r) {
  declare_all();
  ctr_pack_step(&mpk, P_APP, 1);
  ctr_pack_vars_begin(&mpk, 2);
  ctr_pack_pair_begin(&mpk, N_X);
  ctr_pack_v_int(&mpk, T_INT, 5);
  ctr_pack_pair_begin(&mpk, N_SELF);
  v_obj(0, 0, 0);
  ctr_pack_call_begin(&mpk, 0, 2);
  ctr_pack_pair_begin(&mpk, N_A);
  ctr_pack_v_float(&mpk, T_FLOAT, 0.5);
  ctr_pack_pair_begin(&mpk, N_TOKEN);
  ctr_pack_v_string(&mpk, T_STR, "s3cret", 6);
  ctr_pack_step(&mpk, P_APP, 11);
  ctr_pack_event(&mpk, CTR_EV_WRITE, "hi\n", 3);
  ctr_pack_thread(&mpk, 7);
  ctr_pack_step(&mpk, P_APP, 2);
  ctr_pack_thread(&mpk, 0);
  ctr_pack_return_begin(&mpk);
  ctr_pack_v_string(&mpk, T_STR, "s3cret", 6);
  ctr_pack_raise(&mpk, "ValueError", 10, "bad", 3);
  ctr_pack_bye(&mpk, 0);
  run_ok(r);
}

/* Like ck_assert_str_eq for texts longer than Check's messages: shows
 * where they part. */
static void same_text(const char *got, const char *want) {
  size_t i = 0;

  while (got[i] && got[i] == want[i])
    i++;
  ck_assert_msg(got[i] == want[i],
                "texts part at byte %zu:\n got: %.300s\nwant: %.300s", i,
                got + i, want + i);
}

START_TEST(session_writes_each_record_as_codetracer_json) {
  static const char *const sets[] = {"output.float_format", "number", NULL};
  run_t r;
  char *text;

  refs = false;
  run_open(&r, "filter:\n  values:\n    - {name: token, action: redact}\n",
           sets);
  script_records(&r);
  run_close(&r, true);
  ck_assert_int_eq(r.ndirs, 1);
  text = trace_text(r.dirs[0]);
  same_text(
      text,
      "[\n"
      "{\"Path\":\"/x/p.py\"},\n"
      "{\"Function\":{\"path_id\":0,\"line\":1,\"name\":\"<top-level>\"}},\n"
      "{\"Call\":{\"function_id\":0,\"args\":[]}},\n"
      "{\"Type\":{\"kind\":30,\"lang_type\":\"None\",\"specific_info\":{"
      "\"kind\":\"N"
      "one\"}}},\n"
      "{\"Step\":{\"path_id\":0,\"line\":1}},\n"
      "{\"VariableName\":\"x\"},\n"
      "{\"Type\":{\"kind\":7,\"lang_type\":\"int\",\"specific_info\":{\"kind\":"
      "\"Non"
      "e\"}}},\n"
      "{\"Value\":{\"variable_id\":0,\"value\":{\"kind\":\"Int\",\"i\":5,"
      "\"type_id\":"
      "1}}},\n"
      "{\"VariableName\":\"self\"},\n"
      "{\"VariableName\":\"a\"},\n"
      "{\"Type\":{\"kind\":0,\"lang_type\":\"list\",\"specific_info\":{"
      "\"kind\":\"No"
      "ne\"}}},\n"
      "{\"Type\":{\"kind\":8,\"lang_type\":\"float\",\"specific_info\":{"
      "\"kind\":\"N"
      "one\"}}},\n"
      "{\"Type\":{\"kind\":9,\"lang_type\":\"str\",\"specific_info\":{\"kind\":"
      "\"Non"
      "e\"}}},\n"
      "{\"VariableName\":\"b\"},\n"
      "{\"Type\":{\"kind\":30,\"lang_type\":\"NoneType\",\"specific_info\":{"
      "\"kind"
      "\":\"None\"}}},\n"
      "{\"Type\":{\"kind\":6,\"lang_type\":\"Obj\",\"specific_info\":{\"kind\":"
      "\"Str"
      "uct\",\"fields\":[{\"name\":\"a\",\"type_id\":2},{\"name\":\"b\",\"type_"
      "id\":5}"
      "]}}},\n"
      "{\"Value\":{\"variable_id\":1,\"value\":{\"kind\":\"Struct\",\"field_"
      "values"
      "\":[{\"kind\":\"Sequence\",\"elements\":[{\"kind\":\"Int\",\"i\":1,"
      "\"type_id\":"
      "1},{\"kind\":\"Float\",\"f\":2.5,\"type_id\":3},{\"kind\":\"String\","
      "\"text\":"
      "\"hello "
      "world\",\"type_id\":4}],\"is_slice\":false,\"type_id\":2},{\"kind"
      "\":\"None\",\"type_id\":5}],\"type_id\":6}}},\n"
      "{\"Function\":{\"path_id\":0,\"line\":10,\"name\":\"f\"}},\n"
      "{\"Type\":{\"kind\":16,\"lang_type\":\"<redacted>\",\"specific_info\":{"
      "\"ki"
      "nd\":\"None\"}}},\n"
      "{\"VariableName\":\"token\"},\n"
      "{\"Step\":{\"path_id\":0,\"line\":10}},\n"
      "{\"Call\":{\"function_id\":1,\"args\":[{\"variable_id\":2,\"value\":{"
      "\"kind"
      "\":\"Float\",\"f\":0.5,\"type_id\":3}},{\"variable_id\":4,\"value\":{"
      "\"kind\""
      ":\"Raw\",\"r\":\"<redacted>\",\"type_id\":7}}]}},\n"
      "{\"Step\":{\"path_id\":0,\"line\":11}},\n"
      "{\"Event\":{\"kind\":0,\"metadata\":\"\",\"content\":\"hi\\n\"}},\n"
      "{\"ThreadSwitch\":7},\n"
      "{\"Step\":{\"path_id\":0,\"line\":2}},\n"
      "{\"ThreadSwitch\":0},\n"
      "{\"Return\":{\"return_value\":{\"kind\":\"Raw\",\"r\":\"<redacted>\","
      "\"type_i"
      "d\":7}}},\n"
      "{\"Event\":{\"kind\":11,\"metadata\":\"\",\"content\":\"ValueError: "
      "bad\"}}\n"
      "]\n");
  free(text);
  /* The folder's own recording id. */
  text = slurp(r.dirs[0], "trace_metadata.json");
  ck_assert_ptr_nonnull(strstr(text, "\"args\":[],\"recording_id\":\""));
  free(text);
  run_remove(&r);
}
END_TEST

Suite *ctr_trace_suite(void) {
  Suite *s = suite_create("trace");
  TCase *json = tcase_create("json");
  TCase *values = tcase_create("values");
  TCase *folder = tcase_create("folder");
  TCase *defs = tcase_create("refs");

  tcase_add_test(json, json_escapes_and_keeps_utf8);
  tcase_add_test(json, json_invalid_utf8_becomes_text_escapes);
  tcase_add_test(json, printable_text_cannot_forge_lines_or_escapes);
  tcase_add_test(json, floats_round_trip_as_text);
  tcase_add_test(json, float_texts_kept_exactly);
  tcase_add_test(json, integers);
  tcase_add_test(json, base64_pads);
  tcase_add_test(json, fragments);
  tcase_add_test(values, renders_sequence);
  tcase_add_test(values, renders_struct_and_bigint);
  tcase_add_test(values, rejects_bad_values);
  tcase_add_test(folder, trace_is_closed_json_after_every_flush);
  tcase_add_test(folder, source_paths_cannot_escape);
  tcase_add_test(folder, folder_belongs_to_its_owner);
  tcase_add_test(folder, cut_trace_json_is_closed_again);
  tcase_add_test(folder, folder_names_are_safe);
  tcase_add_test(folder, a_folder_without_trace_json);
  suite_add_tcase(s, json);
  suite_add_tcase(s, values);
  tcase_add_test(defs, refs_render_as_full_values);
  tcase_add_test(defs, refs_to_unwritten_and_earlier_intervals);
  tcase_add_test(defs, kept_definition_outlives_its_slot);
  tcase_add_test(defs, value_rules_see_through_refs);
  tcase_add_test(defs, hostile_refs_are_refused);
  tcase_add_test(defs, session_writes_each_record_as_codetracer_json);
  tcase_set_timeout(defs, 30);
  suite_add_tcase(s, folder);
  suite_add_tcase(s, defs);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(ctr_trace_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
