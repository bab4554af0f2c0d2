// 2-D convolution (cross-correlation, as PyTorch): activations NCHW, weights OIHW (square
// K x K kernels), stride s, zero padding p; Hout = (H + 2p - K) / s + 1.
//
//   y[n,o,i,j]  = b[o] + sum_{c,u,v} w[o,c,u,v] x[n, c, i s - p + u, j s - p + v]
//   gx[n,c,h,w] = sum_{o,u,v} w[o,c,u,v] gy[n, o, (h + p - u) / s, (w + p - v) / s]
//                 over the (u, v) for which the division is exact and in range: the
//                 convolution of gy with the flipped, transposed kernel (Sect. 4)
//   gw[o,c,u,v] = sum_{n,i,j} gy[n,o,i,j] x[n, c, i s - p + u, j s - p + v]
//
// Direct versions, kept for reading: one thread per output element (y, gx or gw) of a
// grid-stride loop, blocks of 256, every operand read from global memory.
//
// Fast versions, used by default: im2col plus the tiled SGEMM of gemm.cu, on a chunk of
// `nb` images at a time (the chunk bounds the column buffer):
//   im2col:   col[(c K + u) K + v, (n Hout + i) Wout + j] = x[n, c, i s - p + u, j s - p + v]
//   forward:  Y' (O x nb L) = W (O x C K K) col;  then y[n, o, l] = Y'[o, n L + l] + b[o]
//   data:     gcol = W^T gy' (gy' is gy reordered to O x nb L); col2im gathers gx
//   weights:  gW += gy' col^T
// where L = Hout Wout. im2col, col2im and the reorders are one thread per element
// (grid-stride, blocks of 256); col2im gathers rather than scatters, so no atomics.
// Cost: 2 N O C K^2 L FLOPs per product; im2col writes 4 C K^2 nb L bytes per chunk.

extern "C" __global__ void conv2d_forward_direct(const float* __restrict__ x, const float* __restrict__ w,
                                      const float* __restrict__ b, float* __restrict__ y,
                                      int N, int C, int H, int W, int O, int K, int stride, int pad,
                                      int Hout, int Wout, int has_bias) {
  const long long total = (long long)N * O * Hout * Wout;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const int j = e % Wout, i = (e / Wout) % Hout, o = (e / ((long long)Wout * Hout)) % O;
    const long long n = e / ((long long)Wout * Hout * O);
    float sum = has_bias ? b[o] : 0.0f;
    for (int c = 0; c < C; ++c)
      for (int u = 0; u < K; ++u) {
        const int h = i * stride - pad + u;
        if (h < 0 || h >= H) continue;
        for (int v = 0; v < K; ++v) {
          const int col = j * stride - pad + v;
          if (col < 0 || col >= W) continue;
          sum += w[((o * C + c) * K + u) * K + v] * x[((n * C + c) * H + h) * W + col];
        }
      }
    y[e] = sum;
  }
}

extern "C" __global__ void conv2d_backward_data_direct(const float* __restrict__ grad_y, const float* __restrict__ w,
                                            float* __restrict__ grad_x, int N, int C, int H, int W, int O,
                                            int K, int stride, int pad, int Hout, int Wout) {
  const long long total = (long long)N * C * H * W;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const int col = e % W, h = (e / W) % H, c = (e / ((long long)W * H)) % C;
    const long long n = e / ((long long)W * H * C);
    float sum = 0.0f;
    for (int u = 0; u < K; ++u) {
      const int top = h + pad - u;
      if (top < 0 || top % stride) continue;
      const int i = top / stride;
      if (i >= Hout) continue;
      for (int v = 0; v < K; ++v) {
        const int left = col + pad - v;
        if (left < 0 || left % stride) continue;
        const int j = left / stride;
        if (j >= Wout) continue;
        for (int o = 0; o < O; ++o)
          sum += w[((o * C + c) * K + u) * K + v] * grad_y[((n * O + o) * Hout + i) * Wout + j];
      }
    }
    grad_x[e] = sum;
  }
}

