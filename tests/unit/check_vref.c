/* check_vref.c: libctrec's definitions and references (PROTOCOL.md 9.1),
 * read back through the same msgpack decoding the daemon uses. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ctr_proto.h"
#include "ctr_vref.h"

static msgpack_sbuffer sb;
static msgpack_packer pk;

static void setup(void) {
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
}

static void teardown(void) {
  msgpack_sbuffer_destroy(&sb);
  ctr_vref_reset(0);
}

/* Packs a sequence value of n ints starting at `first` through the memo. */
static void pack_seq(int first, int n, const void *obj) {
  size_t mark = ctr_vref_open(&sb);
  msgpack_pack_array(&pk, 3);
  msgpack_pack_int(&pk, CTR_V_SEQ);
  msgpack_pack_int(&pk, 0);
  msgpack_pack_array(&pk, (size_t)n);
  for (int i = 0; i < n; i++) {
    msgpack_pack_array(&pk, 3);
    msgpack_pack_int(&pk, CTR_V_INT);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_int(&pk, first + i);
  }
  ctr_vref_close(&sb, mark, obj, 1, (uint32_t)n + 1);
}

/* Decodes the value at sb[*off..]: its kind and, for DEF/REF, the id. */
static int next_value(size_t *off, uint64_t *id) {
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  ck_assert_int_eq(msgpack_unpack_next(&u, sb.data, sb.size, off),
                   MSGPACK_UNPACK_SUCCESS);
  ck_assert_int_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
  int kind = (int)u.data.via.array.ptr[0].via.u64;
  if (kind == CTR_V_DEF || kind == CTR_V_REF)
    *id = u.data.via.array.ptr[1].via.u64;
  if (kind == CTR_V_DEF) {
    const msgpack_object *v = &u.data.via.array.ptr[2];
    ck_assert_int_eq(v->via.array.ptr[0].via.u64, CTR_V_SEQ);
  }
  msgpack_unpacked_destroy(&u);
  return kind;
}

START_TEST(test_off_changes_nothing) {
  ctr_vref_reset(0);
  pack_seq(1, 5, NULL);
  pack_seq(1, 5, NULL);
  size_t off = 0;
  uint64_t id = 0;
  ck_assert_int_eq(next_value(&off, &id), CTR_V_SEQ);
  ck_assert_int_eq(next_value(&off, &id), CTR_V_SEQ);
  ck_assert_uint_eq(off, sb.size);
}
END_TEST

START_TEST(test_def_then_ref) {
  ctr_vref_reset(16);
  pack_seq(1, 5, NULL);
  size_t first = sb.size;
  pack_seq(1, 5, NULL);
  size_t second = sb.size - first;
  pack_seq(2, 5, NULL);
  size_t off = 0;
  uint64_t d1 = 99, r = 99, d2 = 99;
  ck_assert_int_eq(next_value(&off, &d1), CTR_V_DEF);
  ck_assert_int_eq(next_value(&off, &r), CTR_V_REF);
  ck_assert_uint_eq(r, d1);
  ck_assert_uint_lt(second, first); /* the REF is smaller */
  ck_assert_int_eq(next_value(&off, &d2), CTR_V_DEF);
  ck_assert_uint_gt(d2, d1);
}
END_TEST

START_TEST(test_small_values_stay) {
  ctr_vref_reset(16);
  pack_seq(1, 1, NULL); /* 9 bytes: below CTR_VREF_MIN */
  size_t off = 0;
  uint64_t id;
  ck_assert_int_eq(next_value(&off, &id), CTR_V_SEQ);
}
END_TEST

/* Slot d mod n is taken by the n-th later definition: the evicted one is
 * defined again, never referred to. */
START_TEST(test_eviction_follows_the_daemon) {
  ctr_vref_reset(2);
  pack_seq(10, 4, NULL); /* DEF 0, slot 0 */
  pack_seq(20, 4, NULL); /* DEF 1, slot 1 */
  pack_seq(30, 4, NULL); /* DEF 2 takes slot 0 */
  pack_seq(20, 4, NULL); /* REF 1 */
  pack_seq(10, 4, NULL); /* DEF 3: 0 is gone */
  int want[] = {CTR_V_DEF, CTR_V_DEF, CTR_V_DEF, CTR_V_REF, CTR_V_DEF};
  uint64_t ids[] = {0, 1, 2, 1, 3};
  size_t off = 0;
  for (int i = 0; i < 5; i++) {
    uint64_t id = 99;
    ck_assert_int_eq(next_value(&off, &id), want[i]);
    ck_assert_uint_eq(id, ids[i]);
  }
}
END_TEST

START_TEST(test_forget_after_a_drop) {
  ctr_vref_reset(16);
  pack_seq(1, 5, NULL);
  ctr_vref_forget();
  pack_seq(1, 5, NULL);
  size_t off = 0;
  uint64_t a = 99, b = 99;
  ck_assert_int_eq(next_value(&off, &a), CTR_V_DEF);
  ck_assert_int_eq(next_value(&off, &b), CTR_V_DEF);
  ck_assert_uint_gt(b, a); /* ids keep growing */
}
END_TEST

START_TEST(test_seen_within_one_message) {
  static int obj;
  ctr_vref_reset(16);
  ctr_vref_message();
  ck_assert(!ctr_vref_seen(&sb, &obj, 1, UINT32_MAX, NULL));
  pack_seq(1, 5, &obj);
  ck_assert(!ctr_vref_seen(&sb, &obj, 2, UINT32_MAX, NULL)); /* depth */
  ck_assert(!ctr_vref_seen(&sb, &obj, 1, 5, NULL)); /* holds 6 values */
  uint32_t nodes = 0;
  ck_assert(ctr_vref_seen(&sb, &obj, 1, 6, &nodes));
  ck_assert_uint_eq(nodes, 6);
  ctr_vref_message();
  ck_assert(!ctr_vref_seen(&sb, &obj, 1, UINT32_MAX, NULL)); /* may differ */
  size_t off = 0;
  uint64_t d = 99, r = 99;
  ck_assert_int_eq(next_value(&off, &d), CTR_V_DEF);
  ck_assert_int_eq(next_value(&off, &r), CTR_V_REF);
  ck_assert_uint_eq(r, d);
  ck_assert_uint_eq(off, sb.size);
}
END_TEST

/* Many distinct values through a small table: the index is rebuilt and
 * every value still finds its live definition. */
START_TEST(test_many_values) {
  ctr_vref_reset(64);
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < 1000; i++)
      pack_seq(i * 10, 3, NULL);
  pack_seq(999 * 10, 3, NULL); /* defined last: still kept */
  size_t off = 0;
  uint64_t id = 0, last = 0;
  for (int i = 0; i < 2000; i++) {
    ck_assert_int_eq(next_value(&off, &id), CTR_V_DEF);
    last = id;
  }
  ck_assert_int_eq(next_value(&off, &id), CTR_V_REF);
  ck_assert_uint_eq(id, last);
}
END_TEST

int main(void) {
  Suite *s = suite_create("vref");
  TCase *tc = tcase_create("vref");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_off_changes_nothing);
  tcase_add_test(tc, test_def_then_ref);
  tcase_add_test(tc, test_small_values_stay);
  tcase_add_test(tc, test_eviction_follows_the_daemon);
  tcase_add_test(tc, test_forget_after_a_drop);
  tcase_add_test(tc, test_seen_within_one_message);
  tcase_add_test(tc, test_many_values);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
