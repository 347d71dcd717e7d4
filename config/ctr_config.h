/* ctr_config.h: ctrec.yaml, loaded with libyaml and driven by one option table.
 *
 * The table (ctr_config.c) names every option with its type, offset, default,
 * bounds and help. It drives defaults, parsing, validation and printing. */
#ifndef CTR_CONFIG_H
#define CTR_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ctr_filter.h"

enum ctr_log_level {
  CTR_LOG_ERROR = 0,
  CTR_LOG_WARN = 1,
  CTR_LOG_INFO = 2,
  CTR_LOG_DEBUG = 3
};

enum ctr_float_format { CTR_FLOAT_STRING = 0, CTR_FLOAT_NUMBER = 1 };

enum ctr_output_format { CTR_FORMAT_JSON = 0, CTR_FORMAT_CTFS = 1 };

enum ctr_record_start { CTR_RECORD_RECORDING = 0, CTR_RECORD_PAUSED = 1 };

/* record.values: which values the shims capture at all. */
enum ctr_record_values {
  CTR_VALUES_ALL = 0,  /* arguments, locals and return values */
  CTR_VALUES_ARGS = 1, /* arguments only */
  CTR_VALUES_NONE = 2  /* calls and lines without values */
};

/* One entry of record.windows. A relative window opens after_ms after the
 * process started and stays open for_ms (for ever without has_for). An
 * absolute one is open from at_ms to until_ms, Unix times in milliseconds,
 * each unbounded when not given. */
typedef struct ctr_record_window_s {
  bool absolute;
  bool has_for, has_at, has_until;
  uint64_t after_ms, for_ms;
  int64_t at_ms, until_ms;
} ctr_record_window_t;

typedef struct ctr_config_s {
  /* listen: */
  char *listen_path;       /* listen.path, default "/run/ctrec/ctrecd.sock" */
  uint32_t listen_mode;    /* listen.mode, octal, default 0660 */
  char *listen_fifo_dir;   /* listen.fifo_dir, "" for none (PROTOCOL.md 1.1) */
  uint32_t output_mode;    /* output.mode, octal, default 0600 */
  /* output: */
  char *output_dir;        /* output.dir, default "/var/lib/ctrec/traces" */
  uint32_t flush_interval_ms; /* output.flush_interval_ms, default 100, 10..60000 */
  int float_format;        /* output.float_format: "string" | "number" */
  int output_format;       /* output.format: "json" | "ctfs" */
  uint64_t output_max_age_ms;     /* output.max_age, 0: no limit */
  uint64_t output_max_total_size; /* output.max_total_size, 0: no limit */
  /* limits: */
  uint32_t max_frame;      /* limits.max_frame, bytes, default 16 MiB */
  uint32_t max_depth;      /* limits.max_depth, default 64 */
  uint32_t max_string;     /* limits.max_string, bytes, default 4 MiB */
  uint32_t max_elements;   /* limits.max_elements, default 1048576 */
  uint32_t max_ids;        /* limits.max_ids, per kind per session, default 4194304 */
  uint32_t max_source;     /* limits.max_source, bytes of one source file, default 16 MiB */
  uint32_t max_sessions;   /* limits.max_sessions, default 1024 */
  uint32_t max_threads;    /* limits.max_threads, per session, default 4096 */
  uint32_t max_buffered;   /* limits.max_buffered: partial frames, all clients */
  uint32_t handshake_ms;   /* limits.handshake_timeout_ms, default 5000 */
  uint32_t client_wait_ms; /* limits.client_wait_ms, default 1000 */
  uint32_t client_buffer;  /* limits.client_buffer, bytes, default 16 MiB */
  uint32_t value_depth;    /* limits.value_depth: nesting the shims capture, default 3 */
  uint32_t value_length;   /* limits.value_length: elements per container, default 32 */
  uint32_t value_string;   /* limits.value_string: bytes per string, default 1000 */
  uint32_t value_budget;   /* limits.value_budget: values per step, 0 = no bound */
  uint32_t value_refs;     /* limits.value_refs: definitions kept per session */
  /* filter: */
  bool filter_defaults;     /* filter.defaults: built-in rules, default true */
  ctr_filter_rule_t *filter_rules; /* filter.rules, owned copies */
  size_t filter_nrules;
  ctr_filter_value_rule_t *filter_values; /* filter.values, owned copies */
  size_t filter_nvalues;
  /* The three above, compiled. Rebuilt by every load and set, never NULL
   * unless memory ran out; take a reference to keep it past a reload. */
  ctr_filter_t *filter;
  bool filter_pushdown; /* filter.pushdown: shims skip filtered code, default true */
  /* record: */
  int record_start;        /* record.start: recording | paused */
  ctr_record_window_t *record_windows; /* record.windows */
  size_t record_nwindows;
  char **record_while_in;  /* record.while_in: function patterns */
  size_t record_nwhile_in;
  uint64_t record_max_duration_ms; /* record.max_duration, 0: no limit */
  uint64_t record_max_events;      /* record.max_events, 0: no limit */
  uint64_t record_max_bytes;       /* record.max_bytes, 0: no limit */
  int record_values;       /* record.values: all | args | none */
  /* log: */
  int log_level;           /* log.level: error | warn | info | debug, default info */
} ctr_config_t;

