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
#include <time.h>
#include <yaml.h>

#include "ctr_alloc.h"
#include "ctr_error.h"

/* A config file is a few kilobytes; the cap keeps a wrong path (a log file,
 * a device) from being read whole into memory. */
#define CONFIG_MAX_FILE (1u << 20)

enum opt_type {
  OPT_PATH,     /* string, min..max bytes, no NUL, valid UTF-8 */
  OPT_UINT,     /* decimal integer in min..max */
  OPT_MODE,     /* octal permission bits with a leading 0, in min..max */
  OPT_ENUM,     /* one of names[], stored as its index */
  OPT_BOOL,     /* true or false */
  OPT_DURATION, /* 0 or a number with ms, s, m, h or d, stored in ms (uint64) */
  OPT_SIZE,     /* bytes, with an optional k, M, G or T suffix (uint64) */
  OPT_COUNT,    /* decimal integer (uint64) */
  OPT_LIST      /* a YAML sequence, handled by list */
};

struct loader;

/* A list option's own loading, copying, freeing and printing. load reads
 * the value's events and replaces the list in ld->cfg. */
struct list_ops {
  int (*load)(struct loader *ld, const char *name);
  void (*copy)(ctr_config_t *dst, const ctr_config_t *src);
  void (*clear)(ctr_config_t *cfg);
  void (*print)(const ctr_config_t *cfg, FILE *out);
};

struct opt {
  const char *name;
  enum opt_type type;
  size_t offset;
  const char *def;
  uint64_t min, max;
  const char *const *names;
  const char *help;
  const struct list_ops *list;
};

static const char *const float_format_names[] = {"string", "number", NULL};
static const char *const output_format_names[] = {"json", "ctfs", NULL};
static const char *const log_level_names[] = {"error", "warn", "info", "debug",
                                              NULL};
static const char *const record_start_names[] = {"recording", "paused", NULL};
static const char *const record_values_names[] = {"all", "args", "none", NULL};

static const struct list_ops rules_ops, values_ops, windows_ops, while_in_ops;

#define OFF(field) offsetof(ctr_config_t, field)
#define GIB 1073741824u

/* Options of one section are adjacent; sections are printed in this order.
 * listen.path is bounded by sizeof(sun_path) - 1 and output.dir by
 * PATH_MAX - 1. limits.max_frame must hold a shim's ~64 KiB batch. */
