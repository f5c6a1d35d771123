/* toml-shim.cpp — runs toml++ and copies its tree into the C structs of
 * toml-shim.h. The only C++ in the core; no exception leaves this file. */
#include "toml-shim.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sstream>
#include <string>
#include <string_view>

#include <toml++/toml.h>

namespace {

int clamp_pos(toml::source_index v) { return v > 0x7fffffffu ? 0x7fffffff : static_cast<int>(v); }

void set_err(char *err, size_t err_size, const char *msg) {
    if (err && err_size) std::snprintf(err, err_size, "%s", msg);
}

llmh_toml_node *new_node(llmh_toml_type type, const toml::source_region &src) {
    auto *n = static_cast<llmh_toml_node *>(std::calloc(1, sizeof(llmh_toml_node)));
    if (!n) return nullptr;
    n->type = type;
    n->line = clamp_pos(src.begin.line);
    n->col = clamp_pos(src.begin.column);
    return n;
}

bool set_str(llmh_toml_node *n, std::string_view s) {
    n->str = static_cast<char *>(std::malloc(s.size() + 1));
    if (!n->str) return false;
    if (!s.empty()) std::memcpy(n->str, s.data(), s.size());
    n->str[s.size()] = 0;
    n->len = s.size();
    return true;
}

template <typename T> bool set_text(llmh_toml_node *n, const T &v) {
    std::ostringstream os;
    os << v;
    return set_str(n, os.str());
}

/* Convert one toml++ node (recursively). Returns NULL on out of memory. */
llmh_toml_node *convert(const toml::node &src) {
    llmh_toml_node *n = nullptr;
    switch (src.type()) {
    case toml::node_type::table: {
        const toml::table &t = *src.as_table();
        n = new_node(LLMH_TOML_TABLE, src.source());
        if (!n) return nullptr;
        n->is_inline = t.is_inline() ? 1 : 0;
        if (t.empty()) break;
        n->items = static_cast<llmh_toml_node **>(std::calloc(t.size(), sizeof(llmh_toml_node *)));
        if (!n->items) goto oom;
        for (auto &&[k, v] : t) {
            llmh_toml_node *c = convert(v);
            if (!c) goto oom;
            n->items[n->n++] = c;
            c->key = static_cast<char *>(std::malloc(k.str().size() + 1));
            if (!c->key) goto oom;
            std::memcpy(c->key, k.str().data(), k.str().size());
            c->key[k.str().size()] = 0;
            c->key_line = clamp_pos(k.source().begin.line);
            c->key_col = clamp_pos(k.source().begin.column);
        }
        /* toml++ orders members by name; present them in source order. */
        std::stable_sort(n->items, n->items + n->n, [](const llmh_toml_node *a, const llmh_toml_node *b) {
            if (a->key_line != b->key_line) return a->key_line < b->key_line;
            return a->key_col < b->key_col;
        });
        break;
    }
    case toml::node_type::array: {
        const toml::array &a = *src.as_array();
        n = new_node(LLMH_TOML_ARRAY, src.source());
        if (!n) return nullptr;
        if (a.empty()) break;
        n->items = static_cast<llmh_toml_node **>(std::calloc(a.size(), sizeof(llmh_toml_node *)));
        if (!n->items) goto oom;
        for (const toml::node &e : a) {
            llmh_toml_node *c = convert(e);
            if (!c) goto oom;
            n->items[n->n++] = c;
        }
        break;
    }
    case toml::node_type::string:
        n = new_node(LLMH_TOML_STRING, src.source());
        if (!n || !set_str(n, src.as_string()->get())) goto oom;
        break;
    case toml::node_type::integer:
        n = new_node(LLMH_TOML_INTEGER, src.source());
        if (!n) return nullptr;
        n->i = src.as_integer()->get();
        break;
    case toml::node_type::floating_point:
        n = new_node(LLMH_TOML_FLOAT, src.source());
        if (!n) return nullptr;
        n->f = src.as_floating_point()->get();
        break;
    case toml::node_type::boolean:
        n = new_node(LLMH_TOML_BOOLEAN, src.source());
        if (!n) return nullptr;
        n->b = src.as_boolean()->get() ? 1 : 0;
        break;
    case toml::node_type::date:
        n = new_node(LLMH_TOML_DATETIME, src.source());
        if (!n || !set_text(n, src.as_date()->get())) goto oom;
        break;
    case toml::node_type::time:
        n = new_node(LLMH_TOML_DATETIME, src.source());
        if (!n || !set_text(n, src.as_time()->get())) goto oom;
        break;
    case toml::node_type::date_time:
        n = new_node(LLMH_TOML_DATETIME, src.source());
        if (!n || !set_text(n, src.as_date_time()->get())) goto oom;
        break;
    default:
        return nullptr;
    }
    return n;
oom:
    llmh__toml_free(n);
    return nullptr;
}

int parse_impl(const char *text, size_t len, llmh_toml_node **out, char *err, size_t err_size,
               int *line, int *col) {
    std::string_view doc(text ? text : "", text ? len : 0);
#if TOML_EXCEPTIONS
    toml::table tbl;
    try {
        tbl = toml::parse(doc, std::string_view{});
    } catch (const toml::parse_error &e) {
        set_err(err, err_size, std::string(e.description()).c_str());
        if (line) *line = clamp_pos(e.source().begin.line);
        if (col) *col = clamp_pos(e.source().begin.column);
        return 1;
    }
#else
    toml::parse_result res = toml::parse(doc, std::string_view{});
    if (!res) {
        const toml::parse_error &e = res.error();
        set_err(err, err_size, std::string(e.description()).c_str());
        if (line) *line = clamp_pos(e.source().begin.line);
        if (col) *col = clamp_pos(e.source().begin.column);
        return 1;
    }
    toml::table tbl = std::move(res).table();
#endif
    llmh_toml_node *root = convert(tbl);
    if (!root) {
        set_err(err, err_size, "out of memory while converting the TOML document");
        return -1;
    }
    *out = root;
    return 0;
}

} // namespace

extern "C" int llmh__toml_parse(const char *text, size_t len, llmh_toml_node **out, char *err,
                                size_t err_size, int *line, int *col) {
    if (line) *line = 0;
    if (col) *col = 0;
    if (err && err_size) err[0] = 0;
    if (!out) {
        set_err(err, err_size, "no output pointer");
        return -1;
    }
    *out = nullptr;
    try {
        return parse_impl(text, len, out, err, err_size, line, col);
    } catch (const std::bad_alloc &) {
        set_err(err, err_size, "out of memory while parsing TOML");
    } catch (const std::exception &e) {
        set_err(err, err_size, e.what());
    } catch (...) {
        set_err(err, err_size, "unexpected failure in the TOML parser");
    }
    return -1;
}

extern "C" void llmh__toml_free(llmh_toml_node *node) {
    if (!node) return;
    for (size_t i = 0; i < node->n; i++) llmh__toml_free(node->items[i]);
    std::free(node->items);
    std::free(node->key);
    std::free(node->str);
    std::free(node);
}

extern "C" const char *llmh__toml_type_name(llmh_toml_type t) {
    switch (t) {
    case LLMH_TOML_TABLE: return "table";
    case LLMH_TOML_ARRAY: return "array";
    case LLMH_TOML_STRING: return "string";
    case LLMH_TOML_INTEGER: return "integer";
    case LLMH_TOML_FLOAT: return "float";
    case LLMH_TOML_BOOLEAN: return "boolean";
    case LLMH_TOML_DATETIME: return "datetime";
    }
    return "unknown";
}
