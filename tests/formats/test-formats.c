/* test-formats.c — the gguf and safetensors format plugins: real fixtures,
 * GGUF vs HF tensor identity, hand-built files with every metadata type, and
 * corrupt files whose errors must name the field at fault. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format-test-util.h"
#include "testutil.h"

static fmt_plugin gguf, st;

static int suite_init(void) {
    if (fmt_plugin_load(&gguf, LLMH_TEST_GGUF_SO) != 0) return 1;
    if (fmt_plugin_load(&st, LLMH_TEST_ST_SO) != 0) return 1;
    return 0;
}

static int suite_cleanup(void) {
    fmt_plugin_unload(&gguf);
    fmt_plugin_unload(&st);
    return 0;
}

/* Open or fail the test with the plugin's message. */
#define OPEN_OK(plugin, path, opts, ff)                                                     \
    do {                                                                                    \
        llmh_status st__ = fmt_open((plugin), (path), (opts), (ff));                        \
        if (st__ != LLMH_OK) fprintf(stderr, "\nopen %s: %s\n", (path), llmh_last_error()); \
        CU_ASSERT_FATAL(st__ == LLMH_OK);                                                   \
    } while (0)

static const char *str_item(const llmh_value *arr, uint64_t i, size_t *len) {
    const llmh_value *v = &arr->v.arr.items[i];
    *len = (size_t)v->v.s.len;
    return v->v.s.ptr;
}

static int str_is(const llmh_value *v, const char *s) {
    return v && v->type == LLMH_V_STRING && v->v.s.len == strlen(s) && !memcmp(v->v.s.ptr, s, v->v.s.len);
}

/* ======================================================================== */
/* GGUF fixtures                                                              */
/* ======================================================================== */

/* Every tensor's bytes equal the file's bytes at file_offset, all tensors
 * live in one mapping (zero-copy), and data is aligned. */
static void check_zero_copy(const fmt_file *f, const char *path, uint64_t align) {
    size_t len = 0;
    char *bytes = llmh_test_read_file(path, &len);
    CU_ASSERT_FATAL(bytes != NULL);
    uintptr_t base = 0;
    for (size_t i = 0; i < f->n_t; i++) {
        const llmh_tensor_info *t = &f->t[i];
        CU_ASSERT(t->struct_size == sizeof *t);
        CU_ASSERT(t->file_offset + t->size <= len);
        CU_ASSERT(t->file_offset % align == 0);
        CU_ASSERT(memcmp(t->data, bytes + t->file_offset, (size_t)t->size) == 0);
        uintptr_t b = (uintptr_t)t->data - (uintptr_t)t->file_offset;
        if (i == 0) base = b;
        CU_ASSERT(b == base);
        CU_ASSERT(((uintptr_t)t->data) % align == 0);
        int64_t bs = llmh_dtype_block_size(t->type);
        uint64_t expect = (uint64_t)(t->ne[0] / bs) * llmh_dtype_type_size(t->type);
        for (int d = 1; d < 4; d++) expect *= (uint64_t)t->ne[d];
        CU_ASSERT(t->size == expect);
    }
    free(bytes);
}

static void test_gguf_stories(void) {
    char *path = llmh_test_shared("models/stories260K.gguf");
    fmt_file f;
    OPEN_OK(&gguf, path, NULL, &f);
    /* values from ../shared/README.md: dim 64, 5 layers, 8 heads / 4 KV heads, vocab 512 */
    CU_ASSERT(fmt_kv_str_eq(&f, "general.architecture", "llama"));
    CU_ASSERT(fmt_kv_int(&f, "llama.embedding_length", 0) == 64);
    CU_ASSERT(fmt_kv_int(&f, "llama.block_count", 0) == 5);
    CU_ASSERT(fmt_kv_int(&f, "llama.attention.head_count", 0) == 8);
    CU_ASSERT(fmt_kv_int(&f, "llama.attention.head_count_kv", 0) == 4);
    CU_ASSERT(fmt_kv_int(&f, "llama.context_length", 0) == 128);
    CU_ASSERT(fmt_kv_int(&f, "llama.feed_forward_length", 0) == 172);
    CU_ASSERT(fmt_kv_int(&f, "tokenizer.ggml.bos_token_id", -1) == 1);
    CU_ASSERT(fmt_kv_int(&f, "tokenizer.ggml.eos_token_id", -1) == 2);
    CU_ASSERT(fmt_kv_str_eq(&f, "tokenizer.ggml.model", "llama"));
    CU_ASSERT(fmt_kv_str_eq(&f, "llmh.source_format", "gguf"));
    const llmh_value *eps = fmt_kv(&f, "llama.attention.layer_norm_rms_epsilon");
    CU_ASSERT_FATAL(eps && eps->type == LLMH_V_F32);
    CU_ASSERT(eps->v.f == (double)1e-5f);

    const llmh_value *toks = fmt_kv(&f, "tokenizer.ggml.tokens");
    CU_ASSERT_FATAL(toks && toks->type == LLMH_V_ARRAY);
    CU_ASSERT(toks->v.arr.elem_type == LLMH_V_STRING);
    CU_ASSERT_FATAL(toks->v.arr.n == 512);
    size_t len;
    const char *s = str_item(toks, 1, &len);
    CU_ASSERT(len == 3 && !memcmp(s, "<s>", 3));
    s = str_item(toks, 2, &len);
    CU_ASSERT(len == 4 && !memcmp(s, "</s>", 4));
    s = str_item(toks, 3, &len);
    CU_ASSERT(len == 6 && !memcmp(s, "<0x00>", 6));
    const llmh_value *scores = fmt_kv(&f, "tokenizer.ggml.scores");
    CU_ASSERT(scores && scores->type == LLMH_V_ARRAY && scores->v.arr.elem_type == LLMH_V_F32 &&
              scores->v.arr.n == 512);
    const llmh_value *types = fmt_kv(&f, "tokenizer.ggml.token_type");
    CU_ASSERT_FATAL(types && types->type == LLMH_V_ARRAY && types->v.arr.n == 512);
    CU_ASSERT(types->v.arr.items[0].v.i == LLMH_TOKEN_UNKNOWN);
    CU_ASSERT(types->v.arr.items[1].v.i == LLMH_TOKEN_CONTROL);
    CU_ASSERT(types->v.arr.items[3].v.i == LLMH_TOKEN_BYTE);

    CU_ASSERT(f.n_t == 3 + 5 * 9);
    const llmh_tensor_info *e = fmt_tensor(&f, "token_embd.weight");
    CU_ASSERT_FATAL(e != NULL);
    CU_ASSERT(e->type == LLMH_DTYPE_F32 && e->n_dims == 2 && e->ne[0] == 64 && e->ne[1] == 512 &&
              e->ne[2] == 1 && e->ne[3] == 1 && e->size == 64 * 512 * 4);
    const llmh_tensor_info *k = fmt_tensor(&f, "blk.4.attn_k.weight");
    CU_ASSERT(k && k->ne[0] == 64 && k->ne[1] == 32);
    const llmh_tensor_info *dn = fmt_tensor(&f, "blk.0.ffn_down.weight");
    CU_ASSERT(dn && dn->ne[0] == 172 && dn->ne[1] == 64);
    check_zero_copy(&f, path, 32);
    /* the last tensor ends exactly at the end of the file */
    uint64_t end = 0;
    for (size_t i = 0; i < f.n_t; i++)
        if (f.t[i].file_offset + f.t[i].size > end) end = f.t[i].file_offset + f.t[i].size;
    CU_ASSERT(end == 1185376);
    fmt_close(&f);
    free(path);
}

