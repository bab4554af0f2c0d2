// Single-precision matrix products, row-major: C = alpha * op(A) op(B) + beta * C, with
// op(A) of shape (M, K) and op(B) of shape (K, N). transA = 1 means A is stored (K, M);
// transB = 1 means B is stored (N, K). Fully connected layers and the convolutions'
// im2col products run on the engine's rungs (gemm.py: ENGINE_SGEMM; v9, v10 below):
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

// =======================================================================================
// The ladder (kernels/ladder.py runs, checks and times every rung: `python -m
// deepinside.kernels.ladder gemm`). Versions, each one idea on the one before, after
// siboehm's SGEMM worklog; v2-v4 take row-major A (M, K) and B (K, N), C = alpha A B + beta C.
//   v1 sgemm_naive        above: one thread per element of C, everything from global memory.
//   v2 sgemm_coalesced    the same work, threads laid out so that a warp's 32 threads take 32
//                         consecutive columns: B reads and C writes coalesce into 128-byte
//                         transactions, A reads become broadcasts. Should buy ~5-8x over v1.
//   v3 sgemm_shared       32 x 32 tiles of A and B staged in shared memory: each global value
//                         is read once per tile instead of once per thread (32x less traffic);
//                         now shared-memory bandwidth bounds it (2 loads per FMA).
//   v4 sgemm_blocktile_1d each thread computes 8 results of a column (a 64 x 64 block tile,
//                         8-deep K slices): one B value from shared memory serves 8 FMAs,
//                         so 9 shared loads per 8 FMAs instead of 16.
//   v5 sgemm_tiled        above: 8 x 8 results a thread (2-D register blocking, 128 x 128
//                         tiles): 16 shared loads per 64 FMAs; runtime transpose flags.
//   v6 sgemm_vectorized_{nn,tn,nt}  v5's tiling with 128-bit (float4) global and shared loads,
//                         the A tile stored transposed so that a thread's 8 values of A for
//                         one k are contiguous (2 float4 loads instead of 8 scalar ones), each
//                         thread owning an 8 x 8 block of C (vector stores); the transposes
//                         the engine needs are template specialisations, not runtime flags.
//                         Should approach the FP32 peak's compute bound for large products.
//   v7 sgemm_warptile_*   the block tile split between warps first, then lanes (below).
//   v8 sgemm_pipelined_*  v7 with double-buffered shared memory: the next slice's loads in
//                         flight while this one is multiplied (below).
//   v9 sgemm_splitk_*     v8 with the K reduction split between blockIdx.z slices when the
//                         tiles alone cannot fill the GPU (below).
//   v10 sgemm_skinny_*    at most 8 rows (batch 1 to 8): a matrix-vector product that reads
//                         B once instead of 128-row tiles of padding (below).
//   v11 sgemm_8x16_*      v8 with 8 x 16 results a thread and 16-deep slices (below).
//   v12 sgemm_async_*     v8 with its slices copied into shared memory asynchronously
//                         (cp.async, sm_80 on), three slices in flight (below).
//   v13 sgemm_8x16_async_* v11's 8 x 16 results a thread fed by v12's copies, two 16-deep
//                         slices in flight (below).
// Cost of every version: 2 M N K FLOPs. The engine uses gemm.py's ENGINE_SGEMM rung.

// ---- v2 -------------------------------------------------------------------------------
#define COALESCED_TILE 32
#define COALESCED_THREADS 1024

extern "C" __global__ void __launch_bounds__(COALESCED_THREADS) sgemm_coalesced(
    int M, int N, int K, float alpha, const float* __restrict__ A, const float* __restrict__ B, float beta,
    float* __restrict__ C) {
  const int row = blockIdx.y * COALESCED_TILE + threadIdx.x / COALESCED_TILE;
  const int col = blockIdx.x * COALESCED_TILE + threadIdx.x % COALESCED_TILE;
  if (row >= M || col >= N) return;
  float total = 0.0f;
  for (int k = 0; k < K; ++k) total += A[(long long)row * K + k] * B[(long long)k * N + col];
  const long long at = (long long)row * N + col;
  C[at] = alpha * total + (beta != 0.0f ? beta * C[at] : 0.0f);
}

// ---- v3 -------------------------------------------------------------------------------
#define SHARED_TILE 32
#define SHARED_THREADS 1024

extern "C" __global__ void __launch_bounds__(SHARED_THREADS) sgemm_shared(
    int M, int N, int K, float alpha, const float* __restrict__ A, const float* __restrict__ B, float beta,
    float* __restrict__ C) {
  __shared__ float As[SHARED_TILE][SHARED_TILE];
  __shared__ float Bs[SHARED_TILE][SHARED_TILE];
  const int r = threadIdx.x / SHARED_TILE, c = threadIdx.x % SHARED_TILE;
  const int row = blockIdx.y * SHARED_TILE + r, col = blockIdx.x * SHARED_TILE + c;
  float total = 0.0f;
  for (int k0 = 0; k0 < K; k0 += SHARED_TILE) {
    As[r][c] = (row < M && k0 + c < K) ? A[(long long)row * K + k0 + c] : 0.0f;
    Bs[r][c] = (k0 + r < K && col < N) ? B[(long long)(k0 + r) * N + col] : 0.0f;
    __syncthreads();
    for (int k = 0; k < SHARED_TILE; ++k) total += As[r][k] * Bs[k][c];
    __syncthreads();
  }
  if (row < M && col < N) {
    const long long at = (long long)row * N + col;
    C[at] = alpha * total + (beta != 0.0f ? beta * C[at] : 0.0f);
  }
}

// ---- v4 -------------------------------------------------------------------------------
#define BLOCKTILE_BM 64
#define BLOCKTILE_BN 64
#define BLOCKTILE_BK 8
#define BLOCKTILE_TM 8
#define BLOCKTILE_THREADS 512
static_assert(BLOCKTILE_THREADS == BLOCKTILE_BM * BLOCKTILE_BN / BLOCKTILE_TM, "a thread per 8 results");
static_assert(BLOCKTILE_THREADS == BLOCKTILE_BM * BLOCKTILE_BK, "a thread per staged value of A");

extern "C" __global__ void __launch_bounds__(BLOCKTILE_THREADS) sgemm_blocktile_1d(
    int M, int N, int K, float alpha, const float* __restrict__ A, const float* __restrict__ B, float beta,
    float* __restrict__ C) {
  __shared__ float As[BLOCKTILE_BM][BLOCKTILE_BK];
  __shared__ float Bs[BLOCKTILE_BK][BLOCKTILE_BN];
  const int t = threadIdx.x;
  const int row0 = blockIdx.y * BLOCKTILE_BM, col0 = blockIdx.x * BLOCKTILE_BN;
  const int thread_col = t % BLOCKTILE_BN, thread_row = t / BLOCKTILE_BN;  // rows thread_row * TM + i
  const int a_row = t / BLOCKTILE_BK, a_col = t % BLOCKTILE_BK;  // the value of A this thread stages
  const int b_row = t / BLOCKTILE_BN, b_col = t % BLOCKTILE_BN;
  float accumulator[BLOCKTILE_TM];
  for (int i = 0; i < BLOCKTILE_TM; ++i) accumulator[i] = 0.0f;
  for (int k0 = 0; k0 < K; k0 += BLOCKTILE_BK) {
    As[a_row][a_col] = (row0 + a_row < M && k0 + a_col < K) ? A[(long long)(row0 + a_row) * K + k0 + a_col] : 0.0f;
    Bs[b_row][b_col] = (k0 + b_row < K && col0 + b_col < N) ? B[(long long)(k0 + b_row) * N + col0 + b_col] : 0.0f;
    __syncthreads();
    for (int k = 0; k < BLOCKTILE_BK; ++k) {
      const float b = Bs[k][thread_col];
      for (int i = 0; i < BLOCKTILE_TM; ++i) accumulator[i] += As[thread_row * BLOCKTILE_TM + i][k] * b;
    }
    __syncthreads();
  }
  const int col = col0 + thread_col;
  for (int i = 0; i < BLOCKTILE_TM; ++i) {
    const int row = row0 + thread_row * BLOCKTILE_TM + i;
    if (row < M && col < N) {
      const long long at = (long long)row * N + col;
      C[at] = alpha * accumulator[i] + (beta != 0.0f ? beta * C[at] : 0.0f);
    }
  }
}

// ---- v6 -------------------------------------------------------------------------------
// 256 threads, a 128 x 128 tile of C, 8-deep K slices; thread t owns rows 8 (t / 16) .. +7 and
// columns 8 (t % 16) .. +7 of the tile. Staging a slice: 128 x 8 values of op(A) and 8 x 128
// of op(B), 256 float4 each, one per thread, read along the stored matrix's contiguous axis
// (k for A, m for A^T, n for B, k for B^T) and written to shared memory as As[k][m] and
// Bs[k][n]. A float4 load needs 4 values in bounds and a 16-byte-aligned address: rows of a
// multiple of 4 floats on an aligned base; otherwise that load falls back to scalars.
#define VEC_BM 128
#define VEC_BN 128
#define VEC_BK 8
#define VEC_TM 8
#define VEC_TN 8
#define VEC_THREADS 256
static_assert(VEC_THREADS == (VEC_BM / VEC_TM) * (VEC_BN / VEC_TN), "a thread per 8 x 8 results");
static_assert(VEC_BM * VEC_BK == 4 * VEC_THREADS && VEC_BN * VEC_BK == 4 * VEC_THREADS, "a float4 per thread");

