/* The portable Winograd transforms (wino_generic.c) compiled again for AVX2
 * + FMA: their lane loops in 8-wide vectors.  Only called when mi_isa_level()
 * is MI_ISA_AVX2. */
#define WINO_ISA(name) name##_avx2
#define WINO_ISA_ONLY
#include "wino_generic.c"
