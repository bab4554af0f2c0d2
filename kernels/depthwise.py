"""Depthwise convolution: groups = channels, weights (C, 1, K, K), stride s, zero padding p
on every side, or (before, after): rows and columns before and after the input, the same on
both axes (TensorFlow's "SAME" at stride 2: a ZeroPad2d and an unpadded convolution in the
network, one op here, which saves a copy of the activations). NumPy reference: a sum over the K^2
kernel offsets of a shifted view of the padded input scaled by one weight per channel, in
one of two layouts, whichever keeps NumPy's inner loops long (measured on the 2-core
machine; NumPy's element-wise loops pay per inner loop, and a depthwise layer is nothing
but element-wise passes):

- large maps (at least WIDE_GRID_POSITIONS output positions: EfficientNet's 112x112 to
  28x28 layers): NCHW on a "wide grid" (kernels/phases.py), where one offset's pixels are
  one contiguous slice of every padded plane (of one of its phases at stride 2). Per
  column shift, one einsum sums the slices of the kernel rows and of the phase columns
  (a (C, phases, rows, length) view, its steps whole planes and rows) with the long slice
  as its inner loop: a multiply-add into a channel's output row while it is in the cache,
  where a multiply and an add per offset streamed the whole array through memory twice
  (1.2-1.8x faster on those layers, the 3x3 stride-2 one on 112x112 excepted, as fast as
  before: its phase split costs as much as the sums; the strided backward 1.2-1.9x; 5% of
  the whole pass). One einsum over the columns of a phase as well takes a slow path, the
  column step being one element as the slice's is;
- small maps with many channels (14x14 or 7x7 with 480-1152 channels): channels-last
  (NHWC), where a weight vector scales contiguous channel rows, all K^2 offsets as one
  strided view summed by einsum in one fused pass (1.4-2x faster than the wide grid there).

Backward-data at stride 1 is a forward depthwise convolution with the filters flipped; at
larger strides the transposed sum, written as a gather on the wide grid (each phase of the
input's gradient sums the kernel rows that read it, taken in reverse, from a zero-padded
grad_y: the same einsum as the forward) or scattered into the padded input channels-last.
Measured by bench/test_saliency_pass.py (EfficientNet-Lite0) and bench/README.md.

Device path: depthwise.cu (direct kernels: the op is memory-bound). Backpropagates
identically in every mode; its DeconvNet step is the backward-data, as a convolution's."""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from .conv2d import (conv2d_backward_bias as depthwise_backward_bias, conv2d_backward_bias_device,
                     conv2d_output_size)
from .family import Device, OpFamily, expect
from .gemm import sliced_reduction
from .phases import PhaseGrid

# Output positions (Hout * Wout) from which the wide-grid layout is used: 28x28 maps (784)
# run faster on it, 14x14 ones (196) channels-last.
WIDE_GRID_POSITIONS = 512


def sides(padding):
    """(before, after) of a padding given as p or (before, after)."""
    return (int(padding), int(padding)) if np.isscalar(padding) else tuple(int(p) for p in padding)


def _size_out(size, kernel, stride, padding):
    return conv2d_output_size(size + sum(sides(padding)), kernel, stride, 0)


def _windows(size, kernel, stride, padding):
    out = _size_out(size, kernel, stride, padding)
    return out, [slice(u, u + stride * (out - 1) + 1, stride) for u in range(kernel)]


def _padded_nhwc(x, padding):
    n, c, h, w = x.shape
    before, after = sides(padding)
    padded = np.zeros((n, h + before + after, w + before + after, c), x.dtype)
    padded[:, before : before + h, before : before + w] = x.transpose(0, 2, 3, 1)
    return padded


def _filters_nhwc(weight):
    """(K, K, C): the weight vector of each kernel offset, contiguous over channels."""
    return np.ascontiguousarray(weight[:, 0].transpose(1, 2, 0))


def _output_size(x_shape, kernel, stride, padding):
    return _size_out(x_shape[2], kernel, stride, padding), _size_out(x_shape[3], kernel, stride, padding)


