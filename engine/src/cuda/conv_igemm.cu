/* Implicit-GEMM convolution (group 1, FP32): Y[m, p] = sum_k W[m, k] X[tap k
 * of output position p], the B operand gathered from the input tile by tile
 * into shared memory, never written out as an im2col matrix (a 32-channel
 * 128^3 layer's would be 7 GB, through the workspace in 128 MB pieces).
 *
 * Block tile BM output channels x BN positions, K in steps of 8, both
 * operands double-buffered in shared memory; 256 threads, each 8 channels x
 * 4 positions in registers.  BM 64 (BN 128), or 32 (BN 256) for layers of at
 * most 32 output channels (a 3D U-Net's full-resolution ones).  A table of
 * the K taps (made on the device per call) gives each tap's input offset, its
 * index within the channel and its z/y/x displacement for the bounds test. */
#include "cuda_common.h"

#define IG_BK 8
#define IG_THREADS 256

/* Tap k = (c, kz, ky, kx): x offset from the position's base, the tap kk
 * within the channel, its z displacement, and its y and x ones (16 bits each). */
__global__ void k_igemm_taps(int4 *tab, mi_cuda_geom g, int64_t CK) {
  CU_LOOP(k, CK) {
    const int64_t kk = k % g.k_sz, c = k / g.k_sz;
    const int64_t kx = kk % g.k[2], ky = (kk / g.k[2]) % g.k[1], kz = kk / (g.k[2] * g.k[1]);
    const int64_t dz = kz * g.d[0], dy = ky * g.d[1], dx = kx * g.d[2];
    tab[k] = make_int4((int)(c * g.in_sz + (dz * g.in[1] + dy) * g.in[2] + dx), (int)kk, (int)dz,
                       (int)(dy << 16 | dx));
  }
}

typedef struct ig_dims {
  int in0, in1, in2, out1, out2, s0, s1, s2, pb0, pb1, pb2;
  int P, CK, M, ksz;
  int64_t x_img, y_img; /* floats per image */
  bool vec;             /* rows of whole float4s: P % 4 == 0 and y 16-byte aligned */
} ig_dims;

/* MASK (k_sz <= 32): each thread's taps inside the input as bits, found once,
 * so that a load tests one bit instead of three ranges; the registers that
 * saves let three blocks share an SM (80 registers, no spills), which is what
 * pays: on an H200 the 128^3 3D U-Net 63.4 ms with the masks alone, 54.7 with
 * three blocks (two before), ResNet-50 at batch 32 even. */
template <int BM, bool MASK>
__global__ void __launch_bounds__(IG_THREADS, MASK ? 3 : 1)
    k_igemm(const float *__restrict__ x, const float *__restrict__ w, const int4 *__restrict__ tab,
            float *__restrict__ y, ig_dims d) {
  constexpr int TPN = BM / 8;              /* threads along the channels */
  constexpr int TPP = IG_THREADS / TPN;    /* threads along the positions */
  constexpr int BN = TPP * 4;
  constexpr int AL = BM * IG_BK / IG_THREADS; /* weights loaded per thread per step */
  constexpr int BL = BN * IG_BK / IG_THREADS; /* input values loaded per thread per step */
  __shared__ __align__(16) float As[2][IG_BK][BM];
  __shared__ __align__(16) float Bs[2][IG_BK][BN];
  const int tid = threadIdx.x, tm = tid / TPP, tp = tid % TPP;
  const int m0 = blockIdx.y * BM, p0 = blockIdx.x * BN;
  x += blockIdx.z * d.x_img;
  y += blockIdx.z * d.y_img;

  /* This thread's column of B: one output position for every K step. */
  const int bp = tid % BN, bk0 = tid / BN; /* rows bk0, bk0 + IG_THREADS / BN, ... */
  const int p = p0 + bp;
  const bool pin = p < d.P;
  const int ox = pin ? p % d.out2 : 0, oyz = pin ? p / d.out2 : 0;
  const int iz0 = oyz / d.out1 * d.s0 - d.pb0, iy0 = oyz % d.out1 * d.s1 - d.pb1, ix0 = ox * d.s2 - d.pb2;
  const int base = (iz0 * d.in1 + iy0) * d.in2 + ix0;
  unsigned inside = 0;
  if (MASK && pin)
    for (int kk = 0; kk < d.ksz; kk++) {
      const int4 t = __ldg(tab + kk);
      const int iz = iz0 + t.z, iy = iy0 + (t.w >> 16), ix = ix0 + (t.w & 0xFFFF);
      if ((unsigned)iz < (unsigned)d.in0 && (unsigned)iy < (unsigned)d.in1 && (unsigned)ix < (unsigned)d.in2)
        inside |= 1u << kk;
    }
  /* This thread's weights: channel am, K columns ak0 + j. */
  const int am = tid * AL / IG_BK, ak0 = tid * AL % IG_BK;

  float ra[AL], rb[BL];
  auto load = [&](int k0) {
#pragma unroll
    for (int j = 0; j < AL; j++) {
      const int k = k0 + ak0 + j, m = m0 + am;
      ra[j] = k < d.CK && m < d.M ? __ldg(w + (int64_t)m * d.CK + k) : 0.f;
    }
#pragma unroll
    for (int r = 0; r < BL; r++) {
      const int k = k0 + bk0 + r * (IG_THREADS / BN);
      float v = 0.f;
      if (MASK && k < d.CK) {
        const int2 t = __ldg((const int2 *)(tab + k));
        if (inside >> t.y & 1) v = __ldg(x + base + t.x);
      } else if (!MASK && pin && k < d.CK) {
        const int4 t = __ldg(tab + k);
        const int iz = iz0 + t.z, iy = iy0 + (t.w >> 16), ix = ix0 + (t.w & 0xFFFF);
        if ((unsigned)iz < (unsigned)d.in0 && (unsigned)iy < (unsigned)d.in1 && (unsigned)ix < (unsigned)d.in2)
          v = __ldg(x + base + t.x);
      }
      rb[r] = v;
    }
  };
  auto store = [&](int buf) {
#pragma unroll
    for (int j = 0; j < AL; j++) As[buf][ak0 + j][am] = ra[j];
#pragma unroll
    for (int r = 0; r < BL; r++) Bs[buf][bk0 + r * (IG_THREADS / BN)][bp] = rb[r];
  };

  float acc[8][4];
#pragma unroll
  for (int i = 0; i < 8; i++)
#pragma unroll
    for (int j = 0; j < 4; j++) acc[i][j] = 0.f;
  load(0);
  store(0);
  __syncthreads();
  for (int k0 = 0, buf = 0; k0 < d.CK; k0 += IG_BK, buf ^= 1) {
    const bool more = k0 + IG_BK < d.CK;
    if (more) load(k0 + IG_BK); /* the next step's loads in flight during this one's products */
#pragma unroll
    for (int kk = 0; kk < IG_BK; kk++) {
      const float4 a0 = *(const float4 *)&As[buf][kk][tm * 8], a1 = *(const float4 *)&As[buf][kk][tm * 8 + 4];
      const float4 b = *(const float4 *)&Bs[buf][kk][tp * 4];
      const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
      for (int i = 0; i < 8; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], bv[j], acc[i][j]);
    }
    /* The other buffer was last read before the previous step's barrier. */
    if (more) store(buf ^ 1);
    __syncthreads();
  }

  const int pc = p0 + tp * 4;
  const bool vec = d.vec && pc + 4 <= d.P;
