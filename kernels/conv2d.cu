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
// im2col versions: the column buffer plus the engine's SGEMM (gemm.py), on a chunk of
// `nb` images at a time (the chunk bounds the column buffer); the engine takes them for the
// backward-data of strided or few-channel convolutions and for small-map weight gradients:
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
// precomputed-free GEMM), tiled like gemm.cu's sgemm_pipelined: 256 threads, a 128 x 128
// tile of the result (or 64 x 256; or 128 threads of 8 x 16 results: Tile below), 8-deep
// slices of the reduction staged in two shared-memory buffers, 8 x 8 results a thread in
// the warp-tile layout.
//   forward          y (O x N L)      = W (O x C K K)      col (C K K x N L)
//   backward data    gx (C x N H W)   = W^T (C x O K K)    gy-gather (O K K x N H W)
//   backward weights gW (O x C K K)   = gy (O x N L)       col^T (N L x C K K)
// Split-K, in every direction: blockIdx.z takes one slice of the reduction and writes its
// tile to plane z of a workspace; conv2d_sum_splits adds the planes in a fixed order
// (deterministic, no atomics), and the bias. The host splits where that finishes sooner,
// counting whole waves (gemm.py: split_k_slices): the weight gradient always (a 3.2 M-long
// reduction for VGG's conv1_1 at batch 64), the other two at batch 1 (VGG's 14 x 14 layers:
// 8 tiles, 4608 deep). Gathers: a thread stages the same column of B at every slice (column
// t % 128, depths t / 128 + 2 q on the square tile) and the same depth of A (t % 8, rows
// t / 8 + 32 q), so the position a column stands for (image, row, column) is decoded once
// per block, not once per staged value; what varies with the depth is decoded with the
// kernel size a compile-time constant where known (3x3 and 1x1 at stride 1: VGG's every
// layer, EfficientNet's pointwise ones; 0 = at run time). Indices are
// 32-bit (conv2d.py checks that every tensor has fewer than 2^31 elements): a 64-bit
// division is a long software routine on a GPU, a 32-bit one a few instructions.
// Cost: 2 N O C K^2 L FLOPs each.
#include "async_copy.cuh"
#define IG_BK 8
#define IG_TM 8
#define IG_TN 8
#define IG_THREADS 256
#define IG_WARP_ROWS 64  // a warp's rows of results
// A staged slice's rows are IG_PAD floats longer than the tile: a warp stages A (and the
// weight gradient's B) at 8 depths at once, one row each, and rows of a multiple of 32
// floats start in the same bank, so its stores were 8-way bank conflicts (8 wavefronts a
// store; 1.7 times the shared-memory wavefronts a block the products need, 2.4-2.7 times in
// the weight gradient, as python -m deepinside.kernels.banks counts them). Rows 4 floats
// longer start 4 banks apart and the 8 depths cover the 32 banks; a row's float4 reads
// stay 16-byte aligned.
#define IG_PAD 4
// The block tiles: square, and wide for products of at most 64 rows (the 64-channel
// convolutions: VGG's conv1_x and conv2_1, CNN-F's conv2 backward-data), where the square
// tile's lower half would be padding (run 3 measured those layers at 18 TFLOP/s against
// 35 for the others).
#define IG_BM 128
#define IG_BN 128
#define IG_WIDE_BM 64
#define IG_WIDE_BN 256
// The 8 x 16 variant (gemm.cu's v11 idea): 128 threads of 8 x 16 results on the same tiles.
#define IG_8X16_THREADS 128

// A block's BM x BN tile of the result: THREADS threads of 8 x TN results, in warps of 64 x
// 4 TN results (BM / 64 warps down), each lane 2 x (TN / 4) sub-blocks of 4 x 4 results 32
// rows and 16 columns apart (gemm.cu's warp tiling, v7): a thread reads its operands from
// shared memory as float4s (2 + TN / 4 reads per 8 TN FMAs) and a warp's reads cover few
// banks. A thread stages A's rows first + SPREAD q (first = t / 8) at depth t % 8. STAGES:
// the slices' shared buffers, 2 staged through registers, more copied by cp.async
// (implicit_gemm, below).
template <int BM_, int BN_, int THREADS_ = IG_THREADS, int TN_ = IG_TN, int STAGES_ = 2>
struct Tile {
  static constexpr int BM = BM_, BN = BN_, THREADS = THREADS_, TN = TN_, STAGES = STAGES_;
  static constexpr int WARP_COLUMNS = 4 * TN, WARPS_ACROSS = BN / WARP_COLUMNS;
  static constexpr int SPREAD = THREADS / IG_BK;  // between a thread's rows (or columns) at one depth
  static constexpr int A_VALUES = BM * IG_BK / THREADS;  // values of A a thread stages a slice
  static constexpr int B_VALUES = BN * IG_BK / THREADS;  // and of B
  static_assert((BM / IG_WARP_ROWS) * WARPS_ACROSS * 32 == THREADS, "the warps tile the block");
  static_assert((BM / IG_TM) * (BN / TN) == THREADS, "one thread per 8 x TN results");
  static_assert(BM * IG_BK % THREADS == 0 && BN * IG_BK % THREADS == 0, "whole staging rounds");
  // Where accumulator[i][j] of this thread lies in the tile.
  __device__ static __forceinline__ int row(int i) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    return (warp / WARPS_ACROSS) * IG_WARP_ROWS + (lane / 4) * 4 + (i / 4) * 32 + i % 4;
  }
  __device__ static __forceinline__ int column(int j) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    return (warp % WARPS_ACROSS) * WARP_COLUMNS + (lane % 4) * 4 + (j / 4) * 16 + j % 4;
  }
};
using SquareTile = Tile<IG_BM, IG_BN>;
using WideTile = Tile<IG_WIDE_BM, IG_WIDE_BN>;
using SquareTile8x16 = Tile<IG_BM, IG_BN, IG_8X16_THREADS, 16>;
using WideTile8x16 = Tile<IG_WIDE_BM, IG_WIDE_BN, IG_8X16_THREADS, 16>;  // two columns of B a thread
// The asynchronous variant (gemm.cu's v12 idea): the same tiles, slices copied by cp.async
// into IG_ASYNC_STAGES buffers.
#define IG_ASYNC_STAGES 4
using SquareTileAsync = Tile<IG_BM, IG_BN, IG_THREADS, IG_TN, IG_ASYNC_STAGES>;
using WideTileAsync = Tile<IG_WIDE_BM, IG_WIDE_BN, IG_THREADS, IG_TN, IG_ASYNC_STAGES>;

struct ConvShape {
  int N, C, H, W, O, K, stride, pad, Hout, Wout;
};

// The operands. A thread stages A's rows first + SPREAD q (first = t / 8; q < Tile::A_VALUES)
// at one depth of each slice (t % 8): consecutive threads read consecutive depths,
// contiguous in every A below. Its B values are staged one of two ways, whichever keeps a
// warp's reads contiguous: one column at several depths (column t % BN, depths
// t / BN + (THREADS / BN) q; on a tile wider than the block, columns t and t + THREADS at
// every depth; the forward and backward-data gathers, contiguous along output or input
// positions), or, like A, columns first + SPREAD q at one depth (DEPTH_FASTEST; the
// weight gradient's gather, contiguous along the reduction's positions, whose columns
// (c, u, v) lie planes apart). Either way what is fixed for the thread is decoded once per
// block (select: A's first row, its others SPREAD apart), what varies once per slice (at),
// and a value is then an add: locate(q, offset) sets `offset` to where value q lies after
// base() and says whether it lies inside the tensor (else it is a 0 of the padding).

// Forward A(o, k): the weights as an O x C K K matrix.
template <int SPREAD>
struct Weights {
  const float* w;
  int reduction;
  int rows, depth;  // offsets of the first selected row and of the slice's depth
  __device__ void select(int o) { rows = o * reduction; }
  __device__ void start(int) {}  // (beside a depth-fastest B: products_wide's transposed one)
  __device__ void at(int k) { depth = k; }
  __device__ const float* base() const { return w; }
  __device__ bool locate(int q, int& offset) const { return offset = rows + depth + q * SPREAD * reduction, true; }
};

// Backward-data A(c, k) for k = (o K + u) K + v: the weights transposed, W^T.
template <int KS, int SPREAD>
struct TransposedWeights {
  const float* w;
  ConvShape s;
  int rows, depth;
  __device__ void select(int c) { rows = c * (KS ? KS * KS : s.K * s.K); }
  __device__ void at(int k) {
    const int KK = KS ? KS * KS : s.K * s.K, o = k / KK;
    depth = o * s.C * KK + (k - o * KK);
  }
  __device__ const float* base() const { return w; }
  __device__ bool locate(int q, int& offset) const {
    return offset = rows + depth + q * SPREAD * (KS ? KS * KS : s.K * s.K), true;
  }
};

// Weight-gradient A(o, k) for k = (n Hout + i) Wout + j: grad_y as an O x N L matrix. Its
// position (k, IG_BK further each slice) decoded with divisions at every slice, or, STEPPED,
// once before the first (start) and stepped without them after (at): 3 of the splitk
// kernel's run-time divisions a slice, 50-60 of its main loop's 750-835 instructions, which
// the stepped state's registers repay on sm_90 in splitk and not within two_blocks's 128.
template <int SPREAD, bool STEPPED>
struct OutputGradients {
  const float* grad_y;
  ConvShape s;
  int rows, depth;
  int l;  // STEPPED: the position within its image, k - n L
  __device__ void select(int o) { rows = o * s.Hout * s.Wout; }
  __device__ void start(int k) {
    if constexpr (STEPPED) {
      const int L = s.Hout * s.Wout, n = k / L;
      l = k - n * L - IG_BK;  // a slice before k: at() steps onto it
      depth = n * s.O * L + l;
    }
  }
  __device__ void at(int k) {
    const int L = s.Hout * s.Wout;
    if constexpr (STEPPED) {
      l += IG_BK, depth += IG_BK;
      while (l >= L) l -= L, depth += (s.O - 1) * L;
    } else {
      const int n = k / L;
      depth = n * s.O * L + (k - n * L);
    }
  }
  __device__ const float* base() const { return grad_y; }
  __device__ bool locate(int q, int& offset) const {
    return offset = rows + depth + q * SPREAD * s.Hout * s.Wout, true;
  }
};

// Forward B(k, p): the im2col value x[n, c, i s - pad + u, j s - pad + v] for
// k = (c K + u) K + v and p = (n Hout + i) Wout + j, 0 in the padding.
template <int KS, int ST>
struct InputPatches {
  static constexpr bool DEPTH_FASTEST = false;
  const float* x;
  ConvShape s;
  const float* image;
  int top, left;  // the selected position's window corner
  __device__ void select(int p) {
    const int L = s.Hout * s.Wout, n = p / L, l = p - n * L, i = l / s.Wout;
    image = x + n * s.C * s.H * s.W;
    top = i * (ST ? ST : s.stride) - s.pad;
    left = (l - i * s.Wout) * (ST ? ST : s.stride) - s.pad;
  }
  __device__ const float* base() const { return image; }
  __device__ bool locate(int k, int& offset) const {
    const int K = KS ? KS : s.K, c = k / (K * K), uv = k - c * K * K, u = uv / K, h = top + u, w = left + uv - u * K;
    offset = (c * s.H + h) * s.W + w;
    return h >= 0 && h < s.H && w >= 0 && w < s.W;
  }
};

// Backward-data B(k, p): gy[n, o, (h + pad - u) / s, (w + pad - v) / s] where the division
// is exact and in range, for k = (o K + u) K + v and p = (n H + h) W + w.
template <int KS, int ST>
struct GradientPatches {
  static constexpr bool DEPTH_FASTEST = false;
  const float* grad_y;
  ConvShape s;
  const float* image;
  int h_padded, w_padded;  // the selected input position, in padded coordinates
  __device__ void select(int p) {
    const int plane = s.H * s.W, n = p / plane, hw = p - n * plane;
    image = grad_y + n * s.O * s.Hout * s.Wout;
    h_padded = hw / s.W + s.pad;
    w_padded = hw - (hw / s.W) * s.W + s.pad;
  }
  __device__ const float* base() const { return image; }
  __device__ bool locate(int k, int& offset) const {
    const int K = KS ? KS : s.K, stride = ST ? ST : s.stride;
    const int o = k / (K * K), uv = k - o * K * K, u = uv / K, top = h_padded - u, left = w_padded - (uv - u * K);
    const int i = top / stride, j = left / stride;
    offset = (o * s.Hout + i) * s.Wout + j;
    return top >= 0 && left >= 0 && top % stride == 0 && left % stride == 0 && i < s.Hout && j < s.Wout;
  }
};

// Weight-gradient B(k, p): the im2col value x[n, c, i s - pad + u, j s - pad + v] for the
// reduction's position k = (n Hout + i) Wout + j and column p = (c K + u) K + v; COLUMNS:
// how many columns a thread stages (Tile::B_VALUES); STEPPED as OutputGradients.
template <int KS, int ST, int COLUMNS, bool STEPPED>
struct PatchColumns {
  static constexpr bool DEPTH_FASTEST = true;
  const float* x;
  ConvShape s;
  int column[COLUMNS];    // c 2^16 + u 2^8 + v of each selected column (conv2d.py: C < 2^16, K < 2^8)
  int image, top, left;   // at the slice's position: n C H W, i s - pad, j s - pad
  int i, j;               // STEPPED: the position's row and column
  __device__ void select(int q, int p) {
    const int K = KS ? KS : s.K, c = p / (K * K), u = (p - c * K * K) / K;
    column[q] = (c << 16) | (u << 8) | (p - c * K * K - u * K);
  }
  __device__ void start(int k) {
    if constexpr (STEPPED) {
      const int L = s.Hout * s.Wout, n = k / L, l = k - n * L;
      image = n * s.C * s.H * s.W;
      i = l / s.Wout;
      j = l - i * s.Wout - IG_BK;  // a slice before k
    }
  }
  __device__ void at(int k) {
    const int stride = ST ? ST : s.stride;
    if constexpr (STEPPED) {
      for (j += IG_BK; j >= s.Wout; j -= s.Wout)
        if (++i == s.Hout) i = 0, image += s.C * s.H * s.W;
    } else {
      const int L = s.Hout * s.Wout, n = k / L, l = k - n * L;
      image = n * s.C * s.H * s.W;
      i = l / s.Wout;
      j = l - i * s.Wout;
    }
    top = i * stride - s.pad;
    left = j * stride - s.pad;
  }
  __device__ const float* base() const { return x; }
  __device__ bool locate(int q, int& offset) const {
    const int h = top + ((column[q] >> 8) & 0xff), w = left + (column[q] & 0xff);
    offset = image + ((column[q] >> 16) * s.H + h) * s.W + w;
    return h >= 0 && h < s.H && w >= 0 && w < s.W;
  }
};

