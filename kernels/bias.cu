// Bias additions and the reductions that give bias gradients.
//
// add_row_bias: y[r, c] += bias[c] on a (rows, cols) matrix; grid-stride, blocks of 256.
// column_sum: out[c] = sum_r x[r, c]; one thread per column (rows is the batch: small).
// channel_sum: out[o] = sum over n and the plane of x[n, o, :] for x of shape (N, O, plane):
//   one block of REDUCE_THREADS = 256 threads (declared in __launch_bounds__, so that the
//   launcher refuses any other block) per channel sums N*plane values in a strided loop (coalesced
//   along the plane), then a shared-memory tree of log2(256) = 8 steps with a barrier each.
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

extern "C" __global__ void __launch_bounds__(REDUCE_THREADS) channel_sum(const float* __restrict__ x, float* __restrict__ out, int batch, int channels, int plane) {
  __shared__ float partial[REDUCE_THREADS];
  const int o = blockIdx.x;
  float total = 0.0f;
  const long long count = (long long)batch * plane;
  for (long long i = threadIdx.x; i < count; i += REDUCE_THREADS) {
    const long long n = i / plane, p = i % plane;
    total += x[(n * channels + o) * plane + p];
  }
  partial[threadIdx.x] = total;
  __syncthreads();
  for (int stride = REDUCE_THREADS / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[o] = partial[0];
}
