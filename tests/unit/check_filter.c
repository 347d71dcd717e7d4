/* check_filter.c: selector matching and rule evaluation. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr_error.h"
#include "ctr_filter.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Compiles user rules and value rules, with or without the built-ins. */
static ctr_filter_t *compile(bool defaults, const ctr_filter_rule_t *rules,
                             size_t nrules,
                             const ctr_filter_value_rule_t *values,
                             size_t nvalues) {
  ctr_filter_spec_t spec = {defaults, rules, nrules, values, nvalues};
  ctr_filter_t *f = NULL;
  char err[512] = "";
  ck_assert_msg(ctr_filter_compile(&f, &spec, err, sizeof(err)) == 0, "%s",
                err);
  ck_assert_ptr_nonnull(f);
  return f;
}

/* Matches one pattern of a kind against one name. */
static bool match(int kind, const char *pattern, const char *name) {
  ctr_filter_rule_t r = {NULL, NULL, NULL, CTR_FILTER_SKIP};
  ctr_filter_t *f;
  const char *args[3] = {NULL, NULL, NULL};
  int d;

  if (kind == CTR_FILTER_FILE)
    r.file = pattern;
  else if (kind == CTR_FILTER_MODULE)
    r.module = pattern;
  else
    r.function = pattern;
  args[kind] = name;
  f = compile(false, &r, 1, NULL, 0);
  d = ctr_filter_decide(f, args[0], args[1], args[2]);
  ctr_filter_free(f);
  return d == CTR_FILTER_SKIP;
}

struct match_case {
  int kind;
  const char *pattern, *name;
  bool want;
};