// 4 consecutive values along the contiguous axis of a row-major (rows, cols) matrix,
// zeros outside it.
__device__ __forceinline__ float4 load4(const float* __restrict__ matrix, int rows, int cols, int r, int c,
                                        bool vector_ok) {
  if (r >= rows) return make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  const float* at = matrix + (long long)r * cols + c;
  if (vector_ok && c + 3 < cols) return __ldg(reinterpret_cast<const float4*>(at));
  return make_float4(c < cols ? at[0] : 0.0f, c + 1 < cols ? at[1] : 0.0f, c + 2 < cols ? at[2] : 0.0f,
                     c + 3 < cols ? at[3] : 0.0f);
}

// One slice of the staging: this thread's float4 of op(A) and of op(B) for K slice k0,
// read from global memory (fetch) and then written to shared memory as As[k][m], Bs[k][n]
// (store). Split in two so that v8 can fetch the next slice while it computes this one.
template <bool TRANS_A, bool TRANS_B>
__device__ __forceinline__ void fetch_slice(const float* __restrict__ A, const float* __restrict__ B, int M, int N,
                                            int K, int row0, int col0, int k0, bool a_vector, bool b_vector,
                                            float4& a, float4& b) {
  const int t = threadIdx.x;
  if (TRANS_A) a = load4(A, K, M, k0 + t / (VEC_BM / 4), row0 + (t % (VEC_BM / 4)) * 4, a_vector);
  else a = load4(A, M, K, row0 + t / (VEC_BK / 4), k0 + (t % (VEC_BK / 4)) * 4, a_vector);
  if (TRANS_B) b = load4(B, N, K, col0 + t / (VEC_BK / 4), k0 + (t % (VEC_BK / 4)) * 4, b_vector);
  else b = load4(B, K, N, k0 + t / (VEC_BN / 4), col0 + (t % (VEC_BN / 4)) * 4, b_vector);
}

template <bool TRANS_A, bool TRANS_B>
__device__ __forceinline__ void store_slice(float (*As)[VEC_BM], float (*Bs)[VEC_BN], const float4& a, const float4& b) {
  const int t = threadIdx.x;
  if (TRANS_A) {  // A^T is contiguous along m: stored as it is
    *reinterpret_cast<float4*>(&As[t / (VEC_BM / 4)][(t % (VEC_BM / 4)) * 4]) = a;
  } else {  // A is contiguous along k: transposed into As[k][m]
    const int m = t / (VEC_BK / 4), k = (t % (VEC_BK / 4)) * 4;
    As[k][m] = a.x, As[k + 1][m] = a.y, As[k + 2][m] = a.z, As[k + 3][m] = a.w;
  }
  if (TRANS_B) {  // B^T is contiguous along k: transposed into Bs[k][n]
    const int n = t / (VEC_BK / 4), k = (t % (VEC_BK / 4)) * 4;
    Bs[k][n] = b.x, Bs[k + 1][n] = b.y, Bs[k + 2][n] = b.z, Bs[k + 3][n] = b.w;
  } else {  // B is contiguous along n: stored as it is
    *reinterpret_cast<float4*>(&Bs[t / (VEC_BN / 4)][(t % (VEC_BN / 4)) * 4]) = b;
  }
}

// C[row, col .. col + 3] = alpha values + beta C, a float4 store where aligned and inside.
__device__ __forceinline__ void store4(float* __restrict__ C, int M, int N, int row, int col, float alpha, float beta,
                                       const float* values, bool c_vector) {
  if (row >= M) return;
  float* at = C + (long long)row * N + col;
  if (c_vector && col + 3 < N) {
    float4 v = make_float4(alpha * values[0], alpha * values[1], alpha * values[2], alpha * values[3]);
    if (beta != 0.0f) {
      const float4 old = *reinterpret_cast<const float4*>(at);
      v.x += beta * old.x, v.y += beta * old.y, v.z += beta * old.z, v.w += beta * old.w;
    }
    *reinterpret_cast<float4*>(at) = v;
  } else {
    for (int q = 0; q < 4 && col + q < N; ++q) at[q] = alpha * values[q] + (beta != 0.0f ? beta * at[q] : 0.0f);
  }
}

__device__ __forceinline__ bool aligned_rows(const void* matrix, int cols) {
  return cols % 4 == 0 && (unsigned long long)matrix % 16 == 0;
}

template <bool TRANS_A, bool TRANS_B>
__device__ __forceinline__ void sgemm_vectorized_body(int M, int N, int K, float alpha, const float* __restrict__ A,
                                                      const float* __restrict__ B, float beta, float* __restrict__ C) {
  __shared__ __align__(16) float As[VEC_BK][VEC_BM];
  __shared__ __align__(16) float Bs[VEC_BK][VEC_BN];
  const int row0 = blockIdx.y * VEC_BM, col0 = blockIdx.x * VEC_BN;
  const int thread_row = threadIdx.x / (VEC_BN / VEC_TN), thread_col = threadIdx.x % (VEC_BN / VEC_TN);
  // Stored shapes: A is (M, K), or (K, M) when transposed; B is (K, N), or (N, K).
  const bool a_vector = aligned_rows(A, TRANS_A ? M : K), b_vector = aligned_rows(B, TRANS_B ? K : N);
  float accumulator[VEC_TM][VEC_TN];
  for (int i = 0; i < VEC_TM; ++i)
    for (int j = 0; j < VEC_TN; ++j) accumulator[i][j] = 0.0f;

  for (int k0 = 0; k0 < K; k0 += VEC_BK) {
    float4 a_slice, b_slice;
    fetch_slice<TRANS_A, TRANS_B>(A, B, M, N, K, row0, col0, k0, a_vector, b_vector, a_slice, b_slice);
    store_slice<TRANS_A, TRANS_B>(As, Bs, a_slice, b_slice);
    __syncthreads();
#pragma unroll
    for (int k = 0; k < VEC_BK; ++k) {
      float a[VEC_TM], b[VEC_TN];
      const float4* a4 = reinterpret_cast<const float4*>(&As[k][thread_row * VEC_TM]);
      const float4* b4 = reinterpret_cast<const float4*>(&Bs[k][thread_col * VEC_TN]);
      for (int q = 0; q < VEC_TM / 4; ++q) {
        const float4 va = a4[q], vb = b4[q];
        a[4 * q] = va.x, a[4 * q + 1] = va.y, a[4 * q + 2] = va.z, a[4 * q + 3] = va.w;
        b[4 * q] = vb.x, b[4 * q + 1] = vb.y, b[4 * q + 2] = vb.z, b[4 * q + 3] = vb.w;
      }
#pragma unroll
      for (int i = 0; i < VEC_TM; ++i)
#pragma unroll
        for (int j = 0; j < VEC_TN; ++j) accumulator[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
  const bool c_vector = aligned_rows(C, N);
  for (int i = 0; i < VEC_TM; ++i)
    for (int j = 0; j < VEC_TN; j += 4)
      store4(C, M, N, row0 + thread_row * VEC_TM + i, col0 + thread_col * VEC_TN + j, alpha, beta,
             &accumulator[i][j], c_vector);
}

extern "C" __global__ void __launch_bounds__(VEC_THREADS) sgemm_vectorized_nn(
    int M, int N, int K, float alpha, const float* __restrict__ A, const float* __restrict__ B, float beta,
    float* __restrict__ C) {
  sgemm_vectorized_body<false, false>(M, N, K, alpha, A, B, beta, C);
}

extern "C" __global__ void __launch_bounds__(VEC_THREADS) sgemm_vectorized_tn(
    int M, int N, int K, float alpha, const float* __restrict__ A, const float* __restrict__ B, float beta,
    float* __restrict__ C) {
  sgemm_vectorized_body<true, false>(M, N, K, alpha, A, B, beta, C);
}

extern "C" __global__ void __launch_bounds__(VEC_THREADS) sgemm_vectorized_nt(
    int M, int N, int K, float alpha, const float* __restrict__ A, const float* __restrict__ B, float beta,
    float* __restrict__ C) {
  sgemm_vectorized_body<false, true>(M, N, K, alpha, A, B, beta, C);
}

// ---- v7 and v8 --------------------------------------------------------------------------
// v7 sgemm_warptile_{nn,tn,nt}: the same 128 x 128 block tile and staging as v6, but the
//   tile is split between the 8 warps first (2 x 4 warps of 64 x 32 results) and then between
//   the 32 threads of a warp (8 x 4 threads, each 2 x 2 sub-blocks of 4 x 4 results, 32 rows
//   and 16 columns apart). A warp's shared-memory reads then cover 64 + 32 consecutive floats
//   per k instead of a scattered 128 + 128, and each float4 feeds 4 x 8 FMAs; it is the
//   level of tiling that maps onto the hardware's schedulers (siboehm's kernel 10).
// v8 sgemm_pipelined_{nn,tn,nt}: v7 with two shared-memory buffers: while the block computes
//   slice k from one buffer, each thread's global loads of slice k + 1 are in flight into
//   registers and go to the other buffer afterwards; one barrier per slice instead of two,
//   and the load latency hidden behind 8 x 64 FMAs. 16 KiB of shared memory a block;
//   __launch_bounds__(256, 2): two blocks an SM (at most 128 registers; it needs 117-127),
//   which split-K plans its waves with (gemm.py).
#define WARP_ROWS 64          // results of a warp: 64 x 32
#define WARP_COLUMNS 32
#define WARPS_ACROSS (VEC_BN / WARP_COLUMNS)
#define LANE_COLUMNS 4        // a warp's threads: 8 x 4
#define SUB_ROWS 32           // a thread's 2 x 2 sub-blocks of 4 x 4, this far apart
#define SUB_COLUMNS 16
static_assert((VEC_BM / WARP_ROWS) * (VEC_BN / WARP_COLUMNS) * 32 == VEC_THREADS, "8 warps tile the block");
static_assert(2 * SUB_ROWS == WARP_ROWS && 2 * SUB_COLUMNS == WARP_COLUMNS, "2 x 2 sub-blocks");

// Where this thread's sub-blocks start in the block tile.
__device__ __forceinline__ void warp_tile_origin(int& row, int& col) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  row = (warp / WARPS_ACROSS) * WARP_ROWS + (lane / LANE_COLUMNS) * 4;
  col = (warp % WARPS_ACROSS) * WARP_COLUMNS + (lane % LANE_COLUMNS) * 4;
}

// accumulator[4 sm + i][4 sn + j] += the slice's products for sub-block (sm, sn); staged rows
// of A_ROW and B_ROW floats (v12 pads them).
template <int A_ROW, int B_ROW>
__device__ __forceinline__ void warp_tile_slice(const float (*As)[A_ROW], const float (*Bs)[B_ROW], int row, int col,
                                                float accumulator[8][8]) {
#pragma unroll
  for (int k = 0; k < VEC_BK; ++k) {
    float a[8], b[8];
    for (int s = 0; s < 2; ++s) {
      const float4 va = *reinterpret_cast<const float4*>(&As[k][row + s * SUB_ROWS]);
      const float4 vb = *reinterpret_cast<const float4*>(&Bs[k][col + s * SUB_COLUMNS]);
      a[4 * s] = va.x, a[4 * s + 1] = va.y, a[4 * s + 2] = va.z, a[4 * s + 3] = va.w;
      b[4 * s] = vb.x, b[4 * s + 1] = vb.y, b[4 * s + 2] = vb.z, b[4 * s + 3] = vb.w;
    }
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int j = 0; j < 8; ++j) accumulator[i][j] += a[i] * b[j];
  }
}

__device__ __forceinline__ void warp_tile_store(float* __restrict__ C, int M, int N, float alpha, float beta, int row,
                                                int col, float accumulator[8][8]) {
  const int row0 = blockIdx.y * VEC_BM + row, col0 = blockIdx.x * VEC_BN + col;
  const bool c_vector = aligned_rows(C, N);
#pragma unroll  // accumulator's indices constants: else it is demoted to local memory
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int s = 0; s < 2; ++s)
      store4(C, M, N, row0 + (i / 4) * SUB_ROWS + i % 4, col0 + s * SUB_COLUMNS, alpha, beta, &accumulator[i][4 * s],
             c_vector);
}

