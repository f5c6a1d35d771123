#include "model-fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fixture_open(fixture_model *fm, const char *rel_path, const char *backend, const char *extra) {
    return fixture_open_with(fm, rel_path, backend, NULL, extra);
}

int fixture_open_with(fixture_model *fm, const char *rel_path, const char *backend, const char *model_keys,
                      const char *extra) {
    memset(fm, 0, sizeof *fm);
    char *path = llmh_test_shared(rel_path);
    char text[4096];
    snprintf(text, sizeof text,
             "[model]\npath = \"%s\"\ncontext = 512\n%s"
             "[backend]\nplugin = \"%s\"\nthreads = 2\n"
             "[sampler]\nchain = [\"greedy\"]\n%s\n",
             path, model_keys ? model_keys : "", backend ? backend : "cpu", extra ? extra : "");
    free(path);
    llmh_status st = llmh_manifest_parse(text, strlen(text), "fixture.toml", NULL, &fm->manifest);
    if (st) { fprintf(stderr, "fixture manifest: %s\n", llmh_last_error()); return -1; }
    llmh_model_params mp = {NULL, fm->manifest};
    if ((st = llmh_model_load(&mp, &fm->model))) {
        fprintf(stderr, "loading %s: %s\n", rel_path, llmh_last_error());
        fixture_close(fm);
        return -1;
    }
    if ((st = llmh_session_create(fm->model, NULL, &fm->session))) {
        fprintf(stderr, "session for %s: %s\n", rel_path, llmh_last_error());
        fixture_close(fm);
        return -1;
    }
    return 0;
}

void fixture_close(fixture_model *fm) {
    llmh_session_free(fm->session);
    llmh_model_free(fm->model);
    llmh_manifest_free(fm->manifest);
    memset(fm, 0, sizeof *fm);
}

cJSON *fixture_reference(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "reference/%s.json", name);
    char *path = llmh_test_shared(rel);
    char *text = llmh_test_read_file(path, NULL);
    free(path);
    if (!text) { fprintf(stderr, "cannot read %s\n", rel); return NULL; }
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) fprintf(stderr, "%s is not valid JSON\n", rel);
    return j;
}

int fixture_argmax(const float *logits, int64_t n) {
    int best = 0;
    for (int64_t i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = (int)i;
    return best;
}
