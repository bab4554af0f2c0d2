// The emulator's scheduler: runs a kernel's blocks on worker threads and each block's
// threads as fibers (see cuda_emulator.h). Launched from Python through ctypes with a
// "thunk" per kernel that unpacks an argv array, as cupy passes kernel arguments.
#include "cuda_emulator.h"

#include <ucontext.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <utility>
#include <string>
#include <thread>
#include <vector>
#ifdef EMULATOR_TRACE_MEMORY
#include <dlfcn.h>
#include <link.h>

#include <map>
#include <mutex>
#include <tuple>
#include <unordered_map>
#endif

thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

#if defined(__x86_64__)
// A fiber switch of our own on x86-64: glibc's swapcontext saves and restores the signal
// mask with a system call at every switch (and getcontext at every start), and a tiled
// kernel switches twice a thread a barrier: those system calls were most of its emulated
// time. A switch saves what the System V ABI has a callee keep (rbx, rbp, r12-r15, the
// SSE and x87 control words) on the stack it leaves, stores that stack pointer, loads the
// other's, restores its registers and returns into it.
extern "C" __attribute__((visibility("hidden"))) void deepinside_emulator_switch(void** save, void* load);
asm(R"(
  .text
  .globl deepinside_emulator_switch
  .hidden deepinside_emulator_switch
  .type deepinside_emulator_switch, @function
deepinside_emulator_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size deepinside_emulator_switch, .-deepinside_emulator_switch
)");
#endif

namespace {

constexpr size_t kStackBytes = 64 * 1024;

enum class State { Ready, AtBarrier, AtWarp, Done };

#ifdef EMULATOR_TRACE_MEMORY
// One memory access of a thread: between which of its barriers, from which instruction (the
// return address of the instrumentation's call), where, how wide, and whether to __shared__
// or global memory.
struct Access {
  unsigned interval;
  uintptr_t site, address;
  unsigned bytes;
  bool store, global;
};
#endif

// An asynchronous copy issued and not yet done (cuda_emulator.h: cp_async_*).
struct PendingCopy {
  void* shared;
  const void* global;  // nullptr: zeros
  unsigned bytes, group;
};

#if defined(__x86_64__)
// Fibers' contexts: our own switch on x86-64 (deepinside_emulator_switch, above), glibc's
// ucontext elsewhere.
struct Context {
  void* stack_pointer = nullptr;
};

// `context` made to start `entry` on `stack` at its first switch: the stack laid out as a
// switch away from it would have left it, its return address `entry`'s first instruction,
// entered with the stack aligned as after a call, the control words this thread's.
void start_context(Context& context, char* stack, size_t bytes, void (*entry)()) {
  auto* top = reinterpret_cast<uint64_t*>(reinterpret_cast<uintptr_t>(stack + bytes) & ~uintptr_t{15});
  top[-1] = 0;  // `entry`'s own return address: it never returns
  top[-2] = reinterpret_cast<uint64_t>(entry);
  for (int saved = 3; saved <= 8; ++saved) top[-saved] = 0;  // rbp, rbx, r12-r15
  uint32_t sse;
  uint16_t x87;
  asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(sse), "=m"(x87));
  top[-9] = sse | static_cast<uint64_t>(x87) << 32;
  context.stack_pointer = &top[-9];
}

void switch_context(Context& from, Context& to) { deepinside_emulator_switch(&from.stack_pointer, to.stack_pointer); }
#else
struct Context {
  ucontext_t ucontext;
};

void start_context(Context& context, char* stack, size_t bytes, void (*entry)()) {
  getcontext(&context.ucontext);
  context.ucontext.uc_stack.ss_sp = stack;
  context.ucontext.uc_stack.ss_size = bytes;
  context.ucontext.uc_link = nullptr;
  makecontext(&context.ucontext, entry, 0);
}

void switch_context(Context& from, Context& to) { swapcontext(&from.ucontext, &to.ucontext); }
#endif