def _uses_wide_grid(x_shape, kernel, stride, padding):
    hout, wout = _output_size(x_shape, kernel, stride, padding)
    return hout * wout >= WIDE_GRID_POSITIONS


def _grid(shape, weight, stride, padding):
    return PhaseGrid(shape, weight.shape[2], stride, sides(padding)[0],
                     _output_size(shape, weight.shape[2], stride, padding))


def _sum_of_stacks(out, partial, terms):
    """out = the sum over `terms` of einsum("cbul,cbu->cl", windows, taps): each term sums
    its kernel rows and phase columns in one pass (einsum's multiply-add into a channel's
    output row while it stays in the cache), one partial sum per term added in."""
    for index, (windows, taps) in enumerate(terms):
        np.einsum("cbul,cbu->cl", windows, taps, out=partial if index else out)
        if index:
            out += partial


def _forward_wide(x, weight, stride, padding):
    grid = _grid(x.shape, weight, stride, padding)
    planes = grid.split(x)
    y = np.empty((grid.n, grid.c, grid.length), x.dtype)
    partial = np.empty_like(y[0])
    # Offset (a + s i, s j + b) reads phase (a, b) from i rows and j columns on.
    taps = [(a, j, rows, weight[:, 0, rows.start :: stride, columns.start : columns.stop].transpose(0, 2, 1))
            for a, rows in grid.row_phases() for j, columns in grid.column_groups()]
    for n in range(grid.n):  # one image at a time: its planes stay in the cache over the passes
        _sum_of_stacks(y[n], partial, ((grid.stack(planes[a, : taps_ab.shape[1], n], j, len(rows)), taps_ab)
                                       for a, j, rows, taps_ab in taps))
    return np.ascontiguousarray(grid.crop(y))


def _backward_data_wide(grad_y, weight, x_shape, stride, padding):
    """The transposed sum as a gather: phase (a, b) of the padded input's gradient at m is
    the sum over the offsets (a + s i, s j + b) that read it of their weight times grad_y
    (on the wide grid) at m - i wq - j: kernel rows taken in reverse from a zero-padded
    grad_y, with the forward's einsum."""
    grid = _grid(x_shape, weight, stride, padding)
    front = grid.front()
    wide = grid.to_wide(grad_y, front)
    planes = grid.planes(grad_y.dtype)  # phases no offset reads stay zero
    partial = np.empty((grid.c, grid.plane_length), grad_y.dtype)
    # Per phase (a, b): where each of its offsets' reversed rows start in `wide`, and their taps.
    taps = [(a, b, [(front - (len(rows) - 1) * grid.wq - j, len(rows),
                     weight[:, 0, rows.start :: stride, stride * j + b][:, None, ::-1])
                    for j, columns in grid.column_groups() if stride * j + b in columns])
            for a, rows in grid.row_phases() for b in range(min(stride, grid.kernel))]
    for n in range(grid.n):
        for a, b, terms in taps:
            _sum_of_stacks(planes[a, b, n], partial, ((grid.stack(wide[n][None], first, count, grid.plane_length), taps_ab)
                                                      for first, count, taps_ab in terms))
    return grid.merge(planes)


def depthwise_forward(x, weight, bias, stride=1, padding=0, context=None):
    k = weight.shape[2]
    if _uses_wide_grid(x.shape, k, stride, padding):
        y = _forward_wide(x, weight, stride, padding)
        if bias is not None:
            y += bias.reshape(1, -1, 1, 1)
        return y
    padded = _padded_nhwc(x, padding)
    n, hp, wp, c = padded.shape
    hout, wout = _size_out(hp, k, stride, 0), _size_out(wp, k, stride, 0)
    image, row, column, channel = padded.strides
    # Every offset's shifted view at once, as one strided 6-D view (no copy); einsum sums
    # its products with the filters in one fused pass over contiguous channel rows.
    windows = as_strided(padded, (n, hout, wout, k, k, c), (image, stride * row, stride * column, row, column, channel),
                         writeable=False)
    y = np.einsum("nhwuvc,uvc->nhwc", windows, _filters_nhwc(weight))
    if bias is not None:
        y += bias
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2))