static void test_gguf_qwen2(void) {
    char *path = llmh_test_shared("models/qwen2-tiny-f32.gguf");
    fmt_file f;
    OPEN_OK(&gguf, path, NULL, &f);
    CU_ASSERT(fmt_kv_str_eq(&f, "general.architecture", "qwen2"));
    CU_ASSERT(fmt_kv_int(&f, "qwen2.embedding_length", 0) == 64);
    CU_ASSERT(fmt_kv_int(&f, "qwen2.block_count", 0) == 2);
    CU_ASSERT(fmt_kv_int(&f, "qwen2.attention.head_count", 0) == 4);
    CU_ASSERT(fmt_kv_int(&f, "qwen2.attention.head_count_kv", 0) == 2);
    CU_ASSERT(fmt_kv_int(&f, "qwen2.feed_forward_length", 0) == 192);
    CU_ASSERT(fmt_kv_int(&f, "general.alignment", 0) == 32);
    CU_ASSERT(fmt_kv_str_eq(&f, "tokenizer.ggml.model", "gpt2"));
    CU_ASSERT(fmt_kv_int(&f, "tokenizer.ggml.eos_token_id", 0) == 151645);
    CU_ASSERT(fmt_kv_int(&f, "tokenizer.ggml.bos_token_id", 0) == 151643);
    const llmh_value *ab = fmt_kv(&f, "tokenizer.ggml.add_bos_token");
    CU_ASSERT(ab && ab->type == LLMH_V_BOOL && ab->v.b == 0);
    const llmh_value *toks = fmt_kv(&f, "tokenizer.ggml.tokens");
    CU_ASSERT_FATAL(toks && toks->type == LLMH_V_ARRAY && toks->v.arr.n == 151936);
    /* ref-qwen2-tiny-f32.json: "Hello, my name is" -> [9707, 11, 847, 829, 374] */
    size_t len;
    const char *s = str_item(toks, 9707, &len);
    CU_ASSERT(len == 5 && !memcmp(s, "Hello", 5));
    s = str_item(toks, 11, &len);
    CU_ASSERT(len == 1 && s[0] == ',');
    s = str_item(toks, 151645, &len);
    CU_ASSERT(len == 10 && !memcmp(s, "<|im_end|>", 10));
    const llmh_value *merges = fmt_kv(&f, "tokenizer.ggml.merges");
    CU_ASSERT(merges && merges->type == LLMH_V_ARRAY && merges->v.arr.n == 151387);
    /* the chat template inside the GGUF is Qwen2.5's */
    char *tpath = llmh_test_shared("models/qwen2.5-chat-template.jinja");
    size_t tlen = 0;
    char *tmpl = llmh_test_read_file(tpath, &tlen);
    const llmh_value *ct = fmt_kv(&f, "tokenizer.chat_template");
    CU_ASSERT_FATAL(tmpl && ct && ct->type == LLMH_V_STRING);
    CU_ASSERT(ct->v.s.len == tlen && !memcmp(ct->v.s.ptr, tmpl, tlen));
    free(tmpl);
    free(tpath);

    CU_ASSERT(f.n_t == 2 + 2 * 12);
    CU_ASSERT(fmt_tensor(&f, "output.weight") == NULL); /* tied embeddings */
    const llmh_tensor_info *qb = fmt_tensor(&f, "blk.1.attn_q.bias");
    CU_ASSERT(qb && qb->n_dims == 1 && qb->ne[0] == 64 && qb->type == LLMH_DTYPE_F32);
    check_zero_copy(&f, path, 32);
    fmt_close(&f);
    free(path);
}

static void check_quantized(const char *rel, llmh_dtype qt) {
    char *path = llmh_test_shared(rel);
    fmt_file f;
    OPEN_OK(&gguf, path, NULL, &f);
    CU_ASSERT(f.n_t == 26);
    for (size_t i = 0; i < f.n_t; i++) {
        const llmh_tensor_info *t = &f.t[i];
        if (strncmp(t->name, "blk.", 4) != 0) continue;
        if (t->n_dims == 2) {
            CU_ASSERT(t->type == qt);
            CU_ASSERT(t->size == (uint64_t)(t->ne[0] / 32) * llmh_dtype_type_size(qt) * (uint64_t)t->ne[1]);
        } else {
            CU_ASSERT(t->type == LLMH_DTYPE_F32); /* norms and biases stay F32 */
        }
    }
    check_zero_copy(&f, path, 32);
    fmt_close(&f);
    free(path);
}

static void test_gguf_quantized(void) {
    check_quantized("models/qwen2-tiny-q8_0.gguf", LLMH_DTYPE_Q8_0);
    check_quantized("models/qwen2-tiny-q4_0.gguf", LLMH_DTYPE_Q4_0);
}

static void test_gguf_vocab_only_and_adapters(void) {
    char *path = llmh_test_shared("tokenizers/ggml-vocab-llama-spm.gguf");
    fmt_file f;
    OPEN_OK(&gguf, path, NULL, &f);
    CU_ASSERT(f.n_t == 0);
    const llmh_value *toks = fmt_kv(&f, "tokenizer.ggml.tokens");
    CU_ASSERT(toks && toks->v.arr.n == 32000);
    const llmh_value *ab = fmt_kv(&f, "tokenizer.ggml.add_bos_token");
    CU_ASSERT(ab && ab->type == LLMH_V_BOOL && ab->v.b == 1);
    fmt_close(&f);
    free(path);

    path = llmh_test_shared("models/adapters/qwen2-tiny-lora-a.gguf");
    OPEN_OK(&gguf, path, NULL, &f);
    CU_ASSERT(fmt_kv_str_eq(&f, "adapter.type", "lora"));
    const llmh_value *alpha = fmt_kv(&f, "adapter.lora.alpha");
    CU_ASSERT(alpha && alpha->type == LLMH_V_F32 && alpha->v.f == 8.0);
    /* rank 4: lora_a ne = [in, r], lora_b ne = [r, out] */
    const llmh_tensor_info *a = fmt_tensor(&f, "blk.0.attn_q.weight.lora_a");
    const llmh_tensor_info *b = fmt_tensor(&f, "blk.0.attn_q.weight.lora_b");
    CU_ASSERT(a && a->ne[0] == 64 && a->ne[1] == 4);
    CU_ASSERT(b && b->ne[0] == 4 && b->ne[1] == 64);
    check_zero_copy(&f, path, 32);
    fmt_close(&f);
    free(path);
}

static void test_gguf_probe(void) {
    const uint8_t g[8] = {'G', 'G', 'U', 'F', 3, 0, 0, 0};
    const uint8_t s[9] = {16, 0, 0, 0, 0, 0, 0, 0, '{'};
    CU_ASSERT(gguf.fi->probe_file(gguf.state, "x.gguf", g, sizeof g) == 100);
    CU_ASSERT(gguf.fi->probe_file(gguf.state, "x.gguf", s, sizeof s) == 0);
    CU_ASSERT(gguf.fi->probe_file(gguf.state, "x.gguf", g, 3) == 0);
    CU_ASSERT(gguf.fi->probe_file(gguf.state, "/tmp", NULL, 0) == 0);
    CU_ASSERT(st.fi->probe_file(st.state, "m.safetensors", s, sizeof s) > 0);
    CU_ASSERT(st.fi->probe_file(st.state, "m.safetensors", g, sizeof g) == 0);
    char *dir = llmh_test_shared("models/qwen2-tiny-hf");
    CU_ASSERT(st.fi->probe_file(st.state, dir, NULL, 0) >= 80);
    CU_ASSERT(gguf.fi->probe_file(gguf.state, dir, NULL, 0) == 0);
    free(dir);
}

