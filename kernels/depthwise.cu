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
//
// The forward's ladder (`python -m deepinside.kernels.ladder depthwise`, GB/s against a copy):
//   v1 depthwise_forward        above: each thread reads its K^2 inputs from global memory
//                               (neighbouring threads' windows overlap: L1 serves the re-reads).
//   v2 depthwise_forward_tiled  below: a block stages the input patch of a 16 x 16 output tile
//                               and the plane's filter in shared memory, so each input element
//                               comes from global memory once per tile (plus the tile's halo),
//                               in coalesced rows. Should reach the copy's bandwidth.
//   v3 depthwise_forward_rows   below: 4 outputs of a row a thread, 32-bit indices, the window
//                               rows and the weights in registers (3x3 and 5x5, stride 1 and 2).
//   v4 depthwise_forward_planes below: small planes, a block's whole input planes staged in
//                               shared memory, an output row a thread (v3 on larger planes).
// Backward-data's ladder: depthwise_backward_data above (a gather), then at stride 1 the
// tiled (v2) or row (v3) forward on grad_y with the filters flipped (depthwise.py; no kernel
// of its own).

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

// ---- v2 -------------------------------------------------------------------------------
// One block per (image, channel, 16 x 16 output tile), blocks numbered tile-fastest along x
// (a plane count above 65,535 would not fit gridDim.y or z). The patch a tile reads is
// (16 - 1) s + K pixels square, zero where it falls in the padding; launched only where
// that fits DEPTHWISE_MAX_SPAN (stride <= 2 and K <= 9) and K <= DEPTHWISE_MAX_K (the rows'
// pitch below: at most 48 floats at stride 1, 24 rows; 40 at stride 2, 39 rows).
#define DEPTHWISE_TILE 16
#define DEPTHWISE_TILE_THREADS 256
#define DEPTHWISE_MAX_SPAN 40
#define DEPTHWISE_MAX_K 9

extern "C" __global__ void __launch_bounds__(DEPTHWISE_TILE_THREADS) depthwise_forward_tiled(
    const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b, float* __restrict__ y,
    int N, int C, int H, int W, int K, int stride, int pad, int Hout, int Wout, int has_bias) {
  __shared__ float patch[DEPTHWISE_MAX_SPAN * DEPTHWISE_MAX_SPAN];
  __shared__ float filter[DEPTHWISE_MAX_K * DEPTHWISE_MAX_K];
  const int tiles_across = (Wout + DEPTHWISE_TILE - 1) / DEPTHWISE_TILE;
  const int tiles = tiles_across * ((Hout + DEPTHWISE_TILE - 1) / DEPTHWISE_TILE);
  const long long plane = blockIdx.x / tiles;  // n C + c
  const int tile = blockIdx.x % tiles, c = plane % C;
  const int i0 = (tile / tiles_across) * DEPTHWISE_TILE, j0 = (tile % tiles_across) * DEPTHWISE_TILE;
  const int span = (DEPTHWISE_TILE - 1) * stride + K, top = i0 * stride - pad, left = j0 * stride - pad;
  // Where the patch's pixels lie. A warp reads two rows of 16 outputs' pixels: at stride 1,
  // 16 consecutive ones, which rows `span` apart (18 for 3x3) put partly in the same banks;
  // at stride 2, every other one, 16 words of one parity, which no row pitch keeps apart. So
  // at stride 2 a row holds its even columns, then its odd ones (`half` apart), and the
  // pitch is 16 modulo 32 floats for the two rows at stride 1 (rows 1 apart), 8 modulo 16 at
  // stride 2 (rows 2 apart): each warp's reads fill the 32 banks once (python -m
  // deepinside.kernels.banks; with rows `span` apart every patch read was a 2-way conflict).
  const int half = (span + 1) / 2;
  const int pitch = stride == 1 ? (span + 15) / 32 * 32 + 16 : (2 * half + 7) / 16 * 16 + 8;
  auto at = [&](int row, int column) {
    return row * pitch + (stride == 2 ? (column & 1) * half + (column >> 1) : column);
  };
  const float* in = x + plane * H * W;
  for (int e = threadIdx.x; e < span * span; e += DEPTHWISE_TILE_THREADS) {
    const int r = e / span, c = e - r * span, h = top + r, col = left + c;
    patch[at(r, c)] = (h >= 0 && h < H && col >= 0 && col < W) ? in[h * W + col] : 0.0f;
  }
  for (int e = threadIdx.x; e < K * K; e += DEPTHWISE_TILE_THREADS) filter[e] = w[c * K * K + e];
  __syncthreads();
  const int ti = threadIdx.x / DEPTHWISE_TILE, tj = threadIdx.x % DEPTHWISE_TILE;
  const int i = i0 + ti, j = j0 + tj;
  if (i >= Hout || j >= Wout) return;
  float sum = has_bias ? b[c] : 0.0f;
  for (int u = 0; u < K; ++u)
    for (int v = 0; v < K; ++v) sum += filter[u * K + v] * patch[at(ti * stride + u, tj * stride + v)];
  y[(plane * Hout + i) * Wout + j] = sum;
}

