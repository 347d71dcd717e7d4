/* ctr_pack.c: packs every ctrec message and value (layouts in ctr_proto.h).
 *
 * Text the program produced (source files, output, string values, exception
 * messages) is packed as msgpack bin because it need not be valid UTF-8;
 * names, paths and other protocol text are packed as str. Decoders accept
 * either wherever text is expected. */
#include "ctr_proto.h"
#include "ctr_enc.h"

#include <stdio.h>
#include <string.h>

/* Messages on the hot path (steps, calls, variables, scalar values) are
 * encoded into a small stack buffer with ctr_enc.h and handed to the
 * packer's callback once: msgpack-c calls the callback, an append to the
 * client's batch, for every item. */
typedef struct ctr_enc_buf_s {
  unsigned char b[64];
  unsigned char *p;
} ctr_enc_buf_t;

#define ENC_BEGIN(e) ctr_enc_buf_t e; e.p = e.b

static void enc_put(msgpack_packer *pk, const ctr_enc_buf_t *e) {
  pk->callback(pk->data, (const char *)e->b, (size_t)(e->p - e->b));
}

/* The encoded head, then `n` bytes of text as a str or bin. */
static void enc_put_text(msgpack_packer *pk, ctr_enc_buf_t *e, bool bin,
                         const char *s, size_t n) {
  e->p = ctr_enc_text_head(e->p, bin, n);
  enc_put(pk, e);
  if (n > 0)
    pk->callback(pk->data, s, n);
}

/* A NULL text with a zero length is the empty string, so callers can pass
 * optional fields straight through. */
static void pack_str(msgpack_packer *pk, const char *s, size_t n) {
  msgpack_pack_str_with_body(pk, s ? s : "", s ? n : 0);
}

static void pack_bin(msgpack_packer *pk, const char *s, size_t n) {
  msgpack_pack_bin_with_body(pk, s ? s : "", s ? n : 0);
}

static void pack_cstr(msgpack_packer *pk, const char *s) {
  pack_str(pk, s, s ? strlen(s) : 0);
}

static void pack_key(msgpack_packer *pk, const char *key) {
  msgpack_pack_str_with_body(pk, key, strlen(key));
}

static void pack_head(msgpack_packer *pk, uint32_t n, int tag) {
  msgpack_pack_array(pk, n);
  msgpack_pack_int(pk, tag);
}

static void pack_bool(msgpack_packer *pk, bool b) {
  if (b)
    msgpack_pack_true(pk);
  else
    msgpack_pack_false(pk);
}

/* record.values as WELCOME and FILTER name it. */
static const char *values_name(int values) {
  return values == CTR_WV_NONE   ? "none"
         : values == CTR_WV_ARGS ? "args"
                                 : "all";
}

/* ---- handshake and end ------------------------------------------------ */

void ctr_pack_hello(msgpack_packer *pk, const ctr_hello_t *h, int argc,
                    const char *const *argv) {
  pack_head(pk, 2, CTR_MSG_HELLO);
  msgpack_pack_map(pk, 12);
  pack_key(pk, "version");
  msgpack_pack_uint32(pk, h->version);
  pack_key(pk, "role");
  pack_str(pk, h->role.ptr, h->role.len);
  pack_key(pk, "lang");
  pack_str(pk, h->lang.ptr, h->lang.len);
  pack_key(pk, "lang_version");
  pack_str(pk, h->lang_version.ptr, h->lang_version.len);
  pack_key(pk, "shim_version");
  pack_str(pk, h->shim_version.ptr, h->shim_version.len);
  pack_key(pk, "pid");
  msgpack_pack_int64(pk, h->pid);
  pack_key(pk, "ppid");
  msgpack_pack_int64(pk, h->ppid);
  pack_key(pk, "program");
  pack_str(pk, h->program.ptr, h->program.len);
  pack_key(pk, "args");
  if (argv != NULL && argc >= 0) {
    msgpack_pack_array(pk, (size_t)argc);
    for (int i = 0; i < argc; i++)
      pack_cstr(pk, argv[i]);
  } else if (h->args != NULL) {
    msgpack_pack_object(pk, *h->args);
  } else {
    msgpack_pack_array(pk, 0);
  }
  pack_key(pk, "cwd");
  pack_str(pk, h->cwd.ptr, h->cwd.len);
  pack_key(pk, "realtime_ns");
  msgpack_pack_int64(pk, h->realtime_ns);
  pack_key(pk, "mono_ns");
  msgpack_pack_int64(pk, h->mono_ns);
}

