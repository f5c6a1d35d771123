/*
 * test-tokenizers.c — the "bpe" and "spm" tokenizer plugins against
 * llama.cpp's test vectors (../shared/tokenizers), the prompt tokens of the
 * reference runs (../shared/reference), round trips of arbitrary bytes, and
 * the ABI's buffer/flag rules.
 *
 * llama.cpp's test-tokenizer-0 tokenizes each vector with add_special = false
 * and parse_special = false: no BOS, specials as plain text, and (SPM) the
 * dummy prefix space. The reference runs were tokenized with special tokens
 * parsed and BOS added when the model adds one.
 */
#define _GNU_SOURCE
#include <cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "testutil.h"
#include "tok-harness.h"

static tokh_plugin g_bpe, g_spm, g_gguf;
#ifdef TOK_ST_PLUGIN
static tokh_plugin g_st; /* safetensors format plugin: HF directories */
#endif
static int g_loaded;

static int suite_init(void) {
    if (g_loaded) return 0;
    const llmh_host_api *host = llmh_host_api_get();
    if (tokh_plugin_load(&g_bpe, TOK_BPE_PLUGIN, host) || tokh_plugin_load(&g_spm, TOK_SPM_PLUGIN, host) ||
        tokh_plugin_load(&g_gguf, TOK_GGUF_PLUGIN, host))
        return 1;
#ifdef TOK_ST_PLUGIN
    if (tokh_plugin_load(&g_st, TOK_ST_PLUGIN, host)) return 1;
#endif
    g_loaded = 1;
    return 0;
}

static int suite_cleanup(void) {
    if (g_loaded) {
        tokh_plugin_unload(&g_bpe);
        tokh_plugin_unload(&g_spm);
        tokh_plugin_unload(&g_gguf);
#ifdef TOK_ST_PLUGIN
        tokh_plugin_unload(&g_st);
#endif
    }
    return 0;
}

/* A tokenizer built from a GGUF's metadata (the file stays open). */
typedef struct test_tok {
    tokh_gguf g;
    const tokh_plugin *plugin;
    const llmh_tokenizer_iface *ti;
    llmh_tokenizer *tok;
} test_tok;

/* A tokenizer built from the metadata a format plugin gives for `rel`. */
static int open_model_tok(test_tok *t, const tokh_plugin *format, const tokh_plugin *plugin, const char *rel) {
    char *path = llmh_test_shared(rel);
    memset(t, 0, sizeof(*t));
    int rc = tokh_gguf_open(&t->g, format, path);
    if (rc) fprintf(stderr, "cannot open %s: %s\n", path, llmh_last_error());
    free(path);
    if (rc) return -1;
    t->plugin = plugin;
    t->ti = tokh_tok_iface(plugin);
    if (t->ti->create(plugin->state, &t->g.meta, NULL, &t->tok) != LLMH_OK) {
        fprintf(stderr, "cannot create tokenizer for %s: %s\n", rel, llmh_last_error());
        tokh_gguf_close(&t->g);
        return -1;
    }
    return 0;
}

static int open_gguf_tok(test_tok *t, const tokh_plugin *plugin, const char *rel) {
    return open_model_tok(t, &g_gguf, plugin, rel);
}

static int open_json_tok(test_tok *t, const char *rel) {
    static char path[4096];
    char *p = llmh_test_shared(rel);
    snprintf(path, sizeof(path), "%s", p);
    free(p);
    static llmh_kv kv;
    kv.key = "llmh.tokenizer_json";
    kv.value.type = LLMH_V_STRING;
    kv.value.v.s.ptr = path;
    kv.value.v.s.len = strlen(path);
    memset(t, 0, sizeof(*t));
    t->g.meta.items = &kv;
    t->g.meta.n = 1;
    t->plugin = &g_bpe;
    t->ti = tokh_tok_iface(&g_bpe);
    if (t->ti->create(g_bpe.state, &t->g.meta, NULL, &t->tok) != LLMH_OK) {
        fprintf(stderr, "cannot create tokenizer from %s: %s\n", path, llmh_last_error());
        return -1;
    }
    return 0;
}

static void close_tok(test_tok *t) {
    if (t->ti && t->tok) t->ti->destroy(t->tok);
    if (t->g.file) tokh_gguf_close(&t->g);
    memset(t, 0, sizeof(*t));
}

