"""Shared-memory bank conflicts, counted on the CPU: every shared-memory access of a kernel's
first blocks as the emulator runs them, costed as a GPU's shared memory serves them.

    python -m deepinside.kernels.banks          # the tiled SGEMMs, implicit-GEMM convolutions, tiled depthwise
    python -m deepinside.kernels.banks --all    # every line, conflict-free ones too

Shared memory is 32 banks of 4-byte words; a warp's request (one instruction, its 32
lanes) is served in wavefronts, each of which reads or writes at most one word a bank
(lanes asking for the same word share it). A request whose lanes ask n distinct words of one
bank takes n wavefronts: an n-way bank conflict. The fewest it could take is its distinct
words / 32, rounded up (a warp's float4 loads of 128 distinct floats: 4). What a GPU profiler
calls shared-memory wavefronts and bank conflicts (Nsight Compute's
l1tex__data_pipe_lsu_wavefronts_mem_shared and l1tex__data_bank_conflicts_pipe_lsu_mem_shared),
this counts without one.

How: the emulator's traced build (kernels/launch.py: TRACE_FLAGS) compiles the .cu files
with GCC's address-sanitizer instrumentation, which calls the emulator's runtime before every
memory access; the runtime keeps those that land in __shared__ memory and, at the end of each
traced block, matches each warp's accesses lane by lane (the n-th access from one instruction
between two barriers of each lane is one request of the warp) and costs them
(emulator/runtime.cpp: cost_block). The model is the banks' only: it does not know that the
hardware serves a 64- or 128-bit access in two or four passes of half or a quarter of the warp
when the lanes' addresses are all distinct, which changes nothing where they are (the
quarter-warp passes of a conflict-free float4 load take 4 wavefronts, as the words count
says), nor what the compiler changes: GCC and nvcc may merge or split accesses differently
(GCC is told not to vectorise or split float4s; a line whose requests do not match the
source's should be read with that in mind). Blocks at the edges of a grid may differ from the
traced ones: the report is of the first blocks (`blocks`).
"""
import argparse
import ctypes
import functools
import os
import sys
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from .family import Device
from .launch import KERNEL_DIR, CheckedEmulatorLauncher, KernelError

FIELDS = 7  # per instruction, from emulator_memory_costs: offset, store, global, requests, transactions, ideal, bytes
SPACES = ("shared", "global")


@dataclass
class MemoryCost:
    """One source line's requests to one memory space over the traced blocks: shared memory
    in bank wavefronts, global memory in 32-byte sectors (kernels/sectors.py)."""
    store: bool
    requests: int = 0
    transactions: int = 0  # wavefronts (shared) or sectors (global)
    ideal: int = 0  # the fewest the same words could take
    bytes: int = 0

    @property
    def excess(self):
        """Transactions over the fewest possible: 1 is conflict-free (shared) or coalesced
        (global); 8 an 8-way bank conflict, or 8 sectors where 1 would hold the bytes."""
        return self.transactions / self.ideal

    @property
    def width(self):
        """Bytes a lane accesses per request (4 for float, 16 for float4), on average."""
        return self.bytes / (32 * self.requests)


class MemoryTracer(CheckedEmulatorLauncher):
    """The emulator, traced: after each launch, the memory requests of its first `blocks`
    blocks are costed and added to `costs[space][kernel][(file, line, store)]`, space
    "shared" (by bank) or "global" (by sector). Its accesses are bounds-checked, and its
    arrays start where a GPU's would (CheckedEmulatorLauncher)."""

    name = "emulator-traced"

    def __init__(self, blocks=1, workers=None):
        super().__init__(workers)
        self.blocks = blocks
        self.costs = {space: defaultdict(dict) for space in SPACES}
        self.library.emulator_memory_costs.restype = ctypes.c_int

    def _start(self, kernel, parameters, grid, block, arguments):
        self.library.emulator_trace(ctypes.c_ulong(self.blocks))
        super()._start(kernel, parameters, grid, block, arguments)
        count = self.library.emulator_memory_costs(None, 0)
        rows = np.zeros((count, FIELDS), np.uint64)
        self.library.emulator_memory_costs(rows.ctypes.data_as(ctypes.POINTER(ctypes.c_ulonglong)), count)
        self.name_lines([int(offset) for offset in rows[:, 0]])
        for offset, store, is_global, requests, transactions, ideal, moved in rows.tolist():
            costs = self.costs[SPACES[is_global]][kernel]
            cost = costs.setdefault(self.lines[offset] + (bool(store),), MemoryCost(bool(store)))
            cost.requests += requests
            cost.transactions += transactions
            cost.ideal += ideal
            cost.bytes += moved


def gemm_cases():
    """(title, run(device)) of one 128^3 product of each tiled SGEMM the engine may take, each
    transpose, and a 64 x 256 x 128 one of the wide rung (nn and nt: the ones it takes)."""
    from .gemm import TILED, gemm_product_device

    def product(version, transpose_a, transpose_b, device):
        rng = np.random.default_rng(0)
        m, n, k = (64, 256, 128) if version == "wide" else (128, 128, 128)
        a = rng.standard_normal((k, m) if transpose_a else (m, k)).astype(np.float32)
        b = rng.standard_normal((n, k) if transpose_b else (k, n)).astype(np.float32)
        gemm_product_device(device, a, b, transpose_a, transpose_b, version=version)

    return [(f"sgemm {version} {case}", functools.partial(product, version, case == "tn", case == "nt"))
            for version in tuple(TILED) + ("wide",) for case in ("nn", "tn", "nt")
            if version != "wide" or case != "tn"]


