/* ctr_follow.c: tails a session's trace folders and prints their records.
 *
 * The trace reader (ctr_reader.h) hands out the records of a folder as they
 * become complete, from trace.json or trace.ct alike, so a write still in
 * progress is never shown half done. */
#include "ctr_follow.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctr_buf.h"
#include "ctr_jval.h"
#include "ctr_reader.h"

#define STATUS_EVERY_MS 200
/* How long a vanished session's folder may stay "recording" before the
 * feed gives up on it (ctrecd completes it before the session disappears,
 * so only a daemon that died leaves it so). */
#define GONE_GRACE_MS 2000
#define MAX_INDENT 40
#define VALUE_MAX 120  /* bytes of one rendered value */
#define TEXT_MAX 80    /* bytes of one string or raw value */
#define ELEMENTS_MAX 6 /* elements shown of a sequence */

static const char *prog_name = "ctrecctl";
static volatile sig_atomic_t interrupted;

static void on_signal(int sig) { interrupted = sig; }

static int64_t now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

  /* A signal cuts the sleep short, so Ctrl-C is handled at once. */
  nanosleep(&ts, NULL);
}

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);

  if (q == NULL) {
    fprintf(stderr, "%s: out of memory\n", prog_name);
    exit(1);
  }
  return q;
}

static char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;

  return memcpy(xrealloc(NULL, n), s, n);
}

/* ---- the names a trace interns ------------------------------------------ */

typedef struct names_s {
  char **v;
  size_t n, cap;
} names_t;

static void names_push(names_t *l, const char *s) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 16;
    l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
  }
  l->v[l->n++] = xstrdup(s);
}

static const char *names_at(const names_t *l, const ctr_jval_t *id) {
  int64_t i;

  if (!ctr_jval_i64(id, &i) || i < 0 || (uint64_t)i >= l->n)
    return "?";
  return l->v[i];
}

static void names_free(names_t *l) {
  size_t i;

  for (i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof(*l));
}

typedef struct type_s {
  char *lang;
  names_t fields; /* field names of a Struct type */
} type_t;

typedef struct depth_s {
  uint64_t tid;
  int depth;
} depth_t;

/* The last value shown of a variable in a frame (thread and call depth). */
typedef struct seen_s {
  uint64_t tid;
  int depth;
  int64_t var;
  char *text;
} seen_t;

/* One trace folder being tailed, with what is needed to render it. */
typedef struct tail_s {
  char dir[PATH_MAX];
  uint64_t index; /* the recording interval it holds */
  ctr_reader_t *rd;
  char *workdir;
  names_t paths, funcs, vars;
  type_t *types;
  size_t ntypes, tcap;
  int depth;         /* calls open on the current thread */
  depth_t *threads;  /* the depth of the other threads seen */
  size_t nthreads;
  uint64_t tid;      /* current thread; ctrecd numbers the first one 0 */
  seen_t *seen;
  size_t nseen, seencap;
  bool held;         /* a Step not printed yet: it may be a call's location */
  char *held_path;
  int64_t held_line;
  int held_depth;
} tail_t;

static void tail_free(tail_t *t) {
  size_t i;

  ctr_reader_free(t->rd);
  free(t->workdir);
  names_free(&t->paths);
  names_free(&t->funcs);
  names_free(&t->vars);
  for (i = 0; i < t->ntypes; i++) {
    free(t->types[i].lang);
    names_free(&t->types[i].fields);
  }
  free(t->types);
  free(t->threads);
  for (i = 0; i < t->nseen; i++)
    free(t->seen[i].text);
  free(t->seen);
  free(t->held_path);
  memset(t, 0, sizeof(*t));
}

/* ---- rendering values --------------------------------------------------- */

typedef struct text_s {
  char buf[VALUE_MAX + 8];
  size_t n;
  bool full;
} text_t;

static void tx_add(text_t *o, const char *s, size_t n) {
  if (o->full)
    return;
  if (o->n + n > VALUE_MAX) {
    n = VALUE_MAX - o->n;
    o->full = true;
  }
  memcpy(o->buf + o->n, s, n);
  o->n += n;
  o->buf[o->n] = '\0';
}

static void tx_puts(text_t *o, const char *s) { tx_add(o, s, strlen(s)); }

/* The text, marked when it was cut (the buffer keeps room for the mark). */
static const char *tx_done(text_t *o) {
  if (o->full && o->n <= VALUE_MAX) {
    memcpy(o->buf + o->n, "…", sizeof("…"));
    o->n += sizeof("…") - 1;
  }
  return o->buf;
}

/* Appends s cut to TEXT_MAX bytes (on a UTF-8 boundary), escaping control
 * characters when quote is set, so each record stays on one line. */