// ---- v3 -------------------------------------------------------------------------------
// depthwise_forward_rows (3x3 and 5x5, stride 1 and 2): a thread computes
// DEPTHWISE_ROW_OUTPUTS = 4 consecutive outputs of a row. v1 (run 2 on an H100: 0.09-0.17
// of a copy's bandwidth)
// spends most of its instructions on four 64-bit divisions an output and reads each input
// K^2 times; v2's 16 x 16 tiles idle on small planes and stage through shared memory. Here
// a thread decodes (plane, row, group of 4) once with 32-bit divisions (depthwise.py checks
// the tensors hold fewer than 2^31 elements), reads each of its K window rows once,
// (4 - 1) s + K values, into registers, and keeps the channel's K^2 weights there (K and s
// template constants, so every array is registers): per 4 outputs 3 divisions,
// K ((4 - 1) s + 2 K) loads and 4 K^2 multiply-adds, instead of 16 divisions and 4 K^2
// loads. Consecutive threads take consecutive groups of a row, so a warp's reads of a window
// row are one contiguous run. Should bring the forward to the copy's bandwidth; at stride 1
// backward-data is the same kernel on grad_y with the filters flipped (depthwise.py).
#define DEPTHWISE_ROW_OUTPUTS 4
static_assert(DEPTHWISE_ROW_OUTPUTS == 4, "a thread stores its results as one float4");

// Row h's window of a thread whose outputs start at column j0 (its input columns left =
// j0 S - pad onwards). With the padding before a compile-time PAD (0 to K - S; -1: any, at
// run time) the thread's own R S columns from j0 S, where they lie whole on the map and
// aligned, come as float4s, a warp's lanes side by side (whole sectors), and only the PAD
// columns before them and the K - S - PAD after them float by float, each of those a lane
// R S floats from the next; otherwise every column is read alone.
template <int K, int S, int PAD>
__device__ __forceinline__ void window_row(const float* __restrict__ row, int left, int W,
                                           float (&window)[(DEPTHWISE_ROW_OUTPUTS - 1) * S + K]) {
  constexpr int R = DEPTHWISE_ROW_OUTPUTS, SPAN = (R - 1) * S + K;
  if constexpr (PAD >= 0) {
    static_assert(PAD + R * S <= SPAN, "the thread's own columns lie inside its window");
    const float* own = row + left + PAD;
    if (left + PAD + R * S <= W && (unsigned long long)own % 16 == 0) {
#pragma unroll
      for (int q = 0; q < R * S; q += 4) {
        const float4 v = __ldg(reinterpret_cast<const float4*>(own + q));
        window[PAD + q] = v.x, window[PAD + q + 1] = v.y, window[PAD + q + 2] = v.z, window[PAD + q + 3] = v.w;
      }
#pragma unroll
      for (int v = 0; v < PAD; ++v) window[v] = left + v >= 0 ? row[left + v] : 0.0f;
#pragma unroll
      for (int v = PAD + R * S; v < SPAN; ++v) window[v] = left + v < W ? row[left + v] : 0.0f;
      return;
    }
  }
#pragma unroll
  for (int v = 0; v < SPAN; ++v) window[v] = (left + v >= 0 && left + v < W) ? row[left + v] : 0.0f;
}

