/* ctr_server.c: listener, flush timer, signals and orderly shutdown.
 *
 * Shutdown (SIGTERM/SIGINT): stop accepting, give recording clients a grace
 * period to finish (their traces complete normally), then end the remaining
 * sessions as aborted, flush every trace and close every handle so that
 * uv_loop_close() succeeds. */
#include "ctr_server.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctr_conn.h"
#include "ctr_listener.h"
#include "ctr_trace.h"
#include "ctr_writer.h"
#include "ctr_error.h"
#include "ctr_log.h"

#define GRACE_MS 3000

/* New clients refused (descriptors used up, or the connections the fd
 * limit leaves room for): said once until one is accepted again, so that a
 * flood cannot flood the log too. Connected clients go on being served. */
static void refusing(ctr_server_t *srv, const char *why) {
  srv->refused++;
  if (!srv->refusing)
    CTR_WARN("refusing new clients: %s (%u connections)", why, srv->nconns);
  srv->refusing = true;
}

static void on_connection(uv_stream_t *listener, int status) {
  ctr_server_t *srv = listener->data;
  int rc;

  if (status != 0) {
    /* libuv accepts and closes a client itself when out of descriptors. */
    refusing(srv, uv_strerror(status));
    return;
  }
  rc = ctr_conn_accept(srv, -1);
  if (rc == CTR_ELIMIT)
    refusing(srv, "as many connections as the descriptor limit allows");
  else if (rc != 0) {
    srv->refused++;
    CTR_WARN("cannot accept a connection: %s", ctr_strerror(rc));
  }
  else
    srv->refusing = false;
}

static void on_sweep_timer(uv_timer_t *t) {
  ctr_server_t *srv = t->data;
  ctr_conn_t *c, *next;

  for (c = ctr_conn_next(srv, NULL); c; c = next) {
    next = ctr_conn_next(srv, c);
    ctr_conn_sweep(c, uv_now(srv->loop));
  }
  ctr_fifo_sweep(&srv->fifo, uv_now(srv->loop), CTR_FIFO_STALE_MS);
}

/* The descriptors a daemon serving many clients needs: the soft limit
 * raised to the hard one; connections may use all but a reserve, so that
 * accept never meets EMFILE while trace files can still be opened. */
static uint32_t connection_room(void) {
  struct rlimit rl;

  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return 1000;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1u << 20)
    return 1u << 20;
  return rl.rlim_cur > 128 ? (uint32_t)(rl.rlim_cur - 64) : 64;
}

static void on_flush_timer(uv_timer_t *t) {
  ctr_server_t *srv = t->data;
  ctr_conn_t *c;

  for (c = ctr_conn_next(srv, NULL); c; c = ctr_conn_next(srv, c))
    ctr_conn_tick(c);
}

static void close_handles(ctr_server_t *srv) {
  if (uv_is_closing((uv_handle_t *)&srv->flush_timer))
    return;
  uv_close((uv_handle_t *)&srv->flush_timer, NULL);
  uv_close((uv_handle_t *)&srv->grace_timer, NULL);
  uv_close((uv_handle_t *)&srv->sweep_timer, NULL);
  ctr_gc_close(&srv->gc);
  uv_close((uv_handle_t *)&srv->sig_term, NULL);
  uv_close((uv_handle_t *)&srv->sig_int, NULL);
  uv_close((uv_handle_t *)&srv->sig_hup, NULL);
}

static void on_grace(uv_timer_t *t) {
  ctr_server_t *srv = t->data;

  ctr_conn_t *c;

  while ((c = ctr_conn_next(srv, NULL)) != NULL)
    ctr_conn_close(c, "daemon stopped while the client was running");
}

static void on_signal(uv_signal_t *sig, int signum) {
  ctr_server_t *srv = sig->data;

  CTR_INFO("%s: finishing %u session(s)", strsignal(signum), srv->nsessions);
  ctr_server_stop(srv);
}

