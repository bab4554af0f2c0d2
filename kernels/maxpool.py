"""Max-pooling with switches, NumPy reference path.

Forward returns the pooled map and its switches: for every output element, the flat index
(row * W + column) in its input plane of the element that won. Ties go to the first
maximum in row-major window order, in every backend. Padding never wins (it is -inf).
Backward scatters each output gradient to its switch and adds where windows overlap; the
same switches are what a DeconvNet unpools through (Sect. 4 of the paper).
"""
import math

import numpy as np

from .family import ELEMENTWISE_THREADS, Device, OpFamily, expect
from .phases import PhaseGrid


def maxpool_output_size(size, kernel, stride, padding, ceil_mode):
    """PyTorch's rule: with ceil_mode the last window may overhang the input but must
    start inside it (or inside the left padding)."""
    span = size + 2 * padding - kernel
    out = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def maxpool_forward(x, kernel_size, stride, padding=0, ceil_mode=False):
    n, c, h, w = x.shape
    hout = maxpool_output_size(h, kernel_size, stride, padding, ceil_mode)
    wout = maxpool_output_size(w, kernel_size, stride, padding, ceil_mode)
    # On the wide grid (kernels/phases.py), padded with -inf, every window offset is one
    # contiguous slice of each plane, visited in row-major order; a strict ">" keeps the
    # first maximum. Arithmetic, not masked copies, moves the winners: with random masks
    # np.copyto(where=) is ten times slower than np.maximum.
    grid = PhaseGrid(x.shape, kernel_size, stride, padding, (hout, wout))
    planes = grid.split(x, fill=-np.inf)
    offsets = grid.offsets()
    best = grid.window(planes, *offsets[0]).copy()
    best_offset = np.zeros(best.shape, np.uint8 if len(offsets) <= 256 else np.int64)
    better, change = np.empty(best.shape, bool), np.empty_like(best_offset)
    for offset, (u, v, start) in enumerate(offsets[1:], 1):
        candidate = grid.window(planes, u, v, start)
        np.greater(candidate, best, out=better)
        np.maximum(candidate, best, out=best)
        np.subtract(offset, best_offset, out=change)
        change *= better
        best_offset += change
    # Switch = the winner's flat index in its input plane: the window's corner plus the
    # offset's displacement, looked up per offset.
    corner = ((np.arange(hout) * stride - padding) * w).reshape(-1, 1) + (np.arange(wout) * stride - padding)
    displacement = np.array([u * w + v for u, v, _ in offsets], np.int64)
    switches = np.take(displacement, grid.crop(best_offset))
    switches += corner
    return np.ascontiguousarray(grid.crop(best)), switches


def maxpool_backward(grad_y, switches, x_shape, kernel_size, stride, padding=0):
    """Adds each output gradient into the input element its switch names. (The window
    geometry only tells whether windows overlap; the padding is for the gather form of
    the CUDA kernel.)"""
    n, c, h, w = x_shape
    index = (np.arange(n * c, dtype=np.int64).reshape(n, c, 1, 1) * (h * w) + switches).ravel()
    grad_x = np.zeros(n * c * h * w, grad_y.dtype)
    if stride >= kernel_size:  # disjoint windows: no two switches collide, a plain scatter
        grad_x[index] = grad_y.ravel()
    else:  # overlapping windows add up (np.add.at: 2-3x faster than np.bincount, NumPy 2.4)
        np.add.at(grad_x, index, grad_y.ravel())
    return grad_x.reshape(x_shape)


# maxpool.cu's versions and their kernels' suffixes; the engine runs the one a GPU run's
# ladder times fastest (kernels/choices.py): v3 on the H200, 2026-11-28 (0.60 of v1's time,
# forward and backward).
KERNEL_SUFFIXES = {"v1": "", "v2": "_planes", "v3": "_2x2", "v4": "_2x2_pairs"}
VERSIONS = tuple(KERNEL_SUFFIXES)
ENGINE_VERSION = "v3"
PLANE_BLOCKS = 65535  # the grid's y limit: the v2 kernels loop over the planes beyond it


def tiles_exactly(device, x, kernel_size, stride, padding, output_shape):
    """Whether v3 applies: 2 x 2 windows at stride 2, no padding, covering the input
    exactly, float2-aligned rows and 32-bit indices."""
    n, c, h, w = x.shape
    return (kernel_size == stride == 2 and padding == 0 and (h, w) == (2 * output_shape[0], 2 * output_shape[1])
            and device.aligned(x) and x.size < 2 ** 31)


