/* The vector instruction set the kernels run on: the best this CPU has,
 * capped by MEDINFER_ISA=generic|avx2|avx512 (for tests, and for users with
 * odd machines). */
#ifndef MEDINFER_CPU_H
#define MEDINFER_CPU_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { MI_ISA_GENERIC = 0, MI_ISA_AVX2 = 1, MI_ISA_AVX512 = 2 } mi_isa;

/* Decided at the first call, from the CPU and MEDINFER_ISA. */
mi_isa mi_isa_level(void);
/* Whether this CPU can run the level (AVX2 and AVX-512F, each with FMA). */
bool mi_isa_supported(mi_isa isa);
const char *mi_isa_name(mi_isa isa);

#ifdef __cplusplus
}
#endif
#endif
