/* ctr_filter.c: compiled selector patterns and rule evaluation.
 *
 * A glob compiles to a token list that is run as an NFA over the name's
 * characters: every step is O(tokens), so no pattern can make a match
 * backtrack exponentially on a long path. Matching works on Unicode code
 * points so that "?" and "[...]" consume a whole character; a byte that is
 * not valid UTF-8 stands for itself as a code point no pattern can spell
 * except with "*" or "**". */
#include "ctr_filter.h"

#include <regex.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctr_error.h"

enum pat_type { PAT_GLOB, PAT_REGEX, PAT_LITERAL };

enum tok_type {
  TOK_CHAR,     /* one given character */
  TOK_ANY,      /* "?": one character that is not a separator */
  TOK_CLASS,    /* "[...]": one listed character that is not a separator */
  TOK_STAR,     /* "*": any run of characters without a separator */
  TOK_GLOBSTAR, /* "**": any run of characters */
  TOK_FORK      /* no input: on to the "**" after it, or past its separators */
};

struct range {
  uint32_t lo, hi;
};

struct tok {
  enum tok_type type;
  uint32_t c;    /* TOK_CHAR */
  bool negate;   /* TOK_CLASS */
  size_t first;  /* TOK_CLASS: index of its first range in pattern.ranges */
  size_t nrange; /* TOK_CLASS */
  size_t skip;   /* TOK_FORK: separator tokens after the "**" to jump over */
};

struct pattern {
  enum pat_type type;
  const char *seps; /* separator characters of the kind */
  const char *literal;
  struct tok *toks;
  size_t ntoks;
  struct range *ranges;
  regex_t re;
};

struct rule {
  struct pattern *sel[3]; /* by kind: file, module, function */
  int action;
};

struct value_rule {
  struct pattern *name;
  struct pattern *sel[3];
  int where, action;
};

struct ctr_filter_s {
  unsigned refs;
  size_t nbuiltin;
  struct rule *rules;
  size_t nrules;
  struct value_rule *values;
  size_t nvalues;
  /* As written, with strings owned by the filter, for listing. */
  ctr_filter_rule_t *rule_text;
  ctr_filter_value_rule_t *value_text;
};

/* Skipped by default: where Debian, Ubuntu, Fedora, ruby-build, pyenv,
 * venvs and conda put the standard libraries and installed packages, and
 * the interpreters' own pseudo-files. Plain "skip", so that blocks and
 * callbacks that library code runs in the user's code are still recorded. */
static const ctr_filter_rule_t builtins[] = {
    {"/usr/lib/ruby/**", NULL, NULL, CTR_FILTER_SKIP},
    {"/usr/local/lib/ruby/**", NULL, NULL, CTR_FILTER_SKIP},
    {"/usr/share/ruby/**", NULL, NULL, CTR_FILTER_SKIP},
    {"/usr/share/gems/**", NULL, NULL, CTR_FILTER_SKIP},
    {"/usr/share/rubygems-integration/**", NULL, NULL, CTR_FILTER_SKIP},
    {"/usr/local/lib/site_ruby/**", NULL, NULL, CTR_FILTER_SKIP},
    {"/var/lib/gems/**", NULL, NULL, CTR_FILTER_SKIP},
    /* Debian's multiarch folders: rbconfig.rb, vendor and site code. */
    {"/usr/lib/*/ruby/**", NULL, NULL, CTR_FILTER_SKIP},
    {"/usr/lib/*/rubygems-integration/**", NULL, NULL, CTR_FILTER_SKIP},
    {"/usr/local/lib/*/site_ruby/**", NULL, NULL, CTR_FILTER_SKIP},
    {"**/lib/ruby/[0-9]*/**", NULL, NULL, CTR_FILTER_SKIP},
    {"**/gems/[0-9]*/gems/**", NULL, NULL, CTR_FILTER_SKIP},
    {"**/ruby/[0-9]*/gems/**", NULL, NULL, CTR_FILTER_SKIP},
    {"<internal:**>", NULL, NULL, CTR_FILTER_SKIP},
    {"/usr/lib/python3*/**", NULL, NULL, CTR_FILTER_SKIP},
    {"/usr/local/lib/python3*/**", NULL, NULL, CTR_FILTER_SKIP},
    {"**/lib/python3.*/**", NULL, NULL, CTR_FILTER_SKIP},
    {"**/site-packages/**", NULL, NULL, CTR_FILTER_SKIP},
    {"**/dist-packages/**", NULL, NULL, CTR_FILTER_SKIP},
    {"<frozen **>", NULL, NULL, CTR_FILTER_SKIP},
};

