/* fuzz_proto.c: libFuzzer target for everything that reads untrusted bytes.
 *
 * The input is a byte stream as a peer would send it. It goes through the
 * frame reader in chunks whose size the first byte picks, and every frame is
 * scanned, unpacked and decoded the way the daemon does it. Once the scan
 * accepts a frame, msgpack-c must unpack exactly the announced objects from
 * exactly those bytes; anything else is a scanner bug and aborts. */
#include <stdint.h>
#include <stdlib.h>

#include "ctr_proto.h"

/* Small limits so that the fuzzer reaches them with short inputs. */
static const ctr_limits_t fuzz_limits = {
    .max_frame = 1u << 16,
    .max_depth = 16,
    .max_string = 1u << 12,
    .max_elements = 1u << 10,
    .max_ids = 1u << 10,
};

/* A decoded HELLO must survive being packed again and decoded again. */
static void repack_hello(const ctr_hello_t *h) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_unpacked up;
  ctr_msg_t m;
  size_t off = 0;
  const char *why;

  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  ctr_pack_hello(&pk, h, -1, NULL);
  msgpack_unpacked_init(&up);
  if (msgpack_unpack_next(&up, sb.data, sb.size, &off) !=
          MSGPACK_UNPACK_SUCCESS ||
      ctr_msg_decode(&up.data, &m, &why) != 0 || m.tag != CTR_MSG_HELLO ||
      m.u.hello.pid != h->pid || m.u.hello.program.len != h->program.len)
    abort();
  msgpack_unpacked_destroy(&up);
  msgpack_sbuffer_destroy(&sb);
}

static int on_frame(void *arg, const char *payload, uint32_t len) {
  size_t count = 0, off = 0;
  const char *why = NULL;
  msgpack_unpacked up;

  (void)arg;
  if (ctr_proto_scan(payload, len, &fuzz_limits, &count, &why) != 0) {
    if (why == NULL)
      abort();
    return 0;
  }
  msgpack_unpacked_init(&up);
  for (size_t i = 0; i < count; i++) {
    ctr_msg_t m;
    if (msgpack_unpack_next(&up, payload, len, &off) != MSGPACK_UNPACK_SUCCESS)
      abort();
    why = NULL;
    if (ctr_msg_decode(&up.data, &m, &why) != 0) {
      if (why == NULL)
        abort();
      continue;
    }
    (void)ctr_tag_name(m.tag);
    if (m.tag == CTR_MSG_HELLO)
      repack_hello(&m.u.hello);
  }
  msgpack_unpacked_destroy(&up);
  if (off != len)
    abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ctr_frame_reader_t fr;
  size_t chunk;

  if (size == 0)
    return 0;
  chunk = (size_t)data[0] + 1;
  data++;
  size--;
  ctr_frame_reader_init(&fr, fuzz_limits.max_frame);
  while (size > 0) {
    size_t n = size < chunk ? size : chunk;
    int rc = ctr_frame_reader_feed(&fr, (const char *)data, n, on_frame, NULL);
    if (rc != 0) {
      if (rc == CTR_EFRAME && fr.buf != NULL && fr.cap > fuzz_limits.max_frame)
        abort();
      break;
    }
    data += n;
    size -= n;
  }
  ctr_frame_reader_free(&fr);
  return 0;
}
