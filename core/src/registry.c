/* registry.c — plugin discovery, validation, loading and reference counting.
 *
 * Data flow, top to bottom:
 *   1. search roots: paths added by the application, $LLMH_PLUGIN_PATH, then
 *      the install dir and the dirs next to the program / libllmh;
 *   2. candidates: libllmh-*.so files in a root (or the root itself if it is
 *      a file), deduplicated by real path;
 *   3. inspection: dlopen(RTLD_NOW|RTLD_LOCAL), dlsym(llmh_plugin_describe),
 *      validate the descriptor, call probe(), copy what we learned, dlclose;
 *   4. loading (llmh_registry_get): dlopen again, probe, init, and keep the
 *      plugin in a process-wide table so each file is initialized once no
 *      matter how many registries ask for it; the last release runs fini and
 *      dlclose.
 *
 * Locking: each registry has a mutex for its lists; the process-wide table of
 * loaded plugins has its own (g_lock). Order: registry lock, then g_lock.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#ifndef LLMH_PLUGIN_INSTALL_DIR
#define LLMH_PLUGIN_INSTALL_DIR "/usr/local/lib/llmhost/plugins"
#endif

/* Longest name / version / description we copy out of a plugin. */
#define NAME_MAX_LEN 64
#define TEXT_MAX_LEN 4096
#define MAX_SAMPLER_NAMES 256
#define REASON_LEN 1024

/* Size of each struct as released in ABI 1.0: the offset of its last 1.0
 * field plus that field's size. Later minors may only append, so a plugin
 * built against 1.0 reports at least these. */
#define END_OF(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))
#define DESC_V1_0_SIZE END_OF(llmh_plugin_desc, reserved)
#define FORMAT_V1_0_SIZE END_OF(llmh_format_iface, get_tensors)
#define TOKENIZER_V1_0_SIZE END_OF(llmh_tokenizer_iface, decode)
#define BACKEND_V1_0_SIZE END_OF(llmh_backend_iface, graph_compute)
#define SAMPLER_V1_0_SIZE END_OF(llmh_sampler_iface, reset)
#define ROUTER_V1_0_SIZE END_OF(llmh_router_iface, route_tokens)

/* ======================================================================== */
/* Small helpers                                                             */
/* ======================================================================== */

static const char *kind_name(llmh_plugin_kind k) {
    switch (k) {
    case LLMH_PLUGIN_FORMAT: return "format";
    case LLMH_PLUGIN_TOKENIZER: return "tokenizer";
    case LLMH_PLUGIN_BACKEND: return "backend";
    case LLMH_PLUGIN_SAMPLER: return "sampler";
    case LLMH_PLUGIN_ROUTER: return "router";
    default: return "unknown";
    }
}

static int kind_valid(int k) { return k >= LLMH_PLUGIN_FORMAT && k <= LLMH_PLUGIN_ROUTER; }

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

/* Copy at most TEXT_MAX_LEN bytes of a plugin-provided string. */
static char *dup_text(const char *s) {
    if (!s) return dup_str("");
    size_t n = strnlen(s, TEXT_MAX_LEN);
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* 1-NAME_MAX_LEN characters of [a-z0-9_-]. */
static int name_valid(const char *s) {
    if (!s) return 0;
    size_t n = strnlen(s, NAME_MAX_LEN + 1);
    if (n == 0 || n > NAME_MAX_LEN) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return 0;
    }
    return 1;
}

/* A name as it may safely appear in a message (plugin strings are foreign). */
static void quote_name(char *out, size_t cap, const char *s) {
    if (!s) {
        snprintf(out, cap, "(null)");
        return;
    }
    size_t o = 0;
    for (size_t i = 0; s[i] && i < NAME_MAX_LEN && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f) {
            out[o++] = (char)c;
        } else {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        }
    }
    out[o < cap ? o : cap - 1] = 0;
}

/* Growable array of pointers. */
typedef struct ptr_vec {
    void **items;
    size_t n, cap;
} ptr_vec;

static int vec_push(ptr_vec *v, void *p) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        void **items = realloc(v->items, cap * sizeof *items);
        if (!items) return 0;
        v->items = items;
        v->cap = cap;
    }
    v->items[v->n++] = p;
    return 1;
}

/* ======================================================================== */
/* Descriptor validation                                                     */
/* ======================================================================== */

/* Check that `n` required slots are present; names the first missing one. */
typedef struct slot_check {
    const char *name;
    int present;
} slot_check;

static int check_slots(const char *kind, const slot_check *slots, size_t n, char *why, size_t cap) {
    for (size_t i = 0; i < n; i++) {
        if (!slots[i].present) {
            snprintf(why, cap, "bad descriptor: %s iface slot '%s' is required but NULL", kind,
                     slots[i].name);
            return 0;
        }
    }
    return 1;
}

#define SLOT(iface, field) {#field, (iface)->field != NULL}

static int validate_iface(const llmh_plugin_desc *d, char *why, size_t cap) {
    const char *kn = kind_name(d->kind);
    uint32_t size;
    memcpy(&size, d->iface, sizeof size); /* every iface starts with struct_size */
    size_t need = 0;
    switch (d->kind) {
    case LLMH_PLUGIN_FORMAT: need = FORMAT_V1_0_SIZE; break;
    case LLMH_PLUGIN_TOKENIZER: need = TOKENIZER_V1_0_SIZE; break;
    case LLMH_PLUGIN_BACKEND: need = BACKEND_V1_0_SIZE; break;
    case LLMH_PLUGIN_SAMPLER: need = SAMPLER_V1_0_SIZE; break;
    case LLMH_PLUGIN_ROUTER: need = ROUTER_V1_0_SIZE; break;
    }
    if (size < need) {
        snprintf(why, cap,
                 "bad descriptor: %s iface struct_size %u is smaller than the ABI 1.0 size %zu",
                 kn, size, need);
        return 0;
    }
    switch (d->kind) {
    case LLMH_PLUGIN_FORMAT: {
        const llmh_format_iface *f = d->iface;
        slot_check s[] = {SLOT(f, probe_file), SLOT(f, open), SLOT(f, close),
                          SLOT(f, get_metadata), SLOT(f, get_tensors)};
        return check_slots(kn, s, sizeof s / sizeof s[0], why, cap);
    }
    case LLMH_PLUGIN_TOKENIZER: {
        const llmh_tokenizer_iface *t = d->iface;
        slot_check s[] = {SLOT(t, probe),      SLOT(t, create),         SLOT(t, destroy),
                          SLOT(t, n_vocab),    SLOT(t, encode),         SLOT(t, token_to_piece),
                          SLOT(t, token_text), SLOT(t, token_type),     SLOT(t, special),
                          SLOT(t, add_bos_default)};
        return check_slots(kn, s, sizeof s / sizeof s[0], why, cap);
    }
    case LLMH_PLUGIN_BACKEND: {
        const llmh_backend_iface *b = d->iface;
        slot_check s[] = {SLOT(b, device_count), SLOT(b, device_info),  SLOT(b, create),
                          SLOT(b, destroy),      SLOT(b, supports),     SLOT(b, buffer_alloc),
                          SLOT(b, buffer_free),  SLOT(b, buffer_write), SLOT(b, buffer_read),
                          SLOT(b, graph_compute)};
        return check_slots(kn, s, sizeof s / sizeof s[0], why, cap);
    }
    case LLMH_PLUGIN_SAMPLER: {
        const llmh_sampler_iface *sm = d->iface;
        slot_check s[] = {SLOT(sm, names), SLOT(sm, param_keys), SLOT(sm, create),
                          SLOT(sm, destroy), SLOT(sm, apply)};
        if (!check_slots(kn, s, sizeof s / sizeof s[0], why, cap)) return 0;
        size_t i = 0;
        for (; sm->names[i]; i++) {
            if (i >= MAX_SAMPLER_NAMES) {
                snprintf(why, cap, "bad descriptor: sampler names list has more than %d entries "
                         "(missing NULL terminator?)", MAX_SAMPLER_NAMES);
                return 0;
            }
            if (!name_valid(sm->names[i])) {
                char q[NAME_MAX_LEN * 4 + 8];
                quote_name(q, sizeof q, sm->names[i]);
                snprintf(why, cap, "bad descriptor: sampler name '%s' (names[%zu]) must be 1-%d "
                         "characters of [a-z0-9_-]", q, i, NAME_MAX_LEN);
                return 0;
            }
        }
        if (i == 0) {
            snprintf(why, cap, "bad descriptor: sampler names list is empty");
            return 0;
        }
        for (i = 0; sm->param_keys[i]; i++) {
            if (i >= MAX_SAMPLER_NAMES) {
                snprintf(why, cap, "bad descriptor: sampler param_keys list has more than %d "
                         "entries (missing NULL terminator?)", MAX_SAMPLER_NAMES);
                return 0;
            }
        }
        return 1;
    }
    case LLMH_PLUGIN_ROUTER: {
        const llmh_router_iface *r = d->iface;
        slot_check s[] = {SLOT(r, param_keys), SLOT(r, create), SLOT(r, destroy), SLOT(r, route)};
        return check_slots(kn, s, sizeof s / sizeof s[0], why, cap);
    }
    }
    return 1;
}

