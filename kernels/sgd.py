"""SGD with momentum and weight decay, in place, in PyTorch's convention:

    v <- momentum * v + (g + weight_decay * w)
    w <- w - lr * v
"""
import numpy as np

from .family import Device, OpFamily, expect


def sgd_update(weight, grad, velocity, lr, momentum, weight_decay):
    step = grad + weight_decay * weight if weight_decay else grad
    velocity *= momentum
    velocity += step
    weight -= lr * velocity


def sgd_update_device(device: Device, weight, grad, velocity, lr, momentum, weight_decay):
    for name, a in (("weight", weight), ("grad", grad), ("velocity", velocity)):
        expect(a.dtype == np.float32 and a.flags.c_contiguous, f"sgd_update: {name} must be contiguous float32")
    device.elementwise("sgd_update", weight.size, weight, grad, velocity, weight.size, lr, momentum, weight_decay)


SGD = OpFamily("sgd", ("sgd.cu",), numpy=dict(update=sgd_update), device=dict(update=sgd_update_device))
