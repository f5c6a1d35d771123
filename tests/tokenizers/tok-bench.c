/*
 * tok-bench.c — single-threaded tokenizer throughput (built, not run by
 * ctest).
 *
 *   tok-bench [MODEL.gguf|tokenizer.json] [TEXT_FILE] [REPEATS]
 *
 * Without TEXT_FILE it generates 1 MiB of mixed text (English prose, code,
 * numbers, punctuation, Cyrillic, CJK, emoji; fixed seed). Prints MB/s of
 * encode (best of REPEATS, default 5) and of decode. The tokenizer plugin is
 * picked by probe (bpe or spm), as the host would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llmh.h"
#include "tok-harness.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x243F6A8885A308D3ull;
static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static char *make_text(size_t target, size_t *len) {
    static const char *const words[] = {
        "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "Once", "upon", "a", "time",
        "there", "was", "little", "girl", "named", "Lily", "She", "loved", "to", "play", "outside",
        "tokenizer", "inference", "framework", "plugin", "isn't", "we'll", "they're", "HTTP", "JSON",
        "return", "static", "int", "void", "const", "char", "for", "while", "if", "else",
        "2026", "3.14159", "1,000,000", "42", "0x7fff", "--", "...", "!?", "(x)", "[i]", "{}", "->", "==",
        "привет", "мир", "Български", "数学", "我想在apple工作", "天～", "こんにちは", "Führer", "Cửa",
        "Việt", "🦙", "🚀", "😶‍🌫️", "✅", "naïve", "café"};
    const size_t nw = sizeof(words) / sizeof(words[0]);
    char *buf = malloc(target + 64);
    size_t o = 0;
    if (!buf) return NULL;
    while (o < target) {
        const char *w = words[rnd() % nw];
        size_t n = strlen(w);
        if (o + n + 4 > target) break;
        memcpy(buf + o, w, n);
        o += n;
        uint32_t r = rnd() % 20;
        if (r < 14) buf[o++] = ' ';
        else if (r < 16) { buf[o++] = ','; buf[o++] = ' '; }
        else if (r < 18) { buf[o++] = '.'; buf[o++] = '\n'; }
        else if (r < 19) { buf[o++] = '\n'; buf[o++] = ' '; buf[o++] = ' '; buf[o++] = ' '; }
        else buf[o++] = '\t';
    }
    *len = o;
    return buf;
}

int main(int argc, char **argv) {
    const char *model = argc > 1 ? argv[1] : LLMH_SHARED_DIR "/models/qwen2-tiny-f32.gguf";
    const char *text_file = argc > 2 && strcmp(argv[2], "-") != 0 ? argv[2] : NULL;
    int repeats = argc > 3 ? atoi(argv[3]) : 5;
    if (repeats < 1) repeats = 1;
    const llmh_host_api *host = llmh_host_api_get();
    tokh_plugin bpe, spm, gguf;
    if (tokh_plugin_load(&bpe, TOK_BPE_PLUGIN, host) || tokh_plugin_load(&spm, TOK_SPM_PLUGIN, host) ||
        tokh_plugin_load(&gguf, TOK_GGUF_PLUGIN, host))
        return 1;

    tokh_gguf g;
    memset(&g, 0, sizeof(g));
    llmh_kv jkv = {"llmh.tokenizer_json", {LLMH_V_STRING, {.s = {model, strlen(model)}}}};
    llmh_kv_list meta;
    size_t ml = strlen(model);
    if (ml > 5 && strcmp(model + ml - 5, ".json") == 0) {
        meta.items = &jkv;
        meta.n = 1;
    } else {
        if (tokh_gguf_open(&g, &gguf, model)) {
            fprintf(stderr, "cannot open %s: %s\n", model, llmh_last_error());
            return 1;
        }
        meta = g.meta;
    }
    const tokh_plugin *p = tokh_tok_iface(&bpe)->probe(bpe.state, &meta) >= tokh_tok_iface(&spm)->probe(spm.state, &meta)
                               ? &bpe : &spm;
    const llmh_tokenizer_iface *ti = tokh_tok_iface(p);
    llmh_tokenizer *tok = NULL;
    double t0 = now_s();
    if (ti->create(p->state, &meta, NULL, &tok) != LLMH_OK) {
        fprintf(stderr, "cannot create tokenizer: %s\n", llmh_last_error());
        return 1;
    }
    double t_create = now_s() - t0;

    size_t len = 0;
    char *text = NULL;
    if (text_file) {
        FILE *f = fopen(text_file, "rb");
        if (!f) { perror(text_file); return 1; }
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        fseek(f, 0, SEEK_SET);
        text = malloc((size_t)sz + 1);
        len = fread(text, 1, (size_t)sz, f);
        fclose(f);
    } else {
        text = make_text(1 << 20, &len);
    }
    if (!text) return 1;

    size_t cap = len + 16, n = 0;
    llmh_token *ids = malloc(cap * sizeof(llmh_token));
    double best = 1e30;
    for (int r = 0; r < repeats; r++) {
        t0 = now_s();
        llmh_status st = ti->encode(tok, text, len, 0, ids, cap, &n);
        double dt = now_s() - t0;
        if (st != LLMH_OK) { fprintf(stderr, "encode failed: %s\n", llmh_last_error()); return 1; }
        if (dt < best) best = dt;
    }
    char *dec = malloc(len * 2 + 16);
    size_t dl = 0;
    t0 = now_s();
    /* SPM adds the dummy prefix space on encode; decode drops it */
    uint32_t dflags = p == &spm ? LLMH_DECODE_STRIP_LEADING : 0;
    llmh_status st = ti->decode(tok, ids, n, dflags, dec, len * 2 + 16, &dl);
    double t_dec = now_s() - t0;
    printf("tokenizer %s, vocab %d (created in %.3f s)\n", p->desc->name, ti->n_vocab(tok), t_create);
    printf("text: %zu bytes -> %zu tokens (%.2f bytes/token)\n", len, n, n ? (double)len / (double)n : 0.0);
    printf("encode: %.3f ms, %.2f MB/s (best of %d, single thread)\n", best * 1e3, (double)len / best / 1e6, repeats);
    printf("decode: %.3f ms, %.2f MB/s, round trip %s\n", t_dec * 1e3, (double)dl / t_dec / 1e6,
           st == LLMH_OK && dl == len && memcmp(dec, text, len) == 0 ? "exact" : "DIFFERS");
    free(dec);
    free(ids);
    free(text);
    ti->destroy(tok);
    if (g.file) tokh_gguf_close(&g);
    tokh_plugin_unload(&bpe);
    tokh_plugin_unload(&spm);
    tokh_plugin_unload(&gguf);
    return 0;
}
