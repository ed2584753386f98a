/* FP32 FMA peak of this machine on `threads` threads, in GFLOP/s, measured
 * (about 0.05 s); 0 where no x86 FMA unit is found. */
#ifndef MEDINFER_BENCH_PEAK_H
#define MEDINFER_BENCH_PEAK_H
double mi_bench_peak_gflops(int threads);
#endif
