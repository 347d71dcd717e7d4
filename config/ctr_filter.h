/* ctr_filter.h: which code is recorded and which values are kept.
 *
 * A filter is an ordered list of rules, each with up to three selectors
 * (file, module, function) that must all match, and an action. The last
 * matching rule decides; code that no rule matches is recorded. Built-in
 * rules that skip the interpreters' standard libraries and installed
 * packages come first, so any user rule overrides them.
 *
 * A selector's pattern is a glob unless it starts with "re:" (a POSIX
 * extended regex that must match the whole name) or "=" (a literal). In a
 * glob, "*", "?" and "[...]" stay within one component ("/" separates file
 * components; "." and "::" separate module components; functions also
 * split at "#") and "**" crosses components. "**" followed by a separator
 * at the start of a pattern or after a separator also matches nothing, so
 * "**" + "/x.rb" matches "x.rb" as well as "a/b/x.rb". A backslash makes
 * the next character literal.
 *
 * Value rules redact or drop locals, arguments and return values by name.
 * Every matching value rule counts and the strongest action wins (drop,
 * then redact, then keep), so a later rule can never undo an earlier one.
 *
 * A compiled filter is immutable and reference counted, so that a reload
 * can install a new one while live sessions keep the one they started
 * with. The reference count is not atomic: use a filter from one thread,
 * or take the references before sharing it. */
#ifndef CTR_FILTER_H
#define CTR_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* What a selector pattern is matched against. */
enum ctr_filter_kind {
  CTR_FILTER_FILE = 0,     /* source path, "/" separates components */
  CTR_FILTER_MODULE = 1,   /* "json.decoder", "Net::HTTP" */
  CTR_FILTER_FUNCTION = 2, /* "Foo#bar", "Foo.bar", "pkg.mod.Class.meth" */
  CTR_FILTER_NAME = 3      /* a variable name; no separators */
};

/* Result of ctr_filter_decide, and the action of a rule. */
enum ctr_filter_action {
  CTR_FILTER_RECORD = 0,   /* record the code */
  CTR_FILTER_SKIP = 1,     /* leave out this code; recorded callees appear */
  CTR_FILTER_SKIP_TREE = 2 /* leave out this code and everything it calls */
};

/* Result of ctr_filter_value, and the action of a value rule. Ordered by
 * strength: the largest matching action wins. */
enum ctr_filter_value_action {
  CTR_FILTER_KEEP = 0,   /* record the value */
  CTR_FILTER_REDACT = 1, /* keep the name, record "<redacted>" as value */
  CTR_FILTER_DROP = 2    /* leave the variable out entirely */
};

/* Where a value appears; a value rule applies to a set of these. */
enum ctr_filter_where {
  CTR_FILTER_LOCALS = 1,
  CTR_FILTER_ARGS = 2,
  CTR_FILTER_RETURN = 4,
  CTR_FILTER_ALL = 7
};

/* A rule as written. NULL selectors are absent; at least one is set. */
typedef struct ctr_filter_rule_s {
  const char *file, *module, *function;
  int action; /* enum ctr_filter_action */
} ctr_filter_rule_t;

/* A value rule as written. A NULL name matches every value, including
 * return values, which have no name; the scope selectors are optional. */
typedef struct ctr_filter_value_rule_s {
  const char *name;
  const char *file, *module, *function;
  int where;  /* set of enum ctr_filter_where, not 0 */
  int action; /* CTR_FILTER_REDACT or CTR_FILTER_DROP */
} ctr_filter_value_rule_t;

typedef struct ctr_filter_spec_s {
  bool defaults; /* put the built-in rules before the user's */
  const ctr_filter_rule_t *rules;
  size_t nrules;
  const ctr_filter_value_rule_t *values;
  size_t nvalues;
} ctr_filter_spec_t;

typedef struct ctr_filter_s ctr_filter_t;

/* Longest pattern accepted, in bytes. */
#define CTR_FILTER_MAX_PATTERN 1024