template <bool TRANS_A, bool TRANS_B>
__device__ __forceinline__ void sgemm_warptile_body(int M, int N, int K, float alpha, const float* __restrict__ A,
                                                    const float* __restrict__ B, float beta, float* __restrict__ C) {
  __shared__ __align__(16) float As[VEC_BK][VEC_BM];
  __shared__ __align__(16) float Bs[VEC_BK][VEC_BN];
  const int row0 = blockIdx.y * VEC_BM, col0 = blockIdx.x * VEC_BN;
  const bool a_vector = aligned_rows(A, TRANS_A ? M : K), b_vector = aligned_rows(B, TRANS_B ? K : N);
  int row, col;
  warp_tile_origin(row, col);
  float accumulator[8][8];
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j) accumulator[i][j] = 0.0f;
  for (int k0 = 0; k0 < K; k0 += VEC_BK) {
    float4 a_slice, b_slice;
    fetch_slice<TRANS_A, TRANS_B>(A, B, M, N, K, row0, col0, k0, a_vector, b_vector, a_slice, b_slice);
    store_slice<TRANS_A, TRANS_B>(As, Bs, a_slice, b_slice);
    __syncthreads();
    warp_tile_slice(As, Bs, row, col, accumulator);
    __syncthreads();
  }
  warp_tile_store(C, M, N, alpha, beta, row, col, accumulator);
}

// Reduces K indices [k_begin, k_end) (k_begin a multiple of VEC_BK, so a staged slice never
// reaches into another block's range; only K itself bounds the last one).
template <bool TRANS_A, bool TRANS_B>
__device__ __forceinline__ void sgemm_pipelined_body(int M, int N, int K, int k_begin, int k_end, float alpha,
                                                     const float* __restrict__ A, const float* __restrict__ B,
                                                     float beta, float* __restrict__ C) {
  __shared__ __align__(16) float As[2][VEC_BK][VEC_BM];
  __shared__ __align__(16) float Bs[2][VEC_BK][VEC_BN];
  const int row0 = blockIdx.y * VEC_BM, col0 = blockIdx.x * VEC_BN;
  const bool a_vector = aligned_rows(A, TRANS_A ? M : K), b_vector = aligned_rows(B, TRANS_B ? K : N);
  int row, col;
  warp_tile_origin(row, col);
  float accumulator[8][8];
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j) accumulator[i][j] = 0.0f;
  float4 a_slice, b_slice;
  fetch_slice<TRANS_A, TRANS_B>(A, B, M, N, K, row0, col0, k_begin, a_vector, b_vector, a_slice, b_slice);
  store_slice<TRANS_A, TRANS_B>(As[0], Bs[0], a_slice, b_slice);
  __syncthreads();
  for (int k0 = k_begin, buffer = 0; k0 < k_end; k0 += VEC_BK, buffer ^= 1) {
    const bool more = k0 + VEC_BK < k_end;
    if (more)  // the next slice's loads, in flight during the products below
      fetch_slice<TRANS_A, TRANS_B>(A, B, M, N, K, row0, col0, k0 + VEC_BK, a_vector, b_vector, a_slice, b_slice);
    warp_tile_slice(As[buffer], Bs[buffer], row, col, accumulator);
    if (more) store_slice<TRANS_A, TRANS_B>(As[buffer ^ 1], Bs[buffer ^ 1], a_slice, b_slice);
    __syncthreads();  // every thread is done with `buffer` and has written the next one
  }
  warp_tile_store(C, M, N, alpha, beta, row, col, accumulator);
}

// The tiled rungs the engine can run (gemm.py: TILED), as types whose body the split-K and
// batched entries below run on their part of the reduction.
struct PipelinedTiles {
  template <bool TRANS_A, bool TRANS_B>
  __device__ static __forceinline__ void body(int M, int N, int K, int k_begin, int k_end, float alpha,
                                              const float* __restrict__ A, const float* __restrict__ B, float beta,
                                              float* __restrict__ C) {
    sgemm_pipelined_body<TRANS_A, TRANS_B>(M, N, K, k_begin, k_end, alpha, A, B, beta, C);
  }
};

// The entry points: one specialisation per transpose case the engine uses.
extern "C" __global__ void __launch_bounds__(VEC_THREADS) sgemm_warptile_nn(
    int M, int N, int K, float alpha, const float* __restrict__ A, const float* __restrict__ B, float beta,
    float* __restrict__ C) {
  sgemm_warptile_body<false, false>(M, N, K, alpha, A, B, beta, C);
}

extern "C" __global__ void __launch_bounds__(VEC_THREADS) sgemm_warptile_tn(
    int M, int N, int K, float alpha, const float* __restrict__ A, const float* __restrict__ B, float beta,
    float* __restrict__ C) {
  sgemm_warptile_body<true, false>(M, N, K, alpha, A, B, beta, C);
}

extern "C" __global__ void __launch_bounds__(VEC_THREADS) sgemm_warptile_nt(
    int M, int N, int K, float alpha, const float* __restrict__ A, const float* __restrict__ B, float beta,
    float* __restrict__ C) {
  sgemm_warptile_body<false, true>(M, N, K, alpha, A, B, beta, C);
}

extern "C" __global__ void __launch_bounds__(VEC_THREADS, 2) sgemm_pipelined_nn(
    int M, int N, int K, float alpha, const float* __restrict__ A, const float* __restrict__ B, float beta,
    float* __restrict__ C) {
  sgemm_pipelined_body<false, false>(M, N, K, 0, K, alpha, A, B, beta, C);
}

extern "C" __global__ void __launch_bounds__(VEC_THREADS, 2) sgemm_pipelined_tn(
    int M, int N, int K, float alpha, const float* __restrict__ A, const float* __restrict__ B, float beta,
    float* __restrict__ C) {
  sgemm_pipelined_body<true, false>(M, N, K, 0, K, alpha, A, B, beta, C);
}

extern "C" __global__ void __launch_bounds__(VEC_THREADS, 2) sgemm_pipelined_nt(
    int M, int N, int K, float alpha, const float* __restrict__ A, const float* __restrict__ B, float beta,
    float* __restrict__ C) {
  sgemm_pipelined_body<false, true>(M, N, K, 0, K, alpha, A, B, beta, C);
}