def two_by_two_version(device, version, x, kernel_size, stride, padding, output_shape, outputs):
    """Which of the 2 x 2 kernels `version` runs on this geometry: v4 where they apply
    (tiles_exactly), the output width is even and `outputs` (the pooled map or its
    gradient, and the switches) start on 16-byte boundaries; else v3 where they apply; else
    None (v1's or v2's kernels run: _launch)."""
    if version not in ("v3", "v4") or not tiles_exactly(device, x, kernel_size, stride, padding, output_shape):
        return None
    return "v4" if version == "v4" and output_shape[1] % 2 == 0 and device.aligned(*outputs) else "v3"


def _launch(device, kernel, version, plane_positions, n, c, *arguments):
    """v1: a grid-stride loop over the batch's elements; v2 (and v3 and v4 where they do
    not apply): a block row per plane."""
    expect(version in VERSIONS, f"maxpool: unknown version {version!r}")
    if version == "v1":
        device.elementwise(kernel, n * c * plane_positions, *arguments)
    else:
        device.launch(f"{kernel}_planes", (-(-plane_positions // ELEMENTWISE_THREADS), min(n * c, PLANE_BLOCKS)),
                      *arguments)


def _launch_two_by_two(device, kernel, version, outputs, *arguments):
    """v3: a thread an output; v4: a thread two."""
    device.elementwise(kernel + KERNEL_SUFFIXES[version], outputs // 2 if version == "v4" else outputs, *arguments)


def maxpool_forward_device(device: Device, x, kernel_size, stride, padding=0, ceil_mode=False, version=None):
    """`version`: one of VERSIONS, the engine's (ENGINE_VERSION) where None; v3 and v4 run v2
    where their windows do not tile the input, v4 runs v3 on odd output widths."""
    version = version or ENGINE_VERSION
    x = device.float32("x", x, 4)
    n, c, h, w = x.shape
    hout = maxpool_output_size(h, kernel_size, stride, padding, ceil_mode)
    wout = maxpool_output_size(w, kernel_size, stride, padding, ceil_mode)
    y, switches = device.empty((n, c, hout, wout)), device.empty((n, c, hout, wout), np.int64)
    tiled = two_by_two_version(device, version, x, kernel_size, stride, padding, (hout, wout), (y, switches))
    if tiled:
        _launch_two_by_two(device, "maxpool_forward", tiled, y.size, x, y, switches, n, c, h, w, hout, wout)
        return y, switches
    _launch(device, "maxpool_forward", version, hout * wout, n, c, x, y, switches, n, c, h, w, kernel_size, stride,
            padding, hout, wout)
    return y, switches


def maxpool_backward_device(device: Device, grad_y, switches, x_shape, kernel_size, stride, padding=0,
                            version=None):
    """`version` as for the forward."""
    version = version or ENGINE_VERSION
    grad_y = device.float32("grad_y", grad_y, 4)
    expect(switches.shape == grad_y.shape and switches.dtype == np.int64, "maxpool_backward: switches must be "
           f"int64 of the gradient's shape {grad_y.shape}, got {switches.dtype}{switches.shape}")
    n, c, h, w = x_shape
    grad_x = device.empty(tuple(x_shape))
    switches = device.xp.ascontiguousarray(switches)
    tiled = two_by_two_version(device, version, grad_x, kernel_size, stride, padding, grad_y.shape[2:],
                               (grad_y, switches))
    if tiled:
        _launch_two_by_two(device, "maxpool_backward", tiled, grad_y.size, grad_y, switches, grad_x, n, c, h, w,
                           *grad_y.shape[2:])
        return grad_x
    _launch(device, "maxpool_backward", version, h * w, n, c, grad_y, switches, grad_x,
            n, c, h, w, kernel_size, stride, padding, grad_y.shape[2], grad_y.shape[3])
    return grad_x


def maxpool_zeiler(ops, signal, x, switches, kernel_size, stride, padding=0, ceil_mode=False):
    """DeconvNet: unpooling through the forward pass's switches."""
    return ops.backward(signal, switches, x.shape, kernel_size, stride, padding)


MAXPOOL = OpFamily("maxpool", ("maxpool.cu",), numpy=dict(forward=maxpool_forward, backward=maxpool_backward),
                   device=dict(forward=maxpool_forward_device, backward=maxpool_backward_device),
                   zeiler=maxpool_zeiler)
