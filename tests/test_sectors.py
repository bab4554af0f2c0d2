"""The emulator's global-memory sector accounting (kernels/sectors.py, on the tracer of
kernels/banks.py), against counts worked out by hand from the kernels' indexing, and the
coalesced Winograd transforms it was used to check."""

import numpy as np
import pytest

from deepinside import kernels as K
from deepinside.kernels.banks import MemoryTracer, source_line
from deepinside.kernels.family import Device
from deepinside.kernels.maxpool import maxpool_forward_device


def _global_lines(tracer, kernel):
    """{source text: cost} of `kernel`'s global-memory lines in the kernel files."""
    return {source_line(name, line): cost for (name, line, _), cost in tracer.costs["global"][kernel].items()
            if source_line(name, line)}


def _line(lines, text):
    (cost,) = [cost for source, cost in lines.items() if text in source]
    return cost


def test_scalar_and_float4_streams_move_whole_sectors():
    # relu_forward on 4096 floats: 16 blocks of 256 threads; the traced first block's 8
    # warps each read and write 32 consecutive floats, 4 sectors a request. The float4
    # version: 1024 float4s, the first block's warps 512 consecutive bytes, 16 sectors.
    tracer = MemoryTracer(blocks=1)
    device = Device(tracer)
    x = np.random.default_rng(0).standard_normal(4096).astype(np.float32)
    device.launch("relu_forward", 16, x, np.empty_like(x), 4096)
    device.launch("relu_forward_vec4", 4, x, np.empty_like(x), 4096)
    for kernel, sectors in (("relu_forward", 4), ("relu_forward_vec4", 16)):
        costs = tracer.costs["global"][kernel].values()
        assert sorted((c.store, c.requests, c.transactions, c.ideal) for c in costs) == [
            (False, 8, 8 * sectors, 8 * sectors), (True, 8, 8 * sectors, 8 * sectors)], kernel


def test_every_other_float_takes_twice_the_sectors():
    # max-pool v1, 2x2 windows of a 64-wide plane: a warp's 32 outputs are one output row, and
    # each of a window's 4 loads reads every other float of an input row (256 bytes, 8
    # sectors, for 128 bytes of values: 4); 256 outputs, 8 warps, 32 requests in the first
    # block. v3 reads each window row as a float2: 32 consecutive float2s, 8 sectors, whole.
    tracer = MemoryTracer(blocks=1)
    x = np.random.default_rng(0).standard_normal((1, 4, 64, 64)).astype(np.float32)
    for version in ("v1", "v3"):
        maxpool_forward_device(Device(tracer), x, 2, 2, version=version)
    value = _line(_global_lines(tracer, "maxpool_forward"), "input[h * W + w]")
    assert (value.requests, value.transactions, value.ideal, value.excess) == (32, 256, 128, 2.0)
    for row in ("top", "bottom"):
        cost = _line(_global_lines(tracer, "maxpool_forward_2x2"), f"const float2 {row} =")
        assert (cost.requests, cost.transactions, cost.ideal, cost.width) == (8, 64, 64, 8.0)


@pytest.mark.parametrize("mode", sorted(K.conv2d.WINOGRAD_TILES))
def test_winograd_tiles_are_stored_and_read_as_whole_rows(mode):
    """The output transform's stores and the gradient transform's loads, an m-float row of a
    tile a lane (float4s for m = 4, float2s for m = 2) on a 32-wide map, and the input
    transform's middle m floats of each window row: whole sectors, where a float a lane, m
    floats apart, took m times as many. Only the kernel files' global accesses count: the
    transforms' local windows and coefficient tables are no line of theirs here."""
    m = K.conv2d.WINOGRAD_TILES[mode]
    tracer = MemoryTracer(blocks=1)
    ops = K.bind(Device(tracer, mode)).conv2d
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 8, 32, 32)).astype(np.float32), rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    ops.backward_weights(ops.forward(x, w, None, 1, 1), x, w.shape, 1, 1)
    vector = "float4" if m == 4 else "float2"
    stores = _line(_global_lines(tracer, f"winograd_output_transform_{m}x{m}"), f"reinterpret_cast<{vector}*>")
    loads = _line(_global_lines(tracer, f"winograd_gradient_transform_{m}x{m}"), f"reinterpret_cast<const {vector}*>")
    middle = _line(_global_lines(tracer, f"winograd_input_transform_{m}x{m}"), f"reinterpret_cast<const {vector}*>")
    for cost in (stores, loads, middle):
        assert cost.requests > 0 and cost.transactions == cost.ideal
    assert stores.width == loads.width == 4 * m  # (the windows' first and last rows are partly off the map)
    lines = _global_lines(tracer, f"winograd_input_transform_{m}x{m}")
    assert len(lines) == 4 and all("V[" in source or "row[" in source or "reinterpret_cast" in source
                                   for source in lines)


def test_results_on_odd_planes_go_out_a_warp_row_at_a_time():
    """The implicit GEMM's forward on 13 x 13 maps (169 positions a plane): its results go
    out through shared memory, a warp's 32 consecutive positions of a row a store: at most 5
    sectors each (4 when the run starts on a sector), where a thread's runs of 4 positions,
    stored a float at a time 4 positions apart, touched 16 for the 4 their bytes need."""
    tracer = MemoryTracer(blocks=1)
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 64, 13, 13)).astype(np.float32), rng.standard_normal((128, 64, 3, 3))
    K.bind(Device(tracer)).conv2d.forward(x, w.astype(np.float32), None, 1, 1)
    (stores,) = [cost for (name, line, store), cost in tracer.costs["global"]["conv2d_forward_implicit"].items()
                 if store and "staged[" in source_line(name, line)]
    assert stores.requests > 0 and stores.transactions <= 1.25 * stores.ideal


def test_a_saliency_pass_of_the_shipped_model(monkeypatch):
    """bench/pass_sectors.py on the shipped model: its ReLUs stream whole sectors (float4s on
    arrays the tracer aligns as a GPU would); its first layer's input gradient (7x7 stride 2,
    3 channels) goes through the column buffer and a transposed product, whose results of 147
    rows (no multiple of 4) are stored a float at a time, among the product's stores that take
    5 times the sectors they need (the 3x3 layers' too: 11 x 11 maps), and, with the
    few-channel kernel chosen, through that kernel instead, its stores whole and those of
    the product fewer."""
    import os
    monkeypatch.syspath_prepend(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
    import pass_sectors
    from deepinside.kernels import conv2d, gemm
    monkeypatch.setattr(conv2d, "ENGINE_FEW_CHANNELS_BACKWARD_DATA", "columns")
    kernels = pass_sectors.pass_sectors("shapes")
    for kernel in ("relu_forward_vec4", "relu_backward_vec4"):
        assert all(c.transactions == c.ideal for c in kernels[kernel].values())
    def scalar_stores(kernels):  # the transposed product's float-at-a-time stores
        return [c for (name, line, store), c in kernels[gemm.TILED[gemm.ENGINE_TILED][0] + "_tn"].items()
                if store and "at[q] = alpha" in source_line(name, line)]

    (before,) = scalar_stores(kernels)
    assert before.transactions > 5 * before.ideal and "conv2d_backward_data_few_channels" not in kernels
    monkeypatch.setattr(conv2d, "ENGINE_FEW_CHANNELS_BACKWARD_DATA", "few_channels")
    kernels = pass_sectors.pass_sectors("shapes")
    (after,) = scalar_stores(kernels)
    assert after.requests < before.requests and after.transactions < before.transactions
    (stores,) = [c for c in kernels["conv2d_backward_data_few_channels"].values() if c.store]
    assert stores.transactions == stores.ideal
