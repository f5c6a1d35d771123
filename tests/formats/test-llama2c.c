/* test-llama2c.c — the example out-of-tree format plugin (examples/llama2c-format),
 * built in-tree: stories260K.bin + tok512.bin must give stories260K.gguf's
 * tensors byte for byte (no q/k permutation) and its vocabulary exactly. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format-test-util.h"
#include "testutil.h"

static fmt_plugin l2c, gguf;

static int init(void) {
    if (fmt_plugin_load(&l2c, LLMH_TEST_LLAMA2C_SO) != 0) return 1;
    if (fmt_plugin_load(&gguf, LLMH_TEST_GGUF_SO) != 0) return 1;
    return 0;
}

static int cleanup(void) {
    fmt_plugin_unload(&l2c);
    fmt_plugin_unload(&gguf);
    return 0;
}

static int values_equal(const llmh_value *a, const llmh_value *b) {
    if (a->type != b->type) return 0;
    switch (a->type) {
    case LLMH_V_STRING: return a->v.s.len == b->v.s.len && !memcmp(a->v.s.ptr, b->v.s.ptr, a->v.s.len);
    case LLMH_V_F32: case LLMH_V_F64: return a->v.f == b->v.f;
    case LLMH_V_BOOL: return a->v.b == b->v.b;
    case LLMH_V_ARRAY:
        if (a->v.arr.elem_type != b->v.arr.elem_type || a->v.arr.n != b->v.arr.n) return 0;
        for (uint64_t i = 0; i < a->v.arr.n; i++)
            if (!values_equal(&a->v.arr.items[i], &b->v.arr.items[i])) return 0;
        return 1;
    default: return a->v.u == b->v.u;
    }
}

static void test_same_as_gguf(void) {
    char *bin = llmh_test_shared("models/stories260K.bin");
    char *gp = llmh_test_shared("models/stories260K.gguf");
    fmt_file a, g;
    llmh_status s = fmt_open(&l2c, bin, NULL, &a);
    if (s) fprintf(stderr, "\n%s\n", llmh_last_error());
    CU_ASSERT_FATAL(s == LLMH_OK);
    CU_ASSERT_FATAL(fmt_open(&gguf, gp, NULL, &g) == LLMH_OK);

    /* tensors: same names, shapes, bytes; all zero-copy */
    CU_ASSERT(a.n_t == g.n_t);
    for (size_t i = 0; i < g.n_t; i++) {
        const llmh_tensor_info *x = &g.t[i], *y = fmt_tensor(&a, x->name);
        if (!y) fprintf(stderr, "\nmissing %s\n", x->name);
        CU_ASSERT_FATAL(y != NULL);
        CU_ASSERT(y->type == x->type && y->n_dims == x->n_dims && y->size == x->size);
        for (int d = 0; d < 4; d++) CU_ASSERT(y->ne[d] == x->ne[d]);
        int same = memcmp(x->data, y->data, (size_t)x->size) == 0;
        if (!same) fprintf(stderr, "\n%s differs\n", x->name);
        CU_ASSERT(same);
        CU_ASSERT(y->file_offset >= 28 && y->file_offset % 4 == 0);
    }
    /* the shared classifier is the embedding itself */
    CU_ASSERT(fmt_tensor(&a, "output.weight")->data == fmt_tensor(&a, "token_embd.weight")->data);

    /* metadata: every GGUF key with the same value, except the context length
     * (the GGUF converter was run with a 128-token context; the checkpoint
     * says seq_len 512) and the ids GGUF marks as absent */
    size_t compared = 0;
    for (size_t i = 0; i < g.kv.n; i++) {
        const char *k = g.kv.items[i].key;
        if (!strcmp(k, "llama.context_length") || !strcmp(k, "general.name") ||
            !strcmp(k, "llmh.source_format") || !strcmp(k, "tokenizer.ggml.seperator_token_id") ||
            !strcmp(k, "tokenizer.ggml.padding_token_id"))
            continue;
        const llmh_value *v = fmt_kv(&a, k);
        if (!v || !values_equal(v, &g.kv.items[i].value)) fprintf(stderr, "\nkey %s differs\n", k);
        CU_ASSERT(v && values_equal(v, &g.kv.items[i].value));
        compared++;
    }
    CU_ASSERT(compared >= 14);
    CU_ASSERT(fmt_kv_int(&a, "llama.context_length", 0) == 512);
    CU_ASSERT(fmt_kv_str_eq(&a, "general.name", "stories260K"));
    CU_ASSERT(fmt_kv_str_eq(&a, "llmh.source_format", "llama2c"));
    const llmh_value *fb = fmt_kv(&a, "llama.rope.freq_base");
    CU_ASSERT(fb && fb->type == LLMH_V_F32 && fb->v.f == 10000.0);
    fmt_close(&a);

    /* [model] options: context_length and an explicit tokenizer path */
    char *tok = llmh_test_shared("models/tok512.bin");
    llmh_kv opt[2];
    opt[0].key = "context_length";
    opt[0].value.type = LLMH_V_I64;
    opt[0].value.v.i = 128;
    opt[1].key = "tokenizer";
    opt[1].value.type = LLMH_V_STRING;
    opt[1].value.v.s.ptr = tok;
    opt[1].value.v.s.len = strlen(tok);
    llmh_kv_list ol = {opt, 2};
    CU_ASSERT_FATAL(fmt_open(&l2c, bin, &ol, &a) == LLMH_OK);
    CU_ASSERT(values_equal(fmt_kv(&a, "llama.context_length"), fmt_kv(&g, "llama.context_length")));
    fmt_close(&a);
    opt[1].value.type = LLMH_V_U32;
    CU_ASSERT(fmt_open(&l2c, bin, &ol, &a) == LLMH_ERR_CONFIG);
    CU_ASSERT(strstr(llmh_last_error(), "[model] tokenizer") != NULL);

    /* probe: the checkpoint yes, the GGUF no */
    size_t n;
    char *head = llmh_test_read_file(bin, &n);
    CU_ASSERT(l2c.fi->probe_file(l2c.state, bin, (const uint8_t *)head, 64) == 80);
    free(head);
    head = llmh_test_read_file(gp, &n);
    CU_ASSERT(l2c.fi->probe_file(l2c.state, gp, (const uint8_t *)head, 64) == 0);
    free(head);
    fmt_close(&g);
    free(tok);
    free(bin);
    free(gp);
}

