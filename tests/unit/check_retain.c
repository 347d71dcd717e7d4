/* check_retain.c: which finished traces the output limits delete
 * (ctr_retain_select, shared by ctrecd and `ctrecctl gc`), and the units
 * their options are written in. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ctr_config.h"
#include "ctr_retain.h"

#define NOW 1800000000LL
#define DAY 86400

/* Traces a..e, given oldest last so that the sort shows. */
static ctr_tracedir_t v[5];

static void setup(void) {
  static char names[5][2] = {"e", "d", "c", "b", "a"};
  int i;

  memset(v, 0, sizeof(v));
  for (i = 0; i < 5; i++) {
    v[i].path = names[i];
    v[i].time = NOW - i * DAY; /* e: today ... a: 4 days old */
    v[i].size = 100;
  }
}

static const char *removed(void) {
  static char out[8];
  size_t i, n = 0;

  for (i = 0; i < 5; i++)
    if (v[i].remove)
      out[n++] = v[i].path[0];
  out[n] = '\0';
  return out;
}

START_TEST(sorts_oldest_first) {
  ctr_retain_limits_t lim = {0, 0};

  ck_assert_uint_eq(ctr_retain_select(v, 5, &lim, NOW), 0);
  ck_assert_str_eq(v[0].path, "a");
  ck_assert_str_eq(v[4].path, "e");
  ck_assert_str_eq(removed(), "");
}
END_TEST

START_TEST(age_removes_the_older_ones) {
  ctr_retain_limits_t lim = {2 * DAY, 0};

  /* a (4 days) and b (3 days) are older than 2 days; c is exactly 2. */
  ck_assert_uint_eq(ctr_retain_select(v, 5, &lim, NOW), 2);
  ck_assert_str_eq(removed(), "ab");
}
END_TEST

START_TEST(size_removes_the_oldest_until_the_rest_fit) {
  ctr_retain_limits_t lim = {0, 250};

  ck_assert_uint_eq(ctr_retain_select(v, 5, &lim, NOW), 3);
  ck_assert_str_eq(removed(), "abc");
}
END_TEST

START_TEST(both_limits_apply) {
  ctr_retain_limits_t lim = {DAY * 7 / 2, 350};

  /* a is too old; then 400 bytes are left, b goes to fit in 350. */
  ck_assert_uint_eq(ctr_retain_select(v, 5, &lim, NOW), 2);
  ck_assert_str_eq(removed(), "ab");
}
END_TEST

START_TEST(live_traces_stay_and_still_count) {
  ctr_retain_limits_t lim = {DAY, 250};

  /* The oldest is live: kept, and its size counts toward the total; d is
   * exactly a day old, not older, and goes for the size. */
  v[4].live = true; /* a */
  ck_assert_uint_eq(ctr_retain_select(v, 5, &lim, NOW), 3);
  ck_assert_str_eq(v[0].path, "a");
  ck_assert(!v[0].remove);
  ck_assert_str_eq(removed(), "bcd");
}
END_TEST

START_TEST(equal_times_go_by_name) {
  ctr_retain_limits_t lim = {0, 300};
  int i;

  for (i = 0; i < 5; i++)
    v[i].time = NOW;
  ck_assert_uint_eq(ctr_retain_select(v, 5, &lim, NOW), 2);
  ck_assert_str_eq(removed(), "ab");
}
END_TEST

START_TEST(units_of_durations_and_sizes) {
  uint64_t x;

  ck_assert_int_eq(ctr_config_parse_duration("30s", &x), 0);
  ck_assert_uint_eq(x, 30000);
  ck_assert_int_eq(ctr_config_parse_duration("10m", &x), 0);
  ck_assert_uint_eq(x, 600000);
  ck_assert_int_eq(ctr_config_parse_duration("2h", &x), 0);
  ck_assert_uint_eq(x, 7200000);
  ck_assert_int_eq(ctr_config_parse_duration("7d", &x), 0);
  ck_assert_uint_eq(x, 7ull * 86400000);
  ck_assert_int_ne(ctr_config_parse_duration("7", &x), 0);
  ck_assert_int_ne(ctr_config_parse_duration("7w", &x), 0);
  ck_assert_int_ne(ctr_config_parse_duration("", &x), 0);
  ck_assert_int_eq(ctr_config_parse_size("500K", &x), 0);
  ck_assert_uint_eq(x, 500 * 1024);
  ck_assert_int_eq(ctr_config_parse_size("20M", &x), 0);
  ck_assert_uint_eq(x, 20 << 20);
  ck_assert_int_eq(ctr_config_parse_size("3G", &x), 0);
  ck_assert_uint_eq(x, 3ull << 30);
  ck_assert_int_eq(ctr_config_parse_size("1234", &x), 0);
  ck_assert_uint_eq(x, 1234);
  ck_assert_int_ne(ctr_config_parse_size("3X", &x), 0);
  ck_assert_int_ne(ctr_config_parse_size("-3", &x), 0);
  ck_assert_int_ne(ctr_config_parse_size("99999999999999999999", &x), 0);
}
END_TEST

Suite *ctr_retain_suite(void) {
  Suite *s = suite_create("retain");
  TCase *tc = tcase_create("retain");

  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_test(tc, sorts_oldest_first);
  tcase_add_test(tc, age_removes_the_older_ones);
  tcase_add_test(tc, size_removes_the_oldest_until_the_rest_fit);
  tcase_add_test(tc, both_limits_apply);
  tcase_add_test(tc, live_traces_stay_and_still_count);
  tcase_add_test(tc, equal_times_go_by_name);
  tcase_add_test(tc, units_of_durations_and_sizes);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(ctr_retain_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
