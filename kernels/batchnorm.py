"""Batch normalisation of NCHW activations per channel (PyTorch's BatchNorm2d):
y = gamma (x - mean) / sqrt(var + eps) + beta, with the batch's mean and biased variance in
training and the running ones in evaluation (the layer keeps those). Backward gives the
input, gamma and beta gradients; it is the same in every backward mode, and so is the
DeconvNet step. Device path: batchnorm.cu."""
import numpy as np

from .family import Device, OpFamily
from .gemm import channel_sums

# batchnorm.cu's rungs, by the suffix of their maps' kernels' names: v1 divides every
# element's index for its channel, and reduces a channel in one block; v2 carries the index
# from step to step (v1's arithmetic otherwise: about half the instructions an element) and
# reduces a channel in slices, as split-K (the same sums in another order); v3 v2 with the
# scale by rsqrtf. The engine's: v2.
VERSIONS = {"v1": "", "v2": "_carried", "v3": "_carried_rsqrt"}
ENGINE_VERSION = "v2"


def _channel(vector):
    return vector.reshape(1, -1, 1, 1)


def batchnorm_statistics(x):
    """The batch's (mean, biased variance) per channel."""
    return x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))


def batchnorm_forward(x, mean, var, gamma, beta, eps):
    scale = gamma / np.sqrt(var + eps)
    y = x * _channel(scale)
    y += _channel(beta - mean * scale)  # in place: one temporary fewer
    return y


def batchnorm_fold(weight, bias, mean, var, gamma, beta, eps):
    """(weight, bias) of a convolution with the evaluation-mode BatchNorm after it folded in:
    w s and (b - mean) s + beta per output channel, s = gamma / sqrt(var + eps); bias None
    is a zero bias."""
    scale = gamma / np.sqrt(var + eps)
    shift = -mean if bias is None else bias - mean
    folded = weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    return folded.astype(weight.dtype, copy=False), (shift * scale + beta).astype(weight.dtype, copy=False)


def batchnorm_backward(grad_y, x, mean, var, gamma, eps, batch_statistics, parameter_gradients=True):
    """(grad_x, grad_gamma, grad_beta); batch_statistics: mean and var came from this batch.
    Without parameter_gradients and with fixed statistics (a saliency pass through a trained
    net) only grad_x is computed: a per-channel scale; the others are None.

    With xhat = (x - mean) invstd, grad_gamma = sum(g xhat) and grad_beta = sum(g) per
    channel, and grad_x = gamma invstd (g - (grad_beta + xhat grad_gamma) / count) in
    training: an affine map of g and x per channel, a g + b x + c, computed as such (three
    passes over the activations instead of ten with the xhat temporaries)."""
    invstd = 1 / np.sqrt(var + eps)
    scale = gamma * invstd
    if not (batch_statistics or parameter_gradients):
        return grad_y * _channel(scale), None, None
    n, c = x.shape[:2]
    grad_beta = grad_y.sum(axis=(0, 2, 3))
    # sum(g x) per channel as a batch of dot products: BLAS, with no (g * x) temporary.
    g_dot_x = np.einsum("ncp,ncp->c", grad_y.reshape(n, c, -1), x.reshape(n, c, -1), optimize=True)
    grad_gamma = (g_dot_x - mean * grad_beta) * invstd
    if not batch_statistics:
        return grad_y * _channel(scale), grad_gamma, grad_beta
    count = x.size // c
    x_factor = -scale * invstd * grad_gamma / count
    constant = -scale * grad_beta / count - x_factor * mean
    grad_x = grad_y * _channel(scale)
    grad_x += x * _channel(x_factor)
    grad_x += _channel(constant)
    return grad_x, grad_gamma, grad_beta


def batchnorm_statistics_device(device: Device, x, version=ENGINE_VERSION):
    x = device.float32("x", x, 4)
    n, c, h, w = x.shape
    mean, var = device.empty((c,)), device.empty((c,))
    if version == "v1":
        device.launch("batchnorm_statistics", c, x, mean, var, n, c, h * w)  # a block per channel
        return mean, var
    scale = 1 / (n * h * w)  # sums scaled: the mean, then the biased variance
    channel_sums(device, "channel_sum", mean, (x,), n, c, h * w, scale)
    channel_sums(device, "batchnorm_centred_squares", var, (x, mean), n, c, h * w, scale)
    return mean, var


