/* cli-plugins.c — `llmhost plugins` (what discovery found and refused) and
 * `llmhost plugin check FILE` (validate one plugin and describe it). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"

static const char *kind_str(llmh_plugin_kind k) {
    switch (k) {
    case LLMH_PLUGIN_FORMAT: return "format";
    case LLMH_PLUGIN_TOKENIZER: return "tokenizer";
    case LLMH_PLUGIN_BACKEND: return "backend";
    case LLMH_PLUGIN_SAMPLER: return "sampler";
    case LLMH_PLUGIN_ROUTER: return "router";
    default: return "unknown";
    }
}

/* ======================================================================== */
/* llmhost plugins                                                           */
/* ======================================================================== */

static void plugins_usage(FILE *out) {
    fprintf(out,
            "usage: llmhost [--config M.toml] plugins [--json]\n"
            "\n"
            "List the plugins found in the search path ([plugins] paths of the manifest, then\n"
            "$LLMH_PLUGIN_PATH, then the install directory) and every file that was refused,\n"
            "with the reason.\n"
            "\n"
            "  --json   machine-readable output\n");
}

static int print_json(const llmh_registry *reg) {
    cJSON *root = cJSON_CreateObject();
    cJSON *host = cJSON_AddObjectToObject(root, "host");
    cJSON_AddStringToObject(host, "version", llmh_version());
    char abi[32];
    snprintf(abi, sizeof abi, "%d.%d", LLMH_ABI_MAJOR, LLMH_ABI_MINOR);
    cJSON_AddStringToObject(host, "abi", abi);
    cJSON *list = cJSON_AddArrayToObject(root, "plugins");
    for (size_t i = 0; i < llmh_registry_count(reg); i++) {
        const llmh_plugin_info *p = llmh_registry_info(reg, i);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "kind", kind_str(p->kind));
        cJSON_AddStringToObject(o, "name", p->name);
        cJSON_AddStringToObject(o, "version", p->version);
        snprintf(abi, sizeof abi, "%u.%u", p->abi_major, p->abi_minor);
        cJSON_AddStringToObject(o, "abi", abi);
        cJSON_AddStringToObject(o, "path", p->path);
        cJSON_AddStringToObject(o, "license", p->license);
        cJSON_AddStringToObject(o, "description", p->description);
        cJSON_AddNumberToObject(o, "score", p->score);
        if (p->provides) {
            cJSON *prov = cJSON_AddArrayToObject(o, "provides");
            for (size_t j = 0; p->provides[j]; j++)
                cJSON_AddItemToArray(prov, cJSON_CreateString(p->provides[j]));
        }
        cJSON_AddItemToArray(list, o);
    }
    cJSON *refused = cJSON_AddArrayToObject(root, "refused");
    for (size_t i = 0; i < llmh_registry_refused_count(reg); i++) {
        const llmh_plugin_refusal *r = llmh_registry_refused(reg, i);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", r->path);
        cJSON_AddStringToObject(o, "reason", r->reason);
        cJSON_AddItemToArray(refused, o);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) {
        fprintf(stderr, "llmhost: plugins: out of memory\n");
        return 1;
    }
    puts(text);
    cJSON_free(text);
    return 0;
}

static int max_int(int a, int b) { return a > b ? a : b; }

static void print_table(const llmh_registry *reg) {
    size_t n = llmh_registry_count(reg);
    int wk = 4, wn = 4, wv = 7, wp = 4;
    for (size_t i = 0; i < n; i++) {
        const llmh_plugin_info *p = llmh_registry_info(reg, i);
        wk = max_int(wk, (int)strlen(kind_str(p->kind)));
        wn = max_int(wn, (int)strlen(p->name));
        wv = max_int(wv, (int)strlen(p->version));
        wp = max_int(wp, (int)strlen(p->path));
    }
    if (n == 0) {
        printf("no plugins found (host ABI %d.%d). Set LLMH_PLUGIN_PATH or add [plugins] paths "
               "to the manifest.\n",
               LLMH_ABI_MAJOR, LLMH_ABI_MINOR);
    } else {
        printf("%-*s  %-*s  %-*s  %-5s  %-*s  %s\n", wk, "KIND", wn, "NAME", wv, "VERSION", "ABI",
               wp, "PATH", "DESCRIPTION");
        /* grouped by kind, in discovery order within a kind */
        for (int k = LLMH_PLUGIN_FORMAT; k <= LLMH_PLUGIN_ROUTER; k++) {
            for (size_t i = 0; i < n; i++) {
                const llmh_plugin_info *p = llmh_registry_info(reg, i);
                if ((int)p->kind != k) continue;
                char abi[16];
                snprintf(abi, sizeof abi, "%u.%u", p->abi_major, p->abi_minor);
                printf("%-*s  %-*s  %-*s  %-5s  %-*s  %s", wk, kind_str(p->kind), wn, p->name, wv,
                       p->version, abi, wp, p->path, p->description);
                if (p->provides) {
                    printf(" (provides:");
                    for (size_t j = 0; p->provides[j]; j++) printf(" %s", p->provides[j]);
                    printf(")");
                }
                printf("\n");
            }
        }
    }
    size_t nr = llmh_registry_refused_count(reg);
    if (nr) {
        printf("\nrefused:\n");
        for (size_t i = 0; i < nr; i++) {
            const llmh_plugin_refusal *r = llmh_registry_refused(reg, i);
            printf("  %s: %s\n", r->path, r->reason);
        }
    }
}

