/*
 * bpe-json.c — build the BPE tokenizer from a Hugging Face tokenizer.json
 * (model.type "BPE" with a ByteLevel pre-tokenizer or decoder). Special ids
 * come from GGUF-named metadata keys when the format plugin set them, else
 * from tokenizer_config.json next to tokenizer.json, else from the
 * post-processor template.
 */
#include "bpe.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

enum { MAX_JSON_BYTES = 1 << 30, MAX_VOCAB = 1 << 24 };

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long sz = ftell(f);
        if (sz >= 0 && sz <= MAX_JSON_BYTES && fseek(f, 0, SEEK_SET) == 0) {
            buf = malloc((size_t)sz + 1);
            if (buf && fread(buf, 1, (size_t)sz, f) == (size_t)sz) {
                buf[sz] = 0;
                *len = (size_t)sz;
            } else {
                free(buf);
                buf = NULL;
            }
        }
    }
    fclose(f);
    return buf;
}

static cJSON *parse_file(const char *path, int quiet) {
    size_t len = 0;
    char *text = read_all(path, &len);
    if (!text) {
        if (!quiet) TOKC_ERR("bpe: cannot read '%s'", path);
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root && !quiet) {
        const char *e = cJSON_GetErrorPtr();
        size_t off = (e && e >= text && e <= text + len) ? (size_t)(e - text) : 0;
        TOKC_ERR("bpe: '%s' is not valid JSON (error near byte %zu)", path, off);
    }
    free(text);
    return root;
}

static int str_is(const cJSON *j, const char *s) {
    return cJSON_IsString(j) && j->valuestring && strcmp(j->valuestring, s) == 0;
}

/* Does this pre_tokenizer/decoder tree contain a ByteLevel step? */
static int has_byte_level(const cJSON *j) {
    if (!cJSON_IsObject(j)) return 0;
    if (str_is(cJSON_GetObjectItemCaseSensitive(j, "type"), "ByteLevel")) return 1;
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(j, "pretokenizers");
    if (!seq) seq = cJSON_GetObjectItemCaseSensitive(j, "decoders");
    const cJSON *it;
    cJSON_ArrayForEach(it, seq) if (has_byte_level(it)) return 1;
    return 0;
}

int32_t bpe_json_probe(const char *path) {
    cJSON *root = parse_file(path, 1);
    if (!root) return 0;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    int32_t score = 0;
    if (str_is(cJSON_GetObjectItemCaseSensitive(model, "type"), "BPE") &&
        (has_byte_level(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer")) ||
         has_byte_level(cJSON_GetObjectItemCaseSensitive(root, "decoder"))))
        score = 90;
    cJSON_Delete(root);
    return score;
}

/* ---------------------------------------------------------------------- */
static llmh_status add_normalizer(llmh_tokenizer *t, const cJSON *n, const char *path) {
    if (!n || cJSON_IsNull(n)) return LLMH_OK;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(n, "type");
    if (str_is(type, "Sequence")) {
        const cJSON *it;
        llmh_status st;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(n, "normalizers"))
            if ((st = add_normalizer(t, it, path))) return st;
        return LLMH_OK;
    }
    int opts;
    if (str_is(type, "NFC")) opts = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    else if (str_is(type, "NFD")) opts = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;
    else if (str_is(type, "NFKC")) opts = UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    else if (str_is(type, "NFKD")) opts = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
    else {
        TOKC_ERR("bpe: %s: normalizer type '%s' is not supported (NFC, NFD, NFKC, NFKD, Sequence are)", path,
                 cJSON_IsString(type) ? type->valuestring : "?");
        return LLMH_ERR_UNSUPPORTED;
    }
    if (t->n_normalizers >= BPE_MAX_NORMALIZERS) {
        TOKC_ERR("bpe: %s: more than %d normalizers", path, BPE_MAX_NORMALIZERS);
        return LLMH_ERR_UNSUPPORTED;
    }
    t->normalizers[t->n_normalizers++] = opts;
    return LLMH_OK;
}

