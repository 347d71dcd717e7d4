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
  ck_assert_int_eq(c->output_format, CTR_FORMAT_CTFS);
  ck_assert_uint_eq(c->max_frame, 16u << 20);
  ck_assert_uint_eq(c->max_depth, 32);
  ck_assert_uint_eq(c->max_string, 4u << 20);
  ck_assert_uint_eq(c->max_elements, 1048576);
  ck_assert_uint_eq(c->max_ids, 4194304);
  ck_assert_uint_eq(c->max_source, 16u << 20);
  ck_assert_uint_eq(c->max_sessions, 1024);
  ck_assert_uint_eq(c->value_depth, 3);
  ck_assert_uint_eq(c->value_length, 32);
  ck_assert_uint_eq(c->value_string, 1000);
  ck_assert_int_eq(c->log_level, CTR_LOG_INFO);
  ck_assert(c->filter_defaults);
  ck_assert_uint_eq(c->filter_nrules, 0);
  ck_assert_uint_eq(c->filter_nvalues, 0);
  ck_assert_ptr_nonnull(c->filter);
  ck_assert_int_eq(
      ctr_filter_decide(c->filter, "/usr/lib/ruby/3.1.0/set.rb", NULL, NULL),
      CTR_FILTER_SKIP);
  ck_assert_int_eq(c->record_start, CTR_RECORD_RECORDING);
  ck_assert_uint_eq(c->record_nwindows, 0);
  ck_assert_uint_eq(c->record_nwhile_in, 0);
  ck_assert_uint_eq(c->record_max_duration_ms, 0);
  ck_assert_uint_eq(c->record_max_events, 0);
  ck_assert_uint_eq(c->record_max_bytes, 0);
  ck_assert_int_eq(c->record_values, CTR_VALUES_ALL);
}

static void assert_str_or_null_eq(const char *a, const char *b) {
  if (!a || !b)
    ck_assert_ptr_eq(a, b);
  else
    ck_assert_str_eq(a, b);
}

/* Compares the filter and record options, and what the compiled filters
 * say about their rules. */