def depthwise_backward_data(grad_y, weight, x_shape, stride=1, padding=0):
    k = weight.shape[2]
    before, after = sides(padding)
    if stride == 1 and max(before, after) < k:
        # Literally a forward depthwise convolution: of grad_y padded by K-1-before before it
        # and K-1-after after, with each filter flipped in both directions (as conv2d's).
        return depthwise_forward(grad_y, weight[:, :, ::-1, ::-1], None, 1, (k - 1 - before, k - 1 - after))
    # The strided backward writes the input's gradient: its size, not the output's, decides
    # (EfficientNet's 3x3 stride-2 layer on 28x28: 0.23 ms gathered on the wide grid, 0.27 ms
    # scattered channels-last; on 14x14, 0.46 against 0.37 ms).
    if x_shape[2] * x_shape[3] >= WIDE_GRID_POSITIONS:
        return _backward_data_wide(grad_y, weight, x_shape, stride, padding)
    _, rows = _windows(x_shape[2], k, stride, padding)
    _, cols = _windows(x_shape[3], k, stride, padding)
    n, c, h, w = x_shape
    filters, grad = _filters_nhwc(weight), np.ascontiguousarray(grad_y.transpose(0, 2, 3, 1))
    padded = np.zeros((n, h + before + after, w + before + after, c), grad_y.dtype)
    term = np.empty_like(grad)
    for u in range(k):
        for v in range(k):
            np.multiply(grad, filters[u, v], out=term)
            padded[:, rows[u], cols[v]] += term
    return np.ascontiguousarray(padded[:, before : before + h, before : before + w].transpose(0, 3, 1, 2))


def depthwise_backward_weights(grad_y, x, w_shape, stride=1, padding=0, context=None):
    k = w_shape[2]
    _, rows = _windows(x.shape[2], k, stride, padding)
    _, cols = _windows(x.shape[3], k, stride, padding)
    padded, grad = _padded_nhwc(x, padding), np.ascontiguousarray(grad_y.transpose(0, 2, 3, 1))
    grad_w = np.empty(w_shape, grad_y.dtype)
    for u in range(k):
        for v in range(k):
            grad_w[:, 0, u, v] = np.einsum("nhwc,nhwc->c", grad, padded[:, rows[u], cols[v]])
    return grad_w


def _geometry(x_shape, w_shape, stride, padding):
    n, c, h, w = x_shape
    expect(tuple(w_shape[:2]) == (c, 1) and w_shape[2] == w_shape[3],
           f"depthwise: input {tuple(x_shape)} and weights {tuple(w_shape)} do not match")
    k = w_shape[2]
    hout, wout = _size_out(h, k, stride, padding), _size_out(w, k, stride, padding)
    expect(hout > 0 and wout > 0, f"depthwise: input {h}x{w} is smaller than the kernel")
    return n, c, h, w, k, hout, wout, sides(padding)[0]  # the kernels place windows by the padding before


# The forward's ladder in depthwise.cu's order; the engine runs ENGINE_FORWARD, the rung a GPU
# run's ladder times fastest (kernels/choices.py): rows on the H200, 2026-11-28 (0.55 of v1's
# time over the ladder's three EfficientNet-Lite0 layers).
FORWARD_LADDER = ("depthwise_forward", "depthwise_forward_tiled", "depthwise_forward_rows",
                  "depthwise_forward_planes")
ENGINE_FORWARD = "depthwise_forward_rows"
ROW_KERNELS = ((3, 1), (3, 2), (5, 1), (5, 2))  # (kernel size, stride) compiled for the row and plane rungs


def tiled_forward_fits(device: Device, k, stride):
    """Whether depthwise_forward_tiled's shared patch and filter hold this geometry."""
    span = (device.define("DEPTHWISE_TILE") - 1) * stride + k
    return span <= device.define("DEPTHWISE_MAX_SPAN") and k <= device.define("DEPTHWISE_MAX_K")


