/* ctr_traces.h: `ctrecctl ls`, `rm` and `gc`, the trace folders of an
 * output folder (ctr_tracedir.h says what a trace folder is, and which
 * ones are live; ctr_retain.h which ones gc deletes, as ctrecd does). */
#ifndef CTR_TRACES_H
#define CTR_TRACES_H

#include <stdint.h>

#include "ctr_jval.h"

/* Where `ctrecctl record` writes by default, and so where ls and gc look. */
#define CTR_TRACES_DEFAULT_DIR "ctrec-traces"

/* What trace_metadata.json says, for people; strings point into root and
 * are NULL when missing, numbers -1. */
typedef struct ctr_traces_meta_s {
  ctr_jval_t *root;
  const char *workdir, *program, *state;
  int64_t pid, exit_status, steps;
} ctr_traces_meta_t;

/* Reads dir/trace_metadata.json. Returns 0, or -1 when there is none or it
 * is not JSON (*m is then empty, and ctr_traces_meta_free safe). */
int ctr_traces_meta_read(const char *dir, ctr_traces_meta_t *m);
void ctr_traces_meta_free(ctr_traces_meta_t *m);

/* The verbs (argv[0] is the verb's name). Return ctrecctl's exit status:
 * 0 done, 1 a trace folder refused or not readable, 2 usage error. */
int ctr_traces_ls_main(int argc, char **argv);
int ctr_traces_rm_main(int argc, char **argv);
int ctr_traces_gc_main(int argc, char **argv);

#endif
