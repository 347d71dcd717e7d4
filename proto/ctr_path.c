/* ctr_path.c: source paths as the protocol allows them. */
#include "ctr_path.h"

#include <string.h>

/* True when the component of n bytes at c is "." or "..". */
static bool ctr_path_dots(const char *c, size_t n) {
  return (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.');
}

size_t ctr_path_normalize(char *p) {
  size_t out = 0;
  const char *in = p;
  while (*in != '\0') {
    while (*in == '/')
      in++;
    size_t n = strcspn(in, "/");
    if (n == 0)
      break;
    if (n == 2 && ctr_path_dots(in, n)) {
      while (out > 0 && p[out - 1] != '/')
        out--;
      if (out > 0)
        out--;
    } else if (n != 1 || in[0] != '.') {
      /* out <= in - p: the copy never overtakes what is still to read. */
      p[out++] = '/';
      memmove(p + out, in, n);
      out += n;
    }
    in += n;
  }
  if (out == 0)
    p[out++] = '/';
  p[out] = '\0';
  return out;
}

bool ctr_path_ok(const char *p, size_t n) {
  if (n == 0 || memchr(p, '\0', n) != NULL)
    return false;
  if (p[0] == '<')
    return n >= 2 && p[n - 1] == '>' && memchr(p, '/', n) == NULL;
  if (p[0] != '/')
    return false;
  /* Every component names something: no "//", no trailing "/", not "/". */
  size_t start = 1;
  for (size_t i = 1; i <= n; i++) {
    if (i == n || p[i] == '/') {
      if (i == start || ctr_path_dots(p + start, i - start))
        return false;
      start = i + 1;
    }
  }
  return true;
}
