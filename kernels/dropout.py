"""Inverted dropout: at training time keep each unit with probability 1 - p and scale it by
1 / (1 - p), so that evaluation is the identity."""
import numpy as np

from .family import Device, OpFamily


def dropout_forward(x, p, rng):
    """Returns y and the scaled keep-mask (backward multiplies by the same mask)."""
    keep = rng.random(x.shape, dtype=np.float32) >= p  # float32 draws, as every backend makes
    mask = keep.astype(x.dtype) / x.dtype.type(1 - p)
    return x * mask, mask


def dropout_backward(grad_y, mask):
    return grad_y * mask


def dropout_forward_device(device: Device, x, p, rng):
    x = device.float32("x", x)
    uniform = device.xp.asarray(rng.random(x.shape, dtype=np.float32))  # drawn on the host: same numbers everywhere
    mask, y = device.empty(x.shape), device.empty(x.shape)
    device.elementwise("dropout_forward", x.size, x, uniform, mask, y, x.size, p)
    return y, mask


def dropout_backward_device(device: Device, grad_y, mask):
    grad_y = device.float32("grad_y", grad_y)
    grad_x = device.empty(grad_y.shape)
    device.elementwise("dropout_backward", grad_y.size, grad_y, device.float32("mask", mask), grad_x, grad_y.size)
    return grad_x


DROPOUT = OpFamily("dropout", ("dropout.cu",), numpy=dict(forward=dropout_forward, backward=dropout_backward),
                   device=dict(forward=dropout_forward_device, backward=dropout_backward_device))
