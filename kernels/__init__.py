"""Compute kernels, no autodiff. One NumPy reference per op (the CPU path); every other
backend provides the same functions with the same signatures.

`numpy_ops` is the namespace the engine's `numpy` backend calls.
"""
from types import SimpleNamespace

from .avgpool import adaptive_avgpool_backward, adaptive_avgpool_forward
from .conv2d import (conv2d_backward_bias, conv2d_backward_data, conv2d_backward_weights,
                     conv2d_forward, conv2d_output_size)
from .dropout import dropout_backward, dropout_forward
from .linear import linear_backward_bias, linear_backward_data, linear_backward_weights, linear_forward
from .loss import softmax_cross_entropy_backward, softmax_cross_entropy_forward
from .lrn import lrn_backward, lrn_forward
from .maxpool import maxpool_backward, maxpool_forward, maxpool_output_size
from .relu import MODES, check_mode, relu_backward, relu_forward
from .sgd import sgd_update

OPS = (
    "conv2d_forward", "conv2d_backward_data", "conv2d_backward_weights", "conv2d_backward_bias",
    "relu_forward", "relu_backward",
    "maxpool_forward", "maxpool_backward",
    "adaptive_avgpool_forward", "adaptive_avgpool_backward",
    "linear_forward", "linear_backward_data", "linear_backward_weights", "linear_backward_bias",
    "lrn_forward", "lrn_backward",
    "dropout_forward", "dropout_backward",
    "softmax_cross_entropy_forward", "softmax_cross_entropy_backward",
    "sgd_update",
)

numpy_ops = SimpleNamespace(**{name: globals()[name] for name in OPS})

__all__ = list(OPS) + ["MODES", "check_mode", "conv2d_output_size", "maxpool_output_size", "numpy_ops"]