// ---- v9 ---------------------------------------------------------------------------------
// v9 sgemm_splitk_{nn,tn,nt}: v8 on K indices [z slice, (z + 1) slice) for z = blockIdx.z,
//   each slice's tile written to its own M x N plane of `partial`; sgemm_sum_splits then adds
//   the planes in a fixed order (deterministic, no atomics) into C. What it buys: a product
//   whose tiles are fewer than the SMs (a fully connected layer at batch 1 or 64: M <= 128,
//   so 4096 outputs are 32 tiles on 132 SMs, each reducing K = 25088 alone) gets enough
//   blocks to keep every SM busy; the price is the planes' extra writes and reads,
//   4 M N splits bytes each way, small exactly where the split is taken (few tiles).
//   `slice` is a multiple of the rung's staging depth; gemm.py chooses it. The later tiled
//   rungs split the same way, through their Tiles type.
template <class Tiles, bool TRANS_A, bool TRANS_B>
__device__ __forceinline__ void sgemm_splitk_body(int M, int N, int K, int slice, const float* __restrict__ A,
                                                  const float* __restrict__ B, float* __restrict__ partial) {
  const int k_begin = blockIdx.z * slice, k_end = k_begin + slice < K ? k_begin + slice : K;
  Tiles::template body<TRANS_A, TRANS_B>(M, N, K, k_begin, k_end, 1.0f, A, B, 0.0f,
                                         partial + (long long)blockIdx.z * M * N);
}

extern "C" __global__ void __launch_bounds__(VEC_THREADS, 2) sgemm_splitk_nn(
    int M, int N, int K, int slice, const float* __restrict__ A, const float* __restrict__ B,
    float* __restrict__ partial) {
  sgemm_splitk_body<PipelinedTiles, false, false>(M, N, K, slice, A, B, partial);
}

extern "C" __global__ void __launch_bounds__(VEC_THREADS, 2) sgemm_splitk_tn(
    int M, int N, int K, int slice, const float* __restrict__ A, const float* __restrict__ B,
    float* __restrict__ partial) {
  sgemm_splitk_body<PipelinedTiles, true, false>(M, N, K, slice, A, B, partial);
}

extern "C" __global__ void __launch_bounds__(VEC_THREADS, 2) sgemm_splitk_nt(
    int M, int N, int K, int slice, const float* __restrict__ A, const float* __restrict__ B,
    float* __restrict__ partial) {
  sgemm_splitk_body<PipelinedTiles, false, true>(M, N, K, slice, A, B, partial);
}

// C[e] = alpha * (the sum over z of partial[z, e], z in order) + beta * C[e].
extern "C" __global__ void sgemm_sum_splits(const float* __restrict__ partial, float* __restrict__ C, long long count,
                                            int splits, float alpha, float beta) {
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < count; e += (long long)gridDim.x * blockDim.x) {
    float total = 0.0f;
    for (int z = 0; z < splits; ++z) total += partial[z * count + e];
    C[e] = alpha * total + (beta != 0.0f ? beta * C[e] : 0.0f);
  }
}

// ---- v10 --------------------------------------------------------------------------------
// v10 sgemm_skinny_{nt,nn}: products with at most SKINNY_ROWS rows (a fully connected layer
//   at batch 1 to 8). A 128 x 128 tile computes 128 rows of which all but M are padding:
//   VGG-16's fc6 at batch 1 did 128 times its 0.2 GFLOP. Such a product is a matrix-vector
//   product bound by reading B (411 MB for fc6: 0.14 ms at 3 TB/s), so these kernels read B
//   once, coalesced, and keep the M rows' sums in registers:
//   nt (y = x W^T, B stored N x K): a warp per column n reads B's row n along k (float4
//     where aligned), the 32 lanes' sums added in shared memory;
//   nn (gx = gy W, B stored K x N): a thread per column n walks down B's column, a warp
//     reading 32 consecutive floats of each row; the K rows are split between blockIdx.y
//     slices written to planes that sgemm_sum_splits adds (alpha, beta there).
#define SKINNY_ROWS 8
#define SKINNY_THREADS 256
#define SKINNY_WARPS (SKINNY_THREADS / 32)

extern "C" __global__ void __launch_bounds__(SKINNY_THREADS) sgemm_skinny_nt(
    int M, int N, int K, float alpha, const float* __restrict__ A, const float* __restrict__ B, float beta,
    float* __restrict__ C) {
  __shared__ float lanes[SKINNY_ROWS][SKINNY_THREADS];
  const int lane = threadIdx.x % 32, n = blockIdx.x * SKINNY_WARPS + threadIdx.x / 32;
  float sum[SKINNY_ROWS];
  #pragma unroll
  for (int r = 0; r < SKINNY_ROWS; ++r) sum[r] = 0.0f;
  if (n < N) {
    const float* b = B + (long long)n * K;
    if (aligned_rows(A, K) && aligned_rows(B, K)) {  // K % 4 == 0: the float4s cover every k
      for (int k = 4 * lane; k < K; k += 4 * 32) {
        const float4 v = __ldg(reinterpret_cast<const float4*>(b + k));
        #pragma unroll
        for (int r = 0; r < SKINNY_ROWS; ++r)
          if (r < M) {
            const float4 a = __ldg(reinterpret_cast<const float4*>(A + (long long)r * K + k));
            sum[r] += a.x * v.x + a.y * v.y + a.z * v.z + a.w * v.w;
          }
      }
    } else {
      for (int k = lane; k < K; k += 32)
        #pragma unroll
        for (int r = 0; r < SKINNY_ROWS; ++r)
          if (r < M) sum[r] += A[(long long)r * K + k] * b[k];
    }
  }
  #pragma unroll
  for (int r = 0; r < SKINNY_ROWS; ++r) lanes[r][threadIdx.x] = sum[r];
  __syncthreads();
  for (int width = 16; width > 0; width /= 2) {  // a tree over each warp's 32 lanes
    if (lane < width)
      #pragma unroll
      for (int r = 0; r < SKINNY_ROWS; ++r) lanes[r][threadIdx.x] += lanes[r][threadIdx.x + width];
    __syncthreads();
  }
  if (lane == 0 && n < N)
#pragma unroll
    for (int r = 0; r < SKINNY_ROWS; ++r) {
      if (r >= M) break;
      float* at = C + (long long)r * N + n;
      *at = alpha * lanes[r][threadIdx.x] + (beta != 0.0f ? beta * *at : 0.0f);
    }
}

// Plane blockIdx.y of partial: the sums over k in [y slice, (y + 1) slice) of A[r, k] B[k, n].
extern "C" __global__ void __launch_bounds__(SKINNY_THREADS) sgemm_skinny_nn(
    int M, int N, int K, int slice, const float* __restrict__ A, const float* __restrict__ B,
    float* __restrict__ partial) {
  const int n = blockIdx.x * SKINNY_THREADS + threadIdx.x;
  const int k_begin = blockIdx.y * slice, k_end = k_begin + slice < K ? k_begin + slice : K;
  if (n >= N) return;
  float sum[SKINNY_ROWS];
  #pragma unroll
  for (int r = 0; r < SKINNY_ROWS; ++r) sum[r] = 0.0f;
#pragma unroll 4
  for (int k = k_begin; k < k_end; ++k) {
    const float v = __ldg(B + (long long)k * N + n);
    #pragma unroll
    for (int r = 0; r < SKINNY_ROWS; ++r)
      if (r < M) sum[r] += A[(long long)r * K + k] * v;  // the same address across the warp: a broadcast
  }
#pragma unroll
  for (int r = 0; r < SKINNY_ROWS; ++r)
    if (r < M) partial[((long long)blockIdx.y * M + r) * N + n] = sum[r];
}

// ---- v11 --------------------------------------------------------------------------------
// v11 sgemm_8x16_{nn,tn,nt}: v8 with twice the results a thread, 8 x 16, and slices 16 deep:
//   128 threads (4 warps of 64 x 64 results, 2 x 2) on the same 128 x 128 tile. What it
//   should buy: at 8 x 8 a thread reads 4 float4s from shared memory per 64 FMAs, and a
//   warp's float4 read takes 4 of the shared-memory pipe's cycles, so 4 warps (one a
//   scheduler) ask 64 pipe cycles per slice step of their 64 FMA cycles each: the pipe is as
//   busy as the FMA units and neither can run at full rate (run 1: v8 at 0.6 of the FP32
//   peak). At 8 x 16 a thread reads 6 float4s per 128 FMAs, 25% fewer per FMA, as in
//   siboehm's autotuned kernel 10 (8 rows by 4 sub-tiles of 4 columns). Slices of 16 halve
//   the barriers per FMA. Costs: 254-255 registers a thread (128 accumulators, 8 float4s
//   staged), so two blocks (8 warps) an SM instead of v8's 16 warps; 32 KiB of shared
//   memory a block.
//   A lane's 8 x 16 results: 2 x 4 sub-blocks of 4 x 4, 32 rows and 16 columns apart
//   (lanes 8 x 4 over the warp's 64 x 64): a warp's float4 reads of As cover 32 contiguous
//   floats and of Bs 16, no bank conflicts. Its transposing stores (A in nn and nt, B^T in
//   nt: a lane's float4 along k goes down 4 rows) write 8 consecutive columns at the 4
//   depths k = 0, 4, 8, 12 of the slice at once, and rows of 128 floats start in the same
//   bank: a 4-way conflict on every such store (python -m deepinside.kernels.banks: 1.38
//   times the fewest wavefronts a block in nn, 1.75 in nt, most of what the 8 x 16 tiling
//   saves). So the slices are stored swizzled: column m of depth k at m ^ 8 ((k / 4) % 4)
//   (QuarterSwizzle, below), which puts the 4 depths' columns in 4 different groups of 8 banks
//   and keeps every aligned float4 whole and inside its 32-float span, so the reads stay
//   conflict-free. Padding cannot do it as cheaply: a pad that keeps the float4 reads
//   aligned is a multiple of 4 floats a row and puts depth 8 back on depth 0's banks, and 8
//   floats after every 4 rows made ptxas spill in the main loop (24 local loads an
//   iteration, sm_90), where the swizzle costs 17 LOP3s per 2048 FFMAs and no spill.
#define WIDE_BK 16
#define WIDE_THREADS 128
#define WIDE_WARP 64          // results of a warp: 64 x 64
#define WIDE_TN 16            // results of a thread: 8 x 16
static_assert((VEC_BM / WIDE_WARP) * (VEC_BN / WIDE_WARP) * 32 == WIDE_THREADS, "4 warps tile the block");
static_assert(VEC_BM * WIDE_BK == 16 * WIDE_THREADS && VEC_BN * WIDE_BK == 16 * WIDE_THREADS, "4 float4s a thread");

