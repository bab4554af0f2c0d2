// Single-precision matrix products, row-major: C = alpha * op(A) op(B) + beta * C, with
// op(A) of shape (M, K) and op(B) of shape (K, N). transA = 1 means A is stored (K, M);
// transB = 1 means B is stored (N, K). Fully connected layers and the convolutions'
// im2col products all run on sgemm_tiled:
//   linear forward   y  = x W^T        (transB)
//   backward data    gx = gy W
//   backward weights gW = gy^T x       (transA)
//
// sgemm_naive: one thread per element of C, a K-long dot product from global memory.
// Kept for reading and as the reference the tiled version is checked against.
//
// sgemm_tiled (siboehm's "2D block tiling"): each block of 256 threads computes a
// GEMM_BM x GEMM_BN = 128 x 128 tile of C. For each GEMM_BK = 8 slice of K, the block
// stages a 128 x 8 tile of op(A) and an 8 x 128 tile of op(B) in shared memory (8 KiB),
// loaded so that consecutive threads read consecutive addresses; then each thread
// multiplies an 8 x 8 register tile (GEMM_TM x GEMM_TN): 64 accumulators, 16 shared loads
// per 64 FMAs. The 256 threads form a 16 x 16 grid (GEMM_ROW_THREADS x GEMM_COLUMN_THREADS):
// thread t owns rows (t / 16) + 16 i and columns (t % 16) + 16 j of the tile (i, j < 8),
// strided so that a warp's shared-memory reads hit distinct banks or broadcast.
// Edges (M, N, K not multiples of the tile) load zeros and skip stores. __launch_bounds__
// asks for at most 128 registers a thread, so that two blocks fit on an SM.
// Cost: 2 M N K FLOPs; global traffic about 4 (M K N / 128 + K N M / 128 + M N) bytes.

#define GEMM_BM 128
#define GEMM_BN 128
#define GEMM_BK 8
#define GEMM_TM 8
#define GEMM_TN 8
#define GEMM_THREADS 256
#define GEMM_ROW_THREADS (GEMM_BM / GEMM_TM)
#define GEMM_COLUMN_THREADS (GEMM_BN / GEMM_TN)
static_assert(GEMM_ROW_THREADS * GEMM_COLUMN_THREADS == GEMM_THREADS, "one thread per register tile");

extern "C" __global__ void sgemm_naive(int M, int N, int K, float alpha, const float* __restrict__ A, int transA,
                            const float* __restrict__ B, int transB, float beta, float* __restrict__ C) {
  const int row = blockIdx.y * blockDim.y + threadIdx.y, col = blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= M || col >= N) return;
  float total = 0.0f;
  for (int k = 0; k < K; ++k) {
    const float a = transA ? A[(long long)k * M + row] : A[(long long)row * K + k];
    const float b = transB ? B[(long long)col * K + k] : B[(long long)k * N + col];
    total += a * b;
  }
  const long long at = (long long)row * N + col;
  C[at] = alpha * total + (beta != 0.0f ? beta * C[at] : 0.0f);
}

extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 2) sgemm_tiled(int M, int N, int K, float alpha, const float* __restrict__ A, int transA,
                            const float* __restrict__ B, int transB, float beta, float* __restrict__ C) {
  __shared__ float As[GEMM_BK][GEMM_BM];
  __shared__ float Bs[GEMM_BK][GEMM_BN];
  const int t = threadIdx.x;
  const int row0 = blockIdx.y * GEMM_BM, col0 = blockIdx.x * GEMM_BN;
  const int ty = t / GEMM_COLUMN_THREADS, tx = t % GEMM_COLUMN_THREADS;
  float accumulator[GEMM_TM][GEMM_TN];
  for (int i = 0; i < GEMM_TM; ++i)
    for (int j = 0; j < GEMM_TN; ++j) accumulator[i][j] = 0.0f;

  for (int k0 = 0; k0 < K; k0 += GEMM_BK) {
    for (int e = t; e < GEMM_BM * GEMM_BK; e += GEMM_THREADS) {
      // Consecutive threads walk the stored matrix's contiguous dimension.
      const int m = transA ? e % GEMM_BM : e / GEMM_BK, k = transA ? e / GEMM_BM : e % GEMM_BK;
      const int gm = row0 + m, gk = k0 + k;
      As[k][m] = (gm < M && gk < K) ? (transA ? A[(long long)gk * M + gm] : A[(long long)gm * K + gk]) : 0.0f;
    }
    for (int e = t; e < GEMM_BN * GEMM_BK; e += GEMM_THREADS) {
      const int n = transB ? e / GEMM_BK : e % GEMM_BN, k = transB ? e % GEMM_BK : e / GEMM_BN;
      const int gn = col0 + n, gk = k0 + k;
      Bs[k][n] = (gn < N && gk < K) ? (transB ? B[(long long)gn * K + gk] : B[(long long)gk * N + gn]) : 0.0f;
    }
    __syncthreads();
    for (int k = 0; k < GEMM_BK; ++k) {
      float a[GEMM_TM], b[GEMM_TN];
      for (int i = 0; i < GEMM_TM; ++i) a[i] = As[k][ty + GEMM_ROW_THREADS * i];
      for (int j = 0; j < GEMM_TN; ++j) b[j] = Bs[k][tx + GEMM_COLUMN_THREADS * j];
      for (int i = 0; i < GEMM_TM; ++i)
        for (int j = 0; j < GEMM_TN; ++j) accumulator[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
  for (int i = 0; i < GEMM_TM; ++i) {
    const int row = row0 + ty + GEMM_ROW_THREADS * i;
    if (row >= M) continue;
    for (int j = 0; j < GEMM_TN; ++j) {
      const int col = col0 + tx + GEMM_COLUMN_THREADS * j;
      if (col >= N) continue;
      const long long at = (long long)row * N + col;
      C[at] = alpha * accumulator[i][j] + (beta != 0.0f ? beta * C[at] : 0.0f);
    }
  }
}
