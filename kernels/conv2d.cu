// 2-D convolution (cross-correlation, as PyTorch): activations NCHW, weights OIHW (square
// K x K kernels), stride s, zero padding p; Hout = (H + 2p - K) / s + 1.
//
//   y[n,o,i,j]  = b[o] + sum_{c,u,v} w[o,c,u,v] x[n, c, i s - p + u, j s - p + v]
//   gx[n,c,h,w] = sum_{o,u,v} w[o,c,u,v] gy[n, o, (h + p - u) / s, (w + p - v) / s]
//                 over the (u, v) for which the division is exact and in range: the
//                 convolution of gy with the flipped, transposed kernel (Sect. 4)
//   gw[o,c,u,v] = sum_{n,i,j} gy[n,o,i,j] x[n, c, i s - p + u, j s - p + v]
//
// Direct versions, kept for reading: one thread per output element (y, gx or gw) of a
// grid-stride loop, blocks of 256, every operand read from global memory.
//
// Fast versions, used by default: im2col plus the tiled SGEMM of gemm.cu, on a chunk of
// `nb` images at a time (the chunk bounds the column buffer):
//   im2col:   col[(c K + u) K + v, (n Hout + i) Wout + j] = x[n, c, i s - p + u, j s - p + v]
//   forward:  Y' (O x nb L) = W (O x C K K) col;  then y[n, o, l] = Y'[o, n L + l] + b[o]
//   data:     gcol = W^T gy' (gy' is gy reordered to O x nb L); col2im gathers gx
//   weights:  gW += gy' col^T
// where L = Hout Wout. im2col, col2im and the reorders are one thread per element
// (grid-stride, blocks of 256); col2im gathers rather than scatters, so no atomics.
// Cost: 2 N O C K^2 L FLOPs per product; im2col writes 4 C K^2 nb L bytes per chunk.

extern "C" __global__ void conv2d_forward_direct(const float* __restrict__ x, const float* __restrict__ w,
                                      const float* __restrict__ b, float* __restrict__ y,
                                      int N, int C, int H, int W, int O, int K, int stride, int pad,
                                      int Hout, int Wout, int has_bias) {
  const long long total = (long long)N * O * Hout * Wout;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const int j = e % Wout, i = (e / Wout) % Hout, o = (e / ((long long)Wout * Hout)) % O;
    const long long n = e / ((long long)Wout * Hout * O);
    float sum = has_bias ? b[o] : 0.0f;
    for (int c = 0; c < C; ++c)
      for (int u = 0; u < K; ++u) {
        const int h = i * stride - pad + u;
        if (h < 0 || h >= H) continue;
        for (int v = 0; v < K; ++v) {
          const int col = j * stride - pad + v;
          if (col < 0 || col >= W) continue;
          sum += w[((o * C + c) * K + u) * K + v] * x[((n * C + c) * H + h) * W + col];
        }
      }
    y[e] = sum;
  }
}

extern "C" __global__ void conv2d_backward_data_direct(const float* __restrict__ grad_y, const float* __restrict__ w,
                                            float* __restrict__ grad_x, int N, int C, int H, int W, int O,
                                            int K, int stride, int pad, int Hout, int Wout) {
  const long long total = (long long)N * C * H * W;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const int col = e % W, h = (e / W) % H, c = (e / ((long long)W * H)) % C;
    const long long n = e / ((long long)W * H * C);
    float sum = 0.0f;
    for (int u = 0; u < K; ++u) {
      const int top = h + pad - u;
      if (top < 0 || top % stride) continue;
      const int i = top / stride;
      if (i >= Hout) continue;
      for (int v = 0; v < K; ++v) {
        const int left = col + pad - v;
        if (left < 0 || left % stride) continue;
        const int j = left / stride;
        if (j >= Wout) continue;
        for (int o = 0; o < O; ++o)
          sum += w[((o * C + c) * K + u) * K + v] * grad_y[((n * O + o) * Hout + i) * Wout + j];
      }
    }
    grad_x[e] = sum;
  }
}

