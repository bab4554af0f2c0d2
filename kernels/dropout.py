"""Inverted dropout: at training time keep each unit with probability 1 - p and scale it by
1 / (1 - p), so that evaluation is the identity."""
import numpy as np


def dropout_forward(x, p, rng):
    """Returns y and the scaled keep-mask (backward multiplies by the same mask)."""
    keep = rng.random(x.shape, dtype=np.float32) >= p  # float32 draws, as every backend makes
    mask = keep.astype(x.dtype) / x.dtype.type(1 - p)
    return x * mask, mask


def dropout_backward(grad_y, mask):
    return grad_y * mask
