"""Our CUDA kernels (kernels/*.cu) against the NumPy reference path: through the emulator
everywhere, and with real launches (marked gpu) where a GPU is usable. Outputs are
poisoned with NaN before each launch, so an element a kernel does not write fails.
With DEEPINSIDE_CHECKED_EMULATOR=1 the emulator's tests run on its bounds-checked build
(launch.CheckedEmulatorLauncher: any global access outside a launch's arrays fails it):
12 minutes on two cores, against 3.4.

Kernel files covered: conv2d.cu, gemm.cu, relu.cu, maxpool.cu, avgpool.cu, lrn.cu,
loss.cu, dropout.cu, sgd.cu, bias.cu.
"""
import os

import numpy as np
import pytest

from deepinside import engine
from deepinside.kernels.family import CONVOLUTIONS, Device
from deepinside.kernels import conv2d, gemm, maxpool as maxpool_kernels
from deepinside.kernels.gemm import split_k_slices
from deepinside.kernels.ladder import PoisonedDevice
import deepinside.kernels as K
from helpers import RecordingDevice, distinct_values, relative_error
from deepinside.kernels.launch import (KERNEL_DIR, CheckedEmulatorLauncher, CudaLauncher, EmulatorLauncher, KernelError,
                                       cuda_available)

_launchers = {}
LAUNCHERS = {"cuda": CudaLauncher, "emulator": EmulatorLauncher, "emulator-checked": CheckedEmulatorLauncher}


def launcher_for(name):
    if name == "cuda" and not cuda_available():
        pytest.skip("no usable CUDA GPU (or no CuPy) on this machine: real launches are not tested here")
    if name == "emulator" and os.environ.get("DEEPINSIDE_CHECKED_EMULATOR"):
        name = "emulator-checked"
    if name not in _launchers:
        _launchers[name] = LAUNCHERS[name]()
    return _launchers[name]


def ops_on(launcher, convolution="engine"):
    return K.bind(PoisonedDevice(launcher, convolution))


@pytest.fixture(params=["emulator", pytest.param("cuda", marks=pytest.mark.gpu)])
def launcher(request):
    return launcher_for(request.param)


@pytest.fixture(params=CONVOLUTIONS)
def ops(launcher, request):
    return ops_on(launcher, convolution=request.param)


def host(array):
    return engine.to_numpy(array)


def device(launcher, array):
    return launcher.xp.asarray(array)


@pytest.mark.parametrize("m, n, k, transpose_a, transpose_b", [
    (1, 130, 7, False, True), (129, 257, 33, False, False), (64, 3, 200, True, False), (5, 6, 1, True, True),
])
def test_sgemm_tiled(launcher, rng, m, n, k, transpose_a, transpose_b):
    ops = ops_on(launcher)
    a = rng.standard_normal((k, m) if transpose_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if transpose_b else (k, n)).astype(np.float32)
    expected = (a.T if transpose_a else a) @ (b.T if transpose_b else b)
    out = ops.gemm.product(device(launcher, a), device(launcher, b), transpose_a, transpose_b)
    assert relative_error(host(out), expected) < 1e-5


def test_sgemm_naive_and_accumulation(launcher, rng):
    a, b = rng.standard_normal((37, 19)).astype(np.float32), rng.standard_normal((19, 45)).astype(np.float32)
    c = rng.standard_normal((37, 45)).astype(np.float32)
    out = device(launcher, c.copy())
    launcher.launch("sgemm_naive", (3, 3), (16, 16), 37, 45, 19, 2.0, device(launcher, a), 0, device(launcher, b), 0, 0.5, out)
    assert relative_error(host(out), 2 * a @ b + 0.5 * c) < 1e-5
    out = device(launcher, c.copy())
    ops_on(launcher).gemm.product(device(launcher, a), device(launcher, b), out=out, beta=1.0)
    assert relative_error(host(out), a @ b + c) < 1e-5


@pytest.mark.parametrize("transpose_a, transpose_b", [(False, False), (True, False), (False, True)])
def test_sgemm_split_k_with_accumulation(launcher, rng, transpose_a, transpose_b):
    """One tile of results and a 1029-long reduction: four slices of 264 (the last 237, not a
    multiple of the staging depth), summed in order into beta C (9 rows: above the skinny
    kernels' 8)."""
    m, n, k = 9, 70, 1029
    assert split_k_slices(1, k, 8, 264) == (264, 4)
    a = rng.standard_normal((k, m) if transpose_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if transpose_b else (k, n)).astype(np.float32)
    c = rng.standard_normal((m, n)).astype(np.float32)
    out = device(launcher, c.copy())
    ops_on(launcher).gemm.product(device(launcher, a), device(launcher, b), transpose_a, transpose_b, out=out, beta=0.5)
    expected = (a.T if transpose_a else a).astype(np.float64) @ (b.T if transpose_b else b) + 0.5 * c
    assert relative_error(host(out), expected) < 1e-5


@pytest.mark.parametrize("transpose_a, transpose_b", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("k, split", [(64, False), (1000, True), (2048, True)])
def test_sgemm_8x16_async_interior_and_edge_blocks(launcher, rng, monkeypatch, transpose_a, transpose_b, k, split):
    """v13 on 260 x 192 results (3 x 2 tiles of 128): with k a multiple of 16 and every
    row 16-byte aligned, the blocks wholly inside C copy without bounds and the others with
    them, both in one launch; split along K, where the engine splits a few tiles' long
    reduction, the last split's blocks of k = 1000 (not a multiple of 16) may not skip them.
    On the emulator every access is bounds-checked: a block wrongly taken for an interior
    one in M or N reads past an operand's end, which its results would not show."""
    if isinstance(launcher, EmulatorLauncher):
        launcher = launcher_for("emulator-checked")
    monkeypatch.setattr(gemm, "ENGINE_TILED", "8x16_async")
    m, n = 260, 192
    a = rng.standard_normal((k, m) if transpose_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if transpose_b else (k, n)).astype(np.float32)
    recording = RecordingDevice(launcher)
    out = K.bind(recording).gemm.product(device(launcher, a), device(launcher, b), transpose_a, transpose_b)
    expected = (a.T if transpose_a else a).astype(np.float64) @ (b.T if transpose_b else b)
    assert relative_error(host(out), expected) < 1e-5
    case = gemm.CASES[transpose_a, transpose_b]
    assert (f"sgemm_8x16_async_splitk_{case}" if split else f"sgemm_8x16_async_{case}") in recording.kernels()


@pytest.mark.parametrize("tiled", sorted(gemm.TILED))
@pytest.mark.parametrize("transpose_b", [False, True])
@pytest.mark.parametrize("k", [37, 3000])
def test_batched_sgemm(launcher, rng, monkeypatch, tiled, transpose_b, k):
    """Three products of awkward shapes (more than one tile in rows and columns, K odd) in
    one launch of either tiled rung's batched kernel, each against NumPy in float64: a short
    reduction in one slice, and a long one that split_k_slices splits (the planes added
    here, as Winograd's transforms do)."""
    from deepinside.kernels.gemm import batched_product_device
    monkeypatch.setattr(gemm, "ENGINE_TILED", tiled)
    a = rng.standard_normal((3, 130, k))
    b = rng.standard_normal((3, 129, k) if transpose_b else (3, k, 129))
    partial = batched_product_device(PoisonedDevice(launcher), device(launcher, a.astype(np.float32)),
                                     device(launcher, b.astype(np.float32)), transpose_b)
    assert partial.shape[0] == 3 and partial.shape[2:] == (130, 129) and (partial.shape[1] > 1) == (k > 1000)
    expected = a @ (b.transpose(0, 2, 1) if transpose_b else b)
    assert relative_error(host(partial).sum(axis=1), expected) < 1e-5


@pytest.mark.parametrize("rows, tiles, inner", [(64, 300, 37), (5, 259, 37), (64, 512, 2500), (64, 129, 3000)])
def test_winograd_products_of_at_most_64_rows_run_on_the_wide_tile(launcher, rng, rows, tiles, inner):
    """Winograd's products of at most 64 rows on conv2d.cu's 64 x 256 tile, the rest on
    gemm.py's batched kernels: every product against NumPy in float64 over columns of more
    than one tile, the planes of a split reduction added here as the output transform does
    (the last two split); whole rows of 4 (the float4 stores) and not (through shared
    memory); 65 rows go to the square tiles."""
    from deepinside.kernels.conv2d import _winograd_products
    recording = RecordingDevice(launcher)
    a, b = rng.standard_normal((4, rows, inner)), rng.standard_normal((4, inner, tiles))
    partial = _winograd_products(recording, device(launcher, a.astype(np.float32)), device(launcher, b.astype(np.float32)))
    assert recording.kernels() == ["products_wide_nn"]
    assert partial.shape[0] == 4 and partial.shape[2:] == (rows, tiles) and (partial.shape[1] > 1) == (inner > 1000)
    assert relative_error(host(partial).sum(axis=1), a @ b) < 1e-5
    wider = device(launcher, rng.standard_normal((2, 65, inner)).astype(np.float32))
    _winograd_products(recording, wider, device(launcher, b[:2].astype(np.float32)))
    assert recording.kernels() == [f"{gemm_batched_kernel()}_nn"]


def gemm_batched_kernel():
    return gemm.TILED[gemm.ENGINE_TILED][2]


@pytest.mark.parametrize("tiled", sorted(gemm.TILED))
def test_the_engine_sgemm_on_either_tiled_rung(launcher, rng, monkeypatch, tiled):
    """The engine's products above 8 rows on whichever tiled rung gemm.py's ENGINE_TILED
    names (v8, v11, v12 or v13, and its split kernels): a product of two tiles each way
    (unsplit) and one tile over a 1029-long reduction (split), in every transpose case,
    beta 0.5, against NumPy in float64 (the wide rung kept off: its own test's)."""
    monkeypatch.setattr(gemm, "ENGINE_TILED", tiled)
    monkeypatch.setattr(gemm, "ENGINE_WIDE", False)
    recording = RecordingDevice(launcher)
    ops = K.bind(recording)
    for m, n, k, split in ((130, 129, 40, False), (9, 70, 1029, True)):
        for (transpose_a, transpose_b), case in gemm.CASES.items():
            a = rng.standard_normal((k, m) if transpose_a else (m, k))
            b = rng.standard_normal((n, k) if transpose_b else (k, n))
            c = rng.standard_normal((m, n))
            out = device(launcher, c.astype(np.float32))
            recording.kernels()
            ops.gemm.product(device(launcher, a.astype(np.float32)), device(launcher, b.astype(np.float32)),
                             transpose_a, transpose_b, out=out, beta=0.5)
            expected = (a.T if transpose_a else a) @ (b.T if transpose_b else b) + 0.5 * c
            assert relative_error(host(out), expected) < 1e-5
            whole, split_kernel, _, _ = gemm.TILED[tiled]
            assert recording.kernels()[0] == f"{split_kernel if split else whole}_{case}"


def test_split_k_plans_whole_waves():
    """The split whose blocks finish soonest, counting whole waves, checked by hand: fc6 at
    batch 64 (32 tiles, K 25088, 264 blocks at once) in 8 slices, one wave (9 slices, 288
    blocks, would run a second wave for 24 of them); a weight gradient of 36 tiles, one
    block an SM on 132 SMs, in 11 slices of 18248 (3 whole waves; 8 slices, 288 blocks, run
    3 waves of 25088; 7 slices, 2 waves of 28672, are 4.7% slower); no split where the
    tiles alone make whole waves, nor below the minimum depth; and none where the partial
    planes cost more than the waves save: VGG's conv1_2 forward at batch 1 (196 wide tiles, a
    576-long reduction) would finish in 3 waves of 144 instead of one of 576 (25% sooner) but
    writes and sums four 64 x 50176 planes (PLANE_COST each: 4% later in all)."""
    assert split_k_slices(196, 576, 8, 264, min_depth=8) == (144, 4)
    assert split_k_slices(196, 576, 8, 264, min_depth=8, result=64 * 50176, tile=64 * 256) == (576, 1)
    assert split_k_slices(32, 25088, 8, 264) == (3136, 8)
    assert split_k_slices(36, 64 * 56 * 56, 8, 132, min_depth=8) == (18248, 11)
    assert split_k_slices(1056, 4096, 8, 264) == (4096, 1)
    assert split_k_slices(1, 500, 8, 264) == (500, 1)
    assert split_k_slices(0, 500, 8, 264) == (500, 1) and split_k_slices(4, 0, 8, 264) == (0, 1)  # empty


@pytest.mark.parametrize("m, n, k, transpose_b", [(1, 70, 1029, True), (8, 33, 1029, False), (3, 9, 64, True),
                                                (5, 300, 2048, False)])
def test_sgemm_skinny_with_accumulation(launcher, rng, m, n, k, transpose_b):
    """The matrix-vector kernels (at most 8 rows) the engine takes for batches of 1 to 8: K
    odd (scalar loads) and a multiple of 4 (float4 loads), the nn reduction split."""
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if transpose_b else (k, n)).astype(np.float32)
    c = rng.standard_normal((m, n)).astype(np.float32)
    out = device(launcher, c.copy())
    K.bind(PoisonedDevice(launcher)).gemm.product(device(launcher, a), device(launcher, b), False, transpose_b, out=out,
                                                  beta=0.5)
    expected = a.astype(np.float64) @ (b.T if transpose_b else b) + 0.5 * c
    assert relative_error(host(out), expected) < 1e-5


@pytest.mark.parametrize("engine_wide", [False, True])
def test_products_of_9_to_64_rows_on_the_wide_tile(launcher, rng, monkeypatch, engine_wide):
    """The wide rung (conv2d.cu's products_wide_nn/nt: the implicit GEMM's 64 x 256 tile)
    for products of at most 64 rows without a transposed A, nn and nt, with beta: a partial
    tile in rows and columns, two tiles across (unsplit), and a 2053-long reduction split
    between blocks (K odd, and not a whole staging depth), against NumPy in float64; the
    engine's products of 9 to 64 rows take it exactly where ENGINE_WIDE says, never 8 rows
    (skinny), 65 (tiled) or a transposed A."""
    monkeypatch.setattr(gemm, "ENGINE_WIDE", engine_wide)
    recording = RecordingDevice(launcher)
    ops = K.bind(recording)
    for m, n, k, transpose_a, transpose_b, wide in (
            (9, 300, 40, False, False, True), (64, 513, 40, False, True, True), (37, 70, 2053, False, True, True),
            (20, 70, 2053, False, False, True), (8, 70, 64, False, True, True), (65, 70, 64, False, False, False),
            (20, 70, 64, True, False, False)):
        a = rng.standard_normal((k, m) if transpose_a else (m, k))
        b = rng.standard_normal((n, k) if transpose_b else (k, n))
        c = rng.standard_normal((m, n))
        expected = (a.T if transpose_a else a) @ (b.T if transpose_b else b) + 0.5 * c
        for version in ("engine",) + (("wide",) if wide else ()):
            out = device(launcher, c.astype(np.float32))
            ops.gemm.product(device(launcher, a.astype(np.float32)), device(launcher, b.astype(np.float32)),
                             transpose_a, transpose_b, out=out, beta=0.5, version=version)
            assert relative_error(host(out), expected) < 1e-5, (m, n, k, version)
            launched = [kernel for kernel, arguments in recording.launched]
            took = [arguments[-1] for kernel, arguments in recording.launched if kernel.startswith("products_wide")]
            recording.launched.clear()
            assert bool(took) == (wide and (version == "wide" or (engine_wide and m > 8))), (m, n, k, version, launched)
            assert not took or (took[0] > 1) == (k > 1000)  # the split count: the long reductions split
    with pytest.raises(KernelError, match="the wide product takes at most 64 rows"):
        ops.gemm.product(device(launcher, np.ones((65, 3), np.float32)), device(launcher, np.ones((3, 4), np.float32)),
                         version="wide")