/* ---------------------------------------------------------------------- */
/* llama.cpp vectors                                                       */
/* ---------------------------------------------------------------------- */
static int run_vectors(const test_tok *t, const char *vec_base, uint32_t flags) {
    char rel[512];
    size_t inp_len = 0, out_len = 0;
    snprintf(rel, sizeof(rel), "tokenizers/%s.inp", vec_base);
    char *ip = llmh_test_shared(rel);
    snprintf(rel, sizeof(rel), "tokenizers/%s.out", vec_base);
    char *op = llmh_test_shared(rel);
    char *inp = llmh_test_read_file(ip, &inp_len);
    char *out = llmh_test_read_file(op, &out_len);
    free(ip);
    free(op);
    CU_ASSERT_PTR_NOT_NULL_FATAL(inp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t pos = 0, n_cases = 0, n_pass = 0;
    char *line = out, *out_end = out + out_len;
    while (pos < inp_len) {
        char *next = memmem(inp + pos, inp_len - pos, sep, sizeof(sep) - 1);
        size_t case_len = next ? (size_t)(next - (inp + pos)) : inp_len - pos;
        /* expected ids: one line */
        CU_ASSERT_FATAL(line < out_end);
        char *eol = memchr(line, '\n', (size_t)(out_end - line));
        if (!eol) eol = out_end;
        llmh_token expect[1024];
        size_t ne = 0;
        for (char *q = line; q < eol;) {
            while (q < eol && *q == ' ') q++;
            if (q >= eol) break;
            expect[ne++] = (llmh_token)strtol(q, &q, 10);
            CU_ASSERT_FATAL(ne < 1024);
        }
        line = eol + 1;
        size_t n = 0;
        llmh_status st;
        llmh_token *got = tokh_encode(t->ti, t->tok, inp + pos, case_len, flags, &n, &st);
        int ok = st == LLMH_OK && n == ne && (n == 0 || memcmp(got, expect, n * sizeof(llmh_token)) == 0);
        if (!ok) {
            fprintf(stderr, "\n%s case %zu '%.*s': expected", vec_base, n_cases, (int)case_len, inp + pos);
            for (size_t i = 0; i < ne; i++) fprintf(stderr, " %d", expect[i]);
            fprintf(stderr, "\n   got (status %d):", (int)st);
            for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", got[i]);
            fprintf(stderr, "\n");
        }
        n_pass += ok;
        n_cases++;
        free(got);
        if (!next) break;
        pos = (size_t)(next - inp) + sizeof(sep) - 1;
    }
    free(inp);
    free(out);
    CU_ASSERT(n_cases == 46);
    CU_ASSERT_EQUAL(n_pass, n_cases);
    return (int)n_pass;
}

static void test_qwen2_vectors_gguf(void) {
    test_tok t;
    CU_ASSERT_FATAL(open_gguf_tok(&t, &g_bpe, "models/qwen2-tiny-f32.gguf") == 0);
    run_vectors(&t, "ggml-vocab-qwen2.gguf", 0);
    close_tok(&t);
}

static void test_qwen2_vectors_json(void) {
    test_tok t;
    CU_ASSERT_FATAL(open_json_tok(&t, "models/qwen2-tiny-hf/tokenizer.json") == 0);
    run_vectors(&t, "ggml-vocab-qwen2.gguf", 0);
    close_tok(&t);
}

static void test_spm_vectors(void) {
    test_tok t;
    CU_ASSERT_FATAL(open_gguf_tok(&t, &g_spm, "tokenizers/ggml-vocab-llama-spm.gguf") == 0);
    run_vectors(&t, "ggml-vocab-llama-spm.gguf", 0);
    close_tok(&t);
}

/* ---------------------------------------------------------------------- */
/* Reference runs: prompt tokens and greedy text                           */
/* ---------------------------------------------------------------------- */
static void check_reference(const char *ref_file) {
    char rel[512];
    snprintf(rel, sizeof(rel), "reference/%s", ref_file);
    char *path = llmh_test_shared(rel);
    size_t len = 0;
    char *text = llmh_test_read_file(path, &len);
    free(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    CU_ASSERT_FATAL(cJSON_IsString(model));
    int is_spm = strncmp(model->valuestring, "stories260K", 11) == 0;
    snprintf(rel, sizeof(rel), "models/%s", model->valuestring);
    test_tok t;
    CU_ASSERT_FATAL(open_gguf_tok(&t, is_spm ? &g_spm : &g_bpe, rel) == 0);
    uint32_t flags = LLMH_ENCODE_PARSE_SPECIAL | (t.ti->add_bos_default(t.tok) ? LLMH_ENCODE_ADD_BOS : 0);
    const cJSON *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "cases")) {
        const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(c, "prompt");
        const cJSON *ptoks = cJSON_GetObjectItemCaseSensitive(c, "prompt_tokens");
        CU_ASSERT_FATAL(cJSON_IsString(prompt) && cJSON_IsArray(ptoks));
        size_t n = 0;
        llmh_status st;
        llmh_token *got = tokh_encode(t.ti, t.tok, prompt->valuestring, strlen(prompt->valuestring), flags, &n, &st);
        CU_ASSERT_EQUAL(st, LLMH_OK);
        int ok = n == (size_t)cJSON_GetArraySize(ptoks);
        for (size_t i = 0; ok && i < n; i++) ok = got[i] == (llmh_token)cJSON_GetArrayItem(ptoks, (int)i)->valueint;
        if (!ok) fprintf(stderr, "\n%s: prompt '%s' tokenized differently\n", ref_file, prompt->valuestring);
        CU_ASSERT(ok);
        free(got);

        /* the greedy continuation decodes to the recorded text */
        const cJSON *greedy = cJSON_GetObjectItemCaseSensitive(c, "greedy");
        const cJSON *gtext = cJSON_GetObjectItemCaseSensitive(c, "greedy_text");
        if (cJSON_IsArray(greedy) && cJSON_IsString(gtext)) {
            size_t ng = (size_t)cJSON_GetArraySize(greedy), k = 0, dl = 0;
            llmh_token *ids = malloc((ng + 1) * sizeof(llmh_token));
            const cJSON *g;
            cJSON_ArrayForEach(g, greedy) ids[k++] = (llmh_token)g->valueint;
            char *dec = tokh_decode(t.ti, t.tok, ids, ng, 0, &dl, &st);
            CU_ASSERT_EQUAL(st, LLMH_OK);
            int same = dec && dl == strlen(gtext->valuestring) && memcmp(dec, gtext->valuestring, dl) == 0;
            if (!same) fprintf(stderr, "\n%s: greedy text differs: '%s' vs '%s'\n", ref_file, dec ? dec : "(null)", gtext->valuestring);
            CU_ASSERT(same);
            free(dec);
            free(ids);
        }
        n_cases++;
    }
    CU_ASSERT(n_cases > 0);
    close_tok(&t);
    cJSON_Delete(root);
}

