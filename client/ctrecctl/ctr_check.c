/* ctr_check.c: `ctrecctl check TRACE_DIR...`.
 *
 * The rules are those of CodeTracer's JSON trace reader and the format's
 * writer conventions: every record is one known event with the payload shape
 * the reader deserializes; ids refer to records already seen (an id is the
 * position of its defining record); the reader's hard failures (a Return or
 * VariableCell with no open call, DropLastStep with fewer than two steps, an
 * unknown function id, a CompoundValue that is not a Sequence, a Cell value
 * outside one, an AssignCompoundItem with no CompoundValue) are reported;
 * trace_paths.json lists the Path records in order; files/ holds a copy of
 * every real source path and nothing in it leads outside the folder.
 *
 * trace.json is split into records by a byte scanner that reads the file in
 * fixed-size chunks; each record is then parsed on its own (ctr_jval), so
 * only the intern tables and one record are ever in memory. */
#include "ctr_check.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctr_alloc.h"
#include "ctr_error.h"
#include "ctr_jval.h"
#include "ctr_reader.h"

#define CHUNK (64 * 1024)
/* One record larger than this is reported, not parsed: the bound keeps a
 * damaged file from taking the machine's memory. */
#define RECORD_MAX ((size_t)64 << 20)
/* ctr_jval stops at 256 levels; reporting earlier names the cause. */
#define NEST_MAX 250
#define SIDECAR_MAX ((size_t)64 << 20)
#define SHOWN_MAX 100
#define QUOTE_MAX 60

static const char *prog_name = "ctrecctl";

typedef enum floats_e { FLOATS_STRING, FLOATS_NUMBER, FLOATS_ANY } floats_t;

typedef struct opts_s {
  bool live;
  bool quiet;
  floats_t floats;
} opts_t;

/* Places that hold a CompoundValue: an open-addressing set. */
typedef struct places_s {
  int64_t *v;
  bool *used;
  size_t n, cap;
} places_t;

typedef struct check_s {
  const opts_t *o;
  const char *dir;
  char *shown[SHOWN_MAX];
  size_t nshown;
  uint64_t nproblems;
  uint64_t rec; /* the record being checked, counted from 0 */
  char **paths; /* Path records, in order */
  size_t npaths, pcap;
  bool ctfs;    /* trace.ct: records as ctr_reader_ctfs.c builds them */
  uint64_t nfuncs, ntypes, nvars, nsteps, ncalls, nreturns, nevents;
  uint64_t depth, max_depth;
  places_t compound;
} check_t;

/* ---- problems ------------------------------------------------------------ */

static void vproblem(check_t *ck, const char *prefix, const char *fmt,
                     va_list ap) {
  char msg[1024];
  size_t n;

  ck->nproblems++;
  if (ck->nshown == SHOWN_MAX)
    return;
  n = (size_t)snprintf(msg, sizeof(msg), "%s", prefix);
  if (n < sizeof(msg))
    vsnprintf(msg + n, sizeof(msg) - n, fmt, ap);
  ck->shown[ck->nshown] = ctr_xrealloc(NULL, strlen(msg) + 1);
  strcpy(ck->shown[ck->nshown++], msg);
}

/* A problem of a whole file: fmt starts with the file name. */
static void problem(check_t *ck, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vproblem(ck, "", fmt, ap);
  va_end(ap);
}

/* A problem of the current record (of trace.ct: in the order `ctrecctl
 * follow --json` prints them). */
static void bad(check_t *ck, const char *fmt, ...) {
  char prefix[64];
  va_list ap;

  snprintf(prefix, sizeof(prefix), "%s: record %" PRIu64 ": ",
           ck->ctfs ? "trace.ct" : "trace.json", ck->rec);
  va_start(ap, fmt);
  vproblem(ck, prefix, fmt, ap);
  va_end(ap);
}

/* s as a JSON-like quoted string for a message, cut to QUOTE_MAX bytes. */
static const char *quote(const char *s, char out[QUOTE_MAX + 8]) {
  size_t i, n = 0;

  out[n++] = '"';
  for (i = 0; s[i] && n < QUOTE_MAX; i++)
    out[n++] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
  if (s[i]) {
    /* Cut at a character boundary: messages stay UTF-8. */
    while (n > 1 && ((unsigned char)s[i] & 0xc0) == 0x80) {
      n--;
      i--;
    }
    memcpy(out + n, "...", 3);
    n += 3;
  }
  out[n++] = '"';
  out[n] = '\0';
  return out;
}

/* ---- JSON node helpers ----------------------------------------------------- */

static const char *const type_names[] = {"null",     "a boolean", "a number",
                                         "a string", "an array",  "an object"};

static const char *type_name(const ctr_jval_t *v) { return type_names[v->type]; }

static const char *skip_digits(const char *s) {
  while (*s >= '0' && *s <= '9')
    s++;
  return s;
}

/* The end of s's number text: digits, optionally a fraction, optionally an
 * exponent; NULL when a part has no digits. lead: digits before the point
 * are required. */
static const char *number_end(const char *s, bool lead) {
  const char *d = skip_digits(s);
  bool any = d > s;

  if (lead && !any)
    return NULL;
  if (*d == '.') {
    s = d + 1;
    d = skip_digits(s);
    if (lead && d == s)
      return NULL;
    any = any || d > s;
  }
  if (!any)
    return NULL;
  if (*d == 'e' || *d == 'E') {
    s = d + 1 + (d[1] == '+' || d[1] == '-');
    d = skip_digits(s);
    if (d == s)
      return NULL;
  }
  return d;
}

/* Whether text is a number as JSON writes it (ctr_jval is more lenient):
 * no leading zeros, no "+", digits on both sides of the point. */
static bool json_number(const char *s) {
  const char *end;

  if (*s == '-')
    s++;
  if (s[0] == '0' && s[1] >= '0' && s[1] <= '9')
    return false;
  end = number_end(s, true);
  return end && *end == '\0';
}

/* Why v is not JSON as serde reads it (a number's text, a key twice in one
 * object), or NULL when it is. */
static const char *bad_json(const ctr_jval_t *v, char out[QUOTE_MAX + 40]) {
  const ctr_jval_t *c, *d;
  const char *why;

  if (v->type == CTR_JVAL_NUM && !json_number(v->str)) {
    snprintf(out, QUOTE_MAX + 40, "the number \"%.*s\" is not valid JSON",
             QUOTE_MAX, v->str);
    return out;
  }
  for (c = v->child; c; c = c->next) {
    if (v->type == CTR_JVAL_OBJ)
      for (d = c->next; d; d = d->next)
        if (strcmp(c->key, d->key) == 0) {
          snprintf(out, QUOTE_MAX + 40, "the key \"%.*s\" appears twice",
                   QUOTE_MAX, c->key);
          return out;
        }
    if ((why = bad_json(c, out)) != NULL)
      return why;
  }
  return NULL;
}

