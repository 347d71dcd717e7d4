/* check_config.c: the option table, the ctrec.yaml loader, overrides and
 * printing. Bad files under config/bad are checked against their exact
 * message, so a change in wording or position shows up here. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctr_config.h"
#include "ctr_error.h"

#define DATA CTREC_TEST_DATA "/config"
#define EXAMPLE CTREC_TEST_DATA "/../../config/ctrec.yaml"

static void assert_defaults(const ctr_config_t *c) {
  ck_assert_str_eq(c->listen_path, "/run/ctrec/ctrecd.sock");
  ck_assert_uint_eq(c->listen_mode, 0660);
  ck_assert_str_eq(c->output_dir, "/var/lib/ctrec/traces");
  ck_assert_uint_eq(c->flush_interval_ms, 100);
  ck_assert_int_eq(c->float_format, CTR_FLOAT_STRING);
  ck_assert_uint_eq(c->max_frame, 16u << 20);
  ck_assert_uint_eq(c->max_depth, 64);
  ck_assert_uint_eq(c->max_string, 4u << 20);
  ck_assert_uint_eq(c->max_elements, 1048576);
  ck_assert_uint_eq(c->max_ids, 4194304);
  ck_assert_uint_eq(c->max_source, 16u << 20);
  ck_assert_uint_eq(c->max_sessions, 1024);
  ck_assert_uint_eq(c->value_depth, 3);
  ck_assert_uint_eq(c->value_length, 32);
  ck_assert_uint_eq(c->value_string, 1000);
  ck_assert_int_eq(c->log_level, CTR_LOG_INFO);
}

static void assert_config_eq(const ctr_config_t *a, const ctr_config_t *b) {
  ck_assert_str_eq(a->listen_path, b->listen_path);
  ck_assert_uint_eq(a->listen_mode, b->listen_mode);
  ck_assert_str_eq(a->output_dir, b->output_dir);
  ck_assert_uint_eq(a->flush_interval_ms, b->flush_interval_ms);
  ck_assert_int_eq(a->float_format, b->float_format);
  ck_assert_uint_eq(a->max_frame, b->max_frame);
  ck_assert_uint_eq(a->max_depth, b->max_depth);
  ck_assert_uint_eq(a->max_string, b->max_string);
  ck_assert_uint_eq(a->max_elements, b->max_elements);
  ck_assert_uint_eq(a->max_ids, b->max_ids);
  ck_assert_uint_eq(a->max_source, b->max_source);
  ck_assert_uint_eq(a->max_sessions, b->max_sessions);
  ck_assert_uint_eq(a->value_depth, b->value_depth);
  ck_assert_uint_eq(a->value_length, b->value_length);
  ck_assert_uint_eq(a->value_string, b->value_string);
  ck_assert_int_eq(a->log_level, b->log_level);
}

/* Loads good/full.yaml, in which every option differs from its default. */
static void load_full(ctr_config_t *c) {
  char err[512] = "";
  ctr_config_defaults(c);
  ck_assert_msg(ctr_config_load(c, DATA "/good/full.yaml", err, sizeof(err)) ==
                    0,
                "%s", err);
}

START_TEST(test_defaults) {
  ctr_config_t c;
  ctr_config_defaults(&c);
  assert_defaults(&c);
  ctr_config_free(&c);
  ck_assert_ptr_null(c.listen_path);
  ck_assert_ptr_null(c.output_dir);
  /* Freeing twice is harmless because free clears the pointers. */
  ctr_config_free(&c);
}
END_TEST

START_TEST(test_log_level_name) {
  ck_assert_str_eq(ctr_log_level_name(CTR_LOG_ERROR), "error");
  ck_assert_str_eq(ctr_log_level_name(CTR_LOG_WARN), "warn");
  ck_assert_str_eq(ctr_log_level_name(CTR_LOG_INFO), "info");
  ck_assert_str_eq(ctr_log_level_name(CTR_LOG_DEBUG), "debug");
  ck_assert_str_eq(ctr_log_level_name(-1), "unknown");
  ck_assert_str_eq(ctr_log_level_name(4), "unknown");
}
END_TEST

START_TEST(test_example_is_defaults) {
  ctr_config_t c;
  char err[512] = "";
  /* Start from other values so that the example must set every option. */
  load_full(&c);
  ck_assert_msg(ctr_config_load(&c, EXAMPLE, err, sizeof(err)) == 0, "%s", err);
  assert_defaults(&c);
  ctr_config_free(&c);
}
END_TEST