CONV_CASES = [(1, 3, 7, 6, 4, 3, 1, 1), (3, 2, 9, 7, 5, 5, 2, 2), (1, 3, 23, 19, 6, 11, 4, 0),
              (3, 4, 6, 6, 3, 1, 1, 0), (1, 2, 10, 8, 3, 3, 3, 2),
              # more than one 128 x 128 tile of the implicit GEMMs' results, in rows and columns
              (2, 3, 12, 11, 130, 3, 1, 1), (1, 131, 5, 4, 2, 3, 2, 1),
              # the engine's wide 64 x 256 tiles full in rows (64 channels in and out), two of them
              # in columns forward and backward-data
              (2, 64, 12, 11, 64, 3, 1, 1),
              # 3x3 stride 1 without and with double padding (Winograd's other paddings), odd sizes;
              # the first's 42-position output planes in 2 images: runs of 4 positions that cross
              # from one image into the next (the implicit GEMM's scalar stores; planes of a
              # multiple of 4 positions, as the wide-tile case's 132, go out as float4s)
              (2, 4, 9, 8, 5, 3, 1, 0), (1, 3, 6, 7, 2, 3, 1, 2),
              # 1x1 stride 1 (compiled with constant sizes too) with padding, over one tile's rows
              (2, 3, 5, 4, 66, 1, 1, 1)]


@pytest.mark.parametrize("n, c, h, w, o, k, stride, padding", CONV_CASES)
def test_conv2d(ops, launcher, rng, n, c, h, w, o, k, stride, padding):
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((o, c, k, k)).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32)
    y = K.conv2d_forward(x, weight, bias, stride, padding)
    grad_y = rng.standard_normal(y.shape).astype(np.float32)
    d = lambda a: device(launcher, a)
    assert relative_error(host(ops.conv2d.forward(d(x), d(weight), d(bias), stride, padding)), y) < 1e-5
    assert relative_error(host(ops.conv2d.forward(d(x), d(weight), None, stride, padding)),
                          K.conv2d_forward(x, weight, None, stride, padding)) < 1e-5
    assert relative_error(host(ops.conv2d.backward_data(d(grad_y), d(weight), x.shape, stride, padding)),
                          K.conv2d_backward_data(grad_y, weight, x.shape, stride, padding)) < 1e-5
    assert relative_error(host(ops.conv2d.backward_weights(d(grad_y), d(x), weight.shape, stride, padding)),
                          K.conv2d_backward_weights(grad_y, x, weight.shape, stride, padding)) < 1e-5
    assert relative_error(host(ops.conv2d.backward_bias(d(grad_y))), K.conv2d_backward_bias(grad_y)) < 1e-5


@pytest.mark.parametrize("kernel, blocks", [("channel_sum", 8), ("batchnorm_gradient_sums", 8),
                                            ("depthwise_backward_weights_rows", 4),
                                            ("depthwise_backward_weights_shuffle_k5", 5)])
def test_split_reductions_plan_a_wave_of_the_blocks_each_kernel_declares(kernel, blocks):
    """gemm.py's sliced_reduction plans 24 channels of a million values each for a GPU of
    132 SMs holding the blocks an SM its kernel's __launch_bounds__ names (8, 4 or 5, the
    occupancy kernels.check reports), more slices than two blocks an SM would have, and adds
    the slices' planes."""
    device = Device(launcher_for("emulator"))
    assert device.launcher.kernels[kernel].resident_blocks == blocks
    planned = []

    def launch(partial, length, splits):
        planned.append((length, splits))
        partial[...] = 1.0

    out = gemm.sliced_reduction(device, kernel, np.zeros(24, np.float32), 24, 10 ** 6, 256, launch)
    (length, splits), = planned
    assert splits == {8: 43, 5: 27, 4: 22}[blocks] and length == -(-10 ** 6 // splits)  # (two blocks an SM: 11)
    assert np.array_equal(out, np.full(24, splits, np.float32))


@pytest.mark.parametrize("n, o, h, w, slices", [(2, 3, 40, 41, 12), (24, 2, 7, 7, 4), (1, 5, 16, 16, 1),
                                                (2, 1, 1, 1, 1), (4, 300, 3, 5, 1)])
def test_bias_gradient_of_channel_slices(launcher, rng, n, o, h, w, slices):
    """bias.cu's channel_sum: a block a channel and slice, each thread's (image, position)
    carried from step to step (planes of 1640, 49, 256, 1 and 15 values: a step of 256
    crossing none, several or exactly one image), the slices added in order, output
    poisoned."""
    grad_y = rng.standard_normal((n, o, h, w)).astype(np.float32)
    expected = K.conv2d_backward_bias(grad_y.astype(np.float64))
    if not isinstance(launcher, CudaLauncher):  # planned for 8 blocks an SM of an H100's 132: split as the case says
        assert split_k_slices(o, n * h * w, 1, 8 * 132, min_depth=256)[1] == slices
    ops = ops_on(launcher)
    assert relative_error(host(ops.conv2d.backward_bias(device(launcher, grad_y))), expected) < 1e-6


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("n, c, h, w, slices", [(2, 3, 40, 41, 12), (24, 2, 7, 7, 4), (4, 300, 3, 5, 1),
                                                (2, 1, 1, 1, 1)])
def test_batchnorm_reductions_of_channel_slices(launcher, rng, version, n, c, h, w, slices):
    """batchnorm.cu's statistics (mean, biased variance) and parameter gradients, v1 a block
    a channel and v2 in channel_sums.cuh's slices (the bias gradient's shapes: planes of
    1640, 49, 15 and 1 values, 12, 4 and no slices), against NumPy in float64; values off
    zero by more than their spread, where a one-pass variance would lose digits."""
    from deepinside.kernels import batchnorm
    x = (rng.standard_normal((n, c, h, w)) * 3 + 20).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    if not isinstance(launcher, CudaLauncher):  # planned for 8 blocks an SM of an H100's 132: split as the case says
        assert split_k_slices(c, n * h * w, 1, 8 * 132, min_depth=256)[1] == slices
    device_ = PoisonedDevice(launcher)
    mean, var = (host(a) for a in batchnorm.batchnorm_statistics_device(device_, device(launcher, x), version=version))
    expected_mean, expected_var = K.batchnorm_statistics(x.astype(np.float64))
    assert relative_error(mean, expected_mean) < 1e-6 and relative_error(var, expected_var) < 1e-5
    grad_gamma, grad_beta = batchnorm.batchnorm_parameter_gradients_device(
        device_, device(launcher, g), device(launcher, x), device(launcher, mean), device(launcher, var), 1e-3,
        version=version)
    _, expected_gamma, expected_beta = K.batchnorm_backward(g.astype(np.float64), x.astype(np.float64), mean, var,
                                                            np.ones(c), 1e-3, False)
    assert relative_error(host(grad_gamma), expected_gamma) < 1e-5
    assert relative_error(host(grad_beta), expected_beta) < 1e-5


# Grids of the element-wise ladder's carried walks (index_walk.cuh): steps of 32 and 96
# threads, shorter and longer than a plane of 63 values but shorter than an image's planes;
# 320, longer than an image (315 values); 512, past the whole array.
WALK_GRIDS = [(1, 32), (3, 32), (5, 64), (2, 256)]


def walked(launcher, kernel, out_shape, *arguments):
    """`kernel`'s output (the argument None stands for) on each grid of WALK_GRIDS, from
    NaN each time."""
    results = []
    for grid, block in WALK_GRIDS:
        out = device(launcher, np.full(out_shape, np.nan, np.float32))
        launcher.launch(kernel, grid, block, *(out if a is None else a for a in arguments))
        results.append(host(out))
    return results


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_batchnorm_maps_on_any_grid(launcher, rng, version):
    """batchnorm.cu's forward and backward-data, every rung: every element's channel right
    however many planes and images a thread's steps cross (the carried walk of v2), against
    the NumPy path in float64, with batch statistics and with fixed ones."""
    from deepinside.kernels import batchnorm
    n, c, h, w = 3, 5, 7, 9
    x = (rng.standard_normal((n, c, h, w)) * 3 + 2).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    mean, gamma, beta = (rng.standard_normal(c).astype(np.float32) for _ in range(3))
    var = (rng.random(c) + 0.5).astype(np.float32)
    d = lambda a: device(launcher, a)  # noqa: E731
    suffix, eps = batchnorm.VERSIONS[version], 1e-3
    expected = K.batchnorm_forward(*(a.astype(np.float64) for a in (x, mean, var, gamma, beta)), eps)
    for y in walked(launcher, "batchnorm_forward" + suffix, x.shape, d(x), d(mean), d(var), d(gamma), d(beta), None,
                    x.size, c, h * w, eps):
        assert relative_error(y, expected) < 1e-6
    for batch_statistics in (True, False):
        grad_x, grad_gamma, grad_beta = K.batchnorm_backward(
            *(a.astype(np.float64) for a in (g, x, mean, var, gamma)), eps, batch_statistics)
        for result in walked(launcher, "batchnorm_backward_data" + suffix, x.shape, d(g), d(x), d(mean), d(var),
                             d(gamma), d(grad_gamma.astype(np.float32)), d(grad_beta.astype(np.float32)), None, x.size,
                             c, h * w, eps, int(batch_statistics)):
            assert relative_error(result, grad_x) < 1e-5


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_padding_on_any_grid(launcher, rng, version):
    """pad.cu's forward and backward, both rungs, on planes of 9 x 7 padded to 12 x 10
    (asymmetric: top 2, left 1): the same walks across rows, planes and images."""
    from deepinside.kernels import pad
    x = rng.standard_normal((3, 5, 9, 7)).astype(np.float32)
    left, right, top, bottom = padding = (1, 2, 2, 1)
    padded = K.pad_forward(x, padding)
    g = rng.standard_normal(padded.shape).astype(np.float32)
    suffix, d = pad.VERSIONS[version], lambda a: device(launcher, a)
    for y in walked(launcher, "pad_forward" + suffix, padded.shape, d(x), None, 15, 9, 7, top, left, 12, 10):
        assert np.array_equal(y, padded)
    for grad_x in walked(launcher, "pad_backward" + suffix, x.shape, d(g), None, 15, 9, 7, top, left, 12, 10):
        assert np.array_equal(grad_x, K.pad_backward(g, padding))


@pytest.mark.parametrize("h, w", [(7, 7), (1, 1), (9, 8)])
def test_global_average_pool_on_any_grid(launcher, rng, h, w):
    """avgpool.cu's v2 for a 1 x 1 output: forward a warp a plane (planes of 49, 1 and 72
    values: two rounds of lanes, one lane, three), its 15 planes walked by 8 warps a block
    over 1, 2 and 5 blocks; backward on the carried walks' grids. Against NumPy in float64;
    and the engine takes them there and v1's elsewhere."""
    x = rng.standard_normal((3, 5, h, w)).astype(np.float32)
    expected = K.adaptive_avgpool_forward(x.astype(np.float64), (1, 1))
    for blocks in (1, 2, 5):
        y = device(launcher, np.full((3, 5, 1, 1), np.nan, np.float32))
        launcher.launch("global_avgpool_forward", blocks, 256, device(launcher, x), y, 15, h * w)
        assert relative_error(host(y), expected) < 1e-6
    g = rng.standard_normal((3, 5, 1, 1)).astype(np.float32)
    for grad_x in walked(launcher, "global_avgpool_backward", x.shape, device(launcher, g), None, x.size, h * w):
        assert relative_error(grad_x, K.adaptive_avgpool_backward(g.astype(np.float64), x.shape)) < 1e-6
    recording = RecordingDevice(launcher)
    ops = K.bind(recording).adaptive_avgpool
    ops.backward(ops.forward(device(launcher, x), (1, 1)), x.shape)
    ops.backward(ops.forward(device(launcher, x), (2, 1)), x.shape)
    assert recording.kernels() == ["global_avgpool_forward", "global_avgpool_backward", "adaptive_avgpool_forward",
                                   "adaptive_avgpool_backward"]


# Winograd's rounding against float64, relative to the largest output: F(4x4, 3x3)'s
# matrices hold 1/24 and 8 (errors of 1-7e-6 on these shapes, 1-6e-7 for F(2x2, 3x3)).
WINOGRAD_TOLERANCE = {"winograd": 1e-5, "winograd4": 3e-5}
WINOGRAD_5X5_TOLERANCE = WINOGRAD_TOLERANCE["winograd4"]  # F(2x2, 5x5): F(4x4, 3x3)'s points, and its rounding


@pytest.mark.parametrize("mode", sorted(conv2d.WINOGRAD_TILES))
def test_winograd_runs_where_it_applies_and_falls_back_elsewhere(rng, mode):
    """The Winograd modes' forward, backward-data and weight gradient run the Winograd
    transforms of their tile (and match the NumPy path in float64) on 3x3 stride-1
    convolutions with padding 0-2, and on 5x5 ones with padding 0-4 where the tile has an
    F(m x m, 5 x 5) (m = 2), and the engine's kernels on any other shape; batches whose
    weight gradient's reduction is split between blocks (its planes added by the
    filter-gradient transform) among them."""
    recording = RecordingDevice(launcher_for("emulator"), mode)
    ops = K.bind(recording).conv2d
    m = conv2d.WINOGRAD_TILES[mode]
    for n, (k, stride, padding) in zip((2, 2, 2, 2, 2, 2, 2, 64, 64), (
            (3, 1, 1), (3, 1, 0), (3, 1, 2), (3, 2, 1), (5, 1, 2), (5, 1, 0), (5, 1, 4), (3, 1, 1), (5, 1, 3))):
        expected = stride == 1 and m in conv2d.WINOGRAD_FILTERS[k]
        tolerance = WINOGRAD_TOLERANCE[mode] if k == 3 else WINOGRAD_5X5_TOLERANCE
        x = rng.standard_normal((n, 5, 11, 10))
        weight, bias = rng.standard_normal((7, 5, k, k)), rng.standard_normal(7)
        y = K.conv2d_forward(x, weight, bias, stride, padding)
        grad_y = rng.standard_normal(y.shape)
        f32 = lambda a: a.astype(np.float32)  # noqa: E731
        results = {"forward": (ops.forward(f32(x), f32(weight), f32(bias), stride, padding), y),
                   "backward-data": (ops.backward_data(f32(grad_y), f32(weight), x.shape, stride, padding),
                                     K.conv2d_backward_data(grad_y, weight, x.shape, stride, padding)),
                   "weight gradient": (ops.backward_weights(f32(grad_y), f32(x), weight.shape, stride, padding),
                                       K.conv2d_backward_weights(grad_y, x, weight.shape, stride, padding))}
        for direction, (result, reference) in results.items():
            assert relative_error(result, reference) < tolerance, (direction, k, stride, padding)
        splits = [arguments[1] for kernel, arguments in recording.launched
                  if kernel.startswith("winograd_filter_gradient")]
        assert splits == ([] if not expected else [1] if n < 64 else [splits[0]])
        if n == 64 and expected:  # 64 images of 6 x 5 tiles (m = 2) or 3 x 3 (m = 4): the weight gradient split
            assert splits[0] > 1
        wide = "products_wide_nn"  # 7 output channels forward, 5 input channels backward
        transforms = [name for name in recording.kernels() if name.startswith("winograd") or name == wide]
        scheme = f"{m}x{m}" + ("" if k == 3 else f"_{k}x{k}")
        assert transforms == ([f"winograd_{t}_transform_{scheme}" if t != wide else t for t in (
            "filter", "input", wide, "output", "filter", "input", wide, "output", "gradient", "input",
            "filter_gradient")] if expected else [])


@pytest.mark.parametrize("c, o", [(9, 70), (70, 9), (520, 7), (7, 520)])
def test_winograd_5x5_on_both_products(launcher, rng, c, o):
    """F(2x2, 5x5) in every direction on a CNN-F-like conv2 (5x5, stride 1, padding 2) of
    an odd map, against NumPy in float64 on NaN-filled outputs: more than 64 rows of products
    (gemm.cu's batched kernels) one way and at most 64 (the wide tile) the other; with 520
    channels on one side, the products' reduction split one way (the output transform's
    general path adding the splits) and not the other (its one-split path)."""
    x, weight, bias = rng.standard_normal((2, c, 15, 13)), rng.standard_normal((o, c, 5, 5)), rng.standard_normal(o)
    y = K.conv2d_forward(x, weight, bias, 1, 2)
    grad_y = rng.standard_normal(y.shape)
    d = lambda a: device(launcher, a.astype(np.float32))  # noqa: E731
    recording = RecordingDevice(launcher, "winograd")
    ops = K.bind(recording).conv2d
    assert relative_error(host(ops.forward(d(x), d(weight), d(bias), 1, 2)), y) < WINOGRAD_5X5_TOLERANCE
    assert relative_error(host(ops.backward_data(d(grad_y), d(weight), x.shape, 1, 2)),
                          K.conv2d_backward_data(grad_y, weight, x.shape, 1, 2)) < WINOGRAD_5X5_TOLERANCE
    assert relative_error(host(ops.backward_weights(d(grad_y), d(x), weight.shape, 1, 2)),
                          K.conv2d_backward_weights(grad_y, x, weight.shape, 1, 2)) < WINOGRAD_5X5_TOLERANCE
    splits = [arguments[1] for kernel, arguments in recording.launched if kernel.startswith("winograd_output")]
    launched = recording.kernels()
    assert launched[0] == "winograd_filter_transform_2x2_5x5" and launched[-1].endswith("transform_2x2_5x5")
    assert launched.count("products_wide_nn") == 1  # forward or backward-data, the other batched
    assert sorted(splits) == ([1, 2] if max(c, o) > 512 else [1, 1]), splits


@pytest.mark.parametrize("mode", sorted(conv2d.FUSED_WINOGRAD_TILES))
@pytest.mark.parametrize("n, c, h, w, o, padding", [
    (2, 5, 9, 11, 7, 1), (1, 17, 13, 6, 40, 0), (2, 8, 8, 8, 33, 2), (1, 6, 5, 70, 3, 1), (3, 16, 12, 12, 64, 1)])
def test_fused_winograd(launcher, rng, mode, n, c, h, w, o, padding):
    """conv2d.cu's winograd_fused_2x2 and _4x4 (F(m x m, 3x3) in one kernel after the filter
    transform), forward with and without a bias and backward-data, against NumPy in float64
    on NaN-filled outputs: input channels in partial slices (of 8 for m = 2: 5, 6, 17; of 3
    for m = 4: 5, 8, 16, 17) and whole ones, output channels in partial blocks of 32 and
    whole ones, tiles in partial blocks of 32, paddings 0-2, maps of odd sizes (partial m x
    m tiles); its weight gradient is the unfused F(m x m)'s."""
    m = conv2d.FUSED_WINOGRAD_TILES[mode]
    x, weight, bias = rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, 3, 3)), rng.standard_normal(o)
    grad_y = rng.standard_normal(K.conv2d_forward(x, weight, None, 1, padding).shape)
    d = lambda a: device(launcher, a.astype(np.float32))  # noqa: E731
    fused = [f"winograd_filter_transform_{m}x{m}", f"winograd_fused_{m}x{m}"]
    tolerance = WINOGRAD_TOLERANCE["winograd" if m == 2 else "winograd4"]
    recording = RecordingDevice(launcher, mode)
    ops = K.bind(recording).conv2d
    for b in (bias, None):
        assert relative_error(host(ops.forward(d(x), d(weight), None if b is None else d(b), 1, padding)),
                              K.conv2d_forward(x, weight, b, 1, padding)) < tolerance
        assert recording.kernels() == fused
    assert relative_error(host(ops.backward_data(d(grad_y), d(weight), x.shape, 1, padding)),
                          K.conv2d_backward_data(grad_y, weight, x.shape, 1, padding)) < tolerance
    assert recording.kernels() == fused
    ops.backward_weights(d(grad_y), d(x), weight.shape, 1, padding)
    assert recording.kernels()[0] == f"winograd_gradient_transform_{m}x{m}"