static bool integer_text(const ctr_jval_t *v) {
  return v->type == CTR_JVAL_NUM && strpbrk(v->str, ".eE") == NULL;
}

/* key of obj, reported when missing. */
static const ctr_jval_t *field(check_t *ck, const ctr_jval_t *obj,
                               const char *key, const char *what) {
  const ctr_jval_t *v = ctr_jval_get(obj, key);

  if (v == NULL)
    bad(ck, "%s: missing key \"%s\"", what, key);
  return v;
}

static bool want_i64(check_t *ck, const ctr_jval_t *obj, const char *key,
                     const char *what, int64_t *out) {
  const ctr_jval_t *v = field(ck, obj, key, what);

  if (v == NULL)
    return false;
  if (!integer_text(v)) {
    bad(ck, "%s.%s: expected an integer, not %.40s", what, key,
        v->type == CTR_JVAL_NUM ? v->str : type_name(v));
    return false;
  }
  if (!ctr_jval_i64(v, out)) {
    bad(ck, "%s.%s: %s is out of the 64-bit range", what, key, v->str);
    return false;
  }
  return true;
}

static bool u64_of(const ctr_jval_t *v) {
  char *end;

  if (!integer_text(v) || v->str[0] == '-')
    return false;
  errno = 0;
  strtoull(v->str, &end, 10);
  return *end == '\0' && errno == 0;
}

static void want_u64(check_t *ck, const ctr_jval_t *obj, const char *key,
                     const char *what) {
  const ctr_jval_t *v = field(ck, obj, key, what);

  if (v && !u64_of(v))
    bad(ck, "%s.%s: expected an unsigned 64-bit integer", what, key);
}

static const ctr_jval_t *want(check_t *ck, const ctr_jval_t *obj,
                              const char *key, const char *what,
                              ctr_jval_type_t type) {
  const ctr_jval_t *v = field(ck, obj, key, what);

  if (v && v->type != type) {
    bad(ck, "%s.%s: expected %s, not %s", what, key, type_names[type],
        type_name(v));
    return NULL;
  }
  return v;
}

/* An id that must name an earlier record of its kind (writer rule R1). */
static void want_ref(check_t *ck, const ctr_jval_t *obj, const char *key,
                     const char *what, uint64_t have, const char *table) {
  int64_t id;

  if (!want_i64(ck, obj, key, what, &id))
    return;
  if (id < 0 || (uint64_t)id >= have)
    bad(ck, "%s.%s %" PRId64 " refers to no earlier %s record (%" PRIu64
            " so far)",
        what, key, id, table, have);
}

/* ---- values ----------------------------------------------------------------- */

/* Whether s is a float as Rust's f64 parser reads it: "2.5", "1e300",
 * "inf", "-inf", "+inf", "NaN". */
static bool float_text(const char *s) {
  const char *end;

  if (*s == '+' || *s == '-')
    s++;
  if (strcasecmp(s, "inf") == 0 || strcasecmp(s, "infinity") == 0 ||
      strcasecmp(s, "nan") == 0)
    return true;
  end = number_end(s, false);
  return end && *end == '\0';
}

/* Standard base64 with padding, as BigInt's magnitude is written. */
static bool base64_text(const char *s, size_t n) {
  size_t i, pad = 0;

  if (n % 4 != 0)
    return false;
  for (i = 0; i < n; i++) {
    char c = s[i];
    if (c == '=') {
      pad++;
      continue;
    }
    if (pad || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                 (c >= '0' && c <= '9') || c == '+' || c == '/'))
      return false;
  }
  return pad <= 2;
}

/* Whether s (UTF-8, checked already) holds exactly one character. */
static bool one_char(const char *s, size_t n) {
  unsigned char c = (unsigned char)s[0];

  if (n == 0)
    return false;
  return n == (c < 0x80 ? 1u : c < 0xe0 ? 2u : c < 0xf0 ? 3u : 4u);
}

static void check_value(check_t *ck, const ctr_jval_t *v, const char *what,
                        bool cell_ok);

static void check_elements(check_t *ck, const ctr_jval_t *arr,
                           const char *what, const char *label, bool cell_ok) {
  const ctr_jval_t *e;
  char sub[256];
  size_t i = 0;

  for (e = arr ? arr->child : NULL; e; e = e->next, i++) {
    snprintf(sub, sizeof(sub), "%s%s[%zu]", what, label, i);
    check_value(ck, e, sub, cell_ok);
  }
}

static void check_value(check_t *ck, const ctr_jval_t *v, const char *what,
                        bool cell_ok) {
  const ctr_jval_t *x;
  char sub[256], q[QUOTE_MAX + 8];
  const char *kind;
  int64_t i;

  if (v->type != CTR_JVAL_OBJ) {
    bad(ck, "%s: a value must be an object, not %s", what, type_name(v));
    return;
  }
  kind = ctr_jval_str(v, "kind");
  if (kind == NULL) {
    bad(ck, "%s: the value has no string \"kind\"", what);
    return;
  }
  if (strcmp(kind, "Cell") == 0) {
    if (!cell_ok)
      bad(ck, "%s: a Cell value outside a CompoundValue (the reader cannot "
              "show it)",
          what);
    want_i64(ck, v, "place", what, &i);
    return;
  }
  if (strcmp(kind, "Int") == 0) {
    x = field(ck, v, "i", what);
    if (x && !integer_text(x))
      bad(ck, "%s: Int.i must be an integer, not %s", what, type_name(x));
    else if (x && !ctr_jval_i64(x, &i))
      bad(ck, "%s: Int.i %s is out of the 64-bit range (use BigInt)", what,
          x->str);
  } else if (strcmp(kind, "Float") == 0) {
    x = field(ck, v, "f", what);
    if (x == NULL) {
    } else if (x->type == CTR_JVAL_STR) {
      if (ck->o->floats == FLOATS_NUMBER)
        bad(ck, "%s: Float.f is a string; --floats number wants a number",
            what);
      else if (!float_text(x->str))
        bad(ck, "%s: Float.f %s does not read as a float", what,
            quote(x->str, q));
    } else if (x->type == CTR_JVAL_NUM) {
      if (ck->o->floats == FLOATS_STRING)
        bad(ck, "%s: Float.f must be a string for current CodeTracer "
                "(--floats number for 25.11 and older)",
            what);
    } else {
      bad(ck, "%s: Float.f must be a string or number, not %s", what,
          type_name(x));
    }
  } else if (strcmp(kind, "Bool") == 0) {
    want(ck, v, "b", what, CTR_JVAL_BOOL);
  } else if (strcmp(kind, "String") == 0) {
    want(ck, v, "text", what, CTR_JVAL_STR);
  } else if (strcmp(kind, "Char") == 0) {
    x = want(ck, v, "c", what, CTR_JVAL_STR);
    if (x && !one_char(x->str, x->len))
      bad(ck, "%s: Char.c must be exactly one character", what);
  } else if (strcmp(kind, "Raw") == 0) {
    want(ck, v, "r", what, CTR_JVAL_STR);
  } else if (strcmp(kind, "Error") == 0) {
    want(ck, v, "msg", what, CTR_JVAL_STR);
  } else if (strcmp(kind, "BigInt") == 0) {
    x = want(ck, v, "b", what, CTR_JVAL_STR);
    if (x && !base64_text(x->str, x->len))
      bad(ck, "%s: BigInt.b is not standard base64", what);
    want(ck, v, "negative", what, CTR_JVAL_BOOL);
  } else if (strcmp(kind, "Sequence") == 0 || strcmp(kind, "Tuple") == 0) {
    if (kind[0] == 'S')
      want(ck, v, "is_slice", what, CTR_JVAL_BOOL);
    check_elements(ck, want(ck, v, "elements", what, CTR_JVAL_ARR), what, "",
                   cell_ok);
  } else if (strcmp(kind, "Struct") == 0) {
    check_elements(ck, want(ck, v, "field_values", what, CTR_JVAL_ARR), what,
                   ".field", false);
  } else if (strcmp(kind, "Variant") == 0) {
    want(ck, v, "discriminator", what, CTR_JVAL_STR);
    if ((x = want(ck, v, "contents", what, CTR_JVAL_OBJ)) != NULL) {
      snprintf(sub, sizeof(sub), "%s.contents", what);
      check_value(ck, x, sub, false);
    }
  } else if (strcmp(kind, "Reference") == 0) {
    want_u64(ck, v, "address", what);
    want(ck, v, "mutable", what, CTR_JVAL_BOOL);
    if ((x = want(ck, v, "dereferenced", what, CTR_JVAL_OBJ)) != NULL) {
      snprintf(sub, sizeof(sub), "%s.dereferenced", what);
      check_value(ck, x, sub, false);
    }
  } else if (strcmp(kind, "None") != 0) {
    bad(ck, "%s: unknown value kind %s", what, quote(kind, q));
    return;
  }
  want_ref(ck, v, "type_id", what, ck->ntypes, "Type");
}

