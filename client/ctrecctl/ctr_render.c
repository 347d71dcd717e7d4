/* ctr_render.c: the step listing of a trace's records, as text or JSON lines.
 *
 * Records come in the JSON trace's vocabulary (ctr_reader.h); interning
 * records (Path, Function, VariableName, Type) print nothing and name what
 * later records refer to by id. Every record is followed for call depth and
 * the values already shown, also outside the steps a listing prints, so a
 * range of steps reads as it does in the whole listing. */
#include "ctr_render.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctr_buf.h"
#include "ctr_path.h"

#define MAX_INDENT 40
#define VALUE_MAX 120  /* bytes of one rendered value */
#define TEXT_MAX 80    /* bytes of one string or raw value */
#define ELEMENTS_MAX 6 /* elements shown of a sequence */
#define SOURCE_MAX 160 /* bytes of a source line shown */
/* A source file larger than this is not a program's source: not shown. */
#define SOURCE_FILE_MAX (64 << 20)

static char *xstrdup(const char *s) { return ctr_xstrndup(s, strlen(s)); }

/* ---- the names a trace interns ------------------------------------------ */

typedef struct names_s {
  char **v;
  size_t n, cap;
} names_t;

static void names_push(names_t *l, const char *s) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 16;
    l->v = ctr_xrealloc(l->v, l->cap * sizeof(*l->v));
  }
  l->v[l->n++] = xstrdup(s);
}

static bool names_index(const names_t *l, const ctr_jval_t *id, size_t *out) {
  int64_t i;

  if (!ctr_jval_i64(id, &i) || i < 0 || (uint64_t)i >= l->n)
    return false;
  *out = (size_t)i;
  return true;
}

static const char *names_at(const names_t *l, const ctr_jval_t *id) {
  size_t i;

  return names_index(l, id, &i) ? l->v[i] : "?";
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

/* The lines of one source file of the trace's files/ copy, loaded when a
 * step first shows one of them. */
typedef struct source_s {
  bool loaded;
  char *text;
  size_t *starts; /* offset of each line; starts[nlines] is the end */
  size_t nlines;
} source_t;

struct ctr_render_s {
  ctr_render_opts_t o;
  char *dir, *workdir;
  names_t paths, shown, funcs, vars; /* shown: the paths as printed */
  source_t *sources;                 /* one per path, as paths */
  size_t nsources;
  type_t *types;
  size_t ntypes, tcap;
  int depth;        /* calls open on the current thread */
  depth_t *threads; /* the depth of the other threads seen */
  size_t nthreads;
  uint64_t tid; /* current thread; ctrecd numbers the first one 0 */
  seen_t *seen;
  size_t nseen, seencap;
  int64_t step; /* the number of the latest Step (CodeTracer's step id) */
  bool held;    /* a Step not printed yet: it may be a call's location */
  size_t held_path;
  int64_t held_line, held_step;
  int held_depth;
};

ctr_render_t *ctr_render_new(const ctr_render_opts_t *o) {
  ctr_render_t *r = ctr_xmalloc(sizeof(*r));

  memset(r, 0, sizeof(*r));
  r->o = *o;
  r->dir = o->dir ? xstrdup(o->dir) : NULL;
  r->workdir = o->workdir ? xstrdup(o->workdir) : NULL;
  r->o.dir = r->dir;
  r->o.workdir = r->workdir;
  r->step = -1;
  return r;
}

void ctr_render_free(ctr_render_t *r) {
  size_t i;

  if (r == NULL)
    return;
  free(r->dir);
  free(r->workdir);
  names_free(&r->paths);
  names_free(&r->shown);
  names_free(&r->funcs);
  names_free(&r->vars);
  for (i = 0; i < r->nsources; i++) {
    free(r->sources[i].text);
    free(r->sources[i].starts);
  }
  free(r->sources);
  for (i = 0; i < r->ntypes; i++) {
    free(r->types[i].lang);
    names_free(&r->types[i].fields);
  }
  free(r->types);
  free(r->threads);
  for (i = 0; i < r->nseen; i++)
    free(r->seen[i].text);
  free(r->seen);
  free(r);
}

/* ---- source text -------------------------------------------------------- */

/* Opens files/<path> of the trace folder, one component at a time without
 * following a symbolic link, so what is shown is the trace's own copy and
 * never a file elsewhere. */
static int open_source(const char *dir, const char *path) {
  char rel[4096], *comp, *next;
  int fd, sub;

  if (!ctr_path_ok(path, strlen(path)) || path[0] != '/' ||
      snprintf(rel, sizeof(rel), "files%s", path) >= (int)sizeof(rel))
    return -1;
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  for (comp = rel; fd >= 0 && comp; comp = next) {
    next = strchr(comp, '/');
    if (next)
      *next++ = '\0';
    sub = openat(fd, comp,
                 O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (next ? O_DIRECTORY : 0));
    close(fd);
    fd = sub;
  }
  return fd;
}

static void load_source(const ctr_render_t *r, source_t *s, const char *path) {
  struct stat sb;
  size_t len = 0, i, cap = 64;
  ssize_t n;
  int fd;

  s->loaded = true;
  if (r->dir == NULL || (fd = open_source(r->dir, path)) < 0)
    return;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) ||
      sb.st_size > SOURCE_FILE_MAX) {
    close(fd);
    return;
  }
  s->text = ctr_xmalloc((size_t)sb.st_size + 1);
  while (len < (size_t)sb.st_size &&
         ((n = read(fd, s->text + len, (size_t)sb.st_size - len)) > 0 ||
          (n < 0 && errno == EINTR)))
    if (n > 0)
      len += (size_t)n;
  close(fd);
  s->starts = ctr_xmalloc(cap * sizeof(*s->starts));
  s->starts[0] = 0;
  for (i = 0; i < len; i++)
    if (s->text[i] == '\n' && i + 1 < len) {
      if (s->nlines + 2 >= cap) {
        cap *= 2;
        s->starts = ctr_xrealloc(s->starts, cap * sizeof(*s->starts));
      }
      s->starts[++s->nlines] = i + 1;
    }
  s->starts[++s->nlines] = len;
}

