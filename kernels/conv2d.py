"""2-D convolution, NumPy reference path (NCHW activations, OIHW weights).

The convolution is computed as one BLAS matrix product per kernel offset (kh, kw):

    y[n, :, grid] += W[:, :, kh, kw] @ patch_{kh,kw}[n]          (O x C) @ (C x L)

where patch_{kh,kw} holds, for every output position of the grid, the input pixel that
offset reads. For stride 1 no copy is made: on the zero-padded image flattened to rows of
width Wp, the pixels read by one offset are the contiguous slice starting at kh*Wp + kw,
if the output is computed on a "wide" grid of Hout x Wp positions whose last Wp - Wout
columns are garbage and dropped (in backward they are zero). The forward runs on blocks of
GRID_BLOCK grid columns of one image, which stay in the cache while the offsets add into
them. With fewer input than output channels the per-offset products are skinny, and each
block's patches are copied into one (KH*KW*C, block) matrix (im2col) and multiplied once
instead.

Where the per-image products are small (maps of at most SMALL_MAP_POSITIONS), forward and weight
gradient use one patch matrix for a slice of the batch: the input in NHWC, where a patch is
KH runs of KW*C contiguous values, copied a slice of the batch at a time to
(images * Hout * Wout, KH*KW*C) rows and multiplied in one product per slice (the shapes
net's small layers at batch 64). On larger maps at stride > 1, where an offset's pixels are
a strided view, each image's im2col columns (KH*KW*C, Hout*Wout) are one copy of such a
view and one product gives its NCHW output; backward-data runs the same product
transposed and adds each offset's rows into the input's gradient. Layout and copies, not
arithmetic, decide the speed of this path (docs/DESIGN.md).

The device path (conv2d.cu, on gemm.cu's tiled SGEMM and bias.cu's channel sums) is at the
end of this file, with the family's declaration and its DeconvNet step.
"""
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .family import Device, OpFamily, expect
from .gemm import batched_product_device, channel_sums, gemm_product_device, split_k_slices, wide_products_device
from .launch import KernelError

# Bytes of patch matrix per slice of the batch: big enough for an efficient product,
# not so big that it leaves the cache (measured on the 2-core machine: 16-32 MB are best).
PATCH_SLICE_BYTES = 16 << 20
# A forward that is told its weight gradient will follow keeps its patch matrices for it
# (they are the same matrices) up to this many bytes: training the shapes net at batch 64
# keeps 76 MB for conv1 and 50 MB for conv2.
KEPT_PATCH_BYTES = 96 << 20
# Per-offset matrix products of fewer multiply-adds than this are dominated by their calls.
SMALL_PRODUCT_MACS = 1 << 21
# Output positions up to which maps count as small (the patch matrix's).
SMALL_MAP_POSITIONS = 512
# The stride-1 wide-grid path works on blocks of this many grid columns of one image
# (measured on the 2-core machine: 1024-2048 made VGG-16's 56x56 and 112x112 layers 15-20%
# slower; 8192 leaves a batch-1 pass as it was and makes a batch-10 one 25% shorter).
GRID_BLOCK = 8192


