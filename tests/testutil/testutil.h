/* testutil.h — shared helpers for the CUnit suites. */
#ifndef LLMH_TESTUTIL_H
#define LLMH_TESTUTIL_H

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stddef.h>

#include "llmh.h"

/* Path of a fixture under ../shared (static buffer per call site not
 * needed: returns a malloc'd string the caller frees). Exits the test
 * program with a clear message when the fixture is missing, since every
 * suite depends on ../shared being present. */
char *llmh_test_shared(const char *rel);

/* Read a whole file; returns malloc'd bytes (NUL-terminated) or NULL. */
char *llmh_test_read_file(const char *path, size_t *len);

/* Write `len` bytes to a fresh temp file whose name ends with `suffix`;
 * returns the malloc'd path (caller unlinks and frees). */
char *llmh_test_write_temp(const void *data, size_t len, const char *suffix);

/* Register suites, run them in CUnit basic mode, return the process exit
 * code (0 when every assertion passed). */
typedef struct llmh_test_case {
    const char *name;
    void (*fn)(void);
} llmh_test_case;
typedef struct llmh_test_suite {
    const char *name;
    const llmh_test_case *cases; /* terminated by {NULL, NULL} */
    int (*init)(void);
    int (*cleanup)(void);
} llmh_test_suite;
int llmh_test_main(const llmh_test_suite *suites, size_t n);

/* dlopen plugin `file_name` from each $LLMH_PLUGIN_PATH entry, else from
 * `fallback` (the path the build produced); check it describes a plugin of
 * `kind` and run its init. Returns 0, or -1 with a message on stderr. */
int llmh_test_plugin_open(const char *file_name, const char *fallback, llmh_plugin_kind kind, void **dl,
                          const llmh_plugin_desc **desc, void **state);

/* xorshift64 test RNG: 32 random bits, and a float uniform in [-1, 1). */
uint32_t llmh_test_rand(uint64_t *s);
float llmh_test_randf(uint64_t *s);

#endif
