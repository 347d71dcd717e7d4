/* check_gate.c: the recording gate, driven by a fake clock: record.start,
 * ctrecctl start|stop, record.windows, record.while_in and the record.max_*
 * limits. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ctr_config.h"
#include "ctr_gate.h"

/* The fake clock: the process started at T0 (realtime milliseconds). */
#define T0 1800000000000LL

static ctr_config_t cfg;
static ctr_record_window_t windows[2];
static char *while_in[] = {"tick"};

static void setup(void) {
  ctr_config_defaults(&cfg);
  memset(windows, 0, sizeof(windows));
}

static void teardown(void) {
  /* Options pointing at the test's own arrays are not the config's. */
  cfg.record_windows = NULL;
  cfg.record_nwindows = 0;
  cfg.record_while_in = NULL;
  cfg.record_nwhile_in = 0;
  ctr_config_free(&cfg);
}

START_TEST(start_and_control_switch_the_gate) {
  ctr_gate_t g;

  ctr_gate_init(&g, &cfg, T0);
  ck_assert_ptr_null(ctr_gate_closed(&g, T0));
  ck_assert(ctr_gate_control(&g, false));
  ck_assert_str_eq(ctr_gate_closed(&g, T0), "stopped");
  ck_assert(ctr_gate_pauses(ctr_gate_closed(&g, T0)));
  ck_assert(!ctr_gate_control(&g, false)); /* already stopped */
  ck_assert(ctr_gate_control(&g, true));
  ck_assert_ptr_null(ctr_gate_closed(&g, T0));

  cfg.record_start = CTR_RECORD_PAUSED;
  ctr_gate_init(&g, &cfg, T0);
  ck_assert_str_eq(ctr_gate_closed(&g, T0), "stopped");
}
END_TEST

START_TEST(relative_window_opens_and_closes_with_the_clock) {
  ctr_gate_t g;

  /* after: 2s, for: 3s */
  windows[0] =
      (ctr_record_window_t){.has_for = true, .after_ms = 2000, .for_ms = 3000};
  cfg.record_windows = windows;
  cfg.record_nwindows = 1;
  ctr_gate_init(&g, &cfg, T0);
  ck_assert_str_eq(ctr_gate_closed(&g, T0 + 1999), "outside record.windows");
  ck_assert_ptr_null(ctr_gate_closed(&g, T0 + 2000));
  ck_assert_ptr_null(ctr_gate_closed(&g, T0 + 4999));
  ck_assert_str_eq(ctr_gate_closed(&g, T0 + 5000), "outside record.windows");
  /* A second, open-ended window. */
  windows[1] = (ctr_record_window_t){.after_ms = 10000};
  cfg.record_nwindows = 2;
  ck_assert_str_eq(ctr_gate_closed(&g, T0 + 9999), "outside record.windows");
  ck_assert_ptr_null(ctr_gate_closed(&g, T0 + 86400000));
}
END_TEST

START_TEST(absolute_window_uses_the_wall_clock) {
  ctr_gate_t g;

  windows[0] = (ctr_record_window_t){.absolute = true,
                                     .has_at = true,
                                     .has_until = true,
                                     .at_ms = T0 + 100,
                                     .until_ms = T0 + 200};
  cfg.record_windows = windows;
  cfg.record_nwindows = 1;
  ctr_gate_init(&g, &cfg, T0 - 5000); /* the process's start is irrelevant */
  ck_assert_ptr_nonnull(ctr_gate_closed(&g, T0 + 99));
  ck_assert_ptr_null(ctr_gate_closed(&g, T0 + 100));
  ck_assert_ptr_null(ctr_gate_closed(&g, T0 + 199));
  ck_assert_ptr_nonnull(ctr_gate_closed(&g, T0 + 200));
  windows[0].has_until = false;
  ck_assert_ptr_null(ctr_gate_closed(&g, T0 + 100000000));
}
END_TEST

START_TEST(while_in_closes_without_pausing) {
  ctr_gate_t g;
  const char *why;

  cfg.record_while_in = while_in;
  cfg.record_nwhile_in = 1;
  ctr_gate_init(&g, &cfg, T0);
  why = ctr_gate_closed(&g, T0);
  ck_assert_str_eq(why, "outside record.while_in");
  /* The client keeps sending calls: one of them may open the gate. */
  ck_assert(!ctr_gate_pauses(why));
  ck_assert(!ctr_gate_pauses(NULL));
  g.while_depth++;
  ck_assert_ptr_null(ctr_gate_closed(&g, T0));
  g.while_depth--;
  ck_assert_ptr_nonnull(ctr_gate_closed(&g, T0));
  /* Stopped wins over while_in, and pauses. */
  g.while_depth++;
  ctr_gate_control(&g, false);
  ck_assert(ctr_gate_pauses(ctr_gate_closed(&g, T0)));
}
END_TEST