def planes_fit(device: Device, x_shape, k, output_size):
    """Whether depthwise_forward_planes' shared memory holds what a block takes: the input
    planes its output rows read (as many as DEPTHWISE_PLANE_ROWS consecutive rows of
    output_size[0] can touch), their filters and its rows of results."""
    rows, (hout, wout) = device.define("DEPTHWISE_PLANE_ROWS"), output_size
    planes = -(-(rows - 1) // hout) + 1
    return planes * (x_shape[2] * x_shape[3] + k * k) + rows * wout <= device.define("DEPTHWISE_PLANE_FLOATS")


def forward_applies(device: Device, version, k, stride):
    """Whether forward `version` runs this kernel size and stride (v1: any; v4 runs v3's
    kernel where the planes do not fit: planes_fit)."""
    if version == "depthwise_forward_tiled":
        return tiled_forward_fits(device, k, stride)
    return version not in ("depthwise_forward_rows", "depthwise_forward_planes") or (k, stride) in ROW_KERNELS


def depthwise_forward_device(device: Device, x, weight, bias, stride=1, padding=0, context=None, version=None):
    """`version`: one of FORWARD_LADDER; None, the engine's (ENGINE_FORWARD where it runs this
    kernel and stride, v1 otherwise)."""
    x, weight = device.float32("x", x, 4), device.float32("weight", weight, 4)
    n, c, h, w, k, hout, wout, before = _geometry(x.shape, weight.shape, stride, padding)
    if version is None:
        version = ENGINE_FORWARD if forward_applies(device, ENGINE_FORWARD, k, stride) else FORWARD_LADDER[0]
    has_bias = bias is not None
    bias = device.float32("bias", bias, 1) if has_bias else device.empty((1,))
    y = device.empty((n, c, hout, wout))
    arguments = (x, weight, bias, y, n, c, h, w, k, stride, before, hout, wout, int(has_bias))
    expect(forward_applies(device, version, k, stride), f"{version}: no kernel for {k}x{k} at stride {stride}")
    if version == "depthwise_forward_tiled":
        tile = device.define("DEPTHWISE_TILE")
        device.launch(version, n * c * -(-hout // tile) * -(-wout // tile), *arguments)
    elif version in ("depthwise_forward_rows", "depthwise_forward_planes"):
        expect(max(x.size, y.size) < 2 ** 31, f"{version}: 32-bit indices, a tensor of 2^31 elements or more")
        if version == "depthwise_forward_planes" and planes_fit(device, x.shape, k, (hout, wout)):
            device.launch(version, -(-(n * c * hout) // device.define("DEPTHWISE_PLANE_ROWS")), *arguments)
        else:
            groups = -(-wout // device.define("DEPTHWISE_ROW_OUTPUTS"))
            device.elementwise("depthwise_forward_rows", n * c * hout * groups, *arguments)
    else:
        device.elementwise(version, y.size, *arguments)
    return y


# Backward-data's ladder: the direct gather kernel, then (at stride 1 only) the tiled, row
# or plane forward kernels run on grad_y with the filters flipped (THROUGH_THE_FORWARD), as
# the NumPy path does it, and the parity and quad kernels at stride 2 (STRIDE_TWO). The engine
# ("engine") takes the tiled one where it applies and the plane holds a whole tile: on an
# H100 (bench/results/h100-2026-11-27, runs 1 and 2) it took 0.53-0.62 ms against the
# direct 0.92-1.02 at 112 x 112 (batch 64, 32 channels), but 0.40-0.51 against 0.31-0.41
# on 7 x 7 planes, where most of a 16 x 16 tile's threads idle.
BACKWARD_DATA_LADDER = ("depthwise_backward_data", "depthwise_backward_data_tiled", "depthwise_backward_data_rows",
                        "depthwise_backward_data_parity", "depthwise_backward_data_planes",
                        "depthwise_backward_data_quads")
THROUGH_THE_FORWARD = ("depthwise_backward_data_tiled", "depthwise_backward_data_rows", "depthwise_backward_data_planes")
ENGINE_BACKWARD_DATA = "engine"
# What "engine" runs at stride 1 where it applies and at other strides, v1 elsewhere: the
# rungs a GPU run's ladder times fastest (kernels/choices.py): on the H200, 2026-11-28, the
# row rung (0.53 of the tiled one's time) and the parity rung (0.33 of v1's).
ENGINE_UNIT_STRIDE_BACKWARD_DATA = "depthwise_backward_data_rows"
ENGINE_STRIDED_BACKWARD_DATA = "depthwise_backward_data_parity"
# The stride-2 rungs: v2 (parity) visits an input element's taps of its parity; v3 (quads,
# not yet timed) takes a 2 x 2 quad of input elements, one of each parity, a thread.
STRIDE_TWO = ("depthwise_backward_data_parity", "depthwise_backward_data_quads")
PARITY_KERNEL_SIZES = (3, 5)  # the kernel sizes the stride-2 rungs are compiled for


def backward_data_applies(device: Device, version, k, stride, padding):
    """Whether backward-data `version` runs this kernel size, stride and padding (v1: any)."""
    before, after = sides(padding)
    if version in THROUGH_THE_FORWARD:
        return stride == 1 and max(before, after) < k and forward_applies(
            device, version.replace("backward_data", "forward"), k, 1)
    return version not in STRIDE_TWO or (stride == 2 and k in PARITY_KERNEL_SIZES)


def _quads(size, before):
    """The quads (pairs of padded rows or columns 2a, 2a + 1) that hold an axis's `size`
    inputs after `before` padding, as depthwise_backward_data_quads counts them."""
    return (before + size - 1) // 2 - before // 2 + 1


def depthwise_backward_data_device(device: Device, grad_y, weight, x_shape, stride=1, padding=0,
                                   version=ENGINE_BACKWARD_DATA):
    grad_y, weight = device.float32("grad_y", grad_y, 4), device.float32("weight", weight, 4)
    n, c, h, w, k, hout, wout, before = _geometry(x_shape, weight.shape, stride, padding)
    after = sides(padding)[1]
    if version == "engine":
        version = ENGINE_UNIT_STRIDE_BACKWARD_DATA if stride == 1 else ENGINE_STRIDED_BACKWARD_DATA
        small = version == "depthwise_backward_data_tiled" and min(h, w) < device.define("DEPTHWISE_TILE")
        if small or not backward_data_applies(device, version, k, stride, padding):
            version = BACKWARD_DATA_LADDER[0]
    expect(backward_data_applies(device, version, k, stride, padding),
           f"{version}: no kernel for a {k}x{k} kernel at stride {stride}, padding {padding}")
    if version in THROUGH_THE_FORWARD:
        flipped = device.xp.ascontiguousarray(weight[:, :, ::-1, ::-1])
        return depthwise_forward_device(device, grad_y, flipped, None, 1, (k - 1 - before, k - 1 - after),
                                        version=version.replace("backward_data", "forward"))
    grad_x = device.empty(tuple(x_shape))
    if version in STRIDE_TWO:
        expect(grad_x.size < 2 ** 31, f"{version}: 32-bit indices, a tensor of 2^31 elements or more")
        # quads: 2 x 2 of the padded input a thread, from padded row and column before // 2 * 2
        count = grad_x.size if version == STRIDE_TWO[0] else n * c * _quads(h, before) * _quads(w, before)
        device.elementwise(version, count, grad_y, weight, grad_x, n, c, h, w, k, before, hout, wout)
        return grad_x
    device.elementwise(version, grad_x.size, grad_y, weight, grad_x, n, c, h, w, k, stride, before, hout, wout)
    return grad_x


# Backward-weights' ladder: v1 a block per weight; v2 a block per channel and slice of its
# positions, for 3x3 and 5x5 kernels (depthwise.cu); v3 v2 with its block's sums added by
# warp shuffles; v4 v3 with the forward's row main loop (4 positions of a row at a time, at
# strides 1 and 2: ROW_KERNELS). The engine runs v2 where it applies: 0.31 of v1's time on
# the H200, 2026-11-28 (kernels/choices.py); v3 and v4 are yet to be timed.
BACKWARD_WEIGHTS_LADDER = ("depthwise_backward_weights", "depthwise_backward_weights_channel",
                           "depthwise_backward_weights_shuffle", "depthwise_backward_weights_rows")
PER_CHANNEL = BACKWARD_WEIGHTS_LADDER[1:]  # the rungs of a block per channel and slice
ENGINE_BACKWARD_WEIGHTS = "depthwise_backward_weights_channel"
CHANNEL_KERNEL_SIZES = (3, 5)


def backward_weights_applies(version, k, stride):
    """Whether backward-weights `version` runs this kernel size and stride (v1: any)."""
    if version == "depthwise_backward_weights_rows":
        return (k, stride) in ROW_KERNELS
    return version not in PER_CHANNEL or k in CHANNEL_KERNEL_SIZES


def depthwise_backward_weights_device(device: Device, grad_y, x, w_shape, stride=1, padding=0, context=None,
                                      version=None):
    """`version`: one of BACKWARD_WEIGHTS_LADDER; None, the engine's (ENGINE_BACKWARD_WEIGHTS
    where it runs this kernel size, v1 otherwise)."""
    grad_y, x = device.float32("grad_y", grad_y, 4), device.float32("x", x, 4)
    n, c, h, w, k, hout, wout, before = _geometry(x.shape, w_shape, stride, padding)
    if version is None:
        version = ENGINE_BACKWARD_WEIGHTS if backward_weights_applies(ENGINE_BACKWARD_WEIGHTS, k, stride) \
            else BACKWARD_WEIGHTS_LADDER[0]
    grad_w = device.empty(tuple(w_shape))
    if version == "depthwise_backward_weights":
        device.launch(version, grad_w.size, grad_y, x, grad_w, n, c, h, w, k, stride, before, hout,
                      wout)  # one block per weight
        return grad_w
    expect(version in PER_CHANNEL, f"depthwise backward-weights: no version {version!r}; the ladder: "
                                   f"{', '.join(BACKWARD_WEIGHTS_LADDER)}")
    expect(backward_weights_applies(version, k, stride),
           f"depthwise backward-weights: version {version!r} takes kernels of {CHANNEL_KERNEL_SIZES} (the rows "
           f"rung at strides 1 and 2), not {k} at stride {stride}")
    expect(x.size < 2 ** 31 and grad_y.size < 2 ** 31, f"{version}: 32-bit indices, a tensor of 2^31 elements "
                                                        "or more")
    rows = version == "depthwise_backward_weights_rows"  # one entry for every size; v2, v3 one a size
    kernel, sizes = (version, (k, stride)) if rows else (f"{version}_k{k}", (stride,))
    # a block a channel and slice of its positions (v4: of its groups of a row's positions)
    units = n * hout * (-(-wout // device.define("DEPTHWISE_ROW_OUTPUTS")) if rows else wout)
    return sliced_reduction(device, kernel, grad_w, c, units, device.define("DEPTHWISE_THREADS"),
                            lambda partial, length, splits: device.launch(
                                kernel, (c, splits), grad_y, x, partial, n, c, h, w, *sizes, before, hout, wout,
                                length))


def depthwise_zeiler(ops, signal, x, weight, bias=None, stride=1, padding=0):
    """DeconvNet: the flipped filters, i.e. backward-data, as for any convolution."""
    return ops.backward_data(signal, weight, x.shape, stride, padding)


DEPTHWISE = OpFamily(
    "depthwise", ("depthwise.cu", "bias.cu", "gemm.cu"),  # gemm.cu: the slices' sum
    numpy=dict(forward=depthwise_forward, backward_data=depthwise_backward_data,
               backward_weights=depthwise_backward_weights, backward_bias=depthwise_backward_bias),
    device=dict(forward=depthwise_forward_device, backward_data=depthwise_backward_data_device,
                backward_weights=depthwise_backward_weights_device,
                backward_bias=conv2d_backward_bias_device),  # a sum per channel, as for any convolution
    zeiler=depthwise_zeiler)