static const struct match_case match_cases[] = {
    /* Files: "*" stays in one directory, "**" crosses them. */
    {CTR_FILTER_FILE, "/app/*.rb", "/app/x.rb", true},
    {CTR_FILTER_FILE, "/app/*.rb", "/app/lib/x.rb", false},
    {CTR_FILTER_FILE, "/app/**", "/app/lib/deep/x.rb", true},
    {CTR_FILTER_FILE, "/app/**", "/app/x.rb", true},
    {CTR_FILTER_FILE, "/app/**", "/application/x.rb", false},
    {CTR_FILTER_FILE, "/app/**", "/app", false},
    {CTR_FILTER_FILE, "/usr/lib/ruby/**", "/usr/lib/ruby/3.1.0/json.rb", true},
    {CTR_FILTER_FILE, "**/x.rb", "/a/b/c/x.rb", true},
    {CTR_FILTER_FILE, "**/x.rb", "x.rb", true},
    {CTR_FILTER_FILE, "**/x.rb", "/a/yx.rb", false},
    {CTR_FILTER_FILE, "/a/**/x.rb", "/a/x.rb", true},
    {CTR_FILTER_FILE, "/a/**/x.rb", "/a/b/c/x.rb", true},
    {CTR_FILTER_FILE, "/a/**/x.rb", "/ab/x.rb", false},
    {CTR_FILTER_FILE, "/a/?.rb", "/a/x.rb", true},
    {CTR_FILTER_FILE, "/a/?.rb", "/a/xy.rb", false},
    {CTR_FILTER_FILE, "/a?b", "/a/b", false},
    {CTR_FILTER_FILE, "/a/\xc3\xa9?.rb", "/a/\xc3\xa9\xc3\xa9.rb", true},
    {CTR_FILTER_FILE, "/a/[xy].rb", "/a/y.rb", true},
    {CTR_FILTER_FILE, "/a/[!xy].rb", "/a/y.rb", false},
    {CTR_FILTER_FILE, "/a/[^xy].rb", "/a/z.rb", true},
    {CTR_FILTER_FILE, "/a/[a-c]*", "/a/bz", true},
    {CTR_FILTER_FILE, "/a/[a-c]*", "/a/dz", false},
    {CTR_FILTER_FILE, "/a[!x]b", "/a/b", false},
    {CTR_FILTER_FILE, "/a/[]]", "/a/]", true},
    {CTR_FILTER_FILE, "/a/\\*", "/a/*", true},
    {CTR_FILTER_FILE, "/a/\\*", "/a/b", false},
    {CTR_FILTER_FILE, "<internal:**>", "<internal:kernel>", true},
    {CTR_FILTER_FILE, "<frozen **>", "<frozen importlib._bootstrap>", true},
    /* Modules: "*" stops at "." and "::". */
    {CTR_FILTER_MODULE, "a.*", "a.b", true},
    {CTR_FILTER_MODULE, "a.*", "a.b.c", false},
    {CTR_FILTER_MODULE, "a.**", "a.b.c", true},
    {CTR_FILTER_MODULE, "a.**", "a", false},
    {CTR_FILTER_MODULE, "a.**", "ab.c", false},
    {CTR_FILTER_MODULE, "json", "json.decoder", false},
    {CTR_FILTER_MODULE, "json*", "json.decoder", false},
    {CTR_FILTER_MODULE, "**.decoder", "json.decoder", true},
    {CTR_FILTER_MODULE, "**.decoder", "decoder", true},
    {CTR_FILTER_MODULE, "Net::*", "Net::HTTP", true},
    {CTR_FILTER_MODULE, "Net::*", "Net::HTTP::Get", false},
    {CTR_FILTER_MODULE, "Net::**", "Net::HTTP::Get", true},
    {CTR_FILTER_MODULE, "Net*", "Net::HTTP", false},
    /* Functions: "*" also stops at "#". */
    {CTR_FILTER_FUNCTION, "Foo#*", "Foo#bar", true},
    {CTR_FILTER_FUNCTION, "Foo#*", "Foo.bar", false},
    {CTR_FILTER_FUNCTION, "Foo.*", "Foo.bar", true},
    {CTR_FILTER_FUNCTION, "Foo.*", "Foo#bar", false},
    {CTR_FILTER_FUNCTION, "*#to_s", "Point#to_s", true},
    {CTR_FILTER_FUNCTION, "*#to_s", "Geo::Point#to_s", false},
    {CTR_FILTER_FUNCTION, "**#to_s", "Geo::Point#to_s", true},
    {CTR_FILTER_FUNCTION, "Foo*", "Foo#bar", false},
    {CTR_FILTER_FUNCTION, "pkg.mod.*", "pkg.mod.run", true},
    {CTR_FILTER_FUNCTION, "pkg.mod.*", "pkg.mod.Class.run", false},
    {CTR_FILTER_FUNCTION, "pkg.mod.**", "pkg.mod.Class.run", true},
    /* Regexes match the whole name, never a substring. */
    {CTR_FILTER_FUNCTION, "re:Foo#(get|set)_[a-z]+", "Foo#get_x", true},
    {CTR_FILTER_FUNCTION, "re:Foo#(get|set)_[a-z]+", "Foo#get_x1", false},
    {CTR_FILTER_FUNCTION, "re:get", "Foo#get_x", false},
    {CTR_FILTER_FUNCTION, "re:get", "get", true},
    {CTR_FILTER_FUNCTION, "re:a)|(b", "ab", false},
    {CTR_FILTER_FUNCTION, "re:a)|(b", "xb", false},
    {CTR_FILTER_FUNCTION, "re:a)|(b", "b", true},
    {CTR_FILTER_FILE, "re:.*/lib/.*", "/app/lib/x.rb", true},
    {CTR_FILTER_MODULE, "re:a|a\\.b", "a.b", true},
    /* Literals: glob and regex characters are plain. */
    {CTR_FILTER_FUNCTION, "=Array#[]", "Array#[]", true},
    {CTR_FILTER_FUNCTION, "=Foo#*", "Foo#*", true},
    {CTR_FILTER_FUNCTION, "=Foo#*", "Foo#bar", false},
    {CTR_FILTER_FUNCTION, "=re:x", "re:x", true},
    {CTR_FILTER_MODULE, "=json", "json.decoder", false},
    /* Unknown names never match a selector. */
    {CTR_FILTER_MODULE, "**", NULL, false},
    {CTR_FILTER_FILE, "**", "", true},
};

START_TEST(test_match) {
  const struct match_case *m = &match_cases[_i];
  ck_assert_msg(match(m->kind, m->pattern, m->name) == m->want,
                "%s against %s: expected %s", m->pattern,
                m->name ? m->name : "(null)", m->want ? "match" : "no match");
}
END_TEST

struct bad_pattern {
  int kind;
  const char *pattern, *message;
};

static const struct bad_pattern bad_patterns[] = {
    {CTR_FILTER_FILE, "", "must not be empty"},
    {CTR_FILTER_FILE, "/a/[a", "invalid glob \"/a/[a\": unterminated ["},
    {CTR_FILTER_FILE, "[!]", "invalid glob \"[!]\": unterminated ["},
    {CTR_FILTER_FILE, "[z-a]",
     "invalid glob \"[z-a]\": range out of order in [...]"},
    {CTR_FILTER_FILE, "a\\", "invalid glob \"a\\\": ends with a backslash"},
    {CTR_FILTER_MODULE, "re:(a", "invalid regex \"re:(a\": "},
    {CTR_FILTER_MODULE, "re:", "invalid regex \"re:\": empty"},
    {CTR_FILTER_MODULE, "=", "invalid literal \"=\": empty"},
};