def batchnorm_forward_device(device: Device, x, mean, var, gamma, beta, eps, version=ENGINE_VERSION):
    x = device.float32("x", x, 4)
    y = device.empty(x.shape)
    vectors = [device.float32(name, v, 1) for name, v in (("mean", mean), ("var", var), ("gamma", gamma), ("beta", beta))]
    device.elementwise("batchnorm_forward" + VERSIONS[version], x.size, x, *vectors, y, x.size, x.shape[1],
                       x.shape[2] * x.shape[3], eps)
    return y


def batchnorm_parameter_gradients_device(device: Device, grad_y, x, mean, var, eps, version=ENGINE_VERSION):
    """(grad_gamma, grad_beta): the per-channel sums of g xhat and of g."""
    n, c, h, w = x.shape
    if version == "v1":  # a block a channel
        grad_gamma, grad_beta = device.empty((c,)), device.empty((c,))
        device.launch("batchnorm_backward_sums", c, grad_y, x, mean, var, grad_gamma, grad_beta, n, c, h * w, eps)
        return grad_gamma, grad_beta
    grad_beta, grad_gamma = channel_sums(device, "batchnorm_gradient_sums", device.empty((2, c)),
                                         (grad_y, x, mean, var), n, c, h * w, eps)
    return grad_gamma, grad_beta


def batchnorm_backward_device(device: Device, grad_y, x, mean, var, gamma, eps, batch_statistics,
                               parameter_gradients=True, version=ENGINE_VERSION):
    grad_y, x = device.float32("grad_y", grad_y, 4), device.float32("x", x, 4)
    n, c, h, w = x.shape
    mean, var, gamma = (device.float32(name, v, 1) for name, v in (("mean", mean), ("var", var), ("gamma", gamma)))
    sums = batch_statistics or parameter_gradients  # else neither asked for nor read by the next kernel
    grad_gamma, grad_beta = (batchnorm_parameter_gradients_device(device, grad_y, x, mean, var, eps, version) if sums
                             else (device.empty((c,)),) * 2)
    grad_x = device.empty(x.shape)
    device.elementwise("batchnorm_backward_data" + VERSIONS[version], x.size, grad_y, x, mean, var, gamma, grad_gamma,
                       grad_beta, grad_x, x.size, c, h * w, eps, int(batch_statistics))
    return (grad_x, grad_gamma, grad_beta) if sums else (grad_x, None, None)


def batchnorm_fold_device(device: Device, weight, bias, mean, var, gamma, beta, eps):
    weight = device.float32("weight", weight)
    channels = weight.shape[0]
    vectors = [device.float32(name, v, 1) for name, v in (("mean", mean), ("var", var), ("gamma", gamma), ("beta", beta))]
    has_bias = bias is not None
    bias = device.float32("bias", bias, 1) if has_bias else device.empty((1,))
    folded_weight, folded_bias = device.empty(weight.shape), device.empty((channels,))
    device.elementwise("batchnorm_fold", weight.size, weight, bias, *vectors, folded_weight, folded_bias, weight.size,
                       weight.size // channels, int(has_bias), eps)
    return folded_weight, folded_bias


def batchnorm_zeiler(ops, signal, x, gamma, beta, running_mean, running_var, eps):
    """DeconvNet: as backprop (reconstructions use the running statistics)."""
    return ops.backward(signal, x, running_mean, running_var, gamma, eps, False, False)[0]


BATCHNORM = OpFamily(
    "batchnorm", ("batchnorm.cu", "bias.cu", "gemm.cu"),
    numpy=dict(statistics=batchnorm_statistics, forward=batchnorm_forward, backward=batchnorm_backward,
               fold=batchnorm_fold),
    device=dict(statistics=batchnorm_statistics_device, forward=batchnorm_forward_device,
                backward=batchnorm_backward_device, fold=batchnorm_fold_device),
    zeiler=batchnorm_zeiler)
