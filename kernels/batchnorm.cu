// Batch normalisation over the channels of NCHW activations (Ioffe and Szegedy):
//   y = gamma[c] (x - mean[c]) / sqrt(var[c] + eps) + beta[c]
// with the batch's statistics while training (mean and biased variance over N, H, W) and the
// running ones in evaluation. Backward, xhat = (x - mean) invstd, m = N H W:
//   dgamma[c] = sum g xhat,  dbeta[c] = sum g,
//   dx = gamma invstd (g - dbeta / m - xhat dgamma / m)   with batch statistics,
//   dx = gamma invstd g                                    with fixed ones.
// Identical in every backward mode; in evaluation it is a per-channel affine map, which is
// why it folds into the convolution before it (batchnorm_fold: w s, (b - mean) s + beta per
// output channel, s = gamma / sqrt(var + eps); one thread per weight).
// batchnorm_statistics and batchnorm_backward_sums: one block of BN_THREADS per channel, a
// strided loop over its N H W values (coalesced along the plane) and shared-memory trees
// (two passes for the variance, for accuracy). batchnorm_forward and batchnorm_backward_data:
// one thread per element, grid-stride. Cost: memory-bound, 2 or 3 passes over the tensor.
// The element-wise ladder (python -m deepinside.kernels.ladder elementwise):
//   v1 batchnorm_forward, batchnorm_backward_data: each element's channel by two 64-bit
//      divisions ((e / plane) % C) and its scale by a square root and a division: about 110
//      and 135 instructions an element (`kernels.check --loops`), above the 75 or so a
//      copy's bandwidth leaves.
//   v2 batchnorm_forward_carried, batchnorm_backward_data_carried: the channel carried from
//      step to step (index_walk.cuh), v1's arithmetic otherwise: about 58 and 83 (53 with
//      fixed statistics); the engine's.
//   v3 batchnorm_forward_carried_rsqrt, batchnorm_backward_data_carried_rsqrt: v2 with the
//      scale by one rsqrtf (2 ulp) instead of a square root and a division: 32, 41 and 27.
//      Its reductions are v2's.

//   v1 batchnorm_statistics, batchnorm_backward_sums: a block a channel (EfficientNet's
//      32-channel layers leave 100 of an H100's 132 SMs idle), two 64-bit divisions a value,
//      a shared-memory tree of 8 barriers a sum.
//   v2 the mean by bias.cu's channel_sum (scaled by 1 / count), then
//      batchnorm_centred_squares, and batchnorm_gradient_sums: channel_sums.cuh's (channel,
//      slice) blocks, the (image, position) carried, sums by warp shuffles; the engine's.
//      The variance still from a second pass over the centred values, for accuracy.

// the maps' walks; the v2 sums (which include index_walk.cuh too)
#include "index_walk.cuh"
#include "channel_sums.cuh"

#define BN_THREADS 256

__device__ float bn_block_sum(float* shared, float value) {
  shared[threadIdx.x] = value;
  __syncthreads();
  for (int stride = BN_THREADS / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
    __syncthreads();
  }
  const float total = shared[0];
  __syncthreads();
  return total;
}

extern "C" __global__ void __launch_bounds__(BN_THREADS) batchnorm_statistics(
    const float* __restrict__ x, float* __restrict__ mean, float* __restrict__ var, int N, int C, int plane) {
  __shared__ float shared[BN_THREADS];
  const int c = blockIdx.x;
  const long long count = (long long)N * plane;
  float total = 0.0f;
  for (long long e = threadIdx.x; e < count; e += BN_THREADS) total += x[((e / plane) * C + c) * plane + e % plane];
  const float m = bn_block_sum(shared, total) / count;
  float squares = 0.0f;
  for (long long e = threadIdx.x; e < count; e += BN_THREADS) {
    const float d = x[((e / plane) * C + c) * plane + e % plane] - m;
    squares += d * d;
  }
  const float v = bn_block_sum(shared, squares) / count;
  if (threadIdx.x == 0) mean[c] = m, var[c] = v;
}

