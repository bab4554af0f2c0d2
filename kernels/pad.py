"""Zero padding of the spatial axes, as PyTorch's ZeroPad2d: padding = (left, right, top,
bottom). TensorFlow's "SAME" padding of a stride-2 convolution puts the odd extra row and
column at the bottom and right; this layer before an unpadded convolution expresses it.
Backward crops, in every mode. Device path: pad.cu."""
import numpy as np

from .family import Device, OpFamily

# The element-wise rungs of pad.cu, by the suffix of their kernels' names: v1 divides every
# element's index for its (plane, row, column), v2 carries them from step to step (a third
# of the instructions an element). The engine's: v2.
VERSIONS = {"v1": "", "v2": "_carried"}
ENGINE_VERSION = "v2"


def pad_forward(x, padding):
    left, right, top, bottom = padding
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))


def pad_backward(grad_y, padding):
    left, right, top, bottom = padding
    height, width = grad_y.shape[2] - top - bottom, grad_y.shape[3] - left - right
    return np.ascontiguousarray(grad_y[:, :, top : top + height, left : left + width])


def pad_forward_device(device: Device, x, padding, version=ENGINE_VERSION):
    x = device.float32("x", x, 4)
    left, right, top, bottom = padding
    n, c, h, w = x.shape
    y = device.empty((n, c, h + top + bottom, w + left + right))
    device.elementwise("pad_forward" + VERSIONS[version], y.size, x, y, n * c, h, w, top, left, y.shape[2], y.shape[3])
    return y


def pad_backward_device(device: Device, grad_y, padding, version=ENGINE_VERSION):
    grad_y = device.float32("grad_y", grad_y, 4)
    left, right, top, bottom = padding
    n, c, hp, wp = grad_y.shape
    grad_x = device.empty((n, c, hp - top - bottom, wp - left - right))
    device.elementwise("pad_backward" + VERSIONS[version], grad_x.size, grad_y, grad_x, n * c, grad_x.shape[2],
                       grad_x.shape[3], top, left, hp, wp)
    return grad_x


def pad_zeiler(ops, signal, x, padding):
    """DeconvNet: the crop, as backprop."""
    return ops.backward(signal, padding)


PAD = OpFamily("pad", ("pad.cu",), numpy=dict(forward=pad_forward, backward=pad_backward),
               device=dict(forward=pad_forward_device, backward=pad_backward_device), zeiler=pad_zeiler)
