/* ctr_log.c: one line per message, level first, so journald and tests can
 * filter without parsing timestamps. */
#include "ctr_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ctr_buf.h"

int ctr_log_level = CTR_LOG_INFO;

/* The whole line is made printable: messages carry client-supplied text
 * (program names, paths, protocol errors), which must not forge a line or
 * reach the reader's terminal as escape sequences. */
void ctr_log_write(int level, const char *fmt, ...) {
  char line[2048];
  ctr_buf_t out = {0};
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  fprintf(stderr, "ctrecd: %s: %s\n", ctr_log_level_name(level),
          ctr_buf_printable(&out, line, strlen(line)));
  ctr_buf_free(&out);
}