struct Fiber {
  Context context;
  std::unique_ptr<char[]> stack;  // kStackBytes, from the spare stacks (take_stacks)
  State state = State::Ready;
  int barrier_line = 0;
  dim3 index;
  std::vector<PendingCopy> copies;
  unsigned committed = 0;  // groups of copies committed so far: the open group's number
  // At a warp-level primitive (emulator_warp): its operands, then its result.
  unsigned warp_mask = 0;
  WarpOp warp_op = WarpOp::Sync;
  int warp_lane = 0, warp_width = 0;
  unsigned long long warp_value = 0;
#ifdef EMULATOR_TRACE_MEMORY
  unsigned barriers = 0;
  std::vector<Access> accesses;
#endif
};

struct Block {
  Context scheduler;
  std::vector<Fiber> fibers;
  Fiber* running = nullptr;
  void (*thunk)(void**) = nullptr;
  void** args = nullptr;
  bool traced = false;  // recording its threads' shared- and global-memory accesses
};

thread_local Block* current_block = nullptr;
thread_local std::string fault;  // the running block's first bad access (misaligned; traced: out of bounds), described

// "thread t of block b" of the running thread, each index with as many of x, y, z as its
// launch's dimensions use: "thread 3 of block (0, 2)".
std::string running_thread() {
  auto index = [](dim3 at, dim3 size) {
    if (size.y == 1 && size.z == 1) return std::to_string(at.x);
    return "(" + std::to_string(at.x) + ", " + std::to_string(at.y) +
           (size.z == 1 ? ")" : ", " + std::to_string(at.z) + ")");
  };
  return "thread " + index(threadIdx, blockDim) + " of block " + index(blockIdx, gridDim);
}

// Ends the running thread of the block: back to the scheduler, never resumed.
void end_thread() {
  Block* block = current_block;
  block->running->state = State::Done;
  switch_context(block->running->context, block->scheduler);
}

void fiber_main() {
  current_block->thunk(current_block->args);
  end_thread();
}

#ifdef EMULATOR_TRACE_MEMORY
// Memory accounting, in the traced build only (kernels/banks.py). The kernel files are
// compiled with GCC's kernel-address-sanitizer instrumentation in its "calls" form: before
// every memory access the code calls __asan_{load,store}<bytes>_noabort(address), defined
// below. They record the accesses that land in __shared__ memory, which here is this
// library's thread-local block (the emulator's __shared__ arrays are thread_local statics),
// less the built-ins (threadIdx ...), and in global memory: anywhere else but the running
// thread's stack (its locals: registers or local memory on a GPU) and this library's own
// image (constants GCC put in .rodata). After a traced block, each warp's accesses are
// matched lane by lane, the n-th access from one instruction between two barriers of every
// lane being one request of the warp, and each request costed:
//   shared: as the GPU's 32 banks of 4-byte words serve it: a wavefront reads or writes at
//     most one word a bank (lanes asking for the same word share it), so a request takes as
//     many wavefronts as the most words it asks of one bank; the fewest it could take is
//     its distinct words / 32, rounded up;
//   global: in the 32-byte sectors that L1 and L2 move: the distinct sectors its bytes
//     touch; the fewest it could take is its distinct bytes / 32, rounded up.
struct SiteCost {
  unsigned long long requests = 0, transactions = 0, ideal = 0, bytes = 0;
};
using SiteKey = std::tuple<uintptr_t, bool, bool>;  // (instruction, store, global)
std::mutex cost_mutex;
std::map<SiteKey, SiteCost> site_costs;
unsigned long traced_block_limit = 0;  // blocks of a launch traced: linear index below this
thread_local uintptr_t shared_begin = 0, shared_end = 0;  // this thread's thread-local block
uintptr_t image_begin = 0, image_end = 0;  // this library's loaded segments

int find_thread_local_block(dl_phdr_info* info, size_t, void*) {
  const uintptr_t self = reinterpret_cast<uintptr_t>(&find_thread_local_block);
  bool ours = false;
  uintptr_t lowest = UINTPTR_MAX, highest = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& header = info->dlpi_phdr[i];
    const uintptr_t begin = info->dlpi_addr + header.p_vaddr;
    if (header.p_type != PT_LOAD) continue;
    if (self >= begin && self < begin + header.p_memsz) ours = true;
    lowest = std::min(lowest, begin), highest = std::max(highest, begin + header.p_memsz);
  }
  if (!ours) return 0;
  image_begin = lowest, image_end = highest;
  for (int i = 0; i < info->dlpi_phnum; ++i)
    if (info->dlpi_phdr[i].p_type == PT_TLS && info->dlpi_tls_data) {
      shared_begin = reinterpret_cast<uintptr_t>(info->dlpi_tls_data);
      shared_end = shared_begin + info->dlpi_phdr[i].p_memsz;
    }
  return 1;
}

