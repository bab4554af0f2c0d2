// Local response normalisation across channels (AlexNet / CNN-F), PyTorch's convention:
//   s_c = k + alpha / size * sum_{j in window(c)} x_j^2,   y_c = x_c s_c^(-beta)
//   window(c) = c - size/2 .. c + (size-1)/2 (clipped)
//   dL/dx_c = g_c s_c^(-beta)
//             - 2 alpha beta / size * x_c * sum_{j : c in window(j)} g_j x_j s_j^(-beta-1)
// Layout NCHW. Threads: one per element (grid-stride, blocks of 256); each walks its
// `size` neighbours along the channel axis (stride H W in memory: each neighbour read is
// coalesced across the threads of a warp, which share c and differ in the plane position).
// Cost: about 2 size + 10 FLOPs and (size + 2) reads per element, each way.
// The element-wise ladder (python -m deepinside.kernels.ladder elementwise):
//   v1 lrn_forward, lrn_backward: a thread an element, as above. Each element's (image,
//      channel, position) by three 64-bit divisions, its window's values read by every
//      element whose window holds them (size times each), and the backward a powf a
//      neighbour: size + 1 powf an element, about 86 instructions each, where a copy's
//      bandwidth leaves about 75 an element for everything.
//   v2 lrn_forward_columns, lrn_backward_columns: a thread a (image, position) column and a
//      run of LRN_CHUNK channels, walking them in order. Each channel's values are read
//      once, when it enters the window, into a ring of the window's last LRN_RING entries
//      in shared memory (the forward: x; the backward: g x s^(-beta-1), g s^(-beta) and x,
//      two powf an element), and every window's sum is added from the ring in v1's order:
//      v1's arithmetic, term for term. A column of 16 channels, not all C: enough threads
//      at batch 1 (CNN-F's conv2: 27 x 27 positions, 256 channels), and the windows' edges
//      read twice only at the runs' ends. For size <= LRN_RING; v1 above. The engine's.
//   v3 lrn_forward_columns_fast, lrn_backward_columns_fast: v2 with the powers by __powf,
//      2^(y log2 x) on the special-function unit, 3 instructions where powf's exact
//      rounding takes about 86 (a grid-stride loop of y = powf(x, b): 103 instructions on
//      NVRTC's sm_90 code, of y = __powf(x, b) 20, of y = x 17), within a few ulp.

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

#define LRN_THREADS 256
#define LRN_CHUNK 16
#define LRN_RING 8

// This thread's column (image n, position p) and run of channels [first, last), or false
// where it has none: threads over columns fastest, so that a warp's loads are consecutive
// positions of one channel.
__device__ __forceinline__ bool lrn_column(int N, int C, long long plane, long long& column_base, int& first,
                                           int& last) {
  const long long columns = N * plane, id = blockIdx.x * (long long)LRN_THREADS + threadIdx.x;
  const long long chunk = id / columns, column = id - chunk * columns;
  if (chunk * LRN_CHUNK >= C) return false;
  const long long n = column / plane;
  column_base = n * C * plane + (column - n * plane);  // element (n, 0, p)
  first = (int)chunk * LRN_CHUNK;
  last = smaller(C, first + LRN_CHUNK);
  return true;
}

// x^y: v2 powf (v1's), v3 __powf
template <bool FAST>
__device__ __forceinline__ float lrn_power(float x, float y) { return FAST ? __powf(x, y) : powf(x, y); }

template <bool FAST>
__device__ __forceinline__ void lrn_forward_walk(const float* __restrict__ x, float* __restrict__ y,
                                                 float* __restrict__ scale, int N, int C, long long plane, int size,
                                                 float alpha, float beta, float k) {
  __shared__ float ring[LRN_RING][LRN_THREADS];  // x of the window's channels, channel j at j % LRN_RING
  long long base;
  int first, last;
  if (!lrn_column(N, C, plane, base, first, last)) return;
  const int before = size / 2, after = (size - 1) / 2;
  float* const mine = &ring[0][threadIdx.x];
  // the first window but its last channel, which the loop's first step brings in
  for (int j = larger(0, first - before); j < smaller(C, first + after); ++j) {
    mine[(j % LRN_RING) * LRN_THREADS] = x[base + j * plane];
  }
  for (int c = first; c < last; ++c) {
    if (c + after < C) mine[((c + after) % LRN_RING) * LRN_THREADS] = x[base + (c + after) * plane];
    float sum = 0.0f;
    for (int j = larger(0, c - before); j <= smaller(C - 1, c + after); ++j) {
      const float v = mine[(j % LRN_RING) * LRN_THREADS];
      sum += v * v;
    }
    const float s = k + alpha / size * sum;
    scale[base + c * plane] = s;
    y[base + c * plane] = mine[(c % LRN_RING) * LRN_THREADS] * lrn_power<FAST>(s, -beta);
  }
}

