/* cpu-features.c — CPUID-based feature detection (x86), with the OS support
 * check (XGETBV) that AVX and AVX-512 state need. Other architectures report
 * no SIMD features and run the scalar kernels. */
#include <stdio.h>
#include <string.h>

#include "cpu-internal.h"

#if CPU_X86
#include <cpuid.h>

static uint64_t read_xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

void cpu_features_detect(cpu_features *f) {
    unsigned a, b, c, d;
    memset(f, 0, sizeof *f);
    snprintf(f->model, sizeof f->model, "x86-64 CPU");
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    int osxsave = (c >> 27) & 1;
    int avx_hw = (c >> 28) & 1;
    int fma_hw = (c >> 12) & 1;
    int f16c_hw = (c >> 29) & 1;
    uint64_t xcr0 = osxsave ? read_xcr0() : 0;
    int os_avx = (xcr0 & 0x6) == 0x6;
    int os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;

    f->avx = avx_hw && os_avx;
    f->fma = fma_hw && f->avx;
    f->f16c = f16c_hw && f->avx;
    unsigned max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        f->avx2 = ((b >> 5) & 1) && f->avx;
        f->avx512f = ((b >> 16) & 1) && os_avx512;
        f->avx512dq = ((b >> 17) & 1) && os_avx512;
        f->avx512bw = ((b >> 30) & 1) && os_avx512;
        f->avx512vl = ((b >> 31) & 1) && os_avx512;
        f->avx512vnni = ((c >> 11) & 1) && os_avx512;
        unsigned sub = a;
        if (sub >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            f->avxvnni = ((a >> 4) & 1) && f->avx;
            f->avx512bf16 = ((a >> 5) & 1) && os_avx512;
        }
    }
    /* Brand string: leaves 0x80000002..4 */
    if (__get_cpuid_max(0x80000000u, NULL) >= 0x80000004u) {
        char brand[49];
        unsigned regs[12];
        for (unsigned i = 0; i < 3; i++)
            __cpuid(0x80000002u + i, regs[4 * i], regs[4 * i + 1], regs[4 * i + 2], regs[4 * i + 3]);
        memcpy(brand, regs, 48);
        brand[48] = 0;
        const char *s = brand;
        while (*s == ' ') s++;
        size_t n = strlen(s);
        while (n > 0 && s[n - 1] == ' ') n--;
        if (n > 0) {
            if (n >= sizeof f->model) n = sizeof f->model - 1;
            memcpy(f->model, s, n);
            f->model[n] = 0;
        }
    }
}
#else
void cpu_features_detect(cpu_features *f) {
    memset(f, 0, sizeof *f);
    snprintf(f->model, sizeof f->model, "generic CPU");
}
#endif

void cpu_features_string(const cpu_features *f, char *buf, size_t cap) {
    static const struct { size_t off; const char *name; } names[] = {
        {offsetof(cpu_features, avx), "avx"},
        {offsetof(cpu_features, avx2), "avx2"},
        {offsetof(cpu_features, fma), "fma"},
        {offsetof(cpu_features, f16c), "f16c"},
        {offsetof(cpu_features, avxvnni), "avx_vnni"},
        {offsetof(cpu_features, avx512f), "avx512f"},
        {offsetof(cpu_features, avx512bw), "avx512bw"},
        {offsetof(cpu_features, avx512vl), "avx512vl"},
        {offsetof(cpu_features, avx512dq), "avx512dq"},
        {offsetof(cpu_features, avx512vnni), "avx512_vnni"},
        {offsetof(cpu_features, avx512bf16), "avx512_bf16"},
    };
    size_t len = 0;
    if (cap == 0) return;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int on;
        memcpy(&on, (const char *)f + names[i].off, sizeof on);
        if (!on) continue;
        int w = snprintf(buf + len, cap - len, "%s%s", len ? " " : "", names[i].name);
        if (w < 0 || (size_t)w >= cap - len) break;
        len += (size_t)w;
    }
    if (len == 0) snprintf(buf, cap, "scalar");
}