/* A FullValueRecord: {"variable_id": id, "value": value}. */
static void check_full_value(check_t *ck, const ctr_jval_t *fv,
                             const char *what) {
  char sub[256];
  const ctr_jval_t *v;

  if (fv->type != CTR_JVAL_OBJ) {
    bad(ck, "%s: expected an object, not %s", what, type_name(fv));
    return;
  }
  want_ref(ck, fv, "variable_id", what, ck->nvars, "VariableName");
  if ((v = field(ck, fv, "value", what)) != NULL) {
    snprintf(sub, sizeof(sub), "%s.value", what);
    check_value(ck, v, sub, false);
  }
}

/* ---- records ---------------------------------------------------------------- */

static size_t place_slot(const places_t *s, int64_t p) {
  size_t i = (size_t)((uint64_t)p * 0x9e3779b97f4a7c15ull) & (s->cap - 1);

  while (s->used[i] && s->v[i] != p)
    i = (i + 1) & (s->cap - 1);
  return i;
}

static bool place_has(const places_t *s, int64_t p) {
  return s->cap && s->used[place_slot(s, p)];
}

static void place_add(places_t *s, int64_t p) {
  size_t i;

  if (place_has(s, p))
    return;
  if (2 * (s->n + 1) > s->cap) {
    places_t g = {NULL, NULL, 0, s->cap ? 2 * s->cap : 64};
    g.v = ctr_xrealloc(NULL, g.cap * sizeof(*g.v));
    g.used = ctr_xcalloc(g.cap, sizeof(*g.used));
    for (i = 0; i < s->cap; i++)
      if (s->used[i])
        place_add(&g, s->v[i]);
    free(s->v);
    free(s->used);
    *s = g;
  }
  i = place_slot(s, p);
  s->used[i] = true;
  s->v[i] = p;
  s->n++;
}

static bool payload_obj(check_t *ck, const char *name, const ctr_jval_t *p) {
  if (p->type == CTR_JVAL_OBJ)
    return true;
  bad(ck, "%s: the payload must be an object, not %s", name, type_name(p));
  return false;
}

static void check_type(check_t *ck, const ctr_jval_t *p) {
  const ctr_jval_t *si, *f;
  char q[QUOTE_MAX + 8];
  const char *sk;
  int64_t kind;

  if (ck->ctfs) { /* types.dat holds names only */
    want(ck, p, "lang_type", "Type", CTR_JVAL_STR);
    return;
  }
  if (want_i64(ck, p, "kind", "Type", &kind) && (kind < 0 || kind > 33))
    bad(ck, "Type.kind %" PRId64 " is not a TypeKind number (0-33)", kind);
  want(ck, p, "lang_type", "Type", CTR_JVAL_STR);
  si = want(ck, p, "specific_info", "Type", CTR_JVAL_OBJ);
  if (si == NULL)
    return;
  sk = ctr_jval_str(si, "kind");
  if (sk && strcmp(sk, "Struct") == 0) {
    f = want(ck, si, "fields", "Type.specific_info", CTR_JVAL_ARR);
    for (f = f ? f->child : NULL; f; f = f->next) {
      if (f->type != CTR_JVAL_OBJ) {
        bad(ck, "Type.specific_info.fields: a field must be an object");
        continue;
      }
      want(ck, f, "name", "Type.field", CTR_JVAL_STR);
      want_i64(ck, f, "type_id", "Type.field", &kind);
    }
  } else if (sk && strcmp(sk, "Pointer") == 0) {
    want_i64(ck, si, "dereference_type_id", "Type.specific_info", &kind);
  } else if (sk == NULL || strcmp(sk, "None") != 0) {
    bad(ck, "Type.specific_info.kind %s is not None, Struct or Pointer",
        sk ? quote(sk, q) : "(missing)");
  }
}

static void add_path(check_t *ck, const char *s) {
  if (ck->npaths == ck->pcap) {
    ck->pcap = ck->pcap ? 2 * ck->pcap : 64;
    ck->paths = ctr_xrealloc(ck->paths, ck->pcap * sizeof(*ck->paths));
  }
  ck->paths[ck->npaths] = ctr_xrealloc(NULL, strlen(s) + 1);
  strcpy(ck->paths[ck->npaths++], s);
}

static void check_step(check_t *ck, const ctr_jval_t *p) {
  int64_t line;

  /* A live CTFS trace shows a call only once it and every call opened
   * before it returned, so its first steps have no call yet. */
  if (ck->depth == 0 && !(ck->ctfs && ck->o->live))
    bad(ck, "Step outside any call: open a top-level Call before the first "
            "Step");
  want_ref(ck, p, "path_id", "Step", ck->npaths, "Path");
  if (want_i64(ck, p, "line", "Step", &line) && line < 0)
    bad(ck, "Step.line %" PRId64 " is negative", line);
  ck->nsteps++;
}