static void assert_filter_record_eq(const ctr_config_t *a,
                                    const ctr_config_t *b) {
  size_t na, nb;
  const ctr_filter_rule_t *ra = ctr_filter_rules(a->filter, &na);
  const ctr_filter_rule_t *rb = ctr_filter_rules(b->filter, &nb);

  ck_assert_int_eq(a->filter_defaults, b->filter_defaults);
  ck_assert_uint_eq(a->filter_nrules, b->filter_nrules);
  for (size_t i = 0; i < a->filter_nrules; i++) {
    assert_str_or_null_eq(a->filter_rules[i].file, b->filter_rules[i].file);
    assert_str_or_null_eq(a->filter_rules[i].module, b->filter_rules[i].module);
    assert_str_or_null_eq(a->filter_rules[i].function,
                          b->filter_rules[i].function);
    ck_assert_int_eq(a->filter_rules[i].action, b->filter_rules[i].action);
  }
  ck_assert_uint_eq(a->filter_nvalues, b->filter_nvalues);
  for (size_t i = 0; i < a->filter_nvalues; i++) {
    const ctr_filter_value_rule_t *x = &a->filter_values[i],
                                  *y = &b->filter_values[i];
    assert_str_or_null_eq(x->name, y->name);
    assert_str_or_null_eq(x->file, y->file);
    assert_str_or_null_eq(x->module, y->module);
    assert_str_or_null_eq(x->function, y->function);
    ck_assert_int_eq(x->where, y->where);
    ck_assert_int_eq(x->action, y->action);
  }
  ck_assert_uint_eq(na, nb);
  for (size_t i = 0; i < na; i++) {
    assert_str_or_null_eq(ra[i].file, rb[i].file);
    ck_assert_int_eq(ra[i].action, rb[i].action);
  }
  ck_assert_int_eq(a->record_start, b->record_start);
  ck_assert_uint_eq(a->record_nwindows, b->record_nwindows);
  for (size_t i = 0; i < a->record_nwindows; i++)
    ck_assert_mem_eq(&a->record_windows[i], &b->record_windows[i],
                     sizeof(ctr_record_window_t));
  ck_assert_uint_eq(a->record_nwhile_in, b->record_nwhile_in);
  for (size_t i = 0; i < a->record_nwhile_in; i++)
    ck_assert_str_eq(a->record_while_in[i], b->record_while_in[i]);
  ck_assert_uint_eq(a->record_max_duration_ms, b->record_max_duration_ms);
  ck_assert_uint_eq(a->record_max_events, b->record_max_events);
  ck_assert_uint_eq(a->record_max_bytes, b->record_max_bytes);
  ck_assert_int_eq(a->record_values, b->record_values);
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
  assert_filter_record_eq(a, b);
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
  ck_assert_uint_eq(c.max_depth, 32);
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

START_TEST(test_full_filter) {
  ctr_config_t c;
  const ctr_filter_rule_t *r;
  const ctr_filter_value_rule_t *v;
  size_t n;

  load_full(&c);
  ck_assert(!c.filter_defaults);
  ck_assert_uint_eq(c.filter_nrules, 5);
  r = c.filter_rules;
  ck_assert_str_eq(r[0].file, "/srv/app/vendor/**");
  ck_assert_int_eq(r[0].action, CTR_FILTER_SKIP_TREE);
  ck_assert_str_eq(r[1].module, "json.**");
  ck_assert_int_eq(r[1].action, CTR_FILTER_SKIP);
  ck_assert_str_eq(r[2].file, "/usr/lib/ruby/**");
  ck_assert_str_eq(r[2].function, "JSON.*");
  ck_assert_int_eq(r[2].action, CTR_FILTER_RECORD);
  ck_assert_str_eq(r[4].function, "=Array#[]");
  ck_assert_str_eq(r[4].module, "Net::*");
  ck_assert_ptr_null(r[4].file);
  ck_assert_uint_eq(c.filter_nvalues, 4);
  v = c.filter_values;
  ck_assert_str_eq(v[0].name, "*password*");
  ck_assert_int_eq(v[0].where, CTR_FILTER_ALL);
  ck_assert_int_eq(v[0].action, CTR_FILTER_REDACT);
  ck_assert_int_eq(v[1].where, CTR_FILTER_ARGS);
  ck_assert_int_eq(v[1].action, CTR_FILTER_DROP);
  ck_assert_ptr_null(v[2].name);
  ck_assert_int_eq(v[2].where, CTR_FILTER_RETURN);
  ck_assert_int_eq(v[3].where, CTR_FILTER_LOCALS);
  ck_assert_str_eq(v[3].module, "m");

  /* The compiled filter follows the rules, without built-ins. */
  ctr_filter_rules(c.filter, &n);
  ck_assert_uint_eq(n, 5);
  ck_assert_int_eq(ctr_filter_decide(c.filter, "/usr/lib/ruby/3.1.0/set.rb",
                                     "Set", "Set#add"),
                   CTR_FILTER_RECORD);
  ck_assert_int_eq(
      ctr_filter_decide(c.filter, "/srv/app/vendor/x.rb", NULL, "Point#to_s"),
      CTR_FILTER_SKIP_TREE);
  ck_assert_int_eq(
      ctr_filter_decide(c.filter, "/x.rb", "Net::HTTP", "Array#[]"),
      CTR_FILTER_SKIP);
  ck_assert_int_eq(ctr_filter_value(c.filter, "/x.rb", NULL, "Auth#login",
                                    CTR_FILTER_ARGS, "token"),
                   CTR_FILTER_DROP);
  ck_assert_int_eq(ctr_filter_value(c.filter, "/x.rb", NULL, "Vault.read",
                                    CTR_FILTER_RETURN, NULL),
                   CTR_FILTER_REDACT);

  ck_assert_int_eq(c.record_start, CTR_RECORD_PAUSED);
  ck_assert_uint_eq(c.record_nwindows, 6);
  ck_assert(!c.record_windows[0].absolute);
  ck_assert_uint_eq(c.record_windows[0].after_ms, 10000);
  ck_assert(c.record_windows[0].has_for);
  ck_assert_uint_eq(c.record_windows[0].for_ms, 60000);
  ck_assert_uint_eq(c.record_windows[1].after_ms, 500);
  ck_assert(!c.record_windows[1].has_for);
  ck_assert_uint_eq(c.record_windows[2].after_ms, 0);
  ck_assert_uint_eq(c.record_windows[2].for_ms, 7200000);
  ck_assert(c.record_windows[3].absolute);
  ck_assert(c.record_windows[3].has_at && c.record_windows[3].has_until);
  ck_assert_int_eq(c.record_windows[3].at_ms, 1738324800000);
  ck_assert_int_eq(c.record_windows[3].until_ms, 1738325100250);
  ck_assert_int_eq(c.record_windows[4].at_ms, 1738368000000);
  ck_assert(!c.record_windows[4].has_until);
  ck_assert(!c.record_windows[5].has_at);
  ck_assert_int_eq(c.record_windows[5].until_ms, 1924991999000);
  ck_assert_uint_eq(c.record_nwhile_in, 3);
  ck_assert_str_eq(c.record_while_in[0], "Worker#run");
  ck_assert_str_eq(c.record_while_in[1], "re:app\\.jobs\\..*");
  ck_assert_str_eq(c.record_while_in[2], "=main");
  ck_assert_uint_eq(c.record_max_duration_ms, 300000);
  ck_assert_uint_eq(c.record_max_events, 1000000);
  ck_assert_uint_eq(c.record_max_bytes, 64u << 20);
  ck_assert_int_eq(c.record_values, CTR_VALUES_ARGS);
  ctr_config_free(&c);
}
END_TEST

/* A reload keeps a filter that a session holds alive. */
START_TEST(test_filter_reference_survives_reload) {
  ctr_config_t c;
  ctr_filter_t *held;
  char err[512] = "";

  ctr_config_defaults(&c);
  held = ctr_filter_ref(c.filter);
  ck_assert_msg(ctr_config_load(&c, DATA "/good/full.yaml", err, sizeof(err)) ==
                    0,
                "%s", err);
  ck_assert_ptr_ne(c.filter, held);
  ck_assert_int_eq(
      ctr_filter_decide(held, "/usr/lib/ruby/3.1.0/set.rb", NULL, NULL),
      CTR_FILTER_SKIP);
  ctr_filter_free(held);
  ctr_config_free(&c);
}
END_TEST

START_TEST(test_parse_time) {
  int64_t ms = 0;
  ck_assert_int_eq(ctr_config_parse_time("1970-01-01T00:00:00Z", &ms), 0);
  ck_assert_int_eq(ms, 0);
  ck_assert_int_eq(ctr_config_parse_time("2024-02-29T23:59:59.9991-00:30", &ms),
                   0);
  ck_assert_int_eq(ms, 1709251199999 + 1800000);
  ck_assert_int_eq(ctr_config_parse_time("2025-01-31 12:00Z", &ms), 0);
  ck_assert_int_eq(ms, 1738324800000);
  ck_assert_int_eq(ctr_config_parse_time("2025-02-29T00:00:00Z", &ms),
                   CTR_ECONFIG);
  ck_assert_int_eq(ctr_config_parse_time("2025-01-31T24:00:00Z", &ms),
                   CTR_ECONFIG);
  ck_assert_int_eq(ctr_config_parse_time("2025-01-31", &ms), CTR_ECONFIG);
  ck_assert_int_eq(ctr_config_parse_time("2025-01-31T12:00:00Zx", &ms),
                   CTR_ECONFIG);
  ck_assert_int_eq(ctr_config_parse_time("2025-01-31T12:00:00.Z", &ms),
                   CTR_ECONFIG);
  ck_assert_int_eq(ctr_config_parse_time("1969-12-31T23:59:59Z", &ms),
                   CTR_ECONFIG);
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
    {"unknown_section.yaml", "3:1: filters: unknown key"},
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
    {"filter_rules_scalar.yaml", "2:10: filter.rules: expected a sequence"},
    {"filter_rule_scalar.yaml", "3:7: filter.rules[0]: expected a mapping"},
    {"filter_unknown_action.yaml",
     "4:35: filter.rules[1].action: expected one of record, skip, "
     "skip-tree, got \"drop\""},
    {"filter_missing_action.yaml", "3:7: filter.rules[0]: missing action"},
    {"filter_no_selector.yaml",
     "3:7: filter.rules[0]: needs at least one of file, module, function"},
    {"filter_bad_glob.yaml",
     "4:18: filter.rules[1].function: invalid glob \"Foo#[a\": "
     "unterminated ["},
    {"filter_bad_range.yaml",
     "3:14: filter.rules[0].file: invalid glob \"/a/[z-a]\": range out of "
     "order in [...]"},
    {"filter_bad_regex.yaml",
     "3:16: filter.rules[0].module: invalid regex \"re:json(\": "
     "Unmatched ( or \\("},
    {"filter_empty_regex.yaml",
     "3:18: filter.rules[0].function: invalid regex \"re:\": empty"},
    {"filter_empty_selector.yaml",
     "3:14: filter.rules[0].file: must not be empty"},
    {"filter_null_selector.yaml",
     "3:16: filter.rules[0].module: must not be empty"},
    {"filter_empty_literal.yaml",
     "3:16: filter.rules[0].module: invalid literal \"=\": empty"},
    {"filter_map_selector.yaml",
     "3:14: filter.rules[0].file: expected a scalar"},
    {"filter_unknown_rule_key.yaml", "3:37: filter.rules[0].glob: unknown key"},
    {"filter_duplicate_rule_key.yaml",
     "5:7: filter.rules[0].file: duplicate key (first at 3:7)"},
    {"filter_duplicate_rules.yaml",
     "4:3: filter.rules: duplicate key (first at 2:3)"},
    {"filter_rule_complex_key.yaml", "3:8: filter.rules[0]: keys must be "
                                     "scalars"},
    {"filter_defaults_yes.yaml",
     "2:13: filter.defaults: expected true or false, got \"yes\""},
    {"filter_value_action.yaml",
     "3:26: filter.values[0].action: expected one of redact, drop, got "
     "\"keep\""},
    {"filter_value_in.yaml",
     "3:22: filter.values[0].in: expected one of locals, args, return, all, "
     "got \"argv\""},
    {"filter_value_no_action.yaml", "3:7: filter.values[0]: missing action"},
    {"filter_value_bad_name.yaml",
     "3:14: filter.values[0].name: invalid glob \"[x\": unterminated ["},
    {"record_start.yaml",
     "2:10: record.start: expected one of recording, paused, got \"on\""},
    {"record_duration_unit.yaml",
     "2:17: record.max_duration: expected a duration such as 500ms, 10s, "
     "5m or 1h, got \"10\""},
    {"record_duration_big.yaml", "2:17: record.max_duration: is too large"},
    {"record_size.yaml",
     "2:14: record.max_bytes: expected a size such as 64k, 10M or 1G, got "
     "\"10MB\""},
    {"record_events.yaml",
     "2:15: record.max_events: expected a decimal integer, got \"1e6\""},
    {"record_values.yaml",
     "2:11: record.values: expected one of all, args, none, got \"some\""},
    {"record_for_zero.yaml", "3:24: record.windows[0].for: must be greater "
                             "than 0"},
    {"record_after_bad.yaml",
     "4:14: record.windows[1].after: expected a duration such as 500ms, "
     "10s, 5m or 1h, got \"-1s\""},
    {"record_bad_at.yaml",
     "3:12: record.windows[0].at: expected an ISO-8601 time such as "
     "2025-01-31T12:00:00Z, got \"tomorrow\""},
    {"record_until_before_at.yaml",
     "3:43: record.windows[0].until: must be after at (3:12)"},
    {"record_mixed_window.yaml",
     "3:7: record.windows[0]: cannot mix after/for with at/until"},
    {"record_empty_window.yaml",
     "3:7: record.windows[0]: needs after/for or at/until"},
    {"record_while_in_glob.yaml",
     "2:25: record.while_in[1]: invalid glob \"Foo#[\": unterminated ["},
    {"record_while_in_map.yaml", "3:7: record.while_in[0]: expected a scalar"},
    {"record_while_in_empty.yaml", "2:14: record.while_in[0]: must not be "
                                   "empty"},
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
      text, "# Permission bits of the socket, in octal. Changing it needs a "
            "restart.\n"));
  ck_assert_ptr_nonnull(strstr(
      text, "# How often open traces are flushed to disk, in milliseconds. "
            "Range: 10 to 60000.\n  flush_interval_ms: 100\n"));
  ck_assert_ptr_nonnull(strstr(text, "One of: error, warn, info, debug.\n"
                                     "  level: info\n"));
  ck_assert(strstr(text, "\nlisten:") == NULL);
  ck_assert(strstr(text, "listen:") < strstr(text, "\noutput:\n"));
  ck_assert(strstr(text, "\noutput:\n") < strstr(text, "\nlimits:\n"));
  ck_assert(strstr(text, "\nlimits:\n") < strstr(text, "\nfilter:\n"));
  ck_assert(strstr(text, "\nfilter:\n") < strstr(text, "\nrecord:\n"));
  ck_assert(strstr(text, "\nrecord:\n") < strstr(text, "\nlog:\n"));
  /* The built-in rules are listed, as comments, before the user's. */
  ck_assert_ptr_nonnull(strstr(
      text, "\n  defaults: true\n"
            "  # Which code is recorded; the last matching rule decides.\n"
            "  # Built-in rules in force before these (filter.defaults):\n"
            "  #   - {file: \"/usr/lib/ruby/**\", action: skip}\n"));
  ck_assert_ptr_nonnull(strstr(text, "\n  rules: []\n"));
  ck_assert_ptr_nonnull(strstr(text, "\n  windows: []\n"));
  ck_assert_ptr_nonnull(strstr(text, "\n  max_duration: 0\n"));
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