static const struct opt opts[] = {
    {"listen.path", OPT_PATH, OFF(listen_path), "/run/ctrec/ctrecd.sock", 0,
     107, NULL, "Unix socket the daemon listens on; empty: none.", NULL},
    {"listen.mode", OPT_MODE, OFF(listen_mode), "0660", 0, 0777, NULL,
     "Permission bits of the socket, in octal.", NULL},
    {"listen.fifo_dir", OPT_PATH, OFF(listen_fifo_dir), "", 0, 3900, NULL,
     "Folder of named pipes the daemon listens on too; empty: none.", NULL},
    {"output.mode", OPT_MODE, OFF(output_mode), "0600", 0600, 0644, NULL,
     "Permissions of trace files (folders get x where r): 0600 for their "
     "owner only, 0640 for a group too, 0644 for everyone.", NULL},
    {"output.dir", OPT_PATH, OFF(output_dir), "/var/lib/ctrec/traces", 1, 4095,
     NULL, "Folder that receives one trace folder per recording.", NULL},
    {"output.flush_interval_ms", OPT_UINT, OFF(flush_interval_ms), "100", 10,
     60000, NULL, "How often open traces are flushed to disk, in milliseconds.",
     NULL},
    {"output.float_format", OPT_ENUM, OFF(float_format), "string", 0, 0,
     float_format_names, "How floats are written in trace.json.", NULL},
    {"output.format", OPT_ENUM, OFF(output_format), "ctfs", 0, 0,
     output_format_names, "Trace format: ctfs (trace.ct) or json (trace.json).",
     NULL},
    {"output.max_age", OPT_DURATION, OFF(output_max_age_ms), "0", 0, 0, NULL,
     "Finished traces older than this are deleted; 0 for no limit.", NULL},
    {"output.max_total_size", OPT_SIZE, OFF(output_max_total_size), "0", 0, 0,
     NULL,
     "Finished traces are deleted, oldest first, until all traces fit in "
     "this; 0 for no limit.",
     NULL},
    {"limits.max_frame", OPT_UINT, OFF(max_frame), "16777216", 65536, GIB, NULL,
     "Largest frame a client may send, in bytes.", NULL},
    /* 32 is also as deep as msgpack-c's unpacker goes. */
    {"limits.max_depth", OPT_UINT, OFF(max_depth), "32", 1, 32, NULL,
     "Deepest nesting of arrays and maps in one message.", NULL},
    {"limits.max_string", OPT_UINT, OFF(max_string), "4194304", 1, GIB, NULL,
     "Longest string in a message, in bytes.", NULL},
    {"limits.max_elements", OPT_UINT, OFF(max_elements), "1048576", 1, GIB,
     NULL, "Most entries in one array or map of a message.", NULL},
    {"limits.max_ids", OPT_UINT, OFF(max_ids), "4194304", 1, GIB, NULL,
     "Most interned ids of each kind per session.", NULL},
    {"limits.max_source", OPT_UINT, OFF(max_source), "16777216", 1, GIB, NULL,
     "Largest source file copied into a trace, in bytes.", NULL},
    {"limits.max_sessions", OPT_UINT, OFF(max_sessions), "1024", 1, 65536, NULL,
     "Most clients connected at the same time.", NULL},
    {"limits.max_threads", OPT_UINT, OFF(max_threads), "4096", 1, 1048576,
     NULL, "Most threads a session keeps; past it a new thread takes the "
     "place of one with no call open, and a client with more threads "
     "with calls open is refused.", NULL},
    {"limits.max_buffered", OPT_UINT, OFF(max_buffered), "268435456",
     1048576, GIB, NULL, "Bytes of partial frames the daemon holds for all "
     "clients together; past it the client holding the most is closed.",
     NULL},
    {"limits.handshake_timeout_ms", OPT_UINT, OFF(handshake_ms), "5000", 100,
     600000, NULL, "A connection that has not sent its HELLO within this "
     "time is closed, as is a control connection idle for as long.", NULL},
    {"limits.client_wait_ms", OPT_UINT, OFF(client_wait_ms), "1000", 1,
     60000, NULL, "Longest a traced program waits on a daemon that does not "
     "read (at exit, to send what is left).", NULL},
    {"limits.client_buffer", OPT_UINT, OFF(client_buffer), "16777216", 65536,
     GIB, NULL, "Bytes a shim holds unsent while the daemon does not read; "
     "past it the shim records nothing until the daemon catches up, and "
     "counts what it left out.", NULL},
    {"limits.value_depth", OPT_UINT, OFF(value_depth), "3", 0, 64, NULL,
     "How deep the shims descend into nested values.", NULL},
    {"limits.value_length", OPT_UINT, OFF(value_length), "32", 0, 1048576, NULL,
     "How many elements of a container the shims capture.", NULL},
    {"limits.value_string", OPT_UINT, OFF(value_string), "1000", 0, 4194304,
     NULL, "How many bytes of a string the shims capture.", NULL},
    {"limits.value_budget", OPT_UINT, OFF(value_budget), "4096", 0, 16777216,
     NULL, "How many values the shims capture per step, all variables and "
     "their elements together; 0 for no bound.", NULL},
    {"limits.value_refs", OPT_UINT, OFF(value_refs), "4096", 0, 1048576,
     NULL, "How many captured values the daemon keeps per session so that "
     "shims can send an unchanged value as a reference; 0 turns references "
     "off.", NULL},
    {"filter.defaults", OPT_BOOL, OFF(filter_defaults), "true", 0, 0, NULL,
     "Skip the standard libraries and installed packages unless a rule "
     "says otherwise.",
     NULL},
    {"filter.rules", OPT_LIST, OFF(filter_rules), "", 0, 0, NULL,
     "Which code is recorded; the last matching rule decides.", &rules_ops},
    {"filter.values", OPT_LIST, OFF(filter_values), "", 0, 0, NULL,
     "Values to redact or drop; the strongest matching action wins.",
     &values_ops},
    {"filter.pushdown", OPT_BOOL, OFF(filter_pushdown), "true", 0, 0, NULL,
     "Let the shims skip filtered code themselves; the trace is the same.",
     NULL},
    {"record.start", OPT_ENUM, OFF(record_start), "recording", 0, 0,
     record_start_names, "Whether a new session records at once.", NULL},
    {"record.windows", OPT_LIST, OFF(record_windows), "", 0, 0, NULL,
     "Time windows in which sessions record.", &windows_ops},
    {"record.while_in", OPT_LIST, OFF(record_while_in), "", 0, 0, NULL,
     "Record only while one of these functions is on the stack.",
     &while_in_ops},
    {"record.max_duration", OPT_DURATION, OFF(record_max_duration_ms), "0", 0,
     0, NULL, "Longest recording interval; 0 for no limit.", NULL},
    {"record.max_events", OPT_COUNT, OFF(record_max_events), "0", 0, 0, NULL,
     "Most events in one interval; 0 for no limit.", NULL},
    {"record.max_bytes", OPT_SIZE, OFF(record_max_bytes), "0", 0, 0, NULL,
     "Most trace bytes in one interval; 0 for no limit.", NULL},
    {"record.values", OPT_ENUM, OFF(record_values), "all", 0, 0,
     record_values_names, "Which values the shims capture.", NULL},
    {"log.level", OPT_ENUM, OFF(log_level), "info", 0, 0, log_level_names,
     "Least severe message the daemon logs.", NULL},
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

/* Options only a restart can change (the socket is bound once); a reload
 * that changes one is refused. */
static bool opt_needs_restart(const struct opt *o) {
  return o->offset == OFF(listen_path) || o->offset == OFF(listen_mode) ||
         o->offset == OFF(listen_fifo_dir);
}

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

/* Multiplies v by unit unless the product overflows. */
static bool mul_checked(uint64_t v, uint64_t unit, uint64_t *out) {
  if (v == UINT64_MAX || (unit && v > UINT64_MAX / unit))
    return false;
  *out = v * unit;
  return true;
}

/* Parses a duration: "0", or digits followed by ms, s, m, h or d. Sets
 * *too_big instead of failing when the number is well-formed but does not
 * fit in 64 bits of milliseconds. */
static bool parse_duration(const char *s, size_t len, uint64_t *ms,
                           bool *too_big) {
  static const struct {
    const char *suffix;
    uint64_t ms;
  } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
               {"d", 86400000}};
  size_t digits = 0;
  bool negative;
  uint64_t v;

  *too_big = false;
  while (digits < len && s[digits] >= '0' && s[digits] <= '9')
    digits++;
  if (digits == 0 || !parse_digits(s, digits, 10, &negative, &v))
    return false;
  if (digits == len)
    return v == 0 && (*ms = 0, true);
  for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
    if (strlen(units[i].suffix) == len - digits &&
        memcmp(units[i].suffix, s + digits, len - digits) == 0) {
      *too_big = !mul_checked(v, units[i].ms, ms);
      return true;
    }
  }
  return false;
}

/* Parses a size: digits with an optional binary k/K, M, G or T suffix. */
static bool parse_size(const char *s, size_t len, uint64_t *bytes,
                       bool *too_big) {
  static const char suffixes[] = "kKMGT";
  static const uint64_t units[] = {1ull << 10, 1ull << 10, 1ull << 20,
                                   1ull << 30, 1ull << 40};
  size_t digits = len;
  bool negative;
  uint64_t v, unit = 1;
  const char *p;

  *too_big = false;
  if (len > 1 && (p = memchr(suffixes, s[len - 1], sizeof(suffixes) - 1))) {
    digits = len - 1;
    unit = units[p - suffixes];
  }
  if (!parse_digits(s, digits, 10, &negative, &v) || negative)
    return false;
  *too_big = !mul_checked(v, unit, bytes);
  return true;
}

int ctr_config_parse_duration(const char *text, uint64_t *ms) {
  bool too_big;

  return parse_duration(text, strlen(text), ms, &too_big) && !too_big
             ? 0
             : CTR_ECONFIG;
}

int ctr_config_parse_size(const char *text, uint64_t *bytes) {
  bool too_big;

  return parse_size(text, strlen(text), bytes, &too_big) && !too_big
             ? 0
             : CTR_ECONFIG;
}

/* Parses text as the value of o and stores it in cfg. Writes nothing on
 * failure. Returns 0 or CTR_ECONFIG with a message in msg. */
