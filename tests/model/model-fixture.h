/* model-fixture.h — load a model from a manifest written on the fly, and read
 * reference JSON files. Shared by the model test suites. */
#ifndef LLMH_MODEL_FIXTURE_H
#define LLMH_MODEL_FIXTURE_H

#include <cjson/cJSON.h>

#include "testutil.h"

typedef struct fixture_model {
    llmh_manifest *manifest;
    llmh_model *model;
    llmh_session *session;
} fixture_model;

/* Load ../shared/<rel_path> with backend `backend` (NULL = "cpu"), greedy
 * sampling, `extra` appended to the manifest text (may be NULL). Returns 0 on
 * success; on failure prints llmh_last_error() and returns -1. */
int fixture_open(fixture_model *fm, const char *rel_path, const char *backend, const char *extra);
/* The same with `model_keys` (lines such as "adapter_type = \"q8_0\"\n",
 * may be NULL) added to the manifest's [model] table. */
int fixture_open_with(fixture_model *fm, const char *rel_path, const char *backend, const char *model_keys,
                      const char *extra);
void fixture_close(fixture_model *fm);

/* Parse ../shared/reference/<name>.json; NULL (and a message) on failure. */
cJSON *fixture_reference(const char *name);

/* Index of the largest logit. */
int fixture_argmax(const float *logits, int64_t n);

#endif
