"""The emulator's shared-memory bank accounting (kernels/banks.py), against counts worked out
by hand from the kernels' indexing, and the conflict-free staging it was built to check."""

import numpy as np
import pytest

from deepinside.kernels.banks import MemoryTracer, conv_cases, depthwise_cases, gemm_cases, source_line
from deepinside.kernels.family import Device
from deepinside.kernels.gemm import gemm_product_device
from deepinside.kernels.launch import EmulatorLauncher

STAGING_CASES = [case for case in gemm_cases() if "8x16" in case[0]] + conv_cases()


@pytest.fixture(scope="module")
def pipelined_nn():
    """sgemm_pipelined_nn (v8) on one 128^3 tile: its costs by source line. The plain
    emulator runs it first, in the same process: the traced build must use shared memory of
    its own (launch.py: -fno-gnu-unique) and compute what the plain one does."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((128, 128)).astype(np.float32) for _ in range(2))
    plain = gemm_product_device(Device(EmulatorLauncher()), a, b, version="pipelined")
    tracer = MemoryTracer(blocks=1)
    np.testing.assert_array_equal(gemm_product_device(Device(tracer), a, b, version="pipelined"), plain)
    return tracer.costs["shared"]["sgemm_pipelined_nn"]


def _lines(costs, file, text, store):
    """The costs of the lines of kernels/`file` whose source holds `text`."""
    return [cost for (name, line, is_store), cost in costs.items()
            if name == file and is_store == store and text in source_line(name, line)]


def test_v8_transposing_store_is_a_two_way_conflict(pipelined_nn):
    # store_slice: thread t writes As[k][m] for m = t / 2 and k = 4 (t % 2) (+0..3): a warp's
    # 32 lanes write 16 columns at two depths 4 rows of 128 floats apart, the same bank, so
    # 2 wavefronts for 32 words that could take 1. Per block: 8 warps x 16 slices x 4 stores.
    (store,) = _lines(pipelined_nn, "gemm.cu", "As[k][m] = a.x", store=True)
    assert (store.requests, store.transactions, store.ideal) == (8 * 16 * 4, 2 * 8 * 16 * 4, 8 * 16 * 4)
    assert store.width == 4.0


def test_v8_float4_reads_are_conflict_free(pipelined_nn):
    # warp_tile_slice: per slice and k, two float4 reads of As (8 distinct float4s a warp:
    # 32 consecutive floats) and two of Bs (4 distinct: 16): one wavefront each.
    for text in ("va = *reinterpret_cast", "vb = *reinterpret_cast"):
        (load,) = _lines(pipelined_nn, "gemm.cu", text, store=False)
        assert (load.requests, load.transactions, load.ideal) == (8 * 16 * 8 * 2,) * 3
        assert load.width == 16.0


@pytest.mark.parametrize("title, run", STAGING_CASES, ids=[title for title, _ in STAGING_CASES])
def test_staging_is_conflict_free(title, run):
    """Every shared-memory line of v11 and of every implicit-GEMM convolution (both tiles,
    every version) takes the fewest wavefronts its words allow: before the padding and the
    swizzle, their transposing stores were 4- and 8-way conflicts."""
    tracer = MemoryTracer(blocks=1)
    run(Device(tracer))
    (costs,) = tracer.costs["shared"].values()
    assert any(c.store for c in costs.values()) and any(not c.store for c in costs.values())
    conflicted = {line: round(c.excess, 2) for line, c in costs.items() if c.transactions != c.ideal}
    assert not conflicted, f"{title}: bank conflicts at {conflicted}"


@pytest.mark.parametrize("title, run", depthwise_cases(), ids=[title for title, _ in depthwise_cases()])
def test_tiled_depthwise_reads_its_patch_without_conflicts(title, run):
    """A warp reads two rows of 16 outputs' pixels of the staged patch: the rows' pitch puts
    them in the two halves of the banks, and at stride 2 each row's even columns come before
    its odd ones, so that every other pixel is still 16 consecutive words (rows `span` apart,
    18 floats for 3x3, made every read a 2-way conflict at either stride). The line also
    reads the filter, one broadcast word a request."""
    tracer = MemoryTracer(blocks=1)
    run(Device(tracer))
    (reads,) = _lines(tracer.costs["shared"]["depthwise_forward_tiled"], "depthwise.cu", "patch[", store=False)
    assert reads.requests > 0 and reads.transactions == reads.requests


@pytest.mark.parametrize("version", ["few_channels", "few_channels_async"])
def test_few_channel_backward_data_reads_its_patch_without_conflicts(version):
    """conv2d.cu's few-channel backward-data at 3x3 stride 1, either staging: a warp reads
    32 consecutive words of a grad_y patch row and one broadcast float4 of weights a tap, at
    the fewest wavefronts their words allow. (Its staging stores are a warp a row too, but a
    row of 35 columns takes some lanes round twice, and the tracer, which matches each
    lane's n-th access from a line, pairs those with other rows' accesses: no line a GPU
    would conflict on, which this test leaves out.)"""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 3, 16, 64)), rng.standard_normal((40, 3, 3, 3)).astype(np.float32)
    grad_y = rng.standard_normal((1, 40, 16, 64)).astype(np.float32)
    tracer = MemoryTracer(blocks=1)
    from deepinside.kernels.conv2d import conv2d_backward_data_device
    conv2d_backward_data_device(Device(tracer), grad_y, w, x.shape, 1, 1, few_channels=version)
    reads = [c for c in tracer.costs["shared"][f"conv2d_backward_data_{version}"].values() if not c.store]
    assert len(reads) == 2 and all(c.requests > 0 and c.transactions == c.ideal for c in reads)


def test_few_channel_forward_reads_its_patch_and_weights_without_conflicts():
    """conv2d.cu's few-channel forward: a warp reads 32 consecutive float4s of the input
    patch (4 wavefronts, the fewest for 512 bytes) and one broadcast float4 of weights an
    output channel and tap (1), and stores whole rows of the patch and the weights."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 16, 64)).astype(np.float32)
    w = rng.standard_normal((40, 3, 3, 3)).astype(np.float32)
    tracer = MemoryTracer(blocks=1)
    from deepinside.kernels.conv2d import conv2d_forward_device
    conv2d_forward_device(Device(tracer), x, w, None, 1, 1, few_channels="few_channels")
    costs = tracer.costs["shared"]["conv2d_forward_few_channels"]
    reads = [c for c in costs.values() if not c.store]
    assert len(reads) >= 2 and all(c.requests > 0 and c.transactions == c.ideal for c in costs.values())


