/* feed.c: ctr_feed, a recording client that replays a synthetic execution
 * stream into ctrecd, for tests/bench/daemon_bench.sh.
 *
 * The stream has the shape of a Python loop calling a small function: per
 * iteration the loop's STEP with VARS (2 ints), CALL (1 int argument), three
 * STEP+VARS in the callee (1, 2 and 3 ints) and RETURN int. It is packed
 * with the protocol's own packers into frames of about 64 KiB, each led by
 * TIME, as the shims batch them, and is fully deterministic, so traces of
 * two daemons can be compared byte for byte. When WELCOME says values
 * "none" it sends what a shim would: no VARS, no arguments and a None
 * return value.
 *
 * MODE big adds `self`, an object of 16 lists of 6 values (113 values), to
 * the callee's VARS, sent in full at every step as a shim without
 * references does; big-refs sends it once as a DEF and then as REFs
 * (PROTOCOL.md 9.1). Both give the same trace.
 *
 *   ctr_feed SOCKET [N [MODE]]   (N iterations, default 200000; MODE
 *                                 small (default), big or big-refs)
 *
 * Prints "messages M" on stdout. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctr_proto.h"

#define BATCH (64u << 10)

enum { TYPE_INT, TYPE_NONE, TYPE_STR, TYPE_LIST, TYPE_OBJ };
enum { VAR_I, VAR_TOTAL, VAR_A, VAR_B, VAR_C, VAR_SELF, NVARS };
enum { MODE_SMALL, MODE_BIG, MODE_BIG_REFS };

/* Fields of the big `self`, named as variables from FIELD0 on. */
#define FIELDS 16
#define FIELD0 NVARS

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Sends the packed messages of sb as one frame and empties sb. */
static void send_frame(int fd, msgpack_sbuffer *sb) {
  char hdr[CTR_FRAME_HEADER];

  ctr_frame_put_header(hdr, (uint32_t)sb->size);
  if (write_all(fd, hdr, sizeof(hdr)) != 0 ||
      write_all(fd, sb->data, sb->size) != 0) {
    perror("ctr_feed: write");
    exit(1);
  }
  msgpack_sbuffer_clear(sb);
}

/* Reads one frame into buf (cap bytes); returns its length. */
static uint32_t read_frame(int fd, char *buf, uint32_t cap) {
  char hdr[CTR_FRAME_HEADER];
  uint32_t len, got = 0;
  const unsigned char *u = (const unsigned char *)hdr;

  for (size_t n = 0; n < sizeof(hdr);) {
    ssize_t r = read(fd, hdr + n, sizeof(hdr) - n);
    if (r <= 0) {
      fputs("ctr_feed: daemon closed the connection\n", stderr);
      exit(1);
    }
    n += (size_t)r;
  }
  len = (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 |
        (uint32_t)u[3] << 24;
  if (len > cap) {
    fputs("ctr_feed: reply too large\n", stderr);
    exit(1);
  }
  while (got < len) {
    ssize_t r = read(fd, buf + got, len - got);
    if (r <= 0) {
      fputs("ctr_feed: daemon closed the connection\n", stderr);
      exit(1);
    }
    got += (uint32_t)r;
  }
  return len;
}

static int connect_to(const char *path) {
  struct sockaddr_un sa;
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);

  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    perror("ctr_feed: connect");
    exit(1);
  }
  return fd;
}

/* HELLO, then the values mode from WELCOME. */
static int handshake(int fd, msgpack_sbuffer *sb, msgpack_packer *pk) {
  static const char program[] = "/bench/loop.py";
  ctr_hello_t h;
  char reply[65536];
  msgpack_unpacked u;
  ctr_msg_t m;
  size_t off = 0;
  uint32_t len;
  int values = CTR_WV_ALL;

  memset(&h, 0, sizeof(h));
  h.version = CTR_PROTO_VERSION;
  h.role = (ctr_str_t){"record", 6};
  h.lang = (ctr_str_t){"python", 6};
  h.lang_version = (ctr_str_t){"3.11.0", 6};
  h.shim_version = (ctr_str_t){"bench", 5};
  h.pid = 4242;
  h.ppid = 1;
  h.program = (ctr_str_t){program, sizeof(program) - 1};
  h.cwd = (ctr_str_t){"/bench", 6};
  h.realtime_ns = 1700000000000000000LL;
  h.mono_ns = 1000;
  ctr_pack_hello(pk, &h, 0, NULL);
  send_frame(fd, sb);

  len = read_frame(fd, reply, sizeof(reply));
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, reply, len, &off) != MSGPACK_UNPACK_SUCCESS ||
      ctr_msg_decode(&u.data, &m, NULL) != 0 || m.tag != CTR_MSG_WELCOME) {
    fputs("ctr_feed: no WELCOME\n", stderr);
    exit(1);
  }
  values = m.u.welcome.values;
  msgpack_unpacked_destroy(&u);
  return values;
}

static void pack_int_var(msgpack_packer *pk, uint32_t var, int64_t v) {
  ctr_pack_pair_begin(pk, var);
  ctr_pack_v_int(pk, TYPE_INT, v);
}