extern "C" __global__ void batchnorm_forward(const float* __restrict__ x, const float* __restrict__ mean,
                                             const float* __restrict__ var, const float* __restrict__ gamma,
                                             const float* __restrict__ beta, float* __restrict__ y, long long n, int C,
                                             int plane, float eps) {
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x) {
    const int c = (e / plane) % C;
    y[e] = gamma[c] * (x[e] - mean[c]) / sqrtf(var[c] + eps) + beta[c];
  }
}

// v2 (RSQRT false) and v3: y = gamma (x - mean) / sqrt(var + eps) + beta, v3 by rsqrtf
template <bool RSQRT>
__device__ __forceinline__ void batchnorm_forward_walk(const float* __restrict__ x, const float* __restrict__ mean,
                                                       const float* __restrict__ var, const float* __restrict__ gamma,
                                                       const float* __restrict__ beta, float* __restrict__ y,
                                                       long long n, int C, int plane, float eps) {
  for (auto at = grid_walk(C, plane); at.index < n; at.advance()) {
    const int c = at.mid;
    y[at.index] = RSQRT ? (x[at.index] - mean[c]) * (gamma[c] * rsqrtf(var[c] + eps)) + beta[c]
                        : gamma[c] * (x[at.index] - mean[c]) / sqrtf(var[c] + eps) + beta[c];  // v1's arithmetic
  }
}

extern "C" __global__ void batchnorm_forward_carried(const float* __restrict__ x, const float* __restrict__ mean,
                                                     const float* __restrict__ var, const float* __restrict__ gamma,
                                                     const float* __restrict__ beta, float* __restrict__ y, long long n,
                                                     int C, int plane, float eps) {
  batchnorm_forward_walk<false>(x, mean, var, gamma, beta, y, n, C, plane, eps);
}

extern "C" __global__ void batchnorm_forward_carried_rsqrt(const float* __restrict__ x, const float* __restrict__ mean,
                                                           const float* __restrict__ var,
                                                           const float* __restrict__ gamma,
                                                           const float* __restrict__ beta, float* __restrict__ y,
                                                           long long n, int C, int plane, float eps) {
  batchnorm_forward_walk<true>(x, mean, var, gamma, beta, y, n, C, plane, eps);
}

extern "C" __global__ void __launch_bounds__(BN_THREADS) batchnorm_backward_sums(
    const float* __restrict__ grad_y, const float* __restrict__ x, const float* __restrict__ mean,
    const float* __restrict__ var, float* __restrict__ grad_gamma, float* __restrict__ grad_beta, int N, int C,
    int plane, float eps) {
  __shared__ float shared[BN_THREADS];
  const int c = blockIdx.x;
  const long long count = (long long)N * plane;
  const float invstd = 1.0f / sqrtf(var[c] + eps);
  float g_total = 0.0f, gx_total = 0.0f;
  for (long long e = threadIdx.x; e < count; e += BN_THREADS) {
    const long long at = ((e / plane) * C + c) * plane + e % plane;
    g_total += grad_y[at];
    gx_total += grad_y[at] * (x[at] - mean[c]) * invstd;
  }
  const float g_sum = bn_block_sum(shared, g_total), gx_sum = bn_block_sum(shared, gx_total);
  if (threadIdx.x == 0) grad_beta[c] = g_sum, grad_gamma[c] = gx_sum;
}

extern "C" __global__ void batchnorm_backward_data(const float* __restrict__ grad_y, const float* __restrict__ x,
                                                   const float* __restrict__ mean, const float* __restrict__ var,
                                                   const float* __restrict__ gamma,
                                                   const float* __restrict__ grad_gamma,
                                                   const float* __restrict__ grad_beta, float* __restrict__ grad_x,
                                                   long long n, int C, int plane, float eps, int batch_statistics) {
  const float count = (float)(n / C);
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x) {
    const int c = (e / plane) % C;
    const float invstd = 1.0f / sqrtf(var[c] + eps);
    float g = grad_y[e];
    if (batch_statistics) g -= (grad_beta[c] + (x[e] - mean[c]) * invstd * grad_gamma[c]) / count;
    grad_x[e] = gamma[c] * invstd * g;
  }
}

