"""The wide grid: the layout in which every kernel offset of a sliding-window op (depthwise
convolution, max-pooling) reads one contiguous slice of each plane, so that NumPy's
element-wise passes run over long inner loops instead of rows of a few elements.

At stride 1 this is conv2d's trick: flatten the padded plane and compute the output on Hout
rows of the plane's full width; the extra columns on the right are garbage and are cropped.
At stride s the padded input is first split into its s x s phases (rows a, a + s, ...
and columns b, b + s, ...): offset (u, v) reads phase (u % s, v % s) at stride 1.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided


class PhaseGrid:
    """The wide-grid layout of one sliding-window geometry: square windows of `kernel`,
    `stride`, `padding` rows and columns before the input (after it, as many as the given
    output size needs). Phase (a, b) of the padded input holds its rows a, a + s, ... and
    columns b, b + s, ... (at stride 1 the one phase is the padded input itself), each plane
    flattened with `reach` spare elements at its end. Offset (u, v) of the window reads, for
    output position (i, j), phase (u % s, v % s) at (i + u // s, j + v // s): on the wide
    grid of Hout rows of the phase's full width `wq`, one contiguous slice of `length`
    elements per plane. Its last wq - Wout columns are garbage (forward) or zero (backward),
    and cropped."""

    def __init__(self, x_shape, kernel, stride, padding, output_size):
        self.n, self.c, self.h, self.w = x_shape
        self.kernel, self.stride, self.padding = kernel, stride, padding
        self.hout, self.wout = output_size
        self.reach = (kernel - 1) // stride  # rows and columns a phase holds past the output's
        self.hq, self.wq = self.hout + self.reach, self.wout + self.reach
        self.length = self.hout * self.wq
        self.plane_length = self.hq * self.wq + self.reach  # a flattened phase plane and its spare elements

    def planes(self, dtype, fill=0):
        """Phase planes holding nothing but `fill` (the padding's value)."""
        s = self.stride
        shape = (s, s, self.n, self.c, self.plane_length)
        # np.zeros, where it will do, is calloc's fresh zero pages: no pass over the memory.
        return np.zeros(shape, dtype) if fill == 0 else np.full(shape, fill, dtype)

    def _runs(self, phase, phase_size, size):
        """(slice of the phase, slice of the unpadded input) that hold the same pixels."""
        s, p = self.stride, self.padding
        first = max(0, -(-(p - phase) // s))  # first phase index inside the input
        begin = phase + s * first - p
        count = max(0, min(phase_size - first, -(-(size - begin) // s)))
        return slice(first, first + count), slice(begin, begin + s * count, s)

    def phases(self):
        """Per phase: its index, and the (phase, input) index pairs of the pixels it holds."""
        for a in range(self.stride):
            rows_q, rows_x = self._runs(a, self.hq, self.h)
            for b in range(self.stride):
                cols_q, cols_x = self._runs(b, self.wq, self.w)
                yield (a, b), (slice(None), slice(None), rows_q, cols_q), (slice(None), slice(None), rows_x, cols_x)

    def plane_grid(self, planes, a, b):
        return planes[a, b, :, :, : self.hq * self.wq].reshape(self.n, self.c, self.hq, self.wq)

    def split(self, x, fill=0):
        planes = self.planes(x.dtype, fill)
        for (a, b), in_phase, in_x in self.phases():
            self.plane_grid(planes, a, b)[in_phase] = x[in_x]
        return planes

    def merge(self, planes):
        """The inverse of split for gradients: the input's pixels gathered from the phases
        (phases hold disjoint pixels; padding and never-read pixels are dropped)."""
        x = np.zeros((self.n, self.c, self.h, self.w), planes.dtype)
        for (a, b), in_phase, in_x in self.phases():
            x[in_x] = self.plane_grid(planes, a, b)[in_phase]
        return x

    def offsets(self):
        """(u, v, start): kernel offset and where its slice starts in its phase's planes."""
        s = self.stride
        return [(u, v, (u // s) * self.wq + v // s) for u in range(self.kernel) for v in range(self.kernel)]

    def window(self, planes, u, v, start):
        return planes[u % self.stride, v % self.stride, :, :, start : start + self.length]

    def row_phases(self):
        """(a, rows) per row phase a: the kernel rows a, a + s, ... that read phase row a,
        one phase row (wq) apart."""
        return [(a, range(a, self.kernel, self.stride)) for a in range(min(self.stride, self.kernel))]

    def column_groups(self):
        """(j, columns) per column shift j: the kernel columns s j + b, one per phase
        column b, that read their phase j columns along."""
        s = self.stride
        return [(j, range(s * j, min(self.kernel, s * j + s))) for j in range(-(-self.kernel // s))]

    def stack(self, flats, first, count, length=None):
        """The (C, B, count, length) view of `flats` (B, C, ...: B phases of one image's
        flattened planes) whose [c, b, i] is the slice of flats[b, c] that starts at
        first + i * wq: a sum over its middle axes reads it with the long slice as NumPy's
        inner loop (the phase and row steps are whole planes and rows)."""
        item = flats.itemsize
        return as_strided(flats[..., first:], (flats.shape[1], flats.shape[0], count, length or self.length),
                          (flats.strides[1], flats.strides[0], self.wq * item, item), writeable=False)

    def front(self):
        """Zeros a gradient on the wide grid needs before it, so that every window the
        transposed sum gathers (up to reach rows and columns back) lies inside it."""
        return self.reach * self.wq + self.reach

    def to_wide(self, grad_y, front):
        """grad_y on the wide grid (zeros in the garbage columns), with `front` zeros before
        it and zeros after it up to a phase plane's length."""
        wide = np.zeros((self.n, self.c, front + self.plane_length), grad_y.dtype)
        rows = wide[..., front : front + self.length].reshape(self.n, self.c, self.hout, self.wq)
        rows[..., : self.wout] = grad_y
        return wide

    def crop(self, y_wide):
        """(N, C, Hout, Wout) of an array on the wide grid (a view)."""
        return y_wide.reshape(self.n, self.c, self.hout, self.wq)[..., : self.wout]
