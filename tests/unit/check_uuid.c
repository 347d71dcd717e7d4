/* check_uuid.c: UUIDv7 recording ids: their form, version and variant
 * bits, time, and order within one millisecond. */
#include <check.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "ctr_uuid.h"

static int64_t time_of(const char *u) {
  char hex[13];

  memcpy(hex, u, 8);
  memcpy(hex + 8, u + 9, 4);
  hex[12] = '\0';
  return (int64_t)strtoll(hex, NULL, 16);
}

START_TEST(uuid7_has_the_rfc_9562_form) {
  char u[CTR_UUID_LEN + 1];
  int i;

  ck_assert_int_eq(ctr_uuid7(u), 0);
  ck_assert_uint_eq(strlen(u), 36);
  for (i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23)
      ck_assert_int_eq(u[i], '-');
    else
      ck_assert(isxdigit((unsigned char)u[i]) && !isupper((unsigned char)u[i]));
  }
  ck_assert_int_eq(u[14], '7');             /* version */
  ck_assert(strchr("89ab", u[19]) != NULL); /* variant 10 */
}
END_TEST

START_TEST(uuid7_carries_its_millisecond) {
  char u[CTR_UUID_LEN + 1];

  /* Year 3000: later than any id made before in this process. */
  ck_assert_int_eq(ctr_uuid7_at(u, 32503680000000LL), 0);
  ck_assert_int_eq(time_of(u), 32503680000000LL);
  ck_assert_int_eq(strncmp(u, "1d8fda4c-e000-7", 15), 0);
}
END_TEST

START_TEST(uuid7_is_monotonic_within_a_millisecond) {
  char prev[CTR_UUID_LEN + 1], u[CTR_UUID_LEN + 1];
  int64_t ms = 0x0200000000aLL;
  int i;

  ck_assert_int_eq(ctr_uuid7_at(prev, ms), 0);
  /* More ids than the 12-bit counter holds: order survives overflow. */
  for (i = 0; i < 10000; i++) {
    ck_assert_int_eq(ctr_uuid7_at(u, ms), 0);
    ck_assert_msg(strcmp(prev, u) < 0, "%s then %s", prev, u);
    ck_assert_int_eq(u[14], '7');
    ck_assert(strchr("89ab", u[19]) != NULL);
    memcpy(prev, u, sizeof(u));
  }
  /* A clock that goes back does not reorder ids either. */
  ck_assert_int_eq(ctr_uuid7_at(u, ms - 5000), 0);
  ck_assert(strcmp(prev, u) < 0);
}
END_TEST

START_TEST(uuid7_differs_each_time) {
  char a[CTR_UUID_LEN + 1], b[CTR_UUID_LEN + 1];

  ck_assert_int_eq(ctr_uuid7(a), 0);
  ck_assert_int_eq(ctr_uuid7(b), 0);
  ck_assert_str_ne(a, b);
  /* The random tail is not all zero. */
  ck_assert(strcmp(a + 24, "000000000000") != 0);
}
END_TEST

Suite *ctr_uuid_suite(void) {
  Suite *s = suite_create("uuid");
  TCase *tc = tcase_create("uuid7");

  /* In order of the times they use, should the tests share a process. */
  tcase_add_test(tc, uuid7_has_the_rfc_9562_form);
  tcase_add_test(tc, uuid7_differs_each_time);
  tcase_add_test(tc, uuid7_is_monotonic_within_a_millisecond);
  tcase_add_test(tc, uuid7_carries_its_millisecond);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(ctr_uuid_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
