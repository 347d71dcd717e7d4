/* ctr_value.c: wire values to ValueRecord JSON. */
#include "ctr_value.h"

#include <stdlib.h>
#include <string.h>

#include "ctr_error.h"
#include "ctr_proto.h"
#include "ctr_vdef.h"

static int64_t fail(const char **why, const char *text, int code) {
  *why = text;
  return code;
}

static int64_t render(const ctr_value_ops_t *ops, const msgpack_object *o,
                      ctr_buf_t *out, uint32_t depth, const char **why);

/* The opening of a ValueRecord of kind k, as one literal. */
#define HEAD(k) "{\"kind\":\"" k "\""

static int64_t render_elements(const ctr_value_ops_t *ops,
                               const msgpack_object *arr, ctr_buf_t *out,
                               uint32_t depth, const char **why) {
  uint32_t i;

  if (arr->type != MSGPACK_OBJECT_ARRAY)
    return fail(why, "value elements are not an array", CTR_EPROTO);
  ctr_buf_puts(out, ",\"elements\":[");
  for (i = 0; i < arr->via.array.size; i++) {
    int64_t rc;
    if (i)
      ctr_buf_add(out, ",", 1);
    rc = render(ops, &arr->via.array.ptr[i], out, depth + 1, why);
    if (rc < 0)
      return rc;
  }
  ctr_buf_add(out, "]", 1);
  return 0;
}

static int64_t render_struct(const ctr_value_ops_t *ops, uint32_t tid,
                             const msgpack_object *pairs, ctr_buf_t *out,
                             uint32_t depth, const char **why) {
  uint32_t i, n;
  uint32_t *vids;
  int64_t *tids, st, rc = 0;

  if (pairs->type != MSGPACK_OBJECT_ARRAY)
    return fail(why, "struct fields are not an array", CTR_EPROTO);
  n = pairs->via.array.size;
  vids = ctr_xmalloc(sizeof(*vids) * n);
  tids = ctr_xmalloc(sizeof(*tids) * n);
  ctr_buf_puts(out, HEAD("Struct"));
  ctr_buf_puts(out, ",\"field_values\":[");
  for (i = 0; i < n && rc >= 0; i++) {
    const msgpack_object *p = &pairs->via.array.ptr[i];
    uint32_t vid;
    if (p->type != MSGPACK_OBJECT_ARRAY || p->via.array.size != 2 ||
        !ctr_obj_u32(&p->via.array.ptr[0], &vid)) {
      rc = fail(why, "struct field is not [varname_id, value]", CTR_EPROTO);
      break;
    }
    if (ops->varname(ops->ctx, vid) == NULL) {
      rc = fail(why, "struct field name id out of range", CTR_ERANGE);
      break;
    }
    vids[i] = vid;
    if (i)
      ctr_buf_add(out, ",", 1);
    rc = render(ops, &p->via.array.ptr[1], out, depth + 1, why);
    tids[i] = rc;
  }
  if (rc >= 0) {
    ctr_buf_add(out, "]", 1);
    st = ops->struct_type(ops->ctx, tid, vids, tids, n);
    if (st < 0)
      rc = fail(why, "type id out of range", st);
    else {
      ctr_buf_puts(out, ",\"type_id\":");
      ctr_json_i64(out, st);
      ctr_buf_add(out, "}", 1);
    }
    rc = rc < 0 ? rc : st;
  }
  free(vids);
  free(tids);
  return rc;
}

