/* ctr_log.h: daemon logging to stderr (journald adds its own timestamps). */
#ifndef CTR_LOG_H
#define CTR_LOG_H

#include "ctr_config.h"

extern int ctr_log_level;

void ctr_log_write(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define CTR_LOG(level, ...)                                                    \
  do {                                                                         \
    if ((level) <= ctr_log_level)                                              \
      ctr_log_write((level), __VA_ARGS__);                                     \
  } while (0)

#define CTR_ERROR(...) CTR_LOG(CTR_LOG_ERROR, __VA_ARGS__)
#define CTR_WARN(...) CTR_LOG(CTR_LOG_WARN, __VA_ARGS__)
#define CTR_INFO(...) CTR_LOG(CTR_LOG_INFO, __VA_ARGS__)
#define CTR_DEBUG(...) CTR_LOG(CTR_LOG_DEBUG, __VA_ARGS__)

#endif