bool is_builtin(uintptr_t address) {
  for (const dim3* builtin : {&threadIdx, &blockIdx, &blockDim, &gridDim}) {
    const uintptr_t begin = reinterpret_cast<uintptr_t>(builtin);
    if (address >= begin && address < begin + sizeof(dim3)) return true;
  }
  return false;
}

// The arrays of the launches that follow (emulator_bounds): [begin, end) and a name each.
struct Array {
  uintptr_t begin, end;
  std::string name;
};
std::vector<Array> launch_arrays;
bool bounds_checked = false;

// Ends the running thread at a global access outside every array of its launch, before the
// access (which may read or write another array, or fault), the launch failing with where
// it landed: past the end of, or before, the nearest array. On a GPU it reads garbage or
// writes over a neighbour, or faults, and compute-sanitizer's memcheck names it.
void out_of_bounds(uintptr_t address, unsigned bytes, bool store, void* site) {
  if (fault.empty()) {
    const Array* nearest = nullptr;
    uintptr_t distance = UINTPTR_MAX;  // bytes the access ends past the array's end, or starts before it
    for (const Array& array : launch_arrays) {
      const uintptr_t gap = address >= array.begin ? address + bytes - array.end : array.begin - address;
      if (gap < distance) distance = gap, nearest = &array;
    }
    Dl_info library;
    dladdr(reinterpret_cast<void*>(&out_of_bounds), &library);
    const unsigned long offset = reinterpret_cast<uintptr_t>(site) - reinterpret_cast<uintptr_t>(library.dli_fbase);
    char text[300];
    if (nearest)
      snprintf(text, sizeof text, "out-of-bounds address: a %u-byte %s %s %lu bytes %s %s (%s) [instruction %#lx]",
               bytes, store ? "store" : "load", address >= nearest->begin ? "ending" : "starting",
               static_cast<unsigned long>(distance), address >= nearest->begin ? "past the end of" : "before",
               nearest->name.c_str(), running_thread().c_str(), offset);
    else
      snprintf(text, sizeof text, "out-of-bounds address: a %u-byte %s at %#lx, and the launch has no array (%s) "
               "[instruction %#lx]", bytes, store ? "store" : "load", static_cast<unsigned long>(address),
               running_thread().c_str(), offset);
    fault = text;
  }
  end_thread();
}

bool inside_an_array(uintptr_t address, unsigned bytes) {
  for (const Array& array : launch_arrays)
    if (address >= array.begin && address + bytes <= array.end) return true;
  return false;
}

void record(uintptr_t address, unsigned bytes, bool store, void* site) {
  Block* block = current_block;
  if (!block) return;
  Fiber* fiber = block->running;
  const bool shared = address >= shared_begin && address < shared_end;
  const uintptr_t stack = reinterpret_cast<uintptr_t>(fiber->stack.get());
  if (shared ? is_builtin(address)
             : (address >= stack && address < stack + kStackBytes) ||
                   (address >= image_begin && address < image_end))
    return;
  if (!shared && bounds_checked && !inside_an_array(address, bytes)) out_of_bounds(address, bytes, store, site);
  if (!block->traced) return;
  fiber->accesses.push_back({static_cast<unsigned>(fiber->barriers), reinterpret_cast<uintptr_t>(site), address,
                             bytes, store, !shared});
}

