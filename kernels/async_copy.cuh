// sm_80's asynchronous copies from global into shared memory (cp.async), for the kernel
// files that stage through them (gemm.cu's v12, conv2d.cu's implicit GEMM "async"):
//   cp_async_4/16(shared, global, inside): copy 4 or 16 bytes, or, where `inside` is false,
//     write zeros and read nothing (cp.async's source size 0; `global` must still be a
//     readable address);
//   cp_async_commit(): close this thread's group of copies issued since the last;
//   cp_async_wait(N): wait until at most the newest N committed groups are in flight (the
//     copies of the others have landed; a barrier after makes them everyone's).
// A 16-byte copy wants both addresses 16-byte aligned. On the CPU the emulator defines the
// same four (kernels/emulator/cuda_emulator.h); this file is for CUDA's compilers only.
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