int ctr_value_render_scalar(const ctr_value_ops_t *ops, uint32_t vk,
                            const msgpack_object *p, ctr_buf_t *out,
                            const char **why) {
  ctr_str_t s;
  char num[32];

  switch (vk) {
  case CTR_V_NONE:
    ctr_buf_puts(out, HEAD("None"));
    break;
  case CTR_V_BOOL:
    if (p->type != MSGPACK_OBJECT_BOOLEAN)
      return (int)fail(why, "Bool value is not a boolean", CTR_EPROTO);
    ctr_buf_puts(out, HEAD("Bool"));
    ctr_buf_puts(out, p->via.boolean ? ",\"b\":true" : ",\"b\":false");
    break;
  case CTR_V_INT: {
    int64_t i;
    if (!ctr_obj_i64(p, &i))
      return (int)fail(why, "Int value is not a 64-bit integer", CTR_EPROTO);
    ctr_buf_puts(out, HEAD("Int") ",\"i\":");
    ctr_json_i64(out, i);
    break;
  }
  case CTR_V_FLOAT: {
    double f;
    if (p->type == MSGPACK_OBJECT_FLOAT64 ||
        p->type == MSGPACK_OBJECT_FLOAT32)
      f = p->via.f64;
    else
      return (int)fail(why, "Float value is not a float", CTR_EPROTO);
    ctr_json_double_text(num, f);
    if (ops->floats_as_strings) {
      ctr_buf_puts(out, HEAD("Float"));
      ctr_buf_puts(out, ",\"f\":");
      ctr_json_str(out, num, strlen(num));
    } else if (strchr("-0123456789", num[0]) && strcmp(num, "-inf") != 0) {
      ctr_buf_puts(out, HEAD("Float"));
      ctr_buf_puts(out, ",\"f\":");
      ctr_buf_puts(out, num);
    } else {
      /* JSON numbers cannot hold NaN or infinities. */
      ctr_buf_puts(out, HEAD("Raw"));
      ctr_buf_puts(out, ",\"r\":");
      ctr_json_str(out, num, strlen(num));
    }
    break;
  }
  case CTR_V_STRING:
  case CTR_V_RAW:
  case CTR_V_ERROR:
    if (!ctr_obj_str(p, &s))
      return (int)fail(why, "text value is not a string", CTR_EPROTO);
    ctr_buf_puts(out, vk == CTR_V_STRING ? HEAD("String")
                      : vk == CTR_V_RAW  ? HEAD("Raw")
                                         : HEAD("Error"));
    ctr_buf_puts(out, vk == CTR_V_STRING ? ",\"text\":"
                      : vk == CTR_V_RAW  ? ",\"r\":"
                                         : ",\"msg\":");
    ctr_json_str(out, s.ptr, s.len);
    break;
  default:
    return (int)fail(why, "unknown value kind", CTR_EPROTO);
  }
  return 0;
}

/* A definition renders as its value: its kept text when the key matches,
 * else rendered and kept. */
static int64_t render_def(const ctr_value_ops_t *ops, ctr_vdef_t *d,
                          ctr_buf_t *out, uint32_t depth, const char **why) {
  size_t mark = out->len, len;
  const char *text;
  int64_t tid;

  if (ops->cache_key) {
    text = ctr_vdef_text(d, ops->cache_key, &len, &tid);
    if (text) {
      ctr_buf_add(out, text, len);
      return tid;
    }
  }
  tid = render(ops, ctr_vdef_value(d), out, depth, why);
  if (tid >= 0 && ops->cache_key)
    ctr_vdef_keep_text(d, ops->cache_key, out->data + mark, out->len - mark,
                       tid);
  return tid;
}

static int64_t render(const ctr_value_ops_t *ops, const msgpack_object *o,
                      ctr_buf_t *out, uint32_t depth, const char **why) {
  const msgpack_object *a;
  const ctr_json_frag_t *tid;
  uint32_t n, vk, shim_tid;
  ctr_str_t s;
  ctr_vdef_t *d = ctr_vdef_of(o);

  if (d)
    return render_def(ops, d, out, depth, why);
  if (depth > ops->max_depth)
    return fail(why, "value nested deeper than limits.max_depth", CTR_ELIMIT);
  if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 2)
    return fail(why, "value is not [kind, type_id, ...]", CTR_EPROTO);
  a = o->via.array.ptr;
  n = o->via.array.size;
  if (!ctr_obj_u32(&a[0], &vk) || vk > CTR_V_MAX)
    return fail(why, "unknown value kind", CTR_EPROTO);
  if (!ctr_obj_u32(&a[1], &shim_tid))
    return fail(why, "value type id is not an integer", CTR_EPROTO);
  if (vk == CTR_V_STRUCT) {
    if (n != 3)
      return fail(why, "struct value needs 3 elements", CTR_EPROTO);
    return render_struct(ops, shim_tid, &a[2], out, depth, why);
  }
  tid = ops->type(ops->ctx, shim_tid);
  if (tid == NULL)
    return fail(why, "value type id out of range", CTR_ERANGE);
  if ((vk == CTR_V_NONE) != (n == 2) || (vk == CTR_V_BIGINT ? n != 4 : n > 3))
    return fail(why, "value has the wrong number of elements", CTR_EPROTO);
  switch (vk) {
  case CTR_V_NONE:
  case CTR_V_BOOL:
  case CTR_V_INT:
  case CTR_V_FLOAT:
  case CTR_V_STRING:
  case CTR_V_RAW:
  case CTR_V_ERROR: {
    int rc = ctr_value_render_scalar(ops, vk, n == 3 ? &a[2] : NULL, out, why);
    if (rc < 0)
      return rc;
    break;
  }
  case CTR_V_BIGINT:
    if (a[2].type != MSGPACK_OBJECT_BOOLEAN || !ctr_obj_str(&a[3], &s))
      return fail(why, "BigInt value is not [5, tid, negative, bytes]",
                  CTR_EPROTO);
    ctr_buf_puts(out, HEAD("BigInt"));
    ctr_buf_puts(out, ",\"b\":");
    ctr_json_base64(out, (const unsigned char *)s.ptr, s.len);
    ctr_buf_puts(out, a[2].via.boolean ? ",\"negative\":true"
                                       : ",\"negative\":false");
    break;
  case CTR_V_SEQ:
  case CTR_V_TUPLE: {
    int64_t rc;
    ctr_buf_puts(out, vk == CTR_V_SEQ ? HEAD("Sequence") : HEAD("Tuple"));
    rc = render_elements(ops, &a[2], out, depth, why);
    if (rc < 0)
      return rc;
    if (vk == CTR_V_SEQ)
      ctr_buf_puts(out, ",\"is_slice\":false");
    break;
  }
  default:
    return fail(why, "unknown value kind", CTR_EPROTO);
  }
  ctr_buf_frag(out, tid);
  return tid->id;
}