static void tx_text(text_t *o, const char *s, size_t n, char quote) {
  size_t i, shown = n;
  char q[2] = {quote, '\0'};

  if (shown > TEXT_MAX) {
    shown = TEXT_MAX;
    while (shown > 0 && ((unsigned char)s[shown] & 0xc0) == 0x80)
      shown--;
  }
  if (quote)
    tx_puts(o, q);
  for (i = 0; i < shown; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    if (c == '\n')
      tx_puts(o, "\\n");
    else if (c == '\t')
      tx_puts(o, "\\t");
    else if (quote && (c == (unsigned char)quote || c == '\\')) {
      esc[0] = '\\';
      esc[1] = (char)c;
      tx_add(o, esc, 2);
    } else if (c < 0x20 || c == 0x7f) {
      snprintf(esc, sizeof(esc), "\\x%02x", c);
      tx_puts(o, esc);
    } else if (c == 0xc2 && i + 1 < shown && (unsigned char)s[i + 1] < 0xa0) {
      /* A C1 control (U+0080..U+009F) is an escape to some terminals. */
      snprintf(esc, sizeof(esc), "\\u%04x", (unsigned char)s[++i] & 0xff);
      tx_puts(o, esc);
    } else
      tx_add(o, (const char *)&s[i], 1);
  }
  if (shown < n)
    tx_puts(o, "…");
  if (quote)
    tx_puts(o, q);
}

static const type_t *type_of(const tail_t *t, const ctr_jval_t *v) {
  int64_t id;

  if (!ctr_jval_i64(ctr_jval_get(v, "type_id"), &id) || id < 0 ||
      (uint64_t)id >= t->ntypes)
    return NULL;
  return &t->types[id];
}

/* A BigInt's magnitude is base64 of its big-endian bytes. Shown in decimal
 * up to a size where that stays short. */
static void tx_bigint(text_t *o, const char *b64, bool negative) {
  unsigned char mag[64];
  char digits[200];
  size_t n = 0, nd = 0, i;
  uint32_t acc = 0;
  int bits = 0;

  for (; *b64 && *b64 != '='; b64++) {
    const char *tab =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = strchr(tab, *b64);
    if (p == NULL || n == sizeof(mag)) {
      tx_puts(o, "<big integer>");
      return;
    }
    acc = (acc << 6) | (uint32_t)(p - tab);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      mag[n++] = (unsigned char)(acc >> bits);
    }
  }
  /* Long division by ten, least significant digit first. */
  for (;;) {
    uint32_t rem = 0;
    bool zero = true;
    for (i = 0; i < n; i++) {
      uint32_t cur = (rem << 8) | mag[i];
      mag[i] = (unsigned char)(cur / 10);
      rem = cur % 10;
      zero = zero && mag[i] == 0;
    }
    digits[nd++] = (char)('0' + rem);
    if (zero || nd == sizeof(digits))
      break;
  }
  if (negative)
    tx_puts(o, "-");
  while (nd > 0)
    tx_add(o, &digits[--nd], 1);
}

static void render_value(const tail_t *t, text_t *o, const ctr_jval_t *v,
                         int depth);

static void render_elements(const tail_t *t, text_t *o, const ctr_jval_t *arr,
                            const names_t *labels, int depth) {
  const ctr_jval_t *e;
  size_t i = 0;

  if (arr == NULL || arr->type != CTR_JVAL_ARR)
    return;
  for (e = arr->child; e; e = e->next, i++) {
    if (i)
      tx_puts(o, ", ");
    if (i == ELEMENTS_MAX || depth >= 3) {
      tx_puts(o, "…");
      break;
    }
    if (labels && i < labels->n) {
      tx_puts(o, labels->v[i]);
      tx_puts(o, "=");
    }
    render_value(t, o, e, depth + 1);
  }
}

