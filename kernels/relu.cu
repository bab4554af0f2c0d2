// ReLU forward and its three backward rules.
//
// Maths: y = max(x, 0). Backward, given the forward output y (y > 0 exactly where x > 0)
// and the signal g from above (docs/DESIGN.md, "The three backward modes"):
//   MODE_BACKPROP:  g * [y > 0]            the true (sub)gradient
//   MODE_DECONVNET: g * [g > 0]            Zeiler and Fergus: the forward mask is ignored
//   MODE_GUIDED:    g * [y > 0] * [g > 0]  Springenberg et al.
// (kernels/relu.py passes the code of kernels.Mode's member of the same name.)
// Layout: any, flat arrays of n floats. Threads: one element per thread per step of a
// grid-stride loop; blocks of 256. Cost: 1 FLOP, 8 bytes (forward) or 12 bytes (backward)
// per element: memory-bound, so the measure is bandwidth against a device-to-device copy
// (python -m deepinside.kernels.ladder relu).
// The ladder: relu_forward / relu_backward, one float per thread per step; then
// relu_forward_vec4 / relu_backward_vec4, four per thread per step through 128-bit loads
// and stores (a quarter of the memory instructions; the arrays' base addresses are
// 256-byte aligned by CuPy's allocator, and a scalar loop takes the n % 4 tail). ReLU6's
// ladder (at the end) is the same two rungs. The engine uses the vec4 versions.

#define MODE_BACKPROP 0
#define MODE_DECONVNET 1
#define MODE_GUIDED 2

// The three rules, given whether the forward mask is open at this element.
__device__ __forceinline__ float rectified(float g, bool open_forward, int mode) {
  const bool open_backward = g > 0.0f;
  const bool pass = mode == MODE_BACKPROP ? open_forward : mode == MODE_DECONVNET ? open_backward
                                                                     : (open_forward && open_backward);
  return pass ? g : 0.0f;
}

extern "C" __global__ void relu_forward(const float* __restrict__ x, float* __restrict__ y, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    y[i] = x[i] > 0.0f ? x[i] : 0.0f;
  }
}

extern "C" __global__ void relu_backward(const float* __restrict__ grad_y, const float* __restrict__ y,
                              float* __restrict__ grad_x, long long n, int mode) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    grad_x[i] = rectified(grad_y[i], y[i] > 0.0f, mode);
  }
}

// The float4 rungs of ReLU and ReLU6 share their loop: `op` maps one element (forward: x;
// backward: g and y), four at a time through 128-bit loads and stores, a scalar tail after.
template <class Op>
__device__ __forceinline__ void map_vec4(const float* __restrict__ a, float* __restrict__ out, long long n, Op op) {
  const long long quads = n / 4, step = (long long)gridDim.x * blockDim.x;
  const long long first = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  for (long long q = first; q < quads; q += step) {
    const float4 v = __ldg(reinterpret_cast<const float4*>(a) + q);
    reinterpret_cast<float4*>(out)[q] = make_float4(op(v.x), op(v.y), op(v.z), op(v.w));
  }
  for (long long i = 4 * quads + first; i < n; i += step) out[i] = op(a[i]);
}

template <class Op>
__device__ __forceinline__ void map2_vec4(const float* __restrict__ a, const float* __restrict__ b,
                                          float* __restrict__ out, long long n, Op op) {
  const long long quads = n / 4, step = (long long)gridDim.x * blockDim.x;
  const long long first = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  for (long long q = first; q < quads; q += step) {
    const float4 u = __ldg(reinterpret_cast<const float4*>(a) + q), v = __ldg(reinterpret_cast<const float4*>(b) + q);
    reinterpret_cast<float4*>(out)[q] = make_float4(op(u.x, v.x), op(u.y, v.y), op(u.z, v.z), op(u.w, v.w));
  }
  for (long long i = 4 * quads + first; i < n; i += step) out[i] = op(a[i], b[i]);
}

extern "C" __global__ void relu_forward_vec4(const float* __restrict__ x, float* __restrict__ y, long long n) {
  map_vec4(x, y, n, [](float v) { return v > 0.0f ? v : 0.0f; });
}

extern "C" __global__ void relu_backward_vec4(const float* __restrict__ grad_y, const float* __restrict__ y,
                                              float* __restrict__ grad_x, long long n, int mode) {
  map2_vec4(grad_y, y, grad_x, n, [=](float g, float v) { return rectified(g, v > 0.0f, mode); });
}

// ReLU6 (MobileNet, EfficientNet-Lite): y = min(max(x, 0), 6). Its backward rules follow
// ReLU's table with its own mask, open where 0 < x < 6 (0 < y < 6 exactly there):
//   MODE_BACKPROP:  g * [0 < y < 6];  MODE_GUIDED: g * [0 < y < 6] * [g > 0];
//   MODE_DECONVNET: max(g, 0), Zeiler's rule, the forward mask ignored.
extern "C" __global__ void relu6_forward(const float* __restrict__ x, float* __restrict__ y, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    y[i] = fminf(fmaxf(x[i], 0.0f), 6.0f);
  }
}

extern "C" __global__ void relu6_backward(const float* __restrict__ grad_y, const float* __restrict__ y,
                                          float* __restrict__ grad_x, long long n, int mode) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    grad_x[i] = rectified(grad_y[i], y[i] > 0.0f && y[i] < 6.0f, mode);
  }
}

extern "C" __global__ void relu6_forward_vec4(const float* __restrict__ x, float* __restrict__ y, long long n) {
  map_vec4(x, y, n, [](float v) { return fminf(fmaxf(v, 0.0f), 6.0f); });
}

extern "C" __global__ void relu6_backward_vec4(const float* __restrict__ grad_y, const float* __restrict__ y,
                                               float* __restrict__ grad_x, long long n, int mode) {
  map2_vec4(grad_y, y, grad_x, n, [=](float g, float v) { return rectified(g, v > 0.0f && v < 6.0f, mode); });
}