int64_t ctr_value_render(const ctr_value_ops_t *ops, const msgpack_object *o,
                         ctr_buf_t *out, const char **why) {
  return render(ops, o, out, 0, why);
}

int ctr_value_render_pair(const ctr_value_ops_t *ops, const msgpack_object *p,
                          ctr_buf_t *out, const char **why) {
  const ctr_json_frag_t *name;
  uint32_t vid;
  int64_t rc;

  if (p->type != MSGPACK_OBJECT_ARRAY || p->via.array.size != 2 ||
      !ctr_obj_u32(&p->via.array.ptr[0], &vid)) {
    *why = "variable is not [varname_id, value]";
    return CTR_EPROTO;
  }
  name = ops->varname(ops->ctx, vid);
  if (name == NULL) {
    *why = "variable name id out of range";
    return CTR_ERANGE;
  }
  ctr_buf_frag(out, name);
  rc = render(ops, &p->via.array.ptr[1], out, 0, why);
  if (rc < 0)
    return (int)rc;
  ctr_buf_add(out, "}", 1);
  return 0;
}

/* What a check knows: ids are only range-checked, and every one gives the
 * text of id 0. */
typedef struct check_s {
  bool (*known_type)(void *ctx, uint32_t id);
  bool (*known_name)(void *ctx, uint32_t id);
  void *ctx;
} check_t;

/* The texts of id 0, made once: a check runs for every value not written
 * (values: none checks every argument and return value). */
static const ctr_json_frag_t *check_frag(bool name) {
  static ctr_json_frag_t type, var;
  static bool made;

  if (!made) {
    ctr_json_frag(&type, ",\"type_id\":", 0, "}");
    ctr_json_frag(&var, "{\"variable_id\":", 0, ",\"value\":");
    made = true;
  }
  return name ? &var : &type;
}

static const ctr_json_frag_t *check_type(void *ctx, uint32_t id) {
  check_t *c = ctx;

  return c->known_type(c->ctx, id) ? check_frag(false) : NULL;
}

static const ctr_json_frag_t *check_name(void *ctx, uint32_t id) {
  check_t *c = ctx;

  return c->known_name(c->ctx, id) ? check_frag(true) : NULL;
}

static int64_t check_struct(void *ctx, uint32_t id, const uint32_t *vids,
                            const int64_t *tids, uint32_t n) {
  check_t *c = ctx;

  (void)vids;
  (void)tids;
  (void)n;
  return c->known_type(c->ctx, id) ? 0 : CTR_ERANGE;
}

int ctr_value_check(const msgpack_object *o, uint32_t max_depth,
                    bool (*known_type)(void *ctx, uint32_t id),
                    bool (*known_name)(void *ctx, uint32_t id), void *ctx,
                    ctr_buf_t *scratch, const char **why) {
  check_t c = {known_type, known_name, ctx};
  ctr_value_ops_t ops = {&c, check_type, check_name, check_struct, false,
                         max_depth, 0};
  int64_t rc;

  scratch->len = 0;
  rc = render(&ops, o, scratch, 0, why);
  return rc < 0 ? (int)rc : 0;
}
