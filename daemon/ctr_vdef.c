/* ctr_vdef.c: definitions kept for DEF and REF values, and their JSON. */
#include "ctr_vdef.h"

#include <stdlib.h>
#include <string.h>

#include "ctr_buf.h"
#include "ctr_error.h"
#include "ctr_proto.h"

/* The ext type of the objects ingesting makes; any wire ext in a value is
 * refused, so the type only documents them. */
#define VDEF_EXT 127

/* Rendered JSON kept per session: a cache, so past this bound texts are
 * rendered again instead of kept. */
#define TEXTS_MAX (16u << 20)

struct ctr_vdef_s {
  uint64_t refs;  /* its slot, the nodes whose values name it, messages */
  uint32_t depth; /* nesting levels its value takes, REFs expanded */
  uint64_t id;
  uint64_t count; /* values in it, REFs expanded */
  ctr_vdefs_t *table;
  ctr_vdef_t *prev, *next; /* the table's nodes, for forgetting texts */
  ctr_vdef_t **kids;       /* one reference per ingested object in value */
  uint32_t nkids;
  uint64_t key; /* of text; 0: none */
  int64_t tid;
  char *text;
  size_t len;
  msgpack_object value; /* its objects and bytes follow the struct */
};

struct ctr_vdefs_s {
  uint32_t nslots, max_depth;
  uint64_t max_elements;
  ctr_vdef_t **slots;
  bool defined;      /* a DEF was kept */
  uint64_t last;     /* the id of the latest DEF */
  uint64_t count;    /* values of the current message, REFs expanded */
  ctr_vdef_t **held; /* nodes the current message's objects point at */
  uint32_t nheld, heldcap;
  ctr_vdef_t *nodes; /* every live node */
  size_t text_bytes;
};

typedef struct span_s {
  uint32_t depth;
  uint64_t count;
} span_t;

static int fail(const char **why, const char *text, int code) {
  *why = text;
  return code;
}

ctr_vdefs_t *ctr_vdefs_new(uint32_t slots, uint32_t max_depth,
                           uint32_t max_elements) {
  ctr_vdefs_t *t = ctr_xcalloc(1, sizeof(*t));

  t->nslots = slots;
  t->max_depth = max_depth;
  t->max_elements = max_elements;
  t->slots = ctr_xcalloc(slots, sizeof(*t->slots));
  return t;
}

static void drop_text(ctr_vdef_t *d) {
  d->table->text_bytes -= d->len;
  free(d->text);
  d->text = NULL;
  d->len = 0;
  d->key = 0;
}

/* Releases one reference; a node's kids go with it. Chains are as long as
 * values are deep (each level adds to the depth), so this recursion is
 * bounded by limits.max_depth. */
static void unref(ctr_vdef_t *d) {
  uint32_t i;

  if (d == NULL || --d->refs > 0)
    return;
  for (i = 0; i < d->nkids; i++)
    unref(d->kids[i]);
  drop_text(d);
  if (d->prev)
    d->prev->next = d->next;
  else
    d->table->nodes = d->next;
  if (d->next)
    d->next->prev = d->prev;
  free(d);
}

void ctr_vdefs_message(ctr_vdefs_t *t) {
  uint32_t i;

  for (i = 0; i < t->nheld; i++)
    unref(t->held[i]);
  t->nheld = 0;
  t->count = 0;
  /* One hostile message should not keep its room for the session. */
  if (t->heldcap > 4096) {
    free(t->held);
    t->held = NULL;
    t->heldcap = 0;
  }
}

void ctr_vdefs_free(ctr_vdefs_t *t) {
  uint32_t i;

  if (t == NULL)
    return;
  ctr_vdefs_message(t);
  for (i = 0; i < t->nslots; i++)
    unref(t->slots[i]);
  free(t->slots);
  free(t->held);
  free(t);
}

/* ---- copying a value into a node ---------------------------------------- */