static int opt_apply(const struct opt *o, ctr_config_t *cfg, const char *text,
                     size_t len, char *msg, size_t msglen) {
  char ex[48];
  bool negative = false;
  uint64_t v = 0;

  /* A path whose minimum is 0 may be empty: the feature it names is off. */
  if (len == 0 && !(o->type == OPT_PATH && o->min == 0)) {
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
    copy = ctr_xstrndup(text, len);
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
  case OPT_BOOL:
    /* Only YAML 1.2's spellings: "yes", "on" and "y" mean different things
     * to different YAML readers. */
    if (len == 4 && memcmp(text, "true", 4) == 0) {
      *(bool *)opt_field(o, cfg) = true;
      return 0;
    }
    if (len == 5 && memcmp(text, "false", 5) == 0) {
      *(bool *)opt_field(o, cfg) = false;
      return 0;
    }
    snprintf(msg, msglen, "expected true or false, got \"%s\"",
             excerpt(ex, sizeof(ex), text, len));
    return CTR_ECONFIG;
  case OPT_DURATION:
  case OPT_SIZE:
  case OPT_COUNT: {
    bool too_big = false, ok;
    if (o->type == OPT_DURATION)
      ok = parse_duration(text, len, &v, &too_big);
    else if (o->type == OPT_SIZE)
      ok = parse_size(text, len, &v, &too_big);
    else
      ok = parse_digits(text, len, 10, &negative, &v) && !negative &&
           !(too_big = v == UINT64_MAX);
    if (!ok && !too_big) {
      snprintf(msg, msglen, "expected %s, got \"%s\"",
               o->type == OPT_DURATION
                   ? "a duration such as 500ms, 10s, 5m or 1h"
               : o->type == OPT_SIZE ? "a size such as 64k, 10M or 1G"
                                     : "a decimal integer",
               excerpt(ex, sizeof(ex), text, len));
      return CTR_ECONFIG;
    }
    if (too_big) {
      snprintf(msg, msglen, "is too large");
      return CTR_ECONFIG;
    }
    *(uint64_t *)opt_field(o, cfg) = v;
    return 0;
  }
  case OPT_LIST:
    snprintf(msg, msglen, "is a list; set it in the configuration file");
    return CTR_ECONFIG;
  }
  return CTR_ECONFIG;
}

void ctr_config_free(ctr_config_t *cfg) {
  for (size_t i = 0; i < N_OPTS; i++) {
    if (opts[i].type == OPT_PATH) {
      char **field = opt_field(&opts[i], cfg);
      free(*field);
      *field = NULL;
    } else if (opts[i].type == OPT_LIST) {
      opts[i].list->clear(cfg);
    }
  }
  ctr_filter_free(cfg->filter);
  cfg->filter = NULL;
}

/* Compiles the filter options into cfg->filter. The patterns were checked
 * as they were loaded, so only memory can run out here. */
/* The patterns were checked as they were read: only memory can fail. */
static void config_compile_filter(ctr_config_t *cfg) {
  ctr_filter_spec_t spec = {cfg->filter_defaults, cfg->filter_rules,
                            cfg->filter_nrules, cfg->filter_values,
                            cfg->filter_nvalues};
  ctr_filter_t *f;

  if (ctr_filter_compile(&f, &spec, NULL, 0) != 0)
    ctr_oom(0);
  ctr_filter_free(cfg->filter);
  cfg->filter = f;
}

void ctr_config_defaults(ctr_config_t *cfg) {
  char msg[128];
  memset(cfg, 0, sizeof(*cfg));
  /* The defaults are constants checked by the unit tests. Lists start
   * empty. */
  for (size_t i = 0; i < N_OPTS; i++) {
    if (opts[i].type != OPT_LIST)
      (void)opt_apply(&opts[i], cfg, opts[i].def, strlen(opts[i].def), msg,
                      sizeof(msg));
  }
  config_compile_filter(cfg);
}

/* Makes dst an independent copy of src, with its own strings and lists.
 * The filter is not copied: whoever changes dst compiles a new one. */
static void config_copy(ctr_config_t *dst, const ctr_config_t *src) {
  *dst = *src;
  dst->filter = NULL;
  dst->filter_rules = NULL, dst->filter_nrules = 0;
  dst->filter_values = NULL, dst->filter_nvalues = 0;
  dst->record_windows = NULL, dst->record_nwindows = 0;
  dst->record_while_in = NULL, dst->record_nwhile_in = 0;
  for (size_t i = 0; i < N_OPTS; i++) {
    if (opts[i].type == OPT_PATH)
      *(char **)opt_field(&opts[i], dst) = NULL;
  }
  for (size_t i = 0; i < N_OPTS; i++) {
    const char *s;
    char **d;
    if (opts[i].type == OPT_LIST) {
      opts[i].list->copy(dst, src);
      continue;
    }
    if (opts[i].type != OPT_PATH)
      continue;
    s = *(char **)opt_field(&opts[i], src);
    d = opt_field(&opts[i], dst);
    *d = s ? ctr_xstrdup(s) : NULL;
  }
}

static int load_text(ctr_config_t *cfg, const char *path,
                     const unsigned char *buf, size_t len, char *err,
                     size_t errlen);

/* A list is given as YAML (a flow sequence on one line): it goes through
 * the loader, as the same list in a file would, and replaces the list. */
static int set_list(ctr_config_t *cfg, const struct opt *o, const char *value,
                    const char *origin, char *err, size_t errlen) {
  size_t section = opt_section_len(o);
  size_t cap = strlen(o->name) + strlen(value) + 16;
  char *doc = malloc(cap);
  int rc;

  if (doc == NULL) {
    snprintf(err, errlen, "out of memory");
    return CTR_ENOMEM;
  }
  snprintf(doc, cap, "%.*s:\n  %s: %s\n", (int)section, o->name,
           o->name + section + 1, value);
  rc = load_text(cfg, origin ? origin : "--set", (const unsigned char *)doc,
                 strlen(doc), err, errlen);
  free(doc);
  return rc;
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
  if (opts[i].type == OPT_LIST)
    return set_list(cfg, &opts[i], value, origin, err, errlen);
  if (opts[i].offset == OFF(filter_defaults)) {
    rc = opt_apply(&opts[i], cfg, value, strlen(value), msg, sizeof(msg));
    if (rc == 0)
      config_compile_filter(cfg);
  } else {
    rc = opt_apply(&opts[i], cfg, value, strlen(value), msg, sizeof(msg));
  }
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
    ctr_oom(0);
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

/* One key of a list entry's mapping and its scalar value, copied so that
 * it outlives the event. */
struct field {
  const char *key;
  bool seen;
  yaml_mark_t mark; /* of the value */
  char *value;      /* NULL for a null value */
  size_t len;
};

static void fields_free(struct field *f, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(f[i].value);
    f[i].value = NULL;
  }
}

