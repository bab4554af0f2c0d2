// The emulator's scheduler: runs a kernel's blocks on worker threads and each block's
// threads as fibers (see cuda_emulator.h). Launched from Python through ctypes with a
// "thunk" per kernel that unpacks an argv array, as cupy passes kernel arguments.
#include "cuda_emulator.h"

#include <ucontext.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace {

constexpr size_t kStackBytes = 64 * 1024;

enum class State { Ready, AtBarrier, Done };

struct Fiber {
  ucontext_t context;
  std::vector<char> stack;
  State state = State::Ready;
  int barrier_line = 0;
  dim3 index;
};

struct Block {
  ucontext_t scheduler;
  std::vector<Fiber> fibers;
  Fiber* running = nullptr;
  void (*thunk)(void**) = nullptr;
  void** args = nullptr;
};

thread_local Block* current_block = nullptr;
thread_local std::string* current_error = nullptr;

void fiber_main() {
  Block* block = current_block;
  block->thunk(block->args);
  block->running->state = State::Done;
  swapcontext(&block->running->context, &block->scheduler);
}

// Runs one block to completion; returns an error message or an empty string.
std::string run_block(Block& block, dim3 block_index, dim3 block_dim) {
  blockIdx = block_index;
  current_block = &block;
  const unsigned count = block_dim.x * block_dim.y * block_dim.z;
  for (unsigned t = 0; t < count; ++t) {
    Fiber& fiber = block.fibers[t];
    fiber.state = State::Ready;
    fiber.index = dim3(t % block_dim.x, (t / block_dim.x) % block_dim.y, t / (block_dim.x * block_dim.y));
    getcontext(&fiber.context);
    fiber.context.uc_stack.ss_sp = fiber.stack.data();
    fiber.context.uc_stack.ss_size = fiber.stack.size();
    fiber.context.uc_link = nullptr;
    makecontext(&fiber.context, fiber_main, 0);
  }
  for (;;) {
    unsigned live = 0;
    for (unsigned t = 0; t < count; ++t) {
      Fiber& fiber = block.fibers[t];
      if (fiber.state == State::Ready) {
        block.running = &fiber;
        threadIdx = fiber.index;
        swapcontext(&block.scheduler, &fiber.context);
      }
      if (fiber.state != State::Done) ++live;
    }
    if (live == 0) return {};
    // Every live thread waits at a barrier: they must all wait at the same one.
    int line = -1;
    for (unsigned t = 0; t < count; ++t) {
      Fiber& fiber = block.fibers[t];
      if (fiber.state != State::AtBarrier) continue;
      if (line >= 0 && fiber.barrier_line != line)
        return "divergent __syncthreads: threads of one block wait at lines " + std::to_string(line) +
               " and " + std::to_string(fiber.barrier_line);
      line = fiber.barrier_line;
    }
    for (unsigned t = 0; t < count; ++t)
      if (block.fibers[t].state == State::AtBarrier) block.fibers[t].state = State::Ready;
  }
}

}  // namespace

void emulator_barrier(int line) {
  Block* block = current_block;
  Fiber* fiber = block->running;
  fiber->state = State::AtBarrier;
  fiber->barrier_line = line;
  swapcontext(&fiber->context, &block->scheduler);
}

// Launches `thunk(args)` on a grid of blocks. Returns 0, or 1 with `error` filled.
extern "C" int emulator_launch(void (*thunk)(void**), void** args, unsigned gx, unsigned gy, unsigned gz,
                               unsigned bx, unsigned by, unsigned bz, int workers, char* error,
                               int error_size) {
  const dim3 grid(gx, gy, gz), block_dim(bx, by, bz);
  const unsigned long blocks = static_cast<unsigned long>(gx) * gy * gz;
  const unsigned threads = bx * by * bz;
  if (threads == 0 || threads > 1024 || blocks == 0) {
    snprintf(error, error_size, "bad launch shape: grid (%u, %u, %u), block (%u, %u, %u)", gx, gy, gz, bx, by, bz);
    return 1;
  }
  std::atomic<unsigned long> next{0};
  std::atomic<bool> failed{false};
  std::string message;
  auto worker = [&]() {
    gridDim = grid;
    blockDim = block_dim;
    Block block;
    block.thunk = thunk;
    block.args = args;
    block.fibers.resize(threads);
    for (Fiber& fiber : block.fibers) fiber.stack.resize(kStackBytes);
    for (unsigned long b = next++; b < blocks && !failed; b = next++) {
      const dim3 index(b % gx, (b / gx) % gy, b / (static_cast<unsigned long>(gx) * gy));
      std::string problem = run_block(block, index, block_dim);
      if (!problem.empty() && !failed.exchange(true)) message = problem;
    }
  };
  const int count = static_cast<int>(std::max<unsigned long>(1, std::min<unsigned long>(workers, blocks)));
  std::vector<std::thread> pool;
  for (int w = 1; w < count; ++w) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();
  if (failed) {
    snprintf(error, error_size, "%s", message.c_str());
    return 1;
  }
  return 0;
}