static void render_value(const tail_t *t, text_t *o, const ctr_jval_t *v,
                         int depth) {
  const char *kind = ctr_jval_str(v, "kind");
  const type_t *ty = type_of(t, v);
  const ctr_jval_t *f;

  if (kind == NULL) {
    tx_puts(o, "?");
  } else if (strcmp(kind, "Int") == 0 || strcmp(kind, "Float") == 0) {
    f = ctr_jval_get(v, kind[0] == 'I' ? "i" : "f");
    tx_puts(o, f && f->str ? f->str : "?");
  } else if (strcmp(kind, "Bool") == 0) {
    f = ctr_jval_get(v, "b");
    tx_puts(o, f && f->b ? "true" : "false");
  } else if (strcmp(kind, "String") == 0 || strcmp(kind, "Char") == 0) {
    f = ctr_jval_get(v, kind[0] == 'S' ? "text" : "c");
    if (f && f->type == CTR_JVAL_STR)
      tx_text(o, f->str, f->len, kind[0] == 'S' ? '"' : '\'');
  } else if (strcmp(kind, "None") == 0) {
    /* Ruby's nil and Python's None are both recorded as None. */
    tx_puts(o, ty && strcmp(ty->lang, "NilClass") == 0 ? "nil" : "None");
  } else if (strcmp(kind, "Raw") == 0) {
    f = ctr_jval_get(v, "r");
    if (f && f->type == CTR_JVAL_STR)
      tx_text(o, f->str, f->len, 0);
  } else if (strcmp(kind, "Sequence") == 0 || strcmp(kind, "Tuple") == 0) {
    bool seq = kind[0] == 'S';
    tx_puts(o, seq ? "[" : "(");
    render_elements(t, o, ctr_jval_get(v, "elements"), NULL, depth);
    tx_puts(o, seq ? "]" : ")");
  } else if (strcmp(kind, "Struct") == 0) {
    tx_puts(o, ty ? ty->lang : "struct");
    tx_puts(o, "(");
    render_elements(t, o, ctr_jval_get(v, "field_values"),
                    ty ? &ty->fields : NULL, depth);
    tx_puts(o, ")");
  } else if (strcmp(kind, "Variant") == 0) {
    const char *d = ctr_jval_str(v, "discriminator");
    tx_puts(o, d ? d : "?");
    if ((f = ctr_jval_get(v, "contents")) != NULL && f->type == CTR_JVAL_OBJ) {
      tx_puts(o, "(");
      render_value(t, o, f, depth + 1);
      tx_puts(o, ")");
    }
  } else if (strcmp(kind, "Reference") == 0) {
    tx_puts(o, "&");
    if ((f = ctr_jval_get(v, "dereferenced")) != NULL)
      render_value(t, o, f, depth + 1);
  } else if (strcmp(kind, "Error") == 0) {
    const char *msg = ctr_jval_str(v, "msg");
    tx_puts(o, "<error: ");
    tx_puts(o, msg ? msg : "?");
    tx_puts(o, ">");
  } else if (strcmp(kind, "BigInt") == 0) {
    const char *b = ctr_jval_str(v, "b");
    f = ctr_jval_get(v, "negative");
    tx_bigint(o, b ? b : "", f && f->b);
  } else {
    tx_puts(o, "<");
    tx_puts(o, kind);
    tx_puts(o, ">");
  }
}

/* ---- rendering records -------------------------------------------------- */

/* ctrecd records every visible variable after each step (the format does
 * not carry values forward); the listing shows a variable only when its
 * value in the current frame differs from the one shown last. */
static bool value_changed(tail_t *t, int64_t var, const char *text) {
  size_t i;
  seen_t *e;

  for (i = 0; i < t->nseen; i++) {
    e = &t->seen[i];
    if (e->tid == t->tid && e->depth == t->depth && e->var == var) {
      if (strcmp(e->text, text) == 0)
        return false;
      free(e->text);
      e->text = xstrdup(text);
      return true;
    }
  }
  if (t->nseen == t->seencap) {
    t->seencap = t->seencap ? t->seencap * 2 : 32;
    t->seen = xrealloc(t->seen, t->seencap * sizeof(*t->seen));
  }
  e = &t->seen[t->nseen++];
  e->tid = t->tid;
  e->depth = t->depth;
  e->var = var;
  e->text = xstrdup(text);
  return true;
}

/* Forgets the values of the current thread's frames from depth on. */
static void forget_frames(tail_t *t, int depth) {
  size_t i = 0;

  while (i < t->nseen) {
    if (t->seen[i].tid == t->tid && t->seen[i].depth >= depth) {
      free(t->seen[i].text);
      t->seen[i] = t->seen[--t->nseen];
    } else {
      i++;
    }
  }
}

static void indent(int depth) {
  int i;

  for (i = 0; i < depth && i < MAX_INDENT; i++)
    fputs("  ", stdout);
}

/* Where a path is shown: relative to the program's working directory when
 * inside it, else by its file name, so lines stay short. */
static void add_path(tail_t *t, const char *path) {
  size_t w = t->workdir ? strlen(t->workdir) : 0;
  const char *slash = strrchr(path, '/');

  if (w > 1 && strncmp(path, t->workdir, w) == 0 && path[w] == '/')
    names_push(&t->paths, path + w + 1);
  else
    names_push(&t->paths, slash && slash[1] ? slash + 1 : path);
}

static void print_held(tail_t *t) {
  if (!t->held)
    return;
  t->held = false;
  indent(t->held_depth);
  printf("%s:%" PRId64 "\n", t->held_path, t->held_line);
}