// Value q (or k) of an operand: 0 in the padding.
template <class Operand>
__device__ __forceinline__ float gather(const Operand& operand, int q) {
  int offset;
  return operand.locate(q, offset) ? operand.base()[offset] : 0.0f;
}

// The 8 x TN results of this thread over reduction indices [k_begin, k_end) of A (M rows)
// times B (P columns), A and B gathered by the operands as each slice is staged, in this
// block's Tile, whose STAGES say how:
//   2: as gemm.cu's v8, two shared buffers, one barrier a slice; the gathers of slice k + 1
//      in flight into registers while slice k is multiplied, then stored;
//   more: as gemm.cu's v12, each value copied into shared memory by cp.async (a copy of
//      nothing, zeros, in the padding), STAGES - 1 slices in flight, no staging registers.
template <class Tile, class OperandA, class OperandB>
__device__ __forceinline__ void implicit_gemm(int M, int P, int k_begin, int k_end, OperandA load_a, OperandB load_b,
                                              float* shared, float accumulator[IG_TM][Tile::TN]) {
  // [STAGES][IG_BK][BM + IG_PAD], then B's
  auto As = reinterpret_cast<float(*)[IG_BK][Tile::BM + IG_PAD]>(shared);
  auto Bs = reinterpret_cast<float(*)[IG_BK][Tile::BN + IG_PAD]>(shared + Tile::STAGES * IG_BK * (Tile::BM + IG_PAD));
  constexpr bool B_BY_DEPTH = OperandB::DEPTH_FASTEST;
  constexpr int A_VALUES = Tile::A_VALUES, B_VALUES = Tile::B_VALUES, SPREAD = Tile::SPREAD, TN = Tile::TN;
  // A column-fastest B: ACROSS threads a row of the tile, each with GROUPS columns ACROSS
  // apart (two on a tile wider than the block), at depths b_depth + B_SPREAD d.
  constexpr int ACROSS = Tile::BN < Tile::THREADS ? Tile::BN : Tile::THREADS, GROUPS = Tile::BN / ACROSS;
  constexpr int B_SPREAD = Tile::THREADS / ACROSS, B_DEPTHS = B_VALUES / GROUPS;
  static_assert(B_DEPTHS * B_SPREAD == IG_BK, "a column-fastest B covers the slice's depths");
  const int t = threadIdx.x, row0 = blockIdx.y * Tile::BM, col0 = blockIdx.x * Tile::BN;
  const int depth = t % IG_BK, first = t / IG_BK;  // A's (and a depth-fastest B's) rows first + SPREAD q
  const int b_column = t % ACROSS, b_depth = t / ACROSS;
  OperandB b_columns[GROUPS];  // a column-fastest B's selected columns
  bool b_inside[GROUPS];
  load_a.select(row0 + first);  // rows past M are selected but never read
  if constexpr (B_BY_DEPTH) {  // the weight gradient's, whose positions may be stepped from here
    for (int q = 0; q < B_VALUES; ++q)
      if (col0 + first + q * SPREAD < P) load_b.select(q, col0 + first + q * SPREAD);
    load_a.start(k_begin + depth);
    load_b.start(k_begin + depth);
  }
  if constexpr (!B_BY_DEPTH) {
    for (int g = 0; g < GROUPS; ++g) {
      b_columns[g] = load_b;
      b_inside[g] = col0 + b_column + g * ACROSS < P;
      if (b_inside[g]) b_columns[g].select(col0 + b_column + g * ACROSS);
    }
  }
#pragma unroll
  for (int i = 0; i < IG_TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) accumulator[i][j] = 0.0f;
  const int row = Tile::row(0), col = Tile::column(0);
  // accumulator += the products of one staged slice, read as float4s
  auto multiply_slice = [&](const float (*a_slice)[Tile::BM + IG_PAD], const float (*b_slice)[Tile::BN + IG_PAD]) {
#pragma unroll
    for (int k = 0; k < IG_BK; ++k) {
      float a[IG_TM], b[TN];
#pragma unroll
      for (int s = 0; s < 2; ++s) {  // the sub-blocks' rows, 32 apart
        const float4 v = *reinterpret_cast<const float4*>(&a_slice[k][row + s * 32]);
        a[4 * s] = v.x, a[4 * s + 1] = v.y, a[4 * s + 2] = v.z, a[4 * s + 3] = v.w;
      }
#pragma unroll
      for (int s = 0; s < TN / 4; ++s) {  // and columns, 16 apart
        const float4 v = *reinterpret_cast<const float4*>(&b_slice[k][col + s * 16]);
        b[4 * s] = v.x, b[4 * s + 1] = v.y, b[4 * s + 2] = v.z, b[4 * s + 3] = v.w;
      }
#pragma unroll
      for (int i = 0; i < IG_TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) accumulator[i][j] += a[i] * b[j];
    }
  };
  if constexpr (Tile::STAGES == 2) {
    float a_staged[A_VALUES], b_staged[B_VALUES];
    auto fetch = [&](int k0) {
      const bool inside = k0 + depth < k_end;
      if (inside) load_a.at(k0 + depth);
      for (int q = 0; q < A_VALUES; ++q)
        a_staged[q] = (inside && row0 + first + q * SPREAD < M) ? gather(load_a, q) : 0.0f;
      if constexpr (B_BY_DEPTH) {
        if (inside) load_b.at(k0 + depth);
        for (int q = 0; q < B_VALUES; ++q)
          b_staged[q] = (inside && col0 + first + q * SPREAD < P) ? gather(load_b, q) : 0.0f;
      } else {
        for (int g = 0; g < GROUPS; ++g)
          for (int d = 0; d < B_DEPTHS; ++d) {
            const int k = k0 + b_depth + d * B_SPREAD;
            b_staged[g * B_DEPTHS + d] = (b_inside[g] && k < k_end) ? gather(b_columns[g], k) : 0.0f;
          }
      }
    };
    auto store = [&](int buffer) {
      for (int q = 0; q < A_VALUES; ++q) As[buffer][depth][first + q * SPREAD] = a_staged[q];
      for (int q = 0; q < B_VALUES; ++q) {
        if constexpr (B_BY_DEPTH) Bs[buffer][depth][first + q * SPREAD] = b_staged[q];
        else Bs[buffer][b_depth + (q % B_DEPTHS) * B_SPREAD][b_column + (q / B_DEPTHS) * ACROSS] = b_staged[q];
      }
    };
    fetch(k_begin);
    store(0);
    __syncthreads();
    for (int k0 = k_begin, buffer = 0; k0 < k_end; k0 += IG_BK, buffer ^= 1) {
      const bool more = k0 + IG_BK < k_end;
      if (more) fetch(k0 + IG_BK);
      multiply_slice(As[buffer], Bs[buffer]);
      if (more) store(buffer ^ 1);
      __syncthreads();  // every thread is done with `buffer` and has written the next one
    }
  } else {
    // slice `slice` of this block's range copied into its stage's buffers: each value of
    // fetch() above straight to its place of store(), a copy of nothing (zeros) where the
    // value is outside, naming a readable address all the same (A's tensor)
    const int slices = (k_end - k_begin + IG_BK - 1) / IG_BK;
    auto copy = [&](int slice) {
      const int k0 = k_begin + slice * IG_BK, stage = slice % Tile::STAGES;
      int offset;  // set by locate() where the value is inside
      auto to = [&](float* slot, bool inside, const float* base) {
        cp_async_4(slot, inside ? base + offset : load_a.base(), inside);
      };
      const bool inside = k0 + depth < k_end;
      if (inside) load_a.at(k0 + depth);
      for (int q = 0; q < A_VALUES; ++q) {
        const bool found = inside && row0 + first + q * SPREAD < M && load_a.locate(q, offset);
        to(&As[stage][depth][first + q * SPREAD], found, load_a.base());
      }
      if constexpr (B_BY_DEPTH) {
        if (inside) load_b.at(k0 + depth);
        for (int q = 0; q < B_VALUES; ++q) {
          const bool found = inside && col0 + first + q * SPREAD < P && load_b.locate(q, offset);
          to(&Bs[stage][depth][first + q * SPREAD], found, load_b.base());
        }
      } else {
        for (int g = 0; g < GROUPS; ++g)
          for (int d = 0; d < B_DEPTHS; ++d) {
            const int k = k0 + b_depth + d * B_SPREAD;
            const bool found = b_inside[g] && k < k_end && b_columns[g].locate(k, offset);
            to(&Bs[stage][b_depth + d * B_SPREAD][b_column + g * ACROSS], found, b_columns[g].base());
          }
      }
    };
    async_slices<Tile::STAGES>(slices, copy, [&](int stage) { multiply_slice(As[stage], Bs[stage]); });
    // (the epilogue that reuses the buffers waits for the products first: store_nchw)
  }
}

// This block's slice of a reduction split into `slice`-long pieces: [begin, end).
__device__ __forceinline__ void split_range(int reduction, int slice, int& begin, int& end) {
  begin = blockIdx.z * slice;
  end = begin + slice < reduction ? begin + slice : reduction;
}

// Stores this thread's 8 x TN results (rows: channels, columns: positions) into an
// N x rows x plane tensor (NCHW): out[(n rows + row) plane + position % plane]. A thread's
// columns come in runs of 4 consecutive positions starting at a multiple of 4; where planes
// hold a multiple of 4 positions such a run lies in one plane and is 16-byte aligned, and
// goes out as one float4 (a warp then writes 8 rows of 64 contiguous bytes, where 4-byte
// stores 4 apart used a quarter of each sector they touched: what the small-reduction
// layers, VGG's conv1_1 and the 1x1 convolutions, are bound by). Other planes (CNN-F's 27 x
// 27 and 13 x 13, EfficientNet's 7 x 7) go through shared memory, the block's buffer free
// once its products are done: for each of its 8 result rows, each warp writes its 8 rows of
// 4 TN positions there and reads them back a row at a time, lane by lane, so that a warp
// stores 32 consecutive positions of a row at once (at most 5 sectors where 4-byte stores 4
// positions apart touched 16: python -m deepinside.kernels.sectors).
template <class Tile>
__device__ __forceinline__ void store_nchw(float* __restrict__ out, int rows, int P, int plane,
                                           const float* __restrict__ bias, float accumulator[IG_TM][Tile::TN],
                                           float* shared) {
  if (plane % 4 == 0 && (unsigned long long)out % 16 == 0) {
#pragma unroll
    for (int s = 0; s < Tile::TN / 4; ++s) {
      const int p = blockIdx.x * Tile::BN + Tile::column(4 * s);  // a run of 4 positions
      if (p >= P) continue;
      const int n = p / plane;
      float* image = out + (long long)n * rows * plane + (p - n * plane);
#pragma unroll
      for (int i = 0; i < IG_TM; ++i) {
        const int row = blockIdx.y * Tile::BM + Tile::row(i);
        if (row >= rows) continue;
        const float b = bias ? bias[row] : 0.0f;
        const float* run = &accumulator[i][4 * s];  // whole: P, a multiple of the plane, is one of 4
        *reinterpret_cast<float4*>(image + row * plane) = make_float4(run[0] + b, run[1] + b, run[2] + b, run[3] + b);
      }
    }
    return;
  }
  constexpr int COLUMNS = Tile::WARP_COLUMNS, PITCH = COLUMNS + 4;  // a warp's positions; the pad: no bank conflicts
  constexpr int LANE_COLUMNS = COLUMNS / 32;  // a lane's columns of them, 32 apart
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* staged = shared + warp * 8 * PITCH;  // [8][PITCH]: the warp's 8 rows of one step
  const int first_column = blockIdx.x * Tile::BN + (warp % Tile::WARPS_ACROSS) * COLUMNS;
  // Where a lane's positions lie at row 0 (-1 past P): a division each, not one a row.
  // Code size matters here: this epilogue is inlined at every tile and shape of an entry,
  // and its 64 rows a lane fully unrolled with a division each were once most of the
  // kernels' machine code and of conv2d.cu's compile time (NVRTC for sm_90 on a CI machine:
  // 60 s; now 16-21).
  long long at_row_0[LANE_COLUMNS];
#pragma unroll
  for (int q = 0; q < LANE_COLUMNS; ++q) {
    const int position = first_column + lane + 32 * q, n = position / plane;
    at_row_0[q] = position < P ? (long long)n * rows * plane + (position - n * plane) : -1;
  }
#pragma unroll  // accumulator[i] in registers (a loop left rolled put all of it on the stack)
  for (int i = 0; i < IG_TM; ++i) {
    __syncthreads();  // the buffer's last readers (the products, or the step before) are done
#pragma unroll
    for (int j = 0; j < Tile::TN; j += 4)
      *reinterpret_cast<float4*>(&staged[(lane / 4) * PITCH + (lane % 4) * 4 + (j / 4) * 16]) =
          make_float4(accumulator[i][j], accumulator[i][j + 1], accumulator[i][j + 2], accumulator[i][j + 3]);
    __syncthreads();
#pragma unroll 1  // (a small body: rolled, it costs a few instructions a row)
    for (int r = 0; r < 8; ++r) {  // the rows Tile::row(i) of lanes 4 r to 4 r + 3
      const int row = blockIdx.y * Tile::BM + (warp / Tile::WARPS_ACROSS) * IG_WARP_ROWS + r * 4 + (i / 4) * 32 + i % 4;
      if (row >= rows) continue;
      const float b = bias ? bias[row] : 0.0f;
#pragma unroll
      for (int q = 0; q < LANE_COLUMNS; ++q)
        if (at_row_0[q] >= 0) out[at_row_0[q] + (long long)row * plane] = staged[r * PITCH + lane + 32 * q] + b;
    }
  }
}