/* ======================================================================== */
/* Hand-built GGUF with every metadata type                                   */
/* ======================================================================== */
static void check_all_types(uint32_t version) {
    fmt_buf b = {0};
    gguf_build_all_types(&b, version);
    char *path = fmt_write_temp(&b, ".gguf");
    fmt_file f;
    OPEN_OK(&gguf, path, NULL, &f);
    CU_ASSERT(f.kv.n == 19); /* 18 + llmh.source_format */
    const llmh_value *v;
    v = fmt_kv(&f, "t.u8");    CU_ASSERT(v && v->type == LLMH_V_U8 && v->v.u == 200);
    v = fmt_kv(&f, "t.i8");    CU_ASSERT(v && v->type == LLMH_V_I8 && v->v.i == -100);
    v = fmt_kv(&f, "t.u16");   CU_ASSERT(v && v->type == LLMH_V_U16 && v->v.u == 60000);
    v = fmt_kv(&f, "t.i16");   CU_ASSERT(v && v->type == LLMH_V_I16 && v->v.i == -30000);
    v = fmt_kv(&f, "t.u32");   CU_ASSERT(v && v->type == LLMH_V_U32 && v->v.u == 4000000000u);
    v = fmt_kv(&f, "t.i32");   CU_ASSERT(v && v->type == LLMH_V_I32 && v->v.i == -2000000000);
    v = fmt_kv(&f, "t.f32");   CU_ASSERT(v && v->type == LLMH_V_F32 && v->v.f == 1.5);
    v = fmt_kv(&f, "t.bool");  CU_ASSERT(v && v->type == LLMH_V_BOOL && v->v.b == 1);
    v = fmt_kv(&f, "t.string");
    CU_ASSERT(v && v->type == LLMH_V_STRING && v->v.s.len == 8 && !memcmp(v->v.s.ptr, "h\xc3\xa9llo\0x", 8));
    v = fmt_kv(&f, "t.u64");   CU_ASSERT(v && v->type == LLMH_V_U64 && v->v.u == UINT64_C(9223372036854775813));
    v = fmt_kv(&f, "t.i64");   CU_ASSERT(v && v->type == LLMH_V_I64 && v->v.i == INT64_C(-4611686018427387904));
    v = fmt_kv(&f, "t.f64");   CU_ASSERT(v && v->type == LLMH_V_F64 && v->v.f == 3.25);
    v = fmt_kv(&f, "t.arr_u8");
    CU_ASSERT_FATAL(v && v->type == LLMH_V_ARRAY && v->v.arr.elem_type == LLMH_V_U8 && v->v.arr.n == 3);
    CU_ASSERT(v->v.arr.items[0].v.u == 1 && v->v.arr.items[2].v.u == 3 && v->v.arr.items[1].type == LLMH_V_U8);
    v = fmt_kv(&f, "t.arr_str");
    CU_ASSERT_FATAL(v && v->v.arr.elem_type == LLMH_V_STRING && v->v.arr.n == 3);
    CU_ASSERT(str_is(&v->v.arr.items[0], "a") && str_is(&v->v.arr.items[1], "") && str_is(&v->v.arr.items[2], "ccc"));
    v = fmt_kv(&f, "t.nested");
    CU_ASSERT_FATAL(v && v->v.arr.elem_type == LLMH_V_ARRAY && v->v.arr.n == 3);
    const llmh_value *in = v->v.arr.items;
    CU_ASSERT(in[0].type == LLMH_V_ARRAY && in[0].v.arr.elem_type == LLMH_V_I32 && in[0].v.arr.n == 2);
    CU_ASSERT(in[0].v.arr.items[0].v.i == 1 && in[0].v.arr.items[1].v.i == 2);
    CU_ASSERT(in[1].v.arr.n == 0);
    CU_ASSERT(in[2].v.arr.n == 1 && in[2].v.arr.items[0].v.i == 3);
    v = fmt_kv(&f, "t.deep");
    CU_ASSERT_FATAL(v && v->v.arr.n == 2);
    const llmh_value *l1 = &v->v.arr.items[0];
    CU_ASSERT_FATAL(l1->v.arr.n == 1);
    const llmh_value *l2 = &l1->v.arr.items[0];
    CU_ASSERT_FATAL(l2->v.arr.elem_type == LLMH_V_STRING && l2->v.arr.n == 2);
    CU_ASSERT(str_is(&l2->v.arr.items[0], "x") && str_is(&l2->v.arr.items[1], "yz"));
    CU_ASSERT(v->v.arr.items[1].v.arr.n == 0);
    v = fmt_kv(&f, "t.empty");
    CU_ASSERT(v && v->type == LLMH_V_ARRAY && v->v.arr.elem_type == LLMH_V_F64 && v->v.arr.n == 0);
    CU_ASSERT(fmt_kv_str_eq(&f, "llmh.source_format", "gguf"));

    CU_ASSERT_FATAL(f.n_t == 8);
    static const struct { const char *name; llmh_dtype t; uint64_t size; } want[] = {
        {"a.f32", LLMH_DTYPE_F32, 64}, {"b.f16", LLMH_DTYPE_F16, 8}, {"c.q8_0", LLMH_DTYPE_Q8_0, 136},
        {"d.q4_k", LLMH_DTYPE_Q4_K, 144}, {"e.i32", LLMH_DTYPE_I32, 12}, {"f.bf16", LLMH_DTYPE_BF16, 32},
        {"g.q6_k", LLMH_DTYPE_Q6_K, 630}, {"h.f64", LLMH_DTYPE_F64, 48},
    };
    for (size_t i = 0; i < 8; i++) {
        const llmh_tensor_info *t = fmt_tensor(&f, want[i].name);
        CU_ASSERT_FATAL(t != NULL);
        CU_ASSERT(t->type == want[i].t);
        CU_ASSERT(t->size == want[i].size);
        CU_ASSERT(t->file_offset % 64 == 0); /* general.alignment = 64 */
        CU_ASSERT(memcmp(t->data, b.p + t->file_offset, (size_t)t->size) == 0);
    }
    const llmh_tensor_info *t4 = fmt_tensor(&f, "f.bf16");
    CU_ASSERT(t4->n_dims == 4 && t4->ne[3] == 2);
    const llmh_tensor_info *t3 = fmt_tensor(&f, "h.f64");
    CU_ASSERT(t3->n_dims == 3 && t3->ne[0] == 1 && t3->ne[1] == 2 && t3->ne[2] == 3 && t3->ne[3] == 1);
    fmt_close(&f);
    unlink(path);
    free(path);
    fb_free(&b);
}

static void test_gguf_all_types_v3(void) { check_all_types(3); }
static void test_gguf_all_types_v2(void) { check_all_types(2); }

/* Key "llmh.*" in a model file is dropped (e.g. llmh.tokenizer_json would
 * make the tokenizer read an arbitrary file). No tensors, default alignment. */
static void test_gguf_reserved_keys_and_empty(void) {
    fmt_buf b = {0};
    gguf_header(&b, 3, 0, 2);
    gguf_kv_str(&b, "llmh.tokenizer_json", "/etc/passwd");
    gguf_kv_str(&b, "llmh.source_format", "evil");
    char *path = fmt_write_temp(&b, ".gguf");
    fmt_file f;
    OPEN_OK(&gguf, path, NULL, &f);
    CU_ASSERT(f.n_t == 0);
    CU_ASSERT(fmt_kv(&f, "llmh.tokenizer_json") == NULL);
    CU_ASSERT(fmt_kv_str_eq(&f, "llmh.source_format", "gguf"));
    CU_ASSERT(f.kv.n == 1);
    fmt_close(&f);
    unlink(path);
    free(path);
    fb_free(&b);
}

/* ======================================================================== */
/* Corrupt GGUF: each error names the field                                   */
/* ======================================================================== */
static void expect_fail_file(const fmt_plugin *p, const char *path, const char *n1, const char *n2) {
    fmt_file f;
    llmh_status s = fmt_open(p, path, NULL, &f);
    const char *msg = llmh_last_error();
    if (s == LLMH_OK) {
        fprintf(stderr, "\n%s: expected an error mentioning '%s'\n", path, n1);
        fmt_close(&f);
    }
    CU_ASSERT(s < 0);
    CU_ASSERT(msg && *msg);
    int ok = (!n1 || strstr(msg, n1)) && (!n2 || strstr(msg, n2));
    if (!ok) fprintf(stderr, "\nerror '%s' lacks '%s' / '%s'\n", msg, n1 ? n1 : "", n2 ? n2 : "");
    CU_ASSERT(ok);
    CU_ASSERT(strstr(msg, path) != NULL); /* names the file */
}

static void expect_fail(const fmt_plugin *p, fmt_buf *b, const char *suffix, const char *n1, const char *n2) {
    char *path = fmt_write_temp(b, suffix);
    expect_fail_file(p, path, n1, n2);
    unlink(path);
    free(path);
    fb_free(b);
}

/* 2 tensors, default alignment: offsets 0 and 64 */
static const gguf_tspec two[] = {
    {"w.a", 2, {8, 2, 1, 1}, LLMH_DTYPE_F32, UINT64_MAX},
    {"w.b", 1, {32, 1, 1, 1}, LLMH_DTYPE_Q8_0, UINT64_MAX},
};

static void test_gguf_corrupt_header(void) {
    fmt_buf b = {0};
    gguf_build(&b, 3, 0, two, 2, NULL);
    memcpy(b.p, "GGUG", 4);
    expect_fail(&gguf, &b, ".gguf", "magic", "offset 0");

    gguf_build(&b, 1, 0, two, 2, NULL);
    expect_fail(&gguf, &b, ".gguf", "version 1", "not supported");

    gguf_build(&b, 4, 0, two, 2, NULL);
    expect_fail(&gguf, &b, ".gguf", "version 4", NULL);

    gguf_build(&b, 3, 0, two, 2, NULL);
    b.p[4] = 0; b.p[7] = 3; /* big-endian version 3 */
    expect_fail(&gguf, &b, ".gguf", "big-endian", NULL);

    gguf_header(&b, 3, UINT64_C(1) << 60, 0);
    fb_pad(&b, 64);
    expect_fail(&gguf, &b, ".gguf", "n_tensors", "offset 8");

    gguf_header(&b, 3, 0, UINT64_C(0xffffffffffffffff));
    fb_pad(&b, 64);
    expect_fail(&gguf, &b, ".gguf", "n_kv", "offset 16");

    fb_bytes(&b, "GGUF\3\0\0\0\0\0", 10); /* too short */
    expect_fail(&gguf, &b, ".gguf", "too short", NULL);

    /* truncated in the middle of the tensor infos */
    gguf_build(&b, 3, 0, two, 2, NULL);
    b.n = 24 + 44 + 43 + 10; /* header, one KV, tensor 0's info, part of tensor 1's */
    expect_fail(&gguf, &b, ".gguf", "tensor 1 name at offset 111", "past end of file");
}