/* Line `line` of path id as printable text without its indentation, cut
 * to SOURCE_MAX bytes; NULL when the trace has no copy of it. */
static const char *source_line(ctr_render_t *r, size_t path, int64_t line,
                               ctr_buf_t *b) {
  const char *s;
  size_t n, shown;
  source_t *src;

  if (path >= r->nsources || line < 1)
    return NULL;
  src = &r->sources[path];
  if (!src->loaded)
    load_source(r, src, r->paths.v[path]);
  if (src->text == NULL || (uint64_t)line > src->nlines)
    return NULL;
  s = src->text + src->starts[line - 1];
  n = src->starts[line] - src->starts[line - 1];
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' ||
                   s[n - 1] == '\t'))
    n--;
  while (n > 0 && (*s == ' ' || *s == '\t')) {
    s++;
    n--;
  }
  shown = n > SOURCE_MAX ? SOURCE_MAX : n;
  while (shown < n && shown > 0 && ((unsigned char)s[shown] & 0xc0) == 0x80)
    shown--;
  ctr_buf_printable(b, s, shown);
  if (shown < n)
    ctr_buf_puts(b, "…");
  return b->data;
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

static const type_t *type_of(const ctr_render_t *r, const ctr_jval_t *v) {
  int64_t id;

  if (!ctr_jval_i64(ctr_jval_get(v, "type_id"), &id) || id < 0 ||
      (uint64_t)id >= r->ntypes)
    return NULL;
  return &r->types[id];
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

static void render_value(const ctr_render_t *r, text_t *o, const ctr_jval_t *v,
                         int depth);

static void render_elements(const ctr_render_t *r, text_t *o,
                            const ctr_jval_t *arr, const names_t *labels,
                            int depth) {
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
    render_value(r, o, e, depth + 1);
  }
}