// Costs the recorded accesses of a block of `threads` threads into site_costs.
void cost_block(Block& block, unsigned threads) {
  struct Lane {  // one lane's part of a warp's request
    unsigned interval;
    uintptr_t site;
    bool store;
    bool global;
    unsigned occurrence;  // the lane's n-th access from this site between these barriers
    uintptr_t address;
    unsigned bytes;
    auto key() const { return std::tie(interval, site, store, global, occurrence); }
  };
  std::map<SiteKey, SiteCost> costs;
  for (unsigned first = 0; first < threads; first += 32) {
    std::vector<Lane> warp;
    for (unsigned t = first; t < std::min(threads, first + 32); ++t) {
      std::unordered_map<uintptr_t, unsigned> seen;  // accesses so far by (interval, site, store), packed
      for (const Access& a : block.fibers[t].accesses) {  // (user-space code addresses take 47 bits)
        const uintptr_t tag = a.site * 4 + a.global * 2 + a.store + (static_cast<uintptr_t>(a.interval) << 49);
        warp.push_back({a.interval, a.site, a.store, a.global, seen[tag]++, a.address, a.bytes});
      }
      block.fibers[t].accesses.clear();
    }
    std::sort(warp.begin(), warp.end(), [](const Lane& x, const Lane& y) { return x.key() < y.key(); });
    for (size_t begin = 0, end; begin < warp.size(); begin = end) {
      std::vector<uintptr_t> words;
      unsigned long long bytes = 0;
      for (end = begin; end < warp.size() && warp[end].key() == warp[begin].key(); ++end) {
        for (uintptr_t word = warp[end].address / 4; word <= (warp[end].address + warp[end].bytes - 1) / 4; ++word)
          words.push_back(word);
        bytes += warp[end].bytes;
      }
      std::sort(words.begin(), words.end());
      words.erase(std::unique(words.begin(), words.end()), words.end());
      SiteCost& cost = costs[{warp[begin].site, warp[begin].store, warp[begin].global}];
      cost.requests += 1;
      cost.bytes += bytes;
      if (warp[begin].global) {  // 8 words a sector
        std::vector<uintptr_t> sectors;
        for (uintptr_t word : words) sectors.push_back(word / 8);
        cost.transactions += std::unique(sectors.begin(), sectors.end()) - sectors.begin();  // words sorted
        cost.ideal += (words.size() + 7) / 8;
      } else {  // a word a bank a wavefront
        unsigned per_bank[32] = {};
        for (uintptr_t word : words) ++per_bank[word % 32];
        cost.transactions += *std::max_element(per_bank, per_bank + 32);
        cost.ideal += (words.size() + 31) / 32;
      }
    }
  }
  std::lock_guard<std::mutex> lock(cost_mutex);
  for (const auto& [site, cost] : costs) {
    SiteCost& total = site_costs[site];
    total.requests += cost.requests, total.transactions += cost.transactions, total.ideal += cost.ideal;
    total.bytes += cost.bytes;
  }
}
#endif