extern "C" __global__ void conv2d_backward_weights_direct(const float* __restrict__ grad_y, const float* __restrict__ x,
                                               float* __restrict__ grad_w, int N, int C, int H, int W, int O,
                                               int K, int stride, int pad, int Hout, int Wout) {
  const long long total = (long long)O * C * K * K;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const int v = e % K, u = (e / K) % K, c = (e / (K * K)) % C, o = e / ((long long)K * K * C);
    float sum = 0.0f;
    for (int n = 0; n < N; ++n)
      for (int i = 0; i < Hout; ++i) {
        const int h = i * stride - pad + u;
        if (h < 0 || h >= H) continue;
        for (int j = 0; j < Wout; ++j) {
          const int col = j * stride - pad + v;
          if (col < 0 || col >= W) continue;
          sum += grad_y[(((long long)n * O + o) * Hout + i) * Wout + j] * x[(((long long)n * C + c) * H + h) * W + col];
        }
      }
    grad_w[e] = sum;
  }
}

// col has C K K rows and nb Hout Wout columns; images n0 .. n0 + nb - 1 of x.
extern "C" __global__ void im2col(const float* __restrict__ x, float* __restrict__ col, int n0, int nb, int C, int H, int W,
                       int K, int stride, int pad, int Hout, int Wout) {
  const long long columns = (long long)nb * Hout * Wout, total = columns * C * K * K;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const long long column = e % columns, row = e / columns;
    const int v = row % K, u = (row / K) % K, c = row / (K * K);
    const int j = column % Wout, i = (column / Wout) % Hout;
    const long long n = n0 + column / ((long long)Wout * Hout);
    const int h = i * stride - pad + u, w_ = j * stride - pad + v;
    col[e] = (h >= 0 && h < H && w_ >= 0 && w_ < W) ? x[((n * C + c) * H + h) * W + w_] : 0.0f;
  }
}

// Gathers gx for images n0 .. n0 + nb - 1 from gcol (C K K rows, nb Hout Wout columns).
extern "C" __global__ void col2im(const float* __restrict__ gcol, float* __restrict__ grad_x, int n0, int nb, int C, int H,
                       int W, int K, int stride, int pad, int Hout, int Wout) {
  const long long columns = (long long)nb * Hout * Wout, total = (long long)nb * C * H * W;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const int w_ = e % W, h = (e / W) % H, c = (e / ((long long)W * H)) % C;
    const long long local = e / ((long long)W * H * C);
    float sum = 0.0f;
    for (int u = 0; u < K; ++u) {
      const int top = h + pad - u;
      if (top < 0 || top % stride || top / stride >= Hout) continue;
      for (int v = 0; v < K; ++v) {
        const int left = w_ + pad - v;
        if (left < 0 || left % stride || left / stride >= Wout) continue;
        const long long column = (local * Hout + top / stride) * Wout + left / stride;
        sum += gcol[((long long)(c * K + u) * K + v) * columns + column];
      }
    }
    grad_x[(n0 + local) * C * H * W + (e % ((long long)C * H * W))] = sum;
  }
}

// y[n0 + n, o, l] = product[o, n L + l] + b[o]   (product is O x nb L).
extern "C" __global__ void columns_to_nchw(const float* __restrict__ product, const float* __restrict__ b,
                                float* __restrict__ y, int n0, int nb, int O, int L, int has_bias) {
  const long long total = (long long)nb * O * L;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const int l = e % L, o = (e / L) % O;
    const long long n = e / ((long long)L * O);
    y[(n0 + n) * O * L + (long long)o * L + l] = product[(long long)o * nb * L + n * L + l] + (has_bias ? b[o] : 0.0f);
  }
}

// out[o, n L + l] = gy[n0 + n, o, l]   (out is O x nb L).
extern "C" __global__ void nchw_to_columns(const float* __restrict__ grad_y, float* __restrict__ out, int n0, int nb, int O,
                                int L) {
  const long long total = (long long)nb * O * L;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const int l = e % L, o = (e / L) % O;
    const long long n = e / ((long long)L * O);
    out[(long long)o * nb * L + n * L + l] = grad_y[(n0 + n) * O * L + (long long)o * L + l];
  }
}

