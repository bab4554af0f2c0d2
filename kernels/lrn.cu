// Local response normalisation across channels (AlexNet / CNN-F), PyTorch's convention:
//   s_c = k + alpha / size * sum_{j in window(c)} x_j^2,   y_c = x_c s_c^(-beta)
//   window(c) = c - size/2 .. c + (size-1)/2 (clipped)
//   dL/dx_c = g_c s_c^(-beta)
//             - 2 alpha beta / size * x_c * sum_{j : c in window(j)} g_j x_j s_j^(-beta-1)
// Layout NCHW. Threads: one per element (grid-stride, blocks of 256); each walks its
// `size` neighbours along the channel axis (stride H W in memory: each neighbour read is
// coalesced across the threads of a warp, which share c and differ in the plane position).
// Cost: about 2 size + 10 FLOPs and (size + 2) reads per element, each way.

// Integer bounds without math headers (NVRTC compiles these files without any include).
__device__ __forceinline__ int larger(int a, int b) { return a > b ? a : b; }
__device__ __forceinline__ int smaller(int a, int b) { return a < b ? a : b; }

extern "C" __global__ void lrn_forward(const float* __restrict__ x, float* __restrict__ y, float* __restrict__ scale, int N,
                            int C, long long plane, int size, float alpha, float beta, float k) {
  const long long total = (long long)N * C * plane;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const long long p = e % plane, n = e / (plane * C);
    const int c = (e / plane) % C;
    float sum = 0.0f;
    for (int j = larger(0, c - size / 2); j <= smaller(C - 1, c + (size - 1) / 2); ++j) {
      const float v = x[(n * C + j) * plane + p];
      sum += v * v;
    }
    const float s = k + alpha / size * sum;
    scale[e] = s;
    y[e] = x[e] * powf(s, -beta);
  }
}

extern "C" __global__ void lrn_backward(const float* __restrict__ grad_y, const float* __restrict__ x,
                             const float* __restrict__ scale, float* __restrict__ grad_x, int N, int C,
                             long long plane, int size, float alpha, float beta) {
  const long long total = (long long)N * C * plane;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const long long p = e % plane, n = e / (plane * C);
    const int c = (e / plane) % C;
    float spread = 0.0f;  // channels j whose window holds c: j = c - (size-1)/2 .. c + size/2
    for (int j = larger(0, c - (size - 1) / 2); j <= smaller(C - 1, c + size / 2); ++j) {
      const long long at = (n * C + j) * plane + p;
      spread += grad_y[at] * x[at] * powf(scale[at], -beta - 1.0f);
    }
    grad_x[e] = grad_y[e] * powf(scale[e], -beta) - 2.0f * alpha * beta / size * x[e] * spread;
  }
}