static void check_call(check_t *ck, const ctr_jval_t *p) {
  const ctr_jval_t *args, *a;
  char what[64];
  size_t i = 0;

  want_ref(ck, p, "function_id", "Call", ck->nfuncs, "Function");
  args = want(ck, p, "args", "Call", CTR_JVAL_ARR);
  for (a = args ? args->child : NULL; a; a = a->next, i++) {
    snprintf(what, sizeof(what), "Call.args[%zu]", i);
    check_full_value(ck, a, what);
  }
  ck->ncalls++;
  if (++ck->depth > ck->max_depth)
    ck->max_depth = ck->depth;
}

static void check_return(check_t *ck, const ctr_jval_t *p) {
  const ctr_jval_t *v;

  if (ck->depth == 0)
    bad(ck, "Return without an open Call");
  else
    ck->depth--;
  ck->nreturns++;
  /* A CTFS call may return no value (a call still open at the end). */
  if (ck->ctfs && ctr_jval_get(p, "return_value") == NULL)
    return;
  if ((v = field(ck, p, "return_value", "Return")) != NULL)
    check_value(ck, v, "Return.return_value", false);
}

static void check_compound(check_t *ck, const ctr_jval_t *p) {
  const ctr_jval_t *v;
  int64_t place;
  bool has_place = want_i64(ck, p, "place", "CompoundValue", &place);

  v = want(ck, p, "value", "CompoundValue", CTR_JVAL_OBJ);
  if (v == NULL)
    return;
  if (!ctr_jval_str(v, "kind") || strcmp(ctr_jval_str(v, "kind"), "Sequence")) {
    bad(ck, "CompoundValue.value must be a Sequence (the reader panics "
            "otherwise)");
    return;
  }
  /* Cells are what a compound holds: its own elements may be Cells. */
  want(ck, v, "is_slice", "CompoundValue.value", CTR_JVAL_BOOL);
  check_elements(ck, want(ck, v, "elements", "CompoundValue.value", CTR_JVAL_ARR),
                 "CompoundValue.value", "", true);
  want_ref(ck, v, "type_id", "CompoundValue.value", ck->ntypes, "Type");
  if (has_place)
    place_add(&ck->compound, place);
}

/* The history and cell-model records the indexer mostly ignores: only what
 * makes the reader fail, and their shapes, are checked. */
static void check_cells(check_t *ck, const char *name, const ctr_jval_t *p) {
  const ctr_jval_t *v;
  const char *pass;
  int64_t x, place;

  if (strcmp(name, "CellValue") == 0 || strcmp(name, "AssignCell") == 0) {
    const char *key = name[0] == 'C' ? "value" : "new_value";
    char what[64];
    want_i64(ck, p, "place", name, &x);
    if ((v = field(ck, p, key, name)) != NULL) {
      snprintf(what, sizeof(what), "%s.%s", name, key);
      check_value(ck, v, what, false);
    }
  } else if (strcmp(name, "AssignCompoundItem") == 0) {
    if (want_i64(ck, p, "place", name, &place) &&
        !place_has(&ck->compound, place))
      bad(ck, "AssignCompoundItem.place %" PRId64 " holds no earlier "
              "CompoundValue (the reader panics)",
          place);
    want_i64(ck, p, "index", name, &x);
    want_i64(ck, p, "item_place", name, &x);
  } else if (strcmp(name, "VariableCell") == 0) {
    if (ck->depth == 0)
      bad(ck, "VariableCell without an open Call (the reader panics)");
    want_ref(ck, p, "variable_id", name, ck->nvars, "VariableName");
    want_i64(ck, p, "place", name, &x);
  } else if (strcmp(name, "BindVariable") == 0) {
    want_ref(ck, p, "variable_id", name, ck->nvars, "VariableName");
    want_i64(ck, p, "place", name, &x);
  } else { /* Assignment */
    want_i64(ck, p, "to", name, &x);
    pass = ctr_jval_str(p, "pass_by");
    if (pass == NULL || (strcmp(pass, "Value") && strcmp(pass, "Reference")))
      bad(ck, "Assignment.pass_by must be \"Value\" or \"Reference\"");
    if ((v = want(ck, p, "from", name, CTR_JVAL_OBJ)) != NULL)
      want(ck, v, "kind", "Assignment.from", CTR_JVAL_STR);
  }
}

static bool int_list(const ctr_jval_t *p) {
  const ctr_jval_t *e;
  int64_t x;

  if (p->type != CTR_JVAL_ARR)
    return false;
  for (e = p->child; e; e = e->next)
    if (!integer_text(e) || !ctr_jval_i64(e, &x))
      return false;
  return true;
}

