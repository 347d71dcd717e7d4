/* check_stack.c: the shadow stacks: threads, frames, skip-tree counts,
 * argument names per frame and numbers hidden while a frame runs. */
#include <check.h>
#include <stdlib.h>

#include "ctr_filter.h"
#include "ctr_stack.h"

START_TEST(threads_are_made_on_first_switch) {
  ctr_stacks_t st;
  uint64_t id;

  ctr_stacks_init(&st, 64);
  ck_assert_uint_eq(st.n, 1);
  ck_assert(!ctr_stacks_switch(&st, 0)); /* thread 0 runs already */
  ctr_stack_push(ctr_stacks_cur(&st), 7, CTR_FRAME_WANTED);
  /* More threads than the first allocation holds. */
  for (id = 100; id < 120; id++) {
    ck_assert(ctr_stacks_switch(&st, id));
    ck_assert_uint_eq(ctr_stacks_cur(&st)->id, id);
    ck_assert(ctr_stacks_cur(&st)->step_kept);
    ctr_stack_push(ctr_stacks_cur(&st), (uint32_t)id, 0);
  }
  ck_assert_uint_eq(st.n, 21);
  ck_assert(ctr_stacks_switch(&st, 0));
  ck_assert_uint_eq(ctr_stack_top(ctr_stacks_cur(&st))->func, 7);
  ck_assert(ctr_stacks_switch(&st, 105));
  ck_assert_uint_eq(ctr_stack_top(ctr_stacks_cur(&st))->func, 105);
  ck_assert_uint_eq(ctr_stacks_cur(&st)->nframes, 1);
  ctr_stacks_free(&st);
}
END_TEST

START_TEST(threads_past_the_limit_reuse_idle_ones) {
  ctr_stacks_t st;
  uint64_t id;

  ctr_stacks_init(&st, 4);
  ctr_stack_push(ctr_stacks_cur(&st), 1, 0); /* thread 0 has a call open */
  ck_assert_int_eq(ctr_stacks_switch(&st, 7), 1);
  ctr_stack_push(ctr_stacks_cur(&st), 2, 0);
  /* A million distinct idle threads pass through the two other places. */
  for (id = 1000; id < 1001000; id++)
    ck_assert_int_eq(ctr_stacks_switch(&st, id), 1);
  ck_assert_uint_eq(st.n, 4);
  ck_assert_int_eq(ctr_stacks_switch(&st, 0), 1);
  ck_assert_uint_eq(ctr_stack_top(ctr_stacks_cur(&st))->func, 1);
  ck_assert_int_eq(ctr_stacks_switch(&st, 7), 1);
  ck_assert_uint_eq(ctr_stack_top(ctr_stacks_cur(&st))->func, 2);
  ck_assert_int_eq(ctr_stacks_switch(&st, 7), 0);
  /* Both others busy too: a fifth thread is refused. */
  ck_assert_int_eq(ctr_stacks_switch(&st, 1000998), 1);
  ctr_stack_push(ctr_stacks_cur(&st), 3, 0);
  ck_assert_int_eq(ctr_stacks_switch(&st, 1000999), 1);
  ctr_stack_push(ctr_stacks_cur(&st), 4, 0);
  ck_assert_int_eq(ctr_stacks_switch(&st, 5), -1);
  ck_assert_uint_eq(ctr_stacks_cur(&st)->id, 1000999);
  ck_assert_int_eq(ctr_stacks_switch(&st, 1000998), 1);
  ck_assert_uint_eq(ctr_stack_top(ctr_stacks_cur(&st))->func, 3);
  ctr_stacks_free(&st);
}
END_TEST

START_TEST(many_threads_are_found_again) {
  ctr_stacks_t st;
  uint64_t id;

  ctr_stacks_init(&st, 100000);
  for (id = 1; id <= 50000; id++) {
    ck_assert_int_eq(ctr_stacks_switch(&st, id << 12), 1);
    ctr_stack_push(ctr_stacks_cur(&st), (uint32_t)id, 0);
  }
  ck_assert_int_eq(ctr_stacks_switch(&st, 50000 << 12), 0);
  for (id = 49999; id >= 1; id--) {
    ck_assert_int_eq(ctr_stacks_switch(&st, id << 12), 1);
    ck_assert_uint_eq(ctr_stack_top(ctr_stacks_cur(&st))->func, id);
  }
  ck_assert_uint_eq(st.n, 50001);
  ctr_stacks_free(&st);
}
END_TEST