/* Fills every option with its default. Strings are heap copies. */
void ctr_config_defaults(ctr_config_t *cfg);

/* Loads path over the current values (call ctr_config_defaults first).
 * A list (filter.rules, record.windows, ...) in the file replaces the
 * current list as a whole.
 * Returns 0, or CTR_ECONFIG with a message in err such as
 * "ctrec.yaml:12:5: output.flush_interval_ms: must be between 10 and 60000"
 * (lines and columns are 1-based). On error cfg keeps its earlier values. */
int ctr_config_load(ctr_config_t *cfg, const char *path, char *err,
                    size_t errlen);

/* Sets one option from its dotted name and a text value, as a command line
 * override would ("output.dir", "/tmp/x"). Same validation and messages as
 * the loader, prefixed with origin instead of file:line:col. */
int ctr_config_set(ctr_config_t *cfg, const char *name, const char *value,
                   const char *origin, char *err, size_t errlen);

/* One command line override (--set KEY=VALUE, --listen PATH, ...). */
typedef struct ctr_config_override_s {
  const char *name, *value;
  const char *origin; /* "--set", "--listen", ..., for messages */
} ctr_config_override_t;

/* Builds the configuration ctrecd runs with: the defaults, then the file
 * at path (none when NULL), then the overrides in order. A start,
 * --print-config and every reload build it this way, so a reload gives
 * exactly what a restart with the same file and command line would.
 * *out is an immutable snapshot holding one reference. Returns 0, or
 * CTR_ECONFIG or CTR_ENOMEM with a message in err. */
int ctr_config_snapshot(const ctr_config_t **out, const char *path,
                        const ctr_config_override_t *sets, size_t nsets,
                        char *err, size_t errlen);
const ctr_config_t *ctr_config_ref(const ctr_config_t *cfg);
/* Drops a reference to a snapshot; the last one frees it. */
void ctr_config_unref(const ctr_config_t *cfg);

/* The first option that differs between the snapshots and that only a
 * restart can change (listen.path, listen.mode), or NULL. */
const char *ctr_config_restart_key(const ctr_config_t *old,
                                   const ctr_config_t *new);

/* Prints the effective configuration as YAML that ctr_config_load accepts,
 * with each option's help as a comment. */
void ctr_config_print(const ctr_config_t *cfg, FILE *out);

void ctr_config_free(ctr_config_t *cfg);

const char *ctr_log_level_name(int level);

/* Parses an ISO-8601 time such as "2025-01-31T12:00:00Z" or
 * "2025-01-31 13:00:00.5+01:00" (no zone: local time) into Unix
 * milliseconds. Returns 0 or CTR_ECONFIG. */
int ctr_config_parse_time(const char *text, int64_t *ms);

/* Parses a duration as ctrec.yaml writes one ("0", "500ms", "30s", "10m",
 * "2h", "7d") into milliseconds, and a size ("500", "64k", "20M", "3G",
 * "1T", binary units) into bytes. Return 0 or CTR_ECONFIG. */
int ctr_config_parse_duration(const char *text, uint64_t *ms);
int ctr_config_parse_size(const char *text, uint64_t *bytes);

#endif
