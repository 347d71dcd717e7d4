/* check_client.c: libctrec's threaded paths against a socket sink that
 * plays the daemon: several threads pack events while the background thread
 * flushes, control messages arrive and the daemon goes away. Built and run
 * under ThreadSanitizer in CI (tests/run.sh), and normally everywhere. */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctr_client.h"
#include "ctr_proto.h"

#define THREADS 4
#define EVENTS 20000

/* What the sink saw. */
typedef struct sink_s {
  int listen_fd;
  int fd;
  int close_after; /* frames read before it hangs up, 0: never */
  int frames;
  bool hello, bye, welcomed;
  int64_t bye_status;
  uint64_t thread; /* the THREAD in force */
  int64_t next_line[THREADS];
  long steps[THREADS];
  atomic_long late; /* steps packed after the threads ended */
  bool out_of_order;
  pthread_t tid;
  char path[108];
  char dir[64];
} sink_t;

static sink_t sink;

static void send_frame(int fd, const msgpack_sbuffer *sb) {
  char header[CTR_FRAME_HEADER];

  ctr_frame_put_header(header, (uint32_t)sb->size);
  ck_assert_int_eq(send(fd, header, sizeof(header), MSG_NOSIGNAL), sizeof(header));
  ck_assert_int_eq(send(fd, sb->data, sb->size, MSG_NOSIGNAL), (ssize_t)sb->size);
}

/* Answers HELLO with a WELCOME that asks for a 10 ms background flush. */
static void welcome(int fd) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  ctr_welcome_t w = {.session = 1, .recording = true, .flush_ms = 10,
                     .max_depth = 3, .max_length = 32, .max_string = 1000,
                     .values = CTR_WV_ALL};

  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  ctr_pack_welcome(&pk, &w);
  send_frame(fd, &sb);
  msgpack_sbuffer_destroy(&sb);
}

/* A FILTER in the middle of the run: the client swaps its rules and values
 * mode while the threads read them. */
static void push_filter(int fd) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  ctr_wire_rule_t rule = {.function = "skipped", .action = 2};

  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  ctr_pack_filter(&pk, &rule, 1, CTR_WV_ARGS);
  send_frame(fd, &sb);
  msgpack_sbuffer_destroy(&sb);
}

static void on_message(const ctr_msg_t *m) {
  int t;

  switch (m->tag) {
  case CTR_MSG_HELLO: sink.hello = true; break;
  case CTR_MSG_BYE:
    sink.bye = true;
    sink.bye_status = m->u.bye.status;
    break;
  case CTR_MSG_THREAD: sink.thread = m->u.thread.id; break;
  case CTR_MSG_STEP:
    t = (int)sink.thread;
    ck_assert_int_lt(t, THREADS);
    if (m->u.step.line != sink.next_line[t])
      sink.out_of_order = true;
    sink.next_line[t] = m->u.step.line + 1;
    sink.steps[t]++;
    if (m->u.step.line >= EVENTS)
      atomic_fetch_add(&sink.late, 1);
    break;
  default: break;
  }
}

static int on_frame(void *arg, const char *payload, uint32_t len) {
  size_t off = 0;
  msgpack_unpacked up;
  ctr_msg_t m;
  const char *why = NULL;

  msgpack_unpacked_init(&up);
  while (off < len) {
    ck_assert_int_eq(msgpack_unpack_next(&up, payload, len, &off), MSGPACK_UNPACK_SUCCESS);
    ck_assert_msg(ctr_msg_decode(&up.data, &m, &why) == 0, "bad message: %s", why);
    on_message(&m);
  }
  msgpack_unpacked_destroy(&up);
  sink.frames++;
  if (!sink.welcomed) {
    sink.welcomed = true;
    welcome(sink.fd);
  } else if (sink.frames == 5) {
    push_filter(sink.fd);
  }
  return sink.close_after && sink.frames >= sink.close_after;
}

static void *sink_main(void *arg) {
  ctr_frame_reader_t fr;
  char buf[65536];
  ssize_t n;

  sink.fd = accept(sink.listen_fd, NULL, NULL);
  ck_assert_int_ge(sink.fd, 0);
  ctr_frame_reader_init(&fr, 1u << 26);
  while ((n = recv(sink.fd, buf, sizeof(buf), 0)) > 0)
    if (ctr_frame_reader_feed(&fr, buf, (size_t)n, on_frame, NULL) != 0)
      break;
  ck_assert(ctr_frame_reader_idle(&fr) || sink.close_after);
  ctr_frame_reader_free(&fr);
  close(sink.fd);
  return NULL;
}