START_TEST(test_full) {
  ctr_config_t c;
  load_full(&c);
  ck_assert_str_eq(c.listen_path, "/tmp/ctrec test/ctrecd.sock");
  ck_assert_uint_eq(c.listen_mode, 0600);
  ck_assert_str_eq(c.output_dir, "/srv/traces/caf\xc3\xa9");
  ck_assert_uint_eq(c.flush_interval_ms, 60000);
  ck_assert_int_eq(c.float_format, CTR_FLOAT_NUMBER);
  ck_assert_uint_eq(c.max_frame, 65536);
  ck_assert_uint_eq(c.max_depth, 1024);
  ck_assert_uint_eq(c.max_string, 1073741824);
  ck_assert_uint_eq(c.max_elements, 1);
  ck_assert_uint_eq(c.max_ids, 123);
  ck_assert_uint_eq(c.max_source, 1000000);
  ck_assert_uint_eq(c.max_sessions, 65536);
  ck_assert_uint_eq(c.value_depth, 0);
  ck_assert_uint_eq(c.value_length, 1048576);
  ck_assert_uint_eq(c.value_string, 0);
  ck_assert_int_eq(c.log_level, CTR_LOG_DEBUG);
  ctr_config_free(&c);
}
END_TEST

/* Files that set nothing: every option keeps its default. */
static const char *const empty_files[] = {
    "empty.yaml",
    "comments.yaml",
    "null_sections.yaml",
    "null_document.yaml",
};

START_TEST(test_empty_files) {
  ctr_config_t c;
  char path[1024], err[512] = "";
  snprintf(path, sizeof(path), DATA "/good/%s", empty_files[_i]);
  ctr_config_defaults(&c);
  ck_assert_msg(ctr_config_load(&c, path, err, sizeof(err)) == 0, "%s", err);
  assert_defaults(&c);
  ctr_config_free(&c);
}
END_TEST

struct bad_file {
  const char *name;
  const char *message; /* after "<path>:" */
};

static const struct bad_file bad_files[] = {
    {"unknown_key.yaml", "3:3: listen.pth: unknown key"},
    {"unknown_section.yaml", "3:1: filter: unknown key"},
    {"duplicate_key.yaml", "5:3: output.dir: duplicate key (first at 3:3)"},
    {"duplicate_same_value.yaml",
     "4:3: output.flush_interval_ms: duplicate key (first at 3:3)"},
    {"duplicate_section.yaml", "5:1: log: duplicate key (first at 1:1)"},
    {"anchor.yaml", "2:8: aliases and anchors are not supported"},
    {"anchor_mapping.yaml", "1:9: aliases and anchors are not supported"},
    {"alias.yaml", "2:8: aliases and anchors are not supported"},
    {"tag.yaml", "2:8: tags are not supported"},
    {"tag_local.yaml", "1:9: tags are not supported"},
    {"sequence_value.yaml", "2:8: output.dir: expected a scalar"},
    {"mapping_value.yaml", "3:5: log.level: expected a scalar"},
    {"section_sequence.yaml", "5:1: limits: expected a mapping"},
    {"section_scalar.yaml", "1:6: log: expected a mapping"},
    {"complex_key.yaml", "2:5: output: keys must be scalars"},
    {"garbage_number.yaml", "2:22: output.flush_interval_ms: expected a "
                            "decimal integer, got \"10ms\""},
    {"hex_number.yaml",
     "2:14: limits.max_depth: expected a decimal integer, got \"0x40\""},
    {"float_number.yaml",
     "2:14: limits.max_depth: expected a decimal integer, got \"6.4e1\""},
    {"leading_zero.yaml",
     "2:17: limits.max_sessions: expected a decimal integer, got \"0100\""},
    {"below_min.yaml",
     "2:22: output.flush_interval_ms: must be between 10 and 60000"},
    {"above_max.yaml",
     "2:22: output.flush_interval_ms: must be between 10 and 60000"},
    {"overflow.yaml",
     "2:14: limits.max_frame: must be between 65536 and 1073741824"},
    {"negative.yaml", "2:16: limits.value_depth: must be between 0 and 64"},
    {"empty_string.yaml", "2:8: output.dir: must not be empty"},
    {"null_string.yaml", "2:7: output.dir: must not be empty"},
    {"null_number.yaml", "2:14: limits.max_depth: must not be empty"},
    {"nul_byte.yaml", "2:8: output.dir: must not contain a NUL byte"},
    {"path_too_long.yaml", "2:9: listen.path: must be at most 107 bytes long"},
    {"mode_no_zero.yaml",
     "2:9: listen.mode: expected an octal mode such as 0660, got \"660\""},
    {"mode_not_octal.yaml",
     "2:9: listen.mode: expected an octal mode such as 0660, got \"0689\""},
    {"mode_too_big.yaml", "2:9: listen.mode: must be between 0000 and 0777"},
    {"bad_enum.yaml", "2:10: log.level: expected one of error, warn, info, "
                      "debug, got \"verbose\""},
    {"enum_case.yaml", "2:17: output.float_format: expected one of string, "
                       "number, got \"String\""},
    {"two_documents.yaml", "3:1: multiple documents are not supported"},
    {"top_scalar.yaml", "1:1: expected a mapping"},
    {"top_sequence.yaml", "1:1: expected a mapping"},
    {"unterminated.yaml", "3:1: found unexpected end of stream (while "
                          "scanning a quoted scalar at 2:9)"},
    {"bad_indent.yaml", "3:2: did not find expected key (while parsing a "
                        "block mapping at 1:1)"},
    {"tab_indent.yaml", "2:1: found character that cannot start any token "
                        "(while scanning for the next token at 2:1)"},
    {"invalid_utf8.yaml", "3:9: invalid leading UTF-8 octet"},
};