START_TEST(test_bad_pattern) {
  const struct bad_pattern *b = &bad_patterns[_i];
  char msg[256] = "";
  ck_assert_int_eq(
      ctr_filter_pattern_check(b->kind, b->pattern, msg, sizeof(msg)),
      CTR_ECONFIG);
  /* Regex messages end with the C library's own words. */
  ck_assert_msg(strncmp(msg, b->message, strlen(b->message)) == 0,
                "got \"%s\", want \"%s\"", msg, b->message);
}
END_TEST

START_TEST(test_long_pattern) {
  char *p = malloc(CTR_FILTER_MAX_PATTERN + 2), msg[128];
  memset(p, 'a', CTR_FILTER_MAX_PATTERN);
  p[CTR_FILTER_MAX_PATTERN] = '\0';
  ck_assert_int_eq(
      ctr_filter_pattern_check(CTR_FILTER_FILE, p, msg, sizeof(msg)), 0);
  p[CTR_FILTER_MAX_PATTERN] = '*';
  p[CTR_FILTER_MAX_PATTERN + 1] = '\0';
  ck_assert_int_eq(
      ctr_filter_pattern_check(CTR_FILTER_FILE, p, msg, sizeof(msg)),
      CTR_ECONFIG);
  ck_assert_str_eq(msg, "must be at most 1024 bytes long");
  free(p);
}
END_TEST

/* Many stars against a long name that almost matches: a backtracking
 * matcher would take exponential time here. */
START_TEST(test_no_backtracking) {
  char name[4096];
  ctr_filter_rule_t r = {"**a**a**a**a**a**a**a**a**a**a**b", NULL, NULL,
                         CTR_FILTER_SKIP};
  ctr_filter_t *f = compile(false, &r, 1, NULL, 0);
  memset(name, 'a', sizeof(name) - 1);
  name[sizeof(name) - 1] = '\0';
  ck_assert_int_eq(ctr_filter_decide(f, name, NULL, NULL), CTR_FILTER_RECORD);
  ctr_filter_free(f);
}
END_TEST

START_TEST(test_last_match_wins) {
  const ctr_filter_rule_t rules[] = {
      {"/app/**", NULL, NULL, CTR_FILTER_SKIP_TREE},
      {"/app/lib/**", NULL, NULL, CTR_FILTER_RECORD},
      {"/app/lib/noisy.rb", NULL, NULL, CTR_FILTER_SKIP},
  };
  ctr_filter_t *f = compile(false, rules, 3, NULL, 0);
  ck_assert_int_eq(ctr_filter_decide(f, "/app/main.rb", NULL, NULL),
                   CTR_FILTER_SKIP_TREE);
  ck_assert_int_eq(ctr_filter_decide(f, "/app/lib/x.rb", NULL, NULL),
                   CTR_FILTER_RECORD);
  ck_assert_int_eq(ctr_filter_decide(f, "/app/lib/noisy.rb", NULL, NULL),
                   CTR_FILTER_SKIP);
  ck_assert_int_eq(ctr_filter_decide(f, "/other.rb", NULL, NULL),
                   CTR_FILTER_RECORD);
  ctr_filter_free(f);

  /* The same rules in the opposite order: the broad rule now wins. */
  const ctr_filter_rule_t reversed[] = {rules[2], rules[1], rules[0]};
  f = compile(false, reversed, 3, NULL, 0);
  ck_assert_int_eq(ctr_filter_decide(f, "/app/lib/noisy.rb", NULL, NULL),
                   CTR_FILTER_SKIP_TREE);
  ck_assert_int_eq(ctr_filter_decide(f, "/app/lib/x.rb", NULL, NULL),
                   CTR_FILTER_SKIP_TREE);
  ctr_filter_free(f);
}
END_TEST

/* The names selectors see: a declared module prefixes the name; Ruby's
 * constant path is derived from it. */