def test_the_engine_takes_winograd_5x5_from_its_channel_threshold(rng, monkeypatch):
    """ENGINE_WINOGRAD_5X5_CHANNELS: the engine's forward and backward-data run F(2x2, 5x5)
    on a 5x5 stride-1 layer whose smaller channel count reaches the direction's threshold, and
    not past it or without one (its weight gradient not even then: 8 input channels' products
    on 128-row tiles would be mostly padding); the NumPy result in float64 either way."""
    x, weight = rng.standard_normal((2, 8, 20, 19)), rng.standard_normal((12, 8, 5, 5))
    grad_y = rng.standard_normal(K.conv2d_forward(x, weight, None, 1, 2).shape)
    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    for threshold, taken in ((None, False), (8, True), (9, False)):
        monkeypatch.setattr(conv2d, "ENGINE_WINOGRAD_5X5_CHANNELS",
                            dict.fromkeys(("forward", "backward_data", "backward_weights"), threshold))
        recording = RecordingDevice(launcher_for("emulator"), "engine")
        ops = K.bind(recording).conv2d
        for direction, result, reference in (
                ("forward", lambda: ops.forward(f32(x), f32(weight), None, 1, 2),
                 lambda: K.conv2d_forward(x, weight, None, 1, 2)),
                ("backward-data", lambda: ops.backward_data(f32(grad_y), f32(weight), x.shape, 1, 2),
                 lambda: K.conv2d_backward_data(grad_y, weight, x.shape, 1, 2)),
                ("weight gradient", lambda: ops.backward_weights(f32(grad_y), f32(x), weight.shape, 1, 2),
                 lambda: K.conv2d_backward_weights(grad_y, x, weight.shape, 1, 2))):
            assert relative_error(result(), reference()) < WINOGRAD_5X5_TOLERANCE, (threshold, direction)
            winograd = "winograd_filter_transform_2x2_5x5" in recording.kernels()
            assert winograd == (taken and direction != "weight gradient"), (threshold, direction)


def test_the_engine_runs_fused_winograd_up_to_its_channel_bound(rng, monkeypatch):
    """ENGINE_WINOGRAD_FUSED: the engine's Winograd is F(2x2) fused in a direction on the
    layers whose smaller channel count is at most the direction's bound, its
    ENGINE_WINOGRAD_TILE elsewhere (here F(4x4, 3x3)), fused where
    ENGINE_WINOGRAD_TILE_FUSED says (here the forward) and unfused where not."""
    launcher = launcher_for("emulator")
    x, weight = rng.standard_normal((2, 16, 40, 40)), rng.standard_normal((64, 16, 3, 3))
    grad_y = rng.standard_normal((2, 64, 40, 40))
    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    monkeypatch.setattr(conv2d, "ENGINE_WINOGRAD_CHANNELS", {"forward": 1, "backward_data": 1, "backward_weights": 1})
    monkeypatch.setattr(conv2d, "ENGINE_WINOGRAD_TILE", 4)
    monkeypatch.setattr(conv2d, "ENGINE_WINOGRAD_TILE_FUSED", {"forward": True, "backward_data": False})
    unfused = ["winograd_filter_transform_4x4", "winograd_input_transform_4x4"]
    recording = RecordingDevice(launcher, "engine")
    ops = K.bind(recording).conv2d
    for bound, backward in ((16, ["winograd_filter_transform_2x2", "winograd_fused_2x2"]), (15, unfused)):
        monkeypatch.setattr(conv2d, "ENGINE_WINOGRAD_FUSED", {"forward": None, "backward_data": bound})
        assert relative_error(ops.forward(f32(x), f32(weight), None, 1, 1),
                              K.conv2d_forward(x, weight, None, 1, 1)) < 3e-5
        assert recording.kernels() == ["winograd_filter_transform_4x4", "winograd_fused_4x4"]
        assert relative_error(ops.backward_data(f32(grad_y), f32(weight), x.shape, 1, 1),
                              K.conv2d_backward_data(grad_y, weight, x.shape, 1, 1)) < 3e-5
        assert recording.kernels()[:2] == backward


def test_engine_takes_the_wide_tile_for_products_of_at_most_64_rows(rng):
    """The engine's implicit GEMMs run on the 64 x 256 tile exactly where the product has at
    most 64 rows (forward: output channels; backward-data: input channels; weight gradient:
    output channels), and the "implicit" rung always on the 128 x 128 one (off Winograd,
    whatever its thresholds)."""
    for mode, c, o, wide in (("engine", 64, 64, (1, 1, 1)), ("engine", 65, 66, (0, 0, 0)),
                             ("engine", 70, 64, (1, 0, 1)), ("implicit", 64, 64, (0, 0, 0))):
        recording = RecordingDevice(launcher_for("emulator"), mode, engine_winograd=False)
        ops = K.bind(recording).conv2d
        x, weight = rng.standard_normal((1, c, 17, 17)).astype(np.float32), rng.standard_normal((o, c, 3, 3))
        weight = weight.astype(np.float32)
        grad_y = rng.standard_normal((1, o, 17, 17)).astype(np.float32)
        for direction, run, expected, reference in (
                ("forward", lambda: ops.forward(x, weight, None, 1, 1), wide[0],
                 lambda: K.conv2d_forward(x, weight, None, 1, 1)),
                ("backward-data", lambda: ops.backward_data(grad_y, weight, x.shape, 1, 1), wide[1],
                 lambda: K.conv2d_backward_data(grad_y, weight, x.shape, 1, 1)),
                ("backward-weights", lambda: ops.backward_weights(grad_y, x, weight.shape, 1, 1), wide[2],
                 lambda: K.conv2d_backward_weights(grad_y, x, weight.shape, 1, 1))):
            result = run()
            tiles = [arguments[-1] for kernel, arguments in recording.launched  # the `wide` argument
                     if "implicit" in kernel or kernel.startswith("conv2d_backward_weights")]
            recording.launched.clear()
            assert tiles == [expected], (mode, c, o, direction, tiles)
            assert relative_error(result, reference()) < 1e-5


@pytest.mark.parametrize("c, k, stride, padding, columns", [
    (16, 1, 1, 0, False), (40, 1, 1, 0, False), (16, 3, 1, 1, True), (16, 1, 2, 0, True), (70, 3, 2, 1, True),
    (70, 3, 1, 1, False)])
def test_the_engines_backward_data_takes_the_column_buffer_only_where_it_saves_work(rng, c, k, stride, padding,
                                                                                     columns):
    """The engine's backward-data runs through the column buffer for strided convolutions
    and for fewer than 64 input channels with a kernel wider than 1, and through the implicit
    GEMM otherwise, pointwise convolutions of few channels included (their columns' GEMM is
    the implicit one's); against NumPy in float64 either way."""
    x, weight = rng.standard_normal((2, c, 13, 11)), rng.standard_normal((24, c, k, k))
    grad_y = rng.standard_normal(K.conv2d_forward(x, weight, None, stride, padding).shape)
    recording = RecordingDevice(launcher_for("emulator"), "engine", engine_winograd=False)
    result = K.bind(recording).conv2d.backward_data(grad_y.astype(np.float32), weight.astype(np.float32), x.shape,
                                                    stride, padding)
    assert relative_error(result, K.conv2d_backward_data(grad_y, weight, x.shape, stride, padding)) < 1e-5
    launched = recording.kernels()
    assert ("col2im" in launched) == columns, launched
    assert ("conv2d_backward_data_implicit" in launched) == (not columns), launched


@pytest.mark.parametrize("n, c, h, w, o, k, stride, padding, narrow", [
    (3, 3, 21, 19, 70, 3, 1, 1, True), (2, 1, 41, 37, 9, 5, 2, 2, True), (2, 32, 17, 17, 64, 1, 1, 0, True),
    (2, 4, 17, 17, 8, 3, 1, 1, False), (1, 33, 17, 17, 8, 1, 1, 0, False)])
def test_the_weight_gradient_of_few_columns_runs_on_the_narrow_tile(rng, n, c, h, w, o, k, stride, padding, narrow):
    """The engine's weight gradient of at most 32 columns (C K K: 27, 25, 32) on the 64 x 32
    tile, with more than 64 output channels (two rows of tiles) and its reduction over the
    images split; 36 and 33 columns on the others; the "implicit" rung never; against NumPy
    in float64 on maps of more than 256 positions (smaller ones take the column buffer)."""
    x, weight = rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, k, k))
    grad_y = rng.standard_normal(K.conv2d_forward(x, weight, None, stride, padding).shape)
    expected = K.conv2d_backward_weights(grad_y, x, weight.shape, stride, padding)
    for mode in ("engine", "implicit"):
        recording = RecordingDevice(launcher_for("emulator"), mode)
        result = K.bind(recording).conv2d.backward_weights(grad_y.astype(np.float32), x.astype(np.float32),
                                                            weight.shape, stride, padding)
        assert relative_error(result, expected) < 1e-5
        launched = recording.kernels()
        took = "conv2d_backward_weights_narrow" in launched
        assert took == (narrow and mode == "engine"), (mode, took)
        assert not took or "conv2d_sum_splits" in launched  # the few blocks' reduction split


@pytest.mark.parametrize("version", conv2d.IMPLICIT_VERSIONS["backward_weights"])
@pytest.mark.parametrize("batch, h, w, k, stride, padding", [(64, 5, 3, 3, 1, 1), (9, 3, 1, 1, 1, 0),
                                                             (40, 11, 9, 3, 2, 1)])