// y, or plane z of the split-K workspace (then without the bias, which the sum adds).
template <class Tile, int KS, int ST>
__device__ __forceinline__ void conv2d_forward_implicit_body(const float* __restrict__ x, const float* __restrict__ w,
                                                             const float* __restrict__ b, float* __restrict__ y,
                                                             ConvShape s, int has_bias, int slice, float* shared) {
  const int L = s.Hout * s.Wout, P = s.N * L, reduction = s.C * s.K * s.K;
  int k_begin, k_end;
  split_range(reduction, slice, k_begin, k_end);
  float accumulator[IG_TM][Tile::TN];
  implicit_gemm<Tile>(s.O, P, k_begin, k_end, Weights<Tile::SPREAD>{w, reduction}, InputPatches<KS, ST>{x, s},
                      shared, accumulator);
  store_nchw<Tile>(y + (long long)blockIdx.z * P * s.O, s.O, P, L, has_bias && gridDim.z == 1 ? b : nullptr,
                   accumulator, shared);
}

template <class Tile, int KS, int ST>
__device__ __forceinline__ void conv2d_backward_data_implicit_body(const float* __restrict__ grad_y,
                                                                   const float* __restrict__ w,
                                                                   float* __restrict__ grad_x, ConvShape s, int slice,
                                                                   float* shared) {
  const int plane = s.H * s.W, P = s.N * plane, reduction = s.O * s.K * s.K;
  int k_begin, k_end;
  split_range(reduction, slice, k_begin, k_end);
  float accumulator[IG_TM][Tile::TN];
  implicit_gemm<Tile>(s.C, P, k_begin, k_end, TransposedWeights<KS, Tile::SPREAD>{w, s},
                      GradientPatches<KS, ST>{grad_y, s}, shared, accumulator);
  store_nchw<Tile>(grad_x + (long long)blockIdx.z * P * s.C, s.C, P, plane, nullptr, accumulator, shared);
}

// Writes slice blockIdx.z of the N L reduction to partial[z] (O x C K K each).
template <class Tile, bool STEPPED, int KS, int ST>
__device__ __forceinline__ void conv2d_backward_weights_splitk_body(const float* __restrict__ grad_y,
                                                                    const float* __restrict__ x,
                                                                    float* __restrict__ partial, ConvShape s,
                                                                    int slice, float* shared) {
  const int reduction = s.N * s.Hout * s.Wout, P = s.C * s.K * s.K;
  int k_begin, k_end;
  split_range(reduction, slice, k_begin, k_end);
  float accumulator[IG_TM][Tile::TN];
  implicit_gemm<Tile>(s.O, P, k_begin, k_end, OutputGradients<Tile::SPREAD, STEPPED>{grad_y, s},
                      PatchColumns<KS, ST, Tile::B_VALUES, STEPPED>{x, s}, shared, accumulator);
  float* out = partial + (long long)blockIdx.z * s.O * P;
  for (int i = 0; i < IG_TM; ++i) {
    const int o = blockIdx.y * Tile::BM + Tile::row(i);
    if (o >= s.O) continue;
    for (int j = 0; j < Tile::TN; ++j) {
      const int p = blockIdx.x * Tile::BN + Tile::column(j);
      if (p < P) out[o * P + p] = accumulator[i][j];
    }
  }
}

// Two slices of A and of B for the larger tile: the wide one's 64 + 256 rows and columns,
// each padded.
#define IG_SHARED_FLOATS (2 * IG_BK * (IG_WIDE_BM + IG_WIDE_BN + 2 * IG_PAD))
static_assert(IG_WIDE_BM + IG_WIDE_BN >= IG_BM + IG_BN, "the shared buffer holds either tile");

// Each direction on `Tile`, with the kernel size and stride as compile-time constants where
// they are 3x3 or 1x1 at stride 1 (VGG's every layer; the pointwise convolutions of
// MobileNet and EfficientNet), read at run time (0) otherwise: a branch taken once, before
// the loops, in place of a kernel per shape. The forward and backward-data also for 5x5 at
// stride 1 (CNN-F's, AlexNet's and the shipped model's conv2), whose run-time gathers cost
// integer divisions per staged value: on sm_90 their main loops take 1175 (forward) and
// 1718 (backward-data) instructions per 512 FFMAs at run time, 799 and 801 with the
// constants (the H200 had CNN-F's conv2 at 0.34 and 0.17 of the FP32 peak at batch 64). Not
// on the 8 x 16 tiles, slower than the 8 x 8 ones on every layer the H200 timed, whose
// entries would near check.py's size limit; nor the weight gradient, whose gathers decode
// their columns once a block (its loops as long either way).
template <class Tile>
__device__ __forceinline__ void conv2d_forward_implicit_shaped(const float* __restrict__ x,
                                                               const float* __restrict__ w,
                                                               const float* __restrict__ b, float* __restrict__ y,
                                                               ConvShape s, int has_bias, int slice, float* shared) {
  if (s.K == 3 && s.stride == 1) conv2d_forward_implicit_body<Tile, 3, 1>(x, w, b, y, s, has_bias, slice, shared);
  else if (s.K == 1 && s.stride == 1) conv2d_forward_implicit_body<Tile, 1, 1>(x, w, b, y, s, has_bias, slice, shared);
  else if (Tile::TN == IG_TN && s.K == 5 && s.stride == 1)
    conv2d_forward_implicit_body<Tile, 5, 1>(x, w, b, y, s, has_bias, slice, shared);
  else conv2d_forward_implicit_body<Tile, 0, 0>(x, w, b, y, s, has_bias, slice, shared);
}

template <class Tile>
__device__ __forceinline__ void conv2d_backward_data_implicit_shaped(const float* __restrict__ grad_y,
                                                                     const float* __restrict__ w,
                                                                     float* __restrict__ grad_x, ConvShape s,
                                                                     int slice, float* shared) {
  if (s.K == 3 && s.stride == 1) conv2d_backward_data_implicit_body<Tile, 3, 1>(grad_y, w, grad_x, s, slice, shared);
  else if (s.K == 1 && s.stride == 1)
    conv2d_backward_data_implicit_body<Tile, 1, 1>(grad_y, w, grad_x, s, slice, shared);
  else if (Tile::TN == IG_TN && s.K == 5 && s.stride == 1)
    conv2d_backward_data_implicit_body<Tile, 5, 1>(grad_y, w, grad_x, s, slice, shared);
  else conv2d_backward_data_implicit_body<Tile, 0, 0>(grad_y, w, grad_x, s, slice, shared);
}

template <class Tile, bool STEPPED>
__device__ __forceinline__ void conv2d_backward_weights_shaped(const float* __restrict__ grad_y,
                                                               const float* __restrict__ x,
                                                               float* __restrict__ partial, ConvShape s, int slice,
                                                               float* shared) {
  if (s.K == 3 && s.stride == 1)
    conv2d_backward_weights_splitk_body<Tile, STEPPED, 3, 1>(grad_y, x, partial, s, slice, shared);
  else if (s.K == 1 && s.stride == 1)
    conv2d_backward_weights_splitk_body<Tile, STEPPED, 1, 1>(grad_y, x, partial, s, slice, shared);
  else conv2d_backward_weights_splitk_body<Tile, STEPPED, 0, 0>(grad_y, x, partial, s, slice, shared);
}

#define CONV_SHAPE ConvShape{N, C, H, W, O, K, stride, pad, Hout, Wout}
// The entry points, one a direction and version: the shape's constants chosen above, the
// tile by `wide` (conv2d.py, by the product's rows), each a branch taken once a block; one
// shared buffer serves every path.
// __launch_bounds__: the forward and backward-data kernels fit 128 registers, so two blocks
// share an SM; the weight gradient's (two gathers decoded per slice) takes 152-163 where it
// may (splitk, one block an SM) and fits 128 where it must (two_blocks; below).
extern "C" __global__ void __launch_bounds__(IG_THREADS, 2) conv2d_forward_implicit(
    const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b, float* __restrict__ y,
    int N, int C, int H, int W, int O, int K, int stride, int pad, int Hout, int Wout, int has_bias, int slice,
    int wide) {
  __shared__ __align__(16) float shared[IG_SHARED_FLOATS];
  if (wide) conv2d_forward_implicit_shaped<WideTile>(x, w, b, y, CONV_SHAPE, has_bias, slice, shared);
  else conv2d_forward_implicit_shaped<SquareTile>(x, w, b, y, CONV_SHAPE, has_bias, slice, shared);
}

extern "C" __global__ void __launch_bounds__(IG_THREADS, 2) conv2d_backward_data_implicit(
    const float* __restrict__ grad_y, const float* __restrict__ w, float* __restrict__ grad_x, int N, int C, int H,
    int W, int O, int K, int stride, int pad, int Hout, int Wout, int slice, int wide) {
  __shared__ __align__(16) float shared[IG_SHARED_FLOATS];
  if (wide) conv2d_backward_data_implicit_shaped<WideTile>(grad_y, w, grad_x, CONV_SHAPE, slice, shared);
  else conv2d_backward_data_implicit_shaped<SquareTile>(grad_y, w, grad_x, CONV_SHAPE, slice, shared);
}

// IG_ASYNC_STAGES slices of A and of B for the larger tile.
#define IG_ASYNC_SHARED_FLOATS (IG_ASYNC_STAGES * IG_BK * (IG_WIDE_BM + IG_WIDE_BN + 2 * IG_PAD))

// The asynchronous variant of the forward and backward-data: the implicit GEMM's gathers
// copied into shared memory by cp.async, each value 4 bytes (a gather has no vector to
// copy), IG_ASYNC_STAGES - 1 slices in flight instead of one, no staging registers; 42 KiB
// of shared memory a block (the wide tile's 4 stages). On the H200 (2026-11-28, the ladder
// at batch 16) 1.03-1.09 times the 8x8 version's time forward and 0.97-1.04 backward-data:
// not taken (conv2d.py: ENGINE_IMPLICIT).
extern "C" __global__ void __launch_bounds__(IG_THREADS, 2) conv2d_forward_implicit_async(
    const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b, float* __restrict__ y,
    int N, int C, int H, int W, int O, int K, int stride, int pad, int Hout, int Wout, int has_bias, int slice,
    int wide) {
  __shared__ __align__(16) float shared[IG_ASYNC_SHARED_FLOATS];
  if (wide) conv2d_forward_implicit_shaped<WideTileAsync>(x, w, b, y, CONV_SHAPE, has_bias, slice, shared);
  else conv2d_forward_implicit_shaped<SquareTileAsync>(x, w, b, y, CONV_SHAPE, has_bias, slice, shared);
}

extern "C" __global__ void __launch_bounds__(IG_THREADS, 2) conv2d_backward_data_implicit_async(
    const float* __restrict__ grad_y, const float* __restrict__ w, float* __restrict__ grad_x, int N, int C, int H,
    int W, int O, int K, int stride, int pad, int Hout, int Wout, int slice, int wide) {
  __shared__ __align__(16) float shared[IG_ASYNC_SHARED_FLOATS];
  if (wide) conv2d_backward_data_implicit_shaped<WideTileAsync>(grad_y, w, grad_x, CONV_SHAPE, slice, shared);
  else conv2d_backward_data_implicit_shaped<SquareTileAsync>(grad_y, w, grad_x, CONV_SHAPE, slice, shared);
}

// The 8 x 16 variant of the forward and backward-data (128 threads, 8 x 16 results each),
// on either tile (on the wide one a thread stages two columns of B); laddered, not yet
// timed (conv2d.py: ENGINE_IMPLICIT).
extern "C" __global__ void __launch_bounds__(IG_8X16_THREADS, 2) conv2d_forward_implicit_8x16(
    const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b, float* __restrict__ y,
    int N, int C, int H, int W, int O, int K, int stride, int pad, int Hout, int Wout, int has_bias, int slice,
    int wide) {
  __shared__ __align__(16) float shared[IG_SHARED_FLOATS];
  if (wide) conv2d_forward_implicit_shaped<WideTile8x16>(x, w, b, y, CONV_SHAPE, has_bias, slice, shared);
  else conv2d_forward_implicit_shaped<SquareTile8x16>(x, w, b, y, CONV_SHAPE, has_bias, slice, shared);
}

extern "C" __global__ void __launch_bounds__(IG_8X16_THREADS, 2) conv2d_backward_data_implicit_8x16(
    const float* __restrict__ grad_y, const float* __restrict__ w, float* __restrict__ grad_x, int N, int C, int H,
    int W, int O, int K, int stride, int pad, int Hout, int Wout, int slice, int wide) {
  __shared__ __align__(16) float shared[IG_SHARED_FLOATS];
  if (wide) conv2d_backward_data_implicit_shaped<WideTile8x16>(grad_y, w, grad_x, CONV_SHAPE, slice, shared);
  else conv2d_backward_data_implicit_shaped<SquareTile8x16>(grad_y, w, grad_x, CONV_SHAPE, slice, shared);
}

