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

// Versions:
//   v1 maxpool_forward, maxpool_backward: a grid-stride loop over every element of the
//      batch, its plane and position decoded with 64-bit divisions (a long software routine
//      on a GPU: on an H100 these moved 0.41 and 0.15 of a copy's bandwidth).
//   v2 maxpool_forward_planes, maxpool_backward_planes: the plane from the grid (blockIdx.y,
//      grid-stride over planes) and a grid-stride loop over positions within it, 32-bit
//      index arithmetic throughout: one 32-bit division per element. Should move these
//      memory-bound kernels toward the copy's bandwidth.
//   v3 maxpool_forward_2x2, maxpool_backward_2x2: 2 x 2 windows at stride 2 that tile the
//      input exactly (VGG's every pool): a thread per output reads its window as two float2s
//      and (backward) writes it as two, zeros but at the switch, so the backward is a scatter
//      without collisions and needs no search over windows; 2 32-bit divisions an output,
//      16 bytes read and 12 written forward, 12 read and 16 written backward. Other
//      geometries run v2 (maxpool.py).
// v1 and v2 share the per-element work (pool_window, gather_window).

// Integer bounds without math headers (NVRTC compiles these files without any include).
__device__ __forceinline__ int larger(int a, int b) { return a > b ? a : b; }
__device__ __forceinline__ int smaller(int a, int b) { return a < b ? a : b; }

// The window of output (i, j) in one input plane: its maximum (first one wins) and the
// flat index h W + w of the winner.
__device__ __forceinline__ void pool_window(const float* __restrict__ input, int H, int W, int K, int stride, int pad,
                                            int i, int j, float& best, int& winner) {
  best = -3.402823466e+38f;  // -FLT_MAX: no math.h macros under NVRTC
  winner = -1;
  for (int u = 0; u < K; ++u) {
    const int h = i * stride - pad + u;
    if (h < 0 || h >= H) continue;
    for (int v = 0; v < K; ++v) {
      const int w = j * stride - pad + v;
      if (w < 0 || w >= W) continue;
      const float value = input[h * W + w];
      if (winner < 0 || value > best) {
        best = value;
        winner = h * W + w;
      }
    }
  }
}

// The gradient of input (h, w) of one plane: the output gradients whose switch names it,
// over the windows i s - p <= h <= i s - p + K - 1 (and the same for w).
__device__ __forceinline__ float gather_window(const float* __restrict__ grad_y, const long long* __restrict__ switches,
                                               int K, int stride, int pad, int Hout, int Wout, int h, int w, int W) {
  const int i_first = larger(0, (h + pad - K + stride) / stride), i_last = smaller(Hout - 1, (h + pad) / stride);
  const int j_first = larger(0, (w + pad - K + stride) / stride), j_last = smaller(Wout - 1, (w + pad) / stride);
  const long long me = h * W + w;
  float sum = 0.0f;
  for (int i = i_first; i <= i_last; ++i)
    for (int j = j_first; j <= j_last; ++j)
      if (switches[i * Wout + j] == me) sum += grad_y[i * Wout + j];
  return sum;
}

extern "C" __global__ void maxpool_forward(const float* __restrict__ x, float* __restrict__ y, long long* __restrict__ switches,
                                int N, int C, int H, int W, int K, int stride, int pad, int Hout, int Wout) {
  const long long total = (long long)N * C * Hout * Wout;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const int j = e % Wout, i = (e / Wout) % Hout;
    const long long plane = e / ((long long)Wout * Hout);
    float best;
    int winner;
    pool_window(x + plane * H * W, H, W, K, stride, pad, i, j, best, winner);
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
    const long long plane = e / ((long long)W * H);
    grad_x[e] = gather_window(grad_y + plane * Hout * Wout, switches + plane * Hout * Wout, K, stride, pad, Hout, Wout,
                              h, w, W);
  }
}