// This thread's 4 float4s of op(A) and of op(B) for slice k0, read along the stored
// matrix's contiguous axis: rows of 16 values (4 float4s, 4 threads a row) for A and B^T,
// rows of 128 (32 threads a row) for A^T and B; fetch_slice's layout, 4 times.
template <bool TRANS_A, bool TRANS_B>
__device__ __forceinline__ void fetch_slice_16(const float* __restrict__ A, const float* __restrict__ B, int M, int N,
                                               int K, int row0, int col0, int k0, bool a_vector, bool b_vector,
                                               float4 a[4], float4 b[4]) {
  const int t = threadIdx.x;
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const int e = t + q * WIDE_THREADS;  // which float4 of the slice's 512
    if (TRANS_A) a[q] = load4(A, K, M, k0 + e / (VEC_BM / 4), row0 + (e % (VEC_BM / 4)) * 4, a_vector);
    else a[q] = load4(A, M, K, row0 + e / (WIDE_BK / 4), k0 + (e % (WIDE_BK / 4)) * 4, a_vector);
    if (TRANS_B) b[q] = load4(B, N, K, col0 + e / (WIDE_BK / 4), k0 + (e % (WIDE_BK / 4)) * 4, b_vector);
    else b[q] = load4(B, K, N, k0 + e / (VEC_BN / 4), col0 + (e % (VEC_BN / 4)) * 4, b_vector);
  }
}

// Where column m of depth k of a staged v11 slice lies in its row (see above).
struct QuarterSwizzle {
  __device__ static __forceinline__ int column(int k, int m) { return m ^ (((k >> 2) & 3) << 3); }
};

// Where a thread's 8 x 16 results start in the block tile (v11, v13): warps of 64 x 64, 2 x
// 2, lanes 8 x 4 over a warp's.
__device__ __forceinline__ void eight_by_sixteen_origin(int& row, int& col) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  row = (warp / 2) * WIDE_WARP + (lane / 4) * 4;
  col = (warp % 2) * WIDE_WARP + (lane % 4) * 4;
}

// accumulator += one staged 16-deep slice's products for the thread's 8 x 16 results: 2 x 4
// sub-blocks of 4 x 4, 32 rows and 16 columns apart; column m of depth k staged at
// Layout::column(k, m) (v11's swizzle or v13's).
template <class Layout>
__device__ __forceinline__ void eight_by_sixteen_slice(const float (*As)[VEC_BM], const float (*Bs)[VEC_BN], int row,
                                                       int col, float accumulator[8][WIDE_TN]) {
#pragma unroll
  for (int k = 0; k < WIDE_BK; ++k) {
    float a[8], b[WIDE_TN];
#pragma unroll
    for (int s = 0; s < 2; ++s) {
      const float4 v = *reinterpret_cast<const float4*>(&As[k][Layout::column(k, row + s * 32)]);
      a[4 * s] = v.x, a[4 * s + 1] = v.y, a[4 * s + 2] = v.z, a[4 * s + 3] = v.w;
    }
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      const float4 v = *reinterpret_cast<const float4*>(&Bs[k][Layout::column(k, col + s * 16)]);
      b[4 * s] = v.x, b[4 * s + 1] = v.y, b[4 * s + 2] = v.z, b[4 * s + 3] = v.w;
    }
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int j = 0; j < WIDE_TN; ++j) accumulator[i][j] += a[i] * b[j];
  }
}

__device__ __forceinline__ void eight_by_sixteen_store(float* __restrict__ C, int M, int N, float alpha, float beta,
                                                       int row, int col, float accumulator[8][WIDE_TN]) {
  const int row0 = blockIdx.y * VEC_BM + row, col0 = blockIdx.x * VEC_BN + col;
  const bool c_vector = aligned_rows(C, N);
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int s = 0; s < 4; ++s)
      store4(C, M, N, row0 + (i / 4) * 32 + i % 4, col0 + s * 16, alpha, beta, &accumulator[i][4 * s], c_vector);
}

template <bool TRANS_A, bool TRANS_B>
__device__ __forceinline__ void store_slice_16(float (*As)[VEC_BM], float (*Bs)[VEC_BN], const float4 a[4],
                                               const float4 b[4]) {
  const int t = threadIdx.x;
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const int e = t + q * WIDE_THREADS;
    if (TRANS_A) {
      const int k = e / (VEC_BM / 4);
      *reinterpret_cast<float4*>(&As[k][QuarterSwizzle::column(k, (e % (VEC_BM / 4)) * 4)]) = a[q];
    } else {  // k .. k + 3 share a swizzle
      const int k = (e % (WIDE_BK / 4)) * 4, m = QuarterSwizzle::column(k, e / (WIDE_BK / 4));
      As[k][m] = a[q].x, As[k + 1][m] = a[q].y, As[k + 2][m] = a[q].z, As[k + 3][m] = a[q].w;
    }
    if (TRANS_B) {
      const int k = (e % (WIDE_BK / 4)) * 4, n = QuarterSwizzle::column(k, e / (WIDE_BK / 4));
      Bs[k][n] = b[q].x, Bs[k + 1][n] = b[q].y, Bs[k + 2][n] = b[q].z, Bs[k + 3][n] = b[q].w;
    } else {
      const int k = e / (VEC_BN / 4);
      *reinterpret_cast<float4*>(&Bs[k][QuarterSwizzle::column(k, (e % (VEC_BN / 4)) * 4)]) = b[q];
    }
  }
}

// Reduces K indices [k_begin, k_end), k_begin a multiple of WIDE_BK (as v8's body).
template <bool TRANS_A, bool TRANS_B>
__device__ __forceinline__ void sgemm_8x16_body(int M, int N, int K, int k_begin, int k_end, float alpha,
                                                const float* __restrict__ A, const float* __restrict__ B,
                                                float beta, float* __restrict__ C) {
  __shared__ __align__(16) float As[2][WIDE_BK][VEC_BM];
  __shared__ __align__(16) float Bs[2][WIDE_BK][VEC_BN];
  const int row0 = blockIdx.y * VEC_BM, col0 = blockIdx.x * VEC_BN;
  const bool a_vector = aligned_rows(A, TRANS_A ? M : K), b_vector = aligned_rows(B, TRANS_B ? K : N);
  int row, col;
  eight_by_sixteen_origin(row, col);
  float accumulator[8][WIDE_TN];  // every index a constant after unrolling: registers, not local memory
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < WIDE_TN; ++j) accumulator[i][j] = 0.0f;
  float4 a_slice[4], b_slice[4];
  fetch_slice_16<TRANS_A, TRANS_B>(A, B, M, N, K, row0, col0, k_begin, a_vector, b_vector, a_slice, b_slice);
  store_slice_16<TRANS_A, TRANS_B>(As[0], Bs[0], a_slice, b_slice);
  __syncthreads();
  for (int k0 = k_begin, buffer = 0; k0 < k_end; k0 += WIDE_BK, buffer ^= 1) {
    const bool more = k0 + WIDE_BK < k_end;
    if (more)
      fetch_slice_16<TRANS_A, TRANS_B>(A, B, M, N, K, row0, col0, k0 + WIDE_BK, a_vector, b_vector, a_slice, b_slice);
    eight_by_sixteen_slice<QuarterSwizzle>(As[buffer], Bs[buffer], row, col, accumulator);
    if (more) store_slice_16<TRANS_A, TRANS_B>(As[buffer ^ 1], Bs[buffer ^ 1], a_slice, b_slice);
    __syncthreads();
  }
  eight_by_sixteen_store(C, M, N, alpha, beta, row, col, accumulator);
}

extern "C" __global__ void __launch_bounds__(WIDE_THREADS, 2) sgemm_8x16_nn(
    int M, int N, int K, float alpha, const float* __restrict__ A, const float* __restrict__ B, float beta,
    float* __restrict__ C) {
  sgemm_8x16_body<false, false>(M, N, K, 0, K, alpha, A, B, beta, C);
}

extern "C" __global__ void __launch_bounds__(WIDE_THREADS, 2) sgemm_8x16_tn(
    int M, int N, int K, float alpha, const float* __restrict__ A, const float* __restrict__ B, float beta,
    float* __restrict__ C) {
  sgemm_8x16_body<true, false>(M, N, K, 0, K, alpha, A, B, beta, C);
}