#define N_BUILTINS (sizeof(builtins) / sizeof(builtins[0]))

static const char *const kind_seps[] = {"/", ".:", ".:#", ""};
static const char *const kind_keys[] = {"file", "module", "function", "name"};

/* Decodes one character and advances *i. A byte that does not start a
 * well-formed sequence becomes U+DC00 + byte, as Python's surrogateescape
 * does, so it still matches "*" but never a literal. */
static uint32_t next_cp(const unsigned char *s, size_t len, size_t *i) {
  unsigned char c = s[*i];
  size_t n;
  uint32_t cp;

  if (c < 0x80) {
    (*i)++;
    return c;
  }
  if (c >= 0xc2 && c <= 0xdf)
    n = 1, cp = c & 0x1f;
  else if (c >= 0xe0 && c <= 0xef)
    n = 2, cp = c & 0x0f;
  else if (c >= 0xf0 && c <= 0xf4)
    n = 3, cp = c & 0x07;
  else
    goto invalid;
  if (len - *i <= n)
    goto invalid;
  for (size_t k = 1; k <= n; k++) {
    if ((s[*i + k] & 0xc0) != 0x80)
      goto invalid;
    cp = (cp << 6) | (s[*i + k] & 0x3f);
  }
  if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff))
    goto invalid;
  *i += n + 1;
  return cp;
invalid:
  (*i)++;
  return 0xdc00 + c;
}

static bool is_sep(const char *seps, uint32_t c) {
  return c < 0x80 && c != 0 && strchr(seps, (int)c) != NULL;
}

static void set_msg(char *msg, size_t msglen, const char *fmt,
                    const char *pattern, const char *why) {
  if (msg && msglen)
    snprintf(msg, msglen, fmt, pattern, why);
}

/* Parses a glob into p->toks, or with p NULL only checks it. Counting and
 * filling use the same walk so that the two can never disagree. */
static int glob_parse(const char *glob, const char *seps, struct pattern *p,
                      size_t *ntoks, size_t *nranges, const char **why) {
  const unsigned char *s = (const unsigned char *)glob;
  size_t len = strlen(glob), i = 0, nt = 0, nr = 0;
  bool after_sep = true; /* at the start of a component */

  while (i < len) {
    struct tok t = {0};
    uint32_t c = next_cp(s, len, &i);
    bool sep = false;

    if (c == '*') {
      t.type = TOK_STAR;
      if (i < len && s[i] == '*') {
        t.type = TOK_GLOBSTAR;
        while (i < len && s[i] == '*')
          i++;
        /* "**" that starts a component may also stand for no components
         * at all, together with the separators after it. That choice
         * exists only before "**" consumes anything, so it is a token of
         * its own rather than an edge out of the "**" state. */
        if (after_sep) {
          size_t k = i;
          while (k < len && is_sep(seps, s[k]))
            k++;
          if (k > i) {
            if (p)
              p->toks[nt] = (struct tok){.type = TOK_FORK, .skip = k - i};
            nt++;
          }
        }
      }
    } else if (c == '?') {
      t.type = TOK_ANY;
    } else if (c == '[') {
      t.type = TOK_CLASS;
      t.first = nr;
      if (i < len && (s[i] == '!' || s[i] == '^'))
        t.negate = true, i++;
      for (bool first = true;; first = false) {
        uint32_t lo, hi;
        if (i >= len) {
          *why = "unterminated [";
          return CTR_ECONFIG;
        }
        if (s[i] == ']' && !first) {
          i++;
          break;
        }
        lo = next_cp(s, len, &i);
        if (lo == '\\') {
          if (i >= len) {
            *why = "unterminated [";
            return CTR_ECONFIG;
          }
          lo = next_cp(s, len, &i);
        }
        hi = lo;
        if (i + 1 < len && s[i] == '-' && s[i + 1] != ']') {
          i++;
          hi = next_cp(s, len, &i);
          if (hi == '\\' && i < len)
            hi = next_cp(s, len, &i);
          if (hi < lo) {
            *why = "range out of order in [...]";
            return CTR_ECONFIG;
          }
        }
        if (p)
          p->ranges[nr] = (struct range){lo, hi};
        nr++;
      }
      t.nrange = nr - t.first;
    } else {
      if (c == '\\') {
        if (i >= len) {
          *why = "ends with a backslash";
          return CTR_ECONFIG;
        }
        c = next_cp(s, len, &i);
      }
      t.type = TOK_CHAR;
      t.c = c;
      sep = is_sep(seps, c);
    }
    if (p)
      p->toks[nt] = t;
    nt++;
    after_sep = sep;
  }
  *ntoks = nt;
  *nranges = nr;
  return 0;
}

