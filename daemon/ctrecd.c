/* ctrecd.c: the recording daemon's entry point.
 *
 * Module init runs in dependency order (config, log, server) and teardown in
 * exact reverse. Command line options override the config file, at start
 * and at every reload. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "ctr_alloc.h"
#include "ctr_config.h"
#include "ctr_error.h"
#include "ctr_log.h"
#include "ctr_server.h"

static void usage(FILE *out) {
  fputs("Usage: ctrecd [OPTIONS]\n"
        "Record Ruby and Python programs as CodeTracer traces.\n\n"
        "  -c, --config FILE     read ctrec.yaml (default: none, built-in defaults)\n"
        "  -l, --listen PATH     socket path (listen.path)\n"
        "  -o, --output DIR      trace output directory (output.dir)\n"
        "  -L, --log-level LEVEL error, warn, info or debug (log.level)\n"
        "      --set KEY=VALUE   set any config option, e.g. output.flush_interval_ms=50\n"
        "                        (these options also win over the file at every reload)\n"
        "      --print-config    print the effective configuration and exit\n"
        "      --ready-fd N      write \"ready\\n\" to fd N once listening\n"
        "      --report-fd N     write one line per finished trace to fd N\n"
        "  -h, --help            this help\n"
        "  -V, --version         print the version\n\n"
        "Environment: LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES, set by\n"
        "systemd's socket activation (ctrecd.socket), hand it its socket.\n\n"
        "Exit status: 0 after a stop by SIGTERM or SIGINT, --help, --version or\n"
        "--print-config; 1 when the configuration is invalid or it cannot\n"
        "listen; 2 for a usage error.\n",
        out);
}

int main(int argc, char **argv) {
  enum { OPT_PRINT = 256, OPT_READY, OPT_REPORT, OPT_SET };
  static const struct option opts[] = {
      {"config", required_argument, NULL, 'c'},
      {"listen", required_argument, NULL, 'l'},
      {"output", required_argument, NULL, 'o'},
      {"log-level", required_argument, NULL, 'L'},
      {"set", required_argument, NULL, OPT_SET},
      {"print-config", no_argument, NULL, OPT_PRINT},
      {"ready-fd", required_argument, NULL, OPT_READY},
      {"report-fd", required_argument, NULL, OPT_REPORT},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0}};
  /* Kept for the daemon's lifetime: every reload applies them again. */
  ctr_config_override_t *sets = ctr_xcalloc((size_t)argc, sizeof(*sets));
  int nsets = 0, opt, rc, ready_fd = -1, report_fd = -1, print = 0;
  const char *config_path = NULL;
  char err[1024];
  const ctr_config_t *cfg;
  ctr_server_t srv;
  uv_loop_t loop;


  while ((opt = getopt_long(argc, argv, "c:l:o:L:hV", opts, NULL)) != -1) {
    const char *name = NULL;
    switch (opt) {
    case 'c': config_path = optarg; break;
    case 'l': name = "listen.path"; break;
    case 'o': name = "output.dir"; break;
    case 'L': name = "log.level"; break;
    case OPT_SET: {
      char *eq = strchr(optarg, '=');
      if (eq == NULL) {
        fprintf(stderr, "ctrecd: --set %s: expected KEY=VALUE\n", optarg);
        return 2;
      }
      *eq = '\0';
      sets[nsets++] = (ctr_config_override_t){optarg, eq + 1, "--set"};
      continue;
    }
    case OPT_PRINT: print = 1; break;
    case OPT_READY: ready_fd = atoi(optarg); break;
    case OPT_REPORT: report_fd = atoi(optarg); break;
    case 'h': usage(stdout); return 0;
    case 'V': puts("ctrecd " CTREC_VERSION); return 0;
    default: usage(stderr); return 2;
    }
    if (name)
      sets[nsets++] = (ctr_config_override_t){name, optarg, argv[optind - 2]};
  }
  if (optind < argc) {
    fprintf(stderr, "ctrecd: unexpected argument: %s\n", argv[optind]);
    usage(stderr);
    return 2;
  }

  if (ctr_config_snapshot(&cfg, config_path, sets, (size_t)nsets, err,
                          sizeof(err)) != 0) {
    fprintf(stderr, "ctrecd: %s\n", err);
    free(sets);
    return 1;
  }
  if (print) {
    ctr_config_print(cfg, stdout);
    ctr_config_unref(cfg);
    free(sets);
    return 0;
  }
  ctr_log_level = cfg->log_level;
  /* Batches are unpacked and rendered through buffers of a few hundred KiB
   * that are released and reused all the time; without this, glibc hands
   * the top of the heap back after each and faults it in again. */
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  mallopt(M_MMAP_THRESHOLD, 16 << 20);
  /* Only the daemon ignores SIGPIPE: a vanished client is a read error.
   * A file-size limit (RLIMIT_FSIZE) is a full disk to it: write errors,
   * not death. */
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN);

  uv_loop_init(&loop);
  rc = ctr_server_start(&srv, &loop, cfg, config_path, sets, (size_t)nsets,
                        report_fd, err, sizeof(err));
  ctr_config_unref(cfg); /* the server holds its own reference */
  if (rc != 0) {
    CTR_ERROR("%s", err);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    ctr_server_free(&srv);
    free(sets);
    return 1;
  }
  CTR_INFO("listening on %s%s%s, writing traces to %s", srv.listener.path,
           srv.fifo.dirfd < 0 ? "" : srv.listener.open ? " and FIFOs in "
                                                       : "FIFOs in ",
           srv.fifo.dirfd >= 0 ? srv.fifo.dir : "", srv.cfg->output_dir);
  if (ready_fd >= 0) {
    if (write(ready_fd, "ready\n", 6) < 0)
      CTR_WARN("--ready-fd %d: %s", ready_fd, strerror(errno));
    close(ready_fd);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  rc = uv_loop_close(&loop);
  if (rc != 0)
    CTR_ERROR("event loop closed with open handles: %s", uv_strerror(rc));
  if (report_fd >= 0)
    close(report_fd);
  CTR_INFO("stopped");
  ctr_server_free(&srv);
  free(sets);
  return rc == 0 ? 0 : 1;
}
