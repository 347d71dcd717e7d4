/* ctr_jval.h: a small JSON reader for the records ctrecd writes.
 *
 * It parses one complete JSON text into a tree of heap nodes; the trace
 * reader also builds such trees for records of formats other than JSON,
 * and prints them as JSON. It is meant
 * for trace.json records and trace_metadata.json, not as a general purpose
 * library: numbers are kept as their text, and strings are decoded to UTF-8
 * with their escapes resolved. */
#ifndef CTR_JVAL_H
#define CTR_JVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum ctr_jval_type_e {
  CTR_JVAL_NULL,
  CTR_JVAL_BOOL,
  CTR_JVAL_NUM,
  CTR_JVAL_STR,
  CTR_JVAL_ARR,
  CTR_JVAL_OBJ
} ctr_jval_type_t;

typedef struct ctr_jval_s ctr_jval_t;
struct ctr_jval_s {
  ctr_jval_type_t type;
  bool b;            /* CTR_JVAL_BOOL */
  char *str;         /* CTR_JVAL_STR: decoded text; CTR_JVAL_NUM: the number */
  size_t len;        /* bytes in str */
  char *key;         /* member name when the node is inside an object */
  ctr_jval_t *child; /* first element or member of an array or object */
  ctr_jval_t *next;  /* next sibling */
};

/* Parses exactly one JSON value from text (whitespace around it allowed).
 * Returns 0 and the tree in *out, or -1 when the text is not one complete
 * value, so a record that is still being written is never accepted. */
int ctr_jval_parse(const char *text, size_t n, ctr_jval_t **out);
void ctr_jval_free(ctr_jval_t *v);

/* The member key of obj, or NULL when obj is not an object or lacks it. */
const ctr_jval_t *ctr_jval_get(const ctr_jval_t *obj, const char *key);
/* The string member key of obj, or NULL. */
const char *ctr_jval_str(const ctr_jval_t *obj, const char *key);
/* Reads an integer number; false when v is not one. */
bool ctr_jval_i64(const ctr_jval_t *v, int64_t *out);

/* Building trees: a new node (str copied, n bytes; NULL for none), and
 * appending child to an array or object (key copied when not NULL).
 * Allocation failures end the process, as elsewhere in ctrecctl. */
ctr_jval_t *ctr_jval_new(ctr_jval_type_t type, const char *str, size_t n);
ctr_jval_t *ctr_jval_add(ctr_jval_t *parent, const char *key,
                         ctr_jval_t *child);

/* Prints v as one line of JSON (numbers as their text). */
void ctr_jval_print(FILE *out, const ctr_jval_t *v);

#endif