static void measure(const msgpack_object *o, size_t *objs, size_t *bytes,
                    uint32_t *kids) {
  uint32_t i;

  switch (o->type) {
  case MSGPACK_OBJECT_ARRAY:
    *objs += o->via.array.size;
    for (i = 0; i < o->via.array.size; i++)
      measure(&o->via.array.ptr[i], objs, bytes, kids);
    break;
  case MSGPACK_OBJECT_MAP:
    *objs += 2 * (size_t)o->via.map.size;
    for (i = 0; i < o->via.map.size; i++) {
      measure(&o->via.map.ptr[i].key, objs, bytes, kids);
      measure(&o->via.map.ptr[i].val, objs, bytes, kids);
    }
    break;
  case MSGPACK_OBJECT_STR:
    *bytes += o->via.str.size;
    break;
  case MSGPACK_OBJECT_BIN:
    *bytes += o->via.bin.size;
    break;
  case MSGPACK_OBJECT_EXT:
    (*kids)++;
    break;
  default:
    break;
  }
}

typedef struct copy_s {
  msgpack_object *objs;
  char *bytes;
  ctr_vdef_t **kids;
  uint32_t nkids;
} copy_t;

static void copy(msgpack_object *dst, const msgpack_object *src, copy_t *c) {
  uint32_t i, n;

  *dst = *src;
  switch (src->type) {
  case MSGPACK_OBJECT_ARRAY:
    n = src->via.array.size;
    dst->via.array.ptr = c->objs;
    c->objs += n;
    for (i = 0; i < n; i++)
      copy(&dst->via.array.ptr[i], &src->via.array.ptr[i], c);
    break;
  case MSGPACK_OBJECT_MAP:
    n = src->via.map.size;
    dst->via.map.ptr = (msgpack_object_kv *)c->objs;
    c->objs += 2 * (size_t)n;
    for (i = 0; i < n; i++) {
      copy(&dst->via.map.ptr[i].key, &src->via.map.ptr[i].key, c);
      copy(&dst->via.map.ptr[i].val, &src->via.map.ptr[i].val, c);
    }
    break;
  case MSGPACK_OBJECT_STR:
  case MSGPACK_OBJECT_BIN:
    /* str and bin share their layout in msgpack_object. */
    n = src->via.str.size;
    if (n)
      memcpy(c->bytes, src->via.str.ptr, n);
    dst->via.str.ptr = c->bytes;
    c->bytes += n;
    break;
  case MSGPACK_OBJECT_EXT: /* only ingested objects remain */
    c->kids[c->nkids] = ctr_vdef_of(src);
    c->kids[c->nkids++]->refs++;
    break;
  default:
    break;
  }
}

_Static_assert(offsetof(msgpack_object_str, ptr) ==
                       offsetof(msgpack_object_bin, ptr) &&
                   offsetof(msgpack_object_str, size) ==
                       offsetof(msgpack_object_bin, size),
               "str and bin objects are copied alike");

/* A node holding a copy of v, one block: the node, v's objects, the kids,
 * the bytes. */
static ctr_vdef_t *new_node(ctr_vdefs_t *t, const msgpack_object *v,
                            uint64_t id, const span_t *sp) {
  size_t objs = 0, bytes = 0;
  uint32_t kids = 0;
  ctr_vdef_t *d;
  copy_t c;

  measure(v, &objs, &bytes, &kids);
  d = ctr_xmalloc(sizeof(*d) + objs * sizeof(msgpack_object) +
                  kids * sizeof(ctr_vdef_t *) + bytes);
  memset(d, 0, sizeof(*d));
  d->refs = 1; /* its slot */
  d->id = id;
  d->depth = sp->depth;
  d->count = sp->count;
  d->table = t;
  c.objs = (msgpack_object *)(d + 1);
  c.kids = (ctr_vdef_t **)(c.objs + objs);
  c.bytes = (char *)(c.kids + kids);
  c.nkids = 0;
  d->kids = c.kids;
  copy(&d->value, v, &c);
  d->nkids = c.nkids;
  d->next = t->nodes;
  if (t->nodes)
    t->nodes->prev = d;
  t->nodes = d;
  return d;
}

