// abi-cxx.cpp — the SDK headers (and the core API header) compiled as C++
// with -pedantic-errors, with the ABI 1.0 layout table checked by
// static_assert: a C++ plugin sees exactly the layout a C plugin does.
#include <cstddef>

#include "llmh-plugin.h"
#include "llmh.h"

#if defined(__x86_64__) && defined(__LP64__)
#define LLMH_ABI_SIZE(T, n) static_assert(sizeof(T) == (n), "sizeof(" #T ") is not the ABI 1.0 size " #n);
#define LLMH_ABI_ALIGN(T, n) static_assert(alignof(T) == (n), "alignof(" #T ") is not " #n);
#define LLMH_ABI_OFF(T, f, n) \
    static_assert(offsetof(T, f) == (n), "offsetof(" #T ", " #f ") is not the ABI 1.0 offset " #n);
#define LLMH_ABI_VAL(c, n) static_assert((long long)(c) == (n##LL), #c " is not " #n " as in ABI 1.0");
#include "abi-table.h"
#undef LLMH_ABI_SIZE
#undef LLMH_ABI_ALIGN
#undef LLMH_ABI_OFF
#undef LLMH_ABI_VAL
#endif

extern "C" size_t llmh_abi_report_cxx(long long *out, size_t cap);
extern "C" int llmh_abi_cxx_helpers_ok(void);

extern "C" size_t llmh_abi_report_cxx(long long *out, size_t cap) {
    size_t k = 0;
#define PUT(v) do { if (k < cap) out[k] = (long long)(v); k++; } while (0);
#define LLMH_ABI_SIZE(T, n) PUT(sizeof(T))
#define LLMH_ABI_ALIGN(T, n) PUT(alignof(T))
#define LLMH_ABI_OFF(T, f, n) PUT(offsetof(T, f))
#define LLMH_ABI_VAL(c, n) PUT(c)
#include "abi-table.h"
    return k;
}

extern "C" int llmh_abi_cxx_helpers_ok(void) {
    llmh_kv kv[1];
    kv[0].key = "k";
    kv[0].value.type = LLMH_V_F32;
    kv[0].value.v.f = 0.25;
    llmh_kv_list list = {kv, 1};
    double f = 0;
    return llmh_dtype_block_size(LLMH_DTYPE_Q4_0) == 32 && llmh_dtype_type_size(LLMH_DTYPE_Q6_K) == 210 &&
           llmh_fp16_to_fp32(llmh_fp32_to_fp16(-0.5f)) == -0.5f &&
           llmh_value_as_f64(llmh_kv_find(&list, "k"), &f) && f == 0.25;
}
