/* ctfs_dump: prints the records of a trace folder as one JSON array in the
 * JSON trace's vocabulary, read through ctrecctl's own reader (ctr_reader),
 * so the integration suites read a trace.ct as they read a trace.json
 * (test-only, not installed).
 *
 *   ctfs_dump [--live] TRACE_DIR
 *
 * One record a line; --live reads a trace still being written (one not yet
 * a block long has no records yet). Exit status 0, or 1 with the reader's message on
 * stderr when the trace cannot be read. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ctr_reader.h"

int main(int argc, char **argv) {
  ctr_reader_t *t;
  ctr_reader_rec_t r;
  const char *dir = argv[argc - 1];
  bool live = argc == 3 && strcmp(argv[1], "--live") == 0;
  int rc, n = 0;

  if (argc != 2 && !live) {
    fprintf(stderr, "usage: ctfs_dump [--live] TRACE_DIR\n");
    return 2;
  }
  if ((rc = ctr_reader_open(&t, dir, live)) != 0) {
    fprintf(stderr, "ctfs_dump: %s: %s\n", dir, strerror(-rc));
    return 1;
  }
  putchar('[');
  while ((rc = ctr_reader_next(t, &r)) == 1) {
    fputs(n++ ? ",\n" : "\n", stdout);
    ctr_jval_print(stdout, r.rec);
  }
  puts("\n]");
  if (rc < 0)
    fprintf(stderr, "ctfs_dump: %s/%s: %s\n", dir, ctr_reader_file(t),
            ctr_reader_error(t));
  ctr_reader_free(t);
  return rc < 0 || fflush(stdout) != 0;
}