START_TEST(test_bad_files) {
  const struct bad_file *b = &bad_files[_i];
  ctr_config_t c, before;
  char path[1024], want[1536], err[512] = "";

  snprintf(path, sizeof(path), DATA "/bad/%s", b->name);
  snprintf(want, sizeof(want), "%s:%s", path, b->message);
  load_full(&c);
  load_full(&before);
  ck_assert_int_eq(ctr_config_load(&c, path, err, sizeof(err)), CTR_ECONFIG);
  ck_assert_str_eq(err, want);
  /* A failed load must leave every earlier value in place. */
  assert_config_eq(&c, &before);
  ctr_config_free(&c);
  ctr_config_free(&before);
}
END_TEST

START_TEST(test_unreadable) {
  ctr_config_t c;
  char err[512] = "";
  ctr_config_defaults(&c);
  ck_assert_int_eq(
      ctr_config_load(&c, DATA "/no-such-file.yaml", err, sizeof(err)),
      CTR_ECONFIG);
  ck_assert_str_eq(err, DATA "/no-such-file.yaml: No such file or directory");
  ck_assert_int_eq(ctr_config_load(&c, DATA, err, sizeof(err)), CTR_ECONFIG);
  ck_assert_str_eq(err, DATA ": Is a directory");
  /* Without room for a message the result is still reported. */
  ck_assert_int_eq(ctr_config_load(&c, DATA "/bad/tag.yaml", NULL, 0),
                   CTR_ECONFIG);
  assert_defaults(&c);
  ctr_config_free(&c);
}
END_TEST

START_TEST(test_truncated_message) {
  ctr_config_t c;
  char err[8];
  ctr_config_defaults(&c);
  ck_assert_int_eq(ctr_config_load(&c, DATA "/bad/tag.yaml", err, sizeof(err)),
                   CTR_ECONFIG);
  ck_assert_uint_eq(strlen(err), sizeof(err) - 1);
  ck_assert_int_eq(
      ctr_config_set(&c, "log.level", "x", "--log-level", err, sizeof(err)),
      CTR_ECONFIG);
  ck_assert_uint_eq(strlen(err), sizeof(err) - 1);
  ctr_config_free(&c);
}
END_TEST

/* Prints c to a temporary file, loads it over defaults, and compares. */
static void assert_round_trip(const ctr_config_t *c) {
  char path[] = "/tmp/check_config_XXXXXX", err[512] = "";
  ctr_config_t back;
  int fd = mkstemp(path), rc;
  FILE *f;

  ck_assert_int_ge(fd, 0);
  f = fdopen(fd, "w");
  ck_assert_ptr_nonnull(f);
  ctr_config_print(c, f);
  ck_assert_int_eq(fclose(f), 0);
  ctr_config_defaults(&back);
  rc = ctr_config_load(&back, path, err, sizeof(err));
  unlink(path);
  ck_assert_msg(rc == 0, "%s", err);
  assert_config_eq(&back, c);
  ctr_config_free(&back);
}

