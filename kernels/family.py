"""An op family's contract in one place, and the device its CUDA launch code runs on.

Each kernels/<family>.py declares one `OpFamily`: its NumPy reference functions, the
functions that launch its CUDA kernels (the same signatures, with a `Device` first), the
.cu files those kernels live in, and, where the op has one, its DeconvNet step (Zeiler and
Fergus's reconstruction of the op's input from a signal at its output). The backends bind
a family's functions to the NumPy path or to a device (`OpFamily.bind`); `viz.deconvnet`
reaches the DeconvNet step through the layer's family. Nothing is looked up by name.
"""
import functools
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable

import numpy as np

from .launch import KernelError

# Element-wise kernels loop over their data (grid-stride loops) and run with any block:
# the Python side chooses this size for them. Kernels written for one block size declare
# it in their .cu file (__launch_bounds__), and the launcher takes it from there.
ELEMENTWISE_THREADS = 256
MAX_BLOCKS = 4096  # grid-stride loops cover the rest


@dataclass(frozen=True)
class OpFamily:
    name: str
    sources: tuple  # the .cu files of its kernels
    numpy: dict  # op name -> NumPy reference function
    device: dict  # op name -> the same function on a Device (first argument)
    # (ops of this family on the signal's backend, signal at the output, the op's input
    #  array, its parameter arrays, its keyword arguments) -> reconstruction of the input
    zeiler: Callable | None = field(default=None)

    def __post_init__(self):
        if set(self.numpy) != set(self.device):
            raise TypeError(f"op family {self.name}: the NumPy path has {sorted(self.numpy)} "
                            f"but the device path {sorted(self.device)}")

    def bind(self, device=None):
        """The family's ops as a namespace: NumPy's where device is None, else on `device`."""
        if device is None:
            return SimpleNamespace(**self.numpy)
        return SimpleNamespace(**{op: functools.partial(function, device) for op, function in self.device.items()})


CONVOLUTIONS = ("engine", "winograd_fused", "winograd_fused4", "winograd", "winograd4", "implicit", "im2col", "direct")


class Device:
    """What the families' CUDA launch code shares, over a launcher (kernels/launch.py):
    allocation, argument checks, launch geometry and the constants of the .cu files.

    convolution: which rung of conv2d.cu's ladder the convolutions run: "implicit" (implicit
    GEMM, split-K where the tiles are few), "im2col" (a column buffer and the SGEMM),
    "direct" (one thread per output, kept for reading) or "engine" (the engine's choice:
    implicit, on 64 x 256 tiles where the product has at most 64 rows, but the column
    buffer for the backward-data of strided convolutions and of inputs with few channels
    (but not at 1x1), and for the weight gradient on small maps: conv2d.py's
    FEW_INPUT_CHANNELS and COLUMNS_WEIGHT_GRADIENT_POSITIONS, and Winograd where conv2d.py's
    ENGINE_WINOGRAD_* say), or "winograd" and "winograd4" (the engine's, with Winograd
    F(2x2, 3x3) or F(4x4, 3x3) in every direction of 3x3 stride-1 convolutions, and
    "winograd" F(2x2, 5x5) of 5x5 ones: what the ladders and bench/gpu_kernels.py time the
    engine's Winograd choices against), or "winograd_fused" and "winograd_fused4" (those
    with their 3x3 forward and backward-data in one kernel each).

    engine_winograd: False keeps the "engine" mode off Winograd whatever conv2d.py says (the
    ladder times the engine both ways, so that choosing the thresholds does not compare
    Winograd with itself)."""

    def __init__(self, launcher, convolution="engine", engine_winograd=True):
        if convolution not in CONVOLUTIONS:
            raise ValueError(f"unknown convolution {convolution!r}: expected one of {', '.join(CONVOLUTIONS)}")
        self.launcher = launcher
        self.xp = launcher.xp
        self.convolution = convolution
        self.engine_winograd = engine_winograd

    @property
    def name(self):
        return self.launcher.name

    def empty(self, shape, dtype=np.float32):
        return self.launcher.empty(shape, dtype)

    def define(self, name):
        """An integer constant `#define`d in a kernel file (tile sizes, mode codes)."""
        return self.launcher.defines[name]

    def launch(self, kernel, grid, *arguments):
        """Starts `kernel` on `grid` blocks of the size its .cu file declares, or of
        ELEMENTWISE_THREADS for kernels that run with any block."""
        block = self.launcher.kernels[kernel].block_threads or ELEMENTWISE_THREADS
        self.launcher.launch(kernel, grid, block, *arguments)

    def concurrent_blocks(self, kernel):
        """How many blocks of `kernel` the GPU runs at once: its multiprocessors times the
        blocks an SM the kernel's __launch_bounds__ names (1 where it names none)."""
        return self.launcher.multiprocessors * self.launcher.kernels[kernel].resident_blocks

    def elementwise(self, kernel, count, *arguments):
        """A grid-stride kernel over `count` elements."""
        self.launch(kernel, max(1, min(MAX_BLOCKS, -(-int(count) // ELEMENTWISE_THREADS))), *arguments)

    def aligned(self, *arrays):
        """Whether every array starts on a 16-byte boundary (float4 loads and stores)."""
        return all(self.launcher.address(a) % 16 == 0 for a in arrays)

    def float32(self, name, a, ndim=None):
        """`a` as a contiguous float32 array of `ndim` dimensions, or a KernelError. (The
        messages are formatted only on failure: formatting a dtype costs more than the
        check, hundreds of times a pass.)"""
        if a.dtype != np.float32:
            raise KernelError(f"{name} must be float32, got {a.dtype}")
        if ndim is not None and a.ndim != ndim:
            raise KernelError(f"{name} must have {ndim} dimensions, got shape {a.shape}")
        return self.xp.ascontiguousarray(a)


def expect(condition, message):
    if not condition:
        raise KernelError(message)
