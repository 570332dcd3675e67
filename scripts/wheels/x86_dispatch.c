/* The x86-64 wheel's kernel: edgecls/_area.c built twice, for baseline x86-64 and for
 * x86-64-v3 (AVX2, BMI2, FMA: Haswell and later), and this file choosing one of them once,
 * when the library loads.
 *
 * Why not _area.c's own target_clones: with gcc, glibc's ifunc resolver reads the CPU's
 * features through libgcc. zig's clang resolves the clones through compiler-rt, whose x86
 * __cpu_indicator_init is a stub there, so every CPU got the baseline copy: twice the
 * in-place (gcc) kernel's time a frame; AVX2 alone (-mavx2) was barely faster, while the
 * x86-64-v3 build beats gcc's clone. Here cpuid and xgetbv are asked directly.
 * scripts/build-wheels compiles _area.c with -Dedgecls_area_*=..._base / ..._v3, so the
 * three exported names below forward to one build; a plan made by it is only ever given
 * back to it. Both builds are the same C code with integer arithmetic: the same bytes.
 */
#include <cpuid.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct plan plan_t;

#define DECLARE(SUFFIX)                                                                            \
    void edgecls_area_plan_free_##SUFFIX(plan_t *p);                                              \
    plan_t *edgecls_area_plan_##SUFFIX(int64_t h, int64_t w, int64_t pixel, int64_t size);        \
    int edgecls_area_run_##SUFFIX(const plan_t *p, const uint8_t *src, int64_t stride, uint8_t *dst, int swap_rb);
DECLARE(base)
DECLARE(v3)

static int v3 = -1;

/* Every feature of x86-64-v3 (the compiler may use any of them), and the OS saving YMM state. */
static int cpu_is_v3(void) {
    unsigned a, b, c, d;
    const unsigned leaf1 = bit_FMA | bit_MOVBE | bit_OSXSAVE | bit_AVX | bit_F16C;
    if (!__get_cpuid(1, &a, &b, &c, &d) || (c & leaf1) != leaf1) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6) return 0;
    const unsigned leaf7 = bit_BMI | bit_AVX2 | bit_BMI2;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || (b & leaf7) != leaf7) return 0;
    return __get_cpuid(0x80000001, &a, &b, &c, &d) && (c & bit_LZCNT);
}

/* EDGECLS_X86_BASELINE=1 forces the baseline build, so tests can check both on one machine. */
__attribute__((constructor)) static void pick(void) {
    const char *force = getenv("EDGECLS_X86_BASELINE");
    v3 = (force && force[0] == '1') ? 0 : cpu_is_v3();
}

void edgecls_area_plan_free(plan_t *p) {
    if (v3) edgecls_area_plan_free_v3(p); else edgecls_area_plan_free_base(p);
}

plan_t *edgecls_area_plan(int64_t h, int64_t w, int64_t pixel, int64_t size) {
    return v3 ? edgecls_area_plan_v3(h, w, pixel, size) : edgecls_area_plan_base(h, w, pixel, size);
}

int edgecls_area_run(const plan_t *p, const uint8_t *src, int64_t stride, uint8_t *dst, int swap_rb) {
    return v3 ? edgecls_area_run_v3(p, src, stride, dst, swap_rb) : edgecls_area_run_base(p, src, stride, dst, swap_rb);
}

/* Which build runs, for tests and benchmarks: 1 x86-64-v3, 0 baseline. */
int edgecls_area_x86_v3(void) { return v3; }