// The weight gradient's two versions: one block an SM with as many registers as ptxas likes
// and the positions stepped (splitk), or two blocks in 128 registers each with the
// positions decoded at every slice (two_blocks: stepped, it spills on sm_90; decoded, it
// fits without a spill, in main loops of as many instructions as splitk's were before the
// stepping; on sm_80 it spills either way). On the H200 (2026-11-28) two_blocks took
// 0.93-1.00 of splitk's time on the ladder's layers: the engine's (ENGINE_IMPLICIT).
extern "C" __global__ void __launch_bounds__(IG_THREADS) conv2d_backward_weights_splitk(
    const float* __restrict__ grad_y, const float* __restrict__ x, float* __restrict__ partial, int N, int C, int H,
    int W, int O, int K, int stride, int pad, int Hout, int Wout, int slice, int wide) {
  __shared__ __align__(16) float shared[IG_SHARED_FLOATS];
  if (wide) conv2d_backward_weights_shaped<WideTile, true>(grad_y, x, partial, CONV_SHAPE, slice, shared);
  else conv2d_backward_weights_shaped<SquareTile, true>(grad_y, x, partial, CONV_SHAPE, slice, shared);
}

extern "C" __global__ void __launch_bounds__(IG_THREADS, 2) conv2d_backward_weights_two_blocks(
    const float* __restrict__ grad_y, const float* __restrict__ x, float* __restrict__ partial, int N, int C, int H,
    int W, int O, int K, int stride, int pad, int Hout, int Wout, int slice, int wide) {
  __shared__ __align__(16) float shared[IG_SHARED_FLOATS];
  if (wide) conv2d_backward_weights_shaped<WideTile, false>(grad_y, x, partial, CONV_SHAPE, slice, shared);
  else conv2d_backward_weights_shaped<SquareTile, false>(grad_y, x, partial, CONV_SHAPE, slice, shared);
}

// The weight gradient with its gathers copied by cp.async (the forward's `async` idea):
// splitk's (one block an SM, positions stepped) with three slices in flight instead of one
// and no staging registers. (Capped at 128 registers for two blocks an SM, it spills in its
// main loops on sm_90.) On the H200 (2026-11-28) 0.92-1.01 of splitk's time, its median no
// better than two_blocks' (ENGINE_IMPLICIT).
extern "C" __global__ void __launch_bounds__(IG_THREADS) conv2d_backward_weights_async(
    const float* __restrict__ grad_y, const float* __restrict__ x, float* __restrict__ partial, int N, int C, int H,
    int W, int O, int K, int stride, int pad, int Hout, int Wout, int slice, int wide) {
  __shared__ __align__(16) float shared[IG_ASYNC_SHARED_FLOATS];
  if (wide) conv2d_backward_weights_shaped<WideTileAsync, true>(grad_y, x, partial, CONV_SHAPE, slice, shared);
  else conv2d_backward_weights_shaped<SquareTileAsync, true>(grad_y, x, partial, CONV_SHAPE, slice, shared);
}

// The weight gradient of at most IG_NARROW_BN columns (C K K: an RGB image's first layer at
// 3x3 has 27), where the square and wide tiles' columns would be 75-90% padding (VGG's
// conv1_1 at batch 64: 4.44 ms in run 3 against cuDNN's 0.97): two warps a 64 x 32 tile,
// 8 x 4 results a thread (8 x 8 in one warp spilled in 128 registers), positions stepped as
// splitk's, and 8 blocks an SM in its small shared buffer; the N L reduction split as ever.
#define IG_NARROW_BN 32
#define IG_NARROW_THREADS 64
#define IG_NARROW_BLOCKS 8
using NarrowTile = Tile<IG_WIDE_BM, IG_NARROW_BN, IG_NARROW_THREADS, 4>;

extern "C" __global__ void __launch_bounds__(IG_NARROW_THREADS, IG_NARROW_BLOCKS) conv2d_backward_weights_narrow(
    const float* __restrict__ grad_y, const float* __restrict__ x, float* __restrict__ partial, int N, int C, int H,
    int W, int O, int K, int stride, int pad, int Hout, int Wout, int slice) {
  __shared__ __align__(16) float shared[2 * IG_BK * (IG_WIDE_BM + IG_NARROW_BN + 2 * IG_PAD)];
  conv2d_backward_weights_shaped<NarrowTile, true>(grad_y, x, partial, CONV_SHAPE, slice, shared);
}

// out[e] = the sum over z of partial[z, e], z in order (the split-K reduction,
// deterministic), plus bias[(e / plane) % channels] where has_bias (an NCHW output).
extern "C" __global__ void conv2d_sum_splits(const float* __restrict__ partial, float* __restrict__ out,
                                             long long count, int splits, const float* __restrict__ bias,
                                             int has_bias, int channels, int plane) {
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < count; e += (long long)gridDim.x * blockDim.x) {
    float total = has_bias ? bias[(e / plane) % channels] : 0.0f;
    for (int z = 0; z < splits; ++z) total += partial[z * count + e];
    out[e] = total;
  }
}

// =======================================================================================
// Backward-data of a convolution whose input has few channels (an RGB image's 3: the first
// layer, the last step of every saliency map): VGG-16's 3x3 stride 1, the shipped model's
// 7x7 stride 2, CNN-F's 11x11 stride 4, EfficientNet-Lite0's 3x3 stride 2 (twenty-fourth
// session: its stem through the column buffer ran at 0.48 of cuDNN's speed on the H200,
// 0.70 ms at batch 64 for 140 MB moved). As a product it has C rows: the implicit GEMM
// computes 64 or 128 of them a tile (21 or 43 times the work), the column buffer's product
// C K^2 of 128 (VGG: 27) and then gathers (run 3 at batch 64: VGG's conv1_1 3.19 ms against
// cuDNN's 1.29, CNN-F's conv1 1.72 against 0.40). Here a block takes a FEW_TILE_W x
// FEW_TILE_H patch of one image's input, a thread two pixels 8 rows apart and all their
// channels (at most FEW_CHANNELS, in a float4 each):
//   gx[n, c, h, w] = sum over o and the taps (u, v) with h + p - u and w + p - v multiples
//                    of S of w[o, c, u, v] gy[n, o, (h + p - u) / S, (w + p - v) / S]
// FEW_CHUNK output channels at a time, the grad_y patch the tile reaches (0 off the map) and
// the weights staged in shared memory; each tap is then two reads of the patch and one
// float4 of weights, shared by the two pixels, for 8 multiply-adds (ceil(K / S)^2 taps a
// pixel: 9 for VGG and CNN-F, 16 for 7x7 stride 2, 4 for 3x3 stride 2). Bound by the shared-memory reads (3 a
// 8 FMAs; 2 a 4 with a pixel a thread): about half the FP32 peak by napkin maths, VGG's
// conv1_1 at batch 64 (11 GFLOP) in about 0.35 ms.
#define FEW_CHANNELS 4
#define FEW_TILE_W 32
#define FEW_TILE_H 16
#define FEW_CHUNK 16
#define FEW_THREADS 256
// A thread's two pixels, rows ty and ty + FEW_TILE_H / 2: the same taps at every stride
// compiled for (S divides FEW_TILE_H / 2), so each float4 of weights serves both.
static_assert(FEW_TILE_W == 32 && FEW_TILE_W * FEW_TILE_H == 2 * FEW_THREADS, "a warp a row, a thread two pixels");
static_assert((FEW_TILE_H / 2) % 4 == 0, "a thread's two rows take the same taps at strides 1, 2 and 4");
static_assert(FEW_CHANNELS == 4, "a pixel's channels in a float4");

// The grad_y rows (or columns) a tile of `tile` pixels reaches, for kernel size K and stride
// S: from floor((first + p - K + 1) / S) on, one more than some tiles need; and the floats a
// chunk stages for each size compiled for (the shared buffer: the largest).
__host__ __device__ constexpr int few_patch(int tile, int K, int S) { return (tile - 1 + K - 1) / S + 2; }
__host__ __device__ constexpr int few_staged(int K, int S) {
  return FEW_CHUNK * (few_patch(FEW_TILE_H, K, S) * few_patch(FEW_TILE_W, K, S) + 4 * K * K);
}
__host__ __device__ constexpr int larger(int a, int b) { return a > b ? a : b; }
#define FEW_SHARED_FLOATS \
  larger(larger(few_staged(3, 1), few_staged(3, 2)), larger(few_staged(7, 2), few_staged(11, 4)))

__device__ __forceinline__ int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Output channels o0 .. o0 + FEW_CHUNK - 1 of the K x K weights (O, C, K, K) into
// filters[o][u K + v], a tap's channels as a float4 (zeros past C and past O).
template <int K>
__device__ __forceinline__ void stage_filters(const float* __restrict__ w, float4 (*filters)[K * K], int o0, int O,
                                              int C) {
  for (int e = threadIdx.x; e < FEW_CHUNK * K * K; e += FEW_THREADS) {
    const int o = e / (K * K), tap = e % (K * K);
    float value[FEW_CHANNELS];
#pragma unroll
    for (int c = 0; c < FEW_CHANNELS; ++c)
      value[c] = (o0 + o < O && c < C) ? w[((o0 + o) * C + c) * K * K + tap] : 0.0f;
    filters[o][tap] = make_float4(value[0], value[1], value[2], value[3]);
  }
}

// A chunk's products, for a thread's two pixels (grad_x rows h and h + FEW_TILE_H / 2,
// column col): the chunk's CHUNK output channels staged as patch[o][ROWS][COLUMNS] (grad_y
// from row `top` and column `left` on, 0 off the map) and filters[o][u K + v] (a tap's
// channels as a float4).
template <int K, int S, int CHUNK>
__device__ __forceinline__ void few_channels_products(const float* shared_patch, const float4* shared_filters, int h,
                                                      int col, int pad, int top, int left, float4& upper,
                                                      float4& lower) {
  constexpr int ROWS = few_patch(FEW_TILE_H, K, S), COLUMNS = few_patch(FEW_TILE_W, K, S);
  constexpr int APART = FEW_TILE_H / 2 / S;  // patch rows between a thread's two pixels' taps
  auto patch = reinterpret_cast<const float(*)[ROWS][COLUMNS]>(shared_patch);
  auto filters = reinterpret_cast<const float4(*)[K * K]>(shared_filters);
  for (int o = 0; o < CHUNK; ++o)
#pragma unroll
    for (int u = (h + pad) % S; u < K; u += S)  // the taps whose row h + p - u is a multiple of S
#pragma unroll
      for (int v = (col + pad) % S; v < K; v += S) {
        const float* at = &patch[o][(h + pad - u) / S - top][(col + pad - v) / S - left];
        const float g = at[0], g_lower = at[APART * COLUMNS];
        const float4 f = filters[o][u * K + v];
        upper.x += f.x * g, upper.y += f.y * g, upper.z += f.z * g, upper.w += f.w * g;
        lower.x += f.x * g_lower, lower.y += f.y * g_lower, lower.z += f.z * g_lower, lower.w += f.w * g_lower;
      }
}

// A thread's two pixels' channels into grad_x.
__device__ __forceinline__ void store_few_channels(float* __restrict__ grad_x, float4 upper, float4 lower, int n,
                                                   int C, int H, int W, int h, int col) {
  if (col >= W) return;
  for (int half = 0; half < 2; ++half) {
    const int row = h + half * FEW_TILE_H / 2;
    const float4 sum = half ? lower : upper;
    const float channels[FEW_CHANNELS] = {sum.x, sum.y, sum.z, sum.w};
#pragma unroll
    for (int c = 0; c < FEW_CHANNELS; ++c)  // (unrolled: channels stays in registers)
      if (c < C && row < H) grad_x[(((long long)n * C + c) * H + row) * W + col] = channels[c];
  }
}

template <int K, int S>
__device__ __forceinline__ void few_channels_backward_data(const float* __restrict__ grad_y,
                                                           const float* __restrict__ w, float* __restrict__ grad_x,
                                                           int C, int H, int W, int O, int pad, int Hout, int Wout,
                                                           float* shared) {
  constexpr int ROWS = few_patch(FEW_TILE_H, K, S), COLUMNS = few_patch(FEW_TILE_W, K, S);
  static_assert(few_staged(K, S) <= FEW_SHARED_FLOATS, "the staged chunk fits");
  auto patch = reinterpret_cast<float(*)[ROWS][COLUMNS]>(shared);  // [FEW_CHUNK][ROWS][COLUMNS]
  // [o][u K + v]: the channels' weights, zeros past C (16-byte aligned: FEW_CHUNK floats a row before)
  auto filters = reinterpret_cast<float4(*)[K * K]>(shared + FEW_CHUNK * ROWS * COLUMNS);
  const int tx = threadIdx.x % FEW_TILE_W, ty = threadIdx.x / FEW_TILE_W, n = blockIdx.z;
  const int h0 = blockIdx.y * FEW_TILE_H, w0 = blockIdx.x * FEW_TILE_W, h = h0 + ty, col = w0 + tx;
  const int top = floor_div(h0 + pad - K + 1, S), left = floor_div(w0 + pad - K + 1, S);  // patch[.][0][0]'s
  float4 upper = make_float4(0.0f, 0.0f, 0.0f, 0.0f), lower = upper;  // rows h and h + FEW_TILE_H / 2
  for (int o0 = 0; o0 < O; o0 += FEW_CHUNK) {
    // a warp a row of the patch, its lanes the row's consecutive columns
    for (int row = threadIdx.x / 32; row < FEW_CHUNK * ROWS; row += FEW_THREADS / 32)
      for (int c = tx; c < COLUMNS; c += 32) {
        const int o = row / ROWS, i = top + row % ROWS, j = left + c;
        patch[o][row % ROWS][c] = (o0 + o < O && i >= 0 && i < Hout && j >= 0 && j < Wout)
                                      ? grad_y[(((long long)n * O + o0 + o) * Hout + i) * Wout + j]
                                      : 0.0f;
      }
    stage_filters<K>(w, filters, o0, O, C);
    __syncthreads();
    few_channels_products<K, S, FEW_CHUNK>(shared, filters[0], h, col, pad, top, left, upper, lower);
    __syncthreads();  // every thread is done with the chunk before the next is staged
  }
  store_few_channels(grad_x, upper, lower, n, C, H, W, h, col);
}