static const char RE_BYTELEVEL[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static llmh_status add_pre_tokenizer(llmh_tokenizer *t, const cJSON *p, const char *path) {
    if (!p || cJSON_IsNull(p)) return LLMH_OK;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
    llmh_status st;
    if (str_is(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"))
            if ((st = add_pre_tokenizer(t, it, path))) return st;
        return LLMH_OK;
    }
    if (str_is(type, "ByteLevel")) {
        const cJSON *aps = cJSON_GetObjectItemCaseSensitive(p, "add_prefix_space");
        const cJSON *use = cJSON_GetObjectItemCaseSensitive(p, "use_regex");
        if (cJSON_IsTrue(aps)) t->add_prefix_space = 1;
        if (!cJSON_IsFalse(use)) /* default true */
            return bpe_add_stage(t, RE_BYTELEVEL, sizeof(RE_BYTELEVEL) - 1, 0, BPE_SPLIT_ISOLATED, path);
        return LLMH_OK;
    }
    if (str_is(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        const cJSON *lit = cJSON_GetObjectItemCaseSensitive(pat, "String");
        const cJSON *beh = cJSON_GetObjectItemCaseSensitive(p, "behavior");
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "invert"))) {
            TOKC_ERR("bpe: %s: Split pre-tokenizer with invert=true is not supported", path);
            return LLMH_ERR_UNSUPPORTED;
        }
        bpe_split_behavior b;
        if (!beh || str_is(beh, "Isolated")) b = BPE_SPLIT_ISOLATED;
        else if (str_is(beh, "Removed")) b = BPE_SPLIT_REMOVED;
        else if (str_is(beh, "MergedWithPrevious")) b = BPE_SPLIT_MERGED_WITH_PREVIOUS;
        else if (str_is(beh, "MergedWithNext")) b = BPE_SPLIT_MERGED_WITH_NEXT;
        else {
            TOKC_ERR("bpe: %s: Split behavior '%s' is not supported", path,
                     cJSON_IsString(beh) ? beh->valuestring : "?");
            return LLMH_ERR_UNSUPPORTED;
        }
        if (cJSON_IsString(re)) return bpe_add_stage(t, re->valuestring, strlen(re->valuestring), 0, b, path);
        if (cJSON_IsString(lit)) return bpe_add_stage(t, lit->valuestring, strlen(lit->valuestring), 1, b, path);
        TOKC_ERR("bpe: %s: Split pre-tokenizer without a Regex or String pattern", path);
        return LLMH_ERR_FORMAT;
    }
    if (str_is(type, "Digits")) {
        static const char one[] = "\\p{N}", many[] = "\\p{N}+";
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "individual_digits")))
            return bpe_add_stage(t, one, sizeof(one) - 1, 0, BPE_SPLIT_ISOLATED, path);
        return bpe_add_stage(t, many, sizeof(many) - 1, 0, BPE_SPLIT_ISOLATED, path);
    }
    TOKC_ERR("bpe: %s: pre_tokenizer type '%s' is not supported", path,
             cJSON_IsString(type) ? type->valuestring : "?");
    return LLMH_ERR_UNSUPPORTED;
}

/* Token text of a tokenizer_config.json special entry ("<s>" or {"content": "<s>"}). */
static const char *config_token(const cJSON *cfg, const char *key) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(j)) j = cJSON_GetObjectItemCaseSensitive(j, "content");
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

static llmh_token find_text(const llmh_tokenizer *t, const char *s) {
    if (!s) return -1;
    int32_t id = tokc_strtab_find(&t->v.tab, s, strlen(s));
    return id < t->v.n_vocab ? id : -1;
}

typedef struct id_text { const char *s; size_t n; int8_t type; uint8_t lstrip, rstrip; } id_text;