@pytest.mark.parametrize("mode, kernel, staged_lines", [("winograd_fused", "winograd_fused_2x2", 2),
                                                         ("winograd_fused4", "winograd_fused_4x4", 3)])
def test_fused_winograd_stages_multiplies_and_transforms_without_conflicts(mode, kernel, staged_lines):
    """conv2d.cu's winograd_fused_2x2 and _4x4 on one block, every shared-memory access at
    the fewest wavefronts: the transformed tiles' staging stores (m = 4: the rows times B,
    then the columns times B^T read and written back in place), the filters' copies (U[xi,
    c, o]: a warp's lanes 32 output channels), the products' float4 reads (each plane 4
    floats longer than its rows: a warp's two planes on different banks) and the results'
    stores and reads around the output transform (planes likewise padded)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 16, 16, 16)).astype(np.float32)
    w = rng.standard_normal((64, 16, 3, 3)).astype(np.float32)
    tracer = MemoryTracer(blocks=1)
    from deepinside.kernels.conv2d import conv2d_forward_device
    conv2d_forward_device(Device(tracer, mode), x, w, None, 1, 1)
    costs = tracer.costs["shared"][kernel]
    staged = (_lines(costs, "conv2d.cu", "tiles_staged[", store=True)
              + _lines(costs, "conv2d.cu", "cp_async_4(&filters[", store=True))
    reads = _lines(costs, "conv2d.cu", "reinterpret_cast<const float4*>(", store=False)
    results = _lines(costs, "conv2d.cu", "*reinterpret_cast<float4*>(row", store=True)
    assert len(staged) == staged_lines and len(reads) == 2 and len(results) == 2
    assert all(c.requests > 0 and c.transactions == c.ideal for c in costs.values())