/* Validate a descriptor against this host. On failure writes the reason
 * (without the file name) to `why`. */
static int validate_desc(const llmh_plugin_desc *d, char *why, size_t cap) {
    if (!d) {
        snprintf(why, cap, "bad descriptor: llmh_plugin_describe returned NULL");
        return 0;
    }
    /* struct_size, abi_major and abi_minor are the first 8 bytes of every
     * descriptor version; read nothing else before the version check. */
    if (d->struct_size < 8) {
        snprintf(why, cap, "bad descriptor: struct_size %u is too small to hold a version",
                 d->struct_size);
        return 0;
    }
    if (d->abi_major != LLMH_ABI_MAJOR) {
        snprintf(why, cap,
                 "ABI mismatch: plugin major %u, host major %d (plugin built for %u.%u, host is "
                 "%d.%d)",
                 d->abi_major, LLMH_ABI_MAJOR, d->abi_major, d->abi_minor, LLMH_ABI_MAJOR,
                 LLMH_ABI_MINOR);
        return 0;
    }
    if (d->abi_minor > LLMH_ABI_MINOR) {
        snprintf(why, cap,
                 "ABI mismatch: plugin built for %u.%u, host is %d.%d (needs minor <= %d)",
                 d->abi_major, d->abi_minor, LLMH_ABI_MAJOR, LLMH_ABI_MINOR, LLMH_ABI_MINOR);
        return 0;
    }
    /* A plugin of minor <= ours cannot legitimately have a larger descriptor. */
    if (d->struct_size < DESC_V1_0_SIZE || d->struct_size > sizeof(llmh_plugin_desc)) {
        snprintf(why, cap,
                 "bad descriptor: struct_size %u is not a valid size for ABI %u.%u "
                 "(expected %zu..%zu)",
                 d->struct_size, d->abi_major, d->abi_minor, (size_t)DESC_V1_0_SIZE,
                 sizeof(llmh_plugin_desc));
        return 0;
    }
    if (!kind_valid((int)d->kind)) {
        snprintf(why, cap, "bad descriptor: kind %d is not a plugin kind (1 format, 2 tokenizer, "
                 "3 backend, 4 sampler, 5 router)", (int)d->kind);
        return 0;
    }
    if (!name_valid(d->name)) {
        char q[NAME_MAX_LEN * 4 + 8];
        quote_name(q, sizeof q, d->name);
        snprintf(why, cap, "bad descriptor: name '%s' must be 1-%d characters of [a-z0-9_-]", q,
                 NAME_MAX_LEN);
        return 0;
    }
    if (!d->version) {
        snprintf(why, cap, "bad descriptor: version is NULL");
        return 0;
    }
    for (size_t i = 0; i < sizeof d->reserved / sizeof d->reserved[0]; i++) {
        if (d->reserved[i]) {
            snprintf(why, cap, "bad descriptor: reserved[%zu] is not NULL", i);
            return 0;
        }
    }
    if (!d->iface) {
        snprintf(why, cap, "bad descriptor: iface is NULL (a %s plugin must point it at a "
                 "llmh_%s_iface)", kind_name(d->kind), kind_name(d->kind));
        return 0;
    }
    return validate_iface(d, why, cap);
}

/* ======================================================================== */
/* ELF pre-check: refuse what dlopen would turn into a crash                 */
/* ======================================================================== */

/* Sanitizer runtimes that must be loaded before anything else in the
 * process: dlopen'ing a plugin that needs one into a process without it
 * makes the runtime abort the whole process. */
static const struct {
    const char *prefix;
    const char *what;
} first_runtimes[] = {
    {"libasan.so", "AddressSanitizer"},
    {"libtsan.so", "ThreadSanitizer"},
    {"libhwasan.so", "HWAddressSanitizer"},
    {"liblsan.so", "LeakSanitizer"},
    {"libclang_rt.asan", "AddressSanitizer"},
    {"libclang_rt.tsan", "ThreadSanitizer"},
    {"libclang_rt.hwasan", "HWAddressSanitizer"},
    {"libclang_rt.msan", "MemorySanitizer"},
};

#if UINTPTR_MAX == 0xffffffffffffffffu
/* Check a 64-bit ELF image (`img`, `size` bytes, untrusted) for what would
 * make dlopen kill the process instead of failing: segments past the end of
 * a truncated file, and DT_NEEDED sanitizer runtimes this process lacks.
 * Returns 0 with `why` set to refuse; 1 when fine or when the file is not
 * something we can read (dlopen then reports it). Every offset is checked. */
static int elf_needed_ok(const uint8_t *img, size_t size, char *why, size_t cap) {
    Elf64_Ehdr eh;
    if (size < sizeof eh) return 1;
    memcpy(&eh, img, sizeof eh);
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64) return 1;

    /* The loader maps every PT_LOAD segment and touches it: a segment that
     * extends past the end of a truncated file raises SIGBUS inside dlopen. */
    if (eh.e_phentsize == sizeof(Elf64_Phdr) && eh.e_phnum > 0) {
        if (eh.e_phoff > size || (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > size - eh.e_phoff) {
            snprintf(why, cap, "cannot load: truncated file (program headers end past its %zu "
                     "bytes)", size);
            return 0;
        }
        for (uint32_t i = 0; i < eh.e_phnum; i++) {
            Elf64_Phdr ph;
            memcpy(&ph, img + eh.e_phoff + (uint64_t)i * sizeof ph, sizeof ph);
            if (ph.p_type != PT_LOAD && ph.p_type != PT_DYNAMIC) continue;
            if (ph.p_offset > size || ph.p_filesz > size - ph.p_offset) {
                snprintf(why, cap, "cannot load: truncated file (segment %u needs bytes up to "
                         "%llu, the file has %zu)", i,
                         (unsigned long long)ph.p_offset + (unsigned long long)ph.p_filesz, size);
                return 0;
            }
        }
    }

    if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0) return 1;
    if (eh.e_shoff > size || (uint64_t)eh.e_shnum * sizeof(Elf64_Shdr) > size - eh.e_shoff) return 1;
    for (uint32_t i = 0; i < eh.e_shnum; i++) {
        Elf64_Shdr sh;
        memcpy(&sh, img + eh.e_shoff + (uint64_t)i * sizeof sh, sizeof sh);
        if (sh.sh_type != SHT_DYNAMIC) continue;
        if (sh.sh_link >= eh.e_shnum) return 1;
        Elf64_Shdr str;
        memcpy(&str, img + eh.e_shoff + (uint64_t)sh.sh_link * sizeof str, sizeof str);
        if (sh.sh_offset > size || sh.sh_size > size - sh.sh_offset) return 1;
        if (str.sh_offset > size || str.sh_size > size - str.sh_offset) return 1;
        const char *strtab = (const char *)img + str.sh_offset;
        size_t n_dyn = sh.sh_size / sizeof(Elf64_Dyn);
        for (size_t j = 0; j < n_dyn; j++) {
            Elf64_Dyn dyn;
            memcpy(&dyn, img + sh.sh_offset + j * sizeof dyn, sizeof dyn);
            if (dyn.d_tag == DT_NULL) break;
            if (dyn.d_tag != DT_NEEDED || dyn.d_un.d_val >= str.sh_size) continue;
            const char *need = strtab + dyn.d_un.d_val;
            size_t max = str.sh_size - dyn.d_un.d_val;
            if (strnlen(need, max) == max) continue; /* unterminated: not ours to judge */
            for (size_t k = 0; k < sizeof first_runtimes / sizeof first_runtimes[0]; k++) {
                if (strncmp(need, first_runtimes[k].prefix, strlen(first_runtimes[k].prefix)) != 0)
                    continue;
                void *rt = dlopen(need, RTLD_LAZY | RTLD_NOLOAD);
                if (rt) { /* this process runs with that runtime: fine */
                    dlclose(rt);
                    continue;
                }
                snprintf(why, cap,
                         "cannot load: built with %s (needs %s) but this process was not; "
                         "rebuild the plugin without -fsanitize, or run an llmhost built with %s",
                         first_runtimes[k].what, need, first_runtimes[k].what);
                return 0;
            }
        }
        return 1;
    }
    return 1;
}
#endif

