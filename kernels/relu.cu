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
// 256-byte aligned by CuPy's allocator, and a scalar loop takes the n % 4 tail). The
// engine uses the vec4 versions.

#define MODE_BACKPROP 0
#define MODE_DECONVNET 1
#define MODE_GUIDED 2

extern "C" __global__ void relu_forward(const float* __restrict__ x, float* __restrict__ y, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    y[i] = x[i] > 0.0f ? x[i] : 0.0f;
  }
}

extern "C" __global__ void relu_backward(const float* __restrict__ grad_y, const float* __restrict__ y,
                              float* __restrict__ grad_x, long long n, int mode) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const float g = grad_y[i];
    const bool open_forward = y[i] > 0.0f, open_backward = g > 0.0f;
    const bool pass = mode == MODE_BACKPROP ? open_forward : mode == MODE_DECONVNET ? open_backward
                                                                     : (open_forward && open_backward);
    grad_x[i] = pass ? g : 0.0f;
  }
}

__device__ __forceinline__ float relu_pass(float g, float y, int mode) {
  const bool open_forward = y > 0.0f, open_backward = g > 0.0f;
  const bool pass = mode == MODE_BACKPROP ? open_forward : mode == MODE_DECONVNET ? open_backward
                                                                     : (open_forward && open_backward);
  return pass ? g : 0.0f;
}

extern "C" __global__ void relu_forward_vec4(const float* __restrict__ x, float* __restrict__ y, long long n) {
  const long long quads = n / 4, step = (long long)gridDim.x * blockDim.x;
  const long long first = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  for (long long q = first; q < quads; q += step) {
    const float4 v = __ldg(reinterpret_cast<const float4*>(x) + q);
    reinterpret_cast<float4*>(y)[q] = make_float4(v.x > 0.0f ? v.x : 0.0f, v.y > 0.0f ? v.y : 0.0f,
                                                  v.z > 0.0f ? v.z : 0.0f, v.w > 0.0f ? v.w : 0.0f);
  }
  for (long long i = 4 * quads + first; i < n; i += step) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

extern "C" __global__ void relu_backward_vec4(const float* __restrict__ grad_y, const float* __restrict__ y,
                                              float* __restrict__ grad_x, long long n, int mode) {
  const long long quads = n / 4, step = (long long)gridDim.x * blockDim.x;
  const long long first = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  for (long long q = first; q < quads; q += step) {
    const float4 g = __ldg(reinterpret_cast<const float4*>(grad_y) + q), v = __ldg(reinterpret_cast<const float4*>(y) + q);
    reinterpret_cast<float4*>(grad_x)[q] = make_float4(relu_pass(g.x, v.x, mode), relu_pass(g.y, v.y, mode),
                                                       relu_pass(g.z, v.z, mode), relu_pass(g.w, v.w, mode));
  }
  for (long long i = 4 * quads + first; i < n; i += step) grad_x[i] = relu_pass(grad_y[i], y[i], mode);
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
    const float g = grad_y[i];
    const bool open_forward = y[i] > 0.0f && y[i] < 6.0f, open_backward = g > 0.0f;
    const bool pass = mode == MODE_BACKPROP ? open_forward : mode == MODE_DECONVNET ? open_backward
                                                                       : (open_forward && open_backward);
    grad_x[i] = pass ? g : 0.0f;
  }
}
