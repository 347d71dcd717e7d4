/* ctr_config.c: the option table and the ctrec.yaml loader.
 *
 * Every option lives in one table: dotted name, type, offset, default text,
 * bounds and help. Defaults go through the same parser as file values, so a
 * default can never be something the file could not say. The loader walks
 * libyaml events rather than a document tree so that every error carries the
 * line and column of the token that caused it, and so that aliases, tags and
 * duplicate keys are seen before anything is applied. */
#include "ctr_config.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "ctr_error.h"

/* A config file is a few kilobytes; the cap keeps a wrong path (a log file,
 * a device) from being read whole into memory. */
#define CONFIG_MAX_FILE (1u << 20)

enum opt_type {
  OPT_PATH, /* non-empty string, min..max bytes, no NUL, valid UTF-8 */
  OPT_UINT, /* decimal integer in min..max */
  OPT_MODE, /* octal permission bits with a leading 0, in min..max */
  OPT_ENUM  /* one of names[], stored as its index */
};

struct opt {
  const char *name;
  enum opt_type type;
  size_t offset;
  const char *def;
  uint32_t min, max;
  const char *const *names;
  const char *help;
};

static const char *const float_format_names[] = {"string", "number", NULL};
static const char *const log_level_names[] = {"error", "warn", "info", "debug",
                                              NULL};

#define OFF(field) offsetof(ctr_config_t, field)
#define GIB 1073741824u

/* Options of one section are adjacent; sections are printed in this order.
 * listen.path is bounded by sizeof(sun_path) - 1 and output.dir by
 * PATH_MAX - 1. limits.max_frame must hold a shim's ~64 KiB batch. */
