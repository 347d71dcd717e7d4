/* check_intern.c: a session's interning, through a writer backend that
 * notes what it is asked to declare: dense shim ids, limits, lazy trace
 * ids per trace, one path id per text, struct types by field names. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctr_error.h"
#include "ctr_intern.h"

/* A writer that counts declarations and remembers the last name. */
typedef struct fake_s {
  ctr_writer_t base;
  int64_t paths, funcs, types, names, sources;
  char last[64];
} fake_t;

static fake_t *F(ctr_writer_t *w) { return (fake_t *)w; }
static void note(ctr_writer_t *w, const char *t, size_t n) {
  snprintf(F(w)->last, sizeof(F(w)->last), "%.*s", (int)n, t);
}
static int64_t f_path(ctr_writer_t *w, const char *t, size_t n) {
  note(w, t, n);
  return F(w)->paths++;
}
static int f_source(ctr_writer_t *w, const char *p, const char *t, size_t n) {
  (void)p;
  (void)t;
  (void)n;
  F(w)->sources++;
  return 0;
}
static int64_t f_function(ctr_writer_t *w, int64_t path, int64_t line,
                          const char *t, size_t n) {
  (void)path;
  (void)line;
  note(w, t, n);
  return F(w)->funcs++;
}
static int64_t f_type(ctr_writer_t *w, int kind, const char *t, size_t n) {
  (void)kind;
  note(w, t, n);
  return F(w)->types++;
}
static int64_t f_struct(ctr_writer_t *w, const char *t, size_t n,
                        const char *const *fields, const uint32_t *lens,
                        const int64_t *tids, uint32_t nf) {
  (void)tids;
  note(w, t, n);
  if (nf)
    note(w, fields[nf - 1], lens[nf - 1]);
  return F(w)->types++;
}
static int64_t f_varname(ctr_writer_t *w, const char *t, size_t n) {
  note(w, t, n);
  return F(w)->names++;
}

static const ctr_writer_backend_t fake_backend = {
    .name = "fake",
    .path = f_path,
    .source = f_source,
    .function = f_function,
    .type = f_type,
    .struct_type = f_struct,
    .varname = f_varname,
};

static ctr_msg_t intern_msg(int tag, uint32_t id, const char *text) {
  ctr_msg_t m;

  memset(&m, 0, sizeof(m));
  m.tag = tag;
  m.u.intern.id = id;
  m.u.intern.text.ptr = text;
  m.u.intern.text.len = (uint32_t)strlen(text);
  return m;
}

static ctr_msg_t func_msg(uint32_t id, uint32_t path, const char *name) {
  ctr_msg_t m;

  memset(&m, 0, sizeof(m));
  m.tag = CTR_MSG_FUNC;
  m.u.func.id = id;
  m.u.func.path_id = path;
  m.u.func.line = 3;
  m.u.func.name.ptr = name;
  m.u.func.name.len = (uint32_t)strlen(name);
  return m;
}

static ctr_msg_t type_msg(uint32_t id, const char *name) {
  ctr_msg_t m;

  memset(&m, 0, sizeof(m));
  m.tag = CTR_MSG_TYPE;
  m.u.type.id = id;
  m.u.type.kind = 7;
  m.u.type.name.ptr = name;
  m.u.type.name.len = (uint32_t)strlen(name);
  return m;
}

static void declare_ok(ctr_intern_t *in, ctr_msg_t m) {
  const char *why = NULL;

  ck_assert_msg(ctr_intern_declare(in, &m, &why) == 0, "%s", why);
}

START_TEST(ids_must_be_dense_and_within_max_ids) {
  ctr_intern_t in;
  ctr_msg_t m;
  const char *why;

  ctr_intern_init(&in, 1, "python", 2, 1024);
  declare_ok(&in, intern_msg(CTR_MSG_PATH, 0, "<string>"));
  m = intern_msg(CTR_MSG_PATH, 2, "/a.py");
  ck_assert_int_eq(ctr_intern_declare(&in, &m, &why), CTR_ERANGE);
  m = intern_msg(CTR_MSG_PATH, 1, "/a/../b.py");
  ck_assert_int_eq(ctr_intern_declare(&in, &m, &why), CTR_EPATH);
  declare_ok(&in, intern_msg(CTR_MSG_PATH, 1, "/a.py"));
  m = intern_msg(CTR_MSG_PATH, 2, "/b.py");
  ck_assert_int_eq(ctr_intern_declare(&in, &m, &why), CTR_ELIMIT);
  m = func_msg(0, 5, "f");
  ck_assert_int_eq(ctr_intern_declare(&in, &m, &why), CTR_ERANGE);
  ck_assert_uint_eq(in.paths.n, 2);
  ctr_intern_free(&in);
}
END_TEST

