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
// per element: memory-bound.

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
