// Softmax cross-entropy averaged over the batch: logits (N, K), integer labels (N,).
//   p = softmax(z) row-wise;  loss = -(1/N) sum_n log p[n, label_n];  dz = (p - onehot) g / N
// softmax_cross_entropy_rows: one block of LOSS_THREADS = 256 threads per row; two shared-memory tree
//   reductions (the row maximum, then the sum of exponentials), each log2(256) = 8 steps;
//   writes the row's probabilities and its loss. batch_mean: one block of 256 threads sums
//   the N row losses the same way. Both declare __launch_bounds__(LOSS_THREADS): the
//   reductions assume exactly that many threads, and the launcher refuses any other block. softmax_cross_entropy_backward: one thread per logit.
// Cost: about 4 K FLOPs and 8 K bytes per row.

#define LOSS_THREADS 256

__device__ float block_reduce(float* shared, float value, int is_max) {
  shared[threadIdx.x] = value;
  __syncthreads();
  for (int stride = LOSS_THREADS / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      const float other = shared[threadIdx.x + stride];
      shared[threadIdx.x] = is_max ? fmaxf(shared[threadIdx.x], other) : shared[threadIdx.x] + other;
    }
    __syncthreads();
  }
  const float result = shared[0];
  __syncthreads();
  return result;
}

extern "C" __global__ void __launch_bounds__(LOSS_THREADS) softmax_cross_entropy_rows(const float* __restrict__ logits, const long long* __restrict__ labels,
                                           float* __restrict__ probabilities, float* __restrict__ row_loss, int K) {
  __shared__ float shared[LOSS_THREADS];
  const long long row = blockIdx.x;
  const float* z = logits + row * K;
  float peak = -3.402823466e+38f  /* -FLT_MAX: no math.h macros under NVRTC */;
  for (int k = threadIdx.x; k < K; k += LOSS_THREADS) peak = fmaxf(peak, z[k]);
  peak = block_reduce(shared, peak, 1);
  float total = 0.0f;
  for (int k = threadIdx.x; k < K; k += LOSS_THREADS) total += expf(z[k] - peak);
  total = block_reduce(shared, total, 0);
  for (int k = threadIdx.x; k < K; k += LOSS_THREADS) probabilities[row * K + k] = expf(z[k] - peak) / total;
  if (threadIdx.x == 0) row_loss[row] = logf(total) - (z[labels[row]] - peak);
}

extern "C" __global__ void __launch_bounds__(LOSS_THREADS) batch_mean(const float* __restrict__ values, float* __restrict__ mean, int n) {
  __shared__ float shared[LOSS_THREADS];
  float total = 0.0f;
  for (int i = threadIdx.x; i < n; i += LOSS_THREADS) total += values[i];
  total = block_reduce(shared, total, 0);
  if (threadIdx.x == 0) mean[0] = total / n;
}

extern "C" __global__ void softmax_cross_entropy_backward(const float* __restrict__ grad_loss,
                                               const float* __restrict__ probabilities,
                                               const long long* __restrict__ labels, float* __restrict__ grad_logits,
                                               int N, int K) {
  const float scale = grad_loss[0] / N;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < (long long)N * K; e += (long long)gridDim.x * blockDim.x) {
    const long long row = e / K;
    const int k = e % K;
    grad_logits[e] = (probabilities[e] - (k == labels[row] ? 1.0f : 0.0f)) * scale;
  }
}
