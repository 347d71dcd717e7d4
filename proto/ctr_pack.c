/* ctr_pack.c: packs every ctrec message and value (layouts in ctr_proto.h).
 *
 * Text the program produced (source files, output, string values, exception
 * messages) is packed as msgpack bin because it need not be valid UTF-8;
 * names, paths and other protocol text are packed as str. Decoders accept
 * either wherever text is expected. */
#include "ctr_proto.h"

#include <string.h>

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

/* Every value is [vkind, type_id, payload...] with n elements in all. */
static void value_head(msgpack_packer *pk, uint32_t n, int vkind,
                       uint32_t tid) {
  msgpack_pack_array(pk, n);
  msgpack_pack_int(pk, vkind);
  msgpack_pack_uint32(pk, tid);
}

static void pack_bool(msgpack_packer *pk, bool b) {
  if (b)
    msgpack_pack_true(pk);
  else
    msgpack_pack_false(pk);
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
                     uint32_t n) {
  pack_head(pk, 2, CTR_MSG_FILTER);
  pack_rules(pk, rules, n);
}

void ctr_pack_stack_begin(msgpack_packer *pk, uint64_t thread,
                          uint32_t nframes) {
  pack_head(pk, 3, CTR_MSG_STACK);
  msgpack_pack_uint64(pk, thread);
  msgpack_pack_array(pk, nframes);
}

void ctr_pack_frame_begin(msgpack_packer *pk, uint32_t func_id, int64_t line,
                          uint32_t nvars) {
  msgpack_pack_array(pk, 3);
  msgpack_pack_uint32(pk, func_id);
  msgpack_pack_int64(pk, line);
  msgpack_pack_array(pk, nvars);
}

void ctr_pack_welcome(msgpack_packer *pk, const ctr_welcome_t *w) {
  pack_head(pk, 2, CTR_MSG_WELCOME);
  msgpack_pack_map(pk, 8);
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
  pack_key(pk, "values");
  pack_cstr(pk, w->values == CTR_WV_NONE   ? "none"
                : w->values == CTR_WV_ARGS ? "args"
                                           : "all");
  pack_key(pk, "filter");
  pack_rules(pk, w->rules, w->nrules);
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
  pack_head(pk, 5, CTR_MSG_FUNC);
  msgpack_pack_uint32(pk, id);
  msgpack_pack_uint32(pk, path_id);
  msgpack_pack_int64(pk, line);
  pack_str(pk, name, n);
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
  pack_head(pk, 3, CTR_MSG_STEP);
  msgpack_pack_uint32(pk, path_id);
  msgpack_pack_int64(pk, line);
}

void ctr_pack_call_begin(msgpack_packer *pk, uint32_t func_id, uint32_t nargs) {
  pack_head(pk, 3, CTR_MSG_CALL);
  msgpack_pack_uint32(pk, func_id);
  msgpack_pack_array(pk, nargs);
}

void ctr_pack_return_begin(msgpack_packer *pk) {
  pack_head(pk, 2, CTR_MSG_RETURN);
}

void ctr_pack_vars_begin(msgpack_packer *pk, uint32_t nvars) {
  pack_head(pk, 2, CTR_MSG_VARS);
  msgpack_pack_array(pk, nvars);
}

void ctr_pack_pair_begin(msgpack_packer *pk, uint32_t varname_id) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint32(pk, varname_id);
}

void ctr_pack_event(msgpack_packer *pk, int kind, const char *text, size_t n) {
  pack_head(pk, 3, CTR_MSG_EVENT);
  msgpack_pack_int(pk, kind);
  pack_bin(pk, text, n);
}

void ctr_pack_raise(msgpack_packer *pk, const char *cls, size_t cn,
                    const char *text, size_t tn) {
  pack_head(pk, 3, CTR_MSG_RAISE);
  pack_str(pk, cls, cn);
  pack_bin(pk, text, tn);
}

void ctr_pack_thread(msgpack_packer *pk, uint64_t id) {
  pack_head(pk, 2, CTR_MSG_THREAD);
  msgpack_pack_uint64(pk, id);
}

void ctr_pack_time(msgpack_packer *pk, uint64_t ns) {
  pack_head(pk, 2, CTR_MSG_TIME);
  msgpack_pack_uint64(pk, ns);
}

void ctr_pack_mark(msgpack_packer *pk, const char *text, size_t n) {
  pack_head(pk, 2, CTR_MSG_MARK);
  pack_str(pk, text, n);
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
  pack_head(pk, 2, tag);
  msgpack_pack_uint64(pk, token);
}

/* ---- values ----------------------------------------------------------- */

void ctr_pack_v_none(msgpack_packer *pk, uint32_t tid) {
  value_head(pk, 2, CTR_V_NONE, tid);
}

void ctr_pack_v_bool(msgpack_packer *pk, uint32_t tid, bool b) {
  value_head(pk, 3, CTR_V_BOOL, tid);
  pack_bool(pk, b);
}

void ctr_pack_v_int(msgpack_packer *pk, uint32_t tid, int64_t i) {
  value_head(pk, 3, CTR_V_INT, tid);
  msgpack_pack_int64(pk, i);
}

void ctr_pack_v_float(msgpack_packer *pk, uint32_t tid, double f) {
  value_head(pk, 3, CTR_V_FLOAT, tid);
  msgpack_pack_double(pk, f);
}

void ctr_pack_v_string(msgpack_packer *pk, uint32_t tid, const char *s,
                       size_t n) {
  value_head(pk, 3, CTR_V_STRING, tid);
  pack_bin(pk, s, n);
}

void ctr_pack_v_bigint(msgpack_packer *pk, uint32_t tid, bool negative,
                       const unsigned char *magnitude, size_t n) {
  value_head(pk, 4, CTR_V_BIGINT, tid);
  pack_bool(pk, negative);
  pack_bin(pk, (const char *)magnitude, n);
}

void ctr_pack_v_seq_begin(msgpack_packer *pk, uint32_t tid, uint32_t n) {
  value_head(pk, 3, CTR_V_SEQ, tid);
  msgpack_pack_array(pk, n);
}

void ctr_pack_v_tuple_begin(msgpack_packer *pk, uint32_t tid, uint32_t n) {
  value_head(pk, 3, CTR_V_TUPLE, tid);
  msgpack_pack_array(pk, n);
}

void ctr_pack_v_struct_begin(msgpack_packer *pk, uint32_t tid, uint32_t n) {
  value_head(pk, 3, CTR_V_STRUCT, tid);
  msgpack_pack_array(pk, n);
}

void ctr_pack_v_raw(msgpack_packer *pk, uint32_t tid, const char *s, size_t n) {
  value_head(pk, 3, CTR_V_RAW, tid);
  pack_str(pk, s, n);
}

void ctr_pack_v_error(msgpack_packer *pk, uint32_t tid, const char *s,
                      size_t n) {
  value_head(pk, 3, CTR_V_ERROR, tid);
  pack_str(pk, s, n);
}