/* ---- ingesting --------------------------------------------------------- */

/* Makes o an ingested object naming d, which the message holds. */
static void point(ctr_vdefs_t *t, msgpack_object *o, ctr_vdef_t *d) {
  if (t->nheld == t->heldcap) {
    t->heldcap = t->heldcap ? t->heldcap * 2 : 64;
    t->held = ctr_xrealloc(t->held, sizeof(*t->held) * t->heldcap);
  }
  t->held[t->nheld++] = d;
  d->refs++;
  o->type = MSGPACK_OBJECT_EXT;
  o->via.ext.type = VDEF_EXT;
  o->via.ext.size = 0;
  o->via.ext.ptr = (const char *)d;
}

/* Checks that o, a part of a value that holds no value, has no ext, and
 * gives its nesting. */
static int plain(const msgpack_object *o, uint32_t *depth, const char **why) {
  uint32_t i, d, n;
  const msgpack_object *e;
  int rc;

  *depth = 1;
  if (o->type == MSGPACK_OBJECT_EXT)
    return fail(why, "ext object in a value", CTR_EPROTO);
  if (o->type != MSGPACK_OBJECT_ARRAY && o->type != MSGPACK_OBJECT_MAP)
    return 0;
  n = o->type == MSGPACK_OBJECT_ARRAY ? o->via.array.size : 2 * o->via.map.size;
  e = o->type == MSGPACK_OBJECT_ARRAY ? o->via.array.ptr
                                      : (const msgpack_object *)o->via.map.ptr;
  for (i = 0; i < n; i++) {
    if ((rc = plain(&e[i], &d, why)) != 0)
      return rc;
    if (d + 1 > *depth)
      *depth = d + 1;
  }
  return 0;
}

static int ingest(ctr_vdefs_t *t, msgpack_object *v, uint32_t level, span_t *sp,
                  const char **why);

static bool is_ref_kind(const msgpack_object *v) {
  uint32_t vk;

  return v->type == MSGPACK_OBJECT_ARRAY && v->via.array.size > 0 &&
         ctr_obj_u32(&v->via.array.ptr[0], &vk) &&
         (vk == CTR_V_DEF || vk == CTR_V_REF);
}

/* DEF [11, id, value]: value stands in its place, and is kept once it is
 * ingested (REFs in it resolved first). */
