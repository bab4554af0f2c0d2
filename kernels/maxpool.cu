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
//   v4 maxpool_forward_2x2_pairs, maxpool_backward_2x2_pairs: v3 with two neighbouring
//      outputs a thread (an even output width): their 2 x 4 inputs as two float4s, their
//      values or gradients as a float2 and their switches as a longlong2. The same bytes
//      as v3 in half the loads and stores, 16 bytes wide where v3's were 4 to 8, so twice
//      the bytes in flight a thread, and the two divisions shared by two outputs. What it
//      should buy: v3 moved 0.80 (forward) and 0.75 (backward) of a copy's bandwidth on the
//      H200 with 12 to 16 bytes in flight a thread; a copy keeps 16-byte accesses in flight.
//      Odd output widths run v3.
// v1 and v2 share the per-element work (pool_window, gather_window); v3 and v4 the 2 x 2
// window's (pool_2x2, unpool_2x2).

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

// A 2 x 2 window a b / c d of a plane W wide: its maximum (row-major order, strict ">": the
// first maximum wins, as in v1) and the winner's offset from a: 0, 1, W or W + 1.
__device__ __forceinline__ void pool_2x2(float a, float b, float c, float d, int W, float& best, int& offset) {
  best = a, offset = 0;
  if (b > best) best = b, offset = 1;
  if (c > best) best = c, offset = W;
  if (d > best) best = d, offset = W + 1;
}

// Its gradient: g at the winner's offset, zeros elsewhere.
__device__ __forceinline__ void unpool_2x2(float g, int offset, int W, float& a, float& b, float& c, float& d) {
  a = offset == 0 ? g : 0.0f, b = offset == 1 ? g : 0.0f, c = offset == W ? g : 0.0f, d = offset == W + 1 ? g : 0.0f;
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
    float best;
    int offset;
    pool_2x2(top.x, top.y, bottom.x, bottom.y, W, best, offset);
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
    const int offset = (int)(switches[e] - (2 * i * W + 2 * j));  // 0, 1, W or W + 1
    float2 top, bottom;
    unpool_2x2(grad_y[e], offset, W, top.x, top.y, bottom.x, bottom.y);
    *reinterpret_cast<float2*>(grad_x + 2 * row * W + 2 * j) = top;
    *reinterpret_cast<float2*>(grad_x + (2 * row + 1) * W + 2 * j) = bottom;
  }
}

// v4: one thread per pair p of outputs 2 p and 2 p + 1 of the batch, (n C + c) Hout + i, j
// and j + 1 (j even); their inputs are 4 floats of rows 2 ((n C + c) Hout + i) and that + 1.
extern "C" __global__ void maxpool_forward_2x2_pairs(const float* __restrict__ x, float* __restrict__ y,
                                                     long long* __restrict__ switches, int N, int C, int H, int W,
                                                     int Hout, int Wout) {
  const int pairs_a_row = Wout / 2, count = N * C * Hout * pairs_a_row;
  for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < count; p += gridDim.x * blockDim.x) {
    const int row = p / pairs_a_row, j = 2 * (p - row * pairs_a_row), i = row - (row / Hout) * Hout;
    const float4 top = *reinterpret_cast<const float4*>(x + 2 * row * W + 2 * j);
    const float4 bottom = *reinterpret_cast<const float4*>(x + (2 * row + 1) * W + 2 * j);
    float2 best;
    int left, right;
    pool_2x2(top.x, top.y, bottom.x, bottom.y, W, best.x, left);
    pool_2x2(top.z, top.w, bottom.z, bottom.w, W, best.y, right);
    const long long corner = 2 * i * W + 2 * j;  // the left window's, in its plane
    *reinterpret_cast<float2*>(y + 2 * p) = best;
    *reinterpret_cast<longlong2*>(switches + 2 * p) = make_longlong2(corner + left, corner + 2 + right);
  }
}

extern "C" __global__ void maxpool_backward_2x2_pairs(const float* __restrict__ grad_y,
                                                      const long long* __restrict__ switches,
                                                      float* __restrict__ grad_x, int N, int C, int H, int W,
                                                      int Hout, int Wout) {
  const int pairs_a_row = Wout / 2, count = N * C * Hout * pairs_a_row;
  for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < count; p += gridDim.x * blockDim.x) {
    const int row = p / pairs_a_row, j = 2 * (p - row * pairs_a_row), i = row - (row / Hout) * Hout;
    const float2 g = *reinterpret_cast<const float2*>(grad_y + 2 * p);
    const longlong2 chosen = *reinterpret_cast<const longlong2*>(switches + 2 * p);
    const int corner = 2 * i * W + 2 * j;
    float4 top, bottom;
    unpool_2x2(g.x, (int)(chosen.x - corner), W, top.x, top.y, bottom.x, bottom.y);
    unpool_2x2(g.y, (int)(chosen.y - corner - 2), W, top.z, top.w, bottom.z, bottom.w);
    *reinterpret_cast<float4*>(grad_x + 2 * row * W + 2 * j) = top;
    *reinterpret_cast<float4*>(grad_x + (2 * row + 1) * W + 2 * j) = bottom;
  }
}