// Runs one block to completion; returns an error message or an empty string.
std::string run_block(Block& block, dim3 block_index, dim3 block_dim) {
  blockIdx = block_index;
  fault.clear();  // a block that ended at a divergent barrier may have left one
  current_block = &block;
  const unsigned count = block_dim.x * block_dim.y * block_dim.z;
  for (unsigned t = 0; t < count; ++t) {
    Fiber& fiber = block.fibers[t];
    fiber.state = State::Ready;
    fiber.copies.clear();  // a thread's copies left in flight at its exit are dropped, as its block is
    fiber.committed = 0;
    fiber.index = dim3(t % block_dim.x, (t / block_dim.x) % block_dim.y, t / (block_dim.x * block_dim.y));
    start_context(fiber.context, fiber.stack.get(), kStackBytes, fiber_main);
  }
  for (;;) {
    for (unsigned t = 0; t < count; ++t) {
      Fiber& fiber = block.fibers[t];
      if (fiber.state == State::Ready) {
        block.running = &fiber;
        threadIdx = fiber.index;
        switch_context(block.scheduler, fiber.context);
      }
    }
    unsigned live = 0, ready = 0, at_warp = 0;
    for (unsigned t = 0; t < count; ++t) {
      const State state = block.fibers[t].state;
      live += state != State::Done, ready += state == State::Ready, at_warp += state == State::AtWarp;
    }
    if (live == 0) {
#ifdef EMULATOR_TRACE_MEMORY
      if (block.traced) cost_block(block, count);
#endif
      return std::exchange(fault, {});
    }
    if (ready) continue;  // lanes a later lane of their warp released from a warp-level primitive
    if (at_warp)
      return fault.empty() ? "a warp-level primitive waits for lanes that returned or wait at a __syncthreads"
                           : std::exchange(fault, {});
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
#ifdef EMULATOR_TRACE_MEMORY
  ++fiber->barriers;
#endif
  switch_context(fiber->context, block->scheduler);
}

namespace {
const char* const kWarpOpNames[] = {"__syncwarp", "__shfl_sync", "__shfl_up_sync", "__shfl_down_sync",
                                    "__shfl_xor_sync", "__ballot_sync", "__any_sync", "__all_sync"};

// Fails the launch from a warp-level primitive of the running thread: the thread ends there.
void warp_fault(WarpOp op, const std::string& problem) {
  if (fault.empty())
    fault = std::string(kWarpOpNames[static_cast<int>(op)]) + ": " + problem + " (" + running_thread() + ")";
  end_thread();
}

// The lane whose value lane `lane` of a shuffle reads, as CUDA defines it within segments
// of `width` lanes: its own where an up or down shift leaves the segment, or a butterfly
// reaches a later one.
unsigned shuffle_source(WarpOp op, unsigned lane, int argument, int width) {
  const unsigned base = lane & ~static_cast<unsigned>(width - 1), offset = lane - base;
  const unsigned shift = static_cast<unsigned>(argument);
  switch (op) {
    case WarpOp::Index: return base + (shift & static_cast<unsigned>(width - 1));
    case WarpOp::Up: return offset >= shift ? lane - shift : lane;
    case WarpOp::Down: return offset + shift < static_cast<unsigned>(width) ? lane + shift : lane;
    default: {  // WarpOp::Xor
      const unsigned partner = lane ^ shift;
      return partner < base + static_cast<unsigned>(width) ? partner : lane;
    }
  }
}

std::string hex(unsigned mask) {
  char text[16];
  snprintf(text, sizeof text, "%#010x", mask);
  return text;
}
}  // namespace

unsigned long long emulator_warp(unsigned mask, WarpOp op, unsigned long long value, int lane_argument, int width) {
  Block* block = current_block;
  Fiber* fiber = block->running;
  const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
  const unsigned t = static_cast<unsigned>(fiber - block->fibers.data()), lane = t % 32, first = t - lane;
  const unsigned lanes = std::min(32u, threads - first);  // of this warp: a block's last may be partial
  const unsigned existing = lanes == 32 ? ~0u : (1u << lanes) - 1;
  if (!(mask >> lane & 1))
    warp_fault(op, "its mask " + hex(mask) + " leaves out the caller's lane " + std::to_string(lane));
  if (mask & ~existing)
    warp_fault(op, "its mask " + hex(mask) + " names lanes the warp does not have (it has " + std::to_string(lanes) +
                       ")");
  const bool shuffle = op == WarpOp::Index || op == WarpOp::Up || op == WarpOp::Down || op == WarpOp::Xor;
  if (shuffle && (width < 1 || width > 32 || (width & (width - 1))))
    warp_fault(op, "width " + std::to_string(width) + " is not a power of two from 1 to 32");
  fiber->warp_mask = mask, fiber->warp_op = op, fiber->warp_lane = lane_argument, fiber->warp_width = width;
  fiber->warp_value = value;
  fiber->state = State::AtWarp;
  Fiber* warp = block->fibers.data() + first;
  for (unsigned l = 0; l < 32; ++l)
    if (mask >> l & 1 && warp[l].state != State::AtWarp) {  // not the last to arrive: wait for the last
      switch_context(fiber->context, block->scheduler);
      return fiber->warp_value;
    }
  unsigned long long values[32] = {}, results[32] = {};
  unsigned ballot = 0;
  for (unsigned l = 0; l < 32; ++l) {
    if (!(mask >> l & 1)) continue;
    if (warp[l].warp_mask != mask || warp[l].warp_op != op)
      warp_fault(op, "lane " + std::to_string(l) + " of the warp meets it at " +
                         kWarpOpNames[static_cast<int>(warp[l].warp_op)] + " with the mask " + hex(warp[l].warp_mask) +
                         ", this lane with " + hex(mask));
    values[l] = warp[l].warp_value;
    ballot |= static_cast<unsigned>(values[l] != 0) << l;
  }
  for (unsigned l = 0; l < 32; ++l) {
    if (!(mask >> l & 1)) continue;
    if (shuffle) {
      const unsigned source = shuffle_source(op, l, warp[l].warp_lane, warp[l].warp_width);
      if (!(mask >> source & 1))
        warp_fault(op, "lane " + std::to_string(l) + " reads lane " + std::to_string(source) + ", outside the mask " +
                           hex(mask));
      results[l] = values[source];
    } else {
      results[l] = op == WarpOp::Ballot ? ballot
                   : op == WarpOp::Any  ? ballot != 0
                   : op == WarpOp::All  ? ballot == mask
                                        : 0;  // __syncwarp
    }
  }
  for (unsigned l = 0; l < 32; ++l)
    if (mask >> l & 1) warp[l].warp_value = results[l], warp[l].state = State::Ready;
  return fiber->warp_value;
}

// The kernel files are compiled with UBSan's alignment check (kernels/launch.py:
// ALIGNMENT_FLAGS), whose calls land here, the sanitizer's own runtime not linked: a load or
// store through a pointer not aligned to its type (a float4 at an address that is not a
// multiple of 16) is an error of the block's launch, as it is on a GPU. The thread ends
// there (end_thread), before the access: GCC may make it an aligned SSE move,
// which would take the whole process down on a misaligned address (a store of a float4).
struct SourceLocation {
  const char* file;
  unsigned line, column;
};
struct TypeMismatchData {
  SourceLocation location;
  const void* type;
  unsigned char log_alignment, kind;
};

extern "C" void __ubsan_handle_type_mismatch_v1(TypeMismatchData* data, uintptr_t pointer) {
  const uintptr_t alignment = uintptr_t{1} << data->log_alignment;
  if (pointer % alignment == 0) return;
  if (fault.empty()) {
    const char* file = strrchr(data->location.file, '/');
    char text[200];
    snprintf(text, sizeof text, "misaligned address: a %lu-byte access at %#lx (%s:%u, %s)",
             static_cast<unsigned long>(alignment), static_cast<unsigned long>(pointer),
             file ? file + 1 : data->location.file, data->location.line, running_thread().c_str());
    fault = text;
  }
  end_thread();
}

void emulator_copy_async(void* shared, const void* global, unsigned bytes, bool inside) {
  Fiber* fiber = current_block->running;
  const uintptr_t to = reinterpret_cast<uintptr_t>(shared), from = reinterpret_cast<uintptr_t>(global);
  if ((to % bytes || (inside && from % bytes)) && fault.empty()) {  // cp.async wants both aligned to its size
    char text[200];
    snprintf(text, sizeof text, "misaligned address: a %u-byte asynchronous copy from %#lx to %#lx (%s)", bytes,
             static_cast<unsigned long>(from), static_cast<unsigned long>(to), running_thread().c_str());
    fault = text;
    return;
  }
#ifdef EMULATOR_TRACE_MEMORY  // counted where issued, as the kernel's own accesses are
  if (inside) record(from, bytes, false, __builtin_return_address(0));
  record(to, bytes, true, __builtin_return_address(0));
#endif
  fiber->copies.push_back({shared, inside ? global : nullptr, bytes, fiber->committed});
}

void emulator_commit_copies() { ++current_block->running->committed; }

void emulator_wait_copies(unsigned newest_in_flight) {
  Fiber* fiber = current_block->running;
  // Copies are issued in group order, so the ones this wait covers are a prefix of the list
  // (the rest uncommitted, or among the newest groups): done, then dropped in place.
  auto copy = fiber->copies.begin();
  for (; copy != fiber->copies.end() && copy->group + newest_in_flight < fiber->committed; ++copy) {
    if (copy->global) std::memcpy(copy->shared, copy->global, copy->bytes);
    else std::memset(copy->shared, 0, copy->bytes);
  }
  fiber->copies.erase(fiber->copies.begin(), copy);
}

// Fiber stacks outlive a launch. Allocated (and zeroed) afresh by every worker of every
// launch, a block's 256 x 64 KiB was most of a small launch's time, its pages faulted in
// again each time; kept, and never zeroed, a stack has only the pages its thread's calls
// reached.
namespace {
std::mutex spare_stacks_mutex;
std::vector<std::unique_ptr<char[]>> spare_stacks;

void take_stacks(std::vector<Fiber>& fibers) {
  std::lock_guard<std::mutex> lock(spare_stacks_mutex);
  for (Fiber& fiber : fibers) {
    if (spare_stacks.empty()) {
      fiber.stack.reset(new char[kStackBytes]);
    } else {
      fiber.stack = std::move(spare_stacks.back());
      spare_stacks.pop_back();
    }
  }
}

void return_stacks(std::vector<Fiber>& fibers) {
  std::lock_guard<std::mutex> lock(spare_stacks_mutex);
  for (Fiber& fiber : fibers) spare_stacks.push_back(std::move(fiber.stack));
}
}  // namespace

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
    take_stacks(block.fibers);
#ifdef EMULATOR_TRACE_MEMORY
    dl_iterate_phdr(find_thread_local_block, nullptr);  // after gridDim's write: the block exists
#endif
    for (unsigned long b = next++; b < blocks && !failed; b = next++) {
      const dim3 index(b % gx, (b / gx) % gy, b / (static_cast<unsigned long>(gx) * gy));
#ifdef EMULATOR_TRACE_MEMORY
      block.traced = b < traced_block_limit;
#endif
      std::string problem = run_block(block, index, block_dim);
      if (!problem.empty() && !failed.exchange(true)) message = problem;
    }
    return_stacks(block.fibers);
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

#ifdef EMULATOR_TRACE_MEMORY
#define EMULATOR_ACCESS_HOOK(kind, bytes, store)                               \
  extern "C" void __asan_##kind##bytes##_noabort(uintptr_t address) {          \
    record(address, bytes, store, __builtin_return_address(0));                \
  }
