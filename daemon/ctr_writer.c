/* ctr_writer.c: what the trace writer's backends share: the "ctrec"
 * object of trace_metadata.json, the same in every format, the folder's
 * opening and the keys naming a writer's kept definition encodings. */
#include "ctr_writer.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctr_buf.h"
#include "ctr_trace.h"

int ctr_writer_open_folder(struct ctr_trace_s **t, const ctr_writer_opts_t *o,
                           bool json) {
  ctr_buf_t args = {0};
  size_t i;
  int rc;

  ctr_buf_add(&args, "[", 1);
  for (i = 0; i < o->nargs; i++) {
    if (i)
      ctr_buf_add(&args, ",", 1);
    ctr_json_str(&args, o->args[i], strlen(o->args[i]));
  }
  ctr_buf_add(&args, "]", 1);
  ctr_buf_add(&args, "", 1);
  rc = (json ? ctr_trace_open : ctr_trace_open_folder)(
      t, o->root, o->name, o->pid, o->started, o->interval, o->workdir,
      o->program, args.data, o->recording_id, o->owner);
  ctr_buf_free(&args);
  return rc;
}

int ctr_writer_repair(const char *dir) {
  const ctr_writer_backend_t *be[] = {&ctr_writer_json, &ctr_writer_ctfs};
  int rc = 0;

  for (size_t i = 0; i < sizeof(be) / sizeof(be[0]); i++)
    if (be[i]->repair && rc == 0)
      rc = be[i]->repair(dir);
  return rc;
}

uint64_t ctr_writer_key(void) {
  static uint64_t writers;
  return ++writers;
}

static void iso_time(ctr_buf_t *b, time_t t) {
  char tmp[32];
  struct tm tm;

  gmtime_r(&t, &tm);
  strftime(tmp, sizeof(tmp), "\"%Y-%m-%dT%H:%M:%SZ\"", &tm);
  ctr_buf_puts(b, tmp);
}

static void str_or_null(ctr_buf_t *b, const char *s) {
  if (s)
    ctr_json_str(b, s, strlen(s));
  else
    ctr_buf_puts(b, "null");
}

void ctr_writer_set_meta(ctr_trace_t *t, const ctr_writer_meta_t *m,
                         uint64_t records) {
  ctr_buf_t b = {0};

  ctr_buf_puts(&b, "{\"version\":\"" CTREC_VERSION "\",\"session\":");
  ctr_json_u64(&b, m->session);
  ctr_buf_puts(&b, ",\"daemon_pid\":");
  ctr_json_i64(&b, (int64_t)getpid());
  ctr_buf_puts(&b, ",\"state\":");
  str_or_null(&b, m->state);
  ctr_buf_puts(&b, ",\"lang\":");
  str_or_null(&b, m->lang);
  ctr_buf_puts(&b, ",\"lang_version\":");
  str_or_null(&b, m->lang_version);
  ctr_buf_puts(&b, ",\"pid\":");
  ctr_json_i64(&b, m->pid);
  ctr_buf_puts(&b, ",\"ppid\":");
  ctr_json_i64(&b, m->ppid);
  ctr_buf_puts(&b, ",\"uid\":");
  ctr_json_u64(&b, m->uid);
  ctr_buf_puts(&b, ",\"gid\":");
  ctr_json_u64(&b, m->gid);
  if (m->claimed_pid != m->pid) {
    /* A process in another pid namespace, or one that lies. */
    ctr_buf_puts(&b, ",\"claimed\":{\"pid\":");
    ctr_json_i64(&b, m->claimed_pid);
    ctr_buf_puts(&b, "}");
  }
  ctr_buf_puts(&b, ",\"interval\":{\"index\":");
  ctr_json_u64(&b, m->interval);
  ctr_buf_puts(&b, ",\"start\":");
  iso_time(&b, m->start);
  ctr_buf_puts(&b, ",\"end\":");
  if (m->end)
    iso_time(&b, m->end);
  else
    ctr_buf_puts(&b, "null");
  ctr_buf_puts(&b, ",\"end_reason\":");
  str_or_null(&b, m->end_reason);
  ctr_buf_puts(&b, "},\"exit_status\":");
  if (m->exited)
    ctr_json_i64(&b, m->exit_status);
  else
    ctr_buf_puts(&b, "null");
  ctr_buf_printf(&b,
                 ",\"counters\":{\"received\":%llu,\"records\":%llu,"
                 "\"steps\":%llu,\"calls\":%llu,\"returns\":%llu,"
                 "\"events\":%llu,\"filtered\":%llu,\"dropped\":%llu,"
                 "\"lost\":%llu},\"threads\":%u",
                 (unsigned long long)m->received,
                 (unsigned long long)records,
                 (unsigned long long)m->steps, (unsigned long long)m->calls,
                 (unsigned long long)m->returns, (unsigned long long)m->events,
                 (unsigned long long)m->filtered,
                 (unsigned long long)m->dropped, (unsigned long long)m->lost,
                 m->threads);
  ctr_buf_puts(&b, ",\"lost_by_cause\":{");
  for (uint32_t i = 0; i < m->nlost_causes; i++) {
    if (i)
      ctr_buf_puts(&b, ",");
    ctr_json_str(&b, m->lost_causes[i].name, strlen(m->lost_causes[i].name));
    ctr_buf_puts(&b, ":");
    ctr_json_u64(&b, m->lost_causes[i].n);
  }
  ctr_buf_puts(&b, "}");
  ctr_buf_puts(&b, ",\"values\":");
  str_or_null(&b, m->values);
  ctr_buf_puts(&b, ",\"filter\":");
  str_or_null(&b, m->filter);
  ctr_buf_add(&b, "}", 1);
  ctr_trace_set_meta(t, b.data, b.len);
  ctr_buf_free(&b);
}