static void check_record(check_t *ck, const ctr_jval_t *r) {
  const ctr_jval_t *p, *e;
  char q[QUOTE_MAX + 8], why[QUOTE_MAX + 40];
  const char *name;
  int64_t kind;

  if (bad_json(r, why) != NULL) {
    bad(ck, "%s", why);
    return;
  }
  if (r->type == CTR_JVAL_STR && strcmp(r->str, "DropLastStep") == 0) {
    name = "DropLastStep";
    p = NULL;
  } else if (r->type != CTR_JVAL_OBJ || r->child == NULL || r->child->next) {
    bad(ck, "a record must be an object with exactly one key (or "
            "\"DropLastStep\")");
    return;
  } else {
    name = r->child->key;
    p = r->child;
  }
  if (strcmp(name, "DropLastStep") == 0) {
    if (p && p->type != CTR_JVAL_NULL)
      bad(ck, "DropLastStep: the payload must be null");
    if (ck->nsteps < 2)
      bad(ck, "DropLastStep needs two earlier Steps (the reader panics)");
    else
      ck->nsteps--;
  } else if (strcmp(name, "Path") == 0) {
    if (p->type != CTR_JVAL_STR)
      bad(ck, "Path: the payload must be a string, not %s", type_name(p));
    add_path(ck, p->type == CTR_JVAL_STR ? p->str : "");
  } else if (strcmp(name, "VariableName") == 0 || strcmp(name, "Variable") == 0) {
    if (p->type != CTR_JVAL_STR)
      bad(ck, "%s: the payload must be a string, not %s", name, type_name(p));
    ck->nvars++;
  } else if (strcmp(name, "Type") == 0) {
    if (payload_obj(ck, name, p))
      check_type(ck, p);
    ck->ntypes++;
  } else if (strcmp(name, "Function") == 0) {
    if (payload_obj(ck, name, p)) {
      if (!ck->ctfs) { /* funcs.dat holds names only */
        want_ref(ck, p, "path_id", name, ck->npaths, "Path");
        want_i64(ck, p, "line", name, &kind);
      }
      want(ck, p, "name", name, CTR_JVAL_STR);
    }
    ck->nfuncs++;
  } else if (strcmp(name, "Step") == 0) {
    if (payload_obj(ck, name, p))
      check_step(ck, p);
    else
      ck->nsteps++;
  } else if (strcmp(name, "Call") == 0) {
    if (payload_obj(ck, name, p))
      check_call(ck, p);
  } else if (strcmp(name, "Return") == 0) {
    if (payload_obj(ck, name, p))
      check_return(ck, p);
  } else if (strcmp(name, "Value") == 0) {
    check_full_value(ck, p, "Value");
  } else if (strcmp(name, "Event") == 0) {
    ck->nevents++;
    if (payload_obj(ck, name, p)) {
      if (want_i64(ck, p, "kind", name, &kind) && (kind < 0 || kind > 13))
        bad(ck, "Event.kind %" PRId64 " is not an EventLogKind number (0-13)",
            kind);
      want(ck, p, "metadata", name, CTR_JVAL_STR);
      want(ck, p, "content", name, CTR_JVAL_STR);
    }
  } else if (strcmp(name, "Asm") == 0) {
    for (e = p->type == CTR_JVAL_ARR ? p->child : NULL; e; e = e->next)
      if (e->type != CTR_JVAL_STR)
        break;
    if (p->type != CTR_JVAL_ARR || e)
      bad(ck, "Asm: the payload must be a list of strings");
  } else if (strcmp(name, "ThreadStart") == 0 ||
             strcmp(name, "ThreadExit") == 0 ||
             strcmp(name, "ThreadSwitch") == 0) {
    if (!u64_of(p))
      bad(ck, "%s: the payload must be a thread id (unsigned integer)", name);
  } else if (strcmp(name, "DropVariable") == 0) {
    if (!integer_text(p) || !ctr_jval_i64(p, &kind))
      bad(ck, "DropVariable: the payload must be a variable id");
  } else if (strcmp(name, "DropVariables") == 0) {
    if (!int_list(p))
      bad(ck, "DropVariables: the payload must be a list of variable ids");
  } else if (strcmp(name, "CompoundValue") == 0) {
    if (payload_obj(ck, name, p))
      check_compound(ck, p);
  } else if (strcmp(name, "CellValue") == 0 || strcmp(name, "AssignCell") == 0 ||
             strcmp(name, "AssignCompoundItem") == 0 ||
             strcmp(name, "VariableCell") == 0 ||
             strcmp(name, "BindVariable") == 0 ||
             strcmp(name, "Assignment") == 0) {
    if (payload_obj(ck, name, p))
      check_cells(ck, name, p);
  } else {
    bad(ck, "unknown record type %s", quote(name, q));
  }
}

/* ---- trace.json as a stream of records -------------------------------------- */

typedef struct scan_s {
  int fd;
  char buf[CHUNK];
  size_t pos, len;
  uint64_t base; /* the file offset of buf[0] */
  bool eof;
  int err; /* errno of a failed read */
  char *rec; /* the record being collected */
  size_t rlen, rcap;
} scan_t;

enum { END = -1 };

static int next_byte(scan_t *s) {
  ssize_t n;

  if (s->pos < s->len)
    return (unsigned char)s->buf[s->pos++];
  if (s->eof)
    return END;
  do
    n = read(s->fd, s->buf, sizeof(s->buf));
  while (n < 0 && errno == EINTR);
  if (n <= 0) {
    s->eof = true;
    s->err = n < 0 ? errno : 0;
    return END;
  }
  s->base += s->len;
  s->len = (size_t)n;
  s->pos = 1;
  return (unsigned char)s->buf[0];
}

static int next_token(scan_t *s) {
  int c;

  do
    c = next_byte(s);
  while (c == ' ' || c == '\t' || c == '\n' || c == '\r');
  return c;
}

/* UTF-8 decoding state across chunk boundaries. */
typedef struct utf8_s {
  int need;     /* continuation bytes still expected */
  uint32_t cp, min;
} utf8_t;

static bool utf8_byte(utf8_t *u, int c) {
  if (u->need) {
    if ((c & 0xc0) != 0x80)
      return false;
    u->cp = (u->cp << 6) | (uint32_t)(c & 0x3f);
    if (--u->need == 0)
      return u->cp >= u->min && u->cp <= 0x10ffff &&
             !(u->cp >= 0xd800 && u->cp < 0xe000);
    return true;
  }
  if (c < 0x80)
    return true;
  if ((c & 0xe0) == 0xc0)
    *u = (utf8_t){1, (uint32_t)(c & 0x1f), 0x80};
  else if ((c & 0xf0) == 0xe0)
    *u = (utf8_t){2, (uint32_t)(c & 0x0f), 0x800};
  else if ((c & 0xf8) == 0xf0)
    *u = (utf8_t){3, (uint32_t)(c & 0x07), 0x10000};
  else
    return false;
  return true;
}

typedef enum rec_status_e { REC_OK, REC_CUT, REC_SKIP } rec_status_t;

static void rec_put(scan_t *s, int c, bool *too_long) {
  if (s->rlen == RECORD_MAX) {
    *too_long = true;
    return;
  }
  if (s->rlen == s->rcap) {
    s->rcap = s->rcap ? 2 * s->rcap : 4096;
    s->rec = ctr_xrealloc(s->rec, s->rcap);
  }
  s->rec[s->rlen++] = (char)c;
}

/* Collects one record whose first byte is c into s->rec. REC_CUT: the file
 * ends inside it; REC_SKIP: it was reported and is not to be parsed. */
static rec_status_t read_record(check_t *ck, scan_t *s, int c) {
  bool in_str = c == '"', esc = false, too_long = false, bad_utf8 = false;
  bool scalar = c != '{' && c != '[' && c != '"';
  int depth = !scalar && !in_str;
  int deepest = depth;
  utf8_t u = {0, 0, 0};

  s->rlen = 0;
  rec_put(s, c, &too_long);
  while (depth > 0 || in_str || scalar) {
    c = next_byte(s);
    if (c == END)
      return scalar ? REC_OK : REC_CUT;
    if (scalar && (c == ',' || c == ']' || c == ' ' || c == '\t' ||
                   c == '\n' || c == '\r')) {
      s->pos--; /* the byte after the record: read it again */
      break;
    }
    if (!utf8_byte(&u, c))
      bad_utf8 = true;
    if (in_str) {
      if (esc)
        esc = false;
      else if (c == '\\')
        esc = true;
      else if (c == '"')
        in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '{' || c == '[') {
      if (++depth > deepest)
        deepest = depth;
    } else if (c == '}' || c == ']') {
      depth--;
    }
    rec_put(s, c, &too_long);
  }
  if (bad_utf8 || u.need) {
    bad(ck, "not valid UTF-8");
    return REC_SKIP;
  }
  if (deepest > NEST_MAX) {
    bad(ck, "nested deeper than %d levels", NEST_MAX);
    return REC_SKIP;
  }
  if (too_long) {
    bad(ck, "longer than %zu MiB, not checked", RECORD_MAX >> 20);
    return REC_SKIP;
  }
  return REC_OK;
}

