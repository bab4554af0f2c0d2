// Adaptive average pooling (PyTorch's AdaptiveAvgPool2d), NCHW.
//
// Output cell (i, j) of an Hout x Wout grid averages input rows floor(i H / Hout) ..
// ceil((i + 1) H / Hout) - 1 and the matching columns.
// Forward: one thread per output element sums its bin. Backward: one thread per input
// element gathers gy / (bin size) from every output cell whose bin holds it (at most a
// few, since bins overlap by at most one row or column). Grid-stride, blocks of 256.
// Cost: one read per input element per containing bin.
// The element-wise ladder (python -m deepinside.kernels.ladder elementwise) on a global
// pool (a 1 x 1 output: EfficientNet's last features, 1280 planes of 7 x 7 at batch 64):
//   v1 the kernels above: forward, a thread sums a plane, so a warp's 32 lanes read 32
//      planes a float at a time: each request a sector a lane, 8 times the fewest
//      (`python -m deepinside.kernels.sectors`); backward, each element's bins found by
//      64-bit divisions and loops.
//   v2 global_avgpool_forward: a warp a plane, its lanes reading consecutive floats (whole
//      sectors), summed by five shuffles; global_avgpool_backward: the element's plane
//      carried from step to step (index_walk.cuh), its gradient the plane's over its size.
//      The engine's, wherever the output is 1 x 1.

#include "index_walk.cuh"

#define POOL_THREADS 256

__device__ __forceinline__ int bin_start(int i, int size, int cells) { return (i * size) / cells; }
__device__ __forceinline__ int bin_stop(int i, int size, int cells) { return ((i + 1) * size + cells - 1) / cells; }

extern "C" __global__ void adaptive_avgpool_forward(const float* __restrict__ x, float* __restrict__ y, int N, int C, int H,
                                         int W, int Hout, int Wout) {
  const long long total = (long long)N * C * Hout * Wout;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const int j = e % Wout, i = (e / Wout) % Hout;
    const long long plane = e / ((long long)Wout * Hout);
    const int h0 = bin_start(i, H, Hout), h1 = bin_stop(i, H, Hout);
    const int w0 = bin_start(j, W, Wout), w1 = bin_stop(j, W, Wout);
    float sum = 0.0f;
    for (int h = h0; h < h1; ++h)
      for (int w = w0; w < w1; ++w) sum += x[(plane * H + h) * W + w];
    y[e] = sum / ((h1 - h0) * (w1 - w0));
  }
}

extern "C" __global__ void adaptive_avgpool_backward(const float* __restrict__ grad_y, float* __restrict__ grad_x, int N, int C,
                                          int H, int W, int Hout, int Wout) {
  const long long total = (long long)N * C * H * W;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const int w = e % W, h = (e / W) % H;
    const long long plane = e / ((long long)W * H);
    float sum = 0.0f;
    for (int i = (h * Hout) / H; i < Hout && bin_start(i, H, Hout) <= h; ++i) {
      const int h0 = bin_start(i, H, Hout), h1 = bin_stop(i, H, Hout);
      if (h >= h1) continue;
      for (int j = (w * Wout) / W; j < Wout && bin_start(j, W, Wout) <= w; ++j) {
        const int w0 = bin_start(j, W, Wout), w1 = bin_stop(j, W, Wout);
        if (w >= w1) continue;
        sum += grad_y[(plane * Hout + i) * Wout + j] / ((h1 - h0) * (w1 - w0));
      }
    }
    grad_x[e] = sum;
  }
}

extern "C" __global__ void __launch_bounds__(POOL_THREADS) global_avgpool_forward(const float* __restrict__ x,
                                                                                 float* __restrict__ y,
                                                                                 long long planes, int plane) {
  const int lane = threadIdx.x % 32, warps = POOL_THREADS / 32;
  // every lane of a warp walks the same planes, so that all 32 take part in the shuffles
  for (long long p = (long long)blockIdx.x * warps + threadIdx.x / 32; p < planes; p += (long long)gridDim.x * warps) {
    float sum = 0.0f;
    for (int i = lane; i < plane; i += 32) sum += x[p * plane + i];
    for (int lane_mask = 16; lane_mask > 0; lane_mask /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, lane_mask);
    if (lane == 0) y[p] = sum / plane;
  }
}

extern "C" __global__ void global_avgpool_backward(const float* __restrict__ grad_y, float* __restrict__ grad_x,
                                                   long long total, int plane) {
  for (auto at = grid_walk<false>(1, plane); at.index < total; at.advance()) {
    grad_x[at.index] = grad_y[at.high] / plane;  // v1's arithmetic: its one bin's share
  }
}