EMULATOR_ACCESS_HOOK(load, 1, false)
EMULATOR_ACCESS_HOOK(load, 2, false)
EMULATOR_ACCESS_HOOK(load, 4, false)
EMULATOR_ACCESS_HOOK(load, 8, false)
EMULATOR_ACCESS_HOOK(load, 16, false)
EMULATOR_ACCESS_HOOK(store, 1, true)
EMULATOR_ACCESS_HOOK(store, 2, true)
EMULATOR_ACCESS_HOOK(store, 4, true)
EMULATOR_ACCESS_HOOK(store, 8, true)
EMULATOR_ACCESS_HOOK(store, 16, true)
extern "C" void __asan_loadN_noabort(uintptr_t address, size_t bytes) {
  record(address, bytes, false, __builtin_return_address(0));
}
extern "C" void __asan_storeN_noabort(uintptr_t address, size_t bytes) {
  record(address, bytes, true, __builtin_return_address(0));
}

// Checks the global accesses of the launches that follow against `count` arrays, the i-th
// [ranges[2 i], ranges[2 i + 1]) and named names[i]; a count below 0 stops the checks.
extern "C" void emulator_bounds(const unsigned long long* ranges, const char* const* names, int count) {
  bounds_checked = count >= 0;
  launch_arrays.clear();
  for (int i = 0; i < count; ++i) launch_arrays.push_back({ranges[2 * i], ranges[2 * i + 1], names[i]});
}