template <bool RSQRT>
__device__ __forceinline__ void batchnorm_backward_data_walk(
    const float* __restrict__ grad_y, const float* __restrict__ x, const float* __restrict__ mean,
    const float* __restrict__ var, const float* __restrict__ gamma, const float* __restrict__ grad_gamma,
    const float* __restrict__ grad_beta, float* __restrict__ grad_x, long long n, int C, int plane, float eps,
    int batch_statistics) {
  const float count = (float)(n / C), inverse_count = 1.0f / count;
  for (auto at = grid_walk(C, plane); at.index < n; at.advance()) {
    const int c = at.mid;
    const float invstd = RSQRT ? rsqrtf(var[c] + eps) : 1.0f / sqrtf(var[c] + eps);
    float g = grad_y[at.index];
    if (batch_statistics) {
      const float correction = grad_beta[c] + (x[at.index] - mean[c]) * invstd * grad_gamma[c];
      g -= RSQRT ? correction * inverse_count : correction / count;  // v2: v1's arithmetic
    }
    grad_x[at.index] = gamma[c] * invstd * g;
  }
}

extern "C" __global__ void batchnorm_backward_data_carried(
    const float* __restrict__ grad_y, const float* __restrict__ x, const float* __restrict__ mean,
    const float* __restrict__ var, const float* __restrict__ gamma, const float* __restrict__ grad_gamma,
    const float* __restrict__ grad_beta, float* __restrict__ grad_x, long long n, int C, int plane, float eps,
    int batch_statistics) {
  batchnorm_backward_data_walk<false>(grad_y, x, mean, var, gamma, grad_gamma, grad_beta, grad_x, n, C, plane, eps,
                                      batch_statistics);
}

extern "C" __global__ void batchnorm_backward_data_carried_rsqrt(
    const float* __restrict__ grad_y, const float* __restrict__ x, const float* __restrict__ mean,
    const float* __restrict__ var, const float* __restrict__ gamma, const float* __restrict__ grad_gamma,
    const float* __restrict__ grad_beta, float* __restrict__ grad_x, long long n, int C, int plane, float eps,
    int batch_statistics) {
  batchnorm_backward_data_walk<true>(grad_y, x, mean, var, gamma, grad_gamma, grad_beta, grad_x, n, C, plane, eps,
                                     batch_statistics);
}

extern "C" __global__ void __launch_bounds__(REDUCE_THREADS, REDUCE_BLOCKS) batchnorm_centred_squares(
    const float* __restrict__ x, const float* __restrict__ mean, float* __restrict__ partial, int N, int C, int plane,
    long long slice, float scale) {
  const float m = mean[blockIdx.x];
  channel_slice_sums<1>(N, C, plane, slice, scale, partial, [&](long long at, float (&totals)[1]) {
    const float d = x[at] - m;
    totals[0] += d * d;
  });
}

// partial's planes of 2 C: the sums of g (grad_beta) and of g xhat (grad_gamma)
extern "C" __global__ void __launch_bounds__(REDUCE_THREADS, REDUCE_BLOCKS) batchnorm_gradient_sums(
    const float* __restrict__ grad_y, const float* __restrict__ x, const float* __restrict__ mean,
    const float* __restrict__ var, float* __restrict__ partial, int N, int C, int plane, long long slice, float eps) {
  const float m = mean[blockIdx.x], invstd = 1.0f / sqrtf(var[blockIdx.x] + eps);
  channel_slice_sums<2>(N, C, plane, slice, 1.0f, partial, [&](long long at, float (&totals)[2]) {
    const float g = grad_y[at];
    totals[0] += g;
    totals[1] += g * (x[at] - m) * invstd;
  });
}

extern "C" __global__ void batchnorm_fold(const float* __restrict__ w, const float* __restrict__ b,
                                          const float* __restrict__ mean, const float* __restrict__ var,
                                          const float* __restrict__ gamma, const float* __restrict__ beta,
                                          float* __restrict__ w_folded, float* __restrict__ b_folded, long long n,
                                          int per_channel, int has_bias, float eps) {
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x) {
    const int o = e / per_channel;
    const float s = gamma[o] / sqrtf(var[o] + eps);
    w_folded[e] = w[e] * s;
    if (e % per_channel == 0) b_folded[o] = ((has_bias ? b[o] : 0.0f) - mean[o]) * s + beta[o];
  }
}