static const struct opt opts[] = {
    {"listen.path", OPT_PATH, OFF(listen_path), "/run/ctrec/ctrecd.sock", 1,
     107, NULL, "Unix socket the daemon listens on."},
    {"listen.mode", OPT_MODE, OFF(listen_mode), "0660", 0, 0777, NULL,
     "Permission bits of the socket, in octal."},
    {"output.dir", OPT_PATH, OFF(output_dir), "/var/lib/ctrec/traces", 1, 4095,
     NULL, "Folder that receives one trace folder per recording."},
    {"output.flush_interval_ms", OPT_UINT, OFF(flush_interval_ms), "100", 10,
     60000, NULL,
     "How often open traces are flushed to disk, in milliseconds."},
    {"output.float_format", OPT_ENUM, OFF(float_format), "string", 0, 0,
     float_format_names, "How floats are written in trace.json."},
    {"limits.max_frame", OPT_UINT, OFF(max_frame), "16777216", 65536, GIB, NULL,
     "Largest frame a client may send, in bytes."},
    {"limits.max_depth", OPT_UINT, OFF(max_depth), "64", 1, 1024, NULL,
     "Deepest nesting of arrays and maps in one message."},
    {"limits.max_string", OPT_UINT, OFF(max_string), "4194304", 1, GIB, NULL,
     "Longest string in a message, in bytes."},
    {"limits.max_elements", OPT_UINT, OFF(max_elements), "1048576", 1, GIB,
     NULL, "Most entries in one array or map of a message."},
    {"limits.max_ids", OPT_UINT, OFF(max_ids), "4194304", 1, GIB, NULL,
     "Most interned ids of each kind per session."},
    {"limits.max_source", OPT_UINT, OFF(max_source), "16777216", 1, GIB, NULL,
     "Largest source file copied into a trace, in bytes."},
    {"limits.max_sessions", OPT_UINT, OFF(max_sessions), "1024", 1, 65536, NULL,
     "Most clients connected at the same time."},
    {"limits.value_depth", OPT_UINT, OFF(value_depth), "3", 0, 64, NULL,
     "How deep the shims descend into nested values."},
    {"limits.value_length", OPT_UINT, OFF(value_length), "32", 0, 1048576, NULL,
     "How many elements of a container the shims capture."},
    {"limits.value_string", OPT_UINT, OFF(value_string), "1000", 0, 4194304,
     NULL, "How many bytes of a string the shims capture."},
    {"log.level", OPT_ENUM, OFF(log_level), "info", 0, 0, log_level_names,
     "Least severe message the daemon logs."},
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static void *opt_field(const struct opt *o, const ctr_config_t *cfg) {
  return (char *)cfg + o->offset;
}

/* Length of the section part of an option name ("output" in "output.dir"). */
static size_t opt_section_len(const struct opt *o) {
  return (size_t)(strchr(o->name, '.') - o->name);
}

static bool opt_starts_section(size_t i) {
  size_t len = opt_section_len(&opts[i]);
  return i == 0 || opt_section_len(&opts[i - 1]) != len ||
         memcmp(opts[i - 1].name, opts[i].name, len) != 0;
}

/* Returns the index of the option named section + "." + key, or -1. Lengths
 * are explicit because YAML keys may hold NUL bytes. */
static int opt_find(const char *section, size_t section_len, const char *key,
                    size_t key_len) {
  for (size_t i = 0; i < N_OPTS; i++) {
    const char *name = opts[i].name;
    if (opt_section_len(&opts[i]) == section_len &&
        memcmp(name, section, section_len) == 0 &&
        strlen(name + section_len + 1) == key_len &&
        memcmp(name + section_len + 1, key, key_len) == 0)
      return (int)i;
  }
  return -1;
}

/* Returns the index of the first option of a section, or -1. */
static int section_find(const char *key, size_t key_len) {
  for (size_t i = 0; i < N_OPTS; i++) {
    if (opt_starts_section(i) && opt_section_len(&opts[i]) == key_len &&
        memcmp(opts[i].name, key, key_len) == 0)
      return (int)i;
  }
  return -1;
}

/* Copies a user's text into a message: short, one line, printable. */
static const char *excerpt(char *buf, size_t cap, const char *s, size_t len) {
  size_t n = 0, max = cap - 4;
  for (size_t i = 0; i < len && n < max; i++) {
    unsigned char c = (unsigned char)s[i];
    buf[n++] = (c < 0x20 || c == 0x7f || c == '"') ? '?' : (char)c;
  }
  if (n < len && n == max) {
    memcpy(buf + n, "...", 3);
    n += 3;
  }
  buf[n] = '\0';
  return buf;
}

/* Checks that s is well-formed UTF-8 (no overlong forms, no surrogates), so
 * that ctr_config_print can always write it back as YAML. */
static bool utf8_valid(const unsigned char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    unsigned char c = s[i];
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (len - i <= n)
      return false;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n + 1;
  }
  return true;
}

/* Parses a decimal or octal number made only of digits. A leading '-' is
 * accepted so that "-1" reads as out of range rather than as garbage.
 * Returns false on syntax errors; *out saturates at UINT64_MAX. */
static bool parse_digits(const char *s, size_t len, unsigned base,
                         bool *negative, uint64_t *out) {
  uint64_t v = 0;
  size_t i = 0;
  *negative = len > 0 && s[0] == '-';
  if (*negative)
    i++;
  if (i == len)
    return false;
  /* A decimal with a leading zero is refused: YAML 1.1 and the shell read
   * 0123 as octal, and guessing which the user meant is worse than asking. */
  if (base == 10 && s[i] == '0' && len - i > 1)
    return false;
  for (; i < len; i++) {
    unsigned d = (unsigned)(s[i] - '0');
    if (s[i] < '0' || d >= base)
      return false;
    v = v > (UINT64_MAX - d) / base ? UINT64_MAX : v * base + d;
  }
  *out = v;
  return true;
}

/* Parses text as the value of o and stores it in cfg. Writes nothing on
 * failure. Returns 0, CTR_ECONFIG or CTR_ENOMEM with a message in msg. */
