"""Compute kernels, no autodiff. Every op family (kernels/<family>.py) declares, in one
place, its NumPy reference, the launch code of its CUDA kernels (<family>.cu) and its
DeconvNet step; `bind` gives every family's ops on the NumPy path or on a device.

    ops = bind()                        # NumPy: ops.conv2d.forward(x, w, b, stride, padding)
    ops = bind(Device(EmulatorLauncher()))  # the same ops on our CUDA kernels, emulated
"""
from types import SimpleNamespace

from .add import ADD, add_forward
from .avgpool import ADAPTIVE_AVGPOOL, adaptive_avgpool_backward, adaptive_avgpool_forward
from .batchnorm import BATCHNORM, batchnorm_backward, batchnorm_fold, batchnorm_forward, batchnorm_statistics
from .conv2d import (CONV2D, conv2d_backward_bias, conv2d_backward_data, conv2d_backward_weights,
                     conv2d_forward, conv2d_output_size)
from .depthwise import (DEPTHWISE, depthwise_backward_bias, depthwise_backward_data, depthwise_backward_weights,
                        depthwise_forward)
from .dropout import DROPOUT, dropout_backward, dropout_forward
from .family import Device, OpFamily
from .gemm import GEMM
from .launch import KernelError
from .linear import (LINEAR, linear_backward_bias, linear_backward_data, linear_backward_weights,
                     linear_forward)
from .loss import SOFTMAX_CROSS_ENTROPY, softmax_cross_entropy_backward, softmax_cross_entropy_forward
from .lrn import LRN, lrn_backward, lrn_forward
from .maxpool import MAXPOOL, maxpool_backward, maxpool_forward, maxpool_output_size
from .modes import MODES, Mode, as_mode
from .pad import PAD, pad_backward, pad_forward
from .relu import RELU, RELU6, relu6_backward, relu6_forward, relu_backward, relu_forward
from .sgd import SGD, sgd_update

FAMILIES = (CONV2D, DEPTHWISE, PAD, RELU, RELU6, MAXPOOL, ADAPTIVE_AVGPOOL, LINEAR, LRN, BATCHNORM, DROPOUT,
            ADD, SOFTMAX_CROSS_ENTROPY, SGD, GEMM)


def bind(device=None):
    """Every family's ops, as `ops.<family>.<op>`: the NumPy reference where device is
    None, else the CUDA kernels on `device` (a Device over a GPU or the emulator)."""
    return SimpleNamespace(**{family.name: family.bind(device) for family in FAMILIES})


numpy_ops = bind()

__all__ = ["FAMILIES", "OpFamily", "Device", "KernelError", "bind", "numpy_ops", "Mode", "MODES", "as_mode",
           "conv2d_output_size", "maxpool_output_size",
           "conv2d_forward", "conv2d_backward_data", "conv2d_backward_weights", "conv2d_backward_bias",
           "relu_forward", "relu_backward", "maxpool_forward", "maxpool_backward",
           "adaptive_avgpool_forward", "adaptive_avgpool_backward",
           "linear_forward", "linear_backward_data", "linear_backward_weights", "linear_backward_bias",
           "lrn_forward", "lrn_backward", "dropout_forward", "dropout_backward",
           "depthwise_forward", "depthwise_backward_data", "depthwise_backward_weights", "depthwise_backward_bias",
           "pad_forward", "pad_backward", "add_forward", "relu6_forward", "relu6_backward",
           "batchnorm_statistics", "batchnorm_forward", "batchnorm_backward", "batchnorm_fold",
           "softmax_cross_entropy_forward", "softmax_cross_entropy_backward", "sgd_update"]
