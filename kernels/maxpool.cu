// Max-pooling with switches (K x K windows, stride s, padding p, NCHW).
//
// Forward: one thread per output element (grid-stride, blocks of 256) scans its window in
// row-major order, skipping padding (which never wins), and keeps the first maximum
// (strict ">"): the same tie rule as the NumPy path. It writes the value and the switch,
// the flat index h W + w of the winner in its input plane. Output sizes (floor or ceil
// mode) are computed on the host and passed in.
// Backward: one thread per input element gathers, over the output windows that contain
// it, the gradients whose switch names it: no atomics, deterministic sums where windows
// overlap. Through these switches a DeconvNet unpools (Sect. 4).
// Cost: K^2 compares and 12 bytes written per output; backward reads up to
// ceil(K/s)^2 (gradient, switch) pairs per input element.

// Integer bounds without math headers (NVRTC compiles these files without any include).
__device__ __forceinline__ int larger(int a, int b) { return a > b ? a : b; }
__device__ __forceinline__ int smaller(int a, int b) { return a < b ? a : b; }

extern "C" __global__ void maxpool_forward(const float* __restrict__ x, float* __restrict__ y, long long* __restrict__ switches,
                                int N, int C, int H, int W, int K, int stride, int pad, int Hout, int Wout) {
  const long long total = (long long)N * C * Hout * Wout;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const int j = e % Wout, i = (e / Wout) % Hout;
    const long long plane = e / ((long long)Wout * Hout);
    const float* input = x + plane * H * W;
    float best = -3.402823466e+38f  /* -FLT_MAX: no math.h macros under NVRTC */;
    long long winner = -1;
    for (int u = 0; u < K; ++u) {
      const int h = i * stride - pad + u;
      if (h < 0 || h >= H) continue;
      for (int v = 0; v < K; ++v) {
        const int w = j * stride - pad + v;
        if (w < 0 || w >= W) continue;
        const float value = input[h * W + w];
        if (winner < 0 || value > best) {
          best = value;
          winner = (long long)h * W + w;
        }
      }
    }
    y[e] = best;
    switches[e] = winner;
  }
}

extern "C" __global__ void maxpool_backward(const float* __restrict__ grad_y, const long long* __restrict__ switches,
                                 float* __restrict__ grad_x, int N, int C, int H, int W, int K, int stride, int pad,
                                 int Hout, int Wout) {
  const long long total = (long long)N * C * H * W;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const int w = e % W, h = (e / W) % H;
    const long long plane = e / ((long long)W * H), me = (long long)h * W + w;
    // Windows i with i s - p <= h <= i s - p + K - 1.
    const int i_first = larger(0, (h + pad - K + stride) / stride), i_last = smaller(Hout - 1, (h + pad) / stride);
    const int j_first = larger(0, (w + pad - K + stride) / stride), j_last = smaller(Wout - 1, (w + pad) / stride);
    float sum = 0.0f;
    for (int i = i_first; i <= i_last; ++i)
      for (int j = j_first; j <= j_last; ++j) {
        const long long at = (plane * Hout + i) * Wout + j;
        if (switches[at] == me) sum += grad_y[at];
      }
    grad_x[e] = sum;
  }
}