static int opt_apply(const struct opt *o, ctr_config_t *cfg, const char *text,
                     size_t len, char *msg, size_t msglen) {
  char ex[48];
  bool negative = false;
  uint64_t v = 0;

  if (len == 0) {
    snprintf(msg, msglen, "must not be empty");
    return CTR_ECONFIG;
  }
  switch (o->type) {
  case OPT_PATH: {
    char *copy, **field = opt_field(o, cfg);
    if (memchr(text, '\0', len)) {
      snprintf(msg, msglen, "must not contain a NUL byte");
      return CTR_ECONFIG;
    }
    if (len < o->min || len > o->max) {
      snprintf(msg, msglen, "must be %s %u bytes long",
               len < o->min ? "at least" : "at most",
               (unsigned)(len < o->min ? o->min : o->max));
      return CTR_ECONFIG;
    }
    if (!utf8_valid((const unsigned char *)text, len)) {
      snprintf(msg, msglen, "must be valid UTF-8");
      return CTR_ECONFIG;
    }
    copy = strndup(text, len);
    if (!copy) {
      snprintf(msg, msglen, "out of memory");
      return CTR_ENOMEM;
    }
    free(*field);
    *field = copy;
    return 0;
  }
  case OPT_UINT:
    if (!parse_digits(text, len, 10, &negative, &v)) {
      snprintf(msg, msglen, "expected a decimal integer, got \"%s\"",
               excerpt(ex, sizeof(ex), text, len));
      return CTR_ECONFIG;
    }
    if (negative || v < o->min || v > o->max) {
      snprintf(msg, msglen, "must be between %u and %u", (unsigned)o->min,
               (unsigned)o->max);
      return CTR_ECONFIG;
    }
    *(uint32_t *)opt_field(o, cfg) = (uint32_t)v;
    return 0;
  case OPT_MODE:
    /* The leading 0 is required so that a decimal 432 is not silently read
     * as the octal 0432. */
    if (text[0] != '0' || !parse_digits(text, len, 8, &negative, &v)) {
      snprintf(msg, msglen, "expected an octal mode such as 0660, got \"%s\"",
               excerpt(ex, sizeof(ex), text, len));
      return CTR_ECONFIG;
    }
    if (v < o->min || v > o->max) {
      snprintf(msg, msglen, "must be between %04o and %04o", (unsigned)o->min,
               (unsigned)o->max);
      return CTR_ECONFIG;
    }
    *(uint32_t *)opt_field(o, cfg) = (uint32_t)v;
    return 0;
  case OPT_ENUM: {
    size_t off = 0;
    for (int i = 0; o->names[i]; i++) {
      if (strlen(o->names[i]) == len && memcmp(o->names[i], text, len) == 0) {
        *(int *)opt_field(o, cfg) = i;
        return 0;
      }
    }
    off += (size_t)snprintf(msg, msglen, "expected one of");
    for (int i = 0; o->names[i] && off < msglen; i++)
      off += (size_t)snprintf(msg + off, msglen - off, "%s %s", i ? "," : "",
                              o->names[i]);
    if (off < msglen)
      snprintf(msg + off, msglen - off, ", got \"%s\"",
               excerpt(ex, sizeof(ex), text, len));
    return CTR_ECONFIG;
  }
  }
  return CTR_ECONFIG;
}

void ctr_config_free(ctr_config_t *cfg) {
  for (size_t i = 0; i < N_OPTS; i++) {
    if (opts[i].type == OPT_PATH) {
      char **field = opt_field(&opts[i], cfg);
      free(*field);
      *field = NULL;
    }
  }
}

void ctr_config_defaults(ctr_config_t *cfg) {
  char msg[128];
  memset(cfg, 0, sizeof(*cfg));
  /* The defaults are constants checked by the unit tests; only a failed
   * allocation can make one fail, and that leaves the string NULL. */
  for (size_t i = 0; i < N_OPTS; i++)
    (void)opt_apply(&opts[i], cfg, opts[i].def, strlen(opts[i].def), msg,
                    sizeof(msg));
}