/* Reads the mapping that starts at the current event into f. Keys not in
 * f, repeated keys and values that are not scalars are errors. */
static int load_fields(struct loader *ld, const char *where, struct field *f,
                       size_t n) {
  const yaml_event_t *ev = &ld->ev;
  yaml_mark_t first[8];
  int rc;

  if (ev->type != YAML_MAPPING_START_EVENT)
    return load_fail(ld, ev->start_mark, where, "expected a mapping");
  for (;;) {
    char ex[48];
    size_t i;

    if ((rc = load_next(ld)) != 0)
      return rc;
    if (ev->type == YAML_MAPPING_END_EVENT)
      return 0;
    if (ev->type != YAML_SCALAR_EVENT)
      return load_fail(ld, ev->start_mark, where, "keys must be scalars");
    for (i = 0; i < n; i++) {
      if (strlen(f[i].key) == ev->data.scalar.length &&
          memcmp(f[i].key, ev->data.scalar.value, ev->data.scalar.length) == 0)
        break;
    }
    if (i == n)
      return load_fail(ld, ev->start_mark, NULL, "%s.%s: unknown key", where,
                       excerpt(ex, sizeof(ex),
                               (const char *)ev->data.scalar.value,
                               ev->data.scalar.length));
    if (f[i].seen)
      return load_fail(ld, ev->start_mark, NULL,
                       "%s.%s: duplicate key (first at %zu:%zu)", where,
                       f[i].key, first[i].line + 1, first[i].column + 1);
    f[i].seen = true;
    first[i] = ev->start_mark;
    if ((rc = load_next(ld)) != 0)
      return rc;
    if (ev->type != YAML_SCALAR_EVENT)
      return load_fail(ld, ev->start_mark, NULL, "%s.%s: expected a scalar",
                       where, f[i].key);
    f[i].mark = ev->start_mark;
    if (ev_is_null(ev))
      continue;
    f[i].len = ev->data.scalar.length;
    f[i].value = ctr_xstrndup((const char *)ev->data.scalar.value, f[i].len);
  }
}

/* Fails unless a field that is present has a non-empty value without NUL
 * bytes. */
static int field_check_text(struct loader *ld, const char *where,
                            const struct field *f) {
  if (!f->seen)
    return 0;
  if (!f->value || f->len == 0)
    return load_fail(ld, f->mark, NULL, "%s.%s: must not be empty", where,
                     f->key);
  if (memchr(f->value, '\0', f->len))
    return load_fail(ld, f->mark, NULL, "%s.%s: must not contain a NUL byte",
                     where, f->key);
  return 0;
}

/* Checks a selector pattern; the message quotes it, made printable. */
static int field_check_pattern(struct loader *ld, const char *where,
                               const struct field *f, int kind) {
  char msg[512];
  int rc = field_check_text(ld, where, f);

  if (rc != 0 || !f->seen)
    return rc;
  rc = ctr_filter_pattern_check(kind, f->value, msg, sizeof(msg));
  if (rc == 0)
    return 0;
  for (char *c = msg; *c; c++) {
    if ((unsigned char)*c < 0x20 || *c == 0x7f)
      *c = '?';
  }
  return load_fail(ld, f->mark, NULL, "%s.%s: %s", where, f->key, msg);
}

/* Parses a present field as one of names; *out is its index. */
static int field_enum(struct loader *ld, const char *where,
                      const struct field *f, const char *const *names,
                      int *out) {
  struct opt o = {.type = OPT_ENUM, .names = names};
  ctr_config_t scratch;
  char msg[256];

  if (!f->value || f->len == 0)
    return load_fail(ld, f->mark, NULL, "%s.%s: must not be empty", where,
                     f->key);
  o.offset = OFF(log_level);
  if (opt_apply(&o, &scratch, f->value, f->len, msg, sizeof(msg)) != 0)
    return load_fail(ld, f->mark, NULL, "%s.%s: %s", where, f->key, msg);
  *out = scratch.log_level;
  return 0;
}

/* Reads a sequence (or a null, an empty one), calling item for each entry
 * with the entry's first event current. */
static int load_seq(struct loader *ld, const char *name,
                    int (*item)(struct loader *ld, const char *where,
                                void *ctx),
                    void *ctx) {
  const yaml_event_t *ev = &ld->ev;
  int rc = load_next(ld);

  if (rc != 0)
    return rc;
  if (ev_is_null(ev))
    return 0;
  if (ev->type != YAML_SEQUENCE_START_EVENT)
    return load_fail(ld, ev->start_mark, name, "expected a sequence");
  for (size_t i = 0;; i++) {
    char where[96];
    if ((rc = load_next(ld)) != 0)
      return rc;
    if (ev->type == YAML_SEQUENCE_END_EVENT)
      return 0;
    snprintf(where, sizeof(where), "%s[%zu]", name, i);
    if ((rc = item(ld, where, ctx)) != 0)
      return rc;
  }
}

/* Makes room for one more element in a growing array. */
static void *grow(void *items, size_t n, size_t size) {
  if ((n & (n - 1)) != 0 && n != 0)
    return items;
  return ctr_xrealloc(items, (n ? 2 * n : 1) * size);
}

static const char *const rule_action_names[] = {"record", "skip", "skip-tree",
                                                NULL};
static const char *const value_action_names[] = {"redact", "drop", NULL};
static const char *const where_names[] = {"locals", "args", "return", "all",
                                          NULL};

static void rule_clear(ctr_filter_rule_t *r) {
  free((char *)r->file);
  free((char *)r->module);
  free((char *)r->function);
}

static void value_rule_clear(ctr_filter_value_rule_t *r) {
  free((char *)r->name);
  free((char *)r->file);
  free((char *)r->module);
  free((char *)r->function);
}