class _Geometry:
    """Shapes of one convolution and the per-offset patch matrices of its padded input."""

    def __init__(self, x_shape, w_shape, stride, padding):
        self.n, self.c, self.h, self.w = x_shape
        self.o, _, self.kh, self.kw = w_shape
        self.stride, self.padding = stride, padding
        self.hp, self.wp = self.h + 2 * padding, self.w + 2 * padding
        self.hout = (self.hp - self.kh) // stride + 1
        self.wout = (self.wp - self.kw) // stride + 1
        # The stride-1 wide grid the per-offset products run on: Hout rows of width Wp.
        self.grid_len = self.hout * self.wp

    def offsets(self):
        return [(i, j) for i in range(self.kh) for j in range(self.kw)]

    def pad_input(self, x):
        """Zero-padded input: (N, C, Hp, Wp), or for stride 1 flat (N, C, Hp*Wp + KW-1) so
        that every offset's slice of grid_len elements stays in bounds."""
        padded = self.zero_padded(x.dtype)
        self.crop_input(padded)[...] = x
        return padded

    def zero_padded(self, dtype):
        if self.stride == 1:
            return np.zeros((self.n, self.c, self.hp * self.wp + self.kw - 1), dtype)
        return np.zeros((self.n, self.c, self.hp, self.wp), dtype)

    def window(self, i, j):
        """Index of the flat padded planes read by kernel offset (i, j) on the stride-1 grid."""
        start = i * self.wp + j
        return (slice(None), slice(None), slice(start, start + self.grid_len))

    def pixels_read(self, i, j):
        """Rows and columns of a (C, Hp, Wp) padded image read by kernel offset (i, j)
        across the output, at any stride."""
        s = self.stride
        return slice(i, i + s * (self.hout - 1) + 1, s), slice(j, j + s * (self.wout - 1) + 1, s)

    def columns(self, padded, n, out):
        """Writes image n's im2col matrix into `out` (C*KH*KW, Hout*Wout): row (c, kh, kw)
        holds the pixels that weight reads across the output, in NCHW order, so that one
        product with the (O, C*KH*KW) weights gives the image's NCHW output. One copy of a
        strided view of the (N, C, Hp, Wp) padded input."""
        image = padded[n]
        channel, row, column = image.strides
        s = self.stride
        view = as_strided(image, (self.c, self.kh, self.kw, self.hout, self.wout),
                          (channel, row, column, s * row, s * column), writeable=False)
        np.copyto(out.reshape(view.shape), view)
        return out

    def patch(self, padded, i, j):
        """(N, C, grid_len) view of the input pixels read by offset (i, j), at stride 1."""
        return padded[self.window(i, j)]

    def to_grid(self, gy):
        """(N, O, Hout, Wout) -> (N, O, grid_len), zero in the wide grid's dropped columns."""
        grid = np.zeros((self.n, self.o, self.hout, self.wp), gy.dtype)
        grid[..., : self.wout] = gy
        return grid.reshape(self.n, self.o, self.grid_len)

    def from_grid(self, y):
        return y.reshape(self.n, self.o, self.hout, self.wp)[..., : self.wout]

    def uses_patch_matrix(self):
        # Measured on the 2-core machine: the patch matrix wins for small maps where the
        # per-offset products are small too (the shapes net's 22x22 conv2:
        # 20 -> 12 ms at batch 64; its 11x11 32-channel layers, 32x32x143 products: 2.5 ->
        # 1.9 ms forward, 2.3 -> 1.1 ms weight gradient); on VGG's large maps, and on its
        # 14x14 512-channel maps at batch 1, the per-image products are big enough and the
        # NHWC copies cost more than they save (5.8 against 9.3 ms).
        small_products = self.c < self.o or self.o * self.c * self.grid_len < SMALL_PRODUCT_MACS
        return small_products and self.hout * self.wout <= SMALL_MAP_POSITIONS

    def padded_nhwc(self, x):
        p = self.padding
        padded = np.zeros((self.n, self.hp, self.wp, self.c), x.dtype)
        padded[:, p : p + self.h, p : p + self.w] = x.transpose(0, 2, 3, 1)
        return padded

    def batch_slices(self):
        row_bytes = self.hout * self.wout * self.kh * self.kw * self.c * 4  # float32
        images = max(1, PATCH_SLICE_BYTES // row_bytes)
        return [slice(begin, begin + images) for begin in range(0, self.n, images)]

    def patch_matrix(self, padded_nhwc, images):
        """Rows: one per output position of the images in `images`; columns: the KH*KW*C
        input values it reads, in (kh, kw, c) order."""
        part = padded_nhwc[images]
        image, row, column, channel = part.strides
        s = self.stride
        view = as_strided(part, (len(part), self.hout, self.wout, self.kh, self.kw, self.c),
                          (image, s * row, s * column, row, column, channel), writeable=False)
        return view.reshape(-1, self.kh * self.kw * self.c)

    def crop_input(self, padded):
        p = self.padding
        if self.stride == 1:
            padded = padded[:, :, : self.hp * self.wp].reshape(self.n, self.c, self.hp, self.wp)
        return padded[:, :, p : p + self.h, p : p + self.w]


def conv2d_output_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def _pointwise(weight, stride, padding):
    """A 1x1 convolution without stride or padding: one matrix product per image, on the
    NCHW arrays as they are (MobileNet and EfficientNet blocks are mostly these)."""
    return weight.shape[2] == weight.shape[3] == 1 and stride == 1 and padding == 0


def conv2d_forward(x, weight, bias, stride=1, padding=0, context=None):
    """y = x * weight + bias.  x (N, C, H, W), weight (O, C, KH, KW), bias (O,) or None.
    `context`, where the caller will ask for the weight gradient of this x: a dict in which
    the forward leaves what conv2d_backward_weights can reuse (its patch matrices)."""
    if _pointwise(weight, stride, padding):
        n, c, h, w = x.shape
        y = np.matmul(weight.reshape(weight.shape[0], c), x.reshape(n, c, h * w)).reshape(n, -1, h, w)
        if bias is not None:
            y += bias.reshape(1, -1, 1, 1)
        return y
    g = _Geometry(x.shape, weight.shape, stride, padding)
    if g.uses_patch_matrix():
        y = _patch_matrix_forward(g, x, weight, context)
    elif stride > 1:
        y = _columns_forward(g, x, weight, context)
    else:
        y = np.ascontiguousarray(g.from_grid(_grid_forward(g, g.pad_input(x), weight)))
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y


def _patch_matrix_forward(g, x, weight, context):
    padded = g.padded_nhwc(x)
    matrix = weight.transpose(2, 3, 1, 0).reshape(-1, g.o)
    y = np.empty((g.n, g.hout, g.wout, g.o), x.dtype)
    keep = context is not None and _batch_patches_fit(g, x.itemsize)
    kept = []
    for images in g.batch_slices():
        patches = g.patch_matrix(padded, images)
        np.matmul(patches, matrix, out=y[images].reshape(-1, g.o))
        if keep:
            kept.append(patches)
    if keep:
        context["patches"] = kept
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2))


def _batch_patches_fit(g, itemsize):
    """Whether the patches (or columns) of the whole batch fit in KEPT_PATCH_BYTES."""
    return g.n * g.hout * g.wout * g.kh * g.kw * g.c * itemsize <= KEPT_PATCH_BYTES


def _strided_input(g, x):
    return g.pad_input(x) if g.padding else x


def _columns_forward(g, x, weight, context):
    """A strided convolution, one image at a time: its im2col columns and one product,
    whose result is the image's NCHW output. Against one NHWC patch matrix for a slice of
    the batch, whose output needs a transposed copy (measured with the allocator setting of
    engine.keep_freed_memory): EfficientNet's stem 0.86 -> 0.35 ms at batch 1 and 8.9 ->
    3.6 ms at batch 10, CNN-F's conv1 1.55 -> 1.48 ms, the shapes net's conv1 at batch 64
    15.8 -> 15.4 ms."""
    padded = _strided_input(g, x)
    matrix = weight.reshape(g.o, -1)  # columns in (c, kh, kw) order, as the im2col rows
    y = np.empty((g.n, g.o, g.hout * g.wout), x.dtype)
    # Each image gets columns of its own where the batch's fit: one buffer refilled for
    # every image made the shapes net's conv1 at batch 64 take 19.7 ms instead of 15.4.
    own = _batch_patches_fit(g, x.itemsize)
    columns = np.empty((g.n if own else 1, g.c * g.kh * g.kw, g.hout * g.wout), x.dtype)
    for n in range(g.n):
        np.matmul(matrix, g.columns(padded, n, columns[n if own else 0]), out=y[n])
    if own and context is not None:
        context["columns"] = columns
    return y.reshape(g.n, g.o, g.hout, g.wout)


def _grid_forward(g, padded, weight):
    """The stride-1 convolution on the wide grid, (N, O, grid_len), a block of grid columns
    of one image at a time: a block's output and the inputs it reads stay in the cache
    while the KH*KW offsets add into it (at batch 10 a whole-batch pass per offset ran VGG-16's
    224x224 layers at a third of their batch-1 speed). With fewer input than
    output channels the block's patches are copied into one (KH*KW*C, block) matrix (im2col)
    and multiplied once; otherwise one product per offset adds into the block."""
    y = np.empty((g.n, g.o, g.grid_len), padded.dtype)
    block = min(GRID_BLOCK, g.grid_len)
    starts = [i * g.wp + j for i, j in g.offsets()]
    if g.c < g.o:
        matrix = weight.transpose(0, 2, 3, 1).reshape(g.o, -1)  # columns in (kh, kw, c) order
        columns = np.empty((len(starts) * g.c, block), padded.dtype)
    else:
        by_offset = np.ascontiguousarray(weight.transpose(2, 3, 0, 1)).reshape(len(starts), g.o, g.c)
        product = np.empty((g.o, block), padded.dtype)
    for n in range(g.n):
        for begin in range(0, g.grid_len, block):
            end = min(begin + block, g.grid_len)
            target = y[n, :, begin:end]
            if g.c < g.o:
                for k, start in enumerate(starts):
                    columns[k * g.c : (k + 1) * g.c, : end - begin] = padded[n, :, start + begin : start + end]
                np.matmul(matrix, columns[:, : end - begin], out=target)
                continue
            for k, start in enumerate(starts):
                patch = padded[n, :, start + begin : start + end]
                if k == 0:
                    np.matmul(by_offset[0], patch, out=target)
                else:
                    np.matmul(by_offset[k], patch, out=product[:, : end - begin])
                    target += product[:, : end - begin]
    return y