static void add_type(tail_t *t, const ctr_jval_t *v) {
  const char *lang = ctr_jval_str(v, "lang_type");
  const ctr_jval_t *info = ctr_jval_get(v, "specific_info");
  const ctr_jval_t *fields = ctr_jval_get(info, "fields"), *e;
  type_t *ty;

  if (t->ntypes == t->tcap) {
    t->tcap = t->tcap ? t->tcap * 2 : 16;
    t->types = xrealloc(t->types, t->tcap * sizeof(*t->types));
  }
  ty = &t->types[t->ntypes++];
  memset(ty, 0, sizeof(*ty));
  ty->lang = xstrdup(lang ? lang : "?");
  if (fields && fields->type == CTR_JVAL_ARR)
    for (e = fields->child; e; e = e->next) {
      const char *name = ctr_jval_str(e, "name");
      names_push(&ty->fields, name ? name : "?");
    }
}

static void switch_thread(tail_t *t, uint64_t tid) {
  size_t i;
  int depth = 0;

  for (i = 0; i < t->nthreads; i++)
    if (t->threads[i].tid == t->tid)
      break;
  if (i == t->nthreads) {
    t->threads = xrealloc(t->threads, (t->nthreads + 1) * sizeof(*t->threads));
    t->threads[t->nthreads++].tid = t->tid;
  }
  t->threads[i].depth = t->depth;
  for (i = 0; i < t->nthreads; i++)
    if (t->threads[i].tid == tid)
      depth = t->threads[i].depth;
  t->tid = tid;
  t->depth = depth;
}

static void print_event(const tail_t *t, const ctr_jval_t *v) {
  static const char *const names[] = {
      "stdout", "write", "stderr", "stdin", "read", "read", "readdir",
      "opendir", "closedir", "socket", "open", "error", "log", "evm"};
  const ctr_jval_t *c = ctr_jval_get(v, "content");
  const char *text = c && c->type == CTR_JVAL_STR ? c->str : "";
  size_t len = c && c->type == CTR_JVAL_STR ? c->len : 0;
  char tag[32];
  int64_t kind = -1;

  ctr_jval_i64(ctr_jval_get(v, "kind"), &kind);
  if (kind >= 0 && kind < (int64_t)(sizeof(names) / sizeof(names[0])))
    snprintf(tag, sizeof(tag), "[%s]", names[kind]);
  else
    snprintf(tag, sizeof(tag), "[event %" PRId64 "]", kind);
  /* One output line per line of text, each tagged; the final newline of
   * the text ends the last one. */
  if (len > 0 && text[len - 1] == '\n')
    len--;
  do {
    const char *nl = memchr(text, '\n', len);
    size_t n = nl ? (size_t)(nl - text) : len;
    ctr_buf_t b = {0};
    indent(t->depth);
    /* The program's output is shown, not replayed to this terminal. */
    printf("%s %s\n", tag, ctr_buf_printable(&b, text, n));
    ctr_buf_free(&b);
    text += nl ? n + 1 : n;
    len -= nl ? n + 1 : n;
  } while (len > 0);
}

/* Prints a call with its arguments, which are the callee frame's first
 * values, and enters that frame. */
static void print_call(tail_t *t, const ctr_jval_t *v) {
  const ctr_jval_t *args = ctr_jval_get(v, "args"), *a;
  text_t o = {0};

  indent(t->depth);
  printf("→ call %s(", names_at(&t->funcs, ctr_jval_get(v, "function_id")));
  t->depth++;
  forget_frames(t, t->depth);
  for (a = args && args->type == CTR_JVAL_ARR ? args->child : NULL; a;
       a = a->next) {
    int64_t var = -1;
    o.n = 0;
    o.full = false;
    render_value(t, &o, ctr_jval_get(a, "value"), 0);
    ctr_jval_i64(ctr_jval_get(a, "variable_id"), &var);
    value_changed(t, var, tx_done(&o));
    printf("%s%s=%s", a == args->child ? "" : ", ",
           names_at(&t->vars, ctr_jval_get(a, "variable_id")), o.buf);
  }
  printf(")\n");
}