extern "C" __global__ void __launch_bounds__(LRN_THREADS) lrn_forward_columns(
    const float* __restrict__ x, float* __restrict__ y, float* __restrict__ scale, int N, int C, long long plane,
    int size, float alpha, float beta, float k) {
  lrn_forward_walk<false>(x, y, scale, N, C, plane, size, alpha, beta, k);
}

extern "C" __global__ void __launch_bounds__(LRN_THREADS) lrn_forward_columns_fast(
    const float* __restrict__ x, float* __restrict__ y, float* __restrict__ scale, int N, int C, long long plane,
    int size, float alpha, float beta, float k) {
  lrn_forward_walk<true>(x, y, scale, N, C, plane, size, alpha, beta, k);
}

template <bool FAST>
__device__ __forceinline__ void lrn_backward_walk(const float* __restrict__ grad_y, const float* __restrict__ x,
                                                  const float* __restrict__ scale, float* __restrict__ grad_x, int N,
                                                  int C, long long plane, int size, float alpha, float beta) {
  // of the channels j whose window may hold this one: g x s^(-beta-1) (what the sums add),
  // g s^(-beta) and x (the channel's own terms), channel j at j % LRN_RING
  __shared__ float ring[3][LRN_RING][LRN_THREADS];
  long long base;
  int first, last;
  if (!lrn_column(N, C, plane, base, first, last)) return;
  const int before = (size - 1) / 2, after = size / 2;  // the channels j with c in window(j): c - before .. c + after
  float* const spread_terms = &ring[0][0][threadIdx.x];
  float* const own_terms = &ring[1][0][threadIdx.x];
  float* const values = &ring[2][0][threadIdx.x];
  auto enter = [&](int j) {
    const long long at = base + j * plane;
    const int slot = (j % LRN_RING) * LRN_THREADS;
    spread_terms[slot] = grad_y[at] * x[at] * lrn_power<FAST>(scale[at], -beta - 1.0f);
    own_terms[slot] = grad_y[at] * lrn_power<FAST>(scale[at], -beta);
    values[slot] = x[at];
  };
  for (int j = larger(0, first - before); j < smaller(C, first + after); ++j) enter(j);
  for (int c = first; c < last; ++c) {
    if (c + after < C) enter(c + after);
    float spread = 0.0f;
    for (int j = larger(0, c - before); j <= smaller(C - 1, c + after); ++j) {
      spread += spread_terms[(j % LRN_RING) * LRN_THREADS];
    }
    const int slot = (c % LRN_RING) * LRN_THREADS;
    grad_x[base + c * plane] = own_terms[slot] - 2.0f * alpha * beta / size * values[slot] * spread;
  }
}

extern "C" __global__ void __launch_bounds__(LRN_THREADS) lrn_backward_columns(
    const float* __restrict__ grad_y, const float* __restrict__ x, const float* __restrict__ scale,
    float* __restrict__ grad_x, int N, int C, long long plane, int size, float alpha, float beta) {
  lrn_backward_walk<false>(grad_y, x, scale, grad_x, N, C, plane, size, alpha, beta);
}

extern "C" __global__ void __launch_bounds__(LRN_THREADS) lrn_backward_columns_fast(
    const float* __restrict__ grad_y, const float* __restrict__ x, const float* __restrict__ scale,
    float* __restrict__ grad_x, int N, int C, long long plane, int size, float alpha, float beta) {
  lrn_backward_walk<true>(grad_y, x, scale, grad_x, N, C, plane, size, alpha, beta);
}