static void pack_opt_str(msgpack_packer *pk, const char *s) {
  if (s)
    pack_cstr(pk, s);
  else
    msgpack_pack_nil(pk);
}

static void pack_rules(msgpack_packer *pk, const ctr_wire_rule_t *r,
                       uint32_t n) {
  uint32_t i;

  msgpack_pack_array(pk, n);
  for (i = 0; i < n; i++) {
    msgpack_pack_array(pk, 4);
    pack_opt_str(pk, r[i].file);
    pack_opt_str(pk, r[i].module);
    pack_opt_str(pk, r[i].function);
    msgpack_pack_int(pk, r[i].action);
  }
}

void ctr_pack_filter(msgpack_packer *pk, const ctr_wire_rule_t *rules,
                     uint32_t n, int values) {
  pack_head(pk, 3, CTR_MSG_FILTER);
  pack_rules(pk, rules, n);
  pack_cstr(pk, values_name(values));
}

void ctr_pack_stack_begin(msgpack_packer *pk, uint64_t thread,
                          uint32_t nframes) {
  pack_head(pk, 3, CTR_MSG_STACK);
  msgpack_pack_uint64(pk, thread);
  msgpack_pack_array(pk, nframes);
}

void ctr_pack_frame_begin(msgpack_packer *pk, uint32_t func_id, int64_t line,
                          uint32_t nvars) {
  ENC_BEGIN(e);
  e.p = ctr_enc_array(e.p, 3);
  e.p = ctr_enc_uint(e.p, func_id);
  e.p = ctr_enc_int(e.p, line);
  e.p = ctr_enc_array(e.p, nvars);
  enc_put(pk, &e);
}

void ctr_pack_welcome(msgpack_packer *pk, const ctr_welcome_t *w) {
  pack_head(pk, 2, CTR_MSG_WELCOME);
  msgpack_pack_map(pk, 14);
  pack_key(pk, "session");
  msgpack_pack_uint64(pk, w->session);
  pack_key(pk, "state");
  pack_cstr(pk, w->recording ? "recording" : "paused");
  pack_key(pk, "flush_ms");
  msgpack_pack_uint32(pk, w->flush_ms);
  pack_key(pk, "max_depth");
  msgpack_pack_uint32(pk, w->max_depth);
  pack_key(pk, "max_length");
  msgpack_pack_uint32(pk, w->max_length);
  pack_key(pk, "max_string");
  msgpack_pack_uint32(pk, w->max_string);
  pack_key(pk, "max_nodes");
  msgpack_pack_uint32(pk, w->max_nodes);
  pack_key(pk, "refs");
  msgpack_pack_uint32(pk, w->refs);
  pack_key(pk, "wait_ms");
  msgpack_pack_uint32(pk, w->wait_ms);
  pack_key(pk, "buffer");
  msgpack_pack_uint32(pk, w->buffer);
  pack_key(pk, "values");
  pack_cstr(pk, values_name(w->values));
  pack_key(pk, "filter");
  pack_rules(pk, w->rules, w->nrules);
  pack_key(pk, "pushdown");
  pack_bool(pk, w->pushdown);
  pack_key(pk, "program_control");
  pack_bool(pk, w->program_control);
}