/* Trace files get output.mode, their folders x where it has r: as the
 * umask, so that every file the daemon makes in a trace folder has it. */
static void apply_output_mode(const ctr_config_t *cfg) {
  mode_t dir = 0700 | ((cfg->output_mode & 0040) ? 0050 : 0) |
               ((cfg->output_mode & 0004) ? 0005 : 0);
  umask(0777 & ~dir);
}

/* Creates output.dir when missing and checks that traces can go there. */
static int output_dir_ready(const char *dir, char *err, size_t errlen) {
  int e = 0;

  /* Users reach their own traces in it whatever output.mode says. */
  if (mkdir(dir, 0755) == 0)
    (void)chmod(dir, 0755);
  else if (errno != EEXIST)
    e = errno;
  if (e == 0 && access(dir, W_OK | X_OK) != 0)
    e = errno;
  if (e != 0) {
    snprintf(err, errlen, "output.dir %s: %s", dir, strerror(e));
    return -e;
  }
  return 0;
}

int ctr_server_reload(ctr_server_t *srv, char *err, size_t errlen) {
  const ctr_config_t *cfg = NULL;
  const char *key;
  ctr_conn_t *c;
  int rc;

  if (srv->config_path == NULL) {
    snprintf(err, errlen, "no config file to reload (started without --config)");
    return CTR_ECONFIG;
  }
  rc = ctr_config_snapshot(&cfg, srv->config_path, srv->sets, srv->nsets, err,
                           errlen);
  if (rc == 0 && (key = ctr_config_restart_key(srv->cfg, cfg)) != NULL) {
    snprintf(err, errlen, "%s: needs a restart", key);
    rc = CTR_ECONFIG;
  }
  if (rc == 0 && strcmp(cfg->output_dir, srv->cfg->output_dir) != 0)
    rc = output_dir_ready(cfg->output_dir, err, errlen);
  if (rc != 0) {
    CTR_ERROR("reload rejected, the old configuration stays: %s", err);
    ctr_config_unref(cfg);
    return rc;
  }
  ctr_config_unref(srv->cfg);
  srv->cfg = cfg;
  apply_output_mode(cfg);
  ctr_log_level = cfg->log_level;
  uv_timer_start(&srv->flush_timer, on_flush_timer, cfg->flush_interval_ms,
                 cfg->flush_interval_ms);
  for (c = ctr_conn_next(srv, NULL); c; c = ctr_conn_next(srv, c))
    ctr_conn_reload(c, cfg);
  CTR_INFO("reloaded %s", srv->config_path);
  return 0;
}

static void on_hup(uv_signal_t *sig, int signum) {
  ctr_server_t *srv = sig->data;
  char err[1024];

  ctr_server_reload(srv, err, sizeof(err));
}

void ctr_server_conn_closed(ctr_server_t *srv) {
  if (srv->stopping && srv->conns == NULL)
    close_handles(srv);
}

/* Clients that connected but were not accepted yet (a daemon behind on a
 * crowd) are served through the grace period too: closing the listener
 * would reset them, and what they sent would be lost. */
