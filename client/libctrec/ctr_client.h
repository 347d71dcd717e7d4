/* ctr_client.h: libctrec, the in-process client shared by every shim.
 *
 * One client per process. It connects to $CT_RECORDER_SOCKET with a plain
 * blocking socket, does the HELLO/WELCOME handshake, and gives the shim a
 * msgpack packer over a batch buffer. Batches go to the daemon when they pass
 * the batch size, from a background thread every flush period (so events
 * arrive while the program sleeps), and at exit. It never installs signal
 * handlers (sends use MSG_NOSIGNAL). When the daemon is absent or goes away it
 * prints one line on stderr and turns itself off; the program runs on.
 * After fork() the child starts its own session on first use. */
#ifndef CTR_CLIENT_H
#define CTR_CLIENT_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctr_proto.h"

#define CTR_CLIENT_BATCH (64 * 1024)

typedef struct ctr_client_info_s {
  const char *lang;         /* "ruby" */
  const char *lang_version; /* "3.1.2" */
  const char *shim_version;
  const char *program;      /* absolute path of the script */
  int argc;                 /* program arguments, without the program */
  const char *const *argv;
} ctr_client_info_t;

/* Connects and handshakes when CT_RECORDER_SOCKET is set. Returns 0 when
 * recording, 1 when the variable is unset (nothing printed), or a negative
 * code after printing one "ctrec: ..." line on stderr. */
int ctr_client_start(const ctr_client_info_t *info);

/* True while connected (and not paused). Cheap: the shim calls it per event. */
bool ctr_client_active(void);

/* What the daemon asked for in WELCOME (valid after a 0 from start). */
const ctr_welcome_t *ctr_client_settings(void);

/* The daemon's code rules (WELCOME "filter", then FILTER messages), or
 * NULL to record everything. *generation (when not NULL) changes whenever
 * the rules or the values mode do, so shims can drop the decisions they
 * cached. */
const struct ctr_filter_s *ctr_client_filter(uint32_t *generation);

/* The values the daemon keeps (record.values: WELCOME "values", then
 * FILTER), an enum ctr_values_mode. */
int ctr_client_values(void);

/* False when the daemon asked the shim to skip nothing (filter.pushdown:
 * false); ctr_client_decide still answers with the rules. */
bool ctr_client_pushdown(void);

/* What the daemon will do with code of function (its FUNC name) in file:
 * CTR_FILTER_RECORD, CTR_FILTER_SKIP or CTR_FILTER_SKIP_TREE, decided with
 * the same engine and inputs as the daemon, so a shim that sends nothing
 * for skipped code produces the very same trace. */
int ctr_client_decide(const char *file, const char *function);
/* The same for a FUNC that names its module (ctr_pack_func_in). */
int ctr_client_decide_in(const char *file, const char *module,
                         const char *function);

/* Counts events (steps, calls, returns) the shim left out because the
 * pushed rules skip them; they reach the daemon as LOST "filtered", so the
 * trace metadata counts them as the daemon's own filtering would. */
void ctr_client_filtered(uint64_t n);

/* True once after the daemon resumed a paused session (RESUME): the shim
 * then sends its live call stack (STACK) before anything else. */
bool ctr_client_take_resume(void);

/* The program pauses (false) or resumes (true) its own recording
 * (ctrec.pause/resume, Ctrec.pause/resume): the client stops or starts
 * sending at once, and RECORD tells the daemon, which ends or opens the
 * interval as for ctrecctl stop and start. After a resume from a pause
 * the shim sends its stack first (ctr_client_take_resume). Does nothing
 * when not connected, or when the daemon did not say in WELCOME that it
 * takes RECORD. */
void ctr_client_record(bool on);

/* Mark texts (ctrec.mark) are cut to this many bytes: far below the
 * daemon's limits.max_string, so a mark never ends a session. */
#define CTR_CLIENT_MARK_MAX 65536

/* Brackets the packing of one or more complete messages. begin returns NULL
 * when the client is not active; otherwise the caller packs and calls end.
 * The pair holds the batch lock: pack nothing that can re-enter the shim. */
msgpack_packer *ctr_client_begin(void);
void ctr_client_end(void);

/* Inside begin/end: room for n more bytes at the end of the batch, for a
 * shim that encodes messages itself (ctr_enc.h), or NULL when memory ran
 * out. ctr_client_commit then appends the first `used` bytes of it; packing
 * through the packer in between is not allowed. */
unsigned char *ctr_client_reserve(size_t n);
void ctr_client_commit(size_t used);

/* The quick way to send one message of at most n bytes that needs nothing
 * else (no declaration, no packer): the place to encode it, with the batch
 * held until ctr_client_quick_done(end of the message). NULL, with nothing
 * held, when the general way (ctr_client_begin) must be taken: not
 * recording, a batch to start, or no room. */
unsigned char *ctr_client_quick(size_t n);
void ctr_client_quick_done(unsigned char *end);

/* Source text beyond this is not sent: it would pass the daemon's default
 * limits.max_string (4 MiB) once framed. */
#define CTR_CLIENT_SOURCE_MAX ((4u << 20) - 64)

/* The content of the regular file `file`, at most CTR_CLIENT_SOURCE_MAX
 * bytes of it (*len; *whole is false when there was more), malloc'd; NULL
 * when it cannot be read. */
char *ctr_client_read_source(const char *file, size_t *len, bool *whole);

/* Code compiled from strings (Ruby's eval, Python's exec and compile) gets
 * one pseudo path per distinct text, whose SOURCE it is, up to this many
 * texts and this many bytes of them in all; later ones share one
 * "over-limit" path, whose source says so. */
#define CTR_CLIENT_TEXTS_MAX 65536
#define CTR_CLIENT_TEXT_BYTES (64u << 20)

/* Room for ctr_client_reload_base's name. */
#define CTR_CLIENT_RELOAD_BASE 300

/* Writes into out "<reload:NAME>", NAME the last component of the path
 * file (at most 255 bytes, '<' and '>' made '_'): the pseudo path whose
 * numbered forms "<reload:NAME:N>" carry a file's later versions, since a
 * trace path has one content. Returns its length. */
size_t ctr_client_reload_base(const char *file,
                              char out[CTR_CLIENT_RELOAD_BASE]);

/* Packs SOURCE for path_id with the content of file, when it is a regular
 * file of at most CTR_CLIENT_SOURCE_MAX bytes; nothing otherwise. */
void ctr_client_pack_source(msgpack_packer *pk, uint32_t path_id,
                            const char *file);

/* Queues the batch and sends what is queued, waiting for a daemon that
 * does not read at most WELCOME's wait_ms. */
void ctr_client_flush(void);

/* Called from a fork child (pthread_atfork): the inherited batch belongs to
 * the parent and is dropped; the child reconnects as its own session at its
 * next ctr_client_begin, and the shim must re-send its interned ids (the
 * generation number changes). */
uint32_t ctr_client_generation(void);

/* Changes whenever the generation or the filter generation does: one load
 * tells a shim that neither moved since it last looked at them. */
uint32_t ctr_client_stamp(void);

/* Sends BYE with the exit status, flushes and closes. Idempotent. */
void ctr_client_finish(int64_t exit_status);

/* Monotonic clock in nanoseconds. */
uint64_t ctr_client_now_ns(void);

#endif
