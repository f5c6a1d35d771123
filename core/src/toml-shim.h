/*
 * toml-shim.h — a tiny C view of a parsed TOML document (internal to libllmh).
 *
 * toml-shim.cpp is the one C++ file of the core: it runs toml++ and copies the
 * result into the plain C tree below, so the rest of the core never sees C++.
 * No exception crosses this boundary.
 */
#ifndef LLMH_TOML_SHIM_H
#define LLMH_TOML_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum llmh_toml_type {
    LLMH_TOML_TABLE = 0,
    LLMH_TOML_ARRAY,
    LLMH_TOML_STRING,
    LLMH_TOML_INTEGER,
    LLMH_TOML_FLOAT,
    LLMH_TOML_BOOLEAN,
    LLMH_TOML_DATETIME /* date, time or date-time; `str` holds its TOML text */
} llmh_toml_type;

typedef struct llmh_toml_node llmh_toml_node;

/* One node. Every pointer is owned by the node (malloc'ed); free the whole
 * tree with llmh__toml_free(). Nodes may be built or edited by C code as long
 * as they keep to that rule. */
struct llmh_toml_node {
    llmh_toml_type type;
    char *key;                 /* member name (NUL-terminated) in a table; NULL for array items and the root */
    int key_line, key_col;     /* where the key was written (1-based; 0 = unknown) */
    int line, col;             /* where the value (or the table header) begins (0 = unknown) */
    const void *origin;        /* caller tag (the file that set it); the shim sets NULL */
    char *str;                 /* STRING, DATETIME: NUL-terminated; may hold NULs before len */
    size_t len;                /* bytes in str */
    int64_t i;                 /* INTEGER */
    double f;                  /* FLOAT */
    int b;                     /* BOOLEAN: 0 or 1 */
    llmh_toml_node **items;    /* TABLE members in source order, or ARRAY items */
    size_t n;
    int is_inline;             /* TABLE written as { ... } */
};

/* Parse `len` bytes of TOML. On success returns 0 and *out is the root table
 * (owned by the caller). On a syntax error returns 1 and fills err with
 * toml++'s description and *line and *col (1-based) with where it occurred. On
 * out of memory or an unexpected failure returns -1 with a message in err. */
int llmh__toml_parse(const char *text, size_t len, llmh_toml_node **out, char *err,
                     size_t err_size, int *line, int *col);

/* Free a node and everything under it (NULL is a no-op). */
void llmh__toml_free(llmh_toml_node *node);

/* "table", "array", "string", "integer", "float", "boolean", "datetime". */
const char *llmh__toml_type_name(llmh_toml_type t);

#ifdef __cplusplus
}
#endif
#endif