template <int K, int S, int PAD>
__device__ __forceinline__ void depthwise_forward_rows_of(const float* __restrict__ x, const float* __restrict__ w,
                                                       const float* __restrict__ b, float* __restrict__ y, int N,
                                                       int C, int H, int W, int pad, int Hout, int Wout,
                                                       int has_bias) {
  constexpr int R = DEPTHWISE_ROW_OUTPUTS, SPAN = (R - 1) * S + K;
  const int groups = (Wout + R - 1) / R, count = N * C * Hout * groups;
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < count; e += gridDim.x * blockDim.x) {
    const int row = e / groups, j0 = (e - row * groups) * R;  // row = (n C + c) Hout + i
    const int plane = row / Hout, i = row - plane * Hout, c = plane % C;
    const float* in = x + plane * H * W;
    const int top = i * S - pad, left = j0 * S - pad;
    float weights[K * K], sum[R];
#pragma unroll
    for (int q = 0; q < K * K; ++q) weights[q] = __ldg(w + c * K * K + q);
#pragma unroll
    for (int r = 0; r < R; ++r) sum[r] = has_bias ? b[c] : 0.0f;
#pragma unroll
    for (int u = 0; u < K; ++u) {
      const int h = top + u;
      if (h < 0 || h >= H) continue;
      float window[SPAN];
      window_row<K, S, PAD>(in + h * W, left, W, window);
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int v = 0; v < K; ++v) sum[r] += weights[u * K + v] * window[r * S + v];
    }
    float* out = y + row * Wout + j0;
    if (j0 + R <= Wout && (unsigned long long)out % 16 == 0)  // one float4: a warp's stores whole sectors
      *reinterpret_cast<float4*>(out) = make_float4(sum[0], sum[1], sum[2], sum[3]);
    else
      for (int r = 0; r < R && j0 + r < Wout; ++r) out[r] = sum[r];
  }
}

// The padding before as a compile-time constant where window_row can use it (0 to 2, at most
// K - S: all of EfficientNet's), else read at run time.
template <int K, int S>
__device__ __forceinline__ void depthwise_forward_rows_padded(const float* __restrict__ x, const float* __restrict__ w,
                                                           const float* __restrict__ b, float* __restrict__ y,
                                                           int N, int C, int H, int W, int pad, int Hout, int Wout,
                                                           int has_bias) {
  if (pad == 0) return depthwise_forward_rows_of<K, S, 0>(x, w, b, y, N, C, H, W, pad, Hout, Wout, has_bias);
  if (pad == 1) return depthwise_forward_rows_of<K, S, 1>(x, w, b, y, N, C, H, W, pad, Hout, Wout, has_bias);
  if constexpr (K - S >= 2)
    if (pad == 2) return depthwise_forward_rows_of<K, S, 2>(x, w, b, y, N, C, H, W, pad, Hout, Wout, has_bias);
  depthwise_forward_rows_of<K, S, -1>(x, w, b, y, N, C, H, W, pad, Hout, Wout, has_bias);
}

// function<K, S>(arguments...) for the kernel size and stride given, one of the four the row
// and plane rungs are compiled for (depthwise.py: ROW_KERNELS), chosen once a thread. (A
// macro: NVRTC takes a generic lambda's call operator for a host function.)
#define WITH_ROW_KERNEL(function, ...)                   \
  if (K == 3 && stride == 1) function<3, 1>(__VA_ARGS__); \
  else if (K == 3) function<3, 2>(__VA_ARGS__);           \
  else if (stride == 1) function<5, 1>(__VA_ARGS__);      \
  else function<5, 2>(__VA_ARGS__)

extern "C" __global__ void depthwise_forward_rows(const float* __restrict__ x, const float* __restrict__ w,
                                                  const float* __restrict__ b, float* __restrict__ y, int N, int C,
                                                  int H, int W, int K, int stride, int pad, int Hout, int Wout,
                                                  int has_bias) {
  WITH_ROW_KERNEL(depthwise_forward_rows_padded, x, w, b, y, N, C, H, W, pad, Hout, Wout, has_bias);
}