struct rules_ctx {
  ctr_filter_rule_t *items;
  size_t n;
};

static int load_rule(struct loader *ld, const char *where, void *ctx) {
  struct rules_ctx *c = ctx;
  struct field f[] = {{.key = "file"},
                      {.key = "module"},
                      {.key = "function"},
                      {.key = "action"}};
  yaml_mark_t start = ld->ev.start_mark;
  ctr_filter_rule_t *items, *r;
  int rc, action = 0;

  if ((rc = load_fields(ld, where, f, 4)) != 0)
    goto out;
  for (int k = 0; k < 3 && rc == 0; k++)
    rc = field_check_pattern(ld, where, &f[k], k);
  if (rc != 0)
    goto out;
  if (!f[0].seen && !f[1].seen && !f[2].seen) {
    rc = load_fail(ld, start, where,
                   "needs at least one of file, module, function");
    goto out;
  }
  if (!f[3].seen) {
    rc = load_fail(ld, start, where, "missing action");
    goto out;
  }
  if ((rc = field_enum(ld, where, &f[3], rule_action_names, &action)) != 0)
    goto out;
  items = grow(c->items, c->n, sizeof(*items));
  c->items = items;
  r = &items[c->n++];
  *r = (ctr_filter_rule_t){f[0].value, f[1].value, f[2].value, action};
  f[0].value = f[1].value = f[2].value = NULL;
out:
  fields_free(f, 4);
  return rc;
}

static int rules_load(struct loader *ld, const char *name) {
  struct rules_ctx c = {NULL, 0};
  int rc = load_seq(ld, name, load_rule, &c);

  if (rc == 0) {
    rules_ops.clear(ld->cfg);
    ld->cfg->filter_rules = c.items;
    ld->cfg->filter_nrules = c.n;
    return 0;
  }
  for (size_t i = 0; i < c.n; i++)
    rule_clear(&c.items[i]);
  free(c.items);
  return rc;
}

/* Copies an optional string. */
static const char *dup_opt(const char *src) {
  return src ? ctr_xstrdup(src) : NULL;
}

static void rules_copy(ctr_config_t *dst, const ctr_config_t *src) {
  size_t n = src->filter_nrules;
  if (n == 0)
    return;
  dst->filter_rules = ctr_xcalloc(n, sizeof(*dst->filter_rules));
  for (size_t i = 0; i < n; i++) {
    const ctr_filter_rule_t *s = &src->filter_rules[i];
    ctr_filter_rule_t *d = &dst->filter_rules[i];
    dst->filter_nrules = i + 1;
    d->action = s->action;
    d->file = dup_opt(s->file);
    d->module = dup_opt(s->module);
    d->function = dup_opt(s->function);
  }
}

static void rules_clear(ctr_config_t *cfg) {
  for (size_t i = 0; i < cfg->filter_nrules; i++)
    rule_clear(&cfg->filter_rules[i]);
  free(cfg->filter_rules);
  cfg->filter_rules = NULL;
  cfg->filter_nrules = 0;
}

/* The built-in rules are shown as comments: they are not part of the
 * configuration, and the printed file keeps following the defaults of the
 * daemon that loads it. */
static void rules_print(const ctr_config_t *cfg, FILE *out) {
  size_t nb;
  const ctr_filter_rule_t *b = ctr_filter_builtins(&nb);

  if (cfg->filter_defaults) {
    fputs("  # Built-in rules in force before these (filter.defaults):\n", out);
    for (size_t i = 0; i < nb; i++) {
      fputs("  #   - ", out);
      ctr_filter_print_rule(&b[i], out);
      fputc('\n', out);
    }
  }
  fprintf(out, "  rules:%s", cfg->filter_nrules ? "" : " []");
  for (size_t i = 0; i < cfg->filter_nrules; i++) {
    fputs("\n    - ", out);
    ctr_filter_print_rule(&cfg->filter_rules[i], out);
  }
}

struct values_ctx {
  ctr_filter_value_rule_t *items;
  size_t n;
};

static int load_value_rule(struct loader *ld, const char *where, void *ctx) {
  static const int where_bits[] = {CTR_FILTER_LOCALS, CTR_FILTER_ARGS,
                                   CTR_FILTER_RETURN, CTR_FILTER_ALL};
  struct values_ctx *c = ctx;
  struct field f[] = {{.key = "file"}, {.key = "module"}, {.key = "function"},
                      {.key = "name"}, {.key = "in"},     {.key = "action"}};
  yaml_mark_t start = ld->ev.start_mark;
  ctr_filter_value_rule_t *items;
  int rc, action = 0, in = 3;

  if ((rc = load_fields(ld, where, f, 6)) != 0)
    goto out;
  for (int k = 0; k < 4 && rc == 0; k++)
    rc = field_check_pattern(ld, where, &f[k], k);
  if (rc != 0)
    goto out;
  if (f[4].seen && (rc = field_enum(ld, where, &f[4], where_names, &in)) != 0)
    goto out;
  if (!f[5].seen) {
    rc = load_fail(ld, start, where, "missing action");
    goto out;
  }
  if ((rc = field_enum(ld, where, &f[5], value_action_names, &action)) != 0)
    goto out;
  items = grow(c->items, c->n, sizeof(*items));
  c->items = items;
  items[c->n++] = (ctr_filter_value_rule_t){
      f[3].value, f[0].value,     f[1].value,
      f[2].value, where_bits[in], action + CTR_FILTER_REDACT};
  f[0].value = f[1].value = f[2].value = f[3].value = NULL;
out:
  fields_free(f, 6);
  return rc;
}

static int values_load(struct loader *ld, const char *name) {
  struct values_ctx c = {NULL, 0};
  int rc = load_seq(ld, name, load_value_rule, &c);

  if (rc == 0) {
    values_ops.clear(ld->cfg);
    ld->cfg->filter_values = c.items;
    ld->cfg->filter_nvalues = c.n;
    return 0;
  }
  for (size_t i = 0; i < c.n; i++)
    value_rule_clear(&c.items[i]);
  free(c.items);
  return rc;
}

