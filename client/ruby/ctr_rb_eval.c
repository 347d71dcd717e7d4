/* ctr_rb_eval.c: the paths of eval'd and reloaded code.
 *
 * Every distinct eval string (eval, instance_eval, class_eval, ERB...)
 * compiled under a pseudo path gets a path of its own, "<eval:N>", whose
 * SOURCE is the string itself, so the trace is self-contained; a file
 * loaded again with other text gets one the same way ("<reload:f.rb:N>"). A
 * TracePoint on script_compiled (rare events, so a Ruby-level TracePoint
 * costs nothing measurable) registers the new iseq and all its children; an
 * event in a pseudo path then looks its iseq up through the debug
 * inspector. */
#include <ruby.h>
#include <ruby/debug.h>
#include <stdlib.h>
#include <string.h>

#include "ctr_rb.h"

/* Eval'd code gets one pseudo path per distinct eval string (a string
 * evaluated again reuses its path), within CTR_CLIENT_TEXTS_MAX and
 * CTR_CLIENT_TEXT_BYTES; later ones share this one. */
#define CTR_RB_EVAL_OVERFLOW "<eval:over-limit>"
/* Compiled eval iseqs are kept alive (their addresses are the lookup keys)
 * in a ring of this many; the oldest is forgotten when it wraps, so a loop
 * evaluating strings for ever keeps memory flat. A forgotten iseq that still
 * runs shows its lines under the bare "<eval>" path. */
#define CTR_RB_EVAL_ISEQS_MAX 16384

static struct {
  st_table *evals;      /* iseq pointer -> ctr_rb_path_t* of its eval string */
  VALUE eval_iseqs;     /* ring of CTR_RB_EVAL_ISEQS_MAX keeping those alive */
  long eval_next;       /* next slot of the ring */
  st_table *eval_texts; /* pseudo path + text -> ctr_rb_path_t* (dedupe) */
  ctr_rb_path_t *eval_overflow;
  size_t eval_bytes;
  uint32_t nevals;
} g;

static ctr_rb_path_t *g_eval_registering;

static VALUE ctr_rb_eval_register(VALUE iseqw);

static VALUE ctr_rb_eval_child(RB_BLOCK_CALL_FUNC_ARGLIST(child, arg)) {
  return ctr_rb_eval_register(child);
}

static VALUE ctr_rb_eval_register(VALUE iseqw) {
  if (!RB_TYPE_P(iseqw, T_DATA) || !RTYPEDDATA_P(iseqw))
    return Qnil;
  long slot = g.eval_next;
  g.eval_next = (g.eval_next + 1) % CTR_RB_EVAL_ISEQS_MAX;
  if (slot < RARRAY_LEN(g.eval_iseqs)) {
    /* Still alive (the ring held it), so its address is still its own. */
    st_data_t old = (st_data_t)RTYPEDDATA_DATA(RARRAY_AREF(g.eval_iseqs, slot));
    st_delete(g.evals, &old, NULL);
  }
  st_insert(g.evals, (st_data_t)RTYPEDDATA_DATA(iseqw),
            (st_data_t)g_eval_registering);
  rb_ary_store(g.eval_iseqs, slot, iseqw);
  rb_block_call(iseqw, ctr__rb_id.each_child, 0, NULL, ctr_rb_eval_child, Qnil);
  return Qnil;
}

/* The path of one text compiled under the pseudo path `base` ("<eval>",
 * "<reload:lib.rb>"...): "<eval:N>", one per distinct text, deduplicated
 * by text so that a string evaluated again reuses its path. NULL when out
 * of memory. */
static ctr_rb_path_t *ctr_rb_text_path(const char *base, size_t blen,
                                       const char *text, size_t tlen) {
  if (tlen > CTR_CLIENT_SOURCE_MAX)
    tlen = CTR_CLIENT_SOURCE_MAX;
  ctr_rb_key_t *k = malloc(sizeof *k + blen + 1 + tlen);
  if (k == NULL)
    return NULL;
  k->len = blen + 1 + tlen;
  memcpy(k->data, base, blen);
  k->data[blen] = '\0';
  memcpy(k->data + blen + 1, text, tlen);
  st_data_t val;
  if (st_lookup(g.eval_texts, (st_data_t)k, &val)) {
    free(k);
    return (ctr_rb_path_t *)val;
  }
  if (g.nevals >= CTR_CLIENT_TEXTS_MAX ||
      g.eval_bytes + tlen > CTR_CLIENT_TEXT_BYTES) {
    free(k);
    return g.eval_overflow;
  }
  ctr_rb_path_t *p = calloc(1, sizeof *p);
  if (p == NULL || (p->abs = malloc(blen + 24)) == NULL) {
    free(p);
    free(k);
    return NULL;
  }
  g.nevals++;
  g.eval_bytes += tlen;
  /* "<eval>" becomes "<eval:N>", "<erb>" "<erb:N>". */
  p->len = (size_t)snprintf(p->abs, blen + 24, "%.*s:%u>", (int)(blen - 1),
                            base, g.nevals);
  p->text_len = tlen;
  p->text = k->data + blen + 1; /* the key lives as long as the path */
  st_insert(g.eval_texts, (st_data_t)k, (st_data_t)p);
  return p;
}

/* load of a file already loaded: when its text changed, the new version
 * gets a pseudo path "<reload:name.rb:N>" carrying that text, because a
 * trace path has one content (the first version's, under the real path).
 * Versions are told apart by their text, so loading version 1 again goes
 * back to the real path. Returns the path its code should be shown under,
 * or NULL for the real path itself. */
