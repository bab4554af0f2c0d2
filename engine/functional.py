"""Differentiable operations: each calls its op family's kernels on the backend its
operands share (kernels/<family>.py) and records the backward step next to it, as
micrograd does."""
from .backend import same_backend
from ..kernels.conv2d import convolution_ops
from .tensor import Tensor, is_grad_enabled


def _data(t):
    return None if t is None else t.data


def conv2d(x, weight, bias=None, stride=1, padding=0, groups=1):
    """A convolution; with groups > 1 a grouped one (depthwise when groups = input channels
    = output channels: the depthwise family's direct kernels)."""
    backend = same_backend("conv2d", x, weight, bias)
    ops = convolution_ops(backend.ops, backend.xp, groups, x.shape[1], weight.shape[0])
    # Where the weight gradient will be asked for, the forward may keep what it shares with
    # it (the NumPy path's patch matrices); the context lives as long as this graph node.
    context = {} if weight.requires_grad and is_grad_enabled() else None
    y = ops.forward(x.data, weight.data, _data(bias), stride, padding, context)

    def backward(g, mode, needed):
        gx = ops.backward_data(g, weight.data, x.shape, stride, padding) if needed[0] else None
        gw = ops.backward_weights(g, x.data, weight.shape, stride, padding, context) if needed[1] else None
        gb = ops.backward_bias(g) if len(needed) > 2 and needed[2] else None
        return gx, gw, gb

    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor._from_op(y, parents, backward, "conv2d", backend)


def conv2d_batchnorm(x, weight, bias, norm_weight, norm_bias, running_mean, running_var, eps, stride=1, padding=0,
                     groups=1):
    """A convolution followed by an evaluation-mode BatchNorm2d, run as one convolution
    with the normalisation folded into it (kernels' batchnorm fold: w' = w s and b' = (b -
    mean) s + beta per output channel, s = gamma / sqrt(var + eps)). The values are the two
    layers' to rounding; the forward saves the normalisation's passes over the output and
    the backward its scaling.

    Every parameter gets its own gradient: with G the gradient of the folded weights (the
    convolution's weight gradient for the signal g at the output), dL/dw = G s, dL/db =
    s sum g, dL/dbeta = sum g, and dL/dgamma = (sum(w G) + (b - mean) sum g) / sqrt(var +
    eps), since the convolution is linear in w: sum(g conv(x, w)) = sum(w G)."""
    backend = same_backend("conv2d", x, weight, bias, norm_weight, norm_bias, running_mean, running_var)
    folded_weight, folded_bias = backend.ops.batchnorm.fold(weight.data, _data(bias), running_mean.data,
                                                            running_var.data, norm_weight.data, norm_bias.data, eps)
    ops = convolution_ops(backend.ops, backend.xp, groups, x.shape[1], weight.shape[0])
    context = {} if weight.requires_grad and is_grad_enabled() else None
    y = ops.forward(x.data, folded_weight, folded_bias, stride, padding, context)

    def backward(g, mode, needed):
        wants_x, wants_weight, wants_gamma, wants_beta = needed[0], needed[1], needed[-2], needed[-1]
        wants_bias = bias is not None and needed[2]
        gx = ops.backward_data(g, folded_weight, x.shape, stride, padding) if wants_x else None
        gw = gb = g_gamma = g_beta = None
        if wants_weight or wants_bias or wants_gamma or wants_beta:
            inverse_std = 1 / backend.xp.sqrt(running_var.data + eps)
            scale = norm_weight.data * inverse_std
            g_sum = ops.backward_bias(g)
            gb = g_sum * scale if wants_bias else None
            g_beta = g_sum if wants_beta else None
            if wants_weight or wants_gamma:
                g_folded = ops.backward_weights(g, x.data, weight.shape, stride, padding, context)
                gw = g_folded * scale.reshape((-1,) + (1,) * (weight.ndim - 1)) if wants_weight else None
                if wants_gamma:
                    shift = (0 if bias is None else bias.data) - running_mean.data
                    weighted = (weight.data * g_folded).reshape(weight.shape[0], -1).sum(axis=1)
                    g_gamma = (weighted + shift * g_sum) * inverse_std
        return (gx, gw) + ((gb,) if bias is not None else ()) + (g_gamma, g_beta)

    parents = (x, weight) + ((bias,) if bias is not None else ()) + (norm_weight, norm_bias)
    return Tensor._from_op(y, parents, backward, "conv2d_batchnorm", backend)


def _rectifier(x, ops, op):
    """ReLU or ReLU6: the only ops whose backward reads the mode."""
    y = ops.forward(x.data)

    def backward(g, mode, needed):
        return (ops.backward(g, y, mode),)

    return Tensor._from_op(y, (x,), backward, op, x.backend)


def relu(x):
    return _rectifier(x, x.backend.ops.relu, "relu")


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


def relu6(x):
    return _rectifier(x, x.backend.ops.relu6, "relu6")


def pad(x, padding):
    """Zeros around the spatial axes: padding = (left, right, top, bottom)."""
    ops = x.backend.ops.pad
    y = ops.forward(x.data, padding)

    def backward(g, mode, needed):
        return (ops.backward(g, padding),)

    return Tensor._from_op(y, (x,), backward, "pad", x.backend)


def add(a, b):
    """a + b, for tensors of one shape (a residual block's sum)."""
    backend = same_backend("add", a, b)
    y = backend.ops.add.forward(a.data, b.data)

    def backward(g, mode, needed):
        return (g if needed[0] else None, g if needed[1] else None)

    return Tensor._from_op(y, (a, b), backward, "add", backend)


def batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps):
    """BatchNorm2d: with the batch's statistics while training (updating the running ones
    in place, PyTorch's rule: unbiased variance, `momentum` the new value's weight), else
    with the running ones."""
    backend = same_backend("batch_norm", x, weight, bias, running_mean, running_var)
    ops = backend.ops.batchnorm
    if training:
        mean, var = ops.statistics(x.data)
        count = x.data.size // x.shape[1]
        running_mean.data = (1 - momentum) * running_mean.data + momentum * mean
        running_var.data = (1 - momentum) * running_var.data + momentum * var * (count / max(count - 1, 1))
    else:
        mean, var = running_mean.data, running_var.data
    y = ops.forward(x.data, mean, var, weight.data, bias.data, eps)

    def backward(g, mode, needed):
        grad_x, grad_weight, grad_bias = ops.backward(g, x.data, mean, var, weight.data, eps, training,
                                                      needed[1] or needed[2])
        return grad_x, grad_weight if needed[1] else None, grad_bias if needed[2] else None

    return Tensor._from_op(y, (x, weight, bias), backward, "batch_norm", backend)