/* Makes dst an independent copy of src, with its own strings. */
static int config_copy(ctr_config_t *dst, const ctr_config_t *src) {
  *dst = *src;
  for (size_t i = 0; i < N_OPTS; i++) {
    if (opts[i].type == OPT_PATH)
      *(char **)opt_field(&opts[i], dst) = NULL;
  }
  for (size_t i = 0; i < N_OPTS; i++) {
    const char *s;
    char **d;
    if (opts[i].type != OPT_PATH)
      continue;
    s = *(char **)opt_field(&opts[i], src);
    d = opt_field(&opts[i], dst);
    if (s && !(*d = strdup(s))) {
      ctr_config_free(dst);
      return CTR_ENOMEM;
    }
  }
  return 0;
}

int ctr_config_set(ctr_config_t *cfg, const char *name, const char *value,
                   const char *origin, char *err, size_t errlen) {
  char msg[256];
  const char *dot = name ? strchr(name, '.') : NULL;
  int i = -1, rc;

  if (!err || errlen == 0)
    err = msg, errlen = sizeof(msg);
  if (dot)
    i = opt_find(name, (size_t)(dot - name), dot + 1, strlen(dot + 1));
  if (i < 0) {
    snprintf(err, errlen, "%s%s%s: unknown key", origin ? origin : "",
             origin ? ": " : "", name ? name : "(null)");
    return CTR_ECONFIG;
  }
  if (!value)
    value = "";
  rc = opt_apply(&opts[i], cfg, value, strlen(value), msg, sizeof(msg));
  if (rc != 0)
    snprintf(err, errlen, "%s%s%s: %s", origin ? origin : "",
             origin ? ": " : "", name, msg);
  return rc;
}

/* Loader state. Only one libyaml event is alive at a time (ev); whatever a
 * caller needs from it after the next event must be copied first. */
struct loader {
  yaml_parser_t parser;
  yaml_event_t ev;
  bool have_ev;
  const char *path;
  const unsigned char *buf;
  size_t len;
  ctr_config_t *cfg;
  yaml_mark_t first[N_OPTS]; /* where each option or section was first set */
  bool seen[N_OPTS];
  bool seen_section[N_OPTS]; /* indexed by the section's first option */
  yaml_mark_t first_section[N_OPTS];
  char *err;
  size_t errlen;
};

static int load_fail(struct loader *ld, yaml_mark_t mark, const char *key,
                     const char *fmt, ...) {
  va_list ap;
  int off =
      snprintf(ld->err, ld->errlen, "%s:%zu:%zu: %s%s", ld->path, mark.line + 1,
               mark.column + 1, key ? key : "", key ? ": " : "");
  if (off >= 0 && (size_t)off < ld->errlen) {
    va_start(ap, fmt);
    vsnprintf(ld->err + off, ld->errlen - (size_t)off, fmt, ap);
    va_end(ap);
  }
  return CTR_ECONFIG;
}

/* libyaml reports undecodable input by byte offset only; turn it into a
 * line and a column counted in characters, as the other marks are. */
static yaml_mark_t offset_mark(const struct loader *ld, size_t offset) {
  yaml_mark_t m = {offset, 0, 0};
  for (size_t i = 0; i < offset && i < ld->len; i++) {
    if (ld->buf[i] == '\n')
      m.line++, m.column = 0;
    else if ((ld->buf[i] & 0xc0) != 0x80)
      m.column++;
  }
  return m;
}

static int load_syntax_error(struct loader *ld) {
  yaml_parser_t *p = &ld->parser;
  const char *problem = p->problem ? p->problem : "invalid YAML";

  switch (p->error) {
  case YAML_MEMORY_ERROR:
    snprintf(ld->err, ld->errlen, "%s: out of memory", ld->path);
    return CTR_ENOMEM;
  case YAML_READER_ERROR:
    return load_fail(ld, offset_mark(ld, p->problem_offset), NULL, "%s",
                     problem);
  default:
    if (p->context)
      return load_fail(ld, p->problem_mark, NULL, "%s (%s at %zu:%zu)", problem,
                       p->context, p->context_mark.line + 1,
                       p->context_mark.column + 1);
    return load_fail(ld, p->problem_mark, NULL, "%s", problem);
  }
}

/* Moves to the next event and rejects what ctrec.yaml never uses: aliases,
 * anchors (which are only useful with aliases) and explicit tags. */