static void values_copy(ctr_config_t *dst, const ctr_config_t *src) {
  size_t n = src->filter_nvalues;
  if (n == 0)
    return;
  dst->filter_values = ctr_xcalloc(n, sizeof(*dst->filter_values));
  for (size_t i = 0; i < n; i++) {
    const ctr_filter_value_rule_t *s = &src->filter_values[i];
    ctr_filter_value_rule_t *d = &dst->filter_values[i];
    dst->filter_nvalues = i + 1;
    d->where = s->where;
    d->action = s->action;
    d->name = dup_opt(s->name);
    d->file = dup_opt(s->file);
    d->module = dup_opt(s->module);
    d->function = dup_opt(s->function);
  }
}

static void values_clear(ctr_config_t *cfg) {
  for (size_t i = 0; i < cfg->filter_nvalues; i++)
    value_rule_clear(&cfg->filter_values[i]);
  free(cfg->filter_values);
  cfg->filter_values = NULL;
  cfg->filter_nvalues = 0;
}

static void values_print(const ctr_config_t *cfg, FILE *out) {
  fprintf(out, "  values:%s", cfg->filter_nvalues ? "" : " []");
  for (size_t i = 0; i < cfg->filter_nvalues; i++) {
    fputs("\n    - ", out);
    ctr_filter_print_value_rule(&cfg->filter_values[i], out);
  }
}

/* Reads n decimal digits. */
static bool time_digits(const char **p, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if ((*p)[i] < '0' || (*p)[i] > '9')
      return false;
    v = v * 10 + ((*p)[i] - '0');
  }
  *p += n;
  *out = v;
  return true;
}

int ctr_config_parse_time(const char *text, int64_t *ms) {
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const char *p = text;
  struct tm tm = {0};
  int y, mo, d, h, mi, s = 0, frac = 0, off = 0, oh, om;
  bool local = true, leap;
  time_t t;

  if (!time_digits(&p, 4, &y) || *p++ != '-' || !time_digits(&p, 2, &mo) ||
      *p++ != '-' || !time_digits(&p, 2, &d) || (*p != 'T' && *p != ' ') ||
      !(p++, time_digits(&p, 2, &h)) || *p++ != ':' || !time_digits(&p, 2, &mi))
    return CTR_ECONFIG;
  if (*p == ':') {
    p++;
    if (!time_digits(&p, 2, &s))
      return CTR_ECONFIG;
    if (*p == '.' || *p == ',') {
      int scale = 100, digit;
      p++;
      if (*p < '0' || *p > '9')
        return CTR_ECONFIG;
      /* Digits past milliseconds are read and ignored. */
      while (time_digits(&p, 1, &digit)) {
        frac += digit * scale;
        scale /= 10;
      }
    }
  }
  if (*p == 'Z') {
    p++, local = false;
  } else if (*p == '+' || *p == '-') {
    int sign = *p++ == '-' ? -1 : 1;
    if (!time_digits(&p, 2, &oh))
      return CTR_ECONFIG;
    if (*p == ':')
      p++;
    if (!time_digits(&p, 2, &om) || oh > 23 || om > 59)
      return CTR_ECONFIG;
    off = sign * (oh * 60 + om) * 60;
    local = false;
  }
  leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (*p != '\0' || y < 1970 || mo < 1 || mo > 12 || d < 1 ||
      d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 || mi > 59 || s > 59)
    return CTR_ECONFIG;
  tm.tm_year = y - 1900, tm.tm_mon = mo - 1, tm.tm_mday = d;
  tm.tm_hour = h, tm.tm_min = mi, tm.tm_sec = s;
  tm.tm_isdst = -1;
  t = local ? mktime(&tm) : timegm(&tm);
  if (t == (time_t)-1)
    return CTR_ECONFIG;
  *ms = ((int64_t)t - off) * 1000 + frac;
  return 0;
}

struct windows_ctx {
  ctr_record_window_t *items;
  size_t n;
};

static int field_duration(struct loader *ld, const char *where,
                          const struct field *f, uint64_t *out) {
  char ex[48];
  bool too_big;

  if (!f->value || f->len == 0)
    return load_fail(ld, f->mark, NULL, "%s.%s: must not be empty", where,
                     f->key);
  if (!parse_duration(f->value, f->len, out, &too_big))
    return load_fail(ld, f->mark, NULL,
                     "%s.%s: expected a duration such as 500ms, 10s, 5m or "
                     "1h, got \"%s\"",
                     where, f->key, excerpt(ex, sizeof(ex), f->value, f->len));
  if (too_big)
    return load_fail(ld, f->mark, NULL, "%s.%s: is too large", where, f->key);
  return 0;
}

static int field_time(struct loader *ld, const char *where,
                      const struct field *f, int64_t *out) {
  char ex[48];
  int rc = field_check_text(ld, where, f);
  if (rc != 0)
    return rc;
  if (ctr_config_parse_time(f->value, out) != 0)
    return load_fail(ld, f->mark, NULL,
                     "%s.%s: expected an ISO-8601 time such as "
                     "2025-01-31T12:00:00Z, got \"%s\"",
                     where, f->key, excerpt(ex, sizeof(ex), f->value, f->len));
  return 0;
}

static int load_window(struct loader *ld, const char *where, void *ctx) {
  struct windows_ctx *c = ctx;
  struct field f[] = {
      {.key = "after"}, {.key = "for"}, {.key = "at"}, {.key = "until"}};
  yaml_mark_t start = ld->ev.start_mark;
  ctr_record_window_t w = {0}, *items;
  int rc;

  if ((rc = load_fields(ld, where, f, 4)) != 0)
    goto out;
  w.absolute = f[2].seen || f[3].seen;
  if (w.absolute && (f[0].seen || f[1].seen)) {
    rc = load_fail(ld, start, where, "cannot mix after/for with at/until");
    goto out;
  }
  if (!w.absolute && !f[0].seen && !f[1].seen) {
    rc = load_fail(ld, start, where, "needs after/for or at/until");
    goto out;
  }
  if (f[0].seen && (rc = field_duration(ld, where, &f[0], &w.after_ms)) != 0)
    goto out;
  if ((w.has_for = f[1].seen)) {
    if ((rc = field_duration(ld, where, &f[1], &w.for_ms)) != 0)
      goto out;
    if (w.for_ms == 0) {
      rc = load_fail(ld, f[1].mark, NULL, "%s.for: must be greater than 0",
                     where);
      goto out;
    }
  }
  if ((w.has_at = f[2].seen) &&
      (rc = field_time(ld, where, &f[2], &w.at_ms)) != 0)
    goto out;
  if ((w.has_until = f[3].seen) &&
      (rc = field_time(ld, where, &f[3], &w.until_ms)) != 0)
    goto out;
  if (w.has_at && w.has_until && w.until_ms <= w.at_ms) {
    rc = load_fail(ld, f[3].mark, NULL, "%s.until: must be after at (%zu:%zu)",
                   where, f[2].mark.line + 1, f[2].mark.column + 1);
    goto out;
  }
  items = grow(c->items, c->n, sizeof(*items));
  c->items = items;
  items[c->n++] = w;
out:
  fields_free(f, 4);
  return rc;
}

