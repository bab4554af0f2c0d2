"""The autodiff engine: tensors, a backward pass with three modes, layers, SGD."""
from . import functional, nn, optim
from .backend import available_backends, get_backend, set_backend, to_numpy
from ..kernels import MODES
from .tensor import Tensor, grad, is_grad_enabled, no_grad

__all__ = ["Tensor", "grad", "no_grad", "is_grad_enabled", "set_backend", "get_backend",
           "available_backends", "to_numpy", "nn", "optim", "functional", "MODES"]
