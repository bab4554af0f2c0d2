"""Max-pooling with switches, NumPy reference path.

Forward returns the pooled map and its switches: for every output element, the flat index
(row * W + column) in its input plane of the element that won. Ties go to the first
maximum in row-major window order, in every backend. Padding never wins (it is -inf).
Backward scatters each output gradient to its switch and adds where windows overlap; the
same switches are what a DeconvNet unpools through (Sect. 4 of the paper).
"""
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


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
    # Pad with -inf on the left by `padding`, on the right as far as the last window reaches.
    hp = max(h + 2 * padding, (hout - 1) * stride + kernel_size)
    wp = max(w + 2 * padding, (wout - 1) * stride + kernel_size)
    padded = np.full((n, c, hp, wp), -np.inf, x.dtype)
    padded[:, :, padding : padding + h, padding : padding + w] = x
    windows = sliding_window_view(padded, (kernel_size, kernel_size), axis=(2, 3))
    windows = windows[:, :, : (hout - 1) * stride + 1 : stride, : (wout - 1) * stride + 1 : stride]
    windows = windows.reshape(n, c, hout, wout, kernel_size * kernel_size)
    winner = windows.argmax(axis=-1)  # first maximum in row-major window order
    y = np.take_along_axis(windows, winner[..., None], axis=-1)[..., 0]
    rows = np.arange(hout)[:, None] * stride + winner // kernel_size - padding
    cols = np.arange(wout)[None, :] * stride + winner % kernel_size - padding
    switches = (rows * w + cols).astype(np.int64)
    return np.ascontiguousarray(y), switches


def maxpool_backward(grad_y, switches, x_shape):
    """Adds each output gradient into the input element its switch names."""
    n, c, h, w = x_shape
    plane = np.arange(n * c, dtype=np.int64).reshape(n, c, 1, 1) * (h * w)
    grad_x = np.bincount((plane + switches).ravel(), weights=grad_y.ravel(), minlength=n * c * h * w)
    return grad_x.astype(grad_y.dtype).reshape(x_shape)
