// Zero padding of the spatial axes (PyTorch's ZeroPad2d, TensorFlow's asymmetric "SAME"):
// x (N, C, H, W) -> y (N, C, top + H + bottom, left + W + right), zeros around.
// pad_forward: one thread per output element (grid-stride, blocks of 256) reads its input
// or writes 0. pad_backward: one thread per input element copies its gradient out of the
// padded one (the padding's gradient goes nowhere). Identical in every backward mode.
// Cost: 8 bytes per output element: memory-bound.
// The element-wise ladder (python -m deepinside.kernels.ladder elementwise):
//   v1 pad_forward, pad_backward: each element's (plane, row, column) by three 64-bit
//      divisions: about 120 instructions an element (`kernels.check --loops`), above the 75
//      or so a copy's bandwidth leaves.
//   v2 pad_forward_carried, pad_backward_carried: the digits carried from step to step
//      (index_walk.cuh); the engine's.

#include "index_walk.cuh"

extern "C" __global__ void pad_forward(const float* __restrict__ x, float* __restrict__ y, long long planes, int H,
                                       int W, int top, int left, int Hp, int Wp) {
  const long long total = planes * Hp * Wp;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const int j = e % Wp - left, i = (e / Wp) % Hp - top;
    const long long plane = e / ((long long)Wp * Hp);
    y[e] = (i >= 0 && i < H && j >= 0 && j < W) ? x[(plane * H + i) * W + j] : 0.0f;
  }
}

extern "C" __global__ void pad_backward(const float* __restrict__ grad_y, float* __restrict__ grad_x, long long planes,
                                        int H, int W, int top, int left, int Hp, int Wp) {
  const long long total = planes * H * W;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const int j = e % W, i = (e / W) % H;
    const long long plane = e / ((long long)W * H);
    grad_x[e] = grad_y[(plane * Hp + i + top) * Wp + j + left];
  }
}

extern "C" __global__ void pad_forward_carried(const float* __restrict__ x, float* __restrict__ y, long long planes,
                                               int H, int W, int top, int left, int Hp, int Wp) {
  const long long total = planes * Hp * Wp;
  for (auto at = grid_walk(Hp, Wp); at.index < total; at.advance()) {
    const int i = at.mid - top, j = at.low - left;
    y[at.index] = (i >= 0 && i < H && j >= 0 && j < W) ? x[(at.high * H + i) * W + j] : 0.0f;
  }
}

extern "C" __global__ void pad_backward_carried(const float* __restrict__ grad_y, float* __restrict__ grad_x,
                                                long long planes, int H, int W, int top, int left, int Hp, int Wp) {
  const long long total = planes * H * W;
  for (auto at = grid_walk(H, W); at.index < total; at.advance()) {
    grad_x[at.index] = grad_y[(at.high * Hp + at.mid + top) * Wp + at.low + left];
  }
}