int llmh_cmd_plugins(int argc, char **argv) {
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            plugins_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "llmhost: plugins: unknown argument '%s'\n", argv[i]);
            plugins_usage(stderr);
            return 2;
        }
    }
    llmh_manifest *m = NULL;
    if (llmh_cli.config) {
        m = llmh_cli_load_manifest(NULL);
        if (!m) return 1;
    }
    llmh_registry *reg = llmh_cli_registry(m);
    if (!reg) {
        llmh_manifest_free(m);
        return 1;
    }
    int rc = 0;
    if (json)
        rc = print_json(reg);
    else
        print_table(reg);
    llmh_registry_free(reg);
    llmh_manifest_free(m);
    return rc;
}

/* ======================================================================== */
/* llmhost plugin check FILE                                                 */
/* ======================================================================== */

typedef struct slot {
    const char *name;
    size_t end;      /* offset just past the slot: present in an iface of struct_size >= end */
    int present;
    int required;
} slot;

#define S_(type, iface, field, req) \
    {#field, offsetof(type, field) + sizeof(((type *)0)->field), (iface)->field != NULL, (req)}

/* Fill `out` with the slots of the plugin's iface; returns the count. Only
 * reads a slot when the plugin's iface is large enough to hold it. */
static size_t iface_slots(const llmh_plugin_desc *d, slot *out, size_t cap, const char **type,
                          size_t *host_size) {
    size_t n = 0;
#define ADD(type_, field, req)                                                              \
    do {                                                                                    \
        slot s_ = S_(type_, ((const type_ *)d->iface), field, req);                         \
        if (n < cap) out[n++] = s_;                                                         \
    } while (0)
    switch (d->kind) {
    case LLMH_PLUGIN_FORMAT:
        *type = "llmh_format_iface";
        *host_size = sizeof(llmh_format_iface);
        ADD(llmh_format_iface, probe_file, 1);
        ADD(llmh_format_iface, open, 1);
        ADD(llmh_format_iface, close, 1);
        ADD(llmh_format_iface, get_metadata, 1);
        ADD(llmh_format_iface, get_tensors, 1);
        break;
    case LLMH_PLUGIN_TOKENIZER:
        *type = "llmh_tokenizer_iface";
        *host_size = sizeof(llmh_tokenizer_iface);
        ADD(llmh_tokenizer_iface, probe, 1);
        ADD(llmh_tokenizer_iface, create, 1);
        ADD(llmh_tokenizer_iface, destroy, 1);
        ADD(llmh_tokenizer_iface, n_vocab, 1);
        ADD(llmh_tokenizer_iface, encode, 1);
        ADD(llmh_tokenizer_iface, token_to_piece, 1);
        ADD(llmh_tokenizer_iface, token_text, 1);
        ADD(llmh_tokenizer_iface, token_type, 1);
        ADD(llmh_tokenizer_iface, special, 1);
        ADD(llmh_tokenizer_iface, add_bos_default, 1);
        ADD(llmh_tokenizer_iface, decode, 0);
        break;
    case LLMH_PLUGIN_BACKEND:
        *type = "llmh_backend_iface";
        *host_size = sizeof(llmh_backend_iface);
        ADD(llmh_backend_iface, device_count, 1);
        ADD(llmh_backend_iface, device_info, 1);
        ADD(llmh_backend_iface, create, 1);
        ADD(llmh_backend_iface, destroy, 1);
        ADD(llmh_backend_iface, supports, 1);
        ADD(llmh_backend_iface, buffer_alloc, 1);
        ADD(llmh_backend_iface, buffer_wrap_host, 0);
        ADD(llmh_backend_iface, buffer_free, 1);
        ADD(llmh_backend_iface, buffer_host_ptr, 0);
        ADD(llmh_backend_iface, buffer_write, 1);
        ADD(llmh_backend_iface, buffer_read, 1);
        ADD(llmh_backend_iface, weight_prepare, 0);
        ADD(llmh_backend_iface, weight_release, 0);
        ADD(llmh_backend_iface, graph_compute, 1);
        break;
    case LLMH_PLUGIN_SAMPLER:
        *type = "llmh_sampler_iface";
        *host_size = sizeof(llmh_sampler_iface);
        ADD(llmh_sampler_iface, names, 1);
        ADD(llmh_sampler_iface, param_keys, 1);
        ADD(llmh_sampler_iface, create, 1);
        ADD(llmh_sampler_iface, destroy, 1);
        ADD(llmh_sampler_iface, apply, 1);
        ADD(llmh_sampler_iface, accept, 0);
        ADD(llmh_sampler_iface, reset, 0);
        break;
    case LLMH_PLUGIN_ROUTER:
        *type = "llmh_router_iface";
        *host_size = sizeof(llmh_router_iface);
        ADD(llmh_router_iface, param_keys, 1);
        ADD(llmh_router_iface, create, 1);
        ADD(llmh_router_iface, destroy, 1);
        ADD(llmh_router_iface, route, 1);
        ADD(llmh_router_iface, route_tokens, 0);
        break;
    default:
        *type = "unknown";
        *host_size = 0;
        break;
    }
#undef ADD
    return n;
}

static void print_list(const char *label, const char *const *list) {
    printf("%-13s", label);
    if (!list || !list[0]) printf(" (none)");
    for (size_t i = 0; list && list[i]; i++) printf(" %s", list[i]);
    printf("\n");
}

/* The descriptor has already been validated by llmh_plugin_check; open it
 * again (without init) to show which iface slots it fills. */
static void print_slots(const char *path) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) return;
    void *sym = dlsym(h, LLMH_PLUGIN_SYMBOL);
    if (!sym) {
        dlclose(h);
        return;
    }
    llmh_plugin_describe_fn fn;
    memcpy(&fn, &sym, sizeof fn);
    const llmh_plugin_desc *d = fn();
    printf("%-13s probe %s, init %s, fini %s, get_proc %s\n", "hooks:", d->probe ? "yes" : "no",
           d->init ? "yes" : "no", d->fini ? "yes" : "no", d->get_proc ? "yes" : "no");
    if (d->kind == LLMH_PLUGIN_SAMPLER) {
        const llmh_sampler_iface *s = d->iface;
        print_list("param keys:", s->param_keys);
    } else if (d->kind == LLMH_PLUGIN_ROUTER) {
        const llmh_router_iface *r = d->iface;
        print_list("param keys:", r->param_keys);
    }
    uint32_t size;
    memcpy(&size, d->iface, sizeof size);
    slot slots[32];
    const char *type = "";
    size_t host_size = 0;
    size_t n = iface_slots(d, slots, sizeof slots / sizeof slots[0], &type, &host_size);
    printf("%-13s %s, struct_size %u (host %zu)\n", "iface:", type, size, host_size);
    for (size_t i = 0; i < n; i++) {
        const char *state = slots[i].end > size ? "not in this iface version"
                            : slots[i].present  ? "present"
                                                : "NULL";
        printf("  %-18s %-26s %s\n", slots[i].name, state, slots[i].required ? "required" : "optional");
    }
    dlclose(h);
}