static void parse_record(check_t *ck, scan_t *s) {
  ctr_jval_t *r;

  if (ctr_jval_parse(s->rec, s->rlen, &r) != 0) {
    bad(ck, "not valid JSON");
    return;
  }
  check_record(ck, r);
  ctr_jval_free(r);
}

/* Whether text read after the closing ] (the byte before off) came from a
 * later flush of a live trace: that one wrote its records over the ] the
 * earlier reads found, so what was read up to it is a whole trace. */
static bool grew_past(const scan_t *s, uint64_t off, bool live) {
  char c;

  return live && off > 0 && pread(s->fd, &c, 1, (off_t)(off - 1)) == 1 &&
         c != ']';
}

/* Returns 0, or -1 after an I/O error (reported on stderr). */
static int check_trace_json(check_t *ck) {
  char path[PATH_MAX];
  scan_t *s;
  uint64_t closing;
  int c, rc = 0;

  snprintf(path, sizeof(path), "%s/trace.json", ck->dir);
  s = ctr_xcalloc(1, sizeof(*s));
  s->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (s->fd < 0) {
    free(s);
    if (errno == ENOENT) {
      problem(ck, "trace.json: missing");
      return 0;
    }
    fprintf(stderr, "%s: check: %s: %s\n", prog_name, path, strerror(errno));
    return -1;
  }
  c = next_token(s);
  if (c != '[') {
    problem(ck, c == END && !s->err ? "trace.json: empty"
                                    : "trace.json: the top level is not a "
                                      "JSON array");
    goto done;
  }
  c = next_token(s);
  if (c == ']')
    goto closed;
  for (;;) {
    if (c == END)
      break;
    switch (read_record(ck, s, c)) {
    case REC_OK: parse_record(ck, s); break;
    case REC_SKIP: break;
    case REC_CUT: goto cut;
    }
    ck->rec++;
    c = next_token(s);
    if (c == ']')
      goto closed;
    if (c == END)
      break;
    if (c != ',') {
      problem(ck, "trace.json: after record %" PRIu64 ": expected , or ]",
              ck->rec - 1);
      goto done;
    }
    c = next_token(s);
    if (c == ']') {
      problem(ck, "trace.json: a comma before the closing ]");
      goto done;
    }
  }
cut:
  /* A live trace is written as it is read: its tail may still be coming. */
  if (!s->err && !ck->o->live && ck->rec == 0)
    problem(ck, "trace.json: ends before its closing ] and its first record");
  else if (!s->err && !ck->o->live)
    problem(ck, "trace.json: ends before its closing ] (record %" PRIu64
                " is the last complete one)",
            ck->rec - 1);
  goto done;
closed:
  closing = s->base + s->pos;
  if (next_token(s) != END && !grew_past(s, closing, ck->o->live))
    problem(ck, "trace.json: text after the closing ]");
done:
  if (s->err) {
    fprintf(stderr, "%s: check: %s: %s\n", prog_name, path, strerror(s->err));
    rc = -1;
  }
  close(s->fd);
  free(s->rec);
  free(s);
  return rc;
}

/* ---- trace.ct, through the trace reader ------------------------------------ */

/* Checks the records of a CTFS trace and that meta.dat lists every path
 * (CodeTracer's reader resolves step positions through that list). Returns
 * 0, or -1 after an I/O error (reported on stderr). */
static int check_trace_ct(check_t *ck, ctr_reader_t *t) {
  ctr_reader_rec_t r;
  ctr_jval_t *listed;
  const ctr_jval_t *e;
  char q1[QUOTE_MAX + 8], q2[QUOTE_MAX + 8];
  size_t i = 0;
  int rc;

  while ((rc = ctr_reader_next(t, &r)) == 1) {
    check_record(ck, r.rec);
    ck->rec++;
  }
  if (rc < 0) {
    problem(ck, "%s", ctr_reader_error(t));
    return 0;
  }
  if ((rc = ctr_reader_listed_paths(t, &listed)) < 0) {
    problem(ck, "trace.ct: meta.dat: %s",
            rc == CTR_ERANGE ? "missing" : "damaged");
    return 0;
  }
  for (e = listed->child; e && i < ck->npaths; e = e->next, i++)
    if (strcmp(e->str, ck->paths[i]) != 0) {
      problem(ck, "trace.ct: meta.dat lists path %zu as %s, paths.dat as %s",
              i, quote(e->str, q1), quote(ck->paths[i], q2));
      break;
    }
  /* meta.dat is rewritten last in a flush: a live trace's may lag. */
  if (i < ck->npaths && !e && !ck->o->live)
    problem(ck, "trace.ct: meta.dat lists %zu paths, paths.dat holds %zu", i,
            ck->npaths);
  ctr_jval_free(listed);
  return 0;
}

/* ---- sidecar files ------------------------------------------------------------ */

/* Parses dir/name into *out. Returns 0, 1 when it is missing or not JSON
 * (reported), or -1 after an I/O error (reported on stderr). */
static int read_sidecar(check_t *ck, const char *name, ctr_jval_t **out) {
  char path[PATH_MAX], *text;
  struct stat sb;
  size_t got = 0;
  ssize_t n;
  int fd;

  snprintf(path, sizeof(path), "%s/%s", ck->dir, name);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    problem(ck, "%s: missing", name);
    return 1;
  }
  if (fd < 0 || fstat(fd, &sb) != 0) {
    fprintf(stderr, "%s: check: %s: %s\n", prog_name, path, strerror(errno));
    if (fd >= 0)
      close(fd);
    return -1;
  }
  if ((uint64_t)sb.st_size > SIDECAR_MAX) {
    problem(ck, "%s: larger than %zu MiB", name, SIDECAR_MAX >> 20);
    close(fd);
    return 1;
  }
  text = ctr_xrealloc(NULL, (size_t)sb.st_size + 1);
  while (got < (size_t)sb.st_size &&
         ((n = read(fd, text + got, (size_t)sb.st_size - got)) > 0 ||
          (n < 0 && errno == EINTR)))
    got += n > 0 ? (size_t)n : 0;
  close(fd);
  if (ctr_jval_parse(text, got, out) != 0) {
    problem(ck, "%s: not valid JSON", name);
    free(text);
    return 1;
  }
  free(text);
  return 0;
}