def conv_cases():
    """(title, run(device)) of each implicit-GEMM convolution version, on the square and the wide tile."""
    from .conv2d import (conv2d_backward_data_device, conv2d_backward_weights_device, conv2d_forward_device,
                         IMPLICIT_VERSIONS)

    def convolution(direction, version, rows, device):
        """A 3x3 convolution on 20 x 20 maps whose product in `direction` has `rows` rows
        (128: the square tile; 64: the wide one) and more columns than a tile: the first
        block computes a whole tile."""
        rng = np.random.default_rng(0)
        other = 32  # the channels on the other side
        ins, outs = (rows, other) if direction == "backward_data" else (other, rows)
        x = rng.standard_normal((1, ins, 20, 20)).astype(np.float32)
        w = rng.standard_normal((outs, ins, 3, 3)).astype(np.float32)
        gy = rng.standard_normal((1, outs, 20, 20)).astype(np.float32)
        if direction == "forward":
            conv2d_forward_device(device, x, w, None, 1, 1, version=version)
        elif direction == "backward_data":
            conv2d_backward_data_device(device, gy, w, x.shape, 1, 1, version=version)
        else:
            conv2d_backward_weights_device(device, gy, x, w.shape, 1, 1, version=version)

    cases = []
    for direction, versions in IMPLICIT_VERSIONS.items():
        for version in versions:
            for rows in (128, 64):  # the square tile and the wide one
                cases.append((f"conv {direction} {version} {rows} rows",
                              functools.partial(convolution, direction, version, rows)))
    return cases


def depthwise_cases():
    """(title, run(device)) of the tiled depthwise forward (the engine's backward-data at
    stride 1 runs it), 3x3 and 5x5 at strides 1 and 2, on a plane of several tiles."""
    from .depthwise import depthwise_forward_device

    def tiled(k, stride, device):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1, 2, 40, 40)).astype(np.float32)
        w = rng.standard_normal((2, 1, k, k)).astype(np.float32)
        depthwise_forward_device(device, x, w, None, stride, k // 2, version="depthwise_forward_tiled")

    return [(f"depthwise tiled {k}x{k} stride {stride}", functools.partial(tiled, k, stride))
            for k in (3, 5) for stride in (1, 2)]


@functools.lru_cache(maxsize=None)
def _source(name):
    path = os.path.join(KERNEL_DIR, name)
    if not os.path.exists(path):  # a line of the emulator's own headers, say
        return []
    with open(path) as handle:
        return handle.read().splitlines()


def source_line(name, line):
    """The text of line `line` of kernels/`name`, stripped ("" for a file elsewhere)."""
    text = _source(name)
    return text[line - 1].strip() if 0 < line <= len(text) else ""


def report(cases, space="shared", blocks=1, everything=False, out=sys.stdout):
    """Runs each (title, run(device)) on a traced emulator and prints its kernels' lines of
    `space` memory ("shared": bank wavefronts; "global": sectors): those above the fewest,
    or all of them; returns {title: {kernel: costs}}."""
    unit = "wavefronts" if space == "shared" else "sectors"
    results = {}
    for title, run in cases:
        tracer = MemoryTracer(blocks)
        run(Device(tracer, convolution="engine"))
        kernels = tracer.costs[space]
        results[title] = dict(kernels)
        for kernel, costs in kernels.items():
            costs = {key: cost for key, cost in costs.items() if source_line(*key[:2])}  # the .cu files' lines
            requests = sum(c.requests for c in costs.values())
            transactions, ideal = sum(c.transactions for c in costs.values()), sum(c.ideal for c in costs.values())
            print(f"{title}: {kernel}: {requests} requests, {transactions} {unit}, {ideal} at the fewest "
                  f"({transactions / max(1, ideal):.2f}x)", file=out)
            for (name, line, _), cost in sorted(costs.items()):
                if everything or cost.transactions > cost.ideal:
                    print(f"  {name}:{line:<5} {'store' if cost.store else 'load '} {cost.width:4.1f} B/lane "
                          f"{cost.requests:7d} requests {cost.excess:5.2f}x  {source_line(name, line)[:70]}", file=out)
    return results


def command(name, doc, cases, space, argv=None):
    """The command line of kernels.`name` (this module's, and kernels.sectors'): the report
    of `space` memory over cases() (--all: every line; --blocks: blocks traced a launch)."""
    parser = argparse.ArgumentParser(prog=f"python -m deepinside.kernels.{name}", description=doc.split("\n\n")[0])
    parser.add_argument("--all", action="store_true", help="print the lines at the fewest transactions too")
    parser.add_argument("--blocks", type=int, default=1, help="blocks traced a launch (default 1)")
    args = parser.parse_args(argv)
    try:
        report(cases(), space, args.blocks, args.all)
    except KernelError as error:  # no compiler with the instrumentation, no addr2line
        print(f"kernels.{name}: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    return command("banks", __doc__, lambda: gemm_cases() + conv_cases() + depthwise_cases(), "shared", argv)


if __name__ == "__main__":
    sys.exit(main())