// few_channels_async: the same products, the staging asynchronous. The version above
// stages a chunk with loads into registers and stores from them (a warp waits out each
// group of loads: a few hundred cycles, 19 times a chunk at 3x3, about as many instructions
// of index arithmetic as the chunk has products), and every warp of the block then waits at
// the barrier for the slowest: the products and the copies never overlap within a block
// (VGG's conv1_1 at batch 64 on the H200: 1.50 ms, 7.4 TFLOP/s, cuDNN 1.10 ms). Here the
// grad_y patch and the weights go into shared memory by cp.async (async_copy.cuh), zeros
// written off the map, through FEW_ASYNC_STAGES buffers of FEW_ASYNC_CHUNK output channels:
// the copies of chunk s + 1 are in flight while chunk s is multiplied, and a warp copies an
// output channel's patch, its lanes a row's columns (two copies a lane and row at 3x3: 35
// columns), at offsets known at compile time from the channel's first row. Napkin maths
// for VGG's conv1_1 at batch 64: grad_y (822 MB, read 1.3 times for the patches' margins)
// at 3-4 TB/s is 0.27-0.36 ms; the products (14.8 GFLOP with the fourth channel), 3 shared
// reads a 8 FMAs, about 2/3 of the FP32 peak: 0.33 ms; overlapped, 0.4-0.5 ms.
#define FEW_ASYNC_CHUNK 8
#define FEW_ASYNC_STAGES 2
__host__ __device__ constexpr int few_async_stage(int K, int S) {  // floats: the patch, then the weights
  return FEW_ASYNC_CHUNK * (few_patch(FEW_TILE_H, K, S) * few_patch(FEW_TILE_W, K, S) + 4 * K * K);
}
#define FEW_ASYNC_SHARED_FLOATS \
  (FEW_ASYNC_STAGES * larger(larger(few_async_stage(3, 1), few_async_stage(3, 2)),                     \
                              larger(few_async_stage(7, 2), few_async_stage(11, 4))))
static_assert(FEW_ASYNC_SHARED_FLOATS * 4 <= 48 * 1024, "static shared memory");
static_assert(FEW_ASYNC_CHUNK % 4 == 0, "a stage's weights 16-byte aligned after its patch");

template <int K, int S>
__device__ __forceinline__ void few_channels_backward_data_async(const float* __restrict__ grad_y,
                                                                 const float* __restrict__ w,
                                                                 float* __restrict__ grad_x, int C, int H, int W,
                                                                 int O, int pad, int Hout, int Wout, float* shared) {
  constexpr int ROWS = few_patch(FEW_TILE_H, K, S), COLUMNS = few_patch(FEW_TILE_W, K, S);
  constexpr int PATCH = FEW_ASYNC_CHUNK * ROWS * COLUMNS, STAGE = few_async_stage(K, S), PASSES = (COLUMNS + 31) / 32;
  static_assert(FEW_ASYNC_CHUNK == FEW_THREADS / 32, "a warp an output channel's patch");
  const int tx = threadIdx.x % FEW_TILE_W, ty = threadIdx.x / FEW_TILE_W, n = blockIdx.z;
  const int h0 = blockIdx.y * FEW_TILE_H, w0 = blockIdx.x * FEW_TILE_W, h = h0 + ty, col = w0 + tx;
  const int top = floor_div(h0 + pad - K + 1, S), left = floor_div(w0 + pad - K + 1, S);  // patch[.][0][0]'s
  const float* image = grad_y + (long long)n * O * Hout * Wout;  // within it, 32-bit offsets (conv2d.py checks)
  bool column_inside[PASSES];  // this lane's patch columns tx + 32 pass on the map
#pragma unroll
  for (int pass = 0; pass < PASSES; ++pass)
    column_inside[pass] = tx + 32 * pass < COLUMNS && left + tx + 32 * pass >= 0 && left + tx + 32 * pass < Wout;
  auto copy = [&](int chunk) {
    const int o0 = chunk * FEW_ASYNC_CHUNK, o = o0 + ty;  // warp ty copies output channel o's patch
    float* patch = shared + chunk % FEW_ASYNC_STAGES * STAGE;
    float* rows = patch + ty * ROWS * COLUMNS;
    const int first = o < O ? (o * Hout + top) * Wout + left : 0;  // the patch's row 0 in the image
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
      const bool row_inside = o < O && top + r >= 0 && top + r < Hout;
      const int offset = first + r * Wout;
#pragma unroll
      for (int pass = 0; pass < PASSES; ++pass) {
        const int c = tx + 32 * pass;
        const bool inside = row_inside && column_inside[pass];  // (else the image's first float, not read)
        // (unsigned: the offset zero-extended, one multiply-add to an address)
        if (c < COLUMNS) cp_async_4(&rows[r * COLUMNS + c], image + (inside ? unsigned(offset + c) : 0u), inside);
      }
    }
    float* filters = patch + PATCH;  // [o][u K + v][c]: zeros past C and past O
    for (int e = threadIdx.x; e < FEW_ASYNC_CHUNK * K * K * FEW_CHANNELS; e += FEW_THREADS) {
      const int c = e % FEW_CHANNELS, tap = e / FEW_CHANNELS % (K * K), o = o0 + e / (FEW_CHANNELS * K * K);
      const bool inside = o < O && c < C;
      cp_async_4(&filters[e], inside ? &w[(o * C + c) * K * K + tap] : w, inside);
    }
  };
  float4 upper = make_float4(0.0f, 0.0f, 0.0f, 0.0f), lower = upper;  // rows h and h + FEW_TILE_H / 2
  async_slices<FEW_ASYNC_STAGES>((O + FEW_ASYNC_CHUNK - 1) / FEW_ASYNC_CHUNK, copy, [&](int buffer) {
    const float* patch = shared + buffer * STAGE;
    few_channels_products<K, S, FEW_ASYNC_CHUNK>(patch, reinterpret_cast<const float4*>(patch + PATCH), h, col,
                                                 pad, top, left, upper, lower);
  });
  store_few_channels(grad_x, upper, lower, n, C, H, W, h, col);
}

// function<K, S>(arguments...) for the kernel size and stride given, one of those the
// few-channel kernels are compiled for (conv2d.py: FEW_CHANNEL_KERNELS). (A macro: NVRTC
// takes a generic lambda's call operator for a host function.)
#define WITH_FEW_CHANNEL_KERNEL(function, ...)                          \
  if (K == 3 && stride == 1) function<3, 1>(__VA_ARGS__);               \
  else if (K == 3 && stride == 2) function<3, 2>(__VA_ARGS__);          \
  else if (K == 7 && stride == 2) function<7, 2>(__VA_ARGS__);          \
  else function<11, 4>(__VA_ARGS__)

extern "C" __global__ void __launch_bounds__(FEW_THREADS) conv2d_backward_data_few_channels(
    const float* __restrict__ grad_y, const float* __restrict__ w, float* __restrict__ grad_x, int C, int H, int W,
    int O, int K, int stride, int pad, int Hout, int Wout) {
  __shared__ __align__(16) float shared[FEW_SHARED_FLOATS];
  WITH_FEW_CHANNEL_KERNEL(few_channels_backward_data, grad_y, w, grad_x, C, H, W, O, pad, Hout, Wout, shared);
}

extern "C" __global__ void __launch_bounds__(FEW_THREADS) conv2d_backward_data_few_channels_async(
    const float* __restrict__ grad_y, const float* __restrict__ w, float* __restrict__ grad_x, int C, int H, int W,
    int O, int K, int stride, int pad, int Hout, int Wout) {
  __shared__ __align__(16) float shared[FEW_ASYNC_SHARED_FLOATS];
  WITH_FEW_CHANNEL_KERNEL(few_channels_backward_data_async, grad_y, w, grad_x, C, H, W, O, pad, Hout, Wout, shared);
}

// The forward of the same first layers, at 3x3 stride 1 (VGG-16's conv1_1: 3 -> 64
// channels). A reduction of 27 an output, which the implicit GEMM pads to 32 and gathers a
// slice at a time with the index arithmetic of any shape, against 64 outputs an input
// pixel: what bounds it is writing the output (822 MB at batch 64, 0.33 ms at 2.5 TB/s;
// run 3 took 1.74 ms, cuDNN 0.76). A block a 32 x 16 tile of output pixels of one image, its
// 34 x 18 input patch staged once with a pixel's channels as a float4; then, FEW_CHUNK output
// channels at a time, their weights as float4s over the channels, and a thread's two pixels
// 8 rows apart: each of the 9 taps is two patch reads (a warp's 32 consecutive float4s) and,
// per output channel, one weight read (the same address across the block: a broadcast) for
// 8 multiply-adds. A warp stores a row's 32 consecutive pixels of a channel at a time.
extern "C" __global__ void __launch_bounds__(FEW_THREADS) conv2d_forward_few_channels(
    const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias, float* __restrict__ y,
    int C, int H, int W, int O, int pad, int Hout, int Wout, int has_bias) {
  constexpr int K = 3, ROWS = FEW_TILE_H + K - 1, COLUMNS = FEW_TILE_W + K - 1, LOWER = FEW_TILE_H / 2;
  __shared__ float4 patch[ROWS][COLUMNS];
  __shared__ float4 filters[FEW_CHUNK][K * K];  // [o][u K + v]: zeros past C
  const int tx = threadIdx.x % FEW_TILE_W, ty = threadIdx.x / FEW_TILE_W, n = blockIdx.z;
  const int h0 = blockIdx.y * FEW_TILE_H, w0 = blockIdx.x * FEW_TILE_W, i = h0 + ty, j = w0 + tx;
  for (int e = threadIdx.x; e < ROWS * COLUMNS; e += FEW_THREADS) {  // a warp's lanes consecutive columns
    const int row = h0 - pad + e / COLUMNS, column = w0 - pad + e % COLUMNS;
    const bool inside = row >= 0 && row < H && column >= 0 && column < W;
    float value[FEW_CHANNELS];
#pragma unroll
    for (int c = 0; c < FEW_CHANNELS; ++c)
      value[c] = (inside && c < C) ? x[(((long long)n * C + c) * H + row) * W + column] : 0.0f;
    patch[e / COLUMNS][e % COLUMNS] = make_float4(value[0], value[1], value[2], value[3]);
  }
  for (int o0 = 0; o0 < O; o0 += FEW_CHUNK) {
    __syncthreads();  // the patch is staged; the last chunk's filters are read
    stage_filters<K>(w, filters, o0, O, C);
    __syncthreads();
    float upper[FEW_CHUNK], lower[FEW_CHUNK];
#pragma unroll
    for (int o = 0; o < FEW_CHUNK; ++o) upper[o] = lower[o] = 0.0f;
#pragma unroll
    for (int u = 0; u < K; ++u)
#pragma unroll
      for (int v = 0; v < K; ++v) {
        const float4 p = patch[ty + u][tx + v], q = patch[ty + LOWER + u][tx + v];
#pragma unroll
        for (int o = 0; o < FEW_CHUNK; ++o) {
          const float4 f = filters[o][u * K + v];  // a multiply-add each (a sum of the four would cost 5)
          upper[o] += f.x * p.x, upper[o] += f.y * p.y, upper[o] += f.z * p.z, upper[o] += f.w * p.w;
          lower[o] += f.x * q.x, lower[o] += f.y * q.y, lower[o] += f.z * q.z, lower[o] += f.w * q.w;
        }
      }
    if (j >= Wout) continue;
#pragma unroll
    for (int o = 0; o < FEW_CHUNK; ++o) {
      if (o0 + o >= O) break;
      const float b = has_bias ? bias[o0 + o] : 0.0f;
      float* plane = y + ((long long)n * O + o0 + o) * Hout * Wout;
      if (i < Hout) plane[i * Wout + j] = upper[o] + b;
      if (i + LOWER < Hout) plane[(i + LOWER) * Wout + j] = lower[o] + b;
    }
  }
}

// =======================================================================================
// Winograd F(m x m, 3 x 3) (Lavin and Gray 2015), m = 2 or 4, for 3x3 stride-1 convolutions:
// each m x m tile of the output comes from a T x T tile of the input (T = m + 2) with T^2
// multiplications a channel pair instead of 9 m^2, 2.25 times fewer for m = 2 (16 for 36)
// and 4 times for m = 4 (36 for 144): what cuDNN runs where it beats the FP32 peak counted
// as direct sums. In the Winograd domain a convolution is T^2 independent matrix products,
// one per position xi of the transformed tile:
//   U[xi] = (G g G^T)[xi]     (O x C)  the filters g
//   V[xi] = (B^T d B)[xi]     (C x P)  the input tiles d
//   M[xi] = U[xi] V[xi]       (O x P)  gemm.cu: sgemm_batched_nn, all T^2 in one launch
//                                      (at most 64 rows: products_wide_nn, below)
//   y tile = A^T M A + b      (m x m)
// for P = N ceil(Hout / m) ceil(Wout / m) tiles (t = (n TH + ti) TW + tj), tile t's input
// the T x T window of x at (m ti - pad, m tj - pad), 0 outside x. Backward-data is the same
// convolution of grad_y with the filters flipped and transposed (Sect. 4), padded by 2 - p.
// The weight gradient is the dual, F(3 x 3, m x m): each tile adds the correlation of its
// input window with its m x m tile e of grad_y, and reading y = A^T [(G g) * (B^T d)] as a
// function of g gives
//   E[xi] = (A e A^T)[xi]     (O x P)  the grad_y tiles (0 outside Hout x Wout)
//   M[xi] = E[xi] V[xi]^T     (O x C)  sgemm_batched_nt, its P-long reduction split
//   gw    = G^T M G           (3 x 3)
// Every transform is one thread per (channel, tile) or per (o, c), grid-stride, and bound by
// memory: V, E and M are T^2 / m^2 times the activations they come from (4 for m = 2, 2.25
// for m = 4). The products may come as `splits` partial planes each (gemm.py splits their
// reduction where the tiles alone are too few blocks), which the output and filter-gradient
// transforms add in order. m = 4's matrices hold 1/24 and 8, so its rounding error is some
// ten times m = 2's (tests/test_cuda_kernels.py bounds both against float64).
// And F(2x2, 5x5) for 5x5 stride-1 convolutions (CNN-F's conv2): every step above with a
// 5 x 5 filter g, r = 5 for 3 (T = m + r - 1 = 6, padding 0-4, backward-data padded by 4 -
// p), 36 multiplications for 2 x 2 outputs instead of 100, 2.78 times fewer; the weight
// gradient F(5x5, 2x2). Its six points are F(4x4, 3x3)'s, so its input transform B^T is
// that one's, and G and A^T follow from them (Lavin and Gray's construction; the tests check
// the three against the direct sums). Winograd<m, r>: the matrices of F(m x m, r x r).
template <int m, int r = 3>
struct Winograd;