int ctr_filter_pattern_check(int kind, const char *pattern, char *msg,
                             size_t msglen) {
  const char *why = NULL;
  size_t nt, nr;

  if (kind < CTR_FILTER_FILE || kind > CTR_FILTER_NAME || !pattern) {
    set_msg(msg, msglen, "%s%s", "", "invalid pattern");
    return CTR_ECONFIG;
  }
  if (pattern[0] == '\0') {
    set_msg(msg, msglen, "%s%s", "", "must not be empty");
    return CTR_ECONFIG;
  }
  if (strlen(pattern) > CTR_FILTER_MAX_PATTERN) {
    if (msg && msglen)
      snprintf(msg, msglen, "must be at most %d bytes long",
               CTR_FILTER_MAX_PATTERN);
    return CTR_ECONFIG;
  }
  if (strncmp(pattern, "re:", 3) == 0) {
    regex_t re;
    char *wrapped, why_buf[128];
    size_t len = strlen(pattern + 3);
    int rc;

    if (len == 0) {
      set_msg(msg, msglen, "invalid regex \"%s\": %s", pattern, "empty");
      return CTR_ECONFIG;
    }
    if (!(wrapped = malloc(len + 5)))
      return CTR_ENOMEM;
    snprintf(wrapped, len + 5, "^(%s)$", pattern + 3);
    rc = regcomp(&re, wrapped, REG_EXTENDED);
    free(wrapped);
    if (rc != 0) {
      regerror(rc, &re, why_buf, sizeof(why_buf));
      set_msg(msg, msglen, "invalid regex \"%s\": %s", pattern, why_buf);
      return rc == REG_ESPACE ? CTR_ENOMEM : CTR_ECONFIG;
    }
    regfree(&re);
    return 0;
  }
  if (pattern[0] == '=') {
    if (pattern[1] == '\0') {
      set_msg(msg, msglen, "invalid literal \"%s\": %s", pattern, "empty");
      return CTR_ECONFIG;
    }
    return 0;
  }
  if (glob_parse(pattern, kind_seps[kind], NULL, &nt, &nr, &why) != 0) {
    set_msg(msg, msglen, "invalid glob \"%s\": %s", pattern, why);
    return CTR_ECONFIG;
  }
  return 0;
}

static void pattern_free(struct pattern *p) {
  if (!p)
    return;
  if (p->type == PAT_REGEX)
    regfree(&p->re);
  free(p->toks);
  free(p->ranges);
  free(p);
}

/* Compiles a pattern that ctr_filter_pattern_check accepted. The literal
 * points into text, which must outlive the pattern. */
static int pattern_new(struct pattern **out, int kind, const char *text) {
  struct pattern *p = calloc(1, sizeof(*p));
  const char *why;
  size_t nt, nr;

  if (!p)
    return CTR_ENOMEM;
  p->seps = kind_seps[kind];
  if (strncmp(text, "re:", 3) == 0) {
    size_t len = strlen(text + 3);
    char *wrapped = malloc(len + 5);
    int rc;
    if (!wrapped) {
      free(p);
      return CTR_ENOMEM;
    }
    snprintf(wrapped, len + 5, "^(%s)$", text + 3);
    rc = regcomp(&p->re, wrapped, REG_EXTENDED);
    free(wrapped);
    if (rc != 0) {
      free(p);
      return rc == REG_ESPACE ? CTR_ENOMEM : CTR_ECONFIG;
    }
    p->type = PAT_REGEX;
  } else if (text[0] == '=') {
    p->type = PAT_LITERAL;
    p->literal = text + 1;
  } else {
    p->type = PAT_GLOB;
    if (glob_parse(text, p->seps, NULL, &nt, &nr, &why) != 0) {
      free(p);
      return CTR_ECONFIG;
    }
    p->toks = calloc(nt ? nt : 1, sizeof(*p->toks));
    p->ranges = calloc(nr ? nr : 1, sizeof(*p->ranges));
    if (!p->toks || !p->ranges) {
      pattern_free(p);
      return CTR_ENOMEM;
    }
    (void)glob_parse(text, p->seps, p, &p->ntoks, &nr, &why);
  }
  *out = p;
  return 0;
}

