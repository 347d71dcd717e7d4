/* ctr_rb.h: pieces of the Ruby shim shared between its source files.
 *
 * Everything here is internal to ctrec.so (compiled with hidden visibility);
 * only Init_ctrec is exported. All functions run with the GVL held. */
#ifndef CTR_RB_H
#define CTR_RB_H

#include <ruby.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctr_client.h"

/* Interning of the ids that a connection shares with the daemon. Each
 * declares its record on `pk` (the batch packer, inside begin/end) the first
 * time a name is seen in the current generation. */
uint32_t ctr__rb_type_id(msgpack_packer *pk, int kind, const char *name,
                         size_t n);
uint32_t ctr__rb_varname_id(msgpack_packer *pk, const char *name, size_t n);
uint32_t ctr__rb_varname_id_sym(msgpack_packer *pk, ID id);
/* Type of the instances of `klass`, shown with its class path. */
uint32_t ctr__rb_type_id_class(msgpack_packer *pk, int kind, VALUE klass);
/* Type named by a string literal (its address is the cache key). */
uint32_t ctr__rb_type_id_lit(msgpack_packer *pk, int kind, const char *lit);

/* Captures one value. Declarations go to `decl` (the batch); the value bytes
 * go to `out` (a scratch packer) because a message's head must be packed
 * after every id it refers to has been declared. Never calls a method that
 * Ruby code can override. */
void ctr__rb_value_pack(msgpack_packer *decl, msgpack_packer *out, VALUE v);

/* The object that is `self` at the top level ("main"), shown as Raw. */
extern VALUE ctr__rb_main_obj;

/* Class name without calling Module#name (which can be overridden). */
VALUE ctr__rb_class_name(VALUE klass);

#endif
