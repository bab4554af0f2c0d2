"""Depthwise convolution: groups = channels, weights (C, 1, K, K), stride s, symmetric zero
padding p (asymmetric padding is a ZeroPad2d before it). NumPy reference: K^2 shifted,
strided views of the padded input, each scaled by one weight per channel, in channels-last
layout (NHWC), where a weight vector scales contiguous channel rows (measured on the
2-core machine: 1.3x to 3x faster than the same views in NCHW for EfficientNet's layers).
Device path: depthwise.cu (direct kernels: the op is memory-bound). Backpropagates
identically in every mode; its DeconvNet step is the backward-data, as a convolution's."""
import numpy as np

from .conv2d import (conv2d_backward_bias as depthwise_backward_bias, conv2d_backward_bias_device,
                     conv2d_output_size)
from .family import Device, OpFamily, expect


def _windows(size, kernel, stride, padding):
    out = conv2d_output_size(size, kernel, stride, padding)
    return out, [slice(u, u + stride * (out - 1) + 1, stride) for u in range(kernel)]


def _padded_nhwc(x, padding):
    n, c, h, w = x.shape
    padded = np.zeros((n, h + 2 * padding, w + 2 * padding, c), x.dtype)
    padded[:, padding : padding + h, padding : padding + w] = x.transpose(0, 2, 3, 1)
    return padded


def _filters_nhwc(weight):
    """(K, K, C): the weight vector of each kernel offset, contiguous over channels."""
    return np.ascontiguousarray(weight[:, 0].transpose(1, 2, 0))


def depthwise_forward(x, weight, bias, stride=1, padding=0, context=None):
    k = weight.shape[2]
    hout, rows = _windows(x.shape[2], k, stride, padding)
    wout, cols = _windows(x.shape[3], k, stride, padding)
    padded, filters = _padded_nhwc(x, padding), _filters_nhwc(weight)
    y = np.empty((x.shape[0], hout, wout, x.shape[1]), x.dtype)
    term = np.empty_like(y)
    for u in range(k):
        for v in range(k):
            if u == v == 0:
                np.multiply(padded[:, rows[u], cols[v]], filters[u, v], out=y)
            else:
                np.multiply(padded[:, rows[u], cols[v]], filters[u, v], out=term)
                y += term
    if bias is not None:
        y += bias
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2))


def depthwise_backward_data(grad_y, weight, x_shape, stride=1, padding=0):
    k = weight.shape[2]
    _, rows = _windows(x_shape[2], k, stride, padding)
    _, cols = _windows(x_shape[3], k, stride, padding)
    n, c, h, w = x_shape
    filters, grad = _filters_nhwc(weight), np.ascontiguousarray(grad_y.transpose(0, 2, 3, 1))
    padded = np.zeros((n, h + 2 * padding, w + 2 * padding, c), grad_y.dtype)
    term = np.empty_like(grad)
    for u in range(k):
        for v in range(k):
            np.multiply(grad, filters[u, v], out=term)
            padded[:, rows[u], cols[v]] += term
    return np.ascontiguousarray(padded[:, padding : padding + h, padding : padding + w].transpose(0, 3, 1, 2))


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
    hout, wout = conv2d_output_size(h, k, stride, padding), conv2d_output_size(w, k, stride, padding)
    expect(hout > 0 and wout > 0, f"depthwise: input {h}x{w} is smaller than the kernel")
    return n, c, h, w, k, hout, wout


def depthwise_forward_device(device: Device, x, weight, bias, stride=1, padding=0, context=None):
    x, weight = device.float32("x", x, 4), device.float32("weight", weight, 4)
    n, c, h, w, k, hout, wout = _geometry(x.shape, weight.shape, stride, padding)
    has_bias = bias is not None
    bias = device.float32("bias", bias, 1) if has_bias else device.empty((1,))
    y = device.empty((n, c, hout, wout))
    device.elementwise("depthwise_forward", y.size, x, weight, bias, y, n, c, h, w, k, stride, padding, hout, wout,
                       int(has_bias))
    return y


def depthwise_backward_data_device(device: Device, grad_y, weight, x_shape, stride=1, padding=0):
    grad_y, weight = device.float32("grad_y", grad_y, 4), device.float32("weight", weight, 4)
    n, c, h, w, k, hout, wout = _geometry(x_shape, weight.shape, stride, padding)
    grad_x = device.empty(tuple(x_shape))
    device.elementwise("depthwise_backward_data", grad_x.size, grad_y, weight, grad_x, n, c, h, w, k, stride, padding,
                       hout, wout)
    return grad_x


def depthwise_backward_weights_device(device: Device, grad_y, x, w_shape, stride=1, padding=0, context=None):
    grad_y, x = device.float32("grad_y", grad_y, 4), device.float32("x", x, 4)
    n, c, h, w, k, hout, wout = _geometry(x.shape, w_shape, stride, padding)
    grad_w = device.empty(tuple(w_shape))
    device.launch("depthwise_backward_weights", grad_w.size, grad_y, x, grad_w, n, c, h, w, k, stride, padding,
                  hout, wout)  # one block per weight
    return grad_w


def depthwise_zeiler(ops, signal, x, weight, bias=None, stride=1, padding=0):
    """DeconvNet: the flipped filters, i.e. backward-data, as for any convolution."""
    return ops.backward_data(signal, weight, x.shape, stride, padding)


DEPTHWISE = OpFamily(
    "depthwise", ("depthwise.cu", "bias.cu"),
    numpy=dict(forward=depthwise_forward, backward_data=depthwise_backward_data,
               backward_weights=depthwise_backward_weights, backward_bias=depthwise_backward_bias),
    device=dict(forward=depthwise_forward_device, backward_data=depthwise_backward_data_device,
                backward_weights=depthwise_backward_weights_device,
                backward_bias=conv2d_backward_bias_device),  # a sum per channel, as for any convolution
    zeiler=depthwise_zeiler)