/* A list set on the command line is YAML, checked as in a file, and
 * replaces the list; a bad one leaves the configuration as it was. */
START_TEST(test_set_list) {
  ctr_config_t c;
  char err[512] = "";

  ctr_config_defaults(&c);
  ck_assert_int_eq(ctr_config_set(&c, "filter.rules",
                                  "[{function: \"**.work\", action: skip}, "
                                  "{file: \"**/a.py\", action: record}]",
                                  "--set", err, sizeof(err)),
                   0);
  ck_assert_uint_eq(c.filter_nrules, 2);
  ck_assert_int_eq(ctr_config_set(&c, "filter.rules",
                                  "[{function: x, action: bogus}]", "--set",
                                  err, sizeof(err)),
                   CTR_ECONFIG);
  ck_assert_str_eq(err, "--set:2:33: filter.rules[0].action: expected one of "
                        "record, skip, skip-tree, got \"bogus\"");
  ck_assert_uint_eq(c.filter_nrules, 2);
  ck_assert_int_eq(ctr_config_set(&c, "filter.rules", "[]", "--set", err,
                                  sizeof(err)),
                   0);
  ck_assert_uint_eq(c.filter_nrules, 0);
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

/* A snapshot is built as ctrecd builds its configuration at start and at
 * every reload: defaults, then the file, then the command line. Nothing
 * of an earlier build carries over. */
START_TEST(test_snapshot_is_defaults_file_overrides) {
  static const ctr_config_override_t sets[] = {
      {"output.flush_interval_ms", "50", "--set"},
      {"output.dir", "/tmp/o", "--output"}};
  const ctr_config_t *a, *b;
  char err[512] = "";

  ck_assert_msg(ctr_config_snapshot(&a, NULL, NULL, 0, err, sizeof(err)) == 0,
                "%s", err);
  assert_defaults(a);
  ck_assert_msg(ctr_config_snapshot(&b, DATA "/good/full.yaml", sets, 2, err,
                                    sizeof(err)) == 0,
                "%s", err);
  /* The command line wins over the file, which wins over the defaults. */
  ck_assert_uint_eq(b->flush_interval_ms, 50);
  ck_assert_str_eq(b->output_dir, "/tmp/o");
  ck_assert_uint_eq(b->max_ids, 123);
  ck_assert_uint_eq(b->filter_nrules, 5);
  ck_assert_int_eq(b->record_values, CTR_VALUES_ARGS);
  ctr_config_unref(b);
  /* A file without lists or record.values gives their defaults. */
  ck_assert_msg(ctr_config_snapshot(&b, EXAMPLE, sets, 2, err, sizeof(err)) ==
                    0,
                "%s", err);
  ck_assert_uint_eq(b->filter_nrules, 0);
  ck_assert_uint_eq(b->record_nwhile_in, 0);
  ck_assert_int_eq(b->record_values, CTR_VALUES_ALL);
  ck_assert_uint_eq(b->flush_interval_ms, 50);
  ctr_config_unref(b);
  ctr_config_unref(a);
}
END_TEST

START_TEST(test_snapshot_errors) {
  static const ctr_config_override_t bad[] = {
      {"output.flush_interval_ms", "5", "--set"}};
  const ctr_config_t *c = NULL;
  char err[512] = "";

  ck_assert_int_eq(ctr_config_snapshot(&c, DATA "/good/full.yaml", bad, 1, err,
                                       sizeof(err)),
                   CTR_ECONFIG);
  ck_assert_ptr_null(c);
  ck_assert_str_eq(err, "--set: output.flush_interval_ms: must be between 10 "
                        "and 60000");
  ck_assert_int_eq(
      ctr_config_snapshot(&c, DATA "/bad/below_min.yaml", NULL, 0, err,
                          sizeof(err)),
      CTR_ECONFIG);
  ck_assert_ptr_null(c);
  ck_assert_ptr_nonnull(strstr(err, "below_min.yaml:"));
}
END_TEST

/* A reference keeps a snapshot, and its filter, alive after the last
 * other one is dropped; valgrind checks that the last unref frees. */
START_TEST(test_snapshot_references) {
  const ctr_config_t *c, *held;
  char err[512] = "";

  ck_assert_int_eq(ctr_config_snapshot(&c, NULL, NULL, 0, err, sizeof(err)),
                   0);
  held = ctr_config_ref(c);
  ck_assert_ptr_eq(held, c);
  ctr_config_unref(c);
  assert_defaults(held);
  ctr_config_unref(held);
  ctr_config_unref(NULL);
}
END_TEST

/* Only listen.path, listen.mode and listen.fifo_dir need a restart. */
START_TEST(test_restart_key) {
  static const struct {
    ctr_config_override_t set;
    const char *key;
  } cases[] = {
      {{"listen.path", "/tmp/x.sock", "--set"}, "listen.path"},
      {{"listen.mode", "0600", "--set"}, "listen.mode"},
      {{"listen.mode", "0660", "--set"}, NULL},
      {{"listen.fifo_dir", "/tmp/f", "--set"}, "listen.fifo_dir"},
      {{"listen.fifo_dir", "", "--set"}, NULL},
      {{"output.dir", "/tmp/o", "--set"}, NULL},
      {{"limits.max_frame", "65536", "--set"}, NULL},
      {{"output.flush_interval_ms", "10", "--set"}, NULL},
  };
  const ctr_config_t *base, *c;
  char err[512] = "";
  const char *key;

  ck_assert_int_eq(ctr_config_snapshot(&base, NULL, NULL, 0, err, sizeof(err)),
                   0);
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    ck_assert_msg(ctr_config_snapshot(&c, NULL, &cases[i].set, 1, err,
                                      sizeof(err)) == 0,
                  "%s", err);
    key = ctr_config_restart_key(base, c);
    if (cases[i].key)
      ck_assert_str_eq(key, cases[i].key);
    else
      ck_assert_ptr_null(key);
    ctr_config_unref(c);
  }
  ctr_config_unref(base);
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
  tcase_add_test(tc, test_full_filter);
  tcase_add_test(tc, test_filter_reference_survives_reload);
  tcase_add_test(tc, test_parse_time);
  tcase_add_loop_test(tc, test_empty_files, 0, N(empty_files));
  tcase_add_loop_test(tc, test_bad_files, 0, N(bad_files));
  tcase_add_test(tc, test_unreadable);
  tcase_add_test(tc, test_truncated_message);
  tcase_add_test(tc, test_load_twice);
  suite_add_tcase(s, tc);

  tc = tcase_create("snapshot");
  tcase_add_test(tc, test_snapshot_is_defaults_file_overrides);
  tcase_add_test(tc, test_snapshot_errors);
  tcase_add_test(tc, test_snapshot_references);
  tcase_add_test(tc, test_restart_key);
  suite_add_tcase(s, tc);

  tc = tcase_create("print");
  tcase_add_test(tc, test_print_round_trip);
  tcase_add_test(tc, test_print_format);
  suite_add_tcase(s, tc);

  tc = tcase_create("set");
  tcase_add_test(tc, test_set_good);
  tcase_add_test(tc, test_set_list);
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