/* Prints one record as a line of the step listing. */
static void render_record(tail_t *t, const ctr_jval_t *rec) {
  const ctr_jval_t *v = rec->type == CTR_JVAL_OBJ ? rec->child : NULL;
  const char *k = v ? v->key : NULL;
  text_t o = {0};
  int64_t n;

  if (rec->type == CTR_JVAL_STR && strcmp(rec->str, "DropLastStep") == 0) {
    if (t->held)
      t->held = false;
    else {
      indent(t->depth);
      printf("(previous step dropped)\n");
    }
    return;
  }
  if (k == NULL)
    return;
  /* Interning records print nothing and keep a held Step held. */
  if (strcmp(k, "Path") == 0 && v->type == CTR_JVAL_STR) {
    add_path(t, v->str);
    return;
  }
  if (strcmp(k, "Function") == 0) {
    const char *name = ctr_jval_str(v, "name");
    names_push(&t->funcs, name ? name : "?");
    return;
  }
  if ((strcmp(k, "VariableName") == 0 || strcmp(k, "Variable") == 0) &&
      v->type == CTR_JVAL_STR) {
    names_push(&t->vars, v->str);
    return;
  }
  if (strcmp(k, "Type") == 0) {
    add_type(t, v);
    return;
  }
  if (strcmp(k, "Call") == 0) {
    /* The Step right before a Call is the call's location (the callee's
     * definition line), not a line the program ran: it is not shown. */
    t->held = false;
    print_call(t, v);
    return;
  }
  print_held(t);
  if (strcmp(k, "Step") == 0) {
    free(t->held_path);
    t->held_path = xstrdup(names_at(&t->paths, ctr_jval_get(v, "path_id")));
    t->held_line = 0;
    ctr_jval_i64(ctr_jval_get(v, "line"), &t->held_line);
    t->held_depth = t->depth;
    t->held = true;
  } else if (strcmp(k, "Return") == 0) {
    forget_frames(t, t->depth);
    if (t->depth > 0)
      t->depth--;
    /* A CTFS call closed at the end of a recording has no value. */
    if (ctr_jval_get(v, "return_value"))
      render_value(t, &o, ctr_jval_get(v, "return_value"), 0);
    indent(t->depth);
    printf("← return%s%s\n", o.n ? " " : "", tx_done(&o));
  } else if (strcmp(k, "Value") == 0) {
    int64_t var = -1;
    render_value(t, &o, ctr_jval_get(v, "value"), 0);
    ctr_jval_i64(ctr_jval_get(v, "variable_id"), &var);
    if (value_changed(t, var, tx_done(&o))) {
      indent(t->depth + 1);
      printf("%s = %s\n", names_at(&t->vars, ctr_jval_get(v, "variable_id")),
             o.buf);
    }
  } else if (strcmp(k, "Event") == 0) {
    print_event(t, v);
  } else if (strcmp(k, "ThreadSwitch") == 0 || strcmp(k, "ThreadStart") == 0 ||
             strcmp(k, "ThreadExit") == 0) {
    bool sw = strcmp(k, "ThreadSwitch") == 0;
    if (!ctr_jval_i64(v, &n))
      n = -1;
    if (sw)
      switch_thread(t, (uint64_t)n);
    printf("[thread %" PRId64 "%s]\n", n,
           sw ? "" : strcmp(k, "ThreadStart") == 0 ? " started" : " exited");
  } else {
    indent(t->depth);
    printf("(%s)\n", k);
  }
}

/* ---- tailing the trace ------------------------------------------------- */

/* Prints the records completed since the last call; returns how many, or -1
 * after printing why the trace cannot be read. */
static long drain(tail_t *t, bool json) {
  ctr_reader_rec_t r;
  long count = 0;
  int rc;

  while ((rc = ctr_reader_next(t->rd, &r)) == 1) {
    if (json && r.text)
      fwrite(r.text, 1, r.len, stdout);
    else if (json)
      ctr_jval_print(stdout, r.rec);
    else
      render_record(t, r.rec);
    if (json)
      putchar('\n');
    count++;
  }
  fflush(stdout);
  if (rc < 0) {
    fprintf(stderr, "%s: %s: %s\n", prog_name, t->dir, ctr_reader_error(t->rd));
    return -1;
  }
  return count;
}

/* ---- trace folders ------------------------------------------------------ */

typedef struct meta_s {
  bool ok;
  char state[256];
  char end_reason[256];
  char workdir[PATH_MAX];
  int64_t session, pid, index, daemon_pid;
} meta_t;

static void copy_str(char *dst, size_t cap, const char *src) {
  snprintf(dst, cap, "%s", src ? src : "");
}