static int load_next(struct loader *ld) {
  const yaml_char_t *anchor = NULL, *tag = NULL;

  if (ld->have_ev)
    yaml_event_delete(&ld->ev);
  ld->have_ev = false;
  if (!yaml_parser_parse(&ld->parser, &ld->ev))
    return load_syntax_error(ld);
  ld->have_ev = true;
  switch (ld->ev.type) {
  case YAML_ALIAS_EVENT:
    anchor = ld->ev.data.alias.anchor;
    break;
  case YAML_SCALAR_EVENT:
    anchor = ld->ev.data.scalar.anchor, tag = ld->ev.data.scalar.tag;
    break;
  case YAML_SEQUENCE_START_EVENT:
    anchor = ld->ev.data.sequence_start.anchor;
    tag = ld->ev.data.sequence_start.tag;
    break;
  case YAML_MAPPING_START_EVENT:
    anchor = ld->ev.data.mapping_start.anchor;
    tag = ld->ev.data.mapping_start.tag;
    break;
  default:
    break;
  }
  if (anchor)
    return load_fail(ld, ld->ev.start_mark, NULL,
                     "aliases and anchors are not supported");
  if (tag)
    return load_fail(ld, ld->ev.start_mark, NULL, "tags are not supported");
  return 0;
}

/* True for a plain scalar that YAML reads as null: "", "~" and "null". */
static bool ev_is_null(const yaml_event_t *ev) {
  static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
  if (ev->type != YAML_SCALAR_EVENT ||
      ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
    return false;
  for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
    if (strlen(nulls[i]) == ev->data.scalar.length &&
        memcmp(nulls[i], ev->data.scalar.value, ev->data.scalar.length) == 0)
      return true;
  }
  return false;
}

static int load_option(struct loader *ld, int i) {
  char msg[256];
  const yaml_event_t *ev = &ld->ev;
  int rc = load_next(ld);

  if (rc != 0)
    return rc;
  if (ev->type != YAML_SCALAR_EVENT)
    return load_fail(ld, ev->start_mark, opts[i].name, "expected a scalar");
  /* A null value is an empty one, so that "dir:" and "dir: ~" both read as
   * "must not be empty" rather than as the text "~". */
  rc = opt_apply(&opts[i], ld->cfg,
                 ev_is_null(ev) ? "" : (const char *)ev->data.scalar.value,
                 ev_is_null(ev) ? 0 : ev->data.scalar.length, msg, sizeof(msg));
  if (rc != 0)
    return load_fail(ld, ev->start_mark, opts[i].name, "%s", msg);
  return 0;
}

static int load_section(struct loader *ld, int s) {
  const yaml_event_t *ev = &ld->ev;
  const char *section = opts[s].name;
  int seclen = (int)opt_section_len(&opts[s]);
  int rc = load_next(ld);

  if (rc != 0)
    return rc;
  if (ev_is_null(ev))
    return 0; /* every option of the section commented out */
  if (ev->type != YAML_MAPPING_START_EVENT)
    return load_fail(ld, ev->start_mark, NULL, "%.*s: expected a mapping",
                     seclen, section);
  for (;;) {
    const char *key;
    size_t key_len;
    int i;

    if ((rc = load_next(ld)) != 0)
      return rc;
    if (ev->type == YAML_MAPPING_END_EVENT)
      return 0;
    if (ev->type != YAML_SCALAR_EVENT)
      return load_fail(ld, ev->start_mark, NULL, "%.*s: keys must be scalars",
                       seclen, section);
    key = (const char *)ev->data.scalar.value;
    key_len = ev->data.scalar.length;
    i = opt_find(section, (size_t)seclen, key, key_len);
    if (i < 0) {
      char ex[48];
      return load_fail(ld, ev->start_mark, NULL, "%.*s.%s: unknown key", seclen,
                       section, excerpt(ex, sizeof(ex), key, key_len));
    }
    if (ld->seen[i])
      return load_fail(ld, ev->start_mark, opts[i].name,
                       "duplicate key (first at %zu:%zu)",
                       ld->first[i].line + 1, ld->first[i].column + 1);
    ld->seen[i] = true;
    ld->first[i] = ev->start_mark;
    if ((rc = load_option(ld, i)) != 0)
      return rc;
  }
}

