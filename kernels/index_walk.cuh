// A grid-stride loop's index kept as its digits, for the element-wise kernels that need
// more of an element than its flat index: NCHW's (image, channel, position) for a
// per-channel map, (plane, row, column) for a padding.
//
// The first versions of those kernels divide the flat index at every element ((e / plane)
// % C): a 64-bit division is a software routine of dozens of instructions, and two of them
// an element are more than a copy's bandwidth leaves (an H200 at 3.5 TB/s moves about 440 M
// elements of 8 bytes a millisecond, while its SMs issue about 33 G instructions: some 75
// an element for everything). IndexWalk divides twice for the thread's first index and
// twice for the grid's step, then carries: per step an add and a compare a digit.
#pragma once

// index = (high * mid_size + mid) * low_size + low, with 0 <= low < low_size and
// 0 <= mid < mid_size; `advance` adds the step it was made with. MIDDLE false: no middle
// digit (mid_size 1), the low digit's carry straight into the high one.
template <bool MIDDLE = true>
struct IndexWalk {
  long long index, high;
  int mid, low;
  long long step, step_high;
  int step_mid, step_low, mid_size, low_size;

  __device__ __forceinline__ IndexWalk(long long first, long long step_, int mid_size_, int low_size_)
      : index(first), step(step_), mid_size(mid_size_), low_size(low_size_) {
    split(first, high, mid, low);
    split(step_, step_high, step_mid, step_low);
  }

  __device__ __forceinline__ void split(long long value, long long& top, int& middle, int& bottom) const {
    const long long rest = value / low_size;
    bottom = (int)(value - rest * low_size);
    top = rest / mid_size;
    middle = (int)(rest - top * mid_size);
  }

  __device__ __forceinline__ void advance() {
    index += step;
    low += step_low;  // both below low_size: one subtraction carries
    const int low_carry = low >= low_size;
    if (low_carry) low -= low_size;
    if constexpr (MIDDLE) {
      mid += step_mid + low_carry;  // at most 2 mid_size - 1
      const int mid_carry = mid >= mid_size;
      if (mid_carry) mid -= mid_size;
      high += step_high + mid_carry;
    } else {
      high += step_high + low_carry;
    }
  }
};

// The grid-stride walk of thread (blockIdx.x, threadIdx.x) over a 1-D grid.
template <bool MIDDLE = true>
__device__ __forceinline__ IndexWalk<MIDDLE> grid_walk(int mid_size, int low_size) {
  return IndexWalk<MIDDLE>(blockIdx.x * (long long)blockDim.x + threadIdx.x, (long long)gridDim.x * blockDim.x,
                           mid_size, low_size);
}