template <>
struct Winograd<2> {
  static constexpr int T = 4;
  __device__ static float BT(int r, int c) {
    const float b[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
    return b[r][c];
  }
  __device__ static float G(int r, int c) {
    const float g[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};
    return g[r][c];
  }
  __device__ static float AT(int r, int c) {
    const float a[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
    return a[r][c];
  }
};

template <>
struct Winograd<4> {
  static constexpr int T = 6;
  __device__ static float BT(int r, int c) {
    const float b[6][6] = {{4, 0, -5, 0, 1, 0}, {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                           {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0},  {0, 4, 0, -5, 0, 1}};
    return b[r][c];
  }
  __device__ static float G(int r, int c) {
    const float g[6][3] = {{1.0f / 4, 0, 0},  {-1.0f / 6, -1.0f / 6, -1.0f / 6}, {-1.0f / 6, 1.0f / 6, -1.0f / 6},
                           {1.0f / 24, 1.0f / 12, 1.0f / 6}, {1.0f / 24, -1.0f / 12, 1.0f / 6}, {0, 0, 1}};
    return g[r][c];
  }
  __device__ static float AT(int r, int c) {
    const float a[4][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
    return a[r][c];
  }
};

template <>
struct Winograd<2, 5> {
  static constexpr int T = 6;
  __device__ static float BT(int r, int c) { return Winograd<4>::BT(r, c); }
  __device__ static float G(int r, int c) {
    const float g[6][5] = {{1.0f / 4, 0, 0, 0, 0},
                           {-1.0f / 6, -1.0f / 6, -1.0f / 6, -1.0f / 6, -1.0f / 6},
                           {-1.0f / 6, 1.0f / 6, -1.0f / 6, 1.0f / 6, -1.0f / 6},
                           {1.0f / 24, 1.0f / 12, 1.0f / 6, 1.0f / 3, 2.0f / 3},
                           {1.0f / 24, -1.0f / 12, 1.0f / 6, -1.0f / 3, 2.0f / 3},
                           {0, 0, 0, 0, 1}};
    return g[r][c];
  }
  __device__ static float AT(int r, int c) {
    const float a[2][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 1}};
    return a[r][c];
  }
};

// out = (L x)^T for the P x Q coefficients L(p, q) and a Q x R x. Unrolled, every
// coefficient is a compile-time constant: the zero terms vanish, the ones are additions.
template <int P, int Q, int R, class Coefficients>
__device__ __forceinline__ void product_transposed(const float (&x)[Q][R], float (&out)[R][P], Coefficients L) {
#pragma unroll
  for (int p = 0; p < P; ++p)
#pragma unroll
    for (int r = 0; r < R; ++r) {
      float sum = 0.0f;
#pragma unroll
      for (int q = 0; q < Q; ++q)
        if (L(p, q) != 0.0f) sum += L(p, q) * x[q][r];
      out[r][p] = sum;
    }
}

// out = L x L^T, as (L (L x)^T)^T.
template <int P, int Q, class Coefficients>
__device__ __forceinline__ void sandwich(const float (&x)[Q][Q], float (&out)[P][P], Coefficients L) {
  float half[Q][P];
  product_transposed<P, Q, Q>(x, half, L);
  product_transposed<P, Q, P>(half, out, L);
}

// The (channel, tile) of element e of a transform over `channels` x N TH TW.
struct TileIndex {
  int channel, n, ti, tj;
  __device__ TileIndex(int e, int N, int TH, int TW) {
    const int tiles = N * TH * TW, t = e % tiles, tile = t % (TH * TW);
    channel = e / tiles, n = t / (TH * TW), ti = tile / TW, tj = tile % TW;
  }
};

// A row of an m x m tile of a map, `valid` of its m floats inside the map: as whole float4s
// (or float2s) where the row is whole and aligned, else float by float (zeros past `valid`
// when reading). Neighbouring lanes hold neighbouring tiles, so a warp's vector accesses
// cover m-float runs side by side: whole 32-byte sectors where scalar ones, m floats apart,
// touched m times the sectors their bytes need (python -m deepinside.kernels.sectors).
template <int m>
__device__ __forceinline__ int row_vector_width(const float* at, int valid) {
  const unsigned long long address = (unsigned long long)at;
  if (valid < m) return 1;
  if (m % 4 == 0 && address % 16 == 0) return 4;
  return m % 2 == 0 && address % 8 == 0 ? 2 : 1;
}

template <int m>
__device__ __forceinline__ void load_row(const float* __restrict__ at, int valid, float (&row)[m]) {
  const int width = row_vector_width<m>(at, valid);
  if constexpr (m % 4 == 0)
    if (width == 4) {
      for (int c = 0; c < m; c += 4) {
        const float4 v = *reinterpret_cast<const float4*>(at + c);
        row[c] = v.x, row[c + 1] = v.y, row[c + 2] = v.z, row[c + 3] = v.w;
      }
      return;
    }
  if (width == 2) {
    for (int c = 0; c < m; c += 2) {
      const float2 v = *reinterpret_cast<const float2*>(at + c);
      row[c] = v.x, row[c + 1] = v.y;
    }
    return;
  }
  for (int c = 0; c < m; ++c) row[c] = c < valid ? at[c] : 0.0f;
}

template <int m>
__device__ __forceinline__ void store_row(float* __restrict__ at, int valid, const float (&row)[m]) {
  const int width = row_vector_width<m>(at, valid);
  if constexpr (m % 4 == 0)
    if (width == 4) {
      for (int c = 0; c < m; c += 4)
        *reinterpret_cast<float4*>(at + c) = make_float4(row[c], row[c + 1], row[c + 2], row[c + 3]);
      return;
    }
  if (width == 2) {
    for (int c = 0; c < m; c += 2) *reinterpret_cast<float2*>(at + c) = make_float2(row[c], row[c + 1]);
    return;
  }
  for (int c = 0; c < valid; ++c) at[c] = row[c];
}

// U[xi, o, c] = G g G^T of the r x r filter g = w[o, c] (one thread per (o, c)); `flipped`:
// g = w[c, o] turned by 180 degrees (w stored C x O x r x r), backward-data's filters for the
// forward of grad_y it runs (Sect. 4), read so instead of copied so first; `by_input`:
// stored as U[xi, c, o] instead, as the fused kernels copy them (a warp 32 output channels).
template <int m, int r>
__device__ __forceinline__ void filter_transform(const float* __restrict__ w, float* __restrict__ U, int O, int C,
                                                 int flipped, int by_input) {
  constexpr int T = Winograd<m, r>::T, AREA = r * r;
  const int count = O * C;
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < count; e += gridDim.x * blockDim.x) {
    const int o = by_input ? e % O : e / C, c = by_input ? e / O : e % C;
    float g[r][r], u[T][T];
    const float* filter = w + (flipped ? c * O + o : o * C + c) * AREA;
    for (int a = 0; a < r; ++a)
      for (int b = 0; b < r; ++b) g[a][b] = filter[flipped ? AREA - 1 - (a * r + b) : a * r + b];
    sandwich<T, r>(g, u, [](int p, int q) { return Winograd<m, r>::G(p, q); });
    for (int a = 0; a < T; ++a)
      for (int b = 0; b < T; ++b) U[(long long)(a * T + b) * count + e] = u[a][b];
  }
}

// V[xi, c, t] = B^T d B of input tile t of channel c (one thread per (c, t)). Each row of
// the window d is read as the m floats at the tile's own column m tj (a vector load where
// aligned: load_row), the PAD before them and the r - 1 - PAD after them: PAD (0 to r - 1)
// a compile-time constant, so that d stays in registers.
template <int m, int r, int PAD>
__device__ __forceinline__ void padded_input_transform(const float* __restrict__ x, float* __restrict__ V, int N,
                                                       int C, int H, int W, int TH, int TW) {
  constexpr int T = Winograd<m, r>::T;
  const int count = C * N * TH * TW;
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < count; e += gridDim.x * blockDim.x) {
    const TileIndex at(e, N, TH, TW);
    const float* plane = x + ((long long)at.n * C + at.channel) * H * W;
    const int top = m * at.ti - PAD, j = m * at.tj, valid = W - j < m ? W - j : m;
    float d[T][T], v[T][T];
    for (int u = 0; u < T; ++u) {
      const int h = top + u;
      const float* row = plane + h * W + j;
      float middle[m];
      if (h >= 0 && h < H)
        load_row<m>(row, valid, middle);
      else
        for (int c = 0; c < m; ++c) middle[c] = 0.0f;
      for (int c = 0; c < m; ++c) d[u][PAD + c] = middle[c];
      for (int q = 0; q < PAD; ++q)  // (a tile past the map's right edge still reads columns before it)
        d[u][q] = (h >= 0 && h < H && j - PAD + q >= 0 && j - PAD + q < W) ? row[q - PAD] : 0.0f;
      for (int q = 0; q < r - 1 - PAD; ++q)
        d[u][PAD + m + q] = (h >= 0 && h < H && j + m + q < W) ? row[m + q] : 0.0f;
    }
    sandwich<T, T>(d, v, [](int p, int q) { return Winograd<m, r>::BT(p, q); });
    for (int a = 0; a < T; ++a)
      for (int b = 0; b < T; ++b) V[(long long)(a * T + b) * count + e] = v[a][b];
  }
}

// padded_input_transform<m, r, pad> for a padding of 0 to r - 1 (conv2d.py runs Winograd
// with those only: _winograd_shape), from PAD up.
template <int m, int r, int PAD = 0>
__device__ __forceinline__ void input_transform(const float* __restrict__ x, float* __restrict__ V, int N, int C,
                                                int H, int W, int pad, int TH, int TW) {
  if (pad == PAD)
    padded_input_transform<m, r, PAD>(x, V, N, C, H, W, TH, TW);
  else if constexpr (PAD + 1 < r)
    input_transform<m, r, PAD + 1>(x, V, N, C, H, W, pad, TH, TW);
}

// The T x T Winograd-domain values of element e: planes[xi, z, e] added over the splits z.
// UNROLLED: the loops over the values unrolled (the splits' loop rolled inside), and the
// values loaded all at once where there is one split (most layers): F(2x2, 5x5)'s output
// transform, where the compiler left them rolled, so that the values lived in a 144-byte
// stack frame and were loaded one at a time (the 3x3 transforms keep the compiler's code,
// as the H200 runs timed it).
template <int T, bool UNROLLED = false>
__device__ __forceinline__ void gather_splits(const float* __restrict__ planes, int splits, int count, int e,
                                              float (&out)[T][T]) {
  if constexpr (UNROLLED) {
    if (splits == 1) {
#pragma unroll
      for (int r = 0; r < T; ++r)
#pragma unroll
        for (int s = 0; s < T; ++s) out[r][s] = planes[(long long)(r * T + s) * count + e];
      return;
    }
#pragma unroll
    for (int r = 0; r < T; ++r)
#pragma unroll
      for (int s = 0; s < T; ++s) {
        const float* plane = planes + (long long)(r * T + s) * splits * count + e;
        float sum = 0.0f;
#pragma unroll 1
        for (int z = 0; z < splits; ++z) sum += plane[(long long)z * count];
        out[r][s] = sum;
      }
  } else {
    for (int r = 0; r < T; ++r)
      for (int s = 0; s < T; ++s) {
        const float* plane = planes + (long long)(r * T + s) * splits * count + e;
        float sum = 0.0f;
        for (int z = 0; z < splits; ++z) sum += plane[(long long)z * count];
        out[r][s] = sum;
      }
  }
}

// y[n, o, m ti + a, m tj + b] = (A^T M A)[a, b] + bias[o], the outputs inside Hout x Wout
// (one thread per (o, t)).
template <int m, int r>
__device__ __forceinline__ void output_transform(const float* __restrict__ M, int splits,
                                                 const float* __restrict__ bias, float* __restrict__ y, int N, int O,
                                                 int Hout, int Wout, int TH, int TW, int has_bias) {
  constexpr int T = Winograd<m, r>::T;
  const int count = O * N * TH * TW;
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < count; e += gridDim.x * blockDim.x) {
    const TileIndex at(e, N, TH, TW);
    float product[T][T], out[m][m];
    gather_splits<T, r != 3>(M, splits, count, e, product);
    sandwich<m, T>(product, out, [](int p, int q) { return Winograd<m, r>::AT(p, q); });
    const float b = has_bias ? bias[at.channel] : 0.0f;
    float* plane = y + ((long long)at.n * O + at.channel) * Hout * Wout;
    const int j = m * at.tj, valid = Wout - j < m ? Wout - j : m;
    for (int a = 0; a < m && m * at.ti + a < Hout; ++a) {
      for (int c = 0; c < m; ++c) out[a][c] += b;
      store_row<m>(plane + (m * at.ti + a) * Wout + j, valid, out[a]);
    }
  }
}

