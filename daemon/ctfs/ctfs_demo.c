/* ctfs_demo.c: writes a sample trace.ct through the record-level API, as a
 * session would, for a second opinion from CodeTracer's own reader:
 *
 *   ctfs_demo OUT.ct [ITERATIONS [DELAY_MS [FLUSH_EVERY]]]
 *
 * The traced "program" (demo.py) calls add(i, i) (lib.py) ITERATIONS times from
 * main, prints each sum, and pauses DELAY_MS after every step, flushing every
 * FLUSH_EVERY steps, so ct-print --follow can watch it grow. */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctr_ctfs.h"
#include "ctr_uuid.h"
#include "ctr_ctfs_cbor.h"
#include "ctr_error.h"
#include "ctr_proto.h"

static int64_t types[3]; /* shim type ids 0..2: NoneType, int, str */

static int64_t type_of(void *ctx, uint32_t tid) {
  return tid < 3 ? types[tid] : CTR_ERANGE;
}

/* The CBOR of the wire value msgpack packed into sb. */
static void cbor_of(msgpack_sbuffer *sb, ctr_buf_t *out) {
  static const ctr_ctfs_value_ops_t ops = {.type = type_of, .max_depth = 8};
  msgpack_unpacked u;
  const char *why = "";
  msgpack_unpacked_init(&u);
  size_t off = 0;
  out->len = 0;
  if (msgpack_unpack_next(&u, sb->data, sb->size, &off) !=
          MSGPACK_UNPACK_SUCCESS ||
      ctr_ctfs_cbor_value(&ops, &u.data, out, &why) < 0) {
    fprintf(stderr, "ctfs_demo: bad value: %s\n", why);
    exit(1);
  }
  msgpack_unpacked_destroy(&u);
  msgpack_sbuffer_clear(sb);
}

static void int_value(msgpack_sbuffer *sb, int64_t v, ctr_buf_t *out) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 3);
  msgpack_pack_int(&pk, CTR_V_INT);
  msgpack_pack_int(&pk, 1);
  msgpack_pack_int64(&pk, v);
  cbor_of(sb, out);
}

/* One value of every wire kind but Int, as the shims send them. */
static void pack_kind(msgpack_packer *pk, int kind) {
  switch (kind) {
  case CTR_V_NONE:
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, CTR_V_NONE);
    msgpack_pack_int(pk, 0);
    return;
  case CTR_V_BIGINT:
    msgpack_pack_array(pk, 4);
    msgpack_pack_int(pk, CTR_V_BIGINT);
    msgpack_pack_int(pk, 1);
    msgpack_pack_true(pk);
    msgpack_pack_bin(pk, 9);
    msgpack_pack_bin_body(pk, "\x01\0\0\0\0\0\0\0\0", 9); /* -2**64 */
    return;
  }
  msgpack_pack_array(pk, 3);
  msgpack_pack_int(pk, kind);
  msgpack_pack_int(pk, kind == CTR_V_BOOL ? 1 : 2);
  switch (kind) {
  case CTR_V_BOOL:
    msgpack_pack_true(pk);
    break;
  case CTR_V_FLOAT:
    msgpack_pack_double(pk, 2.5);
    break;
  case CTR_V_STRING:
  case CTR_V_RAW:
  case CTR_V_ERROR:
    msgpack_pack_bin(pk, 4);
    msgpack_pack_bin_body(pk, "h\xc3\xa9\xff", 4);
    break;
  case CTR_V_SEQ:
  case CTR_V_TUPLE:
    msgpack_pack_array(pk, 2);
    pack_kind(pk, CTR_V_NONE);
    pack_kind(pk, CTR_V_FLOAT);
    break;
  case CTR_V_STRUCT:
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, 0);
    pack_kind(pk, CTR_V_STRING);
    break;
  }
}

static void check(int rc, const char *what) {
  if (rc < 0) {
    fprintf(stderr, "ctfs_demo: %s: %s\n", what, ctr_strerror(rc));
    exit(1);
  }
}