/* The big `self` pair: in full, or DEF 1 the first time and REF 1 after. */
static void pack_self(msgpack_packer *pk, int mode, bool *defined) {
  char text[32];

  ctr_pack_pair_begin(pk, VAR_SELF);
  if (mode == MODE_BIG_REFS && *defined) {
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint32(pk, CTR_V_REF);
    msgpack_pack_uint32(pk, 1);
    return;
  }
  if (mode == MODE_BIG_REFS) {
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint32(pk, CTR_V_DEF);
    msgpack_pack_uint32(pk, 1);
    *defined = true;
  }
  ctr_pack_v_struct_begin(pk, TYPE_OBJ, FIELDS);
  for (uint32_t f = 0; f < FIELDS; f++) {
    ctr_pack_pair_begin(pk, FIELD0 + f);
    ctr_pack_v_seq_begin(pk, TYPE_LIST, 6);
    for (int e = 0; e < 6; e++) {
      if (e % 2) {
        int n = snprintf(text, sizeof(text), "value %u.%d", f, e);
        ctr_pack_v_string(pk, TYPE_STR, text, (size_t)n);
      } else {
        ctr_pack_v_int(pk, TYPE_INT, (int64_t)f * 100 + e);
      }
    }
  }
}

int main(int argc, char **argv) {
  static const char *const names[NVARS] = {"i", "total", "a", "b", "c",
                                           "self"};
  /* The loop's source as the lines of its STEPs read. */
  static const char source[] =
      "\n\n\n\n\n\n\n\n\n\n\n\n\n\n"
      "def work(a):\n    b = a + 1\n    c = b * 2\n    return a + b + c\n"
      "\n\n\ndef loop(n):\n    total = 0\n    for i in range(n):\n"
      "        total += work(i)\n    return total\n";
  msgpack_sbuffer sb;
  msgpack_packer pk;
  uint64_t messages = 0, ns = 1000;
  long n = argc > 2 ? atol(argv[2]) : 200000;
  const char *mode_name = argc > 3 ? argv[3] : "small";
  int fd, values, mode;
  int64_t total = 0;
  bool defined = false;

  mode = strcmp(mode_name, "big") == 0        ? MODE_BIG
         : strcmp(mode_name, "big-refs") == 0 ? MODE_BIG_REFS
         : strcmp(mode_name, "small") == 0    ? MODE_SMALL
                                              : -1;
  if (argc < 2 || mode < 0) {
    fputs("usage: ctr_feed SOCKET [N [small|big|big-refs]]\n", stderr);
    return 2;
  }
  fd = connect_to(argv[1]);
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  values = handshake(fd, &sb, &pk);
  messages++;

  ctr_pack_path(&pk, 0, "/bench/loop.py", 14);
  ctr_pack_source(&pk, 0, source, sizeof(source) - 1);
  ctr_pack_func(&pk, 0, 0, 15, "work", 4);
  ctr_pack_type(&pk, TYPE_INT, CTR_TK_INT, "int", 3);
  ctr_pack_type(&pk, TYPE_NONE, CTR_TK_NONE, "NoneType", 8);
  messages += 5;
  for (uint32_t v = 0; v < NVARS; v++, messages++)
    ctr_pack_varname(&pk, v, names[v], strlen(names[v]));
  if (mode != MODE_SMALL) {
    ctr_pack_type(&pk, TYPE_STR, CTR_TK_STRING, "str", 3);
    ctr_pack_type(&pk, TYPE_LIST, CTR_TK_SEQ, "list", 4);
    ctr_pack_type(&pk, TYPE_OBJ, CTR_TK_STRUCT, "Obj", 3);
    messages += 3;
    for (uint32_t f = 0; f < FIELDS; f++, messages++) {
      char name[16];
      int len = snprintf(name, sizeof(name), "field%u", f);
      ctr_pack_varname(&pk, FIELD0 + f, name, (size_t)len);
    }
  }

  for (long i = 0; i < n; i++) {
    int64_t a = i, b = a + 1, c = b * 2;
    if (sb.size == 0) {
      ctr_pack_time(&pk, ns += 1000);
      messages++;
    }
    ctr_pack_step(&pk, 0, 25);
    messages++;
    if (values == CTR_WV_ALL) {
      ctr_pack_vars_begin(&pk, 2);
      pack_int_var(&pk, VAR_I, i);
      pack_int_var(&pk, VAR_TOTAL, total);
      messages++;
    }
    if (values == CTR_WV_NONE) {
      ctr_pack_call_begin(&pk, 0, 0);
    } else {
      ctr_pack_call_begin(&pk, 0, 1);
      pack_int_var(&pk, VAR_A, a);
    }
    messages++;
    for (uint32_t k = 1; k <= 3; k++) {
      ctr_pack_step(&pk, 0, 15 + k);
      messages++;
      if (values != CTR_WV_ALL)
        continue;
      ctr_pack_vars_begin(&pk, k + (mode != MODE_SMALL));
      if (mode != MODE_SMALL)
        pack_self(&pk, mode, &defined);
      pack_int_var(&pk, VAR_A, a);
      if (k > 1)
        pack_int_var(&pk, VAR_B, b);
      if (k > 2)
        pack_int_var(&pk, VAR_C, c);
      messages++;
    }
    ctr_pack_return_begin(&pk);
    if (values == CTR_WV_NONE)
      ctr_pack_v_none(&pk, TYPE_NONE);
    else
      ctr_pack_v_int(&pk, TYPE_INT, a + b + c);
    messages++;
    total += a + b + c;
    if (sb.size >= BATCH)
      send_frame(fd, &sb);
  }
  ctr_pack_bye(&pk, 0);
  messages++;
  send_frame(fd, &sb);
  /* What was written stays queued for the daemon after the close. */
  close(fd);
  msgpack_sbuffer_destroy(&sb);
  printf("messages %llu\n", (unsigned long long)messages);
  return 0;
}