// Traces the blocks of linear index below `blocks` of the launches that follow (0: none),
// with the costs so far cleared.
extern "C" void emulator_trace(unsigned long blocks) {
  std::lock_guard<std::mutex> lock(cost_mutex);
  site_costs.clear();
  traced_block_limit = blocks;
}

// The costs since emulator_trace, by instruction: its offset in this library (for
// addr2line), whether it stores, whether to global memory, then requests, transactions
// (shared: wavefronts; global: sectors), the fewest transactions, bytes. Returns how many
// rows there are; writes at most `capacity`.
extern "C" int emulator_memory_costs(unsigned long long* rows, int capacity) {
  std::lock_guard<std::mutex> lock(cost_mutex);
  Dl_info library;
  dladdr(reinterpret_cast<void*>(&emulator_trace), &library);
  const uintptr_t base = reinterpret_cast<uintptr_t>(library.dli_fbase);
  int count = 0;
  for (const auto& [site, cost] : site_costs) {
    if (count < capacity) {
      unsigned long long* row = rows + 7 * count;
      row[0] = std::get<0>(site) - base, row[1] = std::get<1>(site), row[2] = std::get<2>(site);
      row[3] = cost.requests, row[4] = cost.transactions, row[5] = cost.ideal, row[6] = cost.bytes;
    }
    ++count;
  }
  return count;
}
#endif
