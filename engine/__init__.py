"""The autodiff engine: tensors that know their backend, a backward pass with three modes,
layers, SGD."""
from . import functional, nn, optim
from .errors import InputError
from .backend import (Backend, available_backends, get_backend, keep_freed_memory, set_backend, to_numpy,
                      use_backend)
from ..kernels import MODES, Mode
from .tensor import Tensor, grad, is_grad_enabled, no_grad
from .capture import capture

__all__ = ["InputError", "Tensor", "grad", "no_grad", "is_grad_enabled", "Backend", "get_backend", "set_backend", "use_backend",
           "available_backends", "keep_freed_memory", "to_numpy", "capture", "nn", "optim", "functional", "Mode", "MODES"]
