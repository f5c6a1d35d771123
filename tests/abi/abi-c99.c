/* abi-c99.c — the SDK headers compiled as strict C99 (-std=c99
 * -pedantic-errors), with the ABI 1.0 layout table checked at compile time
 * (C99 has no _Static_assert: a negative array size fails the build). */
#include <stddef.h>

#include "llmh-plugin.h"

#define LLMH_CAT_(a, b) a##b
#define LLMH_CAT(a, b) LLMH_CAT_(a, b)

#if defined(__x86_64__) && defined(__LP64__)
#define LLMH_ABI_CHECK(cond) typedef char LLMH_CAT(llmh_abi_check_line_, __LINE__)[(cond) ? 1 : -1];
#define LLMH_ABI_SIZE(T, n) LLMH_ABI_CHECK(sizeof(T) == (n))
#define LLMH_ABI_ALIGN(T, n) LLMH_ABI_CHECK(__alignof__(T) == (n))
#define LLMH_ABI_OFF(T, f, n) LLMH_ABI_CHECK(offsetof(T, f) == (n))
#define LLMH_ABI_VAL(c, n) LLMH_ABI_CHECK((long long)(c) == (n##LL))
#include "abi-table.h"
#undef LLMH_ABI_SIZE
#undef LLMH_ABI_ALIGN
#undef LLMH_ABI_OFF
#undef LLMH_ABI_VAL
#endif

size_t llmh_abi_report_c99(long long *out, size_t cap);

/* Every table entry as this compiler lays it out, in table order. */
size_t llmh_abi_report_c99(long long *out, size_t cap) {
    size_t k = 0;
#define PUT(v) do { if (k < cap) out[k] = (long long)(v); k++; } while (0);
#define LLMH_ABI_SIZE(T, n) PUT(sizeof(T))
#define LLMH_ABI_ALIGN(T, n) PUT(__alignof__(T))
#define LLMH_ABI_OFF(T, f, n) PUT(offsetof(T, f))
#define LLMH_ABI_VAL(c, n) PUT(c)
#include "abi-table.h"
    return k;
}

/* The inline helpers of llmh-types.h must compile and work in C99 too. */
int llmh_abi_c99_helpers_ok(void);
int llmh_abi_c99_helpers_ok(void) {
    llmh_kv kv[1];
    llmh_kv_list list;
    int64_t i = 0;
    kv[0].key = "k";
    kv[0].value.type = LLMH_V_U32;
    kv[0].value.v.u = 7;
    list.items = kv;
    list.n = 1;
    return llmh_dtype_block_size(LLMH_DTYPE_Q4_K) == 256 && llmh_dtype_type_size(LLMH_DTYPE_Q8_0) == 34 &&
           llmh_fp16_to_fp32(llmh_fp32_to_fp16(1.5f)) == 1.5f &&
           llmh_bf16_to_fp32(llmh_fp32_to_bf16(-2.0f)) == -2.0f &&
           llmh_value_as_i64(llmh_kv_find(&list, "k"), &i) && i == 7;
}
