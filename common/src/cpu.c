#include "medinfer/cpu.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

bool mi_isa_supported(mi_isa isa) {
  switch (isa) {
  case MI_ISA_GENERIC: return true;
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
  case MI_ISA_AVX2:
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  case MI_ISA_AVX512:
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#endif
  default: return false;
  }
}

const char *mi_isa_name(mi_isa isa) {
  return isa == MI_ISA_AVX512 ? "avx512" : isa == MI_ISA_AVX2 ? "avx2" : "generic";
}

static atomic_int g_isa = -1;

mi_isa mi_isa_level(void) {
  int v = atomic_load(&g_isa);
  if (v >= 0) return (mi_isa)v;
  mi_isa best = mi_isa_supported(MI_ISA_AVX512) ? MI_ISA_AVX512
                : mi_isa_supported(MI_ISA_AVX2) ? MI_ISA_AVX2
                                                : MI_ISA_GENERIC;
  const char *e = getenv("MEDINFER_ISA");
  if (e && *e) {
    mi_isa want = best;
    if (!strcmp(e, "generic")) want = MI_ISA_GENERIC;
    else if (!strcmp(e, "avx2")) want = MI_ISA_AVX2;
    else if (!strcmp(e, "avx512")) want = MI_ISA_AVX512;
    if (want < best) best = want; /* never above what the CPU runs */
  }
  atomic_store(&g_isa, (int)best);
  return best;
}