/* Listens on a fresh socket that CT_RECORDER_SOCKET names. */
static void sink_listen(int close_after) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};

  memset(&sink, 0, sizeof(sink));
  sink.close_after = close_after;
  strcpy(sink.dir, "/tmp/ctrec-check-client-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(sink.dir));
  snprintf(sink.path, sizeof(sink.path), "%s/sock", sink.dir);
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sink.path);
  sink.listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ck_assert_int_eq(bind(sink.listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  ck_assert_int_eq(listen(sink.listen_fd, 1), 0);
  setenv("CT_RECORDER_SOCKET", sink.path, 1);
}

static void sink_start(int close_after) {
  sink_listen(close_after);
  ck_assert_int_eq(pthread_create(&sink.tid, NULL, sink_main, NULL), 0);
}

static void sink_join(void) {
  pthread_join(sink.tid, NULL);
  close(sink.listen_fd);
  unlink(sink.path);
  rmdir(sink.dir);
}

/* What the traced program says of itself in HELLO. */
static const ctr_client_info_t info = {.lang = "ruby", .lang_version = "3.1",
                                       .shim_version = "check",
                                       .program = "/tmp/prog.rb"};

/* One traced thread: a THREAD and a STEP per event, reading the pushed
 * rules as a shim does, and a flush of its own now and then. */
static void *worker(void *arg) {
  uint64_t id = (uint64_t)(uintptr_t)arg;
  uint32_t gen = 0;
  int64_t line;

  for (line = 0; line < EVENTS; line++) {
    msgpack_packer *pk;

    ctr_client_filter(&gen);
    ctr_client_decide("/tmp/prog.rb", line % 2 ? "skipped" : "kept");
    (void)ctr_client_values();
    pk = ctr_client_begin();
    if (pk == NULL)
      continue;
    ctr_pack_thread(pk, id);
    ctr_pack_step(pk, 0, line);
    ctr_client_end();
    if (line % 5000 == 4999)
      ctr_client_flush();
  }
  return NULL;
}

static void run_workers(void) {
  pthread_t threads[THREADS];
  msgpack_packer *pk;
  uintptr_t i;

  ck_assert_int_eq(ctr_client_start(&info), 0);
  pk = ctr_client_begin();
  ck_assert_ptr_nonnull(pk);
  ctr_pack_path(pk, 0, "/tmp/prog.rb", strlen("/tmp/prog.rb"));
  ctr_client_end();
  for (i = 0; i < THREADS; i++)
    ck_assert_int_eq(pthread_create(&threads[i], NULL, worker, (void *)i), 0);
  for (i = 0; i < THREADS; i++)
    pthread_join(threads[i], NULL);
}

/* One more small event, far below the batch size: only the background
 * flush sends it before the end of the session. */
static bool background_flush_sends(void) {
  msgpack_packer *pk = ctr_client_begin();
  int waited;

  if (pk == NULL)
    return false;
  ctr_pack_thread(pk, 0);
  ctr_pack_step(pk, 0, EVENTS);
  ctr_client_end();
  for (waited = 0; waited < 2000 && atomic_load(&sink.late) == 0; waited += 10)
    usleep(10 * 1000);
  return atomic_load(&sink.late) == 1;
}

START_TEST(test_threads_and_background_flush) {
  int t;

  sink_start(0);
  run_workers();
  ck_assert_msg(background_flush_sends(), "the background flush sent nothing");
  ctr_client_finish(7);
  sink_join();
  ck_assert(sink.hello);
  ck_assert_msg(sink.frames > 5, "only %d frames: no background flush", sink.frames);
  for (t = 0; t < THREADS; t++)
    ck_assert_int_eq(sink.steps[t], EVENTS + (t == 0));
  ck_assert_msg(!sink.out_of_order, "a thread's steps arrived out of order");
  ck_assert(sink.bye);
  ck_assert_int_eq(sink.bye_status, 7);
}
END_TEST

/* The daemon hangs up in the middle: the threads run on, unaffected. */
START_TEST(test_daemon_goes_away) {
  sink_start(3);
  run_workers();
  ctr_client_finish(7);
  sink_join();
  ck_assert(sink.hello);
  ck_assert(!sink.bye);
  ck_assert(!ctr_client_active());
}
END_TEST

/* SIGTERM lands while the program's thread packs an event, holding the
 * batch: the event is finished and sent, then a BYE with 128 + SIGTERM,
 * and the process dies of the signal (in a child, forked before the sink
 * thread starts: ThreadSanitizer has a child of a threaded process start
 * no threads). */
START_TEST(test_fatal_signal_while_packing) {
  int status;
  pid_t pid;

  sink_listen(0);
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    msgpack_packer *pk;
    signal(SIGTERM, SIG_DFL); /* Check's passes it to the process group */
    if (ctr_client_start(&info) != 0 || (pk = ctr_client_begin()) == NULL)
      _exit(2);
    ctr_pack_thread(pk, 0);
    ctr_pack_step(pk, 0, 0);
    raise(SIGTERM);
    ctr_pack_step(pk, 0, 1);
    ctr_client_end(); /* the thread waits here for its end */
    _exit(3);
  }
  ck_assert_int_eq(pthread_create(&sink.tid, NULL, sink_main, NULL), 0);
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  sink_join();
  ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM,
                "the client did not die of SIGTERM (status %d)", status);
  ck_assert_msg(sink.bye, "no BYE");
  ck_assert_int_eq(sink.bye_status, 128 + SIGTERM);
  ck_assert_int_eq(sink.steps[0], 2);
  ck_assert(!sink.out_of_order);
}
END_TEST

static Suite *ctr_client_suite(void) {
  Suite *s = suite_create("client");
  TCase *tc = tcase_create("threads");

  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_threads_and_background_flush);
  tcase_add_test(tc, test_daemon_goes_away);
  tcase_add_test(tc, test_fatal_signal_while_packing);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(ctr_client_suite());
  int failed;

  /* Each test in its own process: libctrec holds one client per process. */
  srunner_set_fork_status(sr, CK_FORK);
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
