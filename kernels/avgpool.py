"""Adaptive average pooling (PyTorch's AdaptiveAvgPool2d), NumPy reference path.

Output cell i of n averages input rows floor(i*H/n) .. ceil((i+1)*H/n) - 1 (and likewise
for columns); a plane smaller than the output repeats its values. Written as two small
averaging matrices, y = A_h x A_w^T per plane, so that
forward and backward (x_grad = A_h^T g A_w) are each two matrix products.
"""
import numpy as np

from .family import MAX_BLOCKS, Device, OpFamily

# avgpool.cu's rungs: v1 the adaptive kernels on every output size; v2 the global pool's own
# kernels (a warp a plane forward) where the output is 1 x 1, v1's elsewhere. The engine's: v2.
VERSIONS = ("v1", "v2")
ENGINE_VERSION = "v2"


def _averaging_matrix(size, cells, dtype):
    matrix = np.zeros((cells, size), dtype)
    for i in range(cells):
        start, stop = (i * size) // cells, -((-(i + 1) * size) // cells)
        matrix[i, start:stop] = 1.0 / (stop - start)
    return matrix


def adaptive_avgpool_forward(x, output_size):
    n, c, h, w = x.shape
    rows = _averaging_matrix(h, output_size[0], x.dtype)
    cols = _averaging_matrix(w, output_size[1], x.dtype)
    return np.ascontiguousarray(rows @ x @ cols.T)


def adaptive_avgpool_backward(grad_y, x_shape):
    n, c, h, w = x_shape
    rows = _averaging_matrix(h, grad_y.shape[2], grad_y.dtype)
    cols = _averaging_matrix(w, grad_y.shape[3], grad_y.dtype)
    return np.ascontiguousarray(rows.T @ grad_y @ cols)


def adaptive_avgpool_forward_device(device: Device, x, output_size, version=ENGINE_VERSION):
    x = device.float32("x", x, 4)
    n, c, h, w = x.shape
    y = device.empty((n, c) + tuple(output_size))
    if version == "v2" and tuple(output_size) == (1, 1):  # a warp a plane
        warps = device.define("POOL_THREADS") // 32
        device.launch("global_avgpool_forward", max(1, min(MAX_BLOCKS, -(-n * c // warps))), x, y, n * c, h * w)
    else:
        device.elementwise("adaptive_avgpool_forward", y.size, x, y, n, c, h, w, *output_size)
    return y


def adaptive_avgpool_backward_device(device: Device, grad_y, x_shape, version=ENGINE_VERSION):
    grad_y = device.float32("grad_y", grad_y, 4)
    n, c, h, w = x_shape
    grad_x = device.empty(tuple(x_shape))
    if version == "v2" and grad_y.shape[2:] == (1, 1):
        device.elementwise("global_avgpool_backward", grad_x.size, grad_y, grad_x, grad_x.size, h * w)
    else:
        device.elementwise("adaptive_avgpool_backward", grad_x.size, grad_y, grad_x, n, c, h, w, *grad_y.shape[2:])
    return grad_x


def adaptive_avgpool_zeiler(ops, signal, x, output_size):
    """DeconvNet: the transpose, spreading each average back evenly."""
    return ops.backward(signal, x.shape)


ADAPTIVE_AVGPOOL = OpFamily(
    "adaptive_avgpool", ("avgpool.cu",),
    numpy=dict(forward=adaptive_avgpool_forward, backward=adaptive_avgpool_backward),
    device=dict(forward=adaptive_avgpool_forward_device, backward=adaptive_avgpool_backward_device),
    zeiler=adaptive_avgpool_zeiler)