static bool read_meta(const char *dir, meta_t *m) {
  char path[PATH_MAX + 32];
  const ctr_jval_t *c, *iv;
  ctr_jval_t *root;
  struct stat sb;
  char *text;
  ssize_t n;
  int fd;

  memset(m, 0, sizeof(*m));
  snprintf(path, sizeof(path), "%s/trace_metadata.json", dir);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  if (fstat(fd, &sb) != 0 || sb.st_size > (16 << 20)) {
    close(fd);
    return false;
  }
  text = xrealloc(NULL, (size_t)sb.st_size + 1);
  n = read(fd, text, (size_t)sb.st_size);
  close(fd);
  /* ctrecd replaces the file by rename, so a read sees one whole version. */
  if (n < 0 || ctr_jval_parse(text, (size_t)n, &root) != 0) {
    free(text);
    return false;
  }
  free(text);
  copy_str(m->workdir, sizeof(m->workdir), ctr_jval_str(root, "workdir"));
  c = ctr_jval_get(root, "ctrec");
  copy_str(m->state, sizeof(m->state), ctr_jval_str(c, "state"));
  m->session = m->pid = m->index = m->daemon_pid = -1;
  ctr_jval_i64(ctr_jval_get(c, "session"), &m->session);
  ctr_jval_i64(ctr_jval_get(c, "daemon_pid"), &m->daemon_pid);
  ctr_jval_i64(ctr_jval_get(c, "pid"), &m->pid);
  iv = ctr_jval_get(c, "interval");
  ctr_jval_i64(ctr_jval_get(iv, "index"), &m->index);
  copy_str(m->end_reason, sizeof(m->end_reason), ctr_jval_str(iv, "end_reason"));
  ctr_jval_free(root);
  m->ok = true;
  return true;
}

/* A folder is finished once its metadata says complete or aborted: ctrecd
 * writes the last records before that metadata. */
static bool meta_finished(const meta_t *m) {
  return m->ok && m->state[0] && strcmp(m->state, "recording") != 0;
}

/* Whether the daemon writing the folder still runs: one that is shutting
 * down no longer answers STATUS but still completes its traces. */
static bool writer_alive(const meta_t *m) {
  return m->ok && m->daemon_pid > 0 &&
         (kill((pid_t)m->daemon_pid, 0) == 0 || errno == EPERM);
}

static bool state_ended(const char *state) {
  return strcmp(state, "complete") == 0 || strncmp(state, "aborted", 7) == 0;
}

static int tail_open(tail_t *t, const char *dir, uint64_t index, bool json) {
  meta_t m;
  int rc;

  tail_free(t);
  snprintf(t->dir, sizeof(t->dir), "%s", dir);
  t->index = index;
  t->tid = 0;
  if ((rc = ctr_reader_open(&t->rd, dir, true)) < 0) {
    fprintf(stderr, "%s: cannot open the trace in %s: %s\n", prog_name, dir,
            strerror(-rc));
    return -1;
  }
  if (read_meta(dir, &m) && m.workdir[0])
    t->workdir = xstrdup(m.workdir);
  if (!json) {
    printf("== interval %" PRIu64 ": %s ==\n", index, dir);
    fflush(stdout);
  }
  return 0;
}

/* Looks in the output folder for the folder of interval index of session
 * sid. Interval folders share the first folder's name up to its time stamp
 * (the last 'Z'), which keeps the search to this program's folders. */
static bool find_interval(const char *known, uint64_t sid, int64_t pid,
                          uint64_t index, char *out, size_t cap) {
  char parent[PATH_MAX], prefix[PATH_MAX], *slash, *z;
  struct dirent *de;
  bool found = false;
  DIR *d;

  snprintf(parent, sizeof(parent), "%s", known);
  slash = strrchr(parent, '/');
  if (slash == NULL)
    return false;
  *slash = '\0';
  snprintf(prefix, sizeof(prefix), "%s", slash + 1);
  z = strrchr(prefix, 'Z');
  if (z)
    z[1] = '\0';
  d = opendir(parent[0] ? parent : "/");
  if (d == NULL)
    return false;
  while (!found && (de = readdir(d)) != NULL) {
    char dir[PATH_MAX * 2];
    meta_t m;
    if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
      continue;
    snprintf(dir, sizeof(dir), "%s/%s", parent, de->d_name);
    if (read_meta(dir, &m) && m.session == (int64_t)sid && m.pid == pid &&
        m.index == (int64_t)index && strlen(dir) < cap) {
      snprintf(out, cap, "%s", dir);
      found = true;
    }
  }
  closedir(d);
  return found;
}

/* ---- choosing the session ----------------------------------------------- */

void ctr_follow_sessions_free(ctr_follow_session_t *list, size_t n) {
  size_t i;

  for (i = 0; i < n; i++) {
    free(list[i].program);
    free(list[i].state);
    free(list[i].trace);
  }
  free(list);
}

static const ctr_follow_session_t *pick(const ctr_follow_opts_t *o,
                                        const ctr_follow_session_t *list,
                                        size_t n) {
  const ctr_follow_session_t *best = NULL;
  size_t i;

  for (i = 0; i < n; i++) {
    const ctr_follow_session_t *s = &list[i];
    if (o->session && s->id != o->session)
      continue;
    if (o->pid && s->pid != o->pid)
      continue;
    if (best == NULL || s->id > best->id)
      best = s;
  }
  if (best)
    return best;
  if (o->session)
    fprintf(stderr,
            "%s: follow: no live session %" PRIu64 " (see '%s status')\n",
            prog_name, o->session, prog_name);
  else if (o->pid)
    fprintf(stderr,
            "%s: follow: no live session for pid %" PRId64
            " (see '%s status')\n",
            prog_name, o->pid, prog_name);
  else
    fprintf(stderr, "%s: follow: no live session to follow\n", prog_name);
  return NULL;
}