extern "C" __global__ void __launch_bounds__(WIDE_THREADS, 2) sgemm_8x16_nt(
    int M, int N, int K, float alpha, const float* __restrict__ A, const float* __restrict__ B, float beta,
    float* __restrict__ C) {
  sgemm_8x16_body<false, true>(M, N, K, 0, K, alpha, A, B, beta, C);
}

struct EightBySixteenTiles {
  template <bool TRANS_A, bool TRANS_B>
  __device__ static __forceinline__ void body(int M, int N, int K, int k_begin, int k_end, float alpha,
                                              const float* __restrict__ A, const float* __restrict__ B, float beta,
                                              float* __restrict__ C) {
    sgemm_8x16_body<TRANS_A, TRANS_B>(M, N, K, k_begin, k_end, alpha, A, B, beta, C);
  }
};

// v11 with K split between blocks, as v9 is to v8 (`slice` a multiple of WIDE_BK): what the
// engine splits with once v11 is its rung (gemm.py: ENGINE_TILED).

extern "C" __global__ void __launch_bounds__(WIDE_THREADS, 2) sgemm_8x16_splitk_nn(
    int M, int N, int K, int slice, const float* __restrict__ A, const float* __restrict__ B,
    float* __restrict__ partial) {
  sgemm_splitk_body<EightBySixteenTiles, false, false>(M, N, K, slice, A, B, partial);
}

extern "C" __global__ void __launch_bounds__(WIDE_THREADS, 2) sgemm_8x16_splitk_tn(
    int M, int N, int K, int slice, const float* __restrict__ A, const float* __restrict__ B,
    float* __restrict__ partial) {
  sgemm_splitk_body<EightBySixteenTiles, true, false>(M, N, K, slice, A, B, partial);
}

extern "C" __global__ void __launch_bounds__(WIDE_THREADS, 2) sgemm_8x16_splitk_nt(
    int M, int N, int K, int slice, const float* __restrict__ A, const float* __restrict__ B,
    float* __restrict__ partial) {
  sgemm_splitk_body<EightBySixteenTiles, false, true>(M, N, K, slice, A, B, partial);
}

// ---- v12 --------------------------------------------------------------------------------
// v12 sgemm_async_{nn,tn,nt}: v8's tiles and warp tiling, its slices copied from global into
//   shared memory by sm_80's asynchronous copies (cp.async) instead of through registers.
//   In v8 a thread loads the next slice into registers, multiplies, then stores them: one
//   slice in flight, and the staging registers held across the products. Here a thread
//   issues its copies of a slice ASYNC_STAGES - 1 slices ahead and goes on multiplying; the
//   copies land in shared memory by themselves. What it should buy: global latency hidden
//   behind three slices' products (3 x 512 FMAs a thread) instead of one, no staging
//   registers, and a load and a store instruction per value become one copy. Costs: 4
//   buffers of 8 x 132 floats per operand (33 KiB a block; two blocks an SM still fit), and
//   the transposed operands (A in nn and nt, B^T in nt) copied 4 bytes at a time, since a
//   copy cannot transpose: their lanes take 8 consecutive depths of 4 rows, so that a
//   warp's copy reads whole 32-byte sectors, and the staged rows are 4 floats longer than
//   the tile (132), so that those 8 depths land in 8 different groups of 4 banks. The
//   others are one 16-byte copy a thread, as v8 loads them. Edges copy zeros (a copy of
//   nothing: cp.async's source size 0).
#define ASYNC_STAGES 4
#define ASYNC_ROW (VEC_BM + 4)
static_assert(VEC_BM == VEC_BN, "one staged row length for both operands");
static_assert(VEC_BK * VEC_BM == 4 * VEC_THREADS, "a thread copies 4 values of each operand a slice");

#include "async_copy.cuh"

// A thread's part in copying one operand's slices: 4 values a slice, at positions of the
// stored matrix fixed but for the depth, so that what is fixed is worked out once a block
// (where they go in a stage's buffer, which are in bounds) and a slice steps a pointer.
// ALONG_ROWS: the stored matrix is depth x extent (A^T, B), a slice 8 of its rows, and the
// thread's 4 values are consecutive in one of them (one 16-byte copy where aligned and in
// bounds); else it is extent x depth (A, B^T), and its values are the same depth of 4
// rows 32 apart (4-byte copies, transposing).
template <bool ALONG_ROWS>
struct AsyncOperand {
  const float* matrix;
  const float* at;    // the thread's first value of the next slice
  long long apart;    // (transposing) floats between its values: 32 rows
  int depth, depths;  // the next slice's depth of its values, and K
  int to;             // where its first value goes in a stage's buffer, in floats
  unsigned inside;    // bit q: value q's column (ALONG_ROWS) or row is inside the matrix
  bool whole;         // (ALONG_ROWS) its values are inside and 16-byte aligned

  __device__ AsyncOperand(const float* __restrict__ matrix_, int extent, int K, int origin, int k_begin,
                          bool vector_ok)
      : matrix(matrix_), depths(K), inside(0) {
    const int t = threadIdx.x;
    if (ALONG_ROWS) {  // row t / 32 of the slice, columns 4 (t % 32) ..
      const int column = origin + (t % (VEC_BM / 4)) * 4;
      depth = k_begin + t / (VEC_BM / 4);
      at = matrix + (long long)depth * extent + column;
      to = (t / (VEC_BM / 4)) * ASYNC_ROW + (t % (VEC_BM / 4)) * 4;
      for (int q = 0; q < 4; ++q) inside |= (column + q < extent) << q;
      whole = vector_ok && column + 3 < extent;
    } else {  // depth t % 8 of rows t / 8 + 32 q
      const int row = origin + t / VEC_BK;
      depth = k_begin + t % VEC_BK;
      at = matrix + (long long)row * K + depth;
      apart = (long long)(VEC_THREADS / VEC_BK) * K;
      to = (t % VEC_BK) * ASYNC_ROW + t / VEC_BK;
      for (int q = 0; q < 4; ++q) inside |= (row + q * (VEC_THREADS / VEC_BK) < extent) << q;
    }
  }

  // Copies the next slice into `buffer` (a stage's VEC_BK rows of ASYNC_ROW floats).
  __device__ __forceinline__ void copy(float* buffer, int extent) {
    const bool depth_inside = depth < depths;
    if (ALONG_ROWS && whole && depth_inside) {
      cp_async_16(buffer + to, at, true);
    } else {
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const bool ok = depth_inside && (inside >> q & 1);
        const float* from = ALONG_ROWS ? at + q : at + q * apart;
        cp_async_4(buffer + to + (ALONG_ROWS ? q : q * (VEC_THREADS / VEC_BK)), ok ? from : matrix, ok);
      }
    }
    at += ALONG_ROWS ? (long long)VEC_BK * extent : VEC_BK;
    depth += VEC_BK;
  }
};

// Reduces K indices [k_begin, k_end), k_begin a multiple of VEC_BK (as v8's body), on
// async_copy.cuh's schedule (async_slices).
template <bool TRANS_A, bool TRANS_B>
__device__ __forceinline__ void sgemm_async_body(int M, int N, int K, int k_begin, int k_end, float alpha,
                                                 const float* __restrict__ A, const float* __restrict__ B, float beta,
                                                 float* __restrict__ C) {
  __shared__ __align__(16) float As[ASYNC_STAGES][VEC_BK][ASYNC_ROW];
  __shared__ __align__(16) float Bs[ASYNC_STAGES][VEC_BK][ASYNC_ROW];
  AsyncOperand<TRANS_A> a(A, M, K, blockIdx.y * VEC_BM, k_begin, aligned_rows(A, TRANS_A ? M : K));
  AsyncOperand<!TRANS_B> b(B, N, K, blockIdx.x * VEC_BN, k_begin, aligned_rows(B, TRANS_B ? K : N));
  const int slices = (k_end - k_begin + VEC_BK - 1) / VEC_BK;
  int row, col;
  warp_tile_origin(row, col);
  float accumulator[8][8];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) accumulator[i][j] = 0.0f;
  async_slices<ASYNC_STAGES>(
      slices, [&](int s) { a.copy(&As[s % ASYNC_STAGES][0][0], M), b.copy(&Bs[s % ASYNC_STAGES][0][0], N); },
      [&](int stage) { warp_tile_slice(As[stage], Bs[stage], row, col, accumulator); });
  warp_tile_store(C, M, N, alpha, beta, row, col, accumulator);
}

struct AsyncTiles {
  template <bool TRANS_A, bool TRANS_B>
  __device__ static __forceinline__ void body(int M, int N, int K, int k_begin, int k_end, float alpha,
                                              const float* __restrict__ A, const float* __restrict__ B, float beta,
                                              float* __restrict__ C) {
    sgemm_async_body<TRANS_A, TRANS_B>(M, N, K, k_begin, k_end, alpha, A, B, beta, C);
  }
};

extern "C" __global__ void __launch_bounds__(VEC_THREADS, 2) sgemm_async_nn(
    int M, int N, int K, float alpha, const float* __restrict__ A, const float* __restrict__ B, float beta,
    float* __restrict__ C) {
  sgemm_async_body<false, false>(M, N, K, 0, K, alpha, A, B, beta, C);
}