static void test_gguf_corrupt_kv(void) {
    fmt_buf b = {0};
    /* key string length past EOF */
    gguf_header(&b, 3, 0, 1);
    fb_u64(&b, 1000);
    fb_bytes(&b, "general.x", 9);
    expect_fail(&gguf, &b, ".gguf", "key 0 name", "offset 24");

    /* empty key */
    gguf_header(&b, 3, 0, 1);
    fb_str(&b, "");
    fb_u32(&b, LLMH_V_U8);
    fb_u8(&b, 1);
    fb_pad(&b, 64);
    expect_fail(&gguf, &b, ".gguf", "key 0 name", "empty");

    /* unknown value type */
    gguf_header(&b, 3, 0, 1);
    gguf_kv_head(&b, "t.x", 13);
    fb_u64(&b, 0);
    expect_fail(&gguf, &b, ".gguf", "'t.x'", "unknown value type 13");

    /* value string length past EOF */
    gguf_header(&b, 3, 0, 1);
    gguf_kv_head(&b, "t.s", LLMH_V_STRING);
    fb_u64(&b, UINT64_C(0x7fffffffffffffff));
    expect_fail(&gguf, &b, ".gguf", "key 't.s'", "runs past end of file");

    /* bool that is neither 0 nor 1 */
    gguf_header(&b, 3, 0, 1);
    gguf_kv_head(&b, "t.b", LLMH_V_BOOL);
    fb_u8(&b, 7);
    expect_fail(&gguf, &b, ".gguf", "key 't.b'", "bool");

    /* array length x element size larger than the file */
    gguf_header(&b, 3, 0, 1);
    gguf_kv_head(&b, "t.arr", LLMH_V_ARRAY);
    gguf_arr_head(&b, LLMH_V_U32, UINT64_C(1) << 40);
    fb_u32(&b, 1);
    expect_fail(&gguf, &b, ".gguf", "key 't.arr'", "array of 1099511627776");

    /* array of strings whose count fits the bound but whose items do not */
    gguf_header(&b, 3, 0, 1);
    gguf_kv_head(&b, "t.strs", LLMH_V_ARRAY);
    gguf_arr_head(&b, LLMH_V_STRING, 3);
    fb_str(&b, "ok");
    fb_u64(&b, 999);
    fb_pad(&b, 16);
    expect_fail(&gguf, &b, ".gguf", "key 't.strs'", "array item 1");

    /* unknown array element type */
    gguf_header(&b, 3, 0, 1);
    gguf_kv_head(&b, "t.arr", LLMH_V_ARRAY);
    gguf_arr_head(&b, 42, 1);
    expect_fail(&gguf, &b, ".gguf", "key 't.arr'", "element type 42");

    /* arrays nested too deep */
    gguf_header(&b, 3, 0, 1);
    gguf_kv_head(&b, "t.deep", LLMH_V_ARRAY);
    for (int i = 0; i < 12; i++) gguf_arr_head(&b, LLMH_V_ARRAY, 1);
    gguf_arr_head(&b, LLMH_V_U8, 0);
    expect_fail(&gguf, &b, ".gguf", "key 't.deep'", "nested deeper");

    /* duplicate key */
    gguf_header(&b, 3, 0, 2);
    gguf_kv_u32(&b, "t.dup", 1);
    gguf_kv_u32(&b, "t.dup", 2);
    expect_fail(&gguf, &b, ".gguf", "duplicate key 't.dup'", NULL);

    /* key with a NUL byte */
    gguf_header(&b, 3, 0, 1);
    fb_u64(&b, 3);
    fb_bytes(&b, "a\0b", 3);
    fb_u32(&b, LLMH_V_U8);
    fb_u8(&b, 1);
    expect_fail(&gguf, &b, ".gguf", "key 0 name", "NUL");

    /* alignment not a power of two, zero, of the wrong type */
    gguf_build(&b, 3, 48, two, 2, NULL);
    expect_fail(&gguf, &b, ".gguf", "general.alignment", "power of two");
    gguf_header(&b, 3, 0, 1);
    gguf_kv_u32(&b, "general.alignment", 0);
    expect_fail(&gguf, &b, ".gguf", "general.alignment", "power of two");
    gguf_build(&b, 3, 4, two, 2, NULL); /* the spec requires a multiple of 8 */
    expect_fail(&gguf, &b, ".gguf", "general.alignment", "between 8 and");
    gguf_header(&b, 3, 0, 1);
    gguf_kv_str(&b, "general.alignment", "32");
    expect_fail(&gguf, &b, ".gguf", "general.alignment", "string");
}

static void test_gguf_corrupt_tensors(void) {
    fmt_buf b = {0};
    uint64_t ne5[5] = {1, 1, 1, 1, 1};
    gguf_header(&b, 3, 1, 0);
    gguf_tensor_info(&b, "w.x", 5, ne5, LLMH_DTYPE_F32, 0);
    fb_pad(&b, 64);
    expect_fail(&gguf, &b, ".gguf", "tensor 0 'w.x' n_dims", "must be 1..4");

    gguf_header(&b, 3, 1, 0);
    gguf_tensor_info(&b, "w.x", 0, ne5, LLMH_DTYPE_F32, 0);
    fb_pad(&b, 64);
    expect_fail(&gguf, &b, ".gguf", "tensor 0 'w.x' n_dims", NULL);

    gguf_tspec t[2];
    memcpy(t, two, sizeof t);
    t[1].ne[1] = 0; t[1].n_dims = 2;
    gguf_build(&b, 3, 0, t, 2, NULL);
    expect_fail(&gguf, &b, ".gguf", "tensor 1 'w.b' ne[1]", "must be >= 1");

    memcpy(t, two, sizeof t);
    t[0].type = 16; /* IQ2_XXS: not an llmh_dtype */
    gguf_build(&b, 3, 0, t, 2, NULL);
    expect_fail(&gguf, &b, ".gguf", "tensor 0 'w.a' type", "ggml type id 16");

    memcpy(t, two, sizeof t);
    t[0].type = 4; /* removed Q4_2 */
    gguf_build(&b, 3, 0, t, 2, NULL);
    expect_fail(&gguf, &b, ".gguf", "tensor 0 'w.a' type", "4");

    memcpy(t, two, sizeof t);
    t[1].ne[0] = 33;
    gguf_build(&b, 3, 0, t, 2, NULL);
    expect_fail(&gguf, &b, ".gguf", "tensor 1 'w.b'", "block size 32");

    memcpy(t, two, sizeof t);
    t[1].offset = 72; /* not a multiple of 32 */
    gguf_build(&b, 3, 0, t, 2, NULL);
    expect_fail(&gguf, &b, ".gguf", "tensor 1 'w.b'", "alignment 32");

    memcpy(t, two, sizeof t);
    gguf_build(&b, 3, 0, t, 2, NULL);
    b.n -= 10; /* the last tensor now runs past the end */
    expect_fail(&gguf, &b, ".gguf", "tensor 1 'w.b': data [offset", "runs past end of file");

    gguf_header(&b, 3, 1, 0);
    gguf_tensor_info(&b, "w.big", 1, two[0].ne, LLMH_DTYPE_F32, UINT64_C(0xffffffffffffffe0));
    fb_pad(&b, 32);
    for (int i = 0; i < 64; i++) fb_u8(&b, 0);
    expect_fail(&gguf, &b, ".gguf", "tensor 0 'w.big'", "runs past end of file");

    memcpy(t, two, sizeof t);
    t[1].offset = 32; /* w.a is 64 bytes at 0 */
    t[1].ne[0] = 32;
    gguf_build(&b, 3, 0, t, 2, NULL);
    expect_fail(&gguf, &b, ".gguf", "overlaps", "'w.a'");

    memcpy(t, two, sizeof t);
    t[1].name = "w.a";
    gguf_build(&b, 3, 0, t, 2, NULL);
    expect_fail(&gguf, &b, ".gguf", "duplicate tensor name 'w.a'", NULL);

    /* element count overflow: 2^32 x 2^32 x 4 */
    uint64_t big[4] = {UINT64_C(1) << 32, UINT64_C(1) << 32, 4, 1};
    gguf_header(&b, 3, 1, 0);
    gguf_tensor_info(&b, "w.huge", 3, big, LLMH_DTYPE_F32, 0);
    fb_pad(&b, 32);
    expect_fail(&gguf, &b, ".gguf", "tensor 0 'w.huge'", "overflow");

    /* ne > INT64_MAX */
    uint64_t neg[1] = {UINT64_C(0x8000000000000000)};
    gguf_header(&b, 3, 1, 0);
    gguf_tensor_info(&b, "w.neg", 1, neg, LLMH_DTYPE_F32, 0);
    fb_pad(&b, 32);
    expect_fail(&gguf, &b, ".gguf", "tensor 0 'w.neg' ne[0]", NULL);

    /* tensor name length past EOF */
    gguf_header(&b, 3, 1, 0);
    fb_u64(&b, 5000);
    fb_bytes(&b, "w.q", 3);
    for (int i = 0; i < 40; i++) fb_u8(&b, 0);
    expect_fail(&gguf, &b, ".gguf", "tensor 0 name", "offset 24");

    /* data section start past EOF */
    gguf_header(&b, 3, 1, 0);
    gguf_tensor_info(&b, "w.s", 1, two[0].ne, LLMH_DTYPE_F32, 0);
    expect_fail(&gguf, &b, ".gguf", NULL, "past end of file");

    expect_fail_file(&gguf, "/nonexistent/model.gguf", "cannot open", NULL);
}