START_TEST(test_print_round_trip) {
  ctr_config_t c;
  char err[512] = "";

  ctr_config_defaults(&c);
  assert_round_trip(&c);
  ctr_config_free(&c);

  load_full(&c);
  assert_round_trip(&c);

  /* Strings that need quoting or escapes: YAML indicators, quotes,
   * backslashes, controls, DEL, C1 controls, NEL, a BOM and non-ASCII. */
  ck_assert_int_eq(ctr_config_set(&c, "output.dir",
                                  " #: \"q\" 'a' \\ \t\n\r\x01\x7f"
                                  "\xc2\x80\xc2\x85\xe2\x80\xa8\xe2\x80\xa9"
                                  "\xef\xbb\xbf\xc3\xa9 ",
                                  NULL, err, sizeof(err)),
                   0);
  ck_assert_int_eq(ctr_config_set(&c, "listen.path", "- [x]: {y} &z *w !v",
                                  NULL, err, sizeof(err)),
                   0);
  assert_round_trip(&c);
  ctr_config_free(&c);
}
END_TEST

START_TEST(test_print_format) {
  ctr_config_t c;
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);

  ck_assert_ptr_nonnull(f);
  ctr_config_defaults(&c);
  ctr_config_print(&c, f);
  ck_assert_int_eq(fclose(f), 0);
  /* Sections in table order, each option preceded by its help. */
  ck_assert_ptr_eq(strstr(text, "listen:\n  # "), text);
  ck_assert_ptr_nonnull(strstr(text, "\n  path: \"/run/ctrec/ctrecd.sock\"\n"));
  ck_assert_ptr_nonnull(strstr(text, "\n  mode: 0660\n"));
  ck_assert_ptr_nonnull(strstr(
      text, "# How often open traces are flushed to disk, in milliseconds. "
            "Range: 10 to 60000.\n  flush_interval_ms: 100\n"));
  ck_assert_ptr_nonnull(strstr(text, "One of: error, warn, info, debug.\n"
                                     "  level: info\n"));
  ck_assert(strstr(text, "\nlisten:") == NULL);
  ck_assert(strstr(text, "listen:") < strstr(text, "\noutput:\n"));
  ck_assert(strstr(text, "\noutput:\n") < strstr(text, "\nlimits:\n"));
  ck_assert(strstr(text, "\nlimits:\n") < strstr(text, "\nlog:\n"));
  free(text);
  ctr_config_free(&c);
}
END_TEST

START_TEST(test_set_good) {
  ctr_config_t c;
  char err[512] = "";

  ctr_config_defaults(&c);
  ck_assert_int_eq(
      ctr_config_set(&c, "output.dir", "/tmp/x", "--output", err, sizeof(err)),
      0);
  ck_assert_str_eq(c.output_dir, "/tmp/x");
  ck_assert_int_eq(
      ctr_config_set(&c, "listen.mode", "0600", "--mode", err, sizeof(err)), 0);
  ck_assert_uint_eq(c.listen_mode, 0600);
  ck_assert_int_eq(ctr_config_set(&c, "output.flush_interval_ms", "60000", NULL,
                                  err, sizeof(err)),
                   0);
  ck_assert_uint_eq(c.flush_interval_ms, 60000);
  ck_assert_int_eq(ctr_config_set(&c, "log.level", "debug", "-v", NULL, 0), 0);
  ck_assert_int_eq(c.log_level, CTR_LOG_DEBUG);
  ck_assert_int_eq(ctr_config_set(&c, "output.float_format", "number",
                                  "--float", err, sizeof(err)),
                   0);
  ck_assert_int_eq(c.float_format, CTR_FLOAT_NUMBER);
  ck_assert_int_eq(ctr_config_set(&c, "limits.value_depth", "0", "--depth", err,
                                  sizeof(err)),
                   0);
  ck_assert_uint_eq(c.value_depth, 0);
  ctr_config_free(&c);
}
END_TEST

struct bad_set {
  const char *name, *value, *message;
};