extern "C" __global__ void __launch_bounds__(VEC_THREADS, 2) sgemm_async_tn(
    int M, int N, int K, float alpha, const float* __restrict__ A, const float* __restrict__ B, float beta,
    float* __restrict__ C) {
  sgemm_async_body<true, false>(M, N, K, 0, K, alpha, A, B, beta, C);
}

extern "C" __global__ void __launch_bounds__(VEC_THREADS, 2) sgemm_async_nt(
    int M, int N, int K, float alpha, const float* __restrict__ A, const float* __restrict__ B, float beta,
    float* __restrict__ C) {
  sgemm_async_body<false, true>(M, N, K, 0, K, alpha, A, B, beta, C);
}

// v12 with K split between blocks, as v9 is to v8 (`slice` a multiple of VEC_BK).
extern "C" __global__ void __launch_bounds__(VEC_THREADS, 2) sgemm_async_splitk_nn(
    int M, int N, int K, int slice, const float* __restrict__ A, const float* __restrict__ B,
    float* __restrict__ partial) {
  sgemm_splitk_body<AsyncTiles, false, false>(M, N, K, slice, A, B, partial);
}

extern "C" __global__ void __launch_bounds__(VEC_THREADS, 2) sgemm_async_splitk_tn(
    int M, int N, int K, int slice, const float* __restrict__ A, const float* __restrict__ B,
    float* __restrict__ partial) {
  sgemm_splitk_body<AsyncTiles, true, false>(M, N, K, slice, A, B, partial);
}

extern "C" __global__ void __launch_bounds__(VEC_THREADS, 2) sgemm_async_splitk_nt(
    int M, int N, int K, int slice, const float* __restrict__ A, const float* __restrict__ B,
    float* __restrict__ partial) {
  sgemm_splitk_body<AsyncTiles, false, true>(M, N, K, slice, A, B, partial);
}

// ---- v13 --------------------------------------------------------------------------------
// v13 sgemm_8x16_async_{nn,tn,nt}: v11's 8 x 16 results a thread, its slices copied into
//   shared memory by v12's asynchronous copies. On the H200 (2026-11-28, 4096^3) v11 ran at
//   40.3-42.6 TFLOP/s and v12 at 40.8-42.8, cuBLAS at 49-50: v11 reads shared memory 25%
//   less a FMA than v8 and v12, but it stages a slice through 8 float4 registers a thread
//   (254-255 of its registers, two blocks an SM) and stores it with transposing scalar
//   stores; v12 keeps v8's 8 x 8 reads. What v13 should buy: v11's reads without its staging
//   registers or stores, and two 16-deep slices in flight instead of one (2 x 2048 FMAs a
//   thread to hide a slice's latency behind).
//   Its stages: 3 of 16 x 128 floats an operand, 48 KiB a block, the static limit, so its
//   rows are not padded as v12's (that would take 49.9 KiB): swizzled instead, column m of
//   depth k at m ^ 4 (k % 8) (DepthSwizzle). A transposing copy's lanes take 8 consecutive
//   depths of 4 rows (a warp reads 4 whole 32-byte sectors), whose columns the swizzle puts
//   in 32 different banks; an aligned float4 (the other operand's 16-byte copies, the
//   products' reads) stays whole and aligned within its 32 floats, so a warp's reads of one
//   depth stay conflict-free.
//   A block whose tile lies inside C, whose slices are all whole and whose row-wise operands
//   are 16-byte aligned (every block of a 4096^3 product) copies without a bound or a
//   fallback: the main loop is compiled twice, for such blocks and for the others, and a
//   block takes one. Checked, a copy of the transposed operand cost an ISETP and two SELs
//   (a 64-bit select of the address or the matrix's) besides its LDGSTS: about 100 of the
//   main loop's 2533 instructions (nn, sm_90).
#define WIDE_ASYNC_STAGES 3
static_assert(WIDE_ASYNC_STAGES * WIDE_BK * (VEC_BM + VEC_BN) * sizeof(float) <= 48 * 1024,
              "v13's stages within the static shared-memory limit");

struct DepthSwizzle {
  __device__ static __forceinline__ int column(int k, int m) { return m ^ ((k & 7) << 2); }
};

// A thread's part in copying one operand's 16-deep slices into a v13 stage (16 x 128
// floats). ALONG_ROWS: the stored matrix is depth x extent (A^T, B), and the thread copies
// columns first .. first + 3 (16 bytes where aligned and inside) at depths t / 32 + 4 q;
// else it is extent x depth (A, B^T), and the thread copies 4 bytes at depths t % 8 and
// t % 8 + 8 of rows first + 16 r (first = t / 8, r < 8), transposing. What is fixed is
// decoded once a block (rows or columns in bounds as bits); a slice steps a pointer.
template <bool ALONG_ROWS>
struct WideAsyncOperand {
  static constexpr int ROUNDS = ALONG_ROWS ? 4 : 8;  // depth rows (ALONG_ROWS) or rows a thread copies
  const float* matrix;
  const float* at;    // the thread's first value of the next slice
  int extent, depths;  // M or N, and K
  int depth;          // the next slice's depth of the thread's first value
  int first;          // its first column (ALONG_ROWS) or row within the tile
  unsigned inside;    // bit q: column first + q (ALONG_ROWS), or row first + 16 q, inside the matrix
  bool whole;         // (ALONG_ROWS) its 4 columns inside and 16-byte aligned

  __device__ WideAsyncOperand(const float* __restrict__ matrix_, int extent_, int K, int origin, int k_begin,
                              bool vector_ok)
      : matrix(matrix_), extent(extent_), depths(K), inside(0), whole(false) {
    const int t = threadIdx.x;
    if (ALONG_ROWS) {
      first = (t % (VEC_BM / 4)) * 4;
      depth = k_begin + t / (VEC_BM / 4);
      at = matrix + (long long)depth * extent + origin + first;
      for (int q = 0; q < 4; ++q) inside |= (origin + first + q < extent) << q;
      whole = vector_ok && origin + first + 3 < extent;
    } else {
      first = t / 8;
      depth = k_begin + t % 8;
      at = matrix + (long long)(origin + first) * K + depth;
      for (int r = 0; r < ROUNDS; ++r) inside |= (origin + first + 16 * r < extent) << r;
    }
  }

  // Copies the next slice into `stage`; INTERIOR: every value it copies is inside the
  // matrix and, ALONG_ROWS, every 16 bytes aligned (the block is interior: below).
  template <bool INTERIOR>
  __device__ __forceinline__ void copy(float (*stage)[VEC_BM]) {
    if (ALONG_ROWS) {
#pragma unroll
      for (int q = 0; q < ROUNDS; ++q) {
        const int k = threadIdx.x / (VEC_BM / 4) + 4 * q;
        const bool depth_inside = INTERIOR || depth + 4 * q < depths;
        float* to = &stage[k][DepthSwizzle::column(k, first)];
        const float* from = at + (long long)4 * q * extent;
        if (INTERIOR || (whole && depth_inside)) {
          cp_async_16(to, from, true);
        } else {
#pragma unroll
          for (int c = 0; c < 4; ++c) {
            const bool ok = depth_inside && (inside >> c & 1);
            cp_async_4(to + c, ok ? from + c : matrix, ok);
          }
        }
      }
      at += (long long)WIDE_BK * extent;
    } else {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int k = threadIdx.x % 8 + 8 * h;
        const bool depth_inside = INTERIOR || depth + 8 * h < depths;
#pragma unroll
        for (int r = 0; r < ROUNDS; ++r) {
          const bool ok = INTERIOR || (depth_inside && (inside >> r & 1));
          cp_async_4(&stage[k][DepthSwizzle::column(k, first + 16 * r)],
                     ok ? at + 8 * h + (long long)16 * r * depths : matrix, ok);
        }
      }
      at += WIDE_BK;
    }
    depth += WIDE_BK;
  }
};

// Whether this block's copies all fall inside A and B whole (WideAsyncOperand::copy's
// INTERIOR): its tile inside C, its slices whole (k_begin is a multiple of WIDE_BK), and
// the operands copied along rows 16-byte aligned.
template <bool TRANS_A, bool TRANS_B>
__device__ __forceinline__ bool interior_block(int M, int N, int k_end, bool a_vector, bool b_vector) {
  return (blockIdx.y + 1) * VEC_BM <= M && (blockIdx.x + 1) * VEC_BN <= N && k_end % WIDE_BK == 0 &&
         (!TRANS_A || a_vector) && (TRANS_B || b_vector);
}