static bool tok_step(const struct pattern *p, const struct tok *t, uint32_t c) {
  bool in = false;
  switch (t->type) {
  case TOK_CHAR:
    return c == t->c;
  case TOK_ANY:
    return !is_sep(p->seps, c);
  case TOK_CLASS:
    if (is_sep(p->seps, c))
      return false;
    for (size_t k = 0; k < t->nrange && !in; k++)
      in = c >= p->ranges[t->first + k].lo && c <= p->ranges[t->first + k].hi;
    return in != t->negate;
  case TOK_STAR:
    return !is_sep(p->seps, c);
  case TOK_GLOBSTAR:
    return true;
  case TOK_FORK:
    return false;
  }
  return false;
}

/* Adds the states reachable without input. Every such edge points forward,
 * so one pass in index order reaches all of them. */
static void closure(const struct pattern *p, unsigned char *st) {
  for (size_t i = 0; i < p->ntoks; i++) {
    const struct tok *t = &p->toks[i];
    if (!st[i])
      continue;
    if (t->type == TOK_STAR || t->type == TOK_GLOBSTAR || t->type == TOK_FORK)
      st[i + 1] = 1;
    if (t->type == TOK_FORK)
      st[i + 2 + t->skip] = 1;
  }
}

static bool glob_match(const struct pattern *p, const char *name) {
  unsigned char a[CTR_FILTER_MAX_PATTERN + 1], b[CTR_FILTER_MAX_PATTERN + 1];
  unsigned char *cur = a, *nxt = b;
  const unsigned char *s = (const unsigned char *)name;
  size_t len = strlen(name), i = 0, m = p->ntoks;

  memset(cur, 0, m + 1);
  cur[0] = 1;
  closure(p, cur);
  while (i < len) {
    uint32_t c = next_cp(s, len, &i);
    bool any = false;
    unsigned char *tmp;

    memset(nxt, 0, m + 1);
    for (size_t k = 0; k < m; k++) {
      const struct tok *t = &p->toks[k];
      if (!cur[k] || !tok_step(p, t, c))
        continue;
      if (t->type == TOK_STAR || t->type == TOK_GLOBSTAR)
        nxt[k] = 1;
      else
        nxt[k + 1] = 1;
      any = true;
    }
    if (!any)
      return false;
    closure(p, nxt);
    tmp = cur, cur = nxt, nxt = tmp;
  }
  return cur[m] != 0;
}

static bool pattern_match(const struct pattern *p, const char *name) {
  regmatch_t m;

  if (!name)
    return false;
  switch (p->type) {
  case PAT_LITERAL:
    return strcmp(p->literal, name) == 0;
  case PAT_REGEX:
    /* The anchors alone do not make a whole-name match: in "a)|(b" the
     * user's own alternation splits them. The match bounds do. */
    if (regexec(&p->re, name, 1, &m, 0) != 0)
      return false;
    return m.rm_so == 0 && (size_t)m.rm_eo == strlen(name);
  case PAT_GLOB:
    return glob_match(p, name);
  }
  return false;
}

static bool selectors_match(struct pattern *const sel[3], const char *file,
                            const char *module, const char *function) {
  const char *names[3] = {file, module, function};
  for (int k = 0; k < 3; k++) {
    if (sel[k] && !pattern_match(sel[k], names[k]))
      return false;
  }
  return true;
}

int ctr_filter_decide(const ctr_filter_t *f, const char *file,
                      const char *module, const char *function) {
  if (!f)
    return CTR_FILTER_RECORD;
  for (size_t i = f->nrules; i-- > 0;) {
    if (selectors_match(f->rules[i].sel, file, module, function))
      return f->rules[i].action;
  }
  return CTR_FILTER_RECORD;
}

