/* ctr_log.c: one line per message, level first, so journald and tests can
 * filter without parsing timestamps. */
#include "ctr_log.h"

#include <stdarg.h>
#include <stdio.h>

int ctr_log_level = CTR_LOG_INFO;

void ctr_log_write(int level, const char *fmt, ...) {
  char line[2048];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  fprintf(stderr, "ctrecd: %s: %s\n", ctr_log_level_name(level), line);
}