// Reduces K indices [k_begin, k_end), k_begin a multiple of WIDE_BK: v12's schedule
// (async_slices) on v11's thread tile.
template <bool TRANS_A, bool TRANS_B>
__device__ __forceinline__ void sgemm_8x16_async_body(int M, int N, int K, int k_begin, int k_end, float alpha,
                                                      const float* __restrict__ A, const float* __restrict__ B,
                                                      float beta, float* __restrict__ C) {
  __shared__ __align__(16) float As[WIDE_ASYNC_STAGES][WIDE_BK][VEC_BM];
  __shared__ __align__(16) float Bs[WIDE_ASYNC_STAGES][WIDE_BK][VEC_BN];
  const bool a_vector = aligned_rows(A, TRANS_A ? M : K), b_vector = aligned_rows(B, TRANS_B ? K : N);
  WideAsyncOperand<TRANS_A> a(A, M, K, blockIdx.y * VEC_BM, k_begin, a_vector);
  WideAsyncOperand<!TRANS_B> b(B, N, K, blockIdx.x * VEC_BN, k_begin, b_vector);
  const int slices = (k_end - k_begin + WIDE_BK - 1) / WIDE_BK;
  int row, col;
  eight_by_sixteen_origin(row, col);
  float accumulator[8][WIDE_TN];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < WIDE_TN; ++j) accumulator[i][j] = 0.0f;
  const auto multiply = [&](int stage) {
    eight_by_sixteen_slice<DepthSwizzle>(As[stage], Bs[stage], row, col, accumulator);
  };
  if (interior_block<TRANS_A, TRANS_B>(M, N, k_end, a_vector, b_vector))
    async_slices<WIDE_ASYNC_STAGES>(slices, [&](int s) {
      a.template copy<true>(As[s % WIDE_ASYNC_STAGES]), b.template copy<true>(Bs[s % WIDE_ASYNC_STAGES]);
    }, multiply);
  else
    async_slices<WIDE_ASYNC_STAGES>(slices, [&](int s) {
      a.template copy<false>(As[s % WIDE_ASYNC_STAGES]), b.template copy<false>(Bs[s % WIDE_ASYNC_STAGES]);
    }, multiply);
  eight_by_sixteen_store(C, M, N, alpha, beta, row, col, accumulator);
}

struct EightBySixteenAsyncTiles {
  template <bool TRANS_A, bool TRANS_B>
  __device__ static __forceinline__ void body(int M, int N, int K, int k_begin, int k_end, float alpha,
                                              const float* __restrict__ A, const float* __restrict__ B, float beta,
                                              float* __restrict__ C) {
    sgemm_8x16_async_body<TRANS_A, TRANS_B>(M, N, K, k_begin, k_end, alpha, A, B, beta, C);
  }
};

extern "C" __global__ void __launch_bounds__(WIDE_THREADS, 2) sgemm_8x16_async_nn(
    int M, int N, int K, float alpha, const float* __restrict__ A, const float* __restrict__ B, float beta,
    float* __restrict__ C) {
  sgemm_8x16_async_body<false, false>(M, N, K, 0, K, alpha, A, B, beta, C);
}

extern "C" __global__ void __launch_bounds__(WIDE_THREADS, 2) sgemm_8x16_async_tn(
    int M, int N, int K, float alpha, const float* __restrict__ A, const float* __restrict__ B, float beta,
    float* __restrict__ C) {
  sgemm_8x16_async_body<true, false>(M, N, K, 0, K, alpha, A, B, beta, C);
}

extern "C" __global__ void __launch_bounds__(WIDE_THREADS, 2) sgemm_8x16_async_nt(
    int M, int N, int K, float alpha, const float* __restrict__ A, const float* __restrict__ B, float beta,
    float* __restrict__ C) {
  sgemm_8x16_async_body<false, true>(M, N, K, 0, K, alpha, A, B, beta, C);
}

// v13 with K split between blocks, as v9 is to v8 (`slice` a multiple of WIDE_BK).
extern "C" __global__ void __launch_bounds__(WIDE_THREADS, 2) sgemm_8x16_async_splitk_nn(
    int M, int N, int K, int slice, const float* __restrict__ A, const float* __restrict__ B,
    float* __restrict__ partial) {
  sgemm_splitk_body<EightBySixteenAsyncTiles, false, false>(M, N, K, slice, A, B, partial);
}

extern "C" __global__ void __launch_bounds__(WIDE_THREADS, 2) sgemm_8x16_async_splitk_tn(
    int M, int N, int K, int slice, const float* __restrict__ A, const float* __restrict__ B,
    float* __restrict__ partial) {
  sgemm_splitk_body<EightBySixteenAsyncTiles, true, false>(M, N, K, slice, A, B, partial);
}

extern "C" __global__ void __launch_bounds__(WIDE_THREADS, 2) sgemm_8x16_async_splitk_nt(
    int M, int N, int K, int slice, const float* __restrict__ A, const float* __restrict__ B,
    float* __restrict__ partial) {
  sgemm_splitk_body<EightBySixteenAsyncTiles, false, true>(M, N, K, slice, A, B, partial);
}

// ---- batched ----------------------------------------------------------------------------
// sgemm_batched_{nn,nt} (v8's tiles), sgemm_8x16_batched_{nn,nt} (v11's),
//   sgemm_async_batched_{nn,nt} (v12's) and sgemm_8x16_async_batched_{nn,nt} (v13's): a batch of
//   equal-shaped products split along K as v9 splits one, the operands of product b
//   `stride_*` floats after product b - 1's, blockIdx.z = b splits + z for reduction slice z;
//   each (product, slice) tile goes to plane blockIdx.z of `partial` (M x N each), which the
//   caller adds over z (conv2d.cu's Winograd transforms do it on their way). Winograd's T^2
//   products in one launch of whole waves instead of T^2 launches, each ending in a wave of
//   a few blocks (VGG's 28 x 28 layers at batch 64: 392 tiles, 1.5 waves); the weight
//   gradient's (nt: O x C results, a reduction over every tile of the batch) split as well.
//   The engine runs the tiles its other products run (gemm.py: ENGINE_TILED).
template <class Tiles, bool TRANS_B>
__device__ __forceinline__ void sgemm_batched_body(int M, int N, int K, int slice, int splits,
                                                   const float* __restrict__ A, long long stride_a,
                                                   const float* __restrict__ B, long long stride_b,
                                                   float* __restrict__ partial) {
  const int product = blockIdx.z / splits, k_begin = (blockIdx.z - product * splits) * slice;
  const int k_end = k_begin + slice < K ? k_begin + slice : K;
  A += product * stride_a;
  B += product * stride_b;
  partial += (long long)blockIdx.z * M * N;
  Tiles::template body<false, TRANS_B>(M, N, K, k_begin, k_end, 1.0f, A, B, 0.0f, partial);
}

extern "C" __global__ void __launch_bounds__(VEC_THREADS, 2) sgemm_batched_nn(
    int M, int N, int K, int slice, int splits, const float* __restrict__ A, long long stride_a,
    const float* __restrict__ B, long long stride_b, float* __restrict__ partial) {
  sgemm_batched_body<PipelinedTiles, false>(M, N, K, slice, splits, A, stride_a, B, stride_b, partial);
}

extern "C" __global__ void __launch_bounds__(VEC_THREADS, 2) sgemm_batched_nt(
    int M, int N, int K, int slice, int splits, const float* __restrict__ A, long long stride_a,
    const float* __restrict__ B, long long stride_b, float* __restrict__ partial) {
  sgemm_batched_body<PipelinedTiles, true>(M, N, K, slice, splits, A, stride_a, B, stride_b, partial);
}

extern "C" __global__ void __launch_bounds__(WIDE_THREADS, 2) sgemm_8x16_batched_nn(
    int M, int N, int K, int slice, int splits, const float* __restrict__ A, long long stride_a,
    const float* __restrict__ B, long long stride_b, float* __restrict__ partial) {
  sgemm_batched_body<EightBySixteenTiles, false>(M, N, K, slice, splits, A, stride_a, B, stride_b, partial);
}

extern "C" __global__ void __launch_bounds__(WIDE_THREADS, 2) sgemm_8x16_batched_nt(
    int M, int N, int K, int slice, int splits, const float* __restrict__ A, long long stride_a,
    const float* __restrict__ B, long long stride_b, float* __restrict__ partial) {
  sgemm_batched_body<EightBySixteenTiles, true>(M, N, K, slice, splits, A, stride_a, B, stride_b, partial);
}

extern "C" __global__ void __launch_bounds__(VEC_THREADS, 2) sgemm_async_batched_nn(
    int M, int N, int K, int slice, int splits, const float* __restrict__ A, long long stride_a,
    const float* __restrict__ B, long long stride_b, float* __restrict__ partial) {
  sgemm_batched_body<AsyncTiles, false>(M, N, K, slice, splits, A, stride_a, B, stride_b, partial);
}

extern "C" __global__ void __launch_bounds__(VEC_THREADS, 2) sgemm_async_batched_nt(
    int M, int N, int K, int slice, int splits, const float* __restrict__ A, long long stride_a,
    const float* __restrict__ B, long long stride_b, float* __restrict__ partial) {
  sgemm_batched_body<AsyncTiles, true>(M, N, K, slice, splits, A, stride_a, B, stride_b, partial);
}

extern "C" __global__ void __launch_bounds__(WIDE_THREADS, 2) sgemm_8x16_async_batched_nn(
    int M, int N, int K, int slice, int splits, const float* __restrict__ A, long long stride_a,
    const float* __restrict__ B, long long stride_b, float* __restrict__ partial) {
  sgemm_batched_body<EightBySixteenAsyncTiles, false>(M, N, K, slice, splits, A, stride_a, B, stride_b, partial);
}

extern "C" __global__ void __launch_bounds__(WIDE_THREADS, 2) sgemm_8x16_async_batched_nt(
    int M, int N, int K, int slice, int splits, const float* __restrict__ A, long long stride_a,
    const float* __restrict__ B, long long stride_b, float* __restrict__ partial) {
  sgemm_batched_body<EightBySixteenAsyncTiles, true>(M, N, K, slice, splits, A, stride_a, B, stride_b, partial);
}