START_TEST(test_names) {
  static const struct {
    const char *lang, *module, *name, *want_module, *want_function;
  } cases[] = {
      {"python", "shop.pay.card", "Card.charge", "shop.pay.card",
       "shop.pay.card.Card.charge"},
      {"python", "__main__", "main", "__main__", "__main__.main"},
      {"python", NULL, "Card.charge", NULL, "Card.charge"},
      {"ruby", NULL, "Net::HTTP#get", "Net::HTTP", "Net::HTTP#get"},
      {"ruby", NULL, "JSON.parse", "JSON", "JSON.parse"},
      {"ruby", NULL, "main", NULL, "main"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char *module, *function;
    ck_assert_int_eq(ctr_filter_names(cases[i].lang, cases[i].module,
                                      cases[i].name, &module, &function),
                     0);
    if (cases[i].want_module)
      ck_assert_str_eq(module, cases[i].want_module);
    else
      ck_assert_ptr_null(module);
    ck_assert_str_eq(function, cases[i].want_function);
    free(module);
    free(function);
  }
}
END_TEST

START_TEST(test_skip_and_skip_tree) {
  const ctr_filter_rule_t rules[] = {
      {NULL, "json.**", NULL, CTR_FILTER_SKIP},
      {NULL, NULL, "Logger#*", CTR_FILTER_SKIP_TREE},
  };
  ctr_filter_t *f = compile(false, rules, 2, NULL, 0);
  ck_assert_int_eq(ctr_filter_decide(f, "/x.py", "json.decoder", "decode"),
                   CTR_FILTER_SKIP);
  ck_assert_int_eq(ctr_filter_decide(f, "/x.rb", NULL, "Logger#info"),
                   CTR_FILTER_SKIP_TREE);
  ck_assert_int_eq(ctr_filter_decide(f, "/x.rb", NULL, "Logger.new"),
                   CTR_FILTER_RECORD);
  ck_assert_int_eq(ctr_filter_decide(f, "/x.py", "json", "dumps"),
                   CTR_FILTER_RECORD);
  ctr_filter_free(f);
  ck_assert_str_eq(ctr_filter_action_name(CTR_FILTER_RECORD), "record");
  ck_assert_str_eq(ctr_filter_action_name(CTR_FILTER_SKIP), "skip");
  ck_assert_str_eq(ctr_filter_action_name(CTR_FILTER_SKIP_TREE), "skip-tree");
  ck_assert_str_eq(ctr_filter_action_name(7), "unknown");
}
END_TEST

START_TEST(test_all_selectors_must_match) {
  const ctr_filter_rule_t rules[] = {
      {"/app/**", NULL, "*#to_s", CTR_FILTER_SKIP},
      {"/app/**", "Geo", "**", CTR_FILTER_SKIP_TREE},
  };
  ctr_filter_t *f = compile(false, rules, 2, NULL, 0);
  ck_assert_int_eq(ctr_filter_decide(f, "/app/p.rb", NULL, "Point#to_s"),
                   CTR_FILTER_SKIP);
  ck_assert_int_eq(ctr_filter_decide(f, "/lib/p.rb", NULL, "Point#to_s"),
                   CTR_FILTER_RECORD);
  ck_assert_int_eq(ctr_filter_decide(f, "/app/p.rb", NULL, "Point#x"),
                   CTR_FILTER_RECORD);
  ck_assert_int_eq(ctr_filter_decide(f, "/app/p.rb", "Geo", "Geo.make"),
                   CTR_FILTER_SKIP_TREE);
  /* An unknown module never matches, even with "**" beside it. */
  ck_assert_int_eq(ctr_filter_decide(f, "/app/p.rb", NULL, "Geo.make"),
                   CTR_FILTER_RECORD);
  ck_assert_int_eq(ctr_filter_decide(f, NULL, NULL, "Point#to_s"),
                   CTR_FILTER_RECORD);
  ctr_filter_free(f);
}
END_TEST

static const char *const stdlib_paths[] = {
    "/usr/lib/ruby/3.1.0/json/common.rb",
    "/usr/lib/ruby/vendor_ruby/rubygems/defaults/operating_system.rb",
    "/usr/share/rubygems-integration/all/gems/rake-13.0.6/lib/rake.rb",
    "/var/lib/gems/3.1.0/gems/rack-3.0.0/lib/rack.rb",
    "/usr/local/lib/site_ruby/3.1.0/x.rb",
    "/usr/lib/x86_64-linux-gnu/ruby/3.1.0/rbconfig.rb",
    "/usr/lib/x86_64-linux-gnu/rubygems-integration/3.1.0/gems/x/lib/x.rb",
    "/usr/local/lib/x86_64-linux-gnu/site_ruby/x.rb",
    "/home/u/.rbenv/versions/3.2.2/lib/ruby/3.2.0/set.rb",
    "/home/u/.rbenv/versions/3.2.2/lib/ruby/gems/3.2.0/gems/rack-3/lib/r.rb",
    "/home/u/.gem/ruby/3.1.0/gems/x-1/lib/x.rb",
    "/srv/app/vendor/bundle/ruby/3.1.0/gems/x-1/lib/x.rb",
    "<internal:kernel>",
    "/usr/lib/python3.10/json/decoder.py",
    "/usr/lib/python3/dist-packages/yaml/__init__.py",
    "/usr/local/lib/python3.12/site-packages/requests/api.py",
    "/root/.pyenv/versions/3.11.4/lib/python3.11/json/decoder.py",
    "/srv/app/.venv/lib/python3.11/site-packages/flask/app.py",
    "/opt/conda/lib/python3.9/os.py",
    "<frozen importlib._bootstrap>",
};

/* A file whose code is decided the same for every function, and one for
 * which a rule naming functions may decide otherwise. */
START_TEST(test_decide_file) {
  const ctr_filter_rule_t rules[] = {
      {"/usr/lib/ruby/**", NULL, "JSON.*", CTR_FILTER_RECORD},
      {"/app/vendor/**", NULL, NULL, CTR_FILTER_SKIP_TREE},
      {NULL, "Helpers", NULL, CTR_FILTER_SKIP},
      {"/app/lib/**", NULL, NULL, CTR_FILTER_SKIP},
  };
  ctr_filter_t *f = compile(true, rules, N(rules), NULL, 0);
  bool uniform;
  ck_assert_int_eq(
      ctr_filter_decide_file(f, "/usr/lib/ruby/3.1.0/set.rb", &uniform),
      CTR_FILTER_SKIP);
  ck_assert(!uniform); /* JSON.* in it is recorded, Helpers skipped */
  ck_assert_int_eq(ctr_filter_decide_file(f, "/app/lib/x.rb", &uniform),
                   CTR_FILTER_SKIP);
  ck_assert(uniform); /* the last rule decides every function of it */
  ck_assert_int_eq(ctr_filter_decide_file(f, "/app/main.rb", &uniform),
                   CTR_FILTER_RECORD);
  ck_assert(!uniform); /* Helpers may live here */
  ctr_filter_free(f);
  f = compile(true, rules + 1, 1, NULL, 0);
  ck_assert_int_eq(
      ctr_filter_decide_file(f, "/usr/lib/ruby/3.1.0/set.rb", &uniform),
      CTR_FILTER_SKIP);
  ck_assert(uniform);
  ck_assert_int_eq(ctr_filter_decide_file(f, "/app/vendor/v.rb", &uniform),
                   CTR_FILTER_SKIP_TREE);
  ck_assert(uniform);
  ck_assert_int_eq(ctr_filter_decide_file(f, "/app/main.rb", &uniform),
                   CTR_FILTER_RECORD);
  ck_assert(uniform);
  ctr_filter_free(f);
  ck_assert_int_eq(ctr_filter_decide_file(NULL, "/x.rb", &uniform),
                   CTR_FILTER_RECORD);
  ck_assert(uniform);
  /* A rule naming functions that decides as the file rule does changes
   * nothing; one that decides otherwise does. */
  const ctr_filter_rule_t same[] = {
      {NULL, "Helpers", NULL, CTR_FILTER_SKIP},
      {NULL, NULL, "re:.*#to_s", CTR_FILTER_SKIP_TREE},
  };
  f = compile(true, same, 1, NULL, 0);
  ck_assert_int_eq(
      ctr_filter_decide_file(f, "/usr/lib/ruby/3.1.0/set.rb", &uniform),
      CTR_FILTER_SKIP);
  ck_assert(uniform);
  ck_assert_int_eq(ctr_filter_decide_file(f, "/app/main.rb", &uniform),
                   CTR_FILTER_RECORD);
  ck_assert(!uniform);
  ctr_filter_free(f);
  f = compile(true, same, 2, NULL, 0);
  ctr_filter_decide_file(f, "/usr/lib/ruby/3.1.0/set.rb", &uniform);
  ck_assert(!uniform);
  ctr_filter_free(f);
}
END_TEST

START_TEST(test_defaults_skip_stdlib) {
  ctr_filter_t *f = compile(true, NULL, 0, NULL, 0);
  ck_assert_int_eq(ctr_filter_decide(f, stdlib_paths[_i], "m", "f"),
                   CTR_FILTER_SKIP);
  ctr_filter_free(f);
  /* With the defaults off nothing is skipped. */
  f = compile(false, NULL, 0, NULL, 0);
  ck_assert_int_eq(ctr_filter_decide(f, stdlib_paths[_i], "m", "f"),
                   CTR_FILTER_RECORD);
  ctr_filter_free(f);
}
END_TEST

static const char *const user_paths[] = {
    "/srv/app/main.rb",
    "/home/u/project/lib/ruby/x.rb",
    "/home/u/project/app.py",
    "/home/u/python3/x.py",
    "<string>",
    "-e",
    "/tmp/lib/ruby_helpers.rb",
    "/srv/app/gems.rb",
};

START_TEST(test_defaults_keep_user_code) {
  ctr_filter_t *f = compile(true, NULL, 0, NULL, 0);
  ck_assert_int_eq(ctr_filter_decide(f, user_paths[_i], "m", "f"),
                   CTR_FILTER_RECORD);
  ctr_filter_free(f);
}
END_TEST

START_TEST(test_defaults_reenabled) {
  const ctr_filter_rule_t rules[] = {
      {"/usr/lib/ruby/*/json/**", NULL, NULL, CTR_FILTER_RECORD},
      {"/usr/lib/ruby/*/json/ext.rb", NULL, NULL, CTR_FILTER_SKIP_TREE},
  };
  ctr_filter_t *f = compile(true, rules, 2, NULL, 0);
  size_t n, nb;
  const ctr_filter_rule_t *all = ctr_filter_rules(f, &n);

  ck_assert_int_eq(
      ctr_filter_decide(f, "/usr/lib/ruby/3.1.0/json/common.rb", NULL, NULL),
      CTR_FILTER_RECORD);
  ck_assert_int_eq(
      ctr_filter_decide(f, "/usr/lib/ruby/3.1.0/json/ext.rb", NULL, NULL),
      CTR_FILTER_SKIP_TREE);
  ck_assert_int_eq(
      ctr_filter_decide(f, "/usr/lib/ruby/3.1.0/set.rb", NULL, NULL),
      CTR_FILTER_SKIP);
  /* The built-ins come first and the user's rules after them. */
  ctr_filter_builtins(&nb);
  ck_assert_uint_eq(ctr_filter_builtin_count(f), nb);
  ck_assert_uint_eq(n, nb + 2);
  ck_assert_str_eq(all[nb].file, rules[0].file);
  ck_assert_str_eq(all[nb + 1].file, rules[1].file);
  ctr_filter_free(f);

  f = compile(false, rules, 2, NULL, 0);
  ck_assert_uint_eq(ctr_filter_builtin_count(f), 0);
  ck_assert_int_eq(
      ctr_filter_decide(f, "/usr/lib/ruby/3.1.0/set.rb", NULL, NULL),
      CTR_FILTER_RECORD);
  ctr_filter_free(f);
}
END_TEST

START_TEST(test_values_merge) {
  const ctr_filter_value_rule_t values[] = {
      {"password", NULL, NULL, NULL, CTR_FILTER_ALL, CTR_FILTER_REDACT},
      {"*token*", NULL, NULL, NULL, CTR_FILTER_ARGS, CTR_FILTER_DROP},
      /* A later, broader redaction must not weaken the drop above. */
      {"*", NULL, NULL, "Auth#*", CTR_FILTER_ALL, CTR_FILTER_REDACT},
      {NULL, NULL, NULL, "Auth#token", CTR_FILTER_RETURN, CTR_FILTER_DROP},
      {"re:secret_[0-9]+", "/app/**", NULL, NULL, CTR_FILTER_LOCALS,
       CTR_FILTER_REDACT},
  };
  ctr_filter_t *f = compile(false, NULL, 0, values, N(values));

  ck_assert_int_eq(
      ctr_filter_value(f, "/a.rb", NULL, "f", CTR_FILTER_LOCALS, "password"),
      CTR_FILTER_REDACT);
  ck_assert_int_eq(
      ctr_filter_value(f, "/a.rb", NULL, "f", CTR_FILTER_LOCALS, "user"),
      CTR_FILTER_KEEP);
  /* "in" limits where a rule applies. */
  ck_assert_int_eq(
      ctr_filter_value(f, "/a.rb", NULL, "f", CTR_FILTER_ARGS, "api_token"),
      CTR_FILTER_DROP);
  ck_assert_int_eq(
      ctr_filter_value(f, "/a.rb", NULL, "f", CTR_FILTER_LOCALS, "api_token"),
      CTR_FILTER_KEEP);
  /* Drop beats redact whichever comes later. */
  ck_assert_int_eq(ctr_filter_value(f, "/a.rb", NULL, "Auth#login",
                                    CTR_FILTER_ARGS, "api_token"),
                   CTR_FILTER_DROP);
  ck_assert_int_eq(ctr_filter_value(f, "/a.rb", NULL, "Auth#login",
                                    CTR_FILTER_LOCALS, "user"),
                   CTR_FILTER_REDACT);
  /* A function scope on a return value, which has no name. */
  ck_assert_int_eq(
      ctr_filter_value(f, "/a.rb", NULL, "Auth#token", CTR_FILTER_RETURN, NULL),
      CTR_FILTER_DROP);
  ck_assert_int_eq(
      ctr_filter_value(f, "/a.rb", NULL, "f", CTR_FILTER_RETURN, NULL),
      CTR_FILTER_KEEP);
  /* A file scope, and a regex that must match the whole name. */
  ck_assert_int_eq(ctr_filter_value(f, "/app/x.rb", NULL, "f",
                                    CTR_FILTER_LOCALS, "secret_12"),
                   CTR_FILTER_REDACT);
  ck_assert_int_eq(ctr_filter_value(f, "/app/x.rb", NULL, "f",
                                    CTR_FILTER_LOCALS, "my_secret_12"),
                   CTR_FILTER_KEEP);
  ck_assert_int_eq(ctr_filter_value(f, "/lib/x.rb", NULL, "f",
                                    CTR_FILTER_LOCALS, "secret_12"),
                   CTR_FILTER_KEEP);
  ck_assert_int_eq(
      ctr_filter_value(f, NULL, NULL, "f", CTR_FILTER_LOCALS, "secret_12"),
      CTR_FILTER_KEEP);
  ctr_filter_free(f);
}
END_TEST

/* Redaction is not undone by a later rule for the same name, in any order. */
START_TEST(test_values_order_independent) {
  const ctr_filter_value_rule_t a[] = {
      {"pw", NULL, NULL, NULL, CTR_FILTER_ALL, CTR_FILTER_REDACT},
      {"pw", NULL, NULL, NULL, CTR_FILTER_ALL, CTR_FILTER_DROP},
      {"p*", NULL, NULL, NULL, CTR_FILTER_ALL, CTR_FILTER_REDACT},
  };
  const ctr_filter_value_rule_t b[] = {a[2], a[1], a[0]};
  ctr_filter_t *fa = compile(false, NULL, 0, a, 3);
  ctr_filter_t *fb = compile(false, NULL, 0, b, 3);
  ck_assert_int_eq(
      ctr_filter_value(fa, "/x", NULL, NULL, CTR_FILTER_ARGS, "pw"),
      CTR_FILTER_DROP);
  ck_assert_int_eq(
      ctr_filter_value(fb, "/x", NULL, NULL, CTR_FILTER_ARGS, "pw"),
      CTR_FILTER_DROP);
  ck_assert_int_eq(
      ctr_filter_value(fa, "/x", NULL, NULL, CTR_FILTER_ARGS, "px"),
      CTR_FILTER_REDACT);
  ctr_filter_free(fa);
  ctr_filter_free(fb);
}
END_TEST

START_TEST(test_compile_errors) {
  const ctr_filter_rule_t bad_glob[] = {
      {"/a/**", NULL, NULL, CTR_FILTER_SKIP},
      {"/b/**", NULL, "Foo#[a", CTR_FILTER_SKIP},
  };
  const ctr_filter_rule_t no_selector[] = {{NULL, NULL, NULL, CTR_FILTER_SKIP}};
  const ctr_filter_rule_t bad_action[] = {{"/a", NULL, NULL, 9}};
  const ctr_filter_value_rule_t bad_value[] = {
      {"re:(", NULL, NULL, NULL, CTR_FILTER_ALL, CTR_FILTER_REDACT}};
  const ctr_filter_value_rule_t keep_value[] = {
      {"x", NULL, NULL, NULL, CTR_FILTER_ALL, CTR_FILTER_KEEP}};
  ctr_filter_spec_t spec = {true, bad_glob, 2, NULL, 0};
  ctr_filter_t *f = NULL;
  char err[256];

  ck_assert_int_eq(ctr_filter_compile(&f, &spec, err, sizeof(err)),
                   CTR_ECONFIG);
  ck_assert_str_eq(
      err, "rules[1].function: invalid glob \"Foo#[a\": unterminated [");
  ck_assert_ptr_null(f);
  spec = (ctr_filter_spec_t){false, no_selector, 1, NULL, 0};
  ck_assert_int_eq(ctr_filter_compile(&f, &spec, err, sizeof(err)),
                   CTR_ECONFIG);
  ck_assert_str_eq(err,
                   "rules[0]: needs at least one of file, module, function");
  spec = (ctr_filter_spec_t){false, bad_action, 1, NULL, 0};
  ck_assert_int_eq(ctr_filter_compile(&f, &spec, err, sizeof(err)),
                   CTR_ECONFIG);
  ck_assert_str_eq(err, "rules[0].action: unknown action 9");
  spec = (ctr_filter_spec_t){false, NULL, 0, bad_value, 1};
  ck_assert_int_eq(ctr_filter_compile(&f, &spec, NULL, 0), CTR_ECONFIG);
  spec = (ctr_filter_spec_t){false, NULL, 0, keep_value, 1};
  ck_assert_int_eq(ctr_filter_compile(&f, &spec, err, sizeof(err)),
                   CTR_ECONFIG);
  ck_assert_str_eq(err, "values[0].action: unknown action 0");
  ck_assert_ptr_null(f);
}
END_TEST

START_TEST(test_null_filter_and_refs) {
  ctr_filter_t *f;
  size_t n = 9;
  ck_assert_int_eq(ctr_filter_decide(NULL, "/usr/lib/ruby/x.rb", NULL, NULL),
                   CTR_FILTER_RECORD);
  ck_assert_int_eq(
      ctr_filter_value(NULL, NULL, NULL, NULL, CTR_FILTER_ARGS, "pw"),
      CTR_FILTER_KEEP);
  ck_assert_ptr_null(ctr_filter_rules(NULL, &n));
  ck_assert_uint_eq(n, 0);
  ctr_filter_free(NULL);
  /* A second reference keeps the filter alive after the first is gone;
   * valgrind checks that the last one frees it. */
  f = compile(true, NULL, 0, NULL, 0);
  ck_assert_ptr_eq(ctr_filter_ref(f), f);
  ctr_filter_free(f);
  ck_assert_int_eq(ctr_filter_decide(f, "/usr/lib/ruby/x.rb", NULL, NULL),
                   CTR_FILTER_SKIP);
  ctr_filter_free(f);
}
END_TEST

START_TEST(test_describe) {
  const ctr_filter_rule_t rules[] = {
      {"/app/\"q\"\\**", "json.**", "=Foo#[]", CTR_FILTER_SKIP_TREE},
  };
  const ctr_filter_value_rule_t values[] = {
      {"pw", NULL, NULL, "Auth#*", CTR_FILTER_ARGS | CTR_FILTER_RETURN,
       CTR_FILTER_DROP},
      {NULL, NULL, NULL, NULL, CTR_FILTER_ALL, CTR_FILTER_REDACT},
  };
  ctr_filter_t *f = compile(true, rules, 1, values, 2);
  char *text = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&text, &len);

  ck_assert_ptr_nonnull(out);
  ctr_filter_describe(f, out, 2);
  ck_assert_int_eq(fclose(out), 0);
  ck_assert_ptr_eq(strstr(text, "  defaults: false\n  rules:\n"
                                "    - {file: \"/usr/lib/ruby/**\", action: "
                                "skip}  # built-in\n"),
                   text);
  ck_assert_ptr_nonnull(
      strstr(text, "\n    - {file: \"/app/\\\"q\\\"\\\\**\", module: "
                   "\"json.**\", function: \"=Foo#[]\", action: skip-tree}\n"
                   "  values:\n"
                   "    - {name: \"pw\", function: \"Auth#*\", in: [args, "
                   "return], action: drop}\n"
                   "    - {in: all, action: redact}\n"));
  free(text);
  ctr_filter_free(f);

  f = compile(false, NULL, 0, NULL, 0);
  out = open_memstream(&text, &len);
  ctr_filter_describe(f, out, 0);
  ck_assert_int_eq(fclose(out), 0);
  ck_assert_str_eq(text, "defaults: false\nrules: []\nvalues: []\n");
  free(text);
  ctr_filter_free(f);
}
END_TEST

