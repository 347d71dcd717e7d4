/* ctr_show.c: `ctrecctl show TRACE_DIR`. */
#include "ctr_show.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr_reader.h"
#include "ctr_render.h"
#include "ctr_tracedir.h"
#include "ctr_traces.h"

static const char *prog_name = "ctrecctl";

static void usage(FILE *out) {
  fprintf(out,
          "Usage: %s show [--calls] [--steps FROM:TO] [--json] [--no-source] "
          "TRACE_DIR\n"
          "Print the trace in TRACE_DIR (trace.json or trace.ct, finished or\n"
          "still being recorded) as a step listing: each step as #STEP FILE:LINE\n"
          "with the source text of that line from the trace's files/ copy,\n"
          "indented by call depth; calls with their arguments, returns with\n"
          "their values, the variables that changed since the previous step\n"
          "of the same frame, and the program's output.\n\n"
          "  --calls          only calls and returns\n"
          "  --steps FROM:TO  only steps FROM to TO (either may be left out;\n"
          "                   N alone is N:N); other records belong to the step\n"
          "                   before them\n"
          "  --json           one JSON object per entry of the listing\n"
          "  --no-source      without source text\n\n"
          "Exit status: 0 done, 1 the trace cannot be read, 2 usage error.\n",
          prog_name);
}

static int usage_error(const char *what, const char *arg) {
  fprintf(stderr, "%s: show: %s%s\n", prog_name, what, arg ? arg : "");
  fprintf(stderr, "Try '%s show --help'.\n", prog_name);
  return 2;
}

/* One side of FROM:TO: digits, or nothing for an open side (-1). */
static bool parse_step(const char *s, size_t n, int64_t *out) {
  char *end;
  unsigned long long v;

  if (n == 0) {
    *out = -1;
    return true;
  }
  if (s[0] < '0' || s[0] > '9')
    return false;
  v = strtoull(s, &end, 10);
  if ((size_t)(end - s) != n || v > INT64_MAX)
    return false;
  *out = (int64_t)v;
  return true;
}

static bool parse_steps(const char *arg, int64_t *from, int64_t *to) {
  const char *colon = strchr(arg, ':');

  if (colon == NULL)
    return parse_step(arg, strlen(arg), from) && *from >= 0 &&
           (*to = *from, true);
  return parse_step(arg, (size_t)(colon - arg), from) &&
         parse_step(colon + 1, strlen(colon + 1), to) &&
         (*from < 0 || *to < 0 || *from <= *to);
}

int ctr_show_main(int argc, char **argv) {
  static const struct option opts[] = {
      {"calls", no_argument, NULL, 'c'}, {"steps", required_argument, NULL, 's'},
      {"json", no_argument, NULL, 'j'},  {"no-source", no_argument, NULL, 'n'},
      {"help", no_argument, NULL, 'h'},  {NULL, 0, NULL, 0}};
  ctr_render_opts_t ro = {.out = stdout, .source = true, .from = -1, .to = -1};
  ctr_traces_meta_t meta;
  ctr_tracedir_t td;
  ctr_reader_rec_t rec;
  ctr_reader_t *rd;
  ctr_render_t *r;
  const char *dir;
  bool recording, live;
  int opt, rc;

  optind = 1;
  while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
    switch (opt) {
    case 'c': ro.calls = true; break;
    case 'j': ro.json = true; break;
    case 'n': ro.source = false; break;
    case 's':
      if (!parse_steps(optarg, &ro.from, &ro.to))
        return usage_error("--steps: not FROM:TO step numbers: ", optarg);
      break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind != argc - 1)
    return usage_error(optind == argc ? "name one TRACE_DIR"
                                      : "unexpected argument: ",
                       optind == argc ? NULL : argv[optind + 1]);
  dir = argv[optind];
  /* Without metadata the folder is read as it is, as a finished trace. */
  recording = ctr_tracedir_stat(dir, &td) == 0 && td.recording;
  live = recording && td.live;
  ctr_tracedir_free(&td);
  ctr_traces_meta_read(dir, &meta);
  if ((rc = ctr_reader_open(&rd, dir, recording)) < 0) {
    fprintf(stderr, "%s: show: %s: %s\n", prog_name, dir,
            rc == -ENOENT ? "no trace here (neither trace.json nor trace.ct)"
                          : strerror(-rc));
    ctr_traces_meta_free(&meta);
    return 1;
  }
  ro.dir = dir;
  ro.workdir = meta.workdir;
  r = ctr_render_new(&ro);
  while ((rc = ctr_reader_next(rd, &rec)) == 1)
    ctr_render_record(r, rec.rec);
  ctr_render_flush(r);
  fflush(stdout);
  if (rc < 0)
    fprintf(stderr, "%s: show: %s: %s\n", prog_name, dir, ctr_reader_error(rd));
  else if (live)
    fprintf(stderr, "%s: show: %s is still being recorded: shown as far as "
            "written\n", prog_name, dir);
  ctr_render_free(r);
  ctr_reader_free(rd);
  ctr_traces_meta_free(&meta);
  return rc < 0 ? 1 : 0;
}
