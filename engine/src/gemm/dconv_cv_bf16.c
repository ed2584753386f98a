/* The channel-vector kernel in bf16 mode: dconv_cv.c's AVX-512 driver and
 * tile with vdpbf16ps as the step's product.  A step is a channel pair at
 * one tap: each weight lane holds its output channel's two bf16 weights,
 * the broadcast input the two bf16 values of the pair (mi_dconv_bf16_pairs
 * layout), packed by mi_dconv_cv_pack_bf16.  Compiled with -mavx512f -mfma
 * -mavx512bf16; only called when mi_dconv_bf16_supported(). */
#include "dconv.h"

#if defined(MI_GEMM_X86) && defined(MEDINFER_HAVE_BF16)
#define CV_BF16
#define CV_NAME(x) x##_bf16
#include "dconv_cv.c"
#elif defined(MI_GEMM_X86)
/* The compiler cannot target AVX512-BF16: the mode is never available. */
int64_t mi_dconv_cv_items_bf16(const mi_dconv_job *j, const mi_dconv_cv_weights *w) {
  (void)j, (void)w;
  return 0;
}
void mi_dconv_cv_run_bf16(const mi_dconv_job *j, const mi_dconv_cv_weights *w, int64_t begin, int64_t end) {
  (void)j, (void)w, (void)begin, (void)end;
}
#endif