def conv2d_backward_data(grad_y, weight, x_shape, stride=1, padding=0):
    """dL/dx: the convolution of grad_y with the flipped, transposed kernel (Sect. 4)."""
    if _pointwise(weight, stride, padding):
        n, o, h, w = grad_y.shape
        return np.matmul(weight.reshape(o, -1).T, grad_y.reshape(n, o, h * w)).reshape(x_shape)
    kernel = weight.shape[2]  # square kernels
    if stride == 1 and padding < kernel:
        # Literally a forward convolution: of grad_y padded by K-1-padding, with the
        # kernel flipped in both directions and its in/out channels swapped.
        flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
        return conv2d_forward(grad_y, flipped, None, 1, kernel - 1 - padding)
    # The transposed im2col, one image at a time: one product gives every offset's
    # contribution (C*KH*KW rows), added into the padded input's gradient window by window
    # (EfficientNet's stem 0.62 -> 0.39 ms, CNN-F's conv1 4.7 -> 1.8 ms against a product per
    # offset, with the allocator setting of engine.keep_freed_memory).
    g = _Geometry(x_shape, weight.shape, stride, padding)
    matrix = weight.reshape(g.o, -1).T
    padded = np.zeros((g.n, g.c, g.hp, g.wp), grad_y.dtype)
    for n in range(g.n):
        contributions = (matrix @ grad_y[n].reshape(g.o, -1)).reshape(g.c, g.kh, g.kw, g.hout, g.wout)
        for i, j in g.offsets():
            rows, columns = g.pixels_read(i, j)
            padded[n, :, rows, columns] += contributions[:, i, j]
    return np.ascontiguousarray(padded[:, :, g.padding : g.padding + g.h, g.padding : g.padding + g.w])


def conv2d_backward_weights(grad_y, x, w_shape, stride=1, padding=0, context=None):
    """dL/dweight[:, :, i, j] = sum over the batch of grad_y @ patch_{i,j}^T. `context`:
    what conv2d_forward left for it, if anything."""
    g = _Geometry(x.shape, w_shape, stride, padding)
    if stride > 1 and not g.uses_patch_matrix():
        kept = (context or {}).get("columns")
        padded = None if kept is not None else _strided_input(g, x)
        buffer = None if kept is not None else np.empty((g.c * g.kh * g.kw, g.hout * g.wout), x.dtype)
        grad_matrix = np.zeros((g.o, g.c * g.kh * g.kw), grad_y.dtype)
        for n in range(g.n):
            columns = kept[n] if kept is not None else g.columns(padded, n, buffer)
            grad_matrix += grad_y[n].reshape(g.o, -1) @ columns.T
        return grad_matrix.reshape(w_shape)
    if g.uses_patch_matrix():
        kept = (context or {}).get("patches")
        padded = None if kept else g.padded_nhwc(x)
        grad_rows = np.ascontiguousarray(grad_y.transpose(0, 2, 3, 1))
        grad_matrix = np.zeros((g.o, g.kh * g.kw * g.c), grad_y.dtype)
        for index, images in enumerate(g.batch_slices()):
            patches = kept[index] if kept else g.patch_matrix(padded, images)
            grad_matrix += grad_rows[images].reshape(-1, g.o).T @ patches
        return np.ascontiguousarray(grad_matrix.reshape(g.o, g.kh, g.kw, g.c).transpose(0, 3, 1, 2))
    padded = g.pad_input(x)
    grid = g.to_grid(grad_y)
    grad_w = np.empty(w_shape, grad_y.dtype)
    for i, j in g.offsets():
        patch = g.patch(padded, i, j)
        grad_w[:, :, i, j] = np.matmul(grid, patch.transpose(0, 2, 1)).sum(axis=0)
    return grad_w


def conv2d_backward_bias(grad_y):
    return grad_y.sum(axis=(0, 2, 3))


# The device path: im2col + the tiled SGEMM, or the direct kernels kept for reading -------

COLUMN_BUFFER_FLOATS = 1 << 26  # 256 MiB of im2col columns per chunk of images


class _DeviceGeometry(NamedTuple):
    n: int
    c: int
    h: int
    w: int
    o: int
    k: int
    stride: int
    padding: int
    hout: int
    wout: int
    chunk: int  # images whose im2col columns fit in COLUMN_BUFFER_FLOATS

    def chunks(self):
        """(first image, image count) of each chunk of the batch."""
        return [(n0, min(self.chunk, self.n - n0)) for n0 in range(0, self.n, self.chunk)]