/* Copy the fixture into a temp dir, alter it, expect an error naming the problem. */
static void expect_fail(const char *dir, const char *needle1, const char *needle2) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.bin", dir);
    fmt_file f;
    llmh_status s = fmt_open(&l2c, path, NULL, &f);
    const char *msg = llmh_last_error();
    if (s == LLMH_OK) fmt_close(&f);
    int ok = s < 0 && msg && strstr(msg, needle1) && (!needle2 || strstr(msg, needle2));
    if (!ok) fprintf(stderr, "\nerror '%s' lacks '%s' / '%s'\n", msg, needle1, needle2 ? needle2 : "");
    CU_ASSERT(ok);
}

static void test_corrupt(void) {
    char *bin = llmh_test_shared("models/stories260K.bin"), *tokp = llmh_test_shared("models/tok512.bin");
    size_t blen, tlen;
    uint8_t *b = (uint8_t *)llmh_test_read_file(bin, &blen);
    uint8_t *t = (uint8_t *)llmh_test_read_file(tokp, &tlen);
    CU_ASSERT_FATAL(b && t);
    char *dir = fmt_mkdtemp();

    /* no tokenizer next to it */
    fmt_write_in(dir, "model.bin", b, blen);
    expect_fail(dir, "no tokenizer.bin or tok512.bin", NULL);

    fmt_write_in(dir, "tokenizer.bin", t, tlen);
    fmt_write_in(dir, "model.bin", b, blen - 4);
    expect_fail(dir, "needs 1056540 bytes but the file has 1056536", NULL);

    uint8_t *c = malloc(blen);
    memcpy(c, b, blen);
    memset(c, 0, 4); /* dim = 0 */
    fmt_write_in(dir, "model.bin", c, blen);
    expect_fail(dir, "dim = 0 at offset 0", NULL);
    memcpy(c, b, blen);
    c[16] = 3; /* n_kv_heads = 3 */
    fmt_write_in(dir, "model.bin", c, blen);
    expect_fail(dir, "n_kv_heads", NULL);
    memcpy(c, "ak42\2\0\0\0", 8);
    fmt_write_in(dir, "model.bin", c, blen);
    expect_fail(dir, "ak42", "version 2");
    fmt_write_in(dir, "model.bin", b, 20);
    expect_fail(dir, "too short", NULL);

    /* tokenizer: truncated, bad token length, bad max_token_length */
    fmt_write_in(dir, "model.bin", b, blen);
    fmt_write_in(dir, "tokenizer.bin", t, tlen - 10);
    expect_fail(dir, "tokenizer.bin: token 511", NULL);
    uint8_t *tc = malloc(tlen);
    memcpy(tc, t, tlen);
    tc[8] = 0xff; /* token 0's length: 255 > max_token_length */
    fmt_write_in(dir, "tokenizer.bin", tc, tlen);
    expect_fail(dir, "token 0: length 255", NULL);
    memcpy(tc, t, tlen);
    tc[3] = 0x80; /* max_token_length negative */
    fmt_write_in(dir, "tokenizer.bin", tc, tlen);
    expect_fail(dir, "max_token_length", NULL);
    fmt_write_in(dir, "tokenizer.bin", t, 2);
    expect_fail(dir, "too short", NULL);

    /* and the intact pair opens from the temp dir */
    fmt_write_in(dir, "tokenizer.bin", t, tlen);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.bin", dir);
    fmt_file f;
    CU_ASSERT(fmt_open(&l2c, path, NULL, &f) == LLMH_OK);
    if (f.f) {
        CU_ASSERT(fmt_kv_str_eq(&f, "general.name", "model"));
        fmt_close(&f);
    }
    fmt_rmdir(dir);
    free(c);
    free(tc);
    free(b);
    free(t);
    free(bin);
    free(tokp);
}

