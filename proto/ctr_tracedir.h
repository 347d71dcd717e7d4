/* ctr_tracedir.h: the trace folders of an output folder, as the daemon's
 * output limits and `ctrecctl ls`, `rm` and `gc` see them.
 *
 * A trace folder is a folder holding ctrec's trace_metadata.json (one with
 * a "ctrec" object). It is live while its metadata says "recording" and the
 * daemon it names still runs; one whose daemon is gone is finished (the
 * next daemon on that output folder marks it aborted, ctr_trace_recover). */
#ifndef CTR_TRACEDIR_H
#define CTR_TRACEDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ctr_tracedir_s {
  char *path;      /* the folder, as root/name */
  int64_t started; /* seconds since the epoch; -1 when not known */
  int64_t ended;   /* when the interval ended; -1 while recording */
  int64_t time;    /* its age is counted from here: ended, else started,
                    * else the metadata's modification time */
  uint64_t size;   /* bytes on disk, everything in it */
  bool recording;  /* the metadata says so */
  bool live;       /* recording by a daemon that still runs */
  bool remove;     /* chosen by ctr_retain_select */
} ctr_tracedir_t;

/* Reads the trace folder dir into *out (path copied). Returns 0, or a
 * negative code when it is not a ctrec trace folder (CTR_EPATH) or
 * cannot be read (-errno). */
int ctr_tracedir_stat(const char *dir, ctr_tracedir_t *out);

/* The trace folders directly under root, in no order, in a heap array for
 * ctr_tracedir_list_free. Returns 0 or -errno when root cannot be read. */
int ctr_tracedir_list(const char *root, ctr_tracedir_t **out, size_t *n);
void ctr_tracedir_list_free(ctr_tracedir_t *v, size_t n);
void ctr_tracedir_free(ctr_tracedir_t *t);

/* Deletes the folder dir and everything in it, without following a
 * symbolic link. Returns 0 or -errno. */
int ctr_tracedir_remove(const char *dir);

#endif