static int windows_load(struct loader *ld, const char *name) {
  struct windows_ctx c = {NULL, 0};
  int rc = load_seq(ld, name, load_window, &c);

  if (rc != 0) {
    free(c.items);
    return rc;
  }
  windows_ops.clear(ld->cfg);
  ld->cfg->record_windows = c.items;
  ld->cfg->record_nwindows = c.n;
  return 0;
}

static void windows_copy(ctr_config_t *dst, const ctr_config_t *src) {
  size_t n = src->record_nwindows;
  if (n == 0)
    return;
  dst->record_windows = ctr_xmalloc(n * sizeof(*dst->record_windows));
  memcpy(dst->record_windows, src->record_windows,
         n * sizeof(*dst->record_windows));
  dst->record_nwindows = n;
}

static void windows_clear(ctr_config_t *cfg) {
  free(cfg->record_windows);
  cfg->record_windows = NULL;
  cfg->record_nwindows = 0;
}

/* Writes a duration in the largest unit that keeps it exact. */
static void print_duration(FILE *out, uint64_t ms) {
  if (ms == 0)
    fputs("0", out);
  else if (ms % 86400000 == 0)
    fprintf(out, "%llud", (unsigned long long)(ms / 86400000));
  else if (ms % 3600000 == 0)
    fprintf(out, "%lluh", (unsigned long long)(ms / 3600000));
  else if (ms % 60000 == 0)
    fprintf(out, "%llum", (unsigned long long)(ms / 60000));
  else if (ms % 1000 == 0)
    fprintf(out, "%llus", (unsigned long long)(ms / 1000));
  else
    fprintf(out, "%llums", (unsigned long long)ms);
}

static void print_size(FILE *out, uint64_t bytes) {
  static const char suffixes[] = "TGMk";
  for (int i = 0; i < 4 && bytes; i++) {
    unsigned shift = 40 - 10 * (unsigned)i;
    if (bytes % (1ull << shift) == 0) {
      fprintf(out, "%llu%c", (unsigned long long)(bytes >> shift), suffixes[i]);
      return;
    }
  }
  fprintf(out, "%llu", (unsigned long long)bytes);
}

/* Writes a Unix time in milliseconds as ISO-8601 UTC. */
static void print_time(FILE *out, int64_t ms) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  char buf[64];

  gmtime_r(&t, &tm);
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  if (ms % 1000)
    fprintf(out, "\"%s.%03dZ\"", buf, (int)(ms % 1000));
  else
    fprintf(out, "\"%sZ\"", buf);
}

static void windows_print(const ctr_config_t *cfg, FILE *out) {
  fprintf(out, "  windows:%s", cfg->record_nwindows ? "" : " []");
  for (size_t i = 0; i < cfg->record_nwindows; i++) {
    const ctr_record_window_t *w = &cfg->record_windows[i];
    const char *sep = "";
    fputs("\n    - {", out);
    if (!w->absolute) {
      fputs("after: ", out);
      print_duration(out, w->after_ms);
      sep = ", ";
    }
    if (w->has_for) {
      fprintf(out, "%sfor: ", sep);
      print_duration(out, w->for_ms);
    }
    if (w->has_at) {
      fputs("at: ", out);
      print_time(out, w->at_ms);
      sep = ", ";
    }
    if (w->has_until) {
      fprintf(out, "%suntil: ", sep);
      print_time(out, w->until_ms);
    }
    fputc('}', out);
  }
}

struct while_in_ctx {
  char **items;
  size_t n;
};

static int load_while_in(struct loader *ld, const char *where, void *ctx) {
  struct while_in_ctx *c = ctx;
  const yaml_event_t *ev = &ld->ev;
  char msg[512], **items;

  if (ev->type != YAML_SCALAR_EVENT)
    return load_fail(ld, ev->start_mark, where, "expected a scalar");
  if (ev_is_null(ev) || ev->data.scalar.length == 0)
    return load_fail(ld, ev->start_mark, where, "must not be empty");
  if (memchr(ev->data.scalar.value, '\0', ev->data.scalar.length))
    return load_fail(ld, ev->start_mark, where, "must not contain a NUL byte");
  if (ctr_filter_pattern_check(CTR_FILTER_FUNCTION,
                               (const char *)ev->data.scalar.value, msg,
                               sizeof(msg)) != 0) {
    for (char *p = msg; *p; p++) {
      if ((unsigned char)*p < 0x20 || *p == 0x7f)
        *p = '?';
    }
    return load_fail(ld, ev->start_mark, where, "%s", msg);
  }
  c->items = items = grow(c->items, c->n, sizeof(*items));
  items[c->n++] = ctr_xstrdup((const char *)ev->data.scalar.value);
  return 0;
}

static int while_in_load(struct loader *ld, const char *name) {
  struct while_in_ctx c = {NULL, 0};
  int rc = load_seq(ld, name, load_while_in, &c);

  if (rc != 0) {
    for (size_t i = 0; i < c.n; i++)
      free(c.items[i]);
    free(c.items);
    return rc;
  }
  while_in_ops.clear(ld->cfg);
  ld->cfg->record_while_in = c.items;
  ld->cfg->record_nwhile_in = c.n;
  return 0;
}

static void while_in_copy(ctr_config_t *dst, const ctr_config_t *src) {
  size_t n = src->record_nwhile_in;
  if (n == 0)
    return;
  dst->record_while_in = ctr_xcalloc(n, sizeof(char *));
  for (size_t i = 0; i < n; i++)
    dst->record_while_in[i] = ctr_xstrdup(src->record_while_in[i]);
  dst->record_nwhile_in = n;
}

static void while_in_clear(ctr_config_t *cfg) {
  for (size_t i = 0; i < cfg->record_nwhile_in; i++)
    free(cfg->record_while_in[i]);
  free(cfg->record_while_in);
  cfg->record_while_in = NULL;
  cfg->record_nwhile_in = 0;
}