extern "C" __global__ void conv2d_backward_weights_direct(const float* __restrict__ grad_y, const float* __restrict__ x,
                                               float* __restrict__ grad_w, int N, int C, int H, int W, int O,
                                               int K, int stride, int pad, int Hout, int Wout) {
  const long long total = (long long)O * C * K * K;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const int v = e % K, u = (e / K) % K, c = (e / (K * K)) % C, o = e / ((long long)K * K * C);
    float sum = 0.0f;
    for (int n = 0; n < N; ++n)
      for (int i = 0; i < Hout; ++i) {
        const int h = i * stride - pad + u;
        if (h < 0 || h >= H) continue;
        for (int j = 0; j < Wout; ++j) {
          const int col = j * stride - pad + v;
          if (col < 0 || col >= W) continue;
          sum += grad_y[(((long long)n * O + o) * Hout + i) * Wout + j] * x[(((long long)n * C + c) * H + h) * W + col];
        }
      }
    grad_w[e] = sum;
  }
}

// col has C K K rows and nb Hout Wout columns; images n0 .. n0 + nb - 1 of x.
extern "C" __global__ void im2col(const float* __restrict__ x, float* __restrict__ col, int n0, int nb, int C, int H, int W,
                       int K, int stride, int pad, int Hout, int Wout) {
  const long long columns = (long long)nb * Hout * Wout, total = columns * C * K * K;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const long long column = e % columns, row = e / columns;
    const int v = row % K, u = (row / K) % K, c = row / (K * K);
    const int j = column % Wout, i = (column / Wout) % Hout;
    const long long n = n0 + column / ((long long)Wout * Hout);
    const int h = i * stride - pad + u, w_ = j * stride - pad + v;
    col[e] = (h >= 0 && h < H && w_ >= 0 && w_ < W) ? x[((n * C + c) * H + h) * W + w_] : 0.0f;
  }
}

// Gathers gx for images n0 .. n0 + nb - 1 from gcol (C K K rows, nb Hout Wout columns).
extern "C" __global__ void col2im(const float* __restrict__ gcol, float* __restrict__ grad_x, int n0, int nb, int C, int H,
                       int W, int K, int stride, int pad, int Hout, int Wout) {
  const long long columns = (long long)nb * Hout * Wout, total = (long long)nb * C * H * W;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const int w_ = e % W, h = (e / W) % H, c = (e / ((long long)W * H)) % C;
    const long long local = e / ((long long)W * H * C);
    float sum = 0.0f;
    for (int u = 0; u < K; ++u) {
      const int top = h + pad - u;
      if (top < 0 || top % stride || top / stride >= Hout) continue;
      for (int v = 0; v < K; ++v) {
        const int left = w_ + pad - v;
        if (left < 0 || left % stride || left / stride >= Wout) continue;
        const long long column = (local * Hout + top / stride) * Wout + left / stride;
        sum += gcol[((long long)(c * K + u) * K + v) * columns + column];
      }
    }
    grad_x[(n0 + local) * C * H * W + (e % ((long long)C * H * W))] = sum;
  }
}

// y[n0 + n, o, l] = product[o, n L + l] + b[o]   (product is O x nb L).
extern "C" __global__ void columns_to_nchw(const float* __restrict__ product, const float* __restrict__ b,
                                float* __restrict__ y, int n0, int nb, int O, int L, int has_bias) {
  const long long total = (long long)nb * O * L;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const int l = e % L, o = (e / L) % O;
    const long long n = e / ((long long)L * O);
    y[(n0 + n) * O * L + (long long)o * L + l] = product[(long long)o * nb * L + n * L + l] + (has_bias ? b[o] : 0.0f);
  }
}

// out[o, n L + l] = gy[n0 + n, o, l]   (out is O x nb L).
extern "C" __global__ void nchw_to_columns(const float* __restrict__ grad_y, float* __restrict__ out, int n0, int nb, int O,
                                int L) {
  const long long total = (long long)nb * O * L;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const int l = e % L, o = (e / L) % O;
    const long long n = e / ((long long)L * O);
    out[(long long)o * nb * L + n * L + l] = grad_y[(n0 + n) * O * L + (long long)o * L + l];
  }
}