START_TEST(trace_ids_are_declared_on_first_use_per_trace) {
  fake_t w1 = {.base.be = &fake_backend}, w2 = {.base.be = &fake_backend};
  ctr_intern_t in;

  ctr_intern_init(&in, 1, "python", 100, 1024);
  declare_ok(&in, intern_msg(CTR_MSG_PATH, 0, "<string>"));
  declare_ok(&in, intern_msg(CTR_MSG_PATH, 1, "<other>"));
  declare_ok(&in, func_msg(0, 1, "g"));
  declare_ok(&in, type_msg(0, "int"));
  declare_ok(&in, intern_msg(CTR_MSG_VARNAME, 0, "x"));
  ctr_intern_trace(&in, &w1.base);
  /* The program's path first, then what records use, once each. */
  ck_assert_int_eq(ctr_intern_path_text(&in, "<other>", 7), 0);
  ck_assert_int_eq(ctr_intern_path(&in, 0), 1);
  ck_assert_int_eq(ctr_intern_path(&in, 0), 1);
  /* A path with the text of one declared already has its id. */
  ck_assert_int_eq(ctr_intern_func(&in, 0), 0);
  ck_assert_int_eq(w1.paths, 2);
  ck_assert_str_eq(w1.last, "g");
  ck_assert_int_eq(ctr_intern_type(&in, 0), 0);
  ck_assert_int_eq(ctr_intern_type(&in, 0), 0);
  ck_assert_int_eq(ctr_intern_name(&in, 0), 0);
  ck_assert_int_eq(w1.types + w1.names, 2);
  ck_assert_int_lt(ctr_intern_type(&in, 1), 0);
  ck_assert_int_lt(ctr_intern_name(&in, 1), 0);
  ck_assert_int_lt(ctr_intern_func(&in, 1), 0);
  /* A new trace declares everything again, on first use. */
  ctr_intern_trace(&in, &w2.base);
  ck_assert_int_eq(ctr_intern_name(&in, 0), 0);
  ck_assert_int_eq(w2.names, 1);
  ck_assert_int_eq(w2.paths + w2.types + w2.funcs, 0);
  ck_assert_int_eq(ctr_intern_func(&in, 0), 0);
  ck_assert_int_eq(w2.paths, 1);
  ck_assert_int_eq(w1.names, 1);
  ctr_intern_free(&in);
}
END_TEST

START_TEST(struct_types_are_keyed_by_their_field_names) {
  fake_t w = {.base.be = &fake_backend};
  ctr_intern_t in;
  uint32_t ab[] = {0, 1}, ba[] = {1, 0};
  int64_t tids[] = {0, 0};

  ctr_intern_init(&in, 1, "ruby", 100, 1024);
  declare_ok(&in, type_msg(0, "Point"));
  declare_ok(&in, intern_msg(CTR_MSG_VARNAME, 0, "a"));
  declare_ok(&in, intern_msg(CTR_MSG_VARNAME, 1, "b"));
  ctr_intern_trace(&in, &w.base);
  ck_assert_int_eq(ctr_intern_struct(&in, 0, ab, tids, 2), 0);
  ck_assert_str_eq(w.last, "b");
  ck_assert_int_eq(ctr_intern_struct(&in, 0, ab, tids, 2), 0);
  ck_assert_int_eq(ctr_intern_struct(&in, 0, ba, tids, 2), 1);
  ck_assert_str_eq(w.last, "a");
  ck_assert_int_eq(ctr_intern_struct(&in, 0, ab, tids, 1), 2);
  ck_assert_int_eq(ctr_intern_struct(&in, 1, ab, tids, 1), CTR_ERANGE);
  ck_assert_int_eq(w.types, 3);
  ctr_intern_free(&in);
}
END_TEST

START_TEST(sources_are_copied_once_a_trace_uses_the_path) {
  fake_t w = {.base.be = &fake_backend};
  ctr_intern_t in;
  ctr_msg_t m;
  const char *why;

  ctr_intern_init(&in, 1, "python", 100, 8);
  declare_ok(&in, intern_msg(CTR_MSG_PATH, 0, "<string>"));
  memset(&m, 0, sizeof(m));
  m.tag = CTR_MSG_SOURCE;
  m.u.source.path_id = 0;
  m.u.source.text.ptr = "x = 1\n";
  m.u.source.text.len = 6;
  ck_assert_int_eq(ctr_intern_source(&in, &m, &why), 0);
  ck_assert_int_eq(w.sources, 0);
  ctr_intern_trace(&in, &w.base);
  ctr_intern_path(&in, 0);
  ck_assert_int_eq(w.sources, 1);
  /* SOURCE for a path in use is copied at once; a big one is refused. */
  ck_assert_int_eq(ctr_intern_source(&in, &m, &why), 0);
  ck_assert_int_eq(w.sources, 2);
  m.u.source.text.len = 9;
  ck_assert_int_eq(ctr_intern_source(&in, &m, &why), CTR_ELIMIT);
  m.u.source.path_id = 1;
  ck_assert_int_eq(ctr_intern_source(&in, &m, &why), CTR_ERANGE);
  ctr_intern_free(&in);
}
END_TEST

Suite *ctr_intern_suite(void) {
  Suite *s = suite_create("intern");
  TCase *tc = tcase_create("intern");

  tcase_add_test(tc, ids_must_be_dense_and_within_max_ids);
  tcase_add_test(tc, trace_ids_are_declared_on_first_use_per_trace);
  tcase_add_test(tc, struct_types_are_keyed_by_their_field_names);
  tcase_add_test(tc, sources_are_copied_once_a_trace_uses_the_path);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(ctr_intern_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