// ---- v4 -------------------------------------------------------------------------------
// depthwise_forward_planes (3x3 and 5x5, stride 1 and 2, small planes: EfficientNet-Lite0's
// 14 x 14 and 7 x 7 stages, and backward-data at stride 1 through it as v3's): on a 7 x 7
// plane v3's thread takes a row's 4 outputs and the next thread its last 3, no row lies on a
// 16-byte boundary, so a thread reads its K window rows value by value, each with its
// bounds, and every input is read K times over from L1 (run 2 on the H200: 0.24 of a copy's
// bandwidth at 7 x 7 with 1152 channels, against 0.50 at 112 x 112; cuDNN faster on most
// of EfficientNet-Lite0's 14 x 14 and 7 x 7 layers).
// Here a block takes DEPTHWISE_PLANE_ROWS consecutive output rows of the batch, a thread
// each, and first copies the input planes they read (NCHW's planes are contiguous: one run
// of floats, as a copy reads it) and those planes' filters into shared memory; each thread
// then sums its row's windows from there into a shared row of results, and the block
// writes its rows out as one contiguous run. What it should buy: a copy's access pattern,
// each input and output moved once, coalesced, and window reads from shared memory instead
// of L1. Launched where the planes a block touches, their filters and its results fit
// DEPTHWISE_PLANE_FLOATS (depthwise.py: planes_fit); v3 runs elsewhere.
#define DEPTHWISE_PLANE_ROWS 256
#define DEPTHWISE_PLANE_FLOATS 12288

template <int K, int S>
__device__ __forceinline__ void depthwise_forward_planes_of(float* staged, const float* __restrict__ x,
                                                         const float* __restrict__ w, const float* __restrict__ b,
                                                         float* __restrict__ y, int N, int C, int H, int W, int pad,
                                                         int Hout, int Wout, int has_bias) {
  const int first_row = blockIdx.x * DEPTHWISE_PLANE_ROWS;  // row = (n C + c) Hout + i
  const int rows = N * C * Hout - first_row < DEPTHWISE_PLANE_ROWS ? N * C * Hout - first_row : DEPTHWISE_PLANE_ROWS;
  const int first_plane = first_row / Hout, planes = (first_row + rows - 1) / Hout - first_plane + 1;
  float* filters = staged + planes * H * W;
  float* results = filters + planes * K * K;
  const float* in = x + (long long)first_plane * H * W;
  for (int e = threadIdx.x; e < planes * H * W; e += DEPTHWISE_PLANE_ROWS) staged[e] = in[e];
  for (int e = threadIdx.x; e < planes * K * K; e += DEPTHWISE_PLANE_ROWS) {
    const int q = e / (K * K);
    filters[e] = w[((first_plane + q) % C) * K * K + e - q * K * K];
  }
  __syncthreads();
  if (threadIdx.x < rows) {
    const int plane = (first_row + threadIdx.x) / Hout, i = first_row + threadIdx.x - plane * Hout;
    const float* input = staged + (plane - first_plane) * H * W;
    const float* filter = filters + (plane - first_plane) * K * K;
    const float bias = has_bias ? b[plane % C] : 0.0f;
    for (int j = 0; j < Wout; ++j) {
      float sum = bias;
#pragma unroll
      for (int u = 0; u < K; ++u) {
        const int h = i * S - pad + u;
        if (h < 0 || h >= H) continue;
#pragma unroll
        for (int v = 0; v < K; ++v) {
          const int col = j * S - pad + v;
          if (col >= 0 && col < W) sum += filter[u * K + v] * input[h * W + col];
        }
      }
      results[threadIdx.x * Wout + j] = sum;
    }
  }
  __syncthreads();
  float* out = y + (long long)first_row * Wout;
  for (int e = threadIdx.x; e < rows * Wout; e += DEPTHWISE_PLANE_ROWS) out[e] = results[e];
}

extern "C" __global__ void __launch_bounds__(DEPTHWISE_PLANE_ROWS) depthwise_forward_planes(
    const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b, float* __restrict__ y,
    int N, int C, int H, int W, int K, int stride, int pad, int Hout, int Wout, int has_bias) {
  __shared__ float staged[DEPTHWISE_PLANE_FLOATS];  // planes, filters, results: one array for the four sizes
  WITH_ROW_KERNEL(depthwise_forward_planes_of, staged, x, w, b, y, N, C, H, W, pad, Hout, Wout, has_bias);
}