llmh_status bpe_json_load(llmh_tokenizer *t, const char *path, const llmh_kv_list *meta) {
    llmh_status st = LLMH_OK;
    id_text *ids = NULL;
    uint8_t *lstrip = NULL, *rstrip = NULL;
    char *pad = NULL;
    cJSON *cfg = NULL;
    cJSON *root = parse_file(path, 0);
    if (!root) return LLMH_ERR_FORMAT;

    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!str_is(cJSON_GetObjectItemCaseSensitive(model, "type"), "BPE")) {
        TOKC_ERR("bpe: %s: model.type is not \"BPE\"", path);
        st = LLMH_ERR_UNSUPPORTED;
        goto done;
    }
    if (!has_byte_level(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer")) &&
        !has_byte_level(cJSON_GetObjectItemCaseSensitive(root, "decoder"))) {
        TOKC_ERR("bpe: %s: not a byte-level BPE (no ByteLevel pre_tokenizer or decoder)", path);
        st = LLMH_ERR_UNSUPPORTED;
        goto done;
    }
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
        TOKC_ERR("bpe: %s: model.vocab must be an object and model.merges an array", path);
        st = LLMH_ERR_FORMAT;
        goto done;
    }

    /* vocabulary size: the largest id, padded to the model's vocab size */
    int64_t max_id = -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= (double)(INT32_MAX - 1) ||
            (double)(int64_t)it->valuedouble != it->valuedouble) {
            TOKC_ERR("bpe: %s: model.vocab[\"%.64s\"] is not a valid id", path, it->string ? it->string : "");
            st = LLMH_ERR_FORMAT;
            goto done;
        }
        if ((int64_t)it->valuedouble > max_id) max_id = (int64_t)it->valuedouble;
    }
    cJSON_ArrayForEach(it, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= (double)(INT32_MAX - 1) ||
            !cJSON_IsString(content)) {
            TOKC_ERR("bpe: %s: malformed entry in added_tokens", path);
            st = LLMH_ERR_FORMAT;
            goto done;
        }
        if ((int64_t)id->valuedouble > max_id) max_id = (int64_t)id->valuedouble;
    }
    if (max_id < 0) {
        TOKC_ERR("bpe: %s: empty vocabulary", path);
        st = LLMH_ERR_FORMAT;
        goto done;
    }
    int64_t n_vocab = max_id + 1;
    if (n_vocab > MAX_VOCAB) {
        TOKC_ERR("bpe: %s: token id %lld is beyond the supported vocabulary size (%d)", path, (long long)max_id, MAX_VOCAB);
        st = LLMH_ERR_FORMAT;
        goto done;
    }
    {
        size_t an = 0;
        const char *arch = tokc_meta_str(meta, "general.architecture", &an);
        int64_t vs;
        char key[128];
        if (arch && an < 64) {
            snprintf(key, sizeof(key), "%.*s.vocab_size", (int)an, arch);
            if (tokc_meta_int(meta, key, &vs) && vs > n_vocab && vs <= MAX_VOCAB) n_vocab = vs;
        }
    }
    ids = calloc((size_t)n_vocab, sizeof(id_text));
    lstrip = calloc((size_t)n_vocab, 1);
    rstrip = calloc((size_t)n_vocab, 1);
    if (!ids || !lstrip || !rstrip) { TOKC_ERR("bpe: out of memory"); st = LLMH_ERR_NO_MEMORY; goto done; }
    cJSON_ArrayForEach(it, vocab) {
        id_text *e = &ids[(int64_t)it->valuedouble];
        e->s = it->string;
        e->n = strlen(it->string);
        e->type = LLMH_TOKEN_NORMAL;
    }
    cJSON_ArrayForEach(it, added) {
        int64_t id = (int64_t)cJSON_GetObjectItemCaseSensitive(it, "id")->valuedouble;
        const char *content = cJSON_GetObjectItemCaseSensitive(it, "content")->valuestring;
        id_text *e = &ids[id];
        e->s = content;
        e->n = strlen(content);
        e->type = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special")) ? LLMH_TOKEN_CONTROL
                                                                                  : LLMH_TOKEN_USER_DEFINED;
        lstrip[id] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "lstrip"));
        rstrip[id] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "rstrip"));
    }
    /* unassigned ids (gaps, padding to the model's vocab size) get a
     * placeholder text and the UNUSED type */
    size_t n_unassigned = 0;
    for (int64_t i = 0; i < n_vocab; i++) if (!ids[i].s) n_unassigned++;
    if (n_unassigned) {
        pad = malloc(n_unassigned * 24);
        if (!pad) { TOKC_ERR("bpe: out of memory"); st = LLMH_ERR_NO_MEMORY; goto done; }
        char *q = pad;
        for (int64_t i = 0; i < n_vocab; i++) {
            if (ids[i].s) continue;
            int k = snprintf(q, 24, "[PAD%lld]", (long long)i);
            ids[i].s = q;
            ids[i].n = (size_t)k;
            ids[i].type = LLMH_TOKEN_UNUSED;
            q += 24;
        }
    }
    if ((st = tokc_strtab_init(&t->v.tab, (int32_t)(n_vocab + n_vocab / 4)))) { TOKC_ERR("bpe: out of memory"); goto done; }
    t->v.type = malloc((size_t)n_vocab);
    if (!t->v.type) { TOKC_ERR("bpe: out of memory"); st = LLMH_ERR_NO_MEMORY; goto done; }
    for (int64_t i = 0; i < n_vocab; i++) {
        int32_t id;
        if ((st = tokc_strtab_add(&t->v.tab, ids[i].s, ids[i].n, 0, &id))) { TOKC_ERR("bpe: out of memory"); goto done; }
        t->v.type[i] = ids[i].type;
    }
    t->v.n_vocab = (int32_t)n_vocab;

    if ((st = add_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), path))) goto done;
    if ((st = add_pre_tokenizer(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), path))) goto done;
    t->ignore_merges = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges"));

    size_t nm = (size_t)cJSON_GetArraySize(merges);
    if ((st = bpe_init_merges(t, nm))) goto done;
    int32_t rank = 0;
    cJSON_ArrayForEach(it, merges) {
        const char *a, *b;
        size_t alen, blen;
        if (cJSON_IsString(it)) {
            const char *s = it->valuestring;
            size_t len = strlen(s);
            const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
            if (!sp) { rank++; continue; }
            a = s; alen = (size_t)(sp - s);
            b = sp + 1; blen = len - alen - 1;
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(it->child) &&
                   cJSON_IsString(it->child->next)) {
            a = it->child->valuestring; alen = strlen(a);
            b = it->child->next->valuestring; blen = strlen(b);
        } else {
            TOKC_ERR("bpe: %s: model.merges[%d] is neither \"a b\" nor [\"a\", \"b\"]", path, (int)rank);
            st = LLMH_ERR_FORMAT;
            goto done;
        }
        if ((st = bpe_add_merge(t, a, alen, b, blen, rank))) goto done;
        rank++;
    }

    /* special tokens and BOS/EOS policy */
    tokc_vocab_read_specials(&t->v, meta, -1, -1, -1);
    {
        const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
        if (t->v.special[LLMH_SPECIAL_UNK] < 0 && cJSON_IsString(unk))
            t->v.special[LLMH_SPECIAL_UNK] = find_text(t, unk->valuestring);
    }
    {
        /* tokenizer_config.json beside tokenizer.json */
        const char *slash = strrchr(path, '/');
        size_t dir = slash ? (size_t)(slash - path + 1) : 0;
        char *cpath = malloc(dir + sizeof("tokenizer_config.json"));
        if (!cpath) { TOKC_ERR("bpe: out of memory"); st = LLMH_ERR_NO_MEMORY; goto done; }
        memcpy(cpath, path, dir);
        memcpy(cpath + dir, "tokenizer_config.json", sizeof("tokenizer_config.json"));
        cfg = parse_file(cpath, 1);
        free(cpath);
    }
    int have_add_bos = llmh_kv_find(meta, "tokenizer.ggml.add_bos_token") != NULL;
    int have_add_eos = llmh_kv_find(meta, "tokenizer.ggml.add_eos_token") != NULL;
    if (cfg) {
        static const struct { const char *key; int which; } keys[] = {
            {"bos_token", LLMH_SPECIAL_BOS}, {"eos_token", LLMH_SPECIAL_EOS},
            {"pad_token", LLMH_SPECIAL_PAD}, {"unk_token", LLMH_SPECIAL_UNK}, {"sep_token", LLMH_SPECIAL_SEP}};
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
            if (t->v.special[keys[i].which] < 0) t->v.special[keys[i].which] = find_text(t, config_token(cfg, keys[i].key));
        const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
        const cJSON *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
        if (!have_add_bos && cJSON_IsBool(ab)) { t->v.add_bos = cJSON_IsTrue(ab); have_add_bos = 1; }
        if (!have_add_eos && cJSON_IsBool(ae)) { t->v.add_eos = cJSON_IsTrue(ae); have_add_eos = 1; }
    }
    if (!have_add_bos) {
        /* TemplateProcessing whose "single" template starts with a special token */
        const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
        const cJSON *steps = cJSON_GetObjectItemCaseSensitive(pp, "processors");
        const cJSON *proc = pp;
        if (cJSON_IsArray(steps)) {
            cJSON_ArrayForEach(proc, steps)
                if (str_is(cJSON_GetObjectItemCaseSensitive(proc, "type"), "TemplateProcessing")) break;
        }
        if (proc && str_is(cJSON_GetObjectItemCaseSensitive(proc, "type"), "TemplateProcessing")) {
            const cJSON *single = cJSON_GetObjectItemCaseSensitive(proc, "single");
            const cJSON *first = cJSON_IsArray(single) ? single->child : NULL;
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(first, "SpecialToken");
            const cJSON *sid = cJSON_GetObjectItemCaseSensitive(sp, "id");
            if (cJSON_IsString(sid)) {
                llmh_token id = find_text(t, sid->valuestring);
                if (id >= 0) {
                    t->v.add_bos = 1;
                    if (t->v.special[LLMH_SPECIAL_BOS] < 0) t->v.special[LLMH_SPECIAL_BOS] = id;
                }
            }
        }
    }
    st = bpe_finish(t, lstrip, rstrip);

done:
    free(ids);
    free(lstrip);
    free(rstrip);
    free(pad);
    cJSON_Delete(cfg);
    cJSON_Delete(root);
    return st;
}
