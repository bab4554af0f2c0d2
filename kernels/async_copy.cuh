// sm_80's asynchronous copies from global into shared memory (cp.async), for the kernel
// files that stage through them (gemm.cu's v12 and v13, conv2d.cu's implicit GEMM "async"):
//   cp_async_4/16(shared, global, inside): copy 4 or 16 bytes, or, where `inside` is false,
//     write zeros and read nothing (cp.async's source size 0; `global` must still be a
//     readable address);
//   cp_async_commit(): close this thread's group of copies issued since the last;
//   cp_async_wait(N): wait until at most the newest N committed groups are in flight (the
//     copies of the others have landed; a barrier after makes them everyone's).
// A 16-byte copy wants both addresses 16-byte aligned. On the CPU the emulator defines the
// same four (kernels/emulator/cuda_emulator.h): these are for CUDA's compilers only, the
// schedule below (async_slices) for both.
// Kernel files include it by name: nvcc and g++ find it beside them, and kernels/launch.py
// puts its text in place of the #include for NVRTC (kernel_source), so that CuPy's cache,
// keyed on the text it compiles, sees a change to it.
#pragma once
#ifdef __CUDACC__
__device__ __forceinline__ void cp_async_4(float* shared, const float* global, bool inside) {
  const unsigned to = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(to), "l"(global), "r"(inside ? 4 : 0));
}
__device__ __forceinline__ void cp_async_16(float* shared, const float* global, bool inside) {
  const unsigned to = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(to), "l"(global), "r"(inside ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
#define cp_async_wait(newest_in_flight) asm volatile("cp.async.wait_group %0;\n" ::"n"(newest_in_flight))
#endif

// The schedule of a reduction in `slices` slices through STAGES shared buffers, every
// thread of the block in it: copy(s) issues this thread's copies of slice s into buffer
// s % STAGES, multiply(b) does the products of the slice in buffer b. Slice s is each
// thread's copy group s (a group is committed at every step, empty or not, so that the count
// holds); at step s a thread waits for its group s, the barrier then for everyone's, and
// after it every thread is done with slice s - 1's buffer, which slice s + STAGES - 1's
// copies reuse. (An epilogue that reuses the buffers must wait for the products first.)
template <int STAGES, class Copy, class Multiply>
__device__ __forceinline__ void async_slices(int slices, Copy copy, Multiply multiply) {
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < slices) copy(s);
    cp_async_commit();
  }
  for (int s = 0; s < slices; ++s) {
    cp_async_wait(STAGES - 2);
    __syncthreads();
    if (s + STAGES - 1 < slices) copy(s + STAGES - 1);
    cp_async_commit();
    multiply(s % STAGES);
  }
}