// =======================================================================================
// Implicit GEMM: the products above without the column buffer. Each is a GEMM whose
// operands are gathered from the tensors as the tiles are staged (what cuDNN calls implicit
// precomputed-free GEMM), tiled like gemm.cu's sgemm_tiled: 256 threads, a 128 x 128 tile
// of the result, 8-deep slices of the reduction, 8 x 8 results a thread (rows ty + 16 i,
// columns tx + 16 j), shared-memory staging of both operands.
//   forward          y (O x N L)      = W (O x C K K)      col (C K K x N L)
//   backward data    gx (C x N H W)   = W^T (C x O K K)    gy-gather (O K K x N H W)
//   backward weights gW (O x C K K)   = gy (O x N L)       col^T (N L x C K K), split-K:
//                    blockIdx.z takes one slice of the N L reduction and writes a partial
//                    tile to a workspace; conv2d_sum_splits adds the slices in a fixed order
//                    (deterministic, no atomics). One 128 x 128 tile can no longer own the
//                    3.2 M-long reduction of VGG's conv1_1 at batch 64.
// The gathers cost integer divisions per staged value instead of the column buffer's
// 4 C K^2 N L bytes of writes and reads. The templates take the kernel size and stride as
// compile-time constants where known (3x3, stride 1: VGG's every layer), 0 = at run time.
// Cost: 2 N O C K^2 L FLOPs each.
#define IG_BM 128
#define IG_BN 128
#define IG_BK 8
#define IG_TM 8
#define IG_TN 8
#define IG_THREADS 256
#define IG_ROW_THREADS (IG_BM / IG_TM)
#define IG_COLUMN_THREADS (IG_BN / IG_TN)
static_assert(IG_ROW_THREADS * IG_COLUMN_THREADS == IG_THREADS, "one thread per 8 x 8 results");

struct ConvShape {
  int N, C, H, W, O, K, stride, pad, Hout, Wout;
};

// The value of the input x that reduction index k = (c K + u) K + v reads for output
// position p = (n Hout + i) Wout + j: x[n, c, i s - p + u, j s - p + v], 0 in the padding.
template <int KS, int ST>
__device__ __forceinline__ float gather_input(const float* __restrict__ x, const ConvShape& s, long long k, long long p) {
  const int K = KS ? KS : s.K, stride = ST ? ST : s.stride;
  const int v = k % K, u = (k / K) % K, c = k / (K * K);
  const int j = p % s.Wout, i = (p / s.Wout) % s.Hout;
  const long long n = p / ((long long)s.Wout * s.Hout);
  const int h = i * stride - s.pad + u, w = j * stride - s.pad + v;
  return (h >= 0 && h < s.H && w >= 0 && w < s.W) ? x[((n * s.C + c) * s.H + h) * s.W + w] : 0.0f;
}