// ---- backward-data v2 at stride 2 ----------------------------------------------------------
// depthwise_backward_data_parity (3x3 and 5x5 at stride 2): v1's gather visits all K^2 taps
// of an input element and keeps those whose (h + p - u) divides by the stride, with 64-bit
// decoding and two divisions a tap (run 2: 0.03 of a copy's bandwidth on EfficientNet's 5x5
// stride-2 layer). The taps that reach input row h are those of u's parity (h + p) % 2, so
// this visits only ceil(K / 2)^2 of them (9 of 25, 4 of 9) with exact halvings, decoding its
// element once with 32-bit divisions and the channel's weights a constant-size loop away.
template <int K>
__device__ __forceinline__ void depthwise_backward_data_parity_of(const float* __restrict__ grad_y,
                                                                  const float* __restrict__ w,
                                                                  float* __restrict__ grad_x, int N, int C, int H,
                                                                  int W, int pad, int Hout, int Wout) {
  const int count = N * C * H * W;
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < count; e += gridDim.x * blockDim.x) {
    const int row = e / W, col = e - row * W, plane = row / H, h = row - plane * H, c = plane % C;
    const float* gy = grad_y + plane * Hout * Wout;
    const float* filter = w + c * K * K;
    float sum = 0.0f;
#pragma unroll
    for (int u = (h + pad) % 2; u < K; u += 2) {
      const int i = (h + pad - u) / 2;
      if (i < 0 || i >= Hout) continue;
#pragma unroll
      for (int v = (col + pad) % 2; v < K; v += 2) {
        const int j = (col + pad - v) / 2;
        if (j >= 0 && j < Wout) sum += filter[u * K + v] * gy[i * Wout + j];
      }
    }
    grad_x[e] = sum;
  }
}

// function<K>(grad_y, ..., Wout) for the stride-2 rungs' kernel sizes (depthwise.py:
// PARITY_KERNEL_SIZES), chosen once a thread.
#define WITH_STRIDE_TWO_KERNEL(function) \
  if (K == 3) function<3>(grad_y, w, grad_x, N, C, H, W, pad, Hout, Wout); \
  else function<5>(grad_y, w, grad_x, N, C, H, W, pad, Hout, Wout)

extern "C" __global__ void depthwise_backward_data_parity(const float* __restrict__ grad_y,
                                                          const float* __restrict__ w, float* __restrict__ grad_x,
                                                          int N, int C, int H, int W, int K, int pad, int Hout,
                                                          int Wout) {
  WITH_STRIDE_TWO_KERNEL(depthwise_backward_data_parity_of);
}

// ---- backward-data v3 at stride 2 ----------------------------------------------------------
// depthwise_backward_data_quads (3x3 and 5x5 at stride 2): a thread takes a 2 x 2 quad of
// input positions, padded rows 2a and 2a + 1 and columns 2b and 2b + 1, one position of
// each parity. Input row 2a + r (padded) is reached by the kernel rows u of r's parity, from
// grad_y row (2a + r - u) / 2 = a - u / 2: so the quad's four sums take every tap (u, v)
// once, from one window of ceil(K / 2)^2 grad_y values, gy[a - s][b - t] for s, t below
// ceil(K / 2) (9 for 5x5, 4 for 3x3), each loaded once, into the sum of the parity (u % 2,
// v % 2). For the same quad (5x5) v2 loads 9 + 6 + 6 + 4 = 25 grad_y values beside the 25
// weights both load, and decodes each of the four positions with three divisions, its tap
// loops starting at a run-time parity; here the quad is decoded once and its taps are
// compile-time constants: about 2.5 times fewer instructions an input element by napkin
// maths (v2 ran at 0.13 of a copy's bandwidth on EfficientNet's 5x5 stride-2 layer, run 2).
template <int K>
__device__ __forceinline__ void depthwise_backward_data_quads_of(const float* __restrict__ grad_y,
                                                                 const float* __restrict__ w,
                                                                 float* __restrict__ grad_x, int N, int C, int H,
                                                                 int W, int pad, int Hout, int Wout) {
  constexpr int R = (K + 1) / 2;  // grad_y rows (and columns) of a quad's window
  const int first_a = pad / 2, first_b = pad / 2;  // the quads whose padded rows hold input row 0, column 0
  const int rows = (pad + H - 1) / 2 - first_a + 1, cols = (pad + W - 1) / 2 - first_b + 1;
  const int quads = rows * cols, count = N * C * quads;
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < count; e += gridDim.x * blockDim.x) {
    const int plane = e / quads, q = e - plane * quads, qa = q / cols;
    const int a = first_a + qa, b = first_b + (q - qa * cols);
    const float* gy = grad_y + plane * Hout * Wout;
    const float* filter = w + plane % C * K * K;
    float window[R][R];
#pragma unroll
    for (int s = 0; s < R; ++s) {
#pragma unroll
      for (int t = 0; t < R; ++t) {
        const int i = a - s, j = b - t;
        window[s][t] = i >= 0 && i < Hout && j >= 0 && j < Wout ? gy[i * Wout + j] : 0.0f;
      }
    }
    float sum[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}};
