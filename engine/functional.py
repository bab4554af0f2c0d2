"""Differentiable operations: each calls its op family's kernels on the backend its
operands share (kernels/<family>.py) and records the backward step next to it, as
micrograd does."""
from .backend import same_backend
from .tensor import Tensor


def _data(t):
    return None if t is None else t.data


def conv2d(x, weight, bias=None, stride=1, padding=0):
    backend = same_backend("conv2d", x, weight, bias)
    ops = backend.ops.conv2d
    y = ops.forward(x.data, weight.data, _data(bias), stride, padding)

    def backward(g, mode, needed):
        gx = ops.backward_data(g, weight.data, x.shape, stride, padding) if needed[0] else None
        gw = ops.backward_weights(g, x.data, weight.shape, stride, padding) if needed[1] else None
        gb = ops.backward_bias(g) if len(needed) > 2 and needed[2] else None
        return gx, gw, gb

    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor._from_op(y, parents, backward, "conv2d", backend)


def relu(x):
    ops = x.backend.ops.relu
    y = ops.forward(x.data)

    def backward(g, mode, needed):
        return (ops.backward(g, y, mode),)

    return Tensor._from_op(y, (x,), backward, "relu", x.backend)


def max_pool2d(x, kernel_size, stride, padding=0, ceil_mode=False, return_switches=False):
    """Max-pooling; with return_switches also the flat index of each window's winner in
    its input plane (what a DeconvNet unpools through)."""
    ops = x.backend.ops.maxpool
    y, switches = ops.forward(x.data, kernel_size, stride, padding, ceil_mode)

    def backward(g, mode, needed):
        return (ops.backward(g, switches, x.shape, kernel_size, stride, padding),)

    out = Tensor._from_op(y, (x,), backward, "max_pool2d", x.backend)
    return (out, switches) if return_switches else out


def adaptive_avg_pool2d(x, output_size):
    ops = x.backend.ops.adaptive_avgpool
    y = ops.forward(x.data, output_size)

    def backward(g, mode, needed):
        return (ops.backward(g, x.shape),)

    return Tensor._from_op(y, (x,), backward, "adaptive_avg_pool2d", x.backend)


def linear(x, weight, bias=None):
    backend = same_backend("linear", x, weight, bias)
    ops = backend.ops.linear
    y = ops.forward(x.data, weight.data, _data(bias))

    def backward(g, mode, needed):
        gx = ops.backward_data(g, weight.data) if needed[0] else None
        gw = ops.backward_weights(g, x.data) if needed[1] else None
        gb = ops.backward_bias(g) if len(needed) > 2 and needed[2] else None
        return gx, gw, gb

    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor._from_op(y, parents, backward, "linear", backend)


def local_response_norm(x, size, alpha, beta, k):
    ops = x.backend.ops.lrn
    y, scale = ops.forward(x.data, size, alpha, beta, k)

    def backward(g, mode, needed):
        return (ops.backward(g, x.data, scale, size, alpha, beta),)

    return Tensor._from_op(y, (x,), backward, "local_response_norm", x.backend)


def dropout(x, p, rng):
    ops = x.backend.ops.dropout
    y, mask = ops.forward(x.data, p, rng)

    def backward(g, mode, needed):
        return (ops.backward(g, mask),)

    return Tensor._from_op(y, (x,), backward, "dropout", x.backend)


def reshape(x, shape):
    y = x.data.reshape(shape)

    def backward(g, mode, needed):
        return (g.reshape(x.shape),)

    return Tensor._from_op(y, (x,), backward, "reshape", x.backend)


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy of logits (N, K) against integer labels (N,), an array
    or list on any backend (moved to the logits')."""
    ops = logits.backend.ops.softmax_cross_entropy
    labels = logits.backend.asarray(labels)
    loss, probabilities = ops.forward(logits.data, labels)

    def backward(g, mode, needed):
        return (ops.backward(g, probabilities, labels),)

    return Tensor._from_op(loss, (logits,), backward, "cross_entropy", logits.backend)