/* Checks one pattern of the given kind. Returns 0, or CTR_ECONFIG with a
 * message such as `invalid glob "[a": unterminated [` in msg. */
int ctr_filter_pattern_check(int kind, const char *pattern, char *msg,
                             size_t msglen);

/* Compiles spec into a new filter with one reference; copies everything,
 * so spec may be freed afterwards. Returns 0, CTR_ENOMEM, or CTR_ECONFIG
 * with a message such as `rules[2].file: invalid glob "[a": ...`. */
int ctr_filter_compile(ctr_filter_t **out, const ctr_filter_spec_t *spec,
                       char *err, size_t errlen);

/* Takes another reference and returns f. */
ctr_filter_t *ctr_filter_ref(ctr_filter_t *f);

/* Drops a reference; the last one frees the filter. NULL is ignored. */
void ctr_filter_free(ctr_filter_t *f);

/* Decides what to do with a code unit. NULL arguments are unknown, and a
 * selector on an unknown name does not match. A NULL filter records all. */
int ctr_filter_decide(const ctr_filter_t *f, const char *file,
                      const char *module, const char *function);

/* Decides for code of `file` whose module and function are unknown, as
 * ctr_filter_decide(f, file, NULL, NULL) does, and sets *uniform when no
 * rule naming a module or function can decide otherwise for the file, so
 * that every function of the file gets the same decision (shims then need
 * not name the function). */
int ctr_filter_decide_file(const ctr_filter_t *f, const char *file,
                           bool *uniform);

/* Decides what to do with one value: where is one ctr_filter_where bit,
 * name is NULL for return values. */
int ctr_filter_value(const ctr_filter_t *f, const char *file,
                     const char *module, const char *function, int where,
                     const char *name);

/* The rules in force, built-ins first, as written. Valid while f is. */
const ctr_filter_rule_t *ctr_filter_rules(const ctr_filter_t *f, size_t *n);

/* How many of ctr_filter_rules are built in (0 with defaults off). */
size_t ctr_filter_builtin_count(const ctr_filter_t *f);

/* The user's value rules, as written. Valid while f is. */
const ctr_filter_value_rule_t *ctr_filter_values(const ctr_filter_t *f,
                                                 size_t *n);

/* The built-in rules, whether or not a filter uses them. */
const ctr_filter_rule_t *ctr_filter_builtins(size_t *n);

/* Writes the effective filter as the body of a `filter:` section, every
 * line indented by indent spaces. Built-in rules are listed as ordinary
 * rules under "defaults: false", so the text loads back to a filter that
 * decides exactly the same. */
void ctr_filter_describe(const ctr_filter_t *f, FILE *out, int indent);

/* Writes one rule as a YAML flow mapping, such as
 * {file: "/usr/lib/ruby/...", action: skip}. */
void ctr_filter_print_rule(const ctr_filter_rule_t *r, FILE *out);
void ctr_filter_print_value_rule(const ctr_filter_value_rule_t *r, FILE *out);

/* The module and function names that selectors see for a function
 * declared (FUNC) as `name` with `module`, FUNC's optional module, or NULL.
 * A declared module is the module and prefixes the name (Python:
 * "shop.pay.card" and "Card.charge" give "shop.pay.card.Card.charge");
 * without one the function is the name, and for Ruby the constant path
 * before the last "#" or "." is the module ("Net::HTTP#get": "Net::HTTP").
 * *module_out is NULL when there is no module. Returns 0 or CTR_ENOMEM;
 * the caller frees both strings. Daemon and shims decide with these, so
 * push-down skips exactly what the daemon would. */
int ctr_filter_names(const char *lang, const char *module, const char *name,
                     char **module_out, char **function_out);

/* Names as written in ctrec.yaml: "record", "skip", "skip-tree";
 * "keep", "redact", "drop"; "locals", "args", "return", "all". */
const char *ctr_filter_action_name(int action);
const char *ctr_filter_value_action_name(int action);
const char *ctr_filter_where_name(int where);

#endif