static void accept_pending(ctr_server_t *srv) {
  uv_os_fd_t listen_fd;
  int fd;

  if (!srv->listener.open ||
      uv_fileno((uv_handle_t *)&srv->listener.pipe, &listen_fd) != 0)
    return;
  while (srv->nconns < srv->max_conns &&
         (fd = accept4(listen_fd, NULL, NULL,
                       SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
    if (ctr_conn_accept(srv, fd) != 0)
      srv->refused++;
}

void ctr_server_stop(ctr_server_t *srv) {
  ctr_conn_t *c, *next;

  if (srv->stopping)
    return;
  srv->stopping = true;
  accept_pending(srv);
  ctr_listener_close(&srv->listener);
  ctr_fifo_close(&srv->fifo);
  /* Control and follow connections have nothing to finish; one still
   * before its HELLO may be a program's, which has. */
  for (c = ctr_conn_next(srv, NULL); c; c = next) {
    next = ctr_conn_next(srv, c);
    if (ctr_conn_role(c) == CTR_ROLE_CONTROL ||
        ctr_conn_role(c) == CTR_ROLE_FOLLOW)
      ctr_conn_close(c, NULL);
  }
  if (srv->conns == NULL) {
    close_handles(srv);
    return;
  }
  uv_timer_start(&srv->grace_timer, on_grace, GRACE_MS, 0);
}

void ctr_server_session_ended(ctr_server_t *srv, const char *dir,
                              uint64_t steps, uint64_t calls, uint64_t events,
                              const char *state) {
  ctr_gc_kick(&srv->gc);
  if (srv->report_fd < 0)
    return;
  dprintf(srv->report_fd, "%s\t%llu\t%llu\t%llu\t%s\n", dir,
          (unsigned long long)steps, (unsigned long long)calls,
          (unsigned long long)events, state);
}

void ctr_server_free(ctr_server_t *srv) {
  ctr_config_unref(srv->cfg);
  srv->cfg = NULL;
}

int ctr_server_start(ctr_server_t *srv, uv_loop_t *loop,
                     const ctr_config_t *cfg, const char *config_path,
                     const ctr_config_override_t *sets, size_t nsets,
                     int report_fd, char *err, size_t errlen) {
  int rc;

  memset(srv, 0, sizeof(*srv));
  srv->loop = loop;
  srv->cfg = ctr_config_ref(cfg);
  srv->report_fd = report_fd;
  srv->config_path = config_path;
  srv->sets = sets;
  srv->nsets = nsets;
  apply_output_mode(cfg);
  rc = output_dir_ready(cfg->output_dir, err, errlen);
  if (rc != 0)
    return rc;
  rc = ctr_trace_recover(cfg->output_dir, ctr_writer_repair);
  if (rc > 0)
    CTR_WARN("marked %d trace(s) left by a stopped daemon as aborted", rc);
  /* An empty listen.path: named pipes only. */
  if (cfg->listen_path[0] == '\0' && cfg->listen_fifo_dir[0] == '\0') {
    snprintf(err, errlen, "listen.path and listen.fifo_dir are both empty: "
             "nothing to listen on");
    return CTR_ECONFIG;
  }
  rc = 0;
  if (cfg->listen_path[0])
    rc = ctr_listener_open(&srv->listener, loop, cfg->listen_path,
                           cfg->listen_mode, on_connection, err, errlen);
  srv->listener.pipe.data = srv;
  srv->fifo.dirfd = -1;
  if (rc == 0 && cfg->listen_fifo_dir[0])
    rc = ctr_fifo_open(&srv->fifo, srv, cfg->listen_fifo_dir, cfg->listen_mode,
                       err, errlen);
  if (rc != 0) {
    ctr_listener_close(&srv->listener);
    ctr_fifo_close(&srv->fifo);
    return rc;
  }
  srv->max_conns = connection_room();
  uv_timer_init(loop, &srv->flush_timer);
  uv_timer_init(loop, &srv->grace_timer);
  uv_timer_init(loop, &srv->sweep_timer);
  srv->flush_timer.data = srv->grace_timer.data = srv->sweep_timer.data = srv;
  uv_timer_start(&srv->sweep_timer, on_sweep_timer, 100, 100);
  uv_timer_start(&srv->flush_timer, on_flush_timer, cfg->flush_interval_ms,
                 cfg->flush_interval_ms);
  uv_signal_init(loop, &srv->sig_term);
  uv_signal_init(loop, &srv->sig_int);
  srv->sig_term.data = srv->sig_int.data = srv;
  uv_signal_start(&srv->sig_term, on_signal, SIGTERM);
  uv_signal_start(&srv->sig_int, on_signal, SIGINT);
  uv_signal_init(loop, &srv->sig_hup);
  srv->sig_hup.data = srv;
  uv_signal_start(&srv->sig_hup, on_hup, SIGHUP);
  ctr_gc_start(&srv->gc, loop, &srv->cfg);
  return 0;
}