START_TEST(limits_close_the_gate_until_a_start) {
  ctr_gate_t g;

  cfg.record_max_events = 100;
  cfg.record_max_bytes = 1000;
  cfg.record_max_duration_ms = 5000;
  ctr_gate_init(&g, &cfg, T0);
  ck_assert_ptr_null(ctr_gate_limits(&g, 99, 999, T0, T0 + 4999));
  ck_assert_str_eq(ctr_gate_limits(&g, 100, 0, T0, T0),
                   "record.max_events reached");
  ck_assert_str_eq(ctr_gate_closed(&g, T0), "record.max_events reached");
  ck_assert(ctr_gate_pauses(ctr_gate_closed(&g, T0)));
  /* A manual start begins afresh; the gate was closed, so that changed it. */
  ck_assert(ctr_gate_control(&g, true));
  ck_assert_ptr_null(ctr_gate_closed(&g, T0));
  ck_assert_str_eq(ctr_gate_limits(&g, 0, 1000, T0, T0),
                   "record.max_bytes reached");
  ctr_gate_control(&g, true);
  /* The duration counts from the interval's start, not the process's. */
  ck_assert_ptr_null(ctr_gate_limits(&g, 0, 0, T0 + 60000, T0 + 64999));
  ck_assert_str_eq(ctr_gate_limits(&g, 0, 0, T0 + 60000, T0 + 65000),
                   "record.max_duration reached");
}
END_TEST

START_TEST(program_switch_keeps_a_limit) {
  ctr_gate_t g;

  cfg.record_start = CTR_RECORD_PAUSED;
  cfg.record_max_events = 100;
  ctr_gate_init(&g, &cfg, T0);
  /* The program's resume opens what record.start: paused closed. */
  ck_assert(ctr_gate_switch(&g, true));
  ck_assert_ptr_null(ctr_gate_closed(&g, T0));
  ck_assert(!ctr_gate_switch(&g, true));
  ctr_gate_limits(&g, 100, 0, T0, T0);
  /* A limit reached stays reached for the program, not for ctrecctl. */
  ck_assert(ctr_gate_switch(&g, false));
  ck_assert(ctr_gate_switch(&g, true));
  ck_assert_str_eq(ctr_gate_closed(&g, T0), "record.max_events reached");
  ctr_gate_control(&g, true);
  ck_assert_ptr_null(ctr_gate_closed(&g, T0));
}
END_TEST

START_TEST(no_limits_never_close) {
  ctr_gate_t g;

  ctr_gate_init(&g, &cfg, T0);
  cfg.record_max_events = cfg.record_max_bytes = cfg.record_max_duration_ms = 0;
  ck_assert_ptr_null(
      ctr_gate_limits(&g, UINT64_MAX, UINT64_MAX, T0, T0 + 1000000000));
}
END_TEST

/* A session asks at every message: the clock is read, and the limits
 * checked, only when an option makes the answer depend on them. */
START_TEST(clock_and_limits_only_when_configured) {
  ctr_gate_t g;

  cfg.record_max_events = cfg.record_max_bytes = cfg.record_max_duration_ms = 0;
  ctr_gate_init(&g, &cfg, T0);
  ck_assert(!ctr_gate_timed(&g));
  ck_assert(!ctr_gate_limited(&g));
  cfg.record_max_events = 10;
  ck_assert(ctr_gate_limited(&g));
  ck_assert(!ctr_gate_timed(&g));
  cfg.record_max_events = 0;
  cfg.record_max_duration_ms = 1000;
  ck_assert(ctr_gate_limited(&g));
  ck_assert(ctr_gate_timed(&g));
  cfg.record_max_duration_ms = 0;
  windows[0] = (ctr_record_window_t){.after_ms = 10};
  cfg.record_windows = windows;
  cfg.record_nwindows = 1;
  ck_assert(ctr_gate_timed(&g));
  ck_assert(!ctr_gate_limited(&g));
}
END_TEST

Suite *ctr_gate_suite(void) {
  Suite *s = suite_create("gate");
  TCase *tc = tcase_create("gate");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, start_and_control_switch_the_gate);
  tcase_add_test(tc, relative_window_opens_and_closes_with_the_clock);
  tcase_add_test(tc, absolute_window_uses_the_wall_clock);
  tcase_add_test(tc, while_in_closes_without_pausing);
  tcase_add_test(tc, limits_close_the_gate_until_a_start);
  tcase_add_test(tc, program_switch_keeps_a_limit);
  tcase_add_test(tc, no_limits_never_close);
  tcase_add_test(tc, clock_and_limits_only_when_configured);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(ctr_gate_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