static int load_document(struct loader *ld) {
  const yaml_event_t *ev = &ld->ev;
  int rc = load_next(ld);

  if (rc != 0)
    return rc;
  if (ev_is_null(ev))
    return load_next(ld); /* "---" alone: a document with no options */
  if (ev->type != YAML_MAPPING_START_EVENT)
    return load_fail(ld, ev->start_mark, NULL, "expected a mapping");
  for (;;) {
    int s;
    if ((rc = load_next(ld)) != 0)
      return rc;
    if (ev->type == YAML_MAPPING_END_EVENT)
      return load_next(ld); /* the document end */
    if (ev->type != YAML_SCALAR_EVENT)
      return load_fail(ld, ev->start_mark, NULL, "keys must be scalars");
    s = section_find((const char *)ev->data.scalar.value,
                     ev->data.scalar.length);
    if (s < 0) {
      char ex[48];
      return load_fail(ld, ev->start_mark, NULL, "%s: unknown key",
                       excerpt(ex, sizeof(ex),
                               (const char *)ev->data.scalar.value,
                               ev->data.scalar.length));
    }
    if (ld->seen_section[s])
      return load_fail(
          ld, ev->start_mark, NULL, "%.*s: duplicate key (first at %zu:%zu)",
          (int)opt_section_len(&opts[s]), opts[s].name,
          ld->first_section[s].line + 1, ld->first_section[s].column + 1);
    ld->seen_section[s] = true;
    ld->first_section[s] = ev->start_mark;
    if ((rc = load_section(ld, s)) != 0)
      return rc;
  }
}

static int load_stream(struct loader *ld) {
  int rc, documents = 0;

  if ((rc = load_next(ld)) != 0) /* stream start */
    return rc;
  for (;;) {
    if ((rc = load_next(ld)) != 0)
      return rc;
    if (ld->ev.type == YAML_STREAM_END_EVENT)
      return 0;
    if (documents++ > 0)
      return load_fail(ld, ld->ev.start_mark, NULL,
                       "multiple documents are not supported");
    if ((rc = load_document(ld)) != 0)
      return rc;
  }
}

/* Reads the whole file so that reader errors can be given a line. */
static int read_file(const char *path, unsigned char **out, size_t *outlen,
                     char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  unsigned char *buf;
  size_t len = 0;
  int e;

  if (!f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return CTR_ECONFIG;
  }
  buf = malloc(CONFIG_MAX_FILE + 1);
  if (!buf) {
    fclose(f);
    snprintf(err, errlen, "%s: out of memory", path);
    return CTR_ENOMEM;
  }
  len = fread(buf, 1, CONFIG_MAX_FILE + 1, f);
  e = ferror(f) ? errno : 0;
  fclose(f);
  if (e != 0 || len > CONFIG_MAX_FILE) {
    if (e != 0)
      snprintf(err, errlen, "%s: %s", path, strerror(e));
    else
      snprintf(err, errlen, "%s: larger than %u bytes", path,
               (unsigned)CONFIG_MAX_FILE);
    free(buf);
    return CTR_ECONFIG;
  }
  *out = buf;
  *outlen = len;
  return 0;
}

int ctr_config_load(ctr_config_t *cfg, const char *path, char *err,
                    size_t errlen) {
  char msg[256];
  ctr_config_t tmp;
  struct loader ld;
  unsigned char *buf;
  size_t len;
  int rc;

  if (!err || errlen == 0)
    err = msg, errlen = sizeof(msg);
  if ((rc = read_file(path, &buf, &len, err, errlen)) != 0)
    return rc;
  if (config_copy(&tmp, cfg) != 0) {
    free(buf);
    snprintf(err, errlen, "%s: out of memory", path);
    return CTR_ENOMEM;
  }
  memset(&ld, 0, sizeof(ld));
  ld.path = path;
  ld.buf = buf;
  ld.len = len;
  ld.cfg = &tmp;
  ld.err = err;
  ld.errlen = errlen;
  if (!yaml_parser_initialize(&ld.parser)) {
    rc = CTR_ENOMEM;
    snprintf(err, errlen, "%s: out of memory", path);
  } else {
    yaml_parser_set_input_string(&ld.parser, buf, len);
    rc = load_stream(&ld);
    if (ld.have_ev)
      yaml_event_delete(&ld.ev);
    yaml_parser_delete(&ld.parser);
  }
  free(buf);
  if (rc != 0) {
    ctr_config_free(&tmp);
    return rc;
  }
  ctr_config_free(cfg);
  *cfg = tmp;
  return 0;
}

