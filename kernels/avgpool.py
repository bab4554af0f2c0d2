"""Adaptive average pooling (PyTorch's AdaptiveAvgPool2d), NumPy reference path.

Output cell i of n averages input rows floor(i*H/n) .. ceil((i+1)*H/n) - 1 (and likewise
for columns); a plane smaller than the output repeats its values. Written as two small
averaging matrices, y = A_h x A_w^T per plane, so that
forward and backward (x_grad = A_h^T g A_w) are each two matrix products.
"""
import numpy as np


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