/* ======================================================================== */
/* safetensors fixtures and GGUF <-> HF identity                              */
/* ======================================================================== */

/* Same tensor set, shapes and values (as f32, bit for bit), and identical
 * bytes when the types match; llama q/k must be permuted copies. */
static void compare_gguf_hf(const char *gguf_rel, const char *hf_rel, int expect_permuted) {
    char *gp = llmh_test_shared(gguf_rel), *hp = llmh_test_shared(hf_rel);
    fmt_file g, h;
    OPEN_OK(&gguf, gp, NULL, &g);
    OPEN_OK(&st, hp, NULL, &h);
    CU_ASSERT(g.n_t == h.n_t);
    size_t same_bytes = 0, permuted = 0;
    for (size_t i = 0; i < g.n_t; i++) {
        const llmh_tensor_info *a = &g.t[i];
        const llmh_tensor_info *b = fmt_tensor(&h, a->name);
        if (!b) fprintf(stderr, "\n%s: tensor %s missing from the HF side\n", hf_rel, a->name);
        CU_ASSERT_FATAL(b != NULL);
        CU_ASSERT(b->n_dims == a->n_dims);
        for (int d = 0; d < 4; d++) CU_ASSERT(a->ne[d] == b->ne[d]);
        int64_t na, nb;
        float *va = fmt_tensor_f32(a, &na), *vb = fmt_tensor_f32(b, &nb);
        CU_ASSERT_FATAL(na == nb);
        int eq = memcmp(va, vb, (size_t)na * sizeof(float)) == 0;
        if (!eq) fprintf(stderr, "\n%s: tensor %s differs between GGUF and HF\n", hf_rel, a->name);
        CU_ASSERT(eq);
        if (a->type == b->type) {
            CU_ASSERT(a->size == b->size);
            CU_ASSERT(fmt_fnv1a(a->data, (size_t)a->size) == fmt_fnv1a(b->data, (size_t)b->size));
            same_bytes++;
        }
        int is_qk = strstr(a->name, "attn_q.") || strstr(a->name, "attn_k.");
        if (is_qk && expect_permuted) {
            CU_ASSERT(b->file_offset == 0); /* plugin-owned permuted copy */
            permuted++;
        } else {
            CU_ASSERT(b->file_offset != 0); /* zero-copy from the mapping */
        }
        free(va);
        free(vb);
    }
    CU_ASSERT(same_bytes > 0);
    if (expect_permuted) CU_ASSERT(permuted > 0);
    fmt_close(&g);
    fmt_close(&h);
    free(gp);
    free(hp);
}

static void test_st_qwen2_vs_gguf(void) { compare_gguf_hf("models/qwen2-tiny-f32.gguf", "models/qwen2-tiny-hf", 0); }
static void test_st_llama_vs_gguf(void) { compare_gguf_hf("models/llama-tiny-bf16.gguf", "models/llama-tiny-hf", 1); }

/* config.json maps onto the same GGUF keys the converter wrote. */
static void compare_metadata(const char *gguf_rel, const char *hf_rel, const char *arch) {
    char *gp = llmh_test_shared(gguf_rel), *hp = llmh_test_shared(hf_rel);
    fmt_file g, h;
    OPEN_OK(&gguf, gp, NULL, &g);
    OPEN_OK(&st, hp, NULL, &h);
    static const char *const keys[] = {
        "general.architecture", "%s.context_length", "%s.embedding_length", "%s.block_count",
        "%s.feed_forward_length", "%s.attention.head_count", "%s.attention.head_count_kv",
        "%s.rope.freq_base", "%s.attention.layer_norm_rms_epsilon", "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id", "tokenizer.ggml.add_bos_token",
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char key[128];
        snprintf(key, sizeof key, keys[i], arch);
        const llmh_value *a = fmt_kv(&g, key), *b = fmt_kv(&h, key);
        if (!a || !b) fprintf(stderr, "\nkey %s: gguf %p hf %p\n", key, (const void *)a, (const void *)b);
        CU_ASSERT_FATAL(a && b);
        CU_ASSERT(a->type == b->type);
        if (a->type == LLMH_V_STRING) {
            CU_ASSERT(a->v.s.len == b->v.s.len && !memcmp(a->v.s.ptr, b->v.s.ptr, a->v.s.len));
        } else if (a->type == LLMH_V_F32) {
            CU_ASSERT(a->v.f == b->v.f);
        } else if (a->type == LLMH_V_BOOL) {
            CU_ASSERT(a->v.b == b->v.b);
        } else {
            CU_ASSERT(a->v.u == b->v.u);
        }
    }
    char key[128];
    snprintf(key, sizeof key, "%s.attention.key_length", arch);
    CU_ASSERT(fmt_kv_int(&h, key, 0) == 16);
    CU_ASSERT(fmt_kv_str_eq(&h, "llmh.source_format", "safetensors"));
    const llmh_value *tj = fmt_kv(&h, "llmh.tokenizer_json");
    CU_ASSERT_FATAL(tj && tj->type == LLMH_V_STRING && tj->v.s.len > 15);
    CU_ASSERT(tj->v.s.ptr[0] == '/');
    CU_ASSERT(!memcmp(tj->v.s.ptr + tj->v.s.len - 15, "/tokenizer.json", 15));
    CU_ASSERT(access(tj->v.s.ptr, R_OK) == 0); /* NUL-terminated copy, a real file */
    CU_ASSERT(fmt_tensor(&h, "output.weight") == NULL); /* tie_word_embeddings */
    /* the chat template is tokenizer_config.json's (Qwen2.5's) */
    const llmh_value *ct = fmt_kv(&h, "tokenizer.chat_template");
    CU_ASSERT(ct && ct->type == LLMH_V_STRING && ct->v.s.len > 1000 &&
              memmem(ct->v.s.ptr, ct->v.s.len, "<|im_start|>", 12) != NULL);
    fmt_close(&g);
    fmt_close(&h);
    free(gp);
    free(hp);
}

static void test_st_metadata(void) {
    compare_metadata("models/qwen2-tiny-f32.gguf", "models/qwen2-tiny-hf", "qwen2");
    compare_metadata("models/llama-tiny-bf16.gguf", "models/llama-tiny-hf", "llama");
}

/* The single file path works too, and the directory's config is used. */
static void test_st_single_file_path(void) {
    char *p = llmh_test_shared("models/qwen2-tiny-hf/model.safetensors");
    fmt_file h;
    OPEN_OK(&st, p, NULL, &h);
    CU_ASSERT(fmt_kv_str_eq(&h, "general.architecture", "qwen2"));
    CU_ASSERT(h.n_t == 26);
    fmt_close(&h);
    free(p);
}

/* ======================================================================== */
/* Synthetic safetensors: permutation, shards, options, rope scaling          */
/* ======================================================================== */
typedef struct st_tensor_spec {
    const char *name;
    const char *dtype;
    int n_dims;
    int64_t shape[4];
} st_tensor_spec;