// E[xi, o, t] = A e A^T of grad_y tile t of channel o (one thread per (o, t)).
template <int m, int r>
__device__ __forceinline__ void gradient_transform(const float* __restrict__ grad_y, float* __restrict__ E, int N,
                                                   int O, int Hout, int Wout, int TH, int TW) {
  constexpr int T = Winograd<m, r>::T;
  const int count = O * N * TH * TW;
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < count; e += gridDim.x * blockDim.x) {
    const TileIndex at(e, N, TH, TW);
    const float* plane = grad_y + ((long long)at.n * O + at.channel) * Hout * Wout;
    float tile[m][m], v[T][T];
    const int j = m * at.tj, valid = Wout - j < m ? Wout - j : m;
    for (int a = 0; a < m; ++a) {
      const int i = m * at.ti + a;
      if (i < Hout)
        load_row<m>(plane + i * Wout + j, valid, tile[a]);
      else
        for (int c = 0; c < m; ++c) tile[a][c] = 0.0f;
    }
    sandwich<T, m>(tile, v, [](int p, int q) { return Winograd<m, r>::AT(q, p); });
    for (int a = 0; a < T; ++a)
      for (int b = 0; b < T; ++b) E[(long long)(a * T + b) * count + e] = v[a][b];
  }
}

// grad_w[o, c] = G^T M G, r x r (one thread per (o, c)).
template <int m, int r>
__device__ __forceinline__ void filter_gradient_transform(const float* __restrict__ M, int splits,
                                                          float* __restrict__ grad_w, int O, int C) {
  constexpr int T = Winograd<m, r>::T;
  const int count = O * C;
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < count; e += gridDim.x * blockDim.x) {
    float product[T][T], g[r][r];
    gather_splits<T>(M, splits, count, e, product);
    sandwich<r, T>(product, g, [](int p, int q) { return Winograd<m, r>::G(q, p); });
    for (int a = 0; a < r; ++a)
      for (int b = 0; b < r; ++b) grad_w[e * r * r + a * r + b] = g[a][b];
  }
}

// The products of at most IG_WIDE_BM rows on the implicit GEMM's 64 x 256 tile, of which
// gemm.cu's 128 x 128 tiles would compute half or more as padding: Winograd's (the
// forward's output channels or backward-data's input channels: VGG-16's conv1_2 both ways,
// conv2_1 backward-data; conv2d.py) and a fully connected layer's at a batch of 9 to 64
// (gemm.py: wide_products_device). Product z / splits is A[z] (M x K, row-major) times B[z]
// (K x P row-major: nn; or P x K row-major, read transposed: nt), its reduction slice z %
// splits (`slice` long, a multiple of IG_BK) written to plane z of `partial` (M x P each),
// which the caller adds. A is read as the convolutions' weights are; B's columns of nn as a
// dense matrix's, a warp's threads 32 consecutive ones at a time, and of nt like A, a
// warp's threads 8 consecutive depths of 4 columns (whole 32-byte sectors).
struct DenseColumns {
  static constexpr bool DEPTH_FASTEST = false;
  const float* b;
  int P;
  __device__ void select(int p) { b += p; }
  __device__ const float* base() const { return b; }
  __device__ bool locate(int k, int& offset) const { return offset = k * P, true; }
};

template <int COLUMNS>
struct DenseRows {
  static constexpr bool DEPTH_FASTEST = true;
  const float* b;
  int K;
  int column[COLUMNS];  // p K of each selected column
  int depth;
  __device__ void select(int q, int p) { column[q] = p * K; }
  __device__ void start(int) {}
  __device__ void at(int k) { depth = k; }
  __device__ const float* base() const { return b; }
  __device__ bool locate(int q, int& offset) const { return offset = column[q] + depth, true; }
};

template <bool TRANSPOSED_B>
__device__ __forceinline__ void products_wide(const float* __restrict__ A, const float* __restrict__ B,
                                              float* __restrict__ partial, int M, int P, int K, int slice,
                                              int splits, float* shared) {
  const int product = blockIdx.z / splits, k_begin = (blockIdx.z - product * splits) * slice;
  const int k_end = k_begin + slice < K ? k_begin + slice : K;
  const Weights<WideTile::SPREAD> a{A + (long long)product * M * K, K};
  const float* b = B + (long long)product * K * P;
  float accumulator[IG_TM][WideTile::TN];
  if constexpr (TRANSPOSED_B)
    implicit_gemm<WideTile>(M, P, k_begin, k_end, a, DenseRows<WideTile::B_VALUES>{b, K}, shared, accumulator);
  else
    implicit_gemm<WideTile>(M, P, k_begin, k_end, a, DenseColumns{b, P}, shared, accumulator);
  store_nchw<WideTile>(partial + (long long)blockIdx.z * M * P, M, P, P, nullptr, accumulator, shared);
}

extern "C" __global__ void __launch_bounds__(IG_THREADS, 2) products_wide_nn(
    const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ partial, int M, int P, int K,
    int slice, int splits) {
  __shared__ __align__(16) float shared[IG_SHARED_FLOATS];
  products_wide<false>(A, B, partial, M, P, K, slice, splits, shared);
}

extern "C" __global__ void __launch_bounds__(IG_THREADS, 2) products_wide_nt(
    const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ partial, int M, int P, int K,
    int slice, int splits) {
  __shared__ __align__(16) float shared[IG_SHARED_FLOATS];
  products_wide<true>(A, B, partial, M, P, K, slice, splits, shared);
}

// The entry points, one per transform and scheme (conv2d.py names them by m, and r where
// it is not 3: _winograd_kernel).
extern "C" __global__ void winograd_filter_transform_2x2(const float* __restrict__ w, float* __restrict__ U, int O,
                                                         int C, int flipped, int by_input) {
  filter_transform<2, 3>(w, U, O, C, flipped, by_input);
}

extern "C" __global__ void winograd_filter_transform_4x4(const float* __restrict__ w, float* __restrict__ U, int O,
                                                         int C, int flipped, int by_input) {
  filter_transform<4, 3>(w, U, O, C, flipped, by_input);
}

extern "C" __global__ void winograd_filter_transform_2x2_5x5(const float* __restrict__ w, float* __restrict__ U, int O,
                                                             int C, int flipped, int by_input) {
  filter_transform<2, 5>(w, U, O, C, flipped, by_input);
}

extern "C" __global__ void winograd_input_transform_2x2(const float* __restrict__ x, float* __restrict__ V, int N,
                                                        int C, int H, int W, int pad, int TH, int TW) {
  input_transform<2, 3>(x, V, N, C, H, W, pad, TH, TW);
}

extern "C" __global__ void winograd_input_transform_4x4(const float* __restrict__ x, float* __restrict__ V, int N,
                                                        int C, int H, int W, int pad, int TH, int TW) {
  input_transform<4, 3>(x, V, N, C, H, W, pad, TH, TW);
}

extern "C" __global__ void winograd_input_transform_2x2_5x5(const float* __restrict__ x, float* __restrict__ V, int N,
                                                            int C, int H, int W, int pad, int TH, int TW) {
  input_transform<2, 5>(x, V, N, C, H, W, pad, TH, TW);
}

extern "C" __global__ void winograd_output_transform_2x2(const float* __restrict__ M, int splits,
                                                         const float* __restrict__ bias, float* __restrict__ y, int N,
                                                         int O, int Hout, int Wout, int TH, int TW, int has_bias) {
  output_transform<2, 3>(M, splits, bias, y, N, O, Hout, Wout, TH, TW, has_bias);
}

extern "C" __global__ void winograd_output_transform_4x4(const float* __restrict__ M, int splits,
                                                         const float* __restrict__ bias, float* __restrict__ y, int N,
                                                         int O, int Hout, int Wout, int TH, int TW, int has_bias) {
  output_transform<4, 3>(M, splits, bias, y, N, O, Hout, Wout, TH, TW, has_bias);
}

extern "C" __global__ void winograd_output_transform_2x2_5x5(const float* __restrict__ M, int splits,
                                                             const float* __restrict__ bias, float* __restrict__ y,
                                                             int N, int O, int Hout, int Wout, int TH, int TW,
                                                             int has_bias) {
  output_transform<2, 5>(M, splits, bias, y, N, O, Hout, Wout, TH, TW, has_bias);
}

extern "C" __global__ void winograd_gradient_transform_2x2(const float* __restrict__ grad_y, float* __restrict__ E,
                                                           int N, int O, int Hout, int Wout, int TH, int TW) {
  gradient_transform<2, 3>(grad_y, E, N, O, Hout, Wout, TH, TW);
}

extern "C" __global__ void winograd_gradient_transform_4x4(const float* __restrict__ grad_y, float* __restrict__ E,
                                                           int N, int O, int Hout, int Wout, int TH, int TW) {
  gradient_transform<4, 3>(grad_y, E, N, O, Hout, Wout, TH, TW);
}

extern "C" __global__ void winograd_gradient_transform_2x2_5x5(const float* __restrict__ grad_y, float* __restrict__ E,
                                                               int N, int O, int Hout, int Wout, int TH, int TW) {
  gradient_transform<2, 5>(grad_y, E, N, O, Hout, Wout, TH, TW);
}

extern "C" __global__ void winograd_filter_gradient_transform_2x2(const float* __restrict__ M, int splits,
                                                                  float* __restrict__ grad_w, int O, int C) {
  filter_gradient_transform<2, 3>(M, splits, grad_w, O, C);
}

extern "C" __global__ void winograd_filter_gradient_transform_4x4(const float* __restrict__ M, int splits,
                                                                  float* __restrict__ grad_w, int O, int C) {
  filter_gradient_transform<4, 3>(M, splits, grad_w, O, C);
}

extern "C" __global__ void winograd_filter_gradient_transform_2x2_5x5(const float* __restrict__ M, int splits,
                                                                      float* __restrict__ grad_w, int O, int C) {
  filter_gradient_transform<2, 5>(M, splits, grad_w, O, C);
}

// =======================================================================================
// winograd_fused: F(m x m, 3 x 3) in one kernel, m = 2 or 4. The unfused rungs above pass
// the transformed tensors through global memory: the input transform writes V (4 times the
// input for m = 2, 2.25 for m = 4), the products read it and write M (as much again, of the
// output), the output transform reads M; at batch 64 that traffic grows with the batch
// while cuDNN's direct kernels do not (VGG-16's conv1_2 backward-data on the H200: F(4x4)
// 7.4 ms, cuDNN 3.8; 1.9 and 1.6 at batch 16). Here a block takes WF_BO output channels and
// WF_BP tiles and never writes V or M: BC input channels at a time, it loads the slice's
// tile windows (T x T of each channel), transforms them and stores their T^2 values into
// shared memory beside the slice's filters U[xi][c][o] (from the filter transform, copied
// by cp.async); every thread then multiplies, for one of the T^2 positions xi, 8 output
// channels by 8 tiles (64 results in registers, 4 float4 shared reads for 64 FMAs a
// channel). A slice's window loads are issued before the barrier that waits for the
// block's last products, the filters' copies after it. At the end the T^2 planes of a
// result go through shared memory, GROUP output channels at a time, and a thread transforms
// one (channel, tile)'s T x T products into its m x m outputs and stores them.
// The block's results are all T^2 planes of WF_BO x WF_BP: 16 of 32 x 32 for m = 2 (256
// threads, two blocks an SM, a thread a window: WholeWindows), 36 for m = 4 (576 threads,
// one block an SM, 96 registers a thread, slices of 3 channels to stay within the static
// 48 KiB of shared memory, the windows transformed by rows and then columns: WindowRows).
// The filters come from L2 at 4 / WF_BP bytes a multiply-add, and the windows at about as
// much: WF_BP = 32, not 16, keeps that under 2.5 TB/s at half the FP32 peak.
// Napkin maths for conv1_2's backward-data at batch 64 (m = 2): 105 GFLOP of products (2.25
// times fewer than the direct sum's 237); the main loop (sm_90, kernels.check) 774
// instructions for 512 FFMAs (0.66), 124 registers; at half the FP32 peak 3.1 ms. For m = 4
// the multiplications are 4 times fewer than the direct sum's, but a slice is 366
// instructions for 192 FFMAs (0.52): a window's 6 x 6 transform serves 36 x 32 multiply-adds
// where a 4 x 4 one serves 16 x 32 (bench/winograd_model.py weighs both). Traffic: the input
// read once from memory (O / WF_BO times, from L2 after the first: the blocks of a group of
// tiles are neighbours in the grid), the output written once, the filters (T^2 C WF_BO
// floats a block) from L2. Where the channels are few, the transformed tensors' traffic
// weighs most and fusing wins; where many, the unfused F(4x4)'s products on whole 128 x 128
// tiles (conv2d.py: ENGINE_WINOGRAD_FUSED, a channel bound for F(2x2), and
// ENGINE_WINOGRAD_TILE_FUSED).
#define WF_BO 32
#define WF_BP 32
#define WF2_BC 8
#define WF2_THREADS 256
#define WF4_BC 3
#define WF4_THREADS 576

template <int m>
struct FusedWinograd {
  static constexpr int T = m + 2, PLANES = T * T, BC = m == 2 ? WF2_BC : WF4_BC;
  static constexpr int THREADS = m == 2 ? WF2_THREADS : WF4_THREADS;
  // A staged slice: the filters as [xi][c][o] and the tiles as [xi][c][tile], each plane 4
  // floats longer than its rows (a warp's two planes' float4 reads on different banks).
  static constexpr int FILTER_PLANE = BC * WF_BO + 4, TILE_PLANE = BC * WF_BP + 4;
  static constexpr int STAGED = PLANES * (FILTER_PLANE + TILE_PLANE);
  // The output channels whose T^2 planes of results go through shared memory at once, each
  // plane 4 floats longer than its rows.
  static constexpr int GROUP = m == 2 ? 16 : 8, RESULT_PLANE = GROUP * WF_BP + 4, RESULTS = PLANES * RESULT_PLANE;
  static constexpr int SHARED_FLOATS = STAGED > RESULTS ? STAGED : RESULTS;
  // The filter copies: a thread one (c, o) pair of the slice, and every COPY_STEP-th plane.
  static constexpr int PAIRS = BC * WF_BO, COPY_STEP = THREADS / PAIRS;
  // The channels of a slice multiplied one iteration at a time (m = 4: unrolled, the
  // compiler loads the next channel's operands during the last one's products, and the 96
  // registers a thread has at 18 warps an SM spill results; 18 warps hide the loads instead).
  static constexpr int PRODUCT_UNROLL = m == 2 ? BC : 1;
  static_assert(THREADS == PLANES * (WF_BO / 8) * (WF_BP / 8), "a thread 8 x 8 results of one plane");
  static_assert(PLANES % COPY_STEP == 0, "as many filter copies for every copying thread");
  static_assert(SHARED_FLOATS * 4 <= 48 * 1024, "static shared memory");
};