/* Without a SESSION or --pid the only live session is followed; with
 * several, guessing could follow the wrong program, so the user chooses. */
static bool ambiguous(const ctr_follow_opts_t *o,
                      const ctr_follow_session_t *list, size_t n) {
  size_t i;

  if (o->session || o->pid || n < 2)
    return false;
  fprintf(stderr,
          "%s: follow: %zu live sessions; name one (ctrecctl follow SESSION "
          "or --pid PID):\n",
          prog_name, n);
  for (i = 0; i < n; i++)
    fprintf(stderr, "  %-7" PRIu64 " pid %-7" PRId64 " %s\n", list[i].id,
            list[i].pid, list[i].program);
  return true;
}

/* ---- the feed ----------------------------------------------------------- */

typedef struct follower_s {
  const ctr_follow_opts_t *o;
  uint64_t sid;
  int64_t pid;
  tail_t t;
  bool tailing;
  uint64_t next;      /* the interval to follow after the current one */
  char known[PATH_MAX]; /* a trace folder of this session, once seen */
  bool lost;          /* ctrecd stopped answering */
  bool gone;          /* the session ended or disappeared */
  bool finished;      /* the last folder followed was completed */
  uint64_t intervals; /* from the latest STATUS */
  char trace[PATH_MAX];
  int64_t gone_at;
  ctr_buf_t ended;    /* --json: the start of the boundary record */
} follower_t;

/* Asks STATUS and updates what is known about the session. */
static void refresh(follower_t *f) {
  ctr_follow_session_t *list = NULL;
  size_t n = 0, i;

  if (f->lost || f->gone)
    return;
  if (f->o->status(f->o->arg, &list, &n) != 0) {
    f->lost = f->gone = true;
    return;
  }
  f->gone = true;
  for (i = 0; i < n; i++)
    if (list[i].id == f->sid && list[i].pid == f->pid) {
      f->gone = state_ended(list[i].state);
      f->intervals = list[i].intervals;
      copy_str(f->trace, sizeof(f->trace), list[i].trace);
      if (f->trace[0])
        copy_str(f->known, sizeof(f->known), f->trace);
    }
  ctr_follow_sessions_free(list, n);
}

/* Finds the folder of interval f->next once it exists; true when it was
 * opened. */
static bool open_next(follower_t *f) {
  char dir[PATH_MAX];

  if (!f->gone && f->intervals == f->next && f->trace[0])
    copy_str(dir, sizeof(dir), f->trace);
  else if ((f->gone || f->intervals >= f->next) && f->known[0] &&
           find_interval(f->known, f->sid, f->pid, f->next, dir, sizeof(dir)))
    ;
  else
    return false;
  if (tail_open(&f->t, dir, f->next, f->o->json) != 0)
    return false;
  if (f->ended.len) {
    ctr_buf_printf(&f->ended, ",\"next\":%" PRIu64 ",\"trace\":", f->next);
    ctr_json_str(&f->ended, dir, strlen(dir));
    printf("%.*s}}\n", (int)f->ended.len, f->ended.data);
    fflush(stdout);
    ctr_buf_free(&f->ended);
  }
  f->tailing = true;
  f->finished = false;
  return true;
}

static void finish_folder(follower_t *f, const meta_t *m) {
  /* "aborted: <why>" already says why the interval ended. */
  bool said = strncmp(m->state, "aborted: ", 9) == 0 &&
              strcmp(m->state + 9, m->end_reason) == 0;
  bool why = m->end_reason[0] && !said;

  if (f->o->json) {
    /* Said when the next interval opens, in one boundary record. */
    ctr_buf_free(&f->ended);
    ctr_buf_printf(&f->ended, "{\"IntervalBoundary\":{\"ended\":%" PRIu64
                   ",\"state\":", f->t.index);
    ctr_json_str(&f->ended, m->state, strlen(m->state));
    ctr_buf_puts(&f->ended, ",\"end_reason\":");
    ctr_json_str(&f->ended, m->end_reason, strlen(m->end_reason));
  } else {
    ctr_buf_t b = {0};
    size_t at;
    print_held(&f->t);
    ctr_buf_printable(&b, m->state, strlen(m->state));
    at = b.len + 1;
    ctr_buf_add(&b, "", 1);
    ctr_buf_printable(&b, m->end_reason, strlen(m->end_reason));
    printf("== interval %" PRIu64 " %s%s%s%s ==\n", f->t.index, b.data,
           why ? " (" : "", why ? b.data + at : "", why ? ")" : "");
    ctr_buf_free(&b);
    fflush(stdout);
  }
  f->next = f->t.index + 1;
  tail_free(&f->t);
  f->tailing = false;
  f->finished = true;
}

