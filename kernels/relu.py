"""ReLU forward and its three backward rules (docs/DESIGN.md, "The three backward modes").

Only this layer differs between the modes; every other layer backpropagates exactly.
Given the forward output y = max(x, 0) (y > 0 exactly where x > 0) and the signal g
arriving from above:

    backprop   g * (x > 0)               the true (sub)gradient
    deconvnet  g * (g > 0) = max(g, 0)   Zeiler and Fergus; the forward mask is ignored
    guided     g * (x > 0) * (g > 0)     Springenberg et al.

Device path: relu.cu, one thread per element.
"""
import numpy as np

from .family import Device, OpFamily, expect
from .modes import Mode


def relu_forward(x):
    # np.clip, not np.maximum(x, 0): the same values (NaN stays NaN), but NumPy 2.4's
    # maximum against a scalar runs about 3.5x slower than clip on these machines.
    return np.clip(x, 0, np.inf)


def relu_backward(grad_y, y, mode=Mode.BACKPROP):
    """`mode`: a Mode (the engine checks a user's string once, with kernels.as_mode)."""
    if mode == Mode.DECONVNET:
        return np.maximum(grad_y, grad_y.dtype.type(0))
    # Multiplying by the mask, not np.where: five times faster on random masks.
    if mode == Mode.GUIDED:
        return grad_y * ((y > 0) & (grad_y > 0))
    return grad_y * (y > 0)


def _rectifier_forward_device(device: Device, x, kernel):
    """relu.cu's float4 rung of `kernel` where the arrays are 16-byte aligned, else its first."""
    x = device.float32("x", x)
    y = device.empty(x.shape)
    vector = device.aligned(x, y)
    device.elementwise(f"{kernel}_vec4" if vector else kernel, -(-x.size // 4) if vector else x.size, x, y, x.size)
    return y


def _rectifier_backward_device(device: Device, grad_y, y, mode, kernel):
    grad_y, y = device.float32("grad_y", grad_y), device.float32("y", y)
    expect(grad_y.shape == y.shape, f"{kernel}: shapes {grad_y.shape} and {y.shape} differ")
    grad_x = device.empty(y.shape)
    code = device.define(f"MODE_{Mode(mode).name}")  # relu.cu's #define of the same name
    vector = device.aligned(grad_y, y, grad_x)
    device.elementwise(f"{kernel}_vec4" if vector else kernel, -(-y.size // 4) if vector else y.size,
                       grad_y, y, grad_x, y.size, code)
    return grad_x


def relu_forward_device(device: Device, x):
    return _rectifier_forward_device(device, x, "relu_forward")


def relu_backward_device(device: Device, grad_y, y, mode=Mode.BACKPROP):
    return _rectifier_backward_device(device, grad_y, y, mode, "relu_backward")


def relu_zeiler(ops, signal, x):
    """DeconvNet: ReLU applied to the reconstruction itself; the forward mask is ignored."""
    return ops.forward(signal)


RELU = OpFamily("relu", ("relu.cu",), numpy=dict(forward=relu_forward, backward=relu_backward),
                device=dict(forward=relu_forward_device, backward=relu_backward_device), zeiler=relu_zeiler)


# ReLU6, y = min(max(x, 0), 6): ReLU's table with the mask open where 0 < x < 6; DeconvNet
# keeps Zeiler's rule max(g, 0) (the cap at 6 is a forward-pass matter, as the floor at 0 is).

def relu6_forward(x):
    return np.clip(x, 0, 6)  # one pass; see relu_forward


def relu6_backward(grad_y, y, mode=Mode.BACKPROP):
    if mode == Mode.DECONVNET:
        return np.maximum(grad_y, grad_y.dtype.type(0))
    mask = (y > 0) & (y < 6)
    if mode == Mode.GUIDED:
        mask &= grad_y > 0
    return grad_y * mask


def relu6_forward_device(device: Device, x):
    return _rectifier_forward_device(device, x, "relu6_forward")


def relu6_backward_device(device: Device, grad_y, y, mode=Mode.BACKPROP):
    return _rectifier_backward_device(device, grad_y, y, mode, "relu6_backward")


def relu6_zeiler(ops, signal, x):
    """DeconvNet: max(signal, 0), the rule of Zeiler's ReLU (the forward mask ignored)."""
    return ops.backward(signal, signal, Mode.DECONVNET)


RELU6 = OpFamily("relu6", ("relu.cu",), numpy=dict(forward=relu6_forward, backward=relu6_backward),
                 device=dict(forward=relu6_forward_device, backward=relu6_backward_device), zeiler=relu6_zeiler)