static int elf_precheck(const char *path, char *why, size_t cap) {
#if UINTPTR_MAX == 0xffffffffffffffffu
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 1; /* dlopen reports it */
    struct stat st;
    int ok = 1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
        (uint64_t)st.st_size <= SIZE_MAX) {
        void *img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (img != MAP_FAILED) {
            ok = elf_needed_ok(img, (size_t)st.st_size, why, cap);
            munmap(img, (size_t)st.st_size);
        }
    }
    close(fd);
    return ok;
#else
    (void)path;
    (void)why;
    (void)cap;
    return 1;
#endif
}

/* dlopen + dlsym + validate. On success *handle and *desc are set and the
 * caller owns the handle; on failure `why` says why and nothing is open. */
static int open_plugin(const char *path, void **handle, const llmh_plugin_desc **desc, char *why,
                       size_t cap) {
    *handle = NULL;
    *desc = NULL;
    if (!elf_precheck(path, why, cap)) return 0;
    dlerror(); /* clear */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(why, cap, "cannot load: %s", e ? e : "dlopen failed");
        return 0;
    }
    dlerror();
    void *sym = dlsym(h, LLMH_PLUGIN_SYMBOL);
    if (!sym) {
        snprintf(why, cap, "not a plugin (no %s symbol)", LLMH_PLUGIN_SYMBOL);
        dlclose(h);
        return 0;
    }
    llmh_plugin_describe_fn fn;
    memcpy(&fn, &sym, sizeof fn); /* object -> function pointer, as POSIX allows */
    const llmh_plugin_desc *d = fn();
    if (!validate_desc(d, why, cap)) {
        dlclose(h);
        return 0;
    }
    *handle = h;
    *desc = d;
    return 1;
}

/* Run the optional probe with `host`. Returns its score (1..100) or 0 with
 * `why` set to "probe returned 0: <the plugin's message>". */
static int32_t run_probe_with(const llmh_host_api *host, const llmh_plugin_desc *d, char *why,
                              size_t cap) {
    if (!d->probe) return 100;
    llmh_clear_error();
    int32_t score = d->probe(host);
    if (score <= 0) {
        const char *e = llmh_last_error();
        snprintf(why, cap, "probe returned 0: %s", (e && *e) ? e : "(the plugin gave no reason)");
        llmh_clear_error();
        return 0;
    }
    llmh_clear_error();
    return score > 100 ? 100 : score;
}

static int32_t run_probe(const llmh_plugin_desc *d, char *why, size_t cap) {
    return run_probe_with(llmh_host_api_get(), d, why, cap);
}

/* Discovery meets files nobody vouched for, and a corrupt shared object can
 * crash the dynamic loader itself (a bad relocation, a garbled version
 * table) or the descriptor (a wild pointer). Before loading a candidate in
 * this process, load and validate it in a short-lived child: if that child
 * dies, the file is refused and this process never maps it. Loading is
 * deterministic, so a file the child loaded cleanly loads cleanly here.
 * Returns 0 with `why` set to refuse; 1 to go on (also when fork is not
 * possible: then the in-process checks alone apply). */
#define PREFLIGHT_TIMEOUT_MS 10000

static void quiet_log(llmh_log_level level, const char *plugin, const char *fmt, ...) {
    (void)level;
    (void)plugin;
    (void)fmt;
}

/* What the child reports: it got through, and the probe's verdict. */
typedef struct preflight_report {
    char done;             /* 'k' */
    char loaded;           /* 1: the descriptor was valid and probed */
    int32_t probe_score;   /* 0 = refused by probe, then probe_why says why */
    char probe_why[REASON_LEN];
} preflight_report;

_Static_assert(sizeof(preflight_report) <= PIPE_BUF, "the report must be one atomic pipe write");