// The windows of a slice staged, m = 2: a thread one window, loaded whole into registers
// before the barrier (`load`: in flight while the block finishes the last slice's products),
// transformed and stored after it (`store`).
template <int m>
struct WholeWindows {
  static constexpr int T = m + 2;
  using F = FusedWinograd<m>;
  static_assert(F::BC * WF_BP <= F::THREADS, "a thread at most one window a slice");
  long long image;  // x's offset of this thread's tile's image
  int own_tile, own_channel, corner;
  unsigned long long inside;  // bit T u + v: the window's (u, v) on the map
  float d[T][T];
  __device__ WholeWindows(int N, int C, int H, int W, int pad, int TH, int TW, int p0) {
    own_tile = threadIdx.x % WF_BP, own_channel = threadIdx.x / WF_BP;
    const bool tile = own_channel < F::BC && p0 + own_tile < N * TH * TW;
    const TileIndex at(tile ? p0 + own_tile : 0, N, TH, TW);  // (its channel 0: a tile's position)
    const int top = m * at.ti - pad, left = m * at.tj - pad;
    corner = top * W + left;  // the window's (0, 0)
    inside = 0;
    for (int u = 0; u < T; ++u)
      for (int v = 0; v < T; ++v)
        if (tile && top + u >= 0 && top + u < H && left + v >= 0 && left + v < W) inside |= 1ull << (T * u + v);
    image = (long long)at.n * C * H * W;
  }
  __device__ void load(const float* __restrict__ x, int c0, int C, int H, int W) {  // slice c0's window (0 off the map)
    const unsigned long long live = c0 + own_channel < C ? inside : 0ull;
    const float* plane = x + image + (long long)(c0 + own_channel) * H * W;
#pragma unroll
    for (int u = 0; u < T; ++u)
#pragma unroll
      for (int v = 0; v < T; ++v) d[u][v] = live >> (T * u + v) & 1 ? plane[corner + u * W + v] : 0.0f;
  }
  __device__ void store(float* tiles_staged) {
    if (own_channel >= F::BC) return;
    float v[T][T];
    sandwich<T, T>(d, v, [](int p, int q) { return Winograd<m>::BT(p, q); });
#pragma unroll
    for (int r = 0; r < T; ++r)
#pragma unroll
      for (int s = 0; s < T; ++s) tiles_staged[(r * T + s) * F::TILE_PLANE + own_channel * WF_BP + own_tile] = v[r][s];
  }
};

// The windows of a slice staged, m = 4, where a whole 6 x 6 window and its transform in
// registers beside the 64 results would spill (96 registers a thread at 18 warps an SM): in
// two passes of T BC WF_BP small tasks spread over every thread. A row task loads one row
// u of one window before the barrier (`load`) and, after it, stores the row times B into
// the staged tiles (d B, row u); a column task then reads one column s of that and
// writes B^T times it back in place: V = B^T (d B). Lanes are neighbouring tiles of one
// row or column, as a thread-a-window warp's are.
template <int m>
struct WindowRows {
  static constexpr int T = m + 2, TASKS = T * FusedWinograd<m>::BC * WF_BP;
  static constexpr int ROUNDS = (TASKS + FusedWinograd<m>::THREADS - 1) / FusedWinograd<m>::THREADS;
  using F = FusedWinograd<m>;
  // x's offset of row u of the window of each of this thread's tasks in slice 0 (under
  // 2^31, as its transformed tiles' are: conv2d.py, _winograd_fits), and bit v of columns:
  // its column v on the map (none where the row is off it, or there is no task)
  int row_at[ROUNDS], channel[ROUNDS];
  unsigned columns[ROUNDS];
  float d[ROUNDS][T];
  // Entry p of B^T `values`, the zero coefficients left out: of a column, the column pass's;
  // of row u of d, entry p of that row of d B (sum over q of d[u][q] B[q][p] = B^T[p][q]).
  __device__ static float times_bt(int p, const float (&values)[T]) {
    float sum = 0.0f;
#pragma unroll
    for (int q = 0; q < T; ++q)
      if (Winograd<m>::BT(p, q) != 0.0f) sum += Winograd<m>::BT(p, q) * values[q];
    return sum;
  }
  __device__ WindowRows(int N, int C, int H, int W, int pad, int TH, int TW, int p0) {
#pragma unroll
    for (int k = 0; k < ROUNDS; ++k) {
      const int task = threadIdx.x + k * F::THREADS, window = task % (F::BC * WF_BP), u = task / (F::BC * WF_BP);
      const bool tile = task < TASKS && p0 + window % WF_BP < N * TH * TW;
      const TileIndex at(tile ? p0 + window % WF_BP : 0, N, TH, TW);
      const int h = m * at.ti - pad + u, left = m * at.tj - pad;
      channel[k] = window / WF_BP, columns[k] = 0;
      for (int v = 0; v < T; ++v)
        if (tile && h >= 0 && h < H && left + v >= 0 && left + v < W) columns[k] |= 1u << v;
      row_at[k] = (at.n * C + channel[k]) * H * W + h * W + left;  // (not read where columns is 0)
    }
  }
  __device__ void load(const float* __restrict__ x, int c0, int C, int H, int W) {
#pragma unroll
    for (int k = 0; k < ROUNDS; ++k) {
      const unsigned live = c0 + channel[k] < C ? columns[k] : 0u;
      const float* row = x + (row_at[k] + c0 * H * W);
#pragma unroll
      for (int v = 0; v < T; ++v) d[k][v] = live >> v & 1 ? row[v] : 0.0f;
    }
  }
  __device__ void store(float* tiles_staged) {
#pragma unroll
    for (int k = 0; k < ROUNDS; ++k) {
      const int task = threadIdx.x + k * F::THREADS, window = task % (F::BC * WF_BP), u = task / (F::BC * WF_BP);
      if (task >= TASKS) break;
#pragma unroll
      for (int s = 0; s < T; ++s) tiles_staged[(u * T + s) * F::TILE_PLANE + window] = times_bt(s, d[k]);
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < ROUNDS; ++k) {
      const int task = threadIdx.x + k * F::THREADS, window = task % (F::BC * WF_BP), s = task / (F::BC * WF_BP);
      if (task >= TASKS) break;
      float column[T];
#pragma unroll
      for (int u = 0; u < T; ++u) column[u] = tiles_staged[(u * T + s) * F::TILE_PLANE + window];
#pragma unroll
      for (int r = 0; r < T; ++r) tiles_staged[(r * T + s) * F::TILE_PLANE + window] = times_bt(r, column);
    }
  }
};

template <int m, class Staging>
__device__ __forceinline__ void winograd_fused(const float* __restrict__ x, const float* __restrict__ U,
                                               const float* __restrict__ bias, float* __restrict__ y, int N, int C,
                                               int H, int W, int O, int pad, int Hout, int Wout, int TH, int TW,
                                               int has_bias, float* shared) {
  using F = FusedWinograd<m>;
  constexpr int T = F::T;
  float* filters = shared;                                     // [xi][c][o] of the slice
  float* tiles_staged = shared + F::PLANES * F::FILTER_PLANE;  // [xi][c][tile]
  // The blocks of one group of tiles side by side in the grid, one an output-channel group:
  // they run together and read the same windows, the first from memory, the others from L2.
  const int groups = (O + WF_BO - 1) / WF_BO, tiles = N * TH * TW;
  const int p0 = blockIdx.x / groups * WF_BP, o0 = blockIdx.x % groups * WF_BO;
  Staging windows(N, C, H, W, pad, TH, TW, p0);
  // The filters this thread copies: planes first_plane, + COPY_STEP, ... of output channel
  // o0 + filter_o and input channel c0 + filter_c (a warp's lanes 32 consecutive output
  // channels: 128 bytes of U, as U[xi, c, o] from the filter transform's `by_input`).
  // (filter_c is written as WindowRows' row tasks write their channel, one expression for
  // the same value: as threadIdx.x / WF_BO % BC, NVRTC's F(4x4) reloaded a spill in its loop)
  const int filter_o = threadIdx.x % WF_BO, filter_c = threadIdx.x % F::PAIRS / WF_BO;
  const int first_plane = threadIdx.x / F::PAIRS;
  const bool copies = first_plane < F::COPY_STEP;
  // What this thread multiplies: plane xi, output channels 8 og.., tiles 8 pg..
  const int xi = threadIdx.x / 16, og = threadIdx.x % 16 / 4, pg = threadIdx.x % 4;
  float accumulator[8][8];
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j) accumulator[i][j] = 0.0f;
  for (int c0 = 0; c0 < C; c0 += F::BC) {
    windows.load(x, c0, C, H, W);  // in flight while the block finishes the last slice's products
    __syncthreads();      // every thread is done with the last slice's buffers
    // the slice's filters copied straight into shared memory (no registers held for them):
    // U[p, c, o] at p C O + c O + o, under 2^31 (T^2 O C), else U[0] (not read)
    if (copies) {
      const bool filter = o0 + filter_o < O && c0 + filter_c < C;
      const unsigned first = filter ? (first_plane * C + c0 + filter_c) * O + o0 + filter_o : 0u;
      const unsigned step = filter ? F::COPY_STEP * O * C : 0u;
#pragma unroll
      for (int k = 0; k < F::PLANES / F::COPY_STEP; ++k)
        cp_async_4(&filters[(first_plane + k * F::COPY_STEP) * F::FILTER_PLANE + filter_c * WF_BO + filter_o],
                   U + (first + k * step), filter);
    }
    cp_async_commit();
    windows.store(tiles_staged);
    cp_async_wait(0);
    __syncthreads();
#pragma unroll(F::PRODUCT_UNROLL)
    for (int c = 0; c < F::BC; ++c) {
      const float* a = filters + xi * F::FILTER_PLANE + c * WF_BO + 8 * og;
      const float* b = tiles_staged + xi * F::TILE_PLANE + c * WF_BP + 8 * pg;
      const float4 a0 = *reinterpret_cast<const float4*>(a), a1 = *reinterpret_cast<const float4*>(a + 4);
      const float4 b0 = *reinterpret_cast<const float4*>(b), b1 = *reinterpret_cast<const float4*>(b + 4);
      const float left_values[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float right_values[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) accumulator[i][j] += left_values[i] * right_values[j];
    }
  }
  // The output transform, GROUP output channels at a time: their T^2 planes x WF_BP tiles
  // through shared memory (products[xi][o][tile]), then a thread a (channel, tile) at a time.
  float* products = shared;
  for (int group = 0; group < WF_BO / F::GROUP; ++group) {
    __syncthreads();  // the products (or the last group's transforms) are done with the buffer
    if (og * 8 / F::GROUP == group)
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        float* row = products + xi * F::RESULT_PLANE + (og * 8 % F::GROUP + i) * WF_BP + 8 * pg;
        *reinterpret_cast<float4*>(row) =
            make_float4(accumulator[i][0], accumulator[i][1], accumulator[i][2], accumulator[i][3]);
        *reinterpret_cast<float4*>(row + 4) =
            make_float4(accumulator[i][4], accumulator[i][5], accumulator[i][6], accumulator[i][7]);
      }
    __syncthreads();
    for (int e = threadIdx.x; e < F::GROUP * WF_BP; e += F::THREADS) {  // a warp's lanes consecutive tiles
      const int o = o0 + F::GROUP * group + e / WF_BP, t = p0 + e % WF_BP;
      if (o >= O || t >= tiles) continue;
      float result[T][T], out[m][m];
#pragma unroll
      for (int r = 0; r < T; ++r)
#pragma unroll
        for (int s = 0; s < T; ++s) result[r][s] = products[(r * T + s) * F::RESULT_PLANE + e];
      sandwich<m, T>(result, out, [](int p, int q) { return Winograd<m>::AT(p, q); });
      const TileIndex tile(t, N, TH, TW);
      const float b = has_bias ? bias[o] : 0.0f;
      float* plane = y + ((long long)tile.n * O + o) * Hout * Wout;
      const int j = m * tile.tj, valid = Wout - j < m ? Wout - j : m;
      for (int a = 0; a < m && m * tile.ti + a < Hout; ++a) {
        for (int c = 0; c < m; ++c) out[a][c] += b;
        store_row<m>(plane + (m * tile.ti + a) * Wout + j, valid, out[a]);
      }
    }
  }
}

extern "C" __global__ void __launch_bounds__(WF2_THREADS, 2) winograd_fused_2x2(
    const float* __restrict__ x, const float* __restrict__ U, const float* __restrict__ bias, float* __restrict__ y,
    int N, int C, int H, int W, int O, int pad, int Hout, int Wout, int TH, int TW, int has_bias) {
  __shared__ __align__(16) float shared[FusedWinograd<2>::SHARED_FLOATS];
  winograd_fused<2, WholeWindows<2>>(x, U, bias, y, N, C, H, W, O, pad, Hout, Wout, TH, TW, has_bias, shared);
}

extern "C" __global__ void __launch_bounds__(WF4_THREADS, 1) winograd_fused_4x4(
    const float* __restrict__ x, const float* __restrict__ U, const float* __restrict__ bias, float* __restrict__ y,
    int N, int C, int H, int W, int O, int pad, int Hout, int Wout, int TH, int TW, int has_bias) {
  __shared__ __align__(16) float shared[FusedWinograd<4>::SHARED_FLOATS];
  winograd_fused<4, WindowRows<4>>(x, U, bias, y, N, C, H, W, O, pad, Hout, Wout, TH, TW, has_bias, shared);
}