static void test_reference_prompts(void) {
    static const char *const files[] = {
        "ref-llama-tiny-bf16.json", "ref-qwen2-tiny-f32-lora-a.json", "ref-qwen2-tiny-f32-lora-a0.7-b1.3.json",
        "ref-qwen2-tiny-f32-lora-b0.5.json", "ref-qwen2-tiny-f32.json", "ref-qwen2-tiny-q4_0.json",
        "ref-qwen2-tiny-q8_0.json", "ref-stories260K-lora-big.json", "ref-stories260K-lora-tim+big.json",
        "ref-stories260K-lora-tim.json", "ref-stories260K-lora-tim0.5+big0.5.json", "ref-stories260K.json"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) check_reference(files[i]);
}

/* ---------------------------------------------------------------------- */
/* Round trips of arbitrary bytes                                          */
/* ---------------------------------------------------------------------- */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* Random mix of raw bytes (often invalid UTF-8), ASCII words and spaces,
 * and valid multi-byte characters. */
static size_t random_text(char *buf, size_t cap) {
    size_t n = rnd() % (cap - 8), o = 0;
    while (o < n) {
        switch (rnd() % 5) {
        case 0: buf[o++] = (char)(rnd() & 0xFF); break;
        case 1: buf[o++] = " \n\t  "[rnd() % 5]; break;
        case 2: buf[o++] = (char)('a' + rnd() % 26); break;
        case 3: buf[o++] = "'.,!?0123456789<>|"[rnd() % 18]; break;
        default: {
            static const uint32_t ranges[][2] = {{0xA0, 0x24F}, {0x400, 0x4FF}, {0x4E00, 0x9FFF},
                                                 {0x1F300, 0x1F6FF}, {0x300, 0x36F}, {0x3040, 0x30FF}};
            const uint32_t *r = ranges[rnd() % 6];
            uint32_t cp = r[0] + rnd() % (r[1] - r[0] + 1);
            o += (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)buf + o);
        }
        }
    }
    return o;
}

/* Is every valid UTF-8 run of s already in NFC? */
static int nfc_stable(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        for (;;) {
            utf8proc_int32_t cp;
            if (j >= n) break;
            utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + j, (utf8proc_ssize_t)(n - j), &cp);
            if (k <= 0) break;
            j += (size_t)k;
        }
        if (j > i) {
            utf8proc_uint8_t *d = NULL;
            utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(j - i), &d,
                                              (utf8proc_option_t)(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
            int same = r == (utf8proc_ssize_t)(j - i) && memcmp(d, s + i, j - i) == 0;
            free(d);
            if (!same) return 0;
            i = j;
        } else {
            i++;
        }
    }
    return 1;
}

static void round_trip(test_tok *t, uint32_t enc_flags, uint32_t dec_flags, int spm, int nfc, int iters) {
    char buf[300];
    int checked = 0;
    for (int it = 0; it < iters; it++) {
        size_t n = random_text(buf, sizeof(buf) - 8);
        if (spm && memmem(buf, n, "\xe2\x96\x81", 3)) continue; /* U+2581 is SPM's space */
        if (nfc && !nfc_stable(buf, n)) continue;
        size_t nt = 0, dl = 0;
        llmh_status st;
        llmh_token *ids = tokh_encode(t->ti, t->tok, buf, n, enc_flags, &nt, &st);
        CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
        char *dec = tokh_decode(t->ti, t->tok, ids, nt, dec_flags, &dl, &st);
        CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
        int same = dl == n && memcmp(dec, buf, n) == 0;
        if (!same) {
            fprintf(stderr, "\nround trip failed (%zu bytes in, %zu out):", n, dl);
            for (size_t i = 0; i < n; i++) fprintf(stderr, " %02x", (unsigned char)buf[i]);
            fprintf(stderr, "\n");
        }
        CU_ASSERT_FATAL(same);
        /* concatenating token_to_piece gives the same bytes */
        size_t o = 0;
        int strip = (dec_flags & LLMH_DECODE_STRIP_LEADING) != 0;
        for (size_t i = 0; i < nt; i++) {
            char piece[256];
            size_t pn = 0;
            CU_ASSERT_EQUAL_FATAL(t->ti->token_to_piece(t->tok, ids[i], 0, piece, sizeof(piece), &pn), LLMH_OK);
            size_t skip = (strip && pn && piece[0] == ' ') ? 1 : 0;
            if (pn) strip = 0; /* STRIP_LEADING applies to the first non-empty piece */
            CU_ASSERT_FATAL(o + pn - skip <= n && memcmp(buf + o, piece + skip, pn - skip) == 0);
            o += pn - skip;
        }
        CU_ASSERT_EQUAL(o, n);
        free(ids);
        free(dec);
        checked++;
    }
    CU_ASSERT(checked > iters / 2);
}

static void test_round_trip_bpe(void) {
    test_tok t;
    CU_ASSERT_FATAL(open_gguf_tok(&t, &g_bpe, "models/qwen2-tiny-f32.gguf") == 0);
    round_trip(&t, 0, 0, 0, 0, 3000);
    close_tok(&t);
    CU_ASSERT_FATAL(open_json_tok(&t, "models/qwen2-tiny-hf/tokenizer.json") == 0);
    round_trip(&t, 0, 0, 0, 1, 2000);
    close_tok(&t);
}

static void test_round_trip_spm(void) {
    test_tok t;
    CU_ASSERT_FATAL(open_gguf_tok(&t, &g_spm, "tokenizers/ggml-vocab-llama-spm.gguf") == 0);
    round_trip(&t, LLMH_ENCODE_NO_LEADING_SPACE, 0, 1, 0, 2000);
    round_trip(&t, 0, LLMH_DECODE_STRIP_LEADING, 1, 0, 1000);
    close_tok(&t);
    CU_ASSERT_FATAL(open_gguf_tok(&t, &g_spm, "models/stories260K.gguf") == 0);
    round_trip(&t, LLMH_ENCODE_NO_LEADING_SPACE, 0, 1, 0, 2000);
    round_trip(&t, LLMH_ENCODE_ADD_BOS, LLMH_DECODE_STRIP_LEADING, 1, 0, 1000);
    close_tok(&t);
}