static int preflight(const char *path, char *why, size_t cap, int32_t *probe_score) {
    *probe_score = -1; /* -1: no verdict, the caller probes itself */
    int fds[2];
    /* Non-blocking: a grandchild the plugin forked may hold the write end. */
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return 1;
    /* A plugin that calls exit() in the child would flush a copy of the
     * caller's pending stdio output; flush it first so nothing doubles. */
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return 1;
    }
    if (pid == 0) {
        /* Child: the same load / validate / probe / unload cycle discovery
         * runs, then one byte to say it got through; never return into the
         * caller's code, never run its atexit handlers. */
        close(fds[0]);
        preflight_report rep;
        memset(&rep, 0, sizeof rep);
        void *h;
        const llmh_plugin_desc *d;
        if (open_plugin(path, &h, &d, rep.probe_why, sizeof rep.probe_why)) {
            volatile size_t sink = strnlen(d->version, TEXT_MAX_LEN); /* strings we copy */
            if (d->license) sink += strnlen(d->license, TEXT_MAX_LEN);
            if (d->description) sink += strnlen(d->description, TEXT_MAX_LEN);
            (void)sink;
            /* Same host API, but silent: the log lock may have been held
             * at fork, and the parent reports the outcome anyway. */
            llmh_host_api quiet = *llmh_host_api_get();
            quiet.log = quiet_log;
            rep.probe_why[0] = 0;
            rep.probe_score = run_probe_with(&quiet, d, rep.probe_why, sizeof rep.probe_why);
            rep.loaded = 1;
            dlclose(h);
        }
        rep.done = 'k';
        ssize_t w = write(fds[1], &rep, sizeof rep);
        _exit(w == (ssize_t)sizeof rep ? 0 : 1);
    }
    close(fds[1]);
    int status = 0, reaped = 1;
    long waited_us = 0, step_us = 200;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0) {
            if (errno == EINTR) continue;
            reaped = 0; /* reaped elsewhere (SIGCHLD ignored or handled): the pipe decides */
            break;
        }
        if (waited_us >= (long)PREFLIGHT_TIMEOUT_MS * 1000) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
            close(fds[0]);
            snprintf(why, cap, "cannot load: loading it did not finish within %d s",
                     PREFLIGHT_TIMEOUT_MS / 1000);
            return 0;
        }
        struct timespec ts = {0, step_us * 1000};
        nanosleep(&ts, NULL);
        waited_us += step_us;
        if (step_us < 20000) step_us *= 2;
    }
    preflight_report rep;
    ssize_t n;
    do {
        n = read(fds[0], &rep, sizeof rep); /* the child is gone: its report is there or never comes */
    } while (n < 0 && errno == EINTR);
    close(fds[0]);
    if (n == (ssize_t)sizeof rep && rep.done == 'k') {
        if (rep.loaded) {
            *probe_score = rep.probe_score;
            if (rep.probe_score == 0) {
                rep.probe_why[sizeof rep.probe_why - 1] = 0;
                snprintf(why, cap, "%s", rep.probe_why);
            }
        }
        return 1;
    }
    if (!reaped) {
        snprintf(why, cap, "cannot load: loading it did not complete (the check process ended "
                 "without reporting success)");
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        snprintf(why, cap, "cannot load: loading it crashed (signal %d, %s); the file is corrupt "
                 "or its initialization is broken", sig, strsignal(sig));
    } else {
        snprintf(why, cap, "cannot load: loading it ended the process (exit status %d)",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    return 0;
}

/* ======================================================================== */
/* Registry data                                                             */
/* ======================================================================== */

typedef struct reg_entry {
    llmh_plugin_info info; /* every string malloc'd */
    char **provides;       /* samplers: NULL-terminated copy of names */
} reg_entry;

typedef struct reg_refusal {
    llmh_plugin_refusal pub; /* path and reason malloc'd */
    llmh_plugin_kind kind;   /* 0 when the descriptor could not be read */
    char *name;              /* NULL when unknown */
} reg_refusal;

struct llmh_registry {
    pthread_mutex_t lock;
    ptr_vec added;    /* char*: paths from llmh_registry_add_path */
    ptr_vec entries;  /* reg_entry* in discovery order */
    ptr_vec refused;  /* reg_refusal* */
    ptr_vec seen;     /* char*: real paths already inspected in this scan */
    ptr_vec searched; /* char*: roots searched (for messages) */
    int scanned;      /* 1 after a scan that no add_path has invalidated */
};

static void entry_free(reg_entry *e) {
    if (!e) return;
    free((char *)e->info.path);
    free((char *)e->info.name);
    free((char *)e->info.version);
    free((char *)e->info.license);
    free((char *)e->info.description);
    if (e->provides)
        for (size_t i = 0; e->provides[i]; i++) free(e->provides[i]);
    free(e->provides);
    free(e);
}

static void refusal_free(reg_refusal *r) {
    if (!r) return;
    free((char *)r->pub.path);
    free((char *)r->pub.reason);
    free(r->name);
    free(r);
}

static void free_strings(ptr_vec *v) {
    for (size_t i = 0; i < v->n; i++) free(v->items[i]);
    v->n = 0;
}

static void clear_scan(llmh_registry *reg) {
    for (size_t i = 0; i < reg->entries.n; i++) entry_free(reg->entries.items[i]);
    reg->entries.n = 0;
    for (size_t i = 0; i < reg->refused.n; i++) refusal_free(reg->refused.items[i]);
    reg->refused.n = 0;
    free_strings(&reg->seen);
    free_strings(&reg->searched);
    reg->scanned = 0;
}

static llmh_status add_refusal(llmh_registry *reg, const char *path, const char *reason,
                               llmh_plugin_kind kind, const char *name) {
    reg_refusal *r = calloc(1, sizeof *r);
    if (!r) return LLMH_ERR_NO_MEMORY;
    r->pub.path = dup_str(path);
    r->pub.reason = dup_str(reason);
    r->kind = kind;
    r->name = name ? dup_text(name) : NULL;
    if (!r->pub.path || !r->pub.reason || (name && !r->name) || !vec_push(&reg->refused, r)) {
        refusal_free(r);
        return LLMH_ERR_NO_MEMORY;
    }
    llmh_log(LLMH_LOG_DEBUG, "registry", "refused %s: %s", path, reason);
    return LLMH_OK;
}

/* Fill an entry from a validated descriptor. */
static reg_entry *entry_from_desc(const char *path, const llmh_plugin_desc *d) {
    reg_entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->info.path = dup_str(path);
    e->info.kind = d->kind;
    e->info.name = dup_text(d->name);
    e->info.version = dup_text(d->version);
    e->info.license = dup_text(d->license);
    e->info.description = dup_text(d->description);
    e->info.abi_major = d->abi_major;
    e->info.abi_minor = d->abi_minor;
    e->info.score = d->score;
    int ok = e->info.path && e->info.name && e->info.version && e->info.license &&
             e->info.description;
    if (ok && d->kind == LLMH_PLUGIN_SAMPLER) {
        const llmh_sampler_iface *s = d->iface;
        size_t n = 0;
        while (s->names[n]) n++;
        e->provides = calloc(n + 1, sizeof *e->provides);
        if (!e->provides) ok = 0;
        for (size_t i = 0; ok && i < n; i++)
            if (!(e->provides[i] = dup_text(s->names[i]))) ok = 0;
        e->info.provides = (const char *const *)e->provides;
    }
    if (!ok) {
        entry_free(e);
        return NULL;
    }
    return e;
}

/* ======================================================================== */
/* Discovery                                                                 */
/* ======================================================================== */

static int is_candidate_name(const char *name) {
    size_t n = strlen(name);
    return n > strlen("libllmh-") + 3 && strncmp(name, "libllmh-", 8) == 0 &&
           strcmp(name + n - 3, ".so") == 0;
}

static const reg_entry *find_entry_by_name(const llmh_registry *reg, llmh_plugin_kind kind,
                                           const char *name) {
    for (size_t i = 0; i < reg->entries.n; i++) {
        const reg_entry *e = reg->entries.items[i];
        if (e->info.kind == kind && strcmp(e->info.name, name) == 0) return e;
    }
    return NULL;
}

/* A sampler name provided by two plugins resolves to the first one found;
 * say so, since the second plugin's version of it is unreachable. `e` is
 * the entry just appended. */
static void warn_sampler_overlap(const llmh_registry *reg, const reg_entry *e) {
    if (e->info.kind != LLMH_PLUGIN_SAMPLER || !e->provides) return;
    for (size_t j = 0; e->provides[j]; j++) {
        for (size_t i = 0; i + 1 < reg->entries.n; i++) {
            const reg_entry *o = reg->entries.items[i];
            if (o->info.kind != LLMH_PLUGIN_SAMPLER || !o->provides) continue;
            for (size_t k = 0; o->provides[k]; k++) {
                if (strcmp(o->provides[k], e->provides[j]) == 0) {
                    llmh_log(LLMH_LOG_WARN, "registry",
                             "sampler '%s' is provided by both '%s' (%s) and '%s' (%s); "
                             "the chain uses '%s'",
                             e->provides[j], o->info.name, o->info.path, e->info.name,
                             e->info.path, o->info.name);
                }
            }
        }
    }
}

/* Inspect one candidate file (already known to exist). */
static llmh_status inspect_file(llmh_registry *reg, const char *path) {
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        char why[REASON_LEN];
        snprintf(why, sizeof why, "cannot read: %s", strerror(errno));
        return add_refusal(reg, path, why, 0, NULL);
    }
    for (size_t i = 0; i < reg->seen.n; i++)
        if (strcmp(reg->seen.items[i], real) == 0) return LLMH_OK; /* same file again */
    char *copy = dup_str(real);
    if (!copy || !vec_push(&reg->seen, copy)) {
        free(copy);
        return LLMH_ERR_NO_MEMORY;
    }

    char why[REASON_LEN];
    void *h;
    const llmh_plugin_desc *d;
    int32_t probed = -1;
    char probe_why[REASON_LEN] = "";
    if (!preflight(real, why, sizeof why, &probed) || !open_plugin(real, &h, &d, why, sizeof why))
        return add_refusal(reg, real, why, 0, NULL);
    if (probed == 0) snprintf(probe_why, sizeof probe_why, "%s", why);
    /* The child probed it already; probe here only when it could not. */
    if (probed < 0) probed = run_probe(d, probe_why, sizeof probe_why);

    llmh_status st = LLMH_OK;
    const reg_entry *first = find_entry_by_name(reg, d->kind, d->name);
    if (first) {
        snprintf(why, sizeof why, "duplicate name '%s' for kind %s (first: %s)", first->info.name,
                 kind_name(d->kind), first->info.path);
        st = add_refusal(reg, real, why, d->kind, d->name);
    } else if (probed == 0) {
        snprintf(why, sizeof why, "%s", probe_why);
        st = add_refusal(reg, real, why, d->kind, d->name);
    } else {
        reg_entry *e = entry_from_desc(real, d);
        if (!e || !vec_push(&reg->entries, e)) {
            entry_free(e);
            st = LLMH_ERR_NO_MEMORY;
        } else {
            warn_sampler_overlap(reg, e);
            llmh_log(LLMH_LOG_DEBUG, "registry", "found %s plugin '%s' %s in %s",
                     kind_name(e->info.kind), e->info.name, e->info.version, real);
        }
    }
    dlclose(h);
    return st;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Search one root: a directory (its libllmh-*.so files, sorted) or a file.
 * `explicit_root`: a missing root is reported as a refusal (the user named
 * it), else silently skipped (default dirs that do not exist). */
static llmh_status scan_root(llmh_registry *reg, const char *root, int explicit_root) {
    struct stat st;
    if (stat(root, &st) != 0) {
        if (!explicit_root) return LLMH_OK;
        char why[REASON_LEN];
        snprintf(why, sizeof why, "search path not found: %s", strerror(errno));
        return add_refusal(reg, root, why, 0, NULL);
    }
    char real[PATH_MAX];
    if (!realpath(root, real)) return LLMH_OK;
    for (size_t i = 0; i < reg->searched.n; i++)
        if (strcmp(reg->searched.items[i], real) == 0) return LLMH_OK; /* searched already */
    char *copy = dup_str(real);
    if (!copy || !vec_push(&reg->searched, copy)) {
        free(copy);
        return LLMH_ERR_NO_MEMORY;
    }

    if (!S_ISDIR(st.st_mode)) {
        if (!S_ISREG(st.st_mode)) {
            return add_refusal(reg, real, "cannot load: not a regular file", 0, NULL);
        }
        return inspect_file(reg, real);
    }

    DIR *dir = opendir(real);
    if (!dir) {
        if (!explicit_root) return LLMH_OK;
        char why[REASON_LEN];
        snprintf(why, sizeof why, "cannot read directory: %s", strerror(errno));
        return add_refusal(reg, real, why, 0, NULL);
    }
    ptr_vec names = {0};
    llmh_status status = LLMH_OK;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (!is_candidate_name(de->d_name)) continue;
        char *n = dup_str(de->d_name);
        if (!n || !vec_push(&names, n)) {
            free(n);
            status = LLMH_ERR_NO_MEMORY;
            break;
        }
    }
    closedir(dir);
    if (names.n > 1) qsort(names.items, names.n, sizeof names.items[0], cmp_str);
    for (size_t i = 0; status == LLMH_OK && i < names.n; i++) {
        char path[PATH_MAX];
        int len = snprintf(path, sizeof path, "%s/%s", real, (const char *)names.items[i]);
        if (len < 0 || (size_t)len >= sizeof path) continue;
        struct stat fst;
        if (stat(path, &fst) != 0 || !S_ISREG(fst.st_mode)) continue;
        status = inspect_file(reg, path);
    }
    free_strings(&names);
    free(names.items);
    return status;
}

