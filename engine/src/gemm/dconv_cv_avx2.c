/* The channel-vector kernel on AVX2 + FMA: dconv_cv.c's driver with its
 * AVX2 tile (16 channels x up to 6 positions), on the AVX-512 build's
 * packing (mi_dconv_cv_pack).  Compiled with
 * -mavx2 -mfma; only called where mi_isa_level() is MI_ISA_AVX2. */
#define CV_AVX2
#define CV_NAME(x) x##_avx2
#include "dconv_cv.c"
