// Per-channel sums over NCHW data (N, C, plane), split as split-K: a block of
// REDUCE_THREADS = 256 threads (declared in each kernel's __launch_bounds__, so that the
// launcher refuses any other block, with REDUCE_BLOCKS = 8 an SM: a whole SM's threads, the
// slices planned for as many) a channel (blockIdx.x) and a slice of its N plane values
// (blockIdx.y, `slice` values long; the host splits a channel for waves of blocks and adds
// the slices' planes in order: gemm.py's sliced_reduction). Its threads walk their values
// coalesced along the plane, each one's (image, position) carried from step to step
// (index_walk.cuh: a 64-bit division a value was most of a value's instructions), and the
// block's sums are added across each warp by shuffles, then across its 8 warps in shared
// memory after one barrier. For the bias gradient (bias.cu: channel_sum) and batchnorm's
// statistics and parameter gradients (batchnorm.cu's v2).
#pragma once
#include "index_walk.cuh"

#define REDUCE_THREADS 256
#define REDUCE_BLOCKS 8

// The SUMS sums of `terms` over this block's slice, each times `scale`, into
// partial[(blockIdx.y * SUMS + s) * channels + blockIdx.x]: terms(at, totals) adds the terms
// of the element at offset `at` of the NCHW array into totals[0 .. SUMS).
template <int SUMS, class Terms>
__device__ __forceinline__ void channel_slice_sums(int batch, int channels, int plane, long long slice, float scale,
                                                   float* __restrict__ partial, Terms terms) {
  __shared__ float warp_sums[SUMS][REDUCE_THREADS / 32];
  const int o = blockIdx.x;
  const long long count = (long long)batch * plane, end = (blockIdx.y + 1) * slice;
  const long long last = end < count ? end : count;
  float totals[SUMS];
#pragma unroll
  for (int s = 0; s < SUMS; ++s) totals[s] = 0.0f;
  // index = image * plane + position: the walk's high and low digits (no middle one)
  for (IndexWalk<false> at(blockIdx.y * slice + threadIdx.x, REDUCE_THREADS, 1, plane); at.index < last; at.advance()) {
    terms((at.high * channels + o) * plane + at.low, totals);
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int s = 0; s < SUMS; ++s) {
    float sum = totals[s];
    for (int lane_mask = 16; lane_mask > 0; lane_mask /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, lane_mask);
    if (lane == 0) warp_sums[s][warp] = sum;
  }
  __syncthreads();
  if (threadIdx.x < SUMS) {
    float sum = 0.0f;
    for (int w = 0; w < REDUCE_THREADS / 32; ++w) sum += warp_sums[threadIdx.x][w];
    partial[((long long)blockIdx.y * SUMS + threadIdx.x) * channels + o] = scale * sum;
  }
}