// v2: planes from blockIdx.y (grid-stride over N C planes), positions from blockIdx.x.
extern "C" __global__ void maxpool_forward_planes(const float* __restrict__ x, float* __restrict__ y,
                                                  long long* __restrict__ switches, int N, int C, int H, int W, int K,
                                                  int stride, int pad, int Hout, int Wout) {
  const int positions = Hout * Wout;
  for (int plane = blockIdx.y; plane < N * C; plane += gridDim.y) {
    const float* input = x + (long long)plane * H * W;
    float* output = y + (long long)plane * positions;
    long long* chosen = switches + (long long)plane * positions;
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < positions; e += gridDim.x * blockDim.x) {
      const int i = e / Wout;
      float best;
      int winner;
      pool_window(input, H, W, K, stride, pad, i, e - i * Wout, best, winner);
      output[e] = best;
      chosen[e] = winner;
    }
  }
}

extern "C" __global__ void maxpool_backward_planes(const float* __restrict__ grad_y,
                                                   const long long* __restrict__ switches, float* __restrict__ grad_x,
                                                   int N, int C, int H, int W, int K, int stride, int pad, int Hout,
                                                   int Wout) {
  const int positions = H * W;
  for (int plane = blockIdx.y; plane < N * C; plane += gridDim.y) {
    const long long outputs = (long long)plane * Hout * Wout;
    float* gradient = grad_x + (long long)plane * positions;
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < positions; e += gridDim.x * blockDim.x) {
      const int h = e / W;
      gradient[e] = gather_window(grad_y + outputs, switches + outputs, K, stride, pad, Hout, Wout, h, e - h * W, W);
    }
  }
}

// v3: one thread per output (n C + c) Hout + i, j; input rows 2 i and 2 i + 1 of the plane
// are rows 2 ((n C + c) Hout + i) and that + 1 of the batch, since H = 2 Hout.
extern "C" __global__ void maxpool_forward_2x2(const float* __restrict__ x, float* __restrict__ y,
                                               long long* __restrict__ switches, int N, int C, int H, int W,
                                               int Hout, int Wout) {
  const int count = N * C * Hout * Wout;
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < count; e += gridDim.x * blockDim.x) {
    const int row = e / Wout, j = e - row * Wout, i = row - (row / Hout) * Hout;
    const float2 top = *reinterpret_cast<const float2*>(x + 2 * row * W + 2 * j);
    const float2 bottom = *reinterpret_cast<const float2*>(x + (2 * row + 1) * W + 2 * j);
    float best = top.x;  // row-major order, strict ">": the first maximum wins, as in v1
    int offset = 0;
    if (top.y > best) best = top.y, offset = 1;
    if (bottom.x > best) best = bottom.x, offset = W;
    if (bottom.y > best) best = bottom.y, offset = W + 1;
    y[e] = best;
    switches[e] = 2 * i * W + 2 * j + offset;
  }
}

extern "C" __global__ void maxpool_backward_2x2(const float* __restrict__ grad_y,
                                                const long long* __restrict__ switches, float* __restrict__ grad_x,
                                                int N, int C, int H, int W, int Hout, int Wout) {
  const int count = N * C * Hout * Wout;
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < count; e += gridDim.x * blockDim.x) {
    const int row = e / Wout, j = e - row * Wout, i = row - (row / Hout) * Hout;
    const float g = grad_y[e];
    const int offset = (int)(switches[e] - (2 * i * W + 2 * j));  // 0, 1, W or W + 1
    *reinterpret_cast<float2*>(grad_x + 2 * row * W + 2 * j) = make_float2(offset == 0 ? g : 0.0f,
                                                                           offset == 1 ? g : 0.0f);
    *reinterpret_cast<float2*>(grad_x + (2 * row + 1) * W + 2 * j) = make_float2(offset == W ? g : 0.0f,
                                                                                 offset == W + 1 ? g : 0.0f);
  }
}
