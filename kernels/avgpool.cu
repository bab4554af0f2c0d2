// Adaptive average pooling (PyTorch's AdaptiveAvgPool2d), NCHW.
//
// Output cell (i, j) of an Hout x Wout grid averages input rows floor(i H / Hout) ..
// ceil((i + 1) H / Hout) - 1 and the matching columns.
// Forward: one thread per output element sums its bin. Backward: one thread per input
// element gathers gy / (bin size) from every output cell whose bin holds it (at most a
// few, since bins overlap by at most one row or column). Grid-stride, blocks of 256.
// Cost: one read per input element per containing bin.

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
