"""Differentiable operations: each calls the current backend's kernels forward and
records the backward step next to it (as micrograd does)."""
from . import backend
from .tensor import Tensor


def _ops():
    return backend.current().ops


def _data(t):
    return None if t is None else t.data


def conv2d(x, weight, bias=None, stride=1, padding=0):
    ops = _ops()
    y = ops.conv2d_forward(x.data, weight.data, _data(bias), stride, padding)

    def backward(g, mode, needed):
        gx = ops.conv2d_backward_data(g, weight.data, x.shape, stride, padding) if needed[0] else None
        gw = ops.conv2d_backward_weights(g, x.data, weight.shape, stride, padding) if needed[1] else None
        gb = ops.conv2d_backward_bias(g) if len(needed) > 2 and needed[2] else None
        return gx, gw, gb

    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor._from_op(y, parents, backward, "conv2d")


def relu(x):
    ops = _ops()
    y = ops.relu_forward(x.data)

    def backward(g, mode, needed):
        return (ops.relu_backward(g, y, mode),)

    return Tensor._from_op(y, (x,), backward, "relu")


def max_pool2d(x, kernel_size, stride, padding=0, ceil_mode=False, return_switches=False):
    """Max-pooling; with return_switches also the flat index of each window's winner in
    its input plane (what a DeconvNet unpools through)."""
    ops = _ops()
    y, switches = ops.maxpool_forward(x.data, kernel_size, stride, padding, ceil_mode)

    def backward(g, mode, needed):
        return (ops.maxpool_backward(g, switches, x.shape, kernel_size, stride, padding),)

    out = Tensor._from_op(y, (x,), backward, "max_pool2d")
    return (out, switches) if return_switches else out


def adaptive_avg_pool2d(x, output_size):
    ops = _ops()
    y = ops.adaptive_avgpool_forward(x.data, output_size)

    def backward(g, mode, needed):
        return (ops.adaptive_avgpool_backward(g, x.shape),)

    return Tensor._from_op(y, (x,), backward, "adaptive_avg_pool2d")


def linear(x, weight, bias=None):
    ops = _ops()
    y = ops.linear_forward(x.data, weight.data, _data(bias))

    def backward(g, mode, needed):
        gx = ops.linear_backward_data(g, weight.data) if needed[0] else None
        gw = ops.linear_backward_weights(g, x.data) if needed[1] else None
        gb = ops.linear_backward_bias(g) if len(needed) > 2 and needed[2] else None
        return gx, gw, gb

    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor._from_op(y, parents, backward, "linear")


def local_response_norm(x, size, alpha, beta, k):
    ops = _ops()
    y, scale = ops.lrn_forward(x.data, size, alpha, beta, k)

    def backward(g, mode, needed):
        return (ops.lrn_backward(g, x.data, scale, size, alpha, beta),)

    return Tensor._from_op(y, (x,), backward, "local_response_norm")


def dropout(x, p, rng):
    ops = _ops()
    y, mask = ops.dropout_forward(x.data, p, rng)

    def backward(g, mode, needed):
        return (ops.dropout_backward(g, mask),)

    return Tensor._from_op(y, (x,), backward, "dropout")


def reshape(x, shape):
    y = x.data.reshape(shape)

    def backward(g, mode, needed):
        return (g.reshape(x.shape),)

    return Tensor._from_op(y, (x,), backward, "reshape")


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy of logits (N, K) against integer labels (N,)."""
    ops = _ops()
    labels = backend.current().xp.asarray(labels)
    loss, probabilities = ops.softmax_cross_entropy_forward(logits.data, labels)

    def backward(g, mode, needed):
        return (ops.softmax_cross_entropy_backward(g, probabilities, labels),)

    return Tensor._from_op(loss, (logits,), backward, "cross_entropy")
