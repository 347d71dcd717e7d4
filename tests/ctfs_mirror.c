/* ctfs_mirror: writes the records of a JSON trace folder as a CTFS trace
 * with the project's writer library, for the tests of ctrecctl's CTFS
 * reading while ctrecd cannot write CTFS itself (test-only, not installed).
 *
 *   ctfs_mirror [--delay MS] [--flush N] [--flush-at KIND] TRACE_DIR OUT.ct
 *
 * Every record maps to the writer call a session would make; values go
 * through the writer's own encoder (wire value, then CBOR). With --delay it
 * flushes at the first record of KIND (Step unless told) after every N
 * records and sleeps MS milliseconds, for live tests: at Event, a follower
 * finds a step, then its output a flush later, as ctrecd may write them. */
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctr_ctfs.h"
#include "ctr_ctfs_cbor.h"
#include "ctr_reader.h"

typedef struct ids_s {
  int64_t *v;
  size_t n, cap;
} ids_t;

static int64_t *types_v;
static size_t ntypes;

static void die(const char *what, long rc) {
  fprintf(stderr, "ctfs_mirror: %s (%ld)\n", what, rc);
  exit(1);
}

static void ids_push(ids_t *l, int64_t id) {
  if (id < 0)
    die("the writer refused a name", (long)id);
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 64;
    l->v = realloc(l->v, l->cap * sizeof(*l->v));
  }
  l->v[l->n++] = id;
}

static uint64_t id_at(const ids_t *l, const ctr_jval_t *v) {
  int64_t i;
  if (!ctr_jval_i64(v, &i) || i < 0 || (uint64_t)i >= l->n)
    die("an id out of range", 0);
  return (uint64_t)l->v[i];
}

static int64_t type_of(void *ctx, uint32_t tid) {
  (void)ctx;
  return tid < ntypes ? types_v[tid] : -1;
}

static int b64(int c) {
  const char *tab =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const char *p = c ? strchr(tab, c) : NULL;
  return p ? (int)(p - tab) : -1;
}

/* A JSON trace value as the wire value the shims send (PROTOCOL.md 9). */
static void pack(msgpack_packer *pk, const ctr_jval_t *v) {
  const char *kind = ctr_jval_str(v, "kind");
  const ctr_jval_t *f;
  int64_t tid = 0, i;
  static const char *const kinds[] = {"None",   "Bool",   "Int",      "Float",
                                      "String", "BigInt", "Sequence", "Tuple",
                                      "Struct", "Raw",    "Error"};
  int k = -1;

  for (int j = 0; kind && j < 11; j++)
    if (strcmp(kind, kinds[j]) == 0)
      k = j;
  if (k < 0 || !ctr_jval_i64(ctr_jval_get(v, "type_id"), &tid))
    die("a value kind the mirror does not know", 0);
  msgpack_pack_array(pk, k == 0 ? 2 : k == 5 ? 4 : 3);
  msgpack_pack_int(pk, k);
  msgpack_pack_int64(pk, tid);
  switch (k) {
  case 1:
    (ctr_jval_get(v, "b")->b ? msgpack_pack_true : msgpack_pack_false)(pk);
    break;
  case 2:
    if (!ctr_jval_i64(ctr_jval_get(v, "i"), &i))
      die("Int", 0);
    msgpack_pack_int64(pk, i);
    break;
  case 3:
    msgpack_pack_double(pk, strtod(ctr_jval_get(v, "f")->str, NULL));
    break;
  case 4:
  case 9:
  case 10: {
    f = ctr_jval_get(v, k == 4 ? "text" : k == 9 ? "r" : "msg");
    msgpack_pack_bin(pk, f->len);
    msgpack_pack_bin_body(pk, f->str, f->len);
    break;
  }
  case 5: {
    const char *s = ctr_jval_str(v, "b");
    unsigned char mag[4096];
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    f = ctr_jval_get(v, "negative");
    (f && f->b ? msgpack_pack_true : msgpack_pack_false)(pk);
    for (; s && *s && *s != '=' && n < sizeof(mag); s++) {
      acc = (acc << 6) | (uint32_t)b64(*s);
      if ((bits += 6) >= 8)
        mag[n++] = (unsigned char)(acc >> (bits -= 8));
    }
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, mag, n);
    break;
  }
  case 6:
  case 7:
  case 8: {
    const ctr_jval_t *e;
    size_t n = 0;
    f = ctr_jval_get(v, k == 8 ? "field_values" : "elements");
    for (e = f->child; e; e = e->next)
      n++;
    msgpack_pack_array(pk, n);
    for (e = f->child; e; e = e->next) {
      if (k == 8) { /* [varname_id, value]; the writer keeps no names */
        msgpack_pack_array(pk, 2);
        msgpack_pack_int(pk, 0);
      }
      pack(pk, e);
    }
    break;
  }
  }
}

/* The CBOR of a JSON trace value, through the writer's encoder. */
static void cbor(const ctr_jval_t *v, ctr_buf_t *out) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_unpacked u;
  ctr_ctfs_value_ops_t ops = {.type = type_of, .max_depth = 1000};
  const char *why = NULL;

  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  pack(&pk, v);
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, sb.data, sb.size, NULL) != MSGPACK_UNPACK_SUCCESS)
    die("unpack", 0);
  out->len = 0;
  if (ctr_ctfs_cbor_value(&ops, &u.data, out, &why) < 0) {
    fprintf(stderr, "ctfs_mirror: %s\n", why);
    exit(1);
  }
  msgpack_unpacked_destroy(&u);
  msgpack_sbuffer_destroy(&sb);
}

