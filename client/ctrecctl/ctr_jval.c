/* ctr_jval.c: a small recursive descent JSON reader. */
#include "ctr_jval.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctr_alloc.h"

/* ctrecd nests values to its configured depth; this bound only keeps a
 * damaged file from exhausting the stack. */
#define MAX_DEPTH 256

typedef struct parser_s {
  const char *p, *end;
  int depth;
} parser_t;

static void skip_ws(parser_t *ps) {
  while (ps->p < ps->end &&
         (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
    ps->p++;
}

static ctr_jval_t *node(ctr_jval_type_t type) {
  ctr_jval_t *v = calloc(1, sizeof(*v));

  if (v)
    v->type = type;
  return v;
}

static void put_utf8(char *out, size_t *n, uint32_t cp) {
  if (cp < 0x80) {
    out[(*n)++] = (char)cp;
  } else if (cp < 0x800) {
    out[(*n)++] = (char)(0xc0 | (cp >> 6));
    out[(*n)++] = (char)(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out[(*n)++] = (char)(0xe0 | (cp >> 12));
    out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[(*n)++] = (char)(0x80 | (cp & 0x3f));
  } else {
    out[(*n)++] = (char)(0xf0 | (cp >> 18));
    out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[(*n)++] = (char)(0x80 | (cp & 0x3f));
  }
}

static int hex4(parser_t *ps, uint32_t *out) {
  uint32_t v = 0;
  int i;

  if (ps->end - ps->p < 4)
    return -1;
  for (i = 0; i < 4; i++) {
    char c = *ps->p++;
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (uint32_t)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (uint32_t)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (uint32_t)(c - 'A' + 10);
    else
      return -1;
  }
  *out = v;
  return 0;
}

/* Reads a string after its opening quote into a new NUL-terminated buffer.
 * The decoded text is never longer than the escaped one. */
static int parse_string(parser_t *ps, char **out, size_t *len) {
  const char *start = ps->p;
  char *buf;
  size_t n = 0;

  while (start < ps->end && *start != '"') {
    if (*start == '\\' && ++start == ps->end)
      return -1;
    start++;
  }
  if (start >= ps->end)
    return -1;
  buf = malloc((size_t)(start - ps->p) + 1);
  if (buf == NULL)
    return -1;
  while (ps->p < ps->end && *ps->p != '"') {
    unsigned char c = (unsigned char)*ps->p++;
    uint32_t cp, lo;
    if (c < 0x20)
      goto bad;
    if (c != '\\') {
      buf[n++] = (char)c;
      continue;
    }
    if (ps->p >= ps->end)
      goto bad;
    switch (*ps->p++) {
    case '"': buf[n++] = '"'; break;
    case '\\': buf[n++] = '\\'; break;
    case '/': buf[n++] = '/'; break;
    case 'b': buf[n++] = '\b'; break;
    case 'f': buf[n++] = '\f'; break;
    case 'n': buf[n++] = '\n'; break;
    case 'r': buf[n++] = '\r'; break;
    case 't': buf[n++] = '\t'; break;
    case 'u':
      if (hex4(ps, &cp) != 0)
        goto bad;
      /* A surrogate pair is one code point; a lone half becomes U+FFFD. */
      if (cp >= 0xd800 && cp < 0xdc00 && ps->end - ps->p >= 6 &&
          ps->p[0] == '\\' && ps->p[1] == 'u') {
        ps->p += 2;
        if (hex4(ps, &lo) != 0)
          goto bad;
        if (lo >= 0xdc00 && lo < 0xe000)
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        else
          cp = 0xfffd;
      } else if (cp >= 0xd800 && cp < 0xe000) {
        cp = 0xfffd;
      }
      put_utf8(buf, &n, cp);
      break;
    default: goto bad;
    }
  }
  if (ps->p >= ps->end)
    goto bad;
  ps->p++;
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return 0;
bad:
  free(buf);
  return -1;
}

static int parse_value(parser_t *ps, ctr_jval_t **out);

/* Reads the elements or members after an opening bracket or brace. */
static int parse_container(parser_t *ps, ctr_jval_t *v, char close) {
  ctr_jval_t **tail = &v->child;

  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == close) {
    ps->p++;
    return 0;
  }
  for (;;) {
    char *key = NULL;
    size_t klen;
    ctr_jval_t *item;
    if (close == '}') {
      skip_ws(ps);
      if (ps->p >= ps->end || *ps->p != '"')
        return -1;
      ps->p++;
      if (parse_string(ps, &key, &klen) != 0)
        return -1;
      skip_ws(ps);
      if (ps->p >= ps->end || *ps->p != ':') {
        free(key);
        return -1;
      }
      ps->p++;
    }
    if (parse_value(ps, &item) != 0) {
      free(key);
      return -1;
    }
    item->key = key;
    *tail = item;
    tail = &item->next;
    skip_ws(ps);
    if (ps->p >= ps->end)
      return -1;
    if (*ps->p == close) {
      ps->p++;
      return 0;
    }
    if (*ps->p != ',')
      return -1;
    ps->p++;
  }
}

static int parse_number(parser_t *ps, ctr_jval_t *v) {
  const char *start = ps->p;

  if (ps->p < ps->end && *ps->p == '-')
    ps->p++;
  while (ps->p < ps->end && strchr("0123456789.eE+-", *ps->p))
    ps->p++;
  if (ps->p == start || (ps->p == start + 1 && *start == '-'))
    return -1;
  v->len = (size_t)(ps->p - start);
  v->str = malloc(v->len + 1);
  if (v->str == NULL)
    return -1;
  memcpy(v->str, start, v->len);
  v->str[v->len] = '\0';
  return 0;
}

static bool literal(parser_t *ps, const char *word) {
  size_t n = strlen(word);

  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
    return false;
  ps->p += n;
  return true;
}

static int parse_value(parser_t *ps, ctr_jval_t **out) {
  ctr_jval_t *v;
  int rc = 0;

  skip_ws(ps);
  if (ps->p >= ps->end || ps->depth >= MAX_DEPTH)
    return -1;
  switch (*ps->p) {
  case '{':
  case '[':
    v = node(*ps->p == '{' ? CTR_JVAL_OBJ : CTR_JVAL_ARR);
    if (v == NULL)
      return -1;
    ps->p++;
    ps->depth++;
    rc = parse_container(ps, v, v->type == CTR_JVAL_OBJ ? '}' : ']');
    ps->depth--;
    break;
  case '"':
    v = node(CTR_JVAL_STR);
    if (v == NULL)
      return -1;
    ps->p++;
    rc = parse_string(ps, &v->str, &v->len);
    break;
  case 't':
  case 'f':
    v = node(CTR_JVAL_BOOL);
    if (v == NULL)
      return -1;
    v->b = *ps->p == 't';
    rc = literal(ps, v->b ? "true" : "false") ? 0 : -1;
    break;
  case 'n':
    v = node(CTR_JVAL_NULL);
    if (v == NULL)
      return -1;
    rc = literal(ps, "null") ? 0 : -1;
    break;
  default:
    v = node(CTR_JVAL_NUM);
    if (v == NULL)
      return -1;
    rc = parse_number(ps, v);
    break;
  }
  if (rc != 0) {
    ctr_jval_free(v);
    return -1;
  }
  *out = v;
  return 0;
}

int ctr_jval_parse(const char *text, size_t n, ctr_jval_t **out) {
  parser_t ps = {text, text + n, 0};
  ctr_jval_t *v;

  if (parse_value(&ps, &v) != 0)
    return -1;
  skip_ws(&ps);
  if (ps.p != ps.end) {
    ctr_jval_free(v);
    return -1;
  }
  *out = v;
  return 0;
}

void ctr_jval_free(ctr_jval_t *v) {
  while (v) {
    ctr_jval_t *next = v->next;
    ctr_jval_free(v->child);
    free(v->str);
    free(v->key);
    free(v);
    v = next;
  }
}

const ctr_jval_t *ctr_jval_get(const ctr_jval_t *obj, const char *key) {
  const ctr_jval_t *m;

  if (obj == NULL || obj->type != CTR_JVAL_OBJ)
    return NULL;
  for (m = obj->child; m; m = m->next)
    if (strcmp(m->key, key) == 0)
      return m;
  return NULL;
}

const char *ctr_jval_str(const ctr_jval_t *obj, const char *key) {
  const ctr_jval_t *v = ctr_jval_get(obj, key);

  return v && v->type == CTR_JVAL_STR ? v->str : NULL;
}

bool ctr_jval_i64(const ctr_jval_t *v, int64_t *out) {
  char *end;
  long long x;

  if (v == NULL || v->type != CTR_JVAL_NUM)
    return false;
  errno = 0;
  x = strtoll(v->str, &end, 10);
  if (*end || errno)
    return false;
  *out = x;
  return true;
}

static void *must(void *p) {
  if (p == NULL)
    ctr_oom(0);
  return p;
}

ctr_jval_t *ctr_jval_new(ctr_jval_type_t type, const char *str, size_t n) {
  ctr_jval_t *v = must(node(type));

  if (str) {
    v->str = must(malloc(n + 1));
    memcpy(v->str, str, n);
    v->str[n] = '\0';
    v->len = n;
  }
  return v;
}

ctr_jval_t *ctr_jval_add(ctr_jval_t *parent, const char *key,
                         ctr_jval_t *child) {
  ctr_jval_t **at = &parent->child;

  if (key)
    child->key = must(strdup(key));
  while (*at)
    at = &(*at)->next;
  *at = child;
  return child;
}

static void print_str(FILE *out, const char *s, size_t n) {
  size_t i;

  putc('"', out);
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\')
      fprintf(out, "\\%c", c);
    else if (c == '\n')
      fputs("\\n", out);
    else if (c < 0x20 || c == 0x7f)
      fprintf(out, "\\u%04x", c);
    else
      putc(c, out);
  }
  putc('"', out);
}

void ctr_jval_print(FILE *out, const ctr_jval_t *v) {
  const ctr_jval_t *c;

  switch (v->type) {
  case CTR_JVAL_NULL: fputs("null", out); break;
  case CTR_JVAL_BOOL: fputs(v->b ? "true" : "false", out); break;
  case CTR_JVAL_NUM: fputs(v->str, out); break;
  case CTR_JVAL_STR: print_str(out, v->str, v->len); break;
  case CTR_JVAL_ARR:
  case CTR_JVAL_OBJ:
    putc(v->type == CTR_JVAL_ARR ? '[' : '{', out);
    for (c = v->child; c; c = c->next) {
      if (c != v->child)
        putc(',', out);
      if (v->type == CTR_JVAL_OBJ) {
        print_str(out, c->key, strlen(c->key));
        putc(':', out);
      }
      ctr_jval_print(out, c);
    }
    putc(v->type == CTR_JVAL_ARR ? ']' : '}', out);
    break;
  }
}