/* The directory holding `path` (a file), into out. */
static int parent_dir(const char *path, char *out, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash) return 0;
    size_t n = (size_t)(slash - path);
    if (n == 0) n = 1; /* "/" */
    if (n >= cap) return 0;
    memcpy(out, path, n);
    out[n] = 0;
    return 1;
}

static llmh_status scan_default_dirs(llmh_registry *reg) {
    llmh_status st = scan_root(reg, LLMH_PLUGIN_INSTALL_DIR, 0);
    if (st != LLMH_OK) return st;

    /* Next to libllmh: <libdir>/llmhost/plugins, whatever libdir is (lib,
     * lib64, lib/<multiarch>), in the build tree and when installed. */
    Dl_info di;
    char dir[PATH_MAX], path[PATH_MAX + 32];
    if (dladdr((void *)llmh_registry_create, &di) && di.dli_fname &&
        parent_dir(di.dli_fname, dir, sizeof dir)) {
        snprintf(path, sizeof path, "%s/llmhost/plugins", dir);
        if ((st = scan_root(reg, path, 0)) != LLMH_OK) return st;
    }

    /* Relative to the program: <exe>/../lib{,64,/<multiarch>}/llmhost/plugins. */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        if (parent_dir(exe, dir, sizeof dir)) {
            static const char *const libdirs[] = {
                "lib", "lib64",
#if defined(__x86_64__) && defined(__linux__)
                "lib/x86_64-linux-gnu",
#elif defined(__aarch64__) && defined(__linux__)
                "lib/aarch64-linux-gnu",
#elif defined(__i386__) && defined(__linux__)
                "lib/i386-linux-gnu",
#endif
            };
            for (size_t i = 0; i < sizeof libdirs / sizeof libdirs[0]; i++) {
                snprintf(path, sizeof path, "%s/../%s/llmhost/plugins", dir, libdirs[i]);
                if ((st = scan_root(reg, path, 0)) != LLMH_OK) return st;
            }
        }
    }
    return LLMH_OK;
}

static llmh_status scan_locked(llmh_registry *reg) {
    if (reg->scanned) return LLMH_OK;
    clear_scan(reg);
    llmh_status st = LLMH_OK;
    for (size_t i = 0; st == LLMH_OK && i < reg->added.n; i++)
        st = scan_root(reg, reg->added.items[i], 1);

    const char *env = getenv("LLMH_PLUGIN_PATH");
    if (st == LLMH_OK && env && *env) {
        char *copy = dup_str(env);
        if (!copy) return llmh__fail(LLMH_ERR_NO_MEMORY, "plugin discovery: out of memory");
        char *save = NULL;
        for (char *p = strtok_r(copy, ":", &save); st == LLMH_OK && p;
             p = strtok_r(NULL, ":", &save))
            st = scan_root(reg, p, 1);
        free(copy);
    }
    if (st == LLMH_OK) st = scan_default_dirs(reg);
    if (st != LLMH_OK) {
        clear_scan(reg);
        return llmh__fail(st, "plugin discovery failed: %s", llmh_status_str(st));
    }
    reg->scanned = 1;
    llmh_log(LLMH_LOG_DEBUG, "registry", "discovery: %zu plugins, %zu refused", reg->entries.n,
             reg->refused.n);
    return LLMH_OK;
}

/* ======================================================================== */
/* Public registry API                                                       */
/* ======================================================================== */

llmh_status llmh_registry_create(llmh_registry **out) {
    if (!out) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_registry_create: out is NULL");
    *out = NULL;
    llmh_registry *reg = calloc(1, sizeof *reg);
    if (!reg) return llmh__fail(LLMH_ERR_NO_MEMORY, "llmh_registry_create: out of memory");
    if (pthread_mutex_init(&reg->lock, NULL) != 0) {
        free(reg);
        return llmh__fail(LLMH_ERR_INTERNAL, "llmh_registry_create: cannot create a mutex");
    }
    *out = reg;
    return LLMH_OK;
}

