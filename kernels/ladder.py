"""Run a kernel family's ladder: every version, validated against the NumPy reference and
timed, in the order its .cu file presents them.

    python -m deepinside.kernels.ladder gemm              # on a GPU: 4096^3 and fc6's shapes, against cuBLAS
    python -m deepinside.kernels.ladder gemm --emulator   # anywhere: small awkward sizes, correctness only
    python -m deepinside.kernels.ladder conv_forward      # also conv_backward_data, conv_backward_weights:
                                                          # direct, im2col + SGEMM, implicit GEMM, Winograd,
                                                          # the engine's choice; peer cuDNN
    python -m deepinside.kernels.ladder relu              # scalar and float4 versions; GB/s against a copy
    python -m deepinside.kernels.ladder maxpool           # forward with switches, gather backward; GB/s
    python -m deepinside.kernels.ladder depthwise         # direct depthwise kernels on EfficientNet's shapes; GB/s
    python -m deepinside.kernels.ladder elementwise       # batchnorm, padding, sums, LRN, pooling, dropout, SGD; GB/s
    python -m deepinside.kernels.ladder gemm --json rows.json   # also the rows as JSON (kernels.choices reads them)

Each version's output is poisoned with NaN before its launch (beta = 0 must overwrite every
element), compared with NumPy in float64, and on a GPU timed with CUDA events (median of
the repeats after a warm-up); the table gives milliseconds, GFLOP/s, the fraction of the
card's FP32 peak and the ratio to the peer (CuPy's matmul, which is cuBLAS; cuBLAS does not
use TF32 for float32 unless CUPY_TF32 asks it to). On the emulator the time column is the
emulator's and means nothing for a GPU. Exits 1 if any version is wrong.
"""
import argparse
import functools
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from .conv2d import FUSED_WINOGRAD_TILES
from .family import CONVOLUTIONS, Device
from .launch import KernelError

# FP32 peaks (no tensor cores) of the cards this project is measured on, SXM parts.
FP32_PEAK_TFLOPS = {"H100": 67.0, "H200": 67.0, "A100": 19.5}


@dataclass(frozen=True)
class Rung:
    name: str  # the kernel (or the first of its specialisations)
    idea: str
    launch: Callable  # (device, a, b, c, transpose_a, transpose_b) -> None
    transposes: tuple = ((False, False),)  # the (transpose_a, transpose_b) cases it handles
    rows_at_most: int | None = None  # the largest M it handles, where it has one

    def handles(self, m, transpose_a, transpose_b):
        return (transpose_a, transpose_b) in self.transposes and (self.rows_at_most is None or m <= self.rows_at_most)