/* Long runs (one huge pre-tokenizer word, long whitespace) stay exact. */
static void test_long_runs(void) {
    test_tok b, s;
    CU_ASSERT_FATAL(open_gguf_tok(&b, &g_bpe, "models/qwen2-tiny-f32.gguf") == 0);
    CU_ASSERT_FATAL(open_gguf_tok(&s, &g_spm, "tokenizers/ggml-vocab-llama-spm.gguf") == 0);
    const size_t n = 200000;
    char *buf = malloc(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    for (int kind = 0; kind < 4; kind++) {
        for (size_t i = 0; i < n; i++)
            buf[i] = kind == 0 ? ' ' : kind == 1 ? (char)('a' + i % 7) : kind == 2 ? '\n' : (char)(0x80 + i % 64);
        const test_tok *ts[2] = {&b, &s};
        for (int k = 0; k < 2; k++) {
            size_t nt = 0, dl = 0;
            llmh_status st;
            llmh_token *ids = tokh_encode(ts[k]->ti, ts[k]->tok, buf, n, LLMH_ENCODE_NO_LEADING_SPACE, &nt, &st);
            CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
            CU_ASSERT(nt > 0 && nt <= n);
            char *dec = tokh_decode(ts[k]->ti, ts[k]->tok, ids, nt, 0, &dl, &st);
            CU_ASSERT(st == LLMH_OK && dl == n && memcmp(dec, buf, n) == 0);
            free(dec);
            free(ids);
        }
    }
    free(buf);
    close_tok(&b);
    close_tok(&s);
}

/* encode() is thread-safe: concurrent calls give the single-thread ids. */
typedef struct mt_job {
    const test_tok *t;
    const char *const *texts;
    size_t n_texts;
    llmh_token **expect;
    size_t *expect_n;
    int mismatches;
} mt_job;

static void *mt_worker(void *arg) {
    mt_job *j = arg;
    for (int rep = 0; rep < 20; rep++) {
        for (size_t i = 0; i < j->n_texts; i++) {
            size_t n = 0;
            llmh_status st;
            llmh_token *ids = tokh_encode(j->t->ti, j->t->tok, j->texts[i], strlen(j->texts[i]),
                                          LLMH_ENCODE_PARSE_SPECIAL, &n, &st);
            if (st != LLMH_OK || n != j->expect_n[i] || memcmp(ids, j->expect[i], n * sizeof(llmh_token)) != 0)
                j->mismatches++;
            free(ids);
        }
    }
    return NULL;
}

static void test_threads(void) {
    static const char *const texts[] = {
        "Hello, world! How are you doing today?", "<|im_start|>user\nWrite a haiku.<|im_end|>",
        "数学 123 + 4567 = ?", "    indented code(x) { return y; }", "🚀 emojis 😶‍🌫️ and café naïve",
        "Once upon a time there was a little girl named Lily."};
    const size_t nt = sizeof(texts) / sizeof(texts[0]);
    test_tok b, s;
    CU_ASSERT_FATAL(open_gguf_tok(&b, &g_bpe, "models/qwen2-tiny-f32.gguf") == 0);
    CU_ASSERT_FATAL(open_gguf_tok(&s, &g_spm, "models/stories260K.gguf") == 0);
    const test_tok *ts[2] = {&b, &s};
    for (int k = 0; k < 2; k++) {
        llmh_token *expect[6];
        size_t expect_n[6];
        for (size_t i = 0; i < nt; i++) {
            llmh_status st;
            expect[i] = tokh_encode(ts[k]->ti, ts[k]->tok, texts[i], strlen(texts[i]), LLMH_ENCODE_PARSE_SPECIAL,
                                    &expect_n[i], &st);
            CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
        }
        pthread_t th[4];
        mt_job jobs[4];
        for (int i = 0; i < 4; i++) {
            jobs[i] = (mt_job){ts[k], texts, nt, expect, expect_n, 0};
            CU_ASSERT_FATAL(pthread_create(&th[i], NULL, mt_worker, &jobs[i]) == 0);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            CU_ASSERT_EQUAL(jobs[i].mismatches, 0);
        }
        for (size_t i = 0; i < nt; i++) free(expect[i]);
    }
    close_tok(&b);
    close_tok(&s);
}

/* ---------------------------------------------------------------------- */
/* ABI rules, special tokens, flags                                        */
/* ---------------------------------------------------------------------- */
static void test_probe(void) {
    test_tok q, s;
    CU_ASSERT_FATAL(open_gguf_tok(&q, &g_bpe, "models/qwen2-tiny-f32.gguf") == 0);
    CU_ASSERT_FATAL(open_gguf_tok(&s, &g_spm, "models/stories260K.gguf") == 0);
    const llmh_tokenizer_iface *bi = tokh_tok_iface(&g_bpe), *si = tokh_tok_iface(&g_spm);
    CU_ASSERT(bi->probe(g_bpe.state, &q.g.meta) >= 80);
    CU_ASSERT_EQUAL(bi->probe(g_bpe.state, &s.g.meta), 0);
    CU_ASSERT(si->probe(g_spm.state, &s.g.meta) >= 80);
    CU_ASSERT_EQUAL(si->probe(g_spm.state, &q.g.meta), 0);
    /* the wrong plugin refuses with an error instead of misbehaving */
    llmh_tokenizer *bad = NULL;
    CU_ASSERT(si->create(g_spm.state, &q.g.meta, NULL, &bad) < 0);
    CU_ASSERT_PTR_NULL(bad);
    CU_ASSERT(bi->create(g_bpe.state, &s.g.meta, NULL, &bad) < 0);
    CU_ASSERT_PTR_NULL(bad);
    close_tok(&q);
    close_tok(&s);

    char *path = llmh_test_shared("models/qwen2-tiny-hf/tokenizer.json");
    llmh_kv kv = {"llmh.tokenizer_json", {LLMH_V_STRING, {.s = {path, strlen(path)}}}};
    llmh_kv_list meta = {&kv, 1};
    CU_ASSERT(bi->probe(g_bpe.state, &meta) >= 80);
    CU_ASSERT_EQUAL(si->probe(g_spm.state, &meta), 0);
    free(path);
}

static void test_specials_qwen(void) {
    test_tok t, j;
    CU_ASSERT_FATAL(open_gguf_tok(&t, &g_bpe, "models/qwen2-tiny-f32.gguf") == 0);
    CU_ASSERT_FATAL(open_json_tok(&j, "models/qwen2-tiny-hf/tokenizer.json") == 0);
    CU_ASSERT_EQUAL(t.ti->n_vocab(t.tok), 151936);
    CU_ASSERT_EQUAL(t.ti->special(t.tok, LLMH_SPECIAL_EOS), 151645);
    CU_ASSERT_EQUAL(t.ti->special(t.tok, LLMH_SPECIAL_BOS), 151643);
    CU_ASSERT_EQUAL(t.ti->special(t.tok, LLMH_SPECIAL_PAD), 151643);
    CU_ASSERT_EQUAL(t.ti->special(t.tok, LLMH_SPECIAL_EOT), 151645);
    CU_ASSERT_EQUAL(t.ti->special(t.tok, LLMH_SPECIAL_NL), 198);
    CU_ASSERT_EQUAL(t.ti->special(t.tok, LLMH_SPECIAL_UNK), -1);
    CU_ASSERT_EQUAL(t.ti->add_bos_default(t.tok), 0);
    CU_ASSERT_EQUAL(j.ti->special(j.tok, LLMH_SPECIAL_EOS), 151645);
    CU_ASSERT_EQUAL(j.ti->special(j.tok, LLMH_SPECIAL_EOT), 151645);
    CU_ASSERT_EQUAL(j.ti->special(j.tok, LLMH_SPECIAL_PAD), 151643);
    CU_ASSERT_EQUAL(j.ti->special(j.tok, LLMH_SPECIAL_BOS), -1);
    CU_ASSERT_EQUAL(j.ti->add_bos_default(j.tok), 0);
    CU_ASSERT_EQUAL(j.ti->n_vocab(j.tok), 151669);
    CU_ASSERT_EQUAL(t.ti->token_type(t.tok, 151644), LLMH_TOKEN_CONTROL);
    CU_ASSERT_EQUAL(j.ti->token_type(j.tok, 151644), LLMH_TOKEN_CONTROL);
    CU_ASSERT_EQUAL(j.ti->token_type(j.tok, 151667), LLMH_TOKEN_USER_DEFINED);
    CU_ASSERT_EQUAL(t.ti->token_type(t.tok, 9707), LLMH_TOKEN_NORMAL);
    CU_ASSERT_EQUAL(t.ti->token_type(t.tok, -1), 0);
    CU_ASSERT_EQUAL(t.ti->token_type(t.tok, 151936), 0);
    size_t len = 0;
    const char *txt = t.ti->token_text(t.tok, 151644, &len);
    CU_ASSERT(txt && len == 12 && memcmp(txt, "<|im_start|>", 12) == 0);
    CU_ASSERT_PTR_NULL(t.ti->token_text(t.tok, 200000, &len));

    const test_tok *both[2] = {&t, &j};
    for (int k = 0; k < 2; k++) {
        const test_tok *x = both[k];
        const char *s = "<|im_start|>user<think>x";
        size_t n = 0;
        llmh_status st;
        /* control tokens only with PARSE_SPECIAL; user-defined always */
        llmh_token *a = tokh_encode(x->ti, x->tok, s, strlen(s), LLMH_ENCODE_PARSE_SPECIAL, &n, &st);
        CU_ASSERT_FATAL(st == LLMH_OK && n == 4);
        CU_ASSERT(a[0] == 151644 && a[1] == 872 && a[2] == 151667);
        free(a);
        a = tokh_encode(x->ti, x->tok, s, strlen(s), 0, &n, &st);
        CU_ASSERT_FATAL(st == LLMH_OK && n > 4);
        CU_ASSERT(a[0] != 151644);
        int has_think = 0;
        for (size_t i = 0; i < n; i++) has_think |= a[i] == 151667;
        CU_ASSERT(has_think);
        /* plain-text encoding of the special's text decodes back to it */
        size_t dl = 0;
        char *d = tokh_decode(x->ti, x->tok, a, n, 0, &dl, &st);
        CU_ASSERT(d && dl == strlen(s) && memcmp(d, s, dl) == 0);
        free(d);
        free(a);
        /* ADD_BOS adds the BOS the vocab has (GGUF) */
        a = tokh_encode(x->ti, x->tok, "hi", 2, LLMH_ENCODE_ADD_BOS, &n, &st);
        CU_ASSERT_EQUAL(st, LLMH_OK);
        if (x == &t) {
            CU_ASSERT(n == 2 && a[0] == 151643);
        } else {
            CU_ASSERT(n == 1);
        }
        free(a);
    }
    /* control tokens render only with DECODE_SPECIAL */
    char buf[64];
    size_t n = 99;
    CU_ASSERT_EQUAL(t.ti->token_to_piece(t.tok, 151645, 0, buf, sizeof(buf), &n), LLMH_OK);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(t.ti->token_to_piece(t.tok, 151645, LLMH_DECODE_SPECIAL, buf, sizeof(buf), &n), LLMH_OK);
    CU_ASSERT(n == 10 && memcmp(buf, "<|im_end|>", 10) == 0);
    CU_ASSERT_EQUAL(t.ti->token_to_piece(t.tok, 151667, 0, buf, sizeof(buf), &n), LLMH_OK);
    CU_ASSERT(n == 7 && memcmp(buf, "<think>", 7) == 0);
    /* byte-level pieces are raw bytes: 'Ġ' (220) is a space */
    CU_ASSERT_EQUAL(t.ti->token_to_piece(t.tok, 220, 0, buf, sizeof(buf), &n), LLMH_OK);
    CU_ASSERT(n == 1 && buf[0] == ' ');
    close_tok(&t);
    close_tok(&j);
}

static void test_cap_rules(void) {
    test_tok t;
    CU_ASSERT_FATAL(open_gguf_tok(&t, &g_bpe, "models/qwen2-tiny-f32.gguf") == 0);
    const char *s = "Hello, world! Hello, world!";
    llmh_token ids[4]; /* Hello , Ġworld ! ĠHello , Ġworld ! */
    size_t n = 0;
    CU_ASSERT_EQUAL(t.ti->encode(t.tok, s, strlen(s), 0, ids, 4, &n), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(n, 8);
    CU_ASSERT_EQUAL(t.ti->encode(t.tok, s, strlen(s), 0, NULL, 0, &n), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(n, 8);
    CU_ASSERT_EQUAL(t.ti->encode(t.tok, "", 0, 0, NULL, 0, &n), LLMH_OK);
    CU_ASSERT_EQUAL(n, 0);
    llmh_token big[16];
    CU_ASSERT_EQUAL(t.ti->encode(t.tok, s, strlen(s), 0, big, 16, &n), LLMH_OK);
    CU_ASSERT_EQUAL(n, 8);
    char small[3];
    size_t dl = 0;
    CU_ASSERT_EQUAL(t.ti->decode(t.tok, big, n, 0, small, sizeof(small), &dl), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(dl, strlen(s));
    CU_ASSERT_EQUAL(t.ti->token_to_piece(t.tok, big[0], 0, small, 2, &dl), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(dl, 5); /* "Hello" */
    llmh_token bad = 151936;
    CU_ASSERT_EQUAL(t.ti->decode(t.tok, &bad, 1, 0, small, sizeof(small), &dl), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(t.ti->token_to_piece(t.tok, -5, 0, small, sizeof(small), &dl), LLMH_ERR_INVALID_ARG);
    close_tok(&t);
}

static void test_spm_details(void) {
    test_tok t;
    CU_ASSERT_FATAL(open_gguf_tok(&t, &g_spm, "models/stories260K.gguf") == 0);
    CU_ASSERT_EQUAL(t.ti->n_vocab(t.tok), 512);
    CU_ASSERT_EQUAL(t.ti->special(t.tok, LLMH_SPECIAL_BOS), 1);
    CU_ASSERT_EQUAL(t.ti->special(t.tok, LLMH_SPECIAL_EOS), 2);
    CU_ASSERT_EQUAL(t.ti->special(t.tok, LLMH_SPECIAL_UNK), 0);
    CU_ASSERT_EQUAL(t.ti->special(t.tok, LLMH_SPECIAL_PAD), -1); /* 0xFFFFFFFF in the file */
    CU_ASSERT_EQUAL(t.ti->special(t.tok, LLMH_SPECIAL_NL), 13);  /* <0x0A> */
    CU_ASSERT_EQUAL(t.ti->add_bos_default(t.tok), 1);
    size_t n = 0, dl = 0;
    llmh_status st;
    llmh_token *a = tokh_encode(t.ti, t.tok, "Once upon a time", 16, LLMH_ENCODE_ADD_BOS, &n, &st);
    CU_ASSERT_FATAL(st == LLMH_OK && n == 5);
    CU_ASSERT(a[0] == 1 && a[1] == 403 && a[2] == 407 && a[3] == 261 && a[4] == 378);
    char *d = tokh_decode(t.ti, t.tok, a, n, 0, &dl, &st);
    CU_ASSERT(d && strcmp(d, " Once upon a time") == 0);
    free(d);
    d = tokh_decode(t.ti, t.tok, a, n, LLMH_DECODE_STRIP_LEADING, &dl, &st);
    CU_ASSERT(d && strcmp(d, "Once upon a time") == 0);
    free(d);
    d = tokh_decode(t.ti, t.tok, a, n, LLMH_DECODE_SPECIAL, &dl, &st);
    CU_ASSERT(d && strcmp(d, "<s> Once upon a time") == 0);
    free(d);
    free(a);
    /* no dummy prefix: the first word has no U+2581 */
    a = tokh_encode(t.ti, t.tok, "Once", 4, LLMH_ENCODE_NO_LEADING_SPACE, &n, &st);
    CU_ASSERT_EQUAL(st, LLMH_OK);
    CU_ASSERT(n >= 1 && a[0] != 403);
    d = tokh_decode(t.ti, t.tok, a, n, 0, &dl, &st);
    CU_ASSERT(d && strcmp(d, "Once") == 0);
    free(d);
    free(a);
    /* byte fallback for characters outside the 512-piece vocab */
    a = tokh_encode(t.ti, t.tok, "\xe6\x95\xb0", 3, LLMH_ENCODE_NO_LEADING_SPACE, &n, &st);
    CU_ASSERT_FATAL(st == LLMH_OK && n == 3);
    CU_ASSERT(a[0] == 3 + 0xe6 && a[1] == 3 + 0x95 && a[2] == 3 + 0xb0);
    free(a);
    /* special tokens after a control token: no dummy prefix on what follows */
    a = tokh_encode(t.ti, t.tok, "<s>Once", 7, LLMH_ENCODE_PARSE_SPECIAL, &n, &st);
    CU_ASSERT_FATAL(st == LLMH_OK && n >= 2);
    CU_ASSERT(a[0] == 1);
    free(a);
    close_tok(&t);
}

/* A vocab with a piece that joins a character to a following U+2581 must
 * merge across words (no word-by-word shortcut). */
static void test_spm_cross_word_piece(void) {
    const llmh_tokenizer_iface *si = tokh_tok_iface(&g_spm);
    static const char *const texts[] = {"<unk>", "\xe2\x96\x81", "a", "\xe2\x96\x81" "a", "a\xe2\x96\x81"};
    static const int types[] = {LLMH_TOKEN_UNKNOWN, 1, 1, 1, 1};
    static const double scores[] = {0, -5, -5, -1, 0};
    llmh_value tv[5], yv[5], sv[5];
    for (int i = 0; i < 5; i++) {
        tv[i] = (llmh_value){LLMH_V_STRING, {.s = {texts[i], strlen(texts[i])}}};
        yv[i] = (llmh_value){LLMH_V_I32, {.i = types[i]}};
        sv[i] = (llmh_value){LLMH_V_F32, {.f = scores[i]}};
    }
    llmh_kv kv[4] = {
        {"tokenizer.ggml.model", {LLMH_V_STRING, {.s = {"llama", 5}}}},
        {"tokenizer.ggml.tokens", {LLMH_V_ARRAY, {.arr = {LLMH_V_STRING, 5, tv}}}},
        {"tokenizer.ggml.token_type", {LLMH_V_ARRAY, {.arr = {LLMH_V_I32, 5, yv}}}},
        {"tokenizer.ggml.scores", {LLMH_V_ARRAY, {.arr = {LLMH_V_F32, 5, sv}}}}};
    llmh_kv_list meta = {kv, 4};
    llmh_tokenizer *tok = NULL;
    CU_ASSERT_EQUAL_FATAL(si->create(g_spm.state, &meta, NULL, &tok), LLMH_OK);
    llmh_token out[8];
    size_t n = 0;
    /* "a a" -> "a▁a": "a▁" (score 0) beats "▁a" (-1) */
    CU_ASSERT_EQUAL(si->encode(tok, "a a", 3, LLMH_ENCODE_NO_LEADING_SPACE, out, 8, &n), LLMH_OK);
    CU_ASSERT(n == 2 && out[0] == 4 && out[1] == 2);
    /* with the dummy prefix, "▁a▁a": "a▁" (0) merges before either "▁a" (-1),
     * and "▁a▁" is not a piece, so "▁" stays alone */
    CU_ASSERT_EQUAL(si->encode(tok, "a a", 3, 0, out, 8, &n), LLMH_OK);
    CU_ASSERT(n == 3 && out[0] == 1 && out[1] == 4 && out[2] == 2);
    si->destroy(tok);
}

/* Malformed metadata fails cleanly. */
static void test_bad_metadata(void) {
    const llmh_tokenizer_iface *bi = tokh_tok_iface(&g_bpe), *si = tokh_tok_iface(&g_spm);
    llmh_tokenizer *tok = NULL;
    llmh_kv kv[4];
    memset(kv, 0, sizeof(kv));
    kv[0].key = "tokenizer.ggml.model";
    kv[0].value.type = LLMH_V_STRING;
    kv[0].value.v.s.ptr = "gpt2";
    kv[0].value.v.s.len = 4;
    kv[1].key = "tokenizer.ggml.tokens";
    kv[1].value.type = LLMH_V_U32; /* wrong type */
    llmh_kv_list meta = {kv, 2};
    CU_ASSERT(bi->create(g_bpe.state, &meta, NULL, &tok) < 0);
    CU_ASSERT_PTR_NULL(tok);
    /* tokens fine, merges missing */
    llmh_value toks[3];
    memset(toks, 0, sizeof(toks));
    const char *names[3] = {"a", "b", "ab"};
    for (int i = 0; i < 3; i++) {
        toks[i].type = LLMH_V_STRING;
        toks[i].v.s.ptr = names[i];
        toks[i].v.s.len = strlen(names[i]);
    }
    kv[1].value.type = LLMH_V_ARRAY;
    kv[1].value.v.arr.elem_type = LLMH_V_STRING;
    kv[1].value.v.arr.n = 3;
    kv[1].value.v.arr.items = toks;
    CU_ASSERT_EQUAL(bi->create(g_bpe.state, &meta, NULL, &tok), LLMH_ERR_NOT_FOUND);
    /* token_type shorter than tokens */
    llmh_value types[1] = {{LLMH_V_I32, {.i = 1}}};
    kv[2].key = "tokenizer.ggml.token_type";
    kv[2].value.type = LLMH_V_ARRAY;
    kv[2].value.v.arr.elem_type = LLMH_V_I32;
    kv[2].value.v.arr.n = 1;
    kv[2].value.v.arr.items = types;
    kv[0].value.v.s.ptr = "llama";
    kv[0].value.v.s.len = 5;
    meta.n = 3;
    CU_ASSERT_EQUAL(si->create(g_spm.state, &meta, NULL, &tok), LLMH_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(tok);
    /* a tiny valid SPM vocab works, with unknown-token fallback (no byte tokens) */
    meta.n = 2;
    CU_ASSERT_EQUAL_FATAL(si->create(g_spm.state, &meta, NULL, &tok), LLMH_OK);
    llmh_token out[8];
    size_t n = 0;
    /* defaults BOS=1, EOS=2, UNK=0 are in range; "ab" has score 0 like all */
    CU_ASSERT_EQUAL(si->encode(tok, "ab", 2, LLMH_ENCODE_NO_LEADING_SPACE, out, 8, &n), LLMH_OK);
    CU_ASSERT(n == 1 && out[0] == 2);
    si->destroy(tok);
    /* missing tokenizer.json file */
    llmh_kv j = {"llmh.tokenizer_json", {LLMH_V_STRING, {.s = {"/nonexistent/tokenizer.json", 27}}}};
    llmh_kv_list jm = {&j, 1};
    CU_ASSERT_EQUAL(bi->probe(g_bpe.state, &jm), 0);
    tok = NULL;
    CU_ASSERT(bi->create(g_bpe.state, &jm, NULL, &tok) < 0);
    CU_ASSERT_PTR_NULL(tok);
    bi->destroy(NULL);
    si->destroy(NULL);
}

#ifdef TOK_ST_PLUGIN
/* HF directories through the safetensors plugin: llmh.tokenizer_json plus
 * the ids and vocab size it maps from config.json give the GGUF's tokenizer. */
static void test_hf_directories(void) {
    static const char *const dirs[] = {"models/qwen2-tiny-hf", "models/llama-tiny-hf"};
    for (size_t d = 0; d < 2; d++) {
        test_tok t;
        CU_ASSERT_FATAL(open_model_tok(&t, &g_st, &g_bpe, dirs[d]) == 0);
        CU_ASSERT(t.ti->probe(g_bpe.state, &t.g.meta) >= 80);
        CU_ASSERT_EQUAL(tokh_tok_iface(&g_spm)->probe(g_spm.state, &t.g.meta), 0);
        CU_ASSERT_EQUAL(t.ti->n_vocab(t.tok), 151936);
        CU_ASSERT_EQUAL(t.ti->special(t.tok, LLMH_SPECIAL_EOS), 151645);
        CU_ASSERT_EQUAL(t.ti->special(t.tok, LLMH_SPECIAL_EOT), 151645);
        CU_ASSERT_EQUAL(t.ti->add_bos_default(t.tok), 0);
        CU_ASSERT_EQUAL(t.ti->token_type(t.tok, 151700), LLMH_TOKEN_UNUSED);
        run_vectors(&t, "ggml-vocab-qwen2.gguf", 0);
        const char *s = "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n";
        static const llmh_token expect[] = {151644, 872, 198, 7985, 264, 6386, 38242, 911,
                                            279, 9396, 13, 151645, 198, 151644, 77091, 198};
        size_t n = 0;
        llmh_status st;
        llmh_token *ids = tokh_encode(t.ti, t.tok, s, strlen(s), LLMH_ENCODE_PARSE_SPECIAL, &n, &st);
        CU_ASSERT(st == LLMH_OK && n == 16 && memcmp(ids, expect, sizeof(expect)) == 0);
        free(ids);
        close_tok(&t);
    }
}
#endif

/* The registry picks the right plugin by probe ("auto"). */
static void test_registry_auto(void) {
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", TOK_BPE_PLUGIN);
    char *slash = strrchr(dir, '/');
    CU_ASSERT_PTR_NOT_NULL_FATAL(slash);
    *slash = 0;
    llmh_registry *reg = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh_registry_create(&reg), LLMH_OK);
    CU_ASSERT_EQUAL(llmh_registry_add_path(reg, dir), LLMH_OK);
    CU_ASSERT_EQUAL(llmh_registry_scan(reg), LLMH_OK);
    static const struct { const char *rel; const tokh_plugin *plugin; const char *name; } cases[] = {
        {"models/qwen2-tiny-f32.gguf", &g_bpe, "bpe"},
        {"models/stories260K.gguf", &g_spm, "spm"},
        {"tokenizers/ggml-vocab-llama-spm.gguf", &g_spm, "spm"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        test_tok t;
        CU_ASSERT_FATAL(open_gguf_tok(&t, cases[i].plugin, cases[i].rel) == 0);
        llmh_plugin *p = NULL;
        CU_ASSERT_EQUAL(llmh_registry_get_tokenizer_for(reg, &t.g.meta, &p), LLMH_OK);
        if (p) {
            CU_ASSERT_STRING_EQUAL(llmh_plugin_descriptor(p)->name, cases[i].name);
            llmh_plugin_release(p);
        }
        close_tok(&t);
    }
    llmh_registry_free(reg);
}

int main(void) {
    static const llmh_test_case vectors[] = {
        {"qwen2 vectors (GGUF vocab)", test_qwen2_vectors_gguf},
        {"qwen2 vectors (tokenizer.json)", test_qwen2_vectors_json},
        {"llama-spm vectors", test_spm_vectors},
        {"reference prompt tokens and greedy text", test_reference_prompts},
        {NULL, NULL}};
    static const llmh_test_case props[] = {
        {"bpe round trip of arbitrary bytes", test_round_trip_bpe},
        {"spm round trip of arbitrary bytes", test_round_trip_spm},
        {"long runs", test_long_runs},
        {"concurrent encode", test_threads},
        {NULL, NULL}};
    static const llmh_test_case api[] = {
        {"probe and refusal", test_probe},
        {"qwen specials, parse-special, rendering", test_specials_qwen},
        {"cap rules", test_cap_rules},
        {"spm details", test_spm_details},
        {"malformed metadata", test_bad_metadata},
        {"spm piece across U+2581", test_spm_cross_word_piece},
        {"registry picks bpe/spm by probe", test_registry_auto},
#ifdef TOK_ST_PLUGIN
        {"HF directories via safetensors", test_hf_directories},
#endif
        {NULL, NULL}};
    static const llmh_test_suite suites[] = {
        {"tokenizer vectors", vectors, suite_init, NULL},
        {"tokenizer properties", props, suite_init, NULL},
        {"tokenizer api", api, suite_init, suite_cleanup},
    };
    return llmh_test_main(suites, sizeof(suites) / sizeof(suites[0]));
}