void ctr_pack_error(msgpack_packer *pk, int code, const char *text) {
  pack_head(pk, 3, CTR_MSG_ERROR);
  msgpack_pack_int(pk, code);
  pack_cstr(pk, text ? text : ctr_strerror(code));
}

void ctr_pack_bye(msgpack_packer *pk, int64_t status) {
  pack_head(pk, 2, CTR_MSG_BYE);
  msgpack_pack_int64(pk, status);
}

/* ---- interning -------------------------------------------------------- */

void ctr_pack_path(msgpack_packer *pk, uint32_t id, const char *p, size_t n) {
  pack_head(pk, 3, CTR_MSG_PATH);
  msgpack_pack_uint32(pk, id);
  pack_str(pk, p, n);
}

void ctr_pack_func(msgpack_packer *pk, uint32_t id, uint32_t path_id,
                   int64_t line, const char *name, size_t n) {
  ctr_pack_func_in(pk, id, path_id, line, name, n, NULL, 0);
}

void ctr_pack_func_in(msgpack_packer *pk, uint32_t id, uint32_t path_id,
                      int64_t line, const char *name, size_t n,
                      const char *module, size_t mn) {
  pack_head(pk, module ? 6 : 5, CTR_MSG_FUNC);
  msgpack_pack_uint32(pk, id);
  msgpack_pack_uint32(pk, path_id);
  msgpack_pack_int64(pk, line);
  pack_str(pk, name, n);
  if (module)
    pack_str(pk, module, mn);
}

void ctr_pack_type(msgpack_packer *pk, uint32_t id, int kind, const char *name,
                   size_t n) {
  pack_head(pk, 4, CTR_MSG_TYPE);
  msgpack_pack_uint32(pk, id);
  msgpack_pack_int(pk, kind);
  pack_str(pk, name, n);
}

void ctr_pack_varname(msgpack_packer *pk, uint32_t id, const char *name,
                      size_t n) {
  pack_head(pk, 3, CTR_MSG_VARNAME);
  msgpack_pack_uint32(pk, id);
  pack_str(pk, name, n);
}

void ctr_pack_source(msgpack_packer *pk, uint32_t path_id, const char *text,
                     size_t n) {
  pack_head(pk, 3, CTR_MSG_SOURCE);
  msgpack_pack_uint32(pk, path_id);
  pack_bin(pk, text, n);
}

/* ---- execution -------------------------------------------------------- */

void ctr_pack_step(msgpack_packer *pk, uint32_t path_id, int64_t line) {
  ENC_BEGIN(e);
  e.p = ctr_enc_step(e.p, path_id, line);
  enc_put(pk, &e);
}

void ctr_pack_call_begin(msgpack_packer *pk, uint32_t func_id, uint32_t nargs) {
  ENC_BEGIN(e);
  e.p = ctr_enc_head(e.p, 3, CTR_MSG_CALL);
  e.p = ctr_enc_uint(e.p, func_id);
  e.p = ctr_enc_array(e.p, nargs);
  enc_put(pk, &e);
}

void ctr_pack_return_begin(msgpack_packer *pk) {
  ENC_BEGIN(e);
  e.p = ctr_enc_head(e.p, 2, CTR_MSG_RETURN);
  enc_put(pk, &e);
}

void ctr_pack_vars_begin(msgpack_packer *pk, uint32_t nvars) {
  ENC_BEGIN(e);
  e.p = ctr_enc_head(e.p, 2, CTR_MSG_VARS);
  e.p = ctr_enc_array(e.p, nvars);
  enc_put(pk, &e);
}

void ctr_pack_pair_begin(msgpack_packer *pk, uint32_t varname_id) {
  ENC_BEGIN(e);
  e.p = ctr_enc_array(e.p, 2);
  e.p = ctr_enc_uint(e.p, varname_id);
  enc_put(pk, &e);
}