def test_weight_gradient_positions_across_slices_and_images(launcher, rng, version, batch, h, w, k, stride,
                                                            padding):
    """The weight gradient's positions, stepped a slice at a time from each split-K slice's
    start (splitk, async) or decoded at every slice (two_blocks), on maps narrower than a slice
    (rows wrap more than once a step, images end mid-slice) and reductions long enough to be
    split with slices starting mid-image: against NumPy, with the split checked to happen."""
    recording = RecordingDevice(launcher, "implicit")
    x, weight = rng.standard_normal((batch, 6, h, w)), rng.standard_normal((8, 6, k, k))
    grad_y = rng.standard_normal(K.conv2d_forward(x, weight, None, stride, padding).shape)
    d = lambda a: device(launcher, a.astype(np.float32))
    result = K.bind(recording).conv2d.backward_weights(d(grad_y), d(x), weight.shape, stride, padding,
                                                       version=version)
    expected = K.conv2d_backward_weights(grad_y, x, weight.shape, stride, padding)
    assert relative_error(host(result), expected) < 1e-5
    (launch,) = [arguments for kernel, arguments in recording.launched if kernel.startswith("conv2d_backward_weights")]
    slice_length, positions = launch[-2], grad_y.shape[0] * grad_y.shape[2] * grad_y.shape[3]
    assert slice_length < positions and slice_length % (grad_y.shape[2] * grad_y.shape[3]) != 0


@pytest.mark.parametrize("direction, version", [(d, v) for d, versions in conv2d.IMPLICIT_VERSIONS.items()
                                                for v in versions])
def test_implicit_gemm_versions(launcher, rng, direction, version):
    """Every version of the implicit GEMM in every direction, on both tiles and on each of its
    paths (3x3, 1x1 and, but for the weight gradient and the 8 x 16 tiles, 5x5 stride 1 with
    constant sizes, and the general one: 5x5 stride 2, on the implicit rung, since the engine
    takes the column buffer for strided backward-data):
    64 channels on the product's rows (the wide tile, where an 8 x 16 thread stages two
    columns of B) and 130 (two square tiles down), on maps of more than 256 positions (the
    engine's smaller ones take the column buffer for the weight gradient)."""
    for mode, rows, k, stride, padding in (("engine", 64, 3, 1, 1), ("engine", 130, 3, 1, 1),
                                           ("engine", 130, 1, 1, 0), ("engine", 64, 5, 1, 2),
                                           ("engine", 130, 5, 1, 2), ("implicit", 130, 5, 2, 2)):
        recording = RecordingDevice(launcher, mode)
        ops = K.bind(recording).conv2d
        c, o = (5, rows) if direction != "backward_data" else (rows, 5)
        if direction == "backward_weights":
            c = 40  # its columns C K K past the narrow tile's 32 even at 1x1 (that tile: its own test)
        x, weight = rng.standard_normal((2, c, 40, 38)), rng.standard_normal((o, c, k, k))
        y = K.conv2d_forward(x, weight, None, stride, padding)
        grad_y = rng.standard_normal(y.shape)
        d = lambda a: device(launcher, a.astype(np.float32))
        if direction == "forward":
            result, expected = ops.forward(d(x), d(weight), None, stride, padding, version=version), y
        elif direction == "backward_data":
            result = ops.backward_data(d(grad_y), d(weight), x.shape, stride, padding, version=version)
            expected = K.conv2d_backward_data(grad_y, weight, x.shape, stride, padding)
        else:
            result = ops.backward_weights(d(grad_y), d(x), weight.shape, stride, padding, version=version)
            expected = K.conv2d_backward_weights(grad_y, x, weight.shape, stride, padding)
        assert relative_error(host(result), expected) < 1e-5
        kernel = {"forward": "conv2d_forward_implicit", "backward_data": "conv2d_backward_data_implicit"}.get(
            direction, "conv2d_backward_weights")
        kernel += "" if version == "8x8" else f"_{version}"
        assert [name for name in recording.kernels() if name.startswith(("conv2d_forward", "conv2d_backward"))] \
            == [kernel]