int ctr_filter_decide_file(const ctr_filter_t *f, const char *file,
                           bool *uniform) {
  /* The actions of later rules that name a module or function. */
  unsigned named = 0;
  int action = CTR_FILTER_RECORD;

  if (f) {
    for (size_t i = f->nrules; i-- > 0;) {
      struct pattern *const *sel = f->rules[i].sel;
      if (sel[CTR_FILTER_FILE] && !pattern_match(sel[CTR_FILTER_FILE], file))
        continue;
      /* Decides for some functions of the file only, and for none without
       * a function name. */
      if (sel[CTR_FILTER_MODULE] || sel[CTR_FILTER_FUNCTION]) {
        named |= 1u << f->rules[i].action;
        continue;
      }
      action = f->rules[i].action;
      break;
    }
  }
  /* The same for every function when no later rule can decide otherwise. */
  *uniform = (named & ~(1u << action)) == 0;
  return action;
}

int ctr_filter_value(const ctr_filter_t *f, const char *file,
                     const char *module, const char *function, int where,
                     const char *name) {
  int action = CTR_FILTER_KEEP;

  if (!f)
    return action;
  for (size_t i = 0; i < f->nvalues && action < CTR_FILTER_DROP; i++) {
    const struct value_rule *v = &f->values[i];
    if (!(v->where & where) || v->action <= action)
      continue;
    if (v->name && !pattern_match(v->name, name))
      continue;
    if (selectors_match(v->sel, file, module, function))
      action = v->action;
  }
  return action;
}

static const char *const action_names[] = {"record", "skip", "skip-tree"};
static const char *const value_action_names[] = {"keep", "redact", "drop"};

const char *ctr_filter_action_name(int action) {
  return action >= 0 && action <= CTR_FILTER_SKIP_TREE ? action_names[action]
                                                       : "unknown";
}

const char *ctr_filter_value_action_name(int action) {
  return action >= 0 && action <= CTR_FILTER_DROP ? value_action_names[action]
                                                  : "unknown";
}

const char *ctr_filter_where_name(int where) {
  switch (where) {
  case CTR_FILTER_LOCALS:
    return "locals";
  case CTR_FILTER_ARGS:
    return "args";
  case CTR_FILTER_RETURN:
    return "return";
  case CTR_FILTER_ALL:
    return "all";
  default:
    return NULL;
  }
}

static void rule_text_free(ctr_filter_rule_t *r) {
  free((char *)r->file);
  free((char *)r->module);
  free((char *)r->function);
}

static void value_text_free(ctr_filter_value_rule_t *r) {
  free((char *)r->name);
  free((char *)r->file);
  free((char *)r->module);
  free((char *)r->function);
}

static void filter_destroy(ctr_filter_t *f) {
  for (size_t i = 0; i < f->nrules; i++) {
    for (int k = 0; k < 3; k++)
      pattern_free(f->rules[i].sel[k]);
    if (f->rule_text)
      rule_text_free(&f->rule_text[i]);
  }
  for (size_t i = 0; i < f->nvalues; i++) {
    pattern_free(f->values[i].name);
    for (int k = 0; k < 3; k++)
      pattern_free(f->values[i].sel[k]);
    if (f->value_text)
      value_text_free(&f->value_text[i]);
  }
  free(f->rules);
  free(f->rule_text);
  free(f->values);
  free(f->value_text);
  free(f);
}

ctr_filter_t *ctr_filter_ref(ctr_filter_t *f) {
  if (f)
    f->refs++;
  return f;
}

void ctr_filter_free(ctr_filter_t *f) {
  if (f && --f->refs == 0)
    filter_destroy(f);
}

/* Copies text and compiles it. On error, msg names the problem after the
 * caller's prefix and the slot is left NULL. */
static int compile_one(struct pattern **slot, const char **text_slot, int kind,
                       const char *text, char *err, size_t errlen,
                       const char *what, size_t index) {
  char msg[256];
  char *copy;
  int rc;

  if (!text)
    return 0;
  rc = ctr_filter_pattern_check(kind, text, msg, sizeof(msg));
  if (rc == 0) {
    if (!(copy = strdup(text)))
      return CTR_ENOMEM;
    *text_slot = copy;
    rc = pattern_new(slot, kind, copy);
  }
  if (rc == CTR_ECONFIG && err && errlen)
    snprintf(err, errlen, "%s[%zu].%s: %s", what, index, kind_keys[kind], msg);
  else if (rc == CTR_ENOMEM && err && errlen)
    snprintf(err, errlen, "out of memory");
  return rc;
}