void ctr_pack_event(msgpack_packer *pk, int kind, const char *text, size_t n) {
  pack_head(pk, 3, CTR_MSG_EVENT);
  msgpack_pack_int(pk, kind);
  pack_bin(pk, text, n);
}

void ctr_pack_output(msgpack_packer *pk, int kind, const char *text,
                     size_t n) {
  do {
    size_t k = n > CTR_OUTPUT_PIECE ? CTR_OUTPUT_PIECE : n;
    ctr_pack_event(pk, kind, text, k);
    text += k;
    n -= k;
  } while (n > 0);
}

void ctr_pack_raise(msgpack_packer *pk, const char *cls, size_t cn,
                    const char *text, size_t tn) {
  pack_head(pk, 3, CTR_MSG_RAISE);
  pack_str(pk, cls, cn);
  pack_bin(pk, text, tn);
}

/* [tag, u64]: THREAD, TIME, FLUSH, FLUSHED. */
static void pack_tag_u64(msgpack_packer *pk, int tag, uint64_t v) {
  ENC_BEGIN(e);
  e.p = ctr_enc_head(e.p, 2, tag);
  e.p = ctr_enc_uint(e.p, v);
  enc_put(pk, &e);
}

void ctr_pack_thread(msgpack_packer *pk, uint64_t id) {
  pack_tag_u64(pk, CTR_MSG_THREAD, id);
}

void ctr_pack_time(msgpack_packer *pk, uint64_t ns) {
  pack_tag_u64(pk, CTR_MSG_TIME, ns);
}

void ctr_pack_mark(msgpack_packer *pk, const char *text, size_t n) {
  pack_head(pk, 2, CTR_MSG_MARK);
  pack_str(pk, text, n);
}

void ctr_pack_record(msgpack_packer *pk, bool on) {
  pack_head(pk, 2, CTR_MSG_RECORD);
  pack_bool(pk, on);
}

void ctr_pack_lost(msgpack_packer *pk, uint64_t count, const char *cause) {
  pack_head(pk, 3, CTR_MSG_LOST);
  msgpack_pack_uint64(pk, count);
  pack_cstr(pk, cause);
}

void ctr_pack_simple(msgpack_packer *pk, int tag) { pack_head(pk, 1, tag); }

void ctr_pack_select(msgpack_packer *pk, int tag, bool all,
                     const uint64_t *ids, uint32_t nids, int64_t pid) {
  uint32_t i;

  pack_head(pk, 2, tag);
  msgpack_pack_map(pk, 3);
  msgpack_pack_str_with_body(pk, "all", 3);
  pack_bool(pk, all);
  msgpack_pack_str_with_body(pk, "sessions", 8);
  msgpack_pack_array(pk, nids);
  for (i = 0; i < nids; i++)
    msgpack_pack_uint64(pk, ids[i]);
  msgpack_pack_str_with_body(pk, "pid", 3);
  msgpack_pack_int64(pk, pid);
}

void ctr_pack_done(msgpack_packer *pk, int64_t count, const char *text) {
  pack_head(pk, 3, CTR_MSG_DONE);
  msgpack_pack_int64(pk, count);
  pack_str(pk, text ? text : "", text ? strlen(text) : 0);
}

void ctr_pack_flush(msgpack_packer *pk, int tag, uint64_t token) {
  pack_tag_u64(pk, tag, token);
}

void ctr_pack_status_reply(msgpack_packer *pk, uint32_t n, bool daemon) {
  pack_head(pk, daemon ? 3 : 2, CTR_MSG_STATUS_REPLY);
  msgpack_pack_array(pk, n);
}

void ctr_pack_kv_str(msgpack_packer *pk, const char *key, const char *val) {
  pack_key(pk, key);
  pack_cstr(pk, val);
}

void ctr_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t val) {
  pack_key(pk, key);
  msgpack_pack_uint64(pk, val);
}

/* ---- values ----------------------------------------------------------- */