def _grid(device, n, m, tile_n, tile_m):
    return (-(-n // device.define(tile_n)), -(-m // device.define(tile_m)))


def _plain(kernel, tile_n, tile_m):
    """Launch of a v2-v4 style kernel: row-major A (M, K), B (K, N), a block per tile of C."""
    def launch(device, a, b, c, transpose_a, transpose_b):
        (m, k), n = a.shape, b.shape[1]
        device.launch(kernel, _grid(device, n, m, tile_n, tile_m), m, n, k, 1.0, a, b, 0.0, c)
    return launch


def _naive(device, a, b, c, transpose_a, transpose_b):
    m, n, k = c.shape[0], c.shape[1], (a.shape[0] if transpose_a else a.shape[1])
    device.launcher.launch("sgemm_naive", (-(-n // 16), -(-m // 16)), (16, 16), m, n, k, 1.0, a, int(transpose_a),
                           b, int(transpose_b), 0.0, c)


def _tiled(device, a, b, c, transpose_a, transpose_b):
    m, n, k = c.shape[0], c.shape[1], (a.shape[0] if transpose_a else a.shape[1])
    device.launch("sgemm_tiled", _grid(device, n, m, "GEMM_BN", "GEMM_BM"), m, n, k, 1.0, a, int(transpose_a), b,
                  int(transpose_b), 0.0, c)


def _specialised(version):
    """Launch of a rung compiled per transpose case (gemm.py's SPECIALISED_SGEMMS)."""
    def launch(device, a, b, c, transpose_a, transpose_b):
        from .gemm import gemm_product_device
        gemm_product_device(device, a, b, transpose_a, transpose_b, out=c, version=version)
    return launch


ALL_CASES = ((False, False), (True, False), (False, True))
GEMM_LADDER = [
    Rung("sgemm_naive", "one thread per element, all from global memory", _naive, ALL_CASES),
    Rung("sgemm_coalesced", "a warp takes consecutive columns: coalesced B and C",
         _plain("sgemm_coalesced", "COALESCED_TILE", "COALESCED_TILE")),
    Rung("sgemm_shared", "32x32 tiles staged in shared memory", _plain("sgemm_shared", "SHARED_TILE", "SHARED_TILE")),
    Rung("sgemm_blocktile_1d", "8 results a thread in a column (64x64 tiles)",
         _plain("sgemm_blocktile_1d", "BLOCKTILE_BN", "BLOCKTILE_BM")),
    Rung("sgemm_tiled", "8x8 results a thread (128x128 tiles), runtime transposes", _tiled, ALL_CASES),
    Rung("sgemm_vectorized", "float4 loads and stores, A tile transposed, transposes as templates (the engine's)",
         _specialised("vectorized"), ALL_CASES),
    Rung("sgemm_warptile", "the tile split between warps, then lanes (2x2 sub-blocks of 4x4)",
         _specialised("warptile"), ALL_CASES),
    Rung("sgemm_pipelined", "warp tiles, two shared buffers: the next slice's loads in flight",
         _specialised("pipelined"), ALL_CASES),
    Rung("sgemm_splitk", "v8 with K split between blocks where the tiles are too few (the engine's above 8 rows)",
         _specialised("splitk"), ALL_CASES),
    Rung("sgemm_skinny", "at most 8 rows: B read once, coalesced, sums in registers (the engine's there)",
         _specialised("skinny"), ((False, False), (False, True)), rows_at_most=8),
    Rung("sgemm_8x16", "v8 with 8x16 results a thread (128 threads) and 16-deep slices: 25% fewer shared reads a FMA",
         _specialised("8x16"), ALL_CASES),
    Rung("sgemm_async", "v8 with its slices copied by cp.async, three in flight: no staging registers",
         _specialised("async"), ALL_CASES),
    Rung("sgemm_8x16_async", "v11's 8x16 results a thread fed by cp.async, two 16-deep slices in flight",
         _specialised("8x16_async"), ALL_CASES),
    Rung("sgemm_wide", "at most 64 rows on the implicit GEMM's 64 x 256 tile (conv2d.cu), K split as v9's",
         _specialised("wide"), ((False, False), (False, True)), rows_at_most=64),
]
CONV_DIRECTIONS = ("conv_forward", "conv_backward_data", "conv_backward_weights")
# Element-wise kernels: bytes moved per element, and the versions in relu.cu's order.
RELU_LADDER = {"forward": (8, ("relu_forward", "relu_forward_vec4")),
               "backward": (12, ("relu_backward", "relu_backward_vec4")),
               "relu6 forward": (8, ("relu6_forward", "relu6_forward_vec4")),
               "relu6 backward": (12, ("relu6_backward", "relu6_backward_vec4"))}
LADDERS = {"gemm": GEMM_LADDER, "relu": RELU_LADDER, "maxpool": ("maxpool",), "depthwise": ("depthwise",),
           "elementwise": ("elementwise",),
           **{direction: CONVOLUTIONS[::-1] for direction in CONV_DIRECTIONS},
           # (a fused Winograd's weight gradient is the unfused one's)
           "conv_backward_weights": tuple(c for c in CONVOLUTIONS[::-1] if c not in FUSED_WINOGRAD_TILES)}


class SavedRows(list):
    """A ladder's rows, its JSON file (what kernels.choices reads) rewritten at every row:
    a ladder cut off by the GPU script's time limit leaves the rows it finished, marked
    unfinished, instead of nothing."""

    def __init__(self, path, family, emulator):
        super().__init__()
        self.path, self.family, self.emulator = path, family, emulator

    def append(self, row):
        super().append(row)
        self.save(finished=False)

    def save(self, finished):
        with open(self.path, "w") as handle:
            json.dump({"family": self.family, "emulator": self.emulator, "finished": finished, "rows": self}, handle,
                      indent=1)


def _rows(rows):
    """Where a run_* function appends its rows: `rows` (a SavedRows) or a new list."""
    return [] if rows is None else rows


def run_maxpool(device, shapes, repeats, timer, copy=None, rows=None):
    """Rows: max-pool forward (value and switch per output) and its gather backward on
    (n, c, h, w) inputs with 2x2 stride-2 windows (VGG's), in GB/s of the bytes each must
    move, against a device-to-device copy of as many bytes."""
    from .maxpool import (KERNEL_SUFFIXES, VERSIONS, maxpool_backward, maxpool_backward_device, maxpool_forward,
                          maxpool_forward_device, two_by_two_version)

    poisoned, xp, rng, rows = PoisonedDevice(device.launcher), device.xp, np.random.default_rng(0), _rows(rows)
    for shape in shapes:
        x = rng.standard_normal(shape, dtype=np.float32)
        y, switches = maxpool_forward(x, 2, 2)
        g = rng.standard_normal(y.shape, dtype=np.float32)
        expected = {"forward": (y, switches), "backward": maxpool_backward(g, switches, x.shape, 2, 2)}
        x_d, g_d, switches_d = xp.asarray(x), xp.asarray(g), xp.asarray(switches)
        moved = {"forward": 4 * x.size + 12 * y.size, "backward": 12 * y.size + 4 * x.size}
        # the versions that run kernels of their own on this shape
        versions = [v for v in VERSIONS if v in ("v1", "v2")
                    or two_by_two_version(device, v, x_d, 2, 2, 0, y.shape[2:], (g_d, switches_d)) == v]
        calls = [(version, "forward", functools.partial(maxpool_forward_device, poisoned, x_d, 2, 2, version=version))
                 for version in versions]
        calls += [(version, "backward", functools.partial(maxpool_backward_device, poisoned, g_d, switches_d, x.shape,
                                                          2, 2, version=version)) for version in versions]
        for version, direction, call in calls:
            result = call()
            result = [host(a) for a in (result if direction == "forward" else (result,))]
            ok = all(np.array_equal(a, b) for a, b in zip(result, expected[direction] if direction == "forward"
                                                           else (expected[direction],)))
            seconds = timed_unpoisoned(timer, call, repeats)
            kernel = f"maxpool_{direction}{KERNEL_SUFFIXES[version]}"
            row = {"version": kernel, "case": direction, "shape": f"N{shape[0]} C{shape[1]} "
                   f"{shape[2]}x{shape[3]} k2 s2", "ok": ok, "error": 0.0, "ms": seconds * 1e3,
                   "gflops": moved[direction] / seconds / 1e9}
            if copy:
                peer_seconds = timer(lambda: copy(moved[direction] // 8), repeats)
                row.update(peer_ms=peer_seconds * 1e3, peer_gflops=moved[direction] / peer_seconds / 1e9,
                           ratio_to_peer=peer_seconds / seconds)
            rows.append(row)
    return rows


def run_depthwise(device, shapes, repeats, timer, copy=None, rows=None):
    """Rows: the depthwise kernels (every forward version, backward-data, backward-weights) on each
    shape (n, c, h, w, k, stride, padding), against the NumPy path in float64, in GB/s of
    the activations each must read and write (the op is memory-bound: K^2 multiply-adds per
    output and no reuse across channels), against a device-to-device copy of as many bytes."""
    from . import depthwise as reference
    from .conv2d import conv2d_output_size

    poisoned = PoisonedDevice(device.launcher)
    xp, rng, rows = device.xp, np.random.default_rng(0), _rows(rows)
    for n, c, h, w, k, stride, padding in shapes:
        x = rng.standard_normal((n, c, h, w), dtype=np.float32)
        weight = (rng.standard_normal((c, 1, k, k)) / k).astype(np.float32)
        out = conv2d_output_size(h, k, stride, padding), conv2d_output_size(w, k, stride, padding)
        grad_y = rng.standard_normal((n, c) + out, dtype=np.float32)
        x64, w64, g64 = x.astype(np.float64), weight.astype(np.float64), grad_y.astype(np.float64)
        x_d, w_d, g_d = xp.asarray(x), xp.asarray(weight), xp.asarray(grad_y)
        moved = 4 * (x.size + grad_y.size)  # every direction reads or writes both activations once
        forward = reference.depthwise_forward(x64, w64, None, stride, padding)
        # (the plane rungs where they run kernels of their own)
        planes = {"forward": reference.planes_fit(device, x.shape, k, out),
                  "backward_data": reference.planes_fit(device, grad_y.shape, k, (h, w))}
        versions = [(version, "forward", functools.partial(reference.depthwise_forward_device, poisoned, x_d, w_d,
                                                           None, stride, padding, version=version), forward)
                    for version in reference.FORWARD_LADDER if reference.forward_applies(device, version, k, stride)
                    and (version != "depthwise_forward_planes" or planes["forward"])]
        backward_data = reference.depthwise_backward_data(g64, w64, x.shape, stride, padding)
        versions += [(version, "backward_data", functools.partial(reference.depthwise_backward_data_device, poisoned,
                                                                  g_d, w_d, x.shape, stride, padding, version=version),
                      backward_data)
                     for version in reference.BACKWARD_DATA_LADDER
                     if reference.backward_data_applies(device, version, k, stride, padding)
                     and (version != "depthwise_backward_data_planes" or planes["backward_data"])]
        backward_weights = reference.depthwise_backward_weights(g64, x64, weight.shape, stride, padding)
        versions += [(version, "backward_weights", functools.partial(
            reference.depthwise_backward_weights_device, poisoned, g_d, x_d, weight.shape, stride, padding,
            version=version), backward_weights)
            for version in reference.BACKWARD_WEIGHTS_LADDER
            if reference.backward_weights_applies(version, k, stride)]
        peer_seconds = timer(lambda: copy(moved // 8), repeats) if copy else None
        for version, direction, call, expected in versions:
            rows.append(_validated_row(version, direction, f"N{n} C{c} {h}x{w} k{k} s{stride} p{padding}", call,
                                       expected, moved, timer, repeats, xp, peer_seconds))
    return rows


# The element-wise ladder's shapes: EfficientNet-Lite0's expanded activations at 56 x 56
# (its per-channel maps, sums and residual adds), its stem's image (the one padding the engine
# runs on its own), its last features (the global average pool), CNN-F's conv1 output
# (LRN) and a flat vector (dropout, SGD), at batch 64 on a GPU; small awkward ones on the
# emulator.
GPU_ELEMENTWISE = {"activations": (64, 144, 56, 56), "image": (64, 3, 224, 224), "features": (64, 1280, 7, 7),
                   "lrn": (64, 64, 55, 55), "flat": 16 << 20}
EMULATOR_ELEMENTWISE = {"activations": (2, 5, 9, 11), "image": (2, 3, 10, 9), "features": (2, 7, 3, 3),
                        "lrn": (2, 7, 5, 4), "flat": 1001}


def _label(shape):
    return f"N{shape[0]} C{shape[1]} {shape[2]}x{shape[3]}" if isinstance(shape, tuple) else f"{shape} floats"


class Case(NamedTuple):
    """One row of the element-wise ladder, before it runs."""
    kernel: str  # its kernels, as the table names them
    case: str
    shape: str
    moved: int  # the bytes it must move
    call: Callable  # -> its result, or a tuple of them
    expected: object  # the float64 reference, or a tuple of them
    rung: str | None = None  # "module version", where the engine chooses between rungs (kernels.choices)


def elementwise_cases(device, shapes, rng):
    """The Cases of every element-wise kernel but ReLU's and max-pool's (ladders of their
    own): the rungs of batchnorm.cu, pad.cu, avgpool.cu and lrn.cu by version, the rest one
    each. The bytes are what the op must read and write at the least (a reduction's input
    once), so that a kernel that reads twice shows it."""
    return (_batchnorm_cases(device, shapes["activations"], rng) + _sum_cases(device, shapes["activations"], rng)
            + _pad_cases(device, shapes["image"], rng) + _pool_cases(device, shapes["features"], rng)
            + _lrn_cases(device, shapes["lrn"], rng) + _training_cases(device, shapes["flat"], rng))


def _on(device, *arrays):
    """float64 references' operands as float32 arrays on the device."""
    return [device.xp.asarray(a.astype(np.float32)) for a in arrays]


def _batchnorm_cases(device, shape, rng, eps=1e-3):
    from . import batchnorm

    size, c = math.prod(shape), shape[1]
    x, g = rng.standard_normal(shape) * 2 + 1, rng.standard_normal(shape)
    mean, gamma, beta, var = rng.standard_normal(c), rng.standard_normal(c), rng.standard_normal(c), rng.random(c) + 0.5
    x_d, g_d, mean_d, gamma_d, beta_d, var_d = _on(device, x, g, mean, gamma, beta, var)
    cases, label = [], _label(shape)
    for version, suffix in batchnorm.VERSIONS.items():
        rung = f"batchnorm {version}"
        cases.append(Case(f"batchnorm_forward{suffix}", "batchnorm forward", label, 8 * size, functools.partial(
            batchnorm.batchnorm_forward_device, device, x_d, mean_d, var_d, gamma_d, beta_d, eps, version=version),
            batchnorm.batchnorm_forward(x, mean, var, gamma, beta, eps), rung))
        for batch_statistics, moved in ((False, 8), (True, 12)):  # a saliency pass's; training's (x read too)
            grad_x, grad_gamma, grad_beta = batchnorm.batchnorm_backward(g, x, mean, var, gamma, eps, batch_statistics)
            # the kernel alone: with batch statistics the engine runs the sums' kernel first
            cases.append(Case(f"batchnorm_backward_data{suffix}", "batchnorm backward-data, "
                              f"{'batch' if batch_statistics else 'fixed'} statistics", label, moved * size,
                              functools.partial(_launched, device, f"batchnorm_backward_data{suffix}", shape, g_d, x_d,
                                                mean_d, var_d, gamma_d, *_on(device, grad_gamma, grad_beta), None,
                                                size, c, size // shape[0] // c, eps, int(batch_statistics)),
                              grad_x, rung))
    sliced = ("channel_sum + batchnorm_centred_squares", "batchnorm_gradient_sums")
    reductions = {"v1": ("batchnorm_statistics", "batchnorm_backward_sums"), "v2": sliced, "v3": sliced}
    for version, (statistics_kernels, sums_kernel) in reductions.items():
        cases += [Case(statistics_kernels, "batchnorm statistics", label, 4 * size, functools.partial(
                       batchnorm.batchnorm_statistics_device, device, x_d, version=version),
                       batchnorm.batchnorm_statistics(x), f"batchnorm {version}"),
                  Case(sums_kernel, "batchnorm parameter gradients", label, 8 * size, functools.partial(
                      batchnorm.batchnorm_parameter_gradients_device, device, g_d, x_d, mean_d, var_d, eps,
                      version=version), batchnorm.batchnorm_backward(g, x, mean, var, gamma, eps, False)[1:],
                      f"batchnorm {version}")]
    return cases


def _sum_cases(device, shape, rng):
    """The bias gradient and the residual add."""
    from . import add
    from .conv2d import conv2d_backward_bias_device

    size, label = math.prod(shape), _label(shape)
    a, b = rng.standard_normal(shape), rng.standard_normal(shape)
    a_d, b_d = _on(device, a, b)
    return [Case("channel_sum", "bias gradient", label, 4 * size,
                 functools.partial(conv2d_backward_bias_device, device, a_d), a.sum(axis=(0, 2, 3))),
            Case("add_forward", "residual add", label, 12 * size,
                 functools.partial(add.add_forward_device, device, a_d, b_d), a + b)]


def _pad_cases(device, shape, rng, padding=(0, 1, 0, 1)):  # the stem's SAME padding at stride 2
    from . import pad

    image = rng.standard_normal(shape)
    padded = pad.pad_forward(image, padding)
    grad_padded = rng.standard_normal(padded.shape)
    image_d, grad_padded_d = _on(device, image, grad_padded)
    return [case for version, suffix in pad.VERSIONS.items() for case in (
        Case(f"pad_forward{suffix}", "pad forward", _label(shape), 4 * (image.size + padded.size),
             functools.partial(pad.pad_forward_device, device, image_d, padding, version=version), padded,
             f"pad {version}"),
        Case(f"pad_backward{suffix}", "pad backward", _label(shape), 8 * image.size,
             functools.partial(pad.pad_backward_device, device, grad_padded_d, padding, version=version),
             pad.pad_backward(grad_padded, padding), f"pad {version}"))]


def _pool_cases(device, shape, rng):
    """The global average pool, each way."""
    from . import avgpool

    features, grad_pooled = rng.standard_normal(shape), rng.standard_normal(shape[:2] + (1, 1))
    features_d, grad_pooled_d = _on(device, features, grad_pooled)
    moved = 4 * (features.size + grad_pooled.size)
    return [case for version, kind in zip(avgpool.VERSIONS, ("adaptive", "global")) for case in (
        Case(f"{kind}_avgpool_forward", "global average pool forward", _label(shape), moved,
             functools.partial(avgpool.adaptive_avgpool_forward_device, device, features_d, (1, 1), version=version),
             avgpool.adaptive_avgpool_forward(features, (1, 1)), f"avgpool {version}"),
        Case(f"{kind}_avgpool_backward", "global average pool backward", _label(shape), moved,
             functools.partial(avgpool.adaptive_avgpool_backward_device, device, grad_pooled_d, shape,
                               version=version), avgpool.adaptive_avgpool_backward(grad_pooled, shape),
             f"avgpool {version}"))]


def _lrn_cases(device, shape, rng, size=5, alpha=1e-4, beta=0.75, k=2.0):  # CNN-F's
    from . import lrn

    x, g = np.abs(rng.standard_normal(shape)) * 20, rng.standard_normal(shape)  # rectified, as after conv1's ReLU
    y, scale = lrn.lrn_forward(x, size, alpha, beta, k)
    x_d, g_d, scale_d = _on(device, x, g, scale)
    return [case for version, suffix in lrn.VERSIONS.items() for case in (
        Case(f"lrn_forward{suffix}", "LRN forward", _label(shape), 12 * x.size,
             functools.partial(lrn.lrn_forward_device, device, x_d, size, alpha, beta, k, version=version),
             (y, scale), f"lrn {version}"),
        Case(f"lrn_backward{suffix}", "LRN backward", _label(shape), 16 * x.size,
             functools.partial(lrn.lrn_backward_device, device, g_d, x_d, scale_d, size, alpha, beta,
                               version=version), lrn.lrn_backward(g, x, scale, size, alpha, beta), f"lrn {version}"))]


def _training_cases(device, n, rng, p=0.5):
    """Dropout each way and an SGD step, on n floats."""
    from . import dropout, sgd

    values, uniform, grad = rng.standard_normal(n), rng.random(n), rng.standard_normal(n)
    mask = (uniform.astype(np.float32) >= p) / (1 - p)
    weight, velocity = rng.standard_normal(n), rng.standard_normal(n)
    values_d, uniform_d, grad_d, mask_d, weight_d, velocity_d = _on(device, values, uniform, grad, mask, weight,
                                                                    velocity)

    def sgd_step():  # in place: validated on the first step, timed on the next ones
        sgd.sgd_update_device(device, weight_d, grad_d, velocity_d, 0.01, 0.9, 5e-4)
        return weight_d, velocity_d

    sgd.sgd_update(weight, grad, velocity, 0.01, 0.9, 5e-4)
    return [Case("dropout_forward", "dropout forward", _label(n), 16 * n,  # the kernel: the engine draws on the host
                 functools.partial(_launched, device, "dropout_forward", (n,), values_d, uniform_d, None, None, n, p),
                 (mask, values * mask)),
            Case("dropout_backward", "dropout backward", _label(n), 12 * n,
                 functools.partial(dropout.dropout_backward_device, device, grad_d, mask_d), grad * mask),
            Case("sgd_update", "SGD step", _label(n), 20 * n, sgd_step, (weight, velocity))]


def _launched(device, kernel, shape, *arguments):
    """`kernel`'s outputs (each None among its `arguments`, new arrays of `shape`), launched
    as element-wise over them."""
    outputs = [device.empty(shape) for a in arguments if a is None]
    given = iter(outputs)
    device.elementwise(kernel, math.prod(shape), *(next(given) if a is None else a for a in arguments))
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


def flattened(arrays, xp):
    """A tuple of arrays as one flat array of `xp`'s, one after the other; one array as it is."""
    return xp.concatenate([a.ravel() for a in arrays]) if isinstance(arrays, tuple) else arrays


def run_elementwise(device, shapes, repeats, timer, copy=None, rows=None):
    """Rows: every element-wise kernel but ReLU's and max-pool's (elementwise_cases), in GB/s
    of the bytes each must move, against a device-to-device copy of as many bytes. A case
    with several outputs is compared on all of them, one after the other."""
    poisoned, xp, rows = PoisonedDevice(device.launcher), device.xp, _rows(rows)
    for case in elementwise_cases(poisoned, shapes, np.random.default_rng(0)):
        peer_seconds = timer(lambda: copy(case.moved // 8), repeats) if copy else None
        rows.append(_validated_row(case.kernel, case.case, case.shape, lambda: flattened(case.call(), xp),
                                   flattened(case.expected, np), case.moved, timer, repeats, xp, peer_seconds,
                                   timed=case.call))
        if case.rung:
            rows[-1]["rung"] = case.rung
    return rows


def host(array):
    """A device array (CuPy) copied to the host; a NumPy one as it is."""
    return array.get() if hasattr(array, "get") else array


def max_relative_error(result, expected):
    """The largest difference from the float64 `expected`, over its largest magnitude (on
    the host)."""
    return compared(host(result), expected, np)[0]


def compared(result, expected, xp):
    """(the largest difference of `result` from the float64 `expected` over its largest
    magnitude, whether that is below 1e-4 with every element finite), worked out with `xp`
    where `result` is: a ladder row's result on a GPU is compared there, not copied (a
    host's single thread took 1.9 s to compare VGG-16's conv1_2 output at batch 16, 51 M
    floats, and a ladder compares a dozen rungs a shape)."""
    expected = xp.asarray(expected)
    error = float(xp.abs(result - expected).max()) / max(float(xp.abs(expected).max()), 1e-30)
    return error, bool(xp.isfinite(result).all()) and error < 1e-4


def _validated_row(version, case, shape, call, expected, work, timer, repeats, xp, peer_seconds=None, timed=None):
    """One row of a table: `call`'s result against the float64 `expected` (compared), the
    time of `timed` (where it is not `call` itself: `call` without its results' gathering),
    and `work` (FLOPs or bytes) per second."""
    error, ok = compared(call(), expected, xp)
    seconds = timed_unpoisoned(timer, timed or call, repeats)
    row = {"version": version, "case": case, "shape": shape, "ok": ok, "error": error, "ms": seconds * 1e3,
           "gflops": work / seconds / 1e9}
    if peer_seconds:
        row.update(peer_ms=peer_seconds * 1e3, peer_gflops=work / peer_seconds / 1e9, ratio_to_peer=peer_seconds / seconds)
    return row


def run_relu(device, sizes, repeats, timer, copy=None, rows=None):
    """Rows: every ReLU and ReLU6 version on n floats (the backward in guided mode, every
    rule at once), in GB/s; the peer is a device-to-device copy of as many bytes, the
    bandwidth ceiling."""
    from .family import ELEMENTWISE_THREADS, MAX_BLOCKS
    from .modes import Mode
    from .relu import relu6_backward, relu6_forward, relu_backward, relu_forward

    xp, rng, rows = device.xp, np.random.default_rng(0), _rows(rows)
    guided = device.define("MODE_GUIDED")
    for n in sizes:
        x, g = rng.standard_normal(n, dtype=np.float32) * 4, rng.standard_normal(n, dtype=np.float32)
        y, y6 = relu_forward(x), relu6_forward(x)  # x spans ReLU6's cap at 6
        expected = {"forward": y, "backward": relu_backward(g, y, Mode.GUIDED),
                    "relu6 forward": y6, "relu6 backward": relu6_backward(g, y6, Mode.GUIDED)}
        x_d, g_d = xp.asarray(x), xp.asarray(g)
        for direction, (bytes_per_element, versions) in RELU_LADDER.items():
            y_d = xp.asarray(y6 if direction.startswith("relu6") else y)
            peer_seconds = timer(lambda: copy(bytes_per_element * n // 8), repeats) if copy else None
            for version in versions:
                out = xp.full(n, np.nan, np.float32)
                work = -(-n // 4) if version.endswith("vec4") else n
                blocks = max(1, min(MAX_BLOCKS, -(-work // ELEMENTWISE_THREADS)))
                arguments = (x_d, out, n) if direction.endswith("forward") else (g_d, y_d, out, n, guided)
                launch = lambda: device.launch(version, blocks, *arguments)  # noqa: E731
                launch()
                result = host(out)
                seconds = timer(launch, repeats)
                row = {"version": version, "case": direction, "shape": f"{n} floats",
                       "ok": bool(np.array_equal(result, expected[direction])), "error": 0.0, "ms": seconds * 1e3,
                       "gflops": bytes_per_element * n / seconds / 1e9}
                if peer_seconds:
                    row.update(peer_ms=peer_seconds * 1e3, peer_gflops=bytes_per_element * n / peer_seconds / 1e9,
                               ratio_to_peer=peer_seconds / seconds)
                rows.append(row)
    return rows


class PoisonedDevice(Device):
    """Fills every output with NaN (or -1) before a kernel runs: an element a version
    forgets to write fails its validation. The ladders time with the fills off
    (timed_unpoisoned)."""

    poisoning = True

    def empty(self, shape, dtype=np.float32):
        array = super().empty(shape, dtype)
        if self.poisoning:
            array.fill(np.nan if np.dtype(dtype).kind == "f" else -1)
        return array


def timed_unpoisoned(timer, call, repeats):
    """`timer(call, repeats)` with every PoisonedDevice's fills off: the fills check a
    version, they are not its time. With them on, a version paid a pass over each of its
    workspaces (Winograd's transformed tensors, split-K's partial sums) and a maxpool a
    third more bytes: the first H200 run's ladders had Winograd F(4x4, 3x3) 1.4 times
    slower than the implicit GEMM on VGG-16's conv1_2 at batch 16, where bench/gpu_kernels.py,
    which never poisons, had it 0.9 times at batch 64."""
    PoisonedDevice.poisoning = False
    try:
        return timer(call, repeats)
    finally:
        PoisonedDevice.poisoning = True


# The row of the engine kept off Winograd on a shape where conv2d.py has it take Winograd:
# what kernels.choices weighs Winograd against once the engine takes it.
WITHOUT_WINOGRAD = "engine without winograd"


def run_conv(direction, launcher, shapes, repeats, timer, peer=None, rows=None):
    """Rows: every convolution rung (direct, im2col, implicit, Winograd, the engine) in one
    direction on each shape (n, c, h, w, o, k, stride, padding), against the NumPy path in
    float64."""
    from . import bind, conv2d as reference

    xp, rng, rows = launcher.xp, np.random.default_rng(0), _rows(rows)
    for n, c, h, w, o, k, stride, padding in shapes:
        x = rng.standard_normal((n, c, h, w), dtype=np.float32)
        weight = (rng.standard_normal((o, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
        out = reference.conv2d_output_size(h, k, stride, padding), reference.conv2d_output_size(w, k, stride, padding)
        grad_y = rng.standard_normal((n, o) + out, dtype=np.float32)
        # (operands, our call, the float64 reference); the reference only of `direction`:
        # each takes seconds of the host at full size
        operands = {"conv_forward": ((x, weight), lambda ops, a, b, **version: ops.forward(
                        a, b, None, stride, padding, **version), lambda: reference.conv2d_forward(
                        x.astype(np.float64), weight.astype(np.float64), None, stride, padding)),
                    "conv_backward_data": ((grad_y, weight), lambda ops, a, b, **version: ops.backward_data(
                        a, b, x.shape, stride, padding, **version), lambda: reference.conv2d_backward_data(
                        grad_y.astype(np.float64), weight.astype(np.float64), x.shape, stride, padding)),
                    "conv_backward_weights": ((grad_y, x), lambda ops, a, b, **version: ops.backward_weights(
                        a, b, weight.shape, stride, padding, **version), lambda: reference.conv2d_backward_weights(
                        grad_y.astype(np.float64), x.astype(np.float64), weight.shape, stride, padding))}
        (a, b), call, expected = operands[direction]
        a_d, b_d, expected = xp.asarray(a), xp.asarray(b), xp.asarray(expected())  # (compared on the device)
        flops = 2.0 * n * o * c * k * k * out[0] * out[1]
        peer_seconds = timer(lambda: peer(direction, a_d, b_d, x.shape, weight.shape, stride, padding), repeats) \
            if peer else None
        label = f"N{n} C{c} {h}x{w} O{o} k{k} s{stride} p{padding}"
        for convolution in LADDERS[direction]:
            ops = bind(PoisonedDevice(launcher, convolution)).conv2d
            rows.append(_validated_row(convolution, direction, label, lambda: call(ops, a_d, b_d), expected, flops,
                                       timer, repeats, xp, peer_seconds))
        # the engine with the implicit GEMM's versions it does not take (what switching
        # conv2d.py's ENGINE_IMPLICIT would time), off Winograd where it takes it
        engine_device = PoisonedDevice(launcher, "engine", engine_winograd=False)
        engine = bind(engine_device).conv2d
        kind = direction.removeprefix("conv_")
        for version in reference.IMPLICIT_VERSIONS[kind]:
            if version != reference.ENGINE_IMPLICIT[kind]:
                rows.append(_validated_row(f"engine {version}", direction, label, lambda: call(
                    engine, a_d, b_d, version=version), expected, flops, timer, repeats, xp, peer_seconds))
        if reference.engine_winograd_tile(x.shape, weight.shape, stride, padding, kind):
            rows.append(_validated_row(WITHOUT_WINOGRAD, direction, label, lambda: call(engine, a_d, b_d), expected,
                                       flops, timer, repeats, xp, peer_seconds))
        if kind != "backward_weights" and reference.few_channels_applies(engine_device, x.shape, weight.shape,
                                                                         stride, padding, kind):
            versions, taken = reference.few_channel_versions(kind)
            for version in versions:  # what switching the engine's few-channel path times
                if version != taken:
                    rows.append(_validated_row(f"engine {version}", direction, label, lambda: call(
                        engine, a_d, b_d, few_channels=version), expected, flops, timer, repeats, xp, peer_seconds))
    return rows


def gemm_operands(rng, m, n, k, transpose_a, transpose_b, xp=np):
    """Random float32 operands and their product in float64, computed with `xp` (on a GPU
    the card's float64 units take milliseconds where a host's BLAS took seconds at 4096^3),
    left there."""
    a = rng.standard_normal((k, m) if transpose_a else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if transpose_b else (k, n), dtype=np.float32)
    a64, b64 = xp.asarray(a, np.float64), xp.asarray(b, np.float64)
    return a, b, (a64.T if transpose_a else a64) @ (b64.T if transpose_b else b64)


def run_gemm(device, sizes, repeats, timer, peer=None, rows=None):
    """Rows of the table: every rung on every (m, n, k) and transpose case it handles."""
    xp, rng, rows = device.xp, np.random.default_rng(0), _rows(rows)
    for m, n, k in sizes:
        operands, peer_times = {}, {}  # per transpose case, shared by the rungs: one float64 reference each
        for rung in GEMM_LADDER:
            for transpose_a, transpose_b in filter(lambda case: rung.handles(m, *case), rung.transposes):
                if (transpose_a, transpose_b) not in operands:
                    a, b, expected = gemm_operands(rng, m, n, k, transpose_a, transpose_b, xp)
                    operands[transpose_a, transpose_b] = xp.asarray(a), xp.asarray(b), expected
                a_d, b_d, expected = operands[transpose_a, transpose_b]
                c = xp.full((m, n), np.nan, np.float32)
                rung.launch(device, a_d, b_d, c, transpose_a, transpose_b)
                error, ok = compared(c, expected, xp)
                seconds = timer(lambda: rung.launch(device, a_d, b_d, c, transpose_a, transpose_b), repeats)
                row = {"version": rung.name, "idea": rung.idea, "shape": f"{m}x{n}x{k}",
                       "case": f"{'T' if transpose_a else 'N'}{'T' if transpose_b else 'N'}",
                       "ok": ok, "error": error, "ms": seconds * 1e3, "gflops": 2.0 * m * n * k / seconds / 1e9}
                if peer is not None:
                    if (transpose_a, transpose_b) not in peer_times:
                        peer_times[transpose_a, transpose_b] = timer(lambda: peer(a_d, b_d, transpose_a, transpose_b),
                                                                     repeats)
                    peer_seconds = peer_times[transpose_a, transpose_b]
                    row.update(peer_ms=peer_seconds * 1e3, peer_gflops=2.0 * m * n * k / peer_seconds / 1e9,
                               ratio_to_peer=peer_seconds / seconds)
                rows.append(row)
    return rows


def table(rows, peak=None, unit="GFLOP/s"):
    """The rows as markdown. A peer faster than the card's FP32 peak is not computing in
    FP32 (TF32 tensor cores): it is reported as such and no ratio is given against it."""
    lines = [f"| version | case | shape | ok | max rel. error | ms | {unit} | of FP32 peak | peer ms | ours / peer speed |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        fraction = f"{r['gflops'] / 1e3 / peak:.2f}" if peak else ""
        peer = f"{r['peer_ms']:.3f} | {r['ratio_to_peer']:.2f}" if "peer_ms" in r else " | "
        if "peer_ms" in r and peak and r["peer_gflops"] / 1e3 > peak:
            peer = f"{r['peer_ms']:.3f} | peer above the FP32 peak: not an FP32 peer, not used"
        lines.append(f"| {r['version']} | {r['case']} | {r['shape']} | {'yes' if r['ok'] else 'NO'} | {r['error']:.1e} "
                     f"| {r['ms']:.3f} | {r['gflops']:.1f} | {fraction} | {peer} |")
    return "\n".join(lines)


def fastest(rows):
    """Markdown: for each case and shape, the fastest version that validated and how much
    slower the runner-up is; what the engine's choices are read against after a GPU run."""
    groups = {}
    for row in rows:
        if row["ok"]:
            groups.setdefault((row["case"], row["shape"]), []).append(row)
    lines = ["| case | shape | fastest | ms | runner-up | its time / the fastest's |",
             "| --- | --- | --- | ---: | --- | ---: |"]
    for (case, shape), group in groups.items():
        first, *rest = sorted(group, key=lambda row: row["ms"])
        second = f"{rest[0]['version']} | {rest[0]['ms'] / first['ms']:.2f}" if rest else "(none) | "
        lines.append(f"| {case} | {shape} | {first['version']} | {first['ms']:.3f} | {second} |")
    return "\n".join(lines)


def wall_clock(function, repeats):
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cuda_events(cupy):
    def timer(function, repeats):
        function()
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        times = []
        for _ in range(repeats):
            start.record()
            function()
            stop.record()
            stop.synchronize()
            times.append(cupy.cuda.get_elapsed_time(start, stop) / 1e3)
        return statistics.median(times)
    return timer


def honest_torch():
    """PyTorch on the GPU in true FP32: TF32 off for matmul and cuDNN, through the flags of
    every version that has them (cuDNN ran TF32 with allow_tf32 = False alone on PyTorch
    2.11, see bench/README.md)."""
    import torch

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    for switches in (getattr(torch.backends.cuda, "matmul", None), getattr(torch.backends.cudnn, "conv", None)):
        if switches is not None and hasattr(switches, "fp32_precision"):
            switches.fp32_precision = "ieee"
    torch.backends.cudnn.benchmark = True
    return torch


def torch_convolution(torch):
    """cuDNN through PyTorch, on our CuPy arrays (shared through the CUDA array interface)."""
    functional = torch.nn.functional

    def peer(direction, a, b, x_shape, w_shape, stride, padding):
        a, b = torch.as_tensor(a, device="cuda"), torch.as_tensor(b, device="cuda")
        if direction == "conv_forward":
            return functional.conv2d(a, b, None, stride, padding)
        if direction == "conv_backward_data":
            return torch.nn.grad.conv2d_input(x_shape, b, a, stride, padding)
        return torch.nn.grad.conv2d_weight(b, w_shape, a, stride, padding)
    return peer


# Products (m, n, k) on the emulator: sizes that are not multiples of any tile, one of all
# multiples of 4 (the float4 paths), one whose reduction the split-K rung splits, and two
# skinny ones (scalar and float4). On a GPU, besides the square one, VGG-16's fc6 at batch
# 64 (32 tiles, a 25088-long reduction) and at batch 1 (a matrix-vector product).
EMULATOR_GEMMS = [(67, 45, 33), (130, 129, 20), (132, 68, 44), (20, 36, 1100), (3, 37, 203), (4, 36, 1100)]
GPU_GEMMS = [(64, 4096, 25088), (1, 4096, 25088)]  # fc6 at batch 64 and 1, after the square one
# Convolution shapes (n, c, h, w, o, k, stride, padding): VGG-16's first two, conv2_2, a
# middle and a late layer, and CNN-F's 5x5 conv2 on a GPU (batch 16 keeps the direct
# versions within the script's minutes); on the emulator, shapes with more than one tile
# and with split-K slices, and a 5x5 at stride 1 large enough for F(2x2, 5x5) to save work.
GPU_CONVOLUTIONS = [(16, 3, 224, 224, 64, 3, 1, 1), (16, 64, 224, 224, 64, 3, 1, 1), (16, 128, 112, 112, 128, 3, 1, 1),
                    (16, 256, 56, 56, 256, 3, 1, 1), (16, 512, 14, 14, 512, 3, 1, 1), (16, 64, 27, 27, 256, 5, 1, 2)]
EMULATOR_CONVOLUTIONS = [(2, 3, 12, 11, 130, 3, 1, 1), (3, 5, 9, 7, 6, 5, 2, 2), (2, 4, 24, 23, 6, 5, 1, 2)]
# Depthwise shapes (n, c, h, w, k, stride, padding): EfficientNet-Lite0's first, a stride-2
# 5x5, a 14 x 14 and a last-stage layer at batch 64 on a GPU (the last two small planes, where
# the plane rung runs); on the emulator small awkward ones, the last two with several 16 x 16
# output tiles a plane (the tiled forward).
GPU_DEPTHWISE = [(64, 32, 112, 112, 3, 1, 1), (64, 144, 56, 56, 5, 2, 2), (64, 480, 14, 14, 3, 1, 1),
                 (64, 1152, 7, 7, 5, 1, 2)]
EMULATOR_DEPTHWISE = [(2, 3, 9, 11, 3, 1, 1), (1, 5, 10, 8, 5, 2, 2), (1, 2, 20, 35, 3, 1, 1), (1, 3, 41, 37, 5, 2, 2),
                      (1, 4, 13, 10, 3, 2, 1), (2, 3, 12, 9, 5, 1, 2)]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m deepinside.kernels.ladder", description=__doc__.split("\n\n")[0])
    parser.add_argument("family", choices=sorted(LADDERS))
    parser.add_argument("--emulator", action="store_true", help="run on the CPU emulator at small sizes")
    parser.add_argument("--size", type=int, default=4096, help="M = N = K on a GPU (default 4096)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", metavar="PATH", help="also write the rows there (what kernels.choices reads)")
    arguments = parser.parse_args(argv)
    saved = SavedRows(arguments.json, arguments.family, arguments.emulator) if arguments.json else None
    rows = _run(arguments, saved)
    if saved is not None:
        saved.save(finished=True)
    return 0 if all(r["ok"] for r in rows) else 1


def _device_copy(launcher):
    """copy(count): count floats device to device (cudaMemcpy), the bandwidth peer."""
    source = launcher.xp.empty(2 * 64 << 20, np.float32)
    target = launcher.xp.empty_like(source)

    def copy(count):
        target[:count] = source[:count]
    return copy


def _run(arguments, saved=None):
    """The ladder `arguments` ask for, its tables printed; its rows (appended to `saved`,
    a SavedRows, where given)."""

    from .launch import CudaLauncher, EmulatorLauncher

    gemm = arguments.family == "gemm"
    if arguments.family in ("relu", "maxpool", "depthwise", "elementwise"):
        launcher = EmulatorLauncher() if arguments.emulator else CudaLauncher()
        copy = None if arguments.emulator else _device_copy(launcher)
        timer = wall_clock if arguments.emulator else _cuda_events(launcher.cupy)
        repeats = 1 if arguments.emulator else arguments.repeats
        if arguments.family == "relu":
            rows = run_relu(Device(launcher), [1003, 4099] if arguments.emulator else [64 << 20], repeats, timer, copy,
                            saved)
        elif arguments.family == "depthwise":
            shapes = EMULATOR_DEPTHWISE if arguments.emulator else GPU_DEPTHWISE
            rows = run_depthwise(Device(launcher), shapes, repeats, timer, copy, saved)
        elif arguments.family == "elementwise":
            shapes = EMULATOR_ELEMENTWISE if arguments.emulator else GPU_ELEMENTWISE
            rows = run_elementwise(Device(launcher), shapes, repeats, timer, copy, saved)
        else:  # VGG-16's first pool at batch 16 on a GPU (its bytes fit the copy's buffer)
            shapes = [(2, 3, 9, 11), (1, 5, 16, 16)] if arguments.emulator else [(16, 64, 224, 224)]
            rows = run_maxpool(Device(launcher), shapes, repeats, timer, copy, saved)
        print("the peer: a device-to-device copy of as many bytes (the bandwidth ceiling)" if copy else
              "emulator: correctness only")
        print(table(rows, unit="GB/s"))
        if not arguments.emulator:
            print("\n" + fastest(rows))
        return rows
    if arguments.emulator:
        launcher, peak, peer = EmulatorLauncher(), None, None
        # Sizes that are not multiples of any tile; the last all multiples of 4 (the float4 paths).
        sizes = EMULATOR_GEMMS if gemm else EMULATOR_CONVOLUTIONS
        repeats, timer = 1, wall_clock
        print("emulator: correctness only; times are the CPU emulator's")
    else:
        launcher = CudaLauncher()
        cupy = launcher.cupy
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        peak = next((v for key, v in FP32_PEAK_TFLOPS.items() if key in name), None)
        size = arguments.size
        sizes = [(size, size, size)] + GPU_GEMMS if gemm else GPU_CONVOLUTIONS
        repeats, timer = arguments.repeats, _cuda_events(cupy)
        if gemm:
            peer = lambda a, b, ta, tb: cupy.matmul(a.T if ta else a, b.T if tb else b)  # noqa: E731 - cuBLAS
        else:
            peer = torch_convolution(honest_torch())
        print(f"{name}: FP32 peak {peak} TFLOP/s; peer: {'cuBLAS (cupy.matmul)' if gemm else 'cuDNN (PyTorch, IEEE FP32)'}")
    if gemm:
        rows = run_gemm(Device(launcher), sizes, repeats, timer, peer, saved)
    else:
        rows = run_conv(arguments.family, launcher, sizes, repeats, timer, peer, saved)
    print(table(rows, peak))
    if not arguments.emulator:
        print("\n" + fastest(rows))
    return rows


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KernelError as error:  # no GPU or no CuPy for a GPU run: one line, not a traceback
        sys.exit(f"python -m deepinside.kernels.ladder: {error}")
