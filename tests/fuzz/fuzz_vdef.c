/* fuzz_vdef.c: libFuzzer target for DEF and REF values (daemon/ctr_vdef.c)
 * and the rendering of what they define (daemon/ctr_value.c).
 *
 * The first byte picks the number of definitions kept (0 to 7) and whether
 * rendered text is reused; the rest is a payload of msgpack objects, each
 * a value of one message at nesting level 2 (a RETURN's). Objects the scan
 * accepts are ingested in turn and, when ingesting accepts them, rendered
 * twice: the second rendering, from kept texts, must equal the first. A
 * chain of REFs must never make rendering deep or slow (the limits below),
 * and everything is freed at the end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctr_buf.h"
#include "ctr_proto.h"
#include "ctr_value.h"
#include "ctr_vdef.h"

static const ctr_limits_t fuzz_limits = {
    .max_frame = 1u << 16,
    .max_depth = 16,
    .max_string = 1u << 12,
    .max_elements = 1u << 10,
    .max_ids = 1u << 10,
};

static ctr_json_frag_t type_frags[4], name_frags[4];

static const ctr_json_frag_t *f_type(void *ctx, uint32_t tid) {
  (void)ctx;
  if (tid >= 4)
    return NULL;
  ctr_json_frag(&type_frags[tid], ",\"type_id\":", tid, "}");
  return &type_frags[tid];
}

static const ctr_json_frag_t *f_name(void *ctx, uint32_t vid) {
  (void)ctx;
  if (vid >= 4)
    return NULL;
  ctr_json_frag(&name_frags[vid], "{\"variable_id\":", vid, ",\"value\":");
  return &name_frags[vid];
}

static int64_t f_struct(void *ctx, uint32_t tid, const uint32_t *vids,
                        const int64_t *tids, uint32_t n) {
  (void)ctx;
  (void)vids;
  (void)tids;
  (void)n;
  return tid < 4 ? 9 : CTR_ERANGE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ctr_value_ops_t ops = {NULL, f_type, f_name, f_struct, true, 32, 0};
  const char *buf, *why;
  ctr_vdefs_t *t;
  msgpack_zone zone;
  msgpack_object o;
  ctr_buf_t a = {0}, b = {0};
  size_t len, off = 0, count;

  if (size == 0)
    return 0;
  ops.cache_key = data[0] & 8 ? 1 : 0;
  t = ctr_vdefs_new(data[0] & 7, fuzz_limits.max_depth,
                    fuzz_limits.max_elements);
  buf = (const char *)data + 1;
  len = size - 1;
  if (ctr_proto_scan(buf, len, &fuzz_limits, &count, &why) == 0) {
    msgpack_zone_init(&zone, 4096);
    while (off < len) {
      if (msgpack_unpack(buf, len, &off, &zone, &o) <= 0)
        abort();
      ctr_vdefs_message(t);
      if (ctr_vdefs_ingest(t, &o, 2, &why) != 0)
        continue;
      a.len = b.len = 0;
      int64_t ra = ctr_value_render(&ops, &o, &a, &why);
      int64_t rb = ctr_value_render(&ops, &o, &b, &why);
      if (ra != rb ||
          (ra >= 0 && (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)))
        abort();
    }
    msgpack_zone_destroy(&zone);
  }
  ctr_buf_free(&a);
  ctr_buf_free(&b);
  ctr_vdefs_free(t);
  return 0;
}