#pragma unroll
    for (int u = 0; u < K; ++u) {
#pragma unroll
      for (int v = 0; v < K; ++v) sum[u % 2][v % 2] += __ldg(filter + u * K + v) * window[u / 2][v / 2];
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int h = 2 * a + r - pad;
      if (h < 0 || h >= H) continue;
#pragma unroll
      for (int t = 0; t < 2; ++t) {
        const int col = 2 * b + t - pad;
        if (col >= 0 && col < W) grad_x[(plane * H + h) * W + col] = sum[r][t];
      }
    }
  }
}

extern "C" __global__ void depthwise_backward_data_quads(const float* __restrict__ grad_y,
                                                         const float* __restrict__ w, float* __restrict__ grad_x,
                                                         int N, int C, int H, int W, int K, int pad, int Hout,
                                                         int Wout) {
  WITH_STRIDE_TWO_KERNEL(depthwise_backward_data_quads_of);
}

// ---- backward-weights v2 -----------------------------------------------------------------
// depthwise_backward_weights_channel_k{3,5}: v1 gives each of a channel's K^2 weights a block
// of its own, so every block reads the channel's whole grad_y and x planes: K^2 = 9 or 25
// times the bytes the sums need. Here one block takes a channel (blockIdx.x) and one slice of
// its N Hout Wout positions (blockIdx.y; slices, not images, so batch 1 splits as well); each
// thread walks its positions once, keeping all K^2 sums in registers (K a template constant:
// a runtime K would put them in local memory), and the block adds each sum up in shared
// memory. The slices' (C, K, K) planes are added in order by gemm.cu's sgemm_sum_splits.
// Should bring the weight gradient from 0.04-0.07 of a copy's bandwidth toward the forward's.

// A thread's K^2 sums over its positions of the block's channel and slice.
template <int K>
__device__ __forceinline__ void depthwise_weight_sums(const float* __restrict__ grad_y, const float* __restrict__ x,
                                                      int N, int C, int H, int W, int stride, int pad, int Hout,
                                                      int Wout, int slice, float (&total)[K * K]) {
  const int c = blockIdx.x, plane = Hout * Wout, count = N * plane;
  const int first = blockIdx.y * slice, last = first + slice < count ? first + slice : count;
#pragma unroll
  for (int q = 0; q < K * K; ++q) total[q] = 0.0f;
  for (int e = first + threadIdx.x; e < last; e += DEPTHWISE_THREADS) {
    const int n = e / plane, p = e - n * plane, i = p / Wout, j = p - i * Wout;
    const float g = grad_y[(n * C + c) * plane + p];
    const float* in = x + (n * C + c) * H * W;
    const int top = i * stride - pad, left = j * stride - pad;
#pragma unroll
    for (int u = 0; u < K; ++u) {
      const int h = top + u;
      if (h < 0 || h >= H) continue;
#pragma unroll
      for (int v = 0; v < K; ++v) {
        const int col = left + v;
        if (col >= 0 && col < W) total[u * K + v] += g * in[h * W + col];
      }
    }
  }
}

template <int K>
__device__ __forceinline__ void depthwise_backward_weights_channel(
    const float* __restrict__ grad_y, const float* __restrict__ x, float* __restrict__ partial, int N, int C, int H,
    int W, int stride, int pad, int Hout, int Wout, int slice) {
  __shared__ float sums[DEPTHWISE_THREADS];
  float total[K * K];
  depthwise_weight_sums<K>(grad_y, x, N, C, H, W, stride, pad, Hout, Wout, slice, total);
#pragma unroll
  for (int q = 0; q < K * K; ++q) {  // one shared-memory tree per weight
    sums[threadIdx.x] = total[q];
    __syncthreads();
    for (int half = DEPTHWISE_THREADS / 2; half > 0; half /= 2) {
      if (threadIdx.x < half) sums[threadIdx.x] += sums[threadIdx.x + half];
      __syncthreads();
    }
    if (threadIdx.x == 0) partial[((long long)blockIdx.y * C + blockIdx.x) * K * K + q] = sums[0];
    __syncthreads();  // sums is refilled for the next weight
  }
}

