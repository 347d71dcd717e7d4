/* check_trace.c: the daemon's output side: JSON text, value rendering from
 * untrusted wire values, and the trace folder writer. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctr_buf.h"
#include "ctr_error.h"
#include "ctr_proto.h"
#include "ctr_trace.h"
#include "ctr_value.h"

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

static const ctr_value_ops_t ops = {NULL, t_type, t_name, t_struct, true, 4};

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
                                  "[\"a\"]"), 0);
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
                         "\"args\":[\"a\"],\"ctrec\":{\"state\":\"complete\"}}\n");
  free(text);
  text = slurp(dir, "files/x/prog.rb");
  ck_assert_str_eq(text, "a = 1\n");
  free(text);
  ck_assert_int_eq(ctr_trace_close(t), 0);
  ck_assert_int_eq(ctr_trace_recover(root), 0);
}
END_TEST

START_TEST(folder_names_are_safe) {
  char root[] = "/tmp/ctrec-check-XXXXXX";
  const char *base;
  ctr_trace_t *t;

  ck_assert_ptr_nonnull(mkdtemp(root));
  ck_assert_int_eq(ctr_trace_open(&t, root, "-c", 7, 0, 1, "/", "-c", "[]"), 0);
  base = strrchr(ctr_trace_dir(t), '/') + 1;
  ck_assert_str_eq(base, "_c-7-19700101T000000Z");
  ctr_trace_close(t);
  ck_assert_int_eq(ctr_trace_open(&t, root, "/x/../a b.rb", 7, 0, 3, "/", "p", "[]"),
                   0);
  base = strrchr(ctr_trace_dir(t), '/') + 1;
  ck_assert_str_eq(base, "a_b.rb-7-19700101T000000Z-3");
  ctr_trace_close(t);
}
END_TEST

START_TEST(source_paths_cannot_escape) {
  char root[] = "/tmp/ctrec-check-XXXXXX";
  ctr_trace_t *t;

  ck_assert_ptr_nonnull(mkdtemp(root));
  ck_assert_int_eq(ctr_trace_open(&t, root, "p", 1, 0, 2, "/", "p", "[]"), 0);
  ck_assert_int_eq(ctr_trace_source(t, "/a/../../etc/x", "x", 1), CTR_EPATH);
  ck_assert_int_eq(ctr_trace_source(t, "/a/..", "x", 1), CTR_EPATH);
  ck_assert_int_eq(ctr_trace_source(t, "/a/./b/c.rb", "x", 1), 0);
  ctr_trace_close(t);
}
END_TEST

Suite *ctr_trace_suite(void) {
  Suite *s = suite_create("trace");
  TCase *json = tcase_create("json");
  TCase *values = tcase_create("values");
  TCase *folder = tcase_create("folder");

  tcase_add_test(json, json_escapes_and_keeps_utf8);
  tcase_add_test(json, json_invalid_utf8_becomes_text_escapes);
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
  tcase_add_test(folder, folder_names_are_safe);
  suite_add_tcase(s, json);
  suite_add_tcase(s, values);
  suite_add_tcase(s, folder);
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