static void pause_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  if (ms > 0)
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: ctfs_demo OUT.ct [ITERATIONS [DELAY_MS "
                    "[FLUSH_EVERY]]]\n");
    return 2;
  }
  long iterations = argc > 2 ? atol(argv[2]) : 5;
  long delay = argc > 3 ? atol(argv[3]) : 0;
  long every = argc > 4 ? atol(argv[4]) : 1;
  ctr_ctfs_t *w;
  char id[CTR_UUID_LEN + 1];
  check(ctr_uuid7(id), "recording id");
  check(ctr_ctfs_open(&w, argv[1], id), argv[1]);
  const char *args[] = {"demo.py"};
  ctr_ctfs_meta_t meta = {.program = "python3",
                          .args = args,
                          .nargs = 1,
                          .workdir = "/tmp",
                          .recorder = "ctrec"};
  check(ctr_ctfs_metadata(w, &meta), "metadata");
  int64_t path = ctr_ctfs_path(w, "/tmp/demo.py", 12);
  int64_t lib = ctr_ctfs_path(w, "/tmp/lib.py", 11);
  int64_t f_main = ctr_ctfs_function(w, "<module>", 8);
  int64_t f_add = ctr_ctfs_function(w, "add", 3);
  types[0] = ctr_ctfs_type(w, "NoneType", 8);
  types[1] = ctr_ctfs_type(w, "int", 3);
  types[2] = ctr_ctfs_type(w, "str", 3);
  int64_t v_a = ctr_ctfs_varname(w, "a", 1);
  int64_t v_b = ctr_ctfs_varname(w, "b", 1);
  int64_t v_i = ctr_ctfs_varname(w, "i", 1);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  ctr_buf_t v = {0};
  long steps = 0;

  check(ctr_ctfs_call(w, (uint64_t)f_main), "call");
  check(ctr_ctfs_step(w, (uint64_t)path, 1), "step");
  static const char *kinds[] = {"none",   "bool",   "int",  "float",
                                "string", "bigint", "seq",  "tuple",
                                "struct", "raw",    "error"};
  for (int k = 0; k <= CTR_V_ERROR; k++) {
    if (k == CTR_V_INT)
      continue;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_kind(&pk, k);
    cbor_of(&sb, &v);
    int64_t name = ctr_ctfs_varname(w, kinds[k], strlen(kinds[k]));
    check(ctr_ctfs_value(w, (uint64_t)name, v.data, v.len), "value");
  }
  for (long i = 0; i < iterations; i++) {
    check(ctr_ctfs_step(w, (uint64_t)path, 5), "step");
    int_value(&sb, i, &v);
    check(ctr_ctfs_value(w, (uint64_t)v_i, v.data, v.len), "value");
    check(ctr_ctfs_call(w, (uint64_t)f_add), "call");
    int_value(&sb, i, &v);
    check(ctr_ctfs_arg(w, (uint64_t)v_a, v.data, v.len), "arg");
    check(ctr_ctfs_arg(w, (uint64_t)v_b, v.data, v.len), "arg");
    check(ctr_ctfs_step(w, (uint64_t)lib, 2), "step");
    check(ctr_ctfs_value(w, (uint64_t)v_a, v.data, v.len), "value");
    check(ctr_ctfs_value(w, (uint64_t)v_b, v.data, v.len), "value");
    check(ctr_ctfs_step(w, (uint64_t)lib, 3), "step");
    int_value(&sb, 2 * i, &v);
    check(ctr_ctfs_return(w, v.data, v.len), "return");
    char out[32];
    int n = snprintf(out, sizeof(out), "%ld\n", 2 * i);
    check(ctr_ctfs_event(w, 0, NULL, 0, out, (size_t)n), "event");
    steps += 3;
    if (every > 0 && (i + 1) % every == 0)
      check(ctr_ctfs_flush(w), "flush");
    pause_ms(delay);
  }
  check(ctr_ctfs_close(w), "close");
  ctr_buf_free(&v);
  msgpack_sbuffer_destroy(&sb);
  printf("%s: %ld steps\n", argv[1], steps + 1);
  return 0;
}