static void render_value(const ctr_render_t *r, text_t *o, const ctr_jval_t *v,
                         int depth) {
  const char *kind = ctr_jval_str(v, "kind");
  const type_t *ty = type_of(r, v);
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
    render_elements(r, o, ctr_jval_get(v, "elements"), NULL, depth);
    tx_puts(o, seq ? "]" : ")");
  } else if (strcmp(kind, "Struct") == 0) {
    tx_puts(o, ty ? ty->lang : "struct");
    tx_puts(o, "(");
    render_elements(r, o, ctr_jval_get(v, "field_values"),
                    ty ? &ty->fields : NULL, depth);
    tx_puts(o, ")");
  } else if (strcmp(kind, "Variant") == 0) {
    const char *d = ctr_jval_str(v, "discriminator");
    tx_puts(o, d ? d : "?");
    if ((f = ctr_jval_get(v, "contents")) != NULL && f->type == CTR_JVAL_OBJ) {
      tx_puts(o, "(");
      render_value(r, o, f, depth + 1);
      tx_puts(o, ")");
    }
  } else if (strcmp(kind, "Reference") == 0) {
    tx_puts(o, "&");
    if ((f = ctr_jval_get(v, "dereferenced")) != NULL)
      render_value(r, o, f, depth + 1);
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

/* ---- what is shown ------------------------------------------------------ */

/* ctrecd records every visible variable after each step (the format does
 * not carry values forward); the listing shows a variable only when its
 * value in the current frame differs from the one shown last. */
static bool value_changed(ctr_render_t *r, int64_t var, const char *text) {
  size_t i;
  seen_t *e;

  for (i = 0; i < r->nseen; i++) {
    e = &r->seen[i];
    if (e->tid == r->tid && e->depth == r->depth && e->var == var) {
      if (strcmp(e->text, text) == 0)
        return false;
      free(e->text);
      e->text = xstrdup(text);
      return true;
    }
  }
  if (r->nseen == r->seencap) {
    r->seencap = r->seencap ? r->seencap * 2 : 32;
    r->seen = ctr_xrealloc(r->seen, r->seencap * sizeof(*r->seen));
  }
  e = &r->seen[r->nseen++];
  e->tid = r->tid;
  e->depth = r->depth;
  e->var = var;
  e->text = xstrdup(text);
  return true;
}

/* Forgets the values of the current thread's frames from depth on. */
static void forget_frames(ctr_render_t *r, int depth) {
  size_t i = 0;

  while (i < r->nseen) {
    if (r->seen[i].tid == r->tid && r->seen[i].depth >= depth) {
      free(r->seen[i].text);
      r->seen[i] = r->seen[--r->nseen];
    } else {
      i++;
    }
  }
}

/* Whether an entry of step `step` is printed: records belong to the latest
 * Step before them, those before the first Step (-1) to step 0. */
static bool in_range(const ctr_render_t *r, int64_t step, bool call) {
  if (r->o.calls && !call)
    return false;
  if (step < 0)
    step = 0;
  if (r->o.from >= 0 && step < r->o.from)
    return false;
  return r->o.to < 0 || step <= r->o.to;
}

static void indent(const ctr_render_t *r, int depth) {
  int i;

  for (i = 0; i < depth && i < MAX_INDENT; i++)
    fputs("  ", r->o.out);
}

/* Starts a JSON entry: {"kind":K,"step":N,"depth":D (N absent before the
 * first Step); the caller adds its members and ends it with entry_end. */
static void entry_start(ctr_buf_t *b, const char *kind, int64_t step,
                        int depth) {
  ctr_buf_puts(b, "{\"kind\":");
  ctr_json_str(b, kind, strlen(kind));
  if (step >= 0)
    ctr_buf_printf(b, ",\"step\":%" PRId64, step);
  ctr_buf_printf(b, ",\"depth\":%d", depth);
}

static void entry_str(ctr_buf_t *b, const char *key, const char *s, size_t n) {
  ctr_buf_printf(b, ",\"%s\":", key);
  ctr_json_str(b, s, n);
}

static void entry_end(const ctr_render_t *r, ctr_buf_t *b) {
  ctr_buf_puts(b, "}\n");
  fwrite(b->data, 1, b->len, r->o.out);
  ctr_buf_free(b);
}

static void print_held(ctr_render_t *r) {
  ctr_buf_t b = {0}, src = {0};
  const char *path, *line;

  if (!r->held)
    return;
  r->held = false;
  if (!in_range(r, r->held_step, false))
    return;
  path = r->held_path < r->shown.n ? r->shown.v[r->held_path] : "?";
  line = r->o.source ? source_line(r, r->held_path, r->held_line, &src) : NULL;
  if (r->o.json) {
    entry_start(&b, "step", r->held_step, r->held_depth);
    entry_str(&b, "path", path, strlen(path));
    ctr_buf_printf(&b, ",\"line\":%" PRId64, r->held_line);
    if (line)
      entry_str(&b, "source", line, strlen(line));
    entry_end(r, &b);
  } else {
    indent(r, r->held_depth);
    fprintf(r->o.out, "#%" PRId64 " %s:%" PRId64 "%s%s\n", r->held_step, path,
            r->held_line, line && line[0] ? "  " : "", line ? line : "");
  }
  ctr_buf_free(&src);
}

void ctr_render_flush(ctr_render_t *r) { print_held(r); }

/* Where a path is shown: relative to the program's working directory when
 * inside it, else by its file name, so lines stay short. */
static void add_path(ctr_render_t *r, const char *path) {
  size_t w = r->workdir ? strlen(r->workdir) : 0;
  const char *slash = strrchr(path, '/');

  names_push(&r->paths, path);
  if (w > 1 && strncmp(path, r->workdir, w) == 0 && path[w] == '/')
    names_push(&r->shown, path + w + 1);
  else
    names_push(&r->shown, slash && slash[1] ? slash + 1 : path);
  r->sources = ctr_xrealloc(r->sources, r->paths.n * sizeof(*r->sources));
  memset(&r->sources[r->nsources++], 0, sizeof(*r->sources));
}

static void add_type(ctr_render_t *r, const ctr_jval_t *v) {
  const char *lang = ctr_jval_str(v, "lang_type");
  const ctr_jval_t *info = ctr_jval_get(v, "specific_info");
  const ctr_jval_t *fields = ctr_jval_get(info, "fields"), *e;
  type_t *ty;

  if (r->ntypes == r->tcap) {
    r->tcap = r->tcap ? r->tcap * 2 : 16;
    r->types = ctr_xrealloc(r->types, r->tcap * sizeof(*r->types));
  }
  ty = &r->types[r->ntypes++];
  memset(ty, 0, sizeof(*ty));
  ty->lang = xstrdup(lang ? lang : "?");
  if (fields && fields->type == CTR_JVAL_ARR)
    for (e = fields->child; e; e = e->next) {
      const char *name = ctr_jval_str(e, "name");
      names_push(&ty->fields, name ? name : "?");
    }
}

static void switch_thread(ctr_render_t *r, uint64_t tid) {
  size_t i;
  int depth = 0;

  for (i = 0; i < r->nthreads; i++)
    if (r->threads[i].tid == r->tid)
      break;
  if (i == r->nthreads) {
    r->threads =
        ctr_xrealloc(r->threads, (r->nthreads + 1) * sizeof(*r->threads));
    r->threads[r->nthreads++].tid = r->tid;
  }
  r->threads[i].depth = r->depth;
  for (i = 0; i < r->nthreads; i++)
    if (r->threads[i].tid == tid)
      depth = r->threads[i].depth;
  r->tid = tid;
  r->depth = depth;
}

static void print_event(const ctr_render_t *r, const ctr_jval_t *v) {
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
    snprintf(tag, sizeof(tag), "%s", names[kind]);
  else
    snprintf(tag, sizeof(tag), "event %" PRId64, kind);
  if (r->o.json) {
    ctr_buf_t b = {0};
    entry_start(&b, "event", r->step, r->depth);
    entry_str(&b, "event", tag, strlen(tag));
    entry_str(&b, "text", text, len);
    entry_end(r, &b);
    return;
  }
  /* One output line per line of text, each tagged; the final newline of
   * the text ends the last one. */
  if (len > 0 && text[len - 1] == '\n')
    len--;
  do {
    const char *nl = memchr(text, '\n', len);
    size_t n = nl ? (size_t)(nl - text) : len;
    ctr_buf_t b = {0};
    indent(r, r->depth);
    /* The program's output is shown, not replayed to this terminal. */
    fprintf(r->o.out, "[%s] %s\n", tag, ctr_buf_printable(&b, text, n));
    ctr_buf_free(&b);
    text += nl ? n + 1 : n;
    len -= nl ? n + 1 : n;
  } while (len > 0);
}

/* Prints a call with its arguments, which are the callee frame's first
 * values, and enters that frame. The call belongs to the Step of its
 * location, held back and not shown itself. */
static void print_call(ctr_render_t *r, const ctr_jval_t *v) {
  const ctr_jval_t *args = ctr_jval_get(v, "args"), *a;
  const char *name = names_at(&r->funcs, ctr_jval_get(v, "function_id"));
  bool shown = in_range(r, r->step, true);
  ctr_buf_t b = {0};

  if (shown && r->o.json) {
    entry_start(&b, "call", r->step, r->depth);
    entry_str(&b, "function", name, strlen(name));
    ctr_buf_puts(&b, ",\"args\":[");
  } else if (shown) {
    indent(r, r->depth);
    ctr_buf_printf(&b, "→ call %s(", name);
  }
  r->depth++;
  forget_frames(r, r->depth);
  for (a = args && args->type == CTR_JVAL_ARR ? args->child : NULL; a;
       a = a->next) {
    const char *var = names_at(&r->vars, ctr_jval_get(a, "variable_id"));
    int64_t id = -1;
    text_t o = {0};
    render_value(r, &o, ctr_jval_get(a, "value"), 0);
    ctr_jval_i64(ctr_jval_get(a, "variable_id"), &id);
    value_changed(r, id, tx_done(&o));
    if (shown && r->o.json) {
      ctr_buf_puts(&b, a == args->child ? "{\"name\":" : ",{\"name\":");
      ctr_json_str(&b, var, strlen(var));
      ctr_buf_puts(&b, ",\"value\":");
      ctr_json_str(&b, o.buf, o.n);
      ctr_buf_puts(&b, "}");
    } else if (shown) {
      ctr_buf_printf(&b, "%s%s=%s", a == args->child ? "" : ", ", var, o.buf);
    }
  }
  if (shown && r->o.json) {
    ctr_buf_puts(&b, "]");
    entry_end(r, &b);
  } else if (shown) {
    fprintf(r->o.out, "%.*s)\n", (int)b.len, b.data);
  }
  ctr_buf_free(&b);
}

static void print_return(ctr_render_t *r, const ctr_jval_t *v) {
  const ctr_jval_t *val = ctr_jval_get(v, "return_value");
  text_t o = {0};
  ctr_buf_t b = {0};

  forget_frames(r, r->depth);
  if (r->depth > 0)
    r->depth--;
  if (!in_range(r, r->step, true))
    return;
  /* A CTFS call closed at the end of a recording has no value. */
  if (val)
    render_value(r, &o, val, 0);
  if (r->o.json) {
    entry_start(&b, "return", r->step, r->depth);
    if (val)
      entry_str(&b, "value", tx_done(&o), o.n);
    entry_end(r, &b);
  } else {
    indent(r, r->depth);
    fprintf(r->o.out, "← return%s%s\n", o.n ? " " : "", tx_done(&o));
  }
}

static void print_value(ctr_render_t *r, const ctr_jval_t *v) {
  const char *name = names_at(&r->vars, ctr_jval_get(v, "variable_id"));
  int64_t var = -1;
  text_t o = {0};
  ctr_buf_t b = {0};

  render_value(r, &o, ctr_jval_get(v, "value"), 0);
  ctr_jval_i64(ctr_jval_get(v, "variable_id"), &var);
  if (!value_changed(r, var, tx_done(&o)) || !in_range(r, r->step, false))
    return;
  if (r->o.json) {
    entry_start(&b, "value", r->step, r->depth);
    entry_str(&b, "name", name, strlen(name));
    entry_str(&b, "value", o.buf, o.n);
    entry_end(r, &b);
  } else {
    indent(r, r->depth + 1);
    fprintf(r->o.out, "%s = %s\n", name, o.buf);
  }
}

/* Prints a thread record; false when k names none. */
static bool print_thread(ctr_render_t *r, const char *k, const ctr_jval_t *v) {
  static const struct {
    const char *record, *what, *said;
  } kinds[] = {{"ThreadSwitch", "switch", ""},
               {"ThreadStart", "start", " started"},
               {"ThreadExit", "exit", " exited"}};
  ctr_buf_t b = {0};
  size_t i = 0;
  int64_t n;

  while (i < 3 && strcmp(k, kinds[i].record) != 0)
    i++;
  if (i == 3)
    return false;
  if (!ctr_jval_i64(v, &n))
    n = -1;
  if (i == 0)
    switch_thread(r, (uint64_t)n);
  if (!in_range(r, r->step, false))
    return true;
  if (r->o.json) {
    entry_start(&b, "thread", r->step, r->depth);
    entry_str(&b, "what", kinds[i].what, strlen(kinds[i].what));
    ctr_buf_printf(&b, ",\"thread\":%" PRId64, n);
    entry_end(r, &b);
  } else {
    fprintf(r->o.out, "[thread %" PRId64 "%s]\n", n, kinds[i].said);
  }
  return true;
}

/* A record this listing has no words for is named, not hidden. */
static void print_other(ctr_render_t *r, const char *what) {
  ctr_buf_t b = {0};

  if (!in_range(r, r->step, false))
    return;
  if (r->o.json) {
    entry_start(&b, "other", r->step, r->depth);
    entry_str(&b, "record", what, strlen(what));
    entry_end(r, &b);
  } else {
    indent(r, r->depth);
    fprintf(r->o.out, "(%s)\n", what);
  }
}

void ctr_render_record(ctr_render_t *r, const ctr_jval_t *rec) {
  const ctr_jval_t *v = rec->type == CTR_JVAL_OBJ ? rec->child : NULL;
  const char *k = v ? v->key : NULL;

  if (rec->type == CTR_JVAL_STR && strcmp(rec->str, "DropLastStep") == 0) {
    if (r->step >= 0)
      r->step--;
    if (r->held)
      r->held = false;
    else
      print_other(r, "previous step dropped");
    return;
  }
  if (k == NULL)
    return;
  /* Interning records print nothing and keep a held Step held. */
  if (strcmp(k, "Path") == 0 && v->type == CTR_JVAL_STR) {
    add_path(r, v->str);
    return;
  }
  if (strcmp(k, "Function") == 0) {
    const char *name = ctr_jval_str(v, "name");
    names_push(&r->funcs, name ? name : "?");
    return;
  }
  if ((strcmp(k, "VariableName") == 0 || strcmp(k, "Variable") == 0) &&
      v->type == CTR_JVAL_STR) {
    names_push(&r->vars, v->str);
    return;
  }
  if (strcmp(k, "Type") == 0) {
    add_type(r, v);
    return;
  }
  if (strcmp(k, "Call") == 0) {
    /* The Step right before a Call is the call's location (the callee's
     * definition line), not a line the program ran: it is not shown. */
    r->held = false;
    print_call(r, v);
    return;
  }
  print_held(r);
  if (strcmp(k, "Step") == 0) {
    r->step++;
    r->held_path = SIZE_MAX;
    names_index(&r->paths, ctr_jval_get(v, "path_id"), &r->held_path);
    r->held_line = 0;
    ctr_jval_i64(ctr_jval_get(v, "line"), &r->held_line);
    r->held_depth = r->depth;
    r->held_step = r->step;
    r->held = true;
  } else if (strcmp(k, "Return") == 0) {
    print_return(r, v);
  } else if (strcmp(k, "Value") == 0) {
    print_value(r, v);
  } else if (strcmp(k, "Event") == 0) {
    if (in_range(r, r->step, false))
      print_event(r, v);
  } else if (!print_thread(r, k, v)) {
    print_other(r, k);
  }
}