static int define(ctr_vdefs_t *t, msgpack_object *v, uint32_t level, span_t *sp,
                  const char **why) {
  msgpack_object *a = v->via.array.ptr;
  ctr_vdef_t *d;
  uint32_t slot;
  uint64_t id;
  int rc;

  if (v->via.array.size != 3 || a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
    return fail(why, "DEF value is not [11, def_id, value]", CTR_EPROTO);
  id = a[1].via.u64;
  if (is_ref_kind(&a[2]))
    return fail(why, "DEF of a DEF or REF value", CTR_EPROTO);
  if ((rc = ingest(t, &a[2], level, sp, why)) != 0)
    return rc;
  if (t->defined && id <= t->last)
    return fail(why, "DEF id not above the previous DEF's", CTR_ERANGE);
  if (sp->count > t->max_elements)
    return fail(why,
                "DEF value with references expanded holds more than "
                "limits.max_elements values",
                CTR_ELIMIT);
  d = new_node(t, &a[2], id, sp);
  t->defined = true;
  t->last = id;
  slot = (uint32_t)(id % t->nslots);
  unref(t->slots[slot]);
  t->slots[slot] = d;
  point(t, v, d);
  return 0;
}

/* REF [12, id]: the value of a kept definition. */
static int refer(ctr_vdefs_t *t, msgpack_object *v, uint32_t level, span_t *sp,
                 const char **why) {
  msgpack_object *a = v->via.array.ptr;
  ctr_vdef_t *d;

  if (v->via.array.size != 2 || a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
    return fail(why, "REF value is not [12, def_id]", CTR_EPROTO);
  d = t->slots[a[1].via.u64 % t->nslots];
  if (d == NULL || d->id != a[1].via.u64)
    return fail(why, "REF to a definition that is not kept", CTR_ERANGE);
  if (level + d->depth - 1 > t->max_depth)
    return fail(why,
                "value with references expanded nested deeper than "
                "limits.max_depth",
                CTR_ELIMIT);
  sp->depth = d->depth;
  sp->count = d->count;
  point(t, v, d);
  return 0;
}

/* Ingests the value v at nesting level `level`: its depth and count, REFs
 * expanded, go to *sp. Where a value is malformed, its parts are only
 * checked for ext objects: rendering reports the rest. */
static int ingest(ctr_vdefs_t *t, msgpack_object *v, uint32_t level, span_t *sp,
                  const char **why) {
  msgpack_object *a, *e;
  uint32_t vk, i, step, d;
  span_t in;
  int rc;

  sp->depth = 1;
  sp->count = 1;
  if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size < 2 ||
      !ctr_obj_u32(&v->via.array.ptr[0], &vk))
    return plain(v, &sp->depth, why);
  a = v->via.array.ptr;
  if (vk == CTR_V_DEF || vk == CTR_V_REF) {
    if (t->nslots == 0)
      return fail(why, "DEF or REF value, but limits.value_refs is 0",
                  CTR_EPROTO);
    return vk == CTR_V_DEF ? define(t, v, level, sp, why)
                           : refer(t, v, level, sp, why);
  }
  if ((vk != CTR_V_SEQ && vk != CTR_V_TUPLE && vk != CTR_V_STRUCT) ||
      v->via.array.size != 3 || a[2].type != MSGPACK_OBJECT_ARRAY)
    return plain(v, &sp->depth, why);
  if ((rc = plain(&a[1], &d, why)) != 0)
    return rc;
  /* A field value sits in its pair, in the field array; an element in the
   * element array. */
  step = vk == CTR_V_STRUCT ? 3 : 2;
  sp->depth = 2;
  for (i = 0; i < a[2].via.array.size; i++) {
    e = &a[2].via.array.ptr[i];
    if (vk == CTR_V_STRUCT) {
      if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2) {
        if ((rc = plain(e, &d, why)) != 0)
          return rc;
        continue;
      }
      if ((rc = plain(&e->via.array.ptr[0], &d, why)) != 0)
        return rc;
      e = &e->via.array.ptr[1];
    }
    if ((rc = ingest(t, e, level + step, &in, why)) != 0)
      return rc;
    if (step + in.depth > sp->depth)
      sp->depth = step + in.depth;
    sp->count += in.count;
  }
  return 0;
}

int ctr_vdefs_ingest(ctr_vdefs_t *t, msgpack_object *v, uint32_t level,
                     const char **why) {
  span_t sp;
  int rc = ingest(t, v, level, &sp, why);

  if (rc != 0)
    return rc;
  t->count += sp.count;
  if (t->count > t->max_elements)
    return fail(why,
                "values with references expanded hold more than "
                "limits.max_elements values",
                CTR_ELIMIT);
  return 0;
}

const msgpack_object *ctr_vdef_value(const ctr_vdef_t *d) { return &d->value; }

/* ---- rendered text ------------------------------------------------------ */

const char *ctr_vdef_text(const ctr_vdef_t *d, uint64_t key, size_t *len,
                          int64_t *tid) {
  if (d->key != key || d->text == NULL)
    return NULL;
  *len = d->len;
  *tid = d->tid;
  return d->text;
}

void ctr_vdef_keep_text(ctr_vdef_t *d, uint64_t key, const char *text,
                        size_t len, int64_t tid) {
  drop_text(d);
  if (len > TEXTS_MAX - d->table->text_bytes)
    return;
  d->text = ctr_xmalloc(len ? len : 1);
  memcpy(d->text, text, len);
  d->len = len;
  d->key = key;
  d->tid = tid;
  d->table->text_bytes += len;
}

void ctr_vdefs_forget_texts(ctr_vdefs_t *t) {
  ctr_vdef_t *d;

  for (d = t->nodes; d; d = d->next)
    drop_text(d);
}
