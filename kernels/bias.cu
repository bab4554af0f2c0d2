// Bias additions and the reductions that give bias gradients.
//
// add_row_bias: y[r, c] += bias[c] on a (rows, cols) matrix; grid-stride, blocks of 256.
// column_sum: out[c] = sum_r x[r, c]; one thread per column (rows is the batch: small).
// channel_sum: partial[s, o] = the sum of slice s of the N*plane values x[n, o, :] of
//   channel o, for x of shape (N, O, plane): a block of REDUCE_THREADS = 256 threads
//   (declared in __launch_bounds__, so that the launcher refuses any other block) per
//   channel (blockIdx.x) and slice (blockIdx.y, `slice` values long; the host splits a
//   channel for waves of blocks, as split-K, and adds the slices in order, conv2d.py). Its
//   threads walk their values coalesced along the plane, the (image, position) of each
//   step carried from the last (no division a value: a 64-bit one was most of a value's
//   instructions), and the block's sums are added across each warp by shuffles, then
//   across its 8 warps in shared memory after one barrier. (Before: a block a channel,
//   which left most SMs idle at 64 channels, and a shared-memory tree of 8 barriers.)
// Cost: one add and 4 bytes read per input element: memory-bound.

#define REDUCE_THREADS 256

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

extern "C" __global__ void __launch_bounds__(REDUCE_THREADS) channel_sum(const float* __restrict__ x,
                                                                        float* __restrict__ partial, int batch,
                                                                        int channels, int plane, long long slice) {
  __shared__ float warp_sums[REDUCE_THREADS / 32];
  const int o = blockIdx.x;
  const long long count = (long long)batch * plane, first = blockIdx.y * slice + threadIdx.x;
  const long long last = (blockIdx.y + 1) * slice < count ? (blockIdx.y + 1) * slice : count;
  const int images_a_step = REDUCE_THREADS / plane, positions_a_step = REDUCE_THREADS % plane;
  long long n = first / plane;
  int p = (int)(first - n * plane);
  float total = 0.0f;
  for (long long e = first; e < last; e += REDUCE_THREADS) {
    total += x[(n * channels + o) * plane + p];
    n += images_a_step, p += positions_a_step;
    if (p >= plane) p -= plane, ++n;
  }
  for (int lane_mask = 16; lane_mask > 0; lane_mask /= 2) total += __shfl_xor_sync(0xffffffffu, total, lane_mask);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = total;
  __syncthreads();
  if (threadIdx.x == 0) {
    float sum = 0.0f;
    for (int w = 0; w < REDUCE_THREADS / 32; ++w) sum += warp_sums[w];
    partial[(long long)blockIdx.y * channels + o] = sum;
  }
}
