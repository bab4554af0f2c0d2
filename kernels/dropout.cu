// Inverted dropout: mask = [u >= p] / (1 - p) from uniform draws u (made on the host, so
// that every backend draws the same numbers from the same seed), y = x * mask; backward
// multiplies by the same mask.
// Threads: grid-stride loop, one element per thread per step, blocks of 256. Cost: 2 FLOPs
// and 16 bytes per element forward, 1 FLOP and 12 bytes backward: memory-bound.

extern "C" __global__ void dropout_forward(const float* __restrict__ x, const float* __restrict__ uniform,
                                float* __restrict__ mask, float* __restrict__ y, long long n, float p) {
  const float keep_scale = 1.0f / (1.0f - p);
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    mask[i] = uniform[i] >= p ? keep_scale : 0.0f;
    y[i] = x[i] * mask[i];
  }
}

extern "C" __global__ void dropout_backward(const float* __restrict__ grad_y, const float* __restrict__ mask,
                                 float* __restrict__ grad_x, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    grad_x[i] = grad_y[i] * mask[i];
  }
}
