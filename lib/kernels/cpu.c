/* cpu.c - which instruction sets this CPU and this build can run.
 *
 * Asked on every call (cheap: the compiler's cpu-features data is set up
 * once by its runtime), so there is no global state here. x86-64: AVX2 and
 * FMA both (the micro-kernels need the two); AVX-512F on top of those (its
 * table reuses the AVX2 kernels where it has no kernel of its own);
 * aarch64: Advanced SIMD is part of the base architecture. */
#include "kernels.h"

int kdc__isa_supported(kdc__isa isa)
{
    switch (isa) {
    case KDC__ISA_SCALAR:
        return 1;
    case KDC__ISA_AVX2:
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
        return 0;
#endif
    case KDC__ISA_AVX512:
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
#else
        return 0;
#endif
    case KDC__ISA_NEON:
#if defined(__aarch64__)
        return 1;
#else
        return 0;
#endif
    }
    return 0;
}

kdc__isa kdc__isa_best(void)
{
    if (kdc__isa_supported(KDC__ISA_AVX512))
        return KDC__ISA_AVX512;
    if (kdc__isa_supported(KDC__ISA_AVX2))
        return KDC__ISA_AVX2;
    if (kdc__isa_supported(KDC__ISA_NEON))
        return KDC__ISA_NEON;
    return KDC__ISA_SCALAR;
}

const char *kdc__isa_name(kdc__isa isa)
{
    switch (isa) {
    case KDC__ISA_SCALAR: return "scalar";
    case KDC__ISA_AVX2: return "avx2";
    case KDC__ISA_NEON: return "neon";
    case KDC__ISA_AVX512: return "avx512";
    }
    return "?";
}
