/* fuzz_unpack.c: libFuzzer target for the daemon's own msgpack unpacker.
 *
 * The input is one frame payload; its first byte picks how many nodes the
 * unpacker may use, so that both its fallback (too many nodes or too deep)
 * and its work near the limit are reached. The contract checked:
 * - reading a payload message by message as the daemon does
 *   (ctr_proto_read, and ctr_proto_scan of the rest when a message does not
 *   fit) reaches the same verdict, code and reason as ctr_proto_scan of
 *   the whole payload;
 * - every message ctr_proto_read or ctr_proto_unpack builds equals what
 *   msgpack-c unpacks from the same bytes, and ends at the same offset;
 * - every message ctr_proto_read_flat takes (STEP, and VARS, CALL and
 *   RETURN with flat values), the general path (read and ctr_msg_decode)
 *   takes too, ending at the same offset, with the same fields.
 * Anything else aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctr_proto.h"

/* Small limits so that the fuzzer reaches them with short inputs. The
 * depth is msgpack-c's own bound (MSGPACK_EMBED_STACK_SIZE): it cannot
 * unpack deeper objects, which the daemon then rejects as undecodable. */
static const ctr_limits_t fuzz_limits = {
    .max_frame = 1u << 16,
    .max_depth = 32,
    .max_string = 1u << 12,
    .max_elements = 1u << 10,
    .max_ids = 1u << 10,
};

static void same(const msgpack_object *a, const msgpack_object *b) {
  uint32_t i;

  if (a->type != b->type)
    abort();
  switch (a->type) {
  case MSGPACK_OBJECT_NIL:
    return;
  case MSGPACK_OBJECT_BOOLEAN:
    if (a->via.boolean != b->via.boolean)
      abort();
    return;
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
  case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    if (a->via.u64 != b->via.u64)
      abort();
    return;
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64:
    /* Bit for bit, so that NaNs compare. */
    if (memcmp(&a->via.f64, &b->via.f64, sizeof(double)) != 0)
      abort();
    return;
  case MSGPACK_OBJECT_STR:
  case MSGPACK_OBJECT_BIN:
    if (a->via.str.size != b->via.str.size ||
        (a->via.str.size > 0 &&
         memcmp(a->via.str.ptr, b->via.str.ptr, a->via.str.size) != 0))
      abort();
    return;
  case MSGPACK_OBJECT_EXT:
    if (a->via.ext.type != b->via.ext.type ||
        a->via.ext.size != b->via.ext.size ||
        (a->via.ext.size > 0 &&
         memcmp(a->via.ext.ptr, b->via.ext.ptr, a->via.ext.size) != 0))
      abort();
    return;
  case MSGPACK_OBJECT_ARRAY:
    if (a->via.array.size != b->via.array.size)
      abort();
    for (i = 0; i < a->via.array.size; i++)
      same(&a->via.array.ptr[i], &b->via.array.ptr[i]);
    return;
  case MSGPACK_OBJECT_MAP:
    if (a->via.map.size != b->via.map.size)
      abort();
    for (i = 0; i < a->via.map.size; i++) {
      same(&a->via.map.ptr[i].key, &b->via.map.ptr[i].key);
      same(&a->via.map.ptr[i].val, &b->via.map.ptr[i].val);
    }
    return;
  }
  abort();
}

