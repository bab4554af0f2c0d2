// A CUDA-on-CPU emulator for the subset of CUDA that deepinside's kernels use.
//
// The unmodified .cu file is compiled by g++ after this header (g++ -include). Each CUDA
// thread of a block runs as a cooperative fiber (runtime.cpp: a stack switch of its own on
// x86-64, ucontext elsewhere); __syncthreads() switches to
// the next fiber until every live thread of the block has arrived (threads that returned
// leave the count; threads waiting at different barriers abort with a message). Blocks are
// spread over worker OS threads, one block at a time each: the built-ins are thread_local
// globals rewritten before a fiber resumes, __shared__ arrays are thread_local statics, and
// atomicAdd goes through std::atomic_ref.
//
// Supported: __global__, __device__, __forceinline__, __restrict__, __shared__ (static
// size), __align__, threadIdx/blockIdx/blockDim/gridDim, __syncthreads, atomicAdd(float*/int*),
// the warp-level primitives (__shfl_sync and its up, down and xor forms, __ballot_sync,
// __any_sync, __all_sync, __syncwarp; warpSize), the maths of <cmath>, fminf/fmaxf, rsqrtf, the
// vector types float2, float4 and longlong2 with make_float2/4 and make_longlong2 (the same
// size and alignment as CUDA's, so reinterpret_cast loads work), __ldg (a plain load here:
// the read-only cache is a GPU matter), #pragma unroll (ignored), and sm_80's asynchronous
// copies into shared memory under the names the kernel files give their PTX (cp_async_4,
// cp_async_16, cp_async_commit, cp_async_wait: see below). Not supported: dynamic shared
// memory, half, __activemask and the other warp intrinsics, cooperative groups, textures,
// <<<>>> in kernel files. Loads and stores are checked for alignment (UBSan's check,
// runtime.cpp's handler): a misaligned float4 fails the launch, as on a GPU. A second,
// traced build of the same files records every shared- and global-memory access for bank
// and sector accounting (runtime.cpp, kernels/banks.py, kernels/sectors.py) and fails a
// launch on a global access outside its arrays (kernels/launch.py: CheckedEmulatorLauncher).
#pragma once
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
using uint3 = dim3;

extern thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __restrict__ __restrict
#define __shared__ static thread_local
#define __syncthreads() emulator_barrier(__LINE__)

void emulator_barrier(int line);

inline float atomicAdd(float* address, float value) {
  return std::atomic_ref<float>(*address).fetch_add(value);
}
inline int atomicAdd(int* address, int value) {
  return std::atomic_ref<int>(*address).fetch_add(value);
}
// Warp-level primitives, in their *_sync forms (sm_70 on). The lanes `mask` names (the
// caller's among them, and only lanes that exist) meet at the call, as at a __syncthreads
// of their own, and the last to arrive hands each its result (runtime.cpp: emulator_warp);
// a shuffle moves a value of up to 8 bytes. A shuffle from a lane outside the mask, lanes
// that name different masks or meet at different primitives, and a lane waited for that
// returned or waits at a __syncthreads fail the launch: undefined on a GPU, where
// compute-sanitizer's synccheck reports them.
enum class WarpOp { Sync, Index, Up, Down, Xor, Ballot, Any, All };
unsigned long long emulator_warp(unsigned mask, WarpOp op, unsigned long long value, int lane, int width);
constexpr int warpSize = 32;

template <class T>
T emulator_shuffle(unsigned mask, WarpOp op, T value, int lane, int width) {
  static_assert(sizeof(T) <= sizeof(unsigned long long), "a shuffle moves at most 8 bytes");
  unsigned long long bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  bits = emulator_warp(mask, op, bits, lane, width);
  std::memcpy(&value, &bits, sizeof(T));
  return value;
}
template <class T>
T __shfl_sync(unsigned mask, T var, int source_lane, int width = warpSize) {
  return emulator_shuffle(mask, WarpOp::Index, var, source_lane, width);
}
template <class T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return emulator_shuffle(mask, WarpOp::Up, var, static_cast<int>(delta), width);
}
template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return emulator_shuffle(mask, WarpOp::Down, var, static_cast<int>(delta), width);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {
  return emulator_shuffle(mask, WarpOp::Xor, var, lane_mask, width);
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  return static_cast<unsigned>(emulator_warp(mask, WarpOp::Ballot, predicate != 0, 0, warpSize));
}
inline int __any_sync(unsigned mask, int predicate) {
  return static_cast<int>(emulator_warp(mask, WarpOp::Any, predicate != 0, 0, warpSize));
}
inline int __all_sync(unsigned mask, int predicate) {
  return static_cast<int>(emulator_warp(mask, WarpOp::All, predicate != 0, 0, warpSize));
}
inline void __syncwarp(unsigned mask = 0xffffffffu) { emulator_warp(mask, WarpOp::Sync, 0, 0, warpSize); }

inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
// CUDA's is an approximation (2 ulp at most); this one rounds once, as close or closer.
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
using std::fmaxf;
using std::fminf;

struct alignas(8) float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(16) longlong2 {
  long long x, y;
};
static_assert(sizeof(float2) == 8 && sizeof(float4) == 16 && sizeof(longlong2) == 16, "CUDA's vector layouts");
inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline longlong2 make_longlong2(long long x, long long y) { return longlong2{x, y}; }
// A macro, not a function: the alignment check of the load (runtime.cpp) then names the
// kernel's line, not this one.
#define __ldg(address) (*(address))

// Asynchronous copies (cp.async, sm_80 on), as kernels/async_copy.cuh names its inline PTX
// for CUDA's compilers: cp_async_4/16(shared, global, inside) copies 4 or 16 bytes, or
// writes zeros where `inside` is false (nothing is read then); cp_async_commit() closes the
// thread's group of copies issued since the last; cp_async_wait(N) waits until at most the
// newest N committed groups are still in flight. Here a copy is done only at the wait that
// covers it, the latest a GPU may do it, so a kernel that reads a buffer before waiting
// for its copies (or before the barrier after) reads stale values here as it may there.
void emulator_copy_async(void* shared, const void* global, unsigned bytes, bool inside);
void emulator_commit_copies();
void emulator_wait_copies(unsigned newest_in_flight);
#define cp_async_4(shared, global, inside) emulator_copy_async(shared, global, 4, inside)
#define cp_async_16(shared, global, inside) emulator_copy_async(shared, global, 16, inside)
#define cp_async_commit() emulator_commit_copies()
#define cp_async_wait(newest_in_flight) emulator_wait_copies(newest_in_flight)