static void check_ctrec(check_t *ck, const ctr_jval_t *c) {
  static const char *const ints[] = {"session", "daemon_pid", "pid", "ppid",
                                     "uid",     "exit_status"};
  const ctr_jval_t *v;
  const char *state;
  size_t i;

  if (c->type != CTR_JVAL_OBJ) {
    problem(ck, "trace_metadata.json: \"ctrec\" must be an object");
    return;
  }
  state = ctr_jval_str(c, "state");
  if (state == NULL)
    problem(ck, "trace_metadata.json: ctrec.state is missing or not a string");
  else if (strcmp(state, "recording") == 0 && !ck->o->live)
    problem(ck, "trace_metadata.json: ctrec.state is still \"recording\" "
                "(--live checks a trace being recorded)");
  else if (strcmp(state, "recording") && strcmp(state, "complete") &&
           strncmp(state, "aborted", 7))
    problem(ck, "trace_metadata.json: ctrec.state \"%.60s\" is not recording, "
                "complete or aborted",
            state);
  /* exit_status is null until the program has said goodbye. */
  for (i = 0; i < sizeof(ints) / sizeof(*ints); i++)
    if ((v = ctr_jval_get(c, ints[i])) && !integer_text(v) &&
        !(strcmp(ints[i], "exit_status") == 0 && v->type == CTR_JVAL_NULL))
      problem(ck, "trace_metadata.json: ctrec.%s must be an integer", ints[i]);
  if ((v = ctr_jval_get(c, "counters")) != NULL) {
    if (v->type != CTR_JVAL_OBJ)
      problem(ck, "trace_metadata.json: ctrec.counters must be an object");
    for (v = v->child; v; v = v->next)
      if (!u64_of(v))
        problem(ck, "trace_metadata.json: ctrec.counters.%.40s must be a "
                    "count",
                v->key);
    /* A finished trace holds everything its writer counted (or more:
     * records reach disk before the metadata that counts them), unless it
     * says its writes failed. A CTFS trace has no records as such: its
     * steps and events are counted. */
    for (i = 0; i < (ck->ctfs ? 2u : 1u); i++) {
      static const char *const json_keys[] = {"records"};
      static const char *const ctfs_keys[] = {"steps", "events"};
      const char *key = ck->ctfs ? ctfs_keys[i] : json_keys[i];
      uint64_t have = !ck->ctfs ? ck->rec : i == 0 ? ck->nsteps : ck->nevents;
      v = ctr_jval_get(ctr_jval_get(c, "counters"), key);
      if (v && u64_of(v) && state && strcmp(state, "recording") != 0 &&
          strncmp(state, "aborted: cannot write", 21) != 0 &&
          strtoull(v->str, NULL, 10) > have)
        problem(ck, "trace_metadata.json: ctrec.counters.%s is %s, %s holds "
                    "only %" PRIu64,
                key, v->str, ck->ctfs ? "trace.ct" : "trace.json", have);
    }
  }
  if ((v = ctr_jval_get(c, "interval")) != NULL &&
      (v->type != CTR_JVAL_OBJ ||
       (ctr_jval_get(v, "index") && !u64_of(ctr_jval_get(v, "index")))))
    problem(ck, "trace_metadata.json: ctrec.interval must be an object with "
                "a numeric index");
}

static int check_metadata(check_t *ck) {
  ctr_jval_t *m;
  const ctr_jval_t *v;
  int rc = read_sidecar(ck, "trace_metadata.json", &m);

  if (rc != 0)
    return rc < 0 ? -1 : 0;
  if (m->type != CTR_JVAL_OBJ) {
    problem(ck, "trace_metadata.json: the top level must be an object");
    ctr_jval_free(m);
    return 0;
  }
  if (!ctr_jval_str(m, "workdir"))
    problem(ck, "trace_metadata.json: \"workdir\" is missing or not a string");
  if (!ctr_jval_str(m, "program"))
    problem(ck, "trace_metadata.json: \"program\" is missing or not a string");
  v = ctr_jval_get(m, "args");
  if (v == NULL || v->type != CTR_JVAL_ARR) {
    problem(ck, "trace_metadata.json: \"args\" is missing or not an array");
  } else {
    for (v = v->child; v; v = v->next)
      if (v->type != CTR_JVAL_STR)
        break;
    if (v)
      problem(ck, "trace_metadata.json: \"args\" must hold only strings");
  }
  if ((v = ctr_jval_get(m, "ctrec")) != NULL)
    check_ctrec(ck, v);
  ctr_jval_free(m);
  return 0;
}

static int check_paths(check_t *ck) {
  const ctr_jval_t *e;
  ctr_jval_t *list;
  char q1[QUOTE_MAX + 8], q2[QUOTE_MAX + 8];
  size_t i = 0;
  int rc = read_sidecar(ck, "trace_paths.json", &list);

  if (rc != 0)
    return rc < 0 ? -1 : 0;
  if (list->type != CTR_JVAL_ARR) {
    problem(ck, "trace_paths.json: the top level must be an array");
    ctr_jval_free(list);
    return 0;
  }
  for (e = list->child; e && i < ck->npaths; e = e->next, i++) {
    if (e->type != CTR_JVAL_STR || strcmp(e->str, ck->paths[i]) != 0) {
      problem(ck, "trace_paths.json: entry %zu is %s, Path record %zu is %s",
              i, e->type == CTR_JVAL_STR ? quote(e->str, q1) : type_name(e), i,
              quote(ck->paths[i], q2));
      ctr_jval_free(list);
      return 0;
    }
  }
  for (; e; e = e->next)
    i++;
  /* A live trace's records reach disk before its paths file, which is
   * rewritten at the next flush: one may be ahead of the other. */
  if (i != ck->npaths && !ck->o->live)
    problem(ck, "trace_paths.json: lists %zu paths, trace.json has %zu Path "
                "records",
            i, ck->npaths);
  ctr_jval_free(list);
  return 0;
}

/* files/ as nftw sees it: the callback takes no argument. */
static check_t *files_ck;
static const char *files_root;
static size_t files_len;

static bool inside(const char *real, const char *root) {
  size_t n = strlen(root);

  return strncmp(real, root, n) == 0 && (real[n] == '/' || real[n] == '\0');
}

/* Reports a link in files/ whose target lies outside it. */
static int walk_link(const char *path, const struct stat *sb, int flag,
                     struct FTW *ftw) {
  char real[PATH_MAX];

  if (flag == FTW_SL && realpath(path, real) && !inside(real, files_root))
    problem(files_ck, "files%s: a link that leads outside files/",
            path + files_len);
  return 0;
}

static bool has_dotdot(const char *rel) {
  const char *c = rel;

  for (;;) {
    if (c[0] == '.' && c[1] == '.' && (c[2] == '/' || c[2] == '\0'))
      return true;
    if ((c = strchr(c, '/')) == NULL)
      return false;
    c++;
  }
}

/* Every Path that names a real file (not "" or a "<...>" pseudo path) has
 * its copy at files/<path without its leading />, inside files/. */