static int follow(follower_t *f) {
  const ctr_follow_opts_t *o = f->o;
  int64_t last_status = now_ms();

  for (;;) {
    bool finished = false;
    long got;
    meta_t m;
    if (interrupted)
      return 128 + interrupted;
    if (f->tailing) {
      /* Metadata first: when it says finished, the drain after it has
       * seen every record of the folder. */
      finished = read_meta(f->t.dir, &m) && meta_finished(&m);
      got = drain(&f->t, o->json);
      if (got < 0)
        return 1;
      if (finished) {
        finish_folder(f, &m);
        refresh(f);
        last_status = now_ms();
        continue;
      }
      /* Nothing new: a held Step is shown rather than kept waiting. */
      if (!o->json && got == 0 && f->t.held) {
        print_held(&f->t);
        fflush(stdout);
      }
    }
    if (!f->tailing || now_ms() - last_status >= STATUS_EVERY_MS) {
      refresh(f);
      last_status = now_ms();
    }
    if (!f->tailing) {
      if (open_next(f))
        continue;
      if (f->gone) {
        if (!o->json)
          printf("== session %" PRIu64 " ended ==\n", f->sid);
        /* A daemon that stopped after completing the trace ended it well. */
        return f->lost && !f->finished ? 1 : 0;
      }
    } else if (f->lost && writer_alive(&m)) {
      f->gone_at = 0;
    } else if (f->gone) {
      if (f->gone_at == 0)
        f->gone_at = now_ms();
      else if (now_ms() - f->gone_at > GONE_GRACE_MS) {
        drain(&f->t, o->json);
        fprintf(stderr,
                "%s: follow: session %" PRIu64 " is gone but %s was not "
                "completed\n",
                prog_name, f->sid, f->t.dir);
        return 1;
      }
    }
    sleep_ms(o->poll_ms);
  }
}

static void catch_signals(void) {
  struct sigaction sa;

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

int ctr_follow_folder(const ctr_follow_opts_t *o, const char *dir) {
  follower_t f;
  meta_t m;
  int rc = 0;

  memset(&f, 0, sizeof(f));
  f.o = o;
  catch_signals();
  if (tail_open(&f.t, dir, read_meta(dir, &m) && m.index > 0 ? (uint64_t)m.index : 0,
                o->json) != 0)
    return 1;
  for (;;) {
    /* Metadata first: when it says finished, the drain after it has seen
     * every record. A folder without metadata is read as it is. */
    bool has = read_meta(dir, &m), finished = !has || meta_finished(&m);
    if (drain(&f.t, o->json) < 0) {
      rc = 1;
      break;
    }
    if (finished) {
      if (has)
        finish_folder(&f, &m);
      break;
    }
    if (!o->json && f.t.held) {
      print_held(&f.t);
      fflush(stdout);
    }
    if (interrupted) {
      rc = 128 + interrupted;
      break;
    }
    sleep_ms(o->poll_ms);
  }
  tail_free(&f.t);
  ctr_buf_free(&f.ended);
  fflush(stdout);
  return rc;
}

int ctr_follow_run(const ctr_follow_opts_t *o) {
  ctr_follow_session_t *list = NULL;
  const ctr_follow_session_t *s;
  follower_t f;
  size_t n = 0;
  int rc;

  if (o->status(o->arg, &list, &n) != 0)
    return 1;
  if (ambiguous(o, list, n) || (s = pick(o, list, n)) == NULL) {
    ctr_follow_sessions_free(list, n);
    return 1;
  }
  memset(&f, 0, sizeof(f));
  f.o = o;
  f.sid = s->id;
  f.pid = s->pid;
  f.intervals = s->intervals;
  copy_str(f.trace, sizeof(f.trace), s->trace);
  copy_str(f.known, sizeof(f.known), s->trace);
  f.gone = state_ended(s->state);
  /* A session between intervals is followed from its next one. */
  f.next = f.trace[0] ? f.intervals : f.intervals + 1;
  if (!o->json) {
    printf("== session %" PRIu64 ": pid %" PRId64 " %s ==\n", s->id, s->pid,
           s->program);
    fflush(stdout);
  }
  ctr_follow_sessions_free(list, n);

  catch_signals();
  rc = follow(&f);
  tail_free(&f.t);
  ctr_buf_free(&f.ended);
  fflush(stdout);
  return rc;
}