/* msgpack-c's object at off must equal o and end at end. */
static void same_as_msgpack(const char *buf, size_t len, size_t off,
                            const msgpack_object *o, size_t end) {
  msgpack_unpacked up;

  msgpack_unpacked_init(&up);
  if (msgpack_unpack_next(&up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS ||
      off != end)
    abort();
  same(&up.data, o);
  msgpack_unpacked_destroy(&up);
}

/* The message ctr_proto_read_flat read at `at` (ending at `end`) as the
 * general path reads and decodes it. */
static void same_as_flat(const char *buf, size_t len, size_t at, size_t end,
                         const ctr_msg_t *fm) {
  static msgpack_object nodes[4096];
  const char *why = NULL;
  msgpack_object o;
  ctr_msg_t m;
  uint32_t i;

  if (ctr_proto_read(buf, len, &at, &fuzz_limits, nodes, 4096, &o, &why) != 0 ||
      at != end || ctr_msg_decode(&o, &m, &why) != 0 || m.tag != fm->tag)
    abort();
  if (m.tag == CTR_MSG_STEP) {
    if (m.u.step.path_id != fm->u.step.path_id || m.u.step.line != fm->u.step.line)
      abort();
    return;
  }
  if (m.tag == CTR_MSG_CALL) {
    if (m.u.call.func_id != fm->u.call.func_id)
      abort();
    same(m.u.call.args, fm->u.call.args);
    return;
  }
  if (m.tag == CTR_MSG_RETURN) {
    same(m.u.ret.value, fm->u.ret.value);
    return;
  }
  if (m.u.vars.vars->via.array.size != fm->u.vars.nflat)
    abort();
  for (i = 0; i < fm->u.vars.nflat; i++) {
    const msgpack_object *pair = &m.u.vars.vars->via.array.ptr[i];
    msgpack_object o[5];

    /* The pair the flat variable stands for, a REF's included. */
    ctr_flat_objects(&fm->u.vars.flat[i], o);
    if (pair->via.array.size != 2)
      abort();
    same(&pair->via.array.ptr[0], &o[0]);
    same(&pair->via.array.ptr[1], &o[1]);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static msgpack_object nodes[256];
  const char *buf, *why_scan = NULL, *why = NULL;
  size_t len, cap, off = 0, count;
  bool checked = false;
  int rc_scan, rc = 0;

  if (size == 0)
    return 0;
  cap = data[0];
  buf = (const char *)data + 1;
  len = size - 1;
  rc_scan = ctr_proto_scan(buf, len, &fuzz_limits, &count, &why_scan);
  if (rc_scan != 0 && why_scan == NULL)
    abort();

  while (off < len) {
    static ctr_flat_t flat;
    msgpack_object o;
    ctr_msg_t fm;
    size_t at = off, flat_end = off;

    if (ctr_proto_read_flat(buf, len, &flat_end, &fuzz_limits, &flat, &fm))
      same_as_flat(buf, len, at, flat_end, &fm);
    else if (flat_end != at)
      abort();
    rc = ctr_proto_read(buf, len, &off, &fuzz_limits, nodes, cap, &o, &why);
    if (rc == 0) {
      same_as_msgpack(buf, len, at, &o, off);
      continue;
    }
    if (off != at)
      abort();
    if (rc != CTR_ENOMEM)
      break;
    /* The daemon checks the rest once and lets msgpack-c unpack. */
    if (!checked) {
      rc = ctr_proto_scan(buf + off, len - off, &fuzz_limits, NULL, &why);
      if (rc != 0)
        break;
      checked = true;
    }
    {
      msgpack_unpacked up;
      msgpack_unpacked_init(&up);
      if (msgpack_unpack_next(&up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS)
        abort();
      msgpack_unpacked_destroy(&up);
    }
    rc = 0;
  }
  if (rc != rc_scan || (rc != 0 && (why == NULL || strcmp(why, why_scan) != 0)))
    abort();

  /* On bytes the scan accepted, ctr_proto_unpack builds what msgpack-c
   * does, or declines (CTR_ELIMIT) without moving. */
  if (rc_scan == 0) {
    for (off = 0; off < len;) {
      msgpack_object o;
      size_t at = off;
      rc = ctr_proto_unpack(buf, len, &off, nodes, cap, &o);
      if (rc == 0) {
        same_as_msgpack(buf, len, at, &o, off);
        continue;
      }
      if (rc != CTR_ELIMIT || off != at)
        abort();
      msgpack_unpacked up;
      msgpack_unpacked_init(&up);
      if (msgpack_unpack_next(&up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS)
        abort();
      msgpack_unpacked_destroy(&up);
    }
  }
  return 0;
}