@pytest.mark.parametrize("version", conv2d.IMPLICIT_VERSIONS["forward"])
@pytest.mark.parametrize("size, batch", [(13, 1), (7, 3)])
def test_implicit_gemm_results_on_planes_of_no_multiple_of_4_positions(launcher, rng, version, size, batch):
    """The forward's and backward-data's results where a plane holds no multiple of 4
    positions (CNN-F's 13 x 13, EfficientNet's 7 x 7: runs of 4 positions cross planes and
    images), which go out through shared memory a warp's row at a time: on the square and the
    wide tile (130 and 64 channels of results), 3x3 and 1x1, against NumPy."""
    for rows, k in ((130, 3), (64, 1), (130, 1)):
        ops = K.bind(PoisonedDevice(launcher, "engine")).conv2d
        x, weight = rng.standard_normal((batch, rows, size, size)), rng.standard_normal((rows, rows, k, k))
        bias = rng.standard_normal(rows)
        y = K.conv2d_forward(x, weight, bias, 1, k // 2)
        grad_y = rng.standard_normal(y.shape)
        d = lambda a: device(launcher, a.astype(np.float32))  # noqa: E731
        assert relative_error(host(ops.forward(d(x), d(weight), d(bias), 1, k // 2, version=version)), y) < 1e-5
        assert relative_error(host(ops.backward_data(d(grad_y), d(weight), x.shape, 1, k // 2, version=version)),
                              K.conv2d_backward_data(grad_y, weight, x.shape, 1, k // 2)) < 1e-5


def test_async_implicit_gemm_frees_its_buffers_before_the_epilogue_reuses_them(launcher, rng):
    """The async pipeline's last slice in stage 0, the start of the shared buffer, where the
    epilogue stages the results of planes of no multiple of 4 positions (7 x 7): a reduction
    of one slice (8 channels at 1x1), 130 result channels, forward and backward-data against
    NumPy. Without the epilogue's barrier before its first write (store_nchw), a thread that
    finished first overwrote the slice the others were still multiplying."""
    ops = K.bind(PoisonedDevice(launcher, "engine")).conv2d
    d = lambda a: device(launcher, a.astype(np.float32))  # noqa: E731
    x, weight = rng.standard_normal((3, 8, 7, 7)), rng.standard_normal((130, 8, 1, 1))
    assert relative_error(host(ops.forward(d(x), d(weight), None, version="async")),
                          K.conv2d_forward(x, weight, None)) < 1e-5
    grad_y, weight = rng.standard_normal((3, 8, 7, 7)), rng.standard_normal((8, 130, 1, 1))
    assert relative_error(host(ops.backward_data(d(grad_y), d(weight), (3, 130, 7, 7), version="async")),
                          K.conv2d_backward_data(grad_y, weight, (3, 130, 7, 7))) < 1e-5


@pytest.mark.parametrize("n, c, h, w, o, k, stride, padding", [
    (2, 3, 12, 11, 17, 3, 1, 1), (1, 1, 40, 35, 20, 3, 1, 0), (2, 4, 9, 33, 40, 3, 1, 2), (1, 2, 7, 6, 3, 3, 1, 3),
    (1, 3, 40, 35, 20, 7, 2, 0), (2, 4, 29, 33, 17, 7, 2, 3), (1, 3, 60, 47, 20, 11, 4, 0), (1, 2, 23, 30, 9, 11, 4, 2),
    (2, 3, 41, 37, 33, 3, 2, 0), (1, 3, 24, 70, 16, 3, 2, 1)])
@pytest.mark.parametrize("version", ["few_channels", "few_channels_async"])
def test_few_channel_backward_data(launcher, rng, monkeypatch, n, c, h, w, o, k, stride, padding, version):
    """conv2d.cu's backward-data for at most 4 input channels, each version, for each kernel
    size and stride it is compiled for (VGG's 3x3 stride 1, the shipped model's 7x7 stride 2,
    CNN-F's 11x11 stride 4, EfficientNet-Lite0's stem's 3x3 stride 2): maps of partial 32 x 8 tiles (and whose last rows and columns
    no output reaches), output channels in partial chunks of 16 (and of 8: the async
    version's), paddings 0-3, on a NaN-filled output, against NumPy in
    float64; run by the engine where ENGINE_FEW_CHANNELS_BACKWARD_DATA names it, and never
    on 5 channels or at a stride it is not compiled for."""
    x, weight = rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, k, k))
    grad_y = rng.standard_normal(K.conv2d_forward(x, weight, None, stride, padding).shape)
    d = lambda a: device(launcher, a.astype(np.float32))  # noqa: E731
    expected = K.conv2d_backward_data(grad_y, weight, x.shape, stride, padding)
    recording = RecordingDevice(launcher, "engine")
    ops = K.bind(recording).conv2d
    poisoned = K.bind(PoisonedDevice(launcher, "engine")).conv2d
    assert relative_error(host(poisoned.backward_data(d(grad_y), d(weight), x.shape, stride, padding,
                                                      few_channels=version)), expected) < 1e-5
    ops.backward_data(d(grad_y), d(weight), x.shape, stride, padding, few_channels=version)
    assert recording.kernels() == [f"conv2d_backward_data_{version}"]
    monkeypatch.setattr(conv2d, "ENGINE_FEW_CHANNELS_BACKWARD_DATA", version)
    assert relative_error(host(ops.backward_data(d(grad_y), d(weight), x.shape, stride, padding)), expected) < 1e-5
    assert recording.kernels() == [f"conv2d_backward_data_{version}"]
    for x_shape, w_shape, other_stride in (((n, 5, h, w), (o, 5, k, k), stride), ((n, c, h, w), (o, c, k, k), 3)):
        assert not conv2d.few_channels_applies(recording, x_shape, w_shape, other_stride, padding)


@pytest.mark.parametrize("n, c, h, w, o, padding, bias", [
    (2, 3, 19, 37, 17, 1, True), (1, 1, 16, 32, 16, 0, False), (1, 4, 35, 70, 40, 2, True), (3, 2, 5, 6, 3, 1, True)])
def test_few_channel_forward(launcher, rng, monkeypatch, n, c, h, w, o, padding, bias):
    """conv2d.cu's forward for at most 4 input channels, 3x3 stride 1: maps of partial 32 x 16
    tiles and exact ones, one and several tiles each way, output channels in partial chunks
    of 16, paddings 0-2, with and without a bias, against NumPy in float64; run by the
    engine where ENGINE_FEW_CHANNELS_FORWARD names it, and never on 5 channels, a 5x5 kernel
    or stride 2."""
    x, weight = rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, 3, 3))
    b = rng.standard_normal(o) if bias else None
    d = lambda a: device(launcher, a.astype(np.float32))  # noqa: E731
    expected = K.conv2d_forward(x, weight, b, 1, padding)
    recording = RecordingDevice(launcher, "engine")
    ops = K.bind(recording).conv2d
    bias_d = d(b) if bias else None
    assert relative_error(host(ops.forward(d(x), d(weight), bias_d, 1, padding, few_channels="few_channels")),
                          expected) < 1e-5
    assert recording.kernels() == ["conv2d_forward_few_channels"]
    monkeypatch.setattr(conv2d, "ENGINE_FEW_CHANNELS_FORWARD", "implicit")
    ops.forward(d(x), d(weight), bias_d, 1, padding)
    assert recording.kernels() != ["conv2d_forward_few_channels"]  # the engine's choice: the implicit GEMM
    monkeypatch.setattr(conv2d, "ENGINE_FEW_CHANNELS_FORWARD", "few_channels")
    assert relative_error(host(ops.forward(d(x), d(weight), bias_d, 1, padding)), expected) < 1e-5
    assert recording.kernels() == ["conv2d_forward_few_channels"]
    for x_shape, w_shape, stride in (((n, 5, h, w), (o, 5, 3, 3), 1), ((n, c, h, w), (o, c, 5, 5), 1),
                                     ((n, c, h, w), (o, c, 3, 3), 2)):
        assert not conv2d.few_channels_applies(recording, x_shape, w_shape, stride, padding, "forward")
    with pytest.raises(KernelError, match="conv2d forward: no few-channel version 'fast', expected one of"):
        ops.forward(d(x), d(weight), bias_d, 1, padding, few_channels="fast")


def test_the_engine_takes_winograd_from_its_channel_threshold(rng, monkeypatch):
    """conv2d.py: ENGINE_WINOGRAD_TILE and ENGINE_WINOGRAD_CHANNELS, the rule a GPU run will
    set: with a direction's threshold at 64, the engine's 3x3 stride-1 convolution in that
    direction runs that tile's Winograd on a layer of 64 channels in and out (on maps where
    it saves work) and not on one of 63 in; unset (None), never; a device made with
    engine_winograd=False, never."""
    monkeypatch.setattr(conv2d, "ENGINE_WINOGRAD_TILE", 4)
    for direction in conv2d.ENGINE_WINOGRAD_CHANNELS:
        for threshold, c, engine_winograd, tile, expected in ((64, 64, True, 4, True), (64, 63, True, None, False),
                                                              (None, 64, True, None, False),
                                                              (64, 64, False, 4, False)):
            monkeypatch.setattr(conv2d, "ENGINE_WINOGRAD_CHANNELS", dict.fromkeys(conv2d.ENGINE_WINOGRAD_CHANNELS)
                                | {direction: threshold})
            recording = RecordingDevice(launcher_for("emulator"), "engine", engine_winograd=engine_winograd)
            ops = K.bind(recording)
            x, weight = rng.standard_normal((2, c, 24, 22)), rng.standard_normal((64, c, 3, 3)) / 24
            grad_y = rng.standard_normal((2, 64, 24, 22))
            f32 = lambda a: a.astype(np.float32)  # noqa: E731
            result, reference = {
                "forward": lambda: (ops.conv2d.forward(f32(x), f32(weight), None, 1, 1),
                                    K.conv2d_forward(x, weight, None, 1, 1)),
                "backward_data": lambda: (ops.conv2d.backward_data(f32(grad_y), f32(weight), x.shape, 1, 1),
                                          K.conv2d_backward_data(grad_y, weight, x.shape, 1, 1)),
                "backward_weights": lambda: (ops.conv2d.backward_weights(f32(grad_y), f32(x), weight.shape, 1, 1),
                                             K.conv2d_backward_weights(grad_y, x, weight.shape, 1, 1))}[direction]()
            assert ("winograd_input_transform_4x4" in recording.kernels()) == expected, (direction, threshold, c)
            # what the ladder asks before timing the engine off Winograd (the device's switch aside)
            assert conv2d.engine_winograd_tile(x.shape, weight.shape, 1, 1, direction) == tile
            assert relative_error(result, reference) < WINOGRAD_TOLERANCE["winograd4"]


def test_the_engine_keeps_winograd_to_where_its_products_save_work(monkeypatch):
    """Past the channel threshold, the engine runs Winograd only where its products over
    whole tiles (128 x 128, or 64 x 256 for 64 rows) take fewer multiply-adds than the
    direct sum's: at batch 1,
    VGG-16's 14 x 14 layers have 16 tiles of 4 x 4 (2 times the direct sum's padded work for
    F(4x4, 3x3): not taken forward and backward-data; taken for the weight gradient, whose
    products are 512 x 512 whatever the batch), and 49 of 2 x 2 (0.89 of it: taken); from
    28 x 28, or at batch 16, every direction; and a 3-channel layer's weight gradient
    (products of 3 x 3 channels on 128 x 128 tiles) never."""
    monkeypatch.setattr(conv2d, "ENGINE_WINOGRAD_CHANNELS", dict.fromkeys(conv2d.ENGINE_WINOGRAD_CHANNELS, 1))
    directions = list(conv2d.ENGINE_WINOGRAD_CHANNELS)
    for tile, batch, size, channels, outputs, expected in (
            (4, 1, 14, 512, 512, (None, None, 4)), (2, 1, 14, 512, 512, (2, 2, 2)), (4, 1, 28, 512, 512, (4, 4, 4)),
            (4, 16, 14, 512, 512, (4, 4, 4)), (4, 16, 56, 3, 64, (4, 4, None)),
            # 64 output channels: the forward's products on 64 x 256 tiles, as the implicit
            # GEMM's: 49 tiles of 2 x 2 are 16 products of a 256-wide tile against 9 depths of
            # the direct sum's 196 positions on one (not taken), at 28 x 28 196 against 784
            (2, 1, 14, 512, 64, (None, 2, 2)), (2, 1, 28, 512, 64, (2, 2, 2))):
        monkeypatch.setattr(conv2d, "ENGINE_WINOGRAD_TILE", tile)
        shapes = (batch, channels, size, size), (outputs, channels, 3, 3)
        assert tuple(conv2d.engine_winograd_tile(*shapes, 1, 1, d) for d in directions) == expected, (tile, batch, size)


@pytest.mark.parametrize("tile, largest_batch", [(2, 167), (4, 297)])
def test_the_engine_keeps_winograd_within_its_32_bit_indices(monkeypatch, tile, largest_batch):
    """VGG-16's conv1_2 (64 channels, 224 x 224): its Winograd-domain tensors hold (m + 2)^2
    x 64 x (224 / m)^2 floats an image, so from a batch of 168 (m = 2) or 298 (m = 4) they
    pass 2^31 and the engine runs its other kernels there instead of refusing the batch."""
    monkeypatch.setattr(conv2d, "ENGINE_WINOGRAD_TILE", tile)
    monkeypatch.setattr(conv2d, "ENGINE_WINOGRAD_CHANNELS", dict.fromkeys(conv2d.ENGINE_WINOGRAD_CHANNELS, 64))
    for batch, expected in ((largest_batch, tile), (largest_batch + 1, None)):
        for direction in conv2d.ENGINE_WINOGRAD_CHANNELS:
            assert conv2d.engine_winograd_tile((batch, 64, 224, 224), (64, 64, 3, 3), 1, 1, direction) == expected


def test_conv2d_in_chunks_of_images(launcher, rng, monkeypatch):
    """A column buffer smaller than the batch: the fast path runs image chunks."""
    from deepinside.kernels import conv2d
    monkeypatch.setattr(conv2d, "COLUMN_BUFFER_FLOATS", 3 * 9 * 36 * 2)
    ops = ops_on(launcher, "im2col")
    x = rng.standard_normal((5, 3, 6, 6)).astype(np.float32)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    grad_y = rng.standard_normal((5, 4, 6, 6)).astype(np.float32)
    d = lambda a: device(launcher, a)
    assert relative_error(host(ops.conv2d.forward(d(x), d(weight), None, 1, 1)), K.conv2d_forward(x, weight, None, 1, 1)) < 1e-5
    assert relative_error(host(ops.conv2d.backward_weights(d(grad_y), d(x), weight.shape, 1, 1)),
                          K.conv2d_backward_weights(grad_y, x, weight.shape, 1, 1)) < 1e-5
    assert relative_error(host(ops.conv2d.backward_data(d(grad_y), d(weight), x.shape, 1, 1)),
                          K.conv2d_backward_data(grad_y, weight, x.shape, 1, 1)) < 1e-5


def test_relu_rules(launcher, rng):
    ops = ops_on(launcher)
    x = rng.standard_normal((3, 5, 7, 3)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    y = host(ops.relu.forward(device(launcher, x)))
    assert np.array_equal(y, K.relu_forward(x))
    for mode in K.MODES:
        assert np.array_equal(host(ops.relu.backward(device(launcher, g), device(launcher, y), mode)),
                              K.relu_backward(g, y, mode)), mode
    # Arrays that start 4 bytes past a 16-byte boundary: the scalar versions, not float4.
    shifted = lambda a: device(launcher, np.concatenate([[0], a.ravel()]).astype(np.float32))[1:].reshape(a.shape)
    assert launcher.address(shifted(x)) % 16 == 4
    assert np.array_equal(host(ops.relu.forward(shifted(x))), K.relu_forward(x))
    assert np.array_equal(host(ops.relu.backward(shifted(g), shifted(y), "guided")), K.relu_backward(g, y, "guided"))


@pytest.mark.parametrize("n, c, h, w, k, stride, padding, ceil_mode", [
    (1, 2, 8, 8, 2, 2, 0, False), (2, 3, 6, 10, 2, 2, 0, False), (3, 2, 9, 7, 3, 2, 0, True),
    (2, 3, 7, 8, 3, 2, 1, False), (1, 1, 10, 11, 3, 3, 1, True),
])
@pytest.mark.parametrize("version", maxpool_kernels.VERSIONS)
def test_maxpool(launcher, rng, n, c, h, w, k, stride, padding, ceil_mode, version):
    """Every version on every geometry, on distinct values and on many ties: v3's and v4's
    2x2 kernels on the first two, whose windows tile the input (v4's pairs on the first,
    v3's kernels for it on the odd output width of the second), v2's for them elsewhere."""
    poisoned = RecordingDevice(launcher)
    tiles = (k, stride, padding) == (2, 2, 0) and h % 2 == w % 2 == 0
    suffix = {"v1": "", "v2": "_planes", "v3": "_2x2" if tiles else "_planes",
              "v4": ("_2x2_pairs" if w // 2 % 2 == 0 else "_2x2") if tiles else "_planes"}[version]
    for x in (distinct_values(rng, (n, c, h, w)).astype(np.float32),
              rng.integers(0, 3, (n, c, h, w)).astype(np.float32)):  # distinct, then many ties
        y, switches = K.maxpool_forward(x, k, stride, padding, ceil_mode)
        y_dev, switches_dev = maxpool_kernels.maxpool_forward_device(poisoned, device(launcher, x), k, stride, padding,
                                                                     ceil_mode, version=version)
        assert np.array_equal(host(y_dev), y) and np.array_equal(host(switches_dev), switches)
        grad_y = rng.standard_normal(y.shape).astype(np.float32)
        grad_x = maxpool_kernels.maxpool_backward_device(poisoned, device(launcher, grad_y), switches_dev, x.shape, k,
                                                         stride, padding, version=version)
        assert relative_error(host(grad_x), K.maxpool_backward(grad_y, switches, x.shape, k, stride, padding)) < 1e-6
        assert poisoned.kernels() == [f"maxpool_forward{suffix}", f"maxpool_backward{suffix}"]


def test_maxpool_v4_takes_one_output_a_thread_off_16_byte_boundaries(launcher, rng):
    """A gradient 8 bytes past a 16-byte boundary (a view into a larger array): v4's float2
    reads of two outputs would be misaligned, so v3's kernel runs, with the same result."""
    x = distinct_values(rng, (2, 3, 8, 8)).astype(np.float32)
    y, switches = K.maxpool_forward(x, 2, 2)
    grad_y = rng.standard_normal(y.shape).astype(np.float32)
    shifted = device(launcher, np.concatenate([[0, 0], grad_y.ravel()]).astype(np.float32))[2:].reshape(y.shape)
    assert launcher.address(shifted) % 16 == 8
    poisoned = RecordingDevice(launcher)
    grad_x = maxpool_kernels.maxpool_backward_device(poisoned, shifted, device(launcher, switches), x.shape, 2, 2,
                                                     version="v4")
    assert poisoned.kernels() == ["maxpool_backward_2x2"]
    assert relative_error(host(grad_x), K.maxpool_backward(grad_y, switches, x.shape, 2, 2)) < 1e-6


@pytest.mark.parametrize("shape, output_size", [((2, 3, 7, 7), (7, 7)), ((1, 2, 13, 11), (6, 6)), ((1, 2, 2, 3), (6, 6))])
def test_adaptive_avgpool(launcher, rng, shape, output_size):
    ops = ops_on(launcher)
    x = rng.standard_normal(shape).astype(np.float32)
    y = K.adaptive_avgpool_forward(x, output_size)
    assert relative_error(host(ops.adaptive_avgpool.forward(device(launcher, x), output_size)), y) < 1e-6
    grad_y = rng.standard_normal(y.shape).astype(np.float32)
    assert relative_error(host(ops.adaptive_avgpool.backward(device(launcher, grad_y), shape)),
                          K.adaptive_avgpool_backward(grad_y, shape)) < 1e-6


@pytest.mark.parametrize("size", [5, 4, 1])
def test_lrn(launcher, rng, size):
    ops = ops_on(launcher)
    x = rng.standard_normal((3, 7, 3, 5)).astype(np.float32)
    y, scale = K.lrn_forward(x, size, 0.3, 0.75, 2.0)
    y_dev, scale_dev = ops.lrn.forward(device(launcher, x), size, 0.3, 0.75, 2.0)
    assert relative_error(host(y_dev), y) < 1e-5 and relative_error(host(scale_dev), scale) < 1e-5
    grad_y = rng.standard_normal(x.shape).astype(np.float32)
    assert relative_error(host(ops.lrn.backward(device(launcher, grad_y), device(launcher, x), scale_dev, size, 0.3, 0.75)),
                          K.lrn_backward(grad_y, x, scale, size, 0.3, 0.75)) < 1e-5


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_lrn_rungs_across_runs_of_channels(launcher, rng, version):
    """lrn.cu's rungs on 37 channels (v2's and v3's runs of 16, 16 and 5: windows across
    their ends) for every window size their ring takes, odd and even, and 9 (past the ring:
    v1's kernels), against NumPy in float64; the kernels each runs."""
    from deepinside.kernels import lrn
    x = (rng.standard_normal((2, 37, 3, 5)) * 4).astype(np.float32)
    grad_y = rng.standard_normal(x.shape).astype(np.float32)
    recording = RecordingDevice(launcher)
    for size in range(1, 10):
        y, scale = lrn.lrn_forward_device(recording, device(launcher, x), size, 0.3, 0.75, 2.0, version=version)
        expected_y, expected_scale = K.lrn_forward(x.astype(np.float64), size, 0.3, 0.75, 2.0)
        assert relative_error(host(y), expected_y) < 1e-5 and relative_error(host(scale), expected_scale) < 1e-6
        grad_x = lrn.lrn_backward_device(recording, device(launcher, grad_y), device(launcher, x), scale, size, 0.3,
                                         0.75, version=version)
        expected = K.lrn_backward(grad_y.astype(np.float64), x.astype(np.float64), expected_scale, size, 0.3, 0.75)
        assert relative_error(host(grad_x), expected) < 1e-5, size
        suffix = lrn.VERSIONS[version] if size <= 8 else ""
        assert recording.kernels() == ["lrn_forward" + suffix, "lrn_backward" + suffix]


def test_the_rungs_the_engine_takes_untimed_keep_v1s_arithmetic(rng):
    """batchnorm's maps v2 and LRN's v2 change where an element's index and terms come from,
    not the arithmetic (the design's exception for a rung the engine takes before a GPU
    times it): on the emulator, which compiles both alike, their results are v1's bit for
    bit; v3 (rsqrtf, __powf on a GPU) is not held to it."""
    from deepinside.kernels import batchnorm, lrn
    device = PoisonedDevice(launcher_for("emulator"))
    x = (rng.standard_normal((2, 37, 5, 3)) * 3 + 1).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    mean, gamma, beta = (rng.standard_normal(37).astype(np.float32) for _ in range(3))
    var = (rng.random(37) + 0.5).astype(np.float32)

    assert np.array_equal(*(host(batchnorm.batchnorm_forward_device(device, x, mean, var, gamma, beta, 1e-3,
                                                                     version=v)) for v in ("v1", "v2")))
    grad_gamma, grad_beta = (rng.standard_normal(37).astype(np.float32) for _ in range(2))  # the kernel alone:
    for batch_statistics in (1, 0):  # its sums' kernels add in another order in v2
        results = []
        for suffix in ("", batchnorm.VERSIONS["v2"]):
            results.append(device.empty(x.shape))
            device.elementwise("batchnorm_backward_data" + suffix, x.size, g, x, mean, var, gamma, grad_gamma,
                               grad_beta, results[-1], x.size, 37, 15, 1e-3, batch_statistics)
        assert np.array_equal(*map(host, results))
    for size in (5, 4):
        (y1, s1), (y2, s2) = (lrn.lrn_forward_device(device, np.abs(x), size, 1e-2, 0.75, 2.0, version=v)
                              for v in ("v1", "v2"))
        assert np.array_equal(host(y1), host(y2)) and np.array_equal(host(s1), host(s2))
        assert np.array_equal(*(host(lrn.lrn_backward_device(device, g, np.abs(x), s1, size, 1e-2, 0.75, version=v))
                                for v in ("v1", "v2")))


def test_linear(launcher, rng):
    ops = ops_on(launcher)
    x, weight, bias = (rng.standard_normal(s).astype(np.float32) for s in ((3, 130), (9, 130), (9,)))
    grad_y = rng.standard_normal((3, 9)).astype(np.float32)
    d = lambda a: device(launcher, a)
    assert relative_error(host(ops.linear.forward(d(x), d(weight), d(bias))), K.linear_forward(x, weight, bias)) < 1e-5
    assert relative_error(host(ops.linear.backward_data(d(grad_y), d(weight))), K.linear_backward_data(grad_y, weight)) < 1e-5
    assert relative_error(host(ops.linear.backward_weights(d(grad_y), d(x))), K.linear_backward_weights(grad_y, x)) < 1e-5
    assert relative_error(host(ops.linear.backward_bias(d(grad_y))), K.linear_backward_bias(grad_y)) < 1e-5


def test_dropout_loss_and_sgd(launcher, rng):
    ops = ops_on(launcher)
    x = rng.standard_normal((40, 30)).astype(np.float32)
    y, mask = ops.dropout.forward(device(launcher, x), 0.3, np.random.default_rng(5))
    y_ref, mask_ref = K.dropout_forward(x, 0.3, np.random.default_rng(5))
    assert np.allclose(host(mask), mask_ref) and np.allclose(host(y), y_ref)
    grad_y = rng.standard_normal(x.shape).astype(np.float32)
    assert np.allclose(host(ops.dropout.backward(device(launcher, grad_y), mask)), K.dropout_backward(grad_y, mask_ref))

    logits, labels = (rng.standard_normal((5, 300)) * 3).astype(np.float32), np.array([0, 299, 7, 7, 150])
    loss, probabilities = ops.softmax_cross_entropy.forward(device(launcher, logits), labels)
    loss_ref, probabilities_ref = K.softmax_cross_entropy_forward(logits, labels)
    assert abs(float(host(loss)) - float(loss_ref)) < 1e-5 and relative_error(host(probabilities), probabilities_ref) < 1e-5
    grad = ops.softmax_cross_entropy.backward(device(launcher, np.float32(1.5)), probabilities, labels)
    assert relative_error(host(grad), K.softmax_cross_entropy_backward(np.float32(1.5), probabilities_ref, labels)) < 1e-5

    weight, g, velocity = (rng.standard_normal(1000).astype(np.float32) for _ in range(3))
    expected_w, expected_v = weight.copy(), velocity.copy()
    K.sgd_update(expected_w, g, expected_v, 0.1, 0.9, 0.01)
    w_dev, v_dev = device(launcher, weight), device(launcher, velocity)
    ops.sgd.update(w_dev, device(launcher, g), v_dev, 0.1, 0.9, 0.01)
    assert relative_error(host(w_dev), expected_w) < 1e-6 and relative_error(host(v_dev), expected_v) < 1e-6


def test_launches_are_checked_before_they_start(launcher):
    ops = ops_on(launcher)
    with pytest.raises(KernelError, match="x must be float32, got float64"):
        ops.relu.forward(launcher.xp.zeros(4))
    with pytest.raises(KernelError, match="relu_forward takes 3 arguments, got 2"):
        launcher.launch("relu_forward", 1, 32, launcher.xp.zeros(4, np.float32), launcher.xp.zeros(4, np.float32))
    with pytest.raises(KernelError, match="argument y must be a C-contiguous float32 array"):
        launcher.launch("relu_forward", 1, 32, launcher.xp.zeros(4, np.float32), launcher.xp.zeros((4, 2), np.float32)[:, 0], 4)
    with pytest.raises(KernelError, match="conv2d: input .* and weights .* do not match"):
        ops.conv2d.forward(launcher.xp.zeros((1, 3, 5, 5), np.float32), launcher.xp.zeros((2, 4, 3, 3), np.float32), None)


def test_emulator_fails_a_launch_on_a_misaligned_vector_access_as_a_gpu_does():
    """A float4 load from an address that is not a multiple of 16 works on a CPU; on a GPU
    the launch fails. The emulator's alignment check fails it too, naming the kernel and
    the line of the load, and the next launch runs as usual. A misaligned store as well
    (which the CPU may do with an aligned SSE move: it took the process down before the
    thread was ended at the check)."""
    launcher = launcher_for("emulator")
    x = np.arange(65, dtype=np.float32) - 30
    with pytest.raises(KernelError, match=r"relu_forward_vec4: misaligned address: a 16-byte access at 0x[0-9a-f]+ "
                                          r"\(relu\.cu:\d+, thread 0 of block 0\)"):
        launcher.launch("relu_forward_vec4", 1, 32, x[1:], np.zeros(64, np.float32), 64)
    with pytest.raises(KernelError, match=r"relu_forward_vec4: misaligned address: a 16-byte access"):
        launcher.launch("relu_forward_vec4", 1, 32, x[:64].copy(), np.zeros(65, np.float32)[1:], 64)
    y = np.zeros(64, np.float32)
    launcher.launch("relu_forward_vec4", 1, 32, x[:64].copy(), y, 64)
    np.testing.assert_array_equal(y, np.maximum(x[:64], 0))

    # longlong2 as CUDA lays it out: 16-byte aligned, so switches 8 bytes off a boundary fail
    x, switches = np.arange(64, dtype=np.float32), np.zeros(17, np.int64)
    with pytest.raises(KernelError, match=r"maxpool_forward_2x2_pairs: misaligned address: a 16-byte access"):
        launcher.launch("maxpool_forward_2x2_pairs", 1, 32, x, np.zeros(16, np.float32), switches[1:], 1, 1, 8, 8, 4, 4)
    launcher.launch("maxpool_forward_2x2_pairs", 1, 32, x, np.zeros(16, np.float32), switches[:16], 1, 1, 8, 8, 4, 4)
    np.testing.assert_array_equal(switches[:16], [9, 11, 13, 15, 25, 27, 29, 31, 41, 43, 45, 47, 57, 59, 61, 63])


# Two groups of asynchronous copies into shared memory, then a read of other threads'
# copies after a barrier: after waiting for `wait` of them (0, 1 or both), or a misaligned
# 16-byte copy.
ASYNC_PROBE = r"""
extern "C" __global__ void async_probe(const float* __restrict__ x, float* __restrict__ y, int wait) {
  __shared__ __align__(16) float staged[2][32];
  const int t = threadIdx.x;
  staged[0][t] = staged[1][t] = -1.0f;
  cp_async_4(&staged[0][t], x + t, true);
  cp_async_commit();
  cp_async_4(&staged[1][t], x + 32 + t, t % 2 == 0);  // odd lanes: zeros, nothing read
  cp_async_commit();
  if (wait == 1) cp_async_wait(1);
  if (wait == 2) cp_async_wait(0);
  __syncthreads();
  y[t] = staged[0][(t + 1) % 32];
  y[32 + t] = staged[1][(t + 1) % 32];
}

extern "C" __global__ void async_misaligned(const float* __restrict__ x, float* __restrict__ y) {
  __shared__ __align__(16) float staged[128];
  cp_async_16(&staged[4 * threadIdx.x], x + 4 * threadIdx.x + 1, true);
  cp_async_commit();
  cp_async_wait(0);
  y[threadIdx.x] = staged[4 * threadIdx.x];
}
"""


def test_emulator_does_asynchronous_copies_only_when_waited_for(tmp_path, monkeypatch):
    """cp.async on the emulator (gemm.cu's v12): a copy lands at the wait that covers its
    group and not before, so a kernel that reads its buffer before waiting reads what was
    there before, as it may on a GPU; wait(N) leaves the newest N groups in flight; a copy
    of nothing writes zeros; a misaligned 16-byte copy fails the launch."""
    from deepinside.kernels import launch
    source = tmp_path / "probe.cu"
    source.write_text(ASYNC_PROBE)
    monkeypatch.setattr(launch, "sources", lambda: [str(source)])
    launcher = EmulatorLauncher()
    x = np.random.default_rng(3).standard_normal(64).astype(np.float32) + 2
    neighbour = (np.arange(32) + 1) % 32
    second = np.where(neighbour % 2 == 0, x[32 + neighbour], 0)
    for wait, first_landed, second_landed in ((0, False, False), (1, True, False), (2, True, True)):
        y = np.full(64, np.nan, np.float32)
        launcher.launch("async_probe", 1, 32, x, y, wait)
        np.testing.assert_array_equal(y[:32], x[neighbour] if first_landed else -1)
        np.testing.assert_array_equal(y[32:], second if second_landed else -1)
    with pytest.raises(KernelError, match=r"async_misaligned: misaligned address: a 16-byte asynchronous copy"):
        launcher.launch("async_misaligned", 1, 32, x, np.zeros(32, np.float32))


# Reads x[t + offset] into y[t] for the block's threads t, directly or through an
# asynchronous copy; and writes y[t + offset].
BOUNDS_PROBE = r"""
extern "C" __global__ void read_at(const float* __restrict__ x, float* __restrict__ y, int offset) {
  const int t = threadIdx.x;
  y[t] = x[t + offset];
}

extern "C" __global__ void copy_at(const float* __restrict__ x, float* __restrict__ y, int offset) {
  __shared__ float staged[32];
  const int t = threadIdx.x;
  cp_async_4(&staged[t], x + t + offset, true);
  cp_async_commit();
  cp_async_wait(0);
  y[t] = staged[t];
}

extern "C" __global__ void write_at(const float* __restrict__ x, float* __restrict__ y, int offset) {
  const int t = threadIdx.x;
  y[t + offset] = x[t];
}

extern "C" __global__ void address_of(const float* __restrict__ x, float* __restrict__ y) {
  y[threadIdx.x] = (float)(reinterpret_cast<unsigned long long>(x) % 256);
}
"""


def test_checked_emulator_fails_a_launch_on_an_access_outside_its_arrays(tmp_path, monkeypatch):
    """compute-sanitizer's memcheck on the CPU: a load, an asynchronous copy or a store past
    an array's end or before its start fails the launch, naming the kernel, the array, by
    how many bytes, the thread and the line; in-bounds launches write their results back,
    and two views of one array (a launch in place) share their memory; arrays start on
    256-byte boundaries, as cudaMalloc's, plus their offset from 16 bytes. The plain
    emulator has no such check."""
    from deepinside.kernels import launch
    source = tmp_path / "bounds.cu"
    source.write_text(BOUNDS_PROBE)
    monkeypatch.setattr(launch, "sources", lambda: [str(source)])
    monkeypatch.setenv("DEEPINSIDE_CACHE", str(tmp_path / "cache"))
    checked = CheckedEmulatorLauncher(workers=1)
    x = np.random.default_rng(5).standard_normal(40).astype(np.float32)
    line = {kernel: BOUNDS_PROBE.splitlines().index(text) + 1 for kernel, text in [
        ("read_at", "  y[t] = x[t + offset];"), ("copy_at", "  cp_async_4(&staged[t], x + t + offset, true);"),
        ("write_at", "  y[t + offset] = x[t];")]}
    for kernel in ("read_at", "copy_at"):
        y = np.zeros(32, np.float32)
        checked.launch(kernel, 1, 32, x, y, 8)
        np.testing.assert_array_equal(y, x[8:])
        with pytest.raises(KernelError, match=rf"{kernel}: out-of-bounds address: a 4-byte load ending 4 bytes past "
                                              rf"the end of x \(thread 29 of block 0\) \(bounds.cu:{line[kernel]}\)"):
            checked.launch(kernel, 1, 32, x, y, 11)
        with pytest.raises(KernelError, match=rf"{kernel}: .* a 4-byte load starting 8 bytes before x \(thread 0 of"):
            checked.launch(kernel, 1, 32, x, y, -2)
    with pytest.raises(KernelError, match=rf"write_at: .* a 4-byte store ending 4 bytes past the end of y \(thread 31 "
                                          rf"of block 0\) \(bounds.cu:{line['write_at']}\)"):
        checked.launch("write_at", 1, 32, x, np.zeros(32, np.float32), 1)
    in_place = x.copy()
    checked.launch("write_at", 1, 32, in_place[:32], in_place, 8)  # x[t] -> x[t + 8], t = 0..31, in order here
    np.testing.assert_array_equal(in_place[:8], x[:8])
    assert not np.array_equal(in_place[8:], x[:32])  # threads read what earlier ones wrote: one array
    for view, at in ((x, 0), (x[1:], 4), (x[2:], 8)):  # where cudaMalloc starts arrays, and 16-byte misalignment kept
        assert x.ctypes.data % 16 == 0
        checked.launch("address_of", 1, 32, view, y)
        np.testing.assert_array_equal(y, at)
    y = np.zeros(32, np.float32)
    EmulatorLauncher(workers=1).launch("read_at", 1, 32, x[:32], y, 1)  # past x's end, into the array it views
    np.testing.assert_array_equal(y, x[1:33])


# Each warp-level primitive on a block's threads t: a row of `out` (blockDim.x floats) a
# shuffle, the butterfly sum, a read of a neighbour's shared-memory store after __syncwarp;
# an 8-byte shuffle; the votes.
WARP_PROBE = r"""
extern "C" __global__ void warp_primitives(const float* __restrict__ x, const long long* __restrict__ wide,
                                           float* __restrict__ out, long long* __restrict__ wide_out,
                                           int* __restrict__ votes, int width) {
  __shared__ float staged[64];
  const int t = threadIdx.x, T = blockDim.x;
  const unsigned all = 0xffffffffu;
  const float v = x[t];
  out[t] = __shfl_sync(all, v, 5 * t - 3, width);
  out[T + t] = __shfl_up_sync(all, v, 3, width);
  out[2 * T + t] = __shfl_down_sync(all, v, 5, width);
  out[3 * T + t] = __shfl_xor_sync(all, v, 9, width);
  float sum = v;
  for (int lane_mask = 16; lane_mask > 0; lane_mask /= 2) sum += __shfl_xor_sync(all, sum, lane_mask);
  out[4 * T + t] = sum;
  staged[t] = v;
  __syncwarp();
  out[5 * T + t] = staged[t ^ 1];
  wide_out[t] = __shfl_down_sync(all, wide[t], 1);
  votes[3 * t] = (int)__ballot_sync(all, v > 0.0f);
  votes[3 * t + 1] = __any_sync(all, v > 3.0f);
  votes[3 * t + 2] = __all_sync(all, v > -3.0f);
}

extern "C" __global__ void warp_misuse(float* __restrict__ y, int problem) {
  const int t = threadIdx.x;
  float v = (float)t;
  if (problem == 0) {  // lanes 16-31 return first
    if (t >= 16) return;
    v = __shfl_sync(0xffffffffu, v, 0);
  }
  if (problem == 1 && t < 16) v = __shfl_sync(0x0000ffffu, v, t + 4);
  if (problem == 2) v = __shfl_sync(1u << ((t + 1) % 32), v, 0);
  if (problem == 3) v = __shfl_sync(0xffffffffu, v, 0);
  if (problem == 4) {
    if (t % 2) __syncwarp();
    else v = __shfl_sync(0xffffffffu, v, 0);
  }
  if (problem == 5) v = __shfl_xor_sync(t < 32 ? 0xffffffffu : 0x0000ffffu, v, 1);  // a partial last warp
  y[t] = v;
}
"""


def _shuffle_sources(threads, width):
    """{primitive: the thread each thread of warp_primitives reads}, by CUDA's rules for
    segments of `width` lanes: an up or down shift that leaves the segment, and a butterfly
    that reaches a later one, read the thread's own value."""
    t = np.arange(threads)
    lane = t % 32
    base = lane & ~(width - 1)
    offset = lane - base
    partner = lane ^ 9
    sources = {"index": base + ((5 * t - 3) & (width - 1)),
               "up": np.where(offset >= 3, lane - 3, lane),
               "down": np.where(offset + 5 < width, lane + 5, lane),
               "xor": np.where(partner < base + width, partner, lane)}
    return {name: t - lane + source for name, source in sources.items()}


@pytest.mark.parametrize("backend", ["emulator", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_warp_primitives_follow_cudas_rules(tmp_path, monkeypatch, backend):
    """__shfl_sync and its up, down and xor forms within segments of 32 and 8 lanes, the
    butterfly sum, __syncwarp ordering shared-memory stores before a neighbour's read, an
    8-byte shuffle and the votes, on two warps, against the CUDA programming guide's rules
    written in NumPy (and, on a GPU, the hardware)."""
    from deepinside.kernels import launch
    source = tmp_path / "warp.cu"
    source.write_text(WARP_PROBE)
    monkeypatch.setattr(launch, "sources", lambda: [str(source)])
    monkeypatch.setenv("DEEPINSIDE_CACHE", str(tmp_path / "cache"))
    if backend == "cuda" and not cuda_available():
        pytest.skip("no usable CUDA GPU (or no CuPy) on this machine")
    launcher = LAUNCHERS[backend]()
    xp, threads = launcher.xp, 64
    rng = np.random.default_rng(11)
    for width in (32, 8):
        x = rng.integers(-5, 6, threads).astype(np.float32)  # integers: the sums are exact in any order
        wide = rng.integers(-2 ** 62, 2 ** 62, threads, dtype=np.int64)
        out, wide_out = xp.zeros(6 * threads, np.float32), xp.zeros(threads, np.int64)
        votes = xp.zeros(3 * threads, np.int32)
        launcher.launch("warp_primitives", 1, threads, xp.asarray(x), xp.asarray(wide), out, wide_out, votes, width)
        out, wide_out, votes = (np.asarray(a.get() if hasattr(a, "get") else a) for a in (out, wide_out, votes))
        sources = _shuffle_sources(threads, width)
        for row, name in enumerate(("index", "up", "down", "xor")):
            np.testing.assert_array_equal(out[row * threads:(row + 1) * threads], x[sources[name]], err_msg=name)
        np.testing.assert_array_equal(out[4 * threads:5 * threads], np.repeat(x.reshape(2, 32).sum(1), 32))
        np.testing.assert_array_equal(out[5 * threads:], x[np.arange(threads) ^ 1])
        lane = np.arange(threads) % 32
        np.testing.assert_array_equal(wide_out, wide[np.arange(threads) + (lane < 31)])  # down by 1
        ballots = [sum(1 << lane for lane in range(32) if x[32 * w + lane] > 0) for w in range(2)]
        np.testing.assert_array_equal(votes[0::3].view(np.uint32), np.repeat(ballots, 32))
        np.testing.assert_array_equal(votes[1::3], np.repeat((x.reshape(2, 32) > 3).any(1), 32))
        np.testing.assert_array_equal(votes[2::3], np.repeat((x.reshape(2, 32) > -3).all(1), 32))


def test_emulator_fails_a_launch_that_misuses_a_warp_primitive(tmp_path, monkeypatch):
    """What is undefined on a GPU (compute-sanitizer's synccheck) fails the emulator's
    launch with what went wrong: lanes waited for that returned, a source lane outside the
    mask, a mask without the caller's lane or with lanes the warp lacks, and lanes that meet
    at different primitives; a partial last warp with a mask of its lanes runs."""
    from deepinside.kernels import launch
    source = tmp_path / "warp.cu"
    source.write_text(WARP_PROBE)
    monkeypatch.setattr(launch, "sources", lambda: [str(source)])
    monkeypatch.setenv("DEEPINSIDE_CACHE", str(tmp_path / "cache"))
    emulator = EmulatorLauncher(workers=1)
    for problem, threads, message in (
            (0, 32, "a warp-level primitive waits for lanes that returned or wait at a __syncthreads"),
            (1, 32, r"__shfl_sync: lane 12 reads lane 16, outside the mask 0x0000ffff"),
            (2, 32, r"__shfl_sync: its mask 0x00000002 leaves out the caller's lane 0 \(thread 0 of block 0\)"),
            (3, 48, r"__shfl_sync: its mask 0xffffffff names lanes the warp does not have \(it has 16\)"),
            (4, 32, r"__syncwarp: lane 0 of the warp meets it at __shfl_sync with the mask 0xffffffff")):
        with pytest.raises(KernelError, match=rf"warp_misuse: {message}"):
            emulator.launch("warp_misuse", 1, threads, np.zeros(threads, np.float32), problem)
    y = np.zeros(48, np.float32)
    emulator.launch("warp_misuse", 1, 48, y, 5)
    np.testing.assert_array_equal(y, np.arange(48) ^ 1)


def test_emulator_runtime_refuses_a_bad_launch_shape_of_its_own():
    # The launcher refuses it first (tests/test_launch_limits.py); the runtime, whose threads
    # a block are bounded, guards itself as well.
    launcher = launcher_for("emulator")
    x = np.zeros(8, np.float32)
    parameters = launcher.kernels["relu_forward"].parameters
    with pytest.raises(KernelError, match="bad launch shape"):
        launcher._start("relu_forward", parameters, (1, 1, 1), (2048, 1, 1), [x, x.copy(), np.int64(8)])


# the whole engine on our kernels ---------------------------------------------------------

def engine_gradient(backend, net, x, grad_output, mode):
    net.to(backend)
    try:
        image = engine.Tensor(x, requires_grad=True, backend=backend)
        out = net(image)
        (gradient,) = engine.grad(out, [image], grad_output=grad_output, mode=mode)
        return out.numpy(), engine.to_numpy(gradient)
    finally:
        net.to("numpy")


@pytest.mark.parametrize("backend", ["emulator", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("mode", K.MODES)
@pytest.mark.parametrize("seed", [0, 3, 5])
def test_whole_net_forward_and_input_gradient_match_numpy(backend, mode, seed):
    launcher_for(backend)
    from test_torch_oracle import random_architecture
    net, shape = random_architecture(seed)
    r = np.random.default_rng(seed)
    x = r.standard_normal(shape).astype(np.float32)
    grad_output = r.standard_normal((shape[0], 4)).astype(np.float32)
    expected = engine_gradient("numpy", net, x, grad_output, mode)
    actual = engine_gradient(backend, net, x, grad_output, mode)
    assert relative_error(actual[0], expected[0]) < 1e-4 and relative_error(actual[1], expected[1]) < 1e-4


@pytest.mark.parametrize("backend", ["emulator", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_small_cnn_f_and_a_training_step_match_numpy(backend):
    launcher_for(backend)
    from deepinside import models
    net = models.cnn_f(num_classes=5, width=1 / 16, input_size=67).eval()
    r = np.random.default_rng(2)
    x = (r.standard_normal((2, 3, 67, 67)) * 40).astype(np.float32)
    seed = r.standard_normal((2, 5)).astype(np.float32)
    for mode in K.MODES:
        expected, actual = engine_gradient("numpy", net, x, seed, mode), engine_gradient(backend, net, x, seed, mode)
        assert relative_error(actual[1], expected[1]) < 1e-4, mode

    def train_step(name):
        with engine.use_backend(name):
            engine.nn.manual_seed(9)
            twin = models.cnn_f(num_classes=5, width=1 / 16, input_size=67).train()
            assert twin.backend.name == name and twin[0].weight.backend.name == name
            optimiser = engine.optim.SGD(twin.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
            loss = engine.functional.cross_entropy(twin(engine.Tensor(x)), [0, 3])
            loss.backward()
            optimiser.step()
            return float(engine.to_numpy(loss.data)), engine.to_numpy(twin[16].weight.data)

    (loss_ref, weight_ref), (loss, weight) = train_step("numpy"), train_step(backend)
    assert abs(loss - loss_ref) < 1e-4 * max(1, abs(loss_ref)) and relative_error(weight, weight_ref) < 1e-4


# building and checking the kernels -------------------------------------------------------

GOOD_KERNEL = 'extern "C" __global__ void scale(const float* x, float* y, int n) { int i = threadIdx.x; if (i < n) y[i] = 2.0f * x[i]; }\n'


def test_emulator_cache_is_rebuilt_when_a_source_changes(tmp_path, monkeypatch):
    import deepinside.kernels.launch as launch
    source = tmp_path / "scale.cu"
    source.write_text(GOOD_KERNEL)
    monkeypatch.setattr(launch, "sources", lambda: [str(source)])
    monkeypatch.setenv("DEEPINSIDE_CACHE", str(tmp_path / "cache"))
    first = launch.build_emulator(launch.read_kernels()[0])
    stamp = os.path.getmtime(first)
    assert launch.build_emulator(launch.read_kernels()[0]) == first
    assert os.path.getmtime(first) == stamp  # reused, not rebuilt
    source.write_text(GOOD_KERNEL.replace("2.0f", "3.0f"))
    second = launch.build_emulator(launch.read_kernels()[0])
    assert second != first
    emulator = EmulatorLauncher(workers=1)  # built from the changed source
    x = np.arange(5, dtype=np.float32)
    y = np.full(5, np.nan, np.float32)
    emulator.launch("scale", 1, 32, x, y, 5)
    assert np.array_equal(y, 3 * x)


def test_emulator_compile_error_names_the_file_and_shows_the_log(tmp_path, monkeypatch):
    import deepinside.kernels.launch as launch
    source = tmp_path / "broken.cu"
    source.write_text(GOOD_KERNEL.replace("2.0f * x[i]", "2.0f * undefined_name[i]"))
    monkeypatch.setattr(launch, "sources", lambda: [str(source)])
    monkeypatch.setenv("DEEPINSIDE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(KernelError, match="(?s)broken.cu failed.*undefined_name"):
        launch.build_emulator(launch.read_kernels()[0])


@pytest.fixture(scope="module")
def gemm_for_sm_90(tmp_path_factory):
    """gemm.cu compiled by NVRTC for sm_90, once for the tests that read it: (ok, ptxas's
    rows, the machine code's path)."""
    from deepinside.kernels.check import compile_report, load_nvrtc
    if load_nvrtc() is None:
        pytest.skip("no NVRTC on this machine (the test extra installs it)")
    cubin = str(tmp_path_factory.mktemp("gemm") / "gemm.cubin")
    ok, rows, _ = compile_report(os.path.join(KERNEL_DIR, "gemm.cu"), "sm_90", cubin=cubin, split=True)
    return ok, rows, cubin


def test_compile_check_reports_registers_and_errors(tmp_path, gemm_for_sm_90):
    from deepinside.kernels.check import compile_report
    ok, rows, _ = gemm_for_sm_90
    tiled = [r for r in rows if r["kernel"] == "sgemm_tiled"]
    assert ok and tiled and tiled[0]["registers"] <= 128 and tiled[0]["smem_bytes"] == 8192
    assert tiled[0]["spill_store_bytes"] == 0
    (tmp_path / "broken.cu").write_text(GOOD_KERNEL.replace("2.0f * x[i]", "2.0f * undefined_name[i]"))
    ok, _, log = compile_report(str(tmp_path / "broken.cu"), "sm_80")
    assert not ok and "undefined_name" in log


def _check_only(tmp_path, monkeypatch, declaration):
    """kernels.check made to compile one file of one small kernel, `declaration` its
    launch bounds (if any) and name."""
    from deepinside.kernels import check, launch
    source = tmp_path / "one.cu"
    source.write_text(f'extern "C" __global__ void {declaration}(float* __restrict__ y, int n) {{\n'
                      "  if (threadIdx.x < n) y[threadIdx.x] = 1.0f;\n}\n")
    monkeypatch.setattr(check, "sources", lambda: [str(source)])
    monkeypatch.setattr(launch, "sources", lambda: [str(source)])


def test_compile_check_counts_the_blocks_an_sm_holds(tmp_path, monkeypatch, capsys):
    """By hand: 8 warps of 128 registers fill half the 64 K registers (2 blocks), of 144
    registers (rounded to 4608 a warp) more than half (1); 96 KiB of shared memory (and the
    1 KiB reserve) fit once in an A100's 164 KiB. A kernel promising 3 blocks of 1024
    threads an SM (2048 threads at most) fails the check, which ptxas only warns about."""
    from deepinside.kernels import check
    assert check.resident_blocks(128, 36864, 256, "sm_90") == 2
    assert check.resident_blocks(144, 36864, 256, "sm_90") == 1
    assert check.resident_blocks(32, 96 << 10, 256, "sm_80") == 1
    if check.load_nvrtc() is None:
        pytest.skip("no NVRTC on this machine (the test extra installs it)")
    _check_only(tmp_path, monkeypatch, "__launch_bounds__(1024, 3) promise")
    assert check.main() == 1
    assert "promise promises 3 blocks an SM (__launch_bounds__) but 2 fit on sm_80" in capsys.readouterr().err


def _listing(kernel, body):
    """An nvdisasm-style listing of one kernel: (label or None, instruction) pairs."""
    lines, address = [f".text.{kernel}:"], 0
    for label, instruction in body:
        if label:
            lines.append(f"{label}:")
        lines.append(f"        /*{address:04x}*/                   {instruction} ;")
        address += 16
    return "\n".join(lines) + "\n"


def test_main_loops_are_found_and_counted_in_a_listing():
    """A loop is a branch back to an earlier label, its instructions those between them;
    a forward branch is none, and a loop of few FFMAs, or of as many without a shared-memory
    load (an element-wise transform's), is not a main loop."""
    from deepinside.kernels.check import HOT_LOOP_FMAS, hot_loops, loop_row
    body = [(None, "S2R R0, SR_TID.X"), (None, "@P0 BRA `(.L_x_9)")]
    body += [(".L_x_1", "LDS.128 R4, [R2]")] + [(None, "FFMA R8, R4, R5, R8")] * HOT_LOOP_FMAS
    body += [(None, "LDL R3, [R1+0x4]"), (None, "@!P1 STS [R2], R3"), (None, "BAR.SYNC.DEFER_BLOCKING 0x0"),
             (None, "@P2 BRA `(.L_x_1)")]
    body += [(".L_x_2", "FFMA R9, R4, R5, R9"), (None, "@P3 BRA `(.L_x_2)"), (".L_x_9", "EXIT")]
    unstaged = [(".L_x_3", "LDG.E R4, [R2.64]")] + [(None, "FFMA R8, R4, R5, R8")] * HOT_LOOP_FMAS
    unstaged += [(None, "@P2 BRA `(.L_x_3)"), (None, "EXIT")]
    loops = hot_loops(_listing("tiled", body) + _listing("small", body[-3:]) + _listing("unstaged", unstaged))
    (mix,) = loops["tiled"]
    assert "small" not in loops and "unstaged" not in loops
    assert loop_row(mix) == (HOT_LOOP_FMAS + 5, HOT_LOOP_FMAS, 1, 1, 0, 1, 1, HOT_LOOP_FMAS / (HOT_LOOP_FMAS + 5))
    every = hot_loops(_listing("small", body[-3:]) + _listing("unstaged", unstaged), least_fmas=0, staged=False)
    assert [loop_row(m)[:2] for m in every["small"]] == [(2, 1)]
    assert [loop_row(m)[:5] for m in every["unstaged"]] == [(HOT_LOOP_FMAS + 2, HOT_LOOP_FMAS, 0, 0, 1)]


def test_check_prints_every_loop_of_one_file(tmp_path, capsys):
    """`kernels.check --loops FILE`: each kernel's loops with their instructions and FFMAs,
    from the file compiled as CuPy compiles it; a missing file is a usage error."""
    from deepinside.kernels import check
    with pytest.raises(SystemExit) as exit_info:
        check.main(["--loops", str(tmp_path / "missing.cu")])
    assert exit_info.value.code == 2 and "--loops: no file" in capsys.readouterr().err
    if check.load_nvrtc() is None or check.find_nvdisasm() is None:
        pytest.skip("no NVRTC or nvdisasm on this machine (the test extra installs them)")
    source = tmp_path / "loop.cu"
    source.write_text('extern "C" __global__ void scale_all(float* __restrict__ y, const float* __restrict__ x, '
                      "int n) {\n  for (int i = threadIdx.x; i < n; i += blockDim.x) y[i] = 3.0f * x[i] + y[i];\n}\n")
    assert check.main(["--loops", str(source), "--arch", "sm_80"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("scale_all ")]
    assert rows and all(int(row[1]) > int(row[2]) for row in rows) and max(int(row[2]) for row in rows) >= 1


def test_a_kernel_past_the_machine_code_limit_fails_the_check(tmp_path, monkeypatch, capsys):
    """kernel_sizes counts a listing's instructions per kernel; the check fails a kernel over
    MAX_KERNEL_INSTRUCTIONS (here set below a two-line kernel's size)."""
    from deepinside.kernels import check
    body = [(None, "S2R R0, SR_TID.X"), (".L_x_1", "FFMA R8, R4, R5, R8"), (None, "EXIT")]
    assert check.kernel_sizes(_listing("a", body) + _listing("b", body[:1])) == {"a": 3, "b": 1}
    if check.load_nvrtc() is None or check.find_nvdisasm() is None:
        pytest.skip("no NVRTC or nvdisasm on this machine (the test extra installs them)")
    _check_only(tmp_path, monkeypatch, "large")
    monkeypatch.setattr(check, "MAX_KERNEL_INSTRUCTIONS", 5)
    assert check.main() == 1
    assert "FAILED: large is " in capsys.readouterr().err
    monkeypatch.setattr(check, "MAX_KERNEL_INSTRUCTIONS", 40_000)
    assert check.main() == 0


def test_a_spill_inside_a_main_loop_fails_the_check_on_the_target_cards(capsys):
    from collections import Counter
    from deepinside.kernels.check import report_loops
    spilling = Counter(FFMA=512, LDS=32, LDL=2)
    assert report_loops([("x.cu", "spills", "sm_90", spilling)], "nvdisasm") == 1
    assert "FAILED: spills spills inside a main loop on sm_90" in capsys.readouterr().err
    assert report_loops([("x.cu", "spills", "sm_80", spilling)], "nvdisasm") == 0
    assert "note: spills spills inside a main loop on sm_80" in capsys.readouterr().out


def test_v8_main_loop_holds_what_its_source_says(gemm_for_sm_90):
    """sgemm_pipelined_nn's slice: 8 depths of 8 x 8 FMAs a thread (512 FFMAs), 2 + 2 float4
    shared loads a depth (32 LDS), one barrier, no spill, as nvdisasm reads the machine code."""
    import subprocess
    from deepinside.kernels.check import find_nvdisasm, hot_loops, loop_row
    if find_nvdisasm() is None:
        pytest.skip("no nvdisasm on this machine")
    ok, _, cubin = gemm_for_sm_90
    assert ok
    listing = subprocess.run([find_nvdisasm(), cubin], capture_output=True, text=True, check=True).stdout
    (mix,) = hot_loops(listing)["sgemm_pipelined_nn"]
    count, fmas, lds, _, _, local, barriers, share = loop_row(mix)
    assert (fmas, lds, local, barriers) == (512, 32, 0, 1) and 0.5 < share < 1


@pytest.mark.parametrize("batch", [1, 64])
def test_no_vgg_layer_is_planned_slower_than_by_the_rule_before(batch):
    """bench/split_plans.py: by the wave model the planner minimises, no VGG-16 product's
    plan (wide tiles, whole waves) costs more than the square-tile, about-264-blocks plan it
    replaced, beyond the planner's tolerance for fewer slices."""
    import subprocess
    import sys
    script = os.path.join(os.path.dirname(KERNEL_DIR), "bench", "split_plans.py")
    result = subprocess.run([sys.executable, script, "--batch", str(batch)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    ratios = [float(line.rsplit("|", 2)[1]) for line in result.stdout.splitlines() if line.startswith("| C")]
    # 13 forward, 12 backward-data (conv1_1's takes the column buffer), 10 weight gradients
    # (the 14 x 14 layers' take it too)
    assert len(ratios) == 13 + 12 + 10 and max(ratios) <= 1.03


def test_the_winograd_model_counts_as_its_docstring_says(monkeypatch, capsys):
    """bench/winograd_model.py on VGG-16's conv3_2 at batch 64, F(4x4, 3x3) forward, worked
    out by hand: 36 products of 256 x 12544 (98 whole tiles of 128) over 256 channels, and
    the activations in and out (64 x 256 x 56^2 floats each) plus V and the products (36 x
    256 x 12544 floats each) written and read once; and a row per layer and direction."""
    monkeypatch.syspath_prepend(os.path.join(os.path.dirname(KERNEL_DIR), "bench"))
    import winograd_model
    flops, moved, _ = winograd_model.estimate(64, 256, 256, 56, 4, "forward")
    assert flops == 2 * 36 * 256 * 12544 * 256 == 59190018048
    assert moved == 2 * 64 * 256 * 56 * 56 * 4 + 2 * 2 * 36 * 256 * 12544 * 4 == 2260729856
    # conv2_1's backward-data: 64 rows (input channels) of 50176 tiles (196 whole tiles of 256)
    # on the 64 x 256 tile, no padding row (on 128 x 128 tiles it was twice this)
    assert winograd_model.estimate(64, 64, 128, 112, 4, "backward-data")[0] == 2 * 36 * 64 * 50176 * 128
    winograd_model.main(["--batch", "1", "--results", ""])
    assert sum(line.startswith("| C") for line in capsys.readouterr().out.splitlines()) == 13 * 3


def test_every_new_rung_on_whole_networks_agrees_with_numpy(monkeypatch, capsys):
    """bench/engine_agreement.py with every rung the engine does not take yet turned on
    (Winograd F(4x4, 3x3) from one channel among them), on the emulator: each network's
    scores within float32's rounding of the NumPy path's, its saliency map too but at the
    few pixels a flipped max-pool switch or ReLU moves (at most 1% of them), and the engine's
    choices as they were afterwards."""
    monkeypatch.syspath_prepend(os.path.join(os.path.dirname(KERNEL_DIR), "bench"))
    import engine_agreement
    from deepinside.kernels import choices
    before = choices.current()
    assert engine_agreement.main([]) == 0
    rows = [line.split("|")[1:5] for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][2:]
    assert [name.strip() for name, *_ in rows] == ["vgg16", "cnn_f", "efficientnet_lite0"]
    for _, scores, saliency, moved in rows:
        assert float(scores) < 1e-5 and (float(saliency) < 1e-5 or float(moved.strip(" %")) <= 1.0)
    assert choices.current() == before


def test_gpu_benchmark_script_runs_on_the_emulator(tmp_path):
    """bench/gpu_kernels.py, which bench/gpu_check.sh runs on a GPU, with tiny shapes on
    the emulator: every row is produced and the tables are written."""
    import json
    import subprocess
    import sys
    script = os.path.join(os.path.dirname(KERNEL_DIR), "bench", "gpu_kernels.py")
    result = subprocess.run([sys.executable, script, str(tmp_path), "--emulator"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads((tmp_path / "gpu_kernels.json").read_text())
    rows = results["rows"]
    from deepinside.kernels import gemm
    assert results["engine"]["gemm.ENGINE_TILED"] == gemm.ENGINE_TILED  # which code the figures are of
    assert f"`conv2d.ENGINE_WINOGRAD_CHANNELS = {conv2d.ENGINE_WINOGRAD_CHANNELS!r}`" in (
        tmp_path / "gpu_kernels.md").read_text()
    # two batches, the 16 layers of 3x3 stride 1, three directions of two tiles and two of each
    # fused one, and CNN-F's 5x5 stride-1 layer, three directions of F(2x2, 5x5)
    winograd = 2 * 16 * (3 * 2 + 2 * 2) + 2 * 3
    # EfficientNet-Lite0: 49 convolutions of 32 shapes (its stem, 12 depthwise, 19 pointwise)
    assert sum(r["group"] == "conv" for r in rows) == 2 * (18 + 32) * 3 + winograd
    efficientnet = [r["shape"] for r in rows if r["shape"].startswith("efficientnet_lite0 N2 ")]
    assert sum(" g" in shape for shape in efficientnet) == 12 * 3 and sum(" k1 " in shape for shape in efficientnet) == 19 * 3
    assert "efficientnet_lite0 N2 C3 O2 14x14 k3 s2 p0,1" in efficientnet  # the stem: SAME at stride 2, scaled
    assert sum(r["group"] == "linear" for r in rows) == 12
    assert all(r["ours_ms"] > 0 for r in rows)
    assert "| conv | vgg16 N64" not in (tmp_path / "gpu_kernels.md").read_text()  # emulator sizes only


def test_gpu_benchmark_summary_of_the_targets(monkeypatch):
    """The targets' summary over rows made by hand: medians and lowest ratios of VGG-16's
    batch-64 layers, the layers whose peer ran above the FP32 peak counted apart."""
    monkeypatch.syspath_prepend(os.path.join(os.path.dirname(KERNEL_DIR), "bench"))
    import gpu_kernels

    def conv(ratio, peer_tflops, shape="vgg16 N64 C64 O64 224x224 k3 s1 p1"):
        return {"group": "conv", "shape": shape, "direction": "forward", "ratio_to_peer": ratio,
                "peer_tflops": peer_tflops}
    rows = [conv(0.5, 40.0), conv(0.9, 50.0), conv(0.3, 100.0), conv(0.2, 130.0), conv(0.1, 10.0, "vgg16 N1 C64")]
    rows.append({"group": "sgemm", "shape": "4096^3", "direction": "C = A B", "ratio_to_peer": 0.77})
    summary = gpu_kernels.target_summary(rows, 67.0)
    assert "median 0.40, lowest 0.20 over 4 layers; peer under the FP32 peak on 2: median 0.70" in summary
    assert "| SGEMM 4096^3 >= 0.9 | 0.77 |" in summary and "backward-data" not in summary
    assert gpu_kernels.above_peak(rows[2], 67.0) and not gpu_kernels.above_peak(rows[0], 67.0)
    # a Winograd mode's rows beside the engine's: the best of the two per layer (0.6, 0.9, 0.3, 0.25)
    rows += [dict(r, direction="forward (winograd_fused4)", ratio_to_peer=v) for r, v in zip(rows[:4], (0.6, 0.1, 0.2, 0.25))]
    assert ("fastest of the engine and the Winograd modes (what choosing per layer could reach): median >= 0.8 | "
            "median 0.45, lowest 0.25 over 4 layers |") in gpu_kernels.target_summary(rows, 67.0)
    assert not gpu_kernels.above_peak(rows[2], None)  # no peak known for the card


def test_emulator_aborts_a_divergent_barrier_instead_of_hanging(tmp_path, monkeypatch):
    import deepinside.kernels.launch as launch
    source = tmp_path / "divergent.cu"
    source.write_text('extern "C" __global__ void divergent(float* y, int n) {\n'
                      '  if (threadIdx.x < 2) { __syncthreads(); y[threadIdx.x] = 1.0f; }\n'
                      '  else { __syncthreads(); y[threadIdx.x] = 2.0f; }\n}\n')
    monkeypatch.setattr(launch, "sources", lambda: [str(source)])
    monkeypatch.setenv("DEEPINSIDE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(KernelError, match="divergent __syncthreads: threads of one block wait at lines 2 and 3"):
        EmulatorLauncher(workers=1).launch("divergent", 1, 4, np.zeros(4, np.float32), 4)


# constants shared by the .cu files and the launch code ------------------------------------

def test_a_kernel_written_for_one_block_size_refuses_any_other(launcher):
    logits = launcher.xp.asarray(np.ones((2, 5), np.float32))
    labels = launcher.xp.asarray(np.array([0, 1], np.int64))
    outputs = [launcher.xp.zeros(s, np.float32) for s in ((2, 5), (2,))]
    assert launcher.kernels["softmax_cross_entropy_rows"].block_threads == launcher.defines["LOSS_THREADS"] == 256
    with pytest.raises(KernelError, match=r"softmax_cross_entropy_rows is written for blocks of 256 threads "
                                          r"\(__launch_bounds__ in loss.cu\), launched with 128"):
        launcher.launch("softmax_cross_entropy_rows", 2, 128, logits, labels, *outputs, 5)


def test_launch_bounds_say_how_many_blocks_share_a_multiprocessor(launcher):
    """Split-K plans its waves from __launch_bounds__(threads, blocks an SM): two for the
    implicit GEMM's forward (IG_THREADS, 2), one where a kernel names none (the weight
    gradient's); on the GPU the multiprocessors are the card's, on the emulator an H100's."""
    kernels = launcher.kernels
    assert kernels["conv2d_forward_implicit"].resident_blocks == 2
    assert kernels["conv2d_backward_weights_splitk"].resident_blocks == 1
    assert kernels["sgemm_splitk_nn"].block_threads == launcher.defines["VEC_THREADS"]
    device = PoisonedDevice(launcher)
    assert device.concurrent_blocks("sgemm_splitk_nn") == 2 * launcher.multiprocessors
    assert launcher.multiprocessors == (132 if isinstance(launcher, EmulatorLauncher) else
                                        launcher.cupy.cuda.Device().attributes["MultiProcessorCount"])


def copy_kernels(tmp_path, monkeypatch, edit):
    """Every .cu file (and the .cuh headers they include) copied to tmp_path, `edit(name,
    text)` applied, and the launcher pointed there (with its own emulator cache)."""
    from deepinside.kernels import launch
    for name in os.listdir(KERNEL_DIR):
        if name.endswith((".cu", ".cuh")):
            with open(os.path.join(KERNEL_DIR, name)) as handle:
                (tmp_path / name).write_text(edit(name, handle.read()))
    monkeypatch.setattr(launch, "sources", lambda: sorted(str(p) for p in tmp_path.glob("*.cu")))
    monkeypatch.setenv("DEEPINSIDE_CACHE", str(tmp_path / "cache"))


def test_launch_geometry_follows_the_tile_sizes_of_the_cu_file(tmp_path, monkeypatch, rng):
    """gemm.cu with 64-row tiles: the Python side reads the new GEMM_BM, launches twice as
    many row blocks and still computes every element (outputs are NaN-poisoned)."""
    def smaller_tiles(name, text):
        if name != "gemm.cu":
            return text
        assert "#define GEMM_BM 128\n" in text and "#define GEMM_TM 8\n" in text
        return text.replace("#define GEMM_BM 128\n", "#define GEMM_BM 64\n").replace("#define GEMM_TM 8\n", "#define GEMM_TM 4\n")
    copy_kernels(tmp_path, monkeypatch, smaller_tiles)
    ops = ops_on(EmulatorLauncher())
    a, b = rng.standard_normal((200, 30)).astype(np.float32), rng.standard_normal((30, 70)).astype(np.float32)
    assert relative_error(ops.gemm.product(a, b), a @ b) < 1e-5


def test_a_constant_defined_twice_must_agree(tmp_path, monkeypatch):
    from deepinside.kernels import launch
    copy_kernels(tmp_path, monkeypatch, lambda name, text: text.replace("#define LOSS_THREADS 256", "#define REDUCE_THREADS 128"))
    with pytest.raises(KernelError, match=r"REDUCE_THREADS is 256 in .*bias.cu but 128 in .*loss.cu"):
        launch.read_kernels()