static void check(int rc, const char *what) {
  if (rc < 0)
    die(what, rc);
}

int main(int argc, char **argv) {
  ids_t paths = {0}, funcs = {0}, vars = {0}, types = {0};
  long delay = 0, every = 1, n = 0;
  const char *at = "Step";
  ctr_buf_t b = {0};
  ctr_reader_t *t;
  ctr_reader_rec_t r;
  ctr_ctfs_t *w;
  int a = 1, rc;

  for (; a + 1 < argc && strncmp(argv[a], "--", 2) == 0; a += 2) {
    if (strcmp(argv[a], "--delay") == 0)
      delay = atol(argv[a + 1]);
    else if (strcmp(argv[a], "--flush") == 0)
      every = atol(argv[a + 1]);
    else if (strcmp(argv[a], "--flush-at") == 0)
      at = argv[a + 1];
  }
  if (argc - a != 2) {
    fprintf(stderr, "usage: ctfs_mirror [--delay MS] [--flush N] "
                    "[--flush-at KIND] DIR OUT.ct\n");
    return 2;
  }
  check(ctr_reader_open(&t, argv[a], false), "open the JSON trace");
  /* A mirror needs some UUIDv7; which one does not matter to a reader. */
  check(ctr_ctfs_open(&w, argv[a + 1], "01890a5d-ac96-774b-bcce-b302099a8057"),
        "open the CTFS trace");
  while ((rc = ctr_reader_next(t, &r)) == 1) {
    const ctr_jval_t *p = r.rec->child, *e;
    const char *k = p ? p->key : "";
    /* A flush ends the latest step's values: flush before a Step, or
     * before an Event, which comes after them. */
    if (delay && n >= every && strcmp(k, at) == 0) {
      struct timespec ts = {delay / 1000, (delay % 1000) * 1000000L};
      check(ctr_ctfs_flush(w), "flush");
      nanosleep(&ts, NULL);
      n = 0;
    }
    n++;
    if (strcmp(k, "Path") == 0) {
      ids_push(&paths, ctr_ctfs_path(w, p->str, p->len));
    } else if (strcmp(k, "Function") == 0) {
      const char *s = ctr_jval_str(p, "name");
      ids_push(&funcs, ctr_ctfs_function(w, s, strlen(s)));
    } else if (strcmp(k, "Type") == 0) {
      const char *s = ctr_jval_str(p, "lang_type");
      ids_push(&types, ctr_ctfs_type(w, s, strlen(s)));
      types_v = types.v, ntypes = types.n;
    } else if (strcmp(k, "VariableName") == 0) {
      ids_push(&vars, ctr_ctfs_varname(w, p->str, p->len));
    } else if (strcmp(k, "Step") == 0) {
      int64_t line;
      ctr_jval_i64(ctr_jval_get(p, "line"), &line);
      check(ctr_ctfs_step(w, id_at(&paths, ctr_jval_get(p, "path_id")),
                          (uint64_t)line),
            "step");
    } else if (strcmp(k, "Value") == 0) {
      cbor(ctr_jval_get(p, "value"), &b);
      check(ctr_ctfs_value(w, id_at(&vars, ctr_jval_get(p, "variable_id")),
                           b.data, b.len),
            "value");
    } else if (strcmp(k, "Call") == 0) {
      check(ctr_ctfs_call(w, id_at(&funcs, ctr_jval_get(p, "function_id"))),
            "call");
      for (e = ctr_jval_get(p, "args")->child; e; e = e->next) {
        cbor(ctr_jval_get(e, "value"), &b);
        check(ctr_ctfs_arg(w, id_at(&vars, ctr_jval_get(e, "variable_id")),
                           b.data, b.len),
              "arg");
      }
    } else if (strcmp(k, "Return") == 0) {
      cbor(ctr_jval_get(p, "return_value"), &b);
      check(ctr_ctfs_return(w, b.data, b.len), "return");
    } else if (strcmp(k, "Event") == 0) {
      int64_t kind;
      const ctr_jval_t *m = ctr_jval_get(p, "metadata"),
                       *c = ctr_jval_get(p, "content");
      ctr_jval_i64(ctr_jval_get(p, "kind"), &kind);
      check(ctr_ctfs_event(w, (unsigned)kind, m->str, m->len, c->str, c->len),
            "event");
    } else if (strncmp(k, "Thread", 6) == 0) {
      int64_t tid;
      ctr_jval_i64(p, &tid);
      check(ctr_ctfs_thread(
                w,
                strcmp(k, "ThreadSwitch") == 0  ? CTR_CTFS_THREAD_SWITCH
                : strcmp(k, "ThreadStart") == 0 ? CTR_CTFS_THREAD_START
                                                : CTR_CTFS_THREAD_EXIT,
                (uint64_t)tid),
            "thread");
    } else {
      fprintf(stderr, "ctfs_mirror: %s is not mirrored\n", k);
      return 1;
    }
  }
  check(rc, ctr_reader_error(t));
  check(ctr_ctfs_close(w), "close");
  ctr_reader_free(t);
  ctr_buf_free(&b);
  return 0;
}