void ctr_pack_v_none(msgpack_packer *pk, uint32_t tid) {
  ENC_BEGIN(e);
  e.p = ctr_enc_value_head(e.p, 2, CTR_V_NONE, tid);
  enc_put(pk, &e);
}

void ctr_pack_v_bool(msgpack_packer *pk, uint32_t tid, bool b) {
  ENC_BEGIN(e);
  e.p = ctr_enc_value_head(e.p, 3, CTR_V_BOOL, tid);
  e.p = ctr_enc_bool(e.p, b);
  enc_put(pk, &e);
}

void ctr_pack_v_int(msgpack_packer *pk, uint32_t tid, int64_t i) {
  ENC_BEGIN(e);
  e.p = ctr_enc_value_head(e.p, 3, CTR_V_INT, tid);
  e.p = ctr_enc_int(e.p, i);
  enc_put(pk, &e);
}

void ctr_pack_v_float(msgpack_packer *pk, uint32_t tid, double f) {
  ENC_BEGIN(e);
  e.p = ctr_enc_value_head(e.p, 3, CTR_V_FLOAT, tid);
  e.p = ctr_enc_double(e.p, f);
  enc_put(pk, &e);
}

void ctr_pack_v_string(msgpack_packer *pk, uint32_t tid, const char *s,
                       size_t n) {
  ENC_BEGIN(e);
  e.p = ctr_enc_value_head(e.p, 3, CTR_V_STRING, tid);
  enc_put_text(pk, &e, true, s, n);
}

void ctr_pack_v_bigint(msgpack_packer *pk, uint32_t tid, bool negative,
                       const unsigned char *magnitude, size_t n) {
  ENC_BEGIN(e);
  e.p = ctr_enc_value_head(e.p, 4, CTR_V_BIGINT, tid);
  e.p = ctr_enc_bool(e.p, negative);
  enc_put_text(pk, &e, true, (const char *)magnitude, n);
}

void ctr_pack_v_bigint_over(msgpack_packer *pk, uint32_t tid, uint64_t bits) {
  char text[48];
  int n = snprintf(text, sizeof text, "<integer of %llu bits>",
                   (unsigned long long)bits);
  ctr_pack_v_raw(pk, tid, text, (size_t)n);
}

/* [vkind, tid, [n elements follow]] of SEQ, TUPLE and STRUCT. */
static void pack_v_container(msgpack_packer *pk, int vkind, uint32_t tid,
                             uint32_t n) {
  ENC_BEGIN(e);
  e.p = ctr_enc_value_head(e.p, 3, vkind, tid);
  e.p = ctr_enc_array(e.p, n);
  enc_put(pk, &e);
}

void ctr_pack_v_seq_begin(msgpack_packer *pk, uint32_t tid, uint32_t n) {
  pack_v_container(pk, CTR_V_SEQ, tid, n);
}

void ctr_pack_v_tuple_begin(msgpack_packer *pk, uint32_t tid, uint32_t n) {
  pack_v_container(pk, CTR_V_TUPLE, tid, n);
}

void ctr_pack_v_struct_begin(msgpack_packer *pk, uint32_t tid, uint32_t n) {
  pack_v_container(pk, CTR_V_STRUCT, tid, n);
}

void ctr_pack_v_raw(msgpack_packer *pk, uint32_t tid, const char *s, size_t n) {
  ENC_BEGIN(e);
  e.p = ctr_enc_value_head(e.p, 3, CTR_V_RAW, tid);
  enc_put_text(pk, &e, false, s ? s : "", s ? n : 0);
}

void ctr_pack_v_error(msgpack_packer *pk, uint32_t tid, const char *s,
                      size_t n) {
  ENC_BEGIN(e);
  e.p = ctr_enc_value_head(e.p, 3, CTR_V_ERROR, tid);
  enc_put_text(pk, &e, false, s ? s : "", s ? n : 0);
}