#pragma unroll
  for (int i = 0; i < 8; i++) {
    const int m = m0 + tm * 8 + i;
    if (m >= d.M) break;
    float *yr = y + (int64_t)m * d.P + pc;
    if (vec) {
      *(float4 *)yr = make_float4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
    } else {
#pragma unroll
      for (int j = 0; j < 4; j++)
        if (pc + j < d.P) yr[j] = acc[i][j];
    }
  }
}

bool mi_cuda_conv_igemm_fits(const mi_cuda_geom *g, int64_t N, int64_t C, int64_t M) {
  /* 32-bit offsets in an image, with room for the padding's reach past it */
  const int64_t lim = INT32_MAX / 2;
  const bool taps16 = (g->k[1] - 1) * g->d[1] < 32768 && (g->k[2] - 1) * g->d[2] < 32768; /* the table's halves */
  return taps16 && N <= 65535 && M <= 65535 * 32 && (C + 1) * g->in_sz < lim && M * g->out_sz < lim &&
         C * g->k_sz < lim;
}

/* Block tiles: BM 32 x BN 256 for up to 32 channels, else 64 x 128. */
static dim3 igemm_grid(const mi_cuda_geom *g, int64_t N, int64_t M) {
  return M <= 32 ? dim3((unsigned)((g->out_sz + 255) / 256), 1, (unsigned)N)
                 : dim3((unsigned)((g->out_sz + 127) / 128), (unsigned)((M + 63) / 64), (unsigned)N);
}

int64_t mi_cuda_conv_igemm_blocks(const mi_cuda_geom *g, int64_t N, int64_t M) {
  const dim3 b = igemm_grid(g, N, M);
  return (int64_t)b.x * b.y * b.z;
}

mi_status *mi_cuda_conv_igemm(mi_cuda_ctx *cx, const mi_node *n, const mi_cuda_geom *g, const float *x,
                              const float *w, float *y, int64_t N, int64_t C, int64_t M) {
  const int64_t CK = C * g->k_sz;
  mi_status *st = NULL;
  int4 *tab = (int4 *)mi_cuda_workspace(cx, n, (size_t)CK * sizeof(int4), &st);
  if (!tab) return st;
  k_igemm_taps<<<mi_cuda_grid(CK, 256), 256, 0, cx->stream>>>(tab, *g, CK);
  CU_LAUNCHED(n);
  const ig_dims d = {(int)g->in[0], (int)g->in[1], (int)g->in[2], (int)g->out[1], (int)g->out[2],
                     (int)g->s[0],  (int)g->s[1],  (int)g->s[2],  (int)g->pb[0],  (int)g->pb[1],
                     (int)g->pb[2], (int)g->out_sz, (int)CK,      (int)M,         (int)g->k_sz, C * g->in_sz,
                     M * g->out_sz, g->out_sz % 4 == 0 && (uintptr_t)y % 16 == 0};
  const dim3 grid = igemm_grid(g, N, M);
  if (g->k_sz <= 32) {
    if (M <= 32) k_igemm<32, true><<<grid, IG_THREADS, 0, cx->stream>>>(x, w, tab, y, d);
    else k_igemm<64, true><<<grid, IG_THREADS, 0, cx->stream>>>(x, w, tab, y, d);
  } else {
    if (M <= 32) k_igemm<32, false><<<grid, IG_THREADS, 0, cx->stream>>>(x, w, tab, y, d);
    else k_igemm<64, false><<<grid, IG_THREADS, 0, cx->stream>>>(x, w, tab, y, d);
  }
  CU_LAUNCHED(n);
  return NULL;
}