static void check_files(check_t *ck) {
  char files[PATH_MAX], root[PATH_MAX], copy[2 * PATH_MAX], real[PATH_MAX];
  char q[QUOTE_MAX + 8];
  struct stat sb;
  bool have = false;
  size_t i;

  snprintf(files, sizeof(files), "%s/files", ck->dir);
  if (lstat(files, &sb) == 0 && S_ISDIR(sb.st_mode) && realpath(files, root))
    have = true;
  else if (lstat(files, &sb) == 0)
    problem(ck, "files/: not a directory");
  for (i = 0; i < ck->npaths; i++) {
    const char *rel = ck->paths[i];
    if (rel[0] == '\0' || rel[0] == '<')
      continue;
    while (*rel == '/')
      rel++;
    if (has_dotdot(rel)) {
      problem(ck, "files/: the copy of %s would lie outside the trace folder",
              quote(ck->paths[i], q));
      continue;
    }
    if (!have) {
      problem(ck, "files/: missing, so no source has its copy");
      break;
    }
    if ((size_t)snprintf(copy, sizeof(copy), "%s/%s", files, rel) >=
            sizeof(copy) ||
        realpath(copy, real) == NULL)
      problem(ck, "files/: no copy of %s", quote(ck->paths[i], q));
    else if (!inside(real, root))
      problem(ck, "files/: the copy of %s leads outside files/",
              quote(ck->paths[i], q));
    else if (stat(real, &sb) != 0 || !S_ISREG(sb.st_mode))
      problem(ck, "files/: the copy of %s is not a regular file",
              quote(ck->paths[i], q));
  }
  if (have) {
    files_ck = ck;
    files_root = root;
    files_len = strlen(files);
    nftw(files, walk_link, 16, FTW_PHYS);
  }
}

/* ---- the verb ------------------------------------------------------------------ */

/* Returns 0 when dir holds a valid trace, 1 when it does not, 2 when it
 * cannot be read. */
static int check_folder(const opts_t *o, const char *dir) {
  char sidecar[PATH_MAX];
  ctr_reader_t *trace = NULL;
  check_t ck;
  struct stat sb;
  size_t i;
  int rc;

  errno = 0;
  if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
    fprintf(stderr, "%s: check: %s: %s\n", prog_name, dir,
            errno ? strerror(errno) : "not a directory");
    return 2;
  }
  memset(&ck, 0, sizeof(ck));
  ck.o = o;
  ck.dir = dir;
  /* The reader picks the format from what the folder holds. */
  if (ctr_reader_open(&trace, dir, o->live) == 0 &&
      ctr_reader_format(trace) == CTR_READER_CTFS) {
    ck.ctfs = true;
    rc = check_trace_ct(&ck, trace);
  } else {
    rc = check_trace_json(&ck);
  }
  ctr_reader_free(trace);
  if (rc == 0 && ck.nsteps == 0 && ck.nproblems == 0 && !o->live)
    problem(&ck, "%s: no Step records", ck.ctfs ? "trace.ct" : "trace.json");
  if (rc == 0)
    rc = check_metadata(&ck);
  /* A CTFS trace lists its paths in meta.dat; trace_paths.json is optional. */
  snprintf(sidecar, sizeof(sidecar), "%s/trace_paths.json", dir);
  if (rc == 0 && (!ck.ctfs || access(sidecar, F_OK) == 0))
    rc = check_paths(&ck);
  if (rc == 0)
    check_files(&ck);
  if (rc == 0 && ck.nproblems) {
    printf("FAIL %s: %" PRIu64 " problem(s); ", dir, ck.nproblems);
  } else if (rc == 0 && !o->quiet) {
    printf("ok   %s: ", dir);
  }
  if (rc == 0 && (ck.nproblems || !o->quiet))
    printf("%" PRIu64 " records, %" PRIu64 " steps, %" PRIu64 " calls, %" PRIu64
           " returns, max depth %" PRIu64 ", %zu paths\n",
           ck.rec, ck.nsteps, ck.ncalls, ck.nreturns, ck.max_depth,
           ck.npaths);
  for (i = 0; i < ck.nshown; i++) {
    if (rc == 0)
      printf("  %s\n", ck.shown[i]);
    free(ck.shown[i]);
  }
  if (rc == 0 && ck.nproblems > ck.nshown)
    printf("  ... and %" PRIu64 " more\n", ck.nproblems - ck.nshown);
  for (i = 0; i < ck.npaths; i++)
    free(ck.paths[i]);
  free(ck.paths);
  free(ck.compound.v);
  free(ck.compound.used);
  fflush(stdout);
  return rc < 0 ? 2 : ck.nproblems ? 1 : 0;
}

static void usage(FILE *out) {
  fprintf(out,
          "Usage: %s check [--live] [--floats string|number|any] [-q] "
          "TRACE_DIR...\n"
          "Check CodeTracer JSON trace folders against the rules of\n"
          "CodeTracer's reader: trace.json's records, ids and call nesting,\n"
          "trace_metadata.json, trace_paths.json and the source copies in\n"
          "files/. Prints one line per folder, then its problems with file\n"
          "and record number (records count from 0, as jq's .[N]).\n"
          "trace.json is read as a stream, so traces larger than memory\n"
          "are fine. A folder holding a CTFS trace.ct is checked for the\n"
          "same facts (its records numbered as 'follow --json' prints them).\n\n"
          "  -l, --live          the trace may still be recording (state\n"
          "                      \"recording\", its last record and paths\n"
          "                      file still being written, no Step yet)\n"
          "  -f, --floats FORM   Float values as strings (default, current\n"
          "                      CodeTracer), numbers (25.11 and older) or any\n"
          "  -q, --quiet         print only the folders with problems\n\n"
          "Exit status: 0 every folder is valid, 1 one is not, 2 usage or\n"
          "I/O error.\n",
          prog_name);
}

int ctr_check_main(int argc, char **argv) {
  static const struct option opts[] = {{"live", no_argument, NULL, 'l'},
                                       {"floats", required_argument, NULL, 'f'},
                                       {"quiet", no_argument, NULL, 'q'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  opts_t o = {false, false, FLOATS_STRING};
  int opt, i, status = 0, rc;

  optind = 1;
  while ((opt = getopt_long(argc, argv, "lf:qh", opts, NULL)) != -1) {
    switch (opt) {
    case 'l': o.live = true; break;
    case 'q': o.quiet = true; break;
    case 'f':
      if (strcmp(optarg, "string") == 0)
        o.floats = FLOATS_STRING;
      else if (strcmp(optarg, "number") == 0)
        o.floats = FLOATS_NUMBER;
      else if (strcmp(optarg, "any") == 0)
        o.floats = FLOATS_ANY;
      else {
        fprintf(stderr, "%s: check: --floats: string, number or any, not %s\n",
                prog_name, optarg);
        return 2;
      }
      break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind == argc) {
    fprintf(stderr, "%s: check: name at least one TRACE_DIR\n", prog_name);
    usage(stderr);
    return 2;
  }
  for (i = optind; i < argc; i++) {
    rc = check_folder(&o, argv[i]);
    if (rc > status)
      status = rc;
  }
  return status;
}