static void print_quoted(FILE *out, const char *str);

static void while_in_print(const ctr_config_t *cfg, FILE *out) {
  fprintf(out, "  while_in:%s", cfg->record_nwhile_in ? "" : " []");
  for (size_t i = 0; i < cfg->record_nwhile_in; i++) {
    fputs("\n    - ", out);
    print_quoted(out, cfg->record_while_in[i]);
  }
}

static const struct list_ops rules_ops = {rules_load, rules_copy, rules_clear,
                                          rules_print};
static const struct list_ops values_ops = {values_load, values_copy,
                                           values_clear, values_print};
static const struct list_ops windows_ops = {windows_load, windows_copy,
                                            windows_clear, windows_print};
static const struct list_ops while_in_ops = {while_in_load, while_in_copy,
                                             while_in_clear, while_in_print};

static int load_option(struct loader *ld, int i) {
  char msg[256];
  const yaml_event_t *ev = &ld->ev;
  int rc;

  if (opts[i].type == OPT_LIST)
    return opts[i].list->load(ld, opts[i].name);
  if ((rc = load_next(ld)) != 0)
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
  buf = ctr_xmalloc(CONFIG_MAX_FILE + 1);
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

/* Loads the YAML text buf over cfg; path names it in messages. */
static int load_text(ctr_config_t *cfg, const char *path,
                     const unsigned char *buf, size_t len, char *err,
                     size_t errlen) {
  ctr_config_t tmp;
  struct loader ld;
  int rc;

  config_copy(&tmp, cfg);
  memset(&ld, 0, sizeof(ld));
  ld.path = path;
  ld.buf = buf;
  ld.len = len;
  ld.cfg = &tmp;
  ld.err = err;
  ld.errlen = errlen;
  if (!yaml_parser_initialize(&ld.parser))
    ctr_oom(0);
  yaml_parser_set_input_string(&ld.parser, buf, len);
  rc = load_stream(&ld);
  if (ld.have_ev)
    yaml_event_delete(&ld.ev);
  yaml_parser_delete(&ld.parser);
  if (rc == 0)
    config_compile_filter(&tmp);
  if (rc != 0) {
    ctr_config_free(&tmp);
    return rc;
  }
  ctr_config_free(cfg);
  *cfg = tmp;
  return 0;
}

int ctr_config_load(ctr_config_t *cfg, const char *path, char *err,
                    size_t errlen) {
  char msg[256];
  unsigned char *buf;
  size_t len;
  int rc;

  if (!err || errlen == 0)
    err = msg, errlen = sizeof(msg);
  if ((rc = read_file(path, &buf, &len, err, errlen)) != 0)
    return rc;
  rc = load_text(cfg, path, buf, len, err, errlen);
  free(buf);
  return rc;
}

/* A snapshot is a configuration with a reference count in front of it. */
struct snapshot {
  unsigned refs;
  ctr_config_t cfg;
};

int ctr_config_snapshot(const ctr_config_t **out, const char *path,
                        const ctr_config_override_t *sets, size_t nsets,
                        char *err, size_t errlen) {
  struct snapshot *snap = ctr_xcalloc(1, sizeof(*snap));
  int rc = 0;

  ctr_config_defaults(&snap->cfg);
  if (path)
    rc = ctr_config_load(&snap->cfg, path, err, errlen);
  for (size_t i = 0; rc == 0 && i < nsets; i++)
    rc = ctr_config_set(&snap->cfg, sets[i].name, sets[i].value,
                        sets[i].origin, err, errlen);
  if (rc != 0) {
    ctr_config_free(&snap->cfg);
    free(snap);
    return rc;
  }
  snap->refs = 1;
  *out = &snap->cfg;
  return 0;
}

static struct snapshot *snapshot_of(const ctr_config_t *cfg) {
  return (struct snapshot *)((char *)cfg - offsetof(struct snapshot, cfg));
}

const ctr_config_t *ctr_config_ref(const ctr_config_t *cfg) {
  if (cfg)
    snapshot_of(cfg)->refs++;
  return cfg;
}

void ctr_config_unref(const ctr_config_t *cfg) {
  struct snapshot *snap;

  if (!cfg)
    return;
  snap = snapshot_of(cfg);
  if (--snap->refs == 0) {
    ctr_config_free(&snap->cfg);
    free(snap);
  }
}

/* Only the types of options that need a restart are compared. */
static bool opt_same(const struct opt *o, const ctr_config_t *a,
                     const ctr_config_t *b) {
  const void *x = opt_field(o, a), *y = opt_field(o, b);

  switch (o->type) {
  case OPT_PATH:
    return strcmp(*(char *const *)x, *(char *const *)y) == 0;
  case OPT_UINT:
  case OPT_MODE:
    return *(const uint32_t *)x == *(const uint32_t *)y;
  default:
    abort();
  }
}

const char *ctr_config_restart_key(const ctr_config_t *old,
                                   const ctr_config_t *new) {
  for (size_t i = 0; i < N_OPTS; i++) {
    if (opt_needs_restart(&opts[i]) && !opt_same(&opts[i], old, new))
      return opts[i].name;
  }
  return NULL;
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
    fprintf(out, "  # %s%s", o->help,
            opt_needs_restart(o) ? " Changing it needs a restart." : "");
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
    case OPT_BOOL:
      fprintf(out, "\n  %s: %s", o->name + seclen + 1,
              *(const bool *)field ? "true" : "false");
      break;
    case OPT_DURATION:
      fprintf(out, "\n  %s: ", o->name + seclen + 1);
      print_duration(out, *(const uint64_t *)field);
      break;
    case OPT_SIZE:
      fprintf(out, "\n  %s: ", o->name + seclen + 1);
      print_size(out, *(const uint64_t *)field);
      break;
    case OPT_COUNT:
      fprintf(out, "\n  %s: %llu", o->name + seclen + 1,
              (unsigned long long)*(const uint64_t *)field);
      break;
    case OPT_LIST:
      fputc('\n', out);
      o->list->print(cfg, out);
      break;
    }
    fputc('\n', out);
  }
}

const char *ctr_log_level_name(int level) {
  if (level < CTR_LOG_ERROR || level > CTR_LOG_DEBUG)
    return "unknown";
  return log_level_names[level];
}