static int compile_rule(ctr_filter_t *f, size_t i, const ctr_filter_rule_t *r,
                        size_t index, char *err, size_t errlen) {
  const char *texts[3] = {r->file, r->module, r->function};
  const char **slots[3] = {&f->rule_text[i].file, &f->rule_text[i].module,
                           &f->rule_text[i].function};
  int rc;

  f->rule_text[i].action = f->rules[i].action = r->action;
  if (r->action < CTR_FILTER_RECORD || r->action > CTR_FILTER_SKIP_TREE) {
    snprintf(err, errlen, "rules[%zu].action: unknown action %d", index,
             r->action);
    return CTR_ECONFIG;
  }
  if (!r->file && !r->module && !r->function) {
    snprintf(err, errlen,
             "rules[%zu]: needs at least one of file, module, function", index);
    return CTR_ECONFIG;
  }
  for (int k = 0; k < 3; k++) {
    if ((rc = compile_one(&f->rules[i].sel[k], slots[k], k, texts[k], err,
                          errlen, "rules", index)) != 0)
      return rc;
  }
  return 0;
}

static int compile_value(ctr_filter_t *f, size_t i,
                         const ctr_filter_value_rule_t *r, char *err,
                         size_t errlen) {
  const char *texts[3] = {r->file, r->module, r->function};
  const char **slots[3] = {&f->value_text[i].file, &f->value_text[i].module,
                           &f->value_text[i].function};
  struct value_rule *v = &f->values[i];
  int rc;

  v->where = f->value_text[i].where = r->where;
  v->action = f->value_text[i].action = r->action;
  if (r->action != CTR_FILTER_REDACT && r->action != CTR_FILTER_DROP) {
    snprintf(err, errlen, "values[%zu].action: unknown action %d", i,
             r->action);
    return CTR_ECONFIG;
  }
  if (r->where <= 0 || r->where > CTR_FILTER_ALL) {
    snprintf(err, errlen, "values[%zu].in: unknown place %d", i, r->where);
    return CTR_ECONFIG;
  }
  if ((rc = compile_one(&v->name, &f->value_text[i].name, CTR_FILTER_NAME,
                        r->name, err, errlen, "values", i)) != 0)
    return rc;
  for (int k = 0; k < 3; k++) {
    if ((rc = compile_one(&v->sel[k], slots[k], k, texts[k], err, errlen,
                          "values", i)) != 0)
      return rc;
  }
  return 0;
}

int ctr_filter_compile(ctr_filter_t **out, const ctr_filter_spec_t *spec,
                       char *err, size_t errlen) {
  char msg[512];
  ctr_filter_t *f = calloc(1, sizeof(*f));
  size_t nb = spec->defaults ? N_BUILTINS : 0, n = nb + spec->nrules;
  int rc = 0;

  if (!err || errlen == 0)
    err = msg, errlen = sizeof(msg);
  if (!f)
    goto nomem;
  f->refs = 1;
  f->nbuiltin = nb;
  f->rules = calloc(n ? n : 1, sizeof(*f->rules));
  f->rule_text = calloc(n ? n : 1, sizeof(*f->rule_text));
  f->values = calloc(spec->nvalues ? spec->nvalues : 1, sizeof(*f->values));
  f->value_text =
      calloc(spec->nvalues ? spec->nvalues : 1, sizeof(*f->value_text));
  if (!f->rules || !f->rule_text || !f->values || !f->value_text)
    goto nomem;
  /* Counts grow as entries are filled, so that a failure frees exactly
   * what was built. */
  for (size_t i = 0; i < n && rc == 0; i++) {
    const ctr_filter_rule_t *r = i < nb ? &builtins[i] : &spec->rules[i - nb];
    f->nrules = i + 1;
    rc = compile_rule(f, i, r, i < nb ? i : i - nb, err, errlen);
  }
  for (size_t i = 0; i < spec->nvalues && rc == 0; i++) {
    f->nvalues = i + 1;
    rc = compile_value(f, i, &spec->values[i], err, errlen);
  }
  if (rc != 0) {
    filter_destroy(f);
    return rc;
  }
  *out = f;
  return 0;
nomem:
  if (f)
    filter_destroy(f);
  snprintf(err, errlen, "out of memory");
  return CTR_ENOMEM;
}

const ctr_filter_rule_t *ctr_filter_rules(const ctr_filter_t *f, size_t *n) {
  *n = f ? f->nrules : 0;
  return f ? f->rule_text : NULL;
}

size_t ctr_filter_builtin_count(const ctr_filter_t *f) {
  return f ? f->nbuiltin : 0;
}