void llmh_registry_free(llmh_registry *reg) {
    if (!reg) return;
    clear_scan(reg);
    free_strings(&reg->added);
    free(reg->added.items);
    free(reg->entries.items);
    free(reg->refused.items);
    free(reg->seen.items);
    free(reg->searched.items);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

llmh_status llmh_registry_add_path(llmh_registry *reg, const char *path) {
    if (!reg || !path || !*path)
        return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_registry_add_path: empty path");
    char *copy = dup_str(path);
    if (!copy) return llmh__fail(LLMH_ERR_NO_MEMORY, "llmh_registry_add_path: out of memory");
    pthread_mutex_lock(&reg->lock);
    int ok = vec_push(&reg->added, copy);
    if (ok) reg->scanned = 0; /* the next scan must see the new path */
    pthread_mutex_unlock(&reg->lock);
    if (!ok) {
        free(copy);
        return llmh__fail(LLMH_ERR_NO_MEMORY, "llmh_registry_add_path: out of memory");
    }
    return LLMH_OK;
}

llmh_status llmh_registry_scan(llmh_registry *reg) {
    if (!reg) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_registry_scan: registry is NULL");
    pthread_mutex_lock(&reg->lock);
    llmh_status st = scan_locked(reg);
    pthread_mutex_unlock(&reg->lock);
    return st;
}

size_t llmh_registry_count(const llmh_registry *reg) {
    if (!reg) return 0;
    llmh_registry *r = (llmh_registry *)reg;
    pthread_mutex_lock(&r->lock);
    size_t n = r->entries.n;
    pthread_mutex_unlock(&r->lock);
    return n;
}

const llmh_plugin_info *llmh_registry_info(const llmh_registry *reg, size_t i) {
    if (!reg) return NULL;
    llmh_registry *r = (llmh_registry *)reg;
    pthread_mutex_lock(&r->lock);
    const llmh_plugin_info *info = i < r->entries.n ? &((reg_entry *)r->entries.items[i])->info : NULL;
    pthread_mutex_unlock(&r->lock);
    return info;
}

size_t llmh_registry_refused_count(const llmh_registry *reg) {
    if (!reg) return 0;
    llmh_registry *r = (llmh_registry *)reg;
    pthread_mutex_lock(&r->lock);
    size_t n = r->refused.n;
    pthread_mutex_unlock(&r->lock);
    return n;
}

const llmh_plugin_refusal *llmh_registry_refused(const llmh_registry *reg, size_t i) {
    if (!reg) return NULL;
    llmh_registry *r = (llmh_registry *)reg;
    pthread_mutex_lock(&r->lock);
    const llmh_plugin_refusal *ref =
        i < r->refused.n ? &((reg_refusal *)r->refused.items[i])->pub : NULL;
    pthread_mutex_unlock(&r->lock);
    return ref;
}

/* ======================================================================== */
/* Loaded plugins (process-wide, shared by every registry)                   */
/* ======================================================================== */

struct llmh_plugin {
    llmh_plugin *next;
    char *path; /* real path */
    void *handle;
    const llmh_plugin_desc *desc;
    void *state;
    size_t refs;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static llmh_plugin *g_loaded;
static size_t g_n_loaded;

/* Load (or reference again) the plugin in file `path`, which discovery saw
 * as `kind`/`name`. Caller holds no g_lock. */
static llmh_status load_plugin(const char *path, llmh_plugin_kind kind, const char *name,
                               llmh_plugin **out) {
    *out = NULL;
    pthread_mutex_lock(&g_lock);
    for (llmh_plugin *p = g_loaded; p; p = p->next) {
        if (strcmp(p->path, path) == 0) {
            p->refs++;
            *out = p;
            pthread_mutex_unlock(&g_lock);
            return LLMH_OK;
        }
    }

    llmh_status st = LLMH_OK;
    char why[REASON_LEN];
    void *h = NULL;
    const llmh_plugin_desc *d = NULL;
    llmh_plugin *p = NULL;
    if (!open_plugin(path, &h, &d, why, sizeof why)) {
        st = llmh__fail(LLMH_ERR_ABI, "%s: %s", path, why);
        goto fail;
    }
    if (d->kind != kind || strcmp(d->name, name) != 0) {
        char q[NAME_MAX_LEN * 4 + 8];
        quote_name(q, sizeof q, d->name);
        st = llmh__fail(LLMH_ERR_ABI, "%s: changed since discovery: now %s plugin '%s', was %s '%s'",
                        path, kind_name(d->kind), q, kind_name(kind), name);
        goto fail;
    }
    if (run_probe(d, why, sizeof why) == 0) {
        st = llmh__fail(LLMH_ERR_UNSUPPORTED, "%s: %s", path, why);
        goto fail;
    }
    p = calloc(1, sizeof *p);
    if (!p || !(p->path = dup_str(path))) {
        st = llmh__fail(LLMH_ERR_NO_MEMORY, "%s: out of memory loading the plugin", path);
        goto fail;
    }
    p->handle = h;
    p->desc = d;
    p->refs = 1;
    if (d->init) {
        llmh_clear_error();
        st = d->init(llmh_host_api_get(), &p->state);
        if (st != LLMH_OK) {
            const char *e = llmh_last_error();
            char msg[REASON_LEN];
            snprintf(msg, sizeof msg, "%s", (e && *e) ? e : llmh_status_str(st));
            if (st >= 0) st = LLMH_ERR_INTERNAL; /* a positive "error" is still an error */
            llmh__fail(st, "%s: init of %s plugin '%s' failed: %s", path, kind_name(kind), name,
                       msg);
            goto fail;
        }
    }
    p->next = g_loaded;
    g_loaded = p;
    g_n_loaded++;
    pthread_mutex_unlock(&g_lock);
    llmh_log(LLMH_LOG_DEBUG, "registry", "loaded %s plugin '%s' from %s", kind_name(kind), name,
             path);
    *out = p;
    return LLMH_OK;

fail:
    if (p) free(p->path);
    free(p);
    if (h) dlclose(h);
    pthread_mutex_unlock(&g_lock);
    return st;
}

void llmh_plugin_retain(llmh_plugin *p) {
    if (!p) return;
    pthread_mutex_lock(&g_lock);
    p->refs++;
    pthread_mutex_unlock(&g_lock);
}

void llmh_plugin_release(llmh_plugin *p) {
    if (!p) return;
    pthread_mutex_lock(&g_lock);
    if (p->refs == 0 || --p->refs > 0) {
        pthread_mutex_unlock(&g_lock);
        return;
    }
    for (llmh_plugin **pp = &g_loaded; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    g_n_loaded--;
    /* fini and dlclose under the lock, so a concurrent get of the same file
     * never initializes it while it is being torn down. */
    if (p->desc->fini) p->desc->fini(p->state);
    dlclose(p->handle);
    pthread_mutex_unlock(&g_lock);
    llmh_log(LLMH_LOG_DEBUG, "registry", "unloaded %s", p->path);
    free(p->path);
    free(p);
}

const llmh_plugin_desc *llmh_plugin_descriptor(const llmh_plugin *p) { return p ? p->desc : NULL; }
const void *llmh_plugin_iface(const llmh_plugin *p) { return p ? p->desc->iface : NULL; }
void *llmh_plugin_state(const llmh_plugin *p) { return p ? p->state : NULL; }
const char *llmh_plugin_path(const llmh_plugin *p) { return p ? p->path : NULL; }

size_t llmh_plugins_loaded(void) {
    pthread_mutex_lock(&g_lock);
    size_t n = g_n_loaded;
    pthread_mutex_unlock(&g_lock);
    return n;
}

/* ======================================================================== */
/* Lookup                                                                    */
/* ======================================================================== */

/* Append `s` to buf at *o, keeping it NUL-terminated. */
static void append(char *buf, size_t cap, size_t *o, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static void append(char *buf, size_t cap, size_t *o, const char *fmt, ...) {
    if (*o >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *o, cap - *o, fmt, ap);
    va_end(ap);
    if (n > 0) *o = (*o + (size_t)n < cap) ? *o + (size_t)n : cap - 1;
}

/* "cpu, onednn" or "none" — the names of every usable plugin of a kind. */
static void list_names(const llmh_registry *reg, llmh_plugin_kind kind, char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < reg->entries.n; i++) {
        const reg_entry *e = reg->entries.items[i];
        if (e->info.kind != kind) continue;
        append(buf, cap, &o, "%s%s", o ? ", " : "", e->info.name);
        if (kind == LLMH_PLUGIN_SAMPLER && e->provides) {
            append(buf, cap, &o, " [");
            for (size_t j = 0; e->provides[j]; j++)
                append(buf, cap, &o, "%s%s", j ? " " : "", e->provides[j]);
            append(buf, cap, &o, "]");
        }
    }
    if (!o) snprintf(buf, cap, "none");
}

static void list_searched(const llmh_registry *reg, char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < reg->searched.n; i++)
        append(buf, cap, &o, "%s%s", o ? ", " : "", (const char *)reg->searched.items[i]);
    if (!o) snprintf(buf, cap, "no plugin directory exists");
}

static const reg_entry *find_entry(const llmh_registry *reg, llmh_plugin_kind kind,
                                   const char *name) {
    const reg_entry *e = find_entry_by_name(reg, kind, name);
    if (e || kind != LLMH_PLUGIN_SAMPLER) return e;
    for (size_t i = 0; i < reg->entries.n; i++) {
        e = reg->entries.items[i];
        if (e->info.kind != kind || !e->provides) continue;
        for (size_t j = 0; e->provides[j]; j++)
            if (strcmp(e->provides[j], name) == 0) return e;
    }
    return NULL;
}

static llmh_status not_found(const llmh_registry *reg, llmh_plugin_kind kind, const char *name) {
    /* A refused file that declared this name, or (when its descriptor could
     * not be read) whose file name says it is this plugin. */
    char file[NAME_MAX_LEN * 2 + 32];
    snprintf(file, sizeof file, "libllmh-%s-%s.so", kind_name(kind), name);
    for (size_t i = 0; i < reg->refused.n; i++) {
        const reg_refusal *r = reg->refused.items[i];
        const char *base = strrchr(r->pub.path, '/');
        base = base ? base + 1 : r->pub.path;
        if ((r->kind == kind && r->name && strcmp(r->name, name) == 0) ||
            (!r->name && strcmp(base, file) == 0))
            return llmh__fail(LLMH_ERR_NOT_FOUND, "%s plugin '%s' is not usable: %s: %s",
                              kind_name(kind), name, r->pub.path, r->pub.reason);
    }
    char names[1024], dirs[1024];
    list_names(reg, kind, names, sizeof names);
    list_searched(reg, dirs, sizeof dirs);
    return llmh__fail(LLMH_ERR_NOT_FOUND, "no %s plugin %s '%s' (available: %s; searched: %s)",
                      kind_name(kind), kind == LLMH_PLUGIN_SAMPLER ? "provides" : "named", name,
                      names, dirs);
}

llmh_status llmh_registry_get(llmh_registry *reg, llmh_plugin_kind kind, const char *name,
                              llmh_plugin **out) {
    if (out) *out = NULL;
    if (!reg || !name || !out)
        return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_registry_get: NULL argument");
    if (!kind_valid((int)kind))
        return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_registry_get: %d is not a plugin kind",
                          (int)kind);
    pthread_mutex_lock(&reg->lock);
    llmh_status st = scan_locked(reg);
    if (st == LLMH_OK) {
        const reg_entry *e = find_entry(reg, kind, name);
        if (!e)
            st = not_found(reg, kind, name);
        else
            st = load_plugin(e->info.path, e->info.kind, e->info.name, out);
    }
    pthread_mutex_unlock(&reg->lock);
    return st;
}

/* Best plugin of `kind` by a per-plugin probe. `probe` returns 0..100 for a
 * loaded plugin; ties go to the descriptor's score, then discovery order. */
typedef int32_t (*probe_cb)(const llmh_plugin *p, const void *ctx);

static llmh_status get_best(llmh_registry *reg, llmh_plugin_kind kind, probe_cb probe,
                            const void *ctx, llmh_plugin **out, char *tried, size_t tried_cap,
                            char *failed, size_t failed_cap) {
    llmh_plugin *best = NULL;
    int32_t best_score = 0;
    size_t to = 0, fo = 0;
    tried[0] = failed[0] = 0;
    for (size_t i = 0; i < reg->entries.n; i++) {
        const reg_entry *e = reg->entries.items[i];
        if (e->info.kind != kind) continue;
        llmh_plugin *p = NULL;
        if (load_plugin(e->info.path, e->info.kind, e->info.name, &p) != LLMH_OK) {
            append(failed, failed_cap, &fo, "%s%s", fo ? "; " : "", llmh_last_error());
            continue;
        }
        int32_t s = probe(p, ctx);
        append(tried, tried_cap, &to, "%s%s=%d", to ? ", " : "", e->info.name, (int)s);
        if (s > 0 && (!best || s > best_score ||
                      (s == best_score && p->desc->score > best->desc->score))) {
            llmh_plugin_release(best);
            best = p;
            best_score = s;
        } else {
            llmh_plugin_release(p);
        }
    }
    if (!to) snprintf(tried, tried_cap, "no %s plugins found", kind_name(kind));
    *out = best;
    return best ? LLMH_OK : LLMH_ERR_NOT_FOUND;
}

typedef struct format_ctx {
    const char *path;
    const uint8_t *head;
    size_t head_len;
} format_ctx;

static int32_t probe_format(const llmh_plugin *p, const void *ctx) {
    const format_ctx *c = ctx;
    const llmh_format_iface *f = p->desc->iface;
    return f->probe_file(p->state, c->path, c->head, c->head_len);
}

llmh_status llmh_registry_get_format_for(llmh_registry *reg, const char *path, llmh_plugin **out) {
    if (out) *out = NULL;
    if (!reg || !path || !out)
        return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_registry_get_format_for: NULL argument");
    struct stat st;
    if (stat(path, &st) != 0)
        return llmh__fail(errno == ENOENT ? LLMH_ERR_NOT_FOUND : LLMH_ERR_IO, "%s: %s", path,
                          strerror(errno));
    uint8_t head[64];
    size_t head_len = 0;
    if (S_ISREG(st.st_mode)) {
        FILE *f = fopen(path, "rb");
        if (!f) return llmh__fail(LLMH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        head_len = fread(head, 1, sizeof head, f);
        int err = ferror(f);
        fclose(f);
        if (err) return llmh__fail(LLMH_ERR_IO, "%s: read error", path);
    }
    format_ctx ctx = {path, head, head_len};

    pthread_mutex_lock(&reg->lock);
    llmh_status s = scan_locked(reg);
    if (s == LLMH_OK) {
        char tried[1024], failed[1024];
        s = get_best(reg, LLMH_PLUGIN_FORMAT, probe_format, &ctx, out, tried, sizeof tried,
                     failed, sizeof failed);
        if (s != LLMH_OK) {
            if (failed[0])
                llmh__fail(s, "%s: no format plugin recognizes this %s (tried: %s; failed to load: %s)",
                           path, S_ISDIR(st.st_mode) ? "directory" : "file", tried, failed);
            else
                llmh__fail(s, "%s: no format plugin recognizes this %s (tried: %s)", path,
                           S_ISDIR(st.st_mode) ? "directory" : "file", tried);
        }
    }
    pthread_mutex_unlock(&reg->lock);
    return s;
}

static int32_t probe_tokenizer(const llmh_plugin *p, const void *ctx) {
    const llmh_tokenizer_iface *t = p->desc->iface;
    return t->probe(p->state, ctx);
}

llmh_status llmh_registry_get_tokenizer_for(llmh_registry *reg, const llmh_kv_list *meta,
                                            llmh_plugin **out) {
    if (out) *out = NULL;
    if (!reg || !meta || !out)
        return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_registry_get_tokenizer_for: NULL argument");
    pthread_mutex_lock(&reg->lock);
    llmh_status s = scan_locked(reg);
    if (s == LLMH_OK) {
        char tried[1024], failed[1024];
        s = get_best(reg, LLMH_PLUGIN_TOKENIZER, probe_tokenizer, meta, out, tried, sizeof tried,
                     failed, sizeof failed);
        if (s != LLMH_OK) {
            char model[NAME_MAX_LEN + 1] = "(absent)";
            const llmh_value *v = llmh_kv_find(meta, "tokenizer.ggml.model");
            if (v && v->type == LLMH_V_STRING) {
                size_t n = v->v.s.len < NAME_MAX_LEN ? (size_t)v->v.s.len : NAME_MAX_LEN;
                memcpy(model, v->v.s.ptr, n);
                model[n] = 0;
                for (size_t i = 0; i < n; i++)
                    if ((unsigned char)model[i] < 0x20 || (unsigned char)model[i] >= 0x7f)
                        model[i] = '?';
            }
            llmh__fail(s, "no tokenizer plugin can build this model's tokenizer "
                       "(tokenizer.ggml.model = %s%s%s; tried: %s%s%s)",
                       v ? "'" : "", model, v ? "'" : "", tried,
                       failed[0] ? "; failed to load: " : "", failed);
        }
    }
    pthread_mutex_unlock(&reg->lock);
    return s;
}

llmh_status llmh_registry_get_all(llmh_registry *reg, llmh_plugin_kind kind, llmh_plugin ***out,
                                  size_t *n) {
    if (out) *out = NULL;
    if (n) *n = 0;
    if (!reg || !out || !n)
        return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_registry_get_all: NULL argument");
    if (!kind_valid((int)kind))
        return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_registry_get_all: %d is not a plugin kind",
                          (int)kind);
    pthread_mutex_lock(&reg->lock);
    llmh_status st = scan_locked(reg);
    llmh_plugin **arr = NULL;
    size_t count = 0;
    if (st == LLMH_OK) {
        size_t cap = 0;
        for (size_t i = 0; i < reg->entries.n; i++)
            if (((reg_entry *)reg->entries.items[i])->info.kind == kind) cap++;
        arr = calloc(cap ? cap : 1, sizeof *arr);
        if (!arr) st = llmh__fail(LLMH_ERR_NO_MEMORY, "llmh_registry_get_all: out of memory");
        for (size_t i = 0; st == LLMH_OK && i < reg->entries.n; i++) {
            const reg_entry *e = reg->entries.items[i];
            if (e->info.kind != kind) continue;
            st = load_plugin(e->info.path, e->info.kind, e->info.name, &arr[count]);
            if (st == LLMH_OK) count++;
        }
        if (st != LLMH_OK) {
            for (size_t i = 0; i < count; i++) llmh_plugin_release(arr[i]);
            free(arr);
            arr = NULL;
            count = 0;
        }
    }
    pthread_mutex_unlock(&reg->lock);
    *out = arr;
    *n = count;
    return st;
}

/* ======================================================================== */
/* llmh_plugin_check                                                         */
/* ======================================================================== */

/* Copy `s` into the caller's buffer at *o; returns the copy or NULL when it
 * does not fit (then *o still grows, to compute the size needed). */
static const char *buf_put(char *buf, size_t cap, size_t *o, const char *s) {
    size_t n = strlen(s) + 1;
    const char *r = NULL;
    if (buf && *o + n <= cap) {
        memcpy(buf + *o, s, n);
        r = buf + *o;
    }
    *o += n;
    return r;
}

llmh_status llmh_plugin_check(const char *path, llmh_plugin_info *info_out, char *buf,
                              size_t buf_size) {
    if (!path) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_plugin_check: path is NULL");
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        int e = errno;
        llmh_status st = e == ENOENT ? LLMH_ERR_NOT_FOUND : LLMH_ERR_IO;
        if (buf && buf_size) snprintf(buf, buf_size, "cannot read: %s", strerror(e));
        return llmh__fail(st, "%s: cannot read: %s", path, strerror(e));
    }
    struct stat sb;
    if (stat(real, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        if (buf && buf_size) snprintf(buf, buf_size, "cannot load: not a regular file");
        return llmh__fail(LLMH_ERR_IO, "%s: cannot load: not a regular file", real);
    }

    char why[REASON_LEN];
    void *h;
    const llmh_plugin_desc *d;
    llmh_status st = LLMH_OK;
    int32_t probed = -1;
    if (!preflight(real, why, sizeof why, &probed) || !open_plugin(real, &h, &d, why, sizeof why)) {
        st = strncmp(why, "cannot load", 11) == 0 ? LLMH_ERR_IO : LLMH_ERR_ABI;
    } else if (probed == 0 || (probed < 0 && run_probe(d, why, sizeof why) == 0)) {
        st = LLMH_ERR_UNSUPPORTED;
        dlclose(h);
    }
    if (st != LLMH_OK) {
        if (buf && buf_size) snprintf(buf, buf_size, "%s", why);
        return llmh__fail(st, "%s: %s", real, why);
    }

    if (info_out) {
        /* The strings of *info_out are copied into buf: provides[] (pointer
         * array, aligned) first, then the text. */
        memset(info_out, 0, sizeof *info_out);
        size_t n_prov = 0;
        if (d->kind == LLMH_PLUGIN_SAMPLER) {
            const llmh_sampler_iface *s = d->iface;
            while (s->names[n_prov]) n_prov++;
        }
        size_t o = 0;
        const char **prov = NULL;
        if (d->kind == LLMH_PLUGIN_SAMPLER) {
            uintptr_t base = (uintptr_t)buf;
            size_t pad = buf ? (size_t)((sizeof(void *) - base % sizeof(void *)) % sizeof(void *)) : 0;
            size_t need = pad + (n_prov + 1) * sizeof(char *);
            if (buf && need <= buf_size) prov = (const char **)(void *)(buf + pad);
            o = need;
        }
        char name_copy[NAME_MAX_LEN + 1], *ver = dup_text(d->version), *lic = dup_text(d->license),
                                          *desc = dup_text(d->description);
        snprintf(name_copy, sizeof name_copy, "%s", d->name);
        if (!ver || !lic || !desc) {
            free(ver);
            free(lic);
            free(desc);
            dlclose(h);
            return llmh__fail(LLMH_ERR_NO_MEMORY, "%s: out of memory", real);
        }
        info_out->path = buf_put(buf, buf_size, &o, real);
        info_out->kind = d->kind;
        info_out->name = buf_put(buf, buf_size, &o, name_copy);
        info_out->version = buf_put(buf, buf_size, &o, ver);
        info_out->license = buf_put(buf, buf_size, &o, lic);
        info_out->description = buf_put(buf, buf_size, &o, desc);
        info_out->abi_major = d->abi_major;
        info_out->abi_minor = d->abi_minor;
        info_out->score = d->score;
        free(ver);
        free(lic);
        free(desc);
        if (d->kind == LLMH_PLUGIN_SAMPLER) {
            const llmh_sampler_iface *s = d->iface;
            for (size_t i = 0; i < n_prov; i++) {
                const char *c = buf_put(buf, buf_size, &o, s->names[i]);
                if (prov) prov[i] = c;
            }
            if (prov) prov[n_prov] = NULL;
            info_out->provides = prov;
        }
        if (o > buf_size || !buf) {
            memset(info_out, 0, sizeof *info_out);
            dlclose(h);
            return llmh__fail(LLMH_ERR_INVALID_ARG,
                              "%s: llmh_plugin_check: buffer too small (%zu bytes, need %zu)",
                              real, buf ? buf_size : (size_t)0, o);
        }
    }
    dlclose(h);
    llmh_clear_error();
    return LLMH_OK;
}