static const struct bad_set bad_sets[] = {
    {"output.dir", "", "--opt: output.dir: must not be empty"},
    {"output.dir", NULL, "--opt: output.dir: must not be empty"},
    {"output.dir", "/tmp/\xff", "--opt: output.dir: must be valid UTF-8"},
    {"output.dir", "/tmp/\xc0\xaf", "--opt: output.dir: must be valid UTF-8"},
    {"output.dir", "/tmp/\xed\xa0\x80",
     "--opt: output.dir: must be valid UTF-8"},
    {"output.dir", "/tmp/\xe2\x82", "--opt: output.dir: must be valid UTF-8"},
    {"output.flush_interval_ms", "9",
     "--opt: output.flush_interval_ms: must be between 10 and 60000"},
    {"output.flush_interval_ms", "4294967396",
     "--opt: output.flush_interval_ms: must be between 10 and 60000"},
    {"output.flush_interval_ms", " 100",
     "--opt: output.flush_interval_ms: expected a decimal integer, got \" "
     "100\""},
    {"output.flush_interval_ms", "+100",
     "--opt: output.flush_interval_ms: expected a decimal integer, got "
     "\"+100\""},
    {"output.flush_interval_ms", "-",
     "--opt: output.flush_interval_ms: expected a decimal integer, got \"-\""},
    {"limits.max_depth", "1\n2",
     "--opt: limits.max_depth: expected a decimal integer, got \"1?2\""},
    {"limits.max_depth",
     "123456789012345678901234567890123456789012345678901234567890x",
     "--opt: limits.max_depth: expected a decimal integer, got "
     "\"12345678901234567890123456789012345678901234...\""},
    {"listen.mode", "0o660",
     "--opt: listen.mode: expected an octal mode such as 0660, got \"0o660\""},
    {"listen.mode", "-0660",
     "--opt: listen.mode: expected an octal mode such as 0660, got \"-0660\""},
    {"log.level", "INFO",
     "--opt: log.level: expected one of error, warn, info, debug, got "
     "\"INFO\""},
    {"log.levels", "info", "--opt: log.levels: unknown key"},
    {"log", "info", "--opt: log: unknown key"},
    {"output.dir.x", "/tmp", "--opt: output.dir.x: unknown key"},
    {"", "info", "--opt: : unknown key"},
};

START_TEST(test_set_bad) {
  const struct bad_set *b = &bad_sets[_i];
  ctr_config_t c, before;
  char err[512] = "";

  load_full(&c);
  load_full(&before);
  ck_assert_int_eq(
      ctr_config_set(&c, b->name, b->value, "--opt", err, sizeof(err)),
      CTR_ECONFIG);
  ck_assert_str_eq(err, b->message);
  assert_config_eq(&c, &before);
  ctr_config_free(&c);
  ctr_config_free(&before);
}
END_TEST

START_TEST(test_set_without_origin) {
  ctr_config_t c;
  char err[512] = "";
  ctr_config_defaults(&c);
  ck_assert_int_eq(
      ctr_config_set(&c, "limits.max_sessions", "0", NULL, err, sizeof(err)),
      CTR_ECONFIG);
  ck_assert_str_eq(err, "limits.max_sessions: must be between 1 and 65536");
  ctr_config_free(&c);
}
END_TEST

/* Loading twice replaces strings without leaking the first ones; valgrind
 * is what checks the leak. */
START_TEST(test_load_twice) {
  ctr_config_t c;
  char err[512] = "";
  load_full(&c);
  ck_assert_msg(ctr_config_load(&c, DATA "/good/full.yaml", err, sizeof(err)) ==
                    0,
                "%s", err);
  ck_assert_msg(ctr_config_load(&c, EXAMPLE, err, sizeof(err)) == 0, "%s", err);
  assert_defaults(&c);
  ctr_config_free(&c);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

Suite *ctr_config_suite(void) {
  Suite *s = suite_create("config");
  TCase *tc = tcase_create("defaults");
  tcase_add_test(tc, test_defaults);
  tcase_add_test(tc, test_log_level_name);
  tcase_add_test(tc, test_example_is_defaults);
  suite_add_tcase(s, tc);

  tc = tcase_create("load");
  tcase_add_test(tc, test_full);
  tcase_add_loop_test(tc, test_empty_files, 0, N(empty_files));
  tcase_add_loop_test(tc, test_bad_files, 0, N(bad_files));
  tcase_add_test(tc, test_unreadable);
  tcase_add_test(tc, test_truncated_message);
  tcase_add_test(tc, test_load_twice);
  suite_add_tcase(s, tc);

  tc = tcase_create("print");
  tcase_add_test(tc, test_print_round_trip);
  tcase_add_test(tc, test_print_format);
  suite_add_tcase(s, tc);

  tc = tcase_create("set");
  tcase_add_test(tc, test_set_good);
  tcase_add_loop_test(tc, test_set_bad, 0, N(bad_sets));
  tcase_add_test(tc, test_set_without_origin);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(ctr_config_suite());
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