const ctr_filter_value_rule_t *ctr_filter_values(const ctr_filter_t *f,
                                                 size_t *n) {
  *n = f ? f->nvalues : 0;
  return f ? f->value_text : NULL;
}

const ctr_filter_rule_t *ctr_filter_builtins(size_t *n) {
  *n = N_BUILTINS;
  return builtins;
}

/* Writes s as a double-quoted YAML scalar. Patterns come from YAML or from
 * code, so only the characters YAML cannot hold raw need escapes. */
static void print_quoted(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(out, "\\%c", c);
    else if (c < 0x20 || c == 0x7f)
      fprintf(out, "\\x%02X", c);
    else
      fputc(c, out);
  }
  fputc('"', out);
}

static void print_selectors(FILE *out, const char *const texts[3]) {
  for (int k = 0; k < 3; k++) {
    if (!texts[k])
      continue;
    fprintf(out, "%s: ", kind_keys[k]);
    print_quoted(out, texts[k]);
    fputs(", ", out);
  }
}

void ctr_filter_print_rule(const ctr_filter_rule_t *r, FILE *out) {
  const char *texts[3] = {r->file, r->module, r->function};
  fputc('{', out);
  print_selectors(out, texts);
  fprintf(out, "action: %s}", ctr_filter_action_name(r->action));
}

void ctr_filter_print_value_rule(const ctr_filter_value_rule_t *r, FILE *out) {
  const char *texts[3] = {r->file, r->module, r->function};
  const char *where = ctr_filter_where_name(r->where);

  fputc('{', out);
  if (r->name) {
    fputs("name: ", out);
    print_quoted(out, r->name);
    fputs(", ", out);
  }
  print_selectors(out, texts);
  if (where) {
    fprintf(out, "in: %s, ", where);
  } else {
    const char *sep = "";
    fputs("in: [", out);
    for (int bit = CTR_FILTER_LOCALS; bit <= CTR_FILTER_RETURN; bit <<= 1) {
      if (r->where & bit)
        fprintf(out, "%s%s", sep, ctr_filter_where_name(bit)), sep = ", ";
    }
    fputs("], ", out);
  }
  fprintf(out, "action: %s}", ctr_filter_value_action_name(r->action));
}

void ctr_filter_describe(const ctr_filter_t *f, FILE *out, int indent) {
  size_t n = f ? f->nrules : 0, nv = f ? f->nvalues : 0;

  fprintf(out, "%*sdefaults: false\n", indent, "");
  fprintf(out, "%*srules:%s\n", indent, "", n ? "" : " []");
  for (size_t i = 0; i < n; i++) {
    fprintf(out, "%*s  - ", indent, "");
    ctr_filter_print_rule(&f->rule_text[i], out);
    fputs(i < f->nbuiltin ? "  # built-in\n" : "\n", out);
  }
  fprintf(out, "%*svalues:%s\n", indent, "", nv ? "" : " []");
  for (size_t i = 0; i < nv; i++) {
    fprintf(out, "%*s  - ", indent, "");
    ctr_filter_print_value_rule(&f->value_text[i], out);
    fputc('\n', out);
  }
}

/* Length of Ruby's constant path before the method, 0 when none. */
static size_t ruby_module_len(const char *lang, const char *function) {
  const char *cut;

  if (lang == NULL || strcmp(lang, "ruby") != 0)
    return 0;
  cut = strrchr(function, '#');
  if (cut == NULL)
    cut = strrchr(function, '.');
  return cut && cut > function ? (size_t)(cut - function) : 0;
}

int ctr_filter_names(const char *lang, const char *module, const char *name,
                     char **module_out, char **function_out) {
  bool declared = module != NULL;
  size_t n = strlen(name), mn = declared ? strlen(module) : 0;

  *module_out = *function_out = NULL;
  if (!declared && (mn = ruby_module_len(lang, name)) > 0)
    module = name;
  if (module != NULL && (*module_out = strndup(module, mn)) == NULL)
    return CTR_ENOMEM;
  if (declared) {
    *function_out = malloc(mn + 1 + n + 1);
    if (*function_out != NULL)
      snprintf(*function_out, mn + 1 + n + 1, "%s.%s", module, name);
  } else {
    *function_out = strdup(name);
  }
  if (*function_out == NULL) {
    free(*module_out);
    *module_out = NULL;
    return CTR_ENOMEM;
  }
  return 0;
}
