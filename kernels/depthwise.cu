// Depthwise convolution (groups = channels, one K x K filter per channel; MobileNet,
// EfficientNet): activations NCHW, weights (C, 1, K, K), stride s, symmetric zero padding p.
//   y[n,c,i,j]  = b[c] + sum_{u,v} w[c,u,v] x[n, c, i s - p + u, j s - p + v]
//   gx[n,c,h,w] = sum_{u,v} w[c,u,v] gy[n, c, (h + p - u) / s, (w + p - v) / s]  (exact divisions)
//   gw[c,u,v]   = sum_{n,i,j} gy[n,c,i,j] x[n, c, i s - p + u, j s - p + v]
// With K^2 multiply-adds per output and no reuse across channels, it is memory-bound: an
// im2col product would write K^2 times the input to read it back, so these are direct.
// depthwise_forward and depthwise_backward_data: one thread per output (input) element,
// grid-stride, blocks of 256; the K^2 reads of a thread fall in its channel's plane.
// depthwise_backward_weights: one block of DEPTHWISE_THREADS per weight sums its N Hout Wout
// products (coalesced along the plane) and reduces them in shared memory.
// Cost: 2 N C K^2 Hout Wout FLOPs each; about 8 bytes per output element moved.

#define DEPTHWISE_THREADS 256

extern "C" __global__ void depthwise_forward(const float* __restrict__ x, const float* __restrict__ w,
                                             const float* __restrict__ b, float* __restrict__ y, int N, int C, int H,
                                             int W, int K, int stride, int pad, int Hout, int Wout, int has_bias) {
  const long long total = (long long)N * C * Hout * Wout;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const int j = e % Wout, i = (e / Wout) % Hout;
    const long long plane = e / ((long long)Wout * Hout);
    const int c = plane % C;
    const float* in = x + plane * H * W;
    float sum = has_bias ? b[c] : 0.0f;
    for (int u = 0; u < K; ++u) {
      const int h = i * stride - pad + u;
      if (h < 0 || h >= H) continue;
      for (int v = 0; v < K; ++v) {
        const int col = j * stride - pad + v;
        if (col >= 0 && col < W) sum += w[(c * K + u) * K + v] * in[h * W + col];
      }
    }
    y[e] = sum;
  }
}

extern "C" __global__ void depthwise_backward_data(const float* __restrict__ grad_y, const float* __restrict__ w,
                                                   float* __restrict__ grad_x, int N, int C, int H, int W, int K,
                                                   int stride, int pad, int Hout, int Wout) {
  const long long total = (long long)N * C * H * W;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const int col = e % W, h = (e / W) % H;
    const long long plane = e / ((long long)W * H);
    const int c = plane % C;
    const float* gy = grad_y + plane * Hout * Wout;
    float sum = 0.0f;
    for (int u = 0; u < K; ++u) {
      const int top = h + pad - u;
      if (top < 0 || top % stride || top / stride >= Hout) continue;
      for (int v = 0; v < K; ++v) {
        const int left = col + pad - v;
        if (left < 0 || left % stride || left / stride >= Wout) continue;
        sum += w[(c * K + u) * K + v] * gy[(top / stride) * Wout + left / stride];
      }
    }
    grad_x[e] = sum;
  }
}

extern "C" __global__ void __launch_bounds__(DEPTHWISE_THREADS) depthwise_backward_weights(
    const float* __restrict__ grad_y, const float* __restrict__ x, float* __restrict__ grad_w, int N, int C, int H,
    int W, int K, int stride, int pad, int Hout, int Wout) {
  __shared__ float partial[DEPTHWISE_THREADS];
  const int weight = blockIdx.x, v = weight % K, u = (weight / K) % K, c = weight / (K * K);
  const long long plane = (long long)Hout * Wout, count = N * plane;
  float total = 0.0f;
  for (long long e = threadIdx.x; e < count; e += DEPTHWISE_THREADS) {
    const long long n = e / plane;
    const int p = e % plane, i = p / Wout, j = p % Wout;
    const int h = i * stride - pad + u, col = j * stride - pad + v;
    if (h >= 0 && h < H && col >= 0 && col < W)
      total += grad_y[(n * C + c) * plane + p] * x[((n * C + c) * H + h) * W + col];
  }
  partial[threadIdx.x] = total;
  __syncthreads();
  for (int stride_ = DEPTHWISE_THREADS / 2; stride_ > 0; stride_ /= 2) {
    if (threadIdx.x < stride_) partial[threadIdx.x] += partial[threadIdx.x + stride_];
    __syncthreads();
  }
  if (threadIdx.x == 0) grad_w[weight] = partial[0];
}