/* Random overwrites of the checkpoint header and of the tokenizer: every open
 * succeeds (and every value and tensor is readable) or fails with a message. */
static void test_mutations(void) {
    char *bin = llmh_test_shared("models/stories260K.bin"), *tokp = llmh_test_shared("models/tok512.bin");
    size_t blen, tlen;
    uint8_t *b = (uint8_t *)llmh_test_read_file(bin, &blen);
    uint8_t *t = (uint8_t *)llmh_test_read_file(tokp, &tlen);
    CU_ASSERT_FATAL(b && t);
    char *dir = fmt_mkdtemp();
    char path[4096];
    snprintf(path, sizeof path, "%s/model.bin", dir);
    uint8_t *c = malloc(blen > tlen ? blen : tlen);
    uint64_t rng = 0x243f6a8885a308d3ull;
    unsigned ok = 0, failed = 0;
    for (int i = 0; i < 600; i++) {
        int tok = i % 2; /* alternate: header of the checkpoint, the tokenizer */
        const uint8_t *src = tok ? t : b;
        size_t len = tok ? tlen : blen, region = tok ? tlen : 28;
        memcpy(c, src, len);
        for (int k = 0; k < 1 + i % 3; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            size_t at = (size_t)(rng % region);
            c[at] = (rng >> 32) & 1 ? (uint8_t)(rng >> 40) : (uint8_t)(c[at] ^ (1u << ((rng >> 48) % 8)));
        }
        size_t cut = (i % 7 == 0) ? (size_t)(rng % len) : len; /* sometimes truncated too */
        fmt_write_in(dir, "model.bin", tok ? b : c, tok ? blen : cut);
        fmt_write_in(dir, "tokenizer.bin", tok ? c : t, tok ? cut : tlen);
        fmt_file f;
        llmh_status s = fmt_open(&l2c, path, NULL, &f);
        if (s == LLMH_OK) {
            volatile uint64_t h = fmt_walk(&f);
            (void)h;
            fmt_close(&f);
            ok++;
        } else {
            const char *msg = llmh_last_error();
            CU_ASSERT(s < 0 && msg && *msg);
            failed++;
        }
    }
    CU_ASSERT(ok > 0 && failed > 0);
    fmt_rmdir(dir);
    free(c);
    free(b);
    free(t);
    free(bin);
    free(tokp);
}

int main(void) {
    static const llmh_test_case cases[] = {
        {"stories260K.bin == stories260K.gguf (tensors, vocab, metadata)", test_same_as_gguf},
        {"corrupt checkpoints and tokenizers", test_corrupt},
        {"random header/tokenizer mutations never crash", test_mutations},
        {NULL, NULL}};
    static const llmh_test_suite suites[] = {{"llama2c format plugin", cases, init, cleanup}};
    return llmh_test_main(suites, 1);
}