/* Write a safetensors file whose F32 values are hf_value(name_index, element). */
static float hf_value(size_t ti, int64_t e) { return (float)(ti * 1000 + (size_t)e); }

/* The header is padded with spaces to a multiple of 8 (as HF's writer
 * does), plus `misalign` extra spaces. */
static void st_build_ex(fmt_buf *b, const st_tensor_spec *ts, size_t n, int misalign) {
    fmt_buf hdr = {0};
    uint64_t off = 0;
    fb_printf(&hdr, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < n; i++) {
        int64_t ne = 1;
        for (int d = 0; d < ts[i].n_dims; d++) ne *= ts[i].shape[d];
        uint64_t sz = (uint64_t)ne * (strcmp(ts[i].dtype, "F32") ? 2 : 4);
        fb_printf(&hdr, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", ts[i].name, ts[i].dtype);
        for (int d = 0; d < ts[i].n_dims; d++) fb_printf(&hdr, "%s%lld", d ? "," : "", (long long)ts[i].shape[d]);
        fb_printf(&hdr, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + sz));
        off += sz;
    }
    fb_printf(&hdr, "}");
    while (hdr.n % 8) fb_printf(&hdr, " ");
    for (int i = 0; i < misalign; i++) fb_printf(&hdr, " ");
    fb_u64(b, hdr.n);
    fb_bytes(b, hdr.p, hdr.n);
    for (size_t i = 0; i < n; i++) {
        int64_t ne = 1;
        for (int d = 0; d < ts[i].n_dims; d++) ne *= ts[i].shape[d];
        for (int64_t e = 0; e < ne; e++) {
            float v = hf_value(i, e);
            if (!strcmp(ts[i].dtype, "F32")) fb_f32(b, v);
            else if (!strcmp(ts[i].dtype, "F16")) fb_u16(b, llmh_fp32_to_fp16(v));
            else fb_u16(b, llmh_fp32_to_bf16(v));
        }
    }
    fb_free(&hdr);
}

static void st_build(fmt_buf *b, const st_tensor_spec *ts, size_t n) { st_build_ex(b, ts, n, 0); }

static const char llama_cfg[] =
    "{\"model_type\":\"llama\",\"hidden_size\":8,\"intermediate_size\":16,\"num_hidden_layers\":1,"
    "\"num_attention_heads\":2,\"num_key_value_heads\":1,\"head_dim\":4,\"max_position_embeddings\":64,"
    "\"rope_theta\":500000.0,\"rms_norm_eps\":1e-05,\"tie_word_embeddings\":true,\"bos_token_id\":1,"
    "\"eos_token_id\":[2,3],\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,"
    "\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192}}";

/* shard 1: q/k (+ q bias); shard 2: the rest */
static const st_tensor_spec shard1[] = {
    {"model.layers.0.self_attn.q_proj.weight", "F32", 2, {8, 8}},
    {"model.layers.0.self_attn.q_proj.bias", "F32", 1, {8}},
    {"model.layers.0.self_attn.k_proj.weight", "F32", 2, {4, 8}},
};
static const st_tensor_spec shard2[] = {
    {"model.embed_tokens.weight", "BF16", 2, {10, 8}},
    {"lm_head.weight", "BF16", 2, {10, 8}},
    {"model.norm.weight", "F32", 1, {8}},
    {"model.layers.0.self_attn.v_proj.weight", "F32", 2, {4, 8}},
    {"model.layers.0.self_attn.o_proj.weight", "F32", 2, {8, 8}},
    {"model.layers.0.mlp.gate_proj.weight", "F32", 2, {16, 8}},
    {"model.layers.0.mlp.up_proj.weight", "F32", 2, {16, 8}},
    {"model.layers.0.mlp.down_proj.weight", "F32", 2, {8, 16}},
    {"model.layers.0.input_layernorm.weight", "F32", 1, {8}},
    {"model.layers.0.post_attention_layernorm.weight", "F32", 1, {8}},
    {"model.layers.0.self_attn.rotary_emb.inv_freq", "F32", 1, {2}},
    {"some.extra.tensor", "F32", 1, {3}},
};

static char *make_sharded_llama(const char *cfg) {
    char *dir = fmt_mkdtemp();
    fmt_buf b = {0};
    st_build(&b, shard1, 3);
    fmt_write_in(dir, "model-00001-of-00002.safetensors", b.p, b.n);
    fb_free(&b);
    st_build(&b, shard2, sizeof shard2 / sizeof shard2[0]);
    fmt_write_in(dir, "model-00002-of-00002.safetensors", b.p, b.n);
    fb_free(&b);
    fb_printf(&b, "{\"metadata\":{\"total_size\":0},\"weight_map\":{");
    for (size_t i = 0; i < 3; i++) fb_printf(&b, "%s\"%s\":\"model-00001-of-00002.safetensors\"", i ? "," : "", shard1[i].name);
    for (size_t i = 0; i < sizeof shard2 / sizeof shard2[0]; i++)
        fb_printf(&b, ",\"%s\":\"model-00002-of-00002.safetensors\"", shard2[i].name);
    fb_printf(&b, "}}");
    fmt_write_in(dir, "model.safetensors.index.json", b.p, b.n);
    fb_free(&b);
    fmt_write_in(dir, "config.json", cfg, strlen(cfg));
    static const char tc[] = "{\"add_bos_token\":true,\"chat_template\":[{\"name\":\"tool_use\",\"template\":\"T\"},"
                             "{\"name\":\"default\",\"template\":\"{{ messages }}\"}]}";
    fmt_write_in(dir, "tokenizer_config.json", tc, strlen(tc));
    return dir;
}