START_TEST(pop_restores_what_the_frame_added) {
  ctr_stacks_t st;
  ctr_thread_t *t;
  ctr_frame_t f;

  ctr_stacks_init(&st, 64);
  t = ctr_stacks_cur(&st);
  ck_assert_ptr_null(ctr_stack_top(t));
  ctr_stack_push(t, 1, CTR_FRAME_WANTED | CTR_FRAME_EMITTED);
  ctr_stack_note_arg(t, 10);
  ctr_stack_args_seen(t);
  ctr_stack_push(t, 2, CTR_FRAME_TREE);
  ctr_stack_push(t, 3, 0);
  ck_assert_uint_eq(t->trees, 1);
  /* A number hidden at depth 3 is forgotten when that frame ends. */
  t->hidden = malloc(sizeof(*t->hidden));
  t->hidden[0] = (ctr_hidden_t){42, 'i', 1, 5, 3};
  t->nhidden = 1;
  f = ctr_stack_pop(t);
  ck_assert_uint_eq(f.func, 3);
  ck_assert_uint_eq(t->nhidden, 0);
  f = ctr_stack_pop(t);
  ck_assert_uint_eq(f.func, 2);
  ck_assert_uint_eq(t->trees, 0);
  ck_assert_uint_eq(t->nargv, 1);
  f = ctr_stack_pop(t);
  ck_assert(f.flags & CTR_FRAME_ARGS);
  ck_assert_uint_eq(t->nargv, 0);
  ck_assert_uint_eq(t->nframes, 0);
  ctr_stacks_free(&st);
}
END_TEST

START_TEST(arguments_stay_arguments_in_their_frame) {
  ctr_stacks_t st;
  ctr_thread_t *t;

  ctr_stacks_init(&st, 64);
  t = ctr_stacks_cur(&st);
  ck_assert_int_eq(ctr_stack_where(t, NULL, 1), CTR_FILTER_LOCALS);
  /* A frame whose call the daemon did not see: either. */
  ctr_stack_push(t, 1, 0);
  ck_assert_int_eq(ctr_stack_where(t, &t->frames[0], 1),
                   CTR_FILTER_ARGS | CTR_FILTER_LOCALS);
  ctr_stack_push(t, 2, 0);
  ctr_stack_note_arg(t, 1);
  ctr_stack_note_arg(t, 2);
  ctr_stack_args_seen(t);
  ctr_stack_push(t, 3, 0);
  ctr_stack_note_arg(t, 3);
  ctr_stack_args_seen(t);
  ck_assert_int_eq(ctr_stack_where(t, &t->frames[1], 2), CTR_FILTER_ARGS);
  ck_assert_int_eq(ctr_stack_where(t, &t->frames[1], 3), CTR_FILTER_LOCALS);
  ck_assert_int_eq(ctr_stack_where(t, &t->frames[2], 3), CTR_FILTER_ARGS);
  ck_assert_int_eq(ctr_stack_where(t, &t->frames[2], 1), CTR_FILTER_LOCALS);
  ctr_stacks_free(&st);
}
END_TEST

START_TEST(an_interval_end_forgets_emitted_calls) {
  ctr_stacks_t st;

  ctr_stacks_init(&st, 64);
  ctr_stack_push(ctr_stacks_cur(&st), 1, CTR_FRAME_WANTED | CTR_FRAME_EMITTED);
  ctr_stacks_switch(&st, 9);
  ctr_stack_push(ctr_stacks_cur(&st), 2, CTR_FRAME_EMITTED | CTR_FRAME_WHILE);
  ctr_stacks_end_interval(&st);
  ck_assert_uint_eq(st.v[0].frames[0].flags, CTR_FRAME_WANTED);
  ck_assert_uint_eq(st.v[1].frames[0].flags, CTR_FRAME_WHILE);
  ck_assert(!st.v[0].step_kept && !st.v[1].step_kept);
  ctr_stacks_free(&st);
}
END_TEST

Suite *ctr_stack_suite(void) {
  Suite *s = suite_create("stack");
  TCase *tc = tcase_create("stack");

  tcase_add_test(tc, threads_are_made_on_first_switch);
  tcase_add_test(tc, threads_past_the_limit_reuse_idle_ones);
  tcase_add_test(tc, many_threads_are_found_again);
  tcase_add_test(tc, pop_restores_what_the_frame_added);
  tcase_add_test(tc, arguments_stay_arguments_in_their_frame);
  tcase_add_test(tc, an_interval_end_forgets_emitted_calls);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(ctr_stack_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