static void plugin_usage(FILE *out) {
    fprintf(out,
            "usage: llmhost plugin check FILE\n"
            "\n"
            "Load FILE the way the registry does (dlopen, descriptor, ABI version, required\n"
            "slots, probe) and describe it. Exit status 0 when the plugin is usable, 1 with\n"
            "the reason when it would be refused.\n");
}

int llmh_cmd_plugin(int argc, char **argv) {
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        plugin_usage(stdout);
        return 0;
    }
    if (argc != 3 || strcmp(argv[1], "check") != 0) {
        plugin_usage(stderr);
        return 2;
    }
    const char *file = argv[2];
    llmh_plugin_info info;
    char buf[8192];
    llmh_status st = llmh_plugin_check(file, &info, buf, sizeof buf);
    if (st != LLMH_OK) {
        llmh_cli_error("plugin check", st);
        return 1;
    }
    printf("%-13s %s\n", "file:", info.path);
    printf("%-13s %s\n", "kind:", kind_str(info.kind));
    printf("%-13s %s\n", "name:", info.name);
    printf("%-13s %s\n", "version:", info.version);
    printf("%-13s %s\n", "license:", *info.license ? info.license : "(none)");
    printf("%-13s %s\n", "description:", *info.description ? info.description : "(none)");
    printf("%-13s %u.%u (host %d.%d)\n", "ABI:", info.abi_major, info.abi_minor, LLMH_ABI_MAJOR,
           LLMH_ABI_MINOR);
    printf("%-13s %d\n", "score:", (int)info.score);
    if (info.provides) print_list("provides:", info.provides);
    print_slots(info.path);
    printf("%-13s ok: usable by this host\n", "result:");
    return 0;
}