def _device_geometry(x_shape, w_shape, stride, padding):
    n, c, h, w = x_shape
    o, c_w, kh, kw = w_shape
    expect(c == c_w and kh == kw, f"conv2d: input {tuple(x_shape)} and weights {tuple(w_shape)} do not match")
    hout, wout = conv2d_output_size(h, kh, stride, padding), conv2d_output_size(w, kw, stride, padding)
    expect(hout > 0 and wout > 0, f"conv2d: input {h}x{w} is smaller than the kernel")
    chunk = max(1, min(n, COLUMN_BUFFER_FLOATS // max(1, c * kh * kw * hout * wout)))
    return _DeviceGeometry(n, c, h, w, o, kh, stride, padding, hout, wout, chunk)


def _input_columns(device, x, g, n0, nb):
    """im2col of images n0 .. n0+nb-1: (C K K, nb Hout Wout)."""
    columns = device.empty((g.c * g.k * g.k, nb * g.hout * g.wout))
    device.elementwise("im2col", columns.size, x, columns, n0, nb, g.c, g.h, g.w, g.k, g.stride, g.padding,
                       g.hout, g.wout)
    return columns


def _output_columns(device, grad_y, g, n0, nb):
    """grad_y of images n0 .. n0+nb-1 reordered to (O, nb Hout Wout), the product's layout."""
    columns = device.empty((g.o, nb * g.hout * g.wout))
    device.elementwise("nchw_to_columns", columns.size, grad_y, columns, n0, nb, g.o, g.hout * g.wout)
    return columns


def _direct(device, kernel, g, *operands_then_output, flags=()):
    """One of the direct kernels kept for reading: one thread per element of the output
    (the last array), the geometry after the arrays."""
    output = operands_then_output[-1]
    device.elementwise(kernel, output.size, *operands_then_output, g.n, g.c, g.h, g.w, g.o, g.k, g.stride, g.padding,
                       g.hout, g.wout, *flags)
    return output


def _shape(g):
    return (g.n, g.c, g.h, g.w, g.o, g.k, g.stride, g.padding, g.hout, g.wout)


def _implicit_kernel(device, kernel, rows, columns, thread_tile):
    """(name, grid, its tile argument (none or `wide`), the tile's results) of the
    implicit-GEMM `kernel` for a rows x columns result and `thread_tile` (one of the forward's
    and backward-data's IMPLICIT_VERSIONS), a block a tile: in the engine's modes, on the wide 64 x 256 tile where
    the products have at most 64 rows (on the 128 x 128 one, half of every block's work
    would be padding), and a weight gradient of at most IG_NARROW_BN columns on the narrow
    64 x 32 tile (an RGB first layer's 27: the others' columns 75-90% padding). (The kernel
    picks its compile-time shape, 3x3 or 1x1 at stride 1, itself.)"""
    engine = device.convolution in ENGINE_MODES
    if engine and kernel.startswith("conv2d_backward_weights") and columns <= device.define("IG_NARROW_BN"):
        name, tile_rows, tile_columns, arguments = ("conv2d_backward_weights_narrow", device.define("IG_WIDE_BM"),
                                                    device.define("IG_NARROW_BN"), ())
    else:
        wide = engine and rows <= device.define("IG_WIDE_BM")
        name = kernel + ("" if thread_tile == "8x8" else f"_{thread_tile}")
        tile_rows, tile_columns = (device.define(f"IG_{'WIDE_' if wide else ''}{side}") for side in ("BM", "BN"))
        arguments = (int(wide),)
    return name, (-(-columns // tile_columns), -(-rows // tile_rows)), arguments, tile_rows * tile_columns


def _implicit_gemm(device, kernel, g, rows, columns, reduction, operands, out, flags=(), bias=None,
                   thread_tile="8x8"):
    """Launches implicit-GEMM `kernel` (its arguments: `operands`, the output, the geometry,
    `flags`, the slice length, the tile) in its `thread_tile` version for a rows x columns
    result over a `reduction`-long sum, split between blockIdx.z slices where that finishes
    sooner (gemm.py's rule, slices of at least one staging depth); the slices' planes are then
    summed into `out`, with `bias` (per channel of an NCHW output of `rows` channels) where
    given."""
    expect(g.c < 2 ** 16 and g.k < 2 ** 8, f"conv2d: {g.c} channels or a {g.k}x{g.k} kernel is too large for the "
                                           "implicit GEMM's packed columns")
    largest = max(a.size for a in operands + (out,))
    expect(largest < 2 ** 31, f"conv2d: a tensor of {largest} elements is too large for the implicit GEMM's "
                              "32-bit indices")
    name, grid, tile_arguments, area = _implicit_kernel(device, kernel, rows, columns, thread_tile)
    depth = device.define("IG_BK")
    length, splits = split_k_slices(grid[0] * grid[1], reduction, depth, device.concurrent_blocks(name),
                                    min_depth=depth, result=rows * columns, tile=area)
    target = out if splits == 1 else device.empty((splits,) + tuple(out.shape))
    device.launch(name, grid + (splits,), *operands, target, *_shape(g), *flags, length, *tile_arguments)
    if splits > 1:
        plane = out.size // (out.shape[0] * rows) if bias is not None else 1
        device.elementwise("conv2d_sum_splits", out.size, target, out, out.size, splits,
                           target if bias is None else bias, int(bias is not None), rows, plane)
    return out


# Winograd F(m x m, 3 x 3) rungs (conv2d.cu), by Device.convolution mode: m, the side of
# the output tile; the m = 2 one also F(2x2, 5x5) on 5x5 layers. Both run the engine's
# kernels on the shapes their Winograd does not apply to.
WINOGRAD_TILES = {"winograd": 2, "winograd4": 4}
# The tiles of conv2d.cu's F(m x m, r x r) by filter side r.
WINOGRAD_FILTERS = {3: (2, 4), 5: (2,)}
# And fused: forward and backward-data each one kernel after the filter transform
# (conv2d.cu: winograd_fused_2x2 and _4x4, no transformed tensor in global memory), 3x3
# layers only; their weight gradients are the unfused mode's of the same m.
FUSED_WINOGRAD_TILES = {"winograd_fused": 2, "winograd_fused4": 4}
ENGINE_MODES = ("engine",) + tuple(FUSED_WINOGRAD_TILES) + tuple(WINOGRAD_TILES)
# The engine runs Winograd F(ENGINE_WINOGRAD_TILE x ENGINE_WINOGRAD_TILE, 3 x 3) in each
# direction on 3x3 stride-1 layers with at least that direction's number of input and output
# channels (where it saves work and fits: engine_winograd_tile), or never (None); forward
# and backward-data, fused where ENGINE_WINOGRAD_TILE_FUSED[direction] says, and F(2x2)
# fused instead on those of them whose smaller channel count is at most
# ENGINE_WINOGRAD_FUSED[direction] (None: on none; fusing saves the transformed tensors'
# traffic, which weighs most on large maps of few channels, while F(4x4)'s 4 times fewer
# multiplications weigh most on many channels): all chosen from a GPU run's ladders by
# kernels/choices.py (bench/results/h200-2026-11-28/; the fused kernels were written after it).
ENGINE_WINOGRAD_TILE = 4
ENGINE_WINOGRAD_CHANNELS = {"forward": 64, "backward_data": 64, "backward_weights": 64}
ENGINE_WINOGRAD_TILE_FUSED = {"forward": False, "backward_data": False}
ENGINE_WINOGRAD_FUSED = {"forward": None, "backward_data": None}
# And F(2x2, 5x5) in each direction on 5x5 stride-1 layers (CNN-F's conv2) with at least
# that direction's number of input and output channels (where it saves work and fits), or
# never (None): 2.78 times fewer multiplications than the direct sum, other rounding, so
# the engine takes it only once a GPU run's ladders time it faster (kernels/choices.py;
# written after the H200 runs, where that layer ran at 0.08-0.18 of cuDNN's speed, whose
# FFT or Winograd kernels ran it above the FP32 peak counted as direct sums).
ENGINE_WINOGRAD_5X5_CHANNELS = {"forward": None, "backward_data": None, "backward_weights": None}


def _winograd_shape(g, m):
    """Whether Winograd F(m x m, K x K) applies: a filter side K and tile m that conv2d.cu
    has it for, at stride 1 with padding at most K - 1 (backward-data pads by K - 1 - p)."""
    return m in WINOGRAD_FILTERS.get(g.k, ()) and g.stride == 1 and g.padding < g.k


def _winograd_kernel(transform, m, k):
    """conv2d.cu's entry point of a Winograd `transform` (filter, input, ...) of F(m x m, k x k)."""
    return f"winograd_{transform}_transform_{m}x{m}" + ("" if k == 3 else f"_{k}x{k}")


def _winograd_plan(device, g, direction):
    """(m, fused) of the Winograd F(m x m, K x K) that `direction` runs on `device`, or None:
    in a Winograd mode wherever it applies (fused in the fused modes, but never the weight
    gradient), in the engine's as ENGINE_WINOGRAD_* say (unless the device turns it off:
    Device.engine_winograd)."""
    if device.convolution == "engine":
        return _engine_winograd(g, direction) if device.engine_winograd else None
    m = FUSED_WINOGRAD_TILES.get(device.convolution) or WINOGRAD_TILES.get(device.convolution)
    fused = device.convolution in FUSED_WINOGRAD_TILES and direction in ENGINE_WINOGRAD_FUSED
    applies = device.convolution in winograd_modes(g.k, g.stride) and _winograd_shape(g, m)
    return (m, fused) if applies and _winograd_fits(g, m) else None


def winograd_modes(k, stride):
    """The Winograd modes (Device.convolution) whose own Winograd runs on k x k convolutions
    at `stride` (of paddings up to k - 1, where it fits); the others run the engine's kernels
    there."""
    return tuple(mode for mode, m in {**FUSED_WINOGRAD_TILES, **WINOGRAD_TILES}.items()
                 if stride == 1 and m in WINOGRAD_FILTERS.get(k, ()) and (k == 3 or mode in WINOGRAD_TILES))


def _engine_winograd(g, direction):
    if g.k == 5:
        threshold, m, fused = ENGINE_WINOGRAD_5X5_CHANNELS[direction], 2, False
    else:
        threshold, bound = ENGINE_WINOGRAD_CHANNELS[direction], ENGINE_WINOGRAD_FUSED.get(direction)
        if bound is not None and min(g.c, g.o) <= bound:
            m, fused = 2, True
        else:
            m, fused = ENGINE_WINOGRAD_TILE, ENGINE_WINOGRAD_TILE_FUSED.get(direction, False)
    taken = _winograd_shape(g, m) and threshold is not None and min(g.c, g.o) >= threshold
    return (m, fused) if taken and _winograd_fits(g, m) and _winograd_saves_work(g, m, direction) else None


def engine_winograd_tile(x_shape, w_shape, stride, padding, direction):
    """m of the Winograd the engine's `direction` runs on this convolution (where it applies,
    both channel counts reach ENGINE_WINOGRAD_CHANNELS[direction] (of a 3x3 filter,
    ENGINE_WINOGRAD_5X5_CHANNELS of a 5x5), its products over whole
    tiles are less work than the direct sum's and its transformed tensors fit 32-bit
    indices), or None."""
    plan = _engine_winograd(_device_geometry(x_shape, w_shape, stride, padding), direction)
    return plan and plan[0]


def _winograd_saves_work(g, m, direction):
    """Whether Winograd's (m + K - 1)^2 products, counted over whole tiles as a GPU runs them
    (128 x 128; 64 x 256 forward and backward-data where the rows are at most 64, as the
    implicit GEMM's too), take fewer multiply-adds than the implicit GEMM's direct sum over
    its tiles (K^2 a position).
    The channel thresholds come from the ladder's batch-16 layers, where the products' tiles
    are full; at batch 1 a small map has few Winograd tiles (VGG-16's 14 x 14 layers: 16 for
    m = 4, one eighth of a 128-wide tile), and the products there are mostly padding: 2 times
    the direct sum's multiply-adds for m = 4, where the implicit GEMM's 196 positions fill
    two tiles three quarters full."""
    whole = lambda count, width=128: -(-count // width) * width  # noqa: E731
    planes, area = (m + g.k - 1) ** 2, g.k * g.k
    if direction == "backward_weights":  # O x C products over the tiles, against O x K^2 C over the positions
        tiles = g.n * -(-g.hout // m) * -(-g.wout // m)
        return planes * whole(g.c) * tiles < whole(area * g.c) * g.n * g.hout * g.wout
    h, w = (g.h, g.w) if direction == "backward_data" else (g.hout, g.wout)  # the output's map
    rows = g.c if direction == "backward_data" else g.o
    width = 256 if rows <= 64 else 128  # conv2d.cu's IG_WIDE_BN where the rows fit IG_WIDE_BM
    tiles = g.n * -(-h // m) * -(-w // m)
    return planes * whole(tiles, width) < area * whole(g.n * h * w, width)  # the rows and reductions alike


def _winograd_fits(g, m):
    """Whether the transforms' 32-bit indices reach every element of the largest tensor of
    the Winograd domain, (m + K - 1)^2 planes of the most channels by the tiles of the larger map
    (input or output: backward-data's output is the input); else (VGG-16's 224 x 224 layers
    from a batch of 168 for m = 2, 298 for m = 4) the engine's other kernels run."""
    tiles = g.n * -(-max(g.h, g.hout) // m) * -(-max(g.w, g.wout) // m)
    return (m + g.k - 1) ** 2 * max(g.c, g.o) * tiles < 2 ** 31


def _winograd_tiles(m, hout, wout, n):
    """(tiles down, tiles across, tiles) of F(m x m, K x K) on n Hout x Wout maps."""
    down, across = -(-hout // m), -(-wout // m)
    return down, across, n * down * across


def _winograd(device, m, x, weight, bias, padding, out, flipped=False, fused=False):
    """conv2d.cu's Winograd F(m x m, K x K) forward of x (N, C, H, W) with weight (O, C, K, K)
    into out (N, O, Hout, Wout): the filter and input transforms, the (m + K - 1)^2 products
    in one batched launch (_winograd_products), the output transform (adding the
    products' split planes and the bias, where given); `fused` (K = 3): the filter
    transform, then the rest in one kernel. `flipped`: with the filters of weight (C, O, K, K)
    transposed and turned by 180 degrees instead (backward-data), which the filter transform
    reads so."""
    n, c, h, w = x.shape
    o, k, hout, wout = weight.shape[1 if flipped else 0], weight.shape[3], out.shape[2], out.shape[3]
    planes = (m + k - 1) ** 2
    down, across, tiles = _winograd_tiles(m, hout, wout, n)
    filters = device.empty((planes, c, o) if fused else (planes, o, c))
    device.elementwise(_winograd_kernel("filter", m, k), o * c, weight, filters, o, c, int(flipped), int(fused))
    if fused:
        expect(filters.size < 2 ** 31, f"conv2d: {o} x {c} filters are too many for the fused Winograd's "
                                       "32-bit offsets")
        device.launch(f"winograd_fused_{m}x{m}", -(-tiles // device.define("WF_BP")) * -(-o // device.define("WF_BO")),
                      x, filters, bias if bias is not None else filters, out, n, c, h, w, o, padding, hout, wout,
                      down, across, int(bias is not None))
        return out
    inputs = device.empty((planes, c, tiles))
    device.elementwise(_winograd_kernel("input", m, k), c * tiles, x, inputs, n, c, h, w, padding, down, across)
    products = _winograd_products(device, filters, inputs)
    device.elementwise(_winograd_kernel("output", m, k), o * tiles, products, products.shape[1],
                       bias if bias is not None else products, out, n, o, hout, wout, down, across,
                       int(bias is not None))
    return out


def _winograd_products(device, filters, inputs):
    """The products filters[z] @ inputs[z] as (planes, splits, rows, tiles) partial planes:
    where they have at most IG_WIDE_BM rows, on conv2d.cu's 64 x 256 tile (the square tiles
    of gemm.py's batched kernels would be half padding), else on those; the reduction split
    likewise where the tiles alone are too few blocks."""
    if filters.shape[1] > device.define("IG_WIDE_BM"):
        return batched_product_device(device, filters, inputs)
    return wide_products_device(device, filters, inputs)


def _winograd_weight_gradient(device, m, grad_y, x, padding, grad_w):
    """conv2d.cu's Winograd F(K x K, m x m) weight gradient of a K x K stride-1 convolution
    into grad_w (O, C, K, K): the grad_y and input tiles transformed, the (m + K - 1)^2
    products (O x C, each a reduction over every tile of the batch, split where the tiles are
    few blocks) in one batched launch, then their planes added and transformed back."""
    n, c, h, w = x.shape
    o, hout, wout = grad_y.shape[1:]
    k = grad_w.shape[3]
    planes = (m + k - 1) ** 2
    down, across, tiles = _winograd_tiles(m, hout, wout, n)
    gradients, inputs = device.empty((planes, o, tiles)), device.empty((planes, c, tiles))
    device.elementwise(_winograd_kernel("gradient", m, k), o * tiles, grad_y, gradients, n, o, hout, wout, down,
                       across)
    device.elementwise(_winograd_kernel("input", m, k), c * tiles, x, inputs, n, c, h, w, padding, down, across)
    products = batched_product_device(device, gradients, inputs, transpose_b=True)
    device.elementwise(_winograd_kernel("filter_gradient", m, k), o * c, products, products.shape[1], grad_w, o, c)
    return grad_w


# The implicit GEMM's versions by direction: the forward's and backward-data's 8 x 8 results
# a thread (256 threads; the H100 runs of 2026-11-27), 8 x 16 (128 threads: gemm.cu's v11
# idea, 25% fewer shared-memory reads a multiply-add) or "async" (8 x 8, the gathers copied
# into shared memory by cp.async, three slices in flight: gemm.cu's v12 idea); the weight
# gradient's "splitk", one block an SM with its positions stepped, "two_blocks", two blocks
# an SM in 128 registers with its positions decoded at every slice, or "async", splitk's
# with its gathers copied by cp.async (conv2d.cu). All but the first of each were written
# after those runs; the engine takes the one a GPU run's ladders time fastest
# (kernels/choices.py; bench/results/h200-2026-11-28/).
IMPLICIT_VERSIONS = {"forward": ("8x8", "8x16", "async"), "backward_data": ("8x8", "8x16", "async"),
                     "backward_weights": ("splitk", "two_blocks", "async")}
ENGINE_IMPLICIT = {"forward": "8x8", "backward_data": "8x8", "backward_weights": "two_blocks"}


def _implicit_version(direction, version):
    """`version` of the implicit GEMM in `direction` (the engine's where None), checked."""
    version = version or ENGINE_IMPLICIT[direction]
    expect(version in IMPLICIT_VERSIONS[direction], f"conv2d {direction}: no implicit version {version!r}, expected "
                                                    f"one of {', '.join(IMPLICIT_VERSIONS[direction])}")
    return version


def conv2d_forward_device(device: Device, x, weight, bias, stride=1, padding=0, context=None, version=None,
                          few_channels=None):
    """`version`: which of IMPLICIT_VERSIONS the implicit GEMM runs, the engine's where None;
    `few_channels`: which of FEW_CHANNELS_FORWARD runs where the few-channel kernel applies,
    the engine's where None."""
    x, weight = device.float32("x", x, 4), device.float32("weight", weight, 4)
    g = _device_geometry(x.shape, weight.shape, stride, padding)
    has_bias = bias is not None
    bias = device.float32("bias", bias, 1) if has_bias else device.empty((1,))
    y = device.empty((g.n, g.o, g.hout, g.wout))
    if (device.convolution in ENGINE_MODES and _few_channels_version("forward", few_channels) == "few_channels"
            and _few_channels_applies(device, g, "forward")):
        device.launch("conv2d_forward_few_channels", (-(-g.wout // device.define("FEW_TILE_W")),
                                                      -(-g.hout // device.define("FEW_TILE_H")), g.n),
                      x, weight, bias, y, g.c, g.h, g.w, g.o, g.padding, g.hout, g.wout, int(has_bias))
        return y
    winograd = _winograd_plan(device, g, "forward")
    if winograd:
        m, fused = winograd
        return _winograd(device, m, x, weight, bias if has_bias else None, padding, y, fused=fused)
    if device.convolution in ("implicit",) + ENGINE_MODES:
        return _implicit_gemm(device, "conv2d_forward_implicit", g, g.o, g.n * g.hout * g.wout, g.c * g.k * g.k,
                              (x, weight, bias), y, flags=(int(has_bias),), bias=bias if has_bias else None,
                              thread_tile=_implicit_version("forward", version))
    if device.convolution == "direct":
        return _direct(device, "conv2d_forward_direct", g, x, weight, bias, y, flags=(int(has_bias),))
    matrix = weight.reshape(g.o, -1)
    for n0, nb in g.chunks():
        product = gemm_product_device(device, matrix, _input_columns(device, x, g, n0, nb))
        device.elementwise("columns_to_nchw", product.size, product, bias, y, n0, nb, g.o, g.hout * g.wout,
                           int(has_bias))
    return y


# The engine's backward-data takes the column buffer instead of the implicit GEMM where the
# implicit one wastes most of its work: strided convolutions (its gather finds a grad_y value
# for only 1 in stride^2 reduction indices) and inputs of few channels (C rows of 128-row
# tiles: VGG's conv1_1 at batch 64 ran 36 ms, the columns' GEMM has C K^2 rows), but not
# pointwise ones (1x1 at stride 1: EfficientNet's expansions and projections), whose
# columns' GEMM has the implicit one's shape exactly (C rows, O deep), so the buffer only
# adds its two copies: grad_y and grad_x each moved three times instead of once (H200,
# 2026-11-28, N64: 0.25-0.47 of cuDNN's speed on C16-C40 through the buffer, 0.62-0.95 on
# the wider ones through the implicit GEMM).
FEW_INPUT_CHANNELS = 64


# And the weight gradient takes it on small maps: on the H100 run of 2026-11-27 (VGG's
# 14 x 14 layer at batch 16) the columns' product took 0.99-1.03 ms, the split-K implicit
# GEMM 1.12-1.16 ms; from 56 x 56 up the implicit one was 10-30% faster.
COLUMNS_WEIGHT_GRADIENT_POSITIONS = 256


# And for a convolution of at most FEW_CHANNELS input channels (an RGB image's first layer)
# whose kernel size and stride conv2d.cu's few-channel kernel is compiled for (VGG-16's,
# the shipped model's, CNN-F's, EfficientNet-Lite0's stem) it takes FEW_CHANNELS_BACKWARD_DATA's "columns" (the column
# buffer, as run 3 timed it), "few_channels" (that kernel, a thread a pixel and its
# channels: 0.41 of the column buffer's time on VGG-16's conv1_1 at batch 16, H200,
# 2026-11-28; the ladder's `engine few_channels` row times it) or "few_channels_async" (the
# same products, the staging by cp.async through two buffers).
FEW_CHANNEL_KERNELS = ((3, 1), (3, 2), (7, 2), (11, 4))  # (kernel size, stride)
FEW_CHANNELS_BACKWARD_DATA = ("columns", "few_channels", "few_channels_async")
ENGINE_FEW_CHANNELS_BACKWARD_DATA = "few_channels"
# Its forward at 3x3 stride 1 only (VGG-16's conv1_1: 0.83 of the implicit GEMM's time on
# the H200, 2026-11-28): FEW_CHANNELS_FORWARD's "implicit" (the implicit GEMM, as everywhere
# else) or "few_channels".
FEW_CHANNELS_FORWARD = ("implicit", "few_channels")
ENGINE_FEW_CHANNELS_FORWARD = "few_channels"


def few_channels_applies(device, x_shape, w_shape, stride, padding, direction="backward_data"):
    """Whether conv2d.cu's few-channel kernel of `direction` ("forward" or "backward_data")
    takes this convolution."""
    return _few_channels_applies(device, _device_geometry(x_shape, w_shape, stride, padding), direction)


def _few_channels_applies(device, g, direction):
    shapes = ((3, 1),) if direction == "forward" else FEW_CHANNEL_KERNELS
    return (g.k, g.stride) in shapes and g.c <= device.define("FEW_CHANNELS")


def few_channel_versions(direction):
    """(the few-channel choice's versions in `direction`, the engine's one)."""
    return ((FEW_CHANNELS_FORWARD, ENGINE_FEW_CHANNELS_FORWARD) if direction == "forward" else
            (FEW_CHANNELS_BACKWARD_DATA, ENGINE_FEW_CHANNELS_BACKWARD_DATA))


def _few_channels_version(direction, version):
    """`version` of the few-channel choice in `direction` (the engine's where None), checked."""
    versions, engine = few_channel_versions(direction)
    version = version or engine
    if version not in versions:  # (the message formatted only then: this runs at every convolution)
        raise KernelError(f"conv2d {direction}: no few-channel version {version!r}, expected one of "
                          f"{', '.join(versions)}")
    return version


def _backward_data_through_columns(device, g):
    return device.convolution == "im2col" or (
        device.convolution in ENGINE_MODES and (g.stride > 1 or (g.c < FEW_INPUT_CHANNELS and g.k > 1)))


def _backward_weights_through_columns(device, g):
    return device.convolution == "im2col" or (
        device.convolution in ENGINE_MODES and g.hout * g.wout <= COLUMNS_WEIGHT_GRADIENT_POSITIONS)


def conv2d_backward_data_device(device: Device, grad_y, weight, x_shape, stride=1, padding=0, version=None,
                                few_channels=None):
    """`version`: which of IMPLICIT_VERSIONS the implicit GEMM runs, the engine's where None;
    `few_channels`: which of FEW_CHANNELS_BACKWARD_DATA runs where the few-channel kernel
    applies, the engine's where None."""
    grad_y, weight = device.float32("grad_y", grad_y, 4), device.float32("weight", weight, 4)
    g = _device_geometry(x_shape, weight.shape, stride, padding)
    expected = (g.n, g.o, g.hout, g.wout)
    expect(grad_y.shape == expected, f"conv2d: grad_y has shape {grad_y.shape}, expected {expected}")
    grad_x = device.empty(tuple(x_shape))
    if device.convolution == "direct":
        return _direct(device, "conv2d_backward_data_direct", g, grad_y, weight, grad_x)
    few = _few_channels_version("backward_data", few_channels) if device.convolution in ENGINE_MODES else None
    if few not in (None, "columns") and _few_channels_applies(device, g, "backward_data"):
        expect(g.o * g.hout * g.wout < 2 ** 31, f"conv2d backward-data: an image's grad_y of {g.o * g.hout * g.wout} "
                                                "elements is too large for the few-channel kernel's 32-bit offsets")
        device.launch(f"conv2d_backward_data_{few}", (-(-g.w // device.define("FEW_TILE_W")),
                                                      -(-g.h // device.define("FEW_TILE_H")), g.n),
                      grad_y, weight, grad_x, g.c, g.h, g.w, g.o, g.k, g.stride, g.padding, g.hout, g.wout)
        return grad_x
    winograd = _winograd_plan(device, g, "backward_data")
    if winograd:  # the forward of grad_y with the flipped, transposed filters (Sect. 4)
        m, fused = winograd
        return _winograd(device, m, grad_y, weight, None, g.k - 1 - g.padding, grad_x, flipped=True, fused=fused)
    if not _backward_data_through_columns(device, g):
        return _implicit_gemm(device, "conv2d_backward_data_implicit", g, g.c, g.n * g.h * g.w, g.o * g.k * g.k,
                              (grad_y, weight), grad_x, thread_tile=_implicit_version("backward_data", version))
    matrix = weight.reshape(g.o, -1)
    for n0, nb in g.chunks():
        grad_columns = gemm_product_device(device, matrix, _output_columns(device, grad_y, g, n0, nb), transpose_a=True)
        device.elementwise("col2im", nb * g.c * g.h * g.w, grad_columns, grad_x, n0, nb, g.c, g.h, g.w, g.k,
                           stride, padding, g.hout, g.wout)
    return grad_x


def conv2d_backward_weights_device(device: Device, grad_y, x, w_shape, stride=1, padding=0, context=None,
                                   version=None):
    """`version`: which of IMPLICIT_VERSIONS the implicit GEMM runs (the ladder times them
    all), the engine's where None."""
    grad_y, x = device.float32("grad_y", grad_y, 4), device.float32("x", x, 4)
    g = _device_geometry(x.shape, w_shape, stride, padding)
    grad_w = device.empty(tuple(w_shape))
    if device.convolution == "direct":
        return _direct(device, "conv2d_backward_weights_direct", g, grad_y, x, grad_w)
    winograd = _winograd_plan(device, g, "backward_weights")
    if winograd:
        return _winograd_weight_gradient(device, winograd[0], grad_y, x, g.padding, grad_w)
    if not _backward_weights_through_columns(device, g):
        version = _implicit_version("backward_weights", version)
        return _implicit_gemm(device, f"conv2d_backward_weights_{version}", g, g.o, g.c * g.k * g.k,
                              g.n * g.hout * g.wout, (grad_y, x), grad_w)
    matrix = grad_w.reshape(g.o, -1)
    for n0, nb in g.chunks():
        gemm_product_device(device, _output_columns(device, grad_y, g, n0, nb), _input_columns(device, x, g, n0, nb),
                            transpose_b=True, out=matrix, beta=0.0 if n0 == 0 else 1.0)
    return grad_w


def conv2d_backward_bias_device(device: Device, grad_y):
    grad_y = device.float32("grad_y", grad_y, 4)
    n, o, h, w = grad_y.shape
    return channel_sums(device, "channel_sum", device.empty((o,)), (grad_y,), n, o, h * w, 1.0)


def conv2d_zeiler(ops, signal, x, weight, bias=None, stride=1, padding=0):
    """DeconvNet: convolution with the flipped, transposed filters, i.e. backward-data."""
    return ops.backward_data(signal, weight, x.shape, stride, padding)


CONV2D = OpFamily(
    "conv2d", ("conv2d.cu", "gemm.cu", "bias.cu"),
    numpy=dict(forward=conv2d_forward, backward_data=conv2d_backward_data,
               backward_weights=conv2d_backward_weights, backward_bias=conv2d_backward_bias),
    device=dict(forward=conv2d_forward_device, backward_data=conv2d_backward_data_device,
                backward_weights=conv2d_backward_weights_device, backward_bias=conv2d_backward_bias_device),
    zeiler=conv2d_zeiler)


class GroupedConvolution:
    """A grouped convolution (groups dividing both channel counts, not depthwise) as one
    convolution of `ops` (the conv2d family on some backend) per group of channels, the
    results concatenated; the same signatures as the family's ops, and through them its
    DeconvNet step. (Depthwise convolutions have kernels of their own: kernels/depthwise.py.)"""

    def __init__(self, ops, groups, xp):
        self.ops, self.groups, self.xp = ops, groups, xp

    def _slices(self, channels):
        size = channels // self.groups
        return [slice(g * size, (g + 1) * size) for g in range(self.groups)]

    def _part(self, a, channels):
        return self.xp.ascontiguousarray(a[:, channels])

    def forward(self, x, weight, bias, stride=1, padding=0, context=None):
        return self.xp.concatenate([
            self.ops.forward(self._part(x, ins), self.xp.ascontiguousarray(weight[outs]),
                             None if bias is None else self.xp.ascontiguousarray(bias[outs]), stride, padding)
            for ins, outs in zip(self._slices(x.shape[1]), self._slices(weight.shape[0]))], axis=1)

    def backward_data(self, grad_y, weight, x_shape, stride=1, padding=0):
        n, c, h, w = x_shape
        return self.xp.concatenate([
            self.ops.backward_data(self._part(grad_y, outs), self.xp.ascontiguousarray(weight[outs]),
                                   (n, c // self.groups, h, w), stride, padding)
            for outs in self._slices(weight.shape[0])], axis=1)

    def backward_weights(self, grad_y, x, w_shape, stride=1, padding=0, context=None):
        part_shape = (w_shape[0] // self.groups,) + tuple(w_shape[1:])
        return self.xp.concatenate([
            self.ops.backward_weights(self._part(grad_y, outs), self._part(x, ins), part_shape, stride, padding)
            for ins, outs in zip(self._slices(x.shape[1]), self._slices(w_shape[0]))], axis=0)

    def backward_bias(self, grad_y):
        return self.ops.backward_bias(grad_y)


def convolution_ops(backend_ops, xp, groups, in_channels, out_channels):
    """The ops of a convolution with `groups`: conv2d's, depthwise's, or grouped conv2d's."""
    if groups == 1:
        return backend_ops.conv2d
    if groups == in_channels == out_channels:
        return backend_ops.depthwise
    return GroupedConvolution(backend_ops.conv2d, groups, xp)