static void test_st_sharded_llama_permutation(void) {
    char *dir = make_sharded_llama(llama_cfg);
    fmt_file f;
    OPEN_OK(&st, dir, NULL, &f);
    CU_ASSERT(fmt_kv_str_eq(&f, "general.architecture", "llama"));
    CU_ASSERT(fmt_kv_int(&f, "llama.attention.head_count", 0) == 2);
    CU_ASSERT(fmt_kv_int(&f, "llama.attention.head_count_kv", 0) == 1);
    CU_ASSERT(fmt_kv_int(&f, "llama.attention.key_length", 0) == 4);
    CU_ASSERT(fmt_kv_int(&f, "tokenizer.ggml.bos_token_id", -1) == 1);
    CU_ASSERT(fmt_kv_int(&f, "tokenizer.ggml.eos_token_id", -1) == 2); /* first of a list */
    CU_ASSERT(fmt_kv_str_eq(&f, "tokenizer.chat_template", "{{ messages }}"));
    const llmh_value *ab = fmt_kv(&f, "tokenizer.ggml.add_bos_token");
    CU_ASSERT(ab && ab->type == LLMH_V_BOOL && ab->v.b == 1);
    CU_ASSERT(fmt_kv(&f, "llmh.tokenizer_json") == NULL); /* no tokenizer.json here */
    const llmh_value *eps = fmt_kv(&f, "llama.attention.layer_norm_rms_epsilon");
    CU_ASSERT(eps && eps->type == LLMH_V_F32 && eps->v.f == (double)1e-5f);

    /* q: 2 heads of 4 rows; GGUF row 2i+j of a head = HF row j*2+i */
    const int perm[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    const llmh_tensor_info *q = fmt_tensor(&f, "blk.0.attn_q.weight");
    CU_ASSERT_FATAL(q && q->ne[0] == 8 && q->ne[1] == 8 && q->type == LLMH_DTYPE_F32);
    const float *qv = q->data;
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 8; c++) CU_ASSERT(qv[r * 8 + c] == hf_value(0, perm[r] * 8 + c));
    const llmh_tensor_info *qb = fmt_tensor(&f, "blk.0.attn_q.bias");
    CU_ASSERT_FATAL(qb && qb->ne[0] == 8);
    for (int r = 0; r < 8; r++) CU_ASSERT(((const float *)qb->data)[r] == hf_value(1, perm[r]));
    /* k: 1 KV head of 4 rows */
    const llmh_tensor_info *k = fmt_tensor(&f, "blk.0.attn_k.weight");
    CU_ASSERT_FATAL(k && k->ne[0] == 8 && k->ne[1] == 4);
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 8; c++) CU_ASSERT(((const float *)k->data)[r * 8 + c] == hf_value(2, perm[r] * 8 + c));
    /* v untouched, zero-copy */
    const llmh_tensor_info *v = fmt_tensor(&f, "blk.0.attn_v.weight");
    CU_ASSERT_FATAL(v && v->file_offset != 0);
    for (int e = 0; e < 32; e++) CU_ASSERT(((const float *)v->data)[e] == hf_value(3, e));
    /* names mapped, shapes reversed */
    const llmh_tensor_info *dn = fmt_tensor(&f, "blk.0.ffn_down.weight");
    CU_ASSERT(dn && dn->ne[0] == 16 && dn->ne[1] == 8);
    CU_ASSERT(fmt_tensor(&f, "blk.0.ffn_gate.weight") && fmt_tensor(&f, "blk.0.ffn_up.weight"));
    CU_ASSERT(fmt_tensor(&f, "blk.0.attn_norm.weight") && fmt_tensor(&f, "blk.0.ffn_norm.weight"));
    CU_ASSERT(fmt_tensor(&f, "blk.0.attn_output.weight") && fmt_tensor(&f, "output_norm.weight"));
    const llmh_tensor_info *emb = fmt_tensor(&f, "token_embd.weight");
    CU_ASSERT(emb && emb->type == LLMH_DTYPE_BF16 && emb->ne[0] == 8 && emb->ne[1] == 10);
    CU_ASSERT(fmt_tensor(&f, "output.weight") == NULL); /* tied: lm_head dropped */
    CU_ASSERT(fmt_tensor(&f, "some.extra.tensor") != NULL); /* unknown names kept */
    for (size_t i = 0; i < f.n_t; i++) CU_ASSERT(strstr(f.t[i].name, "inv_freq") == NULL);
    /* llama3 rope scaling -> rope_freqs.weight [head_dim/2]; for theta 5e5,
     * head_dim 4: freq 0 is high (factor 1), freq 1 has wavelength 4442.9,
     * between 8192/4 and 8192: smooth = (8192/4442.9 - 1)/3 */
    const llmh_tensor_info *rf = fmt_tensor(&f, "rope_freqs.weight");
    CU_ASSERT_FATAL(rf && rf->type == LLMH_DTYPE_F32 && rf->ne[0] == 2 && rf->size == 8);
    const float *rv = rf->data;
    double wl = 2.0 * M_PI * sqrt(500000.0), sm = (8192.0 / wl - 1.0) / 3.0;
    CU_ASSERT(rv[0] == 1.0f);
    CU_ASSERT(fabs(rv[1] - 1.0 / ((1.0 - sm) / 8.0 + sm)) < 1e-5);
    CU_ASSERT(f.n_t == 3 + 9 + 1 + 1); /* 3 + 11 - lm_head - inv_freq + rope_freqs */

    fmt_close(&f);

    /* [model] permute_qk = false keeps HF order; unknown options are ignored */
    llmh_kv opt[2];
    opt[0].key = "permute_qk";
    opt[0].value.type = LLMH_V_BOOL;
    opt[0].value.v.b = 0;
    opt[1].key = "some_other_key";
    opt[1].value.type = LLMH_V_I64;
    opt[1].value.v.i = 3;
    llmh_kv_list ol = {opt, 2};
    OPEN_OK(&st, dir, &ol, &f);
    q = fmt_tensor(&f, "blk.0.attn_q.weight");
    CU_ASSERT_FATAL(q != NULL);
    for (int e = 0; e < 64; e++) CU_ASSERT(((const float *)q->data)[e] == hf_value(0, e));
    fmt_close(&f);
    opt[0].value.type = LLMH_V_STRING;
    opt[0].value.v.s.ptr = "no";
    opt[0].value.v.s.len = 2;
    CU_ASSERT(fmt_open(&st, dir, &ol, &f) == LLMH_ERR_CONFIG);
    CU_ASSERT(strstr(llmh_last_error(), "permute_qk") != NULL);

    /* the index file itself is a valid path */
    char idx[4096];
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
    OPEN_OK(&st, idx, NULL, &f);
    CU_ASSERT(f.n_t == 14);
    fmt_close(&f);
    fmt_rmdir(dir);
}

static void test_st_qwen3_no_permutation(void) {
    static const char cfg[] =
        "{\"model_type\":\"qwen3\",\"hidden_size\":8,\"intermediate_size\":16,\"num_hidden_layers\":1,"
        "\"num_attention_heads\":2,\"num_key_value_heads\":1,\"head_dim\":4,\"rope_theta\":1000000,"
        "\"rms_norm_eps\":1e-06,\"tie_word_embeddings\":false,\"rope_scaling\":{\"type\":\"yarn\","
        "\"factor\":4.0,\"original_max_position_embeddings\":32768}}";
    static const st_tensor_spec ts[] = {
        {"model.layers.0.self_attn.q_proj.weight", "F32", 2, {8, 8}},
        {"model.layers.0.self_attn.q_norm.weight", "F32", 1, {4}},
        {"model.layers.0.self_attn.k_norm.weight", "F32", 1, {4}},
        {"lm_head.weight", "BF16", 2, {10, 8}},
        {"model.norm.weight", "F16", 1, {8}},
    };
    char *dir = fmt_mkdtemp();
    fmt_buf b = {0};
    st_build(&b, ts, 5);
    fmt_write_in(dir, "model.safetensors", b.p, b.n);
    fb_free(&b);
    fmt_write_in(dir, "config.json", cfg, strlen(cfg));
    fmt_file f;
    OPEN_OK(&st, dir, NULL, &f);
    CU_ASSERT(fmt_kv_str_eq(&f, "general.architecture", "qwen3"));
    CU_ASSERT(fmt_kv_str_eq(&f, "qwen3.rope.scaling.type", "yarn"));
    CU_ASSERT(fmt_kv_int(&f, "qwen3.rope.scaling.original_context_length", 0) == 32768);
    const llmh_value *fac = fmt_kv(&f, "qwen3.rope.scaling.factor");
    CU_ASSERT(fac && fac->type == LLMH_V_F32 && fac->v.f == 4.0);
    CU_ASSERT(fmt_kv_int(&f, "qwen3.attention.head_count_kv", 0) == 1);
    const llmh_tensor_info *q = fmt_tensor(&f, "blk.0.attn_q.weight");
    CU_ASSERT_FATAL(q && q->file_offset != 0);
    for (int e = 0; e < 64; e++) CU_ASSERT(((const float *)q->data)[e] == hf_value(0, e));
    CU_ASSERT(fmt_tensor(&f, "blk.0.attn_q_norm.weight") && fmt_tensor(&f, "blk.0.attn_k_norm.weight"));
    CU_ASSERT(fmt_tensor(&f, "output.weight") != NULL); /* untied: lm_head kept */
    const llmh_tensor_info *on = fmt_tensor(&f, "output_norm.weight");
    CU_ASSERT_FATAL(on && on->type == LLMH_DTYPE_F16 && on->ne[0] == 8 && on->size == 16);
    int64_t nn;
    float *onv = fmt_tensor_f32(on, &nn);
    for (int e = 0; e < 8; e++) CU_ASSERT(onv[e] == llmh_fp16_to_fp32(llmh_fp32_to_fp16(hf_value(4, e))));
    free(onv);
    fmt_close(&f);
    fmt_rmdir(dir);
}

/* safetensors promises no alignment: a misaligned tensor gets an aligned
 * copy, so consumers can always read whole elements. */
static void test_st_misaligned(void) {
    static const st_tensor_spec ts[] = {
        {"a", "F32", 2, {3, 5}},
        {"b", "BF16", 1, {7}},
        {"c", "F32", 1, {4}},
    };
    for (int mis = 0; mis < 4; mis++) {
        fmt_buf b = {0};
        st_build_ex(&b, ts, 3, mis);
        char *path = fmt_write_temp(&b, ".safetensors");
        fmt_file f;
        OPEN_OK(&st, path, NULL, &f);
        CU_ASSERT_FATAL(f.n_t == 3);
        for (size_t i = 0; i < 3; i++) {
            const llmh_tensor_info *t = fmt_tensor(&f, ts[i].name);
            CU_ASSERT_FATAL(t != NULL);
            CU_ASSERT((uintptr_t)t->data % llmh_dtype_type_size(t->type) == 0);
            int64_t n;
            float *v = fmt_tensor_f32(t, &n);
            for (int64_t e = 0; e < n; e++) {
                float want = hf_value(i, e);
                if (t->type == LLMH_DTYPE_BF16) want = llmh_bf16_to_fp32(llmh_fp32_to_bf16(want));
                CU_ASSERT(v[e] == want);
            }
            free(v);
        }
        fmt_close(&f);
        unlink(path);
        free(path);
        fb_free(&b);
    }
}