/* Writes s as a double-quoted YAML scalar. Characters YAML does not allow
 * raw (controls, DEL, C1 controls, BOM, non-characters) are escaped, and so
 * are the Unicode line breaks (NEL, LS, PS), which a double-quoted scalar
 * would fold into spaces. Invalid UTF-8 cannot be written back exactly;
 * each such byte is escaped so that the output stays valid YAML. */
static void print_quoted(FILE *out, const char *str) {
  const unsigned char *s = (const unsigned char *)(str ? str : "");
  size_t len = strlen((const char *)s);

  fputc('"', out);
  for (size_t i = 0; i < len;) {
    unsigned char c = s[i];
    size_t n = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    uint32_t cp;

    if (c == '"' || c == '\\') {
      fprintf(out, "\\%c", c);
      i++;
      continue;
    }
    if (c < 0x20 || c == 0x7f) {
      fprintf(out, "\\x%02X", c);
      i++;
      continue;
    }
    if (c < 0x80) {
      fputc(c, out);
      i++;
      continue;
    }
    if (n > len - i || !utf8_valid(s + i, n)) {
      fprintf(out, "\\x%02X", c);
      i++;
      continue;
    }
    cp = n == 2 ? (c & 0x1fu) : n == 3 ? (c & 0x0fu) : (c & 0x07u);
    for (size_t k = 1; k < n; k++)
      cp = (cp << 6) | (s[i + k] & 0x3fu);
    if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
        cp == 0xfeff || cp == 0xfffe || cp == 0xffff)
      fprintf(out, "\\u%04X", (unsigned)cp);
    else
      fwrite(s + i, 1, n, out);
    i += n;
  }
  fputc('"', out);
}

void ctr_config_print(const ctr_config_t *cfg, FILE *out) {
  for (size_t i = 0; i < N_OPTS; i++) {
    const struct opt *o = &opts[i];
    const void *field = opt_field(o, cfg);
    size_t seclen = opt_section_len(o);

    if (opt_starts_section(i))
      fprintf(out, "%s%.*s:\n", i ? "\n" : "", (int)seclen, o->name);
    fprintf(out, "  # %s", o->help);
    switch (o->type) {
    case OPT_PATH:
      fprintf(out, "\n  %s: ", o->name + seclen + 1);
      print_quoted(out, *(char *const *)field);
      break;
    case OPT_UINT:
      fprintf(out, " Range: %u to %u.\n  %s: %u", (unsigned)o->min,
              (unsigned)o->max, o->name + seclen + 1,
              (unsigned)*(const uint32_t *)field);
      break;
    case OPT_MODE:
      fprintf(out, "\n  %s: %04o", o->name + seclen + 1,
              (unsigned)*(const uint32_t *)field);
      break;
    case OPT_ENUM: {
      int v = *(const int *)field, n = 0;
      fprintf(out, " One of:");
      for (; o->names[n]; n++)
        fprintf(out, "%s %s", n ? "," : "", o->names[n]);
      fprintf(out, ".\n  %s: %s", o->name + seclen + 1,
              v >= 0 && v < n ? o->names[v] : o->names[0]);
      break;
    }
    }
    fputc('\n', out);
  }
}

const char *ctr_log_level_name(int level) {
  if (level < CTR_LOG_ERROR || level > CTR_LOG_DEBUG)
    return "unknown";
  return log_level_names[level];
}
