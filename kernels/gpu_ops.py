"""The ops of kernels.OPS on our CUDA kernels, written once for every launcher: the `cuda`
backend (CuPy arrays on a GPU) and the `emulator` backend (NumPy arrays, the same .cu
files run on the CPU). Same signatures as the NumPy reference path.

Every function checks shapes and dtypes before it launches anything, and allocates its
outputs through the launcher (which poisons them with NaN in tests, so that an element a
kernel forgets to write fails the comparison).
"""
from types import SimpleNamespace

import numpy as np

from .conv2d import conv2d_output_size
from .launch import KernelError
from .maxpool import maxpool_output_size
from .relu import check_mode
from . import OPS

THREADS = 256
MAX_BLOCKS = 4096  # grid-stride loops cover the rest
COLUMN_BUFFER_FLOATS = 1 << 26  # 256 MiB of im2col columns per chunk of images
MODE_CODES = {"backprop": 0, "deconvnet": 1, "guided": 2}


def _blocks(count):
    return max(1, min(MAX_BLOCKS, -(-int(count) // THREADS)))


def _expect(condition, message):
    if not condition:
        raise KernelError(message)


def make_ops(launcher, direct_convolution=False):
    """A namespace of the ops on `launcher`. direct_convolution=True selects the plain
    convolution kernels kept for reading instead of im2col + tiled SGEMM."""
    xp = launcher.xp
    launch, empty = launcher.launch, launcher.empty

    def contiguous(a):
        return xp.ascontiguousarray(a)

    def float32(name, a, ndim=None):
        _expect(a.dtype == np.float32, f"{name} must be float32, got {a.dtype}")
        _expect(ndim is None or a.ndim == ndim, f"{name} must have {ndim} dimensions, got shape {a.shape}")
        return contiguous(a)

    def elementwise(kernel, n, *arguments):
        launch(kernel, _blocks(n), THREADS, *arguments)

    # matrix products ---------------------------------------------------------------------
    def gemm(a, b, transpose_a=False, transpose_b=False, out=None, beta=0.0):
        """op(a) @ op(b) with the tiled SGEMM; a and b contiguous float32 matrices."""
        m, k = (a.shape[1], a.shape[0]) if transpose_a else a.shape
        k_b, n = (b.shape[1], b.shape[0]) if transpose_b else b.shape
        _expect(k == k_b, f"matrix product of {a.shape}{'^T' if transpose_a else ''} and "
                          f"{b.shape}{'^T' if transpose_b else ''}: inner sizes differ")
        if out is None:
            out = empty((m, n))
        grid = (-(-n // 128), -(-m // 128))
        launch("sgemm_tiled", grid, THREADS, m, n, k, 1.0, a, int(transpose_a), b, int(transpose_b), beta, out)
        return out

    # convolution -------------------------------------------------------------------------
    def conv_geometry(x_shape, w_shape, stride, padding):
        n, c, h, w = x_shape
        o, c_w, kh, kw = w_shape
        _expect(c == c_w and kh == kw, f"conv2d: input {tuple(x_shape)} and weights {tuple(w_shape)} do not match")
        hout, wout = conv2d_output_size(h, kh, stride, padding), conv2d_output_size(w, kw, stride, padding)
        _expect(hout > 0 and wout > 0, f"conv2d: input {h}x{w} is smaller than the kernel")
        chunk = max(1, min(n, COLUMN_BUFFER_FLOATS // max(1, c * kh * kw * hout * wout)))
        return n, c, h, w, o, kh, hout, wout, chunk

    def conv2d_forward(x, weight, bias, stride=1, padding=0):
        x, weight = float32("x", x, 4), float32("weight", weight, 4)
        n, c, h, w, o, k, hout, wout, chunk = conv_geometry(x.shape, weight.shape, stride, padding)
        has_bias = bias is not None
        bias = float32("bias", bias, 1) if has_bias else empty((1,))
        y = empty((n, o, hout, wout))
        if direct_convolution:
            elementwise("conv2d_forward_direct", y.size, x, weight, bias, y, n, c, h, w, o, k, stride, padding,
                        hout, wout, int(has_bias))
            return y
        plane = hout * wout
        matrix = weight.reshape(o, c * k * k)
        for n0 in range(0, n, chunk):
            nb = min(chunk, n - n0)
            columns = empty((c * k * k, nb * plane))
            elementwise("im2col", columns.size, x, columns, n0, nb, c, h, w, k, stride, padding, hout, wout)
            product = gemm(matrix, columns)
            elementwise("columns_to_nchw", product.size, product, bias, y, n0, nb, o, plane, int(has_bias))
        return y

    def conv2d_backward_data(grad_y, weight, x_shape, stride=1, padding=0):
        grad_y, weight = float32("grad_y", grad_y, 4), float32("weight", weight, 4)
        n, c, h, w, o, k, hout, wout, chunk = conv_geometry(x_shape, weight.shape, stride, padding)
        _expect(grad_y.shape == (n, o, hout, wout), f"conv2d: grad_y has shape {grad_y.shape}, expected {(n, o, hout, wout)}")
        grad_x = empty(tuple(x_shape))
        if direct_convolution:
            elementwise("conv2d_backward_data_direct", grad_x.size, grad_y, weight, grad_x, n, c, h, w, o, k, stride,
                        padding, hout, wout)
            return grad_x
        plane = hout * wout
        matrix = weight.reshape(o, c * k * k)
        for n0 in range(0, n, chunk):
            nb = min(chunk, n - n0)
            columns_y = empty((o, nb * plane))
            elementwise("nchw_to_columns", columns_y.size, grad_y, columns_y, n0, nb, o, plane)
            grad_columns = gemm(matrix, columns_y, transpose_a=True)
            elementwise("col2im", nb * c * h * w, grad_columns, grad_x, n0, nb, c, h, w, k, stride, padding, hout, wout)
        return grad_x

    def conv2d_backward_weights(grad_y, x, w_shape, stride=1, padding=0):
        grad_y, x = float32("grad_y", grad_y, 4), float32("x", x, 4)
        n, c, h, w, o, k, hout, wout, chunk = conv_geometry(x.shape, w_shape, stride, padding)
        grad_w = empty(tuple(w_shape))
        if direct_convolution:
            elementwise("conv2d_backward_weights_direct", grad_w.size, grad_y, x, grad_w, n, c, h, w, o, k, stride,
                        padding, hout, wout)
            return grad_w
        plane = hout * wout
        matrix = grad_w.reshape(o, c * k * k)
        for n0 in range(0, n, chunk):
            nb = min(chunk, n - n0)
            columns = empty((c * k * k, nb * plane))
            elementwise("im2col", columns.size, x, columns, n0, nb, c, h, w, k, stride, padding, hout, wout)
            columns_y = empty((o, nb * plane))
            elementwise("nchw_to_columns", columns_y.size, grad_y, columns_y, n0, nb, o, plane)
            gemm(columns_y, columns, transpose_b=True, out=matrix, beta=0.0 if n0 == 0 else 1.0)
        return grad_w

    def conv2d_backward_bias(grad_y):
        grad_y = float32("grad_y", grad_y, 4)
        n, o, h, w = grad_y.shape
        out = empty((o,))
        launch("channel_sum", o, THREADS, grad_y, out, n, o, h * w)
        return out

    # ReLU, pooling, LRN -------------------------------------------------------------------
    def relu_forward(x):
        x = float32("x", x)
        y = empty(x.shape)
        elementwise("relu_forward", x.size, x, y, x.size)
        return y

    def relu_backward(grad_y, y, mode="backprop"):
        check_mode(mode)
        grad_y, y = float32("grad_y", grad_y), float32("y", y)
        _expect(grad_y.shape == y.shape, f"relu_backward: shapes {grad_y.shape} and {y.shape} differ")
        grad_x = empty(y.shape)
        elementwise("relu_backward", y.size, grad_y, y, grad_x, y.size, MODE_CODES[mode])
        return grad_x

    def maxpool_forward(x, kernel_size, stride, padding=0, ceil_mode=False):
        x = float32("x", x, 4)
        n, c, h, w = x.shape
        hout = maxpool_output_size(h, kernel_size, stride, padding, ceil_mode)
        wout = maxpool_output_size(w, kernel_size, stride, padding, ceil_mode)
        y, switches = empty((n, c, hout, wout)), empty((n, c, hout, wout), np.int64)
        elementwise("maxpool_forward", y.size, x, y, switches, n, c, h, w, kernel_size, stride, padding, hout, wout)
        return y, switches

    def maxpool_backward(grad_y, switches, x_shape, kernel_size, stride, padding=0):
        grad_y = float32("grad_y", grad_y, 4)
        _expect(switches.shape == grad_y.shape and switches.dtype == np.int64, "maxpool_backward: switches must be int64 "
                f"of the gradient's shape {grad_y.shape}, got {switches.dtype}{switches.shape}")
        n, c, h, w = x_shape
        grad_x = empty(tuple(x_shape))
        elementwise("maxpool_backward", grad_x.size, grad_y, contiguous(switches), grad_x, n, c, h, w, kernel_size,
                    stride, padding, grad_y.shape[2], grad_y.shape[3])
        return grad_x

    def adaptive_avgpool_forward(x, output_size):
        x = float32("x", x, 4)
        n, c, h, w = x.shape
        y = empty((n, c) + tuple(output_size))
        elementwise("adaptive_avgpool_forward", y.size, x, y, n, c, h, w, *output_size)
        return y

    def adaptive_avgpool_backward(grad_y, x_shape):
        grad_y = float32("grad_y", grad_y, 4)
        n, c, h, w = x_shape
        grad_x = empty(tuple(x_shape))
        elementwise("adaptive_avgpool_backward", grad_x.size, grad_y, grad_x, n, c, h, w, *grad_y.shape[2:])
        return grad_x

    def lrn_forward(x, size, alpha, beta, k):
        x = float32("x", x, 4)
        y, scale = empty(x.shape), empty(x.shape)
        elementwise("lrn_forward", x.size, x, y, scale, x.shape[0], x.shape[1], x.shape[2] * x.shape[3], size,
                    alpha, beta, k)
        return y, scale

    def lrn_backward(grad_y, x, scale, size, alpha, beta):
        grad_y, x, scale = float32("grad_y", grad_y, 4), float32("x", x, 4), float32("scale", scale, 4)
        grad_x = empty(x.shape)
        elementwise("lrn_backward", x.size, grad_y, x, scale, grad_x, x.shape[0], x.shape[1],
                    x.shape[2] * x.shape[3], size, alpha, beta)
        return grad_x

    # fully connected ----------------------------------------------------------------------
    def linear_forward(x, weight, bias):
        x, weight = float32("x", x, 2), float32("weight", weight, 2)
        y = gemm(x, weight, transpose_b=True)
        if bias is not None:
            elementwise("add_row_bias", y.size, y, float32("bias", bias, 1), y.shape[0], y.shape[1])
        return y

    def linear_backward_data(grad_y, weight):
        return gemm(float32("grad_y", grad_y, 2), float32("weight", weight, 2))

    def linear_backward_weights(grad_y, x):
        return gemm(float32("grad_y", grad_y, 2), float32("x", x, 2), transpose_a=True)

    def linear_backward_bias(grad_y):
        grad_y = float32("grad_y", grad_y, 2)
        out = empty((grad_y.shape[1],))
        launch("column_sum", _blocks(grad_y.shape[1]), THREADS, grad_y, out, grad_y.shape[0], grad_y.shape[1])
        return out

    # dropout, loss, SGD --------------------------------------------------------------------
    def dropout_forward(x, p, rng):
        x = float32("x", x)
        uniform = xp.asarray(rng.random(x.shape, dtype=np.float32))  # drawn on the host: same numbers everywhere
        mask, y = empty(x.shape), empty(x.shape)
        elementwise("dropout_forward", x.size, x, uniform, mask, y, x.size, p)
        return y, mask

    def dropout_backward(grad_y, mask):
        grad_y = float32("grad_y", grad_y)
        grad_x = empty(grad_y.shape)
        elementwise("dropout_backward", grad_y.size, grad_y, float32("mask", mask), grad_x, grad_y.size)
        return grad_x

    def softmax_cross_entropy_forward(logits, labels):
        logits = float32("logits", logits, 2)
        labels = contiguous(xp.asarray(labels).astype(np.int64))
        n, k = logits.shape
        _expect(labels.shape == (n,), f"labels must have shape ({n},), got {labels.shape}")
        _expect(bool((labels >= 0).all() and (labels < k).all()), f"labels must lie in [0, {k})")
        probabilities, row_loss, loss = empty((n, k)), empty((n,)), empty(())
        launch("softmax_cross_entropy_rows", n, THREADS, logits, labels, probabilities, row_loss, k)
        launch("batch_mean", 1, THREADS, row_loss, loss.reshape(1), n)
        return loss, probabilities

    def softmax_cross_entropy_backward(grad_loss, probabilities, labels):
        grad_loss = contiguous(xp.asarray(grad_loss, dtype=np.float32).reshape(1))
        labels = contiguous(xp.asarray(labels).astype(np.int64))
        n, k = probabilities.shape
        grad = empty((n, k))
        elementwise("softmax_cross_entropy_backward", grad.size, grad_loss, float32("probabilities", probabilities),
                    labels, grad, n, k)
        return grad

    def sgd_update(weight, grad, velocity, lr, momentum, weight_decay):
        for name, a in (("weight", weight), ("grad", grad), ("velocity", velocity)):
            _expect(a.dtype == np.float32 and a.flags.c_contiguous, f"sgd_update: {name} must be contiguous float32")
        elementwise("sgd_update", weight.size, weight, grad, velocity, weight.size, lr, momentum, weight_decay)

    ops = locals()
    return SimpleNamespace(gemm=gemm, **{name: ops[name] for name in OPS})