/* ======================================================================== */
/* Corrupt safetensors                                                        */
/* ======================================================================== */
static void st_raw_file(fmt_buf *b, const char *json, size_t data_bytes) {
    fb_u64(b, strlen(json));
    fb_bytes(b, json, strlen(json));
    for (size_t i = 0; i < data_bytes; i++) fb_u8(b, (uint8_t)i);
}

static void test_st_corrupt(void) {
    fmt_buf b = {0};
    fb_u64(&b, 1000);
    fb_printf(&b, "{\"a\":{}}");
    expect_fail(&st, &b, ".safetensors", "header length 1000", "runs past end of file");

    fb_u64(&b, 4);
    fb_printf(&b, "[1] ");
    expect_fail(&st, &b, ".safetensors", "does not start with '{'", NULL);

    st_raw_file(&b, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]", 8);
    expect_fail(&st, &b, ".safetensors", "invalid JSON", "offset");

    st_raw_file(&b, "{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8);
    expect_fail(&st, &b, ".safetensors", "tensor 'a'", "dtype I64 is not supported");

    st_raw_file(&b, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8);
    expect_fail(&st, &b, ".safetensors", "tensor 'a'", "span 8 bytes");

    st_raw_file(&b, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8);
    expect_fail(&st, &b, ".safetensors", "tensor 'a'", "out of order");

    st_raw_file(&b, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8);
    expect_fail(&st, &b, ".safetensors", "tensor 'a'", "runs past end of file");

    st_raw_file(&b, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
    expect_fail(&st, &b, ".safetensors", "overlaps", "'a'");

    st_raw_file(&b, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 4);
    expect_fail(&st, &b, ".safetensors", "tensor 'a'", "5 dimensions");

    st_raw_file(&b, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,8]}}", 8);
    expect_fail(&st, &b, ".safetensors", "tensor 'a'", "shape[1]");

    st_raw_file(&b, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,1e300]}}", 8);
    expect_fail(&st, &b, ".safetensors", "tensor 'a'", "data_offsets");

    st_raw_file(&b, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8);
    expect_fail(&st, &b, ".safetensors", "tensor 'a'", "data_offsets");

    st_raw_file(&b, "{\"a\":[1,2]}", 8);
    expect_fail(&st, &b, ".safetensors", "tensor 'a'", "not a JSON object");

    st_raw_file(&b, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", 8);
    expect_fail(&st, &b, ".safetensors", "trailing bytes", NULL);

    fb_u64(&b, 2);
    expect_fail(&st, &b, ".safetensors", "runs past end of file", NULL);

    /* directory-level errors */
    char *dir = fmt_mkdtemp();
    st_raw_file(&b, "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    fmt_write_in(dir, "model.safetensors", b.p, b.n);
    fb_free(&b);
    static const char gpt2[] = "{\"model_type\":\"gpt2\",\"hidden_size\":8}";
    fmt_write_in(dir, "config.json", gpt2, strlen(gpt2));
    expect_fail_file(&st, dir, "model_type 'gpt2'", "config.json");
    static const char nolayers[] = "{\"model_type\":\"qwen2\",\"hidden_size\":8,\"intermediate_size\":16,"
                                   "\"num_attention_heads\":2}";
    fmt_write_in(dir, "config.json", nolayers, strlen(nolayers));
    expect_fail_file(&st, dir, "num_hidden_layers", "config.json");
    static const char badjson[] = "{\"model_type\": \"qwen2\", ";
    fmt_write_in(dir, "config.json", badjson, strlen(badjson));
    expect_fail_file(&st, dir, "config.json", "invalid JSON");
    static const char badheads[] = "{\"model_type\":\"llama\",\"hidden_size\":8,\"intermediate_size\":16,"
                                   "\"num_hidden_layers\":1,\"num_attention_heads\":3,\"num_key_value_heads\":2}";
    fmt_write_in(dir, "config.json", badheads, strlen(badheads));
    expect_fail_file(&st, dir, "num_key_value_heads", NULL);
    fmt_rmdir(dir);

    /* an index naming a shard outside the directory, or a missing tensor */
    dir = make_sharded_llama(llama_cfg);
    static const char evil[] = "{\"weight_map\":{\"a\":\"../../etc/passwd\"}}";
    fmt_write_in(dir, "model.safetensors.index.json", evil, strlen(evil));
    expect_fail_file(&st, dir, "weight_map['a']", "plain file name");
    static const char missing[] = "{\"weight_map\":{\"model.norm.weight\":\"model-00002-of-00002.safetensors\","
                                  "\"nope\":\"model-00001-of-00002.safetensors\"}}";
    fmt_write_in(dir, "model.safetensors.index.json", missing, strlen(missing));
    expect_fail_file(&st, dir, "'nope'", "in no shard");
    static const char wrong[] = "{\"weight_map\":{\"model.norm.weight\":\"model-00002-of-00002.safetensors\","
                                "\"lm_head.weight\":\"model-00001-of-00002.safetensors\"}}";
    fmt_write_in(dir, "model.safetensors.index.json", wrong, strlen(wrong));
    expect_fail_file(&st, dir, "'lm_head.weight'", "not 'model-00001-of-00002.safetensors'");
    fmt_rmdir(dir);

    /* llama q rows that do not split into heads */
    dir = fmt_mkdtemp();
    static const st_tensor_spec badq[] = {{"model.layers.0.self_attn.q_proj.weight", "F32", 2, {6, 8}}};
    st_build(&b, badq, 1);
    fmt_write_in(dir, "model.safetensors", b.p, b.n);
    fb_free(&b);
    static const char cfg4[] = "{\"model_type\":\"llama\",\"hidden_size\":8,\"intermediate_size\":16,"
                               "\"num_hidden_layers\":1,\"num_attention_heads\":4}";
    fmt_write_in(dir, "config.json", cfg4, strlen(cfg4));
    expect_fail_file(&st, dir, "q_proj.weight", "heads");
    fmt_rmdir(dir);

    expect_fail_file(&st, "/nonexistent/dir/model.safetensors", "no such file", NULL);
}

int main(void) {
    static const llmh_test_case gguf_fixture_cases[] = {
        {"stories260K metadata and tensors", test_gguf_stories},
        {"qwen2-tiny metadata, vocab, template", test_gguf_qwen2},
        {"quantized q8_0 / q4_0 tensors", test_gguf_quantized},
        {"vocab-only file and LoRA adapter", test_gguf_vocab_only_and_adapters},
        {"probe_file scores", test_gguf_probe},
        {NULL, NULL}};
    static const llmh_test_case gguf_synth_cases[] = {
        {"v3: every metadata type, nested arrays, alignment 64", test_gguf_all_types_v3},
        {"v2: every metadata type, nested arrays, alignment 64", test_gguf_all_types_v2},
        {"reserved llmh.* keys dropped, zero tensors", test_gguf_reserved_keys_and_empty},
        {NULL, NULL}};
    static const llmh_test_case gguf_corrupt_cases[] = {
        {"header: magic, version, counts, truncation", test_gguf_corrupt_header},
        {"metadata: lengths, types, depth, duplicates, alignment", test_gguf_corrupt_kv},
        {"tensor infos: dims, types, blocks, offsets, overlap, names", test_gguf_corrupt_tensors},
        {NULL, NULL}};
    static const llmh_test_case st_cases[] = {
        {"qwen2-tiny-hf tensors == qwen2-tiny-f32.gguf", test_st_qwen2_vs_gguf},
        {"llama-tiny-hf tensors == llama-tiny-bf16.gguf (q/k permuted)", test_st_llama_vs_gguf},
        {"config.json -> the GGUF converter's keys", test_st_metadata},
        {"single .safetensors file path", test_st_single_file_path},
        {"sharded llama: permutation, tying, llama3 rope, options", test_st_sharded_llama_permutation},
        {"qwen3: q/k norms, no permutation, yarn scaling", test_st_qwen3_no_permutation},
        {"misaligned data is copied aligned", test_st_misaligned},
        {"corrupt headers, configs and indexes", test_st_corrupt},
        {NULL, NULL}};
    static const llmh_test_suite suites[] = {
        {"gguf fixtures", gguf_fixture_cases, suite_init, suite_cleanup},
        {"gguf hand-built", gguf_synth_cases, suite_init, suite_cleanup},
        {"gguf corrupt", gguf_corrupt_cases, suite_init, suite_cleanup},
        {"safetensors", st_cases, suite_init, suite_cleanup},
    };
    return llmh_test_main(suites, sizeof suites / sizeof suites[0]);
}