extern "C" __global__ void __launch_bounds__(DEPTHWISE_THREADS, 8) depthwise_backward_weights_channel_k3(
    const float* __restrict__ grad_y, const float* __restrict__ x, float* __restrict__ partial, int N, int C, int H,
    int W, int stride, int pad, int Hout, int Wout, int slice) {
  depthwise_backward_weights_channel<3>(grad_y, x, partial, N, C, H, W, stride, pad, Hout, Wout, slice);
}

extern "C" __global__ void __launch_bounds__(DEPTHWISE_THREADS, 5) depthwise_backward_weights_channel_k5(
    const float* __restrict__ grad_y, const float* __restrict__ x, float* __restrict__ partial, int N, int C, int H,
    int W, int stride, int pad, int Hout, int Wout, int slice) {
  depthwise_backward_weights_channel<5>(grad_y, x, partial, N, C, H, W, stride, pad, Hout, Wout, slice);
}

// ---- backward-weights v3 -----------------------------------------------------------------
// depthwise_backward_weights_shuffle_k{3,5}: v2's positions and sums, a cheaper block
// reduction. v2 adds each of the K^2 sums in a shared-memory tree of its own, 8 steps between
// barriers for 256 threads: 9 x 9 = 81 barriers a block (3x3) or 25 x 9 = 225 (5x5), where
// its main loop takes 6-12 positions a thread on EfficientNet's 7 x 7 and 14 x 14 planes at
// batch 64 (run 2 on the H200: 0.12 of a copy's bandwidth on the 7 x 7 layer, 0.24-0.28 on
// the larger planes). Here each warp adds each sum across its lanes with five butterfly
// shuffles (register to register, no barrier), its lane 0 stores the warp's K^2 sums, and
// after one barrier K^2 threads add the 8 warps' sums in order: 5 K^2 shuffles and one
// barrier a block, the main loop's instructions left as the bulk of the kernel's.
#define DEPTHWISE_WARPS 8

// The block's K^2 sums of its threads' `total`s, into the block's plane of `partial`.
template <int K>
__device__ __forceinline__ void add_up_by_shuffles(const float (&total)[K * K], float* __restrict__ partial, int C) {
  static_assert(DEPTHWISE_WARPS * 32 == DEPTHWISE_THREADS, "whole warps: every lane takes part in the shuffles");
  __shared__ float warp_sums[DEPTHWISE_WARPS][K * K];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int q = 0; q < K * K; ++q) {
    float sum = total[q];
#pragma unroll
    for (int lane_mask = 16; lane_mask > 0; lane_mask /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, lane_mask);
    if (lane == 0) warp_sums[warp][q] = sum;
  }
  __syncthreads();
  if (threadIdx.x < K * K) {
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < DEPTHWISE_WARPS; ++w) sum += warp_sums[w][threadIdx.x];
    partial[((long long)blockIdx.y * C + blockIdx.x) * K * K + threadIdx.x] = sum;
  }
}

template <int K>
__device__ __forceinline__ void depthwise_backward_weights_shuffle(
    const float* __restrict__ grad_y, const float* __restrict__ x, float* __restrict__ partial, int N, int C, int H,
    int W, int stride, int pad, int Hout, int Wout, int slice) {
  float total[K * K];
  depthwise_weight_sums<K>(grad_y, x, N, C, H, W, stride, pad, Hout, Wout, slice, total);
  add_up_by_shuffles<K>(total, partial, C);
}

extern "C" __global__ void __launch_bounds__(DEPTHWISE_THREADS, 8) depthwise_backward_weights_shuffle_k3(
    const float* __restrict__ grad_y, const float* __restrict__ x, float* __restrict__ partial, int N, int C, int H,
    int W, int stride, int pad, int Hout, int Wout, int slice) {
  depthwise_backward_weights_shuffle<3>(grad_y, x, partial, N, C, H, W, stride, pad, Hout, Wout, slice);
}

