// Bias additions and the reductions that give bias gradients.
//
// add_row_bias: y[r, c] += bias[c] on a (rows, cols) matrix; grid-stride, blocks of 256.
// column_sum: out[c] = sum_r x[r, c]; one thread per column (rows is the batch: small).
// channel_sum: partial[s, o] = scale times the sum of slice s of the N*plane values
//   x[n, o, :] of channel o, for x of shape (N, O, plane): channel_sums.cuh's blocks, a
//   (channel, slice) each. (Before: a block a channel, which left most SMs idle at 64
//   channels, a 64-bit division a value and a shared-memory tree of 8 barriers.)
// Cost: one add and 4 bytes read per input element: memory-bound.

#include "channel_sums.cuh"

extern "C" __global__ void add_row_bias(float* __restrict__ y, const float* __restrict__ bias, long long rows, int cols) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < rows * cols; i += (long long)gridDim.x * blockDim.x) {
    y[i] += bias[i % cols];
  }
}

extern "C" __global__ void column_sum(const float* __restrict__ x, float* __restrict__ out, int rows, int cols) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  float total = 0.0f;
  for (int r = 0; r < rows; ++r) total += x[(long long)r * cols + c];
  out[c] = total;
}

extern "C" __global__ void __launch_bounds__(REDUCE_THREADS, REDUCE_BLOCKS) channel_sum(const float* __restrict__ x,
                                                                        float* __restrict__ partial, int batch,
                                                                        int channels, int plane, long long slice,
                                                                        float scale) {
  channel_slice_sums<1>(batch, channels, plane, slice, scale, partial,
                        [&](long long at, float (&totals)[1]) { totals[0] += x[at]; });
}