static ctr_rb_path_t *ctr_rb_reload_path(ctr_rb_path_t *p) {
  size_t n = 0;
  bool whole;
  char *text = ctr_client_read_source(p->abs, &n, &whole);
  if (text == NULL)
    return NULL;
  st_index_t h = st_hash(text, n, 0x72656c64);
  ctr_rb_path_t *r = NULL;
  if (p->loads++ == 0) {
    p->hash = h;
  } else if (h != p->hash) {
    /* "<reload:name.rb>" becomes "<reload:name.rb:N>", deduplicated with
     * the file's other versions by text. */
    char base[CTR_CLIENT_RELOAD_BASE];
    size_t bl = ctr_client_reload_base(p->abs, base);
    r = ctr_rb_text_path(base, bl, text, n);
    if (r != NULL)
      p->reloaded = true;
  }
  free(text);
  return r;
}

/* The main script of `ruby -e`, which Ruby compiles like an eval string
 * under the name "-e": its text becomes the source of "<-e>". Other text
 * compiled under that name later (eval with the file name "-e") gets a path
 * of its own, as a reloaded file does. Returns that path, or NULL for the
 * main script. */
static ctr_rb_path_t *ctr_rb_script_path(ctr_rb_path_t *base, VALUE script) {
  size_t n = (size_t)RSTRING_LEN(script);
  if (n > CTR_CLIENT_SOURCE_MAX)
    n = CTR_CLIENT_SOURCE_MAX;
  if (base->text == NULL) {
    base->text = malloc(n ? n : 1);
    if (base->text != NULL) {
      memcpy(base->text, RSTRING_PTR(script), n);
      base->text_len = n;
    }
    return NULL;
  }
  if (n == base->text_len && memcmp(base->text, RSTRING_PTR(script), n) == 0)
    return NULL;
  ctr_rb_path_t *r = ctr_rb_text_path(base->abs, base->len, RSTRING_PTR(script),
                                      (size_t)RSTRING_LEN(script));
  if (r != NULL)
    base->reloaded = true;
  return r;
}

static VALUE ctr_rb_compiled_body(VALUE tpval) {
  VALUE script = rb_funcall(tpval, ctr__rb_id.eval_script, 0);
  VALUE iseqw = rb_funcall(tpval, ctr__rb_id.instruction_sequence, 0);
  VALUE path = rb_funcall(iseqw, ctr__rb_id.path, 0);
  if (!RB_TYPE_P(path, T_STRING))
    return Qnil;
  ctr_rb_path_t *base = ctr__rb_path_info(path);
  if (base == NULL || base->skip)
    return Qnil;
  ctr_rb_path_t *p;
  if (!RB_TYPE_P(script, T_STRING)) {
    /* require and load: a real file, maybe loaded again. */
    if (!base->real_file)
      return Qnil;
    p = ctr_rb_reload_path(base);
  } else if (base->evalish) {
    p = ctr_rb_text_path(base->abs, base->len, RSTRING_PTR(script),
                         (size_t)RSTRING_LEN(script));
  } else if (!base->real_file) {
    p = ctr_rb_script_path(base, script);
  } else {
    return Qnil;
  }
  if (p == NULL)
    return Qnil;
  g_eval_registering = p;
  ctr_rb_eval_register(iseqw);
  g_eval_registering = NULL;
  RB_GC_GUARD(script);
  return Qnil;
}

static void ctr_rb_on_compiled(VALUE tpval, void *data) {
  (void)data;
  if (!ctr_client_active())
    return;
  int state = 0;
  rb_protect(ctr_rb_compiled_body, tpval, &state);
  if (state)
    rb_set_errinfo(Qnil);
}

static VALUE ctr_rb_inspect_iseq(const rb_debug_inspector_t *dc, void *arg) {
  (void)arg;
  return rb_debug_inspector_frame_iseq_get(dc, 0);
}

ctr_rb_path_t *ctr__rb_eval_path_of(VALUE iseqw) {
  st_data_t val;
  if (RB_TYPE_P(iseqw, T_DATA) && RTYPEDDATA_P(iseqw) &&
      st_lookup(g.evals, (st_data_t)RTYPEDDATA_DATA(iseqw), &val))
    return (ctr_rb_path_t *)val;
  return NULL;
}

ctr_rb_path_t *ctr__rb_eval_path(void) {
  return ctr__rb_eval_path_of(
      rb_debug_inspector_open(ctr_rb_inspect_iseq, NULL));
}

void ctr__rb_eval_init(void) {
  g.evals = st_init_numtable();
  g.eval_iseqs = rb_ary_new();
  rb_gc_register_mark_object(g.eval_iseqs);
  g.eval_texts = st_init_table(&ctr__rb_key_type);
  g.eval_overflow = calloc(1, sizeof *g.eval_overflow);
  if (g.eval_overflow != NULL) {
    static const char note[] =
        "The program evaluated more distinct strings than ctrec keeps the "
        "source of; the lines of the later ones are shown under this path.\n";
    g.eval_overflow->abs = strdup(CTR_RB_EVAL_OVERFLOW);
    g.eval_overflow->len = strlen(CTR_RB_EVAL_OVERFLOW);
    g.eval_overflow->text = (char *)note;
    g.eval_overflow->text_len = sizeof note - 1;
    if (g.eval_overflow->abs == NULL)
      g.eval_overflow = NULL;
  }
  VALUE tp = rb_tracepoint_new(0, RUBY_EVENT_SCRIPT_COMPILED,
                               ctr_rb_on_compiled, NULL);
  rb_gc_register_mark_object(tp);
  rb_tracepoint_enable(tp);
}