extern "C" __global__ void __launch_bounds__(DEPTHWISE_THREADS, 5) depthwise_backward_weights_shuffle_k5(
    const float* __restrict__ grad_y, const float* __restrict__ x, float* __restrict__ partial, int N, int C, int H,
    int W, int stride, int pad, int Hout, int Wout, int slice) {
  depthwise_backward_weights_shuffle<5>(grad_y, x, partial, N, C, H, W, stride, pad, Hout, Wout, slice);
}

// ---- backward-weights v4 -----------------------------------------------------------------
// depthwise_backward_weights_rows (3x3 and 5x5, stride 1 and 2): v3's blocks and reduction
// with the forward's row main loop (depthwise_forward_rows). v3 decodes every grad_y
// position with two divisions and loads its K^2 inputs one by one, each checked against the
// map's edges: its 5x5 loop is 238 instructions for 25 FFMAs and 26 loads a position
// (`kernels.check --loops`), 0.11 of them FFMAs. Here a thread takes DEPTHWISE_ROW_OUTPUTS =
// 4 consecutive positions of a grad_y row at a time (the slices count such groups), reads
// each of the K input rows their windows span once ((4 - 1) S + K values, window_row) and
// adds 4 K^2 products into its K^2 sums: per 4 positions 2 divisions, 4 + K ((4 - 1) S + K)
// loads and 4 K^2 FFMAs (5x5 at stride 1: 44 loads for 100 FFMAs, v3 104 for 100).
// Consecutive threads take consecutive groups of a row, so a warp's reads of an input row
// are one contiguous run, as the forward's.
template <int K, int S>
__device__ __forceinline__ void depthwise_weight_sums_rows(const float* __restrict__ grad_y,
                                                           const float* __restrict__ x, int N, int C, int H, int W,
                                                           int pad, int Hout, int Wout, int slice,
                                                           float (&total)[K * K]) {
  constexpr int R = DEPTHWISE_ROW_OUTPUTS, SPAN = (R - 1) * S + K;
  const int c = blockIdx.x, groups = (Wout + R - 1) / R, per_image = Hout * groups, count = N * per_image;
  const int first = blockIdx.y * slice, last = first + slice < count ? first + slice : count;
#pragma unroll
  for (int q = 0; q < K * K; ++q) total[q] = 0.0f;
  for (int e = first + threadIdx.x; e < last; e += DEPTHWISE_THREADS) {
    const int n = e / per_image, group = e - n * per_image, i = group / groups, j0 = (group - i * groups) * R;
    const float* gy = grad_y + ((n * C + c) * Hout + i) * Wout + j0;
    float g[R];
#pragma unroll
    for (int r = 0; r < R; ++r) g[r] = j0 + r < Wout ? gy[r] : 0.0f;
    const float* in = x + (n * C + c) * H * W;
    const int top = i * S - pad, left = j0 * S - pad;
#pragma unroll
    for (int u = 0; u < K; ++u) {
      const int h = top + u;
      if (h < 0 || h >= H) continue;
      float window[SPAN];
      window_row<K, S, -1>(in + h * W, left, W, window);
#pragma unroll
      for (int v = 0; v < K; ++v)
#pragma unroll
        for (int r = 0; r < R; ++r) total[u * K + v] += g[r] * window[r * S + v];
    }
  }
}

template <int K, int S>
__device__ __forceinline__ void depthwise_backward_weights_rows_of(const float* __restrict__ grad_y,
                                                                   const float* __restrict__ x,
                                                                   float* __restrict__ partial, int N, int C, int H,
                                                                   int W, int pad, int Hout, int Wout, int slice) {
  float total[K * K];
  depthwise_weight_sums_rows<K, S>(grad_y, x, N, C, H, W, pad, Hout, Wout, slice, total);
  add_up_by_shuffles<K>(total, partial, C);
}

extern "C" __global__ void __launch_bounds__(DEPTHWISE_THREADS, 4) depthwise_backward_weights_rows(
    const float* __restrict__ grad_y, const float* __restrict__ x, float* __restrict__ partial, int N, int C, int H,
    int W, int K, int stride, int pad, int Hout, int Wout, int slice) {
  WITH_ROW_KERNEL(depthwise_backward_weights_rows_of, grad_y, x, partial, N, C, H, W, pad, Hout, Wout, slice);
}