// The 8 x 8 results of this thread over reduction indices [k_begin, k_end): A(m, k) and
// B(k, p) are fetched by the operand functions as each slice is staged.
template <class LoadA, class LoadB>
__device__ __forceinline__ void implicit_gemm(int M, long long P, long long k_begin, long long k_end, LoadA load_a,
                                              LoadB load_b, float accumulator[IG_TM][IG_TN]) {
  __shared__ float As[IG_BK][IG_BM];
  __shared__ float Bs[IG_BK][IG_BN];
  const int t = threadIdx.x, ty = t / IG_COLUMN_THREADS, tx = t % IG_COLUMN_THREADS;
  const int row0 = blockIdx.y * IG_BM;
  const long long col0 = (long long)blockIdx.x * IG_BN;
  for (int i = 0; i < IG_TM; ++i)
    for (int j = 0; j < IG_TN; ++j) accumulator[i][j] = 0.0f;
  for (long long k0 = k_begin; k0 < k_end; k0 += IG_BK) {
    for (int e = t; e < IG_BM * IG_BK; e += IG_THREADS) {  // consecutive threads: consecutive k
      const int m = e / IG_BK, k = e % IG_BK;
      As[k][m] = (row0 + m < M && k0 + k < k_end) ? load_a(row0 + m, k0 + k) : 0.0f;
    }
    for (int e = t; e < IG_BN * IG_BK; e += IG_THREADS) {  // consecutive threads: consecutive p
      const int k = e / IG_BN, n = e % IG_BN;
      Bs[k][n] = (col0 + n < P && k0 + k < k_end) ? load_b(k0 + k, col0 + n) : 0.0f;
    }
    __syncthreads();
    for (int k = 0; k < IG_BK; ++k) {
      float a[IG_TM], b[IG_TN];
      for (int i = 0; i < IG_TM; ++i) a[i] = As[k][ty + IG_ROW_THREADS * i];
      for (int j = 0; j < IG_TN; ++j) b[j] = Bs[k][tx + IG_COLUMN_THREADS * j];
      for (int i = 0; i < IG_TM; ++i)
        for (int j = 0; j < IG_TN; ++j) accumulator[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
}

template <int KS, int ST>
__device__ __forceinline__ void conv2d_forward_implicit_body(const float* __restrict__ x, const float* __restrict__ w,
                                                             const float* __restrict__ b, float* __restrict__ y,
                                                             ConvShape s, int has_bias) {
  const long long L = (long long)s.Hout * s.Wout, P = s.N * L, reduction = (long long)s.C * s.K * s.K;
  float accumulator[IG_TM][IG_TN];
  implicit_gemm(s.O, P, 0, reduction, [&](int m, long long k) { return w[m * reduction + k]; },
                [&](long long k, long long p) { return gather_input<KS, ST>(x, s, k, p); }, accumulator);
  const int ty = threadIdx.x / IG_COLUMN_THREADS, tx = threadIdx.x % IG_COLUMN_THREADS;
  for (int i = 0; i < IG_TM; ++i) {
    const int o = blockIdx.y * IG_BM + ty + IG_ROW_THREADS * i;
    if (o >= s.O) continue;
    for (int j = 0; j < IG_TN; ++j) {
      const long long p = (long long)blockIdx.x * IG_BN + tx + IG_COLUMN_THREADS * j;
      if (p >= P) continue;
      const long long n = p / L, l = p % L;
      y[(n * s.O + o) * L + l] = accumulator[i][j] + (has_bias ? b[o] : 0.0f);
    }
  }
}

template <int KS, int ST>
__device__ __forceinline__ void conv2d_backward_data_implicit_body(const float* __restrict__ grad_y,
                                                                   const float* __restrict__ w,
                                                                   float* __restrict__ grad_x, ConvShape s) {
  const int K = KS ? KS : s.K, stride = ST ? ST : s.stride;
  const long long P = (long long)s.N * s.H * s.W, reduction = (long long)s.O * K * K;
  float accumulator[IG_TM][IG_TN];
  implicit_gemm(s.C, P, 0, reduction,
                [&](int c, long long k) {  // W^T: k = (o K + u) K + v
                  const int v = k % K, u = (k / K) % K, o = k / (K * K);
                  return w[((o * s.C + c) * K + u) * K + v];
                },
                [&](long long k, long long p) {  // gy[n, o, (h + pad - u) / s, (w + pad - v) / s] where exact
                  const int v = k % K, u = (k / K) % K, o = k / (K * K);
                  const int col = p % s.W, h = (p / s.W) % s.H;
                  const long long n = p / ((long long)s.W * s.H);
                  const int top = h + s.pad - u, left = col + s.pad - v;
                  if (top < 0 || left < 0 || top % stride || left % stride) return 0.0f;
                  const int i = top / stride, j = left / stride;
                  return (i < s.Hout && j < s.Wout) ? grad_y[((n * s.O + o) * s.Hout + i) * s.Wout + j] : 0.0f;
                },
                accumulator);
  const int ty = threadIdx.x / IG_COLUMN_THREADS, tx = threadIdx.x % IG_COLUMN_THREADS;
  const long long plane = (long long)s.H * s.W;
  for (int i = 0; i < IG_TM; ++i) {
    const int c = blockIdx.y * IG_BM + ty + IG_ROW_THREADS * i;
    if (c >= s.C) continue;
    for (int j = 0; j < IG_TN; ++j) {
      const long long p = (long long)blockIdx.x * IG_BN + tx + IG_COLUMN_THREADS * j;
      if (p >= P) continue;
      grad_x[((p / plane) * s.C + c) * plane + p % plane] = accumulator[i][j];
    }
  }
}

// Writes slice blockIdx.z of the split reduction to partial[z] (O x C K K each).
template <int KS, int ST>
__device__ __forceinline__ void conv2d_backward_weights_splitk_body(const float* __restrict__ grad_y,
                                                                    const float* __restrict__ x,
                                                                    float* __restrict__ partial, ConvShape s,
                                                                    long long slice) {
  const long long L = (long long)s.Hout * s.Wout, reduction = s.N * L, P = (long long)s.C * s.K * s.K;
  const long long k_begin = blockIdx.z * slice, k_end = k_begin + slice < reduction ? k_begin + slice : reduction;
  float accumulator[IG_TM][IG_TN];
  implicit_gemm(s.O, P, k_begin, k_end,
                [&](int o, long long k) { return grad_y[((k / L) * s.O + o) * L + k % L]; },
                [&](long long k, long long p) { return gather_input<KS, ST>(x, s, p, k); }, accumulator);
  const int ty = threadIdx.x / IG_COLUMN_THREADS, tx = threadIdx.x % IG_COLUMN_THREADS;
  float* out = partial + (long long)blockIdx.z * s.O * P;
  for (int i = 0; i < IG_TM; ++i) {
    const int o = blockIdx.y * IG_BM + ty + IG_ROW_THREADS * i;
    if (o >= s.O) continue;
    for (int j = 0; j < IG_TN; ++j) {
      const long long p = (long long)blockIdx.x * IG_BN + tx + IG_COLUMN_THREADS * j;
      if (p < P) out[o * P + p] = accumulator[i][j];
    }
  }
}

#define CONV_SHAPE ConvShape{N, C, H, W, O, K, stride, pad, Hout, Wout}

extern "C" __global__ void __launch_bounds__(IG_THREADS) conv2d_forward_implicit(
    const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b, float* __restrict__ y,
    int N, int C, int H, int W, int O, int K, int stride, int pad, int Hout, int Wout, int has_bias) {
  conv2d_forward_implicit_body<0, 0>(x, w, b, y, CONV_SHAPE, has_bias);
}

extern "C" __global__ void __launch_bounds__(IG_THREADS) conv2d_forward_implicit_3x3s1(
    const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b, float* __restrict__ y,
    int N, int C, int H, int W, int O, int K, int stride, int pad, int Hout, int Wout, int has_bias) {
  conv2d_forward_implicit_body<3, 1>(x, w, b, y, CONV_SHAPE, has_bias);
}

extern "C" __global__ void __launch_bounds__(IG_THREADS) conv2d_backward_data_implicit(
    const float* __restrict__ grad_y, const float* __restrict__ w, float* __restrict__ grad_x, int N, int C, int H, int W, int O, int K, int stride, int pad, int Hout, int Wout) {
  conv2d_backward_data_implicit_body<0, 0>(grad_y, w, grad_x, CONV_SHAPE);
}

extern "C" __global__ void __launch_bounds__(IG_THREADS) conv2d_backward_data_implicit_3x3s1(
    const float* __restrict__ grad_y, const float* __restrict__ w, float* __restrict__ grad_x, int N, int C, int H, int W, int O, int K, int stride, int pad, int Hout, int Wout) {
  conv2d_backward_data_implicit_body<3, 1>(grad_y, w, grad_x, CONV_SHAPE);
}

extern "C" __global__ void __launch_bounds__(IG_THREADS) conv2d_backward_weights_splitk(
    const float* __restrict__ grad_y, const float* __restrict__ x, float* __restrict__ partial, int N, int C, int H, int W, int O, int K, int stride, int pad, int Hout, int Wout,
    long long slice) {
  conv2d_backward_weights_splitk_body<0, 0>(grad_y, x, partial, CONV_SHAPE, slice);
}

extern "C" __global__ void __launch_bounds__(IG_THREADS) conv2d_backward_weights_splitk_3x3s1(
    const float* __restrict__ grad_y, const float* __restrict__ x, float* __restrict__ partial, int N, int C, int H, int W, int O, int K, int stride, int pad, int Hout, int Wout,
    long long slice) {
  conv2d_backward_weights_splitk_body<3, 1>(grad_y, x, partial, CONV_SHAPE, slice);
}

// grad_w[e] = sum over z of partial[z, e], z in order: the split-K reduction, deterministic.
extern "C" __global__ void conv2d_sum_splits(const float* __restrict__ partial, float* __restrict__ grad_w,
                                             long long count, int splits) {
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < count; e += (long long)gridDim.x * blockDim.x) {
    float total = 0.0f;
    for (int z = 0; z < splits; ++z) total += partial[z * count + e];
    grad_w[e] = total;
  }
}