Suite *ctr_filter_suite(void) {
  Suite *s = suite_create("filter");
  TCase *tc = tcase_create("match");
  tcase_add_loop_test(tc, test_match, 0, N(match_cases));
  tcase_add_loop_test(tc, test_bad_pattern, 0, N(bad_patterns));
  tcase_add_test(tc, test_long_pattern);
  tcase_add_test(tc, test_no_backtracking);
  suite_add_tcase(s, tc);

  tc = tcase_create("rules");
  tcase_add_test(tc, test_last_match_wins);
  tcase_add_test(tc, test_skip_and_skip_tree);
  tcase_add_test(tc, test_all_selectors_must_match);
  tcase_add_test(tc, test_decide_file);
  tcase_add_loop_test(tc, test_defaults_skip_stdlib, 0, N(stdlib_paths));
  tcase_add_loop_test(tc, test_defaults_keep_user_code, 0, N(user_paths));
  tcase_add_test(tc, test_defaults_reenabled);
  tcase_add_test(tc, test_compile_errors);
  tcase_add_test(tc, test_null_filter_and_refs);
  suite_add_tcase(s, tc);

  tc = tcase_create("values");
  tcase_add_test(tc, test_values_merge);
  tcase_add_test(tc, test_values_order_independent);
  suite_add_tcase(s, tc);

  tc = tcase_create("describe");
  tcase_add_test(tc, test_describe);
  tcase_add_test(tc, test_names);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(ctr_filter_suite());
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
